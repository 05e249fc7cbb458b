-- msal.nvim's ManagedIdentityApplication inside a real headless Neovim
-- (LuaJIT, the tree's LuaJIT build of msal.core): a token from the fake
-- IMDS after two 503s (the retry delays are loop timers, the editor's loop
-- keeps running), then from the cache.
local cjson = require("cjson")
local files = require("files")
local proc = require("proc")
local mi_fake = require("mi_fake")

local ROOT = os.getenv("MSAL_TEST_ROOT") or "."
local SUPPORT = ROOT .. "/spec/support/nvim"

describe("msal.nvim ManagedIdentityApplication in headless Neovim #host", function()
  local fake, dir, cleanup

  setup(function()
    fake = mi_fake.start()
    dir, cleanup = proc.tempdir()
  end)

  teardown(function()
    if fake then fake:stop() end
    if cleanup then cleanup() end
  end)

  it("gets an IMDS token through the retries, then serves it from the cache", function()
    fake:reset()
    fake:script({ { status = 503, json = {} }, { status = 503, json = {} } })
    local out = dir .. "/mi.result.json"
    local vars = ""
    for _, v in ipairs({ "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME" }) do
      vars = vars .. v .. "=" .. proc.quote(dir .. "/xdg") .. " "
    end
    local cmd = ("%sMSAL_TEST_ROOT=%s MSAL_NVIM_OUT=%s MSAL_MI_URL=%s timeout -k 2 20 nvim --headless -u NONE -i NONE -n"
      .. " --cmd %s -c %s"):format(vars, proc.quote(ROOT), proc.quote(out), proc.quote(fake.url),
      proc.quote("luafile " .. SUPPORT .. "/paths.lua"), proc.quote("luafile " .. SUPPORT .. "/mi_case.lua"))
    local output, code = proc.sh(cmd, { plain = true })
    local text = files.read(out)
    assert(text, ("nvim wrote no result (exit %s):\n%s"):format(tostring(code), output))
    local res = cjson.decode(text)
    assert.is_nil(res.error, tostring(res.error))
    -- MSAL's 1 s and 2 s backoff: the editor's timer ran meanwhile
    assert.are.same({ access_token = "tok-1", from_cache = false }, res.first)
    assert.are.same({ access_token = "tok-1", from_cache = true }, res.second)
    assert.is_true(res.ticks > 50, "the editor's loop ticked " .. tostring(res.ticks) .. " times")
    assert.are.equal(3, #fake:log())
  end)
end)
