/* RESP2 framing, caps, command encoding and cluster key slots (resp.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "resp.h"

/* A length or integer line holds at most a sign and 19 digits. */
#define NUMBER_LINE_MAX 20
/* The least bytes an element takes ("+\r\n"): an array whose elements
 * could not fit in what is left of max_reply is refused from its header. */
#define MIN_ELEMENT 3

void resp_default_limits(resp_limits *lim)
{
    lim->max_bulk = RESP_DEFAULT_MAX_BULK;
    lim->max_array = RESP_DEFAULT_MAX_ARRAY;
    lim->max_reply = RESP_DEFAULT_MAX_REPLY;
    lim->max_depth = RESP_DEFAULT_MAX_DEPTH;
}

void resp_scan_init(resp_scanner *s, const resp_limits *lim)
{
    s->lim = *lim;
    /* sums of positions and lengths then never wrap */
    if (s->lim.max_bulk > RESP_LIMIT_CEILING)
        s->lim.max_bulk = RESP_LIMIT_CEILING;
    if (s->lim.max_reply > RESP_LIMIT_CEILING)
        s->lim.max_reply = RESP_LIMIT_CEILING;
    if (s->lim.max_depth < 1)
        s->lim.max_depth = 1;
    if (s->lim.max_depth > RESP_DEPTH_CEILING)
        s->lim.max_depth = RESP_DEPTH_CEILING;
    s->pos = 0;
    s->scan = 0;
    s->depth = 0;
    s->verdict = RESP_MORE;
    s->why[0] = '\0';
}

