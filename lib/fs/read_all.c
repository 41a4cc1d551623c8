/*
 * Bounded whole-file reads. The buffer never grows past max_len + 1 bytes, and since the file
 * may hold a key, every buffer that held its bytes is cleansed before it is released (which is
 * why growth copies instead of calling realloc, which could leave an uncleansed copy behind).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fs_internal.h"
#include "trellis/fsutil.h"

/* First allocation when the size is not known in advance (pipes, FIFOs, /proc files). */
#define READ_INITIAL_CAPACITY 4096

/* Reads into buf, retrying on EINTR. */
static ssize_t read_retry(int fd, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n;
}

/* Replaces *buf (cap bytes, len used) by a buffer of new_cap bytes, cleansing the old one. */
static trellis_err_t grow(uint8_t **buf, size_t cap, size_t len, size_t new_cap)
{
    uint8_t *bigger = malloc(new_cap);
    if (bigger == NULL)
        return TRELLIS_ERR_NOMEM;
    memcpy(bigger, *buf, len);
    OPENSSL_cleanse(*buf, cap);
    free(*buf);
    *buf = bigger;
    return TRELLIS_OK;
}

trellis_err_t trellis_file_read_all(const char *path, size_t max_len, uint8_t **out,
                                    size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int fd = -1;
    uint8_t *buf = NULL;
    size_t cap = 0;
    size_t len = 0;
    int saved_errno = 0;
    struct stat st;

    if (out != NULL)
        *out = NULL;
    if (out_len != NULL)
        *out_len = 0;
    if (path == NULL || out == NULL || out_len == NULL || max_len == SIZE_MAX) {
        saved_errno = EINVAL;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        saved_errno = errno;
        err = tr__fs_err_from_errno(saved_errno);
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        saved_errno = EISDIR;
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* A regular file announces its size: refuse an oversized one without reading it. The loop
     * below still enforces the limit, for files that grow and for pipes. */
    if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > (uintmax_t)max_len) {
        saved_errno = EFBIG;
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : READ_INITIAL_CAPACITY;
    if (cap > max_len)
        cap = max_len;
    cap += 1; /* room for the NUL */
    buf = malloc(cap);
    if (buf == NULL) {
        saved_errno = ENOMEM;
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }

    for (;;) {
        if (len == cap - 1) {
            if (len == max_len) {
                /* Full to the limit: one more byte means the file is over it. */
                uint8_t probe = 0;
                ssize_t p = read_retry(fd, &probe, 1);
                OPENSSL_cleanse(&probe, sizeof(probe));
                if (p < 0) {
                    saved_errno = errno;
                    err = tr__fs_err_from_errno(saved_errno);
                    goto out;
                }
                if (p > 0) {
                    saved_errno = EFBIG;
                    err = TRELLIS_ERR_TOO_LARGE;
                    goto out;
                }
                break;
            }
            size_t new_cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
            if (new_cap > max_len + 1)
                new_cap = max_len + 1;
            if (grow(&buf, cap, len, new_cap) != TRELLIS_OK) {
                saved_errno = ENOMEM;
                err = TRELLIS_ERR_NOMEM;
                goto out;
            }
            cap = new_cap;
            continue;
        }
        ssize_t n = read_retry(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            saved_errno = errno;
            err = tr__fs_err_from_errno(saved_errno);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    buf = NULL;
    err = TRELLIS_OK;
out:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, cap);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    if (err != TRELLIS_OK)
        errno = saved_errno;
    return err;
}

void trellis_file_buffer_free(uint8_t *buf, size_t len)
{
    if (buf == NULL)
        return;
    /* The bytes past len + 1 of a grown buffer were never written. */
    OPENSSL_cleanse(buf, len + 1);
    free(buf);
}
