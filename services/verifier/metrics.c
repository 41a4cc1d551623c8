/*
 * /metrics in the Prometheus text exposition format (version 0.0.4): requests by route and
 * status, verdicts by status and reason, the verify latency histogram, imports, and gauges of
 * the HTTP server and the audit queue. Counters are lock-free atomics bumped by every worker.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "verifier_internal.h"

#define TEXT_MAX (64 * 1024)

static const char *const ROUTE_NAMES[TR__ROUTE_COUNT] = {
    [TR__ROUTE_VERIFY] = "/v1/verify",
    [TR__ROUTE_MANIFESTS] = "/v1/manifests",
    [TR__ROUTE_VERDICT_KEY] = "/v1/verdict-key",
    [TR__ROUTE_HEALTHZ] = "/healthz",
    [TR__ROUTE_METRICS] = "/metrics",
    [TR__ROUTE_UPLOADS] = "/v1/manifests/uploads",
};

/* The status codes the handlers answer with; anything else is counted as "other" (index 15). */
static const int CODES[] = {200, 201, 400, 401, 403, 404, 409, 413, 415, 429, 500, 502, 503, 504};
#define N_CODES    (sizeof(CODES) / sizeof(CODES[0]))
#define OTHER_CODE 15

static const char *const REASONS[] = {
    TRELLIS_VREASON_UNKNOWN_DEVICE, TRELLIS_VREASON_REVOKED,   TRELLIS_VREASON_BAD_SIGNATURE,
    TRELLIS_VREASON_NONCE_MISMATCH, TRELLIS_VREASON_LIFECYCLE, TRELLIS_VREASON_BAD_EVIDENCE,
};
#define N_REASONS (sizeof(REASONS) / sizeof(REASONS[0]))

/* Upper bounds of the latency buckets, in microseconds (the last is +Inf). */
static const uint64_t BUCKETS_US[TR__LATENCY_BUCKETS - 1] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000};

void tr__metrics_request(tr__metrics_t *m, tr__route_t route, int status)
{
    size_t i = 0;
    if (route >= TR__ROUTE_COUNT)
        return;
    while (i < N_CODES && CODES[i] != status)
        i++;
    atomic_fetch_add_explicit(&m->requests[route][i < N_CODES ? i : OTHER_CODE], 1,
                              memory_order_relaxed);
}

void tr__metrics_verdict(tr__metrics_t *m, const trellis_verdict_t *v, uint64_t latency_us)
{
    atomic_fetch_add_explicit(&m->verdicts[v->status == TRELLIS_VERDICT_AFFIRMING ? 0 : 1], 1,
                              memory_order_relaxed);
    for (size_t r = 0; r < v->n_reasons; r++) {
        for (size_t i = 0; i < N_REASONS; i++) {
            if (strcmp(v->reasons[r], REASONS[i]) == 0)
                atomic_fetch_add_explicit(&m->reasons[i], 1, memory_order_relaxed);
        }
    }
    size_t b = 0;
    while (b < TR__LATENCY_BUCKETS - 1 && latency_us > BUCKETS_US[b])
        b++;
    atomic_fetch_add_explicit(&m->latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us, latency_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_count, 1, memory_order_relaxed);
}

typedef struct {
    char *buf;
    size_t len, cap;
    int overflow;
} text_t;

static void emit(text_t *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void emit(text_t *t, const char *fmt, ...)
{
    va_list ap;
    if (t->overflow)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->cap - t->len)
        t->overflow = 1;
    else
        t->len += (size_t)n;
}

