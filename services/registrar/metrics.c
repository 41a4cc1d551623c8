/*
 * /metrics in the Prometheus text exposition format (version 0.0.4): requests by route and
 * status, enrollments by outcome, the enrollment latency histogram, verifier calls, and gauges
 * of the HTTP server, the registry writer and the CRL. Counters are lock-free atomics bumped by
 * every worker.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registrar_internal.h"

#define TEXT_MAX (64 * 1024)
#define P        "trellis_registrar_"

static const char *const ROUTE_NAMES[TR__ROUTE_COUNT] = {
    [TR__ROUTE_CHALLENGE] = "/v1/challenge",
    [TR__ROUTE_ENROLL] = "/v1/enroll",
    [TR__ROUTE_REENROLL] = "/v1/reenroll",
    [TR__ROUTE_CA] = "/v1/ca",
    [TR__ROUTE_CRL] = "/v1/crl",
    [TR__ROUTE_HEALTHZ] = "/healthz",
    [TR__ROUTE_METRICS] = "/metrics",
};

/* The status codes the handlers answer with; anything else is "other" (the last slot). */
static const int CODES[TR__STATUS_SLOTS - 1] = {200, 201, 400, 401, 403, 404,
                                                409, 413, 415, 429, 503};
#define OTHER_CODE (TR__STATUS_SLOTS - 1)

/* Enrollment outcomes: "ok", the API codes of design.md §3, then "other". */
static const char *const OUTCOMES[TR__OUTCOMES] = {
    "ok",           "bad_request",    "too_large", "bad_challenge", "replayed",    "bad_csr",
    "bad_evidence", "unknown_device", "revoked",   "rate_limited",  "unavailable", "other"};

static const uint64_t BUCKETS_US[TR__LATENCY_BUCKETS - 1] = {
    500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000, 2000000, 5000000};

void tr__reg_metrics_request(tr__reg_metrics_t *m, tr__reg_route_t route, int status)
{
    size_t i = 0;
    if (m == NULL || route >= TR__ROUTE_COUNT)
        return;
    while (i < OTHER_CODE && CODES[i] != status)
        i++;
    atomic_fetch_add_explicit(&m->requests[route][i], 1, memory_order_relaxed);
}

