/* Base64 (RFC 4648 section 4, padded) and base64url (section 5, unpadded,
 * as JOSE uses it). Decoding is strict so that every accepted text has
 * exactly one decoding and one encoding: a token cannot be altered in its
 * spare bits, padding or stray characters and still be "the same" token.
 * Pure C, no allocation: callers size the output with the *_len helpers. */
#ifndef MSAL_B64_H
#define MSAL_B64_H

#include <stddef.h>

enum b64_alphabet { B64_STD, B64_URL };

/* Output sizes; 0 with *ok = 0 when n is too large to encode. */
size_t b64_encoded_len(size_t n, enum b64_alphabet a, int *ok);
/* An upper bound of the decoded size of n characters (never above n). */
size_t b64_decoded_max(size_t n);

/* Writes b64_encoded_len(n) bytes to out (no terminating NUL). */
void b64_encode(const unsigned char *in, size_t n, char *out, enum b64_alphabet a);

/* Decodes n characters into out (room for b64_decoded_max(n) bytes) and
 * sets *outlen. Returns 1, or 0 with *err naming the first problem (static
 * text). out may alias in: the decoder writes behind where it reads. */
int b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
               enum b64_alphabet a, const char **err);

#endif
