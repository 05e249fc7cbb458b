/* luaopen_msal_core: one shared object whose table gathers the small Lua
 * faces of the C core's files. The parts that need libcurl or OpenSSL
 * (http, crypto, redis) are shared objects of their own: loading those
 * libraries takes longer than a whole cache hit (bench/README.md, the
 * command line), so the table requires them on first use. */
#include <string.h>

#include "clock.h"
#include "compat.h"
#include "core.h"

/* core.http, core.crypto and core.redis: msal.core.<name>, required when
 * first read and then kept in the table. */
static int l_lazy_part(lua_State *L)
{
    static const char *const lazy[] = {"http", "crypto", "redis", NULL};
    const char *k;
    int i;
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    k = lua_tostring(L, 2);
    for (i = 0; lazy[i] && strcmp(k, lazy[i]) != 0; i++)
        ;
    if (!lazy[i])
        return 0;
    lua_getglobal(L, "require");
    lua_pushfstring(L, "msal.core.%s", k);
    lua_call(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 1);
    return 1;
}

int luaopen_msal_core(lua_State *L)
{
    static const struct {
        const char *name;
        void (*open)(lua_State *L);
    } parts[] = {
        {"store", msal_open_store},   {"loop", msal_open_loop},
        {"fileio", msal_open_fileio}, {"loopback", msal_open_loopback},
    };
    size_t i;
    msal_pin_module((void *)luaopen_msal_core);
    msal_wrap_big_alloc(L);
    lua_newtable(L);
    msal_open_clock(L); /* now_ms, sleep_ms, time: straight into core */
    msal_open_heap(L);  /* heap_arena */
    for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        parts[i].open(L);
        lua_setfield(L, -2, parts[i].name);
    }
    lua_newtable(L); /* its metatable */
    lua_pushcfunction(L, l_lazy_part);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    return 1;
}
