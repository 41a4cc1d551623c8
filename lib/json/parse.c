#include <string.h>

#include "json_internal.h"
#include "trellis/json.h"

/*
 * Finds the nesting depth before jansson builds anything, so a body of ten thousand '[' costs a
 * linear scan rather than a deep tree. Brackets inside strings do not count; escapes inside
 * strings (RFC 8259 §7) are skipped as pairs so that \" does not end a string.
 */
static trellis_err_t check_depth(const char *body, size_t len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t depth = 0;
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > TRELLIS_JSON_MAX_DEPTH) {
                err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                         "body nests deeper than %d levels at offset %zu",
                                         TRELLIS_JSON_MAX_DEPTH, i);
                goto out;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    err = TRELLIS_OK;
out:
    return err;
}

static const char *type_name(const json_t *json)
{
    switch (json_typeof(json)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Turns a jansson error into a reason. jansson's own text quotes the offending token, i.e.
 * bytes of the body, so only its code and offset are used. */
static trellis_err_t load_error(const json_error_t *jerr, trellis_reason_t *reason)
{
    switch (json_error_code(jerr)) {
    case json_error_out_of_memory:
        return trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "out of memory parsing body");
    case json_error_duplicate_key:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "body repeats a member name (offset %d)", jerr->position);
    case json_error_end_of_input_expected:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "body has bytes after the JSON value (offset %d)",
                                  jerr->position);
    case json_error_premature_end_of_input:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body ends inside the JSON value");
    case json_error_invalid_utf8:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body is not valid UTF-8 (offset %d)",
                                  jerr->position);
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "body has an escaped NUL character (offset %d)", jerr->position);
    case json_error_numeric_overflow:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "body has a number out of range (offset %d)", jerr->position);
    case json_error_stack_overflow:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body nests too deeply");
    default:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body is not valid JSON (offset %d)",
                                  jerr->position);
    }
}

trellis_err_t trellis_json_parse_object(const char *body, size_t len, size_t max_len, json_t **out,
                                        trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *json = NULL;
    json_error_t jerr;
    const char *nul = NULL;

    trellis_reason_clear(reason);
    if (out != NULL)
        *out = NULL;
    if (out == NULL || (body == NULL && len > 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no body given");
        goto out;
    }
    if (len > max_len) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "body is %zu bytes, larger than the limit of %zu", len, max_len);
        goto out;
    }
    if (len == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body is empty");
        goto out;
    }
    /* RFC 8259 has no raw NUL anywhere; refusing it up front keeps C string handling of every
     * member honest. */
    nul = memchr(body, '\0', len);
    if (nul != NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body has a NUL byte at offset %zu",
                                 (size_t)(nul - body));
        goto out;
    }
    err = check_depth(body, len, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* Without JSON_ALLOW_NUL jansson also refuses "\u0000"; JSON_DECODE_ANY lets us say what the
     * top level was instead of a generic syntax error. */
    json = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (json == NULL) {
        err = load_error(&jerr, reason);
        goto out;
    }
    if (!json_is_object(json)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "body is %s, expected an object",
                                 type_name(json));
        goto out;
    }
    *out = json;
    json = NULL;
    err = TRELLIS_OK;
out:
    json_decref(json);
    return err;
}
