/*
 * The enrollment flow (POST /v1/enroll) and renewal (POST /v1/reenroll), asynchronous from end
 * to end so that a worker's event loop never waits:
 *
 *   enroll:   parse and check the body (request.c)
 *          -> claim the challenge           (in flight in this process: identical requests
 *                                            racing are refused as replayed at once)
 *          -> refuse a used challenge       (an indexed read on this worker's connection)
 *          -> ask the verifier              (async client on this worker's loop)
 *          -> check the verdict             (pinned key, device, CSR hash, nonce, OEM, expiry)
 *          -> record the enrollment         (registry writer, group commit: RECORD FIRST; the
 *                                            record consumes the challenge, so single use holds
 *                                            across instances and restarts)
 *          -> sign the certificate, answer 201
 *   An attempt that fails after the claim still consumes its challenge (queued for the writer
 *   before the claim is released), so a challenge is used once whatever the outcome.
 *   reenroll: parse the body, check the CSR's subject against the client certificate
 *          -> record (the old certificate is revoked in the same transaction) -> sign, answer
 *
 * Each request's state lives in one heap object (flow_t), shared by its worker thread (the
 * request, the verifier call, the event that resumes it) and the writer thread (while an
 * operation is queued). Hand-overs happen under flow_lock: the writer reports completion by
 * activating the flow's event on the worker's loop, and whichever side sees the other gone (the
 * client disconnected, or the server is stopping) frees the flow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "registrar_internal.h"
#include "trellis/clock.h"
#include "trellis/http_client.h"
#include "trellis/http_server.h"
#include "trellis/log.h"

enum { IDLE, IN_WRITER, SIGNALLED };

typedef struct {
    trellis_registrar_t *r;
    tr__reg_worker_t *w;
    trellis_http_request_t *req;
    struct event *ev;
    int state; /* under flow_lock */
    int aborted;
    tr__reg_route_t route;
    trellis_http_call_t *call;
    uint64_t t0_us, call_t0_us;
    trellis_rstore_op_t op;
    int claimed;  /* the challenge is in r->inflight */
    int consumed; /* its consumption is committed or queued */
    tr__reg_enroll_req_t in;
    char peer[TRELLIS_RSTORE_NAME_MAX + 1];
    char old_serial[TRELLIS_RSTORE_SERIAL_LEN + 1];
    char jws[TR__VERDICT_MAX + 1];
    tr__reg_cert_plan_t plan;
} flow_t;

static pthread_mutex_t flow_lock = PTHREAD_MUTEX_INITIALIZER;

static void flow_free(flow_t *f)
{
    if (f == NULL)
        return;
    if (f->ev != NULL)
        event_free(f->ev);
    trellis_csr_cleanup(&f->in.csr);
    free(f);
}

static const char *kind_name(const flow_t *f)
{
    return f->route == TR__ROUTE_REENROLL ? "reenroll" : "enroll";
}

static void consume_done(void *arg, trellis_rstore_op_t *op)
{
    (void)arg;
    free(op);
}

/* The end of a claim: an attempt that did not record its challenge consumes it all the same
 * (fire and forget: queued before the claim goes, so the writer commits it before any later
 * record of the same challenge), then the claim is released. */
static void flow_unclaim(flow_t *f)
{
    if (!f->claimed)
        return;
    if (!f->consumed) {
        trellis_rstore_op_t *op = calloc(1, sizeof(*op));
        if (op != NULL) {
            op->type = TRELLIS_RSTORE_OP_CONSUME;
            memcpy(op->challenge_id, f->in.challenge_id, sizeof(op->challenge_id));
            op->challenge_expires = f->in.challenge_expires;
            if (tr__reg_writer_push(f->r->writer, op, consume_done, NULL) != TRELLIS_OK)
                free(op);
        }
        f->consumed = 1;
    }
    tr__reg_inflight_release(f->r->inflight, f->in.challenge_id);
    f->claimed = 0;
}

