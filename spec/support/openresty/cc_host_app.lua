-- The nginx side of spec/hosts/openresty_confidential_spec.lua: a daemon's
-- ConfidentialClientApplication per worker over msal.openresty, app tokens
-- in a shared dictionary that all workers share.
local cjson = require("cjson.safe")
local mo = require("msal.openresty")

local M = {}

local app

--- init_worker: the app of `client` (its secret `secret`) at `authority`.
function M.init(authority, client, secret)
  app = mo.ConfidentialClientApplication.new({
    auth = { client_id = client, authority = authority, client_secret = secret },
    cache = mo.shared_dict_cache("cc_tokens", { lock_dict = "cc_locks", partition = "app" }),
  })
end

--- GET /app_token[?scope=…]: an app token for Microsoft Graph unless scope
-- names another resource's .default.
function M.token()
  local scope = ngx.var.arg_scope or "https://graph.microsoft.com/.default"
  local result, err = app:acquire_token_by_client_credential({ scopes = { scope } }):await()
  ngx.header["content-type"] = "application/json"
  ngx.header["x-worker"] = ngx.worker.pid()
  if not result then
    ngx.status = 500
    return ngx.say(cjson.encode({ name = err.name, error = err.error_code, message = err.error_message }))
  end
  ngx.say(cjson.encode({ access_token = result.access_token, from_cache = result.from_cache,
    tenant_id = result.tenant_id }))
end

return M
