/* Fuzz target for the token-cache parser (csrc/store.c with csrc/json.c),
 * which reads cache files other programs wrote. Besides memory errors it
 * checks that whatever parses serializes to a document that parses again and
 * serializes to the same bytes (a fixed point after one round).
 *
 * libFuzzer (clang):
 *   mkdir -p build && clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     fuzz/fuzz_store.c csrc/store.c csrc/json.c csrc/buf.c csrc/hugemem.c -o build/fuzz_store
 *   build/fuzz_store -max_len=65536 -max_total_time=60 fuzz/corpus/store
 *
 * gcc only (fuzz/run_corpus.c):
 *   mkdir -p build && gcc -std=c99 -D_DEFAULT_SOURCE -g -O1 -fsanitize=address,undefined \
 *     -fno-sanitize-recover=undefined -Icsrc fuzz/fuzz_store.c fuzz/run_corpus.c \
 *     csrc/store.c csrc/json.c csrc/buf.c csrc/hugemem.c -o build/fuzz_store_run
 *   build/fuzz_store_run fuzz/corpus/store
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses text into a store and serializes it into out; 0 when the text is
 * not a cache. The text is an exact-size copy, so ASan sees one byte too
 * far. */
static int round_trip(const char *data, size_t size, msal_buf *out)
{
    char *text = malloc(size ? size : 1);
    store_error err;
    store_doc *doc = NULL;
    store *s;
    CHECK(text != NULL);
    memcpy(text, data, size);
    store_error_init(&err);
    s = store_parse(text, size, NULL, &err, &doc);
    if (s == NULL) {
        CHECK(err.message != NULL);
        store_error_free(&err);
        free(text);
        return 0;
    }
    store_error_free(&err);
    CHECK(store_serialize(s, out));
    store_free(s);
    free(text);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msal_buf once, twice;
    buf_init(&once);
    buf_init(&twice);
    if (round_trip((const char *)data, size, &once)) {
        CHECK(round_trip(once.p ? once.p : "", once.n, &twice));
        CHECK(once.n == twice.n && (once.n == 0 || memcmp(once.p, twice.p, once.n) == 0));
    }
    buf_free(&once);
    buf_free(&twice);
    return 0;
}
