/*
 * Operations on the verifier's state directory: init, add-oem, add-factory, and local manifest
 * import. The CLI (tools/trellis/cmd_verifier.c) is a thin layer over these.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "manifest.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/x509.h"
#include "verifier_internal.h"

#define CONF_TEXT_MAX (64 * 1024)
#define HOSTS_MAX     TRELLIS_X509_SANS_MAX
#define IMPORT_CHUNK  (64 * 1024)
#define CLIENT_DAYS   365
#define CA_DAYS       3650
#define SERVER_DAYS   825

typedef char path_t[TRELLIS_VERIFIER_PATH_MAX];

static trellis_err_t join(path_t out, const char *dir, const char *file, trellis_reason_t *reason)
{
    int n = snprintf(out, sizeof(path_t), "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof(path_t))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "path too long: %.60s/%s", dir,
                                  file);
    return TRELLIS_OK;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* verifier.conf: the example generated from the option table, with the values init chose set
 * right under the section header. */
static trellis_err_t write_conf(const char *path, const char *dir, const char *verifier_id,
                                trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    char *example = malloc(CONF_TEXT_MAX);
    char *text = malloc(CONF_TEXT_MAX + 2 * TRELLIS_VERIFIER_PATH_MAX);
    size_t len = 0;

    if (example == NULL || text == NULL)
        goto out;
    err = trellis_conf_format_example(trellis_verifier_conf_spec(), example, CONF_TEXT_MAX, &len);
    if (err != TRELLIS_OK)
        goto out;
    const char *section = strstr(example, "[verifier]\n");
    err = TRELLIS_ERR_INTERNAL;
    if (section == NULL)
        goto out;
    size_t head = (size_t)(section - example) + strlen("[verifier]\n");
    int n = snprintf(text, CONF_TEXT_MAX + 2 * TRELLIS_VERIFIER_PATH_MAX,
                     "%.*s# Set by `trellis verifier init`.\ndir = %s\nverifier-id = %s\n\n%s",
                     (int)head, example, dir, verifier_id, example + head);
    if (n < 0 || (size_t)n >= CONF_TEXT_MAX + 2 * TRELLIS_VERIFIER_PATH_MAX)
        goto out;
    err = trellis_file_write_atomic(path, text, (size_t)n, TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "cannot write %.120s", path);
out:
    free(example);
    free(text);
    return err;
}

static const char *const INIT_FILES[] = {
    TRELLIS_VERIFIER_VERDICT_KEY,   TRELLIS_VERIFIER_VERDICT_PUB, TRELLIS_VERIFIER_CA_KEY,
    TRELLIS_VERIFIER_CA_CERT,       TRELLIS_VERIFIER_TLS_KEY,     TRELLIS_VERIFIER_TLS_CERT,
    TRELLIS_VERIFIER_REGISTRY_FILE, TRELLIS_VERIFIER_CONF_FILE,
};
#define N_INIT_FILES (sizeof(INIT_FILES) / sizeof(INIT_FILES[0]))

static void remove_init_files(const char *dir)
{
    path_t p;
    for (size_t i = 0; i < N_INIT_FILES; i++) {
        if (join(p, dir, INIT_FILES[i], NULL) == TRELLIS_OK)
            unlink(p);
    }
    const char *wal[] = {"registry.db-wal", "registry.db-shm"};
    for (size_t i = 0; i < 2; i++) {
        if (join(p, dir, wal[i], NULL) == TRELLIS_OK)
            unlink(p);
    }
}

