-- The public API, found by walking the loaded modules: what docs_spec checks
-- for doc comments and LuaLS annotations (types/). Returns a list of
-- { name = "PublicClientApplication:acquire_token_silent", fn = function }.
local M = {}

local function add(out, seen, prefix, sep, t)
  local keys = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and k:sub(1, 1) ~= "_" then keys[#keys + 1] = k end
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

function M.list()
  local msal = require("msal")
  local out, seen = {}, {}
  add(out, seen, "msal", ".", msal)
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
  for _, mod in ipairs({ "msal.openresty", "msal.nvim", "msal.credential_chain", "msal.jwt" }) do
    local okr, t = pcall(require, mod)
    if okr and type(t) == "table" then add(out, seen, mod, ".", t) end
  end
  return out
end

return M
