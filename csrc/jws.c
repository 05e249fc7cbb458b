#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "b64.h"
#include "jws.h"

/* JOSE fixes P-256 coordinates and ES256's r and s at 32 bytes each. */
#define P256_LEN 32
/* OpenSSL's name for P-256; the NIST alias is not accepted everywhere. */
#define P256_GROUP "prime256v1"

static const char *alg_name(enum jws_alg alg)
{
    switch (alg) {
    case JWS_RS256:
        return "RS256";
    case JWS_PS256:
        return "PS256";
    case JWS_ES256:
        return "ES256";
    default:
        return "none";
    }
}

enum jws_alg jws_alg_parse(const char *name, size_t n)
{
    static const enum jws_alg algs[] = {JWS_RS256, JWS_PS256, JWS_ES256};
    size_t i;
    for (i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        const char *s = alg_name(algs[i]);
        if (n == strlen(s) && memcmp(name, s, n) == 0)
            return algs[i];
    }
    return JWS_NONE;
}

static int text_is(const jws_text *t, const char *s)
{
    size_t n = strlen(s);
    return t->p != NULL && t->n == n && memcmp(t->p, s, n) == 0;
}

/* A failure that is ours, not OpenSSL's; the queue is emptied anyway in
 * case an earlier step left something there. */
static int refuse(ossl_err *err, const char *what)
{
    ossl_fail(err, what);
    err->code = 0;
    return 0;
}

/* Decodes a base64url member into fresh memory of at most max bytes. */
static unsigned char *member(const jws_text *t, size_t max, size_t *len, ossl_err *err,
                             const char *missing, const char *bad)
{
    unsigned char *p;
    if (t->p == NULL)
        return refuse(err, missing), NULL;
    if (b64_decoded_max(t->n) > max)
        return refuse(err, bad), NULL;
    if ((p = malloc(t->n + 1)) == NULL)
        return refuse(err, "out of memory"), NULL;
    if (!b64_decode(t->p, t->n, p, len, B64_URL, NULL)) {
        free(p);
        return refuse(err, bad), NULL;
    }
    return p;
}

#define MEMBER(t, max, len, err, name)                                                          \
    member((t), (max), (len), (err), "the JWK has no " name,                                   \
           "the JWK's " name " is not base64url of the right size")

/* Builds a key from parameters; the kind names the provider's key type. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, ossl_err *err)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        ossl_fail(err, "cannot build the public key");
        EVP_PKEY_free(key);
        key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return key;
}

static EVP_PKEY *rsa_public(const jws_jwk *k, ossl_err *err)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nl = 0, el = 0;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *key = NULL;
    /* One spare byte: some encoders keep a leading zero on n. */
    if ((n = MEMBER(&k->n, JWS_RSA_MAX_BITS / 8 + 1, &nl, err, "n")) == NULL ||
        (e = MEMBER(&k->e, 8, &el, err, "e")) == NULL)
        goto done;
    if ((bn = BN_bin2bn(n, (int)nl, NULL)) == NULL || (be = BN_bin2bn(e, (int)el, NULL)) == NULL) {
        ossl_fail(err, "cannot read the RSA key");
        goto done;
    }
    if (BN_num_bits(bn) < JWS_RSA_MIN_BITS) {
        refuse(err, "RSA keys shorter than 2048 bits are refused");
        goto done;
    }
    if (BN_num_bits(bn) > JWS_RSA_MAX_BITS || !BN_is_odd(bn)) {
        refuse(err, "the RSA modulus is not usable");
        goto done;
    }
    /* OpenSSL refuses exponents over 64 bits for large moduli anyway. */
    if (!BN_is_odd(be) || BN_is_one(be) || BN_num_bits(be) > 64) {
        refuse(err, "the RSA exponent is not usable");
        goto done;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
        ossl_fail(err, "cannot build the public key");
        goto done;
    }
    key = from_params("RSA", bld, err);
done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return key;
}

