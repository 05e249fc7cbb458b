/* msal.core.redis: a small synchronous Redis client (RESP2 over TCP or TLS)
 * for the Redis token cache (lua/msal/cache/redis.lua). The protocol is
 * resp.c's, the socket and TLS stream.c's; this file holds connections,
 * AUTH and SELECT, and turns replies into Lua values.
 *
 * Blocking on purpose: a cache access is one GET, or a few round trips for
 * a write, on a nearby server, with a deadline on the connect (and TLS
 * handshake) and on each call, so a dead or stalled server costs at most
 * timeout_ms. (OpenResty, where C must not block, reaches Redis through
 * cosockets instead.)
 *
 * A reply is read into a buffer that grows only with the bytes that arrive
 * and is scanned under caps (resp.h) before anything is made of it: what a
 * server announces is never allocated.
 *
 * Failures return nil, message, code (core.h): SERVER is an error reply on
 * a connection that is still good; any other code (ECONNREFUSED,
 * ETIMEDOUT, EPIPE, EOF, EPROTO, EMSGSIZE, TLS, CERT, AUTH…) means the
 * connection is gone: it is closed here and the caller reconnects. Only
 * misuse raises. Every buffer belongs to the connection's userdata, whose
 * __gc frees it, so a Lua error never leaks one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "compat.h"
#include "core.h"
#include "resp.h"
#include "stream.h"

#define CONN_MT "msal.redis.conn"
/* The read buffer's first size, and the size it shrinks back to after a
 * big reply. */
#define RBUF_START ((size_t)16384)
#define RBUF_KEEP ((size_t)1 << 20)

typedef struct rconn {
    stream s;
    int open; /* 0 once closed or broken */
    int timeout_ms;
    resp_limits lim;
    char *rbuf; /* bytes received; unread replies start at rpos */
    size_t rcap, rlen, rpos;
    char *wbuf; /* the encoded commands of one call */
    size_t wcap;
    char *where; /* "host:port", for tostring */
} rconn;

static void conn_drop(rconn *rc)
{
    stream_close(&rc->s);
    rc->open = 0;
    rc->rlen = rc->rpos = 0;
}

/* nil, "<what>: <why>", code; then the connection is dropped. */
static int push_stream_error(lua_State *L, rconn *rc, const char *what, const stream_err *e)
{
    int n;
    if (strcmp(e->code, "ETIMEDOUT") == 0)
        n = msal_push_error(L, e->code, "%s: timed out after %d ms", what, rc->timeout_ms);
    else
        n = msal_push_error(L, e->code, "%s: %s", what, e->msg);
    conn_drop(rc);
    return n;
}

static int push_closed(lua_State *L)
{
    return msal_push_error(L, "ENOTCONN", "the Redis connection is closed");
}

static rconn *check_conn(lua_State *L)
{
    return luaL_checkudata(L, 1, CONN_MT);
}

/* Pushes the element at *pos of a scanned reply: bulk and status strings
 * as strings, integers as integers, arrays as tables. At the top level
 * (depth 0) nil is nil; inside arrays it is false (an array cannot hold
 * nil) and an error reply is {err = msg}. The scan bounded the depth. */
static void push_value(lua_State *L, const char *buf, size_t len, size_t *pos, int depth)
{
    resp_item it;
    size_t i;
    luaL_checkstack(L, 3, "redis reply too deep");
    if (!resp_item_at(buf, len, pos, &it)) { /* cannot happen after a scan */
        lua_pushboolean(L, 0);
        return;
    }
    switch (it.type) {
    case '+':
        lua_pushlstring(L, it.p, it.n);
        break;
    case '$':
        if (it.nil) {
            if (depth > 0)
                lua_pushboolean(L, 0);
            else
                lua_pushnil(L);
        } else {
            msal_before_big_string(L, it.n);
            lua_pushlstring(L, it.p, it.n);
        }
        break;
    case ':':
        lua_pushinteger(L, (lua_Integer)it.integer);
        break;
    case '-':
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, it.p, it.n);
        lua_setfield(L, -2, "err");
        break;
    default: /* '*' */
        if (it.nil) {
            if (depth > 0)
                lua_pushboolean(L, 0);
            else
                lua_pushnil(L);
            break;
        }
        lua_createtable(L, (int)it.n, 0); /* the scan saw every element: it.n are here */
        for (i = 0; i < it.n; i++) {
            push_value(L, buf, len, pos, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)(i + 1));
        }
        break;
    }
}

