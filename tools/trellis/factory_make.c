/*
 * `trellis factory make`: a batch of devices, each with a freshly injected RoT, committed by a
 * signed manifest written last. docs/factory.md ("Crash behaviour") explains the order.
 */
#define _GNU_SOURCE /* syncfs(2) */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "factory.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/rot_file.h"
#include "trellis/rot_pkcs11.h"

#define STATE_VERSION 1
#define LOCK_NAME     ".batch.lock"

/* Everything a batch is made of; what batch.json records and a resumed run must match. */
typedef struct {
    char factory[TR_NAME_MAX + 1];
    char owner[TR_NAME_MAX + 1];
    char batch[TR_NAME_MAX + 1];
    char model[TR_NAME_MAX + 1];
    char serial_prefix[TR_NAME_MAX + 1];
    uint64_t serial_start;
    uint64_t count;
    char backend[8];
    char token[TRELLIS_PKCS11_TOKEN_MAX + 1];
    char module[TR_PATH_MAX];
    char registrar_url[TRELLIS_DEVICE_URL_MAX + 1];
    char registrar_ca_sha256[65];
} batch_state_t;

typedef struct {
    const tr_make_opts_t *o;
    batch_state_t st;
    int resuming;
    char devices[TR_PATH_MAX];
    trellis_device_factory_t *fd;   /* expected factory.json of the current device */
    trellis_device_factory_t *seen; /* factory.json found on disk when resuming */
    trellis_pkcs11_token_t token;
    int have_token;
    char ca_pem[TRELLIS_DEVICE_CA_PEM_MAX + 1];
} make_ctx_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int join(char *out, size_t size, const char *a, const char *b)
{
    int n = snprintf(out, size, "%s/%s", a, b);
    return n > 0 && (size_t)n < size;
}

/* ---- batch.json ---- */

static trellis_err_t state_write(const char *path, const batch_state_t *s)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    json_t *o =
        json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s}",
                  "trellis_batch", STATE_VERSION, "factory", s->factory, "owner", s->owner, "batch",
                  s->batch, "model", s->model, "serial_prefix", s->serial_prefix, "serial_start",
                  (json_int_t)s->serial_start, "count", (json_int_t)s->count, "backend", s->backend,
                  "token", s->token, "module", s->module, "registrar_url", s->registrar_url,
                  "registrar_ca_sha256", s->registrar_ca_sha256);
    char *text = NULL;

    if (o == NULL) {
        goto out;
    }
    text = json_dumps(o, JSON_INDENT(2));
    if (text == NULL) {
        goto out;
    }
    /* Durable: this file decides whether a later run resumes or starts afresh. */
    err = trellis_file_write_atomic(path, text, strlen(text), TRELLIS_FILE_PUBLIC);
out:
    free(text);
    json_decref(o);
    return err;
}

static trellis_err_t state_read(const char *path, batch_state_t *s, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_int_t start = 0;
    json_int_t count = 0;
    int version = 0;
    const char *f[11] = {NULL};

    memset(s, 0, sizeof(*s));
    if (o == NULL ||
        json_unpack(o, "{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:s !}",
                    "trellis_batch", &version, "factory", &f[0], "owner", &f[1], "batch", &f[2],
                    "model", &f[3], "serial_prefix", &f[4], "serial_start", &start, "count", &count,
                    "backend", &f[5], "token", &f[6], "module", &f[7], "registrar_url", &f[8],
                    "registrar_ca_sha256", &f[9]) != 0 ||
        version != STATE_VERSION || start < 0 || count < 1 || count > TR_MANIFEST_MAX) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "%s is damaged; it records an interrupted batch: inspect or "
                                 "remove the directory",
                                 path);
        goto out;
    }
    char *dst[] = {s->factory, s->owner, s->batch,  s->model,         s->serial_prefix,
                   s->backend, s->token, s->module, s->registrar_url, s->registrar_ca_sha256};
    size_t sizes[] = {sizeof(s->factory),       sizeof(s->owner),
                      sizeof(s->batch),         sizeof(s->model),
                      sizeof(s->serial_prefix), sizeof(s->backend),
                      sizeof(s->token),         sizeof(s->module),
                      sizeof(s->registrar_url), sizeof(s->registrar_ca_sha256)};
    for (size_t i = 0; i < 10; i++) {
        if (strlen(f[i]) >= sizes[i]) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "%s is damaged", path);
            goto out;
        }
        memcpy(dst[i], f[i], strlen(f[i]) + 1);
    }
    s->serial_start = (uint64_t)start;
    s->count = (uint64_t)count;
    err = TRELLIS_OK;
