/* The waiting half of the core (poller.c): a set of watched file descriptors
 * behind one fd that is itself pollable, so a host loop (libuv, cqueues, a
 * plain poll) can wait on everything the core waits on with one watcher.
 * Linux epoll; level-triggered, so an event not handled now is reported
 * again by the next wait and nothing can be lost between steps. */
#ifndef MSAL_POLLER_H
#define MSAL_POLLER_H

#define POLLER_IN 1u
#define POLLER_OUT 2u
#define POLLER_ERR 4u /* error or hang-up: reported, never asked for */

typedef struct msal_poller {
    int fd; /* the epoll fd, -1 when closed */
} msal_poller;

typedef struct poller_event {
    int fd;
    unsigned events; /* POLLER_* */
} poller_event;

/* 0, or -1 with errno set. */
int poller_open(msal_poller *p);
void poller_close(msal_poller *p);
/* Watches fd for events (POLLER_IN|POLLER_OUT), or changes what it is
 * watched for; 0, or -1 with errno set. */
int poller_watch(msal_poller *p, int fd, unsigned events);
/* Stops watching fd; an fd not watched (or already closed) is no error. */
void poller_unwatch(msal_poller *p, int fd);
/* Waits up to timeout_ms (-1: no limit) for events, stores at most max of
 * them; returns how many (0 on timeout or signal), or -1 with errno set. */
int poller_wait(msal_poller *p, poller_event *out, int max, int timeout_ms);

#endif
