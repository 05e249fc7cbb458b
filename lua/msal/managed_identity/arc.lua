--- Azure Arc's challenge: the agent answers the first request with 401 and
-- `WWW-Authenticate: Basic realm=<key file>`; only a process that can read
-- that file (root or the himds group) may ask again with its content as
-- `Authorization: Basic <content>`. The file must be a `.key` file directly
-- in the agent's token directory and at most 4096 bytes, so a forged
-- challenge cannot make us send another file's content. The content is a
-- secret: it is never logged nor put in an error.
-- @module msal.managed_identity.arc
local errors = require("msal.errors")

local arc = {}

--- The largest key file accepted, in bytes (MSAL's limit).
arc.MAX_KEY_BYTES = 4096

local function fail(code, msg)
  return nil, errors.ManagedIdentityError(code, "AzureArc: " .. msg, { source = "AzureArc" })
end

--- The Authorization header value answering a 401 challenge.
-- @tparam table res the 401 response
-- @tparam string token_dir the directory key files must be in (with a
--   trailing slash)
-- @treturn[1] string `Basic <content>`
-- @treturn[2] nil
-- @treturn[2] table ManagedIdentityError
function arc.authorization(res, token_dir)
  local h = res.headers and res.headers["www-authenticate"]
  if not h then return fail("www_authenticate_header_missing", "the 401 answer has no WWW-Authenticate header") end
  local path = h:match("Basic realm=(.*)$")
  if not path then
    return fail("www_authenticate_header_unsupported_format", "the WWW-Authenticate header is not Basic realm=<file>")
  end
  local name = path:match("([^/]*)$")
  if not name:find("%.key$") then return fail("invalid_file_extension", "the challenge's file is not a .key file") end
  if token_dir .. name ~= path then
    return fail("invalid_file_path", "the challenge's file is not in " .. token_dir)
  end
  local f = io.open(path, "rb")
  if not f then return fail("unable_to_read_secret_file", "the challenge's key file cannot be read") end
  local size = f:seek("end")
  if not size or size > arc.MAX_KEY_BYTES then
    f:close()
    return fail("invalid_secret", "the challenge's key file is larger than " .. arc.MAX_KEY_BYTES .. " bytes")
  end
  f:seek("set", 0)
  local secret = f:read(arc.MAX_KEY_BYTES + 1)
  f:close()
  -- a header value cannot carry line breaks or other control characters
  if not secret or #secret > arc.MAX_KEY_BYTES or secret:find("[%c]") then
    return fail("invalid_secret", "the challenge's key file does not hold a usable secret")
  end
  return "Basic " .. secret
end

return arc
