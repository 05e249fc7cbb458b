/* msal.core.fileio: the file primitives under the persistent token cache,
 * and their Lua face: reads, the permission check, atomic writes (a
 * temporary file renamed over the cache) and the cross-process lock. What
 * processes agree on — temporary files, their sweep, the lock file — is
 * lockfile.c's.
 *
 * Failures return nil, message, code (core.h: an errno name, as luv does)
 * because the caller decides what a missing or locked file means; only
 * misuse raises.
 * No Lua error can be raised while a descriptor or heap block is owned by C
 * alone: either the error is pushed after cleaning up, or the resource sits
 * in a userdata whose __gc releases it. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "compat.h"
#include "core.h"
#include "fdio.h"
#include "lockfile.h"

#define LOCK_MT "msal.fileio.lock"
#define BYTES_MT "msal.fileio.bytes"

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

/* Owns a descriptor and a buffer across Lua calls that may raise while
 * read() fills it; then, for read(path, "bytes"), the content it returns
 * without copying it into a Lua string (a string of a 1 MB cache file
 * cost LuaJIT ~300 first-touch faults, and the store parses either). */
typedef struct guard {
    int fd;
    msal_buf b;
} guard;

static void guard_close_fd(guard *g)
{
    if (g->fd >= 0) {
        /* Read-only descriptor: a close error cannot lose data. */
        (void)close(g->fd);
        g->fd = -1;
    }
}

static void guard_release(guard *g)
{
    guard_close_fd(g);
    buf_free(&g->b);
}

static int l_guard_gc(lua_State *L)
{
    guard_release(luaL_checkudata(L, 1, BYTES_MT));
    return 0;
}

static guard *push_guard(lua_State *L)
{
    guard *g = lua_newuserdata(L, sizeof *g);
    g->fd = -1;
    buf_init(&g->b);
    luaL_setmetatable(L, BYTES_MT);
    return g;
}

const char *msal_check_text(lua_State *L, int idx, size_t *len)
{
    guard *g;
    if (lua_type(L, idx) != LUA_TUSERDATA)
        return luaL_checklstring(L, idx, len);
    g = luaL_testudata(L, idx, BYTES_MT);
    luaL_argcheck(L, g != NULL, idx, "string or fileio bytes expected");
    *len = g->b.n;
    return g->b.n ? g->b.p : "";
}

/* string.sub's reading of i and j (negative counts from the end), as a
 * byte offset and length within n bytes. */
static size_t byte_range(lua_State *L, size_t n, size_t *first)
{
    lua_Integer i = luaL_checkinteger(L, 2), j = luaL_optinteger(L, 3, -1);
    lua_Integer len = (lua_Integer)n;
    if (i < 0)
        i = i < -len ? 1 : len + i + 1;
    else if (i == 0)
        i = 1;
    if (j < 0)
        j = len + j + 1;
    else if (j > len)
        j = len;
    *first = (size_t)(i - 1);
    return i > j ? 0 : (size_t)(j - i + 1);
}

/***
 * Bytes i to j of a file read with `read(path, "bytes")`, as string.sub
 * counts them.
 * @function bytes:sub
 * @tparam integer i
 * @tparam[opt=-1] integer j
 * @treturn string
 */
static int l_bytes_sub(lua_State *L)
{
    guard *g = luaL_checkudata(L, 1, BYTES_MT);
    size_t first, n = byte_range(L, g->b.n, &first);
    lua_pushlstring(L, n ? g->b.p + first : "", n);
    return 1;
}

/***
 * Loads bytes i to j as a precompiled (binary) chunk; a text chunk is
 * refused. The interpreter does not check bytecode: load only bytes from
 * a file nobody else could have written (`check_private`).
 * @function bytes:load
 * @tparam integer i
 * @tparam integer j
 * @tparam string chunkname
 * @treturn function
 * @return or nil, message, "BAD_DATA"
 */
