/* msal.core.redis: a small synchronous Redis client over hiredis (Debian's
 * libhiredis-dev), for the Redis token cache (lua/msal/cache/redis.lua).
 *
 * Blocking on purpose: a cache access is one GET, or a few round trips for
 * a write, on a nearby server, with connect and command timeouts so a dead
 * server costs at most timeout_ms. (OpenResty, where C must not block,
 * would reach Redis through cosockets instead.)
 *
 * Failures return nil, message, code (core.h): SERVER is an error reply on
 * a connection that is still good; any other code (ECONNREFUSED,
 * ETIMEDOUT, EPIPE, EOF, ENOTCONN…) means the connection is gone: hiredis
 * contexts are unusable after an I/O error, so it is closed here and the
 * caller reconnects. Only misuse raises. No Lua error can be raised while a
 * hiredis context or reply is owned by C alone: both live in userdata whose
 * __gc frees them. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "compat.h"
#include "core.h"

#define CONN_MT "msal.redis.conn"
#define REPLY_MT "msal.redis.reply"
#define MAX_DEPTH 8

typedef struct rconn {
    redisContext *c; /* NULL once closed or broken */
    int timeout_ms;
} rconn;

typedef struct rbox {
    redisReply *r; /* freed by __gc if a Lua error strikes mid-conversion */
} rbox;

/* hiredis writes with write(2): a peer that went away would kill the
 * process with SIGPIPE. Block it around our I/O and swallow one we caused
 * (libpq's technique), leaving any SIGPIPE that was pending already. */
typedef struct pipe_guard {
    sigset_t old;
    int was_pending;
} pipe_guard;

