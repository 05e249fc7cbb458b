/* The HTTP/1.x request reader (http1.h): bytes in, a verdict out. */
#include <stdint.h>
#include <string.h>

#include "http1.h"

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int http1_is_token(const char *s, size_t n)
{
    size_t i;
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return 0;
    return 1;
}

int http1_is_field_value(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
    }
    return 1;
}

/* Only origin-form ("/path?query"): absolute-form is for proxies and "*"
 * for server-wide OPTIONS, neither of which a redirect uses. Any visible
 * ASCII is let through, since browsers differ in what they escape. */
int http1_is_origin_target(const char *s, size_t n)
{
    size_t i;
    if (n == 0 || s[0] != '/')
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* Field names compare without case; lower is in lower case. */
static int name_is(const http1_text *t, const char *lower)
{
    size_t i, n = strlen(lower);
    if (t->n != n)
        return 0;
    for (i = 0; i < n; i++) {
        char c = t->p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lower[i])
            return 0;
    }
    return 1;
}

/* The request line p[0..n) (without its CRLF), checked as soon as it is
 * complete so that HTTP/0.9 or garbage is refused without waiting for
 * fields that will never come. 0 and its parts in req, or the status to
 * refuse it with. */
static int request_line(const char *p, size_t n, http1_request *req)
{
    const char *sp1 = memchr(p, ' ', n), *sp2, *v, *q;
    if (sp1 == NULL || !http1_is_token(p, (size_t)(sp1 - p)))
        return 400;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1));
    if (sp2 == NULL) /* "GET /": HTTP/0.9, which has no status line to answer with */
        return 400;
    if (!http1_is_origin_target(sp1 + 1, (size_t)(sp2 - sp1 - 1)))
        return 400;
    v = sp2 + 1;
    if (p + n - v != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' ||
        v[7] > '9')
        return 400;
    if (v[5] != '1')
        return 505;
    req->method.p = p;
    req->method.n = (size_t)(sp1 - p);
    req->target.p = sp1 + 1;
    req->target.n = (size_t)(sp2 - sp1 - 1);
    q = memchr(req->target.p, '?', req->target.n);
    req->path.p = req->target.p;
    req->path.n = q ? (size_t)(q - req->target.p) : req->target.n;
    req->query.p = q ? q + 1 : sp2;
    req->query.n = q ? (size_t)(sp2 - q - 1) : 0;
    req->version.p = v;
    req->version.n = 8;
    req->minor = v[7] - '0';
    req->head_only = req->method.n == 4 && memcmp(p, "HEAD", 4) == 0;
    return 0;
}

/* Scans data[r->scan..n) for line ends until the blank line that ends the
 * head (then r->head_len is set). 0, or the status to refuse with. */
static int scan(http1_reader *r, const char *data, size_t n)
{
    size_t i;
    for (i = r->scan; i < n && r->head_len == 0; i++) {
        unsigned char ch = (unsigned char)data[i];
        /* CR only as part of CRLF: a bare CR or LF is read as a line end
         * by some parsers and not by others. */
        if (i > 0 && data[i - 1] == '\r' && ch != '\n')
            return 400;
        if (ch == 0)
            return 400;
        if (ch != '\n')
            continue;
        if (i == 0 || data[i - 1] != '\r')
            return 400;
        if (i - 1 == r->line_start) { /* the blank line */
            if (r->nlines == 0)
                return 400;
            r->head_len = i + 1;
            break;
        }
        if (r->nlines == 0) {
            http1_request req;
            int st = request_line(data + r->line_start, i - 1 - r->line_start, &req);
            if (st)
                return st;
        }
        r->nlines++;
        r->line_start = i + 1;
    }
    r->scan = i;
    return 0;
}

/* The field line at head[*pos..] of a head whose lines scan() checked (a
 * *pos of 0 skips the request line): 1 with *f and *pos past its CRLF, 0
 * at the blank line, or minus the status to refuse the line with. */
