#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "hugemem.h"

/* Freed mappings kept for the next request (see hugemem.h). One is enough
 * for a serialize() repeated: the document buffer of the last call serves
 * the next, and the last result, swept before the new string is made (see
 * bigalloc.c), serves that. More would only raise the peak. */
#define SPARES 1

static struct {
    void *p;
    size_t cap;
} spare[SPARES];
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

/* A spare of at least cap bytes and not twice as big (a small request must
 * not eat the one big spare a 100 MB document needs), trimmed to cap. */
static void *take_spare(size_t cap)
{
    void *p = NULL;
    size_t have = 0;
    int i;
    pthread_mutex_lock(&spare_lock);
    for (i = 0; i < SPARES; i++) {
        if (spare[i].p && spare[i].cap >= cap && spare[i].cap / 2 < cap) {
            p = spare[i].p;
            have = spare[i].cap;
            spare[i].p = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&spare_lock);
    if (p && have > cap)
        munmap((char *)p + cap, have - cap); /* cap is 2 MiB-aligned: no split */
    return p;
}

void *msal_huge_map(size_t cap, int populate)
{
    size_t len = cap + MSAL_HUGE_PAGE;
    char *m, *a;
    if ((a = take_spare(cap)) == NULL) {
        m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        /* over-map, then trim to a 2 MiB boundary: only aligned ranges can be
         * huge pages */
        a = (char *)(((uintptr_t)m + MSAL_HUGE_PAGE - 1) & ~(uintptr_t)(MSAL_HUGE_PAGE - 1));
        if (a > m)
            munmap(m, (size_t)(a - m));
        if (m + len > a + cap)
            munmap(a + cap, (size_t)(m + len - (a + cap)));
#ifdef MADV_HUGEPAGE
        (void)madvise(a, cap, MADV_HUGEPAGE); /* a hint: fine if refused */
#endif
    }
#ifdef MADV_POPULATE_WRITE
    if (populate)
        (void)madvise(a, cap, MADV_POPULATE_WRITE); /* else faults on first touch */
#else
    (void)populate;
#endif
    return a;
}

void msal_huge_unmap(void *p, size_t cap)
{
    int i, slot = -1;
#ifdef MADV_FREE
    /* the kernel may take the pages back under memory pressure; until then
     * the next request reuses them without faulting */
    if (madvise(p, cap, MADV_FREE) != 0) {
        munmap(p, cap);
        return;
    }
#endif
    pthread_mutex_lock(&spare_lock);
    for (i = 0; i < SPARES && slot < 0; i++)
        if (!spare[i].p)
            slot = i;
    if (slot < 0) { /* all taken: replace the smallest, if this one is bigger */
        for (slot = 0, i = 1; i < SPARES; i++)
            if (spare[i].cap < spare[slot].cap)
                slot = i;
        if (spare[slot].cap >= cap)
            slot = -1;
    }
    if (slot >= 0) { /* keep p; unmap what was there */
        void *old = spare[slot].p;
        size_t old_cap = spare[slot].cap;
        spare[slot].p = p;
        spare[slot].cap = cap;
        p = old;
        cap = old_cap;
    }
    pthread_mutex_unlock(&spare_lock);
    if (p)
        munmap(p, cap);
}
