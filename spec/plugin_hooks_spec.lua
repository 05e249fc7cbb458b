-- Cache plugin hooks in the two shapes users write: methods, as MSAL's
-- ICachePlugin (`function plugin:before_cache_access(ctx)`, called with the
-- plugin), and plain functions of the context alone
-- (`before_cache_access = function(ctx) … end`, as the README shows). Both
-- see the same context and persist the cache through serialize/deserialize.
local msal = require("msal")
local F = require("fixtures")
local cjson = require("cjson")
local fake_transport = require("fake_transport")

local NOW = 1800000000
local AUTHORITY = "https://login.microsoftonline.com/common"
local TOKEN_URL = AUTHORITY .. "/oauth2/v2.0/token"

local function new_app(plugin, transport)
  return msal.PublicClientApplication.new({
    auth = { client_id = F.CLIENT, authority = AUTHORITY,
      authority_metadata = cjson.encode({ issuer = "https://login.microsoftonline.com/{tenantid}/v2.0",
        token_endpoint = TOKEN_URL, authorization_endpoint = AUTHORITY .. "/oauth2/v2.0/authorize" }) },
    cache = plugin,
    system = { clock = function() return NOW end, transport = transport or fake_transport.new({}) },
  })
end

-- A cache whose access token has expired: the silent call refreshes, so the
-- flow itself writes through the hooks.
local function expired_blob()
  return cjson.encode(F.signed_in({ expires_on = tostring(NOW + 100) }))
end

local function ok_response()
  return { status = 200, json = { token_type = "Bearer", scope = "User.Read openid profile", expires_in = 3600,
    access_token = "new-access-token", refresh_token = "rotated-refresh-token",
    id_token = F.jwt({ aud = F.CLIENT, iss = "https://login.microsoftonline.com/" .. F.TENANT .. "/v2.0",
      tid = F.TENANT, oid = F.UID, sub = "fake-sub", preferred_username = "test.user@example.com",
      exp = NOW + 3600, iat = NOW }),
    client_info = F.b64url(cjson.encode({ uid = F.UID, utid = F.TENANT })) } }
end

