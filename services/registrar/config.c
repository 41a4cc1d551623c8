/*
 * The registrar's option table (style.md §11): one row per option drives parsing of the file,
 * the environment and the flags, `trellis registrar serve --help` and the registrar.conf that
 * `trellis registrar init` writes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "registrar_internal.h"
#include "trellis/registrar.h"

#define CFG trellis_registrar_config_t

static const trellis_conf_option_t OPTIONS[] = {
    TRELLIS_CONF_ROW_STRING("dir", CFG, dir, "", 0,
                            "state directory made by `trellis registrar init` (CA, registry)"),
    TRELLIS_CONF_ROW_STRING("oem", CFG, oem, "", 0,
                            "the OEM this registrar enrolls devices for: O of every device "
                            "certificate, and the tenant the verifier's verdicts must name"),
    TRELLIS_CONF_ROW_STRING("listen", CFG, listen, "127.0.0.1", 0,
                            "address to listen on; 0.0.0.0 or :: to serve devices elsewhere"),
    TRELLIS_CONF_ROW_INT("port", CFG, port, "8443", 0, 65535,
                         "TCP port of the HTTPS API; 0 picks a free one"),
    TRELLIS_CONF_ROW_INT("workers", CFG, workers, "0", 0, 256,
                         "event-loop threads; 0 means one per online core"),
    TRELLIS_CONF_ROW_DURATION("cert-validity", CFG, cert_validity_ms, "90d", 60000, 3153600000000LL,
                              "lifetime of a device certificate (notBefore is backdated 60 s "
                              "for clock skew)"),
    TRELLIS_CONF_ROW_DURATION("challenge-ttl", CFG, challenge_ttl_ms, "5m", 1000, 3600000,
                              "how long a challenge may be used; keep it short, a consumed "
                              "challenge is remembered until it expires"),
    TRELLIS_CONF_ROW_STRING("reset-policy", CFG, reset_policy, "replace", 0,
                            "second first-time enrollment of an enrolled device (factory "
                            "reset): replace (revoke the old certificate) or deny"),
    TRELLIS_CONF_ROW_INT("rate-limit", CFG, rate_limit, "20", 0, 1000000,
                         "requests per second allowed per client address (challenge, enroll, "
                         "reenroll); 0 switches the limit off"),
    TRELLIS_CONF_ROW_INT("rate-burst", CFG, rate_burst, "40", 1, 1000000,
                         "requests a client may send at once before the rate limit applies"),
    TRELLIS_CONF_ROW_INT("max-connections", CFG, max_connections, "4096", 1, 1000000,
                         "open connections at most; more are closed at once (devices retry)"),
    TRELLIS_CONF_ROW_DURATION("request-timeout", CFG, request_timeout_ms, "10s", 100, 3600000,
                              "TLS handshake plus a whole request must arrive within this; "
                              "slow clients are cut off"),
    TRELLIS_CONF_ROW_DURATION("write-timeout", CFG, write_timeout_ms, "10s", 100, 3600000,
                              "a response that makes no progress this long closes the connection"),
    TRELLIS_CONF_ROW_STRING("verifier-url", CFG, verifier_url, "", 0,
                            "https://host:port of the verifier; set by `trellis registrar join`"),
    TRELLIS_CONF_ROW_DURATION("verifier-timeout", CFG, verifier_timeout_ms, "5s", 100, 600000,
                              "a verify call (connect, TLS, answer) that takes longer fails "
                              "with unavailable"),
    TRELLIS_CONF_ROW_INT("verifier-max-conns", CFG, verifier_max_conns, "64", 1, 4096,
                         "connections to the verifier per worker; a call beyond them fails "
                         "with unavailable instead of queueing"),
    TRELLIS_CONF_ROW_BOOL("durable", CFG, durable, "true",
                          "fsync enrollment records, revocations and CRLs before answering; off "
                          "survives a crash of the process but not of the machine"),
    TRELLIS_CONF_ROW_DURATION("busy-timeout", CFG, busy_timeout_ms, "10s", 0, 600000,
                              "how long a write waits for the registry's write lock (held "
                              "by another registrar or the CLI)"),
    TRELLIS_CONF_ROW_INT("writer-queue", CFG, writer_queue, "16384", 16, 1000000,
                         "registry operations waiting for the writer; beyond it requests are "
                         "answered unavailable with Retry-After"),
    TRELLIS_CONF_ROW_INT("writer-batch", CFG, writer_batch, "256", 1, TRELLIS_RSTORE_BATCH_MAX,
                         "operations committed together at most (group commit)"),
    TRELLIS_CONF_ROW_DURATION("writer-linger", CFG, writer_linger_ms, "1ms", 0, 100,
                              "under load, how long the writer waits for more operations before "
                              "a commit, so that one fsync carries more enrollments; 0: never"),
    TRELLIS_CONF_ROW_DURATION("crl-validity", CFG, crl_validity_ms, "7d", 60000, 31536000000LL,
                              "nextUpdate of each CRL; a new one is published when half of it "
                              "has passed, and after every revocation"),
    TRELLIS_CONF_ROW_INT("retry-after", CFG, retry_after_s, "1", 1, 3600,
                         "seconds a device is told to wait when the registrar or the verifier "
                         "is unavailable"),
    TRELLIS_CONF_ROW_STRING("log-level", CFG, log_level, "info", 0,
                            "debug, info, warn, error or off"),
    TRELLIS_CONF_ROW_STRING("registry", CFG, registry, "", 0,
                            "SQLite registry; empty means DIR/registry.db"),
    TRELLIS_CONF_ROW_STRING("root-cert", CFG, root_cert, "", 0,
                            "root CA certificate; empty means DIR/trust.pem"),
    TRELLIS_CONF_ROW_STRING("ca-key", CFG, ca_key, "", 0,
                            "device CA private key; empty means DIR/ca.key"),
    TRELLIS_CONF_ROW_STRING("ca-cert", CFG, ca_cert, "", 0,
                            "device CA certificate; empty means DIR/ca.pem"),
    TRELLIS_CONF_ROW_STRING("client-ca", CFG, client_ca, "", 0,
                            "trust anchors for device certificates presented to /v1/reenroll; "
                            "empty means DIR/ca-chain.pem"),
    TRELLIS_CONF_ROW_STRING("tls-cert", CFG, tls_cert, "", 0,
                            "TLS server certificate chain; empty means DIR/server.pem"),
    TRELLIS_CONF_ROW_STRING("tls-key", CFG, tls_key, "", 0,
                            "TLS server key; empty means DIR/server.key"),
    TRELLIS_CONF_ROW_STRING("challenge-secret", CFG, challenge_secret, "", 0,
                            "file with the challenge MAC key (64 hex digits), the same for "
                            "every registrar sharing a registry; empty means DIR/challenge.key"),
    TRELLIS_CONF_ROW_STRING("crl-file", CFG, crl_file, "", 0,
                            "where the current CRL is written as PEM for the broker; empty "
                            "means DIR/crl.pem"),
    TRELLIS_CONF_ROW_STRING("verifier-ca", CFG, verifier_ca, "", 0,
                            "trust anchor for the verifier's TLS certificate; empty means "
                            "DIR/verifier/ca.pem"),
    TRELLIS_CONF_ROW_STRING("verifier-cert", CFG, verifier_cert, "", 0,
                            "this OEM's client certificate at the verifier; empty means "
                            "DIR/verifier/client.pem"),
    TRELLIS_CONF_ROW_STRING("verifier-key", CFG, verifier_key, "", 0,
                            "its private key; empty means DIR/verifier/client.key"),
    TRELLIS_CONF_ROW_STRING("verdict-key", CFG, verdict_key, "", 0,
                            "the verifier's pinned verdict public key; empty means "
                            "DIR/verifier/verdict.pub.pem"),
};

static const trellis_conf_spec_t SPEC = {
    .program = "trellis registrar",
    .summary = "the OEM's enrollment service and device CA",
    .args = "COMMAND [ARGS]",
    .section = "registrar",
    .env_prefix = "TRELLIS_REGISTRAR",
    .default_path = NULL,
    .cfg_size = sizeof(CFG),
    .options = OPTIONS,
    .n_options = sizeof(OPTIONS) / sizeof(OPTIONS[0]),
};

const trellis_conf_spec_t *trellis_registrar_conf_spec(void)
{
    return &SPEC;
}

/* A path option's default under the state directory. */
static trellis_err_t derive(char *field, size_t size, const char *dir, const char *file,
                            trellis_reason_t *reason)
{
    return trellis_conf_path_in_dir(field, size, dir, file, "TRELLIS_REGISTRAR_DIR", reason);
}

