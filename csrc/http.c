/* msal.core.http: HTTP requests on one libcurl multi handle, driven from
 * outside. The multi owns an epoll set (poller.h) that curl's socket
 * callback keeps in step with the sockets curl wants watched, and one timer
 * deadline; m:pollfd() and m:timeout() tell a host loop when to call
 * m:step(), which does curl's work and returns the ids of the requests that
 * finished. curl's callbacks only record state: Lua is never re-entered
 * from inside libcurl.
 *
 * One multi handle means one connection cache and one DNS cache, so
 * requests to the same host reuse their keep-alive connection; a share
 * handle adds TLS session reuse for the connections that are new. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "compat.h"
#include "core.h"
#include "http1.h"
#include "poller.h"

#define MULTI_MT "msal.http.multi"

/* Defaults for what a request does not say. */
#define DEF_MAX_BODY ((size_t)1 << 20)
#define DEF_MAX_HEAD ((size_t)64 << 10)
#define DEF_CONNECT_MS 10000L
#define DEF_TIMEOUT_MS 30000L

#define POOL_MAX 8 /* idle easy handles kept for the next requests */
#define EVENTS_PER_STEP 64

enum { REQ_RUNNING, REQ_DONE, REQ_REPORTED };
enum { LIMIT_NONE, LIMIT_BODY, LIMIT_HEAD };

typedef struct request {
    struct request *prev, *next; /* every request the multi holds */
    struct request *ready;       /* finished, id not yet returned by step */
    CURL *easy;                  /* while running */
    struct curl_slist *headers;  /* while running */
    lua_Integer id;
    int state;
    msal_buf body, head;
    size_t max_body, max_head;
    int limit; /* LIMIT_*: which cap the response broke */
    int oom;
    CURLcode code;
    long status;
    const char *canceled; /* why, when it ended without curl finishing it */
    char errbuf[CURL_ERROR_SIZE];
} request;

typedef struct multi {
    CURLM *cm;    /* NULL once closed */
    CURLSH *share;
    msal_poller poller;
    int64_t deadline; /* curl's timer on msal_now_ms(), -1 when unset */
    request *reqs;
    request *ready_head, *ready_tail;
    int running, unreported;
    lua_Integer next_id;
    CURL *pool[POOL_MAX];
    int npool;
    long connect_ms, timeout_ms;
    size_t max_body, max_head;
    char *ca_file, *ca_path;
} multi;

/* ---- curl callbacks: record, never call Lua ---- */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
    multi *m = ud;
    unsigned ev;
    (void)easy;
    (void)sockp;
    if (what == CURL_POLL_REMOVE) {
        poller_unwatch(&m->poller, fd);
        return 0;
    }
    ev = (what & CURL_POLL_IN ? POLLER_IN : 0u) | (what & CURL_POLL_OUT ? POLLER_OUT : 0u);
    /* On failure the socket goes unwatched and its transfer ends by its
     * timeout, which every request has; failing here would abort all. */
    (void)poller_watch(&m->poller, fd, ev);
    return 0;
}