/* Ends the flow with an error answer; on the worker thread. */
static void flow_fail(flow_t *f, trellis_err_t err, const char *detail)
{
    trellis_registrar_t *r = f->r;
    flow_unclaim(f);
    tr__reg_metrics_enroll(&r->metrics, err, trellis_mono_us() - f->t0_us);
    trellis_log(err == TRELLIS_ERR_UNAVAILABLE ? TRELLIS_LOG_WARN : TRELLIS_LOG_INFO,
                f->route == TR__ROUTE_REENROLL ? "reenroll.refused" : "enroll.refused",
                TRELLIS_KV_STR("peer", f->peer), TRELLIS_KV_STR("device", f->in.device_id),
                TRELLIS_KV_STR("error", trellis_err_api_code(err)),
                TRELLIS_KV_STR("detail", detail != NULL ? detail : ""));
    tr__reg_respond_error(f->req, r, f->route, err, detail,
                          err == TRELLIS_ERR_UNAVAILABLE ? (unsigned)r->cfg.retry_after_s : 0);
    f->req = NULL;
    flow_free(f);
}

/* Writer thread: the flow's operation is done; hand it back to its worker. */
static void writer_done(void *arg, trellis_rstore_op_t *op)
{
    flow_t *f = arg;
    pthread_mutex_lock(&flow_lock);
    /* A record that committed, or found its challenge used, leaves nothing to consume. */
    if (op->err == TRELLIS_OK || op->err == TRELLIS_ERR_REPLAYED)
        f->consumed = 1;
    if (f->aborted) {
        pthread_mutex_unlock(&flow_lock);
        /* The client left; what was committed stays committed. */
        flow_unclaim(f);
        flow_free(f);
        return;
    }
    f->state = SIGNALLED;
    event_active(f->ev, EV_TIMEOUT, 1);
    pthread_mutex_unlock(&flow_lock);
}

/* Worker thread (or the thread stopping the server): the request can no longer be answered. */
static void flow_abort(trellis_http_request_t *req, void *arg)
{
    flow_t *f = arg;
    (void)req;
    pthread_mutex_lock(&flow_lock);
    f->aborted = 1;
    int in_writer = f->state == IN_WRITER;
    /* Freed here, on the thread that owns its loop; the writer never touches it once aborted. */
    if (f->ev != NULL)
        event_free(f->ev);
    f->ev = NULL;
    pthread_mutex_unlock(&flow_lock);
    if (f->call != NULL) {
        trellis_http_call_cancel(f->call);
        f->call = NULL;
    }
    trellis_log(TRELLIS_LOG_INFO, "enroll.aborted", TRELLIS_KV_STR("peer", f->peer),
                TRELLIS_KV_STR("kind", kind_name(f)));
    f->req = NULL;
    if (!in_writer) {
        flow_unclaim(f);
        flow_free(f);
    }
}

static void push(flow_t *f)
{
    pthread_mutex_lock(&flow_lock);
    f->state = IN_WRITER;
    pthread_mutex_unlock(&flow_lock);
    trellis_err_t err = tr__reg_writer_push(f->r->writer, &f->op, writer_done, f);
    if (err != TRELLIS_OK) {
        pthread_mutex_lock(&flow_lock);
        f->state = IDLE;
        pthread_mutex_unlock(&flow_lock);
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "the registry is busy; retry");
    }
}

static void audit_op_done(void *arg, trellis_rstore_op_t *op)
{
    (void)arg;
    free(op);
}

/* Fire and forget: a contraindicated verdict is a decision worth keeping. */
static void audit_verdict(flow_t *f, trellis_err_t err)
{
    trellis_rstore_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return;
    op->type = TRELLIS_RSTORE_OP_AUDIT;
    snprintf(op->audit.event, sizeof(op->audit.event), "enroll");
    snprintf(op->audit.actor, sizeof(op->audit.actor), "%s", f->peer);
    snprintf(op->audit.device, sizeof(op->audit.device), "%s", f->in.device_id);
    snprintf(op->audit.outcome, sizeof(op->audit.outcome), "refused");
    snprintf(op->audit.detail, sizeof(op->audit.detail), "verifier verdict: %s",
             trellis_err_api_code(err));
    if (tr__reg_writer_push(f->r->writer, op, audit_op_done, NULL) != TRELLIS_OK)
        free(op);
}

