/*
 * Operations on the registrar's state directory: init, join, revoke, reinstate and CRL
 * publication. The CLI (tools/trellis/cmd_registrar.c) is a thin layer over these.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/http_client.h"
#include "trellis/json.h"
#include "trellis/verifier.h"
#include "trellis/x509.h"

#define CONF_TEXT_MAX (64 * 1024)
#define HOSTS_MAX     TRELLIS_X509_SANS_MAX
#define ROOT_DAYS     7300
#define CA_DAYS       3650
#define SERVER_DAYS   825
#define CRL_INIT_S    (7 * 86400)
#define BUNDLE_MAX    (64 * 1024)

typedef char path_t[TRELLIS_REGISTRAR_PATH_MAX];

static trellis_err_t join_path(path_t out, const char *dir, const char *file,
                               trellis_reason_t *reason)
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

/* registrar.conf: the example generated from the option table, with the values init chose set
 * right under the section header. */
static trellis_err_t write_conf(const char *path, const char *dir, const char *oem,
                                trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    size_t cap = CONF_TEXT_MAX + 2 * TRELLIS_REGISTRAR_PATH_MAX;
    char *example = malloc(CONF_TEXT_MAX);
    char *text = malloc(cap);
    size_t len = 0;

    if (example == NULL || text == NULL)
        goto out;
    err = trellis_conf_format_example(trellis_registrar_conf_spec(), example, CONF_TEXT_MAX, &len);
    if (err != TRELLIS_OK)
        goto out;
    const char *section = strstr(example, "[registrar]\n");
    err = TRELLIS_ERR_INTERNAL;
    if (section == NULL)
        goto out;
    size_t head = (size_t)(section - example) + strlen("[registrar]\n");
    int n = snprintf(text, cap, "%.*s# Set by `trellis registrar init`.\ndir = %s\noem = %s\n\n%s",
                     (int)head, example, dir, oem, example + head);
    if (n < 0 || (size_t)n >= cap)
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
    TRELLIS_REGISTRAR_ROOT_KEY, TRELLIS_REGISTRAR_ROOT_CERT, TRELLIS_REGISTRAR_TRUST_FILE,
    TRELLIS_REGISTRAR_CA_KEY,   TRELLIS_REGISTRAR_CA_CERT,   TRELLIS_REGISTRAR_CA_CHAIN,
    TRELLIS_REGISTRAR_TLS_KEY,  TRELLIS_REGISTRAR_TLS_CERT,  TRELLIS_REGISTRAR_SECRET_FILE,
    TRELLIS_REGISTRAR_CRL_FILE, TRELLIS_REGISTRAR_CONF_FILE, TRELLIS_REGISTRAR_REGISTRY_FILE,
    "registry.db-wal",          "registry.db-shm",           "crl.pem.lock",
};
#define N_INIT_FILES (sizeof(INIT_FILES) / sizeof(INIT_FILES[0]))

static void remove_init_files(const char *dir)
{
    path_t p;
    for (size_t i = 0; i < N_INIT_FILES; i++) {
        if (join_path(p, dir, INIT_FILES[i], NULL) == TRELLIS_OK)
            unlink(p);
    }
    if (join_path(p, dir, TRELLIS_REGISTRAR_ROOT_DIR, NULL) == TRELLIS_OK)
        rmdir(p);
}

/* One CA or server certificate of init: a fresh key, issued, both written. */
static trellis_err_t make_cert(const char *dir, const trellis_x509_profile_t *profile, X509 *issuer,
                               EVP_PKEY *issuer_key, const char *key_file, EVP_PKEY **key_out,
                               X509 **cert_out, trellis_reason_t *reason)
{
    path_t p;
    trellis_err_t err = trellis_p256_generate(key_out);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(profile, *key_out, issuer, issuer != NULL ? issuer_key : *key_out,
                                 cert_out, reason);
    if (err == TRELLIS_OK && (err = join_path(p, dir, key_file, reason)) == TRELLIS_OK)
        err = trellis_p256_save_private_pem(*key_out, p);
    if (err != TRELLIS_OK && reason != NULL && reason->text[0] == '\0')
        trellis_reason_set(reason, err, "cannot make %s", key_file);
    return err;
}

