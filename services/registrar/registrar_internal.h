/*
 * Internals shared by the files of trellis_registrar. Not a public interface: the unit tests and
 * fuzz targets include it to reach the pieces below the HTTP layer. The prefix is tr__reg_, not
 * plain tr__, so that these never clash with another service's internals in one binary (the
 * CLI links them all).
 *
 *   challenge.c  stateless challenges (HMAC), checked without a lookup
 *   ca.c         the device CA, the certificate profile, CRL building
 *   crl.c        CRL publication (numbered under the registry lock, file written under flock)
 *   writer.c     the registry writer thread (group commit)
 *   ratelimit.c  per-client token buckets
 *   inflight.c   challenges of enrollments in flight (identical requests racing)
 *   request.c    parsing of the enroll and reenroll bodies, verdict checks
 *   enroll.c     the asynchronous enrollment flow
 *   handlers.c   the other HTTP handlers
 *   metrics.c    /metrics
 *   service.c    the service's life cycle
 *   config.c     the option table
 *   admin.c      init, join, revoke, reinstate, CRL publication from the CLI
 */
#ifndef TRELLIS_REGISTRAR_INTERNAL_H
#define TRELLIS_REGISTRAR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "trellis/csr.h"
#include "trellis/error.h"
#include "trellis/registrar.h"
#include "trellis/registrar_store.h"

#define TR__OEM_MAX TRELLIS_REGISTRAR_OEM_MAX

/* 1..64 characters of [A-Za-z0-9._-] starting with a letter or digit: the verifier's rule for
 * tenant names, since the OEM name is compared with the verdict's "oem" claim. */
int tr__reg_oem_name_valid(const char *name);

/* ---- challenges (challenge.c) ---- */

#define TR__CHALLENGE_LEN        57 /* 0x01 || random[16] || expires[8] || HMAC-SHA256[32] */
#define TR__CHALLENGE_SECRET_LEN 32

trellis_err_t tr__reg_challenge_mint(const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                     int64_t now_s, int64_t ttl_s,
                                     uint8_t out[static TR__CHALLENGE_LEN]);

/*
 * Checks a challenge's form, MAC and expiry at now_s (it must expire after now_s and no later
 * than now_s + ttl_s + 60). On success *expires_out (may be NULL) is its expiry and id its
 * SHA-256, the key under which the store consumes it. TRELLIS_ERR_BAD_CHALLENGE with a reason
 * otherwise.
 */
trellis_err_t tr__reg_challenge_check(const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                      const uint8_t *challenge, size_t len, int64_t now_s,
                                      int64_t ttl_s, int64_t *expires_out,
                                      uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID],
                                      trellis_reason_t *reason);

/* Reads a challenge secret file: 64 hex digits (and an optional newline). */
trellis_err_t tr__reg_challenge_secret_load(const char *path,
                                            uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                            trellis_reason_t *reason);

/* ---- the device CA (ca.c) ---- */

typedef struct tr__reg_ca tr__reg_ca_t;

/* Loads the device CA key and certificate and the root certificate, checks that they belong
 * together, and builds the fixed parts of the profile. TRELLIS_ERR_CONFIG with a reason. */
trellis_err_t tr__reg_ca_load(const char *key_path, const char *cert_path, const char *root_path,
                              const char *oem, tr__reg_ca_t **out, trellis_reason_t *reason);
void tr__reg_ca_free(tr__reg_ca_t *ca);

/* The device CA chain (CA then root) as PEM, borrowed. */
const char *tr__reg_ca_chain_pem(const tr__reg_ca_t *ca, size_t *len);
X509 *tr__reg_ca_cert(const tr__reg_ca_t *ca);

/* The serial and validity of a certificate, fixed before its enrollment is recorded. */
typedef struct {
    uint8_t serial[16];
    char serial_hex[TRELLIS_RSTORE_SERIAL_LEN + 1];
    int64_t not_before, not_after;
} tr__reg_cert_plan_t;

