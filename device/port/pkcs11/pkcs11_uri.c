/*
 * PKCS#11 URIs (RFC 7512): parsing and formatting.
 *
 * RFC 7512 §2.3 grammar, as used here:
 *   pk11-URI       = "pkcs11:" pk11-path [ "?" pk11-query ]
 *   pk11-path      = [ pk11-pattr *(";" pk11-pattr) ]
 *   pk11-query     = [ pk11-qattr *("&" pk11-qattr) ]
 *   pk11-pchar     = unreserved / pk11-p-special / pct-encoded
 *   pk11-p-special = ":" / "[" / "]" / "@" / "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" /
 *                    "," / "="
 *   pk11-qchar     = unreserved / pk11-q-special / pct-encoded
 *   pk11-q-special = ":" / "[" / "]" / "@" / "!" / "$" / "'" / "(" / ")" / "*" / "+" / "," /
 *                    "=" / "/" / "?" / "|"
 *   unreserved     = ALPHA / DIGIT / "-" / "." / "_" / "~"
 * Vendor attributes are "x-" 1*(ALPHA / DIGIT / "-" / "_").
 *
 * A reason never quotes a value: any of them may be a PIN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "device_internal.h"
#include "pkcs11_internal.h"

#define SCHEME     "pkcs11:"
#define SCHEME_LEN 7

enum component { IN_PATH, IN_QUERY };

/* Attributes of RFC 7512 §2.3; the bit of each marks it as seen, for the duplicate check. */
enum attr {
    A_TOKEN,
    A_MANUFACTURER,
    A_SERIAL,
    A_MODEL,
    A_LIB_MANUFACTURER,
    A_LIB_DESCRIPTION,
    A_LIB_VERSION,
    A_OBJECT,
    A_TYPE,
    A_ID,
    A_SLOT_DESCRIPTION,
    A_SLOT_MANUFACTURER,
    A_SLOT_ID,
    A_PIN_SOURCE,
    A_PIN_VALUE,
    A_MODULE_NAME,
    A_MODULE_PATH,
    A_COUNT
};

static const struct {
    const char *name;
    enum component where;
} attrs[A_COUNT] = {
    [A_TOKEN] = {"token", IN_PATH},
    [A_MANUFACTURER] = {"manufacturer", IN_PATH},
    [A_SERIAL] = {"serial", IN_PATH},
    [A_MODEL] = {"model", IN_PATH},
    [A_LIB_MANUFACTURER] = {"library-manufacturer", IN_PATH},
    [A_LIB_DESCRIPTION] = {"library-description", IN_PATH},
    [A_LIB_VERSION] = {"library-version", IN_PATH},
    [A_OBJECT] = {"object", IN_PATH},
    [A_TYPE] = {"type", IN_PATH},
    [A_ID] = {"id", IN_PATH},
    [A_SLOT_DESCRIPTION] = {"slot-description", IN_PATH},
    [A_SLOT_MANUFACTURER] = {"slot-manufacturer", IN_PATH},
    [A_SLOT_ID] = {"slot-id", IN_PATH},
    [A_PIN_SOURCE] = {"pin-source", IN_QUERY},
    [A_PIN_VALUE] = {"pin-value", IN_QUERY},
    [A_MODULE_NAME] = {"module-name", IN_QUERY},
    [A_MODULE_PATH] = {"module-path", IN_QUERY},
};

/* Longest decoded description attribute Trellis keeps (they are checked, then dropped). */
#define SCRATCH_MAX 256