/* ---- the last step: sign and answer ---- */

/* RFC 3339 §5.6 in UTC: "2026-11-25T13:00:00Z", from digits rather than strftime. */
static void rfc3339(int64_t t, char out[static 21])
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    int v[6] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec};
    static const char sep[6] = {'-', '-', 'T', ':', ':', 'Z'};
    size_t n = 0;
    for (int i = 0; i < 6; i++) {
        int digits = i == 0 ? 4 : 2, x = v[i];
        for (int d = digits - 1; d >= 0; d--, x /= 10)
            out[n + (size_t)d] = (char)('0' + x % 10);
        n += (size_t)digits;
        out[n++] = sep[i];
    }
    out[n] = '\0';
}

/*
 * The 201 body {"device_id", "certificate", "not_after"} (design.md §3), written directly: its
 * only free text is the PEM chain, whose newlines are the one thing JSON needs escaped
 * (RFC 8259 §7; anything else below 0x20, a quote or a backslash is escaped too, though PEM has
 * none). A new NUL-terminated buffer (free()).
 */
static char *answer_body(const char *device_id, const char *pem, size_t pem_len,
                         const char *not_after, size_t *len)
{
    static const char hex[] = "0123456789abcdef";
    size_t max = 96 + strlen(device_id) + strlen(not_after) + pem_len * 6;
    char *out = malloc(max);
    if (out == NULL)
        return NULL;
    int n = snprintf(out, max, "{\"device_id\":\"%s\",\"certificate\":\"", device_id);
    if (n < 0 || (size_t)n >= max) {
        free(out);
        return NULL;
    }
    size_t k = (size_t)n;
    for (size_t i = 0; i < pem_len; i++) {
        unsigned char c = (unsigned char)pem[i];
        if (c == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else if (c < 0x20 || c == '"' || c == '\\') {
            out[k++] = '\\';
            out[k++] = 'u';
            out[k++] = '0';
            out[k++] = '0';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        } else {
            out[k++] = (char)c;
        }
    }
    n = snprintf(out + k, max - k, "\",\"not_after\":\"%s\"}", not_after);
    if (n < 0 || (size_t)n >= max - k) {
        free(out);
        return NULL;
    }
    *len = k + (size_t)n;
    return out;
}

static void answer(flow_t *f)
{
    trellis_registrar_t *r = f->r;
    char *pem = NULL, *body = NULL;
    size_t pem_len = 0, body_len = 0;
    char not_after[21];

    /* The enrollment is committed: only now does the certificate come to exist. */
    trellis_err_t err = tr__reg_ca_issue_chain_pem(
        r->ca, f->w->ca_signer, &f->plan, f->in.device_id, f->in.csr.point, &pem, &pem_len);
    if (err != TRELLIS_OK) {
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "the certificate could not be signed; retry");
        goto out;
    }
    rfc3339(f->plan.not_after, not_after);
    body = answer_body(f->in.device_id, pem, pem_len, not_after, &body_len);
    if (body == NULL) {
        flow_fail(f, TRELLIS_ERR_NOMEM, NULL);
        goto out;
    }
    f->consumed = 1; /* by the record */
    flow_unclaim(f);
    atomic_fetch_add_explicit(&r->metrics.certificates, 1, memory_order_relaxed);
    if (f->op.replaced)
        atomic_fetch_add_explicit(&r->metrics.replaced, 1, memory_order_relaxed);
    tr__reg_metrics_enroll(&r->metrics, TRELLIS_OK, trellis_mono_us() - f->t0_us);
    tr__reg_metrics_request(&r->metrics, f->route, 201);
    trellis_log(TRELLIS_LOG_INFO, f->route == TR__ROUTE_REENROLL ? "reenroll.ok" : "enroll.ok",
                TRELLIS_KV_STR("device", f->in.device_id),
                TRELLIS_KV_STR("serial", f->plan.serial_hex), TRELLIS_KV_STR("peer", f->peer),
                TRELLIS_KV_INT("replaced", f->op.replaced),
                TRELLIS_KV_INT("revoked_certs", (long long)f->op.revoked_certs));
    trellis_http_respond_json_text(f->req, 201, body, body_len);
    f->req = NULL;
    flow_free(f);
out:
    free(body);
    free(pem);
}