trellis_reset_policy_t trellis_registrar_reset_policy(const trellis_registrar_config_t *cfg)
{
    return cfg != NULL && strcmp(cfg->reset_policy, "deny") == 0 ? TRELLIS_RESET_DENY
                                                                 : TRELLIS_RESET_REPLACE;
}

trellis_err_t trellis_registrar_config_resolve(trellis_registrar_config_t *cfg,
                                               trellis_reason_t *reason)
{
    if (cfg == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (cfg->oem[0] != '\0' && !tr__reg_oem_name_valid(cfg->oem))
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "oem: 1..64 of letters, digits, '.', '_' and '-', starting "
                                  "with a letter or digit");
    if (strcmp(cfg->reset_policy, "replace") != 0 && strcmp(cfg->reset_policy, "deny") != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "reset-policy: use replace or deny");
    struct {
        char *field;
        size_t size;
        const char *file;
    } paths[] = {
        {cfg->registry, sizeof(cfg->registry), TRELLIS_REGISTRAR_REGISTRY_FILE},
        {cfg->root_cert, sizeof(cfg->root_cert), TRELLIS_REGISTRAR_TRUST_FILE},
        {cfg->ca_key, sizeof(cfg->ca_key), TRELLIS_REGISTRAR_CA_KEY},
        {cfg->ca_cert, sizeof(cfg->ca_cert), TRELLIS_REGISTRAR_CA_CERT},
        {cfg->client_ca, sizeof(cfg->client_ca), TRELLIS_REGISTRAR_CA_CHAIN},
        {cfg->tls_cert, sizeof(cfg->tls_cert), TRELLIS_REGISTRAR_TLS_CERT},
        {cfg->tls_key, sizeof(cfg->tls_key), TRELLIS_REGISTRAR_TLS_KEY},
        {cfg->challenge_secret, sizeof(cfg->challenge_secret), TRELLIS_REGISTRAR_SECRET_FILE},
        {cfg->crl_file, sizeof(cfg->crl_file), TRELLIS_REGISTRAR_CRL_FILE},
        {cfg->verifier_ca, sizeof(cfg->verifier_ca), TRELLIS_REGISTRAR_VERIFIER_CA},
        {cfg->verifier_cert, sizeof(cfg->verifier_cert), TRELLIS_REGISTRAR_VERIFIER_CERT},
        {cfg->verifier_key, sizeof(cfg->verifier_key), TRELLIS_REGISTRAR_VERIFIER_KEY},
        {cfg->verdict_key, sizeof(cfg->verdict_key), TRELLIS_REGISTRAR_VERDICT_KEY},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        trellis_err_t err = derive(paths[i].field, paths[i].size, cfg->dir, paths[i].file, reason);
        if (err != TRELLIS_OK)
            return err;
    }
    return TRELLIS_OK;
}