static trellis_err_t save_certs(const char *dir, const char *file, X509 *const *certs, size_t n,
                                trellis_reason_t *reason)
{
    path_t p;
    trellis_err_t err = join_path(p, dir, file, reason);
    if (err == TRELLIS_OK)
        err = trellis_x509_save_chain_pem(p, certs, n);
    if (err != TRELLIS_OK && reason != NULL && reason->text[0] == '\0')
        trellis_reason_set(reason, err, "cannot write %s", file);
    return err;
}

static trellis_err_t write_secret(const char *dir, trellis_reason_t *reason)
{
    uint8_t secret[TR__CHALLENGE_SECRET_LEN];
    char hex[2 * TR__CHALLENGE_SECRET_LEN + 2];
    size_t n = 0;
    path_t p;
    trellis_err_t err = trellis_random(secret, sizeof(secret));
    if (err == TRELLIS_OK)
        err = trellis_hex_encode(secret, sizeof(secret), hex, sizeof(hex), &n);
    if (err == TRELLIS_OK) {
        hex[n++] = '\n';
        err = join_path(p, dir, TRELLIS_REGISTRAR_SECRET_FILE, reason);
    }
    if (err == TRELLIS_OK)
        err = trellis_file_write_atomic(p, hex, n, TRELLIS_FILE_SECRET);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(hex, sizeof(hex));
    return err;
}