/* A reply as a call's results: an error reply is nil, its text, SERVER. */
static int push_reply(lua_State *L, const char *buf, size_t len)
{
    size_t pos = 0;
    if (len > 0 && buf[0] == '-') {
        resp_item it;
        resp_item_at(buf, len, &pos, &it);
        lua_pushlstring(L, it.p, it.n);
        msal_push_error(L, "SERVER", "%s", lua_tostring(L, -1));
        lua_remove(L, -4);
        return 3;
    }
    push_value(L, buf, len, &pos, 0);
    return 1;
}

/* Room for more bytes after rlen: compacts, then grows (doubling, at most
 * to max_reply + 1: a reply that needs more is refused by the scan). */
static int make_room(rconn *rc)
{
    size_t want;
    char *p;
    if (rc->rlen < rc->rcap)
        return 0;
    if (rc->rpos > 0) {
        memmove(rc->rbuf, rc->rbuf + rc->rpos, rc->rlen - rc->rpos);
        rc->rlen -= rc->rpos;
        rc->rpos = 0;
        return 0;
    }
    want = rc->rcap * 2;
    if (want > rc->lim.max_reply + 1)
        want = rc->lim.max_reply + 1;
    if (want <= rc->rcap)
        want = rc->rcap + 1;
    p = realloc(rc->rbuf, want);
    if (p == NULL)
        return -1;
    rc->rbuf = p;
    rc->rcap = want;
    return 0;
}

/* Reads until a whole reply is at rbuf + rpos; 0 with its length in *len,
 * or pushes nil, message, code (and drops the connection). */
static int read_reply(lua_State *L, rconn *rc, int64_t deadline, const char *what, size_t *len, int *nret)
{
    resp_scanner sc;
    resp_scan_init(&sc, &rc->lim);
    for (;;) {
        stream_err e;
        ssize_t got;
        int v = resp_scan(&sc, rc->rbuf + rc->rpos, rc->rlen - rc->rpos);
        if (v == RESP_DONE) {
            *len = sc.pos;
            return 0;
        }
        if (v != RESP_MORE) {
            *nret = msal_push_error(L, v == RESP_BAD ? "EPROTO" : "EMSGSIZE", "%s: the server's reply %s: %s", what,
                                    v == RESP_BAD ? "is not RESP" : "is over a cap", sc.why);
            conn_drop(rc);
            return -1;
        }
        if (make_room(rc) != 0) {
            *nret = msal_push_error(L, "ENOMEM", "%s: out of memory for the reply", what);
            conn_drop(rc);
            return -1;
        }
        got = stream_read(&rc->s, rc->rbuf + rc->rlen, rc->rcap - rc->rlen, deadline, &e);
        if (got < 0) {
            *nret = push_stream_error(L, rc, what, &e);
            return -1;
        }
        rc->rlen += (size_t)got;
    }
}

/* The reply just read is consumed: moves past it. Its bytes stay where
 * they are until the next read. */
static void consume(rconn *rc, size_t len)
{
    rc->rpos += len;
    if (rc->rpos == rc->rlen)
        rc->rpos = rc->rlen = 0;
}

/* At the start of a call: gives back the buffer a big reply grew, once
 * nothing is left in it. */
static void settle(rconn *rc)
{
    if (rc->rlen == 0 && rc->rcap > RBUF_KEEP) {
        char *p = realloc(rc->rbuf, RBUF_START);
        if (p) {
            rc->rbuf = p;
            rc->rcap = RBUF_START;
        }
    }
}

/* Reads one reply and pushes it as a call's results. */
static int one_reply(lua_State *L, rconn *rc, int64_t deadline, const char *what)
{
    size_t len, at;
    int n;
    if (read_reply(L, rc, deadline, what, &len, &n) != 0)
        return n;
    at = rc->rpos;
    consume(rc, len); /* first: pushing may raise (memory); the bytes stay put until the next read */
    return push_reply(L, rc->rbuf + at, len);
}

