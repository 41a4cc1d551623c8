/* Path options that default to files of a service's state directory. */
#include <stdio.h>

#include "trellis/conf.h"

trellis_err_t trellis_conf_path_in_dir(char *field, size_t size, const char *dir, const char *file,
                                       const char *dir_env, trellis_reason_t *reason)
{
    if (field == NULL || size == 0 || dir == NULL || file == NULL || dir_env == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no path to derive");
    if (field[0] != '\0')
        return TRELLIS_OK;
    if (dir[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "no state directory: pass --dir DIR (or set %s)", dir_env);
    int n = snprintf(field, size, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= size) {
        field[0] = '\0';
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "state directory path too long");
    }
    return TRELLIS_OK;
}