/* Draws a plan at now_s for validity_s seconds (cut to the CA's own expiry).
 * TRELLIS_ERR_UNAVAILABLE when the CA has expired. */
trellis_err_t tr__reg_ca_plan(const tr__reg_ca_t *ca, int64_t now_s, int64_t validity_s,
                              tr__reg_cert_plan_t *out);

/* Signs the device certificate of plan for device_id and its P-256 key, given as the
 * uncompressed point (checked by the CSR policy). */
trellis_err_t tr__reg_ca_issue(const tr__reg_ca_t *ca, const tr__reg_cert_plan_t *plan,
                               const char *device_id, const uint8_t point[static 65], X509 **out);

/* leaf then the device CA as PEM, in a new NUL-terminated buffer (free()). */
trellis_err_t tr__reg_ca_leaf_chain_pem(const tr__reg_ca_t *ca, X509 *leaf, char **out,
                                        size_t *len);

/* A signing context on the device CA's key for one thread at a time (a worker keeps one for
 * its life), freed with EVP_PKEY_CTX_free. */
trellis_err_t tr__reg_ca_signer_new(const tr__reg_ca_t *ca, EVP_PKEY_CTX **out);

/* The enrollment's answer in one step: the certificate tr__reg_ca_issue would sign (the same
 * TBSCertificate), signed with signer (tr__reg_ca_signer_new; NULL: one made for this call),
 * then the device CA, as PEM in a new NUL-terminated buffer (free()). */
trellis_err_t tr__reg_ca_issue_chain_pem(const tr__reg_ca_t *ca, EVP_PKEY_CTX *signer,
                                         const tr__reg_cert_plan_t *plan, const char *device_id,
                                         const uint8_t point[static 65], char **out, size_t *len);

typedef struct tr__reg_crl tr__reg_crl_t;

trellis_err_t tr__reg_crl_new(const tr__reg_ca_t *ca, uint64_t number, int64_t this_update,
                              int64_t next_update, tr__reg_crl_t **out);
trellis_err_t tr__reg_crl_add(tr__reg_crl_t *b, const trellis_rstore_revoked_t *e);
/* Signs; DER and PEM in new buffers (free()). */
trellis_err_t tr__reg_crl_finish(tr__reg_crl_t *b, uint8_t **der, size_t *der_len, char **pem,
                                 size_t *pem_len);
void tr__reg_crl_free(tr__reg_crl_t *b);

/*
 * Publishes a CRL from store's state at now_s, valid validity_s, and writes it as PEM to path
 * (skipped when path is NULL or empty) under path.lock. *der_out (may be NULL) receives a copy
 * of the DER (free()).
 */
trellis_err_t tr__reg_crl_publish(trellis_rstore_t *store, const tr__reg_ca_t *ca, int64_t now_s,
                                  int64_t validity_s, const char *path, uint64_t *number_out,
                                  uint8_t **der_out, size_t *der_len_out, trellis_reason_t *reason);

/* ---- the registry writer (writer.c) ---- */

typedef struct tr__reg_writer tr__reg_writer_t;

/* Called on the writer thread once op's batch committed or failed (op->err says which). */
typedef void (*tr__reg_writer_done_fn)(void *arg, trellis_rstore_op_t *op);

typedef struct {
    void *arg;
    /* After each batch, before the done callbacks, with the results. */
    void (*after_batch)(void *arg, const trellis_rstore_op_t *ops, size_t n);
    /* Every tick_ms, between batches, on the writer's store connection. */
    void (*tick)(void *arg, trellis_rstore_t *store);
} tr__reg_writer_hooks_t;

typedef struct {
    uint64_t batches, ops, failed_batches, refused;
    size_t largest_batch, depth;
} tr__reg_writer_stats_t;

/* The writer owns the use of store (not its lifetime) from start to free. linger_us: how long
 * to wait for company when the previous batch had some (0: never). */
