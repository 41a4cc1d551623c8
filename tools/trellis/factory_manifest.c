/*
 * Signed factory manifests (docs/manifest-format.md): the streaming writer, a verifier that
 * checks a file the way the verifier service will, and the id set both use to find duplicates.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "factory.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"

#define HEADER_VERSION 1

/* ---- id set ---- */

static size_t slot_of(const tr_idset_t *s, const uint8_t id[16])
{
    uint64_t h = 0;
    /* The ids are SHA-256 outputs (device ids, hashed serials): any 8 bytes are uniform. */
    memcpy(&h, id, sizeof(h));
    return (size_t)(h & (s->cap - 1));
}

static trellis_err_t idset_alloc(tr_idset_t *s, size_t cap)
{
    s->keys = calloc(cap, sizeof(*s->keys));
    s->lines = calloc(cap, sizeof(*s->lines));
    if (s->keys == NULL || s->lines == NULL) {
        free(s->keys);
        free(s->lines);
        s->keys = NULL;
        s->lines = NULL;
        return TRELLIS_ERR_NOMEM;
    }
    s->cap = cap;
    return TRELLIS_OK;
}

trellis_err_t tr__idset_init(tr_idset_t *s, size_t expected)
{
    size_t cap = 1024;

    if (s == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(s, 0, sizeof(*s));
    if (expected > TR_MANIFEST_MAX) {
        expected = TR_MANIFEST_MAX;
    }
    while (cap < 2 * expected) {
        cap *= 2;
    }
    return idset_alloc(s, cap);
}

static trellis_err_t idset_grow(tr_idset_t *s)
{
    tr_idset_t bigger;
    trellis_err_t err = idset_alloc(&bigger, s->cap * 2);

    if (err != TRELLIS_OK) {
        return err;
    }
    bigger.n = s->n;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->lines[i] != 0) {
            size_t j = slot_of(&bigger, s->keys[i]);
            while (bigger.lines[j] != 0) {
                j = (j + 1) & (bigger.cap - 1);
            }
            memcpy(bigger.keys[j], s->keys[i], 16);
            bigger.lines[j] = s->lines[i];
        }
    }
    free(s->keys);
    free(s->lines);
    *s = bigger;
    return TRELLIS_OK;
}

trellis_err_t tr__idset_add(tr_idset_t *s, const uint8_t id[16], uint64_t line,
                            uint64_t *first_line)
{
    size_t i;

    if (s == NULL || s->keys == NULL || id == NULL || line == 0) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (first_line != NULL) {
        *first_line = 0;
    }
    if (s->n >= TR_MANIFEST_MAX) {
        return TRELLIS_ERR_TOO_LARGE;
    }
    /* Keep the load under one half, so probes stay short. */
    if (2 * (s->n + 1) > s->cap) {
        trellis_err_t err = idset_grow(s);
        if (err != TRELLIS_OK) {
            return err;
        }
    }
    for (i = slot_of(s, id); s->lines[i] != 0; i = (i + 1) & (s->cap - 1)) {
        if (memcmp(s->keys[i], id, 16) == 0) {
            if (first_line != NULL) {
                *first_line = s->lines[i];
            }
            return TRELLIS_ERR_CONFLICT;
        }
    }
    memcpy(s->keys[i], id, 16);
    s->lines[i] = line;
    s->n++;
    return TRELLIS_OK;
}

void tr__idset_free(tr_idset_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->keys);
    free(s->lines);
    memset(s, 0, sizeof(*s));
}

/* ---- writer ---- */

static trellis_err_t put_raw(char *buf, size_t size, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= size) {
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(buf + *pos, s, n);
    *pos += n;
    return TRELLIS_OK;
}

