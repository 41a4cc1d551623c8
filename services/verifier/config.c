/*
 * The verifier's option table (style.md §11): one row per option drives parsing of the file,
 * the environment and the flags, `trellis verifier serve --help` and the verifier.conf that
 * `trellis verifier init` writes.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "trellis/http_server.h"
#include "trellis/verifier.h"

#define CFG trellis_verifier_config_t

static const trellis_conf_option_t OPTIONS[] = {
    TRELLIS_CONF_ROW_STRING("dir", CFG, dir, "", 0,
                            "state directory made by `trellis verifier init` (keys, registry)"),
    TRELLIS_CONF_ROW_STRING("listen", CFG, listen, "127.0.0.1", 0,
                            "address to listen on; loopback unless clients come from elsewhere"),
    TRELLIS_CONF_ROW_INT("port", CFG, port, "9443", 0, 65535,
                         "TCP port of the HTTPS API; 0 picks a free one"),
    TRELLIS_CONF_ROW_INT("workers", CFG, workers, "0", 0, 256,
                         "event-loop threads; 0 means one per online core"),
    TRELLIS_CONF_ROW_STRING("verifier-id", CFG, verifier_id, "trellis-verifier", 0,
                            "the iss of every verdict; registrars may check it"),
    TRELLIS_CONF_ROW_DURATION("verdict-ttl", CFG, verdict_ttl_ms, "5m", 1000, 3600000,
                              "how long a verdict stays valid after it is issued"),
    TRELLIS_CONF_ROW_INT("max-connections", CFG, max_connections, "1024", 1, 1000000,
                         "open connections at most; more are closed at once"),
    TRELLIS_CONF_ROW_DURATION("request-timeout", CFG, request_timeout_ms, "10s", 100, 3600000,
                              "TLS handshake plus a whole request must arrive within this "
                              "(also the keep-alive idle time); slow clients are cut off"),
    TRELLIS_CONF_ROW_DURATION("write-timeout", CFG, write_timeout_ms, "10s", 100, 3600000,
                              "a response that makes no progress this long closes the connection"),
    TRELLIS_CONF_ROW_SIZE("manifest-max-body", CFG, manifest_max_body, "16M", 4096,
                          TRELLIS_HTTP_MAX_BODY_LIMIT,
                          "largest request body, set by manifest uploads (about 190 bytes a "
                          "device); other APIs refuse more than 16 KiB"),
    TRELLIS_CONF_ROW_INT("manifest-max-devices", CFG, manifest_max_devices, "10000000", 1, 10000000,
                         "largest device count a manifest header may announce"),
    TRELLIS_CONF_ROW_BOOL("durable", CFG, durable, "true",
                          "fsync every registry commit (synchronous=FULL); off survives a "
                          "crash of the process but not of the machine"),
    TRELLIS_CONF_ROW_DURATION("busy-timeout", CFG, busy_timeout_ms, "30s", 0, 600000,
                              "how long a writer waits for the registry's write lock (a large "
                              "import holds it while it merges)"),
    TRELLIS_CONF_ROW_INT("audit-queue", CFG, audit_queue, "65536", 16, 1000000,
                         "verdicts waiting for their audit entry to commit; beyond it the "
                         "service answers 503"),
    TRELLIS_CONF_ROW_DURATION("audit-linger", CFG, audit_linger_ms, "1ms", 0, 100,
                              "when the last audit commit carried several verdicts, wait this "
                              "long for more before the next one, so one fsync serves more "
                              "verdicts; a lone verdict never waits"),
    TRELLIS_CONF_ROW_BOOL("allow-anonymous", CFG, allow_anonymous, "false",
                          "accept TLS clients without a certificate (for /healthz, /metrics and "
                          "/v1/verdict-key); they may then send bodies up to manifest-max-body"),
    TRELLIS_CONF_ROW_STRING("log-level", CFG, log_level, "info", 0,
                            "debug, info, warn, error or off"),
    TRELLIS_CONF_ROW_STRING("registry", CFG, registry, "", 0,
                            "SQLite registry; empty means DIR/registry.db"),
    TRELLIS_CONF_ROW_STRING("verdict-key", CFG, verdict_key, "", 0,
                            "P-256 key that signs verdicts; empty means DIR/verdict.key"),
    TRELLIS_CONF_ROW_STRING("tls-cert", CFG, tls_cert, "", 0,
                            "server certificate chain (PEM); empty means DIR/server.pem"),
    TRELLIS_CONF_ROW_STRING("tls-key", CFG, tls_key, "", 0,
                            "server private key (PEM); empty means DIR/server.key"),
    TRELLIS_CONF_ROW_STRING("client-ca", CFG, client_ca, "", 0,
                            "CA that issues OEM and factory client certificates; empty means "
                            "DIR/ca.pem"),
};

static const trellis_conf_spec_t SPEC = {
    .program = "trellis verifier",
    .summary = "the attestation service: device registry, manifest import, signed verdicts",
    .args = "COMMAND [ARGS]",
    .section = "verifier",
    .env_prefix = "TRELLIS_VERIFIER",
    .default_path = NULL,
    .cfg_size = sizeof(CFG),
    .options = OPTIONS,
    .n_options = sizeof(OPTIONS) / sizeof(OPTIONS[0]),
};

const trellis_conf_spec_t *trellis_verifier_conf_spec(void)
{
    return &SPEC;
}

/* A path option's default under the state directory. */
static trellis_err_t derive(char *field, size_t size, const char *dir, const char *file,
                            trellis_reason_t *reason)
{
    return trellis_conf_path_in_dir(field, size, dir, file, "TRELLIS_VERIFIER_DIR", reason);
}

