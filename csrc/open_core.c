/* luaopen_msal_core: one shared object whose table gathers the small Lua
 * faces of the C core's files. HTTP is not among them: libcurl and its
 * ~30 libraries take longer to load than a cache hit takes (bench/README.md,
 * the command line), so they live in msal.core.http, loaded on the first
 * request. */
#include "clock.h"
#include "compat.h"
#include "core.h"

int luaopen_msal_core(lua_State *L)
{
    static const struct {
        const char *name;
        void (*open)(lua_State *L);
    } parts[] = {
        {"store", msal_open_store},   {"crypto", msal_open_crypto}, {"loop", msal_open_loop},
        {"fileio", msal_open_fileio}, {"redis", msal_open_redis},   {"loopback", msal_open_loopback},
    };
    size_t i;
    msal_pin_module((void *)luaopen_msal_core);
    msal_wrap_big_alloc(L);
    lua_newtable(L);
    msal_open_clock(L); /* now_ms, sleep_ms, time: straight into core */
    for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        parts[i].open(L);
        lua_setfield(L, -2, parts[i].name);
    }
    return 1;
}