trellis_err_t trellis_verifier_init_dir(const trellis_verifier_init_t *opts,
                                        trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *verdict = NULL, *ca_key = NULL, *tls_key = NULL;
    X509 *ca = NULL, *server = NULL;
    trellis_vstore_t *store = NULL;
    path_t p;
    char hosts[512];
    const char *dns[HOSTS_MAX], *ips[HOSTS_MAX];
    size_t n_dns = 0, n_ip = 0;
    int created = 0;

    trellis_reason_clear(reason);
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--dir DIR is required");
    const char *id = opts->verifier_id != NULL ? opts->verifier_id : "trellis-verifier";
    if (!trellis_vstore_name_valid(id))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "verifier id: 1..64 of letters, digits, '.', '_' and '-'");
    if (strlen(opts->dir) > 180)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--dir: keep the path under 180 characters");
    snprintf(hosts, sizeof(hosts), "%s",
             opts->hosts != NULL ? opts->hosts : "localhost,127.0.0.1,::1");
    err = trellis_x509_split_hosts(hosts, dns, &n_dns, ips, &n_ip, HOSTS_MAX, reason);
    if (err != TRELLIS_OK)
        return err;
    for (size_t i = 0; i < N_INIT_FILES; i++) {
        if (join(p, opts->dir, INIT_FILES[i], reason) != TRELLIS_OK)
            return TRELLIS_ERR_INVALID_ARG;
        if (exists(p))
            return trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                      "%.120s already exists: this directory holds a verifier", p);
    }
    err = trellis_mkdir_p(opts->dir, 0700);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot create %.120s", opts->dir);
    created = 1;

    /* The verdict key: what registrars pin. */
    err = trellis_p256_generate(&verdict);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_VERDICT_KEY, reason)) == TRELLIS_OK)
        err = trellis_p256_save_private_pem(verdict, p);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_VERDICT_PUB, reason)) == TRELLIS_OK)
        err = trellis_p256_save_public_pem(verdict, p);
    if (err != TRELLIS_OK)
        goto out;

    /* The CA of the verifier's TLS peers: it issues the server certificate and every OEM and
     * factory client certificate, so ca.pem is the one trust anchor in both directions. */
    trellis_x509_profile_t ca_profile = {
        .kind = TRELLIS_X509_CA,
        .common_name = "Trellis verifier CA",
        .organization = id,
        .days = opts->ca_days != 0 ? opts->ca_days : CA_DAYS,
        .path_len = 0,
    };
    err = trellis_p256_generate(&ca_key);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(&ca_profile, ca_key, NULL, ca_key, &ca, reason);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_CA_KEY, reason)) == TRELLIS_OK)
        err = trellis_p256_save_private_pem(ca_key, p);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_CA_CERT, reason)) == TRELLIS_OK)
        err = trellis_x509_save_chain_pem(p, &ca, 1);
    if (err != TRELLIS_OK)
        goto out;

    trellis_x509_profile_t server_profile = {
        .kind = TRELLIS_X509_SERVER,
        .common_name = id,
        .organization = id,
        .days = opts->server_days != 0 ? opts->server_days : SERVER_DAYS,
        .dns_names = dns,
        .n_dns = n_dns,
        .ip_addrs = ips,
        .n_ip = n_ip,
    };
    err = trellis_p256_generate(&tls_key);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(&server_profile, tls_key, ca, ca_key, &server, reason);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_TLS_KEY, reason)) == TRELLIS_OK)
        err = trellis_p256_save_private_pem(tls_key, p);
    if (err == TRELLIS_OK &&
        (err = join(p, opts->dir, TRELLIS_VERIFIER_TLS_CERT, reason)) == TRELLIS_OK) {
        X509 *chain[2] = {server, ca};
        err = trellis_x509_save_chain_pem(p, chain, 2);
    }
    if (err != TRELLIS_OK)
        goto out;

    err = join(p, opts->dir, TRELLIS_VERIFIER_REGISTRY_FILE, reason);
    if (err != TRELLIS_OK)
        goto out;
    trellis_vstore_sqlite_opts_t so = {.durable = 1, .busy_timeout_ms = 5000, .create = 1};
    err = trellis_vstore_open_sqlite(p, &so, &store);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot create the registry %.120s", p);
        goto out;
    }
    err = join(p, opts->dir, TRELLIS_VERIFIER_CONF_FILE, reason);
    if (err == TRELLIS_OK)
        err = write_conf(p, opts->dir, id, reason);
    if (err == TRELLIS_OK)
        err = trellis_fsync_dir(opts->dir);
out:
    trellis_vstore_close(store);
    if (err != TRELLIS_OK && created)
        remove_init_files(opts->dir); /* all or nothing */
    if (err != TRELLIS_OK && reason != NULL && reason->text[0] == '\0')
        trellis_reason_set(reason, err, "%s", trellis_err_message(err));
    X509_free(server);
    X509_free(ca);
    EVP_PKEY_free(tls_key);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(verdict);
    return err;
}

static void remove_bundle(const trellis_verifier_bundle_t *b)
{
    unlink(b->key);
    unlink(b->cert);
    unlink(b->ca);
    rmdir(b->dir);
}

