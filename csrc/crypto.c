/* msal.core.crypto: the Lua face of the core's cryptography (OpenSSL 3):
 * randomness, SHA-256 and HMAC, base64/base64url (b64.c), PKCE, JWT
 * splitting (jwt.c), JWS signatures (jws.c) and AES-256-GCM.
 *
 * Programmer errors (wrong argument types, bad sizes chosen by the caller)
 * raise; bad data (a malformed token, a tampered blob, a JWK that does not
 * fit the alg) returns nil, message, BAD_DATA, and what OpenSSL refuses or
 * fails at (a key it cannot read, the random generator) nil, message,
 * CRYPTO (core.h). Output goes through GC-owned scratch
 * (userdata) or a box with __gc, so a Lua error at any point leaks nothing;
 * OpenSSL objects never live across a call that can raise. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "b64.h"
#include "buf.h"
#include "compat.h"
#include "core.h"
#include "jws.h"
#include "jwt.h"
#include "ossl.h"

/* Enough for any token, verifier or key; bounds what one call can ask of
 * the CSPRNG and of memory. */
#define RANDOM_MAX (1024 * 1024)
#define SHA256_LEN 32
#define GCM_KEY_LEN 32
#define GCM_IV_LEN 12
#define GCM_TAG_LEN 16
/* OpenSSL's update functions take int lengths. */
#define GCM_CHUNK (1 << 30)
#define BUFS_MT "msal.crypto.bufs"

/* RFC 7636 4.1: the unreserved characters a code verifier is made of. */
static const char unreserved[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
#define UNRESERVED_N (sizeof unreserved - 1)

static unsigned char *scratch(lua_State *L, size_t n)
{
    return lua_newuserdata(L, n ? n : 1);
}

/* CRYPTO when OpenSSL failed, BAD_DATA when our own checks refused (a JWK
 * whose kty does not fit the alg: no OpenSSL error then). */
static int push_fail(lua_State *L, const ossl_err *e)
{
    const char *reason = ossl_reason(e);
    if (reason)
        return msal_push_error(L, "CRYPTO", "%s: %s", e->what, reason);
    return msal_push_error(L, e->code ? "CRYPTO" : "BAD_DATA", "%s", e->what);
}

/* Up to three malloc'd buffers whose lifetime Lua owns: results of jws.c
 * whose size is only known once OpenSSL has run. Wiped on free, as they
 * may hold a private key. */
typedef struct bufs {
    msal_buf b[3];
} bufs;

static void bufs_free(bufs *u)
{
    int i;
    for (i = 0; i < 3; i++) {
        if (u->b[i].p)
            OPENSSL_cleanse(u->b[i].p, u->b[i].cap);
        buf_free(&u->b[i]);
    }
}

static int l_bufs_gc(lua_State *L)
{
    bufs_free(luaL_checkudata(L, 1, BUFS_MT));
    return 0;
}

static bufs *new_bufs(lua_State *L)
{
    bufs *u = lua_newuserdata(L, sizeof *u);
    int i;
    for (i = 0; i < 3; i++)
        buf_init(&u->b[i]);
    luaL_setmetatable(L, BUFS_MT);
    return u;
}

static int fill_random(unsigned char *p, size_t n, ossl_err *err)
{
    /* n <= RANDOM_MAX, so the int cast holds */
    if (RAND_bytes(p, (int)n) != 1)
        return ossl_fail(err, "the random generator failed");
    return 1;
}

static size_t check_count(lua_State *L, int idx)
{
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0 && n <= RANDOM_MAX, idx, "must be between 0 and 1048576");
    return (size_t)n;
}

/***
 * Bytes from the OS CSPRNG (OpenSSL's RAND_bytes).
 * @function random_bytes
 * @tparam integer n 0 to 1048576
 * @treturn string n bytes
 * @return or nil, message, CRYPTO
 */
static int l_random_bytes(lua_State *L)
{
    size_t n = check_count(L, 1);
    unsigned char *p = scratch(L, n);
    ossl_err err;
    if (!fill_random(p, n, &err))
        return push_fail(L, &err);
    lua_pushlstring(L, (const char *)p, n);
    return 1;
}