static int on_timer(CURLM *cm, long ms, void *ud)
{
    multi *m = ud;
    (void)cm;
    m->deadline = ms < 0 ? -1 : msal_now_ms() + ms;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t len = size * n;
    if (len > r->max_body - r->body.n) {
        r->limit = LIMIT_BODY;
        return 0; /* anything but len makes curl stop with CURLE_WRITE_ERROR */
    }
    buf_add(&r->body, p, len);
    if (r->body.oom) {
        r->oom = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    request *r = ud;
    size_t len = size * n;
    /* A status line starts a new response (after a 1xx or a proxy's reply
     * to CONNECT): only the final one's headers are the answer. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        r->head.n = 0;
    if (len > r->max_head - r->head.n) {
        r->limit = LIMIT_HEAD;
        return 0;
    }
    buf_add(&r->head, p, len);
    if (r->head.oom) {
        r->oom = 1;
        return 0;
    }
    return len;
}

/* ---- requests ---- */

static void unlink_req(multi *m, request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        m->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* An easy handle goes back to the pool with its options reset, or away;
 * the connection it used stays in the multi's cache either way. */
static void release_easy(multi *m, CURL *easy)
{
    if (easy == NULL)
        return;
    if (m->npool < POOL_MAX) {
        curl_easy_reset(easy);
        m->pool[m->npool++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

/* Takes r out of curl: when still running, the transfer is dropped and its
 * connection closed by curl. */
static void detach(multi *m, request *r)
{
    if (r->easy) {
        (void)curl_multi_remove_handle(m->cm, r->easy);
        release_easy(m, r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    if (r->state == REQ_RUNNING)
        m->running--;
}

static void mark_done(multi *m, request *r)
{
    r->state = REQ_DONE;
    r->ready = NULL;
    if (m->ready_tail)
        m->ready_tail->ready = r;
    else
        m->ready_head = r;
    m->ready_tail = r;
    m->unreported++;
}

static void free_req(request *r)
{
    buf_free(&r->body);
    buf_free(&r->head);
    free(r);
}

static request *find_req(multi *m, lua_Integer id)
{
    request *r = m->reqs;
    while (r && r->id != id)
        r = r->next;
    return r;
}

/* Frees everything: requests in any state, pooled handles, curl, epoll. */
static void multi_free(multi *m)
{
    int i;
    if (m->cm == NULL)
        return;
    while (m->reqs) {
        request *r = m->reqs;
        detach(m, r);
        unlink_req(m, r);
        free_req(r);
    }
    m->ready_head = m->ready_tail = NULL;
    m->running = m->unreported = 0;
    for (i = 0; i < m->npool; i++)
        curl_easy_cleanup(m->pool[i]);
    m->npool = 0;
    /* May still call on_socket (closing cached connections): the epoll fd
     * must outlive it. The share goes after every handle that used it. */
    curl_multi_cleanup(m->cm);
    m->cm = NULL;
    if (m->share)
        curl_share_cleanup(m->share);
    m->share = NULL;
    poller_close(&m->poller);
    free(m->ca_file);
    free(m->ca_path);
    m->ca_file = m->ca_path = NULL;
}

static multi *check_multi(lua_State *L)
{
    multi *m = luaL_checkudata(L, 1, MULTI_MT);
    if (m->cm == NULL)
        luaL_error(L, "http multi handle is closed");
    return m;
}

/* ---- option parsing ---- */

static long opt_ms(lua_State *L, int t, const char *name, long def)
{
    lua_Number v;
    if (!msal_opt_number(L, t, name, &v))
        return def;
    if (!(v >= 1 && v <= (lua_Number)LONG_MAX))
        luaL_error(L, "'%s' must be a positive number of milliseconds", name);
    return (long)v;
}

static size_t opt_size(lua_State *L, int t, const char *name, size_t def)
{
    lua_Number v;
    if (!msal_opt_number(L, t, name, &v))
        return def;
    /* capped so that curl_off_t and the buffers' size arithmetic hold */
    if (!(v >= 0 && v <= (lua_Number)(1u << 30) * 4))
        luaL_error(L, "'%s' must be a size between 0 and 4 GiB", name);
    return (size_t)v;
}

/* A string field without NUL bytes (curl takes C strings: an embedded NUL
 * would silently cut a URL or path short), or def when absent. The value
 * stays on the stack, which keeps it alive even when a metatable made it. */
static const char *opt_cstr(lua_State *L, int t, const char *name, const char *def)
{
    const char *s;
    size_t n;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1))
        return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "'%s' must be a string", name);
    s = lua_tolstring(L, -1, &n);
    if (strlen(s) != n)
        luaL_error(L, "'%s' contains a NUL byte", name);
    return s;
}

/* Header values may hold any visible text but nothing that would end the
 * line and start another header (or request). */
static int is_field_value(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

/* Checks the headers table at idx; raises on anything malformed. Runs
 * before anything is allocated, so raising leaks nothing. */
static void check_headers(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t kn, vn;
        const char *k, *v;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "header names must be strings");
        k = lua_tolstring(L, -2, &kn);
        if (!http1_is_token(k, kn))
            luaL_error(L, "invalid header name '%s'", k);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "header '%s' must have a string value", k);
        v = lua_tolstring(L, -1, &vn); /* the copy lua_next pushed, not the table's */
        if (!is_field_value(v, vn))
            luaL_error(L, "header '%s' contains a line break or NUL", k);
        lua_pop(L, 1);
    }
}

/* Builds curl's header list from the checked table at idx; NULL on OOM
 * (*ok = 0). "Expect:" is added so curl never waits for a 100 Continue the
 * server may not send, unless the caller set Expect itself. */
static struct curl_slist *build_headers(lua_State *L, int idx, int *ok)
{
    struct curl_slist *list = NULL, *grown;
    msal_buf line;
    int has_expect = 0;
    *ok = 1;
    buf_init(&line);
    if (idx) {
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            size_t kn, vn;
            const char *k = lua_tolstring(L, -2, &kn);
            const char *v = lua_tolstring(L, -1, &vn);
            if (kn == 6 && strncasecmp(k, "expect", 6) == 0)
                has_expect = 1;
            line.n = 0;
            buf_add(&line, k, kn);
            /* "Name:" alone would tell curl to drop the header; "Name;"
             * is its way of sending one with an empty value. */
            if (vn == 0) {
                buf_addc(&line, ';');
            } else {
                buf_add(&line, ": ", 2);
                buf_add(&line, v, vn);
            }
            buf_addc(&line, '\0');
            lua_pop(L, 1);
            grown = line.oom ? NULL : curl_slist_append(list, line.p);
            if (grown == NULL) {
                lua_pop(L, 1);
                goto fail;
            }
            list = grown;
        }
    }
    if (!has_expect) {
        grown = curl_slist_append(list, "Expect:");
        if (grown == NULL)
            goto fail;
        list = grown;
    }
    buf_free(&line);
    return list;
fail:
    buf_free(&line);
    curl_slist_free_all(list);
    *ok = 0;
    return NULL;
}

/* ---- the Lua face ---- */

/***
 * A multi handle: one connection cache, DNS cache and TLS session cache
 * for all of its requests.
 * @function new
 * @tparam[opt] table opts defaults for the requests that do not set their
 *   own: `connect_timeout_ms` (10000), `timeout_ms` (30000),
 *   `max_response_bytes` (1 MiB), `max_header_bytes` (64 KiB), `ca_file`,
 *   `ca_path`
 * @treturn userdata the multi: `request`, `step`, `result`, `cancel`,
 *   `pollfd`, `events`, `timeout`, `pending`, `close`
 */
static int l_new(lua_State *L)
{
    multi *m;
    long connect_ms = DEF_CONNECT_MS, timeout_ms = DEF_TIMEOUT_MS;
    size_t max_body = DEF_MAX_BODY, max_head = DEF_MAX_HEAD;
    const char *ca_file = NULL, *ca_path = NULL;
    int ok;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        connect_ms = opt_ms(L, 1, "connect_timeout_ms", connect_ms);
        timeout_ms = opt_ms(L, 1, "timeout_ms", timeout_ms);
        max_body = opt_size(L, 1, "max_response_bytes", max_body);
        max_head = opt_size(L, 1, "max_header_bytes", max_head);
        ca_file = opt_cstr(L, 1, "ca_file", NULL);
        ca_path = opt_cstr(L, 1, "ca_path", NULL);
    }
    m = lua_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    m->poller.fd = -1;
    m->deadline = -1;
    m->next_id = 1;
    m->connect_ms = connect_ms;
    m->timeout_ms = timeout_ms;
    m->max_body = max_body;
    m->max_head = max_head;
    luaL_setmetatable(L, MULTI_MT);
    if (poller_open(&m->poller) != 0)
        return luaL_error(L, "epoll_create1: %s", strerror(errno));
    /* From here on m->cm != NULL marks it open, so __gc frees the rest. */
    if ((m->cm = curl_multi_init()) == NULL) {
        poller_close(&m->poller);
        return luaL_error(L, "curl_multi_init failed");
    }
    ok = curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, on_socket) == CURLM_OK &&
         curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, m) == CURLM_OK &&
         curl_multi_setopt(m->cm, CURLMOPT_TIMERFUNCTION, on_timer) == CURLM_OK &&
         curl_multi_setopt(m->cm, CURLMOPT_TIMERDATA, m) == CURLM_OK;
    if (ok) {
        m->share = curl_share_init();
        ok = m->share != NULL &&
             curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK;
    }
    if (ok && ca_file)
        ok = (m->ca_file = strdup(ca_file)) != NULL;
    if (ok && ca_path)
        ok = (m->ca_path = strdup(ca_path)) != NULL;
    if (!ok) {
        multi_free(m);
        return luaL_error(L, "cannot set up the curl multi handle");
    }
    return 1;
}

