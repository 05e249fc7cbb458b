-- The C token store: MSAL keys, look-ups, expiry, and what it does with
-- caches it cannot read.
local core = require("msal.core")
local F = require("fixtures")
local cjson = require("cjson")

local function new_store(doc)
  local s = core.store.new()
  s:set_aliases({ { "login.windows.net", "login.microsoftonline.com", "login.microsoft.com", "sts.windows.net" } })
  if doc then assert(s:load(type(doc) == "string" and doc or cjson.encode(doc))) end
  return s
end

local NOW = 1800000000

-- status, secret, target, token_type
local function find(s, o)
  o = o or {}
  local st, info = s:find_access_token(o.hid or F.HID, o.env or "login.microsoftonline.com", o.client or F.CLIENT,
    o.realm or F.TENANT, o.scopes or "user.read", o.now or NOW, o.offset or 300)
  if not info then return st end
  return st, info.secret, info.target, info.token_type
end

describe("store keys", function()
  local key = core.store.key
  it("are msal-node 7's for every entry type", function()
    local hid, tid, env, cid = F.HID, F.TENANT, F.ENV, F.CLIENT
    assert.equal(hid .. "-" .. env .. "-" .. tid, key("Account", F.account()))
    assert.equal(hid .. "-" .. env .. "-idtoken-" .. cid .. "-" .. tid .. "--", key("IdToken", F.id_token()))
    assert.equal(hid .. "-" .. env .. "-accesstoken-" .. cid .. "-" .. tid .. "-user.read openid profile email-",
      key("AccessToken", F.access_token()))
    assert.equal(hid .. "-" .. env .. "-refreshtoken-" .. cid .. "---", key("RefreshToken", F.refresh_token()))
    assert.equal(hid .. "-" .. env .. "-refreshtoken-1---", key("RefreshToken", F.refresh_token({ family_id = "1" })))
    assert.equal("appmetadata-" .. env .. "-" .. cid, key("AppMetadata", { client_id = cid, environment = env }))
  end)
  it("use the scheme for tokens that are not bearer tokens", function()
    local k = key("AccessToken", F.access_token({ credential_type = "AccessToken_With_AuthScheme", token_type = "pop" }))
    assert.equal(F.HID .. "-" .. F.ENV .. "-accesstoken_with_authscheme-" .. F.CLIENT .. "-" .. F.TENANT ..
      "-user.read openid profile email-pop", k)
  end)
  it("take the account's home tenant from home_account_id, else the realm", function()
    assert.equal("sub-" .. F.ENV .. "-realm", key("Account", F.account({ home_account_id = "sub", realm = "realm" })))
  end)
  it("are lower-case", function()
    local k = key("AccessToken", F.access_token({ client_id = "ABC", target = "Mail.Read" }))
    assert.equal(k:lower(), k)
  end)
end)

