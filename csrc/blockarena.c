#include <stdint.h>

#include "blockarena.h"
#include "hugemem.h"

/* Under AddressSanitizer the page's free bytes are poisoned, so that a
 * write past a block handed out here is caught as it would be past malloc's;
 * and the page is a root for LeakSanitizer, which would otherwise not see
 * the malloc'd blocks that only blocks in the page point to. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define ROOT(p, n) __lsan_register_root_region((p), (n))
#define UNROOT(p, n) __lsan_unregister_root_region((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#define ROOT(p, n) ((void)(p), (void)(n))
#define UNROOT(p, n) ((void)(p), (void)(n))
#endif

#define GRAIN 16 /* Lua asks for malloc's alignment */

/* n bytes in grains (a block of 0 bytes still takes one) */
static size_t grains(size_t n)
{
    return n ? (n + GRAIN - 1) / GRAIN : 1;
}

int msal_arena_open(msal_arena *a)
{
    size_t i;
    if ((a->base = msal_huge_map(MSAL_HUGE_PAGE, 1)) == NULL)
        return 0;
    a->bump = a->base;
    a->end = a->base + MSAL_HUGE_PAGE;
    for (i = 0; i < MSAL_ARENA_CLASSES; i++)
        a->free[i] = NULL;
    a->live = 0;
    POISON(a->base, MSAL_HUGE_PAGE);
    ROOT(a->base, MSAL_HUGE_PAGE);
    return 1;
}

int msal_arena_owns(const msal_arena *a, const void *p)
{
    /* compared as integers: p is usually no pointer into the page at all */
    return (uintptr_t)p >= (uintptr_t)a->base && (uintptr_t)p < (uintptr_t)a->end;
}

void *msal_arena_take(msal_arena *a, size_t n)
{
    size_t g = grains(n);
    char *p;
    if (a->base == NULL || n > MSAL_ARENA_MAX_BLOCK)
        return NULL;
    if (g <= MSAL_ARENA_CLASSES && (p = a->free[g - 1]) != NULL) {
        a->free[g - 1] = *(void **)p;
    } else {
        if ((size_t)(a->end - a->bump) / GRAIN < g)
            return NULL;
        p = a->bump;
        a->bump += g * GRAIN;
    }
    a->live++;
    UNPOISON(p, n);
    return p;
}

void msal_arena_give(msal_arena *a, void *p, size_t n)
{
    size_t g = grains(n);
    char *c = p;
    if (--a->live == 0) { /* lua_close: every block is back */
        UNROOT(a->base, MSAL_HUGE_PAGE);
        UNPOISON(a->base, MSAL_HUGE_PAGE); /* it may be the next mapping's spare */
        msal_huge_unmap(a->base, MSAL_HUGE_PAGE);
        a->base = a->bump = a->end = NULL;
        return;
    }
    POISON(c, g * GRAIN);
    if (c + g * GRAIN == a->bump) {
        a->bump = c;
    } else if (g <= MSAL_ARENA_CLASSES) {
        UNPOISON(c, sizeof(void *)); /* the free list's link */
        *(void **)c = a->free[g - 1];
        a->free[g - 1] = c;
    }
    /* else the block stays unused until the page goes */
}

void *msal_arena_resize(msal_arena *a, void *p, size_t o, size_t n)
{
    size_t og = grains(o), ng = grains(n);
    char *c = p;
    int last = c + og * GRAIN == a->bump;
    if (ng > og && !(last && n <= MSAL_ARENA_MAX_BLOCK && (size_t)(a->end - c) / GRAIN >= ng))
        return NULL;
    if (ng < og)
        POISON(c + ng * GRAIN, (og - ng) * GRAIN); /* unless last, lost until the page goes */
    if (last)
        a->bump = c + ng * GRAIN;
    if (n > o)
        UNPOISON(c, n);
    else
        POISON(c + n, ng * GRAIN - n);
    return p;
}
