/* How processes share a cache file (lockfile.c), in plain C without Lua:
 * the temporary files writers create beside it, and the lock file that
 * msal-node-extensions and msal-extensions (Python) use. fileio.c builds
 * its atomic writes and its Lua lock on these; a per-refresh lock (one
 * lock file per token request beside the cache) takes the same calls with
 * another path.
 *
 *   - Temporary files `<path>.tmp.<pid>.<16 hex digits>` are created
 *     exclusively, mode 0600, and flocked by their writer until it renames
 *     or removes them; those of writers that are gone are swept.
 *   - The lock file holds its holder's PID from the moment it exists (the
 *     PID is written into a temporary file that link(2) publishes under the
 *     lock's name only if that name is free) and a flock(LOCK_EX) for as
 *     long as it is held. A lock whose holder is gone is removed, so a
 *     killed process never blocks the others; a live holder is waited for.
 *
 * Failures are errno values; nothing here raises or allocates beyond a
 * name's length. */
#ifndef MSAL_LOCKFILE_H
#define MSAL_LOCKFILE_H

#include <stddef.h>
#include <sys/types.h>

/* `<path>` + ".tmp." + a pid + "." + 16 hex digits + NUL fits in this. */
#define LOCKFILE_TMP_EXTRA 64

/* Creates `<path>.tmp.<pid>.<16 hex digits>` into tmp (strlen(path) +
 * LOCKFILE_TMP_EXTRA bytes) and returns its descriptor, which holds the
 * file's flock until it is closed; -1 with errno set on failure. */
int lockfile_create_temp(const char *path, char *tmp, size_t tlen);

/* Removes the temporary files of path whose writers are gone. Best effort:
 * what cannot be looked at or removed stays. */
void lockfile_sweep_temps(const char *path);

typedef struct lockfile_opts {
    double retries;        /* waits after the first try: 500 */
    double delay_ms;       /* between tries: 100 */
    double stale_after_ms; /* age after which a lock without a PID is stale: 60000 */
} lockfile_opts;

#define LOCKFILE_DEFAULTS {500, 100, 60000}

/* A lock, held or not: allocate LOCKFILE_SIZE(strlen(path)) bytes and call
 * lockfile_init. Not held after a fork: the child only closes its copy. */
typedef struct lockfile {
    int fd;      /* -1 while not held */
    pid_t owner; /* a forked child inherits the memory, not the lock */
    dev_t dev;   /* identity of the file we created, to unlink only it */
    ino_t ino;
    char path[];
} lockfile;

#define LOCKFILE_SIZE(path_len) (sizeof(lockfile) + (path_len) + 1)

enum { LOCKFILE_TAKEN, LOCKFILE_BUSY, LOCKFILE_FAILED };

void lockfile_init(lockfile *lk, const char *path, size_t path_len);

/* Takes the lock at lk->path, waiting as o says. LOCKFILE_TAKEN (then
 * temporary lock files of processes that are gone are swept);
 * LOCKFILE_BUSY when the tries ran out while a live process held it
 * (*holder: its PID when one was seen, else left alone); LOCKFILE_FAILED
 * with *err an errno and *what what failed ("cannot create lock file",
 * "cannot inspect lock file"). */
int lockfile_acquire(lockfile *lk, const lockfile_opts *o, long *holder, int *err, const char **what);

/* Releases the lock; does nothing when it is not held. 0, or an errno when
 * the lock file could not be removed (the flock is released all the same). */
int lockfile_release(lockfile *lk);

#endif