/* Sets one easy option; the first failure is kept in ok/what. */
#define SET(opt, val)                                                    \
    do {                                                                 \
        if (ok && curl_easy_setopt(easy, opt, val) != CURLE_OK) {        \
            ok = 0;                                                      \
            what = #opt;                                                 \
        }                                                                \
    } while (0)

/***
 * Starts a request; its result comes through step() and result(). Raises
 * on a malformed request (a bug in the caller, not a network event).
 * @function multi:request
 * @tparam table req `{method = "GET", url, headers, body, timeout_ms,
 *   connect_timeout_ms, max_response_bytes, max_header_bytes, ca_file,
 *   ca_path}`
 * @treturn integer the request's id
 */
static int l_request(lua_State *L)
{
    multi *m = check_multi(L);
    const char *method, *url, *body = NULL, *ca_file, *ca_path, *what = "out of memory";
    size_t method_n, body_n = 0, max_body, max_head;
    long connect_ms, timeout_ms;
    int hidx = 0, ok = 1;
    request *r;
    CURL *easy;
    CURLMcode mc;

    luaL_checktype(L, 2, LUA_TTABLE);
    url = opt_cstr(L, 2, "url", NULL);
    if (url == NULL)
        return luaL_error(L, "'url' is required");
    method = opt_cstr(L, 2, "method", "GET");
    method_n = strlen(method);
    if (!http1_is_token(method, method_n))
        return luaL_error(L, "invalid method '%s'", method);
    lua_getfield(L, 2, "body");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "'body' must be a string");
        body = lua_tolstring(L, -1, &body_n); /* stays on the stack */
    }
    lua_getfield(L, 2, "headers");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        hidx = lua_gettop(L);
        check_headers(L, hidx);
    }
    connect_ms = opt_ms(L, 2, "connect_timeout_ms", m->connect_ms);
    timeout_ms = opt_ms(L, 2, "timeout_ms", m->timeout_ms);
    ca_file = opt_cstr(L, 2, "ca_file", m->ca_file);
    ca_path = opt_cstr(L, 2, "ca_path", m->ca_path);
    max_body = opt_size(L, 2, "max_response_bytes", m->max_body);
    max_head = opt_size(L, 2, "max_header_bytes", m->max_head);

    /* Nothing below raises until everything is either owned by the multi
     * or freed again. */
    if ((r = calloc(1, sizeof *r)) == NULL)
        return luaL_error(L, "out of memory");
    buf_init(&r->body);
    buf_init(&r->head);
    r->max_body = max_body;
    r->max_head = max_head;
    easy = m->npool > 0 ? m->pool[--m->npool] : curl_easy_init();
    if (easy == NULL) {
        free(r);
        return luaL_error(L, "curl_easy_init failed");
    }
    r->headers = build_headers(L, hidx, &ok);

    SET(CURLOPT_PRIVATE, (void *)r);
    SET(CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* Redirects are the caller's decision (a token endpoint never sends
     * one a client should follow with a secret in the body). */
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FORBID_REUSE, 0L);
    /* Verification is always on; there is deliberately no switch. */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        SET(CURLOPT_CAINFO, ca_file);
    if (ca_path)
        SET(CURLOPT_CAPATH, ca_path);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    /* Refuses a declared Content-Length over the cap before any body
     * arrives; on_body enforces it for chunked answers. */
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)r);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_SHARE, m->share);
    SET(CURLOPT_HTTPHEADER, r->headers);
    if (body) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_n);
        SET(CURLOPT_COPYPOSTFIELDS, body);
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        SET(CURLOPT_COPYPOSTFIELDS, "");
    } else {
        SET(CURLOPT_CUSTOMREQUEST, method);
    }
    if (!ok) {
        release_easy(m, easy); /* first: it points at r's buffers */
        curl_slist_free_all(r->headers);
        free_req(r);
        return luaL_error(L, "cannot set up the request (%s)", what);
    }
    mc = curl_multi_add_handle(m->cm, easy);
    if (mc != CURLM_OK) {
        release_easy(m, easy);
        curl_slist_free_all(r->headers);
        free_req(r);
        return luaL_error(L, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    r->easy = easy;
    r->id = m->next_id++;
    r->state = REQ_RUNNING;
    r->next = m->reqs;
    if (m->reqs)
        m->reqs->prev = r;
    m->reqs = r;
    m->running++;
    lua_pushinteger(L, r->id);
    return 1;
}

#undef SET

/* Moves the transfers curl has finished to the ready queue. */
static void collect_done(multi *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->cm, &left)) != NULL) {
        CURL *easy;
        CURLcode code;
        char *priv = NULL;
        request *r;
        if (msg->msg != CURLMSG_DONE)
            continue;
        easy = msg->easy_handle;
        code = msg->data.result; /* msg dies with remove_handle */
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK || priv == NULL)
            continue; /* not ours: cannot happen */
        r = (request *)(void *)priv;
        r->code = code;
        if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status) != CURLE_OK)
            r->status = 0;
        detach(m, r);
        mark_done(m, r);
    }
}

