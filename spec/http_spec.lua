-- The HTTP engine (csrc/http.c, csrc/loop.c) and the default transport
-- (msal.transport.curl), against real servers on 127.0.0.1 that this spec
-- starts: spec/support/http_server.py, plain and with a self-signed cert.
local cjson = require("cjson")
local core = require("msal.core")
local http = require("msal.core.http")
local loop = require("msal.loop")
local curl = require("msal.transport.curl")
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local SERVER = ROOT .. "/spec/support/http_server.py"

-- The ASan run preloads the sanitizer runtime; the servers must not get it.
local function start_server(args)
  local cmd = "exec env -u LD_PRELOAD python3 " .. proc.quote(SERVER) .. " " .. (args or "")
  local fh = assert(io.popen(cmd, "r"))
  local line = fh:read("*l")
  assert(line, "the test server did not start")
  local info = cjson.decode(line)
  local port = ("%d"):format(info.port) -- cjson may decode 8080 as 8080.0
  return {
    fh = fh, pid = ("%d"):format(info.pid), port = port,
    url = "http://127.0.0.1:" .. port,
    stop = function(self)
      os.execute("kill " .. self.pid .. " 2>/dev/null")
      self.fh:close()
    end,
  }
end

-- Runs the loop until done has been called, returns its (err, res).
local function fetch(t, req)
  local got
  t:request(req, function(err, res) got = { err = err, res = res } end)
  loop.run_until(function() return got ~= nil end)
  return got.err, got.res
end

