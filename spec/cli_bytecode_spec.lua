-- msal.cli.bytecode: the `msal` command's compiled modules kept between
-- runs. Every run is a child process, as each run of the command is: a
-- probe script installs the cache, requires a module of a temporary tree
-- (msal.zz_probe, first on package.path) and prints what the cache did.
local cjson = require("cjson")
local files = require("files")
local proc = require("proc")
local fileio = require("msal.core").fileio

local q = proc.quote
local function octal(s) return tonumber(s, 8) end

-- A shell command that must succeed (without the ASan preload).
local function sh(cmd)
  local out, code = proc.sh(cmd, { plain = true })
  assert(code == 0, cmd .. ": " .. out)
end

local INTERPRETER = ((jit and jit.version or _VERSION):gsub("[^%w.]+", "-"))
local BIN = (os.getenv("MSAL_TEST_ROOT") or ".") .. "/bin/msal"

describe("msal.cli.bytecode", function()
  local dir, remove_dir, xdg, luac, module_file

  -- Runs a script of the test's directory with these environment variables
  -- (XDG_CACHE_HOME is the test's own unless vars says otherwise; false
  -- unsets one); returns its stdout, its exit status, stderr.
  local function run_script(script, vars)
    local set = { XDG_CACHE_HOME = xdg, HOME = dir .. "/home", MSAL_BYTECODE_CACHE = false }
    for k, v in pairs(vars or {}) do set[k] = v end
    local env = { "env" }
    for k, v in pairs(set) do
      if v == false then table.insert(env, 2, "-u " .. k) else env[#env + 1] = k .. "=" .. q(v) end
    end
    return proc.run(table.concat(env, " ") .. " " .. proc.LUA .. " " .. q(dir .. "/" .. script))
  end

  -- Runs the probe (run_script's vars); returns what it printed as { hits,
  -- compiled, value, saved }, its exit status, stderr.
  local function probe(vars)
    local out, rc, err = run_script("probe.lua", vars)
    local hits, compiled, value, saved = out:match("^(%S+) (%S+) (%S+) (%S+)\n$")
    return { hits = tonumber(hits) or hits, compiled = compiled, value = value, saved = saved }, rc, err
  end

  local function write_module(value)
    return files.write(module_file, ("return { value = %q }\n"):format(value))
  end

  before_each(function()
    dir, remove_dir = proc.tempdir()
    xdg = dir .. "/xdg"
    luac = xdg .. "/msal/luac/" .. INTERPRETER
    module_file = dir .. "/lua/msal/zz_probe.lua"
    assert(fileio.mkdirs(dir .. "/lua/msal"))
    write_module("111")
    files.write(dir .. "/lua/zz_other.lua", "return 'other'\n")
    proc.lua_script(dir .. "/probe.lua", ([[
      package.path = %q .. package.path
      local cache = require("msal.cli.bytecode").install()
      local value = require("msal.zz_probe").value
      assert(require("zz_other") == "other")
      if not cache then io.write("off - ", value, " -\n") return end
      io.write(cache.hits, " ", #cache.compiled > 0 and table.concat(cache.compiled, ",") or "-", " ", value, " ", tostring(cache.save()), "\n")
    ]]):format(dir .. "/lua/?.lua;"))
  end)

  after_each(function()
    if remove_dir then remove_dir() end
  end)

  it("keeps a module compiled in a private file and loads it from there the next run", function()
    local r, rc, err = probe()
    assert.equal(0, rc, err)
    assert.same({ hits = 0, compiled = "msal.zz_probe", value = "111", saved = "true" }, r)
    local st = assert(fileio.stat(luac))
    assert.equal(octal("600"), st.mode)
    for _, d in ipairs({ xdg, xdg .. "/msal", xdg .. "/msal/luac" }) do
      assert.equal(octal("700"), fileio.stat(d).mode, d)
    end
    r, rc, err = probe()
    assert.equal(0, rc, err)
    assert.same({ hits = 1, compiled = "-", value = "111", saved = "false" }, r)
  end)

  it("keeps the modules of two trees of the same names side by side (a checkout and an installed rock)", function()
    -- a second tree: its msal.zz_probe is another file
    assert(fileio.mkdirs(dir .. "/lua2/msal"))
    files.write(dir .. "/lua2/msal/zz_probe.lua", "return { value = '222' }\n")
    files.write(dir .. "/lua2/zz_other.lua", "return 'other'\n")
    local probe1 = files.read(dir .. "/probe.lua")
    local function swap(a, b)
      local text = assert(files.read(dir .. "/probe.lua"))
      local i, j = text:find(a, 1, true)
      files.write(dir .. "/probe.lua", text:sub(1, i - 1) .. b .. text:sub(j + 1))
    end
    local expected = {
      { "1", { hits = 0, compiled = "msal.zz_probe", value = "111", saved = "true" } },
      { "2", { hits = 0, compiled = "msal.zz_probe", value = "222", saved = "true" } },
      { "1", { hits = 1, compiled = "-", value = "111", saved = "false" } },
      { "2", { hits = 1, compiled = "-", value = "222", saved = "false" } },
    }
    for _, step in ipairs(expected) do
      files.write(dir .. "/probe.lua", probe1)
      if step[1] == "2" then swap(dir .. "/lua/?.lua;", dir .. "/lua2/?.lua;") end
      local r, rc, err = probe()
      assert.equal(0, rc, err)
      assert.same(step[2], r)
    end
  end)

  it("compiles a changed module again, even one of the same size", function()
    probe()
    write_module("222")
    local r = probe()
    assert.same({ hits = 0, compiled = "msal.zz_probe", value = "222", saved = "true" }, r)
    assert.same({ hits = 1, compiled = "-", value = "222", saved = "false" }, (probe()))
  end)

  it("uses the file only when nobody else could have written it", function()
    -- bytecode compiled from "666", then a source of the same size and time
    -- that says "111": only the source's metadata is compared (as Python
    -- compares a .pyc's), so a file that passes the check serves 666
    local function plant()
      os.remove(luac)
      write_module("666")
      assert.equal("true", probe().saved)
      sh("cp -p " .. q(module_file) .. " " .. q(dir .. "/ref"))
      write_module("111")
      sh("touch -r " .. q(dir .. "/ref") .. " " .. q(module_file))
    end
    plant()
    assert.same({ hits = 1, compiled = "-", value = "666", saved = "false" }, (probe()))
    for _, case in ipairs({ { "666", luac }, { "620", luac }, { "777", xdg .. "/msal/luac" } }) do
      plant()
      sh("chmod " .. case[1] .. " " .. q(case[2]))
      local r, rc, err = probe()
      assert.equal(0, rc, err)
      assert.same({ hits = 0, compiled = "msal.zz_probe", value = "111", saved = "true" }, r, case[1])
      sh("chmod 700 " .. q(xdg .. "/msal/luac"))
      -- the file written then is private, with the source's bytecode
      assert.equal(octal("600"), fileio.stat(luac).mode)
      assert.same({ hits = 1, compiled = "-", value = "111", saved = "false" }, (probe()))
    end
  end)

  it("ignores a damaged, foreign or truncated file and writes a good one", function()
    probe()
    local good = files.read(luac)
    local head = good:match("^[^\n]*\n")
    local plen, ilen = head:match("^msal%-luac 2 (%d+) (%d+)\n$")
    plen, ilen = tonumber(plen), tonumber(ilen)
    local index_at = #head + plen + 1
    local bad = {
      empty = "",
      garbage = string.rep("\0\255", 100),
      other_version = head:gsub("^msal%-luac 2", "msal-luac 9") .. good:sub(#head + 1),
      other_interpreter = head .. ("x"):rep(plen) .. good:sub(#head + plen + 1),
      index_too_long = head:gsub(" " .. ilen .. "\n$", " " .. (ilen + 1) .. "\n") .. good:sub(#head + 1),
      index_too_short = head:gsub(" " .. ilen .. "\n$", " " .. (ilen - 1) .. "\n") .. good:sub(#head + 1),
      index_garbled = good:sub(1, index_at - 1) .. "\t" .. good:sub(index_at + 1),
      huge_lengths = "msal-luac 2 99999999999999999999999 1\n" .. good:sub(#head + 1),
      chunk_not_bytecode = good:sub(1, index_at + ilen - 1) .. "X" .. good:sub(index_at + ilen + 1),
      truncated_in_header = good:sub(1, 5),
      truncated_in_index = good:sub(1, index_at + 3),
      truncated_in_chunk = good:sub(1, #good - 3),
    }
    for name, content in pairs(bad) do
      assert(fileio.write_atomic(luac, content))
      local r, rc, err = probe()
      assert.equal(0, rc, name .. ": " .. err)
      assert.same({ hits = 0, compiled = "msal.zz_probe", value = "111", saved = "true" }, r, name)
      assert.equal(1, probe().hits, name)
    end
  end)

  it("does not keep a module whose path holds a tab, and keeps the others", function()
    local odd = dir .. "/ta\tb"
    assert(fileio.mkdirs(odd .. "/msal"))
    files.write(odd .. "/msal/zz_tab.lua", "return 'tab'\n")
    local script = files.read(dir .. "/probe.lua"):gsub('assert%(require%("zz_other"%) == "other"%)',
      ("package.path = %q .. package.path; assert(require('msal.zz_tab') == 'tab')"):format(odd .. "/?.lua;"))
    files.write(dir .. "/probe.lua", script)
    assert.same({ hits = 0, compiled = "msal.zz_probe,msal.zz_tab", value = "111", saved = "true" }, (probe()))
    assert.same({ hits = 1, compiled = "msal.zz_tab", value = "111", saved = "true" }, (probe()))
  end)

  it("is off with MSAL_BYTECODE_CACHE=0 or without a cache home", function()
    for _, vars in ipairs({ { MSAL_BYTECODE_CACHE = "0" }, { XDG_CACHE_HOME = false, HOME = false } }) do
      local r, rc, err = probe(vars)
      assert.equal(0, rc, err)
      assert.same({ hits = "off", compiled = "-", value = "111", saved = "-" }, r)
      assert.is_nil(fileio.stat(xdg), cjson.encode(vars))
    end
    -- HOME alone is a cache home, ~/.cache, and so it is when XDG_CACHE_HOME
    -- is relative (the XDG spec: ignored)
    for _, xdg_value in ipairs({ false, "relative/cache" }) do
      sh("rm -rf " .. q(dir .. "/home"))
      local r = probe({ XDG_CACHE_HOME = xdg_value })
      assert.equal("true", r.saved)
      assert.equal(octal("600"), fileio.stat(dir .. "/home/.cache/msal/luac/" .. INTERPRETER).mode)
    end
  end)

  it("raises for a module that does not compile, as Lua's own searcher does", function()
    files.write(module_file, "return {\n")
    local _, rc, err = probe()
    assert.not_equal(0, rc)
    assert.matches("error loading module 'msal.zz_probe' from file '" .. module_file .. "'", err, 1, true)
    write_module("111")
    assert.equal("111", probe().value)
  end)

  it("is used by bin/msal, except under --verbose", function()
    local env = "env -u MSAL_BYTECODE_CACHE XDG_CACHE_HOME=" .. q(xdg) .. " "
    local out, rc, err = proc.run(env .. proc.LUA .. " " .. q(BIN) .. " --version --verbose")
    assert.equal(0, rc, err)
    assert.matches("^msal %(lua%-msal%) ", out)
    assert.is_nil(fileio.stat(luac))
    local again
    again, rc, err = proc.run(env .. proc.LUA .. " " .. q(BIN) .. " --version")
    assert.equal(0, rc, err)
    assert.equal(out, again)
    local content = assert(files.read(luac))
    assert.is_truthy(content:find("/lua/msal/init.lua\t", 1, true), "msal's init.lua is not in the file")
    again, rc, err = proc.run(env .. proc.LUA .. " " .. q(BIN) .. " --version")
    assert.equal(0, rc, err)
    assert.equal(out, again)
  end)

  it("serves its modules before a searcher luarocks.loader put first, and after package.preload", function()
    -- luarocks.loader's searcher loads the files it finds itself: behind it,
    -- the cache would never serve a module; msal.zz_other is a file too
    files.write(dir .. "/lua/msal/zz_other.lua", "return 'file'\n")
    proc.lua_script(dir .. "/probe_rocks.lua", ([[
      package.path = %q .. package.path
      local rocks_calls = 0
      table.insert(package.searchers or package.loaders, 1, function(name)
        if name ~= "msal.zz_probe" then return nil end
        rocks_calls = rocks_calls + 1
        return loadfile((package.searchpath(name, package.path)))
      end)
      local cache = require("msal.cli.bytecode").install()
      local value = require("msal.zz_probe").value
      package.preload["msal.zz_other"] = function() return "preloaded" end
      local preloaded = require("msal.zz_other")
      io.write(cache.hits, " ", rocks_calls, " ", value, " ", preloaded, " ", tostring(cache.save()), "\n")
    ]]):format(dir .. "/lua/?.lua;"))
    local out, rc, err = run_script("probe_rocks.lua")
    assert.equal(0, rc, err)
    assert.equal("0 0 111 preloaded true\n", out)
    out, rc, err = run_script("probe_rocks.lua")
    assert.equal(0, rc, err)
    assert.equal("1 0 111 preloaded false\n", out)
  end)
end)