trellis_err_t tr__reg_writer_new(trellis_rstore_t *store, size_t capacity, size_t batch_max,
                                 unsigned linger_us, unsigned tick_ms,
                                 const tr__reg_writer_hooks_t *hooks, tr__reg_writer_t **out);
trellis_err_t tr__reg_writer_start(tr__reg_writer_t *w);
/* Queues op (caller memory, untouched by the caller until done runs). TRELLIS_ERR_UNAVAILABLE
 * when the queue is full or the writer stops; done is then never called. */
trellis_err_t tr__reg_writer_push(tr__reg_writer_t *w, trellis_rstore_op_t *op,
                                  tr__reg_writer_done_fn done, void *arg);
void tr__reg_writer_stats(tr__reg_writer_t *w, tr__reg_writer_stats_t *out);
/* Applies what is queued, stops the thread, frees. */
void tr__reg_writer_free(tr__reg_writer_t *w);

/* ---- rate limit (ratelimit.c) ---- */

typedef struct tr__reg_ratelimit tr__reg_ratelimit_t;

/* rate tokens a second per client, burst at most; a table of slots buckets (>= 128). */
trellis_err_t tr__reg_ratelimit_new(double rate, double burst, size_t slots,
                                    tr__reg_ratelimit_t **out);
/* Takes a token for client ("ip:port"; the port is ignored). 0 when allowed, otherwise the
 * seconds to wait before a token is back (>= 1). */
unsigned tr__reg_ratelimit_take(tr__reg_ratelimit_t *rl, const char *client, uint64_t now_us);
void tr__reg_ratelimit_free(tr__reg_ratelimit_t *rl);

/* ---- enrollments in flight (inflight.c) ---- */

typedef struct tr__reg_inflight tr__reg_inflight_t;

/* A set of at most capacity challenge ids (>= 32), safe from any thread. */
trellis_err_t tr__reg_inflight_new(size_t capacity, tr__reg_inflight_t **out);
/* TRELLIS_OK when id was not in flight and now is; TRELLIS_ERR_REPLAYED when it is already;
 * TRELLIS_ERR_UNAVAILABLE when the set has no room near the id. */
trellis_err_t tr__reg_inflight_claim(tr__reg_inflight_t *s,
                                     const uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID]);
void tr__reg_inflight_release(tr__reg_inflight_t *s,
                              const uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID]);
void tr__reg_inflight_free(tr__reg_inflight_t *s);

/* ---- request bodies and verdicts (request.c) ---- */

#define TR__BODY_MAX     (16 * 1024)
#define TR__EVIDENCE_MAX 4096
#define TR__VERDICT_MAX  2048

/* The parsed and checked body of POST /v1/enroll. */
typedef struct {
    uint8_t csr_der[TRELLIS_CSR_DER_MAX];
    size_t csr_len;
    uint8_t evidence[TR__EVIDENCE_MAX];
    size_t evidence_len;
    uint8_t challenge[TR__CHALLENGE_LEN];
    trellis_csr_t csr;                                /* passed the CSR policy */
    char device_id[TRELLIS_RSTORE_DEVICE_ID_LEN + 1]; /* named by the evidence's UEID */
    uint8_t nonce[32];                                /* SHA-256(challenge || CSR) */
    uint8_t challenge_id[TRELLIS_RSTORE_CHALLENGE_ID];
    int64_t challenge_expires;
} tr__reg_enroll_req_t;

/*
 * Parses and checks an enroll body at now_s, everything that needs neither the store nor the
 * verifier, cheapest first: the JSON ({"csr","evidence","challenge"}, base64url, nothing else),
 * the challenge (MAC, expiry), the evidence's shape (a PSA token whose 32-byte nonce and UEID can
 * be read; its signature is the verifier's business), the CSR policy, the CSR's subject against
 * the evidence's device id, and nonce == SHA-256(challenge || CSR). Errors carry the API error
 * of the first check that failed: TRELLIS_ERR_PARSE / ENCODING / TOO_LARGE (bad_request,
 * too_large), BAD_CHALLENGE, BAD_EVIDENCE, BAD_CSR. On success out->csr holds a key the caller
 * releases with trellis_csr_cleanup.
 */
