#include <stdint.h>
#include <sys/mman.h>

#include "hugemem.h"

void *msal_huge_map(size_t cap, int populate)
{
    size_t len = cap + MSAL_HUGE_PAGE;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *a;
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
    munmap(p, cap);
}
