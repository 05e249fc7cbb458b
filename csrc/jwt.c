#include <string.h>

#include "b64.h"
#include "jwt.h"

static int fail(const char **err, const char *msg)
{
    *err = msg;
    return 0;
}

int jwt_decode(const char *token, size_t n, size_t max_len, unsigned char *scratch,
               jwt_parts *out, const char **err)
{
    const char *d1, *d2;
    size_t hl, pl, sl;
    unsigned char *p = scratch;
    memset(out, 0, sizeof *out);
    /* Before looking at the content: the cap bounds the work per token. */
    if (n > max_len)
        return fail(err, "token too large");
    d1 = memchr(token, '.', n);
    if (d1 == NULL)
        return fail(err, "not a JWT: expected three parts separated by dots, found one");
    d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token));
    if (d2 == NULL)
        return fail(err, "not a JWT: expected three parts separated by dots, found two");
    /* A fourth part would make it a JWE or garbage; JWE is not accepted. */
    if (memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)) != NULL)
        return fail(err, "not a JWT: more than three parts");
    hl = (size_t)(d1 - token);
    pl = (size_t)(d2 - (d1 + 1));
    sl = n - (size_t)(d2 + 1 - token);
    if (hl == 0)
        return fail(err, "the JWT header is empty");
    if (pl == 0)
        return fail(err, "the JWT payload is empty");
    if (!b64_decode(token, hl, p, &out->header_len, B64_URL, &out->detail))
        return fail(err, "the JWT header is not base64url");
    out->header = p;
    p += out->header_len;
    if (!b64_decode(d1 + 1, pl, p, &out->payload_len, B64_URL, &out->detail))
        return fail(err, "the JWT payload is not base64url");
    out->payload = p;
    p += out->payload_len;
    if (!b64_decode(d2 + 1, sl, p, &out->signature_len, B64_URL, &out->detail))
        return fail(err, "the JWT signature is not base64url");
    out->signature = p;
    out->signing_input_len = (size_t)(d2 - token);
    return 1;
}