/* Issues a client certificate (CN = name) from the verifier's CA and writes the bundle. */
static trellis_err_t write_bundle(const trellis_verifier_config_t *cfg, const char *name,
                                  const char *role, const char *out_dir, unsigned days,
                                  trellis_verifier_bundle_t *b, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca = NULL, *cert = NULL;
    path_t p;

    memset(b, 0, sizeof(*b));
    if (out_dir != NULL) {
        snprintf(b->dir, sizeof(b->dir), "%s", out_dir);
    } else {
        int n = snprintf(b->dir, sizeof(b->dir), "%s/%s/%s", cfg->dir, TRELLIS_VERIFIER_CLIENTS_DIR,
                         name);
        if (n < 0 || (size_t)n >= sizeof(b->dir))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "path too long");
    }
    if ((err = join(b->key, b->dir, "client.key", reason)) != TRELLIS_OK ||
        (err = join(b->cert, b->dir, "client.pem", reason)) != TRELLIS_OK ||
        (err = join(b->ca, b->dir, "ca.pem", reason)) != TRELLIS_OK)
        return err;
    if (exists(b->key) || exists(b->cert))
        return trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                  "%.120s already holds a client bundle", b->dir);
    err = join(p, cfg->dir, TRELLIS_VERIFIER_CA_KEY, reason);
    if (err != TRELLIS_OK)
        return err;
    err = trellis_p256_load_private_pem(p, &ca_key);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "CA key %.120s: %s", p,
                           trellis_err_message(err));
        err = TRELLIS_ERR_CONFIG;
        goto out;
    }
    err = trellis_x509_load_pem(cfg->client_ca, &ca);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "CA certificate %.120s: %s", cfg->client_ca,
                           trellis_err_message(err));
        err = TRELLIS_ERR_CONFIG;
        goto out;
    }
    trellis_x509_profile_t profile = {
        .kind = TRELLIS_X509_CLIENT,
        .common_name = name,
        .organization = role,
        .days = days != 0 ? days : CLIENT_DAYS,
    };
    err = trellis_p256_generate(&key);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(&profile, key, ca, ca_key, &cert, reason);
    if (err == TRELLIS_OK)
        err = trellis_mkdir_p(b->dir, 0700);
    if (err == TRELLIS_OK)
        err = trellis_p256_save_private_pem(key, b->key);
    if (err == TRELLIS_OK)
        err = trellis_x509_save_chain_pem(b->cert, &cert, 1);
    if (err == TRELLIS_OK)
        err = trellis_x509_save_chain_pem(b->ca, &ca, 1);
    if (err != TRELLIS_OK) {
        if (reason != NULL && reason->text[0] == '\0')
            trellis_reason_set(reason, err, "cannot write the bundle in %.120s", b->dir);
        remove_bundle(b);
    }
out:
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return err;
}

/* Refuses a name already used by an OEM or a factory before anything is issued for it. */
static trellis_err_t name_available(trellis_vstore_t *s, const char *name, trellis_reason_t *reason)
{
    int oem = 0;
    uint8_t key[TRELLIS_ROT_KEY_LEN];
    trellis_err_t err = s->oem_exists(s->ctx, name, &oem);
    if (err != TRELLIS_OK)
        return err;
    trellis_err_t ferr = s->factory_key(s->ctx, name, key);
    if (oem || ferr == TRELLIS_OK)
        return trellis_reason_set(reason, TRELLIS_ERR_EXISTS, "\"%s\" is already registered as %s",
                                  name, oem ? "an OEM" : "a factory");
    return ferr == TRELLIS_ERR_NOT_FOUND ? TRELLIS_OK : ferr;
}