/* Rejection sampling: 198 is the largest multiple of 66 under 256, so
 * every character is equally likely. */
static int random_chars(char *out, size_t n, ossl_err *err)
{
    unsigned char pool[256];
    size_t have = 0, i;
    int ok = 1;
    while (ok && have < n) {
        if (!(ok = fill_random(pool, sizeof pool, err)))
            break;
        for (i = 0; i < sizeof pool && have < n; i++)
            if (pool[i] < 256 / UNRESERVED_N * UNRESERVED_N)
                out[have++] = unreserved[pool[i] % UNRESERVED_N];
    }
    OPENSSL_cleanse(pool, sizeof pool);
    return ok;
}

/***
 * Characters drawn uniformly from RFC 7636's unreserved set
 * (A-Z a-z 0-9 - . _ ~) by rejection sampling: 198 is the largest
 * multiple of 66 under 256, so every character is equally likely.
 * @function random_string
 * @tparam integer n 0 to 1048576
 * @treturn string
 * @return or nil, message, CRYPTO
 */
static int l_random_string(lua_State *L)
{
    size_t n = check_count(L, 1);
    char *p = (char *)scratch(L, n);
    ossl_err err;
    if (!random_chars(p, n, &err))
        return push_fail(L, &err);
    lua_pushlstring(L, p, n);
    return 1;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

/***
 * A random UUID, RFC 9562 version 4: 122 random bits.
 * @function uuid4
 * @treturn string "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower case
 * @return or nil, message, CRYPTO
 */
static int l_uuid4(lua_State *L)
{
    unsigned char b[16];
    char s[36];
    ossl_err err;
    if (!fill_random(b, sizeof b, &err))
        return push_fail(L, &err);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    hex(b, 4, s);
    s[8] = '-';
    hex(b + 4, 2, s + 9);
    s[13] = '-';
    hex(b + 6, 2, s + 14);
    s[18] = '-';
    hex(b + 8, 2, s + 19);
    s[23] = '-';
    hex(b + 10, 6, s + 24);
    lua_pushlstring(L, s, sizeof s);
    return 1;
}

static int sha256(const void *p, size_t n, unsigned char *md, ossl_err *err)
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != SHA256_LEN)
        return ossl_fail(err, "sha256 failed");
    return 1;
}

/* The SHA-256 of the string argument: 32 bytes, or 64 hex digits. */
static int push_sha256(lua_State *L, int as_hex)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char md[SHA256_LEN];
    char out[2 * SHA256_LEN];
    ossl_err err;
    if (!sha256(s, n, md, &err))
        return push_fail(L, &err);
    if (!as_hex) {
        lua_pushlstring(L, (const char *)md, sizeof md);
        return 1;
    }
    hex(md, sizeof md, out);
    lua_pushlstring(L, out, sizeof out);
    return 1;
}

/***
 * @function sha256
 * @tparam string s
 * @treturn string the 32-byte digest
 * @return or nil, message, CRYPTO
 */
static int l_sha256(lua_State *L)
{
    return push_sha256(L, 0);
}

/***
 * @function sha256_hex
 * @tparam string s
 * @treturn string the digest as 64 lower-case hex digits
 * @return or nil, message, CRYPTO
 */
static int l_sha256_hex(lua_State *L)
{
    return push_sha256(L, 1);
}

/***
 * @function hmac_sha256
 * @tparam string key
 * @tparam string s
 * @treturn string the 32-byte MAC
 * @return or nil, message, CRYPTO
 */
static int l_hmac_sha256(lua_State *L)
{
    size_t kn, n;
    const char *key = luaL_checklstring(L, 1, &kn);
    const char *s = luaL_checklstring(L, 2, &n);
    unsigned char md[SHA256_LEN];
    unsigned int len = 0;
    ossl_err err;
    luaL_argcheck(L, kn <= INT_MAX, 1, "key too long");
    if (HMAC(EVP_sha256(), key, (int)kn, (const unsigned char *)s, n, md, &len) == NULL ||
        len != SHA256_LEN) {
        ossl_fail(&err, "hmac-sha256 failed");
        return push_fail(L, &err);
    }
    lua_pushlstring(L, (const char *)md, sizeof md);
    return 1;
}

