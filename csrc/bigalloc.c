/* The Lua state's allocator, wrapped: big blocks in huge pages (Lua 5.3/5.4
 * with the stock allocator), and, for a state that asked (core.heap_arena),
 * small ones from a huge page of their own (blockarena.h).
 *
 * Lua 5.4 has no external strings: serialize() must copy a 120 MB document
 * into a fresh Lua string, and glibc hands out that block as a fresh 4 KiB
 * mapping, ~30,000 first-touch faults (~400 ms on this project's VMs) against
 * ~50 ms to build the document. So once per state, msal.core wraps the
 * state's allocator: a new block of MSAL_BIG_BLOCK bytes or more is mapped in
 * huge pages and populated in one call; everything else, and every block the
 * wrapper did not map, still goes to the allocator the state had.
 *
 * Only lauxlib's own allocator (realloc/free) is wrapped for big blocks: a
 * host that set its own (a memory limit, a pool, accounting) keeps it for
 * every block. LuaJIT has its own allocator, which already maps big blocks
 * and reuses them. core.heap_arena() is asked for, so it wraps whatever
 * allocator the state has, LuaJIT's too. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "blockarena.h"
#include "core.h"
#include "hugemem.h"

#define MAX_BIG 32                       /* live big blocks tracked per state */
#define MAX_STATES 64                    /* states wrapped per process */

typedef struct big_alloc {
    lua_Alloc inner; /* the state's allocator before msal.core was loaded */
    void *inner_ud;
    struct {
        void *p;
        size_t cap;
    } big[MAX_BIG];
    int nbig;
    int kept_small; /* one of ours was shrunk in place below MSAL_BIG_BLOCK */
    int maps_big;     /* serves big blocks (msal_wrap_big_alloc) */
    msal_arena arena; /* small blocks, once core.heap_arena() asked */
} big_alloc;

/* Static, not allocated: the wrapper must outlive its state (lua_close frees
 * the state itself through it last), and a static pool is neither a leak nor
 * a race between states opened on different threads. */
static big_alloc pool[MAX_STATES];
static int pool_used;

static size_t round_huge(size_t n)
{
    return (n + MSAL_HUGE_PAGE - 1) & ~(MSAL_HUGE_PAGE - 1);
}

static int find_big(const big_alloc *a, const void *p)
{
    int i;
    for (i = 0; i < a->nbig; i++)
        if (a->big[i].p == p)
            return i;
    return -1;
}

/* A new big block, or NULL to let the inner allocator serve it. */
static void *map_big(big_alloc *a, size_t n)
{
    size_t cap = round_huge(n);
    void *p;
    if (a->nbig == MAX_BIG || cap < n || (p = msal_huge_map(cap, 1)) == NULL)
        return NULL;
    a->big[a->nbig].p = p;
    a->big[a->nbig].cap = cap;
    a->nbig++;
    return p;
}

static void unmap_big(big_alloc *a, int i)
{
    msal_huge_unmap(a->big[i].p, a->big[i].cap);
    a->big[i] = a->big[--a->nbig];
}

/* A new block: a big one mapped, a small one from the arena while it has
 * room, else the inner allocator's (tag: Lua's type tag, or LUA_TNONE). */
static void *fresh(big_alloc *a, int tag, size_t n)
{
    void *p;
    if (n >= MSAL_BIG_BLOCK && a->maps_big && (p = map_big(a, n)) != NULL)
        return p;
    if ((p = msal_arena_take(&a->arena, n)) != NULL)
        return p;
    return a->inner(a->inner_ud, NULL, (size_t)tag, n);
}

static void *arena_realloc(big_alloc *a, void *ptr, size_t osize, size_t nsize)
{
    void *p;
    if (nsize == 0) {
        msal_arena_give(&a->arena, ptr, osize);
        return NULL;
    }
    if ((p = msal_arena_resize(&a->arena, ptr, osize, nsize)) != NULL)
        return p;
    if ((p = fresh(a, LUA_TNONE, nsize)) == NULL)
        return NULL; /* it grows (a shrink stays in place): the old block stays valid */
    memcpy(p, ptr, osize);
    msal_arena_give(&a->arena, ptr, osize);
    return p;
}

