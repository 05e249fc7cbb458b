-- lua-msal and msal-python (Debian's python3-msal-extensions: the Azure
-- CLI's cache persistence) writing one cache file at once lose nothing
-- (#14 item 3b). msal-extensions reloads the file only when its mtime is
-- later than its last read; an mtime stamped from the kernel's coarse clock
-- made it miss our writes and save its stale copy over them.
local cjson = require("cjson")
local F = require("fixtures")
local proc = require("proc")
local files = require("files")

local PY = "/usr/bin/python3"
local WRITER = (os.getenv("MSAL_TEST_ROOT") or ".") .. "/spec/support/python/cache_writer.py"
local WRITES = 100

local LUA_WRITER = [[
local F = require("fixtures")
local path, tag, count = arg[1], arg[2], tonumber(arg[3])
local tc = require("msal.cache").new(F.CLIENT, require("msal.cache.file").new({ path = path }))
local now = os.time()
for i = 0, count - 1 do
  tc:access(true, function()
    assert(tc.store:put("AccessToken", F.access_token({ secret = "secret-" .. tag .. "-" .. i,
      target = tag .. "." .. i, environment = "login.microsoftonline.com", cached_at = tostring(now),
      expires_on = tostring(now + 3600), extended_expires_on = tostring(now + 3600) })))
  end)
end
print("done")
]]

describe("lua-msal and msal-python writing one cache file at once", function()
  local dir, cleanup
  setup(function() dir, cleanup = proc.tempdir() end)
  teardown(function() cleanup() end)

  -- The rule msal-extensions reloads by: the file's mtime later than a
  -- time.time() taken before our write. The kernel's coarse clock made the
  -- mtime of nearly every write up to a tick older than that.
  it("stamp the file later than any read before the write", function()
    local core = require("msal.core")
    local tc = require("msal.cache").new(F.CLIENT)
    local path = dir .. "/stamped.json"
    local early = {}
    for i = 1, 40 do
      tc.store:put("AccessToken", F.access_token({ target = "t." .. i }))
      local before = core.time()
      assert(tc:write_file(path))
      local st = assert(core.fileio.stat(path))
      local mtime = st.mtime_sec + st.mtime_nsec / 1e9
      if mtime < before then early[#early + 1] = ("%.6f < %.6f"):format(mtime, before) end
    end
    assert.same({}, early)
  end)

  it("keep every token both wrote (3 + 3 writers)", function()
    local path = dir .. "/msal_token_cache.json"
    local lua_script = proc.lua_script(dir .. "/writer.lua", LUA_WRITER)
    local jobs = {}
    for w = 1, 3 do
      jobs[#jobs + 1] = proc.background(("%s %s %s lua%d %d"):format(proc.LUA, proc.quote(lua_script),
        proc.quote(path), w, WRITES), dir .. "/lua" .. w)
      jobs[#jobs + 1] = proc.background(("%s %s %s py%d %d %s %s %s"):format(PY, proc.quote(WRITER), proc.quote(path),
        w, WRITES, F.CLIENT, F.HID, F.TENANT), dir .. "/py" .. w, { plain = true })
    end
    for _, job in ipairs(jobs) do
      assert.equal(0, job:wait(120000), job:output())
    end
    local doc = cjson.decode((assert(files.read(path))))
    local have = {}
    for _, e in pairs(doc.AccessToken) do have[e.target] = true end
    local lost = {}
    for _, tag in ipairs({ "lua1", "lua2", "lua3", "py1", "py2", "py3" }) do
      for i = 0, WRITES - 1 do
        if not have[tag .. "." .. i] then lost[#lost + 1] = tag .. "." .. i end
      end
    end
    assert.same({}, lost)
  end)
end)
