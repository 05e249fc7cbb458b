/* msal.core: the openers of its parts, and what the parts share.
 *
 * Errors, in every part. Misuse (a wrong argument type, an option out of
 * range: a bug in the caller) raises. Every other failure (the system, the
 * network, a peer, bad data) returns
 *
 *     nil, message, code
 *
 * pushed by msal_push_error or msal_push_errno, never by hand. The message
 * is for people: it names the path, host or command and says what went
 * wrong. The code is for programs, and is one of:
 *
 *   - an errno name (msal_errno_name) where the system failed: ENOENT,
 *     EACCES, EEXIST, ELOOP, EADDRINUSE, EADDRNOTAVAIL, ECONNREFUSED,
 *     ETIMEDOUT, EIO… The library also says in the system's words what the
 *     system's words fit: ETIMEDOUT (a lock still held after the retries, a
 *     Redis server that stopped answering), EINVAL (a host that is not
 *     loopback, a cache file that is not a regular file), ENOTDIR, ELOOP
 *     (a cache file that is a symbolic link), EPERM (a cache file others
 *     could have written), ENOTCONN (a closed Redis connection), EIO (an I/O
 *     failure with no more precise name). UNKNOWN is an errno without a
 *     name in msal_errno_name's table.
 *   - a library code, for what has no errno:
 *       SERVER    the server answered with an error (a Redis error reply);
 *                 the connection itself is fine
 *       EOF       the peer closed the connection (luv's name for it)
 *       BAD_DATA  data that does not parse or does not verify: base64, a
 *                 JWT, a JWK that does not fit its alg, an unsupported alg,
 *                 an AES-GCM blob whose tag fails (wrong key or damaged)
 *       CRYPTO    OpenSSL refused or failed: a key or signature it cannot
 *                 read, the random generator, a CA file it cannot load
 *       TLS       a TLS handshake or record failed (not a certificate check)
 *       CERT      the server's certificate failed a check (untrusted, expired,
 *                 not for the host name); the message names the check
 *       AUTH      the server refused the credentials (Redis AUTH)
 *
 * Two results carry a table instead of message and code, because their
 * callers need the detail: http's result() is nil, {kind, message} with the
 * transport contract's kinds (timeout, connect, tls, too_large, io,
 * canceled: lua/msal/transport/curl.lua, shared with the cosocket
 * transport), and the store's load() is nil, {message, section, key, field,
 * offset}.
 *
 * Names, in every part: a C function Lua calls is named l_… and has
 * an LDoc comment (slash and three stars); each part ends in one opener,
 * msal_open_<part> (luaopen_msal_core_<part> for a part that is its own
 * shared object), with short luaL_Reg lists and one msal_class per
 * userdata type. */
#ifndef MSAL_CORE_H
#define MSAL_CORE_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

/* Four shared objects, so that a process loads OpenSSL and libcurl only
 * when it uses them (a cache hit needs neither): msal.core, and
 * msal.core.http (libcurl), msal.core.crypto (libcrypto) and
 * msal.core.redis (libssl), which msal.core's table loads on first use. */
int luaopen_msal_core(lua_State *L);        /* open_core.c */
int luaopen_msal_core_http(lua_State *L);   /* http.c: libcurl multi */
int luaopen_msal_core_crypto(lua_State *L); /* crypto.c, jws.c: OpenSSL */
int luaopen_msal_core_redis(lua_State *L);  /* redis.c: the Redis client (RESP, TCP/TLS) for the Redis cache */
/* Keeps the shared object holding addr (and so its libraries) loaded for
 * the life of the process: see core.c. */
void msal_pin_module(void *addr);
/* Adds now_ms, time and sleep_ms to the table on top of the stack. */
void msal_open_clock(lua_State *L);
/* Each of these pushes its module table. */
void msal_open_store(lua_State *L);  /* store.c, lstore.c: the token store */
void msal_open_loop(lua_State *L);   /* loop.c: the poll loop */
void msal_open_fileio(lua_State *L); /* fileio.c: cache files */
void msal_open_loopback(lua_State *L); /* loopback.c: the redirect listener */

/* ---- errors (see the top of this file) ---- */

/* errno's name: "ENOENT" for ENOENT; "UNKNOWN" for one not in the table. */
const char *msal_errno_name(int e);
/* Pushes nil, the message (lua_pushfstring's format), code; returns 3. */
int msal_push_error(lua_State *L, const char *code, const char *fmt, ...);
/* Pushes nil, "<message>: <strerror(e)>", msal_errno_name(e); returns 3. */
int msal_push_errno(lua_State *L, int e, const char *fmt, ...);

