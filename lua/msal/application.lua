--- PublicClientApplication: the object scripts, CLIs and plugins hold. Every
-- acquisition returns a promise (see msal.promise); errors reject it with
-- an error table from msal.errors, never `nil, err`.
-- @module msal.application
local Promise = require("msal.promise")
local authority = require("msal.authority")
local cache = require("msal.cache")
local config = require("msal.config")
local errors = require("msal.errors")
local events = require("msal.events")
local logger = require("msal.logger")
local lazy = require("msal.lazy")
local silent = require("msal.flows.silent")
local device_code = lazy.require("msal.flows.device_code")
local authorize = lazy.require("msal.flows.authorize")
local auth_code = require("msal.flows.auth_code")
local refresh = lazy.require("msal.flows.refresh")
local popup = lazy.require("msal.flows.popup")
local logout = lazy.require("msal.flows.logout")
local state_store = require("msal.state_store")
local request_options = require("msal.request_options")
local core = require("msal.core")

local application = {}

local App = {}
App.__index = App

local E = events.types
-- The events around each kind of flow (events.around).
local ACQUIRE = { start = E.ACQUIRE_TOKEN_START, ok = E.ACQUIRE_TOKEN_SUCCESS, fail = E.ACQUIRE_TOKEN_FAILURE }
local LOGIN = { start = E.LOGIN_START, ok = E.LOGIN_SUCCESS, fail = E.LOGIN_FAILURE }
local REDIRECT_END = { done = E.HANDLE_REDIRECT_END }
-- A login_redirect: started when its URL is made, done when the redirect
-- comes back (msal-browser's LOGIN_START, then LOGIN_SUCCESS or
-- LOGIN_FAILURE from handleRedirectPromise).
local LOGIN_BEGIN = { start = E.LOGIN_START, fail = E.LOGIN_FAILURE }
local LOGIN_END = { ok = E.LOGIN_SUCCESS, fail = E.LOGIN_FAILURE }

-- The token cache the configuration asks for. A built-in location's own
-- checks (file, redis) raise ClientConfigurationError: construction time.
local function make_cache(c, client_id)
  local kind, err = config.cache_kind(c.cache)
  if not kind then return nil, err end
  if kind == "plugin" then return cache.new(client_id, c.cache) end
  if kind == "memory" then return cache.new(client_id) end
  return cache.new(client_id, require("msal.cache." .. kind).new(c.cache))
end

