--- HTTP/1.1 on the wire for the cosocket transport (msal.transport.openresty):
-- a request's bytes, checked before anything is sent, and a response's
-- head and body read from a cosocket under the request's deadline and size
-- caps (Content-Length, chunked, read-until-close). The connection's life
-- (pool, TLS, threads, delivery) stays in the transport.
--
-- The reads work on the transport's per-request state `st`: `sock` (a
-- cosocket), `buf`/`pos` (bytes read ahead), `deadline`, the caps
-- (`max_header_bytes`, `max_response_bytes`) and `u` (the parsed URL).
-- @module msal.transport.http1
local byte, find, sub, lower, format = string.byte, string.find, string.sub, string.lower, string.format
local concat = table.concat

local http1 = {}

-- The largest read asked of a cosocket at once: big enough that a 1 MiB
-- body takes few resumes, small enough that a read never overshoots a cap
-- by much.
local READ_CHUNK = 64 * 1024
-- A chunk-size line (hex size and extensions) longer than this is not
-- HTTP, it is a server streaming garbage.
local CHUNK_LINE_MAX = 4096

-- tchar of RFC 9110: what a header name or a method may hold.
local NOT_TOKEN = "[^%w!#$%%&'*+%-%.%^_`|~]"

local function is_token(s)
  return type(s) == "string" and s ~= "" and not find(s, NOT_TOKEN)
end

local function now_ms()
  return ngx.now() * 1000
end

-- Splits an http(s) URL into what the connection and the request line need.
-- Raises on anything curl would refuse or that could smuggle a second
-- request onto the wire (spaces, CR/LF, control bytes), and on userinfo,
-- which would otherwise be sent to the server as part of the host.
local function parse_url(url)
  if type(url) ~= "string" or url == "" then error("'url' is required", 3) end
  if find(url, "[%z\1-\32\127]") then
    error("invalid url (spaces or control characters): " .. format("%q", url), 3)
  end
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  scheme = scheme and lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    error("unsupported url (only http:// and https://): " .. url, 3)
  end
  if find(authority, "@", 1, true) then error("urls with user information are not supported: " .. url, 3) end
  local host, port
  if sub(authority, 1, 1) == "[" then
    local v6, tail = authority:match("^%[([%x:.]+)%](.*)$")
    if not v6 then error("invalid IPv6 host in url: " .. url, 3) end
    host, port = v6, tail:match("^:(%d+)$")
    if tail ~= "" and not port then error("invalid port in url: " .. url, 3) end
  else
    host, port = authority:match("^([^:]+):(%d+)$")
    if not host then
      host = authority:match("^([^:]+)$")
      if not host and authority:match("^[^:]+:$") then host = authority:sub(1, -2) end
    end
    if not host or find(host, "[^%w%.%-_]") then error("invalid host or port in url: " .. url, 3) end
    host = lower(host)
  end
  local default_port = scheme == "https" and 443 or 80
  port = port and tonumber(port) or default_port
  if port < 1 or port > 65535 then error("invalid port in url: " .. url, 3) end
  local target = rest:gsub("#.*$", "")
  if target == "" then
    target = "/"
  elseif sub(target, 1, 1) == "?" then
    target = "/" .. target
  end
  local v6 = find(host, ":", 1, true) ~= nil
  local host_header = v6 and ("[" .. host .. "]") or host
  if port ~= default_port then host_header = host_header .. ":" .. port end
  return {
    scheme = scheme, host = host, port = port, target = target, host_header = host_header,
    hostport = (v6 and ("[" .. host .. "]") or host) .. ":" .. port,
    -- what connect() takes: an IPv6 literal only in brackets; localhost
    -- without a resolver (see the module comment)
    address = v6 and ("[" .. host .. "]") or (host == "localhost" and "127.0.0.1" or host),
  }
end