describe("store look-ups", function()
  local s
  before_each(function() s = new_store(F.signed_in()) end)

  it("find the token for a subset of its scopes, without case", function()
    assert.equal("hit", (find(s, { scopes = "user.read" })))
    assert.equal("hit", (find(s, { scopes = "USER.READ email" })))
    local st, secret, target, token_type = find(s, { scopes = "email user.read" })
    assert.equal("hit", st)
    assert.equal("fake-access-token", secret)
    assert.equal("User.Read openid profile email", target)
    assert.equal("Bearer", token_type)
  end)
  it("miss when a scope was not granted", function()
    assert.equal("none", (find(s, { scopes = "user.read mail.read" })))
    assert.equal("none", (find(s, { scopes = "user.readwrite" })))
  end)
  it("match environments through the cloud's aliases", function()
    for _, env in ipairs({ "login.microsoftonline.com", "login.windows.net", "LOGIN.MICROSOFT.COM", "sts.windows.net" }) do
      assert.equal("hit", (find(s, { env = env })), env)
    end
    assert.equal("none", (find(s, { env = "login.microsoftonline.us" })))
  end)
  it("keep realms apart", function()
    assert.equal("none", (find(s, { realm = "organizations" })))
    assert.equal("none", (find(s, { realm = "other-tenant" })))
    assert.equal("hit", (find(s, { realm = F.TENANT:upper() })))
  end)
  it("keep clients and accounts apart", function()
    assert.equal("none", (find(s, { client = "other-client" })))
    assert.equal("none", (find(s, { hid = "someone.else" })))
  end)
  it("treat a token within the renewal offset of expiry as expired", function()
    local exp = tonumber(F.FUTURE)
    assert.equal("hit", (find(s, { now = exp - 301 })))
    assert.equal("expired", (find(s, { now = exp - 299 })))
    assert.equal("hit", (find(s, { now = exp - 61, offset = 60 })))
    assert.equal("expired", (find(s, { now = exp + 1, offset = 0 })))
  end)
  it("treat a token cached in the future as expired (clock turned back)", function()
    assert.equal("expired", (find(s, { now = tonumber(F.PAST) - 10 })))
  end)
  it("report refresh_on passed", function()
    s = new_store(F.signed_in({ refresh_on = tostring(NOW - 1) }))
    assert.equal("refresh_due", (find(s)))
    s = new_store(F.signed_in({ refresh_on = tostring(NOW + 100) }))
    assert.equal("hit", (find(s)))
  end)
  it("serve a replaced entry's new secret", function()
    local k = next(F.signed_in().AccessToken)
    s:put("AccessToken", { secret = "rotated" }, k)
    local _, secret = find(s)
    assert.equal("rotated", secret)
  end)
  it("report two matching tokens as ambiguous", function()
    local doc = F.signed_in()
    local second = F.access_token({ target = "User.Read Mail.Read", secret = "two" })
    doc.AccessToken[core.store.key("AccessToken", second)] = second
    s = new_store(doc)
    assert.equal("multiple", (find(s)))
    assert.equal("hit", (find(s, { scopes = "mail.read" })))
  end)
  it("never answer a bearer request with a PoP token", function()
    local doc = F.doc({ AccessToken = { F.access_token({ credential_type = "AccessToken_With_AuthScheme", token_type = "pop" }) } })
    s = new_store(doc)
    assert.equal("none", (find(s)))
  end)
  it("do not count the default scopes as part of the target", function()
    -- the store looks up what the request layer asks for; the request layer
    -- drops openid/profile/offline_access (see request_spec)
    s = new_store(F.signed_in({ target = "User.Read" }))
    assert.equal("hit", (find(s, { scopes = "user.read" })))
  end)
  it("stay fast and correct with many accounts", function()
    local doc = { AccessToken = {} }
    for i = 1, 2000 do
      local at = F.access_token({ home_account_id = "uid" .. i .. "." .. F.TENANT, secret = "s" .. i })
      doc.AccessToken[core.store.key("AccessToken", at)] = at
    end
    s = new_store(doc)
    for _, i in ipairs({ 1, 777, 2000 }) do
      local st, secret = find(s, { hid = "UID" .. i .. "." .. F.TENANT })
      assert.equal("hit", st)
      assert.equal("s" .. i, secret)
    end
  end)
  it("work in a document big enough for its indexes to be huge pages", function()
    -- the indexes are sized by the document's length (64 MB and more:
    -- mapped, not malloc'd); a long unknown field makes one that big
    local doc = F.signed_in()
    doc.python_padding = string.rep("x", 64 * 1024 * 1024)
    local big = new_store(doc)
    doc.python_padding = nil
    local function secret_of(hid) return select(2, find(big, { hid = hid })) end
    assert.equal("fake-access-token", secret_of(F.HID))
    -- entries added, replaced and removed go through the same indexes
    for i = 1, 300 do
      assert(big:put("AccessToken", F.access_token({ home_account_id = "uid" .. i .. "." .. F.TENANT, secret = "s" .. i })))
    end
    assert.equal(301, big:count("AccessToken"))
    assert.equal("s150", secret_of("uid150." .. F.TENANT))
    assert(big:remove("AccessToken", big:find("AccessToken", { home_account_id = F.HID })[1]))
    assert.equal("none", (find(big)))
    -- loaded again over itself (the old indexes freed), then dropped
    assert(big:load(big:serialize()))
    assert.equal(300, big:count("AccessToken"))
    assert.equal("s7", secret_of("uid7." .. F.TENANT))
    big:close()
  end)
end)