/* Finds the value of --dir in argv without applying anything (--dir X or --dir=X). */
static const char *dir_flag(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--dir=", 6) == 0)
            return argv[i] + 6;
    }
    return NULL;
}

trellis_err_t trellis_registrar_config_load(trellis_registrar_config_t *cfg, int *argc, char **argv,
                                            trellis_conf_cli_t *cli, trellis_reason_t *reason)
{
    char path[TRELLIS_REGISTRAR_PATH_MAX + 32];
    struct stat st;

    if (cfg == NULL || argc == NULL || argv == NULL || cli == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    /* The state directory decides which file to read, so find it before loading: the flag,
     * else the environment. An explicit --config or $TRELLIS_REGISTRAR_CONFIG wins, and
     * trellis_conf_load reads those itself. */
    const char *dir = dir_flag(*argc, argv);
    if (dir == NULL)
        dir = getenv("TRELLIS_REGISTRAR_DIR");
    int explicit_config = getenv("TRELLIS_REGISTRAR_CONFIG") != NULL;
    for (int i = 1; i < *argc && !explicit_config; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        explicit_config = strcmp(argv[i], "--config") == 0 || strncmp(argv[i], "--config=", 9) == 0;
    }
    trellis_conf_spec_t spec = SPEC;
    if (!explicit_config && dir != NULL && dir[0] != '\0') {
        int n = snprintf(path, sizeof(path), "%s/%s", dir, TRELLIS_REGISTRAR_CONF_FILE);
        if (n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0)
            spec.default_path = path;
    }
    trellis_err_t err = trellis_conf_load(&spec, cfg, argc, argv, cli, reason);
    if (err != TRELLIS_OK || cli->help)
        return err;
    return trellis_registrar_config_resolve(cfg, reason);
}

trellis_err_t trellis_registrar_open_store(const trellis_registrar_config_t *cfg,
                                           trellis_rstore_t **out, trellis_reason_t *reason)
{
    if (cfg == NULL || out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_rstore_sqlite_opts_t o = {
        .durable = cfg->durable ? 1 : 0,
        .busy_timeout_ms = (int)cfg->busy_timeout_ms,
        .create = 0,
    };
    trellis_err_t err = trellis_rstore_open_sqlite(cfg->registry, &o, out);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "registry %.120s does not exist (run `trellis registrar init`)",
                                  cfg->registry);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "registry %.120s cannot be opened", cfg->registry);
    return TRELLIS_OK;
}