-- Each plugin keeps the serialized cache in box.blob and records what each
-- hook received: the plugin it was called on (methods only) and the context.
local SHAPES = {
  method = function(box)
    local p = { box = box, calls = {} }
    function p:before_cache_access(ctx)
      self.calls[#self.calls + 1] = { hook = "before", self = self, ctx = ctx, token_cache = ctx.token_cache }
      if self.box.blob then ctx.token_cache:deserialize(self.box.blob) end
    end
    function p:after_cache_access(ctx)
      self.calls[#self.calls + 1] = { hook = "after", self = self, ctx = ctx, token_cache = ctx.token_cache,
        changed = ctx.cache_has_changed, will_write = ctx.will_write }
      if ctx.cache_has_changed then self.box.blob = ctx.token_cache:serialize() end
    end
    return p
  end,
  plain = function(box)
    local calls = {}
    return {
      calls = calls,
      before_cache_access = function(ctx)
        calls[#calls + 1] = { hook = "before", ctx = ctx, token_cache = ctx.token_cache }
        if box.blob then ctx.token_cache:deserialize(box.blob) end
      end,
      after_cache_access = function(ctx)
        calls[#calls + 1] = { hook = "after", ctx = ctx, token_cache = ctx.token_cache,
          changed = ctx.cache_has_changed, will_write = ctx.will_write }
        if ctx.cache_has_changed then box.blob = ctx.token_cache:serialize() end
      end,
    }
  end,
}

describe("cache plugin hooks", function()
  for _, shape in ipairs({ "method", "plain" }) do
    describe(shape == "method" and "written as methods" or "written as plain functions of ctx", function()
      it("see ctx.token_cache and cache_has_changed, once per access", function()
        local box = { blob = expired_blob() }
        local plugin = SHAPES[shape](box)
        local t = fake_transport.new({ ok_response() })
        local app = new_app(plugin, t)
        local tc = app:get_token_cache()
        -- a read: before then after, nothing changed
        local accounts = app:get_all_accounts()
        assert.equal(1, #accounts)
        assert.equal(2, #plugin.calls)
        for i, hook in ipairs({ "before", "after" }) do
          local c = plugin.calls[i]
          assert.equal(hook, c.hook)
          assert.is_true(rawequal(tc, c.token_cache), hook .. " did not get the token cache in ctx")
          assert.is_false(rawequal(plugin, c.ctx), hook .. " got the plugin as its context")
          if shape == "method" then assert.is_true(rawequal(plugin, c.self)) end
        end
        assert.is_false(plugin.calls[2].changed)
        -- a refresh writes: the last access says so
        local r = assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = accounts[1] }):await())
        assert.equal("new-access-token", r.access_token)
        assert.equal(1, t.n)
        local last = plugin.calls[#plugin.calls]
        assert.equal("after", last.hook)
        assert.is_true(rawequal(tc, last.token_cache))
        assert.is_true(last.changed)
        assert.is_true(last.will_write)
        -- and a read from the cache changes nothing
        local n = #plugin.calls
        assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = accounts[1] }):await())
        assert.equal(1, t.n)
        assert.is_true(#plugin.calls > n)
        assert.is_false(plugin.calls[#plugin.calls].changed)
      end)

      it("persist tokens through serialize and deserialize", function()
        local box = { blob = expired_blob() }
        local t = fake_transport.new({ ok_response() })
        local app = new_app(SHAPES[shape](box), t)
        assert(app:acquire_token_silent({ scopes = { "User.Read" }, account = app:get_all_accounts()[1] }):await())
        local doc = cjson.decode(box.blob)
        local secrets = {}
        for _, e in pairs(doc.AccessToken) do secrets[#secrets + 1] = e.secret end
        for _, e in pairs(doc.RefreshToken) do secrets[#secrets + 1] = e.secret end
        table.sort(secrets)
        assert.same({ "new-access-token", "rotated-refresh-token" }, secrets)
        -- another app, with a fresh plugin of the same shape on the same
        -- storage, serves it without the network
        local t2 = fake_transport.new({})
        local other = new_app(SHAPES[shape](box), t2)
        local r = assert(other:acquire_token_silent({ scopes = { "User.Read" },
          account = other:get_all_accounts()[1] }):await())
        assert.is_true(r.from_cache)
        assert.equal("new-access-token", r.access_token)
        assert.equal(0, t2.n)
      end)
    end)
  end

  it("calls a hook replaced after the cache was made in its own shape", function()
    local box = { blob = expired_blob() }
    local plugin = SHAPES.method(box)
    local app = new_app(plugin)
    assert.equal(1, #app:get_all_accounts())
    -- swapped for plain functions: called with ctx alone from now on
    local seen = {}
    plugin.before_cache_access = function(ctx) seen[#seen + 1] = ctx.token_cache end
    plugin.after_cache_access = function(ctx) seen[#seen + 1] = ctx.token_cache end
    assert.equal(1, #app:get_all_accounts())
    assert.equal(2, #seen)
    assert.is_true(rawequal(app:get_token_cache(), seen[1]))
    assert.is_true(rawequal(app:get_token_cache(), seen[2]))
    -- hooks taking (self, ctx) or varargs are methods
    local got = {}
    plugin.before_cache_access = function(self, ctx) got[#got + 1] = { self, ctx.token_cache } end
    plugin.after_cache_access = function(...) got[#got + 1] = { ... } end
    assert.equal(1, #app:get_all_accounts())
    for _, g in ipairs(got) do assert.is_true(rawequal(plugin, g[1])) end
    assert.is_true(rawequal(app:get_token_cache(), got[1][2]))
    assert.is_true(rawequal(app:get_token_cache(), got[2][2].token_cache))
  end)
end)
