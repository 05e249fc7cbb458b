/* msal.core.loop: how the core waits. The C side (poller.h) is an epoll set
 * that http.c fills with curl's sockets; its fd is readable whenever one of
 * them is ready, which is what makes a multi handle pollable from any host
 * loop. The Lua face: wait(fds, timeout_ms), so a Lua loop with several
 * pollable sources can block on all of their pollfds at once, and
 * poll_set(), one epoll set over those pollfds: msal.loop's own pollfd(),
 * the one descriptor a host loop (libuv, cqueues, nginx) watches for all of
 * the core's I/O. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "core.h"
#include "poller.h"

int poller_open(msal_poller *p)
{
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    return p->fd < 0 ? -1 : 0;
}

void poller_close(msal_poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

int poller_watch(msal_poller *p, int fd, unsigned events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (events & POLLER_IN ? EPOLLIN : 0u) | (events & POLLER_OUT ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    if (epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    /* Already watched: the owner changes its interest, or a closed fd's
     * number came back before its old registration was dropped. */
    if (errno == EEXIST)
        return epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev);
    return -1;
}

void poller_unwatch(msal_poller *p, int fd)
{
    /* ENOENT/EBADF: never watched, or closed (which drops it by itself). */
    (void)epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, NULL);
}

int poller_wait(msal_poller *p, poller_event *out, int max, int timeout_ms)
{
    struct epoll_event ev[64];
    int n, i;
    if (max > (int)(sizeof ev / sizeof ev[0]))
        max = (int)(sizeof ev / sizeof ev[0]);
    n = epoll_wait(p->fd, ev, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (i = 0; i < n; i++) {
        out[i].fd = ev[i].data.fd;
        out[i].events = (ev[i].events & EPOLLIN ? POLLER_IN : 0u) | (ev[i].events & EPOLLOUT ? POLLER_OUT : 0u) |
                        (ev[i].events & (EPOLLERR | EPOLLHUP) ? POLLER_ERR : 0u);
    }
    return n;
}

/* wait(fds, timeout_ms) -> array of the fds that are readable (or in error):
 * blocks until one is, or until the timeout. Interrupted by a signal, it
 * returns an empty array early, like a timeout. */
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

/* __gc, __close and close(): idempotent. */
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
    msal_newclass(L, POLL_SET_MT, methods, l_set_close, NULL);
    luaL_newlib(L, funcs);
}
