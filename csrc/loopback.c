/* msal.core.loopback: the one-shot HTTP listener a native app opens on the
 * loopback interface to receive the browser's authorization redirect
 * (RFC 8252 §7.3). It is pollable like the http multi (pollfd/step), and
 * deliberately small: it accepts connections, reads one HTTP/1.x request
 * per connection under a size cap and a deadline, hands well-formed
 * requests to Lua (take) and writes the answer Lua gives (respond), then
 * closes the connection. Whether a request carries the right state or a
 * code is the Lua flow's business, not this file's.
 *
 * Lua face: listen{host, port, path, max_request_bytes, request_timeout_ms}
 * -> listener | nil, message, code; listener methods port, pollfd, events,
 * timeout, step, take, respond, stop, pending, close (also __gc, __close).
 * pollfd() covers the listening and the connection sockets; a request
 * waiting for take() and the connection deadlines show in timeout().
 *
 * Everything a client sends is untrusted, even on loopback: any local
 * process (or a web page, through the browser) can connect. Hence the
 * strict reader (http1.c, fuzzed on its own: fuzz/fuzz_http1.c), the caps
 * on bytes, time and connections, and no fixed-size buffer ever holding
 * client data. This file keeps the sockets and the Lua face. */
#define _GNU_SOURCE /* accept4: non-blocking, close-on-exec sockets in one call */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "buf.h"
#include "clock.h"
#include "compat.h"
#include "core.h"
#include "http1.h"
#include "poller.h"

#define LISTENER_MT "msal.loopback.listener"

#define DEF_MAX_REQUEST 16384
#define DEF_TIMEOUT_MS 5000
#define MAX_CONNS 16       /* a browser needs a handful; past that the oldest unfinished goes */
#define BACKLOG 8
#define ACCEPTS_PER_STEP 32 /* so a flood of connects cannot starve the rest */
#define EVENTS_PER_STEP 32
#define READ_CHUNK 4096
/* After the response: how long to wait for the client to close first (so
 * the TIME_WAIT lands on its side and a fixed port can be reused at once),
 * then, after our FIN, how long to keep draining its leftovers so that
 * closing does not reset the connection before it read the response. */
#define CLOSE_GRACE_MS 500
#define DRAIN_MAX ((size_t)1 << 20)
#define LOCALHOST_TRIES 16

enum { C_READ, C_QUEUED, C_WRITE, C_DRAIN };

typedef struct conn {
    struct conn *next; /* accept order */
    int fd;
    int state;
    lua_Integer id;
    int taken;     /* take() has handed the request over */
    uint64_t qseq; /* completion order, which take() follows */
    int64_t deadline;
    msal_buf in;
    http1_reader rd; /* reads the request in `in` */
    msal_buf out;
    size_t out_off;
    int fin_now; /* send our FIN right after the answer: a refusal */
    int shut;    /* our FIN is sent */
    size_t drained;
} conn;

typedef struct listener {
    int open;
    int lfd[2];
    int nlfd;
    int port;
    msal_poller poller;
    conn *conns;
    int nconns;
    int nqueued; /* complete, not yet taken */
    lua_Integer next_id;
    uint64_t next_qseq;
    size_t max_request;
    int timeout_ms;
    char *path; /* requests for other paths get 404 here; NULL: all go to Lua */
} listener;

/* ---- connections ---- */

static void conn_close(listener *ls, conn *c)
{
    conn **pp = &ls->conns;
    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
    if (c->state == C_QUEUED && !c->taken)
        ls->nqueued--;
    poller_unwatch(&ls->poller, c->fd);
    (void)close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    free(c);
    ls->nconns--;
}

/* The connection on that fd, or with that id (-1: any): ids start at 1. */
static conn *find_conn(listener *ls, int fd, lua_Integer id)
{
    conn *c = ls->conns;
    while (c && c->fd != fd && c->id != id)
        c = c->next;
    return c;
}

static void close_listening(listener *ls)
{
    int i;
    for (i = 0; i < ls->nlfd; i++) {
        poller_unwatch(&ls->poller, ls->lfd[i]);
        (void)close(ls->lfd[i]);
        ls->lfd[i] = -1;
    }
    ls->nlfd = 0;
}

static void listener_free(listener *ls)
{
    if (!ls->open)
        return;
    while (ls->conns)
        conn_close(ls, ls->conns);
    close_listening(ls);
    poller_close(&ls->poller);
    free(ls->path);
    ls->path = NULL;
    ls->open = 0;
}

