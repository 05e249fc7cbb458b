-- The interactive flows end to end in a real browser: headless Chromium (the
-- Debian package `chromium`, driven by npm playwright-core through
-- spec/support/node/browser_login.js) signs in on the real pages of the local
-- OpenID provider (oidc-provider, MSAL_TEST_OIDC, started by the test command),
-- with lua-msal in protocol_mode = "oidc".
--
-- Needs: MSAL_TEST_OIDC (spec/support/servers.sh), /usr/bin/chromium and the
-- node packages of spec/support/node (scripts/setup installs both). Without
-- them every test here FAILS; nothing is skipped.
local msal = require("msal")
local cjson = require("cjson")
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local CHROMIUM = "/usr/bin/chromium"
local SCRIPT = ROOT .. "/spec/support/node/browser_login.js"
local SCOPES = { "api.read" }

local file_exists = require("files").exists

-- Fails (never skips) when the environment cannot run these tests.
local function issuer()
  local b = require("oidc").base()
  assert(file_exists(CHROMIUM), CHROMIUM .. " is missing: scripts/setup installs it (Debian package chromium)")
  assert(file_exists(SCRIPT), SCRIPT .. " is missing")
  assert(file_exists(ROOT .. "/spec/support/node/node_modules/playwright-core/package.json"),
    "npm package playwright-core is missing in spec/support/node: scripts/setup installs it")
  return b
end

local tmpdir, remove_tmpdir
local runs = 0

-- Starts browser_login.js in the background (a browser runs on its own);
-- returns its proc job (done, output, wait for its exit status). LD_PRELOAD
-- (the ASan runtime of the sanitizer run) is dropped for the node child.
local function start_browser(url, args)
  runs = runs + 1
  local cmd = "node " .. proc.quote(SCRIPT) .. " " .. proc.quote(url)
  for _, a in ipairs(args or {}) do cmd = cmd .. " " .. proc.quote(a) end
  return proc.background(cmd, tmpdir .. "/browser" .. runs, { plain = true })
end

-- The browser of the last popup, for the test to wait on.
local function browser(state, args)
  return function(url)
    state.opened = url
    state.count = (state.count or 0) + 1
    state.handle = start_browser(url, args)
  end
end

local function new_app(open_browser, o)
  o = o or {}
  local skew = { 0 }
  local app = msal.PublicClientApplication.new({
    auth = { client_id = "lua-msal-public", authority = issuer(), protocol_mode = "oidc" },
    system = { open_browser = open_browser, loopback_timeout = o.timeout or 60, token_renewal_offset = 60,
      clock = function() return os.time() + skew[1] end },
  })
  return app, skew
end

-- Waits for the browser, asserting that it finished cleanly; its output on failure.
local function browser_done(h, what)
  assert(h, (what or "browser") .. ": the browser was never started")
  local rc = h:wait(35000)
  assert(rc == 0, (what or "browser") .. " exited with " .. tostring(rc) .. ":\n" .. h:output())
  return h:output()
end

-- Awaits p; on rejection fails with the error and the browser's output.
local function must(p, state, what)
  local r, err = p:await()
  if not r then
    local h = state.handle
    local out = h and (h:wait(5000) and h:output() or h:output()) or "(no browser)"
    error((what or "request") .. " failed: " .. (type(err) == "table" and
      (tostring(err.name) .. " " .. tostring(err.error_code) .. ": " .. tostring(err.error_message)) or tostring(err)) ..
      "\nbrowser output:\n" .. out, 2)
  end
  return r
end

local function post_form(url, form)
  local body = require("msal.network").form_encode(form)
  return require("msal.transport.curl").new():send({ method = "POST", url = url,
    headers = { ["content-type"] = "application/x-www-form-urlencoded" }, body = body }):await()
end

-- A tiny web app on a loopback port: its redirect URI is the root path, and
-- each request to it goes to `on_request(req)`, which returns status and body.
-- Serves until the browser `h` has exited.
local function serve(l, h, on_request)
  local core = require("msal.core")
  local deadline = core.now_ms() + 40000
  while not h:done() do
    assert(core.now_ms() < deadline, "the browser did not finish:\n" .. h:output())
    l:step(50)
    local req = l:take()
    while req do
      local status, body = on_request(req)
      l:respond(req.conn, status, { ["Content-Type"] = "text/plain" }, body)
      req = l:take()
    end
  end
end

