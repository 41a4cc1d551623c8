/*
 * Factory manifest parsing and streaming import (docs/manifest-format.md).
 *
 * The body is consumed line by line: each line is parsed, checked, fed to the running SHA-256
 * and staged in the store, and only one partial line is ever buffered, so memory does not grow
 * with the number of records. Nothing becomes visible in the registry until the trailer's hash
 * and signature have verified and the store's commit succeeds.
 */
#include "manifest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "trellis/encoding.h"

#define SHA256_HEX_LEN 64

typedef enum { ST_HEADER, ST_RECORDS, ST_TRAILER, ST_DONE, ST_FAILED, ST_FINISHED } import_state;

struct tr__import {
    trellis_vstore_t *store;
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    int admin; /* a local import by the operator: any registered factory may be named */
    uint64_t count_max;
    import_state state;
    EVP_MD_CTX *md;
    EC_GROUP *group;
    EC_POINT *point;
    EVP_PKEY *factory_key;
    int staging;
    tr__manifest_trailer_t trailer;
    tr__import_report_t report;
    size_t partial_len;
    char partial[TR__MANIFEST_LINE_MAX + 1];
};

/* ---- line parsers ---- */

static json_t *load_object(const char *line, size_t len, trellis_reason_t *reason)
{
    json_error_t jerr;
    /* JSON_REJECT_DUPLICATES: a member may not appear twice (docs/manifest-format.md). jansson
     * also refuses invalid UTF-8 and \u0000 inside strings. */
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        trellis_reason_set(reason, TRELLIS_ERR_PARSE, "not JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        trellis_reason_set(reason, TRELLIS_ERR_PARSE, "not a JSON object");
        return NULL;
    }
    return root;
}

/* Refuses members outside the expected set: what the factory signed is exactly what the
 * verifier records. */
static trellis_err_t only_members(json_t *obj, const char *const *names, size_t n,
                                  trellis_reason_t *reason)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        (void)value;
        size_t i = 0;
        while (i < n && strcmp(key, names[i]) != 0)
            i++;
        if (i == n)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "unknown member \"%.32s\"", key);
    }
    return TRELLIS_OK;
}

static const char *get_string(json_t *obj, const char *name, size_t *len, trellis_reason_t *reason)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL) {
        trellis_reason_set(reason, TRELLIS_ERR_PARSE, "missing member \"%s\"", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member \"%s\" is not a string", name);
        return NULL;
    }
    *len = json_string_length(v);
    return json_string_value(v);
}

static trellis_err_t get_text(json_t *obj, const char *name, char *out, size_t out_size,
                              int (*valid)(const char *), trellis_reason_t *reason)
{
    size_t len = 0;
    const char *s = get_string(obj, name, &len, reason);
    if (s == NULL)
        return TRELLIS_ERR_PARSE;
    if (len >= out_size || strlen(s) != len || !valid(s))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member \"%s\" is not valid", name);
    memcpy(out, s, len + 1);
    return TRELLIS_OK;
}

static trellis_err_t get_uint(json_t *obj, const char *name, uint64_t max, uint64_t *out,
                              trellis_reason_t *reason)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "missing member \"%s\"", name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "member \"%s\" is not an integer in 0..%" PRIu64, name, max);
    *out = (uint64_t)json_integer_value(v);
    return TRELLIS_OK;
}

static int digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return 1;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int tr__rfc3339_utc_valid(const char *t)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (t == NULL)
        return 0;
    size_t n = strlen(t);
    /* RFC 3339 §5.6 date-time with time-offset "Z" only. */
    if (n < 20 || n > TR__MANIFEST_CREATED_MAX || t[4] != '-' || t[7] != '-' || t[10] != 'T' ||
        t[13] != ':' || t[16] != ':' || t[n - 1] != 'Z')
        return 0;
    if (!digits(t, 4) || !digits(t + 5, 2) || !digits(t + 8, 2) || !digits(t + 11, 2) ||
        !digits(t + 14, 2) || !digits(t + 17, 2))
        return 0;
    if (n > 20) {
        if (t[19] != '.' || n < 22 || !digits(t + 20, n - 21))
            return 0;
    }
    int mon = num(t + 5, 2), day = num(t + 8, 2);
    return mon >= 1 && mon <= 12 && day >= 1 && day <= mdays[mon - 1] && num(t + 11, 2) <= 23 &&
           num(t + 14, 2) <= 59 && num(t + 17, 2) <= 60;
}