trellis_err_t trellis_registrar_init_dir(const trellis_registrar_init_t *opts,
                                         trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *root_key = NULL, *ca_key = NULL, *tls_key = NULL;
    X509 *root = NULL, *ca = NULL, *server = NULL;
    trellis_rstore_t *store = NULL;
    tr__reg_ca_t *dca = NULL;
    path_t p, p2, p3;
    char hosts[512];
    const char *dns[HOSTS_MAX], *ips[HOSTS_MAX];
    size_t n_dns = 0, n_ip = 0;
    int created = 0, made_dir = 0;

    trellis_reason_clear(reason);
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--dir DIR is required");
    if (opts->oem == NULL || !tr__reg_oem_name_valid(opts->oem))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--oem NAME: 1..64 of letters, digits, '.', '_' and '-', "
                                  "starting with a letter or digit");
    if (strlen(opts->dir) > 180)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--dir: keep the path under 180 characters");
    snprintf(hosts, sizeof(hosts), "%s",
             opts->hosts != NULL ? opts->hosts : "localhost,127.0.0.1,::1");
    err = trellis_x509_split_hosts(hosts, dns, &n_dns, ips, &n_ip, HOSTS_MAX, reason);
    if (err != TRELLIS_OK)
        return err;
    for (size_t i = 0; i < N_INIT_FILES; i++) {
        if (join_path(p, opts->dir, INIT_FILES[i], reason) != TRELLIS_OK)
            return TRELLIS_ERR_INVALID_ARG;
        if (exists(p))
            return trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                      "%.120s already exists: this directory holds a registrar", p);
    }
    made_dir = !exists(opts->dir);
    err = trellis_mkdir_p(opts->dir, 0700);
    if (err == TRELLIS_OK &&
        (err = join_path(p, opts->dir, TRELLIS_REGISTRAR_ROOT_DIR, reason)) == TRELLIS_OK)
        err = trellis_mkdir_p(p, 0700);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot create %.120s", opts->dir);
    created = 1;

    /* The root: signs the device CA and the TLS server certificate, then goes offline. */
    trellis_x509_profile_t root_profile = {
        .kind = TRELLIS_X509_CA,
        .common_name = "Trellis root CA",
        .organization = opts->oem,
        .days = opts->root_days != 0 ? opts->root_days : ROOT_DAYS,
        .path_len = 1,
    };
    err = make_cert(opts->dir, &root_profile, NULL, NULL, TRELLIS_REGISTRAR_ROOT_KEY, &root_key,
                    &root, reason);
    if (err == TRELLIS_OK)
        err = save_certs(opts->dir, TRELLIS_REGISTRAR_ROOT_CERT, &root, 1, reason);
    if (err == TRELLIS_OK)
        err = save_certs(opts->dir, TRELLIS_REGISTRAR_TRUST_FILE, &root, 1, reason);
    if (err != TRELLIS_OK)
        goto out;

    /* The device CA: online, signs device certificates and CRLs only (pathLen 0). */
    trellis_x509_profile_t ca_profile = {
        .kind = TRELLIS_X509_CA,
        .common_name = "Trellis device CA",
        .organization = opts->oem,
        .days = opts->ca_days != 0 ? opts->ca_days : CA_DAYS,
        .path_len = 0,
    };
    err = make_cert(opts->dir, &ca_profile, root, root_key, TRELLIS_REGISTRAR_CA_KEY, &ca_key, &ca,
                    reason);
    if (err == TRELLIS_OK)
        err = save_certs(opts->dir, TRELLIS_REGISTRAR_CA_CERT, &ca, 1, reason);
    if (err == TRELLIS_OK) {
        X509 *chain[2] = {ca, root};
        err = save_certs(opts->dir, TRELLIS_REGISTRAR_CA_CHAIN, chain, 2, reason);
    }
    if (err != TRELLIS_OK)
        goto out;

    trellis_x509_profile_t server_profile = {
        .kind = TRELLIS_X509_SERVER,
        .common_name = "Trellis registrar",
        .organization = opts->oem,
        .days = opts->server_days != 0 ? opts->server_days : SERVER_DAYS,
        .dns_names = dns,
        .n_dns = n_dns,
        .ip_addrs = ips,
        .n_ip = n_ip,
    };
    err = make_cert(opts->dir, &server_profile, root, root_key, TRELLIS_REGISTRAR_TLS_KEY, &tls_key,
                    &server, reason);
    if (err == TRELLIS_OK)
        err = save_certs(opts->dir, TRELLIS_REGISTRAR_TLS_CERT, &server, 1, reason);
    if (err == TRELLIS_OK)
        err = write_secret(opts->dir, reason);
    if (err != TRELLIS_OK)
        goto out;

    err = join_path(p, opts->dir, TRELLIS_REGISTRAR_REGISTRY_FILE, reason);
    if (err != TRELLIS_OK)
        goto out;
    trellis_rstore_sqlite_opts_t so = {.durable = 1, .busy_timeout_ms = 5000, .create = 1};
    err = trellis_rstore_open_sqlite(p, &so, &store);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot create the registry %.120s", p);
        goto out;
    }
    /* A first, empty CRL, so a broker can be configured before the first device enrolls. */
    if ((err = join_path(p, opts->dir, TRELLIS_REGISTRAR_CA_KEY, reason)) != TRELLIS_OK ||
        (err = join_path(p2, opts->dir, TRELLIS_REGISTRAR_CA_CERT, reason)) != TRELLIS_OK ||
        (err = join_path(p3, opts->dir, TRELLIS_REGISTRAR_TRUST_FILE, reason)) != TRELLIS_OK)
        goto out;
    err = tr__reg_ca_load(p, p2, p3, opts->oem, &dca, reason);
    if (err == TRELLIS_OK &&
        (err = join_path(p, opts->dir, TRELLIS_REGISTRAR_CRL_FILE, reason)) == TRELLIS_OK)
        err = tr__reg_crl_publish(store, dca, tr__reg_now_s(), CRL_INIT_S, p, NULL, NULL, NULL,
                                  reason);
    if (err != TRELLIS_OK)
        goto out;
    err = join_path(p, opts->dir, TRELLIS_REGISTRAR_CONF_FILE, reason);
    if (err == TRELLIS_OK)
        err = write_conf(p, opts->dir, opts->oem, reason);
    if (err == TRELLIS_OK)
        err = trellis_fsync_dir(opts->dir);
out:
    tr__reg_ca_free(dca);
    trellis_rstore_close(store);
    if (err != TRELLIS_OK && created) {
        remove_init_files(opts->dir); /* all or nothing */
        if (made_dir)
            rmdir(opts->dir);
    }
    if (err != TRELLIS_OK && reason != NULL && reason->text[0] == '\0')
        trellis_reason_set(reason, err, "%s", trellis_err_message(err));
    X509_free(server);
    X509_free(ca);
    X509_free(root);
    EVP_PKEY_free(tls_key);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(root_key);
    return err;
}

/* ---- join ---- */

typedef struct {
    int done;
    trellis_err_t err;
    int status;
    char detail[128];
    uint8_t *body;
    size_t len;
    struct event_base *base;
} fetch_t;

static void fetch_done(const trellis_http_response_t *resp, void *arg)
{
    fetch_t *f = arg;
    f->done = 1;
    f->err = resp->err;
    f->status = resp->status;
    snprintf(f->detail, sizeof(f->detail), "%s", resp->detail != NULL ? resp->detail : "");
    if (resp->err == TRELLIS_OK && resp->body_len > 0) {
        f->body = malloc(resp->body_len);
        if (f->body != NULL) {
            memcpy(f->body, resp->body, resp->body_len);
            f->len = resp->body_len;
        }
    }
    event_base_loopbreak(f->base);
}

