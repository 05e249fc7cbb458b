--- What `msal` writes: results on stdout (and only there), messages and
-- errors on stderr, one line each, colored only for a terminal and never
-- when NO_COLOR is set (https://no-color.org) unless asked.
-- @module msal.cli.output
local cjson = require("msal.lazy").require("cjson.safe")
local exit_codes = require("msal.cli.exit_codes")

local output = {}

---------------------------------------------------------------------------
-- JSON with sorted keys and two-space indents: stable output a person can
-- read and a diff can compare.

local array_mt = {}

--- Marks a table as a JSON array (an empty one would be an object).
-- @tparam table t
-- @treturn table t
function output.array(t)
  return setmetatable(t, array_mt)
end

local function encode_string(s)
  local e = cjson.encode(s)
  -- lua-cjson escapes "/" (as "\/"), which JSON allows but nobody reads well
  return (e:gsub("\\/", "/"))
end

local function encode(v, indent, out)
  local t = type(v)
  if v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = tostring(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "null"
    elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      out[#out + 1] = ("%d"):format(v) -- a float from cjson on Lua 5.4: 1700000000, not 1.7e+09
    else
      out[#out + 1] = ("%.17g"):format(v)
    end
  elseif t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "table" then
    local inner = indent .. "  "
    if getmetatable(v) == array_mt or v[1] ~= nil then
      if #v == 0 then
        out[#out + 1] = "[]"
        return
      end
      out[#out + 1] = "[\n"
      for i = 1, #v do
        out[#out + 1] = inner
        encode(v[i], inner, out)
        out[#out + 1] = i < #v and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = tostring(k) end
      if #keys == 0 then
        out[#out + 1] = "{}"
        return
      end
      table.sort(keys)
      out[#out + 1] = "{\n"
      for i, k in ipairs(keys) do
        out[#out + 1] = inner .. encode_string(k) .. ": "
        encode(v[k], inner, out)
        out[#out + 1] = i < #keys and ",\n" or "\n"
      end
      out[#out + 1] = indent .. "}"
    end
  else
    out[#out + 1] = encode_string(tostring(v))
  end
end

--- A value as indented JSON with sorted keys, and a newline.
-- @param v
-- @treturn string
function output.json(v)
  local out = {}
  encode(v, "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

---------------------------------------------------------------------------
-- Token results in each --output format.

-- A value for a `NAME=value` line that sh's eval and env files both take:
-- as it is when it has nothing the shell would read, else single-quoted.
local function shell_value(s)
  s = tostring(s)
  if s:match("^[%w%._~:/@+=,%-]*$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function token_type(r)
  local t = r.token_type or "Bearer"
  return t:lower() == "bearer" and "Bearer" or t
end

local function scopes_of(r)
  local s = {}
  for i, v in ipairs(r.scopes or {}) do s[i] = v end
  return output.array(s)
end

local formats = {}

function formats.token(r)
  return r.access_token .. "\n"
end

function formats.header(r)
  return "Authorization: " .. token_type(r) .. " " .. r.access_token .. "\n"
end

function formats.env(r)
  local a = r.account
  local lines = {
    "MSAL_ACCESS_TOKEN=" .. shell_value(r.access_token),
    "MSAL_TOKEN_TYPE=" .. shell_value(token_type(r)),
    "MSAL_EXPIRES_ON=" .. shell_value(("%d"):format(r.expires_on or 0)),
    "MSAL_SCOPES=" .. shell_value(table.concat(r.scopes or {}, " ")),
  }
  if a and a.username then lines[#lines + 1] = "MSAL_ACCOUNT=" .. shell_value(a.username) end
  return table.concat(lines, "\n") .. "\n"
end

function formats.json(r)
  local a = r.account
  return output.json({
    access_token = r.access_token, expires_on = r.expires_on, scopes = scopes_of(r), token_type = token_type(r),
    tenant_id = r.tenant_id, credential = r.credential,
    account = a and { username = a.username, home_account_id = a.home_account_id, tenant_id = a.tenant_id } or nil,
  })
end

--- A token result as the --output format shows it.
-- @tparam table r the result (access_token, expires_on, scopes, token_type, account)
-- @tparam string format "token", "json", "header" or "env"
-- @treturn string
function output.format_token(r, format)
  return formats[format or "token"](r)
end

---------------------------------------------------------------------------
-- stderr

local Out = {}
Out.__index = Out

--- Makes the writer of one run.
-- @tparam table sys `{stdout, stderr, getenv, isatty(fd)}` (msal.cli.system)
-- @tparam[opt="auto"] string color "auto", "always" or "never"
-- @treturn table
function output.new(sys, color)
  return setmetatable({ sys = sys, color = color or "auto" }, Out)
end

--- Whether stderr gets colors: --color, else NO_COLOR, TERM=dumb and
-- whether stderr is a terminal (asked once, only when a message is shown).
function Out:colored()
  if self.use_color == nil then
    local c = self.color
    if c == "always" then
      self.use_color = true
    elseif c == "never" then
      self.use_color = false
    else
      local env = self.sys.getenv
      local no = env("NO_COLOR")
      self.use_color = not (no and no ~= "") and env("TERM") ~= "dumb" and self.sys.isatty(2)
    end
  end
  return self.use_color
end

local STYLES = { red = "31", yellow = "33", bold = "1", dim = "2", cyan = "36", green = "32" }

--- s in a color, when stderr gets colors.
function Out:paint(style, s)
  if not self:colored() then return s end
  return "\27[" .. STYLES[style] .. "m" .. s .. "\27[0m"
end

--- Writes the result on stdout.
function Out:print(s)
  self.sys.stdout:write(s)
  self.sys.stdout:flush()
end

--- One message line on stderr, after "msal: ".
function Out:say(s, style)
  local text = s:gsub("[\r\n]+", " ")
  self.sys.stderr:write(self:paint("dim", "msal: ") .. (style and self:paint(style, text) or text) .. "\n")
  self.sys.stderr:flush()
end

--- Writes raw text on stderr (the countdown's in-place line).
function Out:raw(s)
  self.sys.stderr:write(s)
  self.sys.stderr:flush()
end

-- Hints after an error, by exit status: what to do next.
local HINTS = {
  [exit_codes.INTERACTION_REQUIRED] = "sign in with --interactive browser or device-code",
}

--- Shows an error in one line (its class, MSAL's error code, the message)
-- and returns the exit status for it.
-- @tparam table err an error of msal.errors (anything else is shown as it is)
-- @tparam[opt] integer code the exit status, when not the error's own
-- @treturn integer the exit status
function Out:fail(err, code)
  code = code or exit_codes.of(err)
  local text
  if type(err) == "table" and err.error_code then
    text = tostring(err.error_code) .. ": " .. tostring(err.error_message)
    if err.name ~= "UsageError" then text = tostring(err.name) .. ": " .. text end
    if err.correlation_id then text = text .. " [correlation id " .. err.correlation_id .. "]" end
  else
    text = tostring(err)
  end
  if HINTS[code] and not self.no_hints then text = text .. " (" .. HINTS[code] .. ")" end
  self.sys.stderr:write(self:paint("dim", "msal: ") .. self:paint("red", "error: ") .. text:gsub("[\r\n]+", " ") .. "\n")
  self.sys.stderr:flush()
  return code
end

--- A logger sink for --verbose: each log line on stderr.
-- @treturn function sink(level, message)
function Out:log_sink()
  return function(level, message)
    self.sys.stderr:write(self:paint("dim", "msal: [" .. level .. "] " .. tostring(message):gsub("[\r\n]+", " ")) .. "\n")
  end
end

return output
