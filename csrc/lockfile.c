/* The cross-process protocol around a cache file (lockfile.h): temporary
 * files, their sweep, and the lock file.
 *
 * msal-node-extensions and msal-extensions (Python) write the cache in
 * place and never recover a lock left by a killed process; their users
 * report corrupted JSON and caches blocked until someone deletes the lock
 * by hand. Here writers go through temporary files (fileio.c renames them
 * over the cache), and the lock — the same `<cache>.lockfile` protocol, so
 * all of them exclude each other — removes locks whose holder is gone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fdio.h"
#include "lockfile.h"

#define TMP_HEX 16

/* ---- temporary files ---- */

/* The directory that holds path, opened for reading; -1 with errno set. */
static int open_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int fd, err;
    if (slash == NULL)
        return fdio_open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (slash == path)
        return fdio_open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if ((dir = strndup(path, (size_t)(slash - path))) == NULL)
        return -1;
    fd = fdio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    err = errno;
    free(dir);
    errno = err;
    return fd;
}

/* Unguessability is not needed — O_EXCL refuses a name someone planted and
 * we draw again — only few collisions, so time, pid and a counter mixed by
 * splitmix64 do. */
static uint64_t tmp_random(void)
{
    static uint64_t counter;
    struct timespec ts = {0, 0};
    uint64_t z;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        ts.tv_sec = ts.tv_nsec = 0; /* the counter still varies the name */
    z = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    z ^= (uint64_t)getpid() << 40;
    z += ++counter * UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* flock(LOCK_EX), waiting. A file system without flock leaves the file
 * unlocked, which costs only what the lock would have added (see the
 * callers), so that failure is not one of the operation. */
static void flock_wait(int fd)
{
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
}

/* Creates `<path>.tmp.<pid>.<16 hex digits>` exclusively, mode 0600, into
 * tmp (plen + LOCKFILE_TMP_EXTRA bytes), and returns its descriptor holding a flock
 * that lasts until the descriptor is closed: lockfile_sweep_temps leaves a file
 * whose flock is busy, because the PID in the name names no process in
 * another PID namespace (a container with the cache directory mounted).
 * A sweeper that got the flock first may have removed the file before we
 * held it; we then draw another name. -1 with errno set on failure. */
int lockfile_create_temp(const char *path, char *tmp, size_t tlen)
{
    int tries;
    for (tries = 0; tries < 100; tries++) {
        uint64_t r = tmp_random();
        struct stat st;
        int fd, n, err;
        n = snprintf(tmp, tlen, "%s.tmp.%ld.%08lx%08lx", path, (long)getpid(), (unsigned long)(r >> 32),
                     (unsigned long)(r & 0xffffffffu));
        if (n < 0 || (size_t)n >= tlen) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = fdio_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            return -1;
        }
        flock_wait(fd);
        if (fstat(fd, &st) != 0) {
            err = errno;
            (void)unlink(tmp);
            (void)close(fd); /* nothing written yet */
            errno = err;
            return -1;
        }
        if (st.st_nlink > 0)
            return fd;
        (void)close(fd); /* swept before we held it: nothing written, nothing to remove */
    }
    errno = EEXIST;
    return -1;
}

/* The PID in `name` if it is exactly `<base>.tmp.<pid>.<16 hex digits>` as
 * lockfile_create_temp spells it, else 0. Names come from the directory, so whoever
 * can write there chose them: a sign, a leading zero, upper-case hex,
 * anything after the digits, or a number that does not fit a pid_t (an int
 * wherever this builds) is not one of ours, and must never reach kill(). */
static pid_t temp_name_pid(const char *name, const char *base, size_t blen)
{
    const char *s;
    long v = 0;
    int i;
    if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0)
        return 0;
    s = name + blen + 5;
    if (*s < '1' || *s > '9')
        return 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT_MAX - (*s - '0')) / 10)
            return 0;
        v = v * 10 + (*s - '0');
    }
    if (*s++ != '.')
        return 0;
    for (i = 0; i < TMP_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[TMP_HEX] == '\0' ? (pid_t)v : 0;
}

