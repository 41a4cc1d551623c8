#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "trellis/encoding.h"
#include "trellis/json.h"

/* How much of a detail string is looked at; sanitising never needs more than it can output. */
#define DETAIL_SCAN_MAX (4 * TRELLIS_JSON_DETAIL_MAX)

trellis_err_t trellis_json_dump(const json_t *json, char **out, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
    char *text = NULL;
    size_t size = 0;

    if (out_len != NULL)
        *out_len = 0;
    if (out != NULL)
        *out = NULL;
    if (out == NULL || json == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* First pass measures (jansson writes nothing into a zero-sized buffer), second fills. */
    size = json_dumpb(json, NULL, 0, flags);
    if (size == 0) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (size > TRELLIS_JSON_TEXT_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    text = malloc(size + 1);
    if (text == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (json_dumpb(json, text, size, flags) != size) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    text[size] = '\0';
    *out = text;
    text = NULL;
    if (out_len != NULL)
        *out_len = size;
    err = TRELLIS_OK;
out:
    free(text);
    return err;
}

void trellis_json_text_free(char *text)
{
    free(text);
}

trellis_err_t trellis_json_set_b64url(json_t *obj, const char *key, const uint8_t *data, size_t len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char *text = NULL;
    size_t text_size = 0;
    size_t text_len = 0;
    json_t *value = NULL;

    if (!json_is_object(obj) || key == NULL || (data == NULL && len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (len > TRELLIS_JSON_B64_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    if (len > 0) {
        text_size = trellis_b64url_encoded_len(len) + 1;
        text = malloc(text_size);
        if (text == NULL) {
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
        err = trellis_b64url_encode(data, len, text, text_size, &text_len);
        if (err != TRELLIS_OK)
            goto out;
    }
    value = json_stringn(text != NULL ? text : "", text_len);
    if (value == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* json_object_set_new takes the reference whether or not it succeeds. */
    if (json_object_set_new(obj, key, value) != 0) {
        err = TRELLIS_ERR_INVALID_ARG; /* key is not valid UTF-8, or allocation failed */
        goto out;
    }
    err = TRELLIS_OK;
out:
    free(text);
    return err;
}

trellis_err_t trellis_json_error_body(trellis_err_t err_code, const char *detail, char **out,
                                      size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *body = NULL;
    json_t *value = NULL;
    char safe[TRELLIS_JSON_DETAIL_MAX + 1];
    size_t safe_len = 0;
    const char *text = detail;

    if (out_len != NULL)
        *out_len = 0;
    if (out != NULL)
        *out = NULL;
    if (out == NULL || err_code == TRELLIS_OK) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (text == NULL || text[0] == '\0')
        text = trellis_err_message(err_code);
    safe_len = tr__json_safe_text(text, strnlen(text, DETAIL_SCAN_MAX), safe, sizeof(safe));
    body = json_object();
    if (body == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* design.md §3: {"error": CODE, "detail": TEXT}, in that order. */
    value = json_string(trellis_err_api_code(err_code));
    if (value == NULL || json_object_set_new(body, "error", value) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    value = json_stringn(safe, safe_len);
    if (value == NULL || json_object_set_new(body, "detail", value) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = trellis_json_dump(body, out, out_len);
out:
    json_decref(body);
    return err;
}
