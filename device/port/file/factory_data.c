/*
 * factory.json, the device's factory data (device.h): load, validate, write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "device_internal.h"
#include "trellis/device.h"

#define PEM_BEGIN "-----BEGIN "

trellis_err_t trellis_device_name_check(const char *name)
{
    size_t n = 0;

    if (name == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    /* docs/manifest-format.md: 1..64 printable ASCII characters. */
    for (n = 0; name[n] != '\0'; n++) {
        if (n >= TRELLIS_DEVICE_NAME_MAX || name[n] < 0x20 || name[n] > 0x7e) {
            return TRELLIS_ERR_INVALID_ARG;
        }
    }
    return n > 0 ? TRELLIS_OK : TRELLIS_ERR_INVALID_ARG;
}

static int is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[n] == '\0';
}

/* A plain file name inside the device directory: no path separators, not "." or "..". */
static int is_plain_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= TRELLIS_DEVICE_KEY_NAME_MAX && strchr(s, '/') == NULL &&
           strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int is_url(const char *s)
{
    size_t n = strlen(s);
    if (n <= 8 || n > TRELLIS_DEVICE_URL_MAX || strncmp(s, "https://", 8) != 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= 0x20 || s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* Checks a whole structure: what the loader accepts is exactly what the writer writes. */
static trellis_err_t validate(const trellis_device_factory_t *f, trellis_reason_t *reason)
{
    static const struct {
        const char *name;
        size_t offset;
    } names[] = {
        {"serial", offsetof(trellis_device_factory_t, serial)},
        {"model", offsetof(trellis_device_factory_t, model)},
        {"owner", offsetof(trellis_device_factory_t, owner)},
        {"factory", offsetof(trellis_device_factory_t, factory)},
        {"batch", offsetof(trellis_device_factory_t, batch)},
    };
    trellis_pkcs11_uri_t uri;
    trellis_err_t err;

    if (memchr(f->device_id, '\0', sizeof(f->device_id)) == NULL ||
        strlen(f->device_id) != TRELLIS_DEVICE_ID_LEN ||
        !is_lower_hex(f->device_id, TRELLIS_DEVICE_ID_LEN)) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "device_id must be 32 lowercase hex characters");
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = (const char *)f + names[i].offset;
        if (memchr(v, '\0', TRELLIS_DEVICE_NAME_MAX + 1) == NULL ||
            trellis_device_name_check(v) != TRELLIS_OK) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "%s must be 1..%d printable ASCII characters", names[i].name,
                                      TRELLIS_DEVICE_NAME_MAX);
        }
    }
    if (memchr(f->registrar_url, '\0', sizeof(f->registrar_url)) == NULL ||
        (f->registrar_url[0] != '\0' && !is_url(f->registrar_url))) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "registrar_url must be an https:// URL without spaces");
    }
    if (memchr(f->registrar_ca_pem, '\0', sizeof(f->registrar_ca_pem)) == NULL ||
        (f->registrar_ca_pem[0] != '\0' &&
         strncmp(f->registrar_ca_pem, PEM_BEGIN, strlen(PEM_BEGIN)) != 0)) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "registrar_ca must be PEM text");
    }
    switch (f->backend) {
    case TRELLIS_ROT_BACKEND_FILE:
        if (memchr(f->rot_key, '\0', sizeof(f->rot_key)) == NULL || !is_plain_name(f->rot_key)) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "rot.key must be a file name in the device directory");
        }
        break;
    case TRELLIS_ROT_BACKEND_PKCS11:
        if (memchr(f->pkcs11_uri, '\0', sizeof(f->pkcs11_uri)) == NULL) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.uri is too long");
        }
        err = trellis_pkcs11_uri_parse(f->pkcs11_uri, strlen(f->pkcs11_uri), &uri, reason);
        if (err != TRELLIS_OK) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.uri: %s",
                                      reason ? reason->text : "malformed PKCS#11 URI");
        }
        /* Factory data is not a secret store: a PIN in it would sit in every backup. */
        if (uri.present & (TRELLIS_PKCS11_HAS_PIN_VALUE | TRELLIS_PKCS11_HAS_PIN_SOURCE)) {
            trellis_pkcs11_uri_cleanse(&uri);
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "rot.uri must not carry a PIN (pin-value, pin-source)");
        }
        if (!(uri.present & (TRELLIS_PKCS11_HAS_OBJECT | TRELLIS_PKCS11_HAS_ID))) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "rot.uri names no key (object= or id=)");
        }
        trellis_pkcs11_uri_cleanse(&uri);
        break;
    default:
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.backend must be file or pkcs11");
    }
    return TRELLIS_OK;
}