static int encode(lua_State *L, enum b64_alphabet a)
{
    size_t n, len;
    const char *s = luaL_checklstring(L, 1, &n);
    int ok;
    char *out;
    len = b64_encoded_len(n, a, &ok);
    luaL_argcheck(L, ok, 1, "too long to encode");
    out = (char *)scratch(L, len);
    b64_encode((const unsigned char *)s, n, out, a);
    lua_pushlstring(L, out, len);
    return 1;
}

static int decode(lua_State *L, enum b64_alphabet a)
{
    size_t n, len;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char *out = scratch(L, b64_decoded_max(n));
    const char *why;
    if (!b64_decode(s, n, out, &len, a, &why))
        return msal_push_error(L, "BAD_DATA", "invalid %s: %s", a == B64_URL ? "base64url" : "base64", why);
    lua_pushlstring(L, (const char *)out, len);
    return 1;
}

/***
 * base64url without padding (RFC 4648 §5), as JWTs and PKCE use it.
 * @function b64url_encode
 * @tparam string s
 * @treturn string
 */
static int l_b64url_encode(lua_State *L)
{
    return encode(L, B64_URL);
}

/***
 * Strict base64url: no padding, no white space, no spare bits.
 * @function b64url_decode
 * @tparam string s
 * @treturn string
 * @return or nil, message, BAD_DATA
 */
static int l_b64url_decode(lua_State *L)
{
    return decode(L, B64_URL);
}

/***
 * Standard base64 with padding.
 * @function b64_encode
 * @tparam string s
 * @treturn string
 */
static int l_b64_encode(lua_State *L)
{
    return encode(L, B64_STD);
}

/***
 * Strict standard base64: padding required, no white space, no spare
 * bits.
 * @function b64_decode
 * @tparam string s
 * @treturn string
 * @return or nil, message, BAD_DATA
 */
static int l_b64_decode(lua_State *L)
{
    return decode(L, B64_STD);
}

/* base64url(SHA-256(verifier)): RFC 7636 4.2, S256. */
static int challenge(const char *verifier, size_t n, char *out, ossl_err *err)
{
    unsigned char md[SHA256_LEN];
    if (!sha256(verifier, n, md, err))
        return 0;
    b64_encode(md, sizeof md, out, B64_URL);
    return 1;
}

#define PKCE_VERIFIER_BYTES 32
#define PKCE_B64_LEN 43 /* base64url of 32 bytes, the verifier's and the challenge's length */

/***
 * A fresh PKCE pair (RFC 7636): 32 random bytes as a 43-character
 * verifier, and its S256 challenge.
 * @function pkce
 * @treturn string verifier
 * @treturn string challenge
 * @treturn string "S256"
 * @return or nil, message, CRYPTO
 */
static int l_pkce(lua_State *L)
{
    unsigned char seed[PKCE_VERIFIER_BYTES];
    char verifier[PKCE_B64_LEN], chal[PKCE_B64_LEN];
    ossl_err err;
    if (!fill_random(seed, sizeof seed, &err))
        return push_fail(L, &err);
    b64_encode(seed, sizeof seed, verifier, B64_URL);
    OPENSSL_cleanse(seed, sizeof seed);
    if (!challenge(verifier, sizeof verifier, chal, &err))
        return push_fail(L, &err);
    lua_pushlstring(L, verifier, sizeof verifier);
    lua_pushlstring(L, chal, sizeof chal);
    lua_pushliteral(L, "S256");
    return 3;
}

/***
 * The S256 challenge of a verifier: base64url(SHA-256(verifier)).
 * @function pkce_challenge
 * @tparam string verifier 43 to 128 unreserved characters (raises otherwise)
 * @treturn string
 * @return or nil, message, CRYPTO
 */
