/* Checks of csrc/bigalloc.c against a real Lua 5.4 state (spec/bigalloc_spec.lua
 * builds it with ASan and UBSan): prints the first failed check and exits 1. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static size_t host_bytes; /* what a host's own allocator handed out */

static void *host_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(p);
        return NULL;
    }
    if (p == NULL || nsize > osize)
        host_bytes += nsize;
    return realloc(p, nsize);
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        exit(1);
    }
}

int main(void)
{
    lua_State *L;
    lua_Alloc stock, wrapped;
    size_t before;

    /* a host's own allocator keeps every block, big ones too */
    L = lua_newstate(host_alloc, NULL);
    CHECK(L != NULL);
    luaL_openlibs(L);
    msal_wrap_big_alloc(L);
    CHECK(lua_getallocf(L, NULL) == host_alloc);
    before = host_bytes;
    run(L, "big = string.rep('x', 16 << 20) assert(#big == 16 << 20)");
    CHECK(host_bytes - before >= (size_t)16 << 20);
    lua_close(L);

    /* lauxlib's allocator is wrapped, once */
    L = luaL_newstate();
    CHECK(L != NULL);
    luaL_openlibs(L);
    stock = lua_getallocf(L, NULL);
    msal_wrap_big_alloc(L);
    wrapped = lua_getallocf(L, NULL);
    CHECK(wrapped != stock);
    msal_wrap_big_alloc(L);
    CHECK(lua_getallocf(L, NULL) == wrapped);

    /* more live big strings than the wrapper tracks: the rest go to malloc,
     * and every one keeps its content */
    run(L, "local t = {}\n"
           "for i = 1, 40 do t[i] = string.rep(string.char(65 + i % 26), (8 << 20) + i) end\n"
           "for i = 1, 40 do\n"
           "  local s = t[i]\n"
           "  assert(#s == (8 << 20) + i and s:byte(1) == 65 + i % 26 and s:byte(-1) == 65 + i % 26)\n"
           "end\n"
           "t = nil collectgarbage()");

    /* a big block grown (moved to a bigger mapping), then shrunk below the
     * big size (moved back to malloc): a table's array part */
    lua_createtable(L, 600000, 0); /* 9.6 MB: one of ours */
    lua_setglobal(L, "t");
    run(L, "for i = 1, 2000000 do t[i] = i * 3 end\n"
           "for i = 1, 2000000 do assert(t[i] == i * 3) end\n"
           "for i = 2000000, 17, -1 do t[i] = nil end\n"
           "for k = 1, 64 do t['k' .. k] = k end -- a rehash: the array shrinks\n"
           "for i = 1, 16 do assert(t[i] == i * 3) end\n"
           "for k = 1, 64 do assert(t['k' .. k] == k) end\n"
           "t = nil collectgarbage()");

    /* before a big C string: a dead big string is swept first, so the new one
     * can reuse its pages; both stay correct */
    run(L, "local s = string.rep('a', 20 << 20) s = nil");
    msal_before_big_string(L, (size_t)20 << 20);
    run(L, "local s = string.rep('b', 20 << 20) assert(s:byte(1) == 98 and s:byte(-1) == 98 and #s == 20 << 20)");
    lua_close(L);
    puts("bigalloc: ok");
    return 0;
}