static trellis_err_t write_line(tr_manifest_writer_t *w, const char *line, size_t len, int hash)
{
    if (fwrite(line, 1, len, w->fp) != len) {
        return TRELLIS_ERR_IO;
    }
    /* The trailer's sha256 covers the header and record lines, newlines included. */
    if (hash && EVP_DigestUpdate(w->md, line, len) != 1) {
        return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

trellis_err_t tr__manifest_begin(tr_manifest_writer_t *w, const char *path,
                                 const tr_manifest_header_t *h, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char line[TR_MANIFEST_LINE_MAX + 1];
    char created[32];
    char num[32];
    size_t pos = 0;
    struct stat st;
    int fd = -1;

    trellis_reason_clear(reason);
    if (w == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(w, 0, sizeof(*w));
    if (path == NULL || h == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (!tr__factory_name_valid(h->factory) || !tr__factory_name_valid(h->owner) ||
        !tr__factory_name_valid(h->batch)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "factory, owner and batch must be 1..%d characters of "
                                  "[A-Za-z0-9._-], starting with a letter or digit",
                                  TR_NAME_MAX);
    }
    if (h->count == 0 || h->count > TR_MANIFEST_MAX) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "a manifest holds 1..%d devices",
                                  TR_MANIFEST_MAX);
    }
    int n1 = snprintf(w->path, sizeof(w->path), "%s", path);
    int n2 = snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", path);
    if (n1 < 0 || (size_t)n1 >= sizeof(w->path) || n2 < 0 || (size_t)n2 >= sizeof(w->tmp)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "manifest path too long");
    }
    if (stat(path, &st) == 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                  "%s exists; a signed manifest is never overwritten", path);
    }
    if (h->created[0] != '\0') {
        snprintf(created, sizeof(created), "%s", h->created);
    } else {
        tr__rfc3339_now(created, sizeof(created));
    }
    /* A leftover .tmp is an earlier, uncommitted attempt: it was never a manifest. */
    fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        err = trellis_reason_set(reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO,
                                 "cannot create %s", w->tmp);
        goto out;
    }
    w->fp = fdopen(fd, "w");
    if (w->fp == NULL) {
        close(fd);
        err = TRELLIS_ERR_IO;
        goto out;
    }
    w->md = EVP_MD_CTX_new();
    if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    w->count = h->count;
    /* docs/manifest-format.md, header: members in the documented order. */
    snprintf(num, sizeof(num), "%llu", (unsigned long long)h->count);
    if (put_raw(line, sizeof(line), &pos, "{\"trellis_manifest\":1,\"factory\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, h->factory) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, ",\"owner\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, h->owner) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, ",\"batch\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, h->batch) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, ",\"created\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, created) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, ",\"count\":") != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, num) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, "}\n") != TRELLIS_OK) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    err = write_line(w, line, pos, 1);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot write %s", w->tmp);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        tr__manifest_abort(w);
    }
    return err;
}

trellis_err_t tr__manifest_add(tr_manifest_writer_t *w, const uint8_t point[TRELLIS_ROT_POINT_LEN],
                               const char *model, const char *serial, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char line[TR_MANIFEST_LINE_MAX + 1];
    char id[TRELLIS_DEVICE_ID_LEN + 1];
    char key[128];
    size_t key_len = 0;
    size_t pos = 0;

    if (w == NULL || w->fp == NULL || point == NULL || model == NULL || serial == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (w->written >= w->count) {
        return trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "more records than the count");
    }
    if (trellis_device_name_check(model) != TRELLIS_OK ||
        trellis_device_name_check(serial) != TRELLIS_OK) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "model and serial must be 1..64 printable ASCII characters");
    }
    err = trellis_device_id_from_point(point, id);
    if (err != TRELLIS_OK) {
        return err;
    }
    err = trellis_b64url_encode(point, TRELLIS_ROT_POINT_LEN, key, sizeof(key), &key_len);
    if (err != TRELLIS_OK) {
        return err;
    }
    /* docs/manifest-format.md, records: device_id, rot_key (base64url point), model, serial. */
    if (put_raw(line, sizeof(line), &pos, "{\"device_id\":\"") != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, id) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, "\",\"rot_key\":\"") != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, key) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, "\",\"model\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, model) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, ",\"serial\":") != TRELLIS_OK ||
        tr__json_put_string(line, sizeof(line), &pos, serial) != TRELLIS_OK ||
        put_raw(line, sizeof(line), &pos, "}\n") != TRELLIS_OK) {
        return TRELLIS_ERR_INTERNAL;
    }
    err = write_line(w, line, pos, 1);
    if (err != TRELLIS_OK) {
        return trellis_reason_set(reason, err, "cannot write %s", w->tmp);
    }
    w->written++;
    return TRELLIS_OK;
}