out:
    json_decref(o);
    return err;
}

/* Names the first member in which a resumed run differs from the interrupted one. */
static const char *state_diff(const batch_state_t *a, const batch_state_t *b)
{
    if (strcmp(a->factory, b->factory) != 0) {
        return "factory";
    }
    if (strcmp(a->owner, b->owner) != 0) {
        return "owner (--owner)";
    }
    if (strcmp(a->batch, b->batch) != 0) {
        return "batch (--batch)";
    }
    if (strcmp(a->model, b->model) != 0) {
        return "model (--model)";
    }
    if (strcmp(a->serial_prefix, b->serial_prefix) != 0) {
        return "serial prefix (--serial-prefix)";
    }
    if (a->serial_start != b->serial_start) {
        return "first serial number (--serial-start)";
    }
    if (a->count != b->count) {
        return "count (--count)";
    }
    if (strcmp(a->backend, b->backend) != 0) {
        return "backend (--pkcs11-module)";
    }
    if (strcmp(a->token, b->token) != 0) {
        return "token (--token-label)";
    }
    if (strcmp(a->module, b->module) != 0) {
        return "PKCS#11 module (--pkcs11-module)";
    }
    if (strcmp(a->registrar_url, b->registrar_url) != 0) {
        return "registrar URL (--registrar-url)";
    }
    if (strcmp(a->registrar_ca_sha256, b->registrar_ca_sha256) != 0) {
        return "registrar CA (--registrar-ca)";
    }
    return NULL;
}

/* ---- one device ---- */

/* The serial of device i; settle_serials checked that every serial of the batch fits. */
static trellis_err_t serial_of(const batch_state_t *st, uint64_t i, char *out, size_t size)
{
    int n = snprintf(out, size, "%s%06llu", st->serial_prefix,
                     (unsigned long long)(st->serial_start + i));
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return TRELLIS_ERR_INTERNAL;
    }
    return TRELLIS_OK;
}

/* Fills the expected factory.json of a device, all but device_id. */
static trellis_err_t expected_factory(make_ctx_t *c, const char *serial, trellis_reason_t *reason)
{
    trellis_device_factory_t *fd = c->fd;

    memset(fd, 0, sizeof(*fd));
    snprintf(fd->serial, sizeof(fd->serial), "%s", serial);
    snprintf(fd->model, sizeof(fd->model), "%s", c->st.model);
    snprintf(fd->owner, sizeof(fd->owner), "%s", c->st.owner);
    snprintf(fd->factory, sizeof(fd->factory), "%s", c->st.factory);
    snprintf(fd->batch, sizeof(fd->batch), "%s", c->st.batch);
    snprintf(fd->registrar_url, sizeof(fd->registrar_url), "%s", c->st.registrar_url);
    memcpy(fd->registrar_ca_pem, c->ca_pem, sizeof(fd->registrar_ca_pem));
    if (c->have_token) {
        trellis_pkcs11_uri_t uri;
        size_t len = 0;
        memset(&uri, 0, sizeof(uri));
        uri.present = TRELLIS_PKCS11_HAS_TOKEN | TRELLIS_PKCS11_HAS_OBJECT |
                      TRELLIS_PKCS11_HAS_TYPE | TRELLIS_PKCS11_HAS_MODULE_PATH;
        snprintf(uri.token, sizeof(uri.token), "%s", c->st.token);
        snprintf(uri.object, sizeof(uri.object), "%s", serial);
        uri.type = TRELLIS_PKCS11_TYPE_PRIVATE;
        snprintf(uri.module_path, sizeof(uri.module_path), "%s", c->st.module);
        fd->backend = TRELLIS_ROT_BACKEND_PKCS11;
        if (trellis_pkcs11_uri_format(&uri, fd->pkcs11_uri, sizeof(fd->pkcs11_uri), &len) !=
            TRELLIS_OK) {
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "PKCS#11 URI too long");
        }
    } else {
        fd->backend = TRELLIS_ROT_BACKEND_FILE;
        snprintf(fd->rot_key, sizeof(fd->rot_key), "%s", TRELLIS_ROT_FILE_KEY_NAME);
    }
    return TRELLIS_OK;
}

