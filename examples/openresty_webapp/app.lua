-- The Lua side of examples/openresty_webapp/nginx.conf: a confidential
-- client per worker (msal.openresty), the code flow with PKCE run by the
-- app itself (get_auth_code_url, acquire_token_by_code), the user's
-- home_account_id in a cookie, and a downstream call with the token
-- acquire_token_silent returns.
local cjson = require("cjson.safe")
local msal = require("msal")
local mo = require("msal.openresty")
local crypto = require("msal.core").crypto

local M = {}

local app
local COOKIE = "msal_account"
local SIGNIN_TTL_S = 600

local function redirect_uri() return os.getenv("MSAL_REDIRECT_URI") or "http://localhost:8082/auth/callback" end
local function scopes() return { os.getenv("MSAL_SCOPE") or "User.Read" } end

function M.init()
  app = mo.ConfidentialClientApplication.new({
    auth = {
      client_id = assert(os.getenv("MSAL_CLIENT_ID"), "set MSAL_CLIENT_ID"),
      client_secret = assert(os.getenv("MSAL_CLIENT_SECRET"), "set MSAL_CLIENT_SECRET"),
      authority = os.getenv("MSAL_AUTHORITY") or "https://login.microsoftonline.com/organizations",
      redirect_uri = redirect_uri(),
    },
    cache = mo.shared_dict_cache("msal_tokens", { lock_dict = "msal_locks" }),
  })
end

local function json(status, doc)
  ngx.status = status
  ngx.header["content-type"] = "application/json"
  ngx.say(cjson.encode(doc))
  return ngx.exit(status)
end

-- To the authority, with a fresh PKCE pair, state and nonce; the verifier
-- and nonce wait in a shared dictionary, since the browser may come back
-- to another worker.
function M.login()
  local pkce = msal.pkce()
  local state, nonce = crypto.random_string(32), crypto.random_string(32)
  local ok = ngx.shared.msal_signins:set(state, cjson.encode({ verifier = pkce.verifier, nonce = nonce }), SIGNIN_TTL_S)
  if not ok then return json(503, { error = "too_many_sign_ins" }) end
  local url, err = app:get_auth_code_url({ scopes = scopes(), redirect_uri = redirect_uri(), state = state,
    nonce = nonce, code_challenge = pkce.challenge, code_challenge_method = "S256" }):await()
  if not url then return json(500, { error = err.error_code, message = err.error_message }) end
  return ngx.redirect(url)
end

-- Back from the authority: a state this app issued, used once, then the
-- code redeemed with the verifier and the secret.
function M.callback()
  local args = ngx.req.get_uri_args()
  if type(args.state) ~= "string" or type(args.code) ~= "string" then
    return json(400, { error = args.error or "invalid_request", message = args.error_description })
  end
  local signins = ngx.shared.msal_signins
  local saved = signins:get(args.state)
  signins:delete(args.state)
  saved = saved and cjson.decode(saved)
  if not saved then return json(400, { error = "unknown_state" }) end
  local result, err = app:acquire_token_by_code({ code = args.code, code_verifier = saved.verifier,
    nonce = saved.nonce, redirect_uri = redirect_uri(), scopes = scopes() }):await()
  if not result then return json(400, { error = err.error_code, message = err.error_message }) end
  -- the session: which cached account is this browser's (sign or encrypt
  -- it in a real app)
  ngx.header["set-cookie"] = COOKIE .. "=" .. ngx.escape_uri(result.account.home_account_id)
    .. "; Path=/; HttpOnly; SameSite=Lax"
  return ngx.redirect("/api/me")
end

function M.call_api()
  local hid = ngx.var["cookie_" .. COOKIE]
  local account = hid and app:get_account({ home_account_id = ngx.unescape_uri(hid) })
  if not account then return ngx.redirect("/login") end
  local result, err = app:acquire_token_silent({ scopes = scopes(), account = account }):await()
  if not result then
    if msal.is_interaction_required(err) then
      if (ngx.var.http_accept or ""):find("text/html", 1, true) then return ngx.redirect("/login") end
      return json(401, { error = "interaction_required", claims = err.claims })
    end
    return json(502, { error = err.error_code, message = err.error_message })
  end
  local api = (os.getenv("MSAL_API_URL") or "https://graph.microsoft.com/v1.0") .. ngx.var.uri:gsub("^/api", "")
  local res, herr = mo.transport():send({ method = "GET", url = api,
    headers = { authorization = "Bearer " .. result.access_token, accept = "application/json" } }):await()
  if not res then return json(502, { error = herr.kind, message = herr.message }) end
  ngx.status = res.status
  ngx.header["content-type"] = res.headers["content-type"]
  ngx.print(res.body)
end

return M