describe("headless Chromium against oidc-provider", function()
  setup(function()
    tmpdir, remove_tmpdir = proc.tempdir()
  end)
  teardown(function()
    if remove_tmpdir then remove_tmpdir() end
  end)

  it("popup: signs in, then the cache answers, then refresh, then interaction again", function()
    local state = {}
    local app, skew = new_app(browser(state, { "--user", "alice" }))
    local r = must(app:acquire_token_popup({ scopes = SCOPES }), state, "first popup")
    local out = browser_done(state.handle, "first sign-in")
    assert.matches("landed on the loopback redirect: http://localhost:%d+/%?code=", out)
    assert.matches("Authentication complete", out, 1, true)
    assert.is_false(r.from_cache)
    assert.equal("alice", r.id_token_claims.sub)
    assert.equal(issuer(), r.id_token_claims.iss)
    assert.is_string(r.access_token)
    local q = require("msal.network").form_decode(state.opened:match("%?(.*)$"))
    assert.equal("S256", q.code_challenge_method)
    assert.is_nil(q.client_info)
    assert.matches("^http://localhost:%d+/$", q.redirect_uri)
    local cache = cjson.decode(app:get_token_cache():serialize())
    assert.is_not_nil(next(cache.RefreshToken), "no refresh token was cached")

    -- silent, from the cache
    local accounts = app:get_all_accounts()
    assert.equal(1, #accounts)
    local account = accounts[1]
    local cached = must(app:acquire_token_silent({ scopes = SCOPES, account = account }), state, "silent (cache)")
    assert.is_true(cached.from_cache)
    assert.equal(r.access_token, cached.access_token)

    -- silent refresh after the access token (300 s) expired
    skew[1] = 600
    local refreshed = must(app:acquire_token_silent({ scopes = SCOPES, account = account }), state, "silent refresh")
    assert.is_false(refreshed.from_cache)
    assert.are_not.equal(r.access_token, refreshed.access_token)
    assert.equal("alice", refreshed.id_token_claims.sub)
    assert.equal(1, state.count)

    -- the provider now wants the user back (as Entra does after a policy
    -- change): the refresh answers interaction_required ...
    local function current_rt()
      local _, rt = next(cjson.decode(app:get_token_cache():serialize()).RefreshToken)
      return rt.secret
    end
    local res = assert(post_form(issuer() .. "/__test/require_interaction?token=" .. current_rt(), {}))
    assert.equal(204, res.status)
    local _, ierr = app:acquire_token_silent({ scopes = SCOPES, account = account, force_refresh = true }):await()
    assert.equal("InteractionRequiredAuthError", ierr and ierr.name)
    assert.equal("interaction_required", ierr.error_code)
    assert.is_true(msal.is_interaction_required(ierr))
    assert.equal(1, state.count)

    -- ... so the one-call pattern opens the browser again, with a claims request
    local again = must(app:acquire_token({ scopes = SCOPES, account = account, force_refresh = true,
      claims = '{"id_token":{"auth_time":{"essential":true}}}' }, { interaction = "popup" }), state, "forced popup")
    assert.equal(2, state.count)
    browser_done(state.handle, "second sign-in")
    assert.is_false(again.from_cache)
    assert.equal("alice", again.id_token_claims.sub)
    assert.is_number(again.id_token_claims.auth_time)
    assert.matches("auth_time", require("msal.network").form_decode(state.opened:match("%?(.*)$")).claims, 1, true)
    assert.are_not.equal(refreshed.access_token, again.access_token)

    -- a revoked refresh token is plain invalid_grant: MSAL's ServerError, not
    -- interaction-required, and the cached access token is still served
    res = assert(post_form(issuer() .. "/token/revocation", {
      { "client_id", "lua-msal-public" }, { "token", current_rt() }, { "token_type_hint", "refresh_token" } }))
    assert.equal(200, res.status)
    local _, rerr = app:acquire_token_silent({ scopes = SCOPES, account = account, force_refresh = true }):await()
    assert.equal("ServerError", rerr and rerr.name)
    assert.equal("invalid_grant", rerr.error_code)
    local still = must(app:acquire_token_silent({ scopes = SCOPES, account = account }), state, "silent after revocation")
    assert.is_true(still.from_cache)
    assert.equal(again.access_token, still.access_token)
    assert.equal(1, #app:get_all_accounts())
  end)

  for _, mode in ipairs({ "query", "form_post" }) do
    it("redirect (" .. mode .. "): a web app finishes with handle_redirect_promise, once", function()
      local core = require("msal.core")
      local l = assert(core.loopback.listen({ host = "127.0.0.1", path = "/" }))
      local redirect_uri = ("http://127.0.0.1:%d/"):format(l:port())
      local app = msal.PublicClientApplication.new({
        auth = { client_id = "lua-msal-public", authority = issuer(), protocol_mode = "oidc",
          redirect_uri = redirect_uri },
        system = { token_renewal_offset = 60 },
      })
      local r = must(app:acquire_token_redirect({ scopes = SCOPES,
        response_mode = mode == "form_post" and "form_post" or nil }), {}, "redirect url")
      assert.matches("^" .. issuer():gsub("%p", "%%%0") .. "/auth%?", r.url)
      local h = start_browser(r.url, { "--user", "dave" })
      local result, err, seen
      serve(l, h, function(req)
        seen = req
        local input = req.method == "POST" and require("msal.network").form_decode(req.body) or req.target
        result, err = app:handle_redirect_promise(input):await()
        if not result then return 400, "sign-in failed: " .. tostring(err and err.error_code) end
        return 200, "signed in as " .. result.account.username
      end)
      l:close()
      local out = browser_done(h, "redirect sign-in")
      assert.is_nil(err)
      assert.equal(mode == "form_post" and "POST" or "GET", seen.method)
      assert.matches("signed in as dave", out, 1, true)
      assert.is_false(result.from_cache)
      assert.equal("dave", result.id_token_claims.sub)
      local silent = must(app:acquire_token_silent({ scopes = SCOPES, account = app:get_all_accounts()[1] }),
        {}, "silent after redirect")
      assert.is_true(silent.from_cache)
      assert.equal(result.access_token, silent.access_token)

      -- the same redirect again (a reload, a replay): refused, nothing redeemed
      local replay = seen.method == "POST" and require("msal.network").form_decode(seen.body) or seen.target
      local again, rerr = app:handle_redirect_promise(replay):await()
      assert.is_nil(again)
      assert.equal("ClientAuthError", rerr.name)
      assert.equal(result.access_token, must(app:acquire_token_silent({ scopes = SCOPES,
        account = app:get_all_accounts()[1] }), {}, "silent after replay").access_token)
    end)
  end

  it("popup: a forged redirect is refused and the listener is gone after the real one", function()
    local state = {}
    local app = new_app(browser(state, { "--user", "erin", "--forge", "--replay" }))
    local r = must(app:acquire_token_popup({ scopes = SCOPES }), state, "popup")
    local out = browser_done(state.handle, "sign-in")
    -- the forged state got a 400 and the wait went on to the real redirect
    assert.matches("forged: 400", out, 1, true)
    assert.equal("erin", r.id_token_claims.sub)
    -- a reload of the redirect finds the port closed: nothing is redeemed twice
    assert.matches("replay: [^\n]*ERR_CONNECTION_REFUSED", out)
    assert.equal(1, state.count)
  end)

  it("popup: rejects with access_denied when the user cancels consent, redeeming nothing", function()
    local state = {}
    local app = new_app(browser(state, { "--user", "bob", "--deny" }))
    local r, err = app:acquire_token_popup({ scopes = SCOPES }):await()
    local out = browser_done(state.handle, "denied sign-in")
    assert.is_nil(r)
    assert.is_table(err, out)
    assert.equal("ServerError", err.name)
    assert.equal("access_denied", err.error_code)
    assert.matches("landed on the loopback redirect: http://localhost:%d+/%?error=access_denied", out)
    assert.matches("Authentication did not complete", out, 1, true)
    local cache = cjson.decode(app:get_token_cache():serialize())
    assert.same({}, cache.AccessToken)
    assert.same({}, cache.RefreshToken)
    assert.same({}, app:get_all_accounts())
  end)

  it("device code: the user approves on the provider's device pages", function()
    local state = {}
    local app = new_app(nil)
    local shown
    local r = must(app:acquire_token_by_device_code({ scopes = SCOPES, timeout = 45, device_code_callback = function(info)
      shown = info
      state.handle = start_browser(info.verification_uri, { "--user", "carol", "--device-code", info.user_code })
    end }), state, "device code")
    local out = browser_done(state.handle, "device sign-in")
    assert.matches("Sign-in Success", out, 1, true)
    assert.matches("^" .. issuer():gsub("%p", "%%%0") .. "/device", shown.verification_uri)
    assert.is_false(r.from_cache)
    assert.equal("carol", r.id_token_claims.sub)
    local again = must(app:acquire_token_silent({ scopes = SCOPES, account = app:get_all_accounts()[1] }), state, "silent")
    assert.is_true(again.from_cache)
    assert.equal(r.access_token, again.access_token)
  end)

  it("device code: the user aborts on the provider's confirm page", function()
    local state = {}
    local app = new_app(nil)
    local r, err = app:acquire_token_by_device_code({ scopes = SCOPES, timeout = 45, device_code_callback = function(info)
      state.handle = start_browser(info.verification_uri, { "--device-code", info.user_code, "--deny" })
    end }):await()
    local out = browser_done(state.handle, "device abort")
    assert.matches("device flow aborted", out, 1, true)
    assert.is_nil(r)
    assert.equal("ServerError", err and err.name) -- as msal-node: not interaction-required
    assert.equal("access_denied", err.error_code)
    assert.same({}, app:get_all_accounts())
  end)

  it("popup: times out when the user never finishes", function()
    local opened
    local app = new_app(function(url) opened = url end, { timeout = 2 })
    local t = os.time()
    local r, err = app:acquire_token_popup({ scopes = SCOPES }):await()
    assert.is_nil(r)
    assert.is_string(opened)
    assert.equal("BrowserAuthError", err.name)
    assert.equal("timed_out", err.error_code)
    assert.is_true(os.time() - t < 10)
  end)
end)
