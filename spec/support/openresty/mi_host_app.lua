-- The nginx side of spec/hosts/openresty_mi_spec.lua: a managed identity
-- application per worker over msal.openresty (cosockets, nginx timers for
-- IMDS's retry delays), and the handler the spec's location calls.
local cjson = require("cjson.safe")
local mo = require("msal.openresty")
local retry = require("msal.managed_identity.retry")

local M = {}

local apps = {}

--- init_worker: one app for IMDS (tokens in a shared dictionary), one for Azure Arc (its key files in
-- token_dir), both at the fake endpoints of `url`.
function M.init(url, token_dir)
  -- MSAL's delays at 1/100, as in spec/managed_identity_spec.lua
  retry.delays = { imds_min = 10, imds_max = 40, imds_delta = 20, imds_gone = 30, default = 10 }
  apps.imds = mo.ManagedIdentityApplication.new({ cache = mo.shared_dict_cache("mi_tokens",
      { partition = "app", lock_dict = "mi_locks" }),
    system = { env = { AZURE_POD_IDENTITY_AUTHORITY_HOST = url } } })
  apps.arc = mo.ManagedIdentityApplication.new({ system = { arc_token_dir = token_dir,
    env = { IDENTITY_ENDPOINT = url .. "/arc/token", IMDS_ENDPOINT = url } } })
end

--- GET /mi?source=imds|arc[&force=1][&resource=…]: a token (for Key Vault
-- unless resource names another).
function M.token()
  local args = ngx.req.get_uri_args()
  local result, err = apps[args.source]:acquire_token({ resource = args.resource or "https://vault.azure.net",
    force_refresh = args.force == "1" }):await()
  ngx.header["content-type"] = "application/json"
  ngx.header["x-worker"] = ngx.worker.pid()
  if not result then
    ngx.status = 500
    return ngx.say(cjson.encode({ name = err.name, error = err.error_code, source = err.source }))
  end
  ngx.say(cjson.encode({ access_token = result.access_token, from_cache = result.from_cache }))
end

return M
