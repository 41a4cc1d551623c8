/* Directories: creating a path durably, and fsyncing a directory after a change inside it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_internal.h"
#include "trellis/fsutil.h"

trellis_err_t trellis_fsync_dir(const char *path)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int fd = -1;
    int saved_errno = 0;

    if (path == NULL || path[0] == '\0') {
        saved_errno = EINVAL;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    /* Some file systems cannot fsync a directory and say EINVAL; their metadata is ordered
     * by other means, so that is no failure (PostgreSQL's fsync_fname makes the same call). */
    if (fsync(fd) != 0 && errno != EINVAL) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (fd >= 0)
        close(fd);
    if (err != TRELLIS_OK)
        errno = saved_errno;
    return err;
}

/* Creates one directory of the path with exactly mode, and makes its entry in the parent
 * durable. An existing directory (or symlink to one) is left as it is. On failure errno tells
 * why. */
static trellis_err_t make_one(char *path, mode_t mode)
{
    struct stat st;
    if (mkdir(path, mode) != 0) {
        if (errno != EEXIST)
            return tr__fs_err_from_errno(errno);
        if (stat(path, &st) != 0)
            return tr__fs_err_from_errno(errno);
        if (!S_ISDIR(st.st_mode)) {
            errno = EEXIST;
            return TRELLIS_ERR_EXISTS;
        }
        return TRELLIS_OK;
    }
    /* mkdir applied the umask; set the mode asked for, through a descriptor of the directory
     * just made so a swapped-in symlink cannot redirect the chmod. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return tr__fs_err_from_errno(errno);
    int rc = fchmod(fd, mode);
    int e = errno;
    close(fd);
    if (rc != 0) {
        errno = e;
        return tr__fs_err_from_errno(e);
    }

    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return trellis_fsync_dir(".");
    if (slash == path)
        return trellis_fsync_dir("/");
    *slash = '\0';
    trellis_err_t err = trellis_fsync_dir(path);
    *slash = '/';
    return err;
}

trellis_err_t trellis_mkdir_p(const char *path, mode_t mode)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char buf[PATH_MAX];
    size_t len = 0;
    int saved_errno = 0;

    if (path == NULL || path[0] == '\0' || (mode & ~(mode_t)07777) != 0) {
        saved_errno = EINVAL;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    len = strlen(path);
    if (len >= sizeof(buf)) {
        saved_errno = ENAMETOOLONG;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';

    /* Walk the prefixes "a", "a/b", "a/b/c"; empty components ("a//b", a leading "/") are
     * skipped. */
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        err = make_one(buf, mode);
        saved_errno = errno;
        buf[i] = saved;
        if (err != TRELLIS_OK)
            goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        errno = saved_errno;
    return err;
}