static void pipe_block(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    (void)pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_restore(pipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigemptyset(&pending);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    (void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static struct timeval tv_of(int ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static void conn_drop(rconn *rc)
{
    if (rc->c) {
        redisFree(rc->c);
        rc->c = NULL;
    }
}

/* A socket timeout: hiredis 0.14 reports the EAGAIN of a read past
 * SO_RCVTIMEO as an I/O error "Resource temporarily unavailable". */
static int timed_out(const redisContext *c)
{
#ifdef REDIS_ERR_TIMEOUT
    if (c->err == REDIS_ERR_TIMEOUT)
        return 1;
#endif
    return c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable") != NULL;
}

/* The code (core.h) of the error a context holds, a timeout aside.
 * hiredis keeps only the text of an errno, so the errno is found again by
 * its text. */
static const char *context_code(const redisContext *c)
{
    static const int known[] = {ECONNREFUSED, ECONNRESET,    ECONNABORTED, EPIPE,  ETIMEDOUT, EHOSTUNREACH,
                                ENETUNREACH,  EADDRNOTAVAIL, ENOTCONN,     EACCES, ENOENT,    EINVAL};
    size_t i;
    switch (c->err) {
    case REDIS_ERR_EOF:
        return "EOF";
    case REDIS_ERR_PROTOCOL:
        return "EPROTO";
    case REDIS_ERR_OOM:
        return "ENOMEM";
    case REDIS_ERR_IO:
        for (i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strstr(c->errstr, strerror(known[i])))
                return msal_errno_name(known[i]);
        break;
    default:
        break;
    }
    return "EIO";
}

/* nil, "<what>: <the context's error>", its code; then the context is
 * freed. A timeout says so, with the limit. */
static int push_io_error(lua_State *L, rconn *rc, const char *what)
{
    int n;
    if (rc->c == NULL)
        return msal_push_error(L, "ENOTCONN", "%s: connection closed", what);
    if (timed_out(rc->c))
        n = msal_push_error(L, "ETIMEDOUT", "%s: timed out after %d ms", what, rc->timeout_ms);
    else
        n = msal_push_error(L, context_code(rc->c), "%s: %s", what,
                            rc->c->errstr[0] ? rc->c->errstr : "connection closed");
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

/* Pushes a reply as Lua: bulk and status strings as strings, integers as
 * integers, arrays as tables. At the top level nil is nil; inside arrays
 * it is false (an array cannot hold nil) and an error reply is {err = msg}. */
static void push_reply(lua_State *L, const redisReply *r, int depth)
{
    size_t i;
    luaL_checkstack(L, 3, "redis reply too deep");
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        if (depth >= MAX_DEPTH) {
            lua_pushboolean(L, 0);
            break;
        }
        lua_createtable(L, r->elements > 0x7fffffff ? 0 : (int)r->elements, 0);
        for (i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i], depth + 1);
            lua_rawseti(L, -2, (lua_Integer)(i + 1));
        }
        break;
    case REDIS_REPLY_ERROR:
        lua_createtable(L, 0, 1);
        lua_pushlstring(L, r->str, r->len);
        lua_setfield(L, -2, "err");
        break;
    default: /* REDIS_REPLY_NIL */
        if (depth > 0)
            lua_pushboolean(L, 0);
        else
            lua_pushnil(L);
        break;
    }
}

/* The reply in box (at stack index bi) as this call's results; the box is
 * emptied and the reply freed on every path. */
static int return_reply(lua_State *L, int bi)
{
    rbox *b = lua_touserdata(L, bi);
    int n = 1;
    if (b->r->type == REDIS_REPLY_ERROR) {
        n = msal_push_error(L, "SERVER", "%s", b->r->str);
    } else {
        push_reply(L, b->r, 0);
    }
    freeReplyObject(b->r);
    b->r = NULL;
    return n;
}

static rbox *new_box(lua_State *L)
{
    rbox *b = lua_newuserdata(L, sizeof *b);
    b->r = NULL;
    luaL_setmetatable(L, REPLY_MT);
    return b;
}

/* Runs one command on a fresh context during connect; returns 1 when the
 * reply is not an error, else pushes nil, message, code. */
static int setup_command(lua_State *L, rconn *rc, rbox *b, int argc, const char **argv, const char *what)
{
    size_t len[3];
    int i;
    pipe_guard g;
    for (i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    pipe_block(&g);
    b->r = redisCommandArgv(rc->c, argc, argv, len);
    pipe_restore(&g);
    if (b->r == NULL)
        return push_io_error(L, rc, what), 0;
    if (b->r->type == REDIS_REPLY_ERROR) {
        msal_push_error(L, "SERVER", "%s: %s", what, b->r->str);
        freeReplyObject(b->r);
        b->r = NULL;
        conn_drop(rc);
        return 0;
    }
    freeReplyObject(b->r);
    b->r = NULL;
    return 1;
}

static int opt_int_field(lua_State *L, const char *name, int def, int lo, int hi)
{
    lua_Integer v;
    int isnum;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < lo || v > hi)
        luaL_error(L, "redis.connect: '%s' must be an integer from %d to %d", name, lo, hi);
    lua_pop(L, 1);
    return (int)v;
}

/***
 * Connects to a Redis server over TCP, with a timeout on the connect and on
 * each command afterwards; authenticates and selects a database if asked.
 * @function connect
 * @tparam table opts `{host = "127.0.0.1", port = 6379, password?, username?
 *   (Redis 6 ACL user), db? (0), timeout_ms? (1000)}`
 * @treturn userdata the connection: `command`, `pipeline`, `read`, `close`
 *   (also closed by `__gc`, and by `__close` on Lua 5.4)
 * @return or nil, message, code: SERVER (AUTH or SELECT refused), or the
 *   connection's (ECONNREFUSED, ETIMEDOUT…)
 */
static int l_connect(lua_State *L)
{
    const char *host, *password, *username;
    int port, db, timeout_ms;
    rconn *rc;
    rbox *b;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "host");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "redis.connect: 'host' must be a string");
    host = lua_isnil(L, -1) ? "127.0.0.1" : lua_tostring(L, -1);
    /* host, password and username stay on the stack at 2, 3, 4: anchored */
    port = opt_int_field(L, "port", 6379, 1, 65535);
    db = opt_int_field(L, "db", 0, 0, 1 << 20);
    timeout_ms = opt_int_field(L, "timeout_ms", 1000, 1, 3600000);
    lua_getfield(L, 1, "password");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "redis.connect: 'password' must be a string");
    password = lua_tostring(L, -1);
    lua_getfield(L, 1, "username");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "redis.connect: 'username' must be a string");
    username = lua_tostring(L, -1);
    if (username && !password)
        return luaL_error(L, "redis.connect: 'username' needs a 'password'");

    rc = lua_newuserdata(L, sizeof *rc);
    rc->c = NULL;
    rc->timeout_ms = timeout_ms;
    luaL_setmetatable(L, CONN_MT);
    b = new_box(L);
    rc->c = redisConnectWithTimeout(host, port, tv_of(timeout_ms));
    if (rc->c == NULL)
        return luaL_error(L, "out of memory");
    if (rc->c->err)
        return push_io_error(L, rc, lua_pushfstring(L, "cannot connect to %s:%d", host, port));
    if (redisSetTimeout(rc->c, tv_of(timeout_ms)) != REDIS_OK)
        return push_io_error(L, rc, "cannot set the Redis timeout");
    if (password) {
        const char *argv[3] = {"AUTH", username ? username : password, password};
        if (!setup_command(L, rc, b, username ? 3 : 2, argv, "Redis AUTH failed"))
            return 3;
    }
    if (db != 0) {
        char num[16];
        const char *argv[2] = {"SELECT", num};
        snprintf(num, sizeof num, "%d", db);
        if (!setup_command(L, rc, b, 2, argv, "Redis SELECT failed"))
            return 3;
    }
    lua_pop(L, 1); /* the box */
    return 1;
}

/* Sends the command argv (nothing when argc is 0) and waits for one reply:
 * this call's results, as return_reply makes them. */
static int one_reply(lua_State *L, rconn *rc, int argc, const char **argv, const size_t *len, const char *what)
{
    void *r = NULL;
    int ok, bi;
    rbox *b;
    pipe_guard g;
    if (rc->c == NULL)
        return push_closed(L);
    b = new_box(L);
    bi = lua_gettop(L);
    pipe_block(&g);
    if (argc > 0) {
        r = redisCommandArgv(rc->c, argc, argv, len);
        ok = r != NULL;
    } else {
        ok = redisGetReply(rc->c, &r) == REDIS_OK && r != NULL;
    }
    pipe_restore(&g);
    b->r = r; /* freed by the box whatever happens next */
    if (!ok)
        return push_io_error(L, rc, what);
    return return_reply(L, bi);
}

