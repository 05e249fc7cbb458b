/* HTTP/1.x requests as a server reads them (RFC 9112), over bytes alone:
 * no sockets, no Lua, no allocation. The loopback listener (loopback.c)
 * feeds it what a connection sent so far; fuzz/fuzz_http1.c feeds it
 * anything.
 *
 * Strict on purpose, because whatever a client sends is untrusted, even on
 * loopback (any local process, or a web page through the browser, can
 * connect): CR only as part of CRLF, no NUL, only origin-form targets
 * ("/path?query"), no obs-fold, header names that are tokens, one plain
 * decimal Content-Length at most, no Transfer-Encoding, exactly one Host in
 * HTTP/1.1, and a cap on the bytes of head and body together. Whatever is
 * refused is refused with the status to answer it with: 400, 413, 501 or
 * 505. */
#ifndef MSAL_HTTP1_H
#define MSAL_HTTP1_H

#include <stddef.h>

/* What http1_feed returns once the head and the body are all in. */
#define HTTP1_COMPLETE 1

/* A span of the request's bytes. */
typedef struct http1_text {
    const char *p;
    size_t n;
} http1_text;

/* The reading of one request, from its first byte on. */
typedef struct http1_reader {
    size_t max;        /* cap on head + body, in bytes */
    size_t scan;       /* bytes already scanned for line ends */
    size_t line_start; /* where the line being scanned starts */
    int nlines;        /* complete lines so far */
    size_t head_len;   /* request line, fields and blank line; 0 until all in */
    size_t body_len;   /* Content-Length, once head_len is set */
    int head_only;     /* a HEAD request: its answer has no body */
    int refused;       /* the status once refused: every later feed returns it */
} http1_reader;

/* The parts of a head that http1_parse accepted, pointing into it. */
typedef struct http1_request {
    http1_text method, target;
    http1_text path;    /* the target up to '?' */
    http1_text query;   /* after '?', empty without one */
    http1_text version; /* "HTTP/1.0" or "HTTP/1.1" (or 1.2…) */
    int minor;
    size_t nfields;
    size_t body_len; /* Content-Length, 0 without one */
    int head_only;
} http1_request;

typedef struct http1_field {
    http1_text name;  /* as sent: compare without case */
    http1_text value; /* without the white space around it */
} http1_field;

void http1_init(http1_reader *r, size_t max);

/* Reads data[0..n), everything the client sent so far: n grows from call
 * to call and the bytes already given never change. Scans only what is
 * new; once the blank line ends the head, parses it (http1_parse) and from
 * then on only waits for the body. Returns 0 while more is needed,
 * HTTP1_COMPLETE once head and body are in (r->head_len, r->body_len:
 * bytes after them are not the request's), else the status to refuse the
 * request with. r->head_only is set from a valid request line on, even
 * when the rest is refused. */
int http1_feed(http1_reader *r, const char *data, size_t n);

/* Parses a whole head, head[0..len) including its blank line; 0 and *req,
 * or the status to refuse it with. The same checks as http1_feed, so any
 * bytes may be given. A Content-Length above max is 413. */
int http1_parse(const char *head, size_t len, size_t max, http1_request *req);

/* The header fields of a head that http1_parse accepted, in order: *pos
 * starts at 0; returns 1 with the next field in *f, 0 after the last. */
int http1_next_field(const char *head, size_t len, size_t *pos, http1_field *f);

/* RFC 9110 tokens (method, field names): one or more tchars. */
int http1_is_token(const char *s, size_t n);
/* A field value a server accepts or sends: tab and visible bytes (obs-text
 * included), no other control character. */
int http1_is_field_value(const char *s, size_t n);
/* An origin-form target: "/" then visible ASCII. */
int http1_is_origin_target(const char *s, size_t n);

#endif