static int is_unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int is_allowed(char c, enum component where)
{
    if (is_unreserved(c)) {
        return 1;
    }
    if (c != '\0' && strchr(":[]@!$'()*+,=", c) != NULL) {
        return 1;
    }
    if (where == IN_PATH) {
        return c == '&';
    }
    return c == '/' || c == '?' || c == '|';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/*
 * Checks the characters of value[0..len) for its component and percent-decodes it into out
 * (out_size bytes; text values get a NUL after the bytes and may not contain a decoded NUL).
 */
static trellis_err_t decode_value(const char *value, size_t len, enum component where, int text,
                                  uint8_t *out, size_t out_size, size_t *out_len, const char *name,
                                  trellis_reason_t *reason)
{
    size_t n = 0;
    size_t cap = text ? out_size - 1 : out_size;

    for (size_t i = 0; i < len; i++) {
        int byte;
        if (value[i] == '%') {
            int hi = i + 2 < len ? hex_value(value[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(value[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                          "attribute %s: malformed percent escape", name);
            }
            byte = hi * 16 + lo;
            i += 2;
            if (text && byte == 0) {
                return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                          "attribute %s: NUL byte in a text value", name);
            }
        } else if (is_allowed(value[i], where)) {
            byte = (unsigned char)value[i];
        } else {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute %s: character not allowed here (RFC 7512 §2.3)",
                                      name);
        }
        if (n >= cap) {
            return trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                      "attribute %s: value longer than %zu bytes", name, cap);
        }
        out[n++] = (uint8_t)byte;
    }
    if (text) {
        out[n] = '\0';
    }
    *out_len = n;
    return TRELLIS_OK;
}

static int is_vendor_name(const char *name, size_t len)
{
    if (len < 3 || name[0] != 'x' || name[1] != '-') {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            return 0;
        }
    }
    return 1;
}

static int all_digits(const char *s, size_t len)
{
    if (len == 0) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
    }
    return 1;
}

static trellis_err_t store_text(char *dst, size_t dst_size, const char *value, size_t len,
                                enum component where, const char *name, trellis_reason_t *reason)
{
    size_t n = 0;
    return decode_value(value, len, where, 1, (uint8_t *)dst, dst_size, &n, name, reason);
}

