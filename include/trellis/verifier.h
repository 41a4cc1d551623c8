/*
 * The verifier (attestation service): signed verdicts, the HTTPS service, and the operations on
 * its state directory that `trellis verifier` exposes. docs/verifier.md describes operations,
 * docs/verifier-api.md the HTTP API.
 *
 * Verdicts are JWS compact serializations (RFC 7515 §7.1) signed ES256 (RFC 7518 §3.4: ECDSA
 * P-256 over SHA-256, signature as raw r || s) whose payload is an EAT Attestation Result
 * (draft-ietf-rats-ear) with Trellis's claims beside the EAR ones:
 *
 *   {"eat_profile": "tag:github.com,2023:veraison/ear", "iss": VERIFIER_ID, "iat": T,
 *    "exp": T + 300, "ear.verifier-id": {"developer": "trellis", "build": "trellis 0.1.0"},
 *    "eat_nonce": B64URL(token nonce = SHA-256(challenge || CSR)), "device_id": ID,
 *    "csr_sha256": HEX, "oem": OEM, "status": "affirming" | "contraindicated",
 *    "reasons": [CODE...], "submods": {"device": {"ear.status": STATUS}}}
 *
 * JWS rather than COSE because the relying parties (the registrar, any HTTP client, an auditor
 * with jq and openssl) check it with standard tools, and JSON is what the rest of the API speaks.
 */
#ifndef TRELLIS_VERIFIER_H
#define TRELLIS_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "trellis/conf.h"
#include "trellis/error.h"
#include "trellis/verifier_store.h"

/* ---- verdicts ---- */

#define TRELLIS_VERDICT_TTL_S       300  /* exp - iat */
#define TRELLIS_VERDICT_REASONS_MAX 8    /* reason codes in one verdict */
#define TRELLIS_VERDICT_CODE_MAX    31   /* characters of one reason code */
#define TRELLIS_VERDICT_JWS_MAX     2048 /* largest verdict text, NUL excluded */
#define TRELLIS_VERDICT_NONCE_MAX   64
#define TRELLIS_JWK_KID_LEN         43 /* base64url of a SHA-256 JWK thumbprint (RFC 7638) */
#define TRELLIS_VERDICT_PROFILE     "tag:github.com,2023:veraison/ear"

typedef enum {
    TRELLIS_VERDICT_AFFIRMING = 1,
    TRELLIS_VERDICT_CONTRAINDICATED = 2,
} trellis_verdict_status_t;

/* Reason codes a verdict carries (short, stable, documented in docs/verifier-api.md). */
#define TRELLIS_VREASON_UNKNOWN_DEVICE "unknown_device" /* absent, or not the caller's */
#define TRELLIS_VREASON_REVOKED        "revoked"        /* the device's RoT is compromised */
#define TRELLIS_VREASON_BAD_SIGNATURE  "bad_signature"  /* token not signed by the RoT key */
#define TRELLIS_VREASON_NONCE_MISMATCH "nonce_mismatch" /* nonce != SHA-256(challenge||CSR) */
#define TRELLIS_VREASON_LIFECYCLE      "lifecycle"      /* RoT not in a trusted lifecycle */
#define TRELLIS_VREASON_BAD_EVIDENCE   "bad_evidence"   /* token refused for another reason */

typedef struct {
    char iss[TRELLIS_VSTORE_NAME_MAX + 1]; /* the verifier's id */
    int64_t iat;
    int64_t exp;
    char device_id[TRELLIS_DEVICE_ID_HEX_LEN + 1];
    uint8_t csr_sha256[32];
    uint8_t nonce[TRELLIS_VERDICT_NONCE_MAX];
    size_t nonce_len; /* 32, 48 or 64 */
    char oem[TRELLIS_VSTORE_NAME_MAX + 1];
    trellis_verdict_status_t status;
    size_t n_reasons;
    char reasons[TRELLIS_VERDICT_REASONS_MAX][TRELLIS_VERDICT_CODE_MAX + 1];
} trellis_verdict_t;

/* "affirming" / "contraindicated"; "invalid" otherwise. */
const char *trellis_verdict_status_name(trellis_verdict_status_t status);

/*
 * The JWK thumbprint (RFC 7638 §3: SHA-256 over {"crv","kty","x","y"} in that order, base64url)
 * of a P-256 key, used as the JWS "kid". out receives 43 characters and a NUL.
 */
trellis_err_t trellis_verdict_kid(const EVP_PKEY *key, char out[static TRELLIS_JWK_KID_LEN + 1]);

/*
 * The public key as a JWK (RFC 7517) with kty, crv, x, y, kid, alg "ES256" and use "sig", as
 * (out, out_size, *out_len), NUL-terminated.
 */
trellis_err_t trellis_verdict_jwk(const EVP_PKEY *key, char *out, size_t out_size, size_t *out_len);

