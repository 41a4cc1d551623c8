/* Shared by the files of lib/fs only. */
#ifndef TRELLIS_FS_INTERNAL_H
#define TRELLIS_FS_INTERNAL_H

#include "trellis/error.h"

/* Maps a system error to the closest trellis_err_t: ENOENT/ENOTDIR -> NOT_FOUND,
 * EACCES/EPERM/EROFS -> PERMISSION, EEXIST -> EXISTS, ENOMEM -> NOMEM, ENAMETOOLONG/EISDIR/EINVAL
 * -> INVALID_ARG, anything else (ENOSPC, EFBIG, EDQUOT, EIO, ...) -> IO. */
trellis_err_t tr__fs_err_from_errno(int e);

#endif /* TRELLIS_FS_INTERNAL_H */