trellis_err_t tr__manifest_commit(tr_manifest_writer_t *w, EVP_PKEY *key, uint8_t sha256[32],
                                  trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t digest[TRELLIS_SHA256_LEN];
    uint8_t sig[TRELLIS_P256_SIG_RAW_LEN];
    char hex[2 * TRELLIS_SHA256_LEN + 1];
    char sig64[128];
    char line[256];
    char dir[TR_PATH_MAX];
    unsigned int dlen = 0;
    size_t n = 0;
    FILE *fp = NULL;

    if (sha256 != NULL) {
        memset(sha256, 0, 32);
    }
    if (w == NULL || w->fp == NULL || key == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (w->written != w->count) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INTERNAL,
                                 "%llu records written, header says %llu",
                                 (unsigned long long)w->written, (unsigned long long)w->count);
        goto out;
    }
    if (EVP_DigestFinal_ex(w->md, digest, &dlen) != 1 || dlen != sizeof(digest)) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* Trailer: ES256 over the SHA-256 of everything above, r || s in base64url. */
    if ((err = trellis_hex_encode(digest, sizeof(digest), hex, sizeof(hex), &n)) != TRELLIS_OK ||
        (err = trellis_p256_sign_digest(key, digest, sig)) != TRELLIS_OK ||
        (err = trellis_b64url_encode(sig, sizeof(sig), sig64, sizeof(sig64), &n)) != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot sign the manifest: %s",
                                 trellis_err_message(err));
        goto out;
    }
    int len =
        snprintf(line, sizeof(line), "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n", hex, sig64);
    if (len < 0 || (size_t)len >= sizeof(line)) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    err = write_line(w, line, (size_t)len, 0);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* Durable before visible: data fsynced, then the rename publishes it, then the directory
     * entry is fsynced. A crash before the rename leaves no manifest at all. */
    fp = w->fp;
    w->fp = NULL;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
        fclose(fp);
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot write %s", w->tmp);
        goto out;
    }
    if (fclose(fp) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot write %s", w->tmp);
        goto out;
    }
    if (rename(w->tmp, w->path) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot rename %s", w->tmp);
        goto out;
    }
    w->tmp[0] = '\0';
    snprintf(dir, sizeof(dir), "%s", w->path);
    err = trellis_fsync_dir(dirname(dir));
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (sha256 != NULL) {
        memcpy(sha256, digest, 32);
    }
    err = TRELLIS_OK;
out:
    tr__manifest_abort(w);
    return err;
}

void tr__manifest_abort(tr_manifest_writer_t *w)
{
    if (w == NULL) {
        return;
    }
    if (w->fp != NULL) {
        fclose(w->fp);
    }
    if (w->tmp[0] != '\0') {
        unlink(w->tmp);
    }
    EVP_MD_CTX_free(w->md);
    memset(w, 0, sizeof(*w));
}

/* ---- verifier ---- */

static trellis_err_t only_members(json_t *obj, const char *const *names, size_t n,
                                  trellis_reason_t *reason, uint64_t line)
{
    const char *key;
    json_t *v;

    if (json_object_size(obj) != n) {
        json_object_foreach(obj, key, v)
        {
            (void)v;
            size_t i = 0;
            while (i < n && strcmp(names[i], key) != 0) {
                i++;
            }
            if (i == n) {
                return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                          "line %llu: unknown member %.40s",
                                          (unsigned long long)line, key);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(obj, names[i]) == NULL) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line %llu: member %s is missing",
                                      (unsigned long long)line, names[i]);
        }
    }
    return TRELLIS_OK;
}

static const char *string_member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
        return NULL;
    }
    return json_string_value(v);
}

static trellis_err_t check_header(json_t *o, tr_manifest_header_t *h, trellis_reason_t *reason)
{
    static const char *const names[] = {"trellis_manifest", "factory", "owner", "batch",
                                        "created",          "count"};
    trellis_err_t err = only_members(o, names, 6, reason, 1);
    const char *s;
    json_t *v;

    if (err != TRELLIS_OK) {
        return err;
    }
    v = json_object_get(o, "trellis_manifest");
    if (!json_is_integer(v) || json_integer_value(v) != HEADER_VERSION) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line 1: trellis_manifest must be 1");
    }
    const char *fields[] = {"factory", "owner", "batch"};
    char *dst[] = {h->factory, h->owner, h->batch};
    for (size_t i = 0; i < 3; i++) {
        s = string_member(o, fields[i]);
        if (s == NULL || !tr__factory_name_valid(s)) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line 1: %s is not a valid name",
                                      fields[i]);
        }
        snprintf(dst[i], TR_NAME_MAX + 1, "%s", s);
    }
    s = string_member(o, "created");
    if (s == NULL || strlen(s) < 20 || strlen(s) >= sizeof(h->created) || s[strlen(s) - 1] != 'Z') {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "line 1: created must be an RFC 3339 UTC time");
    }
    snprintf(h->created, sizeof(h->created), "%s", s);
    v = json_object_get(o, "count");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > TR_MANIFEST_MAX) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line 1: count must be 1..%d",
                                  TR_MANIFEST_MAX);
    }
    h->count = (uint64_t)json_integer_value(v);
    return TRELLIS_OK;
}

