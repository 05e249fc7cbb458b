/* Fuzz target for the Redis client's reply scanner (csrc/resp.c), which
 * reads whatever a Redis server, or whoever sits between it and us, sends.
 * Besides memory errors it checks:
 *   - the verdict does not depend on how the bytes arrive: fed all at once,
 *     byte by byte and in uneven chunks, the scan ends the same, at the
 *     same length;
 *   - an accepted reply keeps every cap (bulk length, array length,
 *     nesting, total bytes), and walking it with resp_item_at reads exactly
 *     the bytes the scanner accepted;
 *   - a command encoded from the input's pieces scans as one reply and
 *     walks back to the same pieces;
 *   - a key's cluster slot is below 16384, and a key and the same key with
 *     ":lock" appended share it when the key has a hash tag.
 * Each input runs twice: as it is, and with a few bytes spelled out as
 * pieces of RESP ('.' CRLF, '~' "*2\r\n", '^' "$3\r\nabc\r\n", '!' ":-1\r\n",
 * and 'Z', 'Y', 'X' the type bytes '*', '$', ':'), so that random text
 * (fuzz/run_corpus.c draws mostly letters, digits and dots) reaches past
 * the first header. Each runs under two
 * sets of caps: small ones and the client's defaults.
 *
 * libFuzzer (clang):
 *   mkdir -p build && clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     fuzz/fuzz_resp.c csrc/resp.c -o build/fuzz_resp
 *   build/fuzz_resp -max_len=4096 -max_total_time=60 fuzz/corpus/resp
 *
 * gcc only (fuzz/run_corpus.c):
 *   mkdir -p build && gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined \
 *     -fno-sanitize-recover=undefined -Icsrc fuzz/fuzz_resp.c fuzz/run_corpus.c \
 *     csrc/resp.c -o build/fuzz_resp_run
 *   build/fuzz_resp_run fuzz/corpus/resp
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Feeds data[0..n) in pieces of the sizes step() draws, as the client does,
 * stopping at the first verdict. */
static int feed(const char *data, size_t n, const resp_limits *lim, resp_scanner *s, size_t (*step)(size_t))
{
    size_t have = 0;
    int v = RESP_MORE;
    resp_scan_init(s, lim);
    while (v == RESP_MORE && have < n) {
        size_t k = step(have);
        have = k > n - have ? n : have + k;
        v = resp_scan(s, data, have);
    }
    return v;
}

/* Walks the element at *pos and what it holds; returns the elements seen. */
static size_t walk(const char *buf, size_t len, size_t *pos, const resp_limits *lim, int depth)
{
    resp_item it;
    size_t i, seen = 1;
    CHECK(resp_item_at(buf, len, pos, &it) == 1);
    CHECK(*pos <= len);
    switch (it.type) {
    case '+':
    case '-':
        CHECK(it.p >= buf && it.p + it.n <= buf + len && it.n <= lim->max_bulk);
        CHECK(memchr(it.p, '\r', it.n) == NULL && memchr(it.p, '\n', it.n) == NULL);
        break;
    case '$':
        CHECK(it.nil || (it.p >= buf && it.p + it.n <= buf + len && it.n <= lim->max_bulk));
        break;
    case ':':
        break;
    case '*':
        if (it.nil)
            break;
        CHECK(depth < lim->max_depth && it.n <= lim->max_array);
        for (i = 0; i < it.n; i++)
            seen += walk(buf, len, pos, lim, depth + 1);
        break;
    default:
        CHECK(0);
    }
    return seen;
}

