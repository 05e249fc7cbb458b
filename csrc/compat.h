/* Every difference between the Lua 5.1 API (LuaJIT, OpenResty, Neovim) and
 * Lua 5.4 that the C core touches lives here, so the other files are written
 * once against the 5.4 names. */
#ifndef MSAL_COMPAT_H
#define MSAL_COMPAT_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#endif

/* Plain 5.1 lacks these 5.2 helpers; LuaJIT 2.1 has them (and then defines
 * luaL_newlib, which is how it is told apart). */
#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
static inline void msal_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, n) msal_setfuncs((L), (l), (n))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
static inline void *msal_testudata(lua_State *L, int i, const char *tname)
{
    void *p = lua_touserdata(L, i);
    if (p == NULL || !lua_getmetatable(L, i))
        return NULL;
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2))
        p = NULL;
    lua_pop(L, 2);
    return p;
}
#define luaL_testudata(L, i, t) msal_testudata((L), (i), (t))
#define luaL_setmetatable(L, t) (luaL_getmetatable((L), (t)), lua_setmetatable((L), -2))
/* no mode: callers that need one check the chunk's first byte themselves */
#define luaL_loadbufferx(L, b, n, name, mode) luaL_loadbuffer((L), (b), (n), (name))
#endif

/* Metatables get __close only where the language has to-be-closed variables. */
#if LUA_VERSION_NUM >= 504
#define MSAL_HAS_CLOSE 1
#else
#define MSAL_HAS_CLOSE 0
#endif

/* Lua 5.3/5.4 copy every string into a block from the state's allocator
 * (bigalloc.c moves the big ones to huge pages); LuaJIT's allocator is its
 * own and already maps big blocks. */
#define MSAL_WRAP_BIG_ALLOC (LUA_VERSION_NUM >= 503)

/* Whether the state's objects may be anywhere in memory (bigalloc.c's
 * arena): LuaJIT without GC64 must keep them in the low 2 GiB, so only an
 * object seen above 4 GiB proves a LuaJIT state takes any address. */
#if LUA_VERSION_NUM == 501
static inline int msal_objects_anywhere(lua_State *L)
{
    uintptr_t at;
    lua_newtable(L);
    at = (uintptr_t)lua_topointer(L, -1);
    lua_pop(L, 1);
    return at >> 32 != 0;
}
#else
#define msal_objects_anywhere(L) ((void)(L), 1)
#endif

#endif
