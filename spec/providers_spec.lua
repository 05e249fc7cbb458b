-- The two local identity providers the test command starts (spec/support/servers.sh):
-- a real OpenID provider (npm oidc-provider, MSAL_TEST_OIDC) and a scriptable
-- Entra-like authority (spec/support/node/entra_server.js, MSAL_TEST_ENTRA).
-- These specs talk to them with the curl command-line tool, not with lua-msal's
-- own HTTP stack, so a failure here points at the servers, not at lua-msal. They
-- also pin down what other specs rely on: discovery, JWKS, the devInteractions
-- pages a browser script fills in, scripted Entra errors, the request log,
-- client_info, refresh-token rotation, FOCI and refresh_in.
local cjson = require("cjson")
local proc = require("proc")
local files = require("files")

local HOW = "the local identity providers are started by the test command (scripts/test runs "
  .. "spec/support/servers.sh start); to run this spec by hand: "
  .. "spec/support/servers.sh start /tmp/msal-idp && . /tmp/msal-idp/env"

-- Fails (never skips) when the servers were not started for this run.
local function base(var)
  local v = os.getenv(var)
  if not v or v == "" then error(var .. " is not set: " .. HOW, 2) end
  return v
end

local q = proc.quote

local function slurp(path)
  return files.read(path) or ""
end

