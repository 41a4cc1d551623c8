/*
 * trellis_broker_config_write: the Mosquitto 2.0 configuration of design.md §3 and the service
 * identities next to it. docs/broker.md explains every setting; the comments written into
 * mosquitto.conf say the same in short, so an operator reading the file needs nothing else.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ingest_internal.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/ingest.h"
#include "trellis/x509.h"

#define CONF_TEXT_MAX   (16 * 1024)
#define CRL_FILE_MAX    (64 * 1024 * 1024)
#define SERVICE_CA_DAYS 3650
#define SERVICE_DAYS    825
#define USER_NAME_MAX   64

/* Paths of one configuration, absolute. */
typedef struct {
    char dir[PATH_MAX];
    char device_ca[PATH_MAX];
    char crl[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    char service_ca[PATH_MAX];
    char service_ca_key[PATH_MAX];
    char service_cert[PATH_MAX];
    char service_key[PATH_MAX];
    char ingest_cert[PATH_MAX];
    char ingest_key[PATH_MAX];
    char acl[PATH_MAX];
    char conf[PATH_MAX];
    char pid[PATH_MAX];
} paths_t;

static trellis_err_t join(char out[static PATH_MAX], const char *dir, const char *name,
                          trellis_reason_t *reason)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "path of %s is too long", name);
    return TRELLIS_OK;
}

/* realpath of an existing file, with a reason naming the option. */
static trellis_err_t absolute(const char *what, const char *path, char out[static PATH_MAX],
                              trellis_reason_t *reason)
{
    struct stat st;
    if (path == NULL || path[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "%s is required", what);
    if (realpath(path, out) == NULL || stat(out, &st) != 0)
        return trellis_reason_set(reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO,
                                  "%s %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "%s %s is not a file", what,
                                  path);
    /* Mosquitto's config syntax has no quoting: a path with a space or newline would be cut. */
    for (const char *p = out; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "%s path contains a space or control character", what);
    }
    return TRELLIS_OK;
}

/* Every certificate of the device CA file must be a CA: a leaf there would let whoever holds
 * its key sign "device" certificates. */
static trellis_err_t load_ca_file(const char *path, X509 **certs, size_t *n,
                                  trellis_reason_t *reason)
{
    trellis_err_t err = trellis_x509_load_chain_pem(path, certs, TRELLIS_X509_CHAIN_MAX, n);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "device CA file %s: %s", path,
                                  trellis_err_message(err));
    for (size_t i = 0; i < *n; i++) {
        if (X509_check_ca(certs[i]) < 1)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "device CA file %s: certificate %zu is not a CA", path,
                                      i + 1);
    }
    return TRELLIS_OK;
}

/* Mosquitto reads crlfile as PEM (X509_load_crl_file with X509_FILETYPE_PEM) and, with it set,
 * checks every client leaf against a CRL of its issuer: a CRL from another CA, or in DER, would
 * lock every device out at the first connection rather than at start. */
static trellis_err_t check_crl(const char *path, X509 *const *cas, size_t n_cas,
                               trellis_reason_t *reason)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    X509_CRL *crl = NULL;
    trellis_err_t err = trellis_file_read_all(path, CRL_FILE_MAX, &buf, &len);

    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "CRL %s: %s", path, trellis_err_message(err));
        goto out;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
    if (crl == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "CRL %s is not a PEM X509 CRL (mosquitto reads only PEM)", path);
        goto out;
    }
    err = trellis_reason_set(reason, TRELLIS_ERR_BAD_SIGNATURE,
                             "CRL %s is not signed by a certificate of the device CA file", path);
    for (size_t i = 0; i < n_cas; i++) {
        EVP_PKEY *pub = X509_get0_pubkey(cas[i]);
        if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(cas[i])) == 0 &&
            pub != NULL && X509_CRL_verify(crl, pub) == 1) {
            trellis_reason_clear(reason);
            err = TRELLIS_OK;
            break;
        }
    }
out:
    ERR_clear_error();
    X509_CRL_free(crl);
    BIO_free(bio);
    trellis_file_buffer_free(buf, len);
    return err;
}