static void run(const char *data, size_t n, const resp_limits *lim)
{
    resp_scanner a, b, c;
    int v = feed(data, n, lim, &a, all);
    CHECK(feed(data, n, lim, &b, one) == v && feed(data, n, lim, &c, uneven) == v);
    CHECK(v == RESP_MORE || v == RESP_DONE || v == RESP_BAD || v == RESP_TOO_BIG);
    CHECK(resp_scan(&a, data, n) == v); /* a verdict stays */
    if (v == RESP_DONE) {
        size_t pos = 0;
        CHECK(b.pos == a.pos && c.pos == a.pos);
        CHECK(a.pos <= n && a.pos <= lim->max_reply && a.depth == 0);
        walk(data, a.pos, &pos, lim, 0);
        CHECK(pos == a.pos);
    } else if (v == RESP_MORE) {
        CHECK(n <= lim->max_reply);
    } else {
        CHECK(a.why[0] != '\0');
    }
}

/* The input cut at '|' into at most 16 arguments, encoded as a command:
 * it must scan as one reply and walk back to the same arguments. */
static void round_trip(const char *data, size_t n)
{
    const char *argv[16];
    size_t lens[16], argc = 0, start = 0, i, size, pos = 0;
    resp_limits lim;
    resp_scanner s;
    resp_item it;
    char *out;
    for (i = 0; i <= n && argc < 16; i++) {
        if (i == n || data[i] == '|') {
            argv[argc] = data + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    }
    size = resp_command_size(argc, lens);
    CHECK(size > 0);
    out = malloc(size);
    CHECK(out != NULL);
    CHECK(resp_encode_command(out, argc, argv, lens) == size);
    resp_default_limits(&lim);
    resp_scan_init(&s, &lim);
    CHECK(resp_scan(&s, out, size) == RESP_DONE && s.pos == size);
    CHECK(resp_item_at(out, size, &pos, &it) && it.type == '*' && it.n == argc);
    for (i = 0; i < argc; i++) {
        CHECK(resp_item_at(out, size, &pos, &it) && it.type == '$' && !it.nil && it.n == lens[i]);
        CHECK(memcmp(it.p, argv[i], lens[i]) == 0);
    }
    CHECK(pos == size);
    free(out);
}

static void slots(const char *data, size_t n)
{
    char *key = malloc(n + 16), *p;
    size_t k = 0;
    CHECK(key != NULL);
    CHECK(resp_key_slot(data, n) < 16384);
    /* "p:{<data without braces>}" and the same with ":lock" */
    memcpy(key, "p:{", 3);
    k = 3;
    for (p = (char *)data; p < data + n; p++)
        if (*p != '{' && *p != '}')
            key[k++] = *p;
    key[k++] = '}';
    if (k > 4) {
        unsigned slot = resp_key_slot(key, k);
        memcpy(key + k, ":lock", 5);
        CHECK(resp_key_slot(key, k + 5) == slot);
        CHECK(resp_key_slot(key + 2, k - 2) == slot); /* the tag alone */
    }
    free(key);
}

/* data with some bytes spelled out as pieces of RESP, in a new block. */
static char *expand(const uint8_t *data, size_t size, size_t *out_n)
{
    static const struct {
        char c;
        const char *s;
    } pieces[] = {{'.', "\r\n"},   {'~', "*2\r\n"}, {'^', "$3\r\nabc\r\n"}, {'!', ":-1\r\n"},
                  {'Z', "*"},      {'Y', "$"},      {'X', ":"}};
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

static void run_both(const char *data, size_t n)
{
    resp_limits small = {16, 4, 64, 3}, def;
    resp_default_limits(&def);
    run(data, n, &small);
    run(data, n, &def);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copies, so ASan sees one byte too far. */
    char *raw = malloc(size ? size : 1), *spelled, *exact;
    size_t n;
    CHECK(raw != NULL);
    memcpy(raw, data, size);
    run_both(raw, size);
    round_trip(raw, size);
    slots(raw, size);
    free(raw);
    spelled = expand(data, size, &n);
    exact = malloc(n ? n : 1);
    CHECK(exact != NULL);
    memcpy(exact, spelled, n);
    free(spelled);
    run_both(exact, n);
    free(exact);
    return 0;
}
