/*
 * Atomic, durable replacement of a file (the sequence design.md §2 step 7 requires of the
 * device's key and chain): a power cut at any point leaves the old file or the new one.
 *
 *   1. create a temporary in the same directory (rename is atomic only within one file system),
 *      O_EXCL so an existing file or symlink is never opened, with the final mode from the start
 *      so a secret is never readable by others, not even while empty;
 *   2. write every byte, fsync, close (close can report a deferred write error);
 *   3. rename over the target, then fsync the directory so the rename itself is durable.
 *
 * Any failure before the rename removes the temporary and leaves the target untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs_internal.h"
#include "trellis/fsutil.h"

/* Attempts at a fresh temporary name before giving up; a clash needs another writer using the
 * same pid, counter and nanosecond, so more than one retry means something else is wrong. */
#define TEMP_NAME_ATTEMPTS 16

static atomic_uint temp_counter;

/* Writes all of data, resuming after short writes and EINTR. On failure errno tells why. */
static trellis_err_t write_full(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return tr__fs_err_from_errno(errno);
        }
        if (n == 0) {
            /* write(2) makes no progress only on a device that is full in all but name. */
            errno = EIO;
            return TRELLIS_ERR_IO;
        }
        data += n;
        len -= (size_t)n;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    const char *base = NULL;
    const char *slash = NULL;
    int fd = -1;
    int tmp_exists = 0;
    int saved_errno = 0;

    if (path == NULL || path[0] == '\0' || (data == NULL && len > 0) ||
        (mode & ~(mode_t)0777) != 0) {
        saved_errno = EINVAL;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    slash = strrchr(path, '/');
    base = slash != NULL ? slash + 1 : path;
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        saved_errno = EISDIR;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }

    /* The directory part keeps its trailing slash ("dir/", "/"), or is "./" without one. */
    int dir_len = slash != NULL ? (int)(slash - path) + 1 : 0;
    int n =
        snprintf(dir, sizeof(dir), "%.*s", dir_len > 0 ? dir_len : 2, dir_len > 0 ? path : "./");
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        saved_errno = ENAMETOOLONG;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }

    for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned int count = atomic_fetch_add(&temp_counter, 1u);
        /* A dot name stays out of plain listings; the base is cut so the name fits NAME_MAX. */
        n = snprintf(tmp, sizeof(tmp), "%s.%.128s.tmp-%ld-%u-%ld", dir, base, (long)getpid(), count,
                     (long)ts.tv_nsec);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
            saved_errno = ENAMETOOLONG;
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    tmp_exists = 1;

    /* open() applied the umask, which may have narrowed the mode; the caller asked for exactly
     * this one. The file is still empty, so nothing was ever readable beyond mode. */
    if (fchmod(fd, mode) != 0 || write_full(fd, data, len) != TRELLIS_OK || fsync(fd) != 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    tmp_exists = 0;

    /* From here the new contents are in place; a failure only means the rename might not
     * survive a power cut, which the caller still needs to hear about. */
    err = trellis_fsync_dir(dir);
    if (err != TRELLIS_OK) {
        saved_errno = errno;
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (fd >= 0)
        close(fd);
    if (tmp_exists)
        unlink(tmp);
    if (err != TRELLIS_OK)
        errno = saved_errno;
    return err;
}
