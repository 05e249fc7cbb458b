/* luaopen_msal_core: one shared object whose table gathers the small Lua
 * faces of the C core's files. */
#define _GNU_SOURCE /* dladdr() and Dl_info are GNU extensions */
#include <dlfcn.h>

#include "compat.h"
#include "core.h"
#include "poller.h"

/* lua_close() dlclose()s this module, which would unload libcurl with it
 * while process-wide state that points into it (its thread-specific data,
 * OpenSSL's exit handlers) lives on; a later exit then reads unmapped code
 * (LeakSanitizer's exit scan crashed on exactly that). Pin the module, and so
 * its libraries, for the life of the process. The handle is never closed on
 * purpose. */
static void pin_module(void)
{
    Dl_info info;
    if (dladdr((void *)pin_module, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

int msal_opt_number(lua_State *L, int t, const char *name, lua_Number *v)
{
    int type;
    lua_getfield(L, t, name);
    type = lua_type(L, -1);
    *v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (type == LUA_TNIL)
        return 0;
    if (type != LUA_TNUMBER)
        luaL_error(L, "'%s' must be a number", name);
    return 1;
}

int msal_push_timeout(lua_State *L, int ready, int64_t deadline_ms)
{
    int64_t left;
    if (ready) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (deadline_ms < 0)
        return 0;
    left = deadline_ms - msal_now_ms();
    lua_pushinteger(L, (lua_Integer)(left < 0 ? 0 : left));
    return 1;
}

int luaopen_msal_core(lua_State *L)
{
    static const struct {
        const char *name;
        void (*open)(lua_State *L);
    } parts[] = {
        {"store", msal_open_store},   {"crypto", msal_open_crypto}, {"http", msal_open_http},
        {"loop", msal_open_loop},     {"fileio", msal_open_fileio}, {"redis", msal_open_redis},
        {"loopback", msal_open_loopback},
    };
    size_t i;
    pin_module();
    msal_wrap_big_alloc(L);
    lua_newtable(L);
    msal_open_clock(L); /* now_ms, sleep_ms, time: straight into core */
    for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        parts[i].open(L);
        lua_setfield(L, -2, parts[i].name);
    }
    return 1;
}