trellis_err_t tr__reg_enroll_parse(const uint8_t *body, size_t len,
                                   const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                   int64_t now_s, int64_t ttl_s, tr__reg_enroll_req_t *out,
                                   trellis_reason_t *reason);

/* The body of POST /v1/reenroll: {"csr"} only. The CSR policy is checked; its subject is the
 * caller's to compare. */
trellis_err_t tr__reg_reenroll_parse(const uint8_t *body, size_t len, uint8_t *csr_der,
                                     size_t csr_size, size_t *csr_len, trellis_csr_t *csr,
                                     trellis_reason_t *reason);

/* What the verifier's answer must agree with. */
typedef struct {
    const EVP_PKEY *verdict_key; /* pinned at join */
    const char *oem;
    const char *device_id;
    const uint8_t *csr_sha256; /* 32 bytes */
    const uint8_t *nonce;      /* 32 bytes */
} tr__reg_verdict_expect_t;

/*
 * Checks the verifier's answer to POST /v1/verify (HTTP status, body) at now_s: a 200 answer's
 * {"verdict": JWS} must verify with the pinned key, be unexpired, and name exactly this
 * request's device, CSR hash, nonce and OEM. Then its status decides: affirming -> TRELLIS_OK;
 * contraindicated -> TRELLIS_ERR_UNKNOWN_DEVICE (reason unknown_device), TRELLIS_ERR_REVOKED
 * (revoked: the RoT is compromised) or TRELLIS_ERR_BAD_EVIDENCE (any other reason). A refusal
 * of the request by the verifier (4xx bad_evidence, bad_request, too_large) is
 * TRELLIS_ERR_BAD_EVIDENCE; anything else the verifier does (5xx, 401, 403, a verdict that does
 * not verify, has expired or does not match) is TRELLIS_ERR_UNAVAILABLE: not the device's
 * fault. On TRELLIS_OK (and on contraindicated verdicts) jws receives the verdict text, kept as
 * audit evidence.
 */
trellis_err_t tr__reg_verdict_check(const tr__reg_verdict_expect_t *expect, int status,
                                    const uint8_t *body, size_t body_len, int64_t now_s,
                                    char jws[static TR__VERDICT_MAX + 1], trellis_reason_t *reason);

/* The JSON body of a verify call to the verifier ({"evidence","csr","challenge"}, base64url),
 * in a new buffer (free()). */
trellis_err_t tr__reg_verify_body(const tr__reg_enroll_req_t *req, char **out, size_t *out_len);

/* ---- metrics (metrics.c) ---- */

typedef enum {
    TR__ROUTE_CHALLENGE,
    TR__ROUTE_ENROLL,
    TR__ROUTE_REENROLL,
    TR__ROUTE_CA,
    TR__ROUTE_CRL,
    TR__ROUTE_HEALTHZ,
    TR__ROUTE_METRICS,
    TR__ROUTE_COUNT
} tr__reg_route_t;

#define TR__STATUS_SLOTS    12 /* 200 201 400 401 403 404 409 413 415 429 503 other */
#define TR__LATENCY_BUCKETS 14
#define TR__OUTCOMES        12 /* the API codes of design.md §3, plus "ok" and "other" */

typedef struct {
    _Atomic uint64_t requests[TR__ROUTE_COUNT][TR__STATUS_SLOTS];
    _Atomic uint64_t outcomes[TR__OUTCOMES]; /* enroll + reenroll, by API code */
    _Atomic uint64_t latency[TR__LATENCY_BUCKETS];
    _Atomic uint64_t latency_sum_us, latency_count;
    _Atomic uint64_t verifier_calls, verifier_failures;
    _Atomic uint64_t verifier_latency_sum_us;
    _Atomic uint64_t certificates, replaced, crl_published;
} tr__reg_metrics_t;