static int multi_fail(lua_State *L, const char *what, CURLMcode mc)
{
    return luaL_error(L, "%s: %s", what, curl_multi_strerror(mc));
}

/***
 * Waits for socket activity up to timeout_ms (never past curl's own
 * timer; not at all when a finished request is waiting to be reported or
 * nothing runs), lets curl act, and reports every request that finished
 * since the last step.
 * @function multi:step
 * @tparam[opt=0] number timeout_ms `math.huge`: no limit
 * @treturn table the ids of the requests that finished
 */
static int l_step(lua_State *L)
{
    multi *m = check_multi(L);
    poller_event ev[EVENTS_PER_STEP];
    int wait = msal_step_wait(L, 2, m->ready_head || m->running == 0, m->deadline), n, i, still, out = 0;
    CURLMcode mc;
    n = msal_poll_step(L, &m->poller, ev, EVENTS_PER_STEP, wait);
    for (i = 0; i < n; i++) {
        int flags = (ev[i].events & POLLER_IN ? CURL_CSELECT_IN : 0) |
                    (ev[i].events & POLLER_OUT ? CURL_CSELECT_OUT : 0) |
                    (ev[i].events & POLLER_ERR ? CURL_CSELECT_ERR : 0);
        /* An fd curl dropped while handling an earlier event of this batch
         * is ignored by curl, which is what we want. */
        mc = curl_multi_socket_action(m->cm, ev[i].fd, flags, &still);
        if (mc != CURLM_OK)
            return multi_fail(L, "curl_multi_socket_action", mc);
    }
    if (m->deadline >= 0 && msal_now_ms() >= m->deadline) {
        m->deadline = -1; /* before the call: curl may set a new one in it */
        mc = curl_multi_socket_action(m->cm, CURL_SOCKET_TIMEOUT, 0, &still);
        if (mc != CURLM_OK)
            return multi_fail(L, "curl_multi_socket_action", mc);
    }
    collect_done(m);
    lua_createtable(L, m->unreported, 0);
    while (m->ready_head) {
        request *r = m->ready_head;
        m->ready_head = r->ready;
        r->ready = NULL;
        r->state = REQ_REPORTED;
        m->unreported--;
        lua_pushinteger(L, r->id);
        lua_rawseti(L, -2, ++out);
    }
    m->ready_tail = NULL;
    return 1;
}

