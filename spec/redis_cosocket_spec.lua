-- msal.cache.redis_cosocket against a scripted stand-in for ngx.socket.tcp:
-- the encoding, reads that arrive in pieces, and the C scanner's typed errors.
-- (Running it inside nginx is still to do: see the h/cosock report.)
describe("redis_cosocket (scripted socket)", function()
  local M, sent, chunks, closed, kept

  before_each(function()
    sent, chunks, closed, kept = {}, {}, false, false
    local sock = {
      settimeouts = function() end,
      connect = function() return true end,
      getreusedtimes = function() return 0 end,
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

  it("reports a stalled server as ETIMEDOUT", function()
    local c = assert(M.connect({ host = "127.0.0.1" }))
    chunks = { "$5\r\nhe" }
    local v, _, code = c:command("GET", "k")
    assert.is_nil(v); assert.equal("ETIMEDOUT", code)
  end)
end)
