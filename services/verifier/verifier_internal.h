/*
 * Internals shared by the files of trellis_verifier (tr__ prefix). Not a public interface: the
 * unit tests and fuzz targets include it to reach the pieces below the HTTP layer.
 */
#ifndef TRELLIS_VERIFIER_INTERNAL_H
#define TRELLIS_VERIFIER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>
#include <openssl/evp.h>

#include "manifest.h"
#include "trellis/error.h"
#include "trellis/verifier.h"
#include "trellis/verifier_store.h"

/* Limits of the verify API's body (docs/verifier-api.md). */
#define TR__VERIFY_BODY_MAX      (16 * 1024)
#define TR__VERIFY_EVIDENCE_MAX  4096
#define TR__VERIFY_CSR_MAX       4096
#define TR__VERIFY_CHALLENGE_MAX 256

/* What a verdict is made with; one per thread (the store is that thread's connection). */
typedef struct {
    trellis_vstore_t *store;
    const EVP_PKEY *verdict_key; /* shared, read-only */
    const char *kid;             /* thumbprint of verdict_key */
    const char *verifier_id;
    int ttl_s; /* verdict lifetime, TRELLIS_VERDICT_TTL_S by default */
} tr__judge_t;

/* The parsed body of POST /v1/verify. */
typedef struct {
    uint8_t evidence[TR__VERIFY_EVIDENCE_MAX];
    size_t evidence_len;
    uint8_t csr[TR__VERIFY_CSR_MAX];
    size_t csr_len;
    uint8_t challenge[TR__VERIFY_CHALLENGE_MAX];
    size_t challenge_len;
} tr__verify_request_t;

/*
 * Parses the verify body {"evidence": B64URL, "csr": B64URL, "challenge": B64URL}: one JSON
 * object, exactly these members, each non-empty and within its limit. TRELLIS_ERR_PARSE,
 * TRELLIS_ERR_ENCODING or TRELLIS_ERR_TOO_LARGE with a reason naming the member.
 */
trellis_err_t tr__verify_parse(const char *body, size_t len, tr__verify_request_t *out,
                               trellis_reason_t *reason);

typedef struct {
    trellis_verdict_t verdict;
    char jws[TRELLIS_VERDICT_JWS_MAX + 1];
    size_t jws_len;
    trellis_vstore_audit_t audit; /* the entry to append; reason says what really happened */
} tr__verify_outcome_t;

/*
 * Judges a parsed request from the authenticated OEM caller at time now: looks the device up by
 * the token's UEID, checks owner, revocation, token signature, nonce binding and lifecycle, and
 * signs a verdict. TRELLIS_OK whenever a verdict was made (affirming or contraindicated; a
 * device that does not exist and one owned by another OEM both get "unknown_device", the audit
 * entry tells them apart). TRELLIS_ERR_TOKEN_* / TRELLIS_ERR_BAD_EVIDENCE with a reason when the
 * evidence is not a well-formed PSA token (no verdict then), TRELLIS_ERR_STORE, ...
 */
trellis_err_t tr__verify_judge(const tr__judge_t *judge, const char *caller,
                               const tr__verify_request_t *req, int64_t now,
                               tr__verify_outcome_t *out, trellis_reason_t *reason);

/* ---- audit log group commit (audit_queue.c) ---- */

typedef struct tr__audit_queue tr__audit_queue_t;

/* Called on the writer thread once the entry's transaction committed (err TRELLIS_OK) or
 * failed. */
typedef void (*tr__audit_done_fn)(void *arg, trellis_err_t err);
/* Called on the writer thread after the done callbacks of one committed batch: the place to
 * wake whoever those callbacks handed results to, once per batch instead of once per entry. */
typedef void (*tr__audit_batch_fn)(void *arg);

/* A queued entry in storage the caller provides (tr__audit_queue_push_item), so that a verdict
 * waiting for its entry needs no allocation of its own. The queue owns it from a successful
 * push until done is called; done may free the memory holding it. */
typedef struct tr__audit_item {
    struct tr__audit_item *next;
    trellis_vstore_audit_t entry;
    tr__audit_done_fn done;
    void *arg;
    int queue_owned; /* allocated by tr__audit_queue_push, freed by the writer */
} tr__audit_item_t;

