/* RESP2, the Redis protocol, over bytes alone: no sockets, no Lua, no
 * allocation. The Redis client (redis.c) scans what a connection received
 * so far until a reply is complete, then walks it; fuzz/fuzz_resp.c feeds
 * the scanner anything.
 *
 * A server is untrusted (a compromised or rogue one, or a man in the middle
 * on plain TCP): nothing a reply announces is ever allocated. The scanner
 * only checks framing and caps, so the reader grows its buffer with the
 * bytes that actually arrive, and a header that announces more than a cap
 * allows is refused as soon as the header is in, before any of its data:
 *   - a bulk string's length (max_bulk; also caps status and error lines),
 *   - an array's element count (max_array; and at least 3 bytes per
 *     element must still fit in max_reply),
 *   - the nesting of arrays (max_depth),
 *   - the bytes of the whole reply (max_reply).
 * Strict on the rest: CR only in CRLF, lengths are plain decimal, negative
 * lengths other than -1 (nil) are refused, a bulk string must end in CRLF,
 * only the five RESP2 types. */
#ifndef MSAL_RESP_H
#define MSAL_RESP_H

#include <stddef.h>
#include <stdint.h>

/* The ceiling of max_depth: the scanner's stack is this deep. */
#define RESP_DEPTH_CEILING 64

/* The ceiling of max_bulk and max_reply (Redis's own string limit is 512
 * MiB). */
#define RESP_LIMIT_CEILING ((size_t)1 << 30)

/* What resp_scan returns. */
#define RESP_MORE 0  /* the reply is not all in yet */
#define RESP_DONE 1  /* complete: scanner.pos is its length */
#define RESP_BAD (-1)   /* not RESP2: scanner.why says where */
#define RESP_TOO_BIG (-2) /* over a cap: scanner.why names it */

typedef struct resp_limits {
    size_t max_bulk;  /* bytes of a bulk string, status or error line */
    size_t max_array; /* elements of one array */
    size_t max_reply; /* bytes of one whole reply */
    int max_depth;    /* arrays within arrays, 1..RESP_DEPTH_CEILING */
} resp_limits;

/* The defaults the client uses: the token cache stores a partition's JSON
 * (kilobytes) per key, so 32 MiB per string and 64 MiB per reply are far
 * above any real need and far below what hurts (Redis itself allows 512
 * MiB strings). An array of a million elements is a big SCAN page; 16
 * levels leave room for CLUSTER SLOTS (3) and replies inside EXEC. */
#define RESP_DEFAULT_MAX_BULK ((size_t)32 << 20)
#define RESP_DEFAULT_MAX_ARRAY ((size_t)1 << 20)
#define RESP_DEFAULT_MAX_REPLY ((size_t)64 << 20)
#define RESP_DEFAULT_MAX_DEPTH 16

void resp_default_limits(resp_limits *lim);

/* The scanning of one reply, from its first byte on. Feed it the same
 * bytes again with more appended until it answers; the answer then stays. */
typedef struct resp_scanner {
    resp_limits lim;
    size_t pos;   /* where the next element starts; the length once done */
    size_t scan;  /* how far the current line was searched for its CR */
    int depth;    /* arrays open */
    int verdict;  /* RESP_MORE until answered */
    int64_t left[RESP_DEPTH_CEILING]; /* elements still due in each open array */
    char why[128]; /* why it was refused (the library's words and numbers only) */
} resp_scanner;

/* lim's max_depth is clamped to 1..RESP_DEPTH_CEILING, max_bulk and
 * max_reply to RESP_LIMIT_CEILING. */
void resp_scan_init(resp_scanner *s, const resp_limits *lim);
/* Scans buf[0..n): the reply starts at buf[0] and n only grows between
 * calls. Returns RESP_MORE, RESP_DONE, RESP_BAD or RESP_TOO_BIG. */
int resp_scan(resp_scanner *s, const char *buf, size_t n);

/* One element of a reply that resp_scan accepted. */
typedef struct resp_item {
    char type;        /* '+' status, '-' error, ':' integer, '$' bulk, '*' array */
    int nil;          /* "$-1" or "*-1" */
    const char *p;    /* the text of a status, error or bulk string */
    size_t n;         /* its length; an array's element count */
    long long integer;
} resp_item;

/* The element at *pos of buf[0..len) (a reply resp_scan accepted), moving
 * *pos past its header, and past its text for strings (an array's elements
 * follow it). Returns 1, or 0 when the bytes are not such an element (it
 * defends itself all the same). */
int resp_item_at(const char *buf, size_t len, size_t *pos, resp_item *it);

/* Bytes resp_encode_command writes for these arguments; 0 when that does
 * not fit in a size_t. */
size_t resp_command_size(size_t argc, const size_t *lens);
/* Writes the command as a RESP array of bulk strings into out (room for
 * resp_command_size bytes); returns the bytes written. */
size_t resp_encode_command(char *out, size_t argc, const char *const *argv, const size_t *lens);

/* The Redis Cluster slot (0..16383) of a key: CRC16 (XMODEM) of the key,
 * or of its hash tag, the text between the first '{' and the next '}' when
 * that is not empty. */
unsigned resp_key_slot(const char *key, size_t n);

#endif