void tr__reg_metrics_request(tr__reg_metrics_t *m, tr__reg_route_t route, int status);
/* An enrollment's end: err TRELLIS_OK or its refusal, latency from the request's arrival. */
void tr__reg_metrics_enroll(tr__reg_metrics_t *m, trellis_err_t err, uint64_t latency_us);

typedef struct {
    uint64_t connections_accepted, connections_rejected, connections_timed_out;
    uint64_t connections_active, http_requests;
    tr__reg_writer_stats_t writer;
    uint64_t crl_number;
} tr__reg_metrics_gauges_t;

/* Prometheus text exposition format 0.0.4, into a new buffer (free()). */
trellis_err_t tr__reg_metrics_render(tr__reg_metrics_t *m, const tr__reg_metrics_gauges_t *g,
                                     char **out, size_t *out_len);

/* ---- the service (service.c, handlers.c, enroll.c) ---- */

struct trellis_http_server;
struct trellis_http_request;
struct trellis_http_client;
struct event_base;

/* An immutable, reference-counted byte string: the CRL being served. */
typedef struct {
    atomic_uint refs;
    size_t len;
    uint8_t data[];
} tr__reg_blob_t;

tr__reg_blob_t *tr__reg_blob_new(const uint8_t *data, size_t len);
void tr__reg_blob_ref(tr__reg_blob_t *b);
void tr__reg_blob_unref(tr__reg_blob_t *b);

struct trellis_registrar {
    trellis_registrar_config_t cfg;
    trellis_reset_policy_t reset_policy;
    tr__reg_ca_t *ca;
    EVP_PKEY *verdict_key;
    uint8_t secret[TR__CHALLENGE_SECRET_LEN];
    char verify_url[TRELLIS_REGISTRAR_URL_MAX + 16];
    trellis_rstore_t *store; /* the writer's connection */
    tr__reg_writer_t *writer;
    tr__reg_ratelimit_t *ratelimit; /* NULL when rate-limit is 0 */
    tr__reg_inflight_t *inflight;
    struct trellis_http_server *http;
    tr__reg_metrics_t metrics;
    /* The CRL served at /v1/crl, refreshed by the writer thread. */
    pthread_mutex_t crl_lock;
    tr__reg_blob_t *crl;
    uint64_t crl_number;
    int64_t crl_this_update;
    int64_t last_purge_s;
    uint64_t crl_published_us; /* monotonic; the writer thread's */
    atomic_int crl_dirty;
};

/* One per worker thread: its event loop, its client to the verifier on that loop, its own
 * registry connection for reads (writes go through the writer), and its signing context. */
typedef struct {
    struct trellis_registrar *r;
    struct event_base *base;
    struct trellis_http_client *verifier;
    trellis_rstore_t *store;
    EVP_PKEY_CTX *ca_signer; /* the device CA's key, ready to sign */
} tr__reg_worker_t;

void tr__reg_handle_challenge(struct trellis_http_request *req, void *app);
void tr__reg_handle_enroll(struct trellis_http_request *req, void *app);
void tr__reg_handle_reenroll(struct trellis_http_request *req, void *app);
void tr__reg_handle_ca(struct trellis_http_request *req, void *app);
void tr__reg_handle_crl(struct trellis_http_request *req, void *app);
void tr__reg_handle_healthz(struct trellis_http_request *req, void *app);
void tr__reg_handle_metrics(struct trellis_http_request *req, void *app);

/* Answers an error (with Retry-After for rate_limited and unavailable) and counts it. */
void tr__reg_respond_error(struct trellis_http_request *req, struct trellis_registrar *r,
                           tr__reg_route_t route, trellis_err_t err, const char *detail,
                           unsigned retry_after_s);

/* Takes a rate-limit token for the request's client; on refusal answers rate_limited and
 * returns 0. */
int tr__reg_rate_ok(struct trellis_http_request *req, struct trellis_registrar *r,
                    tr__reg_route_t route);

int64_t tr__reg_now_s(void);

#endif /* TRELLIS_REGISTRAR_INTERNAL_H */
