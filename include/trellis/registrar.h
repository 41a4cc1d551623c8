/*
 * The registrar (the OEM's enrollment service and device CA): its configuration, the HTTPS
 * service, and the operations on its state directory that `trellis registrar` exposes.
 * docs/registrar-api.md describes the HTTP API, docs/registrar.md operations.
 *
 * The device-facing API (design.md §3, with the challenge sent back in the enroll body):
 *   GET  /v1/challenge                              200 {"challenge", "expires_in"}
 *   POST /v1/enroll {"csr","evidence","challenge"}  201 {"device_id","certificate","not_after"}
 *   POST /v1/reenroll {"csr"} over mutual TLS       201 as above
 *   GET  /v1/ca                                     the device CA chain, PEM
 *   GET  /v1/crl                                    the current CRL, DER
 *   GET  /healthz, GET /metrics (Prometheus text)
 *
 * An enrollment checks, in order: the body, the challenge (MAC, expiry), the evidence's shape,
 * the CSR policy (csr.h) and that the CSR names the device the evidence names, the nonce
 * binding, that the challenge is unused (requests in flight, then the registry), then asks the
 * verifier over mutual TLS on the worker's own event loop (never blocking it), checks the
 * verdict (pinned key, device id, CSR hash, nonce, OEM, expiry), records the enrollment and
 * consumes the challenge in one transaction (record first), and only then signs and returns the
 * certificate.
 */
#ifndef TRELLIS_REGISTRAR_H
#define TRELLIS_REGISTRAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trellis/conf.h"
#include "trellis/error.h"
#include "trellis/registrar_store.h"

#define TRELLIS_REGISTRAR_PATH_MAX     1024
#define TRELLIS_REGISTRAR_URL_MAX      512
#define TRELLIS_REGISTRAR_OEM_MAX      64
#define TRELLIS_REGISTRAR_DEFAULT_PORT 8443

/* File names inside the state directory (`trellis registrar init --dir DIR`). */
#define TRELLIS_REGISTRAR_CONF_FILE     "registrar.conf"
#define TRELLIS_REGISTRAR_REGISTRY_FILE "registry.db"
#define TRELLIS_REGISTRAR_ROOT_DIR      "root"          /* move it offline after init */
#define TRELLIS_REGISTRAR_ROOT_KEY      "root/root.key" /* root CA key, 0600 */
#define TRELLIS_REGISTRAR_ROOT_CERT     "root/root.pem"
#define TRELLIS_REGISTRAR_TRUST_FILE    "trust.pem"    /* the root certificate: devices pin it */
#define TRELLIS_REGISTRAR_CA_KEY        "ca.key"       /* device CA key, 0600 */
#define TRELLIS_REGISTRAR_CA_CERT       "ca.pem"       /* device CA certificate */
#define TRELLIS_REGISTRAR_CA_CHAIN      "ca-chain.pem" /* device CA + root: brokers trust it */
#define TRELLIS_REGISTRAR_TLS_KEY       "server.key"
#define TRELLIS_REGISTRAR_TLS_CERT      "server.pem"
#define TRELLIS_REGISTRAR_SECRET_FILE   "challenge.key" /* challenge MAC secret, hex, 0600 */
#define TRELLIS_REGISTRAR_CRL_FILE      "crl.pem"       /* what a broker's crlfile points at */
#define TRELLIS_REGISTRAR_VERIFIER_DIR  "verifier"      /* written by join */
#define TRELLIS_REGISTRAR_VERIFIER_KEY  "verifier/client.key"
#define TRELLIS_REGISTRAR_VERIFIER_CERT "verifier/client.pem"
#define TRELLIS_REGISTRAR_VERIFIER_CA   "verifier/ca.pem"
#define TRELLIS_REGISTRAR_VERDICT_KEY   "verifier/verdict.pub.pem"

/*
 * The registrar's configuration, filled from its option table (trellis_registrar_conf_spec):
 * defaults, DIR/registrar.conf (or --config), TRELLIS_REGISTRAR_* variables, flags. Empty paths
 * are derived from dir by trellis_registrar_config_resolve.
 */
