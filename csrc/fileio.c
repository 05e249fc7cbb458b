/* msal.core.fileio: the file primitives under the persistent token cache.
 * msal-node-extensions and msal-extensions (Python) write the cache in place
 * and never recover a lock left by a killed process; their users report
 * corrupted JSON and caches blocked until someone deletes the lock by hand.
 * So writes here go to a temporary file that is renamed over the cache, and
 * the lock — the same `<cache>.lockfile` protocol, so all of them exclude
 * each other — removes locks whose holder is gone.
 *
 * Failures return nil, message, code (core.h: an errno name, as luv does)
 * because the caller decides what a missing or locked file means; only
 * misuse raises.
 * No Lua error can be raised while a descriptor or heap block is owned by C
 * alone: either the error is pushed after cleaning up, or the resource sits
 * in a userdata whose __gc releases it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
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

#include "compat.h"
#include "core.h"

#define LOCK_MT "msal.fileio.lock"
#define GUARD_MT "msal.fileio.guard"

/* read(2)/write(2) with counts above SSIZE_MAX are implementation-defined. */
#define IO_CHUNK ((size_t)1 << 30)

/* nil, "<what> <path>: <strerror>", errno name (core.h) */
static int push_oserr(lua_State *L, const char *what, const char *path, int err)
{
    return msal_push_errno(L, err, "%s %s", what, path);
}

/* lua_pushfstring has no %o, and modes are only ever read in octal. */
static const char *mode_str(char out[8], mode_t mode)
{
    snprintf(out, 8, "%04o", (unsigned)(mode & 07777));
    return out;
}

static void sleep_ms(double ms)
{
    struct timespec ts;
    if (!(ms > 0))
        return;
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (double)ts.tv_sec * 1000) * 1e6);
    if (ts.tv_nsec > 999999999L)
        ts.tv_nsec = 999999999L;
    /* A signal only shortens the wait: nanosleep leaves the rest in ts. */
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n > IO_CHUNK ? IO_CHUNK : n);
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

static int open_retry(const char *path, int flags, mode_t mode)
{
    int fd;
    do
        fd = open(path, flags, mode);
    while (fd < 0 && errno == EINTR);
    return fd;
}

/* A path with an embedded NUL would name another file in C than in Lua. */
static const char *check_path(lua_State *L, int idx, size_t *len)
{
    size_t n;
    const char *path = luaL_checklstring(L, idx, &n);
    luaL_argcheck(L, n > 0 && strlen(path) == n, idx, "path is empty or contains a NUL byte");
    if (len)
        *len = n;
    return path;
}

/* Pushes the directory that holds path: it is what rename and the
 * permission check are about. */
static const char *push_dirname(lua_State *L, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        lua_pushliteral(L, ".");
    else if (slash == path)
        lua_pushliteral(L, "/");
    else
        lua_pushlstring(L, path, (size_t)(slash - path));
    return lua_tostring(L, -1);
}

/* ino and dev are compared for equality only, so the wrap of values above
 * 2^63 on 5.4 (and rounding above 2^53 on LuaJIT) does not matter. */
static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_stat(lua_State *L, const struct stat *st)
{
    const char *type = S_ISREG(st->st_mode)   ? "file"
                       : S_ISDIR(st->st_mode) ? "directory"
                       : S_ISLNK(st->st_mode) ? "link"
                                              : "other";
    lua_createtable(L, 0, 9);
    set_int(L, "mtime_sec", (lua_Integer)st->st_mtim.tv_sec);
    set_int(L, "mtime_nsec", (lua_Integer)st->st_mtim.tv_nsec);
    set_int(L, "size", (lua_Integer)st->st_size);
    set_int(L, "ino", (lua_Integer)st->st_ino);
    set_int(L, "dev", (lua_Integer)st->st_dev);
    set_int(L, "mode", (lua_Integer)(st->st_mode & 07777));
    set_int(L, "uid", (lua_Integer)st->st_uid);
    set_int(L, "nlink", (lua_Integer)st->st_nlink);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
}

/* Owns a descriptor and a heap block across Lua calls that may raise. */
typedef struct guard {
    int fd;
    char *p;
} guard;

static void guard_release(guard *g)
{
    if (g->fd >= 0) {
        /* Read-only descriptor: a close error cannot lose data. */
        (void)close(g->fd);
        g->fd = -1;
    }
    free(g->p);
    g->p = NULL;
}

static int guard_gc(lua_State *L)
{
    guard_release(luaL_checkudata(L, 1, GUARD_MT));
    return 0;
}