/* A queue of at most capacity entries committed by one writer thread through store, which the
 * queue then owns the use of (not the lifetime). When a commit carried more than one entry, the
 * writer waits linger_us (0: never) before taking the next batch, so that under load one fsync
 * carries more entries. on_batch (may be NULL) runs after each batch's done callbacks. */
trellis_err_t tr__audit_queue_new(trellis_vstore_t *store, size_t capacity, unsigned linger_us,
                                  tr__audit_batch_fn on_batch, void *batch_arg,
                                  tr__audit_queue_t **out);
trellis_err_t tr__audit_queue_start(tr__audit_queue_t *q);
/* Queues a copy of entry; done (may be NULL) is called on the writer thread after the commit.
 * TRELLIS_ERR_UNAVAILABLE when the queue is full or stopping (done is not called then). */
trellis_err_t tr__audit_queue_push(tr__audit_queue_t *q, const trellis_vstore_audit_t *entry,
                                   tr__audit_done_fn done, void *arg);
/* Queues item as it is (entry, done and arg filled in by the caller; done is required). Same
 * errors as tr__audit_queue_push; on an error the caller keeps the item. */
trellis_err_t tr__audit_queue_push_item(tr__audit_queue_t *q, tr__audit_item_t *item);
/* Waits until everything queued so far is committed. */
void tr__audit_queue_flush(tr__audit_queue_t *q);
void tr__audit_queue_stats(tr__audit_queue_t *q, size_t *depth, uint64_t *committed,
                           uint64_t *failed);
/* Commits what is still queued, stops the writer and frees the queue. */
void tr__audit_queue_free(tr__audit_queue_t *q);

/* ---- metrics (metrics.c) ---- */

typedef enum {
    TR__ROUTE_VERIFY,
    TR__ROUTE_MANIFESTS,
    TR__ROUTE_VERDICT_KEY,
    TR__ROUTE_HEALTHZ,
    TR__ROUTE_METRICS,
    TR__ROUTE_UPLOADS, /* /v1/manifests/uploads and its part and commit paths */
    TR__ROUTE_COUNT
} tr__route_t;

#define TR__LATENCY_BUCKETS 14

typedef struct {
    _Atomic uint64_t requests[TR__ROUTE_COUNT][16]; /* by status code, see metrics.c */
    _Atomic uint64_t verdicts[2];                   /* affirming, contraindicated */
    _Atomic uint64_t reasons[8];                    /* by reason code, see metrics.c */
    _Atomic uint64_t latency[TR__LATENCY_BUCKETS];  /* verify, cumulative at render time */
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t latency_count;
    _Atomic uint64_t manifests_imported, manifests_present, manifests_rejected;
    _Atomic uint64_t devices_added;
} tr__metrics_t;

void tr__metrics_request(tr__metrics_t *m, tr__route_t route, int status);
void tr__metrics_verdict(tr__metrics_t *m, const trellis_verdict_t *v, uint64_t latency_us);

/* Extra gauges rendered beside the counters. */
typedef struct {
    uint64_t connections_accepted, connections_rejected, connections_timed_out;
    uint64_t connections_active, http_requests;
    uint64_t audit_depth, audit_committed, audit_failed;
    uint64_t uploads_open;
} tr__metrics_gauges_t;

/* Prometheus text exposition format 0.0.4, into a new buffer (free()). */
trellis_err_t tr__metrics_render(tr__metrics_t *m, const tr__metrics_gauges_t *g, char **out,
                                 size_t *out_len);

/* ---- the service (service.c, handlers.c, uploads.c) ---- */

struct trellis_http_server;
struct trellis_http_request;
struct event_base;
struct event;

/* ---- manifest uploads in parts (uploads.c, docs/verifier-api.md) ----
 * A manifest too large for one request goes up as numbered parts, fed in order into one
 * streaming importer that has its own registry connection (its staging table lives in that
 * connection's temporary database), then committed. Memory stays bounded by the number of open
 * uploads times (one part + the importer + SQLite's page caches). */
#define TR__UPLOADS_MAX             4                    /* open at once, all factories */
#define TR__UPLOAD_PART_MAX_DEFAULT (4u * 1024u * 1024u) /* bytes of one part */
#define TR__UPLOAD_TTL_MS_DEFAULT   (15 * 60 * 1000)     /* idle time before abandonment */
#define TR__UPLOAD_ID_HEX_LEN       32                   /* 128 random bits, lowercase hex */
#define TR__UPLOAD_PARTS_MAX        1000000u             /* part numbers are 1..this */

