/*
 * The registrar's small handlers (challenge, CA chain, CRL, health, metrics) and what every
 * handler shares: error answers with Retry-After, and the per-client rate limit.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registrar_internal.h"
#include "trellis/clock.h"
#include "trellis/encoding.h"
#include "trellis/http_server.h"
#include "trellis/log.h"

int64_t tr__reg_now_s(void)
{
    return (int64_t)time(NULL);
}

tr__reg_blob_t *tr__reg_blob_new(const uint8_t *data, size_t len)
{
    tr__reg_blob_t *b = malloc(sizeof(*b) + len);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    if (len > 0)
        memcpy(b->data, data, len);
    return b;
}

void tr__reg_blob_ref(tr__reg_blob_t *b)
{
    if (b != NULL)
        atomic_fetch_add(&b->refs, 1);
}

void tr__reg_blob_unref(tr__reg_blob_t *b)
{
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* Client-facing text is reduced to printable ASCII: reasons may quote the input. */
static void sanitize(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
    }
}

void tr__reg_respond_error(trellis_http_request_t *req, trellis_registrar_t *r,
                           tr__reg_route_t route, trellis_err_t err, const char *detail,
                           unsigned retry_after_s)
{
    char text[sizeof(trellis_reason_t)];
    char retry[16];
    snprintf(text, sizeof(text), "%s", detail != NULL ? detail : "");
    sanitize(text);
    /* RFC 9110 §10.2.3: tell a device when to come back, so that a crowd degrades to retries. */
    if (retry_after_s > 0 &&
        (err == TRELLIS_ERR_RATE_LIMITED || trellis_err_http_status(err) == 503)) {
        snprintf(retry, sizeof(retry), "%u", retry_after_s);
        trellis_http_response_header(req, "Retry-After", retry);
    }
    tr__reg_metrics_request(&r->metrics, route, trellis_err_http_status(err));
    trellis_http_respond_error(req, err, text[0] != '\0' ? text : NULL);
}

int tr__reg_rate_ok(trellis_http_request_t *req, trellis_registrar_t *r, tr__reg_route_t route)
{
    if (r->ratelimit == NULL)
        return 1;
    unsigned wait_s =
        tr__reg_ratelimit_take(r->ratelimit, trellis_http_request_peer(req), trellis_mono_us());
    if (wait_s == 0)
        return 1;
    if (route == TR__ROUTE_ENROLL || route == TR__ROUTE_REENROLL)
        tr__reg_metrics_enroll(&r->metrics, TRELLIS_ERR_RATE_LIMITED, 0);
    tr__reg_respond_error(req, r, route, TRELLIS_ERR_RATE_LIMITED,
                          "too many requests from this address; retry later", wait_s);
    return 0;
}

void tr__reg_handle_challenge(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    uint8_t c[TR__CHALLENGE_LEN];
    char b64[128], body[256];
    size_t n = 0;

    if (!tr__reg_rate_ok(req, r, TR__ROUTE_CHALLENGE))
        return;
    int64_t ttl = (int64_t)(r->cfg.challenge_ttl_ms / 1000);
    trellis_err_t err = tr__reg_challenge_mint(r->secret, tr__reg_now_s(), ttl, c);
    if (err == TRELLIS_OK)
        err = trellis_b64url_encode(c, sizeof(c), b64, sizeof(b64), &n);
    if (err != TRELLIS_OK) {
        tr__reg_respond_error(req, r, TR__ROUTE_CHALLENGE, TRELLIS_ERR_UNAVAILABLE, NULL,
                              (unsigned)r->cfg.retry_after_s);
        return;
    }
    int len = snprintf(body, sizeof(body), "{\"challenge\":\"%s\",\"expires_in\":%lld}", b64,
                       (long long)ttl);
    tr__reg_metrics_request(&r->metrics, TR__ROUTE_CHALLENGE, 200);
    trellis_http_respond_json_text(req, 200, body, (size_t)len);
}

void tr__reg_handle_ca(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    size_t len = 0;
    const char *pem = tr__reg_ca_chain_pem(r->ca, &len);
    tr__reg_metrics_request(&r->metrics, TR__ROUTE_CA, 200);
    trellis_http_respond_bytes(req, 200, "application/pem-certificate-chain", pem, len);
}

void tr__reg_handle_crl(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    pthread_mutex_lock(&r->crl_lock);
    tr__reg_blob_t *crl = r->crl;
    tr__reg_blob_ref(crl);
    pthread_mutex_unlock(&r->crl_lock);
    if (crl == NULL) {
        tr__reg_respond_error(req, r, TR__ROUTE_CRL, TRELLIS_ERR_UNAVAILABLE,
                              "no CRL published yet", (unsigned)r->cfg.retry_after_s);
        return;
    }
    tr__reg_metrics_request(&r->metrics, TR__ROUTE_CRL, 200);
    trellis_http_respond_bytes(req, 200, "application/pkix-crl", crl->data, crl->len);
    tr__reg_blob_unref(crl);
}

void tr__reg_handle_healthz(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    tr__reg_worker_t *w = trellis_http_request_worker_ctx(req);
    static const uint8_t probe[TRELLIS_RSTORE_CHALLENGE_ID] = {0};
    tr__reg_writer_stats_t ws;
    char text[192];
    int used = 0;
    /* One indexed read on this worker's connection proves the registry answers: a registrar
     * that cannot read it cannot enroll anyone, and a load balancer should know. */
    if (w->store->challenge_used(w->store->ctx, probe, &used) != TRELLIS_OK) {
        tr__reg_respond_error(req, r, TR__ROUTE_HEALTHZ, TRELLIS_ERR_UNAVAILABLE,
                              "registry unavailable", (unsigned)r->cfg.retry_after_s);
        return;
    }
    tr__reg_writer_stats(r->writer, &ws);
    pthread_mutex_lock(&r->crl_lock);
    uint64_t crl = r->crl_number;
    pthread_mutex_unlock(&r->crl_lock);
    int n = snprintf(text, sizeof(text),
                     "{\"status\":\"ok\",\"writer_queue\":%zu,\"crl_number\":%" PRIu64 "}",
                     ws.depth, crl);
    tr__reg_metrics_request(&r->metrics, TR__ROUTE_HEALTHZ, 200);
    trellis_http_respond_json_text(req, 200, text, (size_t)n);
}

void tr__reg_handle_metrics(trellis_http_request_t *req, void *app)
{
    trellis_registrar_t *r = app;
    char *text = NULL;
    size_t len = 0;
    tr__reg_metrics_request(&r->metrics, TR__ROUTE_METRICS, 200);
    if (trellis_registrar_metrics_text(r, &text, &len) != TRELLIS_OK) {
        tr__reg_respond_error(req, r, TR__ROUTE_METRICS, TRELLIS_ERR_INTERNAL, NULL, 0);
        return;
    }
    trellis_http_respond_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