static void after_record(flow_t *f)
{
    trellis_err_t err = f->op.err;
    switch (err) {
    case TRELLIS_OK:
        f->consumed = 1;
        answer(f);
        return;
    case TRELLIS_ERR_REPLAYED:
        f->consumed = 1;
        flow_fail(f, err, "this challenge was already used");
        return;
    case TRELLIS_ERR_REVOKED:
        flow_fail(f, err,
                  f->route == TR__ROUTE_REENROLL
                      ? "the device or its certificate is revoked"
                      : "the device is revoked; it may enroll again once reinstated");
        return;
    case TRELLIS_ERR_CONFLICT:
        flow_fail(f, err, "the device is already enrolled and factory resets are denied");
        return;
    case TRELLIS_ERR_UNKNOWN_DEVICE:
        flow_fail(f, err, "the device is not enrolled");
        return;
    default:
        trellis_log(TRELLIS_LOG_ERROR, "registry.record_failed",
                    TRELLIS_KV_STR("device", f->in.device_id),
                    TRELLIS_KV_STR("error", trellis_err_name(err)));
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "the registry is unavailable; retry");
        return;
    }
}

static void record(flow_t *f, trellis_rstore_kind_t kind)
{
    trellis_registrar_t *r = f->r;
    trellis_err_t err = tr__reg_ca_plan(r->ca, tr__reg_now_s(),
                                        (int64_t)(r->cfg.cert_validity_ms / 1000), &f->plan);
    if (err != TRELLIS_OK) {
        trellis_log(TRELLIS_LOG_ERROR, "ca.unusable",
                    TRELLIS_KV_STR("error", trellis_err_name(err)));
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "the device CA cannot issue certificates");
        return;
    }
    trellis_rstore_op_t *op = &f->op;
    memset(op, 0, sizeof(*op));
    op->type = TRELLIS_RSTORE_OP_RECORD;
    trellis_rstore_enrollment_t *e = &op->record;
    e->kind = kind;
    memcpy(e->device_id, f->in.device_id, sizeof(e->device_id));
    memcpy(e->serial, f->plan.serial_hex, sizeof(e->serial));
    memcpy(e->public_key, f->in.csr.point, sizeof(e->public_key));
    e->not_before = f->plan.not_before;
    e->not_after = f->plan.not_after;
    memcpy(e->csr_sha256, f->in.csr.sha256, sizeof(e->csr_sha256));
    snprintf(e->actor, sizeof(e->actor), "%s", f->peer);
    if (kind == TRELLIS_RSTORE_ENROLL) {
        memcpy(e->challenge_id, f->in.challenge_id, sizeof(e->challenge_id));
        e->challenge_expires = f->in.challenge_expires;
        e->verdict = f->jws;
        e->reset_policy = r->reset_policy;
    } else {
        memcpy(e->old_serial, f->old_serial, sizeof(e->old_serial));
    }
    push(f);
}

/* ---- the verifier's answer ---- */