/* ---- writing ---- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

static void start_drain(listener *ls, conn *c)
{
    c->state = C_DRAIN;
    c->shut = 0;
    c->drained = 0;
    c->deadline = msal_now_ms() + CLOSE_GRACE_MS;
    buf_free(&c->out);
    /* Who is refused gets no courtesy wait: a TIME_WAIT of ours matters
     * only for the one redirect that ends the flow. */
    if (c->fin_now) {
        (void)shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
    if (poller_watch(&ls->poller, c->fd, POLLER_IN) != 0)
        conn_close(ls, c);
}

/* Sends what it can; the rest waits for the socket to be writable. */
static void flush(listener *ls, conn *c)
{
    while (c->out_off < c->out.n) {
        ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.n - c->out_off, MSG_NOSIGNAL);
        if (w >= 0) {
            c->out_off += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (poller_watch(&ls->poller, c->fd, POLLER_OUT) != 0)
                conn_close(ls, c);
            return;
        }
        conn_close(ls, c); /* the client went away: nothing more to do for it */
        return;
    }
    start_drain(ls, c);
}

/* Queues the whole response in c->out and starts sending it. */
static void begin_response(listener *ls, conn *c)
{
    if (c->out.oom) {
        conn_close(ls, c);
        return;
    }
    if (c->state == C_QUEUED && !c->taken)
        ls->nqueued--;
    c->state = C_WRITE;
    c->out_off = 0;
    c->deadline = msal_now_ms() + ls->timeout_ms;
    flush(ls, c);
}

static void add_status_line(msal_buf *b, int status)
{
    char line[64];
    int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason(status));
    buf_add(b, line, (size_t)n);
}

static void add_framing(msal_buf *b, size_t body_n)
{
    char line[64];
    int n = snprintf(line, sizeof line, "Content-Length: %lu\r\nConnection: close\r\n\r\n", (unsigned long)body_n);
    buf_add(b, line, (size_t)n);
}

/* The listener's own refusals: a short text body, then close. */
static void refuse(listener *ls, conn *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    buf_free(&c->out);
    c->fin_now = 1;
    add_status_line(&c->out, status);
    buf_adds(&c->out, "Content-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n");
    add_framing(&c->out, (size_t)n);
    if (!c->rd.head_only)
        buf_add(&c->out, body, (size_t)n);
    begin_response(ls, c);
}

/* ---- reading ---- */

static int path_matches(listener *ls, conn *c)
{
    http1_request rq;
    size_t pn = strlen(ls->path);
    (void)http1_parse(c->in.p, c->rd.head_len, ls->max_request, &rq); /* accepted by http1_feed */
    return rq.path.n == pn && memcmp(rq.path.p, ls->path, pn) == 0;
}

static void on_request(listener *ls, conn *c)
{
    if (ls->path && !path_matches(ls, c)) {
        refuse(ls, c, 404);
        return;
    }
    /* Nothing more is read from it: unwatched, a client that closes now
     * cannot make every wait return at once (level-triggered). */
    poller_unwatch(&ls->poller, c->fd);
    c->state = C_QUEUED;
    c->qseq = ls->next_qseq++;
    c->deadline = -1; /* Lua owns the answer from here */
    ls->nqueued++;
}

static void on_readable(listener *ls, conn *c)
{
    for (;;) {
        /* One byte past the cap is enough to know it was passed. */
        size_t room = ls->max_request + 1 - c->in.n, want = room < READ_CHUNK ? room : READ_CHUNK;
        ssize_t r;
        int st;
        if (!buf_reserve(&c->in, want)) {
            conn_close(ls, c);
            return;
        }
        r = recv(c->fd, c->in.p + c->in.n, want, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(ls, c);
            return;
        }
        if (r == 0) { /* gone before finishing its request */
            conn_close(ls, c);
            return;
        }
        c->in.n += (size_t)r;
        st = http1_feed(&c->rd, c->in.p, c->in.n);
        if (st == HTTP1_COMPLETE) {
            on_request(ls, c);
            return;
        }
        if (st) {
            refuse(ls, c, st);
            return;
        }
    }
}

