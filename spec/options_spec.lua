-- The C core's option tables (msal.core.http.new, msal.core.loopback.listen):
-- a missing option takes its default, a wrongly typed one or one out of
-- range is refused with a message naming it.
local core = require("msal.core")
local http = require("msal.core.http")

local function refused(fn, opts, message)
  local ok, err = pcall(fn, opts)
  assert.is_false(ok)
  assert.matches(message, tostring(err), 1, true)
end

describe("C core options", function()
  it("http.new refuses wrong types and ranges, naming the option", function()
    refused(http.new, { timeout_ms = "5" }, "'timeout_ms' must be a number")
    refused(http.new, { connect_timeout_ms = 0 }, "'connect_timeout_ms' must be a positive number of milliseconds")
    refused(http.new, { max_response_bytes = {} }, "'max_response_bytes' must be a number")
    refused(http.new, { max_header_bytes = -1 }, "'max_header_bytes' must be a size between 0 and 4 GiB")
    local m = http.new({ timeout_ms = 5000, max_response_bytes = 0 })
    assert.is_userdata(m)
    m:close()
  end)
  it("loopback.listen refuses wrong types and ranges, naming the option", function()
    refused(core.loopback.listen, { port = "0" }, "'port' must be a number")
    refused(core.loopback.listen, { port = 70000 }, "'port' must be an integer between 0 and 65535")
    refused(core.loopback.listen, { request_timeout_ms = 1.5 }, "'request_timeout_ms' must be an integer")
    local l = core.loopback.listen({ port = 0 })
    assert.is_true(l:port() > 0)
    l:close()
  end)
end)
