#include <errno.h>

#include "fs_internal.h"

trellis_err_t tr__fs_err_from_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return TRELLIS_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return TRELLIS_ERR_PERMISSION;
    case EEXIST:
        return TRELLIS_ERR_EXISTS;
    case ENOMEM:
        return TRELLIS_ERR_NOMEM;
    case ENAMETOOLONG:
    case EISDIR:
    case EINVAL:
        return TRELLIS_ERR_INVALID_ARG;
    default:
        return TRELLIS_ERR_IO;
    }
}
