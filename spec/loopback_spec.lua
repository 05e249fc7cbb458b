-- The loopback redirect listener: csrc/loopback.c (msal.core.loopback) and
-- lua/msal/loopback.lua (wait_for_redirect), driven by real clients: curl
-- and bash's /dev/tcp, run in the background while the Lua side awaits.
local core = require("msal.core")
local loop = require("msal.loop")
local loopback = require("msal.loopback")
local proc = require("proc")

local STATE = "st4te-Zq9_x"
local CODE = "c0de-SECRET-4242"

local write_file = require("files").write

-- A shell command's stdout, without the ASan preload.
local function run_cmd(cmd)
  return (proc.run(cmd, { plain = true }))
end

local tmp, remove_tmp = proc.tempdir()
local seq = 0

-- busted runs this after the last test of the file.
teardown(function()
  remove_tmp()
end)

-- A bash script run in the background (without the ASan preload); its
-- output and exit status land in files that wait() collects.
local Job = {}
Job.__index = Job

local function bg(script)
  seq = seq + 1
  local base = ("%s/job%d"):format(tmp, seq)
  write_file(base .. ".sh", script)
  return setmetatable({ base = base, job = proc.background("bash " .. proc.quote(base .. ".sh"), base,
    { plain = true }) }, Job)
end

function Job:done()
  return self.job:done()
end

-- The job's output and exit status; fails if it has not exited in limit_ms.
function Job:wait(limit_ms)
  local rc = self.job:wait(limit_ms or 15000)
  assert(rc ~= nil, "background job did not finish: " .. self.base)
  return self.job:output(), rc
end

-- `curl -i`, with a marker line before each answer so a script's several
-- requests can be told apart; "CURL <exit code>" after each.
local function curl(url, extra)
  return ("echo '=== %s'; curl -s -i --max-time 10 %s %s; rc=$?; echo; echo \"CURL $rc\"\n")
    :format(url:gsub("'", ""), extra or "", proc.quote(url))
end