static int l_pkce_challenge(lua_State *L)
{
    size_t n, i;
    const char *v = luaL_checklstring(L, 1, &n);
    char chal[PKCE_B64_LEN];
    ossl_err err;
    luaL_argcheck(L, n >= 43 && n <= 128, 1, "a code verifier has 43 to 128 characters");
    for (i = 0; i < n; i++)
        luaL_argcheck(L, v[i] != '\0' && strchr(unreserved, v[i]) != NULL, 1,
                      "a code verifier has only unreserved characters");
    if (!challenge(v, n, chal, &err))
        return push_fail(L, &err);
    lua_pushlstring(L, chal, sizeof chal);
    return 1;
}

/***
 * Compares two strings in time that depends only on their lengths: a
 * mismatch of lengths still reads a whole operand so it costs what a
 * comparison does.
 * @function constant_time_equal
 * @tparam string a
 * @tparam string b
 * @treturn boolean
 */
static int l_constant_time_equal(lua_State *L)
{
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    if (an != bn) {
        (void)CRYPTO_memcmp(a, a, an);
        lua_pushboolean(L, 0);
    } else {
        lua_pushboolean(L, CRYPTO_memcmp(a, b, an) == 0);
    }
    return 1;
}

/***
 * Splits a compact JWT and decodes its parts (jwt.c); nothing is
 * verified.
 * @function jwt_decode
 * @tparam string token
 * @tparam[opt] integer max_len refuse longer tokens before any allocation
 * @tparam[opt] boolean input_len give the signing input's length instead of
 *   a copy of it (a verifier passes the token and that length: no second
 *   string of a few KB per token)
 * @treturn string header JSON
 * @treturn string payload JSON
 * @treturn string signature bytes
 * @treturn string|integer the signing input (header.payload as sent)
 * @return or nil, message, BAD_DATA
 */
static int l_jwt_decode(lua_State *L)
{
    size_t n;
    const char *tok = luaL_checklstring(L, 1, &n);
    lua_Integer max = luaL_optinteger(L, 2, JWT_DEFAULT_MAX_LEN);
    int input_len = lua_toboolean(L, 3); /* read before scratch pushes */
    jwt_parts parts;
    const char *err;
    unsigned char *buf;
    luaL_argcheck(L, max > 0, 2, "must be positive");
    /* Checked before any allocation so the cap also bounds the memory. */
    if ((uintmax_t)n > (uintmax_t)max)
        return msal_push_error(L, "BAD_DATA", "token too large");
    buf = scratch(L, n);
    if (!jwt_decode(tok, n, (size_t)max, buf, &parts, &err)) {
        if (parts.detail)
            return msal_push_error(L, "BAD_DATA", "%s (%s)", err, parts.detail);
        return msal_push_error(L, "BAD_DATA", "%s", err);
    }
    lua_pushlstring(L, (const char *)parts.header, parts.header_len);
    lua_pushlstring(L, (const char *)parts.payload, parts.payload_len);
    lua_pushlstring(L, (const char *)parts.signature, parts.signature_len);
    if (input_len)
        lua_pushinteger(L, (lua_Integer)parts.signing_input_len);
    else
        lua_pushlstring(L, tok, parts.signing_input_len);
    return 4;
}

/* Reads the JWK's members raw (a metatable must not be able to swap
 * them) and leaves them on the stack, which keeps the strings alive. */
static int read_jwk(lua_State *L, int idx, jws_jwk *k)
{
    static const char *const names[] = {"kty", "crv", "alg", "use", "n", "e", "x", "y"};
    jws_text *fields[8];
    int i;
    fields[0] = &k->kty, fields[1] = &k->crv, fields[2] = &k->alg, fields[3] = &k->use;
    fields[4] = &k->n, fields[5] = &k->e, fields[6] = &k->x, fields[7] = &k->y;
    luaL_checkstack(L, 8, NULL);
    for (i = 0; i < 8; i++) {
        lua_pushstring(L, names[i]);
        lua_rawget(L, idx);
        fields[i]->p = NULL;
        fields[i]->n = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            fields[i]->p = lua_tolstring(L, -1, &fields[i]->n);
        else if (!lua_isnil(L, -1))
            return msal_push_error(L, "BAD_DATA", "the JWK's %s is not a string", names[i]), 0;
    }
    return 1;
}

