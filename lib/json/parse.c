#include <stdint.h>
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

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t i, size_t len)
{
    while (i < len && is_ws(p[i]))
        i++;
    return i;
}

/* A string of printable ASCII without escapes starting after the opening quote at p[i]: its
 * length, with *end the index just past the closing quote; SIZE_MAX when the string is not of
 * that kind (an escape, a control or non-ASCII byte, no closing quote). */
static size_t plain_string(const char *p, size_t i, size_t len, size_t *end)
{
    const char *q = memchr(p + i, '"', len - i);
    if (q == NULL)
        return SIZE_MAX;
    size_t n = (size_t)(q - (p + i));
    for (size_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)p[i + k];
        if (c < 0x20 || c > 0x7e || c == '\\')
            return SIZE_MAX;
    }
    *end = i + n + 1;
    return n;
}

/*
 * The shape of every request Trellis defines: one flat object whose member names and values are
 * strings of printable ASCII without escapes (base64url, names, identifiers). jansson reads a
 * body a byte at a time through its stream layer, which on a verify or enroll request costs
 * more than the rest of the request's handling outside the cryptography; this reads such a body
 * with memchr and builds the same object jansson would. It only ever succeeds: anything else,
 * every malformed body included, returns 0 and goes to jansson, which then decides (and words
 * the error). Every value it accepts is valid JSON meaning exactly what it is built into.
 */
static int parse_flat(const char *p, size_t len, json_t **out)
{
    json_t *obj = NULL;
    char key[256];
    size_t i = skip_ws(p, 0, len);

    if (i >= len || p[i] != '{')
        return 0;
    obj = json_object();
    if (obj == NULL)
        return 0;
    i = skip_ws(p, i + 1, len);
    if (i < len && p[i] == '}') {
        i++;
        goto done;
    }
    for (;;) {
        size_t end = 0;
        if (i >= len || p[i] != '"')
            goto fallback;
        size_t klen = plain_string(p, i + 1, len, &end);
        if (klen == SIZE_MAX || klen >= sizeof(key))
            goto fallback;
        memcpy(key, p + i + 1, klen);
        key[klen] = '\0';
        i = skip_ws(p, end, len);
        if (i >= len || p[i] != ':')
            goto fallback;
        i = skip_ws(p, i + 1, len);
        if (i >= len || p[i] != '"')
            goto fallback;
        size_t vlen = plain_string(p, i + 1, len, &end);
        /* A repeated name is an error jansson words. */
        if (vlen == SIZE_MAX || json_object_get(obj, key) != NULL)
            goto fallback;
        json_t *value = json_stringn_nocheck(p + i + 1, vlen);
        if (value == NULL || json_object_set_new_nocheck(obj, key, value) != 0)
            goto fallback;
        i = skip_ws(p, end, len);
        if (i < len && p[i] == ',') {
            i = skip_ws(p, i + 1, len);
            continue;
        }
        if (i < len && p[i] == '}') {
            i++;
            break;
        }
        goto fallback;
    }
done:
    if (skip_ws(p, i, len) != len)
        goto fallback;
    *out = obj;
    return 1;
fallback:
    json_decref(obj);
    return 0;
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
    if (parse_flat(body, len, out)) {
        err = TRELLIS_OK;
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
