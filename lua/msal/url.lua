--- Absolute http(s) URLs taken apart, for the checks that decide where a
-- token or a refresh token may be sent. A pattern that looks for "the host
-- after //" can be fooled (`http://localhost:1@evil.example/` names the host
-- evil.example, not localhost), so endpoints are parsed by RFC 3986's rules
-- and anything they do not allow is refused rather than guessed at.
-- @module msal.url
local url = {}

local function is_ipv4_loopback(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, n in ipairs({ a, b, c, d }) do
    if #n > 3 or tonumber(n) > 255 then return false end
  end
  return tonumber(a) == 127
end

--- Whether a host (lower-case; IPv6 in brackets) is this machine's
-- loopback: `localhost`, 127.0.0.0/8 or `[::1]`.
function url.is_loopback(host)
  return host == "localhost" or host == "[::1]" or is_ipv4_loopback(host)
end

--- Parses an absolute URL.
-- @tparam string s
-- @treturn[1] table `{scheme, userinfo, host (lower-case, with port),
--   hostname (lower-case, IPv6 in brackets), port (number or nil), path,
--   query, fragment}`; userinfo is nil when absent
-- @treturn[2] nil
-- @treturn[2] string why the text is not a URL
function url.parse(s)
  if type(s) ~= "string" then return nil, "not a string" end
  if s:find("[%c \\]") then return nil, "contains spaces, control characters or backslashes" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not an absolute URL (scheme://host)" end
  local authority_part, tail = rest:match("^([^/?#]*)(.*)$")
  local userinfo
  local at = authority_part:find("@[^@]*$")
  if at then userinfo, authority_part = authority_part:sub(1, at - 1), authority_part:sub(at + 1) end
  local hostname, port = authority_part:match("^(%[[%x:.]+%])(.*)$")
  if not hostname then hostname, port = authority_part:match("^([%w.-]*)(.*)$") end
  if not hostname or hostname == "" then return nil, "has no host" end
  if hostname:find("^%.") or hostname:find("%.%.") then return nil, "has an invalid host" end
  if port ~= "" then
    port = port:match("^:(%d+)$")
    if not port or #port > 5 or tonumber(port) < 1 or tonumber(port) > 65535 then
      return nil, "has an invalid port"
    end
  end
  local path, query, fragment = tail:match("^([^?#]*)%??([^#]*)#?(.*)$")
  hostname = hostname:lower()
  port = port ~= "" and tonumber(port) or nil
  return {
    scheme = scheme:lower(), userinfo = userinfo, hostname = hostname, port = port,
    host = port and (hostname .. ":" .. port) or hostname,
    path = path, query = query, fragment = fragment,
  }
end

--- Parses a URL a token may be sent to: https, or http to a loopback host,
-- and no user information (which only serves to disguise the host).
-- @tparam string s
-- @treturn[1] table as `url.parse`
-- @treturn[2] nil
-- @treturn[2] string why it is refused
function url.endpoint(s)
  local u, err = url.parse(s)
  if not u then return nil, err end
  if u.userinfo then return nil, "must not carry user information (user@host)" end
  if u.scheme ~= "https" and not (u.scheme == "http" and url.is_loopback(u.hostname)) then
    return nil, "must use https (http only for loopback hosts)"
  end
  return u
end

return url