typedef struct {
    char dir[TRELLIS_REGISTRAR_PATH_MAX];
    char oem[TRELLIS_REGISTRAR_OEM_MAX + 1];
    char listen[64];
    int port;
    int workers;
    long long cert_validity_ms;
    long long challenge_ttl_ms;
    char reset_policy[16]; /* "replace" or "deny" */
    int rate_limit;        /* requests per second per client address; 0: off */
    int rate_burst;
    int max_connections;
    long long request_timeout_ms;
    long long write_timeout_ms;
    char verifier_url[TRELLIS_REGISTRAR_URL_MAX];
    long long verifier_timeout_ms;
    int verifier_max_conns;
    bool durable;
    long long busy_timeout_ms;
    int writer_queue;
    int writer_batch;
    long long writer_linger_ms;
    long long crl_validity_ms;
    int retry_after_s;
    char log_level[16];
    char registry[TRELLIS_REGISTRAR_PATH_MAX];
    char root_cert[TRELLIS_REGISTRAR_PATH_MAX];
    char ca_key[TRELLIS_REGISTRAR_PATH_MAX];
    char ca_cert[TRELLIS_REGISTRAR_PATH_MAX];
    char client_ca[TRELLIS_REGISTRAR_PATH_MAX];
    char tls_cert[TRELLIS_REGISTRAR_PATH_MAX];
    char tls_key[TRELLIS_REGISTRAR_PATH_MAX];
    char challenge_secret[TRELLIS_REGISTRAR_PATH_MAX];
    char crl_file[TRELLIS_REGISTRAR_PATH_MAX];
    char verifier_ca[TRELLIS_REGISTRAR_PATH_MAX];
    char verifier_cert[TRELLIS_REGISTRAR_PATH_MAX];
    char verifier_key[TRELLIS_REGISTRAR_PATH_MAX];
    char verdict_key[TRELLIS_REGISTRAR_PATH_MAX];
} trellis_registrar_config_t;

/* The option table: it drives parsing, `--help` and the generated registrar.conf. */
const trellis_conf_spec_t *trellis_registrar_conf_spec(void);

/*
 * Loads the configuration for a `trellis registrar` subcommand, in increasing precedence:
 * defaults, the file (--config FILE, else $TRELLIS_REGISTRAR_CONFIG, else DIR/registrar.conf
 * when --dir or $TRELLIS_REGISTRAR_DIR names a directory that has one), the environment, the
 * flags. argv is compacted to the positional arguments as trellis_conf_load does; cli reports
 * --help. Then resolves it (trellis_registrar_config_resolve). Errors as trellis_conf_load.
 */
trellis_err_t trellis_registrar_config_load(trellis_registrar_config_t *cfg, int *argc, char **argv,
                                            trellis_conf_cli_t *cli, trellis_reason_t *reason);

/* Fills every empty path from dir and checks the values the table cannot (oem name, reset
 * policy). TRELLIS_ERR_CONFIG with a reason. */
trellis_err_t trellis_registrar_config_resolve(trellis_registrar_config_t *cfg,
                                               trellis_reason_t *reason);

/* The reset policy named by cfg->reset_policy. */
trellis_reset_policy_t trellis_registrar_reset_policy(const trellis_registrar_config_t *cfg);

/* Opens the configured registry (which must exist). */
trellis_err_t trellis_registrar_open_store(const trellis_registrar_config_t *cfg,
                                           trellis_rstore_t **out, trellis_reason_t *reason);

/* ---- the service ---- */

typedef struct trellis_registrar trellis_registrar_t;

/*
 * Builds the service from cfg: loads the device CA, the challenge secret, the pinned verdict
 * key and the TLS material once, opens the registry, publishes a CRL if there is none, and
 * prepares the HTTPS server. Nothing listens yet. Errors: TRELLIS_ERR_CONFIG (a file cannot be
 * used, or `join` was not run; reason says which), TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_NOMEM,
 * TRELLIS_ERR_STORE.
 */
trellis_err_t trellis_registrar_new(const trellis_registrar_config_t *cfg,
                                    trellis_registrar_t **out, trellis_reason_t *reason);

/* Starts the registry writer and the workers; returns once connections are accepted. */
trellis_err_t trellis_registrar_start(trellis_registrar_t *r, trellis_reason_t *reason);

/* The bound port while running (cfg->port 0 picks a free one). */
uint16_t trellis_registrar_port(const trellis_registrar_t *r);

/* Stops accepting, aborts requests in flight, commits what the writer holds, frees everything.
 * NULL is a no-op. */
