/*
 * The HTTP handlers of the verifier (docs/verifier-api.md). Each runs on a worker thread with
 * that worker's own registry connection. A verify answer is held back (the request suspended)
 * until its audit entry is committed by the audit writer: persist before replying.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "manifest.h"
#include "trellis/clock.h"
#include "trellis/http_server.h"
#include "trellis/log.h"
#include "verifier_internal.h"

#define MANIFEST_MEDIA_TYPE "application/x-ndjson"

tr__worker_t *tr__worker_of(trellis_http_request_t *req)
{
    return trellis_http_request_worker_ctx(req);
}

/* Client-facing text is reduced to printable ASCII: reasons may quote bytes of the input. */
void tr__sanitize(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
    }
}

void tr__respond_error(trellis_http_request_t *req, trellis_verifier_t *v, tr__route_t route,
                       trellis_err_t err, const char *detail)
{
    char text[sizeof(trellis_reason_t)];
    snprintf(text, sizeof(text), "%s", detail != NULL ? detail : "");
    tr__sanitize(text);
    tr__metrics_request(&v->metrics, route, trellis_err_http_status(err));
    trellis_http_respond_error(req, err, text[0] != '\0' ? text : NULL);
}

/* The authenticated client: the CN of a certificate issued by the verifier's CA (the TLS layer
 * already refused certificates from anyone else). */
trellis_err_t tr__caller_of(trellis_http_request_t *req, char out[TRELLIS_VSTORE_NAME_MAX + 1])
{
    size_t n = 0;
    trellis_err_t err = trellis_http_request_peer_cn(req, out, TRELLIS_VSTORE_NAME_MAX + 1, &n);
    if (err == TRELLIS_OK && !trellis_vstore_name_valid(out))
        err = TRELLIS_ERR_PERMISSION;
    if (err == TRELLIS_ERR_BUFFER_TOO_SMALL || err == TRELLIS_ERR_PARSE)
        err = TRELLIS_ERR_PERMISSION;
    if (err != TRELLIS_OK)
        out[0] = '\0';
    return err;
}

/* ---- POST /v1/verify ---- */

enum { P_WAITING, P_COMMITTED, P_ABORTED };

/*
 * A verdict waiting for its audit entry. The worker thread owns the request; the audit writer
 * completes the entry. State changes happen under pending_lock; whoever sees the other side gone
 * frees it. Completed verdicts go back to their worker in a list, and the writer wakes each
 * worker once per committed batch (tr__verify_batch_committed), not once per verdict: a
 * cross-thread wake-up costs about as much as the HTTP answer itself.
 */
typedef struct pending {
    tr__audit_item_t item; /* the queued audit entry: no allocation of its own */
    struct pending *next;  /* in the worker's list of committed verdicts */
    trellis_verifier_t *v;
    tr__worker_t *w;
    trellis_http_request_t *req;
    int state;
    trellis_err_t audit_err;
    uint64_t t0_us;
    trellis_verdict_t verdict;
    size_t len;
    char body[TRELLIS_VERDICT_JWS_MAX + 64];
} pending_t;

static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
/* Workers holding committed verdicts not yet announced to them (under pending_lock). */
static tr__worker_t *dirty_workers;

static void pending_respond(pending_t *p)
{
    trellis_verifier_t *v = p->v;
    if (p->audit_err != TRELLIS_OK) {
        /* Fail closed: a verdict that is not in the audit log is not given out. */
        tr__respond_error(p->req, v, TR__ROUTE_VERIFY, TRELLIS_ERR_UNAVAILABLE,
                          "the audit log could not be written");
    } else {
        tr__metrics_verdict(&v->metrics, &p->verdict, trellis_mono_us() - p->t0_us);
        tr__metrics_request(&v->metrics, TR__ROUTE_VERIFY, 200);
        trellis_http_respond_json_text(p->req, 200, p->body, p->len);
    }
}

/* Takes the worker's committed verdicts (under pending_lock). */
static pending_t *take_committed(tr__worker_t *w)
{
    pending_t *list = w->committed;
    w->committed = NULL;
    w->committed_tail = NULL;
    return list;
}