static int l_bytes_load(lua_State *L)
{
    guard *g = luaL_checkudata(L, 1, BYTES_MT);
    size_t first, n;
    const char *name;
    luaL_checkinteger(L, 3);
    n = byte_range(L, g->b.n, &first);
    name = luaL_checkstring(L, 4);
    /* plain 5.1's loadbuffer takes no mode: the signature byte is checked here */
    if (n == 0 || g->b.p[first] != LUA_SIGNATURE[0])
        return msal_push_error(L, "BAD_DATA", "%s: not a precompiled chunk", name);
    if (luaL_loadbufferx(L, g->b.p + first, n, name, "b") != 0)
        return msal_push_error(L, "BAD_DATA", "%s", lua_tostring(L, -1));
    return 1;
}

static int l_bytes_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)((guard *)luaL_checkudata(L, 1, BYTES_MT))->b.n);
    return 1;
}

static void describe_bytes(lua_State *L, void *self)
{
    lua_pushfstring(L, "%d bytes", (int)((guard *)self)->b.n);
}

/***
 * Reads a whole regular file.
 * Does not follow a symbolic link at path. The stat table is taken before
 * reading, so a writer that changes the file meanwhile makes it differ from
 * the next `stat` and the caller reads again.
 * @function read
 * @tparam string path
 * @tparam[opt] string as `"bytes"`: the content stays in C, as a bytes
 * object (`#`, `sub`, `load`) that `store:load` also takes
 * @treturn string|userdata the content
 * @treturn table `{mtime_sec, mtime_nsec, size, ino, dev, mode, uid, nlink, type}`
 * @return or nil, message, errno name
 */
static int l_read(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    static const char *const as[] = {"string", "bytes", NULL};
    int as_bytes = luaL_checkoption(L, 2, "string", as) == 1;
    guard *g = push_guard(L);
    struct stat st;
    int err;
    /* O_NONBLOCK: a FIFO planted at path must not hang us before the
     * regular-file check; it changes nothing for regular files. */
    g->fd = fdio_open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
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
     * growth; the file may still grow while we read, hence the loop. A
     * file of 128 KiB or more lands in huge pages (buf.c): a 1.3 MB cache
     * read into fresh 4 KiB pages cost ~300 first-touch faults. */
    if ((uintmax_t)st.st_size >= (uintmax_t)(SIZE_MAX / 2)) {
        guard_release(g);
        return push_oserr(L, "cannot read", path, EFBIG);
    }
    for (;;) {
        ssize_t r;
        size_t want;
        /* the size and a byte; once there, a byte: buf_reserve doubles */
        if (!buf_reserve_file(&g->b, g->b.n < (size_t)st.st_size ? (size_t)st.st_size - g->b.n + 1 : 1)) {
            guard_release(g);
            return push_oserr(L, "cannot read", path, ENOMEM);
        }
        want = g->b.cap - g->b.n > FDIO_CHUNK ? FDIO_CHUNK : g->b.cap - g->b.n;
        r = read(g->fd, g->b.p + g->b.n, want);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            guard_release(g);
            return push_oserr(L, "cannot read", path, err);
        }
        if (r == 0)
            break;
        g->b.n += (size_t)r;
    }
    if (as_bytes) {
        guard_close_fd(g);
        push_stat(L, &st);
        return 2;
    }
    lua_pushlstring(L, g->b.n ? g->b.p : "", g->b.n);
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
static int l_stat(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    struct stat st;
    if (lstat(path, &st) != 0)
        return push_oserr(L, "cannot stat", path, errno);
    push_stat(L, &st);
    return 1;
}

/***
 * The file's identity as one string, "dev:ino:size:mtime_sec:mtime_nsec",
 * without following a symbolic link: a change in any part means the file
 * was replaced or written. Cheaper than `stat` where only that is asked
 * (the `msal` command asks it of each module it loads).
 * @function signature
 * @tparam string path
 * @treturn string
 * @return or nil, message, errno name
 */