describe("store entries", function()
  it("put computes MSAL's key and get returns every field", function()
    local s = new_store()
    local k = assert(s:put("AccessToken", F.access_token()))
    assert.equal(core.store.key("AccessToken", F.access_token()), k)
    local e = s:get("AccessToken", k)
    assert.equal("fake-access-token", e.secret)
    assert.equal(F.FUTURE, e.expires_on)
    assert.equal(1, s:count("AccessToken"))
  end)
  it("put merges into the entry of the same key, keeping fields it does not name", function()
    local doc = F.signed_in()
    local k = next(doc.AccessToken)
    doc.AccessToken[k].python_field = "keep me"
    doc.AccessToken[k].nested = { a = { 1, 2, { b = true } } }
    local s = new_store(doc)
    assert(s:put("AccessToken", { secret = "new-secret", token_type = false }, k))
    local e = s:get("AccessToken", k)
    assert.equal("new-secret", e.secret)
    assert.equal("keep me", e.python_field)
    assert.is_nil(e.token_type)
    local out = cjson.decode(s:serialize())
    assert.same({ a = { 1, 2, { b = true } } }, out.AccessToken[k].nested)
  end)
  it("put refuses entries that break the schema, and leaves the store as it was", function()
    local s = new_store(F.signed_in())
    local before = s:serialize()
    local ok, err = s:put("AccessToken", F.access_token({ expires_on = "soon" }))
    assert.is_nil(ok)
    assert.equal("expires_on", err.field)
    assert.equal(before, s:serialize())
    assert.has_error(function() s:put("AccessToken", { secret = 5 }) end)
    assert.has_error(function() s:put("Nope", {}) end)
  end)
  it("remove and find by home account and environment alias", function()
    local s = new_store(F.signed_in())
    local keys = s:find("AccessToken", { home_account_id = F.HID:upper(), environment = "login.microsoftonline.com" })
    assert.equal(1, #keys)
    assert.is_true(s:remove("AccessToken", keys[1]))
    assert.is_false(s:remove("AccessToken", keys[1]))
    assert.equal(0, s:count("AccessToken"))
    assert.equal(3, s:count())
  end)
  it("find_first gives one field of the first match, or nothing", function()
    local s = new_store(F.signed_in())
    local filter = { home_account_id = F.HID:upper(), environment = "login.windows.net", client_id = F.CLIENT,
      realm = F.TENANT }
    assert.equal(F.id_token().secret, s:find_first("IdToken", filter, "secret"))
    assert.equal(F.ENV, s:find_first("IdToken", filter, "environment"))
    filter.realm = "other-tenant"
    assert.is_nil(s:find_first("IdToken", filter, "secret"))
    assert.is_nil(s:find_first("IdToken", { home_account_id = "nobody" }, "secret"))
    assert.equal(F.HID, s:find_first("Account", {}, "home_account_id"))
    assert.has_error(function() s:find_first("IdToken", {}, "key") end)
    assert.has_error(function() s:find_first("IdToken", "x", "secret") end)
  end)
  it("lists accounts as AccountInfo tables", function()
    local s = new_store(F.signed_in())
    local a = s:accounts()
    assert.equal(1, #a)
    assert.same({ home_account_id = F.HID, environment = F.ENV, tenant_id = F.TENANT, username = "test.user@example.com",
      local_account_id = F.UID, name = "Test User", authority_type = "MSSTS" }, a[1])
  end)
  it("bumps its generation on every change", function()
    local s = new_store()
    local g = s:generation()
    local k = s:put("RefreshToken", F.refresh_token())
    assert.is_true(s:generation() > g)
    g = s:generation()
    s:remove("RefreshToken", k)
    assert.is_true(s:generation() > g)
  end)
  it("keeps a generation per home account that puts and removes of its entries, loads and aliases bump", function()
    local a, b = F.HID, "someone-else." .. F.TENANT
    local s = new_store(F.doc({ AccessToken = { F.access_token(), F.access_token({ home_account_id = b }) } }))
    local ga, gb, load = s:home_generation(a), s:home_generation(b), s:generation("load")
    assert.equal(load, ga)
    -- a put for a changes a's (also given in another case), not b's
    s:put("AccessToken", F.access_token({ secret = "new" }))
    assert.is_true(s:home_generation(a:upper()) > ga)
    assert.equal(gb, s:home_generation(b))
    assert.equal(load, s:generation("load"))
    ga = s:home_generation(a)
    local key = s:find("AccessToken", { home_account_id = b })[1]
    s:remove("AccessToken", key)
    assert.is_true(s:home_generation(b) > gb)
    assert.equal(ga, s:home_generation(a))
    -- with no entry left, b's generation still differs from before
    assert.equal(0, #s:find("AccessToken", { home_account_id = b }))
    gb = s:home_generation(b)
    assert(s:load(s:serialize()))
    assert.is_true(s:generation("load") > load)
    assert.is_true(s:home_generation(a) > ga and s:home_generation(b) > gb)
    ga = s:home_generation(a)
    s:set_aliases({ { "login.windows.net", "login.microsoftonline.com" } })
    assert.is_true(s:home_generation(a) > ga)
    assert.has_error(function() s:home_generation() end)
    assert.has_error(function() s:generation("Loads") end)
  end)
  it("keeps an Account generation that only Account changes and loads bump", function()
    local s = new_store()
    local g = s:generation("Account")
    local k = s:put("RefreshToken", F.refresh_token())
    s:put("AccessToken", F.access_token())
    s:remove("RefreshToken", k)
    assert.equal(g, s:generation("Account"))
    k = s:put("Account", F.account())
    assert.is_true(s:generation("Account") > g)
    g = s:generation("Account")
    s:remove("Account", k)
    assert.is_true(s:generation("Account") > g)
    g = s:generation("Account")
    assert(s:load(cjson.encode(F.signed_in())))
    assert.is_true(s:generation("Account") > g)
    g = s:generation("Account")
    assert(s:load(cjson.encode(F.signed_in()))) -- the same content again is still a change
    assert.is_true(s:generation("Account") > g)
    assert.has_error(function() s:generation("AccessToken") end)
  end)
  it("closes explicitly, and a closed store refuses use", function()
    local s = new_store(F.signed_in())
    s:close()
    assert.has_error(function() s:count() end, "token store is closed")
    s:close()
  end)
end)

describe("store documents", function()
  it("round-trip fields and sections they do not know", function()
    local doc = F.signed_in()
    local k = next(doc.Account)
    doc.Account[k].tenantProfiles = { '{"tenantId":"t","isHomeTenant":true}' }
    doc.Account[k].last_modification_app = "azure-cli"
    doc.FutureSection = { x = { y = { 1.5, -2e10, true, cjson.null, "é\226\130\172" } } }
    local s = new_store(doc)
    local back = cjson.decode(s:serialize())
    assert.same(doc.Account[k], back.Account[k])
    assert.same(doc.FutureSection, back.FutureSection)
    assert.same(doc.AccessToken, back.AccessToken)
  end)
  it("serialize the same big document again and again (big blocks reuse their pages)", function()
    -- > 8 MiB: the document buffer and, on Lua 5.4, the string itself come
    -- from huge pages that later calls reuse
    local doc = { AccessToken = {} }
    for i = 1, 6000 do
      local at = F.access_token({ home_account_id = "uid" .. i .. "." .. F.TENANT,
        secret = ("s%06d"):format(i) .. string.rep("x", 1500) })
      doc.AccessToken[core.store.key("AccessToken", at)] = at
    end
    local s = new_store(doc)
    local first = s:serialize()
    assert.is_true(#first > 8 * 1024 * 1024)
    for _ = 1, 4 do
      local again = s:serialize()
      assert.equal(#first, #again)
      assert.is_true(first == again)
    end
    local back = new_store(first)
    assert.equal(first, back:serialize())
    local st, secret = find(back, { hid = "uid4321." .. F.TENANT })
    assert.equal("hit", st)
    assert.equal("s004321" .. string.rep("x", 1500), secret)
  end)
  it("keep numbers-as-strings strings", function()
    local s = new_store(F.signed_in())
    local text = s:serialize()
    assert.matches('"expires_on":"' .. F.FUTURE .. '"', text, 1, true)
  end)
  it("read msal-python's indented output, escapes and null home_account_id", function()
    local python = [[
{
    "AccessToken": {
        "-login.microsoftonline.com-accesstoken-cid-tenant-scope": {
            "credential_type": "AccessToken",
            "secret": "app-token\u00e9\"x",
            "home_account_id": null,
            "environment": "login.microsoftonline.com",
            "client_id": "cid",
            "target": "https://graph.microsoft.com/.default",
            "realm": "tenant",
            "token_type": "Bearer",
            "cached_at": "1767225600",
            "expires_on": "1893456000",
            "extended_expires_on": "1893456000"
        }
    },
    "App\u004detadata": {}
}]]
    local s = new_store(python)
    assert.equal(1, s:count("AccessToken"))
    local st, info = s:find_access_token("", "login.windows.net", "cid", "tenant",
      "https://graph.microsoft.com/.default", NOW, 300, {})
    assert.equal("hit", st)
    assert.equal('app-tokené"x', info.secret)
    local back = cjson.decode(s:serialize())
    assert.equal(cjson.null, back.AccessToken["-login.microsoftonline.com-accesstoken-cid-tenant-scope"].home_account_id)
  end)
  it("treat an empty document as an empty cache", function()
    local s = new_store(F.signed_in())
    assert(s:load("  \n"))
    assert.equal(0, s:count())
    assert(s:load("{}"))
  end)

  -- strings are scanned 16 bytes at a time (SSE2), then 8, and ids hashed 8
  -- at a time: a stop byte or an upper-case letter must be seen at every
  -- position within a block, a word and the tail after them
  it("see a quote, escape or control character at any position in a string", function()
    for pad = 0, 49 do
      local s = core.store.new()
      local prefix = ("x"):rep(pad)
      assert(s:load('{"X":"' .. prefix .. '\\"q"}'), "escape after " .. pad)
      assert.matches('\\"q"', s:serialize(), 1, true)
      local ok, err = s:load('{"X":"' .. prefix .. '\1"}')
      assert.is_nil(ok, "control character after " .. pad)
      assert.equal(6 + pad, err.offset)
      ok = s:load('{"X":"' .. prefix .. '\255"}')
      assert.is_nil(ok, "invalid UTF-8 after " .. pad)
      assert(s:load('{"X":"' .. prefix .. '\195\169"}'), "UTF-8 after " .. pad)
      s:close()
    end
  end)

  it("find accounts whatever the case of any letter of their id", function()
    for i = 1, #F.HID do
      local c = F.HID:sub(i, i)
      if c:match("%a") then
        local s = new_store(F.signed_in())
        local hid = F.HID:sub(1, i - 1) .. c:upper() .. F.HID:sub(i + 1)
        assert.equal("hit", (find(s, { hid = hid })), "upper-case letter at " .. i)
        s:close()
      end
    end
  end)

  local bad = {
    { "truncated JSON", '{"Account":{', "offset" },
    { "trailing data", '{} x', "offset" },
    { "not an object", '[1,2]', "offset" },
    { "bad escape", '{"Account":{"k\\q":{}}}', "offset" },
    { "control character", '{"A":"a\1b"}', "offset" },
    { "invalid UTF-8", '{"A":"\255"}', "offset" },
    { "lone surrogate", '{"A":"\\ud800"}', "offset" },
    { "deep nesting", '{"X":' .. ("["):rep(100) .. ("]"):rep(100) .. "}", "offset" },
    { "section of the wrong type", '{"AccessToken":[]}', "section" },
    { "entry of the wrong type", '{"AccessToken":{"k":"v"}}', "section" },
    { "number where MSAL writes a string", { expires_on = 1893456000 }, "expires_on" },
    { "missing required field", { secret = false }, "secret" },
    { "huge number", { expires_on = "99999999999999999999999" }, "expires_on" },
    { "negative time", { cached_at = "-5" }, "cached_at" },
    { "wrong credential type", { credential_type = "accesstoken" }, "credential_type" },
    { "field twice", "dup", "secret" },
  }
  for _, case in ipairs(bad) do
    it("refuse " .. case[1] .. " and keep what they had", function()
      local s = new_store(F.signed_in())
      local before = s:serialize()
      local text = case[2]
      if type(text) == "table" then
        local at = F.access_token()
        for k, v in pairs(text) do
          if v == false then at[k] = nil else at[k] = v end
        end
        text = cjson.encode(F.doc({ AccessToken = {} }))
        text = text:gsub('"AccessToken":{}', '"AccessToken":{"the-key":' .. cjson.encode(at) .. "}")
      elseif text == "dup" then
        text = '{"AccessToken":{"the-key":' .. cjson.encode(F.access_token()):gsub("^{", '{"secret":"x",') .. "}}"
      end
      local ok, err = s:load(text)
      assert.is_nil(ok)
      assert.is_string(err.message)
      if case[3] == "offset" then
        assert.is_number(err.offset)
      elseif case[3] == "section" then
        assert.equal("AccessToken", err.section)
      else
        assert.equal("AccessToken", err.section)
        assert.equal("the-key", err.key)
        assert.equal(case[3], err.field)
      end
      assert.equal(before, s:serialize())
    end)
  end
end)