static void on_drain(listener *ls, conn *c)
{
    for (;;) {
        ssize_t r;
        c->in.n = 0;
        if (!buf_reserve(&c->in, READ_CHUNK)) {
            conn_close(ls, c);
            return;
        }
        r = recv(c->fd, c->in.p, c->in.cap, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0 || (c->drained += (size_t)r) > DRAIN_MAX) {
            conn_close(ls, c);
            return;
        }
    }
}

static int is_loopback_peer(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return 0;
}

/* Makes room for a new connection by closing the oldest one whose request
 * is still incomplete (idle or half sent). Any local process can connect:
 * one that holds every slot with unfinished requests must not lock the
 * browser's redirect out, and the browser's own request, once complete, is
 * never the one closed. 0 when every connection has a complete request. */
static int evict_oldest_unfinished(listener *ls)
{
    conn *c;
    for (c = ls->conns; c; c = c->next) {
        if (c->state == C_READ) {
            conn_close(ls, c);
            return 1;
        }
    }
    return 0;
}

static void accept_some(listener *ls, int lfd)
{
    int i;
    for (i = 0; i < ACCEPTS_PER_STEP; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        conn *c, **pp;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: all taken; EMFILE and the like: next step */
        }
        /* The bind already keeps remote peers out; this holds even if the
         * host routes oddly (route_localnet). */
        if (!is_loopback_peer(&sa) || (ls->nconns >= MAX_CONNS && !evict_oldest_unfinished(ls)) ||
            (c = calloc(1, sizeof *c)) == NULL) {
            (void)close(fd);
            continue;
        }
        c->fd = fd;
        c->state = C_READ;
        c->id = ls->next_id++;
        c->deadline = msal_now_ms() + ls->timeout_ms;
        buf_init(&c->in);
        buf_init(&c->out);
        http1_init(&c->rd, ls->max_request);
        if (poller_watch(&ls->poller, fd, POLLER_IN) != 0) {
            (void)close(fd);
            free(c);
            continue;
        }
        for (pp = &ls->conns; *pp; pp = &(*pp)->next)
            ;
        *pp = c;
        ls->nconns++;
    }
}

static void expire(listener *ls, int64_t now)
{
    conn *c = ls->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->deadline < 0 || now < c->deadline)
            continue;
        if (c->state == C_READ) {
            /* Silence for a connection that never said anything: browsers
             * open spare ones and an unasked-for 408 only confuses them. */
            if (c->in.n == 0)
                conn_close(ls, c);
            else
                refuse(ls, c, 408);
        } else if (c->state == C_DRAIN && !c->shut) {
            (void)shutdown(c->fd, SHUT_WR);
            c->shut = 1;
            c->deadline = now + CLOSE_GRACE_MS;
        } else {
            conn_close(ls, c);
        }
    }
}

/* ---- the Lua face ---- */

static listener *check_listener(lua_State *L)
{
    listener *ls = luaL_checkudata(L, 1, LISTENER_MT);
    if (!ls->open)
        luaL_error(L, "loopback listener is closed");
    return ls;
}

static lua_Integer opt_int(lua_State *L, int t, const char *name, lua_Integer def, lua_Integer lo,
                           lua_Integer hi)
{
    lua_Number v;
    if (!msal_opt_number(L, t, name, &v))
        return def;
    if (!(v >= (lua_Number)lo && v <= (lua_Number)hi) || v != (lua_Number)(lua_Integer)v)
        luaL_error(L, "'%s' must be an integer between %d and %d", name, (int)lo, (int)hi);
    return (lua_Integer)v;
}

/* A listening socket on family's loopback address; 0 or an errno. */
static int open_socket(int family, int port, int *out_fd, int *out_port)
{
    struct sockaddr_storage sa;
    socklen_t sl;
    int fd, e, one = 1;
    memset(&sa, 0, sizeof sa);
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    /* No SO_REUSEADDR: a port someone else holds must fail, not be shared. */
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons((uint16_t)port);
        sl = sizeof *in6;
        /* ::1 only, never the v4-mapped space of some other socket */
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
            goto fail;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)&sa;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((uint16_t)port);
        sl = sizeof *in;
    }
    if (bind(fd, (struct sockaddr *)&sa, sl) != 0 || listen(fd, BACKLOG) != 0)
        goto fail;
    sl = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        goto fail;
    *out_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&sa)->sin6_port
                                         : ((struct sockaddr_in *)(void *)&sa)->sin_port);
    *out_fd = fd;
    return 0;