trellis_err_t trellis_verifier_config_resolve(trellis_verifier_config_t *cfg,
                                              trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_OK;
    if (cfg == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!trellis_vstore_name_valid(cfg->verifier_id))
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "verifier-id: use letters, digits, '.', '_' and '-'");
    if ((err = derive(cfg->registry, sizeof(cfg->registry), cfg->dir,
                      TRELLIS_VERIFIER_REGISTRY_FILE, reason)) != TRELLIS_OK ||
        (err = derive(cfg->verdict_key, sizeof(cfg->verdict_key), cfg->dir,
                      TRELLIS_VERIFIER_VERDICT_KEY, reason)) != TRELLIS_OK ||
        (err = derive(cfg->tls_cert, sizeof(cfg->tls_cert), cfg->dir, TRELLIS_VERIFIER_TLS_CERT,
                      reason)) != TRELLIS_OK ||
        (err = derive(cfg->tls_key, sizeof(cfg->tls_key), cfg->dir, TRELLIS_VERIFIER_TLS_KEY,
                      reason)) != TRELLIS_OK ||
        (err = derive(cfg->client_ca, sizeof(cfg->client_ca), cfg->dir, TRELLIS_VERIFIER_CA_CERT,
                      reason)) != TRELLIS_OK)
        return err;
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

trellis_err_t trellis_verifier_config_load(trellis_verifier_config_t *cfg, int *argc, char **argv,
                                           trellis_conf_cli_t *cli, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char path[TRELLIS_VERIFIER_PATH_MAX + 32];
    struct stat st;

    if (cfg == NULL || argc == NULL || argv == NULL || cli == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    /* The state directory decides which file to read, so find it before loading: the flag,
     * else the environment. An explicit --config or $TRELLIS_VERIFIER_CONFIG wins, and
     * trellis_conf_load reads those itself. */
    const char *dir = dir_flag(*argc, argv);
    if (dir == NULL)
        dir = getenv("TRELLIS_VERIFIER_DIR");
    int explicit_config = getenv("TRELLIS_VERIFIER_CONFIG") != NULL;
    for (int i = 1; i < *argc && !explicit_config; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        explicit_config = strcmp(argv[i], "--config") == 0 || strncmp(argv[i], "--config=", 9) == 0;
    }
    trellis_conf_spec_t spec = SPEC;
    if (!explicit_config && dir != NULL && dir[0] != '\0') {
        int n = snprintf(path, sizeof(path), "%s/%s", dir, TRELLIS_VERIFIER_CONF_FILE);
        if (n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0)
            spec.default_path = path;
    }
    err = trellis_conf_load(&spec, cfg, argc, argv, cli, reason);
    if (err != TRELLIS_OK || cli->help)
        return err;
    return trellis_verifier_config_resolve(cfg, reason);
}