/* Room for n bytes in wbuf. */
static int reserve_w(rconn *rc, size_t n)
{
    char *p;
    if (n <= rc->wcap)
        return 0;
    p = realloc(rc->wbuf, n);
    if (p == NULL)
        return -1;
    rc->wbuf = p;
    rc->wcap = n;
    return 0;
}

static int send_buf(lua_State *L, rconn *rc, size_t n, int64_t deadline, const char *what, int *nret)
{
    stream_err e;
    if (stream_write(&rc->s, rc->wbuf, n, deadline, &e) != 0) {
        *nret = push_stream_error(L, rc, what, &e);
        return -1;
    }
    return 0;
}

/* Arguments first..top as argv/len arrays in Lua-owned memory; numbers are
 * turned into strings in place (the values are this call's own slots). */
static size_t gather_args(lua_State *L, int first, int top, const char ***argv, size_t **len)
{
    int argc = top - first + 1, i;
    if (argc < 1)
        luaL_error(L, "redis: a command needs at least its name");
    *len = lua_newuserdata(L, (size_t)argc * sizeof **len);
    *argv = lua_newuserdata(L, (size_t)argc * sizeof **argv);
    for (i = 0; i < argc; i++) {
        int t = lua_type(L, first + i);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_argerror(L, first + i, "strings or numbers expected");
        (*argv)[i] = lua_tolstring(L, first + i, &(*len)[i]);
    }
    return (size_t)argc;
}

/* Sends one command (in Lua-owned argv) and reads its reply. */
static int run_command(lua_State *L, rconn *rc, size_t argc, const char **argv, const size_t *len, const char *what)
{
    size_t size = resp_command_size(argc, len);
    int64_t deadline = msal_now_ms() + rc->timeout_ms;
    int n;
    if (!rc->open)
        return push_closed(L);
    settle(rc);
    if (size == 0)
        return luaL_error(L, "redis: the command is too long");
    if (reserve_w(rc, size) != 0)
        return msal_push_error(L, "ENOMEM", "%s: out of memory for the command", what);
    resp_encode_command(rc->wbuf, argc, argv, len);
    if (send_buf(L, rc, size, deadline, what, &n) != 0)
        return n;
    return one_reply(L, rc, deadline, what);
}

/* Integer option name of the table at t within lo..hi, or def. */
static int opt_int(lua_State *L, int t, const char *name, int def, int lo, int hi)
{
    lua_Number v;
    if (!msal_opt_number(L, t, name, &v))
        return def;
    if (!(v >= lo && v <= hi) || v != (lua_Number)(int)v)
        luaL_error(L, "redis: '%s' must be an integer from %d to %d", name, lo, hi);
    return (int)v;
}

/* String option name of the table at t (left on the stack: anchored), or
 * NULL. */
static const char *opt_str(lua_State *L, int t, const char *name)
{
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "redis.connect: '%s' must be a string", name);
    return lua_tostring(L, -1);
}

/* The caps of the table at t (resp.h's defaults for those not given). */
static void opt_limits(lua_State *L, int t, resp_limits *lim)
{
    const int ceiling = (int)RESP_LIMIT_CEILING;
    resp_default_limits(lim);
    lim->max_bulk = (size_t)opt_int(L, t, "max_bulk", (int)lim->max_bulk, 1, ceiling);
    lim->max_array = (size_t)opt_int(L, t, "max_array", (int)lim->max_array, 1, ceiling);
    lim->max_reply = (size_t)opt_int(L, t, "max_reply", (int)lim->max_reply, 16, ceiling);
    lim->max_depth = opt_int(L, t, "max_depth", lim->max_depth, 1, RESP_DEPTH_CEILING);
}

/* Runs one command during connect; 1 when the reply is not an error, else
 * pushes nil, "<what>: <reply>", code (the connection is dropped). */
