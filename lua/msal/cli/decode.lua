--- `msal decode`: a JWT's header and claims, for debugging. Nothing is
-- verified, so nothing shown may be trusted.
-- @module msal.cli.decode
local cjson = require("cjson.safe")
local crypto = require("msal.core").crypto
local errors = require("msal.errors")
local exit_codes = require("msal.cli.exit_codes")
local output = require("msal.cli.output")

local decode = {}

-- Tokens are at most a few KB; a bigger input is no token.
local MAX_LEN = 1024 * 1024

local function not_a_jwt(why)
  return errors.ClientAuthError("token_parsing_error", "not a JWT (header.payload.signature, base64url): " ..
    why:gsub("^not a JWT: ", ""))
end

--- Runs the command.
-- @treturn integer the exit status
function decode.run(_, positionals, out, sys)
  local text = positionals[1]
  if text == nil or text == "-" then
    text = sys.stdin:read(MAX_LEN + 1) or ""
  end
  text = text:gsub("^%s+", ""):gsub("%s+$", "")
  -- "Authorization: Bearer x" or "Bearer x", as pasted from a request
  text = text:gsub("^[Aa]uthorization:%s*", ""):gsub("^[Bb]earer%s+", "")
  if text == "" then return out:fail(not_a_jwt("the input is empty"), exit_codes.USAGE) end
  local header, payload = crypto.jwt_decode(text, MAX_LEN)
  if not header then return out:fail(not_a_jwt(tostring(payload)), exit_codes.USAGE) end
  local h, c = cjson.decode(header), cjson.decode(payload)
  if type(h) ~= "table" then return out:fail(not_a_jwt("its header is not a JSON object"), exit_codes.USAGE) end
  if type(c) ~= "table" then
    return out:fail(not_a_jwt("its payload is not a JSON object (an encrypted token?)"), exit_codes.USAGE)
  end
  out:print(output.json({ header = h, claims = c }))
  return exit_codes.OK
end

return decode