static trellis_err_t check_server_pair(const char *cert_path, const char *key_path,
                                       trellis_reason_t *reason)
{
    X509 *certs[TRELLIS_X509_CHAIN_MAX] = {0};
    size_t n = 0;
    EVP_PKEY *key = NULL;
    trellis_err_t err = trellis_x509_load_chain_pem(cert_path, certs, TRELLIS_X509_CHAIN_MAX, &n);

    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "--cert %s: %s", cert_path, trellis_err_message(err));
        goto out;
    }
    err = trellis_p256_load_private_pem(key_path, &key);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "--key %s: %s", key_path, trellis_err_message(err));
        goto out;
    }
    if (X509_check_private_key(certs[0], key) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "--key does not match the first certificate of --cert");
        goto out;
    }
    err = TRELLIS_OK;
out:
    ERR_clear_error();
    EVP_PKEY_free(key);
    for (size_t i = 0; i < n; i++)
        X509_free(certs[i]);
    return err;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The service CA of this broker directory: loaded if made before, made otherwise. */
static trellis_err_t service_ca(const paths_t *p, X509 **ca, EVP_PKEY **ca_key,
                                trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    *ca = NULL;
    *ca_key = NULL;

    if (file_exists(p->service_ca) && file_exists(p->service_ca_key)) {
        err = trellis_x509_load_pem(p->service_ca, ca);
        if (err == TRELLIS_OK)
            err = trellis_p256_load_private_pem(p->service_ca_key, ca_key);
        if (err == TRELLIS_OK && X509_check_private_key(*ca, *ca_key) != 1)
            err = TRELLIS_ERR_BAD_KEY;
        if (err != TRELLIS_OK)
            err = trellis_reason_set(reason, err, "existing %s/%s is unusable: %s", p->dir,
                                     TRELLIS_BROKER_SERVICE_CA, trellis_err_message(err));
        goto out;
    }
    const trellis_x509_profile_t profile = {
        .kind = TRELLIS_X509_CA,
        .common_name = "Trellis broker service CA",
        .organization = "Trellis",
        .days = SERVICE_CA_DAYS,
        .path_len = 0,
    };
    err = trellis_p256_generate(ca_key);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(&profile, *ca_key, NULL, *ca_key, ca, reason);
    if (err == TRELLIS_OK)
        err = trellis_p256_save_private_pem(*ca_key, p->service_ca_key);
    if (err == TRELLIS_OK)
        err = trellis_x509_save_chain_pem(p->service_ca, ca, 1);
    if (err != TRELLIS_OK)
        err = trellis_reason_set(reason, err, "cannot make the service CA: %s",
                                 trellis_err_message(err));
out:
    if (err != TRELLIS_OK) {
        X509_free(*ca);
        EVP_PKEY_free(*ca_key);
        *ca = NULL;
        *ca_key = NULL;
    }
    ERR_clear_error();
    return err;
}

/* Keeps an existing certificate that the service CA signed and that names cn; otherwise issues
 * a fresh key and certificate. */
static trellis_err_t service_identity(const trellis_x509_profile_t *profile, X509 *ca,
                                      EVP_PKEY *ca_key, const char *cert_path, const char *key_path,
                                      trellis_reason_t *reason)
{
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char cn[TRELLIS_X509_NAME_MAX + 1];
    size_t cn_len = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (file_exists(cert_path) && file_exists(key_path) &&
        trellis_x509_load_pem(cert_path, &cert) == TRELLIS_OK &&
        trellis_p256_load_private_pem(key_path, &key) == TRELLIS_OK &&
        X509_check_private_key(cert, key) == 1 && X509_verify(cert, X509_get0_pubkey(ca)) == 1 &&
        trellis_x509_subject_cn(cert, cn, sizeof(cn), &cn_len) == TRELLIS_OK &&
        strcmp(cn, profile->common_name) == 0) {
        err = TRELLIS_OK;
        goto out;
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    cert = NULL;
    key = NULL;
    err = trellis_p256_generate(&key);
    if (err == TRELLIS_OK)
        err = trellis_x509_issue(profile, key, ca, ca_key, &cert, reason);
    if (err == TRELLIS_OK)
        err = trellis_p256_save_private_pem(key, key_path);
    if (err == TRELLIS_OK) {
        X509 *chain[1] = {cert};
        err = trellis_x509_save_chain_pem(cert_path, chain, 1);
    }
    if (err != TRELLIS_OK)
        err = trellis_reason_set(reason, err, "cannot issue %s: %s", profile->common_name,
                                 trellis_err_message(err));
out:
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    return err;
}

static trellis_err_t run_user(const char *given, char out[static USER_NAME_MAX],
                              trellis_reason_t *reason)
{
    const char *name = given;
    if (name == NULL) {
        struct passwd *pw = getpwuid(geteuid());
        if (pw == NULL)
            return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                      "the effective user has no name; pass --user");
        name = pw->pw_name;
    }
    size_t len = strlen(name);
    if (len == 0 || len >= USER_NAME_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "bad user name");
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "bad user name");
    }
    memcpy(out, name, len + 1);
    return TRELLIS_OK;
}

