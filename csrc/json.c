#include <stdint.h>
#include <string.h>

#include "json.h"

void json_init(json_scan *s, const char *p, size_t n)
{
    s->p = s->base = p;
    s->end = p + n;
    s->err = NULL;
    s->err_at = 0;
}

int json_fail(json_scan *s, const char *msg)
{
    if (s->err == NULL) {
        s->err = msg;
        s->err_at = (size_t)(s->p - s->base);
    }
    return 0;
}

int json_next(json_scan *s)
{
    while (s->p < s->end) {
        char c = *s->p;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return (unsigned char)c;
        s->p++;
    }
    return -1;
}

int json_expect(json_scan *s, char c)
{
    if (json_next(s) != (unsigned char)c) {
        static const char *msgs[] = {"expected ':'", "expected ','", "expected '{'", "expected '\"'"};
        return json_fail(s, c == ':' ? msgs[0] : c == ',' ? msgs[1] : c == '{' ? msgs[2] : msgs[3]);
    }
    s->p++;
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII letters to lower case */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static long hex4(const char *p)
{
    long v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t n, i;
    unsigned c = p[0];
    unsigned long cp;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* overlong forms, surrogates and code points past U+10FFFF */
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* 1 for the bytes a string scan must stop at: '"', '\\', control
 * characters and the lead bytes of UTF-8 sequences. */
static const unsigned char stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether the 8 bytes at p may hold '"', '\\', a control character or a
 * non-ASCII byte (word-at-a-time tests; a false "may" only costs the byte
 * loop a few steps, a false "may not" cannot happen). */
static int may_stop(const unsigned char *p)
{
    uint64_t w, q, b;
    memcpy(&w, p, 8);
    q = w ^ (ONES * '"');
    b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | (w - ONES * 0x20) | w) & HIGHS ? 1 : 0;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Where the first stop byte is, 16 bytes a step, among the whole blocks of
 * 16 before end (else the first byte after them): a signed compare below
 * 0x20 finds control bytes and, being negative, the non-ASCII ones. The
 * long strings of a cache (its tokens, 1-2 KB of base64 each) are most of
 * its bytes: at 1,000 accounts this was a third of a parse. */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmplt_epi8(v, space));
        int m = _mm_movemask_epi8(hit);
        if (m != 0)
            return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
    return p;
}
#endif

int json_string(json_scan *s, const char **inner, size_t *n, int *escaped)
{
    const unsigned char *p = (const unsigned char *)s->p + 1;
    const unsigned char *end = (const unsigned char *)s->end;
    int esc = 0;
    for (;;) {
        /* the common case, plain ASCII: 16 bytes a step with SSE2, 8
         * without, then byte by byte from the first word that may hold a
         * stop byte */
#if defined(__SSE2__)
        p = skip_plain(p, end);
#endif
        while (end - p >= 8 && !may_stop(p))
            p += 8;
        while (p < end && !stop[*p])
            p++;
        if (p >= end) {
            s->p = (const char *)p;
            return json_fail(s, "unterminated string");
        }
        if (*p == '"')
            break;
        if (*p < 0x20) {
            s->p = (const char *)p;
            return json_fail(s, "control character in string");
        }
        if (*p >= 0x80) {
            size_t k = utf8_len(p, end);
            if (k == 0) {
                s->p = (const char *)p;
                return json_fail(s, "invalid UTF-8 in string");
            }
            p += k;
            continue;
        }
        /* a backslash */
        esc = 1;
        if (p + 1 >= end) {
            s->p = (const char *)p;
            return json_fail(s, "unterminated string");
        }
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u': {
            long u = (end - p >= 6) ? hex4((const char *)p + 2) : -1;
            if (u < 0) {
                s->p = (const char *)p;
                return json_fail(s, "bad \\u escape");
            }
            if (u >= 0xdc00 && u <= 0xdfff) {
                s->p = (const char *)p;
                return json_fail(s, "lone low surrogate");
            }
            if (u >= 0xd800 && u <= 0xdbff) {
                long lo = (end - p >= 12 && p[6] == '\\' && p[7] == 'u') ? hex4((const char *)p + 8) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    s->p = (const char *)p;
                    return json_fail(s, "lone high surrogate");
                }
                p += 6;
            }
            p += 6;
            break;
        }
        default:
            s->p = (const char *)p;
            return json_fail(s, "bad escape in string");
        }
    }
    *inner = s->p + 1;
    *n = (size_t)((const char *)p - (s->p + 1));
    *escaped = esc;
    s->p = (const char *)p + 1;
    return 1;
}