/***
 * Verifies a JWS signature with a public JWK (jws.c). alg comes from
 * the token, so an unknown one is bad data, not a raise.
 * @function jws_verify
 * @tparam string alg "RS256", "PS256" or "ES256"
 * @tparam table jwk `{kty, crv, alg, use, n, e, x, y}` as the issuer publishes it
 * @tparam string input the signing input
 * @tparam string sig the signature bytes
 * @treturn boolean whether the signature is valid
 * @return or nil, message, BAD_DATA (alg, key members) | CRYPTO
 */
static int l_jws_verify(lua_State *L)
{
    size_t an, mn, sn;
    const char *name = luaL_checklstring(L, 1, &an);
    const unsigned char *msg, *sig;
    enum jws_alg alg = jws_alg_parse(name, an);
    jws_jwk key;
    ossl_err err;
    int r;
    luaL_checktype(L, 2, LUA_TTABLE);
    msg = (const unsigned char *)luaL_checklstring(L, 3, &mn);
    sig = (const unsigned char *)luaL_checklstring(L, 4, &sn);
    /* alg comes from a token's header: data, not a programmer's choice */
    if (alg == JWS_NONE) /* the name cut at a NUL: fine in a message */
        return msal_push_error(L, "BAD_DATA", "unsupported alg '%s'", name);
    if (!read_jwk(L, 2, &key))
        return 3;
    r = jws_verify(alg, &key, msg, mn, sig, sn, &err);
    if (r < 0)
        return push_fail(L, &err);
    lua_pushboolean(L, r);
    return 1;
}

#define PUBKEY_MT "msal.public_key"

/***
 * A public key built once from a JWK, for many verifications: a resource
 * server checks every request's token against the same few keys, and
 * building a key costs more than an RSA verification.
 * @function public_key
 * @tparam table jwk `{kty, crv, alg, use, n, e, x, y}` as the issuer publishes it
 * @treturn userdata the key, with `verify(alg, input, sig[, input_len])` as
 *   jws_verify's; with input_len only that prefix of input is checked
 * @return or nil, message, BAD_DATA (kty, alg, use, members) | CRYPTO
 */
static int l_public_key(lua_State *L)
{
    jws_jwk jwk;
    jws_key *key;
    ossl_err err;
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!read_jwk(L, 1, &jwk))
        return 3;
    key = lua_newuserdata(L, sizeof *key);
    memset(key, 0, sizeof *key);
    luaL_setmetatable(L, PUBKEY_MT);
    if (!jws_key_from_jwk(&jwk, key, &err))
        return push_fail(L, &err);
    return 1;
}

static int l_public_key_verify(lua_State *L)
{
    jws_key *key = luaL_checkudata(L, 1, PUBKEY_MT);
    size_t an, mn, sn;
    const char *name = luaL_checklstring(L, 2, &an);
    const unsigned char *msg = (const unsigned char *)luaL_checklstring(L, 3, &mn);
    const unsigned char *sig = (const unsigned char *)luaL_checklstring(L, 4, &sn);
    enum jws_alg alg = jws_alg_parse(name, an);
    lua_Integer len = luaL_optinteger(L, 5, (lua_Integer)mn);
    ossl_err err;
    int r;
    luaL_argcheck(L, key->pkey != NULL, 1, "the key is closed");
    luaL_argcheck(L, len >= 0 && (uintmax_t)len <= (uintmax_t)mn, 5, "must be within the input");
    mn = (size_t)len;
    if (alg == JWS_NONE)
        return msal_push_error(L, "BAD_DATA", "unsupported alg '%s'", name);
    r = jws_key_verify(key, alg, msg, mn, sig, sn, &err);
    if (r < 0)
        return push_fail(L, &err);
    lua_pushboolean(L, r);
    return 1;
}

static int l_public_key_close(lua_State *L)
{
    jws_key_free(luaL_checkudata(L, 1, PUBKEY_MT));
    return 0;
}

static void public_key_describe(lua_State *L, void *self)
{
    jws_key *key = self;
    if (key->pkey != NULL)
        lua_pushfstring(L, "%s %d", key->ec ? "EC" : "RSA", EVP_PKEY_get_bits(key->pkey));
}

