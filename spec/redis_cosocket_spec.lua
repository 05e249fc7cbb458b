-- msal.cache.redis_cosocket against a scripted stand-in for ngx.socket.tcp:
-- the encoding, reads that arrive in pieces, and the C scanner's typed errors.
-- (Inside real nginx: spec/hosts/openresty_redis_spec.lua.)
describe("redis_cosocket (scripted socket)", function()
  local M, sent, chunks, closed, kept, reused, handshake, pool

  before_each(function()
    sent, chunks, closed, kept, reused, pool = {}, {}, false, false, 0, nil
    handshake = function() return true end
    local sock = {
      settimeouts = function() end,
      connect = function(_, _, _, o) pool = o.pool return true end,
      getreusedtimes = function() if closed then return nil, "closed" end return reused end,
      sslhandshake = function(_, ...) return handshake(...) end,
      send = function(_, s) sent[#sent + 1] = s; return #s end,
      receiveany = function()
        local c = table.remove(chunks, 1)
        if not c then return nil, "timeout" end
        return c
      end,
      close = function() closed = true end,
      setkeepalive = function() kept = true; return true end,
    }
    _G.ngx = { socket = { tcp = function() return sock end } }
    package.loaded["msal.cache.redis_cosocket"] = nil
    M = require("msal.cache.redis_cosocket")
  end)

  after_each(function() _G.ngx = nil end)

  it("encodes a command and reads a reply that arrives in pieces", function()
    local c = assert(M.connect({ host = "127.0.0.1", port = 6379 }))
    chunks = { "$5\r\nhe", "llo\r\n" }
    assert.equal("hello", c:command("GET", "k"))
    assert.equal("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", sent[1])
    c:close()
    assert.is_true(kept)
  end)

  it("returns an error reply as SERVER and a pipeline's replies in order", function()
    local c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "-ERR nope\r\n" }
    local v, msg, code = c:command("X")
    assert.is_nil(v); assert.equal("ERR nope", msg); assert.equal("SERVER", code)
    chunks = { "+OK\r\n$-1\r\n:3\r\n-ERR x\r\n" }
    local rs = assert(c:pipeline({ { "A" }, { "B" }, { "C" }, { "D" } }))
    assert.same({ "OK", false, 3, { err = "ERR x" } }, rs)
  end)

  it("gives a malformed reply the typed error EPROTO and closes", function()
    local c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "?what\r\n" }
    local v, _, code = c:command("GET", "k")
    assert.is_nil(v); assert.equal("EPROTO", code)
    assert.is_true(closed); assert.is_false(c:is_open())
  end)

  it("gives a reply over a cap EMSGSIZE", function()
    local c = assert(M.connect({ host = "127.0.0.1", max_bulk = 4 }))
    chunks = { "$100\r\n" }
    local v, _, code = c:command("GET", "k")
    assert.is_nil(v); assert.equal("EMSGSIZE", code)
  end)

  it("authenticates and selects only on a fresh connection, and pools by user, database and password", function()
    chunks = { "+OK\r\n", "+OK\r\n" }
    local o = { host = "127.0.0.1", port = 6379, username = "app", password = "secret", db = 2 }
    local c = assert(M.connect(o))
    assert.is_false(c.reused)
    assert.equal("*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\nsecret\r\n", sent[1])
    assert.equal("*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n", sent[2])
    assert.matches("app:2:", pool, 1, true)
    assert.falsy(pool:find("secret", 1, true))
    local first = pool
    reused, sent = 1, {}
    c = assert(M.connect(o))
    assert.is_true(c.reused)
    assert.same({}, sent)
    o.password = "other"
    M.connect(o)
    assert.are_not.equal(first, pool)
  end)

  it("closes, rather than pools, a connection left inside WATCH or MULTI", function()
    local c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "+OK\r\n" }
    c:command("WATCH", "k")
    c:close()
    assert.is_false(kept); assert.is_true(closed)
    closed = false
    c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n" }
    c:pipeline({ { "MULTI" }, { "SET", "k", "v" }, { "EXEC" } })
    c:close()
    assert.is_true(kept)
  end)

  it("types TLS failures: CERT for a certificate nginx refused, also when it only closed the socket", function()
    handshake = function(reuse, name, verify)
      assert.is_false(reuse); assert.equal("localhost", name); assert.is_true(verify)
      return nil, "19: self-signed certificate in certificate chain"
    end
    local c, msg, code = M.connect({ host = "127.0.0.1", tls = { server_name = "localhost" } })
    assert.is_nil(c); assert.equal("CERT", code)
    assert.matches("certificate check failed: 19: self-signed", msg, 1, true)
    handshake = function() return nil, "certificate host mismatch" end
    closed = false
    c, msg, code = M.connect({ host = "127.0.0.1", tls = true })
    assert.is_nil(c); assert.equal("CERT", code)
    assert.matches("give cache.tls.server_name", msg, 1, true)
    -- lua-nginx-module 0.10.23: success reported, the socket closed
    handshake = function() closed = true return true end
    c, msg, code = M.connect({ host = "127.0.0.1", tls = { server_name = "localhost" } })
    assert.is_nil(c); assert.equal("CERT", code)
    assert.matches("nginx closed the connection after the handshake", msg, 1, true)
    handshake = function() return nil, "handshake timed out" end
    closed = false
    c, _, code = M.connect({ host = "127.0.0.1", tls = true })
    assert.is_nil(c); assert.equal("TLS", code)
  end)

  it("reports a stalled server as ETIMEDOUT", function()
    local c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "$5\r\nhe" }
    local v, _, code = c:command("GET", "k")
    assert.is_nil(v); assert.equal("ETIMEDOUT", code)
  end)