-- Splits a script's output by the markers: answers[i] = {status, text, rc}
-- (status nil when no HTTP answer came).
local function answers(out)
  local list, text = {}, "\n" .. out
  local pos = text:find("\n=== ", 1, true)
  while pos do
    local nxt = text:find("\n=== ", pos + 1, true)
    local block = text:sub(pos + 5, (nxt or #text + 1) - 1)
    list[#list + 1] = {
      status = tonumber(block:match("^[^\n]*\nHTTP/1%.1 (%d%d%d)")),
      text = block,
      rc = tonumber(block:match("\nCURL (%d+)")),
    }
    pos = nxt
  end
  return list
end

-- Runs wait_for_redirect, starting script(redirect_uri, port) as soon as
-- the listener is up; returns the outcome and the script's output.
local function flow(opts, script)
  local job
  opts.expected_state = opts.expected_state or STATE
  opts.on_listening = function(uri)
    job = bg(script(uri, tonumber(uri:match(":(%d+)/"))))
  end
  local p, handle = loopback.wait_for_redirect(opts)
  local res, err = p:await()
  local out = job and job:wait() or ""
  return res, err, out, handle
end

local function good(uri)
  return uri .. "?code=" .. CODE .. "&state=" .. STATE .. "&session_state=abc"
end

-- Connecting now: "000 7" when refused.
local function probe(url)
  return run_cmd("curl -s -o /dev/null --max-time 5 -w '%{http_code}' " .. proc.quote(url) .. "; echo \" $?\"")
end

-- LISTEN sockets on port, as the kernel lists them (hex addresses).
local function listening_addresses(port)
  local found = {}
  for _, f in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local fh = io.open(f)
    if fh then
      for line in fh:lines() do
        local addr, p, st = line:match("^%s*%d+:%s+(%x+):(%x+)%s+%x+:%x+%s+(%x+)")
        if addr and tonumber(p, 16) == port and st == "0A" then found[#found + 1] = addr end
      end
      fh:close()
    end
  end
  table.sort(found)
  return found
end

local V4_LOOPBACK = "0100007F"
local V6_LOOPBACK = "00000000000000000000000001000000"

local function has_ipv6_loopback()
  local l, _, code = core.loopback.listen({ host = "::1" })
  if l then
    l:close()
    return true
  end
  assert(code == "EADDRNOTAVAIL" or code == "EAFNOSUPPORT", "unexpected failure probing ::1: " .. tostring(code))
  return false
end

local function non_loopback_ips()
  local ips = {}
  for ip in run_cmd("hostname -I 2>/dev/null"):gmatch("%S+") do
    if not ip:match("^127%.") and ip ~= "::1" then ips[#ips + 1] = ip end
  end
  return ips
end

-- Raw bytes to a listener from bash's /dev/tcp: sends data, then prints
-- whatever comes back until the server closes (at most 3 s).
local function raw_client(port, data)
  seq = seq + 1
  local file = ("%s/raw%d"):format(tmp, seq)
  write_file(file, data)
  return bg(("exec 3<>/dev/tcp/127.0.0.1/%d || exit 9\ncat %s >&3\ntimeout 3 cat <&3\necho \"[closed $?]\"\n")
    :format(port, proc.quote(file)))
end

-- Steps a bare listener until job finishes; each request is handed to
-- on_req (default: answered 200 "ok").
local function drive(l, job, on_req)
  local deadline = core.now_ms() + 10000
  while not job:done() do
    assert(core.now_ms() < deadline, "client did not finish")
    l:step(20)
    local r = l:take()
    while r do
      if on_req then on_req(r) else l:respond(r.conn, 200, { ["Content-Type"] = "text/plain" }, "ok") end
      r = l:take()
    end
  end
  return job:wait()
end

-- Open connections once the listener has seen the clients' closes: a client
-- that has finished may close after drive()'s last step.
local function settled(l)
  local deadline = core.now_ms() + 2000
  while l:pending() > 0 and core.now_ms() < deadline do l:step(20) end
  return l:pending()
end

describe("msal.core.loopback", function()
  local l

  before_each(function()
    loop.reset()
  end)

  after_each(function()
    if l then l:close() end
    l = nil
  end)

  it("binds loopback only and refuses every other host", function()
    for _, host in ipairs({ "0.0.0.0", "::", "192.0.2.2", "127.0.0.2", "example.com", "" }) do
      local x, msg, code = core.loopback.listen({ host = host })
      assert.is_nil(x)
      assert.equal("EINVAL", code)
      assert.truthy(msg:find("only 127.0.0.1", 1, true))
    end
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    assert.same({ V4_LOOPBACK }, listening_addresses(l:port()))
  end)

  it("binds 127.0.0.1 and, when the kernel has it, ::1 for localhost on one port", function()
    l = assert(core.loopback.listen({ host = "localhost" }))
    local want = { V4_LOOPBACK }
    if has_ipv6_loopback() then want[2] = V6_LOOPBACK end
    table.sort(want)
    assert.same(want, listening_addresses(l:port()))
  end)

  it("does not share a port someone holds", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local other, msg, code = core.loopback.listen({ host = "127.0.0.1", port = l:port() })
    assert.is_nil(other)
    assert.equal("EADDRINUSE", code)
    assert.truthy(msg:find("in use", 1, true))
  end)

  it("checks its options", function()
    assert.has_error(function() core.loopback.listen({ port = 70000 }) end)
    assert.has_error(function() core.loopback.listen({ port = 1.5 }) end)
    assert.has_error(function() core.loopback.listen({ path = "cb" }) end)
    assert.has_error(function() core.loopback.listen({ path = "/cb?x=1" }) end)
    assert.has_error(function() core.loopback.listen({ max_request_bytes = 10 }) end)
    assert.has_error(function() core.loopback.listen({ request_timeout_ms = 0 }) end)
  end)

  it("hands over a parsed request: method, target, path, query, lower-case headers, body", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local got
    local out = drive(l, bg(curl(("http://127.0.0.1:%d/cb/x?a=1&b=%%20"):format(l:port()),
      "-X POST -H 'X-Twice: one' -H 'x-twice: two' --data-binary hello")), function(r)
      got = r
      assert.is_true(l:respond(r.conn, 202, { ["X-Answer"] = "yes" }, "done"))
    end)
    assert.equal("POST", got.method)
    assert.equal("/cb/x?a=1&b=%20", got.target)
    assert.equal("/cb/x", got.path)
    assert.equal("a=1&b=%20", got.query)
    assert.equal("HTTP/1.1", got.version)
    assert.equal("hello", got.body)
    assert.equal("one, two", got.headers["x-twice"])
    assert.equal("5", got.headers["content-length"])
    assert.equal("number", type(got.conn))
    local a = answers(out)[1]
    assert.equal(202, a.status)
    assert.truthy(a.text:find("X-Answer: yes", 1, true))
    assert.truthy(a.text:find("Content-Length: 4", 1, true))
    assert.truthy(a.text:find("Connection: close", 1, true))
    assert.truthy(a.text:find("\r\n\r\ndone", 1, true))
    assert.equal(0, settled(l))
  end)

  it("answers 404 itself for paths other than the redirect path", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", path = "/cb" }))
    local base = ("http://127.0.0.1:%d"):format(l:port())
    local taken = {}
    local out = drive(l, bg(curl(base .. "/favicon.ico") .. curl(base .. "/cbx") .. curl(base .. "/cb?x")),
      function(r)
        taken[#taken + 1] = r.target
        l:respond(r.conn, 200, nil, "ok")
      end)
    local a = answers(out)
    assert.same({ 404, 404, 200 }, { a[1].status, a[2].status, a[3].status })
    assert.same({ "/cb?x" }, taken)
  end)

  local malformed = {
    { "HTTP/0.9", "GET /\r\n", 400 },
    { "a bare LF", "GET / HTTP/1.1\nHost: x\n\n", 400 },
    { "a bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400 },
    { "no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400 },
    { "two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
    { "an absolute-form target", "GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
    { "a space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400 },
    { "a folded header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400 },
    { "a control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\0012\r\n\r\n", 400 },
    { "a NUL byte", "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
    { "two Content-Length headers", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nab", 400 },
    { "a signed Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\na", 400 },
    { "Transfer-Encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
    { "a blank line first", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400 },
    { "a lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400 },
  }
  for _, case in ipairs(malformed) do
    it("refuses " .. case[1] .. " with " .. case[3] .. " and closes", function()
      l = assert(core.loopback.listen({ host = "127.0.0.1" }))
      local handed = false
      local out = drive(l, raw_client(l:port(), case[2]), function(r)
        handed = true
        l:respond(r.conn, 200, nil, "ok")
      end)
      assert.is_false(handed)
      assert.equal(case[3], tonumber(out:match("^HTTP/1%.1 (%d%d%d) ")))
      assert.truthy(out:find("[closed 0]", 1, true)) -- EOF, not cat's timeout (124)
    end)
  end

  it("accepts HTTP/1.0 without Host and answers HEAD without a body", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local out = drive(l, raw_client(l:port(), "HEAD /x HTTP/1.0\r\n\r\n"), function(r)
      assert.equal("HEAD", r.method)
      assert.equal("HTTP/1.0", r.version)
      l:respond(r.conn, 200, nil, "body")
    end)
    assert.truthy(out:find("^HTTP/1%.1 200 OK\r\n"))
    assert.truthy(out:find("Content-Length: 4\r\n", 1, true))
    assert.is_nil(out:find("body", 1, true))
  end)

  it("answers 413 to a request over max_request_bytes, declared or sent", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", max_request_bytes = 1024 }))
    local base = ("http://127.0.0.1:%d/"):format(l:port())
    local big = ("a"):rep(2000)
    local out = drive(l, bg(curl(base, "-H 'X-Big: " .. big .. "'")
      .. curl(base, "-H 'Content-Length: 5000' --data-binary x")
      .. curl(base, "--data-binary " .. ("b"):rep(900))
      .. curl(base)))
    local a = answers(out)
    assert.same({ 413, 413, 413, 200 }, { a[1].status, a[2].status, a[3].status, a[4].status })
  end)

  it("answers 408 to a client that stalls mid-request, and closes", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", request_timeout_ms = 200 }))
    local t0 = core.now_ms()
    local out = drive(l, raw_client(l:port(), "GET /?state=x HTTP/1.1\r\nHo"))
    assert.truthy(out:find("^HTTP/1%.1 408 Request Timeout\r\n"))
    assert.truthy(out:find("[closed 0]", 1, true))
    assert.is_true(core.now_ms() - t0 < 2500)
    assert.equal(0, settled(l))
  end)

  it("closes a connection that never sends anything, without an answer", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", request_timeout_ms = 200 }))
    local out = drive(l, raw_client(l:port(), ""))
    assert.equal("[closed 0]\n", out)
  end)

  it("keeps at most 16 connections; more are closed at once", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", request_timeout_ms = 3000 }))
    local job = bg(("for i in $(seq 20); do exec {fd}<>/dev/tcp/127.0.0.1/%d; done; sleep 1"):format(l:port()))
    local most = 0
    while not job:done() do
      l:step(20)
      most = math.max(most, l:pending())
    end
    job:wait()
    assert.equal(16, most)
  end)

  it("validates answers and reports connections that are gone", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    assert.is_false(l:respond(12345, 200, nil, "x"))
    local errs = {}
    drive(l, bg(curl(("http://127.0.0.1:%d/"):format(l:port()))), function(r)
      for _, bad in ipairs({
        { r.conn, 200, { ["X-A"] = "1\r\nSet-Cookie: x=1" } },
        { r.conn, 200, { ["Bad Name"] = "1" } },
        { r.conn, 200, { ["Content-Length"] = "1" } },
        { r.conn, 200, { connection = "keep-alive" } },
        { r.conn, 101 },
        { r.conn, 600 },
      }) do
        errs[#errs + 1] = pcall(l.respond, l, bad[1], bad[2], bad[3], "")
      end
      assert.is_true(l:respond(r.conn, 200, nil, "ok"))
      assert.is_false(l:respond(r.conn, 200, nil, "again"))
    end)
    assert.same({ false, false, false, false, false, false }, errs)
  end)

  it("stop() closes the port at once but still delivers an answer in progress", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local port = l:port()
    local job = bg(curl(("http://127.0.0.1:%d/"):format(port)))
    local r
    while not r do
      l:step(20)
      r = l:take()
    end
    l:respond(r.conn, 200, nil, ("z"):rep(3 * 1024 * 1024)) -- more than a socket buffer
    l:stop()
    assert.equal("000 7\n", probe(("http://127.0.0.1:%d/"):format(port)))
    while l:pending() > 0 do l:step(20) end
    local a = answers(job:wait())[1]
    assert.equal(200, a.status)
    assert.truthy(a.text:find(("z"):rep(3 * 1024 * 1024), 1, true))
  end)

  it("is closed by close(), which may be called twice", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local port = l:port()
    l:close()
    l:close()
    assert.equal(0, l:pending())
    assert.has_error(function() l:step(0) end)
    assert.equal("000 7\n", probe(("http://127.0.0.1:%d/"):format(port)))
    assert.truthy(tostring(l):find("closed", 1, true))
  end)

  it("releases its port when collected", function()
    local port = assert(core.loopback.listen({ host = "localhost" })):port()
    collectgarbage()
    collectgarbage()
    assert.same({}, listening_addresses(port))
  end)

  if _VERSION == "Lua 5.4" and not rawget(_G, "jit") then
    it("closes at the end of a to-be-closed variable's scope", function()
      local port
      -- load(): the <close> syntax would not even parse under LuaJIT
      assert(load([[
        local listen, set = ...
        do
          local l <close> = assert(listen({ host = "127.0.0.1" }))
          set(l:port())
        end
      ]]))(core.loopback.listen, function(p) port = p end)
      assert.same({}, listening_addresses(port))
    end)
  end

  it("gives a pollable fd that becomes readable when a client connects", function()
    l = assert(core.loopback.listen({ host = "127.0.0.1", request_timeout_ms = 3000 }))
    assert.same({}, core.loop.wait({ l:pollfd() }, 0))
    assert.is_nil(l:timeout()) -- nothing to wait for but a client
    local job = bg(curl(("http://127.0.0.1:%d/"):format(l:port())))
    assert.same({ l:pollfd() }, core.loop.wait({ l:pollfd() }, 5000))
    assert.equal("r", l:events())
    -- once a connection is open its deadline shows, counted down
    local deadline
    for _ = 1, 50 do
      l:step(100)
      deadline = l:timeout()
      if deadline then break end
    end
    assert.is_number(deadline)
    assert.is_true(deadline >= 0 and deadline <= 3000, tostring(deadline))
    drive(l, job)
  end)
end)

describe("msal.loopback.wait_for_redirect", function()
  before_each(function()
    loop.reset()
  end)

  it("resolves with the redirect's parameters and shows a page without the code", function()
    local res, err, out, handle = flow({}, function(uri)
      return curl(good(uri))
    end)
    assert.is_nil(err)
    assert.same({ code = CODE, state = STATE, session_state = "abc" }, res.params)
    assert.equal(handle.redirect_uri, res.redirect_uri)
    assert.equal(("http://localhost:%d/"):format(handle.port), handle.redirect_uri)
    local a = answers(out)[1]
    assert.equal(200, a.status)
    assert.truthy(a.text:find("Authentication complete", 1, true))
    assert.truthy(a.text:find("Content-Type: text/html; charset=utf-8", 1, true))
    assert.truthy(a.text:find("Cache-Control: no-store", 1, true))
    assert.truthy(a.text:find("Referrer-Policy: no-referrer", 1, true))
    local body = a.text:match("\r\n\r\n(.*)$")
    assert.is_nil(body:find(CODE, 1, true))
    assert.is_nil(body:find(STATE, 1, true))
  end)

  it("closes after one redirect: replaying it is refused", function()
    local res, _, _, handle = flow({}, function(uri) return curl(good(uri)) end)
    assert.equal(CODE, res.params.code)
    assert.equal("000 7\n", probe(good(handle.redirect_uri)))
    assert.same({}, listening_addresses(handle.port))
  end)

  it("answers a wrong, missing or repeated state with 400 and keeps waiting", function()
    local res, err, out = flow({}, function(uri)
      return curl(uri .. "?code=evil&state=wrong")
        .. curl(uri .. "?code=evil")
        .. curl(uri .. "?code=evil&state=" .. STATE .. "&state=" .. STATE)
        .. curl(uri .. "?code=evil&state=" .. STATE .. "x")
        .. curl(uri .. "?state=" .. STATE) -- right state, but neither code nor error
        .. curl(uri .. "?code=evil&state=%zz")
        .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    local a = answers(out)
    assert.equal(7, #a)
    for i = 1, 6 do
      assert.equal(400, a[i].status)
      assert.is_nil(a[i].text:find("Authentication complete", 1, true))
    end
    assert.equal(200, a[7].status)
  end)

  it("refuses other methods, and 404s other paths and the favicon, and keeps waiting", function()
    local res, err, out = flow({ path = "/auth/cb" }, function(uri, port)
      local root = ("http://127.0.0.1:%d"):format(port)
      return curl(good(uri), "-X POST --data-binary x")
        .. curl(good(uri), "-I")
        .. curl(root .. "/favicon.ico")
        .. curl(root .. "/?code=" .. CODE .. "&state=" .. STATE)
        .. curl(root .. "/auth/cb/?code=" .. CODE .. "&state=" .. STATE)
        .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    local a = answers(out)
    assert.same({ 405, 405, 404, 404, 404, 200 },
      { a[1].status, a[2].status, a[3].status, a[4].status, a[5].status, a[6].status })
    assert.truthy(a[1].text:find("Allow: GET", 1, true))
  end)

  it("resolves with params.error for an error redirect with the right state", function()
    local res, err, out = flow({}, function(uri)
      return curl(uri .. "?error=access_denied&error_description=the+user+said+no&state=" .. STATE)
    end)
    assert.is_nil(err)
    assert.equal("access_denied", res.params.error)
    assert.equal("the user said no", res.params.error_description)
    local a = answers(out)[1]
    assert.equal(200, a.status)
    assert.truthy(a.text:find("Authentication did not complete", 1, true))
    assert.is_nil(a.text:find("the user said no", 1, true))
  end)

  it("shows the configured pages", function()
    local res, _, out = flow({ success_page = "<p>all good</p>" }, function(uri)
      return curl(uri .. "?error=x&state=wrong") .. curl(good(uri))
    end)
    assert.equal(CODE, res.params.code)
    local a = answers(out)
    assert.truthy(a[2].text:find("\r\n\r\n<p>all good</p>", 1, true))
    local res2, _, out2 = flow({ error_page = "<p>nope</p>" }, function(uri)
      return curl(uri .. "?error=denied&state=" .. STATE)
    end)
    assert.equal("denied", res2.params.error)
    assert.truthy(answers(out2)[1].text:find("\r\n\r\n<p>nope</p>", 1, true))
  end)

  it("refuses an oversized request with 413 and keeps waiting", function()
    local res, err, out = flow({ max_request_bytes = 4096 }, function(uri)
      return curl(good(uri), "-H 'X-Big: " .. ("a"):rep(20000) .. "'") .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    local a = answers(out)
    assert.equal(413, a[1].status)
    assert.equal(200, a[2].status)
  end)

  it("drops a client that stalls mid-request and keeps waiting", function()
    local t0
    local res, err, out = flow({ request_timeout_ms = 300 }, function(uri, port)
      t0 = core.now_ms()
      return ("exec 3<>/dev/tcp/127.0.0.1/%d\nprintf 'GET /?code=x&sta' >&3\ntimeout 5 cat <&3\necho \"[closed $?]\"\n")
        :format(port) .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    assert.truthy(out:find("^HTTP/1%.1 408 "))
    assert.truthy(out:find("[closed 0]", 1, true))
    assert.is_true(core.now_ms() - t0 >= 300)
    assert.equal(200, answers(out)[1].status)
  end)

  it("finishes even while a browser's spare connection sits idle", function()
    local t0 = core.now_ms()
    local res, err = flow({ request_timeout_ms = 4000 }, function(uri, port)
      return ("exec 3<>/dev/tcp/127.0.0.1/%d\n"):format(port) .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    assert.is_true(core.now_ms() - t0 < 3000)
  end)

  it("rejects with BrowserAuthError timed_out and closes the port", function()
    local t0 = core.now_ms()
    local p, handle = loopback.wait_for_redirect({ expected_state = STATE, timeout_ms = 300 })
    local res, err = p:await()
    assert.is_nil(res)
    assert.equal("BrowserAuthError", err.name)
    assert.equal("timed_out", err.error_code)
    assert.is_true(core.now_ms() - t0 >= 300)
    assert.equal("000 7\n", probe(good(handle.redirect_uri)))
    assert.same({}, listening_addresses(handle.port))
    assert.is_false(loop.pending())
  end)

  it("can be cancelled through its handle", function()
    local p, handle = loopback.wait_for_redirect({ expected_state = STATE })
    loop.set_timeout(50, function() handle:close() end)
    local _, err = p:await()
    assert.equal("user_cancelled", err.error_code)
    assert.equal("000 7\n", probe(good(handle.redirect_uri)))
  end)

  it("ends with the error on_listening raises, and closes the port", function()
    local port
    local p = loopback.wait_for_redirect({
      expected_state = STATE,
      on_listening = function(uri)
        port = tonumber(uri:match(":(%d+)/"))
        error({ name = "BrowserAuthError", error_code = "no_browser" })
      end,
    })
    local _, err = p:await()
    assert.equal("no_browser", err.error_code)
    assert.same({}, listening_addresses(port))
  end)

  it("advertises 127.0.0.1 when asked to bind it, and falls back from a busy port", function()
    local busy = assert(core.loopback.listen({ host = "127.0.0.1" }))
    local busy_port = busy:port()
    local res, _, _, handle = flow({ host = "127.0.0.1", port = busy_port }, function(uri)
      return curl(good(uri))
    end)
    busy:close()
    assert.equal(CODE, res.params.code)
    assert.are_not.equal(busy_port, handle.port)
    assert.equal(("http://127.0.0.1:%d/"):format(handle.port), handle.redirect_uri)
  end)

  it("never listens beyond loopback", function()
    for _, host in ipairs({ "0.0.0.0", "::", "192.0.2.2" }) do
      local _, err = loopback.wait_for_redirect({ expected_state = STATE, host = host }):await()
      assert.equal("BrowserAuthError", err.name)
      assert.equal("loopback_listen_failed", err.error_code)
      assert.equal("EINVAL", err.reason)
    end
  end)

  local ips = non_loopback_ips()
  if #ips > 0 then
    it("cannot be reached on this machine's other addresses (" .. table.concat(ips, ", ") .. ")", function()
      local res, err, out = flow({}, function(uri, port)
        local s = ""
        for _, ip in ipairs(ips) do
          local host = ip:find(":", 1, true) and ("[" .. ip .. "]") or ip
          s = s .. curl(("http://%s:%d/?code=x&state=%s"):format(host, port, STATE), "-g --connect-timeout 3")
        end
        return s .. curl(good(uri))
      end)
      assert.is_nil(err)
      assert.equal(CODE, res.params.code)
      local a = answers(out)
      assert.equal(#ips + 1, #a)
      for i = 1, #ips do
        assert.is_nil(a[i].status)
        assert.is_true(a[i].rc == 7 or a[i].rc == 28, "curl exit " .. tostring(a[i].rc))
      end
    end)
  end

  if has_ipv6_loopback() then
    it("works over IPv6 [::1], bound alone or as part of localhost", function()
      local res, err, out, handle = flow({ host = "::1" }, function(uri)
        return curl(good(uri), "-g")
      end)
      assert.is_nil(err)
      assert.equal(CODE, res.params.code)
      assert.equal(("http://[::1]:%d/"):format(handle.port), handle.redirect_uri)
      assert.equal(200, answers(out)[1].status)
      local res2, err2 = flow({ host = "localhost" }, function(_, port)
        return curl(("http://[::1]:%d/?code=%s&state=%s"):format(port, CODE, STATE), "-g")
      end)
      assert.is_nil(err2)
      assert.equal(CODE, res2.params.code)
    end)
  end

  it("decodes query strings strictly", function()
    assert.same({ a = "1 2", b = "&=", c = "" }, loopback.parse_query("a=1+2&b=%26%3d&c"))
    assert.same({}, loopback.parse_query(""))
    assert.is_nil(loopback.parse_query("a=%2"))
    assert.is_nil(loopback.parse_query("a=%g0"))
    assert.is_nil(loopback.parse_query("a=1&a=1"))
  end)
end)

describe("wait_for_redirect against local processes in the way", function()
  it("evicts the oldest unfinished connection so a browser still gets through 16 held slots", function()
    local res, err, out = flow({ timeout_ms = 8000, request_timeout_ms = 5000 }, function(uri, port)
      return ("for i in $(seq 10); do exec {fd}<>/dev/tcp/127.0.0.1/%d; done\n"
        .. "for i in $(seq 10); do exec {fd}<>/dev/tcp/127.0.0.1/%d; printf 'GET / HTTP/1.1\\r\\nHo' >&$fd; done\n"
        .. "sleep 0.3\n%s"):format(port, port, curl(good(uri)))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    assert.equal(200, answers(out)[1].status)
  end)

  it("refuses a request whose Host is not this listener, and keeps waiting", function()
    local res, err, out = flow({ timeout_ms = 8000 }, function(uri, port)
      return curl(good(uri), "-H 'Host: evil.example:" .. port .. "'")
        .. curl(good(uri), "-H 'Host: localhost:" .. (port + 1) .. "'")
        .. curl(good(uri))
    end)
    assert.is_nil(err)
    assert.equal(CODE, res.params.code)
    local a = answers(out)
    assert.same({ 400, 400, 200 }, { a[1].status, a[2].status, a[3].status })
  end)
end)
