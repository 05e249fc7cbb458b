-- The Lua side of examples/openresty/nginx.conf: one application per worker
-- (msal.openresty), the user's home_account_id in a cookie after sign-in,
-- and a downstream call with the token acquire_token_silent returns.
local cjson = require("cjson.safe")
local msal = require("msal")
local mo = require("msal.openresty")

local M = {}

local app
local COOKIE = "msal_account"

function M.init()
  app = mo.PublicClientApplication.new({
    auth = {
      client_id = assert(os.getenv("MSAL_CLIENT_ID"), "set MSAL_CLIENT_ID"),
      authority = os.getenv("MSAL_AUTHORITY") or "https://login.microsoftonline.com/organizations",
      redirect_uri = os.getenv("MSAL_REDIRECT_URI") or "http://localhost:8080/auth/callback",
    },
    cache = mo.shared_dict_cache("msal_tokens", { lock_dict = "msal_locks" }),
    -- the redirect may come back to another worker
    system = { state_store = require("msal.state_store").shared("msal_locks") },
  })
end

local function scopes() return { os.getenv("MSAL_SCOPE") or "User.Read" } end

local function json(status, doc)
  ngx.status = status
  ngx.header["content-type"] = "application/json"
  ngx.say(cjson.encode(doc))
  return ngx.exit(status)
end

function M.login()
  local r, err = app:login_redirect({ scopes = scopes() }):await()
  if not r then return json(500, { error = err.error_code, message = err.error_message }) end
  return ngx.redirect(r.url)
end

function M.callback()
  local result, err = app:handle_redirect_promise(ngx.var.request_uri):await()
  if not result then
    return json(400, { error = err and err.error_code or "no_redirect", message = err and err.error_message })
  end
  -- the session: which cached account is this browser's (sign or encrypt
  -- it in a real app)
  ngx.header["set-cookie"] = COOKIE .. "=" .. ngx.escape_uri(result.account.home_account_id)
    .. "; Path=/; HttpOnly; SameSite=Lax"
  return ngx.redirect("/api/me")
end

function M.logout()
  local hid = ngx.var["cookie_" .. COOKIE]
  local account = hid and app:get_account({ home_account_id = ngx.unescape_uri(hid) })
  local r = app:logout_redirect({ account = account }):await()
  ngx.header["set-cookie"] = COOKIE .. "=; Path=/; Max-Age=0"
  return ngx.redirect(r and r.url or "/")
end

function M.call_api()
  local hid = ngx.var["cookie_" .. COOKIE]
  local account = hid and app:get_account({ home_account_id = ngx.unescape_uri(hid) })
  if not account then return ngx.redirect("/login") end
  local result, err = app:acquire_token_silent({ scopes = scopes(), account = account }):await()
  if not result then
    if msal.is_interaction_required(err) then
      -- a browser goes to sign in again; an API client gets a 401 it can act on
      if (ngx.var.http_accept or ""):find("text/html", 1, true) then return ngx.redirect("/login") end
      return json(401, { error = "interaction_required", claims = err.claims })
    end
    return json(502, { error = err.error_code, message = err.error_message })
  end
  -- the downstream call, over the same cosocket transport msal uses
  local api = (os.getenv("MSAL_API_URL") or "https://graph.microsoft.com/v1.0") .. ngx.var.uri:gsub("^/api", "")
  local res, herr = mo.transport():send({ method = "GET", url = api,
    headers = { authorization = "Bearer " .. result.access_token, accept = "application/json" } }):await()
  if not res then return json(502, { error = herr.kind, message = herr.message }) end
  ngx.status = res.status
  ngx.header["content-type"] = res.headers["content-type"]
  ngx.print(res.body)
end

return M