static void on_verdict(const trellis_http_response_t *resp, void *arg)
{
    flow_t *f = arg;
    trellis_registrar_t *r = f->r;
    trellis_reason_t why;
    f->call = NULL;

    atomic_fetch_add_explicit(&r->metrics.verifier_latency_sum_us,
                              trellis_mono_us() - f->call_t0_us, memory_order_relaxed);
    if (resp->err != TRELLIS_OK) {
        atomic_fetch_add_explicit(&r->metrics.verifier_failures, 1, memory_order_relaxed);
        trellis_log(TRELLIS_LOG_WARN, "verifier.unavailable",
                    TRELLIS_KV_STR("error", trellis_err_name(resp->err)),
                    TRELLIS_KV_STR("detail", resp->detail != NULL ? resp->detail : ""));
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "the verifier is unavailable; retry");
        return;
    }
    tr__reg_verdict_expect_t expect = {
        .verdict_key = r->verdict_key,
        .oem = r->cfg.oem,
        .device_id = f->in.device_id,
        .csr_sha256 = f->in.csr.sha256,
        .nonce = f->in.nonce,
    };
    trellis_err_t err = tr__reg_verdict_check(&expect, resp->status, resp->body, resp->body_len,
                                              tr__reg_now_s(), f->jws, &why);
    if (err != TRELLIS_OK) {
        if (err == TRELLIS_ERR_UNAVAILABLE) {
            atomic_fetch_add_explicit(&r->metrics.verifier_failures, 1, memory_order_relaxed);
            trellis_log(TRELLIS_LOG_ERROR, "verifier.bad_answer",
                        TRELLIS_KV_INT("status", resp->status), TRELLIS_KV_STR("detail", why.text));
            flow_fail(f, err, "the verifier's answer could not be used; retry");
            return;
        }
        if (f->jws[0] != '\0')
            audit_verdict(f, err);
        flow_fail(f, err, why.text);
        return;
    }
    record(f, TRELLIS_RSTORE_ENROLL);
}

static void ask_verifier(flow_t *f)
{
    trellis_registrar_t *r = f->r;
    char *body = NULL;
    size_t len = 0;
    trellis_err_t err = tr__reg_verify_body(&f->in, &body, &len);
    if (err != TRELLIS_OK) {
        flow_fail(f, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    trellis_http_client_request_t rq = {
        .method = TRELLIS_HTTP_POST,
        .url = r->verify_url,
        .content_type = "application/json",
        .body = body,
        .body_len = len,
        .timeout_ms = (unsigned)r->cfg.verifier_timeout_ms,
    };
    f->call_t0_us = trellis_mono_us();
    atomic_fetch_add_explicit(&r->metrics.verifier_calls, 1, memory_order_relaxed);
    err = trellis_http_client_send(f->w->verifier, &rq, on_verdict, f, &f->call);
    free(body);
    if (err != TRELLIS_OK) {
        f->call = NULL;
        atomic_fetch_add_explicit(&r->metrics.verifier_failures, 1, memory_order_relaxed);
        flow_fail(f, TRELLIS_ERR_UNAVAILABLE, "too many calls to the verifier in flight; retry");
    }
}

/* Worker thread: the writer finished the flow's operation. */
static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    flow_t *f = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&flow_lock);
    f->state = IDLE;
    pthread_mutex_unlock(&flow_lock);
    after_record(f);
}

static flow_t *flow_new(trellis_http_request_t *req, trellis_registrar_t *r, tr__reg_route_t route)
{
    flow_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->r = r;
    f->w = trellis_http_request_worker_ctx(req);
    f->req = req;
    f->route = route;
    f->t0_us = trellis_mono_us();
    snprintf(f->peer, sizeof(f->peer), "%s", trellis_http_request_peer(req));
    return f;
}

/* Suspends the request and creates the event that resumes it. 0 on failure (answered). */
static int flow_suspend(flow_t *f)
{
    f->ev = event_new(trellis_http_request_base(f->req), -1, 0, on_resume, f);
    if (f->ev == NULL || trellis_http_request_suspend(f->req, flow_abort, f) != TRELLIS_OK) {
        flow_fail(f, TRELLIS_ERR_NOMEM, NULL);
        return 0;
    }
    return 1;
}

