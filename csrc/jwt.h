/* Splitting a JWT (JWS compact serialization, RFC 7515 section 7.1) into
 * its decoded parts. Pure C and allocation-free so the fuzz target in
 * fuzz/fuzz_jwt.c runs exactly the code the Lua face runs. */
#ifndef MSAL_JWT_H
#define MSAL_JWT_H

#include <stddef.h>

#define JWT_DEFAULT_MAX_LEN (64 * 1024)

typedef struct jwt_parts {
    /* Decoded header and payload (JSON text, unchecked) and signature,
     * pointing into the caller's scratch. */
    const unsigned char *header, *payload, *signature;
    size_t header_len, payload_len, signature_len;
    /* The signed text is the token's first signing_input_len bytes. */
    size_t signing_input_len;
    /* On a base64url failure, the decoder's reason (static text). */
    const char *detail;
} jwt_parts;

/* Decodes token (n bytes, at most max_len) into scratch, which needs room
 * for n bytes. Returns 1, or 0 with *err set to static text. Both dots are
 * required and the header and payload must not be empty; the signature may
 * be (an unsecured JWT), and it is for the caller's policy to refuse. */
int jwt_decode(const char *token, size_t n, size_t max_len, unsigned char *scratch,
               jwt_parts *out, const char **err);

#endif