/***
 * Signs with a PEM private key (jws.c).
 * @function jws_sign
 * @tparam string alg "RS256", "PS256" or "ES256" (raises otherwise)
 * @tparam string pem
 * @tparam string input
 * @tparam[opt] string passphrase of an encrypted key (none: such a key is
 *   refused, never prompted for)
 * @treturn string the signature bytes
 * @return or nil, message, CRYPTO
 */
static int l_jws_sign(lua_State *L)
{
    size_t an, pn, mn;
    const char *name = luaL_checklstring(L, 1, &an);
    const char *pem = luaL_checklstring(L, 2, &pn);
    const char *msg = luaL_checklstring(L, 3, &mn);
    enum jws_alg alg = jws_alg_parse(name, an);
    jws_pass pass = {NULL, 0};
    bufs *out;
    ossl_err err;
    luaL_argcheck(L, alg != JWS_NONE, 1, "RS256, PS256 or ES256 expected");
    pass.p = luaL_optlstring(L, 4, NULL, &pass.n);
    out = new_bufs(L);
    if (!jws_sign(alg, pem, pn, &pass, (const unsigned char *)msg, mn, &out->b[0], &err)) {
        bufs_free(out);
        return push_fail(L, &err);
    }
    lua_pushlstring(L, out->b[0].p, out->b[0].n);
    bufs_free(out);
    return 1;
}

/***
 * The certificates of a PEM text in DER form (for a client assertion's
 * `x5t#S256` thumbprint and `x5c` chain).
 * @function x509_der
 * @tparam string pem
 * @treturn table the DER strings, leaf first (empty when there are none)
 * @return or nil, message, CRYPTO (a certificate that cannot be read)
 */
static int l_x509_der(lua_State *L)
{
    size_t pn, i, off = 0, len;
    const char *pem = luaL_checklstring(L, 1, &pn);
    bufs *out = new_bufs(L);
    ossl_err err;
    int n = jws_cert_der(pem, pn, &out->b[0], &out->b[1], &err);
    if (n < 0) {
        bufs_free(out);
        return push_fail(L, &err);
    }
    /* OpenSSL's objects are gone: pushing may raise now, the box frees */
    lua_createtable(L, n, 0);
    for (i = 0; i < (size_t)n; i++) {
        memcpy(&len, out->b[1].p + i * sizeof len, sizeof len);
        lua_pushlstring(L, out->b[0].p + off, len);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
        off += len;
    }
    return 1;
}

/***
 * Whether a certificate (its first, in PEM) belongs to a PEM private key.
 * @function x509_matches_key
 * @tparam string cert_pem
 * @tparam string key_pem
 * @tparam[opt] string passphrase of an encrypted key
 * @treturn boolean
 * @return or nil, message, CRYPTO (either cannot be read)
 */
static int l_x509_matches_key(lua_State *L)
{
    size_t cn, kn;
    const char *cert = luaL_checklstring(L, 1, &cn);
    const char *key = luaL_checklstring(L, 2, &kn);
    jws_pass pass = {NULL, 0};
    ossl_err err;
    int r;
    pass.p = luaL_optlstring(L, 3, NULL, &pass.n);
    r = jws_cert_matches_key(cert, cn, key, kn, &pass, &err);
    if (r < 0)
        return push_fail(L, &err);
    lua_pushboolean(L, r);
    return 1;
}

static void set_field(lua_State *L, const char *k, const char *v, size_t n)
{
    lua_pushlstring(L, v, n);
    lua_setfield(L, -2, k);
}

/***
 * A new key pair, for tests and client assertions.
 * @function generate_key
 * @tparam string kind "RSA" or "EC" (P-256)
 * @tparam[opt=2048] integer bits RSA only, 2048 to 8192
 * @treturn string the private key as PEM
 * @treturn table the public JWK: `{kty, n, e}` or `{kty, crv, x, y}`
 * @return or nil, message, CRYPTO
 */
