/* Fuzz target for the base64/base64url codec and the JWT splitter
 * (csrc/b64.c, csrc/jwt.c), the code that meets tokens first. Besides
 * memory errors it checks the properties the strict decoders promise:
 * whatever decodes re-encodes to exactly the same text, whatever is
 * encoded decodes back, and a decoded JWT's parts rebuild the token.
 *
 * libFuzzer (clang):
 *   mkdir -p build && clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     fuzz/fuzz_jwt.c csrc/b64.c csrc/jwt.c -o build/fuzz_jwt
 *   build/fuzz_jwt -max_len=4096 -max_total_time=60 fuzz/corpus/jwt
 *
 * gcc only (fuzz/run_corpus.c replays files and directories, or runs
 * random inputs with -random N [seed]):
 *   mkdir -p build && gcc -std=c99 -g -O1 -fsanitize=address,undefined \
 *     -fno-sanitize-recover=undefined -Icsrc fuzz/fuzz_jwt.c fuzz/run_corpus.c \
 *     csrc/b64.c csrc/jwt.c -o build/fuzz_jwt_run
 *   build/fuzz_jwt_run fuzz/corpus/jwt
 *   build/fuzz_jwt_run -random 200000
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "check.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Exact sizes, never rounded up, so ASan sees a single byte too far. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static void encode_equals(const unsigned char *bin, size_t n, const char *text, size_t tn,
                          enum b64_alphabet a)
{
    int ok;
    size_t len = b64_encoded_len(n, a, &ok);
    char *enc;
    CHECK(ok && len == tn);
    enc = xmalloc(len);
    b64_encode(bin, n, enc, a);
    CHECK(memcmp(enc, text, len) == 0);
    free(enc);
}

static void codec(const char *in, size_t n, enum b64_alphabet a)
{
    unsigned char *out = xmalloc(b64_decoded_max(n));
    size_t len = 0;
    const char *err = NULL;
    int ok;
    char *enc;
    unsigned char *back;
    if (b64_decode(in, n, out, &len, a, &err)) {
        CHECK(len <= b64_decoded_max(n));
        encode_equals(out, len, in, n, a); /* strict means canonical */
    } else {
        CHECK(err != NULL);
    }
    free(out);

    /* and the other way: any bytes survive a round trip */
    len = b64_encoded_len(n, a, &ok);
    CHECK(ok);
    enc = xmalloc(len);
    b64_encode((const unsigned char *)in, n, enc, a);
    back = xmalloc(b64_decoded_max(len));
    CHECK(b64_decode(enc, len, back, &len, a, &err));
    CHECK(len == n && memcmp(back, in, n) == 0);
    free(back);
    free(enc);
}

static void token(const char *tok, size_t n)
{
    unsigned char *scratch = xmalloc(n);
    jwt_parts p;
    const char *err = NULL;
    if (jwt_decode(tok, n, JWT_DEFAULT_MAX_LEN, scratch, &p, &err)) {
        size_t hl, pl;
        CHECK(n <= JWT_DEFAULT_MAX_LEN);
        CHECK(p.header_len > 0 && p.payload_len > 0);
        CHECK(p.signing_input_len < n && tok[p.signing_input_len] == '.');
        CHECK(p.header_len + p.payload_len + p.signature_len <= n);
        /* the parts, re-encoded and joined, are the token */
        hl = (size_t)((const char *)memchr(tok, '.', n) - tok);
        pl = p.signing_input_len - hl - 1;
        encode_equals(p.header, p.header_len, tok, hl, B64_URL);
        encode_equals(p.payload, p.payload_len, tok + hl + 1, pl, B64_URL);
        encode_equals(p.signature, p.signature_len, tok + p.signing_input_len + 1,
                      n - p.signing_input_len - 1, B64_URL);
        /* and the size cap holds one byte under the token */
        CHECK(!jwt_decode(tok, n, n - 1, scratch, &p, &err) && strcmp(err, "token too large") == 0);
    } else {
        CHECK(err != NULL);
    }
    free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes: the decoders must never read past n. */
    char *in = xmalloc(size);
    if (size)
        memcpy(in, data, size);
    codec(in, size, B64_URL);
    codec(in, size, B64_STD);
    token(in, size);
    free(in);
    return 0;
}