/* Worker thread: answers every committed verdict handed back to it. */
void tr__verify_drain(evutil_socket_t fd, short what, void *arg)
{
    tr__worker_t *w = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&pending_lock);
    pending_t *p = take_committed(w);
    pthread_mutex_unlock(&pending_lock);
    while (p != NULL) {
        pending_t *next = p->next;
        /* Still P_COMMITTED: an abort runs only on this thread, between drains, and marks the
         * ones it finds in the list, which are then only freed. */
        if (p->state == P_COMMITTED)
            pending_respond(p);
        free(p);
        p = next;
    }
}

void tr__verify_worker_fini(tr__worker_t *w)
{
    /* Every suspended request is aborted before a worker ends, so these are only freed. The
     * writer may have listed the worker for a wake-up it has not sent yet: unlist it. */
    pthread_mutex_lock(&pending_lock);
    pending_t *p = take_committed(w);
    for (tr__worker_t **pp = &dirty_workers; *pp != NULL; pp = &(*pp)->dirty_next) {
        if (*pp == w) {
            *pp = w->dirty_next;
            break;
        }
    }
    w->dirty = 0;
    pthread_mutex_unlock(&pending_lock);
    while (p != NULL) {
        pending_t *next = p->next;
        free(p);
        p = next;
    }
}

/* Audit writer thread, for each entry of a batch. */
static void pending_committed(void *arg, trellis_err_t err)
{
    pending_t *p = arg;
    pthread_mutex_lock(&pending_lock);
    if (p->state == P_WAITING) {
        tr__worker_t *w = p->w;
        p->state = P_COMMITTED;
        p->audit_err = err;
        p->next = NULL;
        if (w->committed_tail != NULL)
            w->committed_tail->next = p;
        else
            w->committed = p;
        w->committed_tail = p;
        if (!w->dirty) {
            w->dirty = 1;
            w->dirty_next = dirty_workers;
            dirty_workers = w;
        }
        pthread_mutex_unlock(&pending_lock);
        return;
    }
    pthread_mutex_unlock(&pending_lock);
    free(p); /* the client left; the entry is committed all the same */
}

/* Audit writer thread, after a batch: one wake-up per worker with answers to give. */
void tr__verify_batch_committed(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pending_lock);
    for (tr__worker_t *w = dirty_workers; w != NULL; w = w->dirty_next) {
        w->dirty = 0;
        event_active(w->drain, EV_TIMEOUT, 1);
    }
    dirty_workers = NULL;
    pthread_mutex_unlock(&pending_lock);
}

/* Worker thread, or the thread stopping the server. */
static void pending_aborted(trellis_http_request_t *req, void *arg)
{
    pending_t *p = arg;
    (void)req;
    pthread_mutex_lock(&pending_lock);
    /* Waiting: the writer frees it when the entry is committed. Committed: it sits in the
     * worker's list, whose drain (or the worker's end) frees it without answering. */
    p->state = P_ABORTED;
    pthread_mutex_unlock(&pending_lock);
}