/* EPERM means the process exists under another user. */
static int pid_gone(pid_t pid)
{
    return kill(pid, 0) != 0 && errno == ESRCH;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Removes name (in the directory dfd) if it is still a regular file of ours
 * whose flock nobody holds. It is looked at before it is opened, because
 * opening a device or a FIFO can have effects, and again once its flock is
 * ours, because only then can no writer of ours be using it (a writer keeps
 * the flock from creation to rename). A busy or failing flock leaves the
 * file: without arbitration we do not remove, as in break_stale. */
static void remove_leftover(int dfd, const char *name)
{
    struct stat seen, held, now;
    int fd;
    if (fstatat(dfd, name, &seen, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(seen.st_mode) || seen.st_uid != geteuid())
        return;
    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return; /* unreadable (a write_atomic mode without u+r): left, as before sweeping existed */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && same_file(&seen, &held) &&
        fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 && same_file(&held, &now))
        /* A failure (EROFS, EACCES…) leaves it, as before sweeping existed;
         * the caller's operation does not depend on it. */
        (void)unlinkat(dfd, name, 0);
    (void)close(fd); /* read-only, nothing written; releases the flock after the unlink */
}

/* Removes the temporary files that lockfile_create_temp made for path in processes
 * that are gone — a writer killed between create and rename leaves one, and
 * nothing else ever would. Only names of exactly that form for this path,
 * in its directory, whose PID kill() reports as no process (ESRCH), whose
 * flock is free, and which are regular files of ours (never a link's
 * target) are removed. Best effort: when the directory cannot be listed,
 * leftovers stay, as they did before. */
void lockfile_sweep_temps(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    int dfd = open_dir_of(path);
    struct dirent *e;
    DIR *d;
    if (dfd < 0)
        return;
    if ((d = fdopendir(dfd)) == NULL) {
        (void)close(dfd);
        return;
    }
    /* NULL is the end or a read error; either way there is no more to see. */
    while ((e = readdir(d)) != NULL) {
        pid_t pid = temp_name_pid(e->d_name, base, blen);
        if (pid > 0 && pid_gone(pid))
            remove_leftover(dfd, e->d_name);
    }
    (void)closedir(d); /* also closes dfd; a directory read-only, nothing to lose */
}

/* ---- the lock ---- */

/* First integer of the content: msal-node writes "<pid>", msal-python
 * "<pid> <argv0>". 0 when there is none or it is no valid pid — kill() on
 * 0 or a negative number would address process groups. */
static long parse_pid(const char *s)
{
    long v = 0;
    int digits = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (++digits > 9)
            return 0;
        v = v * 10 + (*s - '0');
    }
    if (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
        return 0;
    return v;
}

static double age_ms(const struct stat *st)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return 0; /* unknown age: never old enough to steal */
    return (double)(now.tv_sec - st->st_mtim.tv_sec) * 1000.0 + (double)(now.tv_nsec - st->st_mtim.tv_nsec) / 1e6;
}

/* The PID in an open lock file, 0 if none, -1 on a read error. */
static long read_pid(int fd)
{
    char text[32];
    ssize_t n;
    do
        n = pread(fd, text, sizeof text - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    text[n] = '\0';
    return parse_pid(text);
}

static void holder_of(int fd, long *holder)
{
    long pid = read_pid(fd);
    if (pid > 0)
        *holder = pid;
}

enum { STALE_HELD, STALE_GONE, STALE_REMOVED, STALE_ERROR };

/* Looks at the lock file another process created and removes it when its
 * holder is gone.
 *
 * Removing by name is racy in general: two waiters that both judged the
 * same dead lock stale could each unlink "the lock file", the second one
 * deleting the fresh lock the first just created. The scheme here makes
 * that impossible among processes that follow it:
 *   1. open the existing file and take flock(LOCK_EX|LOCK_NB) on it. Every
 *      holder of ours (and msal-python's portalocker) keeps that flock for
 *      as long as it holds the lock, so a busy flock means a live holder;
 *   2. with the flock held, check that the path still names the inode we
 *      opened (lstat vs fstat). Whoever unlinks a lock file — a waiter here
 *      or a holder of ours in unlock — does it while holding the flock of
 *      that very inode, so while we hold it nobody else can unlink it or
 *      put another file in its place;
 *   3. only then judge the content and unlink it if stale.
 * A waiter that opened the same dead file later gets the flock after we
 * closed it, sees that the path is gone or names a new inode, and leaves
 * it alone. msal-node holders do not flock, but they unlink only their own
 * file, whose PID is alive, which we never judge stale.
 *
 * Stale means: the PID is parsed and no such process exists (ESRCH; EPERM
 * means it exists under another user), or it is our own PID while nobody
 * holds the flock (containers reuse small PIDs across restarts; our own
 * locks always hold the flock), or there is no PID and the file is older
 * than stale_after_ms. Our lock files have their PID from the moment they
 * exist (try_link); one without can be msal-node's or an older lua-msal's,
 * killed between creating the file and writing the PID, or ours on a file
 * system without hard links (try_create). A lock of a live process is never
 * taken, however old. */
static int break_stale(const char *path, double stale_after_ms, long *holder, int *err)
{
    struct stat fst, pst;
    long pid;
    int fd, stale = 0;
    /* Read-write because flock(LOCK_EX) over NFS needs a writable
     * descriptor; read-only still serves local file systems. */
    fd = fdio_open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0 && (errno == EACCES || errno == EROFS))
        fd = fdio_open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return STALE_GONE;
        *err = errno;
        return STALE_ERROR;
    }
    holder_of(fd, holder); /* for the timeout message: racy, but only informative */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        /* Busy: a live holder. Any other error means this file system
         * cannot arbitrate, and without arbitration we do not remove. */
        (void)close(fd);
        return STALE_HELD;
    }
    if (fstat(fd, &fst) != 0) {
        *err = errno;
        (void)close(fd);
        return STALE_ERROR;
    }
    if (lstat(path, &pst) != 0 || pst.st_dev != fst.st_dev || pst.st_ino != fst.st_ino) {
        (void)close(fd);
        return STALE_GONE;
    }
    if ((pid = read_pid(fd)) < 0) {
        *err = errno;
        (void)close(fd);
        return STALE_ERROR;
    }
    *holder = pid;
    if (pid > 0) {
        if (pid == (long)getpid())
            stale = 1;
        else if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
            stale = 1;
    } else if (age_ms(&fst) > stale_after_ms) {
        stale = 1;
    }
    if (stale && unlink(path) != 0 && errno != ENOENT) {
        *err = errno;
        (void)close(fd);
        return STALE_ERROR;
    }
    (void)close(fd); /* releases the flock, after the unlink */
    return stale ? STALE_REMOVED : STALE_HELD;
}