/* GET URL/v1/verdict-key over mutual TLS, on a private event loop run until the answer. */
static trellis_err_t fetch_verdict_key(const char *url, const path_t ca, const path_t cert,
                                       const path_t key, unsigned timeout_ms, EVP_PKEY **out,
                                       trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    fetch_t f;
    trellis_http_client_t *client = NULL;
    json_t *o = NULL;
    const char *pem = NULL;
    size_t pem_len = 0;
    char full[TRELLIS_REGISTRAR_URL_MAX + 32];

    memset(&f, 0, sizeof(f));
    f.base = event_base_new();
    if (f.base == NULL)
        goto out;
    trellis_http_client_config_t cc = {
        .ca_file = ca, .cert_file = cert, .key_file = key, .timeout_ms = timeout_ms};
    err = trellis_http_client_new(f.base, &cc, &client, reason);
    if (err != TRELLIS_OK)
        goto out;
    snprintf(full, sizeof(full), "%s/v1/verdict-key", url);
    trellis_http_client_request_t rq = {.method = TRELLIS_HTTP_GET, .url = full};
    err = trellis_http_client_send(client, &rq, fetch_done, &f, NULL);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot call %.150s", full);
        goto out;
    }
    while (!f.done && event_base_dispatch(f.base) == 0)
        ;
    err = f.err != TRELLIS_OK ? f.err : TRELLIS_ERR_UNAVAILABLE;
    if (!f.done || f.err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "verifier %.120s: %s", url, f.detail);
        goto out;
    }
    err = TRELLIS_ERR_PARSE;
    if (f.status != 200 ||
        trellis_json_parse_object((const char *)f.body, f.len, BUNDLE_MAX, &o, NULL) !=
            TRELLIS_OK ||
        trellis_json_get_string(o, "pem", 4096, &pem, &pem_len, NULL) != TRELLIS_OK) {
        trellis_reason_set(reason, err, "verifier %.120s answered %d without a verdict key", url,
                           f.status);
        goto out;
    }
    err = trellis_p256_public_from_spki((const uint8_t *)pem, pem_len, out);
    if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "the verifier's verdict key is not a P-256 key");
out:
    json_decref(o);
    free(f.body);
    trellis_http_client_free(client);
    if (f.base != NULL)
        event_base_free(f.base);
    return err;
}

/* Copies one file of the bundle into place (read whole, written atomically). */
static trellis_err_t copy_file(const char *from, const char *to, mode_t mode,
                               trellis_reason_t *reason)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    trellis_err_t err = trellis_file_read_all(from, BUNDLE_MAX, &buf, &len);
    if (err == TRELLIS_OK)
        err = trellis_file_write_atomic(to, buf, len, mode);
    if (buf != NULL)
        trellis_file_buffer_free(buf, len);
    if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "cannot copy %.100s to %.100s", from, to);
    return err;
}

/* Sets verifier-url in registrar.conf: any earlier setting goes, the new one follows the
 * section's first lines (those init wrote). */
static trellis_err_t conf_set_url(const char *path, const char *url, trellis_reason_t *reason)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    trellis_err_t err = trellis_file_read_all(path, CONF_TEXT_MAX, &buf, &len);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot read %.120s", path);
    size_t cap = len + strlen(url) + 64, pos = 0;
    char *out = malloc(cap);
    int inserted = 0;
    err = TRELLIS_ERR_NOMEM;
    if (out == NULL)
        goto out;
    const char *line = (const char *)buf;
    const char *end = (const char *)buf + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl != NULL ? (size_t)(nl - line) + 1 : (size_t)(end - line);
        int is_url = strncmp(line, "verifier-url", 12) == 0;
        if (!is_url) {
            memcpy(out + pos, line, n);
            pos += n;
        }
        if (!inserted && (strncmp(line, "oem =", 5) == 0 || strncmp(line, "oem=", 4) == 0)) {
            pos += (size_t)snprintf(out + pos, cap - pos, "%sverifier-url = %s\n",
                                    nl == NULL ? "\n" : "", url);
            inserted = 1;
        }
        line += n;
    }
    if (!inserted)
        pos += (size_t)snprintf(out + pos, cap - pos, "\n[registrar]\nverifier-url = %s\n", url);
    err = trellis_file_write_atomic(path, out, pos, TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "cannot write %.120s", path);
