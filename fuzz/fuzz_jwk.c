/* Fuzz target for public keys from JWKs and signature checks with them
 * (csrc/jws.c): the members an issuer's key set hands us (kty, crv, alg,
 * use, n, e, x, y) are decoded and turned into OpenSSL keys in C. Besides
 * memory errors it checks that a key is built exactly when it is reported
 * built, and that a check with a key of the other type never passes.
 *
 * Input: up to ten lines: kty, crv, alg, use, n, e, x, y, the message and
 * the signature (raw bytes, the rest of the input). A line "-" is an
 * absent member.
 *
 * libFuzzer (clang):
 *   mkdir -p build && clang -g -O1 -fsanitize=fuzzer,address,undefined -Icsrc \
 *     fuzz/fuzz_jwk.c csrc/b64.c csrc/jws.c csrc/buf.c csrc/hugemem.c -lcrypto -o build/fuzz_jwk
 *   build/fuzz_jwk -max_len=4096 -max_total_time=60 fuzz/corpus/jwk
 *
 * gcc only: as fuzz_jwt.c's, with these sources and -lcrypto.
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jws_text f[10];
    const char *p = (const char *)data, *end = p + size;
    jws_jwk jwk;
    jws_key key;
    ossl_err err;
    static const enum jws_alg algs[] = {JWS_RS256, JWS_PS256, JWS_ES256};
    int i, built;
    memset(f, 0, sizeof f);
    for (i = 0; i < 10 && p <= end; i++) {
        /* the signature is the rest, newlines and all */
        const char *nl = i == 9 ? NULL : memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (!(n == 1 && p[0] == '-')) {
            f[i].p = p;
            f[i].n = n;
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    jwk.kty = f[0], jwk.crv = f[1], jwk.alg = f[2], jwk.use = f[3];
    jwk.n = f[4], jwk.e = f[5], jwk.x = f[6], jwk.y = f[7];
    built = jws_key_from_jwk(&jwk, &key, &err);
    CHECK(built == (key.pkey != NULL));
    if (built) {
        const unsigned char *msg = (const unsigned char *)(f[8].p ? f[8].p : "");
        const unsigned char *sig = (const unsigned char *)(f[9].p ? f[9].p : "");
        for (i = 0; i < 3; i++) {
            int r = jws_key_verify(&key, algs[i], msg, f[8].n, sig, f[9].n, &err);
            CHECK(r >= -1 && r <= 1);
            if ((algs[i] == JWS_ES256) != key.ec)
                CHECK(r == -1);
        }
        /* the one-shot form agrees on the key's own alg */
        {
            enum jws_alg own = key.ec ? JWS_ES256 : JWS_RS256;
            int a = jws_key_verify(&key, own, msg, f[8].n, sig, f[9].n, &err);
            int b = jws_verify(own, &jwk, msg, f[8].n, sig, f[9].n, &err);
            CHECK(a == b);
        }
    }
    jws_key_free(&key);
    jws_key_free(&key);
    return 0;
}