/* Removes what a device directory may hold, then the directory. Anything else in it is not
 * ours: refuse rather than delete it. */
static trellis_err_t wipe_device_dir(const char *dir, trellis_reason_t *reason)
{
    static const char *const ours[] = {TRELLIS_ROT_FILE_KEY_NAME, TRELLIS_DEVICE_FACTORY_NAME,
                                       "." TRELLIS_DEVICE_FACTORY_NAME ".tmp"};
    char path[TR_PATH_MAX + 64];

    for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
        if (join(path, sizeof(path), dir, ours[i]) && unlink(path) != 0 && errno != ENOENT) {
            return trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot remove %s", path);
        }
    }
    if (rmdir(dir) != 0 && errno != ENOENT) {
        return trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                  "%s holds files this batch did not make", dir);
    }
    return TRELLIS_OK;
}

/* 1 if dir holds a complete device of this batch (factory.json as expected, key matching it),
 * with its point in point. */
static int device_complete(make_ctx_t *c, const char *dir, const uint8_t *token_point,
                           uint8_t point[TRELLIS_ROT_POINT_LEN])
{
    char path[TR_PATH_MAX + 64];
    char id[TRELLIS_DEVICE_ID_LEN + 1];
    EVP_PKEY *key = NULL;
    int ok = 0;

    if (trellis_device_factory_load(dir, c->seen, NULL) != TRELLIS_OK) {
        return 0;
    }
    /* Same factory data apart from the id, which comes from the key. */
    memcpy(c->fd->device_id, c->seen->device_id, sizeof(c->fd->device_id));
    if (memcmp(c->fd, c->seen, sizeof(*c->fd)) != 0) {
        return 0;
    }
    if (token_point != NULL) {
        memcpy(point, token_point, TRELLIS_ROT_POINT_LEN);
    } else {
        if (!join(path, sizeof(path), dir, TRELLIS_ROT_FILE_KEY_NAME) ||
            trellis_p256_load_private_pem(path, &key) != TRELLIS_OK ||
            trellis_p256_public_point(key, point) != TRELLIS_OK) {
            goto out;
        }
    }
    ok = trellis_device_id_from_point(point, id) == TRELLIS_OK &&
         strcmp(id, c->seen->device_id) == 0;
out:
    EVP_PKEY_free(key);
    return ok;
}

enum outcome { MADE, RESUMED, REDONE };