static trellis_err_t read_small_file(const char *path, size_t max, char **out, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int fd = -1;
    struct stat st;
    char *buf = NULL;
    size_t used = 0;

    *out = NULL;
    *out_len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno == ENOENT   ? TRELLIS_ERR_NOT_FOUND
              : errno == EACCES ? TRELLIS_ERR_PERMISSION
                                : TRELLIS_ERR_IO;
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + used, max + 1 - used);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = TRELLIS_ERR_IO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
        if (used > max) {
            err = TRELLIS_ERR_TOO_LARGE; /* grew while we read it */
            goto out;
        }
    }
    buf[used] = '\0';
    *out = buf;
    *out_len = used;
    buf = NULL;
    err = TRELLIS_OK;
out:
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return err;
}

static trellis_err_t get_string(json_t *obj, const char *key, int required, char *dst,
                                size_t dst_size, trellis_reason_t *reason)
{
    json_t *v = json_object_get(obj, key);

    dst[0] = '\0';
    if (v == NULL) {
        return required ? trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member %s is missing", key)
                        : TRELLIS_OK;
    }
    if (!json_is_string(v)) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member %s must be a string", key);
    }
    size_t n = json_string_length(v);
    if (n >= dst_size) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member %s is too long", key);
    }
    if (memchr(json_string_value(v), '\0', n) != NULL) {
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member %s holds a NUL", key);
    }
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    return TRELLIS_OK;
}

static trellis_err_t only_members(json_t *obj, const char *const *allowed, size_t n,
                                  const char *where, trellis_reason_t *reason)
{
    const char *key;
    json_t *value;

    json_object_foreach(obj, key, value)
    {
        (void)value;
        size_t i = 0;
        while (i < n && strcmp(key, allowed[i]) != 0) {
            i++;
        }
        if (i == n) {
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "unknown member %.40s in %s", key,
                                      where);
        }
    }
    return TRELLIS_OK;
}

trellis_err_t tr__device_factory_parse(const char *dir, const char *text, size_t len,
                                       trellis_device_factory_t *out, trellis_reason_t *reason)
{
    static const char *const top[] = {"trellis_device", "device_id", "serial", "model",
                                      "owner",          "factory",   "batch",  "registrar_url",
                                      "registrar_ca",   "rot"};
    static const char *const rot_members[] = {"backend", "key", "uri"};
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_error_t jerr;
    json_t *root = NULL;
    json_t *v = NULL;
    json_t *rot = NULL;
    char ca[TRELLIS_DEVICE_CA_PEM_MAX + 1];
    char backend[16];
    char *ca_text = NULL;
    size_t ca_len = 0;
    char path[TRELLIS_ROT_PATH_MAX + 1];

    if (out == NULL || dir == NULL || text == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (len > TRELLIS_DEVICE_FACTORY_MAX) {
        return trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "factory.json is too large");
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "factory.json line %d: %.80s",
                                 jerr.line, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "factory.json is not an object");
        goto out;
    }
    err = only_members(root, top, sizeof(top) / sizeof(top[0]), "factory.json", reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    v = json_object_get(root, "trellis_device");
    if (!json_is_integer(v) || json_integer_value(v) != TRELLIS_DEVICE_FACTORY_VERSION) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "trellis_device must be %d",
                                 TRELLIS_DEVICE_FACTORY_VERSION);
        goto out;
    }
    if ((err = get_string(root, "device_id", 1, out->device_id, sizeof(out->device_id), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "serial", 1, out->serial, sizeof(out->serial), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "model", 1, out->model, sizeof(out->model), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "owner", 1, out->owner, sizeof(out->owner), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "factory", 1, out->factory, sizeof(out->factory), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "batch", 1, out->batch, sizeof(out->batch), reason)) !=
            TRELLIS_OK ||
        (err = get_string(root, "registrar_url", 0, out->registrar_url, sizeof(out->registrar_url),
                          reason)) != TRELLIS_OK ||
        (err = get_string(root, "registrar_ca", 0, ca, sizeof(ca), reason)) != TRELLIS_OK) {
        goto out;
    }
    if (ca[0] != '\0' && strncmp(ca, PEM_BEGIN, strlen(PEM_BEGIN)) != 0) {
        /* Not PEM text: the name of a PEM file next to factory.json. */
        if (!is_plain_name(ca)) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                     "registrar_ca must be PEM text or a file name in the device "
                                     "directory");
            goto out;
        }
        int n = snprintf(path, sizeof(path), "%s/%s", dir, ca);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
        err = read_small_file(path, TRELLIS_DEVICE_CA_PEM_MAX, &ca_text, &ca_len);
        if (err != TRELLIS_OK) {
            err = trellis_reason_set(reason, err, "registrar_ca file %s: %s", ca,
                                     trellis_err_message(err));
            goto out;
        }
        if (memchr(ca_text, '\0', ca_len) != NULL) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "registrar_ca file holds a NUL");
            goto out;
        }
        memcpy(out->registrar_ca_pem, ca_text, ca_len + 1);
    } else {
        memcpy(out->registrar_ca_pem, ca, strlen(ca) + 1);
    }
    rot = json_object_get(root, "rot");
    if (!json_is_object(rot)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member rot must be an object");
        goto out;
    }
    err =
        only_members(rot, rot_members, sizeof(rot_members) / sizeof(rot_members[0]), "rot", reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = get_string(rot, "backend", 1, backend, sizeof(backend), reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (strcmp(backend, "file") == 0) {
        out->backend = TRELLIS_ROT_BACKEND_FILE;
        if (json_object_get(rot, "uri") != NULL) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.uri is for backend pkcs11");
            goto out;
        }
        err = get_string(rot, "key", 1, out->rot_key, sizeof(out->rot_key), reason);
    } else if (strcmp(backend, "pkcs11") == 0) {
        out->backend = TRELLIS_ROT_BACKEND_PKCS11;
        if (json_object_get(rot, "key") != NULL) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.key is for backend file");
            goto out;
        }
        err = get_string(rot, "uri", 1, out->pkcs11_uri, sizeof(out->pkcs11_uri), reason);
    } else {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "rot.backend must be file or pkcs11");
    }
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = validate(out, reason);
out:
    json_decref(root);
    free(ca_text);
    if (err != TRELLIS_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}

