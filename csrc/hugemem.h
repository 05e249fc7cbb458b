/* Big anonymous mappings backed by transparent huge pages where the kernel
 * has them. On the virtual machines this project runs on, a 4 KiB first-touch
 * page fault costs ~15 us: a 120 MB buffer faulted in 4 KiB at a time costs
 * ~450 ms, in 2 MiB pages ~10 ms. */
#ifndef MSAL_HUGEMEM_H
#define MSAL_HUGEMEM_H

#include <stddef.h>

#define MSAL_HUGE_PAGE ((size_t)2 << 20)

/* cap (a multiple of MSAL_HUGE_PAGE) bytes of zeroed memory at a huge-page
 * boundary, populated when populate is set; NULL when the mapping fails. */
void *msal_huge_map(size_t cap, int populate);
void msal_huge_unmap(void *p, size_t cap);

#endif