/*
 * Signs v with key (a P-256 private key) as a JWS compact serialization into out
 * (out_size >= TRELLIS_VERDICT_JWS_MAX + 1 is always enough). kid is the key's thumbprint
 * (trellis_verdict_kid, computed once by the caller). v's text fields must be valid names
 * (trellis_vstore_name_valid for iss and oem, a 32-hex device id, reason codes of
 * [a-z_]); TRELLIS_ERR_INVALID_ARG otherwise, so nothing unescaped ever reaches the JSON.
 */
trellis_err_t trellis_verdict_sign(const trellis_verdict_t *v, const EVP_PKEY *key, const char *kid,
                                   char *out, size_t out_size, size_t *out_len);

/*
 * Verifies a verdict: JWS compact form, header {"alg":"ES256",...} (any other alg is refused,
 * RFC 8725 §3.1), signature with key, then the payload's claims, and that now lies within
 * [iat - 60 s, exp] (60 s of clock skew). On success *out holds the claims. Errors:
 * TRELLIS_ERR_PARSE (not a verdict), TRELLIS_ERR_BAD_SIGNATURE, TRELLIS_ERR_TIMEOUT (expired or
 * not yet valid), each with a reason.
 */
trellis_err_t trellis_verdict_verify(const char *jws, size_t len, const EVP_PKEY *key, int64_t now,
                                     trellis_verdict_t *out, trellis_reason_t *reason);

/* ---- configuration ---- */

#define TRELLIS_VERIFIER_PATH_MAX     1024
#define TRELLIS_VERIFIER_DEFAULT_PORT 9443

/* File names inside the state directory (`trellis verifier init --dir DIR`). */
#define TRELLIS_VERIFIER_CONF_FILE     "verifier.conf"
#define TRELLIS_VERIFIER_REGISTRY_FILE "registry.db"
#define TRELLIS_VERIFIER_VERDICT_KEY   "verdict.key"     /* P-256 private key, 0600 */
#define TRELLIS_VERIFIER_VERDICT_PUB   "verdict.pub.pem" /* its public half, to pin */
#define TRELLIS_VERIFIER_CA_KEY        "ca.key"          /* client (and server) CA key, 0600 */
#define TRELLIS_VERIFIER_CA_CERT       "ca.pem"
#define TRELLIS_VERIFIER_TLS_KEY       "server.key" /* TLS server key, 0600 */
#define TRELLIS_VERIFIER_TLS_CERT      "server.pem" /* server certificate, then the CA */
#define TRELLIS_VERIFIER_CLIENTS_DIR   "clients"    /* bundles written by add-oem/factory */

/*
 * The verifier's configuration, filled from its option table (trellis_verifier_conf_spec):
 * defaults, DIR/verifier.conf (or --config), TRELLIS_VERIFIER_* variables, flags. Empty paths
 * are derived from dir by trellis_verifier_config_resolve.
 */
typedef struct {
    char dir[TRELLIS_VERIFIER_PATH_MAX];
    char listen[64];
    int port;
    int workers;
    char verifier_id[TRELLIS_VSTORE_NAME_MAX + 1];
    long long verdict_ttl_ms;
    int max_connections;
    long long request_timeout_ms;
    long long write_timeout_ms;
    size_t manifest_max_body;
    long long manifest_max_devices;
    bool durable;
    long long busy_timeout_ms;
    int audit_queue;
    long long audit_linger_ms;
    bool allow_anonymous;
    char log_level[16];
    char registry[TRELLIS_VERIFIER_PATH_MAX];
    char verdict_key[TRELLIS_VERIFIER_PATH_MAX];
    char tls_cert[TRELLIS_VERIFIER_PATH_MAX];
    char tls_key[TRELLIS_VERIFIER_PATH_MAX];
    char client_ca[TRELLIS_VERIFIER_PATH_MAX];
} trellis_verifier_config_t;

/* The option table: it drives parsing, `--help` and the generated verifier.conf. */
const trellis_conf_spec_t *trellis_verifier_conf_spec(void);

/*
 * Loads the configuration for a `trellis verifier` subcommand, in increasing precedence:
 * defaults, the file (--config FILE, else $TRELLIS_VERIFIER_CONFIG, else DIR/verifier.conf
 * when --dir or $TRELLIS_VERIFIER_DIR names a directory that has one), the environment, the
 * flags. argv is compacted to the positional arguments as trellis_conf_load does; cli reports
 * --help. Then derives the empty paths (trellis_verifier_config_resolve). Errors as
 * trellis_conf_load, with reason.
 */
trellis_err_t trellis_verifier_config_load(trellis_verifier_config_t *cfg, int *argc, char **argv,
                                           trellis_conf_cli_t *cli, trellis_reason_t *reason);

/* Fills every empty path from dir (DIR/registry.db, ...). TRELLIS_ERR_CONFIG when dir is empty
 * and a path is needed, or a path would not fit. */