static void *wrapped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    big_alloc *a = ud;
    int i;
    void *p;
    if (ptr == NULL) /* then osize is a type tag */
        return fresh(a, (int)osize, nsize);
    if (msal_arena_owns(&a->arena, ptr))
        return arena_realloc(a, ptr, osize, nsize);
    /* Lua hands a block back with its size, so only a big one can be ours
     * (unless a shrink below that size once had to stay in place) */
    if ((osize < MSAL_BIG_BLOCK && !a->kept_small) || (i = find_big(a, ptr)) < 0)
        return a->inner(a->inner_ud, ptr, osize, nsize);
    if (nsize == 0) {
        unmap_big(a, i);
        return NULL;
    }
    if (nsize >= MSAL_BIG_BLOCK && nsize <= a->big[i].cap)
        return ptr;
    /* Move it: up to a bigger mapping, or down to the arena or the inner
     * allocator, since Lua would later hand back a small size that does not
     * say it is ours. */
    if ((p = fresh(a, LUA_TNONE, nsize)) == NULL) {
        if (nsize > osize)
            return NULL; /* growing may fail: the old block stays valid */
        a->kept_small = 1; /* shrinking must not: look every block up now */
        return ptr;
    }
    memcpy(p, ptr, nsize < osize ? nsize : osize);
    unmap_big(a, i); /* map_big appends: i still names the old block */
    return p;
}

/* Wraps the state's allocator; NULL when the pool is used up. */
static big_alloc *wrap(lua_State *L, int maps_big)
{
    int slot = __atomic_fetch_add(&pool_used, 1, __ATOMIC_RELAXED);
    big_alloc *a;
    if (slot >= MAX_STATES)
        return NULL;
    a = &pool[slot];
    a->inner = lua_getallocf(L, &a->inner_ud);
    a->maps_big = maps_big;
    lua_setallocf(L, wrapped_alloc, a);
    return a;
}

void msal_wrap_big_alloc(lua_State *L)
{
#if MSAL_WRAP_BIG_ALLOC
    lua_State *probe;
    lua_Alloc stock;
    if (lua_getallocf(L, NULL) == wrapped_alloc)
        return; /* msal.core loaded a second time into this state */
    /* lauxlib's allocator is a static function: a throwaway state shows it */
    if ((probe = luaL_newstate()) == NULL)
        return;
    stock = lua_getallocf(probe, NULL);
    lua_close(probe);
    if (lua_getallocf(L, NULL) != stock || wrap(L, 1) == NULL)
        return;
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, MSAL_BIG_ALLOC_KEY);
#else
    (void)L;
#endif
}

/***
 * Serves this state's blocks of up to 64 KiB from one 2 MiB huge page
 * (blockarena.h), the state's allocator serving the rest: for a process
 * that lives milliseconds (bin/msal). The page stays until lua_close. On
 * LuaJIT only in GC64 mode, and its allocator's own memory is then not
 * given back at lua_close (LuaJIT frees it whole only when that allocator
 * is the state's).
 * @function heap_arena
 * @treturn boolean whether the state has the page (again true when asked twice)
 */
static int l_heap_arena(lua_State *L)
{
    void *ud;
    big_alloc *a = NULL;
    if (lua_getallocf(L, &ud) == wrapped_alloc)
        a = ud;
    else if (msal_objects_anywhere(L))
        a = wrap(L, 0);
    lua_pushboolean(L, a && (a->arena.base != NULL || msal_arena_open(&a->arena)));
    return 1;
}

void msal_open_heap(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"heap_arena", l_heap_arena}, {NULL, NULL}};
    luaL_setfuncs(L, funcs, 0);
}
