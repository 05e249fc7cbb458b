/* Fuzz target for the loopback listener's request reader (csrc/http1.c),
 * which reads whatever any local process, or a web page through the
 * browser, sends to the redirect port. Besides memory errors it checks:
 *   - the reader's verdict does not depend on how the bytes arrive: fed
 *     all at once, byte by byte and in uneven chunks, it ends the same;
 *   - an accepted request parses again to parts that lie inside its head
 *     and keep every promise of http1.h (a token method, an origin-form
 *     target split at '?', one Host in HTTP/1.1, field names that are
 *     tokens, values without control characters, no Transfer-Encoding, a
 *     body within the cap);
 *   - http1_parse on any bytes either refuses them or keeps the same
 *     promises.
 * Each input runs twice: as it is, and with a few bytes spelled out as
 * pieces of HTTP ('.' CRLF, '=' ": ", '+' a space, '_' " HTTP/1.1", '~'
 * "Host: h", '*' "Content-Length: "), so that random text reaches past the
 * request line. Each also runs under two caps: a small one and the
 * listener's default.
 *
 * libFuzzer (clang):
 *   mkdir -p build && clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     fuzz/fuzz_http1.c csrc/http1.c -o build/fuzz_http1
 *   build/fuzz_http1 -max_len=8192 -max_total_time=60 fuzz/corpus/http1
 *
 * gcc only (fuzz/run_corpus.c):
 *   mkdir -p build && gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined \
 *     -fno-sanitize-recover=undefined -Icsrc fuzz/fuzz_http1.c fuzz/run_corpus.c \
 *     csrc/http1.c -o build/fuzz_http1_run
 *   build/fuzz_http1_run fuzz/corpus/http1
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int within(const char *p, size_t n, const char *base, size_t len)
{
    return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

static int ieq(http1_text t, const char *lower)
{
    size_t i;
    if (t.n != strlen(lower))
        return 0;
    for (i = 0; i < t.n; i++) {
        char c = t.p[i];
        if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != lower[i])
            return 0;
    }
    return 1;
}

/* The promises of an accepted head. */
static void check_request(const char *head, size_t len, size_t max, const http1_request *rq)
{
    http1_field f;
    size_t pos = 0, nfields = 0;
    int hosts = 0;
    CHECK(within(rq->method.p, rq->method.n, head, len) && http1_is_token(rq->method.p, rq->method.n));
    CHECK(within(rq->target.p, rq->target.n, head, len));
    CHECK(http1_is_origin_target(rq->target.p, rq->target.n));
    CHECK(rq->path.p == rq->target.p && rq->path.n <= rq->target.n);
    CHECK(memchr(rq->path.p, '?', rq->path.n) == NULL);
    if (rq->path.n < rq->target.n)
        CHECK(rq->query.p == rq->path.p + rq->path.n + 1 && rq->path.n + 1 + rq->query.n == rq->target.n);
    else
        CHECK(rq->query.n == 0);
    CHECK(rq->version.n == 8 && memcmp(rq->version.p, "HTTP/1.", 7) == 0 && rq->version.p[7] - '0' == rq->minor);
    CHECK(rq->head_only == (rq->method.n == 4 && memcmp(rq->method.p, "HEAD", 4) == 0));
    CHECK(rq->body_len <= max);
    while (http1_next_field(head, len, &pos, &f)) {
        CHECK(within(f.name.p, f.name.n, head, len) && within(f.value.p, f.value.n, head, len));
        CHECK(http1_is_token(f.name.p, f.name.n));
        CHECK(http1_is_field_value(f.value.p, f.value.n));
        CHECK(f.value.n == 0 || (f.value.p[0] != ' ' && f.value.p[0] != '\t' && f.value.p[f.value.n - 1] != ' ' &&
                                 f.value.p[f.value.n - 1] != '\t'));
        CHECK(!ieq(f.name, "transfer-encoding"));
        hosts += ieq(f.name, "host");
        nfields++;
        CHECK(nfields <= len);
    }
    CHECK(nfields == rq->nfields);
    CHECK(hosts <= 1 && (rq->minor == 0 || hosts == 1));
}

/* Feeds data[0..n) in pieces of the sizes step() draws, as the listener
 * does: at most max + 1 bytes, stopping at the first verdict. */
static int feed(const char *data, size_t n, size_t max, http1_reader *r, size_t (*step)(size_t))
{
    size_t have = 0;
    int st = 0;
    if (n > max + 1)
        n = max + 1;
    http1_init(r, max);
    while (st == 0 && have < n) {
        size_t k = step(have);
        have = k > n - have ? n : have + k;
        st = http1_feed(r, data, have);
    }
    return st;
}

static size_t all(size_t have)
{
    (void)have;
    return SIZE_MAX;
}

static size_t one(size_t have)
{
    (void)have;
    return 1;
}

static size_t uneven(size_t have)
{
    return 1 + (have * 7 + 3) % 13;
}

static void run(const char *data, size_t n, size_t max)
{
    http1_reader a, b, c;
    http1_request rq;
    int st = feed(data, n, max, &a, all);
    CHECK(feed(data, n, max, &b, one) == st && feed(data, n, max, &c, uneven) == st);
    CHECK(b.head_len == a.head_len && c.head_len == a.head_len);
    CHECK(b.head_only == a.head_only && c.head_only == a.head_only);
    CHECK(http1_feed(&a, data, n > max + 1 ? max + 1 : n) == st); /* a verdict stays */
    if (st == HTTP1_COMPLETE) {
        CHECK(b.body_len == a.body_len && c.body_len == a.body_len);
        CHECK(a.head_len + a.body_len <= n && a.head_len + a.body_len <= max);
        CHECK(http1_parse(data, a.head_len, max, &rq) == 0);
        CHECK(rq.body_len == a.body_len);
        check_request(data, a.head_len, max, &rq);
    } else {
        CHECK(st == 0 || st == 400 || st == 413 || st == 501 || st == 505);
    }
    if (http1_parse(data, n, max, &rq) == 0)
        check_request(data, n, max, &rq);
}

/* data with some bytes spelled out as pieces of HTTP, in a new block. */
static char *expand(const uint8_t *data, size_t size, size_t *out_n)
{
    static const struct {
        char c;
        const char *s;
    } pieces[] = {{'.', "\r\n"},         {'=', ": "},        {'+', " "},
                  {'_', " HTTP/1.1"},    {'~', "Host: h"},   {'*', "Content-Length: "}};
    size_t i, j, n = 0;
    char *out = malloc(size * 16 + 1);
    CHECK(out != NULL);
    for (i = 0; i < size; i++) {
        const char *s = NULL;
        for (j = 0; j < sizeof pieces / sizeof pieces[0]; j++)
            if (pieces[j].c == (char)data[i])
                s = pieces[j].s;
        if (s) {
            memcpy(out + n, s, strlen(s));
            n += strlen(s);
        } else {
            out[n++] = (char)data[i];
        }
    }
    *out_n = n;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies, so ASan sees one byte too far. */
    char *raw = malloc(size ? size : 1), *spelled, *exact;
    size_t n;
    CHECK(raw != NULL);
    memcpy(raw, data, size);
    run(raw, size, 96);
    run(raw, size, 16384);
    free(raw);
    spelled = expand(data, size, &n);
    exact = malloc(n ? n : 1);
    CHECK(exact != NULL);
    memcpy(exact, spelled, n);
    free(spelled);
    run(exact, n, 96);
    run(exact, n, 16384);
    free(exact);
    return 0;
}