static guard *push_guard(lua_State *L)
{
    guard *g = lua_newuserdata(L, sizeof *g);
    g->fd = -1;
    g->p = NULL;
    luaL_setmetatable(L, GUARD_MT);
    return g;
}

/***
 * Reads a whole regular file.
 * Does not follow a symbolic link at path. The stat table is taken before
 * reading, so a writer that changes the file meanwhile makes it differ from
 * the next `stat` and the caller reads again.
 * @function read
 * @tparam string path
 * @treturn string the content
 * @treturn table `{mtime_sec, mtime_nsec, size, ino, dev, mode, uid, nlink, type}`
 * @return or nil, message, errno name
 */
static int f_read(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    guard *g = push_guard(L);
    struct stat st;
    size_t n = 0, cap;
    int err;
    /* O_NONBLOCK: a FIFO planted at path must not hang us before the
     * regular-file check; it changes nothing for regular files. */
    g->fd = open_retry(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (g->fd < 0)
        return push_oserr(L, "cannot open", path, errno);
    if (fstat(g->fd, &st) != 0) {
        err = errno;
        guard_release(g);
        return push_oserr(L, "cannot stat", path, err);
    }
    if (!S_ISREG(st.st_mode)) {
        guard_release(g);
        return msal_push_error(L, "EINVAL", "%s is not a regular file", path);
    }
    /* One byte more than the size, so the read that sees EOF needs no
     * growth; the file may still grow while we read, hence the loop. */
    if ((uintmax_t)st.st_size >= (uintmax_t)(SIZE_MAX / 2)) {
        guard_release(g);
        return push_oserr(L, "cannot read", path, EFBIG);
    }
    cap = (size_t)st.st_size + 1;
    if ((g->p = malloc(cap)) == NULL) {
        guard_release(g);
        return push_oserr(L, "cannot read", path, ENOMEM);
    }
    for (;;) {
        ssize_t r;
        size_t want;
        if (n == cap) {
            char *p = cap < SIZE_MAX / 2 ? realloc(g->p, cap * 2) : NULL;
            if (p == NULL) {
                guard_release(g);
                return push_oserr(L, "cannot read", path, ENOMEM);
            }
            g->p = p;
            cap *= 2;
        }
        want = cap - n > IO_CHUNK ? IO_CHUNK : cap - n;
        r = read(g->fd, g->p + n, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            guard_release(g);
            return push_oserr(L, "cannot read", path, err);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    lua_pushlstring(L, g->p, n);
    push_stat(L, &st);
    guard_release(g);
    return 2;
}

/***
 * The file's metadata without following a symbolic link; compare mtime,
 * size and ino with the table `read` returned to know whether to re-read.
 * @function stat
 * @tparam string path
 * @treturn table as for `read`
 * @return or nil, message, errno name
 */
static int f_stat(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    struct stat st;
    if (lstat(path, &st) != 0)
        return push_oserr(L, "cannot stat", path, errno);
    push_stat(L, &st);
    return 1;
}

/***
 * Refuses a cache file that someone else could have written or could
 * replace: the file must be a regular file owned by the effective user and
 * not writable by group or others; its directory must be owned by the user
 * or root and not world-writable unless sticky (like /tmp). A file that does
 * not exist yet passes when its directory does (write_atomic makes it 0600).
 * @function check_private
 * @tparam string path
 * @treturn true
 * @return or nil, message saying what is wrong, code: the errno name when
 * a stat failed, else ENOTDIR (the directory is none), ELOOP (the file is
 * a symbolic link), EINVAL (not a regular file), EPERM (someone else could
 * have written or replaced it)
 */
static int f_check_private(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    const char *dir = push_dirname(L, path);
    uid_t me = geteuid();
    struct stat st;
    char m[8];
    if (stat(dir, &st) != 0)
        return push_oserr(L, "cannot stat the directory of", path, errno);
    if (!S_ISDIR(st.st_mode))
        return msal_push_error(L, "ENOTDIR", "%s is not a directory", dir);
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        return msal_push_error(L, "EPERM", "directory %s of cache file %s is writable by others and not sticky (mode %s)",
                               dir, path, mode_str(m, st.st_mode));
    if (st.st_uid != me && st.st_uid != 0)
        return msal_push_error(L, "EPERM", "directory %s of cache file %s is owned by uid %d, not by uid %d or root", dir,
                               path, (int)st.st_uid, (int)me);
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            lua_pushboolean(L, 1);
            return 1;
        }
        return push_oserr(L, "cannot stat", path, errno);
    }
    if (S_ISLNK(st.st_mode))
        return msal_push_error(L, "ELOOP", "cache file %s is a symbolic link", path);
    if (!S_ISREG(st.st_mode))
        return msal_push_error(L, "EINVAL", "cache file %s is not a regular file", path);
    if (st.st_uid != me)
        return msal_push_error(L, "EPERM", "cache file %s is owned by uid %d, not by uid %d", path, (int)st.st_uid,
                               (int)me);
    if (st.st_mode & S_IWOTH)
        return msal_push_error(L, "EPERM", "cache file %s is writable by others (mode %s)", path,
                               mode_str(m, st.st_mode));
    if (st.st_mode & S_IWGRP)
        return msal_push_error(L, "EPERM", "cache file %s is writable by its group (mode %s)", path,
                               mode_str(m, st.st_mode));
    lua_pushboolean(L, 1);
    return 1;
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

/* The rename is durable only once the directory entry is on disk. Some
 * file systems cannot fsync a directory; the rename is then as durable as
 * they allow, which is not a failure of the write. */
static int sync_dir(const char *dir)
{
    int fd = open_retry(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), rc, err;
    if (fd < 0)
        return -1;
    while ((rc = fsync(fd)) != 0 && errno == EINTR)
        ;
    err = errno;
    (void)close(fd); /* nothing was written through it */
    if (rc != 0 && (err == EINVAL || err == ENOTSUP || err == EROFS))
        return 0;
    errno = err;
    return rc;
}

/* flock(LOCK_EX), waiting. A file system without flock leaves the file
 * unlocked, which costs only what the lock would have added (see the
 * callers), so that failure is not one of the operation. */
static void flock_wait(int fd)
{
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
}

/* `<path>` + ".tmp." + a pid + "." + 16 hex digits + NUL fits in this. */
#define TMP_EXTRA 64
#define TMP_HEX 16

/* Creates `<path>.tmp.<pid>.<16 hex digits>` exclusively, mode 0600, into
 * tmp (plen + TMP_EXTRA bytes), and returns its descriptor holding a flock
 * that lasts until the descriptor is closed: sweep_temps leaves a file
 * whose flock is busy, because the PID in the name names no process in
 * another PID namespace (a container with the cache directory mounted).
 * A sweeper that got the flock first may have removed the file before we
 * held it; we then draw another name. -1 with errno set on failure. */
static int create_temp(const char *path, char *tmp, size_t tlen)
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
        fd = open_retry(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
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
 * create_temp spells it, else 0. Names come from the directory, so whoever
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

/* Removes the temporary files that create_temp made for path in processes
 * that are gone — a writer killed between create and rename leaves one, and
 * nothing else ever would. Only names of exactly that form for this path,
 * in its directory, whose PID kill() reports as no process (ESRCH), whose
 * flock is free, and which are regular files of ours (never a link's
 * target) are removed. Best effort: when the directory cannot be listed,
 * leftovers stay, as they did before. */
static void sweep_temps(const char *dir, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    int dfd = open_retry(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
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

/***
 * Replaces path with content so that a crash at any point leaves the old or
 * the new file, never a mix: a temporary `<path>.tmp.<pid>.<random>` in the
 * same directory is created exclusively, given mode before any byte is
 * written, written, fsynced and renamed over path; then the directory is
 * fsynced. On failure the temporary file is removed. A symbolic link at
 * path is replaced, not followed. A temporary file that a writer killed
 * mid-write left behind is removed by the next write of path once its
 * writer is gone (see sweep_temps).
 * @function write_atomic
 * @tparam string path
 * @tparam string content
 * @tparam[opt=0600] integer mode permission bits (0..0777)
 * @treturn true
 * @return or nil, message, errno name
 */
static int f_write_atomic(lua_State *L)
{
    size_t len;
    const char *content = luaL_checklstring(L, 2, &len);
    return msal_write_atomic(L, 1, content, len, 3);
}

int msal_write_atomic(lua_State *L, int path_arg, const char *content, size_t len, int mode_arg)
{
    size_t plen, tlen;
    const char *path = check_path(L, path_arg, &plen);
    lua_Integer mode = luaL_optinteger(L, mode_arg, 0600);
    const char *dir, *what;
    char *tmp;
    int fd, err;
    luaL_argcheck(L, mode >= 0 && mode <= 0777, mode_arg, "mode must be within 0..0777 (0..511)");
    dir = push_dirname(L, path);
    tlen = plen + TMP_EXTRA;
    tmp = lua_newuserdata(L, tlen); /* collected with the call, whatever happens */
    sweep_temps(dir, path);
    /* 0600 at creation, fchmod below: the umask must not widen nor narrow
     * what the caller asked for. */
    fd = create_temp(path, tmp, tlen);
    if (fd < 0)
        return push_oserr(L, "cannot create a temporary file next to", path, errno);
    if (fchmod(fd, (mode_t)mode) != 0) {
        what = "cannot set the mode of the temporary file for";
        goto fail;
    }
    if (write_all(fd, content, len) != 0) {
        what = "cannot write";
        goto fail;
    }
    while (fsync(fd) != 0) {
        if (errno != EINTR) {
            what = "cannot sync";
            goto fail;
        }
    }
    /* Renamed while still open: its flock keeps sweepers off the file
     * until it has its final name. */
    if (rename(tmp, path) != 0) {
        what = "cannot rename the temporary file over";
        goto fail;
    }
    /* Not retried on EINTR: the descriptor is gone either way on Linux.
     * After a successful fsync a close error cannot mean lost data, but it
     * is reported like the directory sync below. */
    if (close(fd) != 0)
        return push_oserr(L, "replaced, but cannot close the new file", path, errno);
    if (sync_dir(dir) != 0)
        return push_oserr(L, "replaced, but cannot sync the directory of", path, errno);
    lua_pushboolean(L, 1);
    return 1;
fail:
    err = errno;
    /* Nothing more can be done when even this fails; the name says whose
     * leftover it is, and a later write sweeps it once we are gone. */
    (void)unlink(tmp);
    (void)close(fd); /* the write already failed; its error is the one to report */
    return push_oserr(L, what, path, err);
}

/* ---- the lock ---------------------------------------------------------- */

typedef struct lockfile {
    int fd;       /* -1 once released */
    pid_t owner;  /* a forked child inherits the userdata, not the lock */
    dev_t dev;    /* identity of the file we created, to unlink only it */
    ino_t ino;
    char path[];
} lockfile;

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
    fd = open_retry(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0 && (errno == EACCES || errno == EROFS))
        fd = open_retry(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
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
    return write_all(fd, text, (size_t)n);
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
    int fd = open_retry(lk->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600), r, err;
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
    int fd = create_temp(path, tmp, tlen), err;
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

static lua_Number opt_number(lua_State *L, const char *k, lua_Number def, lua_Number max)
{
    lua_Number v = def;
    lua_getfield(L, 2, k);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "lock option '%s' must be a number", k);
        v = lua_tonumber(L, -1);
        if (!(v >= 0 && v <= max))
            luaL_error(L, "lock option '%s' is out of range", k);
    }
    lua_pop(L, 1);
    return v;
}

typedef struct lock_opts {
    lua_Number retries, delay_ms, stale_after_ms;
} lock_opts;

/* Gives up the lock's temporary file: its name, then its flock. */
static void discard_temp(int fd, const char *tmp)
{
    /* A failed unlink leaves a leftover that a later lock holder sweeps
     * once we are gone; nothing was written that anyone needs. */
    (void)unlink(tmp);
    (void)close(fd);
}

/* f_lock's attempts and waits. No Lua call here: *tfd, the temporary file
 * try_link publishes (-1 once the file system turned out to have no hard
 * links), is owned by C alone. Returns LOCK_TAKEN, LOCK_EXISTS when the
 * retries ran out, or LOCK_FAILED with errno set and *what saying what
 * failed. */
static int acquire(lockfile *lk, int *tfd, const char *tmp, const lock_opts *o, long *holder, const char **what)
{
    lua_Number attempt = 0;
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
        sleep_ms(o->delay_ms);
    }
}

/***
 * Takes the cross-process lock that msal-node-extensions and msal-extensions
 * use: `lockpath` (by convention `<cache file>.lockfile`), mode 0600,
 * holding our PID from the moment it exists, plus a flock(LOCK_EX) on it for
 * tools that lock with flock/portalocker. The PID is written into a
 * temporary `<lockpath>.tmp.<pid>.<random>` that link(2) gives the lock
 * name only if that name is free — exclusive like msal-node's O_CREAT|O_EXCL,
 * which is used instead where the file system has no hard links. A lock
 * whose holder is gone is removed (see break_stale); one of a live process
 * is waited for. Once the lock is held, temporary lock files of processes
 * that are gone are removed (see sweep_temps).
 * @function lock
 * @tparam string lockpath
 * @tparam[opt] table opts `retries` (500), `retry_delay_ms` (100),
 * `stale_after_ms` (60000): about 50 s of waiting by default, as msal-node
 * @treturn userdata the lock, with `unlock()` and `held()`; unlocked by
 * `__gc` and, on Lua 5.4, `__close`
 * @return or nil, message, errno name ("ETIMEDOUT" when still held)
 */
static int f_lock(lua_State *L)
{
    size_t plen, tlen;
    const char *path = check_path(L, 1, &plen);
    lock_opts o = {500, 100, 60000};
    const char *dir, *what = NULL;
    long holder = 0;
    int lk_idx, tfd, r, err;
    lockfile *lk;
    char *tmp;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        o.retries = opt_number(L, "retries", o.retries, HUGE_VAL);
        o.delay_ms = opt_number(L, "retry_delay_ms", o.delay_ms, 86400000.0);
        o.stale_after_ms = opt_number(L, "stale_after_ms", o.stale_after_ms, HUGE_VAL);
    }
    lk = lua_newuserdata(L, sizeof *lk + plen + 1);
    lk_idx = lua_gettop(L);
    lk->fd = -1;
    lk->owner = 0;
    memcpy(lk->path, path, plen + 1);
    luaL_setmetatable(L, LOCK_MT);
    tlen = plen + TMP_EXTRA;
    tmp = lua_newuserdata(L, tlen); /* collected with the call */
    dir = push_dirname(L, path);
    if ((tfd = prepare_lock_temp(path, tmp, tlen)) < 0)
        return push_oserr(L, "cannot create lock file", path, errno);
    r = acquire(lk, &tfd, tmp, &o, &holder, &what);
    err = errno;
    if (r == LOCK_TAKEN) {
        /* tfd is the lock's descriptor now; the lock name keeps the file.
         * A failed unlink leaves a second name a later holder sweeps. */
        if (tfd >= 0)
            (void)unlink(tmp);
        sweep_temps(dir, path);
        lua_pushvalue(L, lk_idx);
        return 1;
    }
    if (tfd >= 0)
        discard_temp(tfd, tmp);
    if (r == LOCK_FAILED)
        return push_oserr(L, what, path, err);
    if (holder > 0)
        return msal_push_error(L, "ETIMEDOUT", "timed out waiting for lock file %s (held by process %d)", path,
                               (int)holder);
    return msal_push_error(L, "ETIMEDOUT", "timed out waiting for lock file %s", path);
}

/* Unlinks the lock file only if the path still names the file we created:
 * had it been judged stale and replaced, the new file is someone else's
 * lock. The unlink happens while our flock is held, which is what makes
 * break_stale's identity check sufficient. In a forked child only the
 * descriptor is closed: flock(LOCK_UN) or an unlink would release the
 * parent's lock, which shares the open file description. */
static int release(lockfile *lk, int *err)
{
    struct stat st;
    int rc = 0;
    *err = 0;
    if (lk->fd < 0)
        return 0;
    if (lk->owner == getpid() && lstat(lk->path, &st) == 0 && st.st_dev == lk->dev && st.st_ino == lk->ino &&
        unlink(lk->path) != 0 && errno != ENOENT) {
        *err = errno;
        rc = -1;
    }
    (void)close(lk->fd); /* only the PID was written, and nobody reads it back from us */
    lk->fd = -1;
    return rc;
}

/***
 * Releases the lock; calling it again does nothing.
 * @function lock:unlock
 * @treturn true
 * @return or nil, message, errno name when the lock file could not be
 * removed (the flock is released all the same)
 */
static int l_unlock(lua_State *L)
{
    lockfile *lk = luaL_checkudata(L, 1, LOCK_MT);
    int err;
    if (release(lk, &err) != 0)
        return push_oserr(L, "cannot remove lock file", lk->path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * Whether this object still holds the lock.
 * @function lock:held
 * @treturn boolean
 */
static int l_held(lua_State *L)
{
    lockfile *lk = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushboolean(L, lk->fd >= 0);
    return 1;
}

static int l_gc(lua_State *L)
{
    int err;
    (void)release(luaL_checkudata(L, 1, LOCK_MT), &err);
    return 0;
}

static int l_tostring(lua_State *L)
{
    lockfile *lk = luaL_checkudata(L, 1, LOCK_MT);
    lua_pushfstring(L, "msal.fileio.lock (%s, %s)", lk->path, lk->fd >= 0 ? "held" : "released");
    return 1;
}

/***
 * The process id, for tests and lock diagnostics.
 * @function pid
 * @treturn integer
 */
static int f_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

void msal_open_fileio(lua_State *L)
{
    static const luaL_Reg methods[] = {{"unlock", l_unlock}, {"held", l_held}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"read", f_read},   {"stat", f_stat}, {"check_private", f_check_private}, {"write_atomic", f_write_atomic},
        {"lock", f_lock},   {"pid", f_pid},   {NULL, NULL},
    };
    msal_newclass(L, LOCK_MT, methods, l_gc, l_tostring);
    msal_newclass(L, GUARD_MT, NULL, guard_gc, NULL);
    luaL_newlib(L, funcs);
}