describe("msal.core.http and msal.transport.curl", function()
  local srv, t

  setup(function()
    srv = start_server()
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    loop.reset()
    t = curl.new()
  end)

  after_each(function()
    t:close()
    loop.reset()
  end)

  describe("requests", function()
    it("GETs with headers and returns status, lower-case headers and body", function()
      local err, res = fetch(t, {
        url = srv.url .. "/echo?a=1",
        headers = { ["X-Test"] = "hello", Accept = "application/json", ["X-Empty"] = "" },
      })
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal("application/json", res.headers["content-type"])
      assert.is_nil(res.headers["Content-Type"])
      local echo = cjson.decode(res.body)
      assert.equal("GET", echo.method)
      assert.equal("/echo?a=1", echo.path)
      assert.equal("hello", echo.headers["x-test"])
      assert.equal("application/json", echo.headers.accept)
      assert.equal("", echo.headers["x-empty"])
      assert.is_nil(echo.headers.expect)
    end)

    it("POSTs a body and sends other methods as asked", function()
      local body = "grant_type=refresh_token&refresh_token=a%20b&x=" .. ("y"):rep(5000)
      local err, res = fetch(t, {
        method = "POST", url = srv.url .. "/echo", body = body,
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      })
      assert.is_nil(err)
      local echo = cjson.decode(res.body)
      assert.equal("POST", echo.method)
      assert.equal(body, echo.body)
      assert.equal("application/x-www-form-urlencoded", echo.headers["content-type"])
      assert.is_nil(echo.headers.expect) -- no 100-continue round trip

      err, res = fetch(t, { method = "PUT", url = srv.url .. "/echo", body = "abc" })
      assert.is_nil(err)
      echo = cjson.decode(res.body)
      assert.same({ "PUT", "abc" }, { echo.method, echo.body })

      err, res = fetch(t, { method = "DELETE", url = srv.url .. "/echo" })
      assert.is_nil(err)
      assert.equal("DELETE", cjson.decode(res.body).method)

      err, res = fetch(t, { method = "POST", url = srv.url .. "/echo" })
      assert.is_nil(err)
      assert.same({ "POST", "" }, { cjson.decode(res.body).method, cjson.decode(res.body).body })
    end)

    it("returns error statuses as responses, with repeated headers joined", function()
      local err, res = fetch(t, {
        url = srv.url .. "/x?status=503&retry_after=7&header=X-Rep:a&header=X-Rep:b&body=busy",
      })
      assert.is_nil(err)
      assert.equal(503, res.status)
      assert.equal("7", res.headers["retry-after"])
      assert.equal("a, b", res.headers["x-rep"])
      assert.equal("busy", res.body)
    end)

    it("reads chunked bodies and answers to HEAD", function()
      local err, res = fetch(t, { url = srv.url .. "/x?chunked=1&size=100000" })
      assert.is_nil(err)
      assert.equal(100000, #res.body)
      err, res = fetch(t, { method = "HEAD", url = srv.url .. "/x?size=10" })
      assert.is_nil(err)
      assert.same({ 200, "", "10" }, { res.status, res.body, res.headers["content-length"] })
    end)

    it("runs 50 requests at once", function()
      local results, n = {}, 50
      local t0 = core.now_ms()
      for i = 1, n do
        t:request({ url = srv.url .. "/x?delay=300&body=r" .. i }, function(err, res)
          results[i] = err or res
        end)
      end
      assert.equal(n, t:pending())
      loop.run_until(function()
        for i = 1, n do if not results[i] then return false end end
        return true
      end)
      for i = 1, n do
        assert.equal(200, results[i].status)
        assert.equal("r" .. i, results[i].body)
      end
      -- One after the other would take 15 s.
      assert.is_true(core.now_ms() - t0 < 5000)
      assert.equal(0, t:pending())
    end)

    it("reuses one keep-alive connection for sequential requests to a host", function()
      local conns = {}
      for i = 1, 20 do
        local err, res = fetch(t, { url = srv.url .. "/x?body=" .. i })
        assert.is_nil(err)
        assert.equal(tostring(i), res.body)
        conns[res.headers["x-conn"]] = true
      end
      local count = 0
      for _ in pairs(conns) do count = count + 1 end
      assert.equal(1, count)
    end)

    it("calls done from the loop, never synchronously, even on instant errors", function()
      local returned, calls = false, 0
      for _, url in ipairs({ srv.url .. "/x", "ftp://127.0.0.1/x" }) do
        returned = false
        t:request({ url = url }, function()
          assert.is_true(returned)
          calls = calls + 1
        end)
        returned = true
      end
      loop.run()
      assert.equal(2, calls)
    end)
  end)

  describe("failures", function()
    it("times out a slow server with kind 'timeout'", function()
      local t0 = core.now_ms()
      local err, res = fetch(t, { url = srv.url .. "/x?delay=3000", timeout_ms = 300 })
      assert.is_nil(res)
      assert.equal("timeout", err.kind)
      assert.is_string(err.message)
      assert.is_true(core.now_ms() - t0 < 2000)
    end)

    it("reports a refused connection with kind 'connect'", function()
      local _, res = fetch(t, { url = srv.url .. "/freeport" })
      local err, res2 = fetch(t, { url = "http://127.0.0.1:" .. res.body .. "/" })
      assert.is_nil(res2)
      assert.equal("connect", err.kind)
    end)

    it("refuses bodies over the cap with kind 'too_large', declared or chunked", function()
      local big = 2 * 1024 * 1024
      local err = fetch(t, { url = srv.url .. "/x?size=" .. big })
      assert.equal("too_large", err.kind)
      err = fetch(t, { url = srv.url .. "/x?chunked=1&size=" .. big })
      assert.equal("too_large", err.kind)
      local res
      err, res = fetch(t, { url = srv.url .. "/x?size=100", max_response_bytes = 100 })
      assert.is_nil(err)
      assert.equal(100, #res.body)
      err = fetch(t, { url = srv.url .. "/x?chunked=1&size=101", max_response_bytes = 100 })
      assert.equal("too_large", err.kind)
    end)

    it("refuses oversized headers with kind 'too_large'", function()
      local small = curl.new({ max_header_bytes = 1024 })
      local err = fetch(small, { url = srv.url .. "/x?header=X-Big:" .. ("b"):rep(2000) })
      assert.equal("too_large", err.kind)
      small:close()
    end)

    it("reports a server hanging up mid-body with kind 'io'", function()
      local err = fetch(t, { url = srv.url .. "/x?size=1000&close_after=10" })
      assert.equal("io", err.kind)
    end)

    it("refuses schemes other than http and https", function()
      local err = fetch(t, { url = "file:///etc/passwd" })
      assert.equal("io", err.kind)
      assert.matches("[Pp]rotocol", err.message)
    end)

    it("raises on malformed requests instead of sending them", function()
      local function req(r) return function() t:request(r, function() end) end end
      assert.has_error(req({ url = srv.url, headers = { ["X-A"] = "a\r\nX-Injected: 1" } }))
      assert.has_error(req({ url = srv.url, headers = { ["Bad Name"] = "a" } }))
      assert.has_error(req({ url = srv.url, method = "GET /evil" }))
      assert.has_error(req({ url = srv.url .. "\0.evil" }))
      assert.has_error(req({ url = srv.url, timeout_ms = -1 }))
      assert.has_error(req({ method = "GET" }))
      assert.equal(0, t:pending())
    end)
  end)

  describe("cancel", function()
    it("delivers 'canceled' exactly once, from the loop", function()
      local calls, seen = 0, nil
      local h = t:request({ url = srv.url .. "/x?delay=1000" }, function(err, res)
        calls = calls + 1
        seen = err or res
      end)
      h:close()
      assert.equal(0, calls)
      h:close()
      loop.run()
      assert.equal(1, calls)
      assert.equal("canceled", seen.kind)
      h:close()
      loop.run()
      assert.equal(1, calls)
    end)

    it("does nothing once the response is in", function()
      local calls = 0
      local h
      h = t:request({ url = srv.url .. "/x" }, function(err)
        assert.is_nil(err)
        calls = calls + 1
        h:close()
      end)
      loop.run()
      h:close()
      loop.run()
      assert.equal(1, calls)
    end)

    it("cancels everything when the transport closes", function()
      local kinds = {}
      for i = 1, 3 do
        t:request({ url = srv.url .. "/x?delay=1000" }, function(err) kinds[i] = err.kind end)
      end
      t:close()
      loop.run()
      assert.same({ "canceled", "canceled", "canceled" }, kinds)
      assert.has_error(function() t:request({ url = srv.url }, function() end) end)
    end)
  end)

  describe("promises", function()
    it("send resolves with the response and rejects with the err table", function()
      local res = t:send({ url = srv.url .. "/x?body=hi" }):await()
      assert.equal("hi", res.body)
      local _, port = fetch(t, { url = srv.url .. "/freeport" })
      local v, err = t:send({ url = "http://127.0.0.1:" .. port.body .. "/" }):await()
      assert.is_nil(v)
      assert.equal("connect", err.kind)
    end)
  end)

  describe("waiting", function()
    it("blocks in epoll while a slow server thinks, without burning CPU", function()
      local c0, t0 = os.clock(), core.now_ms()
      local err, res = fetch(t, { url = srv.url .. "/x?delay=1500" })
      local cpu, wall = os.clock() - c0, core.now_ms() - t0
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.is_true(wall >= 1400, "waited " .. wall .. " ms")
      assert.is_true(cpu < 0.2, "used " .. cpu .. " s of CPU")
    end)
  end)

  describe("TLS", function()
    local dir, remove_dir, tls, wrong

    -- A self-signed certificate (its own CA) for the given names.
    local function make_cert(name, san)
      local _, code = proc.sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1"
        .. " -keyout " .. proc.quote(dir .. "/" .. name .. ".key") .. " -out " .. proc.quote(dir .. "/" .. name .. ".pem")
        .. " -subj /CN=" .. san:match("DNS:([^,]+)") .. " -addext subjectAltName=" .. san .. " >/dev/null 2>&1",
        { plain = true })
      assert(code == 0, "openssl could not make a certificate")
      return "--cert " .. proc.quote(dir .. "/" .. name .. ".pem") .. " --key " .. proc.quote(dir .. "/" .. name .. ".key")
    end

    setup(function()
      dir, remove_dir = proc.tempdir()
      tls = start_server(make_cert("loopback", "IP:127.0.0.1,DNS:localhost"))
      wrong = start_server(make_cert("elsewhere", "DNS:elsewhere.invalid"))
    end)

    teardown(function()
      if tls then tls:stop() end
      if wrong then wrong:stop() end
      if remove_dir then remove_dir() end
    end)

    it("refuses a certificate no trusted CA signed", function()
      local err, res = fetch(t, { url = "https://127.0.0.1:" .. tls.port .. "/echo" })
      assert.is_nil(res)
      assert.equal("tls", err.kind)
      assert.matches("certificate", err.message)
    end)

    it("accepts it when its CA is given as ca_file, by IP and by name", function()
      local trusting = curl.new({ ca_file = dir .. "/loopback.pem" })
      for _, host in ipairs({ "127.0.0.1", "localhost" }) do
        local err, res = fetch(trusting, { url = "https://" .. host .. ":" .. tls.port .. "/echo" })
        assert.is_nil(err)
        assert.equal(200, res.status)
        assert.equal("GET", cjson.decode(res.body).method)
      end
      trusting:close()
    end)

    it("checks the host name even when the CA is trusted", function()
      local trusting = curl.new({ ca_file = dir .. "/elsewhere.pem" })
      local err, res = fetch(trusting, { url = "https://127.0.0.1:" .. wrong.port .. "/echo" })
      trusting:close()
      assert.is_nil(res)
      assert.equal("tls", err.kind)
      assert.matches("name", err.message)
    end)
  end)

  describe("the C multi handle", function()
    it("is pollable: pollfd, events, timeout, step, result", function()
      local m = http.new()
      assert.is_true(m:pollfd() >= 0)
      assert.equal("r", m:events())
      assert.is_nil(m:timeout())
      assert.same({}, m:step(0))
      local id = m:request({ url = srv.url .. "/x?body=c" })
      assert.equal(1, m:pending())
      assert.equal(0, m:timeout()) -- curl wants to start at once
      local ids = {}
      while #ids == 0 do
        local wait = m:timeout() or 1000
        core.loop.wait({ m:pollfd() }, wait)
        ids = m:step(0)
      end
      assert.same({ id }, ids)
      assert.equal(0, m:pending())
      local res = m:result(id)
      assert.equal("c", res.body)
      assert.has_error(function() m:result(id) end) -- handed over once
      m:close()
      m:close()
      assert.has_error(function() m:step(0) end)
      assert.equal(0, m:pending())
    end)

    it("reports canceled requests through step and keeps results until taken", function()
      local m = http.new()
      local a = m:request({ url = srv.url .. "/x?delay=2000" })
      local b = m:request({ url = srv.url .. "/x?body=b" })
      assert.is_true(m:cancel(a))
      assert.is_false(m:cancel(a))
      local ids = {}
      while #ids < 2 do
        for _, id in ipairs(m:step(50)) do ids[#ids + 1] = id end
      end
      assert.same({ a, b }, ids)
      assert.equal("b", m:result(b).body)
      local v, err = m:result(a)
      assert.is_nil(v)
      assert.same({ kind = "canceled", message = "the request was canceled" }, err)
      m:close()
    end)

    it("frees requests in flight and unread results on close and on collection", function()
      local m = http.new()
      for _ = 1, 5 do m:request({ url = srv.url .. "/x?delay=500", body = "x" }) end
      local done = m:request({ url = srv.url .. "/x" })
      while m:pending() > 5 do m:step(50) end
      assert.is_number(done)
      m:close() -- ASan's leak check fails the run if anything stays
      m = http.new()
      m:request({ url = srv.url .. "/x?delay=500" })
      m:step(10)
      m = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
    end)

    it("closes on leaving a to-be-closed scope (Lua 5.4)", function()
      if _VERSION ~= "Lua 5.4" then return end
      local chunk = assert(load([[
        local http, url = ...
        local m <close> = http.new()
        m:request({ url = url })
        return m
      ]]))
      local m = chunk(http, srv.url .. "/x?delay=500")
      assert.equal("msal.http.multi (closed)", tostring(m))
    end)

    it("waits on several fds at once with loop.wait", function()
      local a, b = http.new(), http.new()
      assert.same({}, core.loop.wait({ a:pollfd(), b:pollfd() }, 0))
      b:request({ url = srv.url .. "/x?delay=100" })
      b:step(0) -- starts the transfer: curl's socket is now watched
      local t0 = core.now_ms()
      local ready = {}
      while #ready == 0 and core.now_ms() - t0 < 5000 do
        ready = core.loop.wait({ a:pollfd(), b:pollfd() }, b:timeout() or 1000)
        if #ready == 0 then b:step(0) end
      end
      assert.same({ b:pollfd() }, ready)
      a:close()
      b:close()
    end)

    it("says which libcurl it uses", function()
      assert.matches("^libcurl/", http.version())
    end)
  end)
end)