static int setup_command(lua_State *L, rconn *rc, int argc, const char **argv, const char *what, const char *code)
{
    size_t len[3];
    int i, n, top = lua_gettop(L);
    for (i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    n = run_command(L, rc, (size_t)argc, argv, len, what);
    if (n == 1) {
        lua_settop(L, top);
        return 1;
    }
    if (strcmp(lua_tostring(L, -1), "SERVER") == 0) {
        const char *reply = lua_tostring(L, -2);
        msal_push_error(L, code, "%s: %s", what, reply);
        conn_drop(rc);
    }
    return 0;
}

/***
 * Connects to a Redis server over TCP, or TLS, with a deadline on the
 * connect and handshake and on each call afterwards; authenticates and
 * selects a database if asked.
 * @function connect
 * @tparam table opts `{host = "127.0.0.1", port = 6379, password?, username?
 *   (Redis 6 ACL user), db? (0), timeout_ms? (1000), tls? (true, or
 *   `{ca_file?, ca_path?, server_name?, cert_file?, key_file?}`), and the
 *   reply caps max_bulk? (32 MiB), max_array? (1048576), max_reply? (64
 *   MiB), max_depth? (16)}`
 * @treturn userdata the connection: `command`, `pipeline`, `read`, `close`,
 *   `is_open` (also closed by `__gc`, and by `__close` on Lua 5.4)
 * @return or nil, message, code: AUTH (the credentials were refused),
 *   SERVER (SELECT refused), CERT (the server's certificate failed a check:
 *   the message names it), TLS, CRYPTO (a CA or client key file OpenSSL
 *   cannot read), or the connection's (ECONNREFUSED, ETIMEDOUT…)
 */
static int l_connect(lua_State *L)
{
    const char *host, *password, *username;
    int port, db, use_tls = 0;
    stream_tls tls;
    stream_err e;
    rconn *rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    host = opt_str(L, 1, "host");
    if (host == NULL)
        host = "127.0.0.1";
    /* the strings stay on the stack, anchored, until the end */
    port = opt_int(L, 1, "port", 6379, 1, 65535);
    db = opt_int(L, 1, "db", 0, 0, 1 << 20);
    password = opt_str(L, 1, "password");
    username = opt_str(L, 1, "username");
    if (username && !password)
        return luaL_error(L, "redis.connect: 'username' needs a 'password'");
    memset(&tls, 0, sizeof tls);
    lua_getfield(L, 1, "tls");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        use_tls = 1;
        tls.ca_file = opt_str(L, t, "ca_file");
        tls.ca_path = opt_str(L, t, "ca_path");
        tls.server_name = opt_str(L, t, "server_name");
        tls.cert_file = opt_str(L, t, "cert_file");
        tls.key_file = opt_str(L, t, "key_file");
        if (tls.key_file && !tls.cert_file)
            return luaL_error(L, "redis.connect: 'tls.key_file' needs a 'tls.cert_file'");
    } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
        use_tls = lua_toboolean(L, -1);
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "redis.connect: 'tls' must be a table or a boolean");
    }

    rc = lua_newuserdata(L, sizeof *rc);
    memset(rc, 0, sizeof *rc);
    stream_init(&rc->s);
    luaL_setmetatable(L, CONN_MT);
    rc->timeout_ms = opt_int(L, 1, "timeout_ms", 1000, 1, 3600000);
    opt_limits(L, 1, &rc->lim);
    lua_pushfstring(L, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    rc->where = malloc(lua_rawlen(L, -1) + 1);
    rc->rbuf = malloc(RBUF_START);
    if (rc->where == NULL || rc->rbuf == NULL)
        return luaL_error(L, "out of memory");
    memcpy(rc->where, lua_tostring(L, -1), lua_rawlen(L, -1) + 1);
    rc->rcap = RBUF_START;
    if (stream_connect(&rc->s, host, port, use_tls ? &tls : NULL, msal_now_ms() + rc->timeout_ms, &e) != 0) {
        if (strcmp(e.code, "ETIMEDOUT") == 0)
            return msal_push_error(L, e.code, "cannot connect to %s: timed out after %d ms", rc->where,
                                   rc->timeout_ms);
        return msal_push_error(L, e.code, "cannot connect to %s: %s", rc->where, e.msg);
    }
    rc->open = 1;
    if (password) {
        const char *argv[3] = {"AUTH", username ? username : password, password};
        if (!setup_command(L, rc, username ? 3 : 2, argv, "Redis AUTH failed", "AUTH"))
            return 3;
    }
    if (db != 0) {
        char num[16];
        const char *argv[2] = {"SELECT", num};
        snprintf(num, sizeof num, "%d", db);
        if (!setup_command(L, rc, 2, argv, "Redis SELECT failed", "SERVER"))
            return 3;
    }
    lua_pushvalue(L, -2); /* the userdata, under "host:port" */
    return 1;
}

