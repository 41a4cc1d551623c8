/*
 * The factory's identity: its name and its manifest signing key (`trellis factory init`).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ini.h>

#include "factory.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"

int tr__factory_name_valid(const char *name)
{
    size_t n = 0;

    if (name == NULL) {
        return 0;
    }
    for (n = 0; name[n] != '\0'; n++) {
        char c = name[n];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (n >= TR_NAME_MAX || !(alnum || (n > 0 && (c == '.' || c == '_' || c == '-')))) {
            return 0;
        }
    }
    return n > 0;
}

void tr__rfc3339_now(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;

    if (out == NULL || size == 0) {
        return;
    }
    out[0] = '\0';
    if (gmtime_r(&now, &tm) != NULL) {
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

trellis_err_t tr__json_put_string(char *buf, size_t size, size_t *pos, const char *s)
{
    size_t p = *pos;

    if (p >= size) {
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    buf[p++] = '"';
    for (; *s != '\0'; s++) {
        /* RFC 8259 §7: '"' and '\' are escaped; the callers only pass printable ASCII, so no
         * other character needs it. */
        if (*s == '"' || *s == '\\') {
            if (p + 1 >= size) {
                return TRELLIS_ERR_BUFFER_TOO_SMALL;
            }
            buf[p++] = '\\';
        }
        if (p >= size) {
            return TRELLIS_ERR_BUFFER_TOO_SMALL;
        }
        buf[p++] = *s;
    }
    if (p >= size) {
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    buf[p++] = '"';
    *pos = p;
    return TRELLIS_OK;
}

static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size;
}

trellis_err_t tr__factory_init(const char *dir, const char *name, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char key_path[TR_PATH_MAX];
    char pub_path[TR_PATH_MAX];
    char conf_path[TR_PATH_MAX];
    char conf[256];
    EVP_PKEY *key = NULL;
    struct stat st;

    trellis_reason_clear(reason);
    if (dir == NULL || name == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (!tr__factory_name_valid(name)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "factory name must be 1..%d characters of [A-Za-z0-9._-], "
                                  "starting with a letter or digit",
                                  TR_NAME_MAX);
    }
    if (!path_join(key_path, sizeof(key_path), dir, TR_FACTORY_KEY) ||
        !path_join(pub_path, sizeof(pub_path), dir, TR_FACTORY_PUB) ||
        !path_join(conf_path, sizeof(conf_path), dir, TR_FACTORY_CONF)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "directory path too long");
    }
    /* A factory key signs everything the factory ever shipped: never replace one silently. */
    if (stat(key_path, &st) == 0 || stat(conf_path, &st) == 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                  "%s already holds a factory; refusing to replace its key", dir);
    }
    err = trellis_mkdir_p(dir, 0700);
    if (err != TRELLIS_OK) {
        err =
            trellis_reason_set(reason, err, "cannot create %s: %s", dir, trellis_err_message(err));
        goto out;
    }
    err = trellis_p256_generate(&key);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = trellis_p256_save_private_pem(key, key_path);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot write %s: %s", key_path,
                                 trellis_err_message(err));
        goto out;
    }
    err = trellis_p256_save_public_pem(key, pub_path);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot write %s: %s", pub_path,
                                 trellis_err_message(err));
        goto out;
    }
    /* factory.conf last: its presence says the factory is complete. */
    int n = snprintf(conf, sizeof(conf),
                     "# Trellis factory, made by `trellis factory init`. Its manifest signing key\n"
                     "# is %s (keep it secret); register %s at the verifier with\n"
                     "# `trellis verifier add-factory %s --key %s`.\n"
                     "[factory]\nname = %s\n",
                     TR_FACTORY_KEY, TR_FACTORY_PUB, name, TR_FACTORY_PUB, name);
    if (n < 0 || (size_t)n >= sizeof(conf)) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    err = trellis_file_write_atomic(conf_path, conf, (size_t)n, TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot write %s: %s", conf_path,
                                 trellis_err_message(err));
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    return err;
}

struct conf_read {
    char name[TR_NAME_MAX + 1];
    int have_name;
    int bad;
    char bad_key[48];
};

static int conf_handler(void *user, const char *section, const char *key, const char *value)
{
    struct conf_read *c = user;

    if (strcmp(section, "factory") == 0 && strcmp(key, "name") == 0) {
        if (c->have_name || strlen(value) > TR_NAME_MAX) {
            c->bad = 1;
            snprintf(c->bad_key, sizeof(c->bad_key), "name");
            return 0;
        }
        snprintf(c->name, sizeof(c->name), "%s", value);
        c->have_name = 1;
        return 1;
    }
    c->bad = 1;
    snprintf(c->bad_key, sizeof(c->bad_key), "%.20s.%.20s", section, key);
    return 0;
}

trellis_err_t tr__factory_open(const char *dir, tr_factory_t *f, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char key_path[TR_PATH_MAX];
    char conf_path[TR_PATH_MAX];
    struct conf_read c;
    int rc;

    trellis_reason_clear(reason);
    if (f == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(f, 0, sizeof(*f));
    memset(&c, 0, sizeof(c));
    if (dir == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (!path_join(key_path, sizeof(key_path), dir, TR_FACTORY_KEY) ||
        !path_join(conf_path, sizeof(conf_path), dir, TR_FACTORY_CONF)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "directory path too long");
    }
    rc = ini_parse(conf_path, conf_handler, &c);
    if (rc == -1) {
        err =
            trellis_reason_set(reason, TRELLIS_ERR_NOT_FOUND,
                               "no factory in %s (run `trellis factory init --dir %s`)", dir, dir);
        goto out;
    }
    if (rc != 0 || c.bad || !c.have_name) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "%s: %s", conf_path,
                                 c.bad    ? "unknown or repeated setting"
                                 : rc > 0 ? "malformed line"
                                          : "[factory] name is missing");
        goto out;
    }
    if (!tr__factory_name_valid(c.name)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "%s: invalid factory name", conf_path);
        goto out;
    }
    err = trellis_p256_load_private_pem(key_path, &f->key);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot load the factory key %s: %s", key_path,
                                 trellis_err_message(err));
        goto out;
    }
    memcpy(f->name, c.name, sizeof(f->name));
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        tr__factory_close(f);
    }
    return err;
}

void tr__factory_close(tr_factory_t *f)
{
    if (f == NULL) {
        return;
    }
    EVP_PKEY_free(f->key);
    memset(f, 0, sizeof(*f));
}
