/* Checks of csrc/bigalloc.c and csrc/blockarena.c against a real Lua 5.4
 * state (spec/bigalloc_spec.lua builds it with ASan and UBSan): prints the
 * first failed check and exits 1. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockarena.h"
#include "core.h"
#include "hugemem.h"

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

static size_t host_bytes; /* what a host's own allocator handed out */
static long host_live;    /* its blocks not given back */

static void *host_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        if (p)
            host_live--;
        free(p);
        return NULL;
    }
    if (p == NULL) {
        host_live++;
        host_bytes += nsize;
    } else if (nsize > osize) {
        host_bytes += nsize;
    }
    return realloc(p, nsize);
}

static void run(lua_State *L, const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        exit(1);
    }
}

/* The arena's own rules, on one page. */
static void check_arena(void)
{
    msal_arena a;
    char *p, *q, *r, *big;
    size_t n = 0;
    memset(&a, 0, sizeof a);
    CHECK(msal_arena_take(&a, 16) == NULL); /* not open: nothing */
    CHECK(!msal_arena_owns(&a, &a));
    CHECK(msal_arena_open(&a));
    p = msal_arena_take(&a, 24);
    q = msal_arena_take(&a, 24);
    r = msal_arena_take(&a, 100);
    CHECK(p && q && r && msal_arena_owns(&a, p) && !msal_arena_owns(&a, &a));
    CHECK(((size_t)p & 15) == 0 && q == p + 32 && r == q + 32);
    memset(p, 1, 24);
    memset(q, 2, 24);
    msal_arena_give(&a, p, 24); /* to its size's free list */
    CHECK(msal_arena_take(&a, 20) == p);
    CHECK(msal_arena_resize(&a, r, 100, 300) == r); /* the last block grows in place */
    memset(r, 3, 300);
    CHECK(msal_arena_resize(&a, q, 24, 40) == NULL); /* another must move */
    CHECK(msal_arena_resize(&a, q, 24, 8) == q);     /* shrinking never moves */
    CHECK(q[0] == 2 && r[299] == 3);
    msal_arena_give(&a, r, 300); /* the last block: the page takes it back */
    CHECK(msal_arena_take(&a, 200) == r);
    memset(r, 3, 200);
    CHECK(msal_arena_take(&a, MSAL_ARENA_MAX_BLOCK + 1) == NULL); /* too big to crowd the page */
    CHECK(msal_arena_resize(&a, r, 200, MSAL_ARENA_MAX_BLOCK + 1) == NULL);
    /* filled up: NULL, and nothing handed out twice */
    while ((big = msal_arena_take(&a, 4096)) != NULL) {
        CHECK(big >= r + 208 && big + 4096 <= a.end);
        memset(big, 4, 4096);
        n++;
    }
    CHECK(n > 400 && n < 512);
    for (n = 0; msal_arena_take(&a, 16) != NULL; n++)
        ;
    CHECK(n < 4096 / 16 && q[0] == 2 && r[199] == 3);
    /* the page is unmapped when its last block comes back */
    msal_arena_give(&a, q, 8);
    msal_arena_give(&a, r, 200);
    CHECK(a.base != NULL);
    a.live = 1; /* the filler blocks above are dropped, not given back */
    msal_arena_give(&a, p, 20);
    CHECK(a.base == NULL && !msal_arena_owns(&a, p) && msal_arena_take(&a, 16) == NULL);
    /* the page kept for the next mapping is no longer poisoned */
    big = msal_huge_map(MSAL_HUGE_PAGE, 1);
    CHECK(big != NULL);
    memset(big, 5, MSAL_HUGE_PAGE);
    msal_huge_unmap(big, MSAL_HUGE_PAGE);
}

/* heap_arena(), called the way msal.core's table offers it */
static void open_heap_arena(lua_State *L)
{
    lua_newtable(L);
    msal_open_heap(L);
    lua_setglobal(L, "core");
    run(L, "assert(core.heap_arena() == true) assert(core.heap_arena() == true)");
}

/* spec/support/heap_churn.lua (run from the tree's root): Lua values
 * through the state's arena and past it, each kept value checked. */
static void churn(lua_State *L)
{
    if (luaL_dofile(L, "spec/support/heap_churn.lua") != LUA_OK) {
        fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    CHECK(lua_tointeger(L, -1) == 40 * 21);
    lua_pop(L, 1);
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

    /* the arena on top of the wrapper: small blocks from it, big ones still
     * mapped, all kept right; lua_close gives every block back */
    open_heap_arena(L);
    churn(L);
    run(L, "local s = string.rep('c', 12 << 20) assert(#s == 12 << 20 and s:byte(-1) == 99)");
    lua_close(L);

    check_arena();

    /* asked for, the arena wraps a host's own allocator too; every block the
     * host handed out comes back to it */
    host_live = 0;
    L = lua_newstate(host_alloc, NULL);
    CHECK(L != NULL);
    luaL_openlibs(L);
    open_heap_arena(L);
    before = host_bytes;
    churn(L);
    CHECK(host_bytes > before); /* past the page: the host serves the rest */
    lua_close(L);
    CHECK(host_live == 0);
    puts("bigalloc: ok");
    return 0;
}
