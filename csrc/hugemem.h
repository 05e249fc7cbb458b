/* Big anonymous mappings backed by transparent huge pages where the kernel
 * has them. On the virtual machines this project runs on, a 4 KiB first-touch
 * page fault costs ~15 us: a 120 MB buffer faulted in 4 KiB at a time costs
 * ~450 ms, in 2 MiB pages ~10 ms. */
#ifndef MSAL_HUGEMEM_H
#define MSAL_HUGEMEM_H

#include <stddef.h>

#define MSAL_HUGE_PAGE ((size_t)2 << 20)

/* cap (a multiple of MSAL_HUGE_PAGE) bytes at a huge-page boundary,
 * populated when populate is set; NULL when the mapping fails. Not zeroed:
 * it may be a mapping unmapped earlier. */
void *msal_huge_map(size_t cap, int populate);
/* Gives back what msal_huge_map returned. The process keeps one freed
 * mapping, the biggest recent one (MADV_FREE: the kernel takes the pages
 * back when it needs them), so that a cache serialized or loaded again does
 * not fault in fresh memory, the way malloc keeps freed heap. */
void msal_huge_unmap(void *p, size_t cap);

#endif