static trellis_err_t make_device(make_ctx_t *c, uint64_t i, uint8_t point[TRELLIS_ROT_POINT_LEN],
                                 enum outcome *outcome, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char serial[TR_NAME_MAX + 1];
    char dir[TR_PATH_MAX + 2 * TR_NAME_MAX];
    uint8_t token_point[TRELLIS_ROT_POINT_LEN];
    trellis_pkcs11_key_state_t ks = TRELLIS_PKCS11_KEY_ABSENT;
    struct stat sb;
    int dir_exists = 0;
    int have_key = 0; /* the token already holds this device's complete key */

    *outcome = MADE;
    err = serial_of(&c->st, i, serial, sizeof(serial));
    if (err != TRELLIS_OK) {
        return err;
    }
    if (!join(dir, sizeof(dir), c->devices, serial)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "path too long");
    }
    err = expected_factory(c, serial, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    dir_exists = stat(dir, &sb) == 0;
    if (c->have_token) {
        err = trellis_pkcs11_token_find(&c->token, serial, &ks, token_point, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
    }
    if (!c->resuming) {
        if (dir_exists) {
            return trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                      "%s exists in a batch that is not being resumed", dir);
        }
        if (ks != TRELLIS_PKCS11_KEY_ABSENT) {
            /* A fresh batch meeting a key under its label: another batch's device. */
            return trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                      "the token already holds a key labelled %s (another batch "
                                      "used these serials; choose --serial-prefix)",
                                      serial);
        }
    } else {
        /* Resuming an interrupted run: keep what is complete, redo what is half made. A half
         * made device was never named by a manifest, so nobody can know its key. */
        if (ks == TRELLIS_PKCS11_KEY_COMPLETE) {
            if (dir_exists && device_complete(c, dir, token_point, point)) {
                *outcome = RESUMED;
                return TRELLIS_OK;
            }
            /* The key made it into the token, its factory data did not: keep the key. */
            memcpy(point, token_point, TRELLIS_ROT_POINT_LEN);
            have_key = 1;
            *outcome = REDONE;
        } else if (ks == TRELLIS_PKCS11_KEY_PARTIAL) {
            err = trellis_pkcs11_token_destroy(&c->token, serial, reason);
            if (err != TRELLIS_OK) {
                return err;
            }
            *outcome = REDONE;
        } else if (!c->have_token && dir_exists && device_complete(c, dir, NULL, point)) {
            *outcome = RESUMED;
            return TRELLIS_OK;
        }
        if (dir_exists) {
            err = wipe_device_dir(dir, reason);
            if (err != TRELLIS_OK) {
                return err;
            }
            *outcome = REDONE;
        }
    }
    if (c->have_token && !have_key) {
        /* CKA_ID = the serial: unique in the batch, and readable in a token listing. */
        err = trellis_pkcs11_token_generate(&c->token, serial, (const uint8_t *)serial,
                                            strlen(serial), point, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
    }
    /* 0700: for the file backend the directory is the secure element. */
    if (mkdir(dir, 0700) != 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot create %s", dir);
    }
    if (!c->have_token) {
        /* No fsync per device: the batch syncs once before its manifest (docs/factory.md). */
        err = trellis_rot_file_generate(dir, 0, point);
        if (err != TRELLIS_OK) {
            return trellis_reason_set(reason, err, "cannot inject the RoT key into %s: %s", dir,
                                      trellis_err_message(err));
        }
    }
    err = trellis_device_id_from_point(point, c->fd->device_id);
    if (err != TRELLIS_OK) {
        return err;
    }
    err = trellis_device_factory_write(dir, c->fd, 0);
    if (err != TRELLIS_OK) {
        return trellis_reason_set(reason, err, "cannot write %s/%s: %s", dir,
                                  TRELLIS_DEVICE_FACTORY_NAME, trellis_err_message(err));
    }
    return TRELLIS_OK;
}

/* ---- the batch ---- */

static trellis_err_t load_ca(make_ctx_t *c, const char *path, trellis_reason_t *reason)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t digest[32];
    size_t n = 0;
    trellis_err_t err = trellis_file_read_all(path, TRELLIS_DEVICE_CA_PEM_MAX, &buf, &len);

    if (err != TRELLIS_OK) {
        return trellis_reason_set(reason, err, "--registrar-ca %s: %s", path,
                                  trellis_err_message(err));
    }
    if (len == 0 || memchr(buf, '\0', len) != NULL ||
        strncmp((const char *)buf, "-----BEGIN ", 11) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "--registrar-ca %s is not PEM", path);
        goto out;
    }
    memcpy(c->ca_pem, buf, len);
    c->ca_pem[len] = '\0';
    if ((err = trellis_sha256(buf, len, digest)) != TRELLIS_OK ||
        (err = trellis_hex_encode(digest, 32, c->st.registrar_ca_sha256,
                                  sizeof(c->st.registrar_ca_sha256), &n)) != TRELLIS_OK) {
        goto out;
    }
    err = TRELLIS_OK;
out:
    trellis_file_buffer_free(buf, len);
    return err;
}

