/* open(2) and write(2) as the file code wants them: retried when a signal
 * interrupts them, and write_all writing everything or failing. */
#ifndef MSAL_FDIO_H
#define MSAL_FDIO_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

/* read(2)/write(2) with counts above SSIZE_MAX are implementation-defined. */
#define FDIO_CHUNK ((size_t)1 << 30)

static inline int fdio_open(const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* 0, or -1 with errno set. */
static inline int fdio_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > FDIO_CHUNK ? FDIO_CHUNK : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) { /* only a broken driver does this; do not spin on it */
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

#endif
