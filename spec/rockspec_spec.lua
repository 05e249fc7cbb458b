-- The rockspec is what `luarocks install lua-msal` builds: it must name
-- every C source and Lua module of the tree, and build offline.
local ROOT = os.getenv("MSAL_TEST_ROOT") or "."

local function rockspec()
  local env = {}
  local chunk = assert((function()
    local f = assert(io.open(ROOT .. "/lua-msal-scm-1.rockspec"))
    local src = f:read("*a")
    f:close()
    if setfenv then
      local fn = assert(loadstring(src))
      setfenv(fn, env)
      return fn
    end
    return assert(load(src, "rockspec", "t", env))
  end)())
  chunk()
  return env
end

local function lines(cmd)
  local out, p = {}, assert(io.popen(cmd))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

describe("lua-msal-scm-1.rockspec", function()
  it("builds every C source into msal.core", function()
    local listed = {}
    for _, s in ipairs(rockspec().build.modules["msal.core"].sources) do listed[s] = true end
    for _, f in ipairs(lines("cd " .. ROOT .. " && ls csrc/*.c")) do
      assert.is_true(listed[f] == true, f .. " is not in the rockspec")
      listed[f] = nil
    end
    assert.is_nil(next(listed))
  end)
  it("installs every Lua module under its name", function()
    local mods = rockspec().build.modules
    local n = 0
    for _, f in ipairs(lines("cd " .. ROOT .. " && find lua -name '*.lua' | sort")) do
      local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(f, mods[name], name .. " is not installed from " .. f)
      n = n + 1
    end
    local installed = 0
    for name in pairs(mods) do if name ~= "msal.core" then installed = installed + 1 end end
    assert.equal(n, installed)
  end)
  if _VERSION == "Lua 5.4" and not os.getenv("MSAL_TEST_ASAN") then
    it("builds offline with luarocks make and loads", function()
      local tree = lines("mktemp -d")[1]
      local cmd = ("cd %s && luarocks --lua-version=5.4 --tree=%s make --deps-mode=none lua-msal-scm-1.rockspec >%s/log 2>&1")
        :format(ROOT, tree, tree)
      local ok = os.execute(cmd)
      assert.is_true(ok == true or ok == 0, "luarocks make failed: see " .. tree .. "/log")
      local out = lines(("LUA_PATH_5_4='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH_5_4='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'local m = require(\"msal\"); io.write(type(m.PublicClientApplication.new), \" \", type(require(\"msal.core\").store.new))'")
        :format(tree, tree, tree))
      os.execute("rm -rf " .. tree)
      assert.same({ "function function" }, out)
    end)
  end
end)