/* Arguments first..top as argv/len arrays in Lua-owned memory; numbers are
 * turned into strings in place (the values are this call's own slots). */
static int gather_args(lua_State *L, int first, int top, const char ***argv, size_t **len)
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
    return argc;
}

/***
 * Sends one command and waits for its reply.
 * @function conn:command
 * @param ... the command and its arguments (strings or numbers)
 * @return the reply: string (bulk or status), integer, array table (nil
 *   elements are false, error elements `{err = msg}`) or nil for a nil reply
 * @return or nil, message, code: SERVER (an error reply; the connection is
 *   fine), or any other (the connection is gone and now closed)
 */
static int l_command(lua_State *L)
{
    rconn *rc = check_conn(L);
    const char **argv;
    size_t *len;
    int argc = gather_args(L, 2, lua_gettop(L), &argv, &len);
    return one_reply(L, rc, argc, argv, len, "Redis command failed");
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
    int n, i, rt, longest = 0;
    rbox *b;
    pipe_guard g;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    n = (int)lua_rawlen(L, 2);
    /* check every argument (and the stack room) before appending any: a
     * half-appended pipeline would send its first commands with the next
     * call */
    for (i = 1; i <= n; i++) {
        int j, m, t;
        lua_rawgeti(L, 2, i);
        if (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) < 1)
            return luaL_error(L, "redis pipeline: command %d must be a non-empty array", i);
        m = (int)lua_rawlen(L, -1);
        if (m > longest)
            longest = m;
        for (j = 1; j <= m; j++) {
            lua_rawgeti(L, -1, j);
            t = lua_type(L, -1);
            lua_pop(L, 1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                return luaL_error(L, "redis pipeline: command %d argument %d must be a string or number", i, j);
        }
        lua_pop(L, 1);
    }
    luaL_checkstack(L, longest + 8, "redis pipeline: command too long");
    if (rc->c == NULL)
        return push_closed(L);
    for (i = 1; i <= n; i++) {
        int j, m, base, ok;
        const char **argv;
        size_t *len;
        lua_rawgeti(L, 2, i);
        m = (int)lua_rawlen(L, -1);
        base = lua_gettop(L);
        for (j = 1; j <= m; j++)
            lua_rawgeti(L, base, j);
        gather_args(L, base + 1, base + m, &argv, &len);
        ok = redisAppendCommandArgv(rc->c, m, argv, len) == REDIS_OK; /* copies into hiredis' buffer */
        lua_settop(L, 2);
        if (!ok)
            return push_io_error(L, rc, "Redis pipeline failed");
    }
    lua_createtable(L, n, 0);
    rt = lua_gettop(L);
    b = new_box(L);
    for (i = 1; i <= n; i++) {
        void *r = NULL;
        int rcode;
        pipe_block(&g);
        rcode = redisGetReply(rc->c, &r);
        pipe_restore(&g);
        if (rcode != REDIS_OK || r == NULL)
            return push_io_error(L, rc, "Redis pipeline failed");
        b->r = r;
        push_reply(L, b->r, 1);
        freeReplyObject(b->r);
        b->r = NULL;
        lua_rawseti(L, rt, i);
    }
    lua_settop(L, rt);
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
    return one_reply(L, check_conn(L), 0, NULL, NULL, "Redis read failed");
}

/***
 * Closes the connection; calling it again does nothing.
 * @function conn:close
 */
static int l_close(lua_State *L)
{
    conn_drop(check_conn(L));
    return 0;
}

/***
 * Whether the connection is open (not closed, and no I/O error so far).
 * @function conn:is_open
 * @treturn boolean
 */
static int l_is_open(lua_State *L)
{
    lua_pushboolean(L, check_conn(L)->c != NULL);
    return 1;
}

static void describe(lua_State *L, void *self)
{
    rconn *rc = self;
    if (rc->c && rc->c->connection_type == REDIS_CONN_TCP)
        lua_pushfstring(L, "%s:%d", rc->c->tcp.host, rc->c->tcp.port);
}

static int l_box_gc(lua_State *L)
{
    rbox *b = luaL_checkudata(L, 1, REPLY_MT);
    if (b->r) {
        freeReplyObject(b->r);
        b->r = NULL;
    }
    return 0;
}

void msal_open_redis(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"command", l_command}, {"pipeline", l_pipeline}, {"read", l_read},
        {"close", l_close},     {"is_open", l_is_open},   {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {{"connect", l_connect}, {NULL, NULL}};
    static const msal_class conn_class = {CONN_MT, methods, l_close, describe, NULL, NULL};
    static const msal_class reply_class = {REPLY_MT, NULL, l_box_gc, NULL, NULL, NULL};
    msal_newclass(L, &conn_class);
    msal_newclass(L, &reply_class);
    luaL_newlib(L, funcs);
}