/* One NAME=VALUE attribute of the given component. */
static trellis_err_t parse_attribute(const char *attr, size_t len, enum component where,
                                     unsigned *seen, trellis_pkcs11_uri_t *out,
                                     trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const char *eq = memchr(attr, '=', len);
    const char *value = NULL;
    size_t name_len = 0;
    size_t value_len = 0;
    char scratch[SCRATCH_MAX + 1];
    size_t n = 0;
    int a = -1;

    if (len == 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "empty attribute in %s",
                                  where == IN_PATH ? "path" : "query");
    }
    if (eq == NULL || eq == attr) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "attribute without NAME=VALUE form");
    }
    name_len = (size_t)(eq - attr);
    value = eq + 1;
    value_len = len - name_len - 1;
    for (int i = 0; i < A_COUNT; i++) {
        if (strlen(attrs[i].name) == name_len && memcmp(attrs[i].name, attr, name_len) == 0) {
            a = i;
            break;
        }
    }
    if (a < 0) {
        if (is_vendor_name(attr, name_len)) {
            /* RFC 7512 §2.3: vendor attributes are allowed; Trellis knows none, so it checks
             * their syntax and ignores them. */
            return decode_value(value, value_len, where, 0, (uint8_t *)scratch, sizeof(scratch), &n,
                                "x-", reason);
        }
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "unknown attribute '%.*s'",
                                  (int)(name_len > 32 ? 32 : name_len), attr);
    }
    const char *name = attrs[a].name;
    if (attrs[a].where != where) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "attribute %s belongs in the %s", name,
                                  attrs[a].where == IN_PATH ? "path" : "query");
    }
    if (*seen & (1u << a)) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "attribute %s appears twice", name);
    }
    *seen |= 1u << a;

    switch (a) {
    case A_TOKEN:
        out->present |= TRELLIS_PKCS11_HAS_TOKEN;
        return store_text(out->token, sizeof(out->token), value, value_len, where, name, reason);
    case A_MANUFACTURER:
        out->present |= TRELLIS_PKCS11_HAS_MANUFACTURER;
        return store_text(out->manufacturer, sizeof(out->manufacturer), value, value_len, where,
                          name, reason);
    case A_SERIAL:
        out->present |= TRELLIS_PKCS11_HAS_SERIAL;
        return store_text(out->serial, sizeof(out->serial), value, value_len, where, name, reason);
    case A_MODEL:
        out->present |= TRELLIS_PKCS11_HAS_MODEL;
        return store_text(out->model, sizeof(out->model), value, value_len, where, name, reason);
    case A_OBJECT:
        out->present |= TRELLIS_PKCS11_HAS_OBJECT;
        return store_text(out->object, sizeof(out->object), value, value_len, where, name, reason);
    case A_ID:
        out->present |= TRELLIS_PKCS11_HAS_ID;
        return decode_value(value, value_len, where, 0, out->id, sizeof(out->id), &out->id_len,
                            name, reason);
    case A_LIB_MANUFACTURER:
    case A_LIB_DESCRIPTION:
    case A_SLOT_DESCRIPTION:
    case A_SLOT_MANUFACTURER:
        return store_text(scratch, sizeof(scratch), value, value_len, where, name, reason);
    case A_LIB_VERSION: {
        /* pk11-lib-ver = "library-version" "=" 1*DIGIT [ "." 1*DIGIT ] */
        err = store_text(scratch, sizeof(scratch), value, value_len, where, name, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        const char *dot = strchr(scratch, '.');
        size_t major = dot ? (size_t)(dot - scratch) : strlen(scratch);
        if (!all_digits(scratch, major) || (dot && !all_digits(dot + 1, strlen(dot + 1)))) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute %s: expected DIGITS[.DIGITS]", name);
        }
        return TRELLIS_OK;
    }
    case A_TYPE: {
        static const struct {
            const char *text;
            trellis_pkcs11_type_t type;
        } types[] = {
            {"public", TRELLIS_PKCS11_TYPE_PUBLIC}, {"private", TRELLIS_PKCS11_TYPE_PRIVATE},
            {"cert", TRELLIS_PKCS11_TYPE_CERT},     {"secret-key", TRELLIS_PKCS11_TYPE_SECRET_KEY},
            {"data", TRELLIS_PKCS11_TYPE_DATA},
        };
        err = store_text(scratch, sizeof(scratch), value, value_len, where, name, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcmp(scratch, types[i].text) == 0) {
                out->type = types[i].type;
                out->present |= TRELLIS_PKCS11_HAS_TYPE;
                return TRELLIS_OK;
            }
        }
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "attribute type: expected public, private, cert, secret-key "
                                  "or data");
    }
    case A_SLOT_ID: {
        /* pk11-slot-id = "slot-id" "=" 1*DIGIT, a CK_SLOT_ID (unsigned long). */
        char *end = NULL;
        err = store_text(scratch, sizeof(scratch), value, value_len, where, name, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        if (!all_digits(scratch, strlen(scratch))) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute slot-id: expected a decimal number");
        }
        errno = 0;
        unsigned long v = strtoul(scratch, &end, 10);
        if (errno != 0 || end == NULL || *end != '\0') {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute slot-id: number out of range");
        }
        out->slot_id = v;
        out->present |= TRELLIS_PKCS11_HAS_SLOT_ID;
        return TRELLIS_OK;
    }
    case A_MODULE_PATH:
        err = store_text(out->module_path, sizeof(out->module_path), value, value_len, where, name,
                         reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        if (out->module_path[0] != '/') {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute module-path: expected an absolute path");
        }
        out->present |= TRELLIS_PKCS11_HAS_MODULE_PATH;
        return TRELLIS_OK;
    case A_MODULE_NAME:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "attribute module-name is not supported: give module-path");
    case A_PIN_VALUE:
        out->present |= TRELLIS_PKCS11_HAS_PIN_VALUE;
        return store_text(out->pin, sizeof(out->pin), value, value_len, where, name, reason);
    case A_PIN_SOURCE: {
        err = store_text(scratch, sizeof(scratch), value, value_len, where, name, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        /* RFC 7512 §2.3 leaves pin-source open; Trellis takes a file, as an absolute path or
         * a "file:" URI of one. */
        const char *path = scratch;
        if (strncmp(path, "file://", 7) == 0) {
            path += 7;
        } else if (strncmp(path, "file:", 5) == 0) {
            path += 5;
        }
        if (path[0] != '/') {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "attribute pin-source: expected an absolute file path");
        }
        err = tr__dev_strlcpy(out->pin_source, sizeof(out->pin_source), path);
        if (err != TRELLIS_OK) {
            return trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                      "attribute pin-source: path too long");
        }
        out->present |= TRELLIS_PKCS11_HAS_PIN_SOURCE;
        return TRELLIS_OK;
    }
    default:
        return TRELLIS_ERR_INTERNAL;
    }
}

