#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hugemem.h"

/* From this size on, a buffer moves to huge pages: a serialized cache of
 * 10,000 accounts is 120 MB, and even a 100-account file (1.3 MB) read
 * into 4 KiB pages costs ~300 first-touch faults, several ms on the VMs
 * this project runs on (hugemem.h). */
#define BUF_MAP_MIN ((size_t)1 << 20)
/* A file read whole (buf_reserve_file) goes there from 128 KiB: the
 * `msal` command's compiled modules (150 KB) cost it ~35 faults, 0.4 ms. */
#define FILE_MAP_MIN ((size_t)1 << 17)

void buf_init(msal_buf *b)
{
    b->p = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
    b->mapped = 0;
}

void buf_free(msal_buf *b)
{
    if (b->mapped)
        msal_huge_unmap(b->p, b->cap);
    else
        free(b->p);
    buf_init(b);
}

static int reserve(msal_buf *b, size_t more, size_t map_min)
{
    size_t cap;
    char *p;
    if (b->oom)
        return 0;
    if (b->cap - b->n >= more)
        return 1;
    if (more > ((size_t)-1) / 2 - b->n) {
        b->oom = 1;
        return 0;
    }
    cap = b->cap ? b->cap : 64;
    while (cap - b->n < more)
        cap *= 2;
    if (cap < map_min) {
        p = realloc(b->p, cap);
    } else {
        /* doubling: the copies add up to less than the final size */
        cap = (cap + MSAL_HUGE_PAGE - 1) & ~(MSAL_HUGE_PAGE - 1);
        if ((p = msal_huge_map(cap, 0)) != NULL && b->n)
            memcpy(p, b->p, b->n);
        if (p != NULL) {
            if (b->mapped)
                msal_huge_unmap(b->p, b->cap);
            else
                free(b->p);
            b->mapped = 1;
        }
    }
    if (p == NULL) {
        b->oom = 1;
        return 0;
    }
    b->p = p;
    b->cap = cap;
    return 1;
}

int buf_reserve(msal_buf *b, size_t more)
{
    return reserve(b, more, BUF_MAP_MIN);
}

int buf_reserve_file(msal_buf *b, size_t more)
{
    return reserve(b, more, FILE_MAP_MIN);
}

void buf_add(msal_buf *b, const void *p, size_t n)
{
    if (n == 0 || !buf_reserve(b, n))
        return;
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

void buf_addc(msal_buf *b, char c)
{
    if (!buf_reserve(b, 1))
        return;
    b->p[b->n++] = c;
}

void buf_adds(msal_buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}
