/* Small blocks carved from one huge page, for a Lua state that lives a few
 * milliseconds (bigalloc.c serves them when core.heap_arena() asked).
 *
 * A `msal token` hit builds ~500 KB of Lua heap. From malloc that is ~150
 * first-touch faults of 4 KiB, ~1.5 ms on this project's VMs, against one
 * 2 MiB page for the same memory. Blocks of up to 512 bytes that are freed
 * are kept per size for reuse; a bigger one is reused only if it was the
 * last carved. When the page is full, callers fall back to their allocator. */
#ifndef MSAL_BLOCKARENA_H
#define MSAL_BLOCKARENA_H

#include <stddef.h>

#define MSAL_ARENA_CLASSES 32         /* free lists of 16, 32, ... 512-byte blocks */
#define MSAL_ARENA_MAX_BLOCK (64 << 10) /* bigger ones would crowd out the small */

typedef struct msal_arena {
    char *base, *bump, *end; /* base NULL: no arena */
    void *free[MSAL_ARENA_CLASSES];
    size_t live; /* blocks handed out and not given back */
} msal_arena;

/* Maps the page; 0 when the mapping fails. */
int msal_arena_open(msal_arena *a);
/* Whether p is one of a's blocks. */
int msal_arena_owns(const msal_arena *a, const void *p);
/* A block of n bytes, or NULL when the page has no room for it (or n is
 * over MSAL_ARENA_MAX_BLOCK). */
void *msal_arena_take(msal_arena *a, size_t n);
/* Hands back the block p of n bytes (n as last asked). The page is unmapped
 * when its last block comes back: the state is being closed. */
void msal_arena_give(msal_arena *a, void *p, size_t n);
/* The block p of o bytes as n bytes in place (always when it shrinks), or
 * NULL when it must move. */
void *msal_arena_resize(msal_arena *a, void *p, size_t o, size_t n);

#endif