static trellis_err_t parse_component(const char *s, size_t len, enum component where,
                                     unsigned *seen, trellis_pkcs11_uri_t *out,
                                     trellis_reason_t *reason)
{
    const char sep = where == IN_PATH ? ';' : '&';
    size_t start = 0;

    if (len == 0) {
        return TRELLIS_OK;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == sep) {
            trellis_err_t err = parse_attribute(s + start, i - start, where, seen, out, reason);
            if (err != TRELLIS_OK) {
                return err;
            }
            start = i + 1;
        }
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_pkcs11_uri_parse(const char *text, size_t len, trellis_pkcs11_uri_t *out,
                                       trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const char *q = NULL;
    size_t path_len = 0;
    unsigned seen = 0;

    trellis_reason_clear(reason);
    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (text == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (len > TRELLIS_PKCS11_URI_MAX) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "URI longer than %d bytes",
                                 TRELLIS_PKCS11_URI_MAX);
        goto out;
    }
    if (memchr(text, '\0', len) != NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "NUL byte in URI");
        goto out;
    }
    /* RFC 3986 §3.1: scheme names are case-insensitive. */
    if (len < SCHEME_LEN || strncasecmp(text, SCHEME, SCHEME_LEN) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "URI does not start with pkcs11:");
        goto out;
    }
    text += SCHEME_LEN;
    len -= SCHEME_LEN;
    /* The first '?' ends the path; later ones are query characters (pk11-q-special). */
    q = memchr(text, '?', len);
    path_len = q != NULL ? (size_t)(q - text) : len;
    err = parse_component(text, path_len, IN_PATH, &seen, out, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (q != NULL) {
        err = parse_component(q + 1, len - path_len - 1, IN_QUERY, &seen, out, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
    }
    /* RFC 7512 §2.4: pin-source and pin-value together are ambiguous. */
    if ((out->present & TRELLIS_PKCS11_HAS_PIN_VALUE) &&
        (out->present & TRELLIS_PKCS11_HAS_PIN_SOURCE)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "pin-value and pin-source are mutually exclusive");
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        trellis_pkcs11_uri_cleanse(out);
    }
    return err;
}

void trellis_pkcs11_uri_cleanse(trellis_pkcs11_uri_t *uri)
{
    if (uri != NULL) {
        tr__dev_wipe(uri, sizeof(*uri));
    }
}

/* Appends to buf at *pos; counts the size needed even when buf is NULL or full. */
static void put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (buf != NULL && *pos < size) {
        size_t room = size - *pos;
        memcpy(buf + *pos, s, n < room ? n : room);
    }
    *pos += n;
}

static void put_encoded(char *buf, size_t size, size_t *pos, const uint8_t *v, size_t n,
                        int keep_slash, int encode_all)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        char c = (char)v[i];
        if (!encode_all && (is_unreserved(c) || (keep_slash && c == '/'))) {
            put(buf, size, pos, &c, 1);
        } else {
            char esc[3] = {'%', hex[v[i] >> 4], hex[v[i] & 0x0f]};
            put(buf, size, pos, esc, 3);
        }
    }
}

