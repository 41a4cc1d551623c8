/* A bounded text builder with snprintf's contract, and printing through it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf_internal.h"

void tr__conf_text_init(tr__conf_text_t *t, char *out, size_t size)
{
    t->out = out;
    t->size = out != NULL ? size : 0;
    t->len = 0;
    if (t->size > 0)
        t->out[0] = '\0';
}

void tr__conf_text_printf(tr__conf_text_t *t, const char *fmt, ...)
{
    va_list ap;
    char *dst = NULL;
    size_t room = 0;
    if (t->len < t->size) {
        dst = t->out + t->len;
        room = t->size - t->len;
    }
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

trellis_err_t tr__conf_text_finish(tr__conf_text_t *t, size_t *out_len)
{
    if (t->len + 1 > t->size) {
        /* A cut text is no text: hand back nothing but the size needed. */
        if (t->size > 0)
            t->out[0] = '\0';
        *out_len = t->len + 1;
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    *out_len = t->len;
    return TRELLIS_OK;
}

trellis_err_t tr__conf_print(const trellis_conf_spec_t *spec, FILE *f,
                             trellis_err_t (*fn)(const trellis_conf_spec_t *, char *, size_t,
                                                 size_t *))
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char *buf = NULL;
    size_t need = 0;
    size_t len = 0;

    if (f == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = fn(spec, NULL, 0, &need);
    if (err != TRELLIS_ERR_BUFFER_TOO_SMALL)
        goto out;
    buf = malloc(need);
    if (buf == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = fn(spec, buf, need, &len);
    if (err != TRELLIS_OK)
        goto out;
    if (fwrite(buf, 1, len, f) != len || fflush(f) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    free(buf);
    return err;
}