static int l_signature(lua_State *L)
{
    const char *path = check_path(L, 1, NULL);
    struct stat st;
    char sig[128];
    if (lstat(path, &st) != 0)
        return push_oserr(L, "cannot stat", path, errno);
    snprintf(sig, sizeof sig, "%ju:%ju:%jd:%jd:%ld", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino, (intmax_t)st.st_size,
             (intmax_t)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    lua_pushstring(L, sig);
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
static int l_check_private(lua_State *L)
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

/* The rename is durable only once the directory entry is on disk. Some
 * file systems cannot fsync a directory; the rename is then as durable as
 * they allow, which is not a failure of the write. */
static int sync_dir(const char *dir)
{
    int fd = fdio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), rc, err;
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

/***
 * Replaces path with content so that a crash at any point leaves the old or
 * the new file, never a mix: a temporary `<path>.tmp.<pid>.<random>` in the
 * same directory is created exclusively, given mode before any byte is
 * written, written, fsynced and renamed over path; then the directory is
 * fsynced. On failure the temporary file is removed. A symbolic link at
 * path is replaced, not followed. A temporary file that a writer killed
 * mid-write left behind is removed by the next write of path once its
 * writer is gone (see lockfile_sweep_temps).
 * @function write_atomic
 * @tparam string path
 * @tparam string content
 * @tparam[opt=0600] integer mode permission bits (0..0777)
 * @treturn true
 * @return or nil, message, errno name
 */
static int l_write_atomic(lua_State *L)
{
    size_t len;
    const char *content = luaL_checklstring(L, 2, &len);
    return msal_write_atomic(L, 1, content, len, 3);
}

/* Sets fd's mtime to the precise wall-clock time (atime untouched). */
static int stamp_now(int fd)
{
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    if (clock_gettime(CLOCK_REALTIME, &ts[1]) != 0)
        return -1;
    return futimens(fd, ts);
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
    tlen = plen + LOCKFILE_TMP_EXTRA;
    tmp = lua_newuserdata(L, tlen); /* collected with the call, whatever happens */
    lockfile_sweep_temps(path);
    /* 0600 at creation, fchmod below: the umask must not widen nor narrow
     * what the caller asked for. */
    fd = lockfile_create_temp(path, tmp, tlen);
    if (fd < 0)
        return push_oserr(L, "cannot create a temporary file next to", path, errno);
    if (fchmod(fd, (mode_t)mode) != 0) {
        what = "cannot set the mode of the temporary file for";
        goto fail;
    }
    if (fdio_write_all(fd, content, len) != 0) {
        what = "cannot write";
        goto fail;
    }
    while (fsync(fd) != 0) {
        if (errno != EINTR) {
            what = "cannot sync";
            goto fail;
        }
    }
    /* msal-extensions (msal-python's persistence, the Azure CLI's) reloads
     * the file only when its mtime is later than the time.time() it took
     * after its last read. The kernel stamps a write's mtime from its
     * coarse clock, up to a tick (4 ms) behind the precise one: a reader
     * whose read ended just before we took the lock would find our file
     * "older" than its read, never reload, and later save its stale copy
     * over our entries. The precise time now is later than any such read
     * (we hold the lock), so every reader that could have missed this
     * change sees it. */
    if (stamp_now(fd) != 0) {
        what = "cannot set the modification time of the temporary file for";
        goto fail;
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

/***
 * Takes the cross-process lock that msal-node-extensions and msal-extensions
 * use: `lockpath` (by convention `<cache file>.lockfile`), mode 0600,
 * holding our PID from the moment it exists, plus a flock(LOCK_EX) on it for
 * tools that lock with flock/portalocker. The PID is written into a
 * temporary `<lockpath>.tmp.<pid>.<random>` that link(2) gives the lock
 * name only if that name is free — exclusive like msal-node's O_CREAT|O_EXCL,
 * which is used instead where the file system has no hard links. A lock
 * whose holder is gone is removed; one of a live process is waited for.
 * Once the lock is held, temporary lock files of processes that are gone
 * are removed (lockfile.c).
 * @function lock
 * @tparam string lockpath
 * @tparam[opt] table opts `retries` (500), `retry_delay_ms` (100),
 * `stale_after_ms` (60000): about 50 s of waiting by default, as msal-node
 * @treturn userdata the lock, with `unlock()` and `held()`; unlocked by
 * `__gc` and, on Lua 5.4, `__close`
 * @return or nil, message, errno name ("ETIMEDOUT" when still held)
 */
static int l_lock(lua_State *L)
{
    size_t plen;
    const char *path = check_path(L, 1, &plen);
    lockfile_opts o = LOCKFILE_DEFAULTS;
    const char *what;
    long holder = 0;
    int r, err;
    lockfile *lk;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        o.retries = opt_number(L, "retries", o.retries, HUGE_VAL);
        o.delay_ms = opt_number(L, "retry_delay_ms", o.delay_ms, 86400000.0);
        o.stale_after_ms = opt_number(L, "stale_after_ms", o.stale_after_ms, HUGE_VAL);
    }
    lk = lua_newuserdata(L, LOCKFILE_SIZE(plen));
    lockfile_init(lk, path, plen);
    luaL_setmetatable(L, LOCK_MT);
    r = lockfile_acquire(lk, &o, &holder, &err, &what); /* no Lua call in there */
    if (r == LOCKFILE_TAKEN)
        return 1;
    if (r == LOCKFILE_FAILED)
        return push_oserr(L, what, path, err);
    if (holder > 0)
        return msal_push_error(L, "ETIMEDOUT", "timed out waiting for lock file %s (held by process %d)", path,
                               (int)holder);
    return msal_push_error(L, "ETIMEDOUT", "timed out waiting for lock file %s", path);
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
    int err = lockfile_release(lk);
    if (err != 0)
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
    (void)lockfile_release(luaL_checkudata(L, 1, LOCK_MT));
    return 0;
}

static void describe(lua_State *L, void *self)
{
    lockfile *lk = self;
    lua_pushfstring(L, "%s, %s", lk->path, lk->fd >= 0 ? "held" : "released");
}

/***
 * Makes a directory and the missing ones above it, each with mode: like
 * `mkdir -p`, except that every directory made gets the mode, as the XDG
 * base directory spec asks (0700). Directories that exist are left as
 * they are.
 * @function mkdirs
 * @tparam string path
 * @tparam[opt=0700] integer mode permission bits (0..0777)
 * @treturn true
 * @return or nil, message, errno name (ENOTDIR when a part of path is not
 * a directory)
 */
static int l_mkdirs(lua_State *L)
{
    size_t n, i;
    const char *path = check_path(L, 1, &n);
    lua_Integer mode = luaL_optinteger(L, 2, 0700);
    char *part;
    luaL_argcheck(L, mode >= 0 && mode <= 0777, 2, "mode must be 0..0777");
    /* a userdata, so a raise while it is in use frees it */
    part = lua_newuserdata(L, n + 1);
    memcpy(part, path, n + 1);
    for (i = 1; i <= n; i++) {
        struct stat st;
        if (i < n && part[i] != '/')
            continue;
        part[i] = '\0';
        if (mkdir(part, (mode_t)mode) != 0) {
            int err = errno;
            if (err != EEXIST)
                return push_oserr(L, "cannot make directory", part, err);
            if (stat(part, &st) != 0)
                return push_oserr(L, "cannot stat", part, errno);
            if (!S_ISDIR(st.st_mode))
                return msal_push_error(L, "ENOTDIR", "%s is not a directory", part);
        }
        if (i < n)
            part[i] = '/';
    }
    lua_pushboolean(L, 1);
    return 1;
}

/***
 * The process id, for tests and lock diagnostics.
 * @function pid
 * @treturn integer
 */
static int l_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

void msal_open_fileio(lua_State *L)
{
    static const luaL_Reg methods[] = {{"unlock", l_unlock}, {"held", l_held}, {NULL, NULL}};
    static const luaL_Reg bytes_methods[] = {{"sub", l_bytes_sub}, {"load", l_bytes_load}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {
        {"read", l_read},   {"stat", l_stat}, {"check_private", l_check_private}, {"write_atomic", l_write_atomic},
        {"lock", l_lock},   {"pid", l_pid},   {"mkdirs", l_mkdirs}, {"signature", l_signature},
        {NULL, NULL},
    };
    static const msal_class lock_class = {LOCK_MT, methods, l_gc, describe, NULL, NULL};
    static const msal_class bytes_class = {BYTES_MT, bytes_methods, l_guard_gc, describe_bytes, NULL, NULL};
    msal_newclass(L, &lock_class);
    msal_newclass(L, &bytes_class);
    /* bytes are never closed early: the store may point into them */
    luaL_getmetatable(L, BYTES_MT);
    lua_pushcfunction(L, l_bytes_len);
    lua_setfield(L, -2, "__len");
    lua_pushnil(L);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
}
