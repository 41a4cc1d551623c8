/*
 * Durable file operations.
 *
 * trellis_file_write_atomic replaces path so that a crash or power cut leaves either the old
 * contents or the new, never a mix or nothing: it writes a temporary file in the same directory,
 * fsyncs it, renames it over path and fsyncs the directory. Files holding secrets are created
 * with mode 0600 from the start (never chmod-ed after the bytes are written).
 *
 * Every function here sets errno to the system error behind a failure, so a caller can add
 * strerror(errno) to its log line; the paths given are never logged by these functions. None
 * keeps global state beyond a counter for temporary names: all are safe from any thread.
 */
#ifndef TRELLIS_FSUTIL_H
#define TRELLIS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trellis/error.h"

#define TRELLIS_FILE_SECRET 0600
#define TRELLIS_FILE_PUBLIC 0644

/*
 * Atomically replaces path with len bytes of data, created with mode.
 *
 * The temporary file (".NAME.tmp-...", hidden, in path's directory) is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW and then given exactly mode, whatever the umask; the result has
 * exactly mode, also when it replaces a file that had another. A symlink at path is replaced by
 * the file, not followed. data may be NULL only when len is 0; mode must be within 0777.
 *
 * Errors: INVALID_ARG (bad argument, path naming a directory, path too long), NOT_FOUND (the
 * directory does not exist), PERMISSION (the directory is not writable), IO (a write, fsync or
 * close failed, e.g. ENOSPC or EFBIG). On every failure before the rename the temporary file is
 * removed and path keeps its old contents, or stays absent. Only if the final fsync of the
 * directory fails (IO) is the new file already in place, without the guarantee that the rename
 * survives a power cut.
 */
trellis_err_t trellis_file_write_atomic(const char *path, const void *data, size_t len,
                                        mode_t mode);

/*
 * Reads a whole file of at most max_len bytes into a new buffer (NUL-terminated, the NUL not
 * counted in *out_len); free it with trellis_file_buffer_free, which cleanses it first.
 * TRELLIS_ERR_TOO_LARGE when the file is longer than max_len, TRELLIS_ERR_NOT_FOUND if absent.
 *
 * Works on regular files and on pipes or FIFOs (read to end of file, still bounded by max_len).
 * An empty file yields a buffer holding just the NUL and *out_len 0. On failure *out is NULL and
 * *out_len 0. Other errors: INVALID_ARG (NULL argument, max_len SIZE_MAX, path is a directory),
 * PERMISSION, NOMEM, IO.
 */
trellis_err_t trellis_file_read_all(const char *path, size_t max_len, uint8_t **out,
                                    size_t *out_len);
/* Cleanses and frees a buffer from trellis_file_read_all; len is the *out_len it returned.
 * NULL is a no-op. */
void trellis_file_buffer_free(uint8_t *buf, size_t len);

/*
 * Creates a directory (and its parents) with mode if it does not exist. Every directory it
 * creates gets exactly mode, whatever the umask, and its entry in the parent is fsynced;
 * directories that already exist are left as they are. Errors: INVALID_ARG, EXISTS (a component
 * exists and is not a directory), PERMISSION, NOT_FOUND, IO.
 */
trellis_err_t trellis_mkdir_p(const char *path, mode_t mode);

/* fsyncs a directory, so a rename or create inside it survives a power cut. A file system that
 * cannot fsync directories (EINVAL) is not an error. Errors: INVALID_ARG, NOT_FOUND (absent, or
 * not a directory), PERMISSION, IO. */
trellis_err_t trellis_fsync_dir(const char *path);

#endif /* TRELLIS_FSUTIL_H */
