/* Openers of msal.core's parts. */
#ifndef MSAL_CORE_H
#define MSAL_CORE_H

#include <stdint.h>

#include <lua.h>

int luaopen_msal_core(lua_State *L);
/* Adds now_ms, time and sleep_ms to the table on top of the stack. */
void msal_open_clock(lua_State *L);
/* Each of these pushes its module table. */
void msal_open_store(lua_State *L);  /* store.c, lstore.c: the token store */
void msal_open_crypto(lua_State *L); /* crypto.c: OpenSSL */
void msal_open_http(lua_State *L);   /* http.c: libcurl multi */
void msal_open_loop(lua_State *L);   /* loop.c: the poll loop */
void msal_open_fileio(lua_State *L); /* fileio.c: cache files */
void msal_open_redis(lua_State *L);  /* redis.c: hiredis client for the Redis cache */
void msal_open_loopback(lua_State *L); /* loopback.c: the redirect listener */

/* Field name of the options table at index t: 0 when it is nil, else 1 with
 * its value in *v; raises "'name' must be a number" for any other type. The
 * callers check the range they need. */
int msal_opt_number(lua_State *L, int t, const char *name, lua_Number *v);

/* What a pollable object's timeout() returns: 0 when it has work ready,
 * nothing (no deadline: only socket activity can make progress) when
 * deadline_ms < 0, else the milliseconds left until deadline_ms on
 * msal_now_ms's clock (0 once past). */
int msal_push_timeout(lua_State *L, int ready, int64_t deadline_ms);

/* bigalloc.c: on Lua 5.3/5.4 with lauxlib's allocator, serves new blocks of
 * 8 MiB and more from huge pages (a no-op elsewhere). */
void msal_wrap_big_alloc(lua_State *L);
/* Call before pushing a string of len bytes made in C (bigalloc.c). */
void msal_before_big_string(lua_State *L, size_t len);

/* fileio.c's write_atomic for content held in C (the store writes a cache
 * file without making it a Lua string first): path and mode are the Lua
 * arguments at path_arg and mode_arg; pushes write_atomic's results. */
int msal_write_atomic(lua_State *L, int path_arg, const char *content, size_t len, int mode_arg);

#endif