static trellis_err_t check_options(const tr_make_opts_t *o, trellis_reason_t *reason)
{
    if (o->out_dir == NULL || o->model == NULL || o->owner == NULL) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--out, --model and --owner are required");
    }
    if (o->count < 1 || o->count > TR_MANIFEST_MAX) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--count must be 1..%d",
                                  TR_MANIFEST_MAX);
    }
    if (trellis_device_name_check(o->model) != TRELLIS_OK) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--model must be 1..64 printable ASCII characters");
    }
    if (!tr__factory_name_valid(o->owner)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--owner must be 1..64 characters of [A-Za-z0-9._-], starting "
                                  "with a letter or digit");
    }
    if (o->batch != NULL && !tr__factory_name_valid(o->batch)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--batch must be 1..64 characters of [A-Za-z0-9._-], starting "
                                  "with a letter or digit");
    }
    if (o->registrar_url != NULL &&
        (strncmp(o->registrar_url, "https://", 8) != 0 || strlen(o->registrar_url) <= 8 ||
         strlen(o->registrar_url) > TRELLIS_DEVICE_URL_MAX ||
         strpbrk(o->registrar_url, " \t\r\n"))) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--registrar-url must be an https:// URL");
    }
    if (o->pkcs11_module != NULL) {
        if (o->token_label == NULL || o->pin == NULL) {
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "--pkcs11-module needs --token-label and a PIN "
                                      "(--pin or --pin-env)");
        }
        if (strlen(o->token_label) == 0 || strlen(o->token_label) > TRELLIS_PKCS11_TOKEN_MAX) {
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "--token-label must be 1..%d bytes",
                                      TRELLIS_PKCS11_TOKEN_MAX);
        }
        if (o->pkcs11_module[0] != '/' || strlen(o->pkcs11_module) >= TR_PATH_MAX) {
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "--pkcs11-module must be an absolute path");
        }
    } else if (o->token_label != NULL || o->pin != NULL) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--token-label and the PIN go with --pkcs11-module");
    }
    return TRELLIS_OK;
}

/* The parameters this run asks for (batch id still empty when not given). */
static trellis_err_t requested_state(const tr_factory_t *f, const tr_make_opts_t *o, make_ctx_t *c,
                                     trellis_reason_t *reason)
{
    batch_state_t *s = &c->st;

    snprintf(s->factory, sizeof(s->factory), "%s", f->name);
    snprintf(s->owner, sizeof(s->owner), "%s", o->owner);
    snprintf(s->model, sizeof(s->model), "%s", o->model);
    if (o->batch != NULL) {
        snprintf(s->batch, sizeof(s->batch), "%s", o->batch);
    }
    s->serial_start = o->serial_start == 0 ? 1 : o->serial_start;
    s->count = o->count;
    snprintf(s->backend, sizeof(s->backend), "%s", o->pkcs11_module ? "pkcs11" : "file");
    if (o->pkcs11_module != NULL) {
        snprintf(s->token, sizeof(s->token), "%s", o->token_label);
        snprintf(s->module, sizeof(s->module), "%s", o->pkcs11_module);
    }
    if (o->registrar_url != NULL) {
        snprintf(s->registrar_url, sizeof(s->registrar_url), "%s", o->registrar_url);
    }
    if (o->registrar_ca != NULL) {
        return load_ca(c, o->registrar_ca, reason);
    }
    return TRELLIS_OK;
}

/* The serial prefix and its check: every serial of the batch is a path-safe name. */
static trellis_err_t settle_serials(const tr_make_opts_t *o, batch_state_t *s,
                                    trellis_reason_t *reason)
{
    char last[TR_NAME_MAX + 32];

    if (o->serial_prefix != NULL) {
        if (strlen(o->serial_prefix) > TR_NAME_MAX - 6) {
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--serial-prefix too long");
        }
        snprintf(s->serial_prefix, sizeof(s->serial_prefix), "%s", o->serial_prefix);
    } else if (s->serial_prefix[0] == '\0') {
        snprintf(s->serial_prefix, sizeof(s->serial_prefix), "%.*s-", TR_NAME_MAX - 8, s->batch);
    }
    /* Serials name directories and token objects: [A-Za-z0-9._-], starting alphanumeric. */
    snprintf(last, sizeof(last), "%s%06llu", s->serial_prefix,
             (unsigned long long)(s->serial_start + s->count - 1));
    if ((s->serial_prefix[0] != '\0' && !tr__factory_name_valid(s->serial_prefix)) ||
        !tr__factory_name_valid(last)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "serials (prefix + number) must be 1..64 characters of "
                                  "[A-Za-z0-9._-], starting with a letter or digit");
    }
    return TRELLIS_OK;
}

