--- The device code flow (RFC 8628), as MSAL runs it: ask the authority for
-- a code, show it through the caller's callback, then poll the token
-- endpoint at the server's interval until the user finishes, declines, the
-- code expires or the caller cancels. Waiting is a loop timer, so nothing
-- blocks.
-- @module msal.flows.device_code
local Promise = require("msal.promise")
local loop = require("msal.loop")
local authority = require("msal.authority")
local core = require("msal.core")
local errors = require("msal.errors")
local network = require("msal.network")
local request = require("msal.request")
local refresh = require("msal.flows.refresh")

local try = errors.try

local device_code = {}

local GRANT = "urn:ietf:params:oauth:grant-type:device_code"

local function sleep(ms)
  return Promise.new(function(resolve) loop.set_timeout(ms, resolve) end)
end

-- Entra's discovery documents name no device endpoint for every cloud; its
-- place is fixed next to the token endpoint.
local function endpoint_of(auth, metadata)
  if metadata.device_authorization_endpoint then return metadata.device_authorization_endpoint end
  if auth.kind ~= "oidc" then
    return (metadata.token_endpoint:gsub("/token$", "/devicecode"))
  end
  return nil
end

-- Seconds from the server, within sane bounds: an interval that is NaN,
-- negative, zero or a word once made the client poll in a tight loop, and a
-- huge one would never poll. Missing or unusable: the default.
local function seconds(v, default, lo, hi)
  v = tonumber(v)
  if not v or v ~= v or v <= 0 then return default end
  return math.min(math.max(v, lo), hi)
end

local INTERVAL_DEFAULT, INTERVAL_MIN, INTERVAL_MAX = 5, 1, 60
local EXPIRES_DEFAULT, EXPIRES_MIN, EXPIRES_MAX = 900, 1, 86400

--- What the callback receives, in RFC 8628's names.
local function info_of(doc)
  return {
    user_code = doc.user_code, device_code = doc.device_code,
    verification_uri = doc.verification_uri or doc.verification_url,
    verification_uri_complete = doc.verification_uri_complete,
    expires_in = seconds(doc.expires_in, EXPIRES_DEFAULT, EXPIRES_MIN, EXPIRES_MAX),
    interval = seconds(doc.interval, INTERVAL_DEFAULT, INTERVAL_MIN, INTERVAL_MAX),
    message = doc.message or ("To sign in, open " .. tostring(doc.verification_uri or doc.verification_url) ..
      " and enter the code " .. tostring(doc.user_code)),
  }
end

--- Runs the flow. The server's `interval` is taken within [1, 60] s (5
-- when missing or unusable) and its `expires_in` within [1, 86400] s (900).
-- @tparam table app
-- @tparam table req `{scopes, device_code_callback(info), claims, timeout (s:
--   then ClientAuthError user_timeout_reached), authority, cancel (set
--   req.cancel = true to stop polling), correlation_id}`
-- @treturn promise of the result
function device_code.acquire(app, req)
  return Promise.async(function()
    if type(req) ~= "table" or type(req.device_code_callback) ~= "function" then
      error(errors.ClientConfigurationError("invalid_request",
        "acquire_token_by_device_code needs request.device_code_callback(info)"), 0)
    end
    if req.timeout ~= nil and not (type(req.timeout) == "number" and req.timeout > 0) then
      error(errors.ClientConfigurationError("invalid_request", "request.timeout must be a number of seconds above 0"), 0)
    end
    local scopes = try(request.check_scopes(req.scopes, true))
    try(request.single_resource(scopes, app.authority.kind))
    local claims = try(request.merge_claims(req.claims, app.config.auth.client_capabilities))
    local auth = app.authority
    if req.authority ~= nil then auth = try(authority.for_app(app, req.authority)) end
    local metadata = try(authority.resolve(app, auth):await())
    local url = endpoint_of(auth, metadata)
    if not url then
      error(errors.ClientConfigurationError("device_code_unsupported",
        "the authority publishes no device_authorization_endpoint"), 0)
    end
    local scope_list = request.with_defaults(scopes, nil, app.default_scopes)
    local correlation_id = req.correlation_id or core.crypto.uuid4()
    local headers = refresh.headers(correlation_id)
    local res = try(network.send(network.transport(app), { method = "POST", url = url, headers = headers,
      body = network.form_encode({ { "client_id", app.client_id }, { "scope", table.concat(scope_list, " ") },
        { "claims", claims } }), timeout_ms = app.config.system.http_timeout_ms }):await())
    local doc = try(network.json(res))
    if res.status ~= 200 then error(errors.from_server(doc, res.status), 0) end
    if type(doc.device_code) ~= "string" or type(doc.user_code) ~= "string" then
      error(errors.ClientAuthError("invalid_response", "the device authorization answer has no device_code or user_code"), 0)
    end
    local info = info_of(doc)
    local ok, cb_err = pcall(req.device_code_callback, info)
    if not ok then
      error(errors.is_error(cb_err) and cb_err or errors.ClientAuthError("device_code_callback_failed", tostring(cb_err)), 0)
    end
    local now_ms = loop.now_ms
    -- two ends: the code's (the server's expires_in) and the caller's
    local expires = now_ms() + 1000 * info.expires_in
    local gives_up = req.timeout and now_ms() + 1000 * req.timeout or math.huge
    local interval = info.interval
    local ctx = { env = auth.cache_env, realm = auth.realm or "", scopes_list = scope_list, grant = "device_code",
      metadata = metadata, auth = auth, correlation_id = correlation_id }
    while true do
      sleep(math.max(0, math.min(interval * 1000, math.min(expires, gives_up) - now_ms()))):await()
      if req.cancel then
        error(errors.ClientAuthError("device_code_polling_cancelled", "the caller cancelled the device code flow"), 0)
      end
      if now_ms() >= gives_up then
        error(errors.ClientAuthError("user_timeout_reached",
          ("the user did not finish signing in within request.timeout (%g s)"):format(req.timeout)), 0)
      end
      if now_ms() >= expires then
        error(errors.ClientAuthError("device_code_expired", "the device code expired before the user signed in"), 0)
      end
      ctx.started = app.clock()
      local r, err = refresh.post(app, metadata.token_endpoint, network.form_encode({
        { "client_id", app.client_id }, { "grant_type", GRANT }, { "device_code", info.device_code },
        { "client_info", auth.kind ~= "oidc" and "1" or nil }, { "claims", claims },
      }), headers):await()
      if r then
        return try(refresh.finish(app, r, ctx))
      end
      if err.error_code == "slow_down" then
        interval = interval + 5 -- RFC 8628 3.5
      elseif err.error_code == "expired_token" then
        error(errors.ClientAuthError("device_code_expired", "the device code expired before the user signed in",
          { correlation_id = err.correlation_id }), 0)
      elseif err.error_code ~= "authorization_pending" then
        error(err, 0) -- declined (authorization_declined / access_denied) and every other answer
      end
    end
  end)
end

return device_code
