-- Drives the Entra-like authority the test command starts (MSAL_TEST_ENTRA):
-- its control API, and a sign-in that seeds an app's cache the way the
-- interactive flows will (authorization code + PKCE, redeemed and stored by
-- the library's own token-response path).
local cjson = require("cjson")
local core = require("msal.core")
local network = require("msal.network")
local refresh = require("msal.flows.refresh")
local authority = require("msal.authority")
local request = require("msal.request")

local entra = {}

entra.TENANT = "00000000-0000-0000-bbbb-000000000002"
entra.UID = "00000000-0000-0000-aaaa-000000000001"

function entra.base()
  local b = os.getenv("MSAL_TEST_ENTRA")
  if not b then error("MSAL_TEST_ENTRA is not set: run the specs with `make test`, which starts the local providers", 2) end
  return b
end

local transport
local function http(method, path, body)
  transport = transport or require("msal.transport.curl").new()
  local res, err = transport:send({ method = method, url = entra.base() .. path,
    headers = { ["content-type"] = "application/json" }, body = body and cjson.encode(body) or nil }):await()
  assert(res, err and err.message)
  assert(res.status < 300, path .. " answered " .. res.status .. ": " .. tostring(res.body))
  return res.body ~= "" and cjson.decode(res.body) or nil
end

function entra.reset() return http("POST", "/__control/reset") end
function entra.next(entry) return http("POST", "/__control/next", entry) end
function entra.config(c) return http("POST", "/__control/config", c) end
function entra.requests(endpoint)
  return http("GET", "/__control/requests" .. (endpoint and ("?endpoint=" .. endpoint) or ""))
end

--- Signs the default user in for app: authorize (the server consents at
-- once), redeem the code with PKCE, store the answer.
function entra.sign_in(app, scopes)
  local auth = app.authority
  local metadata = assert(authority.resolve(app, auth):await())
  local pkce_verifier, challenge = core.crypto.pkce()
  local scope_list = request.with_defaults(scopes or { "User.Read" })
  local redirect = "http://localhost:8400/"
  local url = metadata.authorization_endpoint .. "?" .. network.form_encode({
    { "client_id", app.client_id }, { "response_type", "code" }, { "redirect_uri", redirect },
    { "scope", table.concat(scope_list, " ") }, { "state", "s1" }, { "code_challenge", challenge },
    { "code_challenge_method", "S256" }, { "client_info", "1" },
  })
  local res = assert(require("msal.network").transport(app):send({ method = "GET", url = url }):await())
  local loc = assert(res.headers.location, "authorize did not redirect")
  local code = assert(network.form_decode(loc:match("%?(.*)$")).code)
  local r = assert(refresh.post(app, metadata.token_endpoint, network.form_encode({
    { "client_id", app.client_id }, { "scope", table.concat(scope_list, " ") }, { "grant_type", "authorization_code" },
    { "code", code }, { "redirect_uri", redirect }, { "code_verifier", pkce_verifier }, { "client_info", "1" },
  }), refresh.headers("seed")):await())
  return assert(refresh.finish(app, r, { env = auth.cache_env, realm = auth.realm or "", scopes_list = scope_list,
    started = app.clock(), grant = "authorization_code", metadata = metadata, auth = auth, correlation_id = "seed" }))
end

--- The forms of the token requests of one grant type since the last reset.
function entra.grant_forms(grant_type)
  local forms = {}
  for _, r in ipairs(entra.requests("token")) do
    if r.form and r.form.grant_type == grant_type then forms[#forms + 1] = r.form end
  end
  return forms
end

--- How many refresh-token grants the authority has answered since its
-- last reset.
function entra.refresh_requests()
  return #entra.grant_forms("refresh_token")
end

--- A memory-cache app of client_id at authority with the default user
-- signed in; without access tokens when `expired`, so the next silent call
-- refreshes. Returns the app and the sign-in's result.
function entra.signed_in_app(client_id, authority, expired)
  local app = require("msal").PublicClientApplication.new({ auth = { client_id = client_id, authority = authority } })
  local r = entra.sign_in(app)
  if expired then
    local store = app:get_token_cache().store
    for _, k in ipairs(store:find("AccessToken", {})) do store:remove("AccessToken", k) end
  end
  return app, r
end

return entra