static int l_generate_key(lua_State *L)
{
    static const char *const kinds[] = {"RSA", "EC", NULL};
    enum jws_kind kind = luaL_checkoption(L, 1, NULL, kinds) == 0 ? JWS_KIND_RSA : JWS_KIND_EC;
    lua_Integer bits = luaL_optinteger(L, 2, JWS_RSA_MIN_BITS);
    bufs *out;
    ossl_err err;
    luaL_argcheck(L, kind == JWS_KIND_RSA || lua_isnoneornil(L, 2), 2, "only RSA keys have a size");
    luaL_argcheck(L, bits >= JWS_RSA_MIN_BITS && bits <= 8192, 2, "RSA keys have 2048 to 8192 bits");
    out = new_bufs(L);
    if (!jws_generate(kind, (int)bits, &out->b[0], &out->b[1], &out->b[2], &err)) {
        bufs_free(out);
        return push_fail(L, &err);
    }
    lua_pushlstring(L, out->b[0].p, out->b[0].n);
    lua_createtable(L, 0, 4);
    if (kind == JWS_KIND_RSA) {
        set_field(L, "kty", "RSA", 3);
        set_field(L, "n", out->b[1].p, out->b[1].n);
        set_field(L, "e", out->b[2].p, out->b[2].n);
    } else {
        set_field(L, "kty", "EC", 2);
        set_field(L, "crv", "P-256", 5);
        set_field(L, "x", out->b[1].p, out->b[1].n);
        set_field(L, "y", out->b[2].p, out->b[2].n);
    }
    bufs_free(out);
    return 2;
}

static const unsigned char *check_key(lua_State *L, int idx)
{
    size_t n;
    const char *k = luaL_checklstring(L, idx, &n);
    luaL_argcheck(L, n == GCM_KEY_LEN, idx, "an AES-256 key has 32 bytes");
    return (const unsigned char *)k;
}

/* Feeds n bytes in int-sized chunks; out NULL feeds them as AAD. GCM is a
 * stream mode: each chunk's output is exactly as long as its input. */
static int gcm_feed(EVP_CIPHER_CTX *c, unsigned char *out, const unsigned char *in, size_t n)
{
    while (n > 0) {
        int chunk = n > GCM_CHUNK ? GCM_CHUNK : (int)n, outl;
        if (EVP_CipherUpdate(c, out, &outl, in, chunk) != 1 || outl != chunk)
            return 0;
        if (out)
            out += chunk;
        in += chunk;
        n -= (size_t)chunk;
    }
    return 1;
}

/***
 * AES-256-GCM with a random 96-bit IV per message: safe for far more
 * messages than a token cache will ever seal under one key.
 * @function aes256gcm_seal
 * @tparam string key 32 bytes
 * @tparam string plaintext
 * @tparam[opt] string aad associated data, authenticated, not stored
 * @treturn string IV .. ciphertext .. 16-byte tag
 * @return or nil, message, CRYPTO
 */
static int l_aes256gcm_seal(lua_State *L)
{
    const unsigned char *key = check_key(L, 1);
    size_t n, an = 0;
    const unsigned char *pt = (const unsigned char *)luaL_checklstring(L, 2, &n);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, NULL, &an);
    unsigned char *out, *ct, *tag;
    EVP_CIPHER_CTX *c = NULL;
    ossl_err err;
    int ok, outl = 0;
    luaL_argcheck(L, n <= SIZE_MAX - GCM_IV_LEN - GCM_TAG_LEN, 2, "too long");
    out = scratch(L, GCM_IV_LEN + n + GCM_TAG_LEN);
    ct = out + GCM_IV_LEN;
    tag = ct + n;
    /* A random 96-bit IV per message: safe for far more messages than a
     * token cache will ever seal under one key. */
    if (!fill_random(out, GCM_IV_LEN, &err))
        return push_fail(L, &err);
    ERR_clear_error();
    ok = (c = EVP_CIPHER_CTX_new()) != NULL && EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, out, NULL) == 1 &&
         (aad == NULL || gcm_feed(c, NULL, aad, an)) && gcm_feed(c, ct, pt, n) &&
         EVP_EncryptFinal_ex(c, tag, &outl) == 1 && outl == 0 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, GCM_TAG_LEN, tag) == 1;
    if (!ok)
        ossl_fail(&err, "aes-256-gcm encryption failed");
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return push_fail(L, &err);
    lua_pushlstring(L, (const char *)out, GCM_IV_LEN + n + GCM_TAG_LEN);
    return 1;
}