-- One HTTP exchange through curl. opts: form (table, sent urlencoded, keys
-- sorted), json (table), headers (table), jar (cookie file), basic ("id:secret").
-- Returns {status, headers (lower-case names), body, json (decoded or nil),
-- location (absolute, for redirects)}. Never follows redirects.
local function http(method, url, opts)
  opts = opts or {}
  local out, hdr = os.tmpname(), os.tmpname()
  local cmd = { "curl -sS -X", method, "-o", q(out), "-D", q(hdr),
    "--max-time 20", "-w", q("%{http_code} %{redirect_url}") }
  if opts.jar then cmd[#cmd + 1] = "-b " .. q(opts.jar) .. " -c " .. q(opts.jar) end
  if opts.basic then cmd[#cmd + 1] = "-u " .. q(opts.basic) end
  for k, v in pairs(opts.headers or {}) do cmd[#cmd + 1] = "-H " .. q(k .. ": " .. v) end
  if opts.form then
    local keys = {}
    for k in pairs(opts.form) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do cmd[#cmd + 1] = "--data-urlencode " .. q(k .. "=" .. opts.form[k]) end
  elseif opts.json then
    cmd[#cmd + 1] = "-H 'Content-Type: application/json' --data-binary " .. q(cjson.encode(opts.json))
  end
  cmd[#cmd + 1] = q(url)
  -- The ASan run preloads the sanitizer into everything it starts; curl is
  -- not ours to check, and a leak report from it would fail the exchange.
  local w = proc.sh(table.concat(cmd, " "), { plain = true })
  local status, location = w:match("(%d%d%d) ?(%S*)%s*$")
  local res = { status = tonumber(status), body = slurp(out), headers = {}, location = location ~= "" and location or nil }
  for line in slurp(hdr):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then res.headers[k:lower()] = v end
  end
  os.remove(out)
  os.remove(hdr)
  assert(res.status and res.status > 0, "curl " .. method .. " " .. url .. " failed: " .. w)
  local ok, decoded = pcall(cjson.decode, res.body)
  if ok and type(decoded) == "table" then res.json = decoded end
  return res
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function query(t)
  local keys, parts = {}, {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(t[k]) end
  return table.concat(parts, "&")
end

local function param(url, name)
  local v = url:match("[?&#]" .. name .. "=([^&#]*)")
  return v and (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- base64url decoding without bit operators (same code on 5.1/LuaJIT and 5.4).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local function b64url_decode(s)
  s = s:gsub("=", "")
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64:find(s:sub(i, i), 1, true)
    assert(v, "bad base64url character")
    acc, bits = acc * 64 + (v - 1), bits + 6
    if bits >= 8 then
      bits = bits - 8
      local byte = math.floor(acc / 2 ^ bits)
      out[#out + 1] = string.char(byte)
      acc = acc - byte * 2 ^ bits
    end
  end
  return table.concat(out)
end

local function jwt(token)
  local h, p = token:match("^([^.]+)%.([^.]+)%.[^.]+$")
  assert(h, "not a JWS compact token: " .. tostring(token))
  return cjson.decode(b64url_decode(h)), cjson.decode(b64url_decode(p))
end

-- RFC 7636 S256 challenge, computed by the openssl CLI (not by lua-msal).
local function s256(verifier)
  local out = proc.run("printf %s " .. q(verifier) .. " | openssl dgst -sha256 -binary | basenc --base64url",
    { plain = true })
  return (out:gsub("[=%s]", ""))
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("local identity providers", function()
  it("are running (started by the test command)", function()
    base("MSAL_TEST_OIDC")
    base("MSAL_TEST_ENTRA")
  end)

  describe("oidc-provider (MSAL_TEST_OIDC)", function()
    local B
    before_each(function() B = base("MSAL_TEST_OIDC") end)

    it("serves discovery with the issuer, PKCE S256 and the device endpoint", function()
      local r = http("GET", B .. "/.well-known/openid-configuration")
      assert.equal(200, r.status)
      local d = r.json
      assert.equal(B, d.issuer)
      assert.equal(B .. "/token", d.token_endpoint)
      assert.equal(B .. "/auth", d.authorization_endpoint)
      assert.equal(B .. "/device/auth", d.device_authorization_endpoint)
      assert.same({ "S256" }, d.code_challenge_methods_supported)
      assert.truthy(contains(d.grant_types_supported, "urn:ietf:params:oauth:grant-type:device_code"))
      assert.truthy(contains(d.grant_types_supported, "client_credentials"))
      assert.truthy(contains(d.scopes_supported, "offline_access"))
      assert.is_true(d.claims_parameter_supported)
    end)

    it("publishes an RS256 signing key", function()
      local keys = http("GET", B .. "/jwks").json.keys
      assert.equal(1, #keys)
      assert.equal("RSA", keys[1].kty)
      assert.equal("RS256", keys[1].alg)
      assert.truthy(keys[1].kid)
      assert.is_nil(keys[1].d) -- public part only
    end)

    it("issues a JWT access token for the API to the confidential client", function()
      local r = http("POST", B .. "/token", { form = {
        grant_type = "client_credentials", client_id = "lua-msal-confidential",
        client_secret = "s3cret", scope = "api.read" } })
      assert.equal(200, r.status, r.body)
      assert.equal("Bearer", r.json.token_type)
      local h, c = jwt(r.json.access_token)
      assert.equal("RS256", h.alg)
      assert.equal(http("GET", B .. "/jwks").json.keys[1].kid, h.kid)
      assert.equal("https://api.example.test", c.aud)
      assert.equal("api.read", c.scope)
      assert.equal(B, c.iss)
      assert.equal(300, r.json.expires_in) -- OIDC_AT_TTL default

      local bad = http("POST", B .. "/token", { form = {
        grant_type = "client_credentials", client_id = "lua-msal-confidential",
        client_secret = "wrong", scope = "api.read" } })
      assert.equal(401, bad.status)
      assert.equal("invalid_client", bad.json.error)
    end)

    it("runs the code flow through its login and consent pages to a loopback redirect on any port", function()
      local jar = os.tmpname()
      local verifier = "lua-msal-providers-spec-verifier-0123456789abcdef"
      local redirect = "http://127.0.0.1:49321/"
      local r = http("GET", B .. "/auth?" .. query {
        client_id = "lua-msal-public", response_type = "code", redirect_uri = redirect,
        scope = "openid profile offline_access api.read", state = "s1", nonce = "n1",
        code_challenge = s256(verifier), code_challenge_method = "S256" }, { jar = jar })
      assert.equal(303, r.status, r.body)
      assert.truthy(r.location:find(B .. "/interaction/", 1, true))

      -- Login page: the form documented at the top of oidc_server.js.
      local page = http("GET", r.location, { jar = jar })
      assert.equal(200, page.status)
      local action = page.body:match('<form[^>]-action="([^"]+)"')
      assert.equal(r.location, action)
      assert.truthy(page.body:find('name="login"', 1, true))
      assert.truthy(page.body:find('name="password"', 1, true))
      assert.falsy(page.body:find("fonts.googleapis.com", 1, true))
      r = http("POST", action, { jar = jar, form = { prompt = "login", login = "alice.smith", password = "x" } })
      r = http("GET", r.location, { jar = jar }) -- /auth/<uid> resumes, asks for consent

      page = http("GET", r.location, { jar = jar })
      assert.truthy(page.body:find('name="prompt" value="consent"', 1, true))
      assert.truthy(page.body:find("offline access", 1, true))
      action = page.body:match('<form[^>]-action="([^"]+)"')
      r = http("POST", action, { jar = jar, form = { prompt = "consent" } })
      r = http("GET", r.location, { jar = jar })
      os.remove(jar)
      assert.equal(redirect, r.location:match("^[^?]+"))
      assert.equal("s1", param(r.location, "state"))
      local code = assert(param(r.location, "code"))

      local t = http("POST", B .. "/token", { form = {
        grant_type = "authorization_code", client_id = "lua-msal-public", code = code,
        redirect_uri = redirect, code_verifier = verifier,
        scope = "api.read openid profile offline_access" } })
      assert.equal(200, t.status, t.body)
      assert.truthy(t.json.refresh_token) -- offline_access honoured without prompt=consent
      local _, id = jwt(t.json.id_token)
      assert.equal("alice.smith", id.sub)
      assert.equal("Alice Smith", id.name)
      assert.equal("n1", id.nonce)
      assert.equal("lua-msal-public", id.aud)
      local _, at = jwt(t.json.access_token)
      assert.equal("https://api.example.test", at.aud)

      -- Refresh tokens rotate; the used one is then rejected.
      local r1 = http("POST", B .. "/token", { form = {
        grant_type = "refresh_token", client_id = "lua-msal-public",
        refresh_token = t.json.refresh_token, scope = "api.read openid profile offline_access" } })
      assert.equal(200, r1.status, r1.body)
      assert.truthy(r1.json.refresh_token)
      assert.are_not.equal(t.json.refresh_token, r1.json.refresh_token)
      local again = http("POST", B .. "/token", { form = {
        grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = t.json.refresh_token } })
      assert.equal(400, again.status)
      assert.equal("invalid_grant", again.json.error)
    end)

    it("runs the device flow through its user-code, login and consent pages", function()
      local d = http("POST", B .. "/device/auth", { form = {
        client_id = "lua-msal-public", scope = "openid profile offline_access api.write" } })
      assert.equal(200, d.status, d.body)
      assert.equal(B .. "/device", d.json.verification_uri)
      assert.equal(1, d.json.interval)
      local poll = { grant_type = "urn:ietf:params:oauth:grant-type:device_code",
        client_id = "lua-msal-public", device_code = d.json.device_code }
      assert.equal("authorization_pending", http("POST", B .. "/token", { form = poll }).json.error)

      local jar = os.tmpname()
      local page = http("GET", B .. "/device", { jar = jar })
      assert.truthy(page.body:find('id="op.deviceInputForm"', 1, true))
      local xsrf = page.body:match('name="xsrf" value="([^"]+)"')
      page = http("POST", B .. "/device", { jar = jar, form = { xsrf = xsrf, user_code = d.json.user_code } })
      assert.truthy(page.body:find('id="op.deviceConfirmForm"', 1, true))
      local r = http("POST", B .. "/device", { jar = jar, form = { xsrf = xsrf, user_code = d.json.user_code, confirm = "yes" } })
      r = http("POST", r.location, { jar = jar, form = { prompt = "login", login = "bob", password = "x" } })
      r = http("GET", r.location, { jar = jar })   -- /device/<uid> resumes, asks for consent
      r = http("POST", r.location, { jar = jar, form = { prompt = "consent" } })
      page = http("GET", r.location, { jar = jar })
      os.remove(jar)
      assert.truthy(page.body:find("Sign-in Success", 1, true))

      local t = http("POST", B .. "/token", { form = poll })
      assert.equal(200, t.status, t.body)
      assert.truthy(t.json.refresh_token)
      local _, id = jwt(t.json.id_token)
      assert.equal("bob", id.sub)
      local _, at = jwt(t.json.access_token)
      assert.equal("api.write", at.scope)
    end)
  end)

  describe("Entra-like authority (MSAL_TEST_ENTRA)", function()
    local B
    local USER_OID = "00000000-0000-0000-aaaa-000000000001"
    local TENANT = "00000000-0000-0000-bbbb-000000000002"
    local function control(method, path, body)
      local r = http(method, B .. "/__control" .. path, body and { json = body } or nil)
      assert.equal(200, r.status, r.body)
      return r.json
    end

    before_each(function()
      B = base("MSAL_TEST_ENTRA")
      control("POST", "/reset")
    end)

    -- Device flow driven with curl: returns the token response.
    local function device_tokens(client_id, scope)
      local d = http("POST", B .. "/common/oauth2/v2.0/devicecode", { form = { client_id = client_id, scope = scope } })
      assert.equal(200, d.status, d.body)
      local poll = { grant_type = "device_code", client_id = client_id, device_code = d.json.device_code, client_info = "1" }
      local p = http("POST", B .. "/common/oauth2/v2.0/token", { form = poll })
      assert.equal(400, p.status)
      assert.equal("authorization_pending", p.json.error)
      assert.equal(70016, p.json.error_codes[1])
      local page = http("POST", B .. "/devicelogin", { form = { otc = d.json.user_code } })
      assert.equal(200, page.status)
      local t = http("POST", B .. "/common/oauth2/v2.0/token", { form = poll })
      assert.equal(200, t.status, t.body)
      return t.json, d.json
    end

    it("serves tenant discovery with Entra's issuer rules", function()
      local common = http("GET", B .. "/common/v2.0/.well-known/openid-configuration").json
      assert.equal(B .. "/{tenantid}/v2.0", common.issuer)
      assert.equal(B .. "/common/oauth2/v2.0/token", common.token_endpoint)
      assert.equal(B .. "/common/oauth2/v2.0/devicecode", common.device_authorization_endpoint)
      assert.equal(B .. "/common/discovery/v2.0/keys", common.jwks_uri)
      local t = http("GET", B .. "/" .. TENANT .. "/v2.0/.well-known/openid-configuration").json
      assert.equal(B .. "/" .. TENANT .. "/v2.0", t.issuer)
      local by_name = http("GET", B .. "/example.com/v2.0/.well-known/openid-configuration").json
      assert.equal(B .. "/" .. TENANT .. "/v2.0", by_name.issuer)
    end)

    it("answers instance discovery for its own host and refuses others", function()
      local host = B:match("^http://(.+)$")
      local r = http("GET", B .. "/common/discovery/instance?" .. query {
        ["api-version"] = "1.1", authorization_endpoint = B .. "/organizations/oauth2/v2.0/authorize" })
      assert.equal(200, r.status)
      assert.equal(B .. "/organizations/v2.0/.well-known/openid-configuration", r.json.tenant_discovery_endpoint)
      assert.equal(host, r.json.metadata[1].preferred_network)
      assert.truthy(contains(r.json.metadata[1].aliases, host))
      local other = http("GET", B .. "/common/discovery/instance?" .. query {
        ["api-version"] = "1.1", authorization_endpoint = "https://login.example.invalid/common/oauth2/v2.0/authorize" })
      assert.equal(400, other.status)
      assert.equal("invalid_instance", other.json.error)
      assert.equal(50049, other.json.error_codes[1])
    end)

    it("publishes the key its id tokens are signed with", function()
      local keys = http("GET", B .. "/common/discovery/v2.0/keys").json.keys
      assert.equal(1, #keys)
      assert.equal("RSA", keys[1].kty)
      local tokens = device_tokens("lua-msal-public", "User.Read openid profile offline_access")
      local h = jwt(tokens.id_token)
      assert.equal("RS256", h.alg)
      assert.equal(keys[1].kid, h.kid)
    end)

    it("returns a queued error once, then answers normally", function()
      control("POST", "/next", { endpoint = "token", canned = "bad_token" })
      local form = { grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = "nope" }
      local r = http("POST", B .. "/common/oauth2/v2.0/token?client-request-id=corr-1", { form = form })
      assert.equal(400, r.status)
      assert.equal("invalid_grant", r.json.error)
      assert.equal("bad_token", r.json.suberror)
      assert.equal(700082, r.json.error_codes[1])
      assert.equal("corr-1", r.json.correlation_id)
      assert.truthy(r.json.error_description:find("^AADSTS700082: "))
      assert.equal("corr-1", r.headers["client-request-id"])
      assert.truthy(r.headers["x-ms-request-id"])
      -- Not scripted any more: an unknown refresh token, as Entra says it.
      r = http("POST", B .. "/common/oauth2/v2.0/token", { form = form })
      assert.equal(400, r.status)
      assert.equal(9002313, r.json.error_codes[1])
      assert.is_nil(r.json.suberror)
    end)

    it("scripts status, headers, claims and raw bodies", function()
      control("POST", "/next", {
        { endpoint = "token", canned = "mfa_required" },
        { endpoint = "token", canned = "throttled", retry_after = 7 },
        { endpoint = "token", status = 503, body = { error = "temporarily_unavailable" }, headers = { ["Retry-After"] = "3" } },
        { endpoint = "token", raw = "{\"access_token\": \"trunc" },
      })
      local form = { grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = "x" }
      local r = http("POST", B .. "/common/oauth2/v2.0/token", { form = form })
      assert.equal("basic_action", r.json.suberror)
      assert.equal(50076, r.json.error_codes[1])
      assert.truthy(cjson.decode(r.json.claims).access_token.capolids)
      r = http("POST", B .. "/common/oauth2/v2.0/token", { form = form })
      assert.equal(429, r.status)
      assert.equal("7", r.headers["retry-after"])
      r = http("POST", B .. "/common/oauth2/v2.0/token", { form = form })
      assert.equal(503, r.status)
      assert.equal("3", r.headers["retry-after"])
      assert.same({ error = "temporarily_unavailable" }, r.json)
      r = http("POST", B .. "/common/oauth2/v2.0/token", { form = form })
      assert.equal(200, r.status)
      assert.equal("{\"access_token\": \"trunc", r.body)
      assert.is_nil(r.json)
      assert.same({}, control("GET", "/next"))
    end)

    it("logs what each request sent", function()
      http("POST", B .. "/common/oauth2/v2.0/token", { headers = { ["X-AnchorMailbox"] = "Oid:a@b" }, form = {
        grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = "rt-value",
        client_info = "1", scope = "User.Read openid profile offline_access",
        claims = '{"access_token":{"xms_cc":{"values":["cp1"]}}}' } })
      local log = control("GET", "/requests?endpoint=token")
      assert.equal(1, #log)
      local req = log[1]
      assert.equal("POST", req.method)
      assert.equal("/common/oauth2/v2.0/token", req.path)
      assert.equal("common", req.tenant)
      assert.equal("refresh_token", req.form.grant_type)
      assert.equal("rt-value", req.form.refresh_token)
      assert.equal("1", req.form.client_info)
      assert.equal("User.Read openid profile offline_access", req.form.scope)
      assert.equal('{"access_token":{"xms_cc":{"values":["cp1"]}}}', req.form.claims)
      assert.equal("Oid:a@b", req.headers["x-anchormailbox"])
    end)

    it("issues Entra-shaped tokens by device code and rotates refresh tokens", function()
      local t = device_tokens("lua-msal-public", "User.Read Mail.Read openid profile offline_access")
      assert.equal("Bearer", t.token_type)
      assert.equal("User.Read Mail.Read", t.scope)
      assert.equal(3600, t.expires_in)
      assert.equal(3600, t.ext_expires_in)
      assert.is_nil(t.refresh_in)
      assert.is_nil(t.foci)
      assert.same({ uid = USER_OID, utid = TENANT }, cjson.decode(b64url_decode(t.client_info)))
      local _, id = jwt(t.id_token)
      assert.equal(B .. "/" .. TENANT .. "/v2.0", id.iss)
      assert.equal("lua-msal-public", id.aud)
      assert.equal(TENANT, id.tid)
      assert.equal(USER_OID, id.oid)
      assert.equal("test.user@example.com", id.preferred_username)
      assert.equal("Test User", id.name)
      assert.equal("2.0", id.ver)

      -- The access token works at the server's protected resource.
      local me = http("GET", B .. "/oidc/userinfo", { headers = { Authorization = "Bearer " .. t.access_token } })
      assert.equal(200, me.status)
      assert.equal("test.user@example.com", me.json.preferred_username)
      local anon = http("GET", B .. "/oidc/userinfo")
      assert.equal(401, anon.status)
      assert.truthy(anon.headers["www-authenticate"]:find('error="invalid_token"', 1, true))

      control("POST", "/config", { refresh_in = 1800, families = { "lua-msal-public", "other-family-app" } })
      local r = http("POST", B .. "/common/oauth2/v2.0/token", { form = {
        grant_type = "refresh_token", client_id = "other-family-app", refresh_token = t.refresh_token,
        client_info = "1", scope = "Files.Read openid profile offline_access" } })
      assert.equal(200, r.status, r.body)
      assert.equal("Files.Read", r.json.scope)
      assert.equal(1800, r.json.refresh_in)
      assert.equal("1", r.json.foci)
      assert.truthy(r.json.refresh_token)
      assert.are_not.equal(t.refresh_token, r.json.refresh_token)
      local _, id2 = jwt(r.json.id_token)
      assert.equal("other-family-app", id2.aud)
      assert.is_nil(id2.nonce)

      local log = control("GET", "/requests?endpoint=token")
      local last = log[#log].form
      assert.equal("refresh_token", last.grant_type)
      assert.equal(t.refresh_token, last.refresh_token)
      assert.equal("1", last.client_info)

      -- Outside the family: client_mismatch. Revoked: bad_token.
      local mismatch = http("POST", B .. "/common/oauth2/v2.0/token", { form = {
        grant_type = "refresh_token", client_id = "not-in-family", refresh_token = r.json.refresh_token } })
      assert.equal("client_mismatch", mismatch.json.suberror)
      control("POST", "/revoke", {})
      local revoked = http("POST", B .. "/common/oauth2/v2.0/token", { form = {
        grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = r.json.refresh_token } })
      assert.equal("bad_token", revoked.json.suberror)
      assert.equal(700082, revoked.json.error_codes[1])
    end)

    it("runs the authorization code flow with PKCE and client_info", function()
      local verifier = "entra-providers-spec-verifier-0123456789abcdefgh"
      local redirect = "http://localhost:51234"
      local r = http("GET", B .. "/organizations/oauth2/v2.0/authorize?" .. query {
        client_id = "lua-msal-public", response_type = "code", redirect_uri = redirect,
        scope = "User.Read openid profile offline_access", state = "st", nonce = "nn",
        code_challenge = s256(verifier), code_challenge_method = "S256", client_info = "1" })
      assert.equal(302, r.status)
      assert.equal("st", param(r.location, "state"))
      assert.same({ uid = USER_OID, utid = TENANT }, cjson.decode(b64url_decode(param(r.location, "client_info"))))
      local code = param(r.location, "code")
      local form = { grant_type = "authorization_code", client_id = "lua-msal-public", code = code,
        redirect_uri = redirect, code_verifier = "not-the-verifier", client_info = "1",
        scope = "User.Read openid profile offline_access" }
      local bad = http("POST", B .. "/organizations/oauth2/v2.0/token", { form = form })
      assert.equal(400, bad.status)
      assert.equal(501481, bad.json.error_codes[1])
      form.code_verifier = verifier
      local t = http("POST", B .. "/organizations/oauth2/v2.0/token", { form = form })
      assert.equal(200, t.status, t.body)
      assert.equal("nn", select(2, jwt(t.json.id_token)).nonce)
      local reused = http("POST", B .. "/organizations/oauth2/v2.0/token", { form = form })
      assert.equal(54005, reused.json.error_codes[1])

      local r2 = http("POST", B .. "/organizations/oauth2/v2.0/token", { form = {
        grant_type = "refresh_token", client_id = "lua-msal-public", refresh_token = t.json.refresh_token,
        scope = "User.Read openid profile offline_access" } })
      assert.equal(200, r2.status, r2.body)
      assert.is_nil(r2.json.client_info) -- not asked for
    end)

    it("requires a /.default scope and the secret for client credentials", function()
      local form = { grant_type = "client_credentials", client_id = "lua-msal-confidential",
        client_secret = "s3cret", scope = "https://api.example.test/.default" }
      local t = http("POST", B .. "/" .. TENANT .. "/oauth2/v2.0/token", { form = form })
      assert.equal(200, t.status, t.body)
      assert.truthy(t.json.access_token)
      assert.is_nil(t.json.refresh_token)
      assert.is_nil(t.json.id_token)
      form.client_secret = nil
      local r = http("POST", B .. "/" .. TENANT .. "/oauth2/v2.0/token", { form = form })
      assert.equal(401, r.status)
      assert.equal(7000218, r.json.error_codes[1])
      form.client_secret, form.scope = "s3cret", "https://api.example.test/api.read"
      r = http("POST", B .. "/" .. TENANT .. "/oauth2/v2.0/token", { form = form })
      assert.equal("invalid_scope", r.json.error)
    end)
  end)
end)
