#include <string.h>

#include "json_internal.h"
#include "trellis/encoding.h"
#include "trellis/json.h"

/* Member names come from the caller's code, but are cut anyway to keep reasons short. */
#define NAME_FMT "%.64s"

/*
 * Looks member key up in obj. *out is NULL when it is absent, which is an error only if
 * required. Arguments are checked here once for every getter.
 */
static trellis_err_t find_member(const json_t *obj, const char *key, int required,
                                 const json_t **out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    *out = NULL;
    if (key == NULL || !json_is_object(obj)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no object or member name");
        goto out;
    }
    *out = json_object_get(obj, key);
    if (*out == NULL && required) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member " NAME_FMT " is missing", key);
        goto out;
    }
    err = TRELLIS_OK;
out:
    return err;
}

/* The string of member value; refuses other types and strings with an embedded NUL (possible
 * only in objects built in code with json_stringn, never in a parsed body). */
static trellis_err_t string_value(const json_t *value, const char *key, const char **out,
                                  size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    *out = NULL;
    *out_len = 0;
    if (!json_is_string(value)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member " NAME_FMT " is not a string",
                                 key);
        goto out;
    }
    if (strlen(json_string_value(value)) != json_string_length(value)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "member " NAME_FMT " contains a NUL character", key);
        goto out;
    }
    *out = json_string_value(value);
    *out_len = json_string_length(value);
    err = TRELLIS_OK;
out:
    return err;
}

static trellis_err_t get_string(const json_t *obj, const char *key, int required, size_t max_len,
                                const char **out, size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const json_t *value = NULL;
    const char *text = NULL;
    size_t text_len = 0;

    trellis_reason_clear(reason);
    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output given");
        goto out;
    }
    *out = NULL;
    err = find_member(obj, key, required, &value, reason);
    if (err != TRELLIS_OK || value == NULL)
        goto out;
    err = string_value(value, key, &text, &text_len, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (text_len > max_len) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "member " NAME_FMT " is longer than %zu bytes", key, max_len);
        goto out;
    }
    *out = text;
    if (out_len != NULL)
        *out_len = text_len;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_json_get_string(const json_t *obj, const char *key, size_t max_len,
                                      const char **out, size_t *out_len, trellis_reason_t *reason)
{
    return get_string(obj, key, 1, max_len, out, out_len, reason);
}

trellis_err_t trellis_json_get_string_opt(const json_t *obj, const char *key, size_t max_len,
                                          const char **out, size_t *out_len,
                                          trellis_reason_t *reason)
{
    return get_string(obj, key, 0, max_len, out, out_len, reason);
}

trellis_err_t trellis_json_get_b64url(const json_t *obj, const char *key, uint8_t *buf,
                                      size_t buf_size, size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const json_t *value = NULL;
    const char *text = NULL;
    size_t text_len = 0;
    size_t len = 0;

    trellis_reason_clear(reason);
    if (out_len != NULL)
        *out_len = 0;
    if (out_len == NULL || (buf == NULL && buf_size > 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output buffer given");
        goto out;
    }
    err = find_member(obj, key, 1, &value, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = string_value(value, key, &text, &text_len, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* Unpadded base64url of n bytes is exactly encoded_len(n) characters (RFC 4648 §5), so a
     * longer text cannot fit and is refused before any decoding work. */
    if (text_len > trellis_b64url_encoded_len(buf_size)) {
        err =
            trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                               "member " NAME_FMT " decodes to more than %zu bytes", key, buf_size);
        goto out;
    }
    if (text_len > 0) {
        err = trellis_b64url_decode(text, text_len, buf, buf_size, &len);
        if (err == TRELLIS_ERR_BUFFER_TOO_SMALL) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                     "member " NAME_FMT " decodes to more than %zu bytes", key,
                                     buf_size);
            goto out;
        }
        if (err != TRELLIS_OK) {
            err = trellis_reason_set(reason, TRELLIS_ERR_ENCODING,
                                     "member " NAME_FMT " is not valid base64url", key);
            goto out;
        }
    }
    *out_len = len;
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && buf != NULL)
        memset(buf, 0, buf_size);
    return err;
}

static trellis_err_t get_int(const json_t *obj, const char *key, int required, long long min,
                             long long max, long long dflt, long long *out,
                             trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const json_t *value = NULL;
    long long v = 0;

    trellis_reason_clear(reason);
    if (out == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output given");
        goto out;
    }
    *out = 0;
    err = find_member(obj, key, required, &value, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (value == NULL) {
        *out = dflt;
        goto out;
    }
    /* jansson keeps integers (no fraction, no exponent) apart from reals, so 1.0 and 1e3 are
     * JSON_REAL and refused here. */
    if (!json_is_integer(value)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member " NAME_FMT " is not an integer",
                                 key);
        goto out;
    }
    v = (long long)json_integer_value(value);
    if (v < min || v > max) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "member " NAME_FMT " is %lld, outside [%lld, %lld]", key, v, min,
                                 max);
        goto out;
    }
    *out = v;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_json_get_int(const json_t *obj, const char *key, long long min, long long max,
                                   long long *out, trellis_reason_t *reason)
{
    return get_int(obj, key, 1, min, max, 0, out, reason);
}

trellis_err_t trellis_json_get_int_opt(const json_t *obj, const char *key, long long min,
                                       long long max, long long dflt, long long *out,
                                       trellis_reason_t *reason)
{
    return get_int(obj, key, 0, min, max, dflt, out, reason);
}

static int is_allowed(const char *name, size_t name_len, const char *const allowed[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (allowed[i] != NULL && strlen(allowed[i]) == name_len &&
            memcmp(allowed[i], name, name_len) == 0)
            return 1;
    }
    return 0;
}

trellis_err_t trellis_json_reject_unknown(const json_t *obj, const char *const allowed[], size_t n,
                                          trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char quoted[48];
    /* jansson's iterator API takes a non-const object although walking it changes nothing. */
    union {
        const json_t *c;
        json_t *m;
    } object = {.c = obj};

    trellis_reason_clear(reason);
    if (!json_is_object(obj) || (allowed == NULL && n > 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no object or allowed list");
        goto out;
    }
    for (void *it = json_object_iter(object.m); it != NULL;
         it = json_object_iter_next(object.m, it)) {
        const char *name = json_object_iter_key(it);
        size_t name_len = json_object_iter_key_len(it);
        if (!is_allowed(name, name_len, allowed, n)) {
            tr__json_quote_name(name, name_len, quoted, sizeof(quoted));
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "unknown member \"%s\"", quoted);
            goto out;
        }
    }
    err = TRELLIS_OK;
out:
    return err;
}
