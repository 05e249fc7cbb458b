-- The protected API of examples/openresty_api: access_by_lua lets through
-- only requests whose bearer token msal.jwt.verify accepts.
local cjson = require("cjson.safe")

local M = {}

local jwt, opts

--- Once per worker: the verification options. The same table is passed on
-- every request, so it is checked once and its keys stay cached.
function M.init()
  jwt = require("msal.openresty").jwt
  opts = {
    authority = os.getenv("MSAL_AUTHORITY"),
    protocol_mode = os.getenv("MSAL_PROTOCOL_MODE"),
    audience = os.getenv("MSAL_AUDIENCE"),
    required_scopes = os.getenv("MSAL_SCOPE") and { os.getenv("MSAL_SCOPE") } or nil,
  }
end

-- RFC 6750 section 3: no token is 401 without an error code, a bad one
-- 401 invalid_token, a good one without the scope 403 insufficient_scope.
local function refuse(status, code, description)
  local challenge = 'Bearer realm="api"'
  if code then challenge = challenge .. (', error="%s", error_description="%s"'):format(code, description) end
  ngx.header["WWW-Authenticate"] = challenge
  ngx.header["Content-Type"] = "application/json"
  ngx.status = status
  ngx.say(cjson.encode({ error = code or "unauthorized", error_description = description }))
  return ngx.exit(status)
end

--- access_by_lua: the request goes on only with a valid token; its claims
-- are left in ngx.ctx for the content handler.
function M.authorize()
  local token = (ngx.var.http_authorization or ""):match("^[Bb]earer +(%S+)$")
  if not token then return refuse(401, nil, "a bearer token is required") end
  local claims, err = jwt.verify(token, opts):await()
  if not claims then
    -- the error says which check failed; the token itself is never logged
    ngx.log(ngx.NOTICE, "bearer token refused: ", tostring(err))
    if err.error_code == "insufficient_scope" then
      return refuse(403, "insufficient_scope", "the token lacks the required scope")
    end
    if err.name ~= "TokenValidationError" or err.error_code == "jwks_unavailable" then
      return refuse(503, "temporarily_unavailable", "the token cannot be checked now")
    end
    return refuse(401, "invalid_token", err.error_code)
  end
  ngx.ctx.claims = claims
end

--- content_by_lua: answers with who called.
function M.hello()
  local c = ngx.ctx.claims
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode({ hello = c.sub, client = c.azp or c.client_id, scopes = c.scp or c.scope }))
end

return M
