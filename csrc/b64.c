#include <pthread.h>
#include <stdint.h>

#include "b64.h"

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t b64_encoded_len(size_t n, enum b64_alphabet a, int *ok)
{
    size_t rem = n % 3;
    *ok = n / 3 < SIZE_MAX / 4 - 1;
    if (!*ok)
        return 0;
    if (rem == 0)
        return n / 3 * 4;
    return n / 3 * 4 + (a == B64_URL ? rem + 1 : 4);
}

size_t b64_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0);
}

void b64_encode(const unsigned char *in, size_t n, char *out, enum b64_alphabet a)
{
    const char *chars = a == B64_URL ? url_chars : std_chars;
    size_t i;
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = chars[v >> 18];
        *out++ = chars[v >> 12 & 63];
        *out++ = chars[v >> 6 & 63];
        *out++ = chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = chars[v >> 18];
        *out++ = chars[v >> 12 & 63];
        if (a == B64_STD) {
            *out++ = '=';
            *out++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *out++ = chars[v >> 18];
        *out++ = chars[v >> 12 & 63];
        *out++ = chars[v >> 6 & 63];
        if (a == B64_STD)
            *out++ = '=';
    }
}

/* Ranges rather than a 256-entry table: the alphabets differ in two
 * characters only, and this keeps each one's rule visible. */
static int sextet(unsigned char c, enum b64_alphabet a)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (a == B64_URL ? '-' : '+'))
        return 62;
    if (c == (a == B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

/* sextet() of every byte, per alphabet, for the decoder's fast path: built
 * from sextet() once, so its rules stay the only statement of them. */
static signed char sextets[2][256];
static pthread_once_t sextets_once = PTHREAD_ONCE_INIT;

static void build_sextets(void)
{
    int c;
    for (c = 0; c < 256; c++) {
        sextets[0][c] = (signed char)sextet((unsigned char)c, B64_STD);
        sextets[1][c] = (signed char)sextet((unsigned char)c, B64_URL);
    }
}

static int fail(const char **err, const char *msg)
{
    if (err)
        *err = msg;
    return 0;
}

int b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
               enum b64_alphabet a, const char **err)
{
    size_t body = n, i = 0, o = 0;
    uint32_t acc = 0;
    int bits = 0;
    *outlen = 0;
    if (a == B64_STD) {
        if (n % 4 != 0)
            return fail(err, "length is not a multiple of 4");
        if (n > 0 && in[n - 1] == '=') {
            body--;
            if (in[n - 2] == '=')
                body--;
        }
    } else if (n > 0 && in[n - 1] == '=') {
        return fail(err, "padding is not allowed"); /* the usual mistake: say so */
    } else if (n % 4 == 1) {
        return fail(err, "impossible length");
    }
    /* Whole groups of four through the table (a JWT verifier decodes a few
     * KB per request); the bit loop below does the tail, and reports what is
     * wrong where a group is not clean. */
    (void)pthread_once(&sextets_once, build_sextets);
    {
        const signed char *t = sextets[a == B64_URL];
        const unsigned char *u = (const unsigned char *)in;
        for (i = 0; i + 4 <= body; i += 4) {
            int v0 = t[u[i]], v1 = t[u[i + 1]], v2 = t[u[i + 2]], v3 = t[u[i + 3]];
            uint32_t v;
            if ((v0 | v1 | v2 | v3) < 0)
                break;
            v = (uint32_t)v0 << 18 | (uint32_t)v1 << 12 | (uint32_t)v2 << 6 | (uint32_t)v3;
            out[o] = (unsigned char)(v >> 16);
            out[o + 1] = (unsigned char)(v >> 8);
            out[o + 2] = (unsigned char)v;
            o += 3;
        }
    }
    for (; i < body; i++) {
        int v = sextet((unsigned char)in[i], a);
        if (v < 0) {
            if (in[i] == '=')
                return fail(err, a == B64_URL ? "padding is not allowed" : "misplaced padding");
            return fail(err, "invalid character");
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Left-over bits of a short last group must be zero, else two texts
     * would decode to the same bytes. */
    if (acc != 0)
        return fail(err, "non-zero trailing bits");
    *outlen = o;
    return 1;
}
