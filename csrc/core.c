/* luaopen_msal_core: one shared object whose table gathers the small Lua
 * faces of the C core's files. */
#include "compat.h"
#include "core.h"

int luaopen_msal_core(lua_State *L)
{
    lua_newtable(L);
    msal_open_clock(L);    /* now_ms, sleep_ms, time: straight into core */
    msal_open_store(L);
    lua_setfield(L, -2, "store");
    return 1;
}
