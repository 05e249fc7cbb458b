-- The runnable examples keep running: each is started with this spec's
-- interpreter and module paths, and its output checked.
local proc = require("proc")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."

-- Output and exit status of an example run in the tree's root (with the ASan
-- preload: the examples load msal.core).
local function run(script, ...)
  local interp = proc.LUA
  local args = table.concat({ ... }, " ")
  if script:find("^env ") then interp, script, args = script, args, "" end
  return proc.sh(("%s %s %s"):format(interp, script, args), { dir = ROOT })
end

describe("examples", function()
  it("silent_from_cache lists the account and serves a token from the cache", function()
    local out, code = run("examples/silent_from_cache.lua", "examples/cache.json")
    assert.equal(0, code, out)
    assert.matches("account: test.user@example.com", out, 1, true)
    assert.matches("from cache: true", out, 1, true)
  end)
  it("silent_from_cache says when the cache cannot answer", function()
    local empty = os.tmpname()
    require("files").write(empty, '{"Account":{}}')
    local out, code = run("examples/silent_from_cache.lua", empty)
    os.remove(empty)
    assert.equal(1, code)
    assert.matches("no_account_in_silent_request", out, 1, true)
  end)
  it("silent_then_popup goes to the browser once, then to the cache", function()
    local base = assert(os.getenv("MSAL_TEST_ENTRA"), "the test command starts the local authority")
    local out, code = run("env MSAL_EXAMPLE_BROWSER=auto MSAL_EXAMPLE_AUTHORITY=" .. base ..
      "/00000000-0000-0000-bbbb-000000000002 " .. proc.LUA, "examples/silent_then_popup.lua")
    assert.equal(0, code, out)
    assert.matches("1. Bearer for test.user@example.com (from cache: false)", out, 1, true)
    assert.matches("2. Bearer for test.user@example.com (from cache: true)", out, 1, true)
  end)
  local expected = {
    promise_style = "silent: from cache = true",
    await_style = "round 2: token for test.user@example.com, from cache: true",
    events = "unsubscribed: the last call printed no event",
    redirect_web_handler = "-> 200 hello test.user@example.com (token from cache: true)",
    device_code = "signed in on the other device: token for test.user@example.com",
    optional_claims = "token for the challenge, from cache: false",
  }
  for name, line in pairs(expected) do
    it(name .. " runs against the local authority", function()
      local base = assert(os.getenv("MSAL_TEST_ENTRA"), "the test command starts the local authority")
      local out, code = run("env LUA_PATH_5_4=" .. ROOT .. "/examples/?.lua\\;${LUA_PATH_5_4} LUA_PATH=" .. ROOT ..
        "/examples/?.lua\\;${LUA_PATH} MSAL_EXAMPLE_BROWSER=auto MSAL_EXAMPLE_AUTHORITY=" .. base ..
        "/00000000-0000-0000-bbbb-000000000002 " .. proc.LUA, "examples/" .. name .. ".lua")
      assert.equal(0, code, out)
      assert.matches(line, out, 1, true)
    end)
  end
  it("shared_dict_plugin serves one worker's tokens to another", function()
    local out, code = run("examples/shared_dict_plugin.lua")
    assert.equal(0, code, out)
    assert.matches("from the shared dictionary (from_cache: true)", out, 1, true)
  end)
end)
