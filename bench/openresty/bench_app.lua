-- The nginx side of bench/openresty_bench.lua: a shared dictionary holding
-- a 10,000-account cache (one partition per account, as msal.openresty's
-- shared_dict_cache keeps it), and two handlers: a silent hit, and the same
-- handler returning a constant.
local cjson = require("cjson")
local mo = require("msal.openresty")

local M = {}

local CLIENT_ID = "11111111-2222-3333-4444-555555555555"
local TENANT_ID = "00000000-0000-0000-bbbb-000000000002"
local AUTHORITY = "https://login.microsoftonline.com/" .. TENANT_ID
local SCOPES = { "api://res1/Data.Read" }

--- init_by_lua (master, before the fork): splits the generated cache by
-- home account into the dictionary.
function M.load(path)
  local f = assert(io.open(path, "rb"))
  local doc = cjson.decode(f:read("*a"))
  f:close()
  local parts = {}
  for section, entries in pairs(doc) do
    if section ~= "AppMetadata" then
      for key, e in pairs(entries) do
        local p = parts[e.home_account_id]
        if not p then
          p = { Account = {}, IdToken = {}, AccessToken = {}, RefreshToken = {}, AppMetadata = doc.AppMetadata }
          parts[e.home_account_id] = p
        end
        p[section][key] = e
      end
    end
  end
  local plugin = mo.shared_dict_cache("tokens")
  local dict, n = ngx.shared.tokens, 0
  for hid, p in pairs(parts) do
    local key = plugin:key_for(CLIENT_ID, hid)
    assert(dict:set(key, cjson.encode(p)))
    dict:incr(key .. "#v", 1, 0)
    n = n + 1
  end
  ngx.log(ngx.NOTICE, "bench: ", n, " partitions loaded")
end

local app
local accounts = {}

--- init_worker: this worker's app (no network: the authority's metadata is
-- given), keeping `parsed` partitions parsed (the plugin's default: 1000).
function M.init(parsed)
  app = mo.PublicClientApplication.new({
    auth = { client_id = CLIENT_ID, authority = AUTHORITY, authority_metadata = cjson.encode({
      issuer = AUTHORITY .. "/v2.0", token_endpoint = AUTHORITY .. "/oauth2/v2.0/token",
      authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    cache = mo.shared_dict_cache("tokens", { local_max_partitions = parsed }),
  })
end

local CONSTANT = string.rep("x", 1200)

-- The account a web app would keep in its session (here, per worker).
local function account_of(hid)
  local a = accounts[hid]
  if not a then
    a = app:get_account({ home_account_id = hid })
    accounts[hid] = a
  end
  return a
end

--- /hit?hid=…: the token of that account, from acquire_token_silent.
function M.hit()
  local a = account_of(ngx.var.arg_hid)
  local r, err = app:acquire_token_silent({ scopes = SCOPES, account = a }):await()
  if not r then
    ngx.status = 500
    return ngx.say(tostring(err))
  end
  ngx.say(r.access_token)
end

--- /constant?hid=…: the same handler's shape, with a constant for the token.
function M.constant()
  local _ = ngx.var.arg_hid
  ngx.say(CONSTANT)
end

return M