fail:
    e = errno;
    (void)close(fd);
    return e;
}

/* "localhost" is 127.0.0.1 and, where the kernel has IPv6, ::1 on the same
 * port: a browser may try either, and a ::1 port left to someone else would
 * hand them the authorization code. 0 or an errno. */
static int open_localhost(listener *ls, int port)
{
    int tries, e = EADDRINUSE;
    for (tries = 0; tries < (port == 0 ? LOCALHOST_TRIES : 1); tries++) {
        int p4, p6;
        e = open_socket(AF_INET, port, &ls->lfd[0], &p4);
        if (e)
            return e;
        ls->nlfd = 1;
        ls->port = p4;
        e = open_socket(AF_INET6, p4, &ls->lfd[1], &p6);
        if (e == 0) {
            ls->nlfd = 2;
            return 0;
        }
        if (e == EADDRNOTAVAIL || e == EAFNOSUPPORT)
            return 0; /* no IPv6 loopback: 127.0.0.1 is all localhost can be */
        close_listening(ls);
        if (e != EADDRINUSE)
            return e;
    }
    return e;
}

/***
 * Opens the listener. With a path, requests for any other path are
 * answered 404 here and never reach Lua. Bad option types raise.
 * @function listen
 * @tparam table opts `{host = "127.0.0.1" | "::1" | "localhost", port = 0,
 *   path, max_request_bytes = 16384, request_timeout_ms = 5000}`
 * @treturn userdata the listener: `port`, `pollfd`, `events`, `timeout`,
 *   `step`, `take`, `respond`, `stop`, `pending`, `close`
 * @return or nil, message, code (core.h): EINVAL for any other host, else
 *   the errno of the socket calls: EADDRINUSE (the port is taken), EACCES,
 *   EADDRNOTAVAIL or EAFNOSUPPORT (no such loopback address)…
 */
static int l_listen(lua_State *L)
{
    const char *host = "127.0.0.1", *path = NULL;
    lua_Integer port, max_request, timeout_ms;
    listener *ls;
    int e, i;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "host");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "'host' must be a string");
        host = lua_tostring(L, -1);
    }
    port = opt_int(L, 1, "port", 0, 0, 65535);
    max_request = opt_int(L, 1, "max_request_bytes", DEF_MAX_REQUEST, 256, 1 << 24);
    timeout_ms = opt_int(L, 1, "request_timeout_ms", DEF_TIMEOUT_MS, 1, 24 * 3600 * 1000);
    lua_getfield(L, 1, "path");
    if (!lua_isnil(L, -1)) {
        size_t n;
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "'path' must be a string");
        path = lua_tolstring(L, -1, &n);
        if (!http1_is_origin_target(path, n) || memchr(path, '?', n) || memchr(path, '#', n))
            return luaL_error(L, "'path' must be an absolute path without query or fragment");
    }
    if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0 && strcmp(host, "localhost") != 0)
        return msal_push_error(L, "EINVAL", "refusing to listen on '%s': only 127.0.0.1, ::1 and localhost", host);

    ls = lua_newuserdata(L, sizeof *ls);
    memset(ls, 0, sizeof *ls);
    ls->lfd[0] = ls->lfd[1] = -1;
    ls->poller.fd = -1;
    ls->next_id = 1;
    ls->max_request = (size_t)max_request;
    ls->timeout_ms = (int)timeout_ms;
    luaL_setmetatable(L, LISTENER_MT);
    if (poller_open(&ls->poller) != 0) {
        e = errno;
        goto fail;
    }
    ls->open = 1; /* from here __gc frees what there is */
    if (path && (ls->path = strdup(path)) == NULL) {
        e = ENOMEM;
        goto fail;
    }
    if (strcmp(host, "localhost") == 0) {
        e = open_localhost(ls, (int)port);
    } else {
        e = open_socket(strcmp(host, "::1") == 0 ? AF_INET6 : AF_INET, (int)port, &ls->lfd[0], &ls->port);
        if (e == 0)
            ls->nlfd = 1;
    }
    if (e)
        goto fail;
    for (i = 0; i < ls->nlfd; i++)
        if (poller_watch(&ls->poller, ls->lfd[i], POLLER_IN) != 0) {
            e = errno;
            goto fail;
        }
    return 1;
fail:
    listener_free(ls);
    return msal_push_errno(L, e, "listen on %s port %d", host, (int)port);
}

