/*
 * Durable file operations.
 *
 * trellis_file_write_atomic replaces path so that a crash or power cut leaves either the old
 * contents or the new, never a mix or nothing: it writes a temporary file in the same directory,
 * fsyncs it, renames it over path and fsyncs the directory. Files holding secrets are created
 * with mode 0600 from the start (never chmod-ed after the bytes are written).
 */
#ifndef TRELLIS_FSUTIL_H
#define TRELLIS_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trellis/error.h"

#define TRELLIS_FILE_SECRET 0600
#define TRELLIS_FILE_PUBLIC 0644

/* Atomically replaces path with len bytes of data, created with mode. */
trellis_err_t trellis_file_write_atomic(const char *path, const void *data, size_t len,
                                        mode_t mode);

/* Reads a whole file of at most max_len bytes into a new buffer (NUL-terminated, the NUL not
 * counted in *out_len); free it with trellis_file_buffer_free, which cleanses it first.
 * TRELLIS_ERR_TOO_LARGE when the file is longer than max_len, TRELLIS_ERR_NOT_FOUND if absent. */
trellis_err_t trellis_file_read_all(const char *path, size_t max_len, uint8_t **out,
                                    size_t *out_len);
void trellis_file_buffer_free(uint8_t *buf, size_t len);

/* Creates a directory (and its parents) with mode if it does not exist. */
trellis_err_t trellis_mkdir_p(const char *path, mode_t mode);

/* fsyncs a directory, so a rename or create inside it survives a power cut. */
trellis_err_t trellis_fsync_dir(const char *path);

#endif /* TRELLIS_FSUTIL_H */