static int refuse(resp_scanner *s, int verdict, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int refuse(resp_scanner *s, int verdict, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    s->verdict = verdict;
    return verdict;
}

/* A plain decimal: an optional '-' and 1 to 19 digits, within int64. */
static int parse_number(const char *p, size_t n, long long *out)
{
    size_t i = 0;
    unsigned long long v = 0, lim;
    int neg = 0;
    if (n > 0 && p[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n || n - i > 19)
        return 0;
    lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
    for (; i < n; i++) {
        unsigned d;
        if (p[i] < '0' || p[i] > '9')
            return 0;
        d = (unsigned)(p[i] - '0');
        if (v > (lim - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = neg ? (v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(long long)v) : (long long)v;
    return 1;
}

/* The element starting at s->pos is complete: close the arrays it ends. */
static int element_done(resp_scanner *s)
{
    while (s->depth > 0) {
        if (--s->left[s->depth - 1] > 0)
            return RESP_MORE;
        s->depth--;
    }
    s->verdict = RESP_DONE;
    return RESP_DONE;
}

/* Finds the CRLF ending the line whose text starts at start (a length or
 * integer when number, else a status or error text); the text ends at
 * *end. Returns 1 when found, else RESP_MORE or a refusal. */
static int find_line(resp_scanner *s, const char *buf, size_t n, size_t start, int number, size_t *end)
{
    size_t max = number ? NUMBER_LINE_MAX : s->lim.max_bulk;
    size_t i = s->scan > start ? s->scan : start;
    for (; i < n; i++) {
        if (buf[i] == '\r')
            break;
        if (buf[i] == '\n')
            return refuse(s, RESP_BAD, "a line feed without a carriage return at byte %zu", i);
        if (i - start >= max) {
            if (number)
                return refuse(s, RESP_BAD, "a length or integer longer than %zu characters", max);
            return refuse(s, RESP_TOO_BIG, "a status or error line longer than %zu bytes", max);
        }
    }
    s->scan = i;
    if (i + 1 >= n)
        return RESP_MORE;
    if (buf[i + 1] != '\n')
        return refuse(s, RESP_BAD, "a carriage return without a line feed at byte %zu", i);
    *end = i;
    return 1;
}

static int scan_one(resp_scanner *s, const char *buf, size_t n)
{
    size_t start = s->pos, end = 0, next;
    long long v;
    int r;
    char type = buf[start];
    if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*')
        return refuse(s, RESP_BAD, "an unknown reply type byte 0x%02llx at byte %lld", (long long)(unsigned char)type,
                      (long long)start);
    r = find_line(s, buf, n, start + 1, type != '+' && type != '-', &end);
    if (r != 1)
        return r;
    next = end + 2;
    if (type == '+' || type == '-') {
        s->pos = next;
        s->scan = 0;
        return element_done(s);
    }
    if (!parse_number(buf + start + 1, end - start - 1, &v))
        return refuse(s, RESP_BAD, "a length or integer that is not a plain decimal number at byte %lld",
                      (long long)start);
    if (type == '*' && v == 0 && s->depth >= s->lim.max_depth) /* empty, but an array all the same */
        return refuse(s, RESP_TOO_BIG, "arrays nested deeper than %d", s->lim.max_depth);
    if (type == ':' || v == -1 || (type == '*' && v == 0)) {
        s->pos = next;
        s->scan = 0;
        return element_done(s);
    }
    if (v < 0)
        return refuse(s, RESP_BAD, "a negative length %lld at byte %lld", v, (long long)start);
    if (type == '$') {
        size_t total;
        if ((unsigned long long)v > s->lim.max_bulk)
            return refuse(s, RESP_TOO_BIG, "a bulk string of %lld bytes, over the cap of %lld", v,
                          (long long)s->lim.max_bulk);
        total = next + (size_t)v + 2;
        if (total > s->lim.max_reply)
            return refuse(s, RESP_TOO_BIG, "a reply of %lld bytes or more, over the cap of %lld", (long long)total,
                          (long long)s->lim.max_reply);
        if (n < total)
            return RESP_MORE; /* the header is read again, cheaply, when more arrives */
        if (buf[total - 2] != '\r' || buf[total - 1] != '\n')
            return refuse(s, RESP_BAD, "a bulk string not followed by CRLF at byte %lld", (long long)(total - 2));
        s->pos = total;
        s->scan = 0;
        return element_done(s);
    }
    /* '*' with v > 0 */
    if ((unsigned long long)v > s->lim.max_array)
        return refuse(s, RESP_TOO_BIG, "an array of %lld elements, over the cap of %lld", v,
                      (long long)s->lim.max_array);
    if (next > s->lim.max_reply || (unsigned long long)v > (s->lim.max_reply - next) / MIN_ELEMENT)
        return refuse(s, RESP_TOO_BIG, "an array of %lld elements, more than a reply of %lld bytes can hold", v,
                      (long long)s->lim.max_reply);
    if (s->depth >= s->lim.max_depth)
        return refuse(s, RESP_TOO_BIG, "arrays nested deeper than %d", s->lim.max_depth);
    s->left[s->depth++] = v;
    s->pos = next;
    s->scan = 0;
    return RESP_MORE;
}

int resp_scan(resp_scanner *s, const char *buf, size_t n)
{
    /* Bytes past the cap are not looked at: the verdict then depends only
     * on the first max_reply + 1 bytes, never on how they arrived. */
    if (n > s->lim.max_reply + 1)
        n = s->lim.max_reply + 1;
    while (s->verdict == RESP_MORE) {
        size_t before = s->pos;
        if (s->pos < n)
            scan_one(s, buf, n);
        if (s->pos > s->lim.max_reply)
            return refuse(s, RESP_TOO_BIG, "a reply of %llu bytes or more, over the cap of %zu",
                          (unsigned long long)s->pos, s->lim.max_reply);
        if (s->verdict != RESP_MORE)
            break;
        if (s->pos == before || s->pos >= n) {
            /* waiting for bytes: all that came after the reply's start
             * belongs to it, so they count against its cap now */
            if (n > s->lim.max_reply)
                return refuse(s, RESP_TOO_BIG, "a reply of %zu bytes or more, over the cap of %zu", n,
                              s->lim.max_reply);
            return RESP_MORE;
        }
    }
    return s->verdict;
}

int resp_item_at(const char *buf, size_t len, size_t *pos, resp_item *it)
{
    size_t start = *pos, i;
    long long v;
    if (start >= len)
        return 0;
    it->type = buf[start];
    it->nil = 0;
    it->p = NULL;
    it->n = 0;
    it->integer = 0;
    for (i = start + 1; i < len && buf[i] != '\r'; i++)
        ;
    if (i + 1 >= len || buf[i + 1] != '\n')
        return 0;
    switch (it->type) {
    case '+':
    case '-':
        it->p = buf + start + 1;
        it->n = i - start - 1;
        *pos = i + 2;
        return 1;
    case ':':
    case '$':
    case '*':
        if (!parse_number(buf + start + 1, i - start - 1, &v))
            return 0;
        break;
    default:
        return 0;
    }
    *pos = i + 2;
    if (it->type == ':') {
        it->integer = v;
        return 1;
    }
    if (v == -1) {
        it->nil = 1;
        return 1;
    }
    if (v < 0)
        return 0;
    if (it->type == '*') {
        it->n = (size_t)v;
        return 1;
    }
    if ((unsigned long long)v > len - *pos || len - *pos - (size_t)v < 2)
        return 0;
    it->p = buf + *pos;
    it->n = (size_t)v;
    *pos += (size_t)v + 2;
    return 1;
}

/* Decimal digits of n. */
static size_t digits(size_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

size_t resp_command_size(size_t argc, const size_t *lens)
{
    size_t total = 1 + digits(argc) + 2, i;
    for (i = 0; i < argc; i++) {
        size_t one = 1 + digits(lens[i]) + 2 + 2;
        if (lens[i] > (size_t)-1 - one || total > (size_t)-1 - one - lens[i])
            return 0;
        total += one + lens[i];
    }
    return total;
}

static size_t put_header(char *out, char type, size_t n)
{
    size_t d = digits(n), k;
    out[0] = type;
    for (k = d; k > 0; k--) {
        out[k] = (char)('0' + n % 10);
        n /= 10;
    }
    out[d + 1] = '\r';
    out[d + 2] = '\n';
    return d + 3;
}

size_t resp_encode_command(char *out, size_t argc, const char *const *argv, const size_t *lens)
{
    size_t w = put_header(out, '*', argc), i;
    for (i = 0; i < argc; i++) {
        w += put_header(out + w, '$', lens[i]);
        if (lens[i])
            memcpy(out + w, argv[i], lens[i]);
        w += lens[i];
        out[w++] = '\r';
        out[w++] = '\n';
    }
    return w;
}

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the cluster's hash. */
static unsigned crc16(const char *p, size_t n)
{
    unsigned crc = 0;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= (unsigned)(unsigned char)p[i] << 8;
        for (b = 0; b < 8; b++)
            crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc;
}

unsigned resp_key_slot(const char *key, size_t n)
{
    const char *open = memchr(key, '{', n);
    if (open) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', n - from);
        if (close && close > key + from)
            return crc16(key + from, (size_t)(close - key) - from) & 16383;
    }
    return crc16(key, n) & 16383;
}