void tr__handle_verify(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    tr__worker_t *w = tr__worker_of(req);
    uint64_t t0 = trellis_mono_us();
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    trellis_reason_t why;
    tr__verify_request_t *body = NULL;
    tr__verify_outcome_t *out = NULL;
    pending_t *p = NULL;
    size_t len = 0;
    int exists = 0;

    trellis_reason_clear(&why);
    trellis_err_t err = tr__caller_of(req, caller);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_VERIFY, err,
                          "a client certificate issued to an OEM by this verifier is required");
        return;
    }
    const uint8_t *raw = trellis_http_request_body(req, &len);
    body = trellis_http_request_alloc(req, sizeof(*body));
    out = trellis_http_request_alloc(req, sizeof(*out));
    if (body == NULL || out == NULL) {
        tr__respond_error(req, v, TR__ROUTE_VERIFY, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    err = tr__verify_parse((const char *)raw, len, body, &why);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_VERIFY, err, why.text);
        return;
    }
    err = tr__verify_judge(&w->judge, caller, body, (int64_t)time(NULL), out, &why);
    /* Only a registered OEM may ask. A device owned by the caller proves it is one (owners are
     * OEMs), so the registry is asked only when the answer would otherwise be negative about
     * ownership or not made at all: one read less on the common path, and the same 403 for a
     * non-OEM whatever the device. */
    if (err != TRELLIS_OK ||
        (out->verdict.n_reasons > 0 &&
         strcmp(out->verdict.reasons[0], TRELLIS_VREASON_UNKNOWN_DEVICE) == 0)) {
        trellis_err_t oem_err = w->store->oem_exists(w->store->ctx, caller, &exists);
        if (oem_err != TRELLIS_OK)
            err = oem_err;
        else if (!exists)
            err = trellis_reason_set(&why, TRELLIS_ERR_PERMISSION,
                                     "the client certificate does not name a registered OEM");
    }
    if (err != TRELLIS_OK) {
        trellis_log(TRELLIS_LOG_INFO, "verify.refused", TRELLIS_KV_STR("caller", caller),
                    TRELLIS_KV_STR("error", trellis_err_name(err)));
        tr__respond_error(req, v, TR__ROUTE_VERIFY, err, why.text);
        return;
    }

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        tr__respond_error(req, v, TR__ROUTE_VERIFY, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    p->v = v;
    p->w = w;
    p->req = req;
    p->state = P_WAITING;
    p->t0_us = t0;
    p->verdict = out->verdict;
    /* The audit entry carries the moment of the decision, to the millisecond. */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    out->audit.ts_ms = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
    p->item.entry = out->audit;
    p->item.done = pending_committed;
    p->item.arg = p;
    int n = snprintf(p->body, sizeof(p->body), "{\"verdict\":\"%s\",\"status\":\"%s\"}", out->jws,
                     trellis_verdict_status_name(out->verdict.status));
    p->len = n > 0 && (size_t)n < sizeof(p->body) ? (size_t)n : 0;
    trellis_http_request_suspend(req, pending_aborted, p);
    err = tr__audit_queue_push_item(v->audit, &p->item);
    if (err != TRELLIS_OK) {
        /* Not queued: the writer never sees p. Answer now, still on the worker thread. */
        free(p);
        tr__respond_error(req, v, TR__ROUTE_VERIFY, TRELLIS_ERR_UNAVAILABLE,
                          "too many verdicts waiting for the audit log; retry");
    }
}

/* ---- POST /v1/manifests ---- */

void tr__audit_import(trellis_verifier_t *v, const char *caller, const char *outcome,
                      const tr__import_report_t *rep)
{
    trellis_vstore_audit_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event, sizeof(e.event), "manifest.import");
    snprintf(e.caller, sizeof(e.caller), "%s", caller);
    snprintf(e.outcome, sizeof(e.outcome), "%s", outcome);
    if (rep->err == TRELLIS_OK)
        snprintf(e.reason, sizeof(e.reason), "batch=%.64s records=%" PRIu64 " imported before",
                 rep->have_header ? rep->header.batch : "?", rep->records);
    else
        snprintf(e.reason, sizeof(e.reason), "batch=%.64s lines=%" PRIu64 " %s: %.150s",
                 rep->have_header ? rep->header.batch : "?", rep->lines_read,
                 trellis_err_name(rep->err), rep->reason.text);
    tr__sanitize(e.reason);
    /* Not a change of the registry, so the answer does not wait for it. */
    tr__audit_queue_push(v->audit, &e, NULL, NULL);
}