static int field_line(const char *head, size_t len, size_t *pos, http1_field *f)
{
    const char *end = head + len - 2, *p, *eol, *colon, *v, *ve;
    if (len < 4) /* not even a request line and a blank line */
        return -400;
    if (*pos == 0) {
        if ((p = memchr(head, '\r', len)) == NULL)
            return -400;
        *pos = (size_t)(p - head) + 2;
    }
    p = head + *pos;
    if (p >= end)
        return 0;
    /* NULL only in bytes that scan() did not check, which is misuse */
    if ((eol = memchr(p, '\r', (size_t)(end - p))) == NULL)
        return -400;
    /* obs-fold: RFC 9112 lets a server refuse it, and we do */
    if (*p == ' ' || *p == '\t')
        return -400;
    colon = memchr(p, ':', (size_t)(eol - p));
    if (colon == NULL || !http1_is_token(p, (size_t)(colon - p)))
        return -400; /* also "Name :", which smuggling relies on */
    v = colon + 1;
    ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    if (!http1_is_field_value(v, (size_t)(ve - v)))
        return -400;
    f->name.p = p;
    f->name.n = (size_t)(colon - p);
    f->value.p = v;
    f->value.n = (size_t)(ve - v);
    *pos = (size_t)(eol + 2 - head);
    return 1;
}

/* One plain decimal, once: anything else is how requests get smuggled past
 * a parser that reads it differently. 0 with *len, or the status. */
static int content_length(const http1_text *v, size_t max, size_t *len)
{
    size_t i, n = 0;
    if (v->n == 0)
        return 400;
    for (i = 0; i < v->n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return 400;
        if (n <= max)
            n = n * 10 + (size_t)(v->p[i] - '0');
    }
    *len = n;
    return n > max ? 413 : 0;
}

int http1_parse(const char *head, size_t len, size_t max, http1_request *req)
{
    http1_reader r;
    http1_field f;
    size_t pos = 0;
    int st, hosts = 0, lengths = 0;
    memset(req, 0, sizeof *req);
    if (max > SIZE_MAX / 16) /* so that content_length cannot overflow */
        max = SIZE_MAX / 16;
    http1_init(&r, max);
    if ((st = scan(&r, head, len)) != 0)
        return st;
    if (r.head_len == 0 || r.head_len != len) /* no blank line, or bytes after it */
        return 400;
    st = request_line(head, (size_t)((const char *)memchr(head, '\r', len) - head), req);
    if (st)
        return st;
    while ((st = field_line(head, len, &pos, &f)) == 1) {
        if (name_is(&f.name, "host")) {
            hosts++;
        } else if (name_is(&f.name, "content-length")) {
            if (++lengths > 1)
                return 400;
            if ((st = content_length(&f.value, max, &req->body_len)) != 0)
                return st;
        } else if (name_is(&f.name, "transfer-encoding")) {
            return 501; /* no chunked bodies: a redirect has no body at all */
        }
        req->nfields++;
    }
    if (st < 0)
        return -st;
    /* RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one before. */
    if (hosts > 1 || (req->minor >= 1 && hosts == 0))
        return 400;
    return 0;
}

int http1_next_field(const char *head, size_t len, size_t *pos, http1_field *f)
{
    return field_line(head, len, pos, f) == 1;
}

void http1_init(http1_reader *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->max = max;
}

int http1_feed(http1_reader *r, const char *data, size_t n)
{
    if (r->refused)
        return r->refused;
    if (r->head_len == 0) {
        http1_request req;
        int st = scan(r, data, n);
        if (st == 0 && r->head_len) {
            st = http1_parse(data, r->head_len, r->max, &req);
            r->head_only = req.head_only;
            r->body_len = st ? 0 : req.body_len;
        }
        if (st)
            return r->refused = st;
    }
    if (r->head_len) {
        if (r->head_len + r->body_len > r->max)
            return r->refused = 413;
        if (n >= r->head_len + r->body_len)
            return HTTP1_COMPLETE;
    }
    if (n > r->max)
        return r->refused = 413;
    return 0;
}