out:
    free(out);
    trellis_file_buffer_free(buf, len);
    return err;
}

static int url_ok(const char *url)
{
    size_t n = strlen(url);
    if (strncmp(url, "https://", 8) != 0 || n <= 8 || n >= TRELLIS_REGISTRAR_URL_MAX - 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return 0;
    }
    return url[n - 1] != '/';
}

trellis_err_t trellis_registrar_join(const trellis_registrar_config_t *cfg,
                                     const trellis_registrar_join_t *opts, char kid[static 44],
                                     trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    path_t src_key, src_cert, src_ca, vdir, conf;
    EVP_PKEY *client_key = NULL, *verdict = NULL;
    X509 *client_cert = NULL;
    char cn[TRELLIS_X509_NAME_MAX + 1];
    size_t cn_len = 0;

    trellis_reason_clear(reason);
    memset(kid, 0, 44);
    if (cfg == NULL || opts == NULL || opts->verifier_url == NULL || opts->bundle == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--verifier URL and --bundle DIR are required");
    if (!url_ok(opts->verifier_url))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--verifier: an https://host:port URL without a trailing '/'");
    if (cfg->oem[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "oem is not set: run `trellis registrar init` first");
    if ((err = join_path(src_key, opts->bundle, "client.key", reason)) != TRELLIS_OK ||
        (err = join_path(src_cert, opts->bundle, "client.pem", reason)) != TRELLIS_OK ||
        (err = join_path(src_ca, opts->bundle, "ca.pem", reason)) != TRELLIS_OK ||
        (err = join_path(vdir, cfg->dir, TRELLIS_REGISTRAR_VERIFIER_DIR, reason)) != TRELLIS_OK ||
        (err = join_path(conf, cfg->dir, TRELLIS_REGISTRAR_CONF_FILE, reason)) != TRELLIS_OK)
        return err;
    /* The bundle must be whole and be this OEM's: the verifier names the OEM of a verdict after
     * the client certificate's CN, and the registrar refuses verdicts for anyone else. */
    err = trellis_p256_load_private_pem(src_key, &client_key);
    if (err == TRELLIS_OK)
        err = trellis_x509_load_pem(src_cert, &client_cert);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                 "--bundle %.120s: client.key and client.pem: %s", opts->bundle,
                                 trellis_err_message(err));
        goto out;
    }
    err = TRELLIS_ERR_CONFIG;
    if (X509_check_private_key(client_cert, client_key) != 1) {
        trellis_reason_set(reason, err, "--bundle: client.key does not match client.pem");
        goto out;
    }
    if (trellis_x509_subject_cn(client_cert, cn, sizeof(cn), &cn_len) != TRELLIS_OK ||
        strcmp(cn, cfg->oem) != 0) {
        trellis_reason_set(reason, err, "--bundle is issued to \"%.64s\", this registrar is \"%s\"",
                           cn, cfg->oem);
        goto out;
    }
    if (!exists(src_ca)) {
        trellis_reason_set(reason, err, "--bundle: ca.pem is missing");
        goto out;
    }
    err = trellis_mkdir_p(vdir, 0700);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot create %.120s", vdir);
        goto out;
    }
    if ((err = copy_file(src_key, cfg->verifier_key, TRELLIS_FILE_SECRET, reason)) != TRELLIS_OK ||
        (err = copy_file(src_cert, cfg->verifier_cert, TRELLIS_FILE_PUBLIC, reason)) !=
            TRELLIS_OK ||
        (err = copy_file(src_ca, cfg->verifier_ca, TRELLIS_FILE_PUBLIC, reason)) != TRELLIS_OK)
        goto out;
    if (opts->verdict_key != NULL) {
        err = trellis_p256_load_public_pem(opts->verdict_key, &verdict);
        if (err != TRELLIS_OK)
            trellis_reason_set(reason, err, "--verdict-key %.120s: %s", opts->verdict_key,
                               trellis_err_message(err));
    } else {
        err = fetch_verdict_key(opts->verifier_url, cfg->verifier_ca, cfg->verifier_cert,
                                cfg->verifier_key, opts->timeout_ms != 0 ? opts->timeout_ms : 10000,
                                &verdict, reason);
    }
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_save_public_pem(verdict, cfg->verdict_key);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot write %.120s", cfg->verdict_key);
        goto out;
    }
    err = trellis_verdict_kid(verdict, kid);
    if (err == TRELLIS_OK)
        err = conf_set_url(conf, opts->verifier_url, reason);