static void push_error(lua_State *L, const char *kind, const char *message)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
}

static const char *error_kind(CURLcode code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return "tls";
    default:
        return "io";
    }
}

/* Pushes the final response's header block as a table: lower-case names,
 * values trimmed, repeated names joined with ", ", folded lines joined
 * with a space. Lower-cases r->head in place (it is freed next). */
static void push_headers(lua_State *L, msal_buf *h)
{
    char *p = h->p, *end = h->p + h->n;
    int t, have_last = 0;
    lua_newtable(L);
    t = lua_gettop(L);
    while (p && p < end) {
        char *eol = memchr(p, '\n', (size_t)(end - p)), *line = p, *le, *colon, *v;
        if (eol == NULL)
            eol = end;
        p = eol + (eol < end);
        le = eol;
        if (le > line && le[-1] == '\r')
            le--;
        if (le == line || (le - line >= 5 && memcmp(line, "HTTP/", 5) == 0))
            continue;
        if (*line == ' ' || *line == '\t') { /* obsolete line folding */
            if (!have_last)
                continue;
            while (line < le && (*line == ' ' || *line == '\t'))
                line++;
            lua_pushvalue(L, -1); /* the last name */
            lua_pushvalue(L, -1);
            lua_rawget(L, t);
            lua_pushliteral(L, " ");
            lua_pushlstring(L, line, (size_t)(le - line));
            lua_concat(L, 3);
            lua_rawset(L, t);
            continue;
        }
        colon = memchr(line, ':', (size_t)(le - line));
        if (colon == NULL || colon == line)
            continue;
        for (v = line; v < colon; v++)
            if (*v >= 'A' && *v <= 'Z')
                *v = (char)(*v - 'A' + 'a');
        v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        while (le > v && (le[-1] == ' ' || le[-1] == '\t'))
            le--;
        if (have_last)
            lua_pop(L, 1);
        lua_pushlstring(L, line, (size_t)(colon - line)); /* kept as the last name */
        have_last = 1;
        lua_pushvalue(L, -1);
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(le - v));
        } else {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, (size_t)(le - v));
            lua_concat(L, 3);
        }
        lua_rawset(L, t);
    }
    if (have_last)
        lua_pop(L, 1);
}

