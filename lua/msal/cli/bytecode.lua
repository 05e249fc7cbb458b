--- Compiled modules kept between runs of the `msal` command, as Python
-- keeps `__pycache__` and Neovim's `vim.loader` keeps `luac/`: compiling
-- the ~40 modules a cache hit needs was half of its CPU time
-- (bench/README.md, the command line).
--
-- One file per interpreter, `$XDG_CACHE_HOME/msal/luac/<interpreter>`
-- (else `~/.cache/msal/luac/`), holds the bytecode of the msal modules a
-- run compiled, without debug information: a third less to load (bin/msal
-- compiles from source under --verbose, so that a traceback names lines).
--
-- Bytecode is code, and a Lua interpreter does not check it: the file is
-- read only when the token cache's own rule says nobody else could have
-- written it (`fileio.check_private`), and it is written 0600, atomically,
-- in directories made 0700. An entry is used only while its source file
-- has the device, inode, size and modification time it was compiled from
-- (`fileio.signature`), and the file only when this interpreter compiles a
-- probe chunk to the bytes recorded in it (another build or version of the
-- interpreter starts afresh). `MSAL_BYTECODE_CACHE=0` turns it off.
-- Nothing here fails a command: a file that is missing, foreign or damaged
-- means the modules compile from source, as they would without it.
-- @module msal.cli.bytecode
local fileio = require("msal.core").fileio

local bytecode = {}

local VERSION = 2
-- name, path, the source's fileio.signature, offset after the index, length
local ENTRY = "([^\t\n]+)\t([^\t\n]+)\t([%d:]+)\t(%d+)\t(%d+)\n"
local PROBE_SOURCE = "local a, b = ... return { a + b, 'probe' }"

local searchers = package.searchers or package.loaders
local PRIVATE_DIR, PRIVATE_FILE = tonumber("700", 8), tonumber("600", 8)

local function interpreter()
  local name = jit and jit.version or _VERSION
  return (name:gsub("[^%w.]+", "-"))
end

--- Where this interpreter's file is, or nil when there is no cache home:
-- beside the default token cache (credential_chain.default_cache_path,
-- whose rule this repeats because that module is not loaded yet here: a
-- relative XDG_CACHE_HOME is ignored, as the XDG spec says).
-- @tparam function getenv
-- @treturn ?string
function bytecode.path(getenv)
  local base = getenv("XDG_CACHE_HOME")
  if not base or base:sub(1, 1) ~= "/" then
    local home = getenv("HOME")
    if not home or home == "" then return nil end
    base = home .. "/.cache"
  end
  return base .. "/msal/luac/" .. interpreter()
end

local function probe()
  return string.dump(assert(load(PROBE_SOURCE, "=probe")), true)
end

-- The file is a line "msal-luac <version> <probe length> <index length>",
-- the probe's bytecode, the index (an ENTRY line per module) and the
-- modules' bytecode. Returns its entries by source path (a checkout and an
-- installed rock used by one user keep theirs side by side): { module name,
-- signature, first byte, last byte } of data (fileio bytes); nil when it
-- is not a whole file of this version made by this interpreter.
local function parse(data, probe_bytes)
  local head = data:sub(1, 64)
  local version, plen, ilen = head:match("^msal%-luac (%d+) (%d+) (%d+)\n")
  if version ~= tostring(VERSION) then return nil end
  local at = #head:match("^[^\n]*\n") + 1
  plen, ilen = tonumber(plen), tonumber(ilen)
  if data:sub(at, at + plen - 1) ~= probe_bytes then return nil end
  local index = data:sub(at + plen, at + plen + ilen - 1)
  if #index ~= ilen then return nil end
  local base, entries, used = at + plen + ilen - 1, {}, 0
  for name, path, sig, off, len in index:gmatch(ENTRY) do
    local first, last = base + tonumber(off) + 1, base + tonumber(off) + tonumber(len)
    if last > #data then return nil end
    entries[path] = { name, sig, first, last }
    used = used + #name + #path + #sig + #off + #len + 5
  end
  if used ~= ilen then return nil end
  return entries
end

--- Puts a searcher for `msal` and `msal.*` first: before Lua's own file
-- searcher, and before luarocks.loader's, which loads files itself (a
-- LUA_INIT may have installed it); `package.preload` still comes first.
-- It finds the same file Lua's searcher would (`package.path`), and loads
-- its bytecode from the cache when the file is unchanged, else compiles it
-- and keeps the bytecode for `save`.
-- @tparam[opt] function getenv (default os.getenv)
-- @treturn ?table the cache, with `save()`, `hits` and `compiled`; nil
-- when it is off or has no home
function bytecode.install(getenv)
  getenv = getenv or os.getenv
  local off = getenv("MSAL_BYTECODE_CACHE")
  if off == "0" or off == "off" or off == "false" then return nil end
  local file = bytecode.path(getenv)
  if not file then return nil end
  local probe_bytes = probe()
  local data, entries = nil, {}
  if fileio.check_private(file) then
    local bytes = fileio.read(file, "bytes")
    local ok, parsed = pcall(parse, bytes or "", probe_bytes)
    if ok and parsed then data, entries = bytes, parsed end
  end
  local cache = { hits = 0, compiled = {}, file = file }
  local fresh = {} -- path -> { name, signature, chunk } compiled this run

  local function searcher(name)
    if (name ~= "msal" and name:sub(1, 5) ~= "msal.") or package.preload[name] then return nil end
    local path = package.searchpath(name, package.path)
    if not path then return nil end
    local sig = fileio.signature(path)
    if not sig then return nil end
    local entry = entries[path]
    if entry and entry[2] == sig then
      local fn = data:load(entry[3], entry[4], "=" .. path)
      if fn then
        cache.hits = cache.hits + 1
        return fn, path
      end
    end
    local fn, err = loadfile(path)
    if not fn then
      error(string.format("error loading module '%s' from file '%s':\n\t%s", name, path, err), 0)
    end
    fresh[path] = { name, sig, string.dump(fn, true) }
    cache.compiled[#cache.compiled + 1] = name
    return fn, path
  end
  table.insert(searchers, 1, searcher)

  -- the file, with what it held that is still good and what this run compiled
  local function write()
    local index, chunks, off = {}, {}, 0
    local function add(name, path, sig, chunk)
      if (name .. path):find("[\t\n]") then return end -- the index's separators
      index[#index + 1] = table.concat({ name, path, sig, off, #chunk }, "\t") .. "\n"
      chunks[#chunks + 1] = chunk
      off = off + #chunk
    end
    for path, e in pairs(entries) do
      if not fresh[path] and fileio.signature(path) == e[2] then add(e[1], path, e[2], data:sub(e[3], e[4])) end
    end
    for path, f in pairs(fresh) do add(f[1], path, f[2], f[3]) end
    index = table.concat(index)
    local content = table.concat({ "msal-luac ", VERSION, " ", #probe_bytes, " ", #index, "\n",
                                   probe_bytes, index, table.concat(chunks) })
    if not fileio.mkdirs(file:match("^(.*)/"), PRIVATE_DIR) then return false end
    return fileio.write_atomic(file, content, PRIVATE_FILE) == true
  end

  --- Writes the file when this run compiled a module; entries whose
  -- source is gone or changed are dropped.
  -- @treturn boolean whether the file was written
  function cache.save()
    if not next(fresh) then return false end
    local ok, written = pcall(write)
    return ok and written
  end

  return cache
end

return bytecode