/* CN of the ingest identity, also its user name in the ACL: not a device id (so no device can
 * ever hold it) and nothing Mosquitto's ACL syntax would read differently. */
static trellis_err_t check_ingest_name(const char *name, trellis_reason_t *reason)
{
    size_t len = strlen(name);
    if (len == 0 || len >= TRELLIS_INGEST_NAME_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--ingest-name must have 1..63 characters");
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "--ingest-name may hold only a-z, 0-9, '-' and '_'");
    }
    if (trellis_telemetry_device_id_check(name) == TRELLIS_OK)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--ingest-name must not look like a device id");
    return TRELLIS_OK;
}

static trellis_err_t write_text(const char *path, const char *text, trellis_reason_t *reason)
{
    trellis_err_t err = trellis_file_write_atomic(path, text, strlen(text), TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot write %s: %s", path, strerror(errno));
    return TRELLIS_OK;
}

static trellis_err_t write_acl(const paths_t *p, const char *ingest, trellis_reason_t *reason)
{
    char text[CONF_TEXT_MAX];
    /* Mosquitto 2.0 ACL file (mosquitto.conf(5), acl_file). A device's user name is its
     * certificate CN (use_identity_as_username), which the registrar sets to the attested device
     * id: %u below is that id. In 2.0.11 the ACL file does not gate SUBSCRIBE at all; it gates
     * each delivery with a read check on the message's own topic, also for shared
     * subscriptions ($share/<group>/ is not part of what is checked). So the ingest needs read on
     * devices/+/telemetry, and a "$share/..." line would match nothing. */
    int n = snprintf(text, sizeof(text),
                     "# Generated by `trellis broker config`; see docs/broker.md.\n"
                     "# Devices: user name = certificate CN = device id.\n"
                     "pattern write devices/%%u/telemetry\n"
                     "pattern read devices/%%u/acks\n"
                     "\n"
                     "# The ingest service (its certificate comes from the service CA and is\n"
                     "# accepted only on the service listener). Mosquitto checks reads against\n"
                     "# each message's topic, also for its $share/<group>/ subscription.\n"
                     "user %s\n"
                     "topic read devices/+/telemetry\n"
                     "topic write devices/+/acks\n",
                     ingest);
    if (n < 0 || (size_t)n >= sizeof(text))
        return TRELLIS_ERR_INTERNAL;
    return write_text(p->acl, text, reason);
}

static trellis_err_t write_conf(const paths_t *p, const trellis_broker_conf_t *c, const char *user,
                                trellis_reason_t *reason)
{
    char text[CONF_TEXT_MAX];
    const char *bind = c->bind != NULL ? c->bind : "127.0.0.1";
    int service_port = c->service_port != 0 ? c->service_port : c->port + 1;
    long long queued =
        c->max_queued_messages > 0 ? c->max_queued_messages : TRELLIS_BROKER_DEFAULT_MAX_QUEUED;
    long long queued_bytes =
        c->max_queued_bytes > 0 ? c->max_queued_bytes : TRELLIS_BROKER_DEFAULT_MAX_QUEUED_BYTES;
    int inflight = c->max_inflight_messages > 0 ? c->max_inflight_messages
                                                : TRELLIS_BROKER_DEFAULT_MAX_INFLIGHT;
    int packet = c->max_packet_size > 0 ? c->max_packet_size : TRELLIS_BROKER_DEFAULT_MAX_PACKET;

    int n = snprintf(
        text, sizeof(text),
        "# Generated by `trellis broker config` for Mosquitto 2.0; docs/broker.md explains each\n"
        "# setting. Start: mosquitto -c %s\n"
        "# New CRL: `trellis broker reload --dir %s` (SIGHUP re-reads crlfile).\n"
        "\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        "acl_file %s\n"
        "\n"
        "# Mosquitto drops privileges to `user` when started as root; it must be able to read\n"
        "# the 0600 keys below.\n"
        "user %s\n"
        "pid_file %s\n"
        "\n"
        "# Durability is end to end (a reading leaves the device spool only on the ingest's\n"
        "# ack), so the broker keeps nothing on disk: persistence would only add periodic\n"
        "# full-database writes and replay stale queues after a crash.\n"
        "persistence false\n"
        "\n"
        "# Every mutual-TLS connect and every small PUBLISH would otherwise wait for a\n"
        "# delayed ACK (design.md section 7).\n"
        "set_tcp_nodelay true\n"
        "\n"
        "# Queue bounds per client. The default of 1000 silently drops QoS 1 messages for a\n"
        "# slow subscriber after they were PUBACKed; this holds several seconds of the\n"
        "# ingest's full rate (an ingest restart) within a fixed memory bound. Beyond it the\n"
        "# broker drops, the device gets no ack and sends again.\n"
        "max_queued_messages %lld\n"
        "max_queued_bytes %lld\n"
        "# QoS 1 messages in flight towards one client: the ingest takes readings in\n"
        "# batches, so a deep window keeps it busy (default 20).\n"
        "max_inflight_messages %d\n"
        "# A reading is under 300 bytes with its topic: refuse anything far larger.\n"
        "max_packet_size %d\n"
        "# A session the ingest left behind (clean_session false) goes after a day.\n"
        "persistent_client_expiration 1d\n"
        "\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
        "log_type notice\n"
        "log_type information\n"
        "connection_messages true\n"
        "log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n"
        "\n"
        "# Devices: mutual TLS with a certificate from the registrar's device CA, not revoked.\n"
        "listener %d %s\n"
        "protocol mqtt\n"
        "cafile %s\n"
        "crlfile %s\n"
        "certfile %s\n"
        "keyfile %s\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "tls_version tlsv1.2\n"
        "\n"
        "# Services (the ingest): mutual TLS with a certificate from the service CA only, so\n"
        "# no device certificate can ever act as the ingest.\n"
        "listener %d %s\n"
        "protocol mqtt\n"
        "cafile %s\n"
        "certfile %s\n"
        "keyfile %s\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "tls_version tlsv1.2\n",
        p->conf, p->dir, p->acl, user, p->pid, queued, queued_bytes, inflight, packet, c->port,
        bind, p->device_ca, p->crl, p->cert, p->key, service_port, bind, p->service_ca,
        p->service_cert, p->service_key);
    if (n < 0 || (size_t)n >= sizeof(text))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "configuration too long");
    return write_text(p->conf, text, reason);
}