trellis_err_t trellis_verifier_config_resolve(trellis_verifier_config_t *cfg,
                                              trellis_reason_t *reason);

/* Opens the configured registry (which must exist) with the configured durability. */
trellis_err_t trellis_verifier_open_store(const trellis_verifier_config_t *cfg,
                                          trellis_vstore_t **out, trellis_reason_t *reason);

/* ---- the service ---- */

typedef struct trellis_verifier trellis_verifier_t;

/*
 * Builds the service from cfg: loads the verdict key and the TLS material once, checks that the
 * registry opens, and prepares the HTTPS server (TLS 1.2+, client certificates from the CA in
 * cfg->client_ca; routes in docs/verifier-api.md). Nothing listens yet.
 * Errors: TRELLIS_ERR_CONFIG (a key, certificate or the registry cannot be used; reason says
 * which), TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_NOMEM.
 */
trellis_err_t trellis_verifier_new(const trellis_verifier_config_t *cfg, trellis_verifier_t **out,
                                   trellis_reason_t *reason);

/* Starts the audit writer, the workers and the listener; returns once connections are
 * accepted. */
trellis_err_t trellis_verifier_start(trellis_verifier_t *v, trellis_reason_t *reason);

/* The bound port while running (cfg->port 0 picks a free one). */
uint16_t trellis_verifier_port(const trellis_verifier_t *v);

/* Stops accepting, finishes or aborts requests in flight, writes the audit entries still
 * queued, and frees everything. NULL is a no-op. */
void trellis_verifier_free(trellis_verifier_t *v);

/* The Prometheus text of /metrics, into a new buffer the caller frees with free(). */
trellis_err_t trellis_verifier_metrics_text(trellis_verifier_t *v, char **out, size_t *out_len);

/* ---- administration of the state directory ---- */

typedef struct {
    const char *dir;         /* created if missing; must not hold a verifier already */
    const char *verifier_id; /* NULL: "trellis-verifier" */
    const char *hosts;       /* server names, comma-separated DNS names and IP addresses;
                                NULL: "localhost,127.0.0.1,::1" */
    unsigned ca_days;        /* 0: 3650 */
    unsigned server_days;    /* 0: 825 */
} trellis_verifier_init_t;

/*
 * Creates a state directory: the verdict key, a CA for the verifier's TLS peers, the TLS server
 * key and certificate (issued by that CA, serverAuth, the given names), an empty registry and
 * verifier.conf generated from the option table with dir and verifier-id filled in. Keys are
 * written 0600. TRELLIS_ERR_EXISTS when DIR already holds a registry or a key (nothing is
 * overwritten).
 */
trellis_err_t trellis_verifier_init_dir(const trellis_verifier_init_t *opts,
                                        trellis_reason_t *reason);

/* Where add-oem / add-factory wrote a client's bundle. */
typedef struct {
    char dir[TRELLIS_VERIFIER_PATH_MAX];
    char key[TRELLIS_VERIFIER_PATH_MAX];  /* client.key, 0600 */
    char cert[TRELLIS_VERIFIER_PATH_MAX]; /* client.pem: the client certificate */
    char ca[TRELLIS_VERIFIER_PATH_MAX];   /* ca.pem: trust anchor for the verifier's server */
} trellis_verifier_bundle_t;

/*
 * Registers an OEM and writes its mutual-TLS client bundle (a fresh P-256 key and a clientAuth
 * certificate with CN = name, valid days (0: 365), issued by the verifier's CA) into out_dir
 * (NULL: DIR/clients/NAME). OEM and factory names share one namespace, so a certificate names
 * exactly one tenant. TRELLIS_ERR_EXISTS if the name is taken, TRELLIS_ERR_INVALID_ARG for a bad
 * name. The registry changes only after the bundle is written.
 */
trellis_err_t trellis_verifier_add_oem(const trellis_verifier_config_t *cfg, const char *name,
                                       const char *out_dir, unsigned days,
                                       trellis_verifier_bundle_t *bundle, trellis_reason_t *reason);

/* Registers a factory with its manifest-signing public key (PEM file) and writes its client
 * bundle like trellis_verifier_add_oem. */
trellis_err_t trellis_verifier_add_factory(const trellis_verifier_config_t *cfg, const char *name,
                                           const char *key_pem_path, const char *out_dir,
                                           unsigned days, trellis_verifier_bundle_t *bundle,
                                           trellis_reason_t *reason);

/*
 * Imports a manifest file directly into the registry, with every check of the HTTP import
 * (the header's factory must be registered and the trailer must verify with its key), for bulk
 * loads and benchmarks without the network. Audited with caller "admin".
 * report_json receives a new JSON text describing the outcome (free() it), also on failure.
 */
trellis_err_t trellis_verifier_import_file(const trellis_verifier_config_t *cfg, const char *path,
                                           char **report_json, trellis_reason_t *reason);

#endif /* TRELLIS_VERIFIER_H */