void tr__handle_manifests(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    tr__worker_t *w = tr__worker_of(req);
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    tr__import_t *imp = NULL;
    tr__import_report_t *rep = NULL;
    size_t len = 0;

    trellis_err_t err = tr__caller_of(req, caller);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_MANIFESTS, err,
                          "a client certificate issued to a factory by this verifier is required");
        return;
    }
    if (trellis_http_request_expect_content_type(req, MANIFEST_MEDIA_TYPE) != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_MANIFESTS, TRELLIS_ERR_CONTENT_TYPE,
                          "a manifest is sent as " MANIFEST_MEDIA_TYPE);
        return;
    }
    rep = trellis_http_request_alloc(req, sizeof(*rep));
    if (rep == NULL) {
        tr__respond_error(req, v, TR__ROUTE_MANIFESTS, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    const uint8_t *body = trellis_http_request_body(req, &len);
    err = tr__import_new(w->store, caller, (uint64_t)v->cfg.manifest_max_devices, &imp);
    if (err == TRELLIS_OK) {
        /* evhttp hands over the whole body; the importer still walks it line by line and
         * builds nothing per record beyond the line at hand. */
        tr__import_feed(imp, body, len);
        err = tr__import_finish(imp, rep);
    } else {
        rep->err = err;
    }
    tr__import_free(imp);
    tr__respond_import(req, v, TR__ROUTE_MANIFESTS, caller, rep);
}

void tr__respond_import(trellis_http_request_t *req, trellis_verifier_t *v, tr__route_t route,
                        const char *caller, const tr__import_report_t *rep)
{
    int status = 500;
    json_t *o = tr__import_report_json(rep);
    if (o == NULL) {
        tr__respond_error(req, v, route, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    if (rep->err == TRELLIS_OK) {
        /* 200 for both: an import is idempotent, and `trellis factory upload` expects it. */
        status = 200;
        if (rep->already_present) {
            atomic_fetch_add(&v->metrics.manifests_present, 1);
            tr__audit_import(v, caller, "already_present", rep);
        } else {
            atomic_fetch_add(&v->metrics.manifests_imported, 1);
            atomic_fetch_add(&v->metrics.devices_added, rep->added);
        }
        trellis_log(
            TRELLIS_LOG_INFO, "manifest.import", TRELLIS_KV_STR("caller", caller),
            TRELLIS_KV_STR("outcome", rep->already_present ? "already_present" : "imported"),
            TRELLIS_KV_INT("records", (long long)rep->records),
            TRELLIS_KV_INT("added", (long long)rep->added));
    } else {
        status = trellis_err_http_status(rep->err);
        atomic_fetch_add(&v->metrics.manifests_rejected, 1);
        tr__audit_import(v, caller, "rejected", rep);
        trellis_log(TRELLIS_LOG_INFO, "manifest.rejected", TRELLIS_KV_STR("caller", caller),
                    TRELLIS_KV_STR("error", trellis_err_name(rep->err)),
                    TRELLIS_KV_INT("lines_read", (long long)rep->lines_read));
    }
    tr__metrics_request(&v->metrics, route, status);
    trellis_http_respond_json(req, status, o);
    json_decref(o);
}

/* ---- GET /v1/verdict-key, /healthz, /metrics ---- */

void tr__handle_verdict_key(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    tr__metrics_request(&v->metrics, TR__ROUTE_VERDICT_KEY, 200);
    trellis_http_respond_json_text(req, 200, v->key_body, v->key_body_len);
}

void tr__handle_healthz(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    tr__worker_t *w = tr__worker_of(req);
    int exists = 0;
    size_t depth = 0;
    uint64_t committed = 0, failed = 0;
    char text[160];

    tr__audit_queue_stats(v->audit, &depth, &committed, &failed);
    /* One indexed read proves the registry answers. */
    trellis_err_t err = w->store->oem_exists(w->store->ctx, "healthz", &exists);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_HEALTHZ, TRELLIS_ERR_UNAVAILABLE,
                          "registry unavailable");
        return;
    }
    int n = snprintf(text, sizeof(text), "{\"status\":\"ok\",\"audit_queue\":%zu}", depth);
    tr__metrics_request(&v->metrics, TR__ROUTE_HEALTHZ, 200);
    trellis_http_respond_json_text(req, 200, text, (size_t)n);
}

void tr__handle_metrics(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    char *text = NULL;
    size_t len = 0;
    tr__metrics_request(&v->metrics, TR__ROUTE_METRICS, 200);
    if (trellis_verifier_metrics_text(v, &text, &len) != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_METRICS, TRELLIS_ERR_INTERNAL, NULL);
        return;
    }
    trellis_http_respond_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