trellis_err_t trellis_device_factory_load(const char *dir, trellis_device_factory_t *out,
                                          trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char path[TRELLIS_ROT_PATH_MAX + 1];
    char *text = NULL;
    size_t len = 0;

    trellis_reason_clear(reason);
    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (dir == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", dir, TRELLIS_DEVICE_FACTORY_NAME);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "device directory path too long");
        goto out;
    }
    err = read_small_file(path, TRELLIS_DEVICE_FACTORY_MAX, &text, &len);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "%s: %s", TRELLIS_DEVICE_FACTORY_NAME,
                                 trellis_err_message(err));
        goto out;
    }
    err = tr__device_factory_parse(dir, text, len, out, reason);
out:
    free(text);
    if (err != TRELLIS_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}

static trellis_err_t write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return TRELLIS_ERR_IO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_device_factory_write(const char *dir, const trellis_device_factory_t *in,
                                           int durable)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char path[TRELLIS_ROT_PATH_MAX + 1];
    char tmp[TRELLIS_ROT_PATH_MAX + 1];
    json_t *root = NULL;
    json_t *rot = NULL;
    char *text = NULL;
    int fd = -1;
    int created = 0;

    if (dir == NULL || in == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    err = validate(in, NULL);
    if (err != TRELLIS_OK) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    int n1 = snprintf(path, sizeof(path), "%s/%s", dir, TRELLIS_DEVICE_FACTORY_NAME);
    int n2 = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, TRELLIS_DEVICE_FACTORY_NAME);
    if (n1 < 0 || (size_t)n1 >= sizeof(path) || n2 < 0 || (size_t)n2 >= sizeof(tmp)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (in->backend == TRELLIS_ROT_BACKEND_FILE) {
        rot = json_pack("{s:s, s:s}", "backend", "file", "key", in->rot_key);
    } else {
        rot = json_pack("{s:s, s:s}", "backend", "pkcs11", "uri", in->pkcs11_uri);
    }
    root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "trellis_device",
                     TRELLIS_DEVICE_FACTORY_VERSION, "device_id", in->device_id, "serial",
                     in->serial, "model", in->model, "owner", in->owner, "factory", in->factory,
                     "batch", in->batch);
    if (rot == NULL || root == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if ((in->registrar_url[0] != '\0' &&
         json_object_set_new(root, "registrar_url", json_string(in->registrar_url)) != 0) ||
        (in->registrar_ca_pem[0] != '\0' &&
         json_object_set_new(root, "registrar_ca", json_string(in->registrar_ca_pem)) != 0) ||
        json_object_set(root, "rot", rot) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* Temporary file + rename: a reader (or a resumed factory run) sees the old file or the
     * whole new one, never a prefix. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    created = 1;
    size_t len = strlen(text);
    if ((err = write_all(fd, text, len)) != TRELLIS_OK ||
        (err = write_all(fd, "\n", 1)) != TRELLIS_OK) {
        goto out;
    }
    if (durable && fsync(fd) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        err = TRELLIS_ERR_IO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    created = 0;
    if (durable) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) {
            if (dfd >= 0) {
                close(dfd);
            }
            err = TRELLIS_ERR_IO;
            goto out;
        }
        close(dfd);
    }
    err = TRELLIS_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        unlink(tmp);
    }
    free(text);
    json_decref(rot);
    json_decref(root);
    return err;
}