/***
 * Hands a finished request's result over, once: the request is
 * forgotten afterwards.
 * @function multi:result
 * @tparam integer id
 * @treturn table `{status, headers (lower-case names), body}`
 * @return or nil, `{kind, message}` with kind "timeout", "connect", "tls",
 *   "too_large", "io" or "canceled" (the transport contract, core.h)
 */
static int l_result(lua_State *L)
{
    multi *m = check_multi(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    request *r = find_req(m, id);
    int nret = 2;
    if (r == NULL)
        return luaL_argerror(L, 2, "no such request (its result was taken, or it never existed)");
    if (r->state == REQ_RUNNING)
        return luaL_argerror(L, 2, "the request has not finished");
    if (r->canceled) {
        push_error(L, "canceled", r->canceled);
    } else if (r->oom) {
        push_error(L, "io", "out of memory");
    } else if (r->limit == LIMIT_BODY || r->code == CURLE_FILESIZE_EXCEEDED) {
        char msg[80];
        snprintf(msg, sizeof msg, "response body over the limit of %lu bytes", (unsigned long)r->max_body);
        push_error(L, "too_large", msg);
    } else if (r->limit == LIMIT_HEAD) {
        char msg[80];
        snprintf(msg, sizeof msg, "response headers over the limit of %lu bytes", (unsigned long)r->max_head);
        push_error(L, "too_large", msg);
    } else if (r->code != CURLE_OK) {
        push_error(L, error_kind(r->code), r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->code));
    } else {
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, r->status);
        lua_setfield(L, -2, "status");
        push_headers(L, &r->head);
        lua_setfield(L, -2, "headers");
        lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.n);
        lua_setfield(L, -2, "body");
        nret = 1;
    }
    if (r->state == REQ_DONE) { /* taken before step reported it */
        request **pp = &m->ready_head, *prev = NULL;
        while (*pp != r) {
            prev = *pp;
            pp = &(*pp)->ready;
        }
        *pp = r->ready;
        if (m->ready_tail == r)
            m->ready_tail = prev;
        m->unreported--;
    }
    unlink_req(m, r);
    free_req(r);
    return nret;
}