void tr__reg_handle_enroll(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    trellis_reason_t why;
    size_t len = 0;

    if (!tr__reg_rate_ok(req, r, TR__ROUTE_ENROLL))
        return;
    flow_t *f = flow_new(req, r, TR__ROUTE_ENROLL);
    if (f == NULL) {
        tr__reg_respond_error(req, r, TR__ROUTE_ENROLL, TRELLIS_ERR_NOMEM, NULL, 1);
        return;
    }
    const uint8_t *body = trellis_http_request_body(req, &len);
    trellis_err_t err =
        tr__reg_enroll_parse(body, len, r->secret, tr__reg_now_s(),
                             (int64_t)(r->cfg.challenge_ttl_ms / 1000), &f->in, &why);
    if (err != TRELLIS_OK) {
        flow_fail(f, err, why.text);
        return;
    }
    /* Single use, before anything is spent on the request: of identical requests in flight
     * only the first goes on, and a challenge the registry has seen goes no further. */
    err = tr__reg_inflight_claim(r->inflight, f->in.challenge_id);
    if (err != TRELLIS_OK) {
        f->consumed = 1; /* not ours to consume: the request holding it will */
        flow_fail(f, err,
                  err == TRELLIS_ERR_REPLAYED ? "this challenge is already being used"
                                              : "too many enrollments in flight; retry");
        return;
    }
    f->claimed = 1;
    int used = 0;
    err = f->w->store->challenge_used(f->w->store->ctx, f->in.challenge_id, &used);
    if (err != TRELLIS_OK || used) {
        f->consumed = 1;
        flow_fail(f, err != TRELLIS_OK ? TRELLIS_ERR_UNAVAILABLE : TRELLIS_ERR_REPLAYED,
                  err != TRELLIS_OK ? "the registry is unavailable; retry"
                                    : "this challenge was already used");
        return;
    }
    if (!flow_suspend(f))
        return;
    ask_verifier(f);
}

/* The serial of a certificate as 32 lowercase hex digits (Trellis serials are 16 bytes). */
static trellis_err_t serial_hex(X509 *cert, char out[static TRELLIS_RSTORE_SERIAL_LEN + 1])
{
    trellis_err_t err = TRELLIS_ERR_PARSE;
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    out[0] = '\0';
    if (hex != NULL && strlen(hex) == TRELLIS_RSTORE_SERIAL_LEN) {
        for (size_t i = 0; i < TRELLIS_RSTORE_SERIAL_LEN; i++)
            out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        out[TRELLIS_RSTORE_SERIAL_LEN] = '\0';
        err = TRELLIS_OK;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
    return err;
}

void tr__reg_handle_reenroll(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    trellis_reason_t why;
    size_t len = 0, cn_len = 0;
    char cn[TRELLIS_HTTP_CN_MAX + 1];

    if (!tr__reg_rate_ok(req, r, TR__ROUTE_REENROLL))
        return;
    flow_t *f = flow_new(req, r, TR__ROUTE_REENROLL);
    if (f == NULL) {
        tr__reg_respond_error(req, r, TR__ROUTE_REENROLL, TRELLIS_ERR_NOMEM, NULL, 1);
        return;
    }
    X509 *peer = trellis_http_request_peer_cert(req);
    if (peer == NULL) {
        flow_fail(f, TRELLIS_ERR_UNAUTHENTICATED,
                  "renewal needs the device's current certificate (mutual TLS)");
        return;
    }
    if (trellis_http_request_peer_cn(req, cn, sizeof(cn), &cn_len) != TRELLIS_OK ||
        !trellis_rstore_hex32_valid(cn) || serial_hex(peer, f->old_serial) != TRELLIS_OK) {
        flow_fail(f, TRELLIS_ERR_PERMISSION, "the client certificate is not a device certificate");
        return;
    }
    memcpy(f->in.device_id, cn, sizeof(f->in.device_id));
    const uint8_t *body = trellis_http_request_body(req, &len);
    trellis_err_t err = tr__reg_reenroll_parse(body, len, f->in.csr_der, sizeof(f->in.csr_der),
                                               &f->in.csr_len, &f->in.csr, &why);
    if (err == TRELLIS_OK)
        err = trellis_csr_check_subject(&f->in.csr, f->in.device_id, &why);
    if (err != TRELLIS_OK) {
        flow_fail(f, err, why.text);
        return;
    }
    if (!flow_suspend(f))
        return;
    record(f, TRELLIS_RSTORE_REENROLL);
}