static void put_attr(char *buf, size_t size, size_t *pos, int *first, const char *name,
                     const uint8_t *v, size_t n, int encode_all)
{
    if (!*first) {
        put(buf, size, pos, ";", 1);
    }
    *first = 0;
    put(buf, size, pos, name, strlen(name));
    put(buf, size, pos, "=", 1);
    put_encoded(buf, size, pos, v, n, 0, encode_all);
}

trellis_err_t trellis_pkcs11_uri_format(const trellis_pkcs11_uri_t *uri, char *buf, size_t buf_size,
                                        size_t *out_len)
{
    static const char *const type_names[] = {
        [TRELLIS_PKCS11_TYPE_PRIVATE] = "private", [TRELLIS_PKCS11_TYPE_PUBLIC] = "public",
        [TRELLIS_PKCS11_TYPE_CERT] = "cert",       [TRELLIS_PKCS11_TYPE_SECRET_KEY] = "secret-key",
        [TRELLIS_PKCS11_TYPE_DATA] = "data",
    };
    size_t pos = 0;
    int first = 1;
    char num[32];

    if (out_len == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    *out_len = 0;
    if (uri == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    put(buf, buf_size, &pos, SCHEME, SCHEME_LEN);
    if (uri->present & TRELLIS_PKCS11_HAS_TOKEN) {
        put_attr(buf, buf_size, &pos, &first, "token", (const uint8_t *)uri->token,
                 strnlen(uri->token, sizeof(uri->token)), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_MANUFACTURER) {
        put_attr(buf, buf_size, &pos, &first, "manufacturer", (const uint8_t *)uri->manufacturer,
                 strnlen(uri->manufacturer, sizeof(uri->manufacturer)), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_MODEL) {
        put_attr(buf, buf_size, &pos, &first, "model", (const uint8_t *)uri->model,
                 strnlen(uri->model, sizeof(uri->model)), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_SERIAL) {
        put_attr(buf, buf_size, &pos, &first, "serial", (const uint8_t *)uri->serial,
                 strnlen(uri->serial, sizeof(uri->serial)), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_SLOT_ID) {
        int n = snprintf(num, sizeof(num), "%lu", uri->slot_id);
        put_attr(buf, buf_size, &pos, &first, "slot-id", (const uint8_t *)num, (size_t)n, 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_OBJECT) {
        put_attr(buf, buf_size, &pos, &first, "object", (const uint8_t *)uri->object,
                 strnlen(uri->object, sizeof(uri->object)), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_ID) {
        if (uri->id_len > sizeof(uri->id)) {
            return TRELLIS_ERR_INVALID_ARG;
        }
        /* RFC 7512 §2.3: id is a byte string, percent-encoded byte by byte. */
        put_attr(buf, buf_size, &pos, &first, "id", uri->id, uri->id_len, 1);
    }
    if ((uri->present & TRELLIS_PKCS11_HAS_TYPE) && uri->type > TRELLIS_PKCS11_TYPE_ANY &&
        uri->type <= TRELLIS_PKCS11_TYPE_DATA) {
        const char *t = type_names[uri->type];
        put_attr(buf, buf_size, &pos, &first, "type", (const uint8_t *)t, strlen(t), 0);
    }
    if (uri->present & TRELLIS_PKCS11_HAS_MODULE_PATH) {
        put(buf, buf_size, &pos, "?module-path=", 13);
        put_encoded(buf, buf_size, &pos, (const uint8_t *)uri->module_path,
                    strnlen(uri->module_path, sizeof(uri->module_path)), 1, 0);
    }
    /* pin-value and pin-source are deliberately never written. */
    if (buf == NULL || pos + 1 > buf_size) {
        *out_len = pos + 1;
        if (buf != NULL && buf_size > 0) {
            buf[0] = '\0';
        }
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    buf[pos] = '\0';
    *out_len = pos;
    return TRELLIS_OK;
}
