-- The public API, found by walking the loaded modules: what docs_spec checks
-- for doc comments and LuaLS annotations (types/), and what scripts/gen-types
-- annotates. Returns a list of { name = "PublicClientApplication:acquire_token_silent",
-- fn = function, method = true when called with `:`, module = the file whose
-- LDoc documents it when the function is made elsewhere (a host's `new`) }.
local M = {}

local function add(out, seen, prefix, sep, t, only)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" and (not only or only[k]) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local name = prefix .. sep .. k
    if not seen[name] then
      seen[name] = true
      out[#out + 1] = { name = name, fn = t[k], method = sep == ":" }
    end
  end
end

local function methods_of(obj)
  local mt = getmetatable(obj)
  local idx = mt and mt.__index
  if type(idx) == "table" then return idx end
  return {}
end

-- The constructor tables a module exports (`msal.PublicClientApplication.new`,
-- `msal.nvim.jwt.verify`): functions one level down, documented in the module's
-- file with `@function PublicClientApplication.new` when made elsewhere.
local function add_nested(out, seen, prefix, t, file, skip)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "table" and k:match("^%a") and getmetatable(v) == nil and not (skip and skip[k]) then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local n = #out
    add(out, seen, prefix .. "." .. k, ".", t[k])
    for i = n + 1, #out do out[i].module = file; out[i].short = k .. "." .. out[i].name:match("[^.]+$") end
  end
end

-- msal.nvim reads `vim.loop` when loaded; outside Neovim (generating the
-- stubs, docs_spec) a stand-in lets it load so its functions can be listed.
-- Nothing is called, and the module is unloaded again.
local function require_nvim()
  if rawget(_G, "vim") ~= nil then return pcall(require, "msal.nvim") end
  rawset(_G, "vim", { loop = {} })
  local ok, t = pcall(require, "msal.nvim")
  package.loaded["msal.nvim"] = nil
  rawset(_G, "vim", nil)
  return ok, t
end

function M.list()
  local msal = require("msal")
  local out, seen = {}, {}
  local init = package.searchpath("msal", package.path)
  add(out, seen, "msal", ".", msal)
  -- classes msal loads on first use (msal.lazy): their `new` read through
  local function loaded(class) return { new = class.new } end
  add_nested(out, seen, "msal", { PublicClientApplication = msal.PublicClientApplication,
    ConfidentialClientApplication = loaded(msal.ConfidentialClientApplication),
    ManagedIdentityApplication = loaded(msal.ManagedIdentityApplication), Promise = msal.Promise }, init)
  local auth = { client_id = "00000000-0000-0000-0000-000000000001",
    authority = "https://login.microsoftonline.com/common" }
  local ok, pca = pcall(msal.PublicClientApplication.new, { auth = auth })
  if ok and pca then
    add(out, seen, "PublicClientApplication", ":", methods_of(pca))
    local cache = pca.get_token_cache and pca:get_token_cache()
    if cache then add(out, seen, "TokenCache", ":", methods_of(cache)) end
  end
  local cauth = { client_id = auth.client_id, authority = auth.authority, client_secret = "x" }
  local okc, cca = pcall(msal.ConfidentialClientApplication.new, { auth = cauth })
  if okc and cca then add(out, seen, "ConfidentialClientApplication", ":", methods_of(cca)) end
  local okm, mia = pcall(msal.ManagedIdentityApplication.new, {})
  if okm and mia then add(out, seen, "ManagedIdentityApplication", ":", methods_of(mia)) end
  add(out, seen, "Promise", ":", methods_of(msal.Promise.resolve(nil)))
  for _, mod in ipairs({ "msal.openresty", "msal.nvim", "msal.credential_chain", "msal.jwt" }) do
    local okr, t
    if mod == "msal.nvim" then okr, t = require_nvim() else okr, t = pcall(require, mod) end
    if okr and type(t) == "table" then
      add(out, seen, mod, ".", t)
      add_nested(out, seen, mod, t, package.searchpath(mod, package.path), { steps = true })
    end
  end
  -- the objects credential_chain.new and jwt.verifier return: only the
  -- methods meant for callers (the rest are the object's own steps)
  local chain = require("msal.credential_chain").new({ env = function() return nil end, interactive = "never",
    cache = { location = "memory" } })
  add(out, seen, "CredentialChain", ":", methods_of(chain), { get_token = true })
  local okv, verifier = pcall(require("msal.jwt").verifier, { audience = "api",
    authority = "https://login.microsoftonline.com/common" })
  if okv and verifier then add(out, seen, "JwtVerifier", ":", methods_of(verifier), { verify = true }) end
  return out
end

local files = {}
local function lines_of(path)
  if files[path] then return files[path] end
  local f = assert(io.open(path, "r"))
  local t = {}
  for l in (f:read("a") .. "\n"):gmatch("(.-)\n") do t[#t + 1] = l end
  f:close()
  files[path] = t
  return t
end

-- The comment lines above line n (n excluded) back to the `---` that opens
-- an LDoc block; nil when the lines right above are no LDoc comment.
local function block_above(ls, n)
  local i = n - 1
  while i > 0 and ls[i]:match("^%s*$") do i = i - 1 end
  local last = i
  while i > 0 and ls[i]:match("^%s*%-%-") and not ls[i]:match("^%s*%-%-%-") do i = i - 1 end
  if i < 1 or not ls[i]:match("^%s*%-%-%-") or last < 1 then return nil end
  local out = {}
  for j = i, last do out[#out + 1] = ls[j] end
  return out
end

-- The LDoc block that documents `@function name` in file, anywhere.
local function block_named(ls, name)
  for n, l in ipairs(ls) do
    if l:match("^%s*%-%-%s*@function%s+(%S+)") == name then
      local j = n
      while ls[j + 1] and ls[j + 1]:match("^%s*%-%-") do j = j + 1 end
      return block_above(ls, j + 1)
    end
  end
  return nil
end

--- Where e is defined and the LDoc block that documents it:
-- `{file, line, lines = {comment lines}}`; lines is nil without one.
function M.source(e)
  local info = debug.getinfo(e.fn, "S")
  if info.what ~= "Lua" or info.source:sub(1, 1) ~= "@" then return { what = info.what } end
  local file = info.source:sub(2)
  local lines = block_above(lines_of(file), info.linedefined)
  if e.module and e.short then
    -- a host's constructor is made by a helper elsewhere and documented
    -- where it is exported, with `@function`
    lines = block_named(lines_of(e.module), e.short) or lines
  end
  return { file = file, line = info.linedefined, lines = lines }
end

--- The LDoc block of e, parsed: `{summary, params = {{name, type, opt,
-- default, desc}}, returns = {{type, desc, group}}, raises}`; nil without one.
-- `type` is nil where the tag gives none (`@param`, `@return`).
function M.doc(e)
  local src = M.source(e)
  if not src.lines then return nil end
  local d = { params = {}, returns = {}, text = {} }
  local last
  for _, l in ipairs(src.lines) do
    local body = l:gsub("^%s*%-%-%-?%s?", "")
    local tag, mod, rest = body:match("^%s*@(%w+)(%b[])%s*(.*)$")
    if not tag then tag, rest = body:match("^%s*@(%w+)%s*(.*)$") end
    if tag == "tparam" or tag == "param" then
      local ty, name, desc
      if tag == "tparam" then ty, name, desc = rest:match("^(%S+)%s+(%S+)%s*(.*)$")
      else name, desc = rest:match("^(%S+)%s*(.*)$") end
      last = { name = name or rest, type = ty, desc = desc or "", opt = mod and mod:find("opt") ~= nil,
        default = mod and mod:match("opt=([^%]]*)") }
      d.params[#d.params + 1] = last
    elseif tag == "treturn" or tag == "return" then
      local ty, desc
      if tag == "treturn" then ty, desc = rest:match("^(%S+)%s*(.*)$") else desc = rest end
      last = { type = ty, desc = desc or "", group = mod and tonumber(mod:match("%d+")) }
      d.returns[#d.returns + 1] = last
    elseif tag then
      last = nil
      if tag == "raise" then d.raises = rest end
    elseif last then
      last.desc = (last.desc .. " " .. body:gsub("^%s+", "")):gsub("^ ", "")
    else
      d.text[#d.text + 1] = body
    end
  end
  d.summary = table.concat(d.text, " "):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  return d
end

return M