static int created_valid(const char *s)
{
    return tr__rfc3339_utc_valid(s);
}

trellis_err_t tr__manifest_parse_header(const char *line, size_t len, tr__manifest_header_t *out,
                                        trellis_reason_t *reason)
{
    static const char *const members[] = {"trellis_manifest", "factory", "owner", "batch",
                                          "created",          "count"};
    trellis_err_t err = TRELLIS_ERR_PARSE;
    json_t *root = NULL;
    uint64_t version = 0;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (line == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    root = load_object(line, len, reason);
    if (root == NULL)
        goto out;
    if ((err = only_members(root, members, 6, reason)) != TRELLIS_OK ||
        (err = get_uint(root, "trellis_manifest", UINT32_MAX, &version, reason)) != TRELLIS_OK)
        goto out;
    if (version != TR__MANIFEST_VERSION) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "manifest version %" PRIu64 " is not supported (expected 1)",
                                 version);
        goto out;
    }
    if ((err = get_text(root, "factory", out->factory, sizeof(out->factory),
                        trellis_vstore_name_valid, reason)) != TRELLIS_OK ||
        (err = get_text(root, "owner", out->owner, sizeof(out->owner), trellis_vstore_name_valid,
                        reason)) != TRELLIS_OK ||
        (err = get_text(root, "batch", out->batch, sizeof(out->batch), trellis_vstore_text_valid,
                        reason)) != TRELLIS_OK ||
        (err = get_text(root, "created", out->created, sizeof(out->created), created_valid,
                        reason)) != TRELLIS_OK ||
        (err = get_uint(root, "count", TR__MANIFEST_COUNT_MAX, &out->count, reason)) != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_PARSE;
    if (out->count == 0) {
        trellis_reason_set(reason, err, "member \"count\" is 0");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(root);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

/* A valid point on P-256: uncompressed SEC1, coordinates below p, on the curve (the curve has
 * cofactor 1, so that also puts it in the group). EC_POINT_oct2point checks all of it, and is
 * much cheaper per record than building an EVP_PKEY. */
static int point_on_p256(const EC_GROUP *group, EC_POINT *point, const uint8_t *p)
{
    if (p[0] != 0x04)
        return 0;
    int ok = EC_POINT_oct2point(group, point, p, TRELLIS_ROT_KEY_LEN, NULL) == 1 &&
             EC_POINT_is_at_infinity(group, point) == 0;
    if (!ok)
        ERR_clear_error();
    return ok;
}

static trellis_err_t parse_record(const char *line, size_t len, const EC_GROUP *group,
                                  EC_POINT *point, tr__manifest_record_t *out,
                                  trellis_reason_t *reason)
{
    static const char *const members[] = {"device_id", "rot_key", "model", "serial"};
    trellis_err_t err = TRELLIS_ERR_PARSE;
    json_t *root = NULL;
    size_t key_len = 0, raw_len = 0;
    uint8_t digest[TRELLIS_SHA256_LEN];
    char expect[TRELLIS_DEVICE_ID_HEX_LEN + 1];

    memset(out, 0, sizeof(*out));
    root = load_object(line, len, reason);
    if (root == NULL)
        goto out;
    if ((err = only_members(root, members, 4, reason)) != TRELLIS_OK ||
        (err = get_text(root, "device_id", out->device_id, sizeof(out->device_id),
                        trellis_vstore_device_id_valid, reason)) != TRELLIS_OK ||
        (err = get_text(root, "model", out->model, sizeof(out->model), trellis_vstore_text_valid,
                        reason)) != TRELLIS_OK ||
        (err = get_text(root, "serial", out->serial, sizeof(out->serial), trellis_vstore_text_valid,
                        reason)) != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_PARSE;
    const char *key = get_string(root, "rot_key", &key_len, reason);
    if (key == NULL)
        goto out;
    if (trellis_b64url_decode(key, key_len, out->rot_key, sizeof(out->rot_key), &raw_len) !=
            TRELLIS_OK ||
        raw_len != TRELLIS_ROT_KEY_LEN) {
        trellis_reason_set(reason, err, "member \"rot_key\" is not base64url of 65 bytes");
        goto out;
    }
    err = TRELLIS_ERR_BAD_KEY;
    if (!point_on_p256(group, point, out->rot_key)) {
        trellis_reason_set(reason, err, "member \"rot_key\" is not a point on P-256");
        goto out;
    }
    /* device_id = lowercase hex of SHA-256(point)[0..15] (design.md §3). */
    err = trellis_sha256(out->rot_key, TRELLIS_ROT_KEY_LEN, digest);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_hex_encode(digest, 16, expect, sizeof(expect), &raw_len);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_PARSE;
    if (strcmp(expect, out->device_id) != 0) {
        trellis_reason_set(reason, err, "device_id is not derived from rot_key");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(root);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

trellis_err_t tr__manifest_parse_record(const char *line, size_t len, tr__manifest_record_t *out,
                                        trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    EC_GROUP *group = NULL;
    EC_POINT *point = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (line == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    point = group != NULL ? EC_POINT_new(group) : NULL;
    if (point == NULL)
        goto out;
    err = parse_record(line, len, group, point, out, reason);
out:
    EC_POINT_free(point);
    EC_GROUP_free(group);
    return err;
}

trellis_err_t tr__manifest_parse_trailer(const char *line, size_t len, tr__manifest_trailer_t *out,
                                         trellis_reason_t *reason)
{
    static const char *const members[] = {"sha256", "signature"};
    trellis_err_t err = TRELLIS_ERR_PARSE;
    json_t *root = NULL;
    size_t n = 0, raw_len = 0;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (line == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    root = load_object(line, len, reason);
    if (root == NULL)
        goto out;
    err = only_members(root, members, 2, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_PARSE;
    const char *hex = get_string(root, "sha256", &n, reason);
    if (hex == NULL)
        goto out;
    /* Lowercase only, as the format says: one spelling per manifest. */
    for (size_t i = 0; i < n; i++) {
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            n = 0;
    }
    if (n != SHA256_HEX_LEN ||
        trellis_hex_decode(hex, n, out->sha256, sizeof(out->sha256), &raw_len) != TRELLIS_OK ||
        raw_len != TRELLIS_SHA256_LEN) {
        trellis_reason_set(reason, err, "member \"sha256\" is not 64 lowercase hex characters");
        goto out;
    }
    const char *sig = get_string(root, "signature", &n, reason);
    if (sig == NULL)
        goto out;
    if (trellis_b64url_decode(sig, n, out->signature, sizeof(out->signature), &raw_len) !=
            TRELLIS_OK ||
        raw_len != TRELLIS_P256_SIG_RAW_LEN) {
        trellis_reason_set(reason, err, "member \"signature\" is not base64url of 64 bytes");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(root);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

/* ---- streaming import ---- */

static void add_bad_line(tr__import_report_t *r, uint64_t line)
{
    if (r->n_lines < TRELLIS_VSTORE_REPORT_MAX)
        r->lines[r->n_lines++] = line;
    r->n_bad++;
}

/* Records the first problem and ends the import; later lines are not read. */
static trellis_err_t fail(tr__import_t *imp, trellis_err_t err, uint64_t line,
                          const trellis_reason_t *why)
{
    tr__import_report_t *r = &imp->report;
    if (imp->state == ST_FAILED)
        return r->err;
    r->err = err;
    if (line > 0) {
        add_bad_line(r, line);
        trellis_reason_set(&r->reason, err, "line %" PRIu64 ": %s", line,
                           why != NULL ? why->text : trellis_err_message(err));
    } else {
        trellis_reason_set(&r->reason, err, "%s",
                           why != NULL ? why->text : trellis_err_message(err));
    }
    imp->state = ST_FAILED;
    if (imp->staging) {
        imp->store->import_abort(imp->store->ctx);
        imp->staging = 0;
    }
    return err;
}

static trellis_err_t on_header(tr__import_t *imp, const char *line, size_t len, uint64_t no)
{
    trellis_reason_t why;
    uint8_t point[TRELLIS_ROT_KEY_LEN];
    int exists = 0;
    tr__manifest_header_t *h = &imp->report.header;

    trellis_reason_clear(&why);
    trellis_err_t err = tr__manifest_parse_header(line, len, h, &why);
    if (err != TRELLIS_OK)
        return fail(imp, err, no, &why);
    imp->report.have_header = 1;
    if (!imp->admin && strcmp(h->factory, imp->caller) != 0) {
        trellis_reason_set(&why, TRELLIS_ERR_PERMISSION,
                           "the manifest names factory \"%s\" but the client is \"%s\"", h->factory,
                           imp->caller);
        return fail(imp, TRELLIS_ERR_PERMISSION, no, &why);
    }
    if (h->count > imp->count_max) {
        trellis_reason_set(&why, TRELLIS_ERR_TOO_LARGE,
                           "count %" PRIu64 " is above this verifier's limit of %" PRIu64, h->count,
                           imp->count_max);
        return fail(imp, TRELLIS_ERR_TOO_LARGE, no, &why);
    }
    err = imp->store->factory_key(imp->store->ctx, h->factory, point);
    if (err == TRELLIS_ERR_NOT_FOUND) {
        trellis_reason_set(&why, TRELLIS_ERR_PERMISSION, "factory \"%s\" is not registered",
                           h->factory);
        return fail(imp, TRELLIS_ERR_PERMISSION, no, &why);
    }
    if (err == TRELLIS_OK)
        err = trellis_p256_from_point(point, &imp->factory_key);
    if (err != TRELLIS_OK)
        return fail(imp, err, 0, NULL);
    err = imp->store->oem_exists(imp->store->ctx, h->owner, &exists);
    if (err != TRELLIS_OK)
        return fail(imp, err, 0, NULL);
    if (!exists) {
        trellis_reason_set(&why, TRELLIS_ERR_NOT_FOUND, "owner \"%s\" is not a registered OEM",
                           h->owner);
        return fail(imp, TRELLIS_ERR_NOT_FOUND, no, &why);
    }
    err = imp->store->import_begin(imp->store->ctx);
    if (err != TRELLIS_OK)
        return fail(imp, err, 0, NULL);
    imp->staging = 1;
    imp->state = ST_RECORDS;
    return TRELLIS_OK;
}

static trellis_err_t on_record(tr__import_t *imp, const char *line, size_t len, uint64_t no)
{
    trellis_reason_t why;
    tr__manifest_record_t rec;

    trellis_reason_clear(&why);
    trellis_err_t err = parse_record(line, len, imp->group, imp->point, &rec, &why);
    if (err != TRELLIS_OK)
        return fail(imp, err, no, &why);
    trellis_vstore_record_t r = {
        .device_id = rec.device_id,
        .rot_key = rec.rot_key,
        .model = rec.model,
        .serial = rec.serial,
    };
    err = imp->store->import_stage(imp->store->ctx, &r, no, &why);
    if (err != TRELLIS_OK)
        return fail(imp, err, no, &why);
    imp->report.records++;
    if (imp->report.records == imp->report.header.count)
        imp->state = ST_TRAILER;
    return TRELLIS_OK;
}

static trellis_err_t on_line(tr__import_t *imp, const char *line, size_t len)
{
    uint64_t no = ++imp->report.lines_read;
    trellis_reason_t why;

    if (len == 0) {
        trellis_reason_set(&why, TRELLIS_ERR_PARSE, "empty line");
        return fail(imp, TRELLIS_ERR_PARSE, no, &why);
    }
    switch (imp->state) {
    case ST_HEADER:
    case ST_RECORDS: {
        /* Every byte above the trailer, newline included, is covered by its sha256. */
        if (EVP_DigestUpdate(imp->md, line, len) != 1 || EVP_DigestUpdate(imp->md, "\n", 1) != 1)
            return fail(imp, TRELLIS_ERR_CRYPTO, 0, NULL);
        return imp->state == ST_HEADER ? on_header(imp, line, len, no)
                                       : on_record(imp, line, len, no);
    }
    case ST_TRAILER: {
        trellis_err_t err = tr__manifest_parse_trailer(line, len, &imp->trailer, &why);
        if (err != TRELLIS_OK)
            return fail(imp, err, no, &why);
        imp->state = ST_DONE;
        return TRELLIS_OK;
    }
    case ST_DONE:
        trellis_reason_set(&why, TRELLIS_ERR_PARSE, "data after the trailer");
        return fail(imp, TRELLIS_ERR_PARSE, no, &why);
    default:
        return imp->report.err != TRELLIS_OK ? imp->report.err : TRELLIS_ERR_INVALID_ARG;
    }
}

trellis_err_t tr__import_new(trellis_vstore_t *store, const char *caller, uint64_t count_max,
                             tr__import_t **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__import_t *imp = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (store == NULL || store->version != TRELLIS_VSTORE_VERSION ||
        (caller != NULL && strlen(caller) > TRELLIS_VSTORE_NAME_MAX))
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_NOMEM;
    imp = calloc(1, sizeof(*imp));
    if (imp == NULL)
        goto out;
    imp->store = store;
    imp->admin = caller == NULL;
    snprintf(imp->caller, sizeof(imp->caller), "%s", caller != NULL ? caller : "admin");
    imp->count_max =
        count_max == 0 || count_max > TR__MANIFEST_COUNT_MAX ? TR__MANIFEST_COUNT_MAX : count_max;
    imp->state = ST_HEADER;
    imp->md = EVP_MD_CTX_new();
    imp->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    imp->point = imp->group != NULL ? EC_POINT_new(imp->group) : NULL;
    if (imp->md == NULL || imp->point == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (EVP_DigestInit_ex(imp->md, EVP_sha256(), NULL) != 1)
        goto out;
    *out = imp;
    imp = NULL;
    err = TRELLIS_OK;
out:
    tr__import_free(imp);
    return err;
}

trellis_err_t tr__import_feed(tr__import_t *imp, const uint8_t *data, size_t len)
{
    trellis_reason_t why;

    if (imp == NULL || (data == NULL && len > 0))
        return TRELLIS_ERR_INVALID_ARG;
    if (imp->state == ST_FAILED)
        return imp->report.err;
    if (imp->state == ST_FINISHED)
        return TRELLIS_ERR_INVALID_ARG;
    const char *p = (const char *)data;
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (imp->partial_len + take > TR__MANIFEST_LINE_MAX) {
            trellis_reason_set(&why, TRELLIS_ERR_TOO_LARGE, "line longer than %d bytes",
                               TR__MANIFEST_LINE_MAX);
            return fail(imp, TRELLIS_ERR_TOO_LARGE, imp->report.lines_read + 1, &why);
        }
        if (nl == NULL) {
            memcpy(imp->partial + imp->partial_len, p, take);
            imp->partial_len += take;
            break;
        }
        trellis_err_t err;
        if (imp->partial_len == 0) {
            /* The whole line is in this chunk: parse it in place. */
            err = on_line(imp, p, take);
        } else {
            memcpy(imp->partial + imp->partial_len, p, take);
            err = on_line(imp, imp->partial, imp->partial_len + take);
            imp->partial_len = 0;
        }
        if (err != TRELLIS_OK)
            return err;
        p = nl + 1;
    }
    return TRELLIS_OK;
}

static trellis_err_t check_end(tr__import_t *imp)
{
    trellis_reason_t why;
    tr__import_report_t *r = &imp->report;
    uint8_t digest[TRELLIS_SHA256_LEN];
    unsigned int dlen = 0;

    if (imp->partial_len > 0) {
        trellis_reason_set(&why, TRELLIS_ERR_PARSE, "the last line has no newline");
        return fail(imp, TRELLIS_ERR_PARSE, r->lines_read + 1, &why);
    }
    if (imp->state != ST_DONE) {
        if (!r->have_header)
            trellis_reason_set(&why, TRELLIS_ERR_PARSE, "empty manifest");
        else
            trellis_reason_set(&why, TRELLIS_ERR_PARSE,
                               "manifest ends after line %" PRIu64 "; the header announces %" PRIu64
                               " records and a trailer",
                               r->lines_read, r->header.count);
        return fail(imp, TRELLIS_ERR_PARSE, 0, &why);
    }
    if (EVP_DigestFinal_ex(imp->md, digest, &dlen) != 1 || dlen != sizeof(digest))
        return fail(imp, TRELLIS_ERR_CRYPTO, 0, NULL);
    memcpy(r->sha256, digest, sizeof(digest));
    r->have_sha256 = 1;
    if (memcmp(digest, imp->trailer.sha256, sizeof(digest)) != 0) {
        trellis_reason_set(&why, TRELLIS_ERR_BAD_SIGNATURE,
                           "sha256 does not match the manifest's bytes");
        return fail(imp, TRELLIS_ERR_BAD_SIGNATURE, r->lines_read, &why);
    }
    trellis_err_t err =
        trellis_p256_verify_digest(imp->factory_key, digest, imp->trailer.signature);
    if (err != TRELLIS_OK) {
        trellis_reason_set(&why, TRELLIS_ERR_BAD_SIGNATURE,
                           "signature does not verify with the key of factory \"%s\"",
                           r->header.factory);
        return fail(imp, TRELLIS_ERR_BAD_SIGNATURE, r->lines_read, &why);
    }
    return TRELLIS_OK;
}

trellis_err_t tr__import_finish(tr__import_t *imp, tr__import_report_t *report)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_import_result_t res;
    trellis_reason_t why;

    if (imp == NULL || report == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(report, 0, sizeof(*report));
    if (imp->state == ST_FINISHED)
        return TRELLIS_ERR_INVALID_ARG;
    if (imp->state == ST_FAILED) {
        err = imp->report.err;
        goto out;
    }
    err = check_end(imp);
    if (err != TRELLIS_OK)
        goto out;
    tr__manifest_header_t *h = &imp->report.header;
    trellis_vstore_manifest_t m = {
        .factory = h->factory,
        .owner = h->owner,
        .batch = h->batch,
        .created = h->created,
        .count = h->count,
        .sha256 = imp->report.sha256,
        .caller = imp->caller,
    };
    err = imp->store->import_commit(imp->store->ctx, &m, &res);
    imp->staging = 0;
    if (err == TRELLIS_ERR_CONFLICT) {
        if (res.n_lines == 0) {
            trellis_reason_set(&why, err,
                               "factory \"%s\" already imported another manifest "
                               "with batch \"%s\"",
                               h->factory, h->batch);
            fail(imp, err, 0, &why);
        } else {
            trellis_reason_set(&why, err, "%" PRIu64 " record(s) conflict with known devices",
                               res.conflicts);
            fail(imp, err, 0, &why);
            memcpy(imp->report.lines, res.lines, res.n_lines * sizeof(res.lines[0]));
            imp->report.n_lines = res.n_lines;
            imp->report.n_bad = res.conflicts;
        }
        goto out;
    }
    if (err == TRELLIS_ERR_NOT_FOUND) {
        trellis_reason_set(&why, err, "owner or factory is no longer registered");
        fail(imp, err, 0, &why);
        goto out;
    }
    if (err != TRELLIS_OK) {
        fail(imp, err, 0, NULL);
        goto out;
    }
    imp->report.already_present = res.already_present;
    imp->report.added = res.added;
    imp->report.present = res.present;
    imp->report.err = TRELLIS_OK;
out:
    *report = imp->report;
    imp->state = ST_FINISHED;
    return err;
}

const tr__import_report_t *tr__import_report(const tr__import_t *imp)
{
    return imp != NULL ? &imp->report : NULL;
}

json_t *tr__import_report_json(const tr__import_report_t *rep)
{
    char hex[2 * TRELLIS_SHA256_LEN + 1];
    char detail[sizeof(rep->reason.text)];
    size_t n = 0;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (rep->have_header) {
        json_object_set_new(o, "factory", json_string(rep->header.factory));
        json_object_set_new(o, "owner", json_string(rep->header.owner));
        json_object_set_new(o, "batch", json_string(rep->header.batch));
    }
    if (rep->have_sha256 &&
        trellis_hex_encode(rep->sha256, sizeof(rep->sha256), hex, sizeof(hex), &n) == TRELLIS_OK)
        json_object_set_new(o, "sha256", json_string(hex));
    json_object_set_new(o, "records", json_integer((json_int_t)rep->records));
    if (rep->err == TRELLIS_OK) {
        json_object_set_new(o, "status",
                            json_string(rep->already_present ? "already_present" : "imported"));
        json_object_set_new(o, "devices", json_integer((json_int_t)rep->records));
        json_object_set_new(o, "added", json_integer((json_int_t)rep->added));
        json_object_set_new(o, "present", json_integer((json_int_t)rep->present));
        return o;
    }
    /* Reasons may quote bytes of the manifest: keep them printable ASCII. */
    snprintf(detail, sizeof(detail), "%s",
             rep->reason.text[0] != '\0' ? rep->reason.text : trellis_err_message(rep->err));
    for (char *c = detail; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    }
    json_object_set_new(o, "error", json_string(trellis_err_api_code(rep->err)));
    json_object_set_new(o, "detail", json_string(detail));
    json_t *lines = json_array();
    for (size_t i = 0; lines != NULL && i < rep->n_lines; i++)
        json_array_append_new(lines, json_integer((json_int_t)rep->lines[i]));
    json_object_set_new(o, "lines", lines);
    json_object_set_new(o, "offending_lines", json_integer((json_int_t)rep->n_bad));
    return o;
}

void tr__import_free(tr__import_t *imp)
{
    if (imp == NULL)
        return;
    if (imp->staging)
        imp->store->import_abort(imp->store->ctx);
    EVP_PKEY_free(imp->factory_key);
    EC_POINT_free(imp->point);
    EC_GROUP_free(imp->group);
    EVP_MD_CTX_free(imp->md);
    free(imp);
}