-- The request's bytes, checked before anything is started: a malformed
-- request is a bug in the caller and raises, like curl's.
local function build_request(req, u)
  local method = req.method or "GET"
  if not is_token(method) then error(format("invalid method '%s'", tostring(method)), 3) end
  local body = req.body
  if body ~= nil and type(body) ~= "string" then error("'body' must be a string", 3) end
  local headers = req.headers
  if headers ~= nil and type(headers) ~= "table" then error("'headers' must be a table", 3) end
  local out = { method, " ", u.target, " HTTP/1.1\r\n" }
  local has_host, close = false, false
  for k, v in pairs(headers or {}) do
    if type(k) ~= "string" then error("header names must be strings", 3) end
    if not is_token(k) then error(format("invalid header name '%s'", k), 3) end
    if type(v) ~= "string" and type(v) ~= "number" then
      error(format("header '%s' must have a string value", k), 3)
    end
    v = tostring(v)
    if find(v, "[\r\n%z]") then error(format("header '%s' contains a line break or NUL", k), 3) end
    local lk = lower(k)
    -- the length is the body's, whatever the caller wrote; the transport
    -- frames bodies itself, so no caller-chosen framing either
    if lk == "transfer-encoding" then error("header 'transfer-encoding' cannot be set: bodies are sent with Content-Length", 3) end
    if lk ~= "content-length" then
      if lk == "host" then has_host = true end
      if lk == "connection" and find(lower(v), "close", 1, true) then close = true end
      out[#out + 1] = k
      out[#out + 1] = ": "
      out[#out + 1] = v
      out[#out + 1] = "\r\n"
    end
  end
  if not has_host then
    out[#out + 1] = "Host: " .. u.host_header .. "\r\n"
  end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    out[#out + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  if body and body ~= "" then out[#out + 1] = body end
  return out, method, close
end

-- ---------------------------------------------------------------------------
-- The wire: one request on one connection, run inside a light thread.

local function fail(kind, message)
  return { kind = kind, message = message }
end

local function escape(s)
  s = sub(s, 1, 80)
  return (format("%q", s):gsub("\\\n", "\\n"))
end

-- Time left before the request's deadline, for the next socket operation
-- (at least 1 ms: a 0 would mean nginx's configured default); nil when the
-- deadline has passed.
local function left(st)
  local ms = st.deadline - now_ms()
  if ms <= 0 then return nil end
  return math.ceil(ms)
end

local function timeout_error(st)
  return fail("timeout", format("no complete response from %s:%d within %d ms", st.u.host, st.u.port, st.timeout_ms))
end

-- One read of whatever the socket has (up to n bytes), under the time left.
local function recv(st, n)
  local ms = left(st)
  if not ms then return nil, "timeout" end
  st.sock:settimeouts(ms, ms, ms)
  local data, err = st.sock:receiveany(n)
  if not data then st.raw_err = err end
  return data, err
end

local function read_error(st, err, what)
  if err == "timeout" then return timeout_error(st) end
  if err == "closed" then
    return fail("io", format("%s:%d closed the connection %s", st.u.host, st.u.port, what))
  end
  return fail("io", format("reading %s from %s:%d failed: %s", what, st.u.host, st.u.port, tostring(err)))
end

-- Next line (without its CR LF; a bare LF is accepted too) from the
-- connection's buffer, reading more as needed; nil and "too_long" when no
-- line end came within `limit` bytes. Also returns the bytes consumed.
local function read_line(st, limit)
  local from = st.pos
  while true do
    local e = find(st.buf, "\n", from, true)
    if e then
      local line = sub(st.buf, st.pos, e - 1)
      local used = e - st.pos + 1
      st.pos = e + 1
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      if used > limit then return nil, "too_long" end
      return line, used
    end
    local have = #st.buf - st.pos + 1
    if have > limit then return nil, "too_long" end
    local data, err = recv(st, READ_CHUNK)
    if not data then return nil, err end
    from = #st.buf - st.pos + 2
    st.buf = sub(st.buf, st.pos) .. data
    st.pos = 1
  end
end

-- Exactly n bytes (appended to parts), from the buffer first.
local function read_exact(st, n, parts)
  local have = #st.buf - st.pos + 1
  if have >= n then
    parts[#parts + 1] = sub(st.buf, st.pos, st.pos + n - 1)
    st.pos = st.pos + n
    return true
  end
  if have > 0 then parts[#parts + 1] = sub(st.buf, st.pos) end
  st.buf, st.pos = "", 1
  n = n - have
  while n > 0 do
    local data, err = recv(st, n < READ_CHUNK and n or READ_CHUNK)
    if not data then return nil, err end
    parts[#parts + 1] = data
    n = n - #data
  end
  return true
end

-- The status line and headers: status, version ("1.0"/"1.1"), headers
-- (lower-case names, repeats joined with ", "), or nil and an error.
local function read_head(st)
  local limit = st.max_header_bytes
  while true do
    local line, used = read_line(st, limit - st.head_bytes)
    if not line then
      if used == "too_long" then
        return nil, fail("too_large", format("response headers over the limit of %d bytes", limit))
      end
      return nil, read_error(st, used, "before the response headers")
    end
    st.head_bytes = st.head_bytes + used
    local major, minor, status = line:match("^HTTP/(%d)%.(%d) (%d%d%d)")
    local reason_ok = status and (#line == 12 or byte(line, 13) == 32)
    if not status or not reason_ok or major ~= "1" then
      return nil, fail("io", "malformed status line from " .. st.u.host .. ":" .. st.u.port .. ": " .. escape(line))
    end
    status = tonumber(status)
    local headers, last = {}, nil
    while true do
      local h, n = read_line(st, limit - st.head_bytes)
      if not h then
        if n == "too_long" then
          return nil, fail("too_large", format("response headers over the limit of %d bytes", limit))
        end
        return nil, read_error(st, n, "in the response headers")
      end
      st.head_bytes = st.head_bytes + n
      if h == "" then break end
      local c = byte(h, 1)
      if (c == 32 or c == 9) and last then
        -- obsolete line folding (RFC 9112 5.2): one value, joined by a space
        headers[last] = headers[last] .. " " .. h:match("^%s*(.-)%s*$")
      else
        local name, value = h:match("^([^:]+):[ \t]*(.-)[ \t]*$")
        if not name or not is_token(name) then
          return nil, fail("io", "malformed response header line: " .. escape(h))
        end
        name = lower(name)
        local prev = headers[name]
        headers[name] = prev and (prev .. ", " .. value) or value
        last = name
      end
    end
    -- 1xx answers (100 Continue, 103 Early Hints) precede the real one
    if status >= 200 or status == 101 then
      return status, major .. "." .. minor, headers
    end
  end
end

-- Whether a comma-separated header value lists the token (case-insensitive).
local function has_token(value, token)
  if not value then return false end
  for item in lower(value):gmatch("[^,]+") do
    if item:match("^%s*(.-)%s*$") == token then return true end
  end
  return false
end

local function read_chunked(st, parts)
  local total, max = 0, st.max_response_bytes
  while true do
    local line, err = read_line(st, CHUNK_LINE_MAX)
    if not line then
      if err == "too_long" then
        return nil, fail("io", format("malformed chunked body: a chunk-size line over %d bytes", CHUNK_LINE_MAX))
      end
      return nil, read_error(st, err, "in the chunked body")
    end
    local hex = line:match("^(%x+)[ \t]*;") or line:match("^(%x+)[ \t]*$")
    if not hex then return nil, fail("io", "malformed chunked body: bad chunk-size line " .. escape(line)) end
    hex = hex:gsub("^0+(.)", "%1")
    -- more than 8 hex digits is at least 4 GiB: over any limit
    local size = #hex <= 8 and tonumber(hex, 16) or math.huge
    if size == 0 then break end
    if total + size > max then
      return nil, fail("too_large", format("response body over the limit of %d bytes", max))
    end
    local ok, rerr = read_exact(st, size, parts)
    if not ok then return nil, read_error(st, rerr, "in the chunked body") end
    total = total + size
    local crlf, cerr = read_line(st, 2)
    if crlf ~= "" then
      if crlf or cerr == "too_long" then
        return nil, fail("io", "malformed chunked body: a chunk's data is not followed by CRLF")
      end
      return nil, read_error(st, cerr, "in the chunked body")
    end
  end
  -- trailers: read and dropped, under the header limit
  while true do
    local line, used = read_line(st, st.max_header_bytes - st.head_bytes)
    if not line then
      if used == "too_long" then
        return nil, fail("too_large", format("response headers over the limit of %d bytes", st.max_header_bytes))
      end
      return nil, read_error(st, used, "in the chunked body's trailers")
    end
    st.head_bytes = st.head_bytes + used
    if line == "" then return true end
  end
end

local function read_to_close(st, parts)
  local max = st.max_response_bytes
  local total = #st.buf - st.pos + 1
  if total > max then return nil, fail("too_large", format("response body over the limit of %d bytes", max)) end
  if total > 0 then parts[1] = sub(st.buf, st.pos) end
  st.buf, st.pos = "", 1
  while true do
    local data, err = recv(st, READ_CHUNK)
    if not data then
      if err == "closed" then return true end
      return nil, read_error(st, err, "in the response body")
    end
    total = total + #data
    if total > max then return nil, fail("too_large", format("response body over the limit of %d bytes", max)) end
    parts[#parts + 1] = data
  end
end

-- Reads the body as the head frames it. Returns the body and whether the
-- connection ended cleanly at a message boundary (so it may be reused).
local function read_body(st, method, status, headers)
  -- after 101 the connection speaks another protocol: never pooled
  if status == 101 then return "", false end
  if method == "HEAD" or status == 204 or status == 304 then return "", true end
  local parts = {}
  local te = headers["transfer-encoding"]
  if te then
    if not has_token(te:match("([^,]*)$"), "chunked") then
      local ok, err = read_to_close(st, parts)
      if not ok then return nil, err end
      return concat(parts), false
    end
    local ok, err = read_chunked(st, parts)
    if not ok then return nil, err end
    return concat(parts), true
  end
  local cl = headers["content-length"]
  if cl then
    local n
    for v in cl:gmatch("[^,]+") do
      local d = v:match("^%s*(%d+)%s*$")
      if not d or (n and tonumber(d) ~= n) or #d > 15 then
        return nil, fail("io", "malformed Content-Length in the response: " .. escape(cl))
      end
      n = tonumber(d)
    end
    if n > st.max_response_bytes then
      return nil, fail("too_large", format("response body over the limit of %d bytes (Content-Length: %d)",
        st.max_response_bytes, n))
    end
    local ok, err = read_exact(st, n, parts)
    if not ok then return nil, read_error(st, err, "in the response body") end
    return concat(parts), true
  end
  local ok, err = read_to_close(st, parts)
  if not ok then return nil, err end
  return concat(parts), false
end

http1.now_ms, http1.fail, http1.left, http1.timeout_error = now_ms, fail, left, timeout_error
http1.parse_url, http1.build_request = parse_url, build_request
http1.read_head, http1.read_body, http1.has_token = read_head, read_body, has_token

return http1