static trellis_err_t check_record(json_t *o, uint64_t line, tr_idset_t *ids, tr_idset_t *serials,
                                  trellis_reason_t *reason)
{
    static const char *const names[] = {"device_id", "rot_key", "model", "serial"};
    trellis_err_t err = only_members(o, names, 4, reason, line);
    uint8_t point[TRELLIS_ROT_POINT_LEN];
    uint8_t idbin[16];
    uint8_t sh[TRELLIS_SHA256_LEN];
    char id[TRELLIS_DEVICE_ID_LEN + 1];
    size_t n = 0;
    uint64_t first = 0;
    EVP_PKEY *pub = NULL;
    const char *device_id = string_member(o, "device_id");
    const char *rot_key = string_member(o, "rot_key");
    const char *model = string_member(o, "model");
    const char *serial = string_member(o, "serial");

    if (err != TRELLIS_OK) {
        return err;
    }
    if (device_id == NULL || rot_key == NULL || model == NULL || serial == NULL) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line %llu: members must be strings",
                                  (unsigned long long)line);
    }
    if (trellis_b64url_decode(rot_key, strlen(rot_key), point, sizeof(point), &n) != TRELLIS_OK ||
        n != sizeof(point)) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "line %llu: rot_key is not base64url of a 65-byte point",
                                  (unsigned long long)line);
    }
    err = trellis_p256_from_point(point, &pub);
    EVP_PKEY_free(pub);
    if (err != TRELLIS_OK) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                  "line %llu: rot_key is not a point on P-256",
                                  (unsigned long long)line);
    }
    if (trellis_device_id_from_point(point, id) != TRELLIS_OK || strcmp(id, device_id) != 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "line %llu: device_id is not derived from rot_key",
                                  (unsigned long long)line);
    }
    if (trellis_device_name_check(model) != TRELLIS_OK ||
        trellis_device_name_check(serial) != TRELLIS_OK) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "line %llu: model and serial must be 1..64 printable ASCII",
                                  (unsigned long long)line);
    }
    if (trellis_hex_decode(device_id, TRELLIS_DEVICE_ID_LEN, idbin, sizeof(idbin), &n) !=
        TRELLIS_OK) {
        return TRELLIS_ERR_INTERNAL;
    }
    /* Same key twice means the same device id twice: a cloned chip. */
    err = tr__idset_add(ids, idbin, line, &first);
    if (err == TRELLIS_ERR_CONFLICT) {
        return trellis_reason_set(reason, err,
                                  "line %llu: device %s (same RoT key) already on "
                                  "line %llu",
                                  (unsigned long long)line, device_id, (unsigned long long)first);
    }
    if (err != TRELLIS_OK) {
        return err;
    }
    if (trellis_sha256((const uint8_t *)serial, strlen(serial), sh) != TRELLIS_OK) {
        return TRELLIS_ERR_CRYPTO;
    }
    err = tr__idset_add(serials, sh, line, &first);
    if (err == TRELLIS_ERR_CONFLICT) {
        return trellis_reason_set(reason, err, "line %llu: serial %s already on line %llu",
                                  (unsigned long long)line, serial, (unsigned long long)first);
    }
    return err;
}

static trellis_err_t check_trailer(json_t *o, uint64_t line, const uint8_t digest[32],
                                   EVP_PKEY *key, trellis_reason_t *reason)
{
    static const char *const names[] = {"sha256", "signature"};
    trellis_err_t err = only_members(o, names, 2, reason, line);
    uint8_t want[32];
    uint8_t sig[64];
    size_t n = 0;
    const char *hex = string_member(o, "sha256");
    const char *s64 = string_member(o, "signature");

    if (err != TRELLIS_OK) {
        return err;
    }
    if (hex == NULL || strlen(hex) != 64 ||
        trellis_hex_decode(hex, 64, want, sizeof(want), &n) != TRELLIS_OK || n != 32) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line %llu: sha256 is not 64 hex",
                                  (unsigned long long)line);
    }
    if (s64 == NULL ||
        trellis_b64url_decode(s64, strlen(s64), sig, sizeof(sig), &n) != TRELLIS_OK || n != 64) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "line %llu: signature is not base64url of 64 bytes",
                                  (unsigned long long)line);
    }
    if (!trellis_ct_equal(want, digest, 32)) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_SIGNATURE,
                                  "line %llu: sha256 does not match the manifest's bytes",
                                  (unsigned long long)line);
    }
    if (trellis_p256_verify_digest(key, digest, sig) != TRELLIS_OK) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_SIGNATURE,
                                  "line %llu: signature does not verify with the factory key",
                                  (unsigned long long)line);
    }
    return TRELLIS_OK;
}