static int64_t next_deadline(listener *ls)
{
    int64_t d = -1;
    conn *c;
    for (c = ls->conns; c; c = c->next)
        if (c->deadline >= 0 && (d < 0 || c->deadline < d))
            d = c->deadline;
    return d;
}

/***
 * Waits up to timeout_ms for socket activity (not past the next
 * connection deadline, not at all while a request waits), then accepts,
 * reads, writes and enforces the deadlines.
 * @function listener:step
 * @tparam[opt=0] number timeout_ms `math.huge`: no limit
 * @treturn integer the number of requests waiting for take()
 */
static int l_step(lua_State *L)
{
    listener *ls = check_listener(L);
    poller_event ev[EVENTS_PER_STEP];
    int n = msal_poll_step(L, &ls->poller, ev, EVENTS_PER_STEP, msal_step_wait(L, 2, ls->nqueued > 0, next_deadline(ls)));
    int i, j;
    for (i = 0; i < n; i++) {
        conn *c;
        int listening = 0;
        for (j = 0; j < ls->nlfd; j++)
            if (ev[i].fd == ls->lfd[j]) {
                accept_some(ls, ev[i].fd);
                listening = 1;
            }
        /* An fd closed earlier in this batch may be a new connection by
         * now; the worst a stale event does is a read that finds nothing. */
        if (listening || (c = find_conn(ls, ev[i].fd, -1)) == NULL)
            continue;
        if (c->state == C_READ && (ev[i].events & (POLLER_IN | POLLER_ERR)))
            on_readable(ls, c);
        else if (c->state == C_WRITE && (ev[i].events & (POLLER_OUT | POLLER_ERR)))
            flush(ls, c);
        else if (c->state == C_DRAIN && (ev[i].events & (POLLER_IN | POLLER_ERR)))
            on_drain(ls, c);
    }
    expire(ls, msal_now_ms());
    lua_pushinteger(L, ls->nqueued);
    return 1;
}

static void push_text(lua_State *L, http1_text t, const char *field)
{
    lua_pushlstring(L, t.p, t.n);
    lua_setfield(L, -2, field);
}

/* A field name as Lua sees it: lower case. */
static void push_lower(lua_State *L, http1_text t)
{
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < t.n; i++) {
        char ch = t.p[i];
        luaL_addchar(&b, ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch);
    }
    luaL_pushresult(&b);
}

/* The request table of c, whose request http1_feed accepted: header
 * names in lower case, repeated headers joined with ", ". */
static void push_request(lua_State *L, listener *ls, conn *c)
{
    http1_request rq;
    http1_field f;
    size_t pos = 0;
    int t;
    (void)http1_parse(c->in.p, c->rd.head_len, ls->max_request, &rq);
    lua_createtable(L, 0, 9);
    push_text(L, rq.method, "method");
    push_text(L, rq.target, "target");
    push_text(L, rq.path, "path");
    push_text(L, rq.query, "query");
    push_text(L, rq.version, "version");
    lua_pushinteger(L, c->id);
    lua_setfield(L, -2, "conn");
    lua_newtable(L);
    t = lua_gettop(L);
    while (http1_next_field(c->in.p, c->rd.head_len, &pos, &f)) {
        push_lower(L, f.name);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, f.value.p, f.value.n);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, f.value.p, f.value.n);
            lua_concat(L, 3);
        }
        lua_rawset(L, t);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, c->in.p + c->rd.head_len, rq.body_len);
    lua_setfield(L, -2, "body");
}

/***
 * The oldest complete request not yet taken.
 * @function listener:take
 * @treturn table `{method, target, path, query, version, headers (lower-case
 *   names, repeated ones joined with ", "), body, conn}`, or nil
 */
static int l_take(lua_State *L)
{
    listener *ls = check_listener(L);
    conn *c, *best = NULL;
    for (c = ls->conns; c; c = c->next)
        if (c->state == C_QUEUED && !c->taken && (best == NULL || c->qseq < best->qseq))
            best = c;
    if (best == NULL) {
        lua_pushnil(L);
        return 1;
    }
    push_request(L, ls, best);
    best->taken = 1;
    ls->nqueued--;
    return 1;
}

/***
 * Answers a taken request. Framing (Content-Length, Connection: close) is
 * the listener's; the connection closes after.
 * @function listener:respond
 * @tparam integer conn the request's `conn`
 * @tparam integer status 200 to 599
 * @tparam[opt] table headers names and values, strings
 * @tparam[opt] string body
 * @treturn boolean false when that connection is gone or already answered
 */