/***
 * Sends one command and waits for its reply.
 * @function conn:command
 * @param ... the command and its arguments (strings or numbers)
 * @return the reply: string (bulk or status), integer, array table (nil
 *   elements are false, error elements `{err = msg}`) or nil for a nil reply
 * @return or nil, message, code: SERVER (an error reply; the connection is
 *   fine), or any other (the connection is gone and now closed): EPROTO
 *   (a reply that is not RESP), EMSGSIZE (a reply over a cap), ETIMEDOUT…
 */
static int l_command(lua_State *L)
{
    rconn *rc = check_conn(L);
    const char **argv;
    size_t *len;
    size_t argc = gather_args(L, 2, lua_gettop(L), &argv, &len);
    return run_command(L, rc, argc, argv, len, "Redis command failed");
}

/* Checks every command of the pipeline at 2 before anything is sent (a
 * refused pipeline sends nothing); returns the count and the longest. */
static int check_pipeline(lua_State *L, int *longest)
{
    int n = (int)lua_rawlen(L, 2), i;
    *longest = 0;
    for (i = 1; i <= n; i++) {
        int j, m, t;
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) < 1)
            return luaL_error(L, "redis pipeline: command %d must be a non-empty array", i);
        m = (int)lua_rawlen(L, -1);
        if (m > *longest)
            *longest = m;
        for (j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, j);
            t = lua_type(L, -1);
            lua_pop(L, 1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                return luaL_error(L, "redis pipeline: command %d argument %d must be a string or number", i, j);
        }
        lua_pop(L, 1);
    }
    return n;
}

/***
 * Sends several commands in one write and reads their replies: one round
 * trip (MULTI … EXEC goes through here).
 * @function conn:pipeline
 * @tparam table cmds an array of commands, each an array of strings/numbers
 * @treturn table the replies in order, as `command` returns them except
 *   that a nil reply is false and an error reply is `{err = msg}`
 * @return or nil, message, code (the connection is gone and now closed)
 */
static int l_pipeline(lua_State *L)
{
    rconn *rc = check_conn(L);
    int n, i, rt, longest, nret;
    size_t total = 0, w = 0;
    int64_t deadline;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = check_pipeline(L, &longest);
    luaL_checkstack(L, longest + 8, "redis pipeline: command too long");
    if (!rc->open)
        return push_closed(L);
    settle(rc);
    /* two passes: the size of everything, then one buffer written once */
    for (int pass = 0; pass < 2; pass++) {
        for (i = 1; i <= n; i++) {
            int j, m, base;
            const char **argv;
            size_t *len, argc, size;
            lua_rawgeti(L, 2, i);
            m = (int)lua_rawlen(L, -1);
            base = lua_gettop(L);
            for (j = 1; j <= m; j++)
                lua_rawgeti(L, base, j);
            argc = gather_args(L, base + 1, base + m, &argv, &len);
            size = resp_command_size(argc, len);
            if (size == 0 || total > (size_t)-1 - size)
                return luaL_error(L, "redis pipeline: the commands are too long");
            if (pass == 0)
                total += size;
            else
                w += resp_encode_command(rc->wbuf + w, argc, argv, len);
            lua_settop(L, 2);
        }
        if (pass == 0 && reserve_w(rc, total) != 0)
            return msal_push_error(L, "ENOMEM", "Redis pipeline failed: out of memory for the commands");
    }
    deadline = msal_now_ms() + rc->timeout_ms;
    if (send_buf(L, rc, w, deadline, "Redis pipeline failed", &nret) != 0)
        return nret;
    lua_createtable(L, n, 0);
    rt = lua_gettop(L);
    for (i = 1; i <= n; i++) {
        size_t len, at, pos = 0;
        if (read_reply(L, rc, deadline, "Redis pipeline failed", &len, &nret) != 0)
            return nret;
        at = rc->rpos;
        consume(rc, len);
        push_value(L, rc->rbuf + at, len, &pos, 1);
        lua_rawseti(L, rt, i);
    }
    return 1;
}