/* Reads one line of at most TR_MANIFEST_LINE_MAX bytes plus '\n'. Returns the length without the
 * newline, 0 at end of file, -1 for a line too long or without a final newline. */
static long read_line(FILE *fp, char *buf, size_t size, int *eof)
{
    size_t n = 0;
    int c;

    *eof = 0;
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') {
            buf[n] = '\0';
            return (long)n;
        }
        if (n + 1 >= size) {
            return -1;
        }
        buf[n++] = (char)c;
    }
    *eof = 1;
    buf[n] = '\0';
    return n == 0 ? 0 : -1;
}

trellis_err_t tr__manifest_verify(const char *path, EVP_PKEY *key, tr_manifest_summary_t *summary,
                                  trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    FILE *fp = NULL;
    EVP_MD_CTX *md = NULL;
    json_t *o = NULL;
    json_error_t jerr;
    tr_idset_t ids;
    tr_idset_t serials;
    char line[TR_MANIFEST_LINE_MAX + 2];
    uint8_t digest[32];
    unsigned int dlen = 0;
    uint64_t lineno = 0;
    int eof = 0;
    int trailer_done = 0;

    trellis_reason_clear(reason);
    memset(&ids, 0, sizeof(ids));
    memset(&serials, 0, sizeof(serials));
    if (summary == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(summary, 0, sizeof(*summary));
    if (path == NULL || key == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    fp = fopen(path, "r");
    if (fp == NULL) {
        err = trellis_reason_set(reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO,
                                 "cannot open %s", path);
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    if ((err = tr__idset_init(&ids, 0)) != TRELLIS_OK ||
        (err = tr__idset_init(&serials, 0)) != TRELLIS_OK) {
        goto out;
    }
    for (;;) {
        long len = read_line(fp, line, sizeof(line), &eof);
        if (len == 0 && eof) {
            break;
        }
        lineno++;
        if (len <= 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                     "line %llu: empty, longer than %d bytes or without newline",
                                     (unsigned long long)lineno, TR_MANIFEST_LINE_MAX);
            goto fail_line;
        }
        if (trailer_done) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "line %llu: after the trailer",
                                     (unsigned long long)lineno);
            goto fail_line;
        }
        json_decref(o);
        o = json_loadb(line, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o)) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                     "line %llu: not one JSON object (duplicate members "
                                     "included)",
                                     (unsigned long long)lineno);
            goto fail_line;
        }
        if (lineno == 1) {
            err = check_header(o, &summary->header, reason);
        } else if (lineno <= summary->header.count + 1) {
            err = check_record(o, lineno, &ids, &serials, reason);
            summary->records += err == TRELLIS_OK;
        } else {
            if (EVP_DigestFinal_ex(md, digest, &dlen) != 1) {
                err = TRELLIS_ERR_CRYPTO;
                goto out;
            }
            err = check_trailer(o, lineno, digest, key, reason);
            trailer_done = 1;
        }
        if (err != TRELLIS_OK) {
            goto fail_line;
        }
        if (!trailer_done) {
            line[len] = '\n';
            if (EVP_DigestUpdate(md, line, (size_t)len + 1) != 1) {
                err = TRELLIS_ERR_CRYPTO;
                goto out;
            }
        }
    }
    if (!trailer_done) {
        if (lineno == 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "empty manifest");
        } else {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                     "manifest ends before its trailer (count says %llu records)",
                                     (unsigned long long)summary->header.count);
        }
        goto out;
    }
    memcpy(summary->sha256, digest, 32);
    err = TRELLIS_OK;
    goto out;
fail_line:
    summary->bad_line = lineno;
out:
    json_decref(o);
    EVP_MD_CTX_free(md);
    tr__idset_free(&ids);
    tr__idset_free(&serials);
    if (fp != NULL) {
        fclose(fp);
    }
    return err;
}
