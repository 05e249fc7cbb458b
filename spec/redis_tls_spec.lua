-- Redis over TLS with an ACL user: Debian's redis-server on a TLS-only port
-- with certificates made here (a test CA; a server certificate for
-- 127.0.0.1 and localhost), reached through msal.core.redis and through the
-- Redis token cache with a rediss:// URL. A wrong password, a wrong CA and a
-- host name the certificate is not for are typed errors naming the check.
local core = require("msal.core")
local cjson = require("cjson")
local F = require("fixtures")
local proc = require("proc")
local redis_server = require("redis_server")

local USERS = { "app on '>secret' '~*' '+@all'" }

describe("Redis over TLS", function()
  local dir, remove_dir, certs, server

  setup(function()
    dir, remove_dir = proc.tempdir()
    certs = redis_server.make_certs(dir)
    server = redis_server.start({ tls = certs, users = USERS, auth = { "app", "secret" } })
  end)

  teardown(function()
    if server then server:stop() end
    if remove_dir then remove_dir() end
  end)

  local function connect(extra)
    return core.redis.connect(server:conn_opts(extra))
  end

  it("connects with the CA, checks the certificate for 127.0.0.1 and localhost, and runs commands", function()
    local c = assert(connect())
    assert.matches("TLS", tostring(c))
    assert.equal("OK", c:command("SET", "k", "v"))
    assert.equal("v", c:command("GET", "k"))
    local rs = c:pipeline({ { "INCR", "n" }, { "INCR", "n" }, { "GET", "absent" } })
    assert.same({ 1, 2, false }, rs)
    -- a big value crosses many TLS records both ways
    local big = ("0123456789abcdef"):rep(256 * 1024) -- 4 MiB
    assert.equal("OK", c:command("SET", "big", big))
    assert.equal(big, c:command("GET", "big"))
    c:close()
    c = assert(connect({ host = "localhost" })) -- the name, checked against the certificate's DNS name
    assert.equal("PONG", c:command("PING"))
    c:close()
  end)

  it("refuses a wrong password with AUTH and the server's WRONGPASS", function()
    local c, msg, code = connect({ password = "wrong" })
    assert.is_nil(c)
    assert.equal("AUTH", code)
    assert.equal("Redis AUTH failed: WRONGPASS invalid username-password pair or user is disabled.", msg)
    c, msg, code = connect({ username = "nobody" })
    assert.is_nil(c)
    assert.equal("AUTH", code)
  end)

  it("refuses a server whose certificate another CA signed, with CERT", function()
    local c, msg, code = connect({ tls = { ca_file = certs.other_ca } })
    assert.is_nil(c)
    assert.equal("CERT", code)
    assert.matches("^cannot connect to 127%.0%.0%.1:%d+: certificate check failed: ", msg)
    assert.matches("self%-signed certificate in certificate chain", msg)
    -- the system's CAs do not know the test CA either
    c, msg, code = connect({ tls = true })
    assert.is_nil(c)
    assert.equal("CERT", code)
  end)

  it("refuses a certificate that is not for the host name, with CERT naming it", function()
    local c, msg, code = connect({ tls = { ca_file = certs.ca, server_name = "redis.example.com" } })
    assert.is_nil(c)
    assert.equal("CERT", code)
    assert.matches("the server's certificate is not for host name 'redis.example.com'", msg, 1, true)
    c, msg, code = connect({ tls = { ca_file = certs.ca, server_name = "10.9.8.7" } })
    assert.is_nil(c)
    assert.equal("CERT", code)
    assert.matches("not for IP address 10.9.8.7", msg, 1, true)
  end)

  it("says which file it cannot load, with CRYPTO", function()
    local c, msg, code = connect({ tls = { ca_file = dir .. "/missing.pem" } })
    assert.is_nil(c)
    assert.equal("CRYPTO", code)
    assert.matches("cannot load the CA file " .. dir .. "/missing.pem: No such file or directory", msg, 1, true)
  end)

  it("times out a plain client that speaks to a TLS port, or is refused (no hang)", function()
    local t0 = core.now_ms()
    local c = core.redis.connect({ port = server.port, timeout_ms = 300 })
    local r, _, code
    if c then r, _, code = c:command("PING") end
    assert.is_nil(r)
    assert.is_string(code)
    assert.is_true(core.now_ms() - t0 < 1500)
  end)

  describe("the token cache over rediss://", function()
    local redis = require("msal.cache.redis")
    local function new_cache(opts)
      return require("msal.cache").new(F.CLIENT, F.partitioned(redis.new(opts), "user-a"))
    end
    local secrets = F.secrets

    it("stores and reads a partition, with an ACL user in the URL", function()
      local url = server:url("app:secret")
      local tc = new_cache({ url = url, tls = { ca_file = certs.ca } })
      tc:access(true, function() assert(tc.store:load(cjson.encode(F.doc({
        AccessToken = { F.access_token({ secret = "over-tls" }) } })))) end)
      local other = new_cache({ url = url, tls = { ca_file = certs.ca }, local_ttl_ms = 0 })
      assert.same({ "over-tls" }, secrets(other))
    end)

    it("raises cache_unavailable naming the failed check", function()
      local tc = new_cache({ url = server:url("app:secret"), tls = { ca_file = certs.other_ca } })
      local ok, err = pcall(secrets, tc)
      assert.is_false(ok)
      assert.equal("ClientAuthError", err.name)
      assert.equal("cache_unavailable", err.error_code)
      assert.matches("certificate check failed", err.error_message, 1, true)
      tc = new_cache({ url = server:url("app:wrong"), tls = { ca_file = certs.ca } })
      ok, err = pcall(secrets, tc)
      assert.is_false(ok)
      assert.matches("WRONGPASS", err.error_message, 1, true)
      assert.is_nil(err.error_message:find("wrong", 1, true)) -- the password is not in the message
    end)

    it("takes TLS options only with rediss://, and only the known ones", function()
      for _, o in ipairs({
        { url = "redis://127.0.0.1/0", tls = { ca_file = certs.ca } },
        { url = "rediss://127.0.0.1/0", tls = { ca_fiel = certs.ca } },
        { url = "rediss://127.0.0.1/0", tls = { ca_file = 1 } },
        { url = "rediss://127.0.0.1/0", tls = { key_file = "k" } },
      }) do
        local ok, err = pcall(redis.new, o)
        assert.is_false(ok)
        assert.equal("ClientConfigurationError", err.name)
      end
      assert.same({ host = "h", port = 6380, db = 1, tls = true, username = "u", password = "p" },
        redis.parse_url("rediss://u:p@h:6380/1"))
      assert.equal(6379, redis.parse_url("rediss://h").port)
    end)

    it("is what PublicClientApplication builds from cache = {location = 'redis', url = 'rediss://…', tls = …}", function()
      local msal = require("msal")
      local app = msal.PublicClientApplication.new({
        auth = { client_id = F.CLIENT, authority = "https://login.microsoftonline.com/common" },
        cache = { location = "redis", url = server:url("app:secret"), tls = { ca_file = certs.ca } },
      })
      assert.same({}, app:get_all_accounts())
    end)
  end)

  describe("with client certificates required (mTLS)", function()
    local mserver
    setup(function()
      mserver = redis_server.start({ tls = certs, mtls = true })
    end)
    teardown(function()
      if mserver then mserver:stop() end
    end)

    it("connects with cert_file and key_file, and is refused without them", function()
      local c = assert(core.redis.connect(mserver:conn_opts()))
      assert.equal("PONG", c:command("PING"))
      c:close()
      local t0 = core.now_ms()
      local r, msg, code
      c, msg, code = core.redis.connect(mserver:conn_opts({ tls = { ca_file = certs.ca }, timeout_ms = 1000 }))
      if c then r, msg, code = c:command("PING") end -- TLS 1.3: the refusal comes after the handshake
      assert.is_nil(r)
      assert.is_true(code == "TLS" or code == "EOF" or code == "ECONNRESET", tostring(code) .. ": " .. tostring(msg))
      assert.is_true(core.now_ms() - t0 < 1500)
    end)
  end)
end)
