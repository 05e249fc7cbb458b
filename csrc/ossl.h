/* OpenSSL failures as text. The error queue is per thread and shared with
 * whatever else runs in the process (nginx's own TLS), so no failure path
 * leaves anything queued: ossl_fail empties the queue and keeps only the
 * reason code, which ERR_reason_error_string later turns into static text. */
#ifndef MSAL_OSSL_H
#define MSAL_OSSL_H

#include <openssl/err.h>

typedef struct ossl_err {
    const char *what;   /* what failed, static text */
    unsigned long code; /* 0 when the failure was not OpenSSL's */
} ossl_err;

/* Records what failed with the oldest queued error (the root cause; the
 * later ones tend to be the callers' wrappers) and empties the queue.
 * Returns 0 so call sites can `return ossl_fail(...)`. */
static inline int ossl_fail(ossl_err *e, const char *what)
{
    unsigned long c;
    e->what = what;
    e->code = ERR_get_error();
    while ((c = ERR_get_error()) != 0)
        ;
    return 0;
}

/* The reason of a recorded failure, or NULL when OpenSSL gave none. */
static inline const char *ossl_reason(const ossl_err *e)
{
    return e->code ? ERR_reason_error_string(e->code) : NULL;
}

#endif
