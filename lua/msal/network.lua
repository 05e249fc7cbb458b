--- Requests to an authority over the configured transport: form bodies,
-- JSON answers, the one retry MSAL makes on 5xx and 429 (honouring
-- Retry-After, bounded), and transport failures as ClientAuthErrors.
-- @module msal.network
local cjson = require("msal.lazy").require("cjson.safe")
local Promise = require("msal.promise")
local loop = require("msal.loop")
local errors = require("msal.errors")

local network = {}

--- Percent-encodes a string for application/x-www-form-urlencoded.
function network.url_encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

--- Encodes an ordered list of `{name, value}` pairs (nil values skipped).
function network.form_encode(pairs_list)
  local out = {}
  for _, kv in ipairs(pairs_list) do
    if kv[2] ~= nil then out[#out + 1] = network.url_encode(kv[1]) .. "=" .. network.url_encode(kv[2]) end
  end
  return table.concat(out, "&")
end

--- Decodes a form-encoded or query string into a table (last value wins).
function network.form_decode(s)
  local out = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function dec(x)
      return (x:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    out[dec(k)] = dec(v)
  end
  return out
end

local MAX_RETRY_AFTER_S = 10

-- Seconds to wait before the retry: Retry-After as seconds (an HTTP date
-- counts as the default), at most MAX_RETRY_AFTER_S.
local function retry_delay(res)
  local ra = res.headers and res.headers["retry-after"]
  local n = tonumber(ra)
  if not n or n < 0 then n = 1 end
  return math.min(n, MAX_RETRY_AFTER_S)
end

local function transport_error(err)
  local kind = type(err) == "table" and err.kind or "io"
  local msg = type(err) == "table" and err.message or tostring(err)
  return errors.ClientAuthError(kind == "timeout" and "request_timeout" or "network_error",
    "the request to the authority failed (" .. kind .. "): " .. tostring(msg), { kind = kind })
end

local function send_once(transport, req)
  return Promise.new(function(resolve, reject)
    transport:request(req, function(err, res)
      if err then reject(transport_error(err)) else resolve(res) end
    end)
  end)
end

--- Sends a request; retries once on 5xx or 429 after Retry-After.
-- @tparam table transport the app's transport
-- @tparam table req `{method, url, headers, body, timeout_ms}`
-- @treturn promise of the response `{status, headers, body}`
function network.send(transport, req)
  return send_once(transport, req):next(function(res)
    if res.status == 429 or (res.status >= 500 and res.status <= 599) then
      return Promise.new(function(resolve)
        loop.set_timeout(retry_delay(res) * 1000, function() resolve(send_once(transport, req)) end)
      end)
    end
    return res
  end)
end

--- The JSON object of a response body, or a ClientAuthError saying what
-- is wrong with it.
function network.json(res)
  local ct = res.headers and res.headers["content-type"] or ""
  local doc = cjson.decode(res.body or "")
  if type(doc) ~= "table" or doc[1] ~= nil then
    return nil, errors.ClientAuthError("invalid_response",
      ("the authority answered HTTP %d with %s, not a JSON object"):format(res.status or 0,
        ct ~= "" and ct or "no content type"), { status = res.status })
  end
  return doc
end

--- The transport an app's requests go through: `system.transport`, else a
-- libcurl transport made on first use.
-- @tparam table app
-- @treturn table transport
function network.transport(app)
  local t = app.config.system.transport or app.default_transport
  if not t then
    t = require("msal.transport.curl").new()
    app.default_transport = t
  end
  return t
end

network.MAX_RETRY_AFTER_S = MAX_RETRY_AFTER_S
return network