static uint64_t load(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

trellis_err_t tr__metrics_render(tr__metrics_t *m, const tr__metrics_gauges_t *g, char **out,
                                 size_t *out_len)
{
    text_t t = {.buf = NULL, .len = 0, .cap = TEXT_MAX, .overflow = 0};

    if (out == NULL || out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    *out_len = 0;
    if (m == NULL || g == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    t.buf = malloc(t.cap);
    if (t.buf == NULL)
        return TRELLIS_ERR_NOMEM;

    emit(&t, "# HELP trellis_verifier_requests_total Requests answered by the verifier's "
             "handlers, by route and status.\n# TYPE trellis_verifier_requests_total counter\n");
    for (int r = 0; r < TR__ROUTE_COUNT; r++) {
        for (size_t i = 0; i <= OTHER_CODE; i++) {
            uint64_t n = load(&m->requests[r][i]);
            if (n == 0)
                continue;
            if (i < N_CODES)
                emit(&t, "trellis_verifier_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                     ROUTE_NAMES[r], CODES[i], n);
            else
                emit(&t,
                     "trellis_verifier_requests_total{route=\"%s\",code=\"other\"} %" PRIu64 "\n",
                     ROUTE_NAMES[r], n);
        }
    }
    emit(&t,
         "# HELP trellis_verifier_verdicts_total Signed verdicts, by status.\n"
         "# TYPE trellis_verifier_verdicts_total counter\n"
         "trellis_verifier_verdicts_total{status=\"affirming\"} %" PRIu64 "\n"
         "trellis_verifier_verdicts_total{status=\"contraindicated\"} %" PRIu64 "\n",
         load(&m->verdicts[0]), load(&m->verdicts[1]));
    emit(&t, "# HELP trellis_verifier_verdict_reasons_total Reasons given in negative verdicts.\n"
             "# TYPE trellis_verifier_verdict_reasons_total counter\n");
    for (size_t i = 0; i < N_REASONS; i++)
        emit(&t, "trellis_verifier_verdict_reasons_total{reason=\"%s\"} %" PRIu64 "\n", REASONS[i],
             load(&m->reasons[i]));

    emit(&t, "# HELP trellis_verifier_verify_duration_seconds Time from a verify request's "
             "arrival to its answer, audit commit included.\n"
             "# TYPE trellis_verifier_verify_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < TR__LATENCY_BUCKETS; b++) {
        cumulative += load(&m->latency[b]);
        if (b < TR__LATENCY_BUCKETS - 1)
            emit(&t,
                 "trellis_verifier_verify_duration_seconds_bucket{le=\"%" PRIu64 ".%06" PRIu64
                 "\"} %" PRIu64 "\n",
                 BUCKETS_US[b] / 1000000, BUCKETS_US[b] % 1000000, cumulative);
        else
            emit(&t, "trellis_verifier_verify_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                 cumulative);
    }
    uint64_t sum = load(&m->latency_sum_us);
    emit(&t,
         "trellis_verifier_verify_duration_seconds_sum %" PRIu64 ".%06" PRIu64 "\n"
         "trellis_verifier_verify_duration_seconds_count %" PRIu64 "\n",
         sum / 1000000, sum % 1000000, load(&m->latency_count));

    emit(&t,
         "# HELP trellis_verifier_manifests_total Manifest uploads, by outcome.\n"
         "# TYPE trellis_verifier_manifests_total counter\n"
         "trellis_verifier_manifests_total{outcome=\"imported\"} %" PRIu64 "\n"
         "trellis_verifier_manifests_total{outcome=\"already_present\"} %" PRIu64 "\n"
         "trellis_verifier_manifests_total{outcome=\"rejected\"} %" PRIu64 "\n"
         "# HELP trellis_verifier_devices_imported_total Devices added to the registry.\n"
         "# TYPE trellis_verifier_devices_imported_total counter\n"
         "trellis_verifier_devices_imported_total %" PRIu64 "\n",
         load(&m->manifests_imported), load(&m->manifests_present), load(&m->manifests_rejected),
         load(&m->devices_added));

    emit(&t,
         "# HELP trellis_verifier_connections_total Connections by what became of them.\n"
         "# TYPE trellis_verifier_connections_total counter\n"
         "trellis_verifier_connections_total{outcome=\"accepted\"} %" PRIu64 "\n"
         "trellis_verifier_connections_total{outcome=\"rejected_over_limit\"} %" PRIu64 "\n"
         "trellis_verifier_connections_total{outcome=\"timed_out\"} %" PRIu64 "\n"
         "# HELP trellis_verifier_connections_active Open connections.\n"
         "# TYPE trellis_verifier_connections_active gauge\n"
         "trellis_verifier_connections_active %" PRIu64 "\n"
         "# HELP trellis_verifier_http_requests_total Requests read in full by the HTTP server, "
         "including those it answered itself (404, 413, ...).\n"
         "# TYPE trellis_verifier_http_requests_total counter\n"
         "trellis_verifier_http_requests_total %" PRIu64 "\n"
         "# HELP trellis_verifier_audit_queue_depth Audit entries waiting to be committed.\n"
         "# TYPE trellis_verifier_audit_queue_depth gauge\n"
         "trellis_verifier_audit_queue_depth %" PRIu64 "\n"
         "# HELP trellis_verifier_audit_entries_total Audit entries by commit outcome.\n"
         "# TYPE trellis_verifier_audit_entries_total counter\n"
         "trellis_verifier_audit_entries_total{outcome=\"committed\"} %" PRIu64 "\n"
         "trellis_verifier_audit_entries_total{outcome=\"failed\"} %" PRIu64 "\n"
         "# HELP trellis_verifier_manifest_uploads_open Manifest uploads in parts not yet "
         "committed.\n"
         "# TYPE trellis_verifier_manifest_uploads_open gauge\n"
         "trellis_verifier_manifest_uploads_open %" PRIu64 "\n",
         g->connections_accepted, g->connections_rejected, g->connections_timed_out,
         g->connections_active, g->http_requests, g->audit_depth, g->audit_committed,
         g->audit_failed, g->uploads_open);

    if (t.overflow) {
        free(t.buf);
        return TRELLIS_ERR_TOO_LARGE;
    }
    *out = t.buf;
    *out_len = t.len;
    return TRELLIS_OK;
}
