/* msal.core.loop: how the core waits, from Lua. The C side is poller.c's
 * epoll sets, which http.c and loopback.c fill with their sockets. The Lua
 * face: wait(fds, timeout_ms), so a Lua loop with several
 * pollable sources can block on all of their pollfds at once, and
 * poll_set(), one epoll set over those pollfds: msal.loop's own pollfd(),
 * the one descriptor a host loop (libuv, cqueues, nginx) watches for all of
 * the core's I/O. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "compat.h"
#include "core.h"
#include "poller.h"

/***
 * Blocks until one of the descriptors is readable (or in error), or until
 * the timeout. Interrupted by a signal, it returns early, like a timeout.
 * @function wait
 * @tparam table fds an array of descriptors, at most 4096
 * @tparam[opt=0] number timeout_ms `math.huge`: no limit
 * @treturn table the descriptors that are ready
 */
static int l_wait(lua_State *L)
{
    struct pollfd *pfd;
    size_t n, i;
    int timeout, rc, out = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    timeout = msal_opt_wait(L, 2);
    n = lua_rawlen(L, 1);
    luaL_argcheck(L, n <= 4096, 1, "too many fds");
    /* A userdata, so a raised error below cannot leak it. */
    pfd = lua_newuserdata(L, (n ? n : 1) * sizeof *pfd);
    for (i = 0; i < n; i++) {
        lua_Integer fd;
        lua_rawgeti(L, 1, (lua_Integer)(i + 1));
        fd = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 1, "fds must be non-negative integers");
        pfd[i].fd = (int)fd;
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
    }
    rc = poll(pfd, (nfds_t)n, timeout);
    if (rc < 0 && errno != EINTR)
        return luaL_error(L, "poll: %s", strerror(errno));
    lua_createtable(L, rc > 0 ? rc : 0, 0);
    for (i = 0; rc > 0 && i < n; i++) {
        if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
            lua_pushinteger(L, pfd[i].fd);
            lua_rawseti(L, -2, ++out);
        }
    }
    return 1;
}

#define POLL_SET_MT "msal.loop.poll_set"

static msal_poller *check_set(lua_State *L)
{
    msal_poller *p = luaL_checkudata(L, 1, POLL_SET_MT);
    if (p->fd < 0)
        luaL_error(L, "the poll set is closed");
    return p;
}

/***
 * A new, empty poll set.
 * @function poll_set
 * @treturn userdata with add, remove, pollfd, wait, close
 */
static int l_poll_set(lua_State *L)
{
    msal_poller *p = lua_newuserdata(L, sizeof *p);
    p->fd = -1;
    luaL_setmetatable(L, POLL_SET_MT);
    if (poller_open(p) != 0)
        return luaL_error(L, "epoll_create1: %s", strerror(errno));
    return 1;
}

static int check_fd(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 2);
    luaL_argcheck(L, fd >= 0 && fd <= INT_MAX, 2, "fds must be non-negative integers");
    return (int)fd;
}

/***
 * Watch fd for readability (again: changing nothing).
 * @function add
 */
static int l_set_add(lua_State *L)
{
    msal_poller *p = check_set(L);
    if (poller_watch(p, check_fd(L), POLLER_IN) != 0)
        return luaL_error(L, "epoll_ctl: %s", strerror(errno));
    return 0;
}

/***
 * Stop watching fd; one never watched is no error.
 * @function remove
 */
static int l_set_remove(lua_State *L)
{
    msal_poller *p = check_set(L);
    poller_unwatch(p, check_fd(L));
    return 0;
}

/***
 * The set's own descriptor: readable while a watched one is.
 * @function pollfd
 */
static int l_set_pollfd(lua_State *L)
{
    lua_pushinteger(L, check_set(L)->fd);
    return 1;
}

/***
 * Blocks up to timeout_ms (nil or <= 0: not at all; math.huge: no limit)
 * until a watched descriptor is readable.
 * @function wait
 * @treturn boolean whether one is
 */
static int l_set_wait(lua_State *L)
{
    msal_poller *p = check_set(L);
    poller_event ev[1];
    lua_pushboolean(L, msal_poll_step(L, p, ev, 1, msal_opt_wait(L, 2)) > 0);
    return 1;
}

/***
 * Closes the set; calling it again does nothing (also __gc, __close).
 * @function close
 */
static int l_set_close(lua_State *L)
{
    poller_close(luaL_checkudata(L, 1, POLL_SET_MT));
    return 0;
}

void msal_open_loop(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"wait", l_wait}, {"poll_set", l_poll_set}, {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"add", l_set_add},   {"remove", l_set_remove}, {"pollfd", l_set_pollfd},
        {"wait", l_set_wait}, {"close", l_set_close},   {NULL, NULL},
    };
    static const msal_class set_class = {POLL_SET_MT, methods, l_set_close, NULL, NULL, NULL};
    msal_newclass(L, &set_class);
    luaL_newlib(L, funcs);
}