static trellis_err_t add_client(const trellis_verifier_config_t *cfg, const char *name,
                                const char *key_pem_path, const char *out_dir, unsigned days,
                                trellis_verifier_bundle_t *bundle, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_t *s = NULL;
    EVP_PKEY *fkey = NULL;
    uint8_t point[TRELLIS_ROT_KEY_LEN];
    trellis_verifier_bundle_t local;
    trellis_verifier_bundle_t *b = bundle != NULL ? bundle : &local;
    int is_factory = key_pem_path != NULL;

    trellis_reason_clear(reason);
    if (cfg == NULL || name == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!trellis_vstore_name_valid(name))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "name: 1..64 of letters, digits, '.', '_' and '-', starting "
                                  "with a letter or digit");
    if (is_factory) {
        err = trellis_p256_load_public_pem(key_pem_path, &fkey);
        if (err == TRELLIS_OK)
            err = trellis_p256_public_point(fkey, point);
        EVP_PKEY_free(fkey);
        if (err != TRELLIS_OK)
            return trellis_reason_set(reason, err, "--key %.120s: %s", key_pem_path,
                                      trellis_err_message(err));
    }
    err = trellis_verifier_open_store(cfg, &s, reason);
    if (err != TRELLIS_OK)
        return err;
    err = name_available(s, name, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* The bundle first: the registry changes only once the client can actually connect. */
    err = write_bundle(cfg, name, is_factory ? "Trellis factory" : "Trellis OEM", out_dir, days, b,
                       reason);
    if (err != TRELLIS_OK)
        goto out;
    err = is_factory ? s->factory_add(s->ctx, name, point, "admin")
                     : s->oem_add(s->ctx, name, "admin");
    if (err != TRELLIS_OK) {
        remove_bundle(b);
        trellis_reason_set(reason, err, "cannot register \"%s\": %s", name,
                           trellis_err_message(err));
    }
out:
    trellis_vstore_close(s);
    return err;
}

trellis_err_t trellis_verifier_add_oem(const trellis_verifier_config_t *cfg, const char *name,
                                       const char *out_dir, unsigned days,
                                       trellis_verifier_bundle_t *bundle, trellis_reason_t *reason)
{
    return add_client(cfg, name, NULL, out_dir, days, bundle, reason);
}

trellis_err_t trellis_verifier_add_factory(const trellis_verifier_config_t *cfg, const char *name,
                                           const char *key_pem_path, const char *out_dir,
                                           unsigned days, trellis_verifier_bundle_t *bundle,
                                           trellis_reason_t *reason)
{
    if (key_pem_path == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--key PUB.pem is required");
    return add_client(cfg, name, key_pem_path, out_dir, days, bundle, reason);
}

trellis_err_t trellis_verifier_import_file(const trellis_verifier_config_t *cfg, const char *path,
                                           char **report_json, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_t *s = NULL;
    tr__import_t *imp = NULL;
    tr__import_report_t rep;
    uint8_t *chunk = NULL;
    int fd = -1;

    trellis_reason_clear(reason);
    if (report_json != NULL)
        *report_json = NULL;
    if (cfg == NULL || path == NULL || report_json == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(&rep, 0, sizeof(rep));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return trellis_reason_set(reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO,
                                  "%.120s: %s", path, strerror(errno));
    err = TRELLIS_ERR_NOMEM;
    chunk = malloc(IMPORT_CHUNK);
    if (chunk == NULL)
        goto out;
    err = trellis_verifier_open_store(cfg, &s, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = tr__import_new(s, NULL, (uint64_t)cfg->manifest_max_devices, &imp);
    if (err != TRELLIS_OK)
        goto out;
    /* Read and fed in fixed chunks: memory stays flat whatever the file's size. */
    for (;;) {
        ssize_t n = read(fd, chunk, IMPORT_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_IO, "%.120s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0 || tr__import_feed(imp, chunk, (size_t)n) != TRELLIS_OK)
            break;
    }
    err = tr__import_finish(imp, &rep);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "%s", rep.reason.text);
        /* A refused import changed nothing, but it is recorded like one through the API. */
        trellis_vstore_audit_t e;
        memset(&e, 0, sizeof(e));
        snprintf(e.event, sizeof(e.event), "manifest.import");
        snprintf(e.caller, sizeof(e.caller), "admin");
        snprintf(e.outcome, sizeof(e.outcome), "rejected");
        snprintf(e.reason, sizeof(e.reason), "file import, %s: %.180s", trellis_err_name(err),
                 rep.reason.text);
        for (char *c = e.reason; *c != '\0'; c++) {
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                *c = '?';
        }
        s->audit_append(s->ctx, &e, 1);
    }
    json_t *o = tr__import_report_json(&rep);
    if (o != NULL) {
        *report_json = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
out:
    tr__import_free(imp);
    trellis_vstore_close(s);
    free(chunk);
    if (fd >= 0)
        close(fd);
    return err;
}
