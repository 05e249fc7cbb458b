--- A managed identity endpoint's answer, checked: the token and its
-- lifetime (`expires_on` as Unix time, a number string or ISO 8601, else
-- `expires_in`), MSAL's refresh_in (half the lifetime when it exceeds two
-- hours), and the error shapes the sources use (`error` as a string or
-- `{code, message}`, `message`).
-- @module msal.managed_identity.response
local cjson = require("cjson.safe")
local errors = require("msal.errors")

local response = {}

local TWO_HOURS = 2 * 3600

-- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm): no
-- os.time, whose answer depends on the local time zone.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Unix time of an ISO 8601 date-time (`2024-05-01T10:00:00Z`, with
-- fractions of a second or a `+hh:mm` offset), or nil.
-- @tparam string s
-- @treturn ?number
function response.iso8601(s)
  local y, mo, d, h, mi, sec, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)%.?%d*(.*)$")
  if not y then return nil end
  local offset = 0
  if rest ~= "Z" and rest ~= "z" and rest ~= "" then
    local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60 * (sign == "-" and -1 or 1)
  end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return t - offset
end

local function bad(source, msg, status)
  return nil, errors.ClientAuthError("invalid_response", source .. ": the token response is not usable: " .. msg,
    { source = source, status = status })
end

-- The lifetime in seconds from now.
local function lifetime(doc, now)
  local on = doc.expires_on
  if on ~= nil then
    local t = tonumber(on)
    if not t and type(on) == "string" then t = response.iso8601(on) end
    if t then return math.floor(t - now) end
    return nil, "expires_on is neither Unix time nor ISO 8601"
  end
  local n = tonumber(doc.expires_in)
  if n then return math.floor(n) end
  return nil, "it has neither expires_on nor expires_in"
end

-- The error answer of a source, as a ServerError naming it.
local function server_error(source, res, doc)
  doc = doc or {}
  local e = doc.error
  local code = type(e) == "string" and e or (type(e) == "table" and type(e.code) == "string" and e.code) or nil
  local desc = (type(doc.message) == "string" and doc.message)
    or (type(e) == "table" and type(e.message) == "string" and e.message)
    or (type(doc.error_description) == "string" and doc.error_description) or nil
  local cid = doc.correlation_id or doc.correlationId
  return nil, errors.ServerError(code or "managed_identity_error",
    ("%s answered HTTP %d%s"):format(source, res.status or 0, desc and (": " .. desc) or ""),
    { source = source, status = res.status, correlation_id = type(cid) == "string" and cid or nil })
end

--- Checks a response.
-- @tparam string source the source's name
-- @tparam table res `{status, headers, body}`
-- @tparam number now Unix time, s (the request's start)
-- @treturn[1] table `{access_token, token_type, expires_in, refresh_in, doc}`
-- @treturn[2] nil
-- @treturn[2] table ServerError (an error answer) or ClientAuthError
--   (`invalid_response`), with `source`
function response.check(source, res, now)
  local doc = cjson.decode(res.body or "")
  if type(doc) ~= "table" then doc = nil end
  if res.status < 200 or res.status > 299 or (doc and doc.error ~= nil and doc.access_token == nil) then
    return server_error(source, res, doc)
  end
  if not doc then return bad(source, "not a JSON object", res.status) end
  if type(doc.access_token) ~= "string" or doc.access_token == "" then
    return bad(source, "access_token is missing or not a string", res.status)
  end
  if doc.token_type ~= nil and type(doc.token_type) ~= "string" then
    return bad(source, "token_type must be a string", res.status)
  end
  local expires_in, why = lifetime(doc, now)
  if not expires_in then return bad(source, why, res.status) end
  local refresh_in = nil
  if expires_in > TWO_HOURS then refresh_in = math.floor(expires_in / 2) end
  return { access_token = doc.access_token, token_type = doc.token_type or "Bearer",
    expires_in = expires_in, refresh_in = refresh_in, doc = doc }
end

--- Whether Azure Arc's answer is for the user-assigned identity asked for:
-- an agent that cannot serve one ignores the id and answers with the
-- machine's own identity; one that can echoes the id (compared without
-- case). MSAL fails closed.
-- @tparam table identity `{kind, id}`
-- @tparam table doc the answer's JSON
-- @treturn boolean
function response.confirms(identity, doc)
  local echoed
  if identity.kind == "system_assigned" then return true end
  if identity.kind == "user_assigned_client_id" then echoed = doc.client_id
  elseif identity.kind == "user_assigned_object_id" then echoed = doc.object_id
  else echoed = doc.msi_res_id or doc.mi_res_id end
  return type(echoed) == "string" and echoed:lower() == identity.id:lower()
end

return response