static trellis_err_t check_conf(const trellis_broker_conf_t *c, trellis_reason_t *reason)
{
    if (c == NULL || c->out_dir == NULL || c->out_dir[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--out is required");
    if (c->port < 1 || c->port > 65535)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--port must be 1..65535");
    int service_port = c->service_port != 0 ? c->service_port : c->port + 1;
    if (service_port < 1 || service_port > 65535 || service_port == c->port)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--service-port must be 1..65535 and differ from --port");
    if ((c->cert_file == NULL) != (c->key_file == NULL))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--cert and --key go together");
    if (c->max_queued_messages < 0 || c->max_queued_bytes < 0 || c->max_inflight_messages < 0 ||
        c->max_packet_size < 0 || (c->max_packet_size > 0 && c->max_packet_size < 512))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "a queue limit is negative "
                                  "or the packet size below 512");
    return TRELLIS_OK;
}

trellis_err_t trellis_broker_config_write(const trellis_broker_conf_t *conf,
                                          trellis_reason_t *reason)
{
    paths_t p;
    X509 *cas[TRELLIS_X509_CHAIN_MAX] = {0};
    size_t n_cas = 0;
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    char user[USER_NAME_MAX];
    const char *ingest = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    memset(&p, 0, sizeof(p));
    err = check_conf(conf, reason);
    if (err != TRELLIS_OK)
        goto out;
    ingest = conf->ingest_name != NULL ? conf->ingest_name : "ingest";
    err = check_ingest_name(ingest, reason);
    if (err == TRELLIS_OK)
        err = run_user(conf->run_user, user, reason);
    if (err == TRELLIS_OK)
        err = absolute("--ca", conf->device_ca_file, p.device_ca, reason);
    if (err == TRELLIS_OK)
        err = absolute("--crl", conf->crl_file, p.crl, reason);
    if (err == TRELLIS_OK)
        err = load_ca_file(p.device_ca, cas, &n_cas, reason);
    if (err == TRELLIS_OK)
        err = check_crl(p.crl, cas, n_cas, reason);
    if (err != TRELLIS_OK)
        goto out;

    err = trellis_mkdir_p(conf->out_dir, 0755);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot create %s: %s", conf->out_dir,
                                 trellis_err_message(err));
        goto out;
    }
    if (realpath(conf->out_dir, p.dir) == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "--out %s: %s", conf->out_dir,
                                 strerror(errno));
        goto out;
    }
    err = join(p.service_ca, p.dir, TRELLIS_BROKER_SERVICE_CA, reason);
    if (err == TRELLIS_OK)
        err = join(p.service_ca_key, p.dir, TRELLIS_BROKER_SERVICE_CA_KEY, reason);
    if (err == TRELLIS_OK)
        err = join(p.service_cert, p.dir, TRELLIS_BROKER_SERVER_CERT, reason);
    if (err == TRELLIS_OK)
        err = join(p.service_key, p.dir, TRELLIS_BROKER_SERVER_KEY, reason);
    if (err == TRELLIS_OK)
        err = join(p.ingest_cert, p.dir, TRELLIS_BROKER_INGEST_CERT, reason);
    if (err == TRELLIS_OK)
        err = join(p.ingest_key, p.dir, TRELLIS_BROKER_INGEST_KEY, reason);
    if (err == TRELLIS_OK)
        err = join(p.acl, p.dir, TRELLIS_BROKER_ACL_FILE, reason);
    if (err == TRELLIS_OK)
        err = join(p.conf, p.dir, TRELLIS_BROKER_CONF_FILE, reason);
    if (err == TRELLIS_OK)
        err = join(p.pid, p.dir, TRELLIS_BROKER_PID_FILE, reason);
    if (err != TRELLIS_OK)
        goto out;

    err = service_ca(&p, &ca, &ca_key, reason);
    if (err != TRELLIS_OK)
        goto out;
    {
        static const char *const ips[] = {"127.0.0.1"};
        static const char *const dns[] = {"localhost"};
        const trellis_x509_profile_t server = {
            .kind = TRELLIS_X509_SERVER,
            .common_name = "trellis-broker",
            .organization = "Trellis",
            .days = SERVICE_DAYS,
            .path_len = -1,
            .dns_names = dns,
            .n_dns = 1,
            .ip_addrs = ips,
            .n_ip = 1,
        };
        const trellis_x509_profile_t client = {
            .kind = TRELLIS_X509_CLIENT,
            .common_name = ingest,
            .organization = "Trellis",
            .days = SERVICE_DAYS,
            .path_len = -1,
        };
        err = service_identity(&server, ca, ca_key, p.service_cert, p.service_key, reason);
        if (err == TRELLIS_OK)
            err = service_identity(&client, ca, ca_key, p.ingest_cert, p.ingest_key, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    if (conf->cert_file != NULL) {
        err = absolute("--cert", conf->cert_file, p.cert, reason);
        if (err == TRELLIS_OK)
            err = absolute("--key", conf->key_file, p.key, reason);
        if (err == TRELLIS_OK)
            err = check_server_pair(p.cert, p.key, reason);
        if (err != TRELLIS_OK)
            goto out;
    } else {
        memcpy(p.cert, p.service_cert, sizeof(p.cert));
        memcpy(p.key, p.service_key, sizeof(p.key));
    }
    err = write_acl(&p, ingest, reason);
    if (err == TRELLIS_OK)
        err = write_conf(&p, conf, user, reason);
out:
    for (size_t i = 0; i < n_cas; i++)
        X509_free(cas[i]);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return err;
}
