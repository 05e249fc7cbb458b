-- Run with `nvim --cmd "luafile spec/support/nvim/paths.lua"`, before any
-- plugin loads: the tree's modules and its LuaJIT build of msal.core come
-- first, whatever LUA_PATH the child inherited.
local root = assert(os.getenv("MSAL_TEST_ROOT"), "MSAL_TEST_ROOT is not set")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/support/nvim/?.lua;"
  .. package.path
package.cpath = root .. "/build/luajit/?.so;" .. package.cpath