/***
 * Stops a running request now; its id is reported by the next step with
 * the error kind "canceled".
 * @function multi:cancel
 * @tparam integer id
 * @treturn boolean whether it was running
 */
static int l_cancel(lua_State *L)
{
    multi *m = check_multi(L);
    request *r = find_req(m, luaL_checkinteger(L, 2));
    if (r == NULL || r->state != REQ_RUNNING) {
        lua_pushboolean(L, 0);
        return 1;
    }
    detach(m, r);
    r->canceled = "the request was canceled";
    mark_done(m, r);
    lua_pushboolean(L, 1);
    return 1;
}

/* pollfd(), events(), timeout() and pending() (core.c): the epoll set over
 * curl's sockets; ready while a finished request waits to be reported;
 * curl's timer; the requests running or not yet reported. */
static int poll_state(void *self, msal_poll_state *st)
{
    multi *m = self;
    st->fd = m->poller.fd;
    st->ready = m->ready_head != NULL;
    st->deadline_ms = m->deadline;
    st->pending = m->running + m->unreported;
    return m->cm != NULL;
}

static void describe(lua_State *L, void *self)
{
    multi *m = self;
    if (m->cm)
        lua_pushfstring(L, "%d running", m->running);
}

/***
 * Cancels every request and frees the handle; calling it again does nothing.
 * @function close
 */
static int l_close(lua_State *L)
{
    multi_free(luaL_checkudata(L, 1, MULTI_MT));
    return 0;
}

/***
 * @function version
 * @treturn string libcurl's version, e.g. "libcurl/7.88.1 OpenSSL/3.0.11"
 */
static int l_version(lua_State *L)
{
    lua_pushstring(L, curl_version());
    return 1;
}

int luaopen_msal_core_http(lua_State *L)
{
    static int curl_ready = 0;
    static const luaL_Reg methods[] = {
        {"request", l_request}, {"step", l_step}, {"result", l_result}, {"cancel", l_cancel}, {"close", l_close}, {NULL, NULL},
    };
    static const msal_class multi_class = {MULTI_MT, methods, l_close, describe, poll_state, "http multi handle"};
    static const luaL_Reg funcs[] = {{"new", l_new}, {"version", l_version}, {NULL, NULL}};
    /* curl_global_init is not thread-safe and must run before any other
     * curl call: the opener runs once per state, on the thread that
     * requires the module, before any handle exists. */
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            luaL_error(L, "curl_global_init failed");
        curl_ready = 1;
    }
    msal_pin_module((void *)luaopen_msal_core_http);
    msal_newclass(L, &multi_class);
    luaL_newlib(L, funcs);
    return 1;
}