enum { LOCK_TAKEN, LOCK_EXISTS, LOCK_VANISHED, LOCK_FAILED, LOCK_NO_LINKS };

static int write_pid(int fd)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%ld", (long)getpid());
    if (n < 0 || (size_t)n >= sizeof text) {
        errno = EOVERFLOW;
        return -1;
    }
    return fdio_write_all(fd, text, (size_t)n);
}

/* Records that lk holds the lock through fd (whose stat is fst) if lk->path
 * names that file: LOCK_TAKEN, or LOCK_VANISHED when it was removed under
 * us and the caller tries again. fd is not consumed. */
static int own(lockfile *lk, int fd, const struct stat *fst)
{
    struct stat pst;
    if (lstat(lk->path, &pst) != 0 || !same_file(&pst, fst))
        return LOCK_VANISHED;
    lk->fd = fd;
    lk->owner = getpid();
    lk->dev = fst->st_dev;
    lk->ino = fst->st_ino;
    return LOCK_TAKEN;
}

/* Whether link(2) failed because this file system has no hard links (FAT,
 * some FUSE and SMB mounts), rather than because of the lock. */
static int links_unsupported(int e)
{
    return e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS;
}

/* Gives tmp — already flocked by fd and holding our PID — the lock name.
 * link(2) does it atomically and only if the name is free, so no waiter
 * ever sees a lock file of ours without a PID, which it could only judge by
 * age (break_stale). On success fd becomes the lock's descriptor. */
static int try_link(lockfile *lk, int fd, const char *tmp)
{
    struct stat fst;
    /* Before the link: a failure after it would leave a published lock. */
    if (fstat(fd, &fst) != 0)
        return LOCK_FAILED;
    if (link(tmp, lk->path) != 0) {
        if (errno == EEXIST)
            return LOCK_EXISTS;
        return links_unsupported(errno) ? LOCK_NO_LINKS : LOCK_FAILED;
    }
    return own(lk, fd, &fst);
}

/* Without hard links: the lock file is created in place with O_EXCL and
 * gets our PID afterwards, as msal-node does, so for a moment it has none.
 * The flock comes before the PID so a file with our PID is always flocked
 * (see break_stale); blocking is fine, since besides us only a waiter
 * checking staleness takes it, for a few syscalls. */
static int try_create(lockfile *lk)
{
    struct stat fst;
    int fd = fdio_open(lk->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600), r, err;
    if (fd < 0)
        return errno == EEXIST ? LOCK_EXISTS : LOCK_FAILED;
    flock_wait(fd);
    r = fstat(fd, &fst) == 0 ? own(lk, fd, &fst) : LOCK_FAILED;
    if (r == LOCK_TAKEN && write_pid(fd) != 0) {
        /* A lock file without a PID would look stale after stale_after_ms
         * while held, so a failed write gives the lock up. */
        r = LOCK_FAILED;
        lk->fd = -1;
        err = errno;
        (void)unlink(lk->path);
        errno = err;
    }
    if (r != LOCK_TAKEN) {
        err = errno;
        (void)close(fd); /* only our PID, if anything, went through it */
        errno = err;
    }
    return r;
}

/* The temporary file try_link publishes: created, flocked, given our PID.
 * Returns its descriptor, or -1 with errno set and nothing left behind. */
