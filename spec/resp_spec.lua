-- The RESP client's reading of replies (csrc/resp.c through
-- msal.core.redis): the protocol's forms, the caps on every reply, and a
-- hostile server (spec/support/fake_redis.py) sending oversized and
-- malformed replies: each gives a typed error within the timeout, and the
-- client's memory stays bounded (checked in a child process's peak RSS).
local cjson = require("cjson")
local core = require("msal.core")
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local FAKE = ROOT .. "/spec/support/fake_redis.py"

local redis = core.redis

-- The ASan run preloads the sanitizer runtime; the server must not get it.
local function start_fake()
  local fh = assert(io.popen("exec env -u LD_PRELOAD python3 " .. proc.quote(FAKE), "r"))
  local line = assert(fh:read("*l"), "the fake Redis server did not start")
  local info = cjson.decode(line)
  return {
    fh = fh, pid = ("%d"):format(info.pid), port = math.floor(info.port),
    stop = function(self)
      os.execute("kill " .. self.pid .. " 2>/dev/null")
      self.fh:close()
    end,
  }
end

describe("RESP replies", function()
  describe("parse", function()
    it("reads the five RESP2 types", function()
      assert.same({ "OK", 5 }, { redis.parse("+OK\r\n") })
      assert.same({ { err = "ERR no" }, 9 }, { redis.parse("-ERR no\r\n") })
      assert.same({ -42, 6 }, { redis.parse(":-42\r\n") })
      assert.same({ "a\r\nb", 10 }, { redis.parse("$4\r\na\r\nb\r\n") })
      assert.same({ "", 6 }, { redis.parse("$0\r\n\r\n") })
      assert.same({ false, 5 }, { redis.parse("$-1\r\n") })
      assert.same({ false, 5 }, { redis.parse("*-1\r\n") })
      assert.same({ {}, 4 }, { redis.parse("*0\r\n") })
      local v, n = redis.parse("*3\r\n$3\r\nSET\r\n:1\r\n*2\r\n+a\r\n$-1\r\n+next\r\n")
      assert.same({ "SET", 1, { "a", false } }, v)
      assert.equal(30, n) -- the next reply is not part of it
      assert.equal(9223372036854775807, (redis.parse(":9223372036854775807\r\n")))
    end)

    it("says an incomplete reply is incomplete", function()
      for _, s in ipairs({ "", "+OK", "+OK\r", "$5\r\nhel", "$5\r\nhello\r", "*2\r\n:1\r\n", "*1\r\n*1\r\n" }) do
        assert.same({ nil, "an incomplete reply", "EAGAIN" }, { redis.parse(s) }, s)
      end
    end)

    it("refuses what is not RESP2 with EPROTO", function()
      local bad = {
        ["%1\r\n+a\r\n+b\r\n"] = "unknown reply type byte 0x25", -- RESP3 map
        ["_\r\n"] = "unknown reply type byte 0x5f",               -- RESP3 null
        ["$abc\r\n"] = "not a plain decimal",
        ["$+5\r\nhello\r\n"] = "not a plain decimal",
        ["$\r\n"] = "not a plain decimal",
        ["$-5\r\n"] = "a negative length %-5",
        ["*-2\r\n"] = "a negative length %-2",
        ["$3\r\nabcXY"] = "not followed by CRLF",
        [":12x\r\n"] = "not a plain decimal",
        [":999999999999999999999\r\n"] = "longer than 20 characters",
        [":9223372036854775808\r\n"] = "not a plain decimal",
        ["+OK\rX\n"] = "carriage return without a line feed",
        ["+O\nK\r\n"] = "line feed without a carriage return",
      }
      for s, why in pairs(bad) do
        local v, msg, code = redis.parse(s)
        assert.is_nil(v, s)
        assert.equal("EPROTO", code, s)
        assert.matches(why, msg, nil, false)
      end
    end)

    it("refuses a header over a cap with EMSGSIZE before its data is there", function()
      local cases = {
        { "*2000000000\r\n", "an array of 2000000000 elements, over the cap of 1048576" },
        { "*100000000\r\n$1\r\nx\r\n", "an array of 100000000 elements, over the cap" },
        { "$100000000\r\n", "a bulk string of 100000000 bytes, over the cap of 33554432" },
        { ("*1\r\n"):rep(17) .. ":1\r\n", "arrays nested deeper than 16" },
      }
      for _, c in ipairs(cases) do
        local v, msg, code = redis.parse(c[1])
        assert.is_nil(v)
        assert.equal("EMSGSIZE", code)
        assert.equal(c[2], msg:sub(1, #c[2]))
      end
      -- 16 levels are fine
      assert.is_table((redis.parse(("*1\r\n"):rep(16) .. ":1\r\n")))
    end)

    it("applies caps given to it: bulk, array, depth and the whole reply", function()
      local caps = { max_bulk = 4, max_array = 3, max_depth = 2, max_reply = 40 }
      assert.same({ "abcd", 10 }, { redis.parse("$4\r\nabcd\r\n", caps) })
      assert.equal("EMSGSIZE", select(3, redis.parse("$5\r\nabcde\r\n", caps)))
      assert.equal("EMSGSIZE", select(3, redis.parse("+abcde\r\n", caps))) -- status lines too
      assert.equal("EMSGSIZE", select(3, redis.parse("*4\r\n", caps)))
      assert.equal("EMSGSIZE", select(3, redis.parse("*1\r\n*1\r\n*1\r\n", caps)))
      -- a reply of many small parts, each within its caps, over the total
      local v, msg, code = redis.parse("*3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n*3\r\n:1\r\n:2\r\n:3\r\n", caps)
      assert.is_nil(v)
      assert.equal("EMSGSIZE", code)
      assert.matches("reply of 40 bytes can hold", msg, 1, true)
      -- an incomplete reply already longer than the total cap
      assert.equal("EMSGSIZE", select(3, redis.parse("*3\r\n" .. (":1\r\n"):rep(2) .. "+" .. ("a"):rep(4), {
        max_reply = 16 })))
      assert.has_error(function() redis.parse("+OK\r\n", { max_depth = 0 }) end)
      assert.has_error(function() redis.parse("+OK\r\n", { max_bulk = "x" }) end)
    end)
  end)

  describe("key_slot", function()
    it("is Redis Cluster's: CRC16 of the key or of its hash tag", function()
      assert.equal(12739, redis.key_slot("123456789")) -- CRC16/XMODEM check value 0x31C3
      assert.equal(redis.key_slot("user1000"), redis.key_slot("{user1000}.following"))
      assert.equal(redis.key_slot("{user1000}.following"), redis.key_slot("{user1000}.followers"))
      assert.equal(redis.key_slot("bar"), redis.key_slot("foo{bar}{zap}"))
      assert.equal(redis.key_slot("{bar"), redis.key_slot("foo{{bar}}zap"))
      assert.are_not.equal(redis.key_slot(""), redis.key_slot("foo{}{bar}")) -- an empty tag hashes the whole key
      assert.equal(redis.key_slot("foo{}{bar}"), redis.key_slot("foo{}{bar}"))
      for _, k in ipairs({ "", "a", "msal:{c:p}", ("x"):rep(1000) }) do
        local s = redis.key_slot(k)
        assert.is_true(s >= 0 and s < 16384)
      end
    end)
  end)

  describe("from a hostile server", function()
    local fake
    setup(function() fake = start_fake() end)
    teardown(function() if fake then fake:stop() end end)

    local function ask(scenario, opts)
      opts = opts or {}
      opts.port, opts.timeout_ms = fake.port, opts.timeout_ms or 500
      local c = assert(redis.connect(opts))
      local t0 = core.now_ms()
      local r, msg, code = c:command("ECHO", scenario)
      local took = core.now_ms() - t0
      local open = c:is_open()
      c:close()
      return r, msg, code, took, open
    end

    it("answers a good reply (the server works)", function()
      assert.equal("OK", (ask("ok")))
    end)

    local cases = {
      { "huge_array", "EMSGSIZE", "an array of 2000000000 elements, over the cap" },
      { "huge_announce", "EMSGSIZE", "an array of 100000000 elements, over the cap" },
      { "huge_bulk", "EMSGSIZE", "a bulk string of 100000000 bytes, over the cap" },
      { "deep", "EMSGSIZE", "arrays nested deeper than 16" },
      { "resp3_map", "EPROTO", "unknown reply type byte 0x25" },
      { "non_numeric", "EPROTO", "not a plain decimal number" },
      { "negative", "EPROTO", "a negative length -5" },
      { "no_crlf", "EPROTO", "not followed by CRLF" },
      { "bad_integer", "EPROTO", "not a plain decimal number" },
      { "truncated", "EOF", "the server closed the connection" },
      { "truncated_hold", "ETIMEDOUT", "timed out after 500 ms" },
      { "drip", "ETIMEDOUT", "timed out after 500 ms" }, -- the deadline is the call's, not each read's
    }
    for _, c in ipairs(cases) do
      it(c[1] .. ": " .. c[2] .. " within the timeout, and the connection is closed", function()
        local r, msg, code, took, open = ask(c[1])
        assert.is_nil(r)
        assert.equal(c[2], code)
        assert.matches("^Redis command failed: ", msg)
        assert.matches(c[3], msg, 1, true)
        assert.is_true(took < 1500, c[1] .. " took " .. took .. " ms")
        assert.is_false(open)
      end)
    end

    it("endless_line: EMSGSIZE once a line passes max_bulk", function()
      local r, msg, code, took = ask("endless_line", { max_bulk = 1048576, timeout_ms = 5000 })
      assert.is_nil(r)
      assert.equal("EMSGSIZE", code)
      assert.matches("a status or error line longer than 1048576 bytes", msg, 1, true)
      assert.is_true(took < 5000)
    end)

    it("keeps the client's memory bounded (peak RSS of a child under 100 MB)", function()
      -- a child of its own, so that the peak is the client's alone
      local path = proc.lua_script(os.tmpname(), [[
local redis = require("msal.core").redis
local port = tonumber(arg[1])
local function ask(scenario, opts)
  opts = opts or {}
  opts.port, opts.timeout_ms = port, opts.timeout_ms or 300
  local c = assert(redis.connect(opts))
  local r, msg, code = c:command("ECHO", scenario)
  c:close()
  io.write(scenario, " ", tostring(code), "\n")
end
ask("huge_array")
ask("huge_announce")
ask("huge_bulk")
ask("deep")
-- caps raised as far as they go: a 100 MB bulk announced, 64 KiB sent, the
-- rest never comes; the buffer grows with what came, not what was announced
ask("bulk_trickle", { max_bulk = 1073741824, max_reply = 1073741824 })
ask("huge_bulk", { max_bulk = 1073741824, max_reply = 1073741824 })
ask("huge_announce", { max_array = 1073741824, max_reply = 1073741824 })
ask("endless_line", { timeout_ms = 10000 }) -- the default caps: 32 MiB per line
collectgarbage()
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s*(%d+)")
  if kb then io.write("peak ", kb, "\n") end
end
]])
      local out = proc.sh(proc.LUA .. " " .. path .. " " .. fake.port)
      os.remove(path)
      assert.matches("huge_array EMSGSIZE\nhuge_announce EMSGSIZE\nhuge_bulk EMSGSIZE\ndeep EMSGSIZE\n" ..
        "bulk_trickle ETIMEDOUT\nhuge_bulk ETIMEDOUT\nhuge_announce ETIMEDOUT\nendless_line EMSGSIZE\n", out, 1, true)
      local kb = tonumber(out:match("peak (%d+)"))
      assert.is_number(kb, out)
      local limit = os.getenv("MSAL_TEST_ASAN") and 400 * 1024 or 100 * 1024
      assert.is_true(kb < limit, "peak RSS " .. kb .. " kB")
    end)
  end)
end)
