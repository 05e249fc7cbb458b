-- msal.transport.openresty inside real nginx workers (Debian's nginx +
-- lua-nginx-module 0.10.23, luajit2, lua-resty-core): the client runs in
-- content_by_lua handlers of one nginx, and the servers it talks to are
-- locations of the same nginx (plain HTTP) and a TLS server block with a
-- CA made here by openssl. Each handler waits for done on an ngx.semaphore
-- and answers with what it saw, as JSON.
local cjson = require("cjson")
local core = require("msal.core")
local files = require("files")
local nginx = require("nginx")
local proc = require("proc")

-- The handlers' side, loaded by the workers from a file in dir.
local APP = [==[
local cjson = require("cjson.safe")
local semaphore = require("ngx.semaphore")
local loop = require("msal.loop")
local openresty = require("msal.transport.openresty")

local M = {}

local function now_ms() ngx.update_time() return ngx.now() * 1000 end

-- Starts req on t; the returned wait() suspends this light thread until
-- done has run (posted from done itself) and gives what done got.
local function start(t, req)
  local sema = semaphore.new()
  local rec = { calls = 0, t0 = now_ms() }
  rec.handle = t:request(req, function(err, res)
    rec.calls = rec.calls + 1
    rec.err, rec.res, rec.ms = err, res, now_ms() - rec.t0
    sema:post(1)
  end)
  rec.sync_calls = rec.calls -- done must never run inside request()
  function rec.wait()
    if rec.calls == 0 then
      local ok, err = sema:wait(15)
      if not ok then rec.wait_error = err end
    end
    return { err = rec.err, res = rec.res, ms = rec.ms, calls = rec.calls, sync_calls = rec.sync_calls,
      wait_error = rec.wait_error }
  end
  return rec
end

local function reply(doc)
  ngx.header["content-type"] = "application/json"
  ngx.say(cjson.encode(doc))
end

-- POST {opts = transport options, reqs = {...}, concurrent = bool}: runs
-- the requests one after the other (or all at once) on one transport.
function M.run()
  ngx.req.read_body()
  local spec = cjson.decode(ngx.req.get_body_data())
  local t = openresty.new(spec.opts)
  local results, recs = {}, {}
  local out = { results = results }
  local t0 = now_ms()
  if spec.concurrent then
    for i, req in ipairs(spec.reqs) do recs[i] = start(t, req) end
    out.pending_started = t:pending()
    for i, rec in ipairs(recs) do results[i] = rec.wait() end
  else
    for i, req in ipairs(spec.reqs) do results[i] = start(t, req).wait() end
  end
  out.total_ms = now_ms() - t0
  out.pending = t:pending()
  reply(out)
end

-- A request canceled while the server works on it: done gets "canceled"
-- from the loop, once, and the connection it had is closed, not pooled.
function M.cancel()
  local base = ngx.var.arg_base
  local t = openresty.new()
  local rec = start(t, { url = base .. "/b/slow?s=0.3" })
  local pending_before = t:pending()
  ngx.sleep(0.1) -- sent by now; the answer comes at 0.3 s
  rec.handle:close()
  rec.handle:close()
  local calls_after_close = rec.calls
  loop.step(0) -- a host would run the loop's jobs soon; here it is now
  local calls_after_step = rec.calls
  local r = rec.wait()
  ngx.sleep(0.5) -- the slow answer has come and gone by now
  reply({ result = r, calls_after_close = calls_after_close, calls_after_step = calls_after_step,
    calls_later = rec.calls, pending_before = pending_before, pending = t:pending(),
    next = start(t, { url = base .. "/b/conn" }).wait() })
end

-- transport:close() cancels what is in flight and refuses new requests.
function M.close_transport()
  local t = openresty.new()
  local a, b = start(t, { url = ngx.var.arg_base .. "/b/slow?s=0.3" }), start(t, { url = ngx.var.arg_base .. "/b/slow?s=0.3" })
  t:close()
  loop.step(0)
  local ok, err = pcall(t.request, t, { url = ngx.var.arg_base .. "/b/conn" }, function() end)
  local ra, rb = a.wait(), b.wait()
  ngx.sleep(0.4)
  reply({ a = ra, b = rb, later = { a.calls, b.calls }, raised = not ok, message = tostring(err), pending = t:pending() })
end

-- Malformed requests raise (and never call done); malformed options too.
function M.malformed()
  local t = openresty.new()
  local base = ngx.var.arg_base
  local bad = {
    { method = "GET" },
    { url = "ftp://127.0.0.1/x" },
    { url = "127.0.0.1/x" },
    { url = "http://user:pw@127.0.0.1/x" },
    { url = "http://127.0.0.1/a b" },
    { url = "http://127.0.0.1/a\r\nX-Injected: 1" },
    { url = "http://127.0.0.1:99999/" },
    { url = base .. "/b/echo", headers = { ["bad name"] = "v" } },
    { url = base .. "/b/echo", headers = { ["x-h\r\nx-i"] = "v" } },
    { url = base .. "/b/echo", headers = { ["x-h"] = "v\r\nX-Injected: 1" } },
    { url = base .. "/b/echo", headers = { ["x-h"] = "v\nX-Injected: 1" } },
    { url = base .. "/b/echo", method = "GE T" },
    { url = base .. "/b/echo", body = {} },
    { url = base .. "/b/echo", timeout_ms = -1 },
  }
  local calls, raised, messages = 0, 0, {}
  for i, req in ipairs(bad) do
    local ok, err = pcall(t.request, t, req, function() calls = calls + 1 end)
    if not ok then raised = raised + 1 end
    messages[i] = tostring(err)
  end
  local opt_errors = {}
  for _, opts in ipairs({ { ca_file = "/etc/ssl/certs/ca-certificates.crt" }, { ca_path = "/etc/ssl/certs" },
      { timeout_ms = 0 }, { max_response_bytes = -1 } }) do
    local ok, err = pcall(openresty.new, opts)
    opt_errors[#opt_errors + 1] = ok and "no error" or tostring(err)
  end
  loop.step(0)
  ngx.sleep(0.05)
  reply({ count = #bad, raised = raised, calls = calls, messages = messages, opt_errors = opt_errors,
    pending = t:pending() })
end

-- header_filter has no cosockets: request() must not raise there, and done
-- gets kind "phase" through the loop (not inside request()).
function M.header_filter()
  local rec = ngx.shared.rec
  local t = openresty.new()
  local calls = 0
  local ok, err = pcall(t.request, t, { url = "http://127.0.0.1:1/" }, function(e, res)
    calls = calls + 1
    rec:set("phase", cjson.encode({ err = e, res = res }))
  end)
  rec:set("phase_raised", not ok and tostring(err) or "")
  rec:set("phase_sync_calls", calls)
  loop.step(0)
  rec:set("phase_calls", calls)
end

-- A request whose nginx request ends (ngx.exit) while it is in flight:
-- nginx kills its light thread, and done still runs once, from the
-- transport's sweeper, as a timeout. The callback uses no local of
-- killed(): ngx.exit abandons that frame, and its locals, seen from a
-- closure that runs later, read as nil.
local killed_t0
local function record_killed(err, res)
  ngx.shared.rec:incr("killed_calls", 1, 0)
  ngx.shared.rec:set("killed", cjson.encode({ err = err, res = res, ms = now_ms() - killed_t0 }))
end

function M.killed()
  killed_t0 = now_ms()
  openresty.new():request({ url = ngx.var.arg_base .. "/b/slow?s=2", timeout_ms = 200 }, record_killed)
  ngx.say("bye")
  ngx.exit(200)
end

function M.get()
  ngx.say(tostring(ngx.shared.rec:get(ngx.var.arg_k)))
end

-- The server side.

function M.echo()
  ngx.req.read_body()
  reply({ method = ngx.req.get_method(), uri = ngx.var.request_uri, body = ngx.req.get_body_data() or "",
    headers = ngx.req.get_headers() })
end

function M.chunked()
  local n = tonumber(ngx.var.arg_n) or 5
  for i = 1, n do
    ngx.print(("piece %d;"):format(i))
    ngx.flush(true)
  end
end

function M.huge()
  local n = tonumber(ngx.var.arg_n)
  local piece = ("x"):rep(65536)
  if not ngx.var.arg_chunked then ngx.header["content-length"] = n end
  while n > 0 do
    local k = math.min(n, #piece)
    ngx.print(piece:sub(1, k))
    n = n - k
    if ngx.var.arg_chunked then ngx.flush(true) end
  end
end

function M.raw()
  local sock = assert(ngx.req.socket(true))
  local answers = {
    status = "HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n",
    garbage = "hello there\r\n\r\n",
    header = "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    chunk_huge = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\nabc",
    close = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    short = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    continue = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
  }
  sock:send(answers[ngx.var.arg_kind])
end

return M
]==]

local function tls_files(dir)
  local script = [[
set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=lua-msal test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf
chmod 644 ca.crt server.crt server.key
]]
  local out, code = proc.sh(script, { dir = dir, plain = true })
  assert(code == 0, "openssl failed: " .. out)
end

local http = require("msal.transport.curl").new()

-- Whether this machine has an IPv6 loopback to listen on.
local function has_ipv6()
  local ls = core.loopback.listen({ host = "::1", port = 0 })
  if not ls then return false end
  ls:close()
  return true
end

describe("msal.transport.openresty in nginx #host", function()
  local srv, dir, remove_dir
  local ipv6 = has_ipv6()

  -- POSTs a run spec to a client location; the handler's JSON answer.
  local function call(path, spec)
    local res, err = http:send({ method = "POST", url = srv.base .. path, body = spec and cjson.encode(spec),
      headers = { connection = "close", ["content-type"] = "application/json" }, timeout_ms = 30000 }):await()
    assert(res, err and err.message)
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function run(spec, path) return call(path or "/t/run", spec) end
  local function one(req, opts, path) return run({ opts = opts, reqs = { req } }, path).results[1] end

  -- A URL on the nginx under test (its plain HTTP server).
  local function b(path) return srv.base .. "/b/" .. path end

  setup(function()
    dir, remove_dir = proc.tempdir()
    proc.sh("chmod 755 " .. proc.quote(dir), { plain = true })
    files.write(dir .. "/transport_app.lua", APP)
    tls_files(dir)
    local handler = function(name) return "content_by_lua_block { require('transport_app')." .. name .. "() }" end
    srv = nginx.start({
      workers = 2,
      http = ([[
        lua_shared_dict rec 1m;
        init_by_lua_block { package.path = "%s/?.lua;" .. package.path }
      ]]):format(dir),
      server = (ipv6 and "listen [::1]:$PORT;\n" or "") .. ([[
        location = /t/run { %s }
        location = /t/run_tls { lua_ssl_trusted_certificate %s/ca.crt; %s }
        location = /t/cancel { %s }
        location = /t/close_transport { %s }
        location = /t/malformed { %s }
        location = /t/phase {
          content_by_lua_block { ngx.say("body") }
          header_filter_by_lua_block { require("transport_app").header_filter() }
        }
        location = /t/get { %s }
        location = /t/killed { %s }
        location = /b/echo { %s }
        location = /b/repeat {
          content_by_lua_block {
            ngx.header["X-Multi"] = { "a", "b" }
            ngx.header["X-Camel-Case"] = "v"
            ngx.header["content-length"] = 2
            ngx.print("ok")
          }
        }
        location = /b/chunked { %s }
        location = /b/cl { content_by_lua_block { ngx.header["content-length"] = 11 ngx.print("hello world") } }
        location = /b/huge { %s }
        location = /b/big_headers {
          content_by_lua_block { ngx.header["X-Big"] = ("h"):rep(tonumber(ngx.var.arg_n)) ngx.say("ok") }
        }
        location = /b/slow { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slow") } }
        location = /b/conn { content_by_lua_block { ngx.print(ngx.var.connection_requests) } }
        location = /b/conn_close {
          content_by_lua_block { ngx.header["connection"] = "close" ngx.print(ngx.var.connection_requests) }
        }
        location = /b/raw { %s }
      ]]):format(handler("run"), dir, handler("run"), handler("cancel"), handler("close_transport"),
        handler("malformed"), handler("get"), handler("killed"), handler("echo"), handler("chunked"), handler("huge"), handler("raw")),
      servers = ([[
        server {
          listen 127.0.0.1:$PORT2 ssl;
          ssl_certificate %s/server.crt;
          ssl_certificate_key %s/server.key;
          location = /conn { content_by_lua_block { ngx.print(ngx.var.connection_requests) } }
        }
      ]]):format(dir, dir),
    })
  end)

  teardown(function()
    if srv then
      local log = srv:error_log()
      srv:stop()
      -- a Lua error in a worker is a failure even when every answer looked right
      assert.falsy(log:find("thread aborted", 1, true), log)
      assert.falsy(log:find("msal: a callback raised", 1, true), log)
    end
    if remove_dir then remove_dir() end
  end)

  it("sends a GET with the Host header and the caller's headers", function()
    local r = one({ url = b("echo?x=1"), headers = { ["X-Test"] = "yes", Accept = "application/json" } })
    assert.is_nil(r.err)
    assert.equal(1, r.calls)
    assert.equal(0, r.sync_calls)
    assert.equal(200, r.res.status)
    local doc = cjson.decode(r.res.body)
    assert.equal("GET", doc.method)
    assert.equal("/b/echo?x=1", doc.uri)
    assert.equal("127.0.0.1:" .. srv.port, doc.headers.host)
    assert.equal("yes", doc.headers["x-test"])
    assert.equal("application/json", doc.headers.accept)
    assert.is_nil(doc.headers["content-length"])
  end)

  it("takes an IPv6 literal URL and sends Host with brackets and port", function()
    if not ipv6 then return pending("no IPv6 loopback here") end
    local r = one({ url = "http://[::1]:" .. srv.port .. "/b/echo" })
    assert.is_nil(r.err)
    assert.equal("[::1]:" .. srv.port, cjson.decode(r.res.body).headers.host)
  end)

  it("sends a POST with its body and Content-Length", function()
    local body = "grant_type=refresh_token&refresh_token=" .. ("r"):rep(5000)
    local r = one({ method = "POST", url = b("echo"), body = body,
      headers = { ["content-type"] = "application/x-www-form-urlencoded" } })
    assert.is_nil(r.err)
    local doc = cjson.decode(r.res.body)
    assert.equal("POST", doc.method)
    assert.equal(body, doc.body)
    assert.equal(tostring(#body), doc.headers["content-length"])
    assert.equal("application/x-www-form-urlencoded", doc.headers["content-type"])
  end)

  it("lower-cases header names and joins repeated headers", function()
    local r = one({ url = b("repeat") })
    assert.equal(200, r.res.status)
    assert.equal("a, b", r.res.headers["x-multi"])
    assert.equal("v", r.res.headers["x-camel-case"])
    assert.is_nil(r.res.headers["X-Camel-Case"])
    assert.equal("ok", r.res.body)
  end)

  it("reads a chunked body", function()
    local r = one({ url = b("chunked?n=40") })
    assert.is_nil(r.err)
    assert.equal("chunked", r.res.headers["transfer-encoding"])
    local want = {}
    for i = 1, 40 do want[i] = ("piece %d;"):format(i) end
    assert.equal(table.concat(want), r.res.body)
  end)

  it("reads a Content-Length body, a body up to the close, and skips a 100 Continue", function()
    local r = one({ url = b("cl") })
    assert.equal("11", r.res.headers["content-length"])
    assert.equal("hello world", r.res.body)
    r = one({ url = b("raw?kind=close") })
    assert.is_nil(r.err)
    assert.equal("until the end", r.res.body)
    r = one({ url = b("raw?kind=continue") })
    assert.equal(201, r.res.status)
    assert.equal("ok", r.res.body)
  end)

  it("keeps the connection alive and reuses it for the next request", function()
    local out = run({ reqs = { { url = b("conn") }, { url = b("conn") }, { url = b("conn") } } })
    local n1, n2, n3 = tonumber(out.results[1].res.body), tonumber(out.results[2].res.body), tonumber(out.results[3].res.body)
    assert.equal(n1 + 1, n2)
    assert.equal(n2 + 1, n3)
  end)

  it("does not reuse a connection the server marked Connection: close", function()
    local out = run({ reqs = { { url = b("conn_close") }, { url = b("conn_close") } } })
    assert.truthy(out.results[1].res.headers.connection:find("close", 1, true))
    assert.equal("1", out.results[2].res.body)
  end)

  it("refuses a response body over max_response_bytes (too_large)", function()
    local r = one({ url = b("huge?n=2000000") })
    assert.is_nil(r.res)
    assert.equal("too_large", r.err.kind)
    r = one({ url = b("huge?n=2000000&chunked=1") })
    assert.equal("too_large", r.err.kind)
    r = one({ url = b("huge?n=3000"), max_response_bytes = 2000 })
    assert.equal("too_large", r.err.kind)
    -- and the limit is not off by one
    r = one({ url = b("huge?n=2000&chunked=1"), max_response_bytes = 2000 })
    assert.is_nil(r.err)
    assert.equal(2000, #r.res.body)
    r = one({ url = b("raw?kind=chunk_huge") })
    assert.equal("too_large", r.err.kind)
  end)

  it("refuses response headers over max_header_bytes (too_large)", function()
    local r = one({ url = b("big_headers?n=3000") }, { max_header_bytes = 2048 })
    assert.equal("too_large", r.err.kind)
    assert.truthy(r.err.message:find("2048", 1, true), r.err.message)
    r = one({ url = b("big_headers?n=1000") }, { max_header_bytes = 2048 })
    assert.is_nil(r.err)
    assert.equal(1000, #r.res.headers["x-big"])
  end)

  it("times out a slow answer after timeout_ms (timeout)", function()
    local r = one({ url = b("slow?s=3"), timeout_ms = 300 })
    assert.equal("timeout", r.err.kind)
    assert.is_true(r.ms >= 250 and r.ms < 1500, "took " .. r.ms .. " ms")
    assert.equal(1, r.calls)
  end)

  it("reports a closed port as connect", function()
    local ls = assert(core.loopback.listen({ host = "127.0.0.1", port = 0 }))
    local port = ls:port()
    ls:close()
    local r = one({ url = "http://127.0.0.1:" .. port .. "/" })
    assert.equal("connect", r.err.kind)
    assert.truthy(r.err.message:find(tostring(port), 1, true), r.err.message)
    assert.equal(0, r.sync_calls)
  end)

  it("reports a host name without nginx's resolver as connect, never inside request()", function()
    -- nginx fails this connect before the light thread's first yield
    local r = one({ url = "http://msal-test.invalid/" })
    assert.equal("connect", r.err.kind)
    assert.truthy(r.err.message:find("resolver", 1, true), r.err.message)
    assert.equal(0, r.sync_calls)
    assert.equal(1, r.calls)
  end)

  it("reports malformed responses as io, saying what was wrong", function()
    local r = one({ url = b("raw?kind=status") })
    assert.equal("io", r.err.kind)
    assert.truthy(r.err.message:find("malformed status line", 1, true), r.err.message)
    r = one({ url = b("raw?kind=garbage") })
    assert.equal("io", r.err.kind)
    assert.truthy(r.err.message:find("malformed status line", 1, true), r.err.message)
    r = one({ url = b("raw?kind=header") })
    assert.equal("io", r.err.kind)
    assert.truthy(r.err.message:find("malformed response header", 1, true), r.err.message)
    r = one({ url = b("raw?kind=chunk") })
    assert.equal("io", r.err.kind)
    assert.truthy(r.err.message:find("chunk", 1, true), r.err.message)
    r = one({ url = b("raw?kind=short") })
    assert.equal("io", r.err.kind)
    assert.truthy(r.err.message:find("closed the connection", 1, true), r.err.message)
  end)

  -- Several handshakes each: lua-resty-core 0.1.25 fails a handshake that
  -- completes at once differently from one that waited (see the transport).
  local function eight(url)
    local reqs = {}
    for i = 1, 8 do reqs[i] = { url = url } end
    return reqs
  end

  it("refuses the self-signed server without lua_ssl_trusted_certificate (tls)", function()
    for _, r in ipairs(run({ reqs = eight("https://localhost:" .. srv.port2 .. "/conn") }).results) do
      assert.is_nil(r.res)
      assert.equal("tls", r.err.kind, r.err.message)
      assert.truthy(r.err.message:find("lua_ssl_trusted_certificate", 1, true), r.err.message)
    end
  end)

  it("accepts it from a location with lua_ssl_trusted_certificate, and reuses the TLS connection", function()
    local out = run({ reqs = { { url = "https://localhost:" .. srv.port2 .. "/conn" },
      { url = "https://localhost:" .. srv.port2 .. "/conn" } } }, "/t/run_tls")
    assert.is_nil(out.results[1].err)
    assert.equal(200, out.results[1].res.status)
    assert.equal(tonumber(out.results[1].res.body) + 1, tonumber(out.results[2].res.body))
  end)

  it("checks the server name: an IP address is not a name nginx can match", function()
    for _, r in ipairs(run({ reqs = eight("https://127.0.0.1:" .. srv.port2 .. "/conn") }, "/t/run_tls").results) do
      assert.equal("tls", r.err.kind, r.err.message)
      assert.truthy(r.err.message:find("host name", 1, true), r.err.message)
    end
  end)

  it("delivers kind phase from a header_filter handler, without raising and not inside request()", function()
    local status = srv:get("/t/phase")
    assert.equal(200, status)
    assert.equal("", select(2, srv:get("/t/get?k=phase_raised")):match("^(.-)\n$"))
    assert.equal("0", select(2, srv:get("/t/get?k=phase_sync_calls")):match("%S+"))
    assert.equal("1", select(2, srv:get("/t/get?k=phase_calls")):match("%S+"))
    local doc = cjson.decode((select(2, srv:get("/t/get?k=phase"))))
    assert.equal("phase", doc.err.kind)
    assert.truthy(doc.err.message:find("header_filter", 1, true), doc.err.message)
  end)

  it("cancels with handle:close(): canceled from the loop, exactly once, connection not pooled", function()
    local doc = call("/t/cancel?base=http://localhost:" .. srv.port)
    assert.equal(1, doc.pending_before)
    assert.equal(0, doc.calls_after_close)
    assert.equal(1, doc.calls_after_step)
    assert.equal("canceled", doc.result.err.kind)
    assert.equal(1, doc.calls_later)
    assert.equal(0, doc.pending)
    -- the slow request's connection was closed: the next one is new
    assert.equal("1", doc.next.res.body)
  end)

  it("calls done once when nginx kills the request's light thread (ngx.exit)", function()
    assert.equal(200, (srv:get("/t/killed?base=" .. srv.base)))
    local doc
    for _ = 1, 300 do
      local _, body = srv:get("/t/get?k=killed")
      if body ~= "nil\n" then doc = cjson.decode(body) break end
      core.sleep_ms(10)
    end
    assert.truthy(doc, "done never ran")
    assert.equal("timeout", doc.err.kind)
    assert.truthy(doc.err.message:find("aborted", 1, true), doc.err.message)
    assert.is_true(doc.ms >= 200 and doc.ms < 2600, doc.ms .. " ms")
    core.sleep_ms(300)
    assert.equal("1", select(2, srv:get("/t/get?k=killed_calls")):match("%S+"))
  end)

  it("cancels everything in flight on transport:close() and refuses new requests", function()
    local doc = call("/t/close_transport?base=" .. srv.base)
    assert.equal("canceled", doc.a.err.kind)
    assert.equal("canceled", doc.b.err.kind)
    assert.same({ 1, 1 }, doc.later)
    assert.is_true(doc.raised)
    assert.equal(0, doc.pending)
  end)

  it("raises on malformed requests and options, and never calls their done", function()
    local doc = call("/t/malformed?base=" .. srv.base)
    assert.equal(doc.count, doc.raised, cjson.encode(doc.messages))
    assert.equal(0, doc.calls)
    assert.equal(0, doc.pending)
    assert.truthy(doc.opt_errors[1]:find("lua_ssl_trusted_certificate", 1, true), doc.opt_errors[1])
    assert.truthy(doc.opt_errors[2]:find("lua_ssl_trusted_certificate", 1, true), doc.opt_errors[2])
    assert.not_equal("no error", doc.opt_errors[3])
    assert.not_equal("no error", doc.opt_errors[4])
  end)

  it("completes two concurrent requests while the handler awaits them", function()
    local out = run({ concurrent = true, reqs = { { url = b("slow?s=0.4") }, { url = b("slow?s=0.4") } } })
    assert.equal(2, out.pending_started)
    assert.equal(200, out.results[1].res.status)
    assert.equal(200, out.results[2].res.status)
    assert.equal(1, out.results[1].calls)
    assert.equal(1, out.results[2].calls)
    assert.is_true(out.total_ms < 750, "two 0.4 s requests took " .. out.total_ms .. " ms")
    assert.equal(0, out.pending)
  end)
end)