static int l_respond(lua_State *L)
{
    listener *ls = check_listener(L);
    lua_Integer id = luaL_checkinteger(L, 2), status = luaL_checkinteger(L, 3);
    size_t body_n = 0;
    const char *body = luaL_optlstring(L, 5, "", &body_n);
    conn *c;
    luaL_argcheck(L, status >= 200 && status <= 599, 3, "status must be between 200 and 599");
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            size_t kn, vn;
            const char *k, *v;
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "response headers must be string names and values");
            k = lua_tolstring(L, -2, &kn);
            v = lua_tolstring(L, -1, &vn);
            if (!http1_is_token(k, kn))
                return luaL_error(L, "invalid header name '%s'", k);
            if (strcasecmp(k, "content-length") == 0 || strcasecmp(k, "transfer-encoding") == 0 ||
                strcasecmp(k, "connection") == 0)
                return luaL_error(L, "header '%s' is set by the listener", k);
            if (!http1_is_field_value(v, vn))
                return luaL_error(L, "header '%s' contains a control character", k);
            lua_pop(L, 1);
        }
    }
    c = find_conn(ls, -1, id);
    if (c == NULL || c->state != C_QUEUED) {
        lua_pushboolean(L, 0);
        return 1;
    }
    buf_free(&c->out);
    add_status_line(&c->out, (int)status);
    if (!lua_isnoneornil(L, 4)) {
        lua_pushnil(L);
        while (lua_next(L, 4)) {
            size_t kn, vn;
            const char *k = lua_tolstring(L, -2, &kn), *v = lua_tolstring(L, -1, &vn);
            buf_add(&c->out, k, kn);
            buf_add(&c->out, ": ", 2);
            buf_add(&c->out, v, vn);
            buf_add(&c->out, "\r\n", 2);
            lua_pop(L, 1);
        }
    }
    add_framing(&c->out, body_n);
    if (!c->rd.head_only)
        buf_add(&c->out, body, body_n);
    begin_response(ls, c);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * No new connections (the port is released at once), and drops every
 * connection that is not being answered; the answers already given are
 * still delivered by step() until pending() is 0.
 * @function listener:stop
 */
static int l_stop(lua_State *L)
{
    listener *ls = check_listener(L);
    conn *c = ls->conns, *next;
    close_listening(ls);
    for (; c; c = next) {
        next = c->next;
        if (c->state == C_READ || c->state == C_QUEUED)
            conn_close(ls, c);
    }
    return 0;
}

/***
 * @function listener:port
 * @treturn integer the port it listens on (the one the kernel chose for 0)
 */
static int l_port(lua_State *L)
{
    listener *ls = check_listener(L);
    lua_pushinteger(L, ls->port);
    return 1;
}

/* pollfd(), events(), timeout() and pending() (core.c): the epoll set over
 * the listening and connection sockets; ready while a request waits for
 * take(); the connections' next deadline; the open connections (each
 * being read, waiting for an answer, or being answered). */
static int poll_state(void *self, msal_poll_state *st)
{
    listener *ls = self;
    if (!ls->open)
        return 0;
    st->fd = ls->poller.fd;
    st->ready = ls->nqueued > 0;
    st->deadline_ms = next_deadline(ls);
    st->pending = ls->nconns;
    return 1;
}

static void describe(lua_State *L, void *self)
{
    listener *ls = self;
    if (ls->open)
        lua_pushfstring(L, "port %d, %d connections", ls->port, ls->nconns);
}

/***
 * Closes the port and every connection; calling it again does nothing.
 * @function close
 */
static int l_close(lua_State *L)
{
    listener_free(luaL_checkudata(L, 1, LISTENER_MT));
    return 0;
}

void msal_open_loopback(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"port", l_port}, {"step", l_step}, {"take", l_take}, {"respond", l_respond}, {"stop", l_stop}, {"close", l_close},
        {NULL, NULL},
    };
    static const msal_class listener_class = {LISTENER_MT, methods, l_close, describe, poll_state, "loopback listener"};
    static const luaL_Reg funcs[] = {{"listen", l_listen}, {NULL, NULL}};
    msal_newclass(L, &listener_class);
    luaL_newlib(L, funcs);
}