out:
    X509_free(client_cert);
    EVP_PKEY_free(client_key);
    EVP_PKEY_free(verdict);
    return err;
}

/* ---- revocation, CRL ---- */

static trellis_err_t open_ca(const trellis_registrar_config_t *cfg, tr__reg_ca_t **ca,
                             trellis_reason_t *reason)
{
    return tr__reg_ca_load(cfg->ca_key, cfg->ca_cert, cfg->root_cert, cfg->oem, ca, reason);
}

static trellis_err_t publish(const trellis_registrar_config_t *cfg, trellis_rstore_t *store,
                             uint64_t *number, trellis_reason_t *reason)
{
    tr__reg_ca_t *ca = NULL;
    trellis_err_t err = open_ca(cfg, &ca, reason);
    if (err == TRELLIS_OK)
        err =
            tr__reg_crl_publish(store, ca, tr__reg_now_s(), (int64_t)(cfg->crl_validity_ms / 1000),
                                cfg->crl_file, number, NULL, NULL, reason);
    tr__reg_ca_free(ca);
    return err;
}

trellis_err_t trellis_registrar_publish_crl(const trellis_registrar_config_t *cfg, uint64_t *number,
                                            trellis_reason_t *reason)
{
    trellis_rstore_t *store = NULL;
    trellis_reason_clear(reason);
    if (number != NULL)
        *number = 0;
    if (cfg == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = trellis_registrar_open_store(cfg, &store, reason);
    if (err == TRELLIS_OK)
        err = publish(cfg, store, number, reason);
    trellis_rstore_close(store);
    return err;
}

trellis_err_t trellis_registrar_revoke(const trellis_registrar_config_t *cfg, const char *device_id,
                                       trellis_crl_reason_t code, const char *reason_text,
                                       const char *actor, uint64_t *n_certs,
                                       trellis_reason_t *reason)
{
    trellis_rstore_t *store = NULL;
    trellis_reason_clear(reason);
    if (n_certs != NULL)
        *n_certs = 0;
    if (cfg == NULL || actor == NULL || reason_text == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!trellis_rstore_hex32_valid(device_id))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "a device id is 32 lowercase hex digits");
    if (strlen(reason_text) > TRELLIS_RSTORE_TEXT_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--reason: at most %d bytes",
                                  TRELLIS_RSTORE_TEXT_MAX);
    trellis_err_t err = trellis_registrar_open_store(cfg, &store, reason);
    if (err != TRELLIS_OK)
        return err;
    err = store->device_revoke(store->ctx, device_id, code, reason_text, actor, n_certs);
    if (err == TRELLIS_ERR_NOT_FOUND)
        trellis_reason_set(reason, err, "device %s is not in the registry", device_id);
    else if (err == TRELLIS_ERR_REVOKED)
        trellis_reason_set(reason, err, "device %s is already revoked", device_id);
    else if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "the registry refused the revocation");
    /* Committed: now the CRL must say so. */
    if (err == TRELLIS_OK)
        err = publish(cfg, store, NULL, reason);
    trellis_rstore_close(store);
    return err;
}

trellis_err_t trellis_registrar_reinstate(const trellis_registrar_config_t *cfg,
                                          const char *device_id, const char *actor,
                                          trellis_reason_t *reason)
{
    trellis_rstore_t *store = NULL;
    trellis_reason_clear(reason);
    if (cfg == NULL || actor == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!trellis_rstore_hex32_valid(device_id))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "a device id is 32 lowercase hex digits");
    trellis_err_t err = trellis_registrar_open_store(cfg, &store, reason);
    if (err != TRELLIS_OK)
        return err;
    err = store->device_reinstate(store->ctx, device_id, actor);
    if (err == TRELLIS_ERR_NOT_FOUND)
        trellis_reason_set(reason, err, "device %s is not in the registry", device_id);
    else if (err == TRELLIS_ERR_CONFLICT)
        trellis_reason_set(reason, err, "device %s is not revoked", device_id);
    else if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "the registry refused the reinstatement");
    trellis_rstore_close(store);
    return err;
}
