/* A strict JSON scanner for the token cache document. It validates while it
 * copies (dropping insignificant white space), so a cache is read in one
 * pass straight into the store; lua-cjson would first build a Lua table of
 * every entry (measured 5x too slow at 10,000 accounts, see bench/). */
#ifndef MSAL_JSON_H
#define MSAL_JSON_H

#include <stddef.h>

#include "buf.h"

enum json_type { JT_NONE, JT_OBJECT, JT_ARRAY, JT_STRING, JT_NUMBER, JT_TRUE, JT_FALSE, JT_NULL };

/* Containers may nest this deep; deeper input is refused, not recursed. */
#define JSON_MAX_DEPTH 64

typedef struct json_scan {
    const char *p, *end, *base;
    const char *err; /* static text of the first error, NULL while none */
    size_t err_at;   /* byte offset of that error */
} json_scan;

void json_init(json_scan *s, const char *p, size_t n);
/* Skips white space; returns the next byte or -1 at the end. */
int json_next(json_scan *s);
/* Consumes c (after white space) or records an error. */
int json_expect(json_scan *s, char c);
int json_fail(json_scan *s, const char *msg);
/* At '"': validates a string; *inner, *n give the text between the quotes
 * and *escaped tells whether it holds escapes. */
int json_string(json_scan *s, const char **inner, size_t *n, int *escaped);
/* Validates one value and appends it, compacted, to out; returns its type
 * or JT_NONE on error. out may be NULL to only validate. */
int json_copy_value(json_scan *s, msal_buf *out, int depth);
/* Decodes the escapes of a string's inner text, already validated. */
void json_unescape(const char *in, size_t n, msal_buf *out);
/* Appends s as a quoted JSON string. */
void json_put_string(msal_buf *out, const char *s, size_t n);

#endif
