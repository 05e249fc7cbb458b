/* The helpers the C core's Lua faces share: the error shape (core.h),
 * option reading, classes with their tostring and pollable face, and
 * pinning a module. Linked into both shared objects, msal.core
 * (open_core.c) and msal.core.http (http.c). */
#define _GNU_SOURCE /* dladdr() and Dl_info are GNU extensions */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "clock.h"
#include "compat.h"
#include "core.h"
#include "poller.h"

/* lua_close() dlclose()s a module, which would unload libcurl with it
 * while process-wide state that points into it (its thread-specific data,
 * OpenSSL's exit handlers) lives on; a later exit then reads unmapped code
 * (LeakSanitizer's exit scan crashed on exactly that). Pin the module, and so
 * its libraries, for the life of the process; addr is any function of the
 * module. The handle is never closed on purpose. */
void msal_pin_module(void *addr)
{
    Dl_info info;
    if (dladdr(addr, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* ---- errors ---- */

const char *msal_errno_name(int e)
{
    /* A table, not a switch: some names share a number on some systems
     * (EAGAIN and EWOULDBLOCK, ENOTSUP and EOPNOTSUPP); the first wins. */
    static const struct {
        int e;
        const char *name;
    } names[] = {
        {EACCES, "EACCES"},         {EPERM, "EPERM"},
        {ENOENT, "ENOENT"},         {EEXIST, "EEXIST"},
        {EISDIR, "EISDIR"},         {ENOTDIR, "ENOTDIR"},
        {EROFS, "EROFS"},           {ENOSPC, "ENOSPC"},
        {EDQUOT, "EDQUOT"},         {EIO, "EIO"},
        {ELOOP, "ELOOP"},           {EINVAL, "EINVAL"},
        {EBUSY, "EBUSY"},           {EAGAIN, "EAGAIN"},
        {EMFILE, "EMFILE"},         {ENFILE, "ENFILE"},
        {ENOMEM, "ENOMEM"},         {EXDEV, "EXDEV"},
        {ENAMETOOLONG, "ENAMETOOLONG"}, {EBADF, "EBADF"},
        {EINTR, "EINTR"},           {ENOLCK, "ENOLCK"},
        {EFBIG, "EFBIG"},           {ETXTBSY, "ETXTBSY"},
        {EMLINK, "EMLINK"},         {ENOTEMPTY, "ENOTEMPTY"},
        {ESRCH, "ESRCH"},           {ENXIO, "ENXIO"},
        {EOVERFLOW, "EOVERFLOW"},   {ETIMEDOUT, "ETIMEDOUT"},
        {ENOTSUP, "ENOTSUP"},       {ENOSYS, "ENOSYS"},
        {EADDRINUSE, "EADDRINUSE"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
        {EAFNOSUPPORT, "EAFNOSUPPORT"}, {ECONNREFUSED, "ECONNREFUSED"},
        {ECONNRESET, "ECONNRESET"}, {ECONNABORTED, "ECONNABORTED"},
        {ENOTCONN, "ENOTCONN"},     {EPIPE, "EPIPE"},
        {ENETUNREACH, "ENETUNREACH"}, {EHOSTUNREACH, "EHOSTUNREACH"},
        {ENETDOWN, "ENETDOWN"},     {EPROTO, "EPROTO"},
        {EINPROGRESS, "EINPROGRESS"}, {ENOBUFS, "ENOBUFS"},
        {ENOTSOCK, "ENOTSOCK"},     {EMSGSIZE, "EMSGSIZE"},
        {ERANGE, "ERANGE"},         {ECANCELED, "ECANCELED"},
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].name;
    return "UNKNOWN";
}

int msal_push_error(lua_State *L, const char *code, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, code);
    return 3;
}

int msal_push_errno(lua_State *L, int e, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, ": %s", strerror(e));
    lua_concat(L, 2);
    lua_pushstring(L, msal_errno_name(e));
    return 3;
}

/* ---- options and classes ---- */

int msal_opt_number(lua_State *L, int t, const char *name, lua_Number *v)
{
    int type;
    lua_getfield(L, t, name);
    type = lua_type(L, -1);
    *v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (type == LUA_TNIL)
        return 0;
    if (type != LUA_TNUMBER)
        luaL_error(L, "'%s' must be a number", name);
    return 1;
}

/* ---- the pollable face ---- */

int msal_opt_wait(lua_State *L, int idx)
{
    lua_Number t = luaL_optnumber(L, idx, 0);
    if (!(t > 0)) /* also NaN */
        return 0;
    if (t >= (lua_Number)INT_MAX)
        return -1;
    return (int)t;
}

int msal_step_wait(lua_State *L, int idx, int ready, int64_t deadline_ms)
{
    int wait = msal_opt_wait(L, idx);
    if (ready)
        return 0;
    if (deadline_ms >= 0) {
        int64_t left = deadline_ms - msal_now_ms();
        if (left < 0)
            left = 0;
        if (wait < 0 || left < wait)
            wait = (int)left;
    }
    return wait;
}

int msal_push_timeout(lua_State *L, int ready, int64_t deadline_ms)
{
    int64_t left;
    if (ready) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (deadline_ms < 0)
        return 0;
    left = deadline_ms - msal_now_ms();
    lua_pushinteger(L, (lua_Integer)(left < 0 ? 0 : left));
    return 1;
}

int msal_poll_step(lua_State *L, msal_poller *p, poller_event *ev, int max, int wait_ms)
{
    int n = poller_wait(p, ev, max, wait_ms);
    if (n < 0)
        return luaL_error(L, "epoll_wait: %s", strerror(errno));
    return n;
}

/* ---- classes ---- */

static const msal_class *class_of(lua_State *L, void **self)
{
    const msal_class *c = lua_touserdata(L, lua_upvalueindex(1));
    *self = luaL_checkudata(L, 1, c->name);
    return c;
}

static void poll_state(lua_State *L, msal_poll_state *st)
{
    void *self;
    const msal_class *c = class_of(L, &self);
    st->fd = -1;
    st->ready = 0;
    st->deadline_ms = -1;
    st->pending = 0;
    if (!c->poll_state(self, st))
        luaL_error(L, "%s is closed", c->what);
}

/***
 * The one descriptor a host loop watches for all of the object's I/O.
 * @function pollfd
 * @treturn integer
 */
static int l_pollfd(lua_State *L)
{
    msal_poll_state st;
    poll_state(L, &st);
    lua_pushinteger(L, st.fd);
    return 1;
}

/***
 * What pollfd() is watched for, in cqueues' words: "r", readable.
 * @function events
 * @treturn string
 */
static int l_events(lua_State *L)
{
    msal_poll_state st;
    poll_state(L, &st);
    lua_pushliteral(L, "r");
    return 1;
}

/***
 * How long until step() has work even without socket activity: 0 when it
 * has some now, else the ms until the object's next deadline.
 * @function timeout
 * @treturn[1] integer ms
 * @treturn[2] nothing when only socket activity can make progress
 */
static int l_timeout(lua_State *L)
{
    msal_poll_state st;
    poll_state(L, &st);
    return msal_push_timeout(L, st.ready, st.deadline_ms);
}

/***
 * What the object still has to do: while above 0, step() has work (the
 * http multi: requests running or not yet reported; the loopback listener:
 * open connections). 0 once closed.
 * @function pending
 * @treturn integer
 */
static int l_pending(lua_State *L)
{
    void *self;
    const msal_class *c = class_of(L, &self);
    msal_poll_state st;
    st.pending = 0;
    lua_pushinteger(L, c->poll_state(self, &st) ? st.pending : 0);
    return 1;
}

static int l_tostring(lua_State *L)
{
    void *self;
    const msal_class *c = class_of(L, &self);
    int top = lua_gettop(L);
    c->describe(L, self);
    if (lua_gettop(L) == top)
        lua_pushliteral(L, "closed");
    lua_pushfstring(L, "%s (%s)", c->name, lua_tostring(L, -1));
    return 1;
}

void msal_before_big_string(lua_State *L, size_t len)
{
    int wrapped;
    if (len < MSAL_BIG_BLOCK)
        return;
    lua_getfield(L, LUA_REGISTRYINDEX, MSAL_BIG_ALLOC_KEY);
    wrapped = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!wrapped)
        return;
    /* Pay the collector now what it would ask for right after: a cache
     * serialized again usually finds the last result dead but not yet swept,
     * and sweeping it first lets the new string reuse its pages instead of
     * faulting in fresh ones (bigalloc.c). */
    lua_gc(L, LUA_GCSTEP, (int)(len >> 10 > INT_MAX ? INT_MAX : len >> 10));
}

void msal_newclass(lua_State *L, const msal_class *c)
{
    static const luaL_Reg pollable[] = {
        {"pollfd", l_pollfd}, {"events", l_events}, {"timeout", l_timeout}, {"pending", l_pending}, {NULL, NULL},
    };
    luaL_newmetatable(L, c->name);
    lua_pushcfunction(L, c->close);
    lua_setfield(L, -2, "__gc");
#if MSAL_HAS_CLOSE
    lua_pushcfunction(L, c->close);
    lua_setfield(L, -2, "__close");
#endif
    if (c->describe) {
        lua_pushlightuserdata(L, (void *)c);
        lua_pushcclosure(L, l_tostring, 1);
        lua_setfield(L, -2, "__tostring");
    }
    if (c->methods || c->poll_state) {
        lua_newtable(L);
        if (c->methods)
            luaL_setfuncs(L, c->methods, 0);
        if (c->poll_state) {
            lua_pushlightuserdata(L, (void *)c);
            luaL_setfuncs(L, pollable, 1);
        }
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