-- The parts every application class shares (configuration, authority,
-- cache, logger, events), as an object with metatable mt. Raises the
-- ClientConfigurationError of a bad configuration at the caller's caller.
local function new_app(cfg, mt, opts)
  local c, err = config.normalize(cfg, opts)
  if not c then error(err, 3) end
  local auth
  auth, err = authority.parse(c.auth.authority, c.auth.protocol_mode)
  if not auth then error(err, 3) end
  local groups
  if c.auth.cloud_discovery_metadata then
    -- instance discovery answered in advance: its aliases and preferred
    -- cache host, and no discovery call
    groups, err = authority.parse_cloud_metadata(c.auth.cloud_discovery_metadata)
    if not groups then error(err, 3) end
    authority.apply_groups(auth, groups)
  end
  local tc
  tc, err = make_cache(c, c.auth.client_id)
  if not tc then error(err, 3) end
  if groups then
    local all = {}
    for _, g in ipairs(authority.CLOUDS) do all[#all + 1] = g end
    for _, g in ipairs(groups) do all[#all + 1] = g end
    tc:set_aliases(all)
  end
  local log = logger.new(c.system.logger)
  local wall = c.system.clock or core.time
  local self = setmetatable({
    config = c,
    client_id = c.auth.client_id,
    authority = auth,
    token_cache = tc,
    renewal_offset = c.system.token_renewal_offset,
    default_scopes = c.auth.oidc_options.default_scopes,
    log = log,
    clock = wall,
    events = events.new(log, wall),
    authorities = {},
    cloud_groups = groups,
    inflight = {},
    states = c.system.state_store or state_store.memory(wall),
    authority_type = auth.kind == "oidc" and "Generic" or auth.kind == "adfs" and "ADFS" or "MSSTS",
    -- a confidential client's (msal.client_credential); every token
    -- request carries it (flows/refresh.lua's post)
    credential = c.auth.credential,
  }, mt)
  return self
end
application.new_app = new_app

--- Makes a public client application (scripts, CLIs, editor plugins).
-- Raises a ClientConfigurationError on a bad configuration.
-- @tparam table cfg `{auth = {client_id, authority, redirect_uri, protocol_mode,
--   known_authorities, authority_metadata, client_capabilities},
--   cache = {location = "memory"} | plugin, system = {token_renewal_offset,
--   logger = {level, pii, sink}, clock, transport, open_browser, loopback_timeout}}`
-- @treturn table the application
function application.new_public(cfg)
  local app = new_app(cfg, App) -- not a tail call: errors name the caller's line
  return app
end

-- The flows behind the public methods, each on a request already checked
-- against its method's keys (msal.request_options).
local run = {}

-- Checks req for method, then runs the method's flow. A bad request
-- rejects the promise with the ClientConfigurationError naming the key,
-- as every other bad input does.
-- (No varargs: LuaJIT does not compile them here, and this is on the path
-- of every cache hit.)
local function checked(self, method, req, extra)
  local r, err = request_options.check(method, req)
  if not r then return Promise.reject(err) end
  return run[method](self, r, extra)
end
-- Other application classes (msal.application.confidential) add their
-- flows to run and check their requests the same way.
application.run, application.checked = run, checked
-- The events of an acquisition (events.around).
application.ACQUIRE = ACQUIRE

run.acquire_token_silent = silent.acquire

--- Acquires a token silently: from the cache by MSAL's rules (default
-- scopes, granted-scope subsets, environment aliases, the account's realm,
-- renewal offset), else by redeeming a refresh token. `force_refresh` and
-- `claims` skip the cached token; `cache_lookup_policy`
-- (msal.CacheLookupPolicy) limits where to look. Concurrent calls that
-- need the same token share one token request.
-- @tparam table req `{scopes, account, claims, force_refresh,
--   cache_lookup_policy, refresh_token_expiration_offset, authority,
--   correlation_id, extra_query_parameters, extra_body_parameters}`
-- @treturn promise resolving the result table (`access_token`, `id_token`,
--   `id_token_claims` (from the cache: decoded on first read), `scopes`,
--   `expires_on`, `ext_expires_on`, `account`, `tenant_id`, `token_type`,
--   `from_cache`, `correlation_id`), rejecting
--   with InteractionRequiredAuthError when the user must interact
function App:acquire_token_silent(req)
  return checked(self, "acquire_token_silent", req)
end

function run.acquire_token_by_device_code(self, req)
  return self.events:around(device_code.acquire(self, req), "device_code", ACQUIRE)
end

--- Acquires a token with the device code flow: `req.device_code_callback(info)`
-- receives `user_code`, `device_code`, `verification_uri`,
-- `verification_uri_complete` (when sent), `expires_in`, `interval` and
-- `message`; the promise settles when the user finishes on another device.
-- Set `req.cancel = true` to stop polling.
-- @tparam table req `{scopes, device_code_callback, claims, timeout, cancel, authority, correlation_id}`
-- @treturn promise of the result
function App:acquire_token_by_device_code(req)
  return checked(self, "acquire_token_by_device_code", req)
end

local function begin_redirect(self, req, login)
  return authorize.begin(self, req, "redirect"):next(function(a)
    -- the redirect's events say login when a login_redirect began it
    a.ctx.login = login or nil
    -- the context outlives this process turn: the redirect may come back to
    -- another worker, so the state store holds it (10 minutes)
    self.states:put(a.key, a.ctx, 600)
    return { url = a.url, state = a.state }
  end)
end
run.acquire_token_redirect = begin_redirect

function run.login_redirect(self, req)
  return self.events:around(begin_redirect(self, req, true), "redirect", LOGIN_BEGIN)
end

--- Starts a redirect sign-in: resolves `{url, state}`; send the user to url
-- and pass what comes back to handle_redirect_promise. PKCE, state and nonce
-- are kept in the state store (`system.state_store`, in memory by default).
-- @tparam table req `{scopes, extra_scopes_to_consent, prompt, login_hint,
--   domain_hint, sid, max_age, state (the caller's, returned in the result),
--   claims, account, redirect_uri, response_mode ("query" | "form_post" |
--   "fragment"), authority, correlation_id, extra_query_parameters,
--   extra_body_parameters}`
-- @treturn Promise resolving to `{url, state}`: send the user to url
function App:acquire_token_redirect(req)
  return checked(self, "acquire_token_redirect", req)
end

--- Sign-in by redirect: acquire_token_redirect with the OpenID scopes.
-- Emits LOGIN_START now, and LOGIN_SUCCESS (payload: the result) or
-- LOGIN_FAILURE when handle_redirect_promise finishes it.
-- @tparam[opt] table req as acquire_token_redirect's
-- @treturn Promise resolving to `{url, state}`
function App:login_redirect(req)
  return checked(self, "login_redirect", req)
end

function run.acquire_token_popup(self, req)
  return self.events:around(popup.acquire(self, req), "popup", ACQUIRE)
end

function run.login_popup(self, req)
  return self.events:around(popup.acquire(self, req), "popup", LOGIN)
end

--- Acquires a token interactively in the system browser: a one-shot
-- loopback listener (127.0.0.1 / ::1) receives the redirect; PKCE, state and
-- nonce as always. `req.open_browser(url)`, else `system.open_browser(url)`
-- opens the browser (default: xdg-open / open / start);
-- `system.loopback_timeout` (s) bounds the wait (BrowserAuthError `timed_out`).
-- @tparam table req as acquire_token_redirect's, plus `success_template` and
--   `error_template` (the HTML the browser shows afterwards) and `open_browser`
-- @treturn Promise of the result
function App:acquire_token_popup(req)
  return checked(self, "acquire_token_popup", req)
end

--- Sign-in in the system browser: acquire_token_popup with the OpenID scopes.
-- @tparam[opt] table req as acquire_token_popup's
-- @treturn Promise of the result
function App:login_popup(req)
  return checked(self, "login_popup", req)
end

-- The state checked (known, not yet used) and the code redeemed, with
-- the events of an acquisition.
local function redeem_redirect(self, params)
  local key = authorize.state_key(params.state)
  local ctx = key and self.states:take(key)
  local p
  if not ctx then
    p = Promise.reject(errors.ClientAuthError("state_not_found",
      "the redirect's state is unknown, expired or was already used; nothing was redeemed"))
  elseif params.error then
    p = Promise.reject(errors.from_server(params))
  else
    p = authorize.redeem(self, ctx, params.code, params.state)
  end
  return self.events:around(p, "redirect", ctx and ctx.login and LOGIN_END or ACQUIRE)
end

--- Finishes a redirect: checks the state (known, not yet used), classifies
-- an error answer as MSAL does, redeems the code (once) and caches the
-- tokens. Resolves nil when the input is not a redirect response.
-- @tparam string|table input the redirect URL, its query string, or a table of parameters
--   (a form_post body)
-- @treturn Promise of the result, or of nil when input is no redirect response
function App:handle_redirect_promise(input)
  local params, err = authorize.params_of(input)
  if not params then return Promise.reject(err) end
  if params.state == nil or (params.code == nil and params.error == nil) then
    return Promise.resolve(nil)
  end
  local ev = self.events
  if ev.n > 0 then ev:emit(E.HANDLE_REDIRECT_START, "redirect") end
  return ev:around(redeem_redirect(self, params), "redirect", REDIRECT_END)
end

local INTERACTIONS = { popup = "acquire_token_popup", redirect = "acquire_token_redirect",
  device_code = "acquire_token_by_device_code" }

--- The silent-then-interactive pattern in one call: silent first, and only
-- on InteractionRequiredAuthError the interactive flow — `popup` or
-- `device_code` (resolve the token) or `redirect` (resolves `{url, state}`
-- to send the user to).
-- @tparam table req the request (as for acquire_token_silent, plus the
--   interactive flow's fields)
-- @tparam table opts `{interaction = "popup" | "device_code" | "redirect"}`
-- @treturn Promise of the result (redirect: of `{url, state}`)
function App:acquire_token(req, opts)
  local interaction = type(opts) == "table" and opts.interaction or nil
  if not INTERACTIONS[interaction] then
    return Promise.reject(errors.ClientConfigurationError("invalid_interaction",
      "acquire_token needs opts.interaction = \"popup\", \"redirect\" or \"device_code\""))
  end
  return checked(self, "acquire_token " .. interaction, req, INTERACTIONS[interaction])
end

-- Each flow gets its own keys of the request; a claims challenge from the
-- silent call goes to the interactive one. No account given: the active
-- account, when one is set.
local function silent_then(self, req, interactive)
  local silent_p
  local has_account = req.account ~= nil
  if not has_account then
    local ok, active = pcall(self.token_cache.get_active_account, self.token_cache)
    if not ok then return Promise.reject(active) end
    has_account = active ~= nil
  end
  if has_account then
    silent_p = silent.acquire(self, request_options.pick(req, "acquire_token_silent"))
  else
    silent_p = Promise.reject(errors.InteractionRequiredAuthError("no_account", "no account yet: sign-in needed"))
  end
  return silent_p:catch(function(err)
    if not errors.is_interaction_required(err) then return Promise.reject(err) end
    local ireq = request_options.pick(req, interactive)
    ireq.claims = err.claims or ireq.claims
    return run[interactive](self, ireq)
  end)
end
run["acquire_token popup"] = silent_then
run["acquire_token redirect"] = silent_then
run["acquire_token device_code"] = silent_then

-- A logout with its events: LOGOUT_START, then LOGOUT_SUCCESS (with the
-- request, as msal-browser: the URL holds the id token) or LOGOUT_FAILURE,
-- then LOGOUT_END.
local function with_logout_events(self, interaction, req, run_after)
  -- LOGOUT_START before the local sign-out's ACCOUNT_REMOVED
  if self.events.n > 0 then self.events:emit(E.LOGOUT_START, interaction, req) end
  return self.events:around(logout.begin(self, req, interaction):next(run_after), interaction, {
    ok = E.LOGOUT_SUCCESS, ok_payload = function() return req end, fail = E.LOGOUT_FAILURE, done = E.LOGOUT_END })
end

function run.logout_redirect(self, req)
  return with_logout_events(self, "redirect", req, function(r) return r end)
end

function run.logout_popup(self, req)
  return with_logout_events(self, "popup", req, function(r)
    if r.url then
      local open = req.open_browser or self.config.system.open_browser or popup.default_open_browser
      local ok, err = pcall(open, r.url)
      if not ok then
        return Promise.reject(errors.BrowserAuthError("popup_window_error",
          "the browser could not be opened: " .. tostring(err)))
      end
    end
    return r
  end)
end

--- Signs out for a web app: removes `req.account` and its tokens from the
-- cache (every account when none is given, as msal-browser does) and
-- resolves `{url}`, the authority's end-session URL to send the user to
-- (nil when the authority publishes none). The id token rides along as
-- `id_token_hint`.
-- @tparam[opt] table req `{account, post_logout_redirect_uri, logout_hint,
--   state, authority, correlation_id}`
-- @treturn promise of `{url}`
function App:logout_redirect(req)
  return checked(self, "logout_redirect", req)
end

--- Signs out on the desktop: as logout_redirect, then opens the end-session
-- URL with `req.open_browser` or `system.open_browser` so the browser's
-- session ends too. It does not wait for the browser.
-- @tparam[opt] table req as logout_redirect's, plus `open_browser(url)`
-- @treturn promise of `{url}`
function App:logout_popup(req)
  return checked(self, "logout_popup", req)
end

function run.acquire_token_by_refresh_token(self, req)
  return self.events:around(refresh.by_refresh_token(self, req), "silent", ACQUIRE)
end

--- Redeems a refresh token from elsewhere (a migration from another
-- library or store; msal-node's acquireTokenByRefreshToken) and caches the
-- answer, so that acquire_token_silent serves the account afterwards.
-- @tparam table req `{refresh_token, scopes, claims, authority,
--   correlation_id, extra_query_parameters, extra_body_parameters}`
-- @treturn promise of the result
function App:acquire_token_by_refresh_token(req)
  return checked(self, "acquire_token_by_refresh_token", req)
end

run.get_auth_code_url = auth_code.url

--- The authorize URL for an app that runs its own redirect handler
-- (msal-node's getAuthCodeUrl). PKCE is required: pass the challenge of
-- `msal.pkce()` and keep its verifier for acquire_token_by_code; `state`
-- and `nonce` are sent as given.
-- @tparam table req `{code_challenge, code_challenge_method ("S256"),
--   scopes, redirect_uri, state, nonce, prompt, login_hint, domain_hint,
--   sid, max_age, account, extra_scopes_to_consent, claims, response_mode,
--   authority, correlation_id, extra_query_parameters}`
-- @treturn promise of the URL
function App:get_auth_code_url(req)
  return checked(self, "get_auth_code_url", req)
end

function run.acquire_token_by_code(self, req)
  return self.events:around(auth_code.redeem(self, req), "silent", ACQUIRE)
end

--- Redeems the code an app's own redirect handler received (msal-node's
-- acquireTokenByCode) and caches the tokens.
-- @tparam table req `{code, code_verifier, redirect_uri, scopes, nonce,
--   max_age, claims, authority, correlation_id, extra_query_parameters,
--   extra_body_parameters}`
-- @treturn promise of the result
function App:acquire_token_by_code(req)
  return checked(self, "acquire_token_by_code", req)
end

--- Every account in the cache (one per user: a guest tenant is a tenant
-- profile of its user's account), or those that pass a filter.
-- @tparam[opt] table filter as get_account's; each account is the view of
--   its first tenant that passes (the account itself unless tenant-level
--   keys pick a guest tenant)
-- @treturn table the accounts
function App:get_all_accounts(filter)
  if filter == nil then return self.token_cache:get_all_accounts() end
  local ok, r = pcall(self.token_cache.find_accounts, self.token_cache, filter)
  if not ok then error(r, 2) end
  return r
end

--- One account by a filter (msal-browser's AccountFilter in snake_case):
-- `home_account_id`, `environment`, `authority_type` (the user's), and
-- `tenant_id`, `local_account_id`, `username` and `login_hint` (compared
-- without case), `name`, `sid` (the id token's), `is_home_tenant` (a
-- tenant's; the account is then that tenant's view: its tenant_id,
-- local_account_id, name and id_token_claims), or nil. An empty filter or
-- an unknown key raises ClientConfigurationError.
-- @tparam table filter
-- @treturn table|nil the account
function App:get_account(filter)
  if type(filter) ~= "table" or next(filter) == nil then
    error(errors.ClientConfigurationError("invalid_account_filter",
      "get_account takes a filter such as {home_account_id=…}, {tenant_id=…} or {username=…}"), 2)
  end
  local ok, r = pcall(self.token_cache.find_accounts, self.token_cache, filter, true)
  if not ok then error(r, 2) end
  return r[1]
end

--- Removes an account and its tokens from the cache (and as the active
-- account): ACCOUNT_REMOVED (payload: the account) when it was there,
-- ACTIVE_ACCOUNT_CHANGED when it was the active account.
-- @tparam table account from get_all_accounts, get_account or a result
-- @treturn promise resolving when done
function App:remove_account(account)
  local ok, n, was_active = pcall(self.token_cache.remove_account, self.token_cache, account)
  if not ok then return Promise.reject(n) end
  if n > 0 then self.events:emit(E.ACCOUNT_REMOVED, nil, account) end
  if was_active then self.events:emit(E.ACTIVE_ACCOUNT_CHANGED) end
  return Promise.resolve(nil)
end

--- Makes an account the active account (msal-browser's setActiveAccount):
-- acquire_token_silent uses it when a request names no account. Kept with
-- the cache (a file cache keeps it across processes; see the README),
-- per client id. nil clears it; so does removing the account. Emits
-- ACTIVE_ACCOUNT_CHANGED (no payload, as msal-browser) when it changes.
-- @tparam table|nil account from get_all_accounts, get_account or a result
function App:set_active_account(account)
  if account ~= nil and (type(account) ~= "table" or type(account.home_account_id) ~= "string"
      or (account.local_account_id ~= nil and type(account.local_account_id) ~= "string")
      or (account.tenant_id ~= nil and type(account.tenant_id) ~= "string")) then
    error(errors.ClientConfigurationError("invalid_account",
      "set_active_account takes an account (from get_all_accounts, get_account or a result) or nil"), 2)
  end
  local ok, changed = pcall(self.token_cache.set_active_account, self.token_cache, account)
  if not ok then error(changed, 2) end
  if changed then self.events:emit(E.ACTIVE_ACCOUNT_CHANGED) end
end

--- The active account, as the tenant it was set in sees it; nil when none
-- is set or it has left the cache.
-- @treturn table|nil the account
function App:get_active_account()
  local ok, r = pcall(self.token_cache.get_active_account, self.token_cache)
  if not ok then error(r, 2) end
  return r
end

--- The token cache: `serialize()`, `deserialize(json)`, `get_all_accounts()`…
-- @treturn table the TokenCache
function App:get_token_cache()
  return self.token_cache
end

--- Registers an event callback for all events, or the listed types.
-- @tparam function fn called with the event `{event_type, interaction_type, payload, error, timestamp}`
-- @tparam[opt] table event_types msal.EventType values; all when nil
-- @treturn string id for remove_event_callback
function App:add_event_callback(fn, event_types)
  return self.events:add(fn, event_types)
end

--- Removes an event callback by id.
-- @tparam string id add_event_callback's
function App:remove_event_callback(id)
  return self.events:remove(id)
end

--- Subscribes fn to one event type.
-- @tparam string event_type an msal.EventType value
-- @tparam function fn called with the event
-- @treturn function unsubscribe
function App:on(event_type, fn)
  local id = self.events:add(fn, { event_type })
  return function() self.events:remove(id) end
end

application.App = App

return application
