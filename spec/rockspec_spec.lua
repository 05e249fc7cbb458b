-- The rockspec is what `luarocks install lua-msal` builds: it must name
-- every C source and Lua module of the tree, and build offline.
local proc = require("proc")

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

-- The lines a command (run in the tree's root) writes to stdout, as
-- file:lines() gives them.
local function lines(cmd)
  local out, text = {}, proc.run(cmd, { dir = ROOT })
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  for l in text:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

describe("lua-msal-scm-1.rockspec", function()
  it("builds the C sources into msal.core and its parts as the Makefile does", function()
    local mods = rockspec().build.modules
    local function set(list)
      local t = {}
      for _, f in ipairs(list) do t[f] = true end
      return t
    end
    local libs = { CORE = {}, HTTP = { "curl" }, CRYPTO = { "crypto" }, REDIS = { "ssl", "crypto" } }
    for _, part in ipairs({ "CORE", "HTTP", "CRYPTO", "REDIS" }) do
      local name = part == "CORE" and "msal.core" or "msal.core." .. part:lower()
      assert.same(set(lines("make -s --no-print-directory print-" .. part .. "_SRC")), set(mods[name].sources), name)
      assert.same(libs[part], mods[name].libraries or {}, name)
    end
    -- every C file is built into one of them
    local all = set(lines("ls csrc/*.c"))
    for _, part in ipairs({ "msal.core", "msal.core.http", "msal.core.crypto", "msal.core.redis" }) do
      for _, f in ipairs(mods[part].sources) do all[f] = nil end
    end
    assert.same({}, all)
  end)
  it("installs every Lua module under its name", function()
    local mods = rockspec().build.modules
    local n = 0
    for _, f in ipairs(lines("find lua -name '*.lua' | sort")) do
      local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      assert.equal(f, mods[name], name .. " is not installed from " .. f)
      n = n + 1
    end
    local installed = 0
    for name in pairs(mods) do if not name:match("^msal%.core") then installed = installed + 1 end end
    assert.equal(n, installed)
  end)
  if _VERSION == "Lua 5.4" and not os.getenv("MSAL_TEST_ASAN") then
    it("builds offline with luarocks make and loads", function()
      local tree, remove_tree = proc.tempdir()
      local _, code = proc.sh(("luarocks --lua-version=5.4 --tree=%s make --deps-mode=none lua-msal-scm-1.rockspec >%s/log 2>&1")
        :format(tree, tree), { dir = ROOT })
      assert.is_true(code == 0, "luarocks make failed: see " .. tree .. "/log")
      local out = lines(("LUA_PATH_5_4='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH_5_4='%s/lib/lua/5.4/?.so;;' lua5.4 -e 'local m = require(\"msal\"); io.write(type(m.PublicClientApplication.new), \" \", type(require(\"msal.core\").store.new), \" \", require(\"msal.core.http\").version():match(\"^libcurl\"), \" \", type(require(\"msal.core\").crypto.sha256), \" \", type(require(\"msal.core\").redis.connect))'")
        :format(tree, tree, tree))
      -- install.bin, unwrapped (deploy.wrap_bin_scripts): bin/msal as it
      -- is, which finds the tree's Lua and modules without LUA_PATH
      local cli = lines(("env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LUA_PATH -u LUA_CPATH XDG_CACHE_HOME=%s/xdg %s/bin/msal --version")
        :format(tree, tree))
      local same = lines(("cmp %s/bin/msal bin/msal && echo same"):format(tree))
      -- copy_directories: the LuaLS stubs, for editors (README, Neovim)
      local stubs = lines(("ls %s/lib/luarocks/rocks-5.4/lua-msal/scm-1/types/msal.lua %s/lib/luarocks/rocks-5.4/lua-msal/scm-1/types/msal/nvim.lua")
        :format(tree, tree))
      remove_tree()
      assert.equal(2, #stubs)
      assert.same({ "function function libcurl function function" }, out)
      assert.matches("^msal %(lua%-msal%) .* on Lua 5%.4$", cli[1] or "")
      assert.same({ "same" }, same)
    end)
  end
end)