/***
 * Waits for the next reply without sending anything: for MONITOR and
 * SUBSCRIBE streams. Times out after the connection's timeout_ms.
 * @function conn:read
 * @return the reply as `command` returns it, or nil, message, code
 */
static int l_read(lua_State *L)
{
    rconn *rc = check_conn(L);
    if (!rc->open)
        return push_closed(L);
    settle(rc);
    return one_reply(L, rc, msal_now_ms() + rc->timeout_ms, "Redis read failed");
}

/***
 * Closes the connection; calling it again does nothing.
 * @function conn:close
 */
static int l_close(lua_State *L)
{
    rconn *rc = check_conn(L);
    conn_drop(rc);
    free(rc->rbuf);
    free(rc->wbuf);
    free(rc->where);
    rc->rbuf = rc->wbuf = rc->where = NULL;
    rc->rcap = rc->wcap = 0;
    return 0;
}

/***
 * Whether the connection is open (not closed, and no I/O error so far).
 * @function conn:is_open
 * @treturn boolean
 */
static int l_is_open(lua_State *L)
{
    lua_pushboolean(L, check_conn(L)->open);
    return 1;
}

/***
 * Reads one reply from bytes, under the same caps as a connection: what
 * the client does with what a server sends, without a server.
 * @function parse
 * @tparam string bytes
 * @tparam[opt] table caps `{max_bulk, max_array, max_reply, max_depth}`
 * @return the reply as a pipeline's (nil is false, an error `{err =
 *   msg}`), and the bytes it took
 * @return or nil, message, code: EAGAIN (incomplete), EPROTO (not RESP),
 *   EMSGSIZE (over a cap)
 */
static int l_parse(lua_State *L)
{
    size_t n, pos = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    resp_limits lim;
    resp_scanner sc;
    int v;
    if (lua_isnoneornil(L, 2)) {
        resp_default_limits(&lim);
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        opt_limits(L, 2, &lim);
    }
    resp_scan_init(&sc, &lim);
    v = resp_scan(&sc, s, n);
    if (v == RESP_MORE)
        return msal_push_error(L, "EAGAIN", "an incomplete reply");
    if (v != RESP_DONE)
        return msal_push_error(L, v == RESP_BAD ? "EPROTO" : "EMSGSIZE", "%s", sc.why);
    push_value(L, s, sc.pos, &pos, 1);
    lua_pushinteger(L, (lua_Integer)sc.pos);
    return 2;
}

/***
 * The Redis Cluster slot of a key (CRC16 of the key or of its `{hash
 * tag}`).
 * @function key_slot
 * @tparam string key
 * @treturn integer 0..16383
 */
static int l_key_slot(lua_State *L)
{
    size_t n;
    const char *k = luaL_checklstring(L, 1, &n);
    lua_pushinteger(L, (lua_Integer)resp_key_slot(k, n));
    return 1;
}

static void describe(lua_State *L, void *self)
{
    rconn *rc = self;
    if (rc->open && rc->where)
        lua_pushfstring(L, "%s%s", rc->where, rc->s.ssl ? ", TLS" : "");
}

int luaopen_msal_core_redis(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"command", l_command}, {"pipeline", l_pipeline}, {"read", l_read},
        {"close", l_close},     {"is_open", l_is_open},   {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"connect", l_connect}, {"parse", l_parse}, {"key_slot", l_key_slot}, {NULL, NULL}};
    static const msal_class conn_class = {CONN_MT, methods, l_close, describe, NULL, NULL};
    msal_pin_module((void *)luaopen_msal_core_redis); /* libssl's exit handlers: core.c */
    msal_newclass(L, &conn_class);
    luaL_newlib(L, funcs);
    return 1;
}