typedef struct tr__upload tr__upload_t;

typedef struct {
    pthread_mutex_t lock;
    tr__upload_t *slot[TR__UPLOADS_MAX];
    size_t part_max;    /* the largest part accepted */
    long long ttl_ms;   /* an upload idle this long is abandoned */
    uint64_t abandoned; /* uploads dropped for idleness since start */
} tr__uploads_t;

struct trellis_verifier {
    trellis_verifier_config_t cfg;
    EVP_PKEY *verdict_key;
    char kid[TRELLIS_JWK_KID_LEN + 1];
    char *key_body; /* the answer of GET /v1/verdict-key, built once */
    size_t key_body_len;
    trellis_vstore_t *audit_store; /* the audit writer's connection */
    tr__audit_queue_t *audit;
    struct trellis_http_server *http;
    tr__metrics_t metrics;
    tr__uploads_t uploads;
    int uploads_ready; /* uploads initialised (its lock exists) */
};

/* One per worker thread: its own registry connection and judge. */
typedef struct tr__worker {
    struct trellis_verifier *v;
    trellis_vstore_t *store;
    tr__judge_t judge;
    struct event_base *base;
    struct event *sweep; /* worker 0 only: abandons idle uploads */
    /* Verdicts whose audit entry is committed, to be answered on this worker (handlers.c;
     * under its pending_lock). */
    struct event *drain;
    struct pending *committed, *committed_tail;
    int dirty;
    struct tr__worker *dirty_next;
} tr__worker_t;

void tr__handle_verify(struct trellis_http_request *req, void *app);
/* The worker's drain event callback: answers the verdicts whose audit entry is committed. */
void tr__verify_drain(evutil_socket_t fd, short what, void *arg);
/* The audit queue's batch callback: wakes the workers that have verdicts to answer. */
void tr__verify_batch_committed(void *arg);
/* Frees the verdicts a stopped worker still holds (all of them aborted). */
void tr__verify_worker_fini(tr__worker_t *w);
void tr__handle_manifests(struct trellis_http_request *req, void *app);
void tr__handle_verdict_key(struct trellis_http_request *req, void *app);
void tr__handle_healthz(struct trellis_http_request *req, void *app);
void tr__handle_metrics(struct trellis_http_request *req, void *app);
void tr__handle_uploads(struct trellis_http_request *req, void *app);
void tr__handle_upload_part(struct trellis_http_request *req, void *app);
void tr__handle_upload_commit(struct trellis_http_request *req, void *app);

/* Helpers the handler files share (handlers.c). */
tr__worker_t *tr__worker_of(struct trellis_http_request *req);
/* Replaces bytes outside printable ASCII with '?': client-facing text may quote input. */
void tr__sanitize(char *s);
/* The error answer, counted under route. */
void tr__respond_error(struct trellis_http_request *req, struct trellis_verifier *v,
                       tr__route_t route, trellis_err_t err, const char *detail);
/* The caller's CN (a valid tenant name) into out; PERMISSION / UNAUTHENTICATED otherwise. */
trellis_err_t tr__caller_of(struct trellis_http_request *req,
                            char out[TRELLIS_VSTORE_NAME_MAX + 1]);
/* Appends a manifest.import audit entry (not waited for: it records no change). */
void tr__audit_import(struct trellis_verifier *v, const char *caller, const char *outcome,
                      const tr__import_report_t *rep);
/* The import API's answer for a finished (or failed) import: metrics, audit, log, JSON. */
void tr__respond_import(struct trellis_http_request *req, struct trellis_verifier *v,
                        tr__route_t route, const char *caller, const tr__import_report_t *rep);

/* Upload table: set up with the server's body limit, and freed (every open upload aborted,
 * the registry unchanged) once no handler runs any more. */
trellis_err_t tr__uploads_init(tr__uploads_t *u, size_t max_body);
void tr__uploads_fini(struct trellis_verifier *v);
/* Abandons the uploads idle for longer than ttl_ms (audited); returns how many. */
size_t tr__uploads_sweep(struct trellis_verifier *v);
/* Open uploads now. */
size_t tr__uploads_open(struct trellis_verifier *v);

#endif /* TRELLIS_VERIFIER_INTERNAL_H */
