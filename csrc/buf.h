/* A growable byte buffer: every piece of untrusted data the core copies or
 * writes goes through one, so no fixed-size buffer ever meets it. */
#ifndef MSAL_BUF_H
#define MSAL_BUF_H

#include <stddef.h>

typedef struct msal_buf {
    char *p;
    size_t n, cap;
    int oom;    /* sticky: one failed allocation fails the whole buffer */
    int mapped; /* big buffers live in huge pages (hugemem.h), not malloc */
} msal_buf;

void buf_init(msal_buf *b);
void buf_free(msal_buf *b);
int buf_reserve(msal_buf *b, size_t more);
/* buf_reserve for a file read whole: it moves to huge pages sooner. */
int buf_reserve_file(msal_buf *b, size_t more);
void buf_add(msal_buf *b, const void *p, size_t n);
void buf_addc(msal_buf *b, char c);
void buf_adds(msal_buf *b, const char *s);

#endif