void trellis_registrar_free(trellis_registrar_t *r);

/* The Prometheus text of /metrics in a new buffer the caller frees with free(). */
trellis_err_t trellis_registrar_metrics_text(trellis_registrar_t *r, char **out, size_t *out_len);

/* ---- administration of the state directory ---- */

typedef struct {
    const char *dir;      /* created if missing; must not hold a registrar already */
    const char *oem;      /* the OEM name: O of every device certificate; required */
    const char *hosts;    /* TLS server names, comma-separated DNS names and IP addresses;
                             NULL: "localhost,127.0.0.1,::1" */
    unsigned root_days;   /* 0: 7300 */
    unsigned ca_days;     /* 0: 3650 */
    unsigned server_days; /* 0: 825 */
} trellis_registrar_init_t;

/*
 * Creates a state directory: a root CA (DIR/root/, to be kept offline) and the device CA it
 * signs (pathLenConstraint 0), the TLS server key and certificate (serverAuth, the given names,
 * signed by the root, so devices pin DIR/trust.pem), the challenge secret, an empty registry,
 * a first CRL and registrar.conf with dir and oem filled in. Keys are written 0600.
 * TRELLIS_ERR_EXISTS when DIR already holds a registry or a key (nothing is overwritten);
 * TRELLIS_ERR_INVALID_ARG for a bad OEM name or host. All or nothing: on failure the files
 * written so far are removed.
 */
trellis_err_t trellis_registrar_init_dir(const trellis_registrar_init_t *opts,
                                         trellis_reason_t *reason);

typedef struct {
    const char *verifier_url; /* https://host:port of the verifier */
    const char *bundle;       /* directory with client.key, client.pem and ca.pem (what
                                 `trellis verifier add-oem` wrote) */
    const char *verdict_key;  /* PEM file of the verdict public key to pin; NULL: fetch it from
                                 VERIFIER_URL/v1/verdict-key over mutual TLS */
    unsigned timeout_ms;      /* for the fetch; 0: 10 s */
} trellis_registrar_join_t;

/*
 * Connects the registrar to its verifier: copies the OEM's client bundle into DIR/verifier/,
 * pins the verdict key (DIR/verifier/verdict.pub.pem) and writes verifier-url into
 * registrar.conf. kid receives the pinned key's JWK thumbprint (RFC 7638) so the operator can
 * compare it out of band. Errors: TRELLIS_ERR_CONFIG (bundle incomplete or unusable),
 * TRELLIS_ERR_UNAVAILABLE / TRELLIS_ERR_TLS / TRELLIS_ERR_TIMEOUT (fetch failed),
 * TRELLIS_ERR_PARSE (the verifier's answer), TRELLIS_ERR_BAD_KEY.
 */
trellis_err_t trellis_registrar_join(const trellis_registrar_config_t *cfg,
                                     const trellis_registrar_join_t *opts, char kid[static 44],
                                     trellis_reason_t *reason);

/*
 * Revokes a device (see trellis_rstore_t.device_revoke) and publishes a new CRL (registry and
 * cfg->crl_file). reason_text is kept for people; code goes into the CRL. *n_certs (may be NULL)
 * counts the certificates revoked. Errors: those of the store, or of the CRL publication (the
 * revocation is then committed, and the next publication includes it).
 */
trellis_err_t trellis_registrar_revoke(const trellis_registrar_config_t *cfg, const char *device_id,
                                       trellis_crl_reason_t code, const char *reason_text,
                                       const char *actor, uint64_t *n_certs,
                                       trellis_reason_t *reason);

/* Lets a revoked device enroll again. */
trellis_err_t trellis_registrar_reinstate(const trellis_registrar_config_t *cfg,
                                          const char *device_id, const char *actor,
                                          trellis_reason_t *reason);

/*
 * Publishes a CRL now from the registry's state: signs it with the device CA, stores it in the
 * registry and writes cfg->crl_file (PEM), atomically. Serialised between processes by a lock
 * file beside crl_file, so the file always holds the newest CRL. *number (may be NULL) receives
 * its CRL number.
 */
trellis_err_t trellis_registrar_publish_crl(const trellis_registrar_config_t *cfg, uint64_t *number,
                                            trellis_reason_t *reason);

#endif /* TRELLIS_REGISTRAR_H */