static int prepare_lock_temp(const char *path, char *tmp, size_t tlen)
{
    int fd = lockfile_create_temp(path, tmp, tlen), err;
    if (fd < 0)
        return -1;
    if (write_pid(fd) != 0) {
        err = errno;
        (void)unlink(tmp);
        (void)close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* Gives up the lock's temporary file: its name, then its flock. */
static void discard_temp(int fd, const char *tmp)
{
    /* A failed unlink leaves a leftover that a later lock holder sweeps
     * once we are gone; nothing was written that anyone needs. */
    (void)unlink(tmp);
    (void)close(fd);
}

/* The attempts and waits of lockfile_acquire. *tfd is the temporary file
 * try_link publishes (-1 once the file system turned out to have no hard
 * links). Returns LOCK_TAKEN, LOCK_EXISTS when the retries ran out, or
 * LOCK_FAILED with errno set and *what saying what failed. */
static int attempts(lockfile *lk, int *tfd, const char *tmp, const lockfile_opts *o, long *holder, const char **what)
{
    double attempt = 0;
    int free_retries = 0;
    for (;;) {
        int r = *tfd >= 0 ? try_link(lk, *tfd, tmp) : try_create(lk), err = 0;
        if (r == LOCK_NO_LINKS) {
            discard_temp(*tfd, tmp);
            *tfd = -1;
            continue;
        }
        if (r == LOCK_TAKEN)
            return r;
        if (r == LOCK_FAILED) {
            /* EACCES, ENOENT…: waiting would not change it. */
            *what = "cannot create lock file";
            return r;
        }
        if (r == LOCK_EXISTS) {
            int st = break_stale(lk->path, o->stale_after_ms, holder, &err);
            if (st == STALE_ERROR) {
                *what = "cannot inspect lock file";
                errno = err;
                return LOCK_FAILED;
            }
            if (st != STALE_HELD)
                r = LOCK_VANISHED;
        }
        /* The file went away (released, or stale and removed): try again
         * at once, but boundedly, so a pathological peer cannot spin us. */
        if (r == LOCK_VANISHED && free_retries++ < 16)
            continue;
        if (attempt >= o->retries)
            return LOCK_EXISTS;
        attempt++;
        msal_sleep_ms(o->delay_ms);
    }
}

void lockfile_init(lockfile *lk, const char *path, size_t path_len)
{
    lk->fd = -1;
    lk->owner = 0;
    lk->dev = 0;
    lk->ino = 0;
    memcpy(lk->path, path, path_len);
    lk->path[path_len] = '\0';
}

int lockfile_acquire(lockfile *lk, const lockfile_opts *o, long *holder, int *err, const char **what)
{
    size_t tlen = strlen(lk->path) + LOCKFILE_TMP_EXTRA;
    char *tmp = malloc(tlen);
    int tfd, r;
    *what = "cannot create lock file";
    if (tmp == NULL) {
        *err = ENOMEM;
        return LOCKFILE_FAILED;
    }
    if ((tfd = prepare_lock_temp(lk->path, tmp, tlen)) < 0) {
        *err = errno;
        free(tmp);
        return LOCKFILE_FAILED;
    }
    r = attempts(lk, &tfd, tmp, o, holder, what);
    *err = errno;
    if (r == LOCK_TAKEN) {
        /* tfd is the lock's descriptor now; the lock name keeps the file.
         * A failed unlink leaves a second name a later holder sweeps. */
        if (tfd >= 0)
            (void)unlink(tmp);
        free(tmp);
        lockfile_sweep_temps(lk->path);
        return LOCKFILE_TAKEN;
    }
    if (tfd >= 0)
        discard_temp(tfd, tmp);
    free(tmp);
    return r == LOCK_FAILED ? LOCKFILE_FAILED : LOCKFILE_BUSY;
}

/* Unlinks the lock file only if the path still names the file we created:
 * had it been judged stale and replaced, the new file is someone else's
 * lock. The unlink happens while our flock is held, which is what makes
 * break_stale's identity check sufficient. In a forked child only the
 * descriptor is closed: flock(LOCK_UN) or an unlink would release the
 * parent's lock, which shares the open file description. */
int lockfile_release(lockfile *lk)
{
    struct stat st;
    int err = 0;
    if (lk->fd < 0)
        return 0;
    if (lk->owner == getpid() && lstat(lk->path, &st) == 0 && st.st_dev == lk->dev && st.st_ino == lk->ino &&
        unlink(lk->path) != 0 && errno != ENOENT)
        err = errno;
    (void)close(lk->fd); /* only the PID was written, and nobody reads it back from us */
    lk->fd = -1;
    return err;
}
