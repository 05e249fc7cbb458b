/* The epoll sets of poller.h: C only, no Lua. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

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