static EVP_PKEY *ec_public(const jws_jwk *k, ossl_err *err)
{
    unsigned char *x = NULL, *y = NULL, point[1 + 2 * P256_LEN];
    size_t xl = 0, yl = 0;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *key = NULL;
    if (!text_is(&k->crv, "P-256")) {
        refuse(err, "only EC keys on the P-256 curve are supported");
        return NULL;
    }
    if ((x = MEMBER(&k->x, P256_LEN, &xl, err, "x")) == NULL ||
        (y = MEMBER(&k->y, P256_LEN, &yl, err, "y")) == NULL)
        goto done;
    /* RFC 7518 6.2.1.2: full length, so a short one is malformed. */
    if (xl != P256_LEN || yl != P256_LEN) {
        refuse(err, "the EC key's x and y must be 32 bytes each");
        goto done;
    }
    point[0] = 4; /* uncompressed: x then y */
    memcpy(point + 1, x, P256_LEN);
    memcpy(point + 1 + P256_LEN, y, P256_LEN);
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, P256_GROUP, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point)) {
        ossl_fail(err, "cannot build the public key");
        goto done;
    }
    if ((key = from_params("EC", bld, err)) == NULL)
        goto done;
    /* A point off the curve would leak through invalid-curve tricks. */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
        EVP_PKEY_public_check(check) != 1) {
        ossl_fail(err, "the EC public key is invalid");
        EVP_PKEY_free(key);
        key = NULL;
    }
done:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return key;
}

/* The key must be of the alg's type, and an RSA key of a usable size; the
 * JWK is checked before this, a PEM key only here. */
static int key_fits(enum jws_alg alg, EVP_PKEY *key, ossl_err *err)
{
    if (alg == JWS_ES256) {
        char group[sizeof P256_GROUP];
        size_t len = 0;
        if (!EVP_PKEY_is_a(key, "EC") ||
            !EVP_PKEY_get_group_name(key, group, sizeof group, &len) || strcmp(group, P256_GROUP) != 0)
            return refuse(err, "ES256 needs an EC key on the P-256 curve");
        return 1;
    }
    if (!EVP_PKEY_is_a(key, "RSA"))
        return refuse(err, "RS256 and PS256 need an RSA key");
    if (EVP_PKEY_get_bits(key) < JWS_RSA_MIN_BITS)
        return refuse(err, "RSA keys shorter than 2048 bits are refused");
    if (EVP_PKEY_get_bits(key) > JWS_RSA_MAX_BITS)
        return refuse(err, "the RSA modulus is not usable");
    return 1;
}

/* The RSA padding alg names: RFC 7518 3.5 for PS256, MGF1 with the same
 * hash and a salt as long as the hash. */
static int set_padding(EVP_PKEY_CTX *pctx, enum jws_alg alg)
{
    if (alg == JWS_PS256)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) > 0;
    if (alg == JWS_RS256)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    return 1;
}

static int sign_init(EVP_MD_CTX *md, enum jws_alg alg, EVP_PKEY *key)
{
    EVP_PKEY_CTX *pctx = NULL;
    return EVP_DigestSignInit_ex(md, &pctx, "SHA256", NULL, NULL, key, NULL) == 1 && set_padding(pctx, alg);
}

/* The key's verification context for alg, made on first use and kept:
 * EVP_DigestVerifyInit fetched the digest and the signature algorithm by
 * name and built a context on every call, 4-8 us of a 20 us RSA
 * verification (bench/README.md, bearer-token validation). */
static EVP_PKEY_CTX *verify_ctx(jws_key *key, enum jws_alg alg)
{
    EVP_PKEY_CTX *c;
    if (key->vctx != NULL && key->vctx_alg == alg)
        return key->vctx;
    EVP_PKEY_CTX_free(key->vctx);
    key->vctx = NULL;
    if (key->sha256 == NULL && (key->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return NULL;
    if ((c = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL)) == NULL || EVP_PKEY_verify_init(c) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(c, key->sha256) <= 0 || !set_padding(c, alg)) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    key->vctx = c;
    key->vctx_alg = alg;
    return c;
}

/* JOSE's r||s to the DER ECDSA-Sig-Value OpenSSL verifies. */
static unsigned char *es256_to_der(const unsigned char *raw, size_t *der_len, ossl_err *err)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, P256_LEN, NULL), *s = BN_bin2bn(raw + P256_LEN, P256_LEN, NULL);
    unsigned char *der = NULL, *p;
    int len;
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ossl_fail(err, "cannot read the ES256 signature");
        goto done;
    }
    /* es owns r and s now */
    if ((len = i2d_ECDSA_SIG(es, NULL)) <= 0 || (der = malloc((size_t)len)) == NULL) {
        ossl_fail(err, "cannot encode the ES256 signature");
        goto done;
    }
    p = der;
    if (i2d_ECDSA_SIG(es, &p) != len) {
        ossl_fail(err, "cannot encode the ES256 signature");
        free(der);
        der = NULL;
        goto done;
    }
    *der_len = (size_t)len;