/***
 * Opens what aes256gcm_seal made; unauthenticated plaintext is wiped,
 * never returned.
 * @function aes256gcm_open
 * @tparam string key 32 bytes
 * @tparam string blob
 * @tparam[opt] string aad the same as when sealed
 * @treturn string the plaintext
 * @return or nil, "authentication failed", BAD_DATA (wrong key, damaged or
 *   other aad) | nil, message, CRYPTO
 */
static int l_aes256gcm_open(lua_State *L)
{
    const unsigned char *key = check_key(L, 1);
    size_t n, an = 0, ctn;
    const unsigned char *blob = (const unsigned char *)luaL_checklstring(L, 2, &n);
    const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 3, NULL, &an);
    unsigned char *out, tag[GCM_TAG_LEN], end[GCM_TAG_LEN];
    EVP_CIPHER_CTX *c = NULL;
    ossl_err err;
    int ok, outl = 0;
    if (n < GCM_IV_LEN + GCM_TAG_LEN)
        return msal_push_error(L, "BAD_DATA", "authentication failed");
    ctn = n - GCM_IV_LEN - GCM_TAG_LEN;
    out = scratch(L, ctn);
    memcpy(tag, blob + n - GCM_TAG_LEN, GCM_TAG_LEN); /* ctrl wants it writable */
    ERR_clear_error();
    if ((c = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, blob, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, GCM_TAG_LEN, tag) != 1) {
        ossl_fail(&err, "aes-256-gcm decryption failed");
        EVP_CIPHER_CTX_free(c);
        return push_fail(L, &err);
    }
    ok = (aad == NULL || gcm_feed(c, NULL, aad, an)) && gcm_feed(c, out, blob + GCM_IV_LEN, ctn) &&
         EVP_DecryptFinal_ex(c, end, &outl) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        /* Unauthenticated plaintext must not linger, let alone be seen. */
        OPENSSL_cleanse(out, ctn);
        ERR_clear_error();
        return msal_push_error(L, "BAD_DATA", "authentication failed");
    }
    lua_pushlstring(L, (const char *)out, ctn);
    return 1;
}

int luaopen_msal_core_crypto(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"random_bytes", l_random_bytes},   {"random_string", l_random_string},   {"uuid4", l_uuid4},
        {"sha256", l_sha256},               {"sha256_hex", l_sha256_hex},         {"hmac_sha256", l_hmac_sha256},
        {"b64url_encode", l_b64url_encode}, {"b64url_decode", l_b64url_decode},   {"b64_encode", l_b64_encode},
        {"b64_decode", l_b64_decode},       {"pkce", l_pkce},                     {"pkce_challenge", l_pkce_challenge},
        {"constant_time_equal", l_constant_time_equal},                           {"jwt_decode", l_jwt_decode},
        {"jws_verify", l_jws_verify},       {"jws_sign", l_jws_sign},             {"generate_key", l_generate_key},
        {"x509_der", l_x509_der},           {"x509_matches_key", l_x509_matches_key},
        {"aes256gcm_seal", l_aes256gcm_seal}, {"aes256gcm_open", l_aes256gcm_open},
        {"public_key", l_public_key},       {NULL, NULL},
    };
    static const luaL_Reg key_methods[] = {{"verify", l_public_key_verify}, {NULL, NULL}};
    static const msal_class key_class = {PUBKEY_MT, key_methods, l_public_key_close, public_key_describe, NULL, NULL};
    static const msal_class bufs_class = {BUFS_MT, NULL, l_bufs_gc, NULL, NULL, NULL};
    msal_pin_module((void *)luaopen_msal_core_crypto); /* OpenSSL's exit handlers: core.c */
    msal_newclass(L, &bufs_class);
    msal_newclass(L, &key_class);
    luaL_newlib(L, funcs);
    return 1;
}