end)

-- msal.cache.redis as it runs inside nginx, against a real redis-server:
-- a stand-in `ngx` says which phase it is, and the cosocket connections are
-- stand-ins over msal.core.redis connections that log what went over each
-- and whether it was given back. What is checked is the plugin's part:
-- cosockets in request phases, the C client elsewhere, one session per
-- access, nothing kept between accesses, WATCH ... EXEC on one connection.
describe("the Redis cache with cosockets (stand-in ngx, real redis-server)", function()
  local core = require("msal.core")
  local cjson = require("cjson")
  local F = require("fixtures")
  local redis_server = require("redis_server")

  local server, phase, opened, c_connects, real_c_connect, cosock

  setup(function()
    server = redis_server.start()
  end)

  teardown(function()
    if server then server:stop() end
  end)

  before_each(function()
    local c = assert(core.redis.connect(server:conn_opts()))
    c:command("FLUSHALL")
    c:close()
    phase, opened, c_connects = "content", {}, 0
    _G.ngx = {
      get_phase = function() return phase end,
      socket = {},
      sleep = function(s) core.sleep_ms(s * 1000) end,
    }
    real_c_connect = core.redis.connect
    core.redis.connect = function(o)
      c_connects = c_connects + 1
      return real_c_connect(o)
    end
    package.loaded["msal.cache.redis_cosocket"] = nil
    cosock = require("msal.cache.redis_cosocket")
    cosock.connect = function(o)
      local real, err, code = real_c_connect(o)
      if not real then return nil, err, code end
      local conn = { log = {}, kept = false }
      opened[#opened + 1] = conn
      function conn:command(...) self.log[#self.log + 1] = (...) return real:command(...) end
      function conn:pipeline(cmds)
        for _, cmd in ipairs(cmds) do self.log[#self.log + 1] = cmd[1] end
        return real:pipeline(cmds)
      end
      function conn:is_open() return not self.kept and real:is_open() end
      function conn:close() self.kept = true real:close() end
      return conn
    end
  end)

  after_each(function()
    core.redis.connect = real_c_connect
    package.loaded["msal.cache.redis_cosocket"] = nil
    _G.ngx = nil
  end)

  local HID = "00000000-0000-0000-aaaa-000000000001." .. F.TENANT

  local function doc(secret)
    return F.doc({
      Account = { F.account({ home_account_id = HID }) },
      AccessToken = { F.access_token({ home_account_id = HID, secret = secret }) },
      RefreshToken = { F.refresh_token({ home_account_id = HID, secret = "rt" }) },
    })
  end

  local function new_cache()
    local plugin = require("msal.cache.redis").new({ url = server:url(), local_ttl_ms = 0 })
    return plugin, require("msal.cache").new(F.CLIENT, F.partitioned(plugin, HID))
  end

  local secrets = F.secrets

  it("uses a connection of its own per access in request phases, gives it back, keeps none", function()
    local plugin, tc = new_cache()
    tc:access(true, function() assert(tc.store:load(cjson.encode(doc("at-1")))) end)
    assert.same({ "at-1" }, secrets(tc))
    assert.same({ "at-1" }, secrets(tc))
    assert.equal(0, c_connects)
    -- a write: its read (before) and its WATCH ... EXEC (after); two reads
    assert.equal(4, #opened)
    for _, c in ipairs(opened) do assert.is_true(c.kept) end
    assert.is_nil(next(plugin.router.conns), "the router kept a cosocket connection")
    -- the write's WATCH, GET, MULTI ... EXEC went over one connection
    local w = opened[2].log
    assert.equal("WATCH", w[1])
    assert.equal("EXEC", w[#w])
    local c = assert(real_c_connect(server:conn_opts()))
    assert.truthy(c:command("GET", plugin:key_for(F.CLIENT, HID)):find("at-1", 1, true))
    c:close()
  end)

  it("uses the C client outside request phases (init_worker) and outside nginx", function()
    local plugin, tc = new_cache()
    phase = "init_worker"
    tc:access(true, function() assert(tc.store:load(cjson.encode(doc("at-2")))) end)
    assert.same({ "at-2" }, secrets(tc))
    assert.equal(0, #opened)
    assert.equal(1, c_connects) -- the router's own, kept across accesses
    assert.is_not_nil(next(plugin.router.conns))
    _G.ngx = nil
    assert.same({ "at-2" }, secrets(tc))
    assert.equal(0, #opened)
    plugin:close()
  end)

  it("takes, holds and releases the refresh lock over cosockets, one session per try", function()
    local plugin = new_cache()
    local info = { client_id = F.CLIENT, home_account_id = HID }
    local unlock = assert(plugin:lock_refresh("thumb", info):await())
    local n = #opened
    assert.is_true(n >= 1)
    -- a second taker does not get it while it is held (a short wait)
    plugin.refresh_lock_wait_ms = 30
    local other = require("msal.cache.redis").new({ url = server:url(), refresh_lock_wait_ms = 30 })
    assert.is_nil(other:lock_refresh("thumb", info):await())
    unlock()
    for _, c in ipairs(opened) do assert.is_true(c.kept) end
    assert.equal(0, c_connects)
    assert.truthy(other:lock_refresh("thumb", info):await())
    assert.is_nil(next(plugin.router.conns))
  end)
end)
