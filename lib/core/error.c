#include <stdarg.h>
#include <stdio.h>

#include "trellis/error.h"

struct error_info {
    trellis_err_t err;
    const char *name;
    const char *message;
    const char *api_code;
    int http_status;
};

static const struct error_info error_table[] = {
#define TRELLIS_ERROR_ROW(name, num, msg, code, status)                                            \
    {TRELLIS_ERR_##name, #name, msg, code, status},
    TRELLIS_ERROR_LIST(TRELLIS_ERROR_ROW)
#undef TRELLIS_ERROR_ROW
};

static const struct error_info *error_lookup(trellis_err_t err)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++) {
        if (error_table[i].err == err)
            return &error_table[i];
    }
    return NULL;
}

const char *trellis_err_name(trellis_err_t err)
{
    const struct error_info *info = error_lookup(err);
    return info ? info->name : "UNKNOWN";
}

const char *trellis_err_message(trellis_err_t err)
{
    const struct error_info *info = error_lookup(err);
    return info ? info->message : "unknown error";
}

const char *trellis_err_api_code(trellis_err_t err)
{
    const struct error_info *info = error_lookup(err);
    return info ? info->api_code : "unavailable";
}

int trellis_err_http_status(trellis_err_t err)
{
    const struct error_info *info = error_lookup(err);
    return info ? info->http_status : 500;
}

trellis_err_t trellis_reason_set(trellis_reason_t *reason, trellis_err_t err, const char *fmt, ...)
{
    if (reason == NULL)
        return err;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(reason->text, sizeof(reason->text), fmt, ap);
    va_end(ap);
    if (n < 0)
        reason->text[0] = '\0';
    return err;
}

void trellis_reason_clear(trellis_reason_t *reason)
{
    if (reason != NULL)
        reason->text[0] = '\0';
}