void tr__reg_metrics_enroll(tr__reg_metrics_t *m, trellis_err_t err, uint64_t latency_us)
{
    size_t i = 0;
    if (m == NULL)
        return;
    const char *code = err == TRELLIS_OK ? "ok" : trellis_err_api_code(err);
    while (i < TR__OUTCOMES - 1 && strcmp(OUTCOMES[i], code) != 0)
        i++;
    atomic_fetch_add_explicit(&m->outcomes[i], 1, memory_order_relaxed);
    if (err != TRELLIS_OK)
        return;
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

static void seconds(text_t *t, const char *name, uint64_t us)
{
    emit(t, "%s %" PRIu64 ".%06" PRIu64 "\n", name, us / 1000000, us % 1000000);
}

trellis_err_t tr__reg_metrics_render(tr__reg_metrics_t *m, const tr__reg_metrics_gauges_t *g,
                                     char **out, size_t *out_len)
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

    emit(&t, "# HELP " P "requests_total Requests answered by the registrar's handlers, by "
             "route and status.\n# TYPE " P "requests_total counter\n");
    for (int r = 0; r < TR__ROUTE_COUNT; r++) {
        for (size_t i = 0; i < TR__STATUS_SLOTS; i++) {
            uint64_t n = load(&m->requests[r][i]);
            if (n == 0)
                continue;
            if (i < OTHER_CODE)
                emit(&t, P "requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n", ROUTE_NAMES[r],
                     CODES[i], n);
            else
                emit(&t, P "requests_total{route=\"%s\",code=\"other\"} %" PRIu64 "\n",
                     ROUTE_NAMES[r], n);
        }
    }
    emit(&t, "# HELP " P "enrollments_total Enrollments and renewals, by outcome (an API error "
             "code, or ok).\n# TYPE " P "enrollments_total counter\n");
    for (size_t i = 0; i < TR__OUTCOMES; i++)
        emit(&t, P "enrollments_total{outcome=\"%s\"} %" PRIu64 "\n", OUTCOMES[i],
             load(&m->outcomes[i]));
    emit(&t, "# HELP " P "enroll_duration_seconds Time from a successful enrollment's arrival to "
             "its answer.\n# TYPE " P "enroll_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < TR__LATENCY_BUCKETS; b++) {
        cumulative += load(&m->latency[b]);
        if (b < TR__LATENCY_BUCKETS - 1)
            emit(&t,
                 P "enroll_duration_seconds_bucket{le=\"%" PRIu64 ".%06" PRIu64 "\"} %" PRIu64 "\n",
                 BUCKETS_US[b] / 1000000, BUCKETS_US[b] % 1000000, cumulative);
        else
            emit(&t, P "enroll_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
    seconds(&t, P "enroll_duration_seconds_sum", load(&m->latency_sum_us));
    emit(&t, P "enroll_duration_seconds_count %" PRIu64 "\n", load(&m->latency_count));

    emit(&t,
         "# HELP " P "verifier_calls_total Verify calls to the verifier, and those that failed "
         "(transport, status or verdict).\n# TYPE " P "verifier_calls_total counter\n" P
         "verifier_calls_total %" PRIu64 "\n" P "verifier_failures_total %" PRIu64 "\n",
         load(&m->verifier_calls), load(&m->verifier_failures));
    emit(&t, "# TYPE " P "verifier_call_seconds_sum counter\n");
    seconds(&t, P "verifier_call_seconds_sum", load(&m->verifier_latency_sum_us));
    emit(&t,
         "# HELP " P "certificates_issued_total Device certificates signed.\n"
         "# TYPE " P "certificates_issued_total counter\n" P "certificates_issued_total %" PRIu64
         "\n# HELP " P "factory_resets_total First-time enrollments that replaced a device's "
         "valid certificates.\n# TYPE " P "factory_resets_total counter\n" P
         "factory_resets_total %" PRIu64 "\n# HELP " P "crl_published_total CRLs published by "
         "this process.\n# TYPE " P "crl_published_total counter\n" P "crl_published_total %" PRIu64
         "\n# HELP " P "crl_number The number of the CRL served."
         "\n# TYPE " P "crl_number gauge\n" P "crl_number %" PRIu64 "\n",
         load(&m->certificates), load(&m->replaced), load(&m->crl_published), g->crl_number);

    emit(&t,
         "# HELP " P "writer_queue_depth Registry operations waiting for the writer.\n"
         "# TYPE " P "writer_queue_depth gauge\n" P "writer_queue_depth %zu\n"
         "# HELP " P "writer_batches_total Registry transactions (group commits).\n"
         "# TYPE " P "writer_batches_total counter\n" P "writer_batches_total %" PRIu64 "\n"
         "# HELP " P "writer_ops_total Registry operations committed or refused in a batch.\n"
         "# TYPE " P "writer_ops_total counter\n" P "writer_ops_total %" PRIu64 "\n"
         "# HELP " P "writer_failed_batches_total Registry transactions that failed.\n"
         "# TYPE " P "writer_failed_batches_total counter\n" P
         "writer_failed_batches_total %" PRIu64 "\n"
         "# HELP " P "writer_refused_total Operations refused because the queue was full.\n"
         "# TYPE " P "writer_refused_total counter\n" P "writer_refused_total %" PRIu64 "\n"
         "# HELP " P "writer_largest_batch Operations in the largest batch so far.\n"
         "# TYPE " P "writer_largest_batch gauge\n" P "writer_largest_batch %zu\n",
         g->writer.depth, g->writer.batches, g->writer.ops, g->writer.failed_batches,
         g->writer.refused, g->writer.largest_batch);

    emit(&t,
         "# HELP " P "connections_total Connections by what became of them.\n"
         "# TYPE " P "connections_total counter\n" P
         "connections_total{outcome=\"accepted\"} %" PRIu64 "\n" P
         "connections_total{outcome=\"rejected_over_limit\"} %" PRIu64 "\n" P
         "connections_total{outcome=\"timed_out\"} %" PRIu64 "\n"
         "# HELP " P "connections_active Open connections.\n"
         "# TYPE " P "connections_active gauge\n" P "connections_active %" PRIu64 "\n"
         "# HELP " P "http_requests_total Requests read in full by the HTTP server, including "
         "those it answered itself (404, 413, ...).\n# TYPE " P "http_requests_total counter\n" P
         "http_requests_total %" PRIu64 "\n",
         g->connections_accepted, g->connections_rejected, g->connections_timed_out,
         g->connections_active, g->http_requests);

    if (t.overflow) {
        free(t.buf);
        return TRELLIS_ERR_TOO_LARGE;
    }
    *out = t.buf;
    *out_len = t.len;
    return TRELLIS_OK;
}
