/* JWS signatures (RFC 7515/7518) over OpenSSL 3: RS256, PS256 and ES256
 * with keys from JWKs (RFC 7517) or PEM. Pure C: every function takes its
 * inputs already in memory, frees what it allocates on every path and
 * reports failures through an ossl_err (see ossl.h). */
#ifndef MSAL_JWS_H
#define MSAL_JWS_H

#include <stddef.h>

#include <openssl/types.h>

#include "buf.h"
#include "ossl.h"

/* RSA moduli outside these bounds are refused: below is breakable or
 * against policy, above only costs verification time to an attacker's
 * benefit. */
#define JWS_RSA_MIN_BITS 2048
#define JWS_RSA_MAX_BITS 16384

enum jws_alg { JWS_NONE, JWS_RS256, JWS_PS256, JWS_ES256 };

/* JWS_NONE for names this core does not implement (including "none").
 * Takes the length: a name from a token may hide a NUL. */
enum jws_alg jws_alg_parse(const char *name, size_t n);

typedef struct jws_text {
    const char *p; /* NULL when the member is absent */
    size_t n;
} jws_text;

/* A JWK's members as text, exactly as they came (n, e, x, y base64url). */
typedef struct jws_jwk {
    jws_text kty, crv, alg, use, n, e, x, y;
} jws_jwk;

/* 1 when sig is a valid alg signature of msg under the key, 0 when it is
 * not, -1 when the key or alg cannot be used (err says why). */
int jws_verify(enum jws_alg alg, const jws_jwk *key, const unsigned char *msg, size_t msg_len,
               const unsigned char *sig, size_t sig_len, ossl_err *err);

/* A public key from a JWK, built once and used for many verifications
 * (parsing and checking a JWK costs more than an RSA verification). */
typedef struct jws_key {
    EVP_PKEY *pkey;
    enum jws_alg alg; /* the JWK's alg; JWS_NONE when it names none */
    int ec;           /* EC P-256, else RSA */
    /* Kept between verifications (one thread uses a key at a time): the
     * digest, and the verification context of the last alg used. */
    EVP_MD *sha256;
    EVP_PKEY_CTX *vctx;
    enum jws_alg vctx_alg;
} jws_key;

/* Builds key from a public JWK (kty RSA or EC, use sig when named, alg one
 * of ours when named). Returns 1, or 0 with err set and nothing to free. */
int jws_key_from_jwk(const jws_jwk *k, jws_key *key, ossl_err *err);

/* jws_verify with a built key: 1 valid, 0 not, -1 when the alg does not
 * fit the key (err says why). */
int jws_key_verify(jws_key *key, enum jws_alg alg, const unsigned char *msg, size_t msg_len,
                   const unsigned char *sig, size_t sig_len, ossl_err *err);

/* Frees the key's OpenSSL object; safe twice. */
void jws_key_free(jws_key *key);

/* The passphrase of an encrypted PEM key (it may hold NULs); p NULL for
 * none, and then an encrypted key is refused rather than prompted for. */
typedef struct jws_pass {
    const char *p;
    size_t n;
} jws_pass;

/* Signs msg with a PEM private key (PKCS#8, encrypted PKCS#8 with pass, or
 * traditional) and appends the JOSE form of the signature (raw r||s for
 * ES256) to sig. Returns 1, or 0 with err set. */
int jws_sign(enum jws_alg alg, const char *pem, size_t pem_len, const jws_pass *pass,
             const unsigned char *msg, size_t msg_len, msal_buf *sig, ossl_err *err);

/* The DER form of every certificate in a PEM text, in order (a leaf and
 * its chain), appended to der; their lengths appended to lens as size_t.
 * Returns the count (0 when the text holds none), or -1 with err set. */
int jws_cert_der(const char *pem, size_t pem_len, msal_buf *der, msal_buf *lens, ossl_err *err);

/* Whether the first certificate of cert_pem holds the public half of the
 * PEM private key: 1 when it does, 0 when not, -1 with err set when either
 * cannot be read. */
int jws_cert_matches_key(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                         const jws_pass *pass, ossl_err *err);

enum jws_kind { JWS_KIND_RSA, JWS_KIND_EC };

/* A fresh key: RSA of rsa_bits, or EC P-256. Appends the private key as
 * PKCS#8 PEM to pem and the public JWK members, base64url, to a and b
 * (n and e for RSA, x and y for EC). Returns 1, or 0 with err set. */
int jws_generate(enum jws_kind kind, int rsa_bits, msal_buf *pem, msal_buf *a, msal_buf *b,
                 ossl_err *err);

#endif