static int scan_number(json_scan *s)
{
    const char *p = s->p, *end = s->end;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if (p < end && *p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return json_fail(s, "bad number");
    if (p < end && *p == '.') {
        p++;
        if (!(p < end && *p >= '0' && *p <= '9'))
            return json_fail(s, "bad number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p < end && *p >= '0' && *p <= '9'))
            return json_fail(s, "bad number");
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    s->p = p;
    return 1;
}

static int scan_word(json_scan *s, const char *w, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return json_fail(s, "unexpected character");
    s->p += n;
    return 1;
}

int json_copy_value(json_scan *s, msal_buf *out, int depth)
{
    const char *start;
    int c = json_next(s), type;
    start = s->p;
    switch (c) {
    case '"': {
        const char *in;
        size_t n;
        int esc;
        if (!json_string(s, &in, &n, &esc))
            return JT_NONE;
        type = JT_STRING;
        break;
    }
    case '{':
    case '[': {
        char close = c == '{' ? '}' : ']';
        int first = 1;
        if (depth >= JSON_MAX_DEPTH)
            return json_fail(s, "nesting too deep"), JT_NONE;
        s->p++;
        if (out)
            buf_addc(out, (char)c);
        for (;;) {
            int d = json_next(s);
            if (d == close && first) {
                s->p++;
                break;
            }
            if (!first) {
                if (d == close) {
                    s->p++;
                    break;
                }
                if (d != ',')
                    return json_fail(s, c == '{' ? "expected ',' or '}'" : "expected ',' or ']'"), JT_NONE;
                s->p++;
                if (out)
                    buf_addc(out, ',');
            }
            first = 0;
            if (c == '{') {
                if (json_next(s) != '"')
                    return json_fail(s, "expected member name"), JT_NONE;
                if (json_copy_value(s, out, depth + 1) == JT_NONE || !json_expect(s, ':'))
                    return JT_NONE;
                if (out)
                    buf_addc(out, ':');
            }
            if (json_copy_value(s, out, depth + 1) == JT_NONE)
                return JT_NONE;
        }
        if (out)
            buf_addc(out, close);
        return c == '{' ? JT_OBJECT : JT_ARRAY;
    }
    case 't':
        if (!scan_word(s, "true", 4))
            return JT_NONE;
        type = JT_TRUE;
        break;
    case 'f':
        if (!scan_word(s, "false", 5))
            return JT_NONE;
        type = JT_FALSE;
        break;
    case 'n':
        if (!scan_word(s, "null", 4))
            return JT_NONE;
        type = JT_NULL;
        break;
    case -1:
        return json_fail(s, "unexpected end of input"), JT_NONE;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            if (!scan_number(s))
                return JT_NONE;
            type = JT_NUMBER;
            break;
        }
        return json_fail(s, "unexpected character"), JT_NONE;
    }
    if (out)
        buf_add(out, start, (size_t)(s->p - start));
    return type;
}

static void put_utf8(msal_buf *out, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xc0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (char)(0xf0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    buf_add(out, b, n);
}

void json_unescape(const char *in, size_t n, msal_buf *out)
{
    const char *end = in + n;
    while (in < end) {
        const char *q = memchr(in, '\\', (size_t)(end - in));
        if (q == NULL) {
            buf_add(out, in, (size_t)(end - in));
            return;
        }
        buf_add(out, in, (size_t)(q - in));
        switch (q[1]) {
        case 'b': buf_addc(out, '\b'); break;
        case 'f': buf_addc(out, '\f'); break;
        case 'n': buf_addc(out, '\n'); break;
        case 'r': buf_addc(out, '\r'); break;
        case 't': buf_addc(out, '\t'); break;
        case 'u': {
            unsigned long cp = (unsigned long)hex4(q + 2);
            if (cp >= 0xd800 && cp <= 0xdbff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned long)hex4(q + 8) - 0xdc00);
                q += 6;
            }
            put_utf8(out, cp);
            in = q + 6;
            continue;
        }
        default: buf_addc(out, q[1]); break;
        }
        in = q + 2;
    }
}

void json_put_string(msal_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const char *end = s + n;
    buf_addc(out, '"');
    while (s < end) {
        const char *run = s;
        while (s < end && (unsigned char)*s >= 0x20 && *s != '"' && *s != '\\')
            s++;
        buf_add(out, run, (size_t)(s - run));
        if (s >= end)
            break;
        switch (*s) {
        case '"': buf_add(out, "\\\"", 2); break;
        case '\\': buf_add(out, "\\\\", 2); break;
        case '\n': buf_add(out, "\\n", 2); break;
        case '\r': buf_add(out, "\\r", 2); break;
        case '\t': buf_add(out, "\\t", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[((unsigned char)*s) >> 4], hex[*s & 0xf]};
            buf_add(out, u, 6);
        }
        }
        s++;
    }
    buf_addc(out, '"');
}