static trellis_err_t default_batch_id(char *out, size_t size)
{
    char stamp[32];
    uint8_t rnd[2];
    time_t now = time(NULL);
    struct tm tm;

    if (gmtime_r(&now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) == 0 ||
        trellis_random(rnd, sizeof(rnd)) != TRELLIS_OK) {
        return TRELLIS_ERR_INTERNAL;
    }
    snprintf(out, size, "b-%s-%02x%02x", stamp, rnd[0], rnd[1]);
    return TRELLIS_OK;
}

static int dir_is_empty_or_absent(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return errno == ENOENT;
    }
    return rmdir(path) == 0 || errno == ENOENT; /* fails on a non-empty directory */
}

/* syncfs(2) once for the whole batch instead of fsync per file: same durability at the commit
 * point, a fraction of the time (docs/factory.md). */
static trellis_err_t sync_batch(const char *dir, trellis_reason_t *reason)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    trellis_err_t err = TRELLIS_OK;

    if (fd < 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot open %s", dir);
    }
    if (syncfs(fd) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "syncfs failed on %s", dir);
    }
    close(fd);
    return err;
}

trellis_err_t tr__factory_make(const tr_factory_t *f, const tr_make_opts_t *o,
                               tr_make_result_t *res, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    make_ctx_t *c = NULL;
    uint8_t *points = NULL;
    char state_path[TR_PATH_MAX];
    char manifest[TR_PATH_MAX];
    char lock_path[TR_PATH_MAX];
    int lock_fd = -1;
    batch_state_t recorded;
    tr_manifest_writer_t w;
    tr_manifest_header_t h;
    struct stat st;
    double t0 = now_s();
    double last = t0;
    uint64_t last_i = 0;
    uint64_t every = 0;

    trellis_reason_clear(reason);
    memset(&w, 0, sizeof(w));
    if (res == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(res, 0, sizeof(*res));
    if (f == NULL || f->key == NULL || o == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    err = check_options(o, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    every = o->progress_every == 0 ? 1000 : o->progress_every;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return TRELLIS_ERR_NOMEM;
    }
    c->o = o;
    c->fd = calloc(1, sizeof(*c->fd));
    c->seen = calloc(1, sizeof(*c->seen));
    points = calloc((size_t)o->count, TRELLIS_ROT_POINT_LEN);
    if (c->fd == NULL || c->seen == NULL || points == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = requested_state(f, o, c, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = trellis_mkdir_p(o->out_dir, 0755);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot create %s: %s", o->out_dir,
                                 trellis_err_message(err));
        goto out;
    }
    if (!join(state_path, sizeof(state_path), o->out_dir, TR_BATCH_STATE) ||
        !join(manifest, sizeof(manifest), o->out_dir, TR_MANIFEST_NAME) ||
        !join(c->devices, sizeof(c->devices), o->out_dir, TR_DEVICES_DIR)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--out path too long");
        goto out;
    }
    /* One run per batch directory at a time: two runs resuming the same batch would make the
     * same devices twice. The lock goes away with the process, however it ends. */
    if (!join(lock_path, sizeof(lock_path), o->out_dir, LOCK_NAME)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--out path too long");
        goto out;
    }
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (lock_fd < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot open %s", lock_path);
        goto out;
    }
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                 "another `trellis factory make` is working in %s", o->out_dir);
        goto out;
    }
    if (stat(manifest, &st) == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                 "%s exists: this batch is complete (upload it, or make the next "
                                 "batch in another directory)",
                                 manifest);
        goto out;
    }
    /* The token before any state: a wrong module, label or PIN must not leave a batch behind
     * that a corrected command line would then conflict with. */
    if (o->pkcs11_module != NULL) {
        trellis_pkcs11_uri_t uri;
        memset(&uri, 0, sizeof(uri));
        uri.present = TRELLIS_PKCS11_HAS_TOKEN;
        snprintf(uri.token, sizeof(uri.token), "%s", o->token_label);
        err = trellis_pkcs11_token_open(&c->token, &uri, o->pkcs11_module, o->pin, 1, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        c->have_token = 1;
    }
    if (stat(state_path, &st) == 0) {
        /* An interrupted run: resume it if, and only if, it is the same batch. */
        err = state_read(state_path, &recorded, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        if (c->st.batch[0] == '\0') {
            memcpy(c->st.batch, recorded.batch, sizeof(c->st.batch));
        }
        if (o->serial_prefix == NULL) {
            memcpy(c->st.serial_prefix, recorded.serial_prefix, sizeof(c->st.serial_prefix));
        }
        err = settle_serials(o, &c->st, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        const char *diff = state_diff(&c->st, &recorded);
        if (diff != NULL) {
            err = trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                     "%s holds an interrupted batch %s with another %s; resume it "
                                     "with the same options or use another --out",
                                     o->out_dir, recorded.batch, diff);
            goto out;
        }
        c->resuming = 1;
    } else {
        if (!dir_is_empty_or_absent(c->devices)) {
            err = trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                     "%s holds devices but no batch state: not a batch this "
                                     "command made",
                                     c->devices);
            goto out;
        }
        if (c->st.batch[0] == '\0' &&
            (err = default_batch_id(c->st.batch, sizeof(c->st.batch))) != TRELLIS_OK) {
            goto out;
        }
        err = settle_serials(o, &c->st, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        /* Recorded before the first key is made: from here on a crash resumes this batch. */
        err = state_write(state_path, &c->st);
        if (err != TRELLIS_OK) {
            err = trellis_reason_set(reason, err, "cannot write %s: %s", state_path,
                                     trellis_err_message(err));
            goto out;
        }
    }
    if (mkdir(c->devices, 0755) != 0 && errno != EEXIST) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot create %s", c->devices);
        goto out;
    }

    for (uint64_t i = 0; i < o->count; i++) {
        enum outcome oc = MADE;
        err = make_device(c, i, points + i * TRELLIS_ROT_POINT_LEN, &oc, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        res->created += oc == MADE;
        res->resumed += oc == RESUMED;
        res->redone += oc == REDONE;
        /* Progress for large batches only: every `every` devices, and the last line. */
        if (o->progress != NULL && o->count >= every &&
            ((i + 1) % every == 0 || i + 1 == o->count)) {
            double t = now_s();
            fprintf(o->progress, "factory make: %llu/%llu devices (%.0f/s)\n",
                    (unsigned long long)(i + 1), (unsigned long long)o->count,
                    (double)(i + 1 - last_i) / (t - last > 1e-9 ? t - last : 1e-9));
            fflush(o->progress);
            last = t;
            last_i = i + 1;
        }
    }

    err = sync_batch(o->out_dir, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    memset(&h, 0, sizeof(h));
    snprintf(h.factory, sizeof(h.factory), "%s", c->st.factory);
    snprintf(h.owner, sizeof(h.owner), "%s", c->st.owner);
    snprintf(h.batch, sizeof(h.batch), "%s", c->st.batch);
    h.count = o->count;
    err = tr__manifest_begin(&w, manifest, &h, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    for (uint64_t i = 0; i < o->count; i++) {
        char serial[TR_NAME_MAX + 1];
        err = serial_of(&c->st, i, serial, sizeof(serial));
        if (err != TRELLIS_OK) {
            goto out;
        }
        err = tr__manifest_add(&w, points + i * TRELLIS_ROT_POINT_LEN, c->st.model, serial, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
    }
    /* The commit point: the manifest appears whole, or not at all. */
    err = tr__manifest_commit(&w, f->key, res->sha256, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    snprintf(res->batch, sizeof(res->batch), "%s", c->st.batch);
    snprintf(res->manifest, sizeof(res->manifest), "%s", manifest);
    res->seconds = now_s() - t0;
    err = TRELLIS_OK;
out:
    tr__manifest_abort(&w);
    if (lock_fd >= 0) {
        close(lock_fd); /* releases the lock */
    }
    if (c != NULL) {
        if (c->have_token) {
            trellis_pkcs11_token_close(&c->token);
        }
        free(c->fd);
        free(c->seen);
        free(c);
    }
    free(points);
    return err;
}
