/* Big Lua blocks in huge pages (Lua 5.3/5.4 with the stock allocator).
 *
 * Lua 5.4 has no external strings: serialize() must copy a 120 MB document
 * into a fresh Lua string, and glibc hands out that block as a fresh 4 KiB
 * mapping, ~30,000 first-touch faults (~400 ms on this project's VMs) against
 * ~50 ms to build the document. So once per state, msal.core wraps the
 * state's allocator: a new block of MSAL_BIG_BLOCK bytes or more is mapped in
 * huge pages and populated in one call; everything else, and every block the
 * wrapper did not map, still goes to the allocator the state had.
 *
 * Only lauxlib's own allocator (realloc/free) is wrapped: a host that set its
 * own (a memory limit, a pool, accounting) keeps it for every block. LuaJIT
 * has its own allocator, which already maps big blocks and reuses them. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "core.h"
#include "hugemem.h"

#if MSAL_WRAP_BIG_ALLOC

/* From 1 MiB: a 100-account cache file (1.3 MB) read into a Lua string took
 * ~300 first-touch faults. Rounding up to whole huge pages wastes at most
 * half of a block just over 1 MiB, and only for these few big blocks. */
#define MSAL_BIG_BLOCK ((size_t)1 << 20)
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

static void *wrapped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    big_alloc *a = ud;
    int i;
    void *p;
    if (ptr == NULL) { /* then osize is a type tag */
        if (nsize >= MSAL_BIG_BLOCK && (p = map_big(a, nsize)) != NULL)
            return p;
        return a->inner(a->inner_ud, ptr, osize, nsize);
    }
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
    /* Move it: up to a bigger mapping, or down to the inner allocator, since
     * Lua would later hand back a small size that does not say it is ours. */
    p = nsize >= MSAL_BIG_BLOCK ? map_big(a, nsize) : NULL;
    if (p == NULL)
        p = a->inner(a->inner_ud, NULL, LUA_TNONE, nsize);
    if (p == NULL) {
        if (nsize > osize)
            return NULL; /* growing may fail: the old block stays valid */
        a->kept_small = 1; /* shrinking must not: look every block up now */
        return ptr;
    }
    memcpy(p, ptr, nsize < osize ? nsize : osize);
    unmap_big(a, i); /* map_big appends: i still names the old block */
    return p;
}

void msal_before_big_string(lua_State *L, size_t len)
{
    void *ud;
    if (len < MSAL_BIG_BLOCK || lua_getallocf(L, &ud) != wrapped_alloc)
        return;
    /* Pay the collector now what it would ask for right after: a cache
     * serialized again usually finds the last result dead but not yet swept,
     * and sweeping it first lets the new string reuse its pages instead of
     * faulting in fresh ones. */
    lua_gc(L, LUA_GCSTEP, (int)(len >> 10 > INT_MAX ? INT_MAX : len >> 10));
}

void msal_wrap_big_alloc(lua_State *L)
{
    void *ud;
    lua_Alloc cur = lua_getallocf(L, &ud);
    lua_State *probe;
    lua_Alloc stock;
    int slot;
    if (cur == wrapped_alloc)
        return; /* msal.core loaded a second time into this state */
    /* lauxlib's allocator is a static function: a throwaway state shows it */
    if ((probe = luaL_newstate()) == NULL)
        return;
    stock = lua_getallocf(probe, NULL);
    lua_close(probe);
    if (cur != stock)
        return;
    slot = __atomic_fetch_add(&pool_used, 1, __ATOMIC_RELAXED);
    if (slot >= MAX_STATES)
        return;
    pool[slot].inner = cur;
    pool[slot].inner_ud = ud;
    pool[slot].nbig = 0;
    pool[slot].kept_small = 0;
    lua_setallocf(L, wrapped_alloc, &pool[slot]);
}

#else

void msal_before_big_string(lua_State *L, size_t len)
{
    (void)L;
    (void)len;
}

void msal_wrap_big_alloc(lua_State *L)
{
    (void)L;
}

#endif