done:
    ECDSA_SIG_free(es);
    return der;
}

static int der_to_es256(const unsigned char *der, size_t der_len, unsigned char *raw, ossl_err *err)
{
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    ECDSA_SIG *es;
    int ok;
    if (der_len > LONG_MAX || (es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL)
        return ossl_fail(err, "cannot read the ECDSA signature");
    ECDSA_SIG_get0(es, &r, &s);
    ok = BN_bn2binpad(r, raw, P256_LEN) == P256_LEN && BN_bn2binpad(s, raw + P256_LEN, P256_LEN) == P256_LEN;
    ECDSA_SIG_free(es);
    return ok ? 1 : refuse(err, "the ECDSA signature does not fit ES256");
}

int jws_key_from_jwk(const jws_jwk *k, jws_key *out, ossl_err *err)
{
    out->pkey = NULL;
    out->sha256 = NULL;
    out->vctx = NULL;
    out->vctx_alg = JWS_NONE;
    out->alg = JWS_NONE;
    if (k->kty.p == NULL)
        return refuse(err, "the JWK has no kty");
    out->ec = text_is(&k->kty, "EC");
    if (!out->ec && !text_is(&k->kty, "RSA"))
        return refuse(err, "the JWK's kty is neither RSA nor EC");
    /* A key published for one alg must not verify another (RFC 7517 4.4). */
    if (k->alg.p != NULL) {
        out->alg = jws_alg_parse(k->alg.p, k->alg.n);
        if (out->alg == JWS_NONE || (out->alg == JWS_ES256) != out->ec)
            return refuse(err, "the JWK is for an alg this library does not verify");
    }
    if (k->use.p != NULL && !text_is(&k->use, "sig"))
        return refuse(err, "the JWK is not for signatures");
    ERR_clear_error();
    out->pkey = out->ec ? ec_public(k, err) : rsa_public(k, err);
    return out->pkey != NULL;
}

void jws_key_free(jws_key *key)
{
    EVP_PKEY_CTX_free(key->vctx);
    key->vctx = NULL;
    EVP_MD_free(key->sha256);
    key->sha256 = NULL;
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;
}

int jws_key_verify(jws_key *key, enum jws_alg alg, const unsigned char *msg, size_t msg_len,
                   const unsigned char *sig, size_t sig_len, ossl_err *err)
{
    EVP_PKEY_CTX *vctx;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len;
    unsigned char *der = NULL;
    int r = -1;
    if (alg == JWS_NONE)
        return refuse(err, "unsupported alg"), -1;
    if ((alg == JWS_ES256) != key->ec)
        return refuse(err, "the JWK's kty does not match the alg"), -1;
    if (key->alg != JWS_NONE && key->alg != alg)
        return refuse(err, "the JWK is for another alg"), -1;
    /* A wrong length is a wrong signature, not an unusable key. */
    if (alg == JWS_ES256 ? sig_len != 2 * P256_LEN : sig_len != (size_t)EVP_PKEY_get_size(key->pkey))
        return 0;
    ERR_clear_error();
    if ((vctx = verify_ctx(key, alg)) == NULL)
        return ossl_fail(err, "cannot start verifying"), -1;
    if (EVP_Digest(msg, msg_len, digest, &digest_len, key->sha256, NULL) != 1)
        return ossl_fail(err, "cannot hash the signing input"), -1;
    if (alg == JWS_ES256) {
        if ((der = es256_to_der(sig, &sig_len, err)) == NULL)
            return -1;
        sig = der;
    }
    r = EVP_PKEY_verify(vctx, sig, sig_len, digest, digest_len);
    if (r == 1)
        goto done;
    if (r == 0)
        ERR_clear_error(); /* the reason for a bad signature is of no use */
    else {
        ossl_fail(err, "cannot verify");
        r = -1;
    }
done:
    free(der);
    return r;
}

int jws_verify(enum jws_alg alg, const jws_jwk *k, const unsigned char *msg, size_t msg_len,
               const unsigned char *sig, size_t sig_len, ossl_err *err)
{
    jws_key key;
    int r;
    if (alg == JWS_NONE)
        return refuse(err, "unsupported alg"), -1;
    if (k->kty.p != NULL && !text_is(&k->kty, alg == JWS_ES256 ? "EC" : "RSA"))
        return refuse(err, "the JWK's kty does not match the alg"), -1;
    if (!jws_key_from_jwk(k, &key, err))
        return -1;
    r = jws_key_verify(&key, alg, msg, msg_len, sig, sig_len, err);
    jws_key_free(&key);
    return r;
}

/* The caller's passphrase, or none. Never a prompt on a terminal for an
 * encrypted key: the library has no user to ask, and nginx no terminal. */
static int give_password(char *buf, int size, int rwflag, void *u)
{
    const jws_pass *pw = u;
    (void)rwflag;
    if (pw == NULL || pw->p == NULL || size < 0 || pw->n > (size_t)size)
        return -1;
    memcpy(buf, pw->p, pw->n);
    return (int)pw->n;
}

int jws_sign(enum jws_alg alg, const char *pem, size_t pem_len, const jws_pass *pass,
             const unsigned char *msg, size_t msg_len, msal_buf *sig, ossl_err *err)
{
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char *out = NULL, raw[2 * P256_LEN];
    size_t len = 0;
    int ok = 0;
    if (alg == JWS_NONE)
        return refuse(err, "unsupported alg");
    if (pem_len > INT_MAX)
        return refuse(err, "the private key is too large");
    ERR_clear_error();
    if ((bio = BIO_new_mem_buf(pem, (int)pem_len)) == NULL ||
        (key = PEM_read_bio_PrivateKey_ex(bio, NULL, give_password, (void *)pass, NULL, NULL)) == NULL) {
        ossl_fail(err, "cannot read the private key");
        goto done;
    }
    if (!key_fits(alg, key, err))
        goto done;
    if ((md = EVP_MD_CTX_new()) == NULL || !sign_init(md, alg, key) ||
        EVP_DigestSign(md, NULL, &len, msg, msg_len) != 1) {
        ossl_fail(err, "cannot start signing");
        goto done;
    }
    if ((out = malloc(len)) == NULL) {
        refuse(err, "out of memory");
        goto done;
    }
    if (EVP_DigestSign(md, out, &len, msg, msg_len) != 1) {
        ossl_fail(err, "cannot sign");
        goto done;
    }
    if (alg == JWS_ES256) {
        if (!der_to_es256(out, len, raw, err))
            goto done;
        buf_add(sig, raw, sizeof raw);
    } else {
        buf_add(sig, out, len);
    }
    if (sig->oom) {
        refuse(err, "out of memory");
        goto done;
    }
    ok = 1;
done:
    free(out);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ok;
}

int jws_cert_der(const char *pem, size_t pem_len, msal_buf *der, msal_buf *lens, ossl_err *err)
{
    BIO *bio;
    X509 *x;
    unsigned long e;
    int count = 0;
    if (pem_len > INT_MAX)
        return refuse(err, "the certificate is too large"), -1;
    ERR_clear_error();
    if ((bio = BIO_new_mem_buf(pem, (int)pem_len)) == NULL)
        return ossl_fail(err, "cannot read the certificate"), -1;
    /* a certificate has no passphrase: never prompt */
    while ((x = PEM_read_bio_X509(bio, NULL, give_password, NULL)) != NULL) {
        int len = i2d_X509(x, NULL);
        unsigned char *p;
        size_t n;
        if (len <= 0) {
            X509_free(x);
            BIO_free(bio);
            return ossl_fail(err, "cannot encode the certificate"), -1;
        }
        if (!buf_reserve(der, (size_t)len)) {
            X509_free(x);
            BIO_free(bio);
            return refuse(err, "out of memory"), -1;
        }
        p = (unsigned char *)der->p + der->n;
        if (i2d_X509(x, &p) != len) {
            X509_free(x);
            BIO_free(bio);
            return ossl_fail(err, "cannot encode the certificate"), -1;
        }
        der->n += (size_t)len;
        X509_free(x);
        n = (size_t)len;
        buf_add(lens, &n, sizeof n);
        if (lens->oom) {
            BIO_free(bio);
            return refuse(err, "out of memory"), -1;
        }
        count++;
    }
    BIO_free(bio);
    /* the loop ends at the first read that fails: the end of the text (no
     * start line left) is normal, anything else is a broken certificate */
    e = ERR_peek_last_error();
    if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
        return ossl_fail(err, "cannot read the certificate"), -1;
    ERR_clear_error();
    return count;
}

int jws_cert_matches_key(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                         const jws_pass *pass, ossl_err *err)
{
    BIO *cb = NULL, *kb = NULL;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    int r = -1;
    if (cert_len > INT_MAX || key_len > INT_MAX)
        return refuse(err, "the certificate or key is too large"), -1;
    ERR_clear_error();
    if ((cb = BIO_new_mem_buf(cert_pem, (int)cert_len)) == NULL ||
        (x = PEM_read_bio_X509(cb, NULL, give_password, NULL)) == NULL) {
        ossl_fail(err, "cannot read the certificate");
        goto done;
    }
    if ((kb = BIO_new_mem_buf(key_pem, (int)key_len)) == NULL ||
        (key = PEM_read_bio_PrivateKey_ex(kb, NULL, give_password, (void *)pass, NULL, NULL)) == NULL) {
        ossl_fail(err, "cannot read the private key");
        goto done;
    }
    /* X509_get0_pubkey: owned by x; EVP_PKEY_eq compares the public parts */
    r = X509_get0_pubkey(x) != NULL && EVP_PKEY_eq(key, X509_get0_pubkey(x)) == 1;
    ERR_clear_error();
done:
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    return r;
}

/* Appends bn as base64url of exactly width bytes, or of its minimal
 * length when width is 0 (RFC 7518 6.3.1.1: no leading zeros for n, e). */
static int put_bn(const BIGNUM *bn, int width, msal_buf *out, ossl_err *err)
{
    int len = width ? width : BN_num_bytes(bn), ok, fits;
    unsigned char *bin = malloc(len > 0 ? (size_t)len : 1);
    size_t enc;
    if (bin == NULL)
        return refuse(err, "out of memory");
    ok = BN_bn2binpad(bn, bin, len) == len;
    enc = b64_encoded_len((size_t)len, B64_URL, &fits);
    if (ok && fits && buf_reserve(out, enc)) {
        b64_encode(bin, (size_t)len, out->p + out->n, B64_URL);
        out->n += enc;
    } else {
        ok = 0;
    }
    free(bin);
    return ok ? 1 : refuse(err, "cannot encode the public key");
}

static int put_public(EVP_PKEY *key, enum jws_kind kind, msal_buf *a, msal_buf *b, ossl_err *err)
{
    BIGNUM *x = NULL, *y = NULL;
    int ok;
    const char *xn = kind == JWS_KIND_RSA ? OSSL_PKEY_PARAM_RSA_N : OSSL_PKEY_PARAM_EC_PUB_X;
    const char *yn = kind == JWS_KIND_RSA ? OSSL_PKEY_PARAM_RSA_E : OSSL_PKEY_PARAM_EC_PUB_Y;
    int width = kind == JWS_KIND_RSA ? 0 : P256_LEN;
    if (!EVP_PKEY_get_bn_param(key, xn, &x) || !EVP_PKEY_get_bn_param(key, yn, &y))
        ok = ossl_fail(err, "cannot read the public key");
    else
        ok = put_bn(x, width, a, err) && put_bn(y, width, b, err);
    BN_free(x);
    BN_free(y);
    return ok;
}

int jws_generate(enum jws_kind kind, int rsa_bits, msal_buf *pem, msal_buf *a, msal_buf *b,
                 ossl_err *err)
{
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    char *data = NULL;
    long len;
    int ok = 0;
    if (kind == JWS_KIND_RSA && (rsa_bits < JWS_RSA_MIN_BITS || rsa_bits > JWS_RSA_MAX_BITS))
        return refuse(err, "unsupported RSA key size");
    ERR_clear_error();
    key = kind == JWS_KIND_RSA ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits)
                               : EVP_PKEY_Q_keygen(NULL, NULL, "EC", P256_GROUP);
    if (key == NULL) {
        ossl_fail(err, "cannot generate the key");
        goto done;
    }
    /* Secure-heap memory is wiped when freed: it holds the private key. */
    if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (len = BIO_get_mem_data(bio, &data)) <= 0) {
        ossl_fail(err, "cannot write the private key");
        goto done;
    }
    buf_add(pem, data, (size_t)len);
    if (pem->oom) {
        refuse(err, "out of memory");
        goto done;
    }
    ok = put_public(key, kind, a, b, err);
done:
    BIO_free(bio);
    EVP_PKEY_free(key);
    return ok;
}