/* ---- options ---- */

/* Field name of the options table at index t: 0 when it is nil, else 1 with
 * its value in *v; raises "'name' must be a number" for any other type. The
 * callers check the range they need. */
int msal_opt_number(lua_State *L, int t, const char *name, lua_Number *v);

/* ---- pollable objects: pollfd(), events(), timeout(), step([timeout_ms]) ---- */

/* A wait in ms from the Lua argument at idx, as poll() takes it: none,
 * nil, <= 0 or NaN is 0 (do not block); math.huge (or anything from
 * INT_MAX on) is -1 (no limit). */
int msal_opt_wait(lua_State *L, int idx);
/* How long step(timeout_ms) may block: the argument at idx (msal_opt_wait),
 * but 0 when the object has work ready and never past deadline_ms on
 * msal_now_ms's clock (-1: no deadline). */
int msal_step_wait(lua_State *L, int idx, int ready, int64_t deadline_ms);
/* step()'s wait: poller_wait (poller.h) for wait_ms (msal_step_wait),
 * storing at most max events in ev; returns how many, raising when epoll
 * fails. */
struct msal_poller;
struct poller_event;
int msal_poll_step(lua_State *L, struct msal_poller *p, struct poller_event *ev, int max, int wait_ms);
/* What timeout() returns: 0 when the object has work ready, nothing (only
 * socket activity can make progress) when deadline_ms < 0, else the ms
 * left until deadline_ms (0 once past). The same arguments as
 * msal_step_wait, so the two always agree. */
int msal_push_timeout(lua_State *L, int ready, int64_t deadline_ms);

/* ---- classes: the userdata types of the parts ---- */

/* What a pollable object is now. */
typedef struct msal_poll_state {
    int fd;              /* the one descriptor a host loop watches */
    int ready;           /* step() has work without waiting */
    int64_t deadline_ms; /* when step() has work even without I/O; -1: never */
    int pending;         /* what pending() says: work not yet reported */
} msal_poll_state;

/* A userdata type. */
typedef struct msal_class {
    const char *name;        /* its metatable's, e.g. "msal.http.multi" */
    const luaL_Reg *methods; /* through __index; NULL: none */
    lua_CFunction close;     /* __gc and, on Lua 5.4, __close: idempotent */
    /* __tostring is "<name> (<detail>)": describe pushes the detail, or
     * nothing for "closed". NULL: no __tostring. */
    void (*describe)(lua_State *L, void *self);
    /* Pollable objects: fills st and returns 1, or returns 0 once closed.
     * With it the class has pollfd(), events() and timeout() (raising
     * "<what> is closed" once closed) and pending() (0 once closed). */
    int (*poll_state)(void *self, msal_poll_state *st);
    const char *what; /* for that message, e.g. "http multi handle" */
} msal_class;

/* Registers c's metatable. c must outlive the Lua state (make it static). */
void msal_newclass(lua_State *L, const msal_class *c);

/* ---- memory ---- */

/* From 1 MiB: a 100-account cache file (1.3 MB) read into a Lua string took
 * ~300 first-touch faults. Rounding up to whole huge pages wastes at most
 * half of a block just over 1 MiB, and only for these few big blocks. */
#define MSAL_BIG_BLOCK ((size_t)1 << 20)
/* The registry field set in a state whose allocator bigalloc.c wrapped: the
 * parts in other shared objects (msal.core.redis) read it there. */
#define MSAL_BIG_ALLOC_KEY "msal.big_alloc"

/* bigalloc.c: on Lua 5.3/5.4 with lauxlib's allocator, serves new blocks of
 * MSAL_BIG_BLOCK and more from huge pages (a no-op elsewhere). */
void msal_wrap_big_alloc(lua_State *L);
/* bigalloc.c: heap_arena, into the table at the top of the stack. */
void msal_open_heap(lua_State *L);
/* Call before pushing a string of len bytes made in C (core.c). */
void msal_before_big_string(lua_State *L, size_t len);

/* The text at idx: a string, or the bytes object of fileio.read(path,
 * "bytes") (the content of a file kept in C); raises for anything else. */
const char *msal_check_text(lua_State *L, int idx, size_t *len);

/* fileio.c's write_atomic for content held in C (the store writes a cache
 * file without making it a Lua string first): path and mode are the Lua
 * arguments at path_arg and mode_arg; pushes write_atomic's results. */
int msal_write_atomic(lua_State *L, int path_arg, const char *content, size_t len, int mode_arg);

#endif
