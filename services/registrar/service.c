/*
 * The registrar service: loads its keys and certificates once, prepares the HTTPS server (one
 * event loop and one verifier client per worker thread) and the registry writer, whose thread
 * also keeps the served CRL fresh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>
#include <openssl/crypto.h>

#include "registrar_internal.h"
#include "trellis/clock.h"
#include "trellis/crypto.h"
#include "trellis/http_client.h"
#include "trellis/http_server.h"
#include "trellis/log.h"

#define TICK_MS             1000
#define PURGE_EVERY_S       60
#define RATELIMIT_SLOTS     65536
#define INFLIGHT_SLOTS      262144
#define CRL_MIN_INTERVAL_US 1000000

static const trellis_http_route_t ROUTES[] = {
    {TRELLIS_HTTP_GET, "/v1/challenge", tr__reg_handle_challenge, 0},
    {TRELLIS_HTTP_POST, "/v1/enroll", tr__reg_handle_enroll, TRELLIS_HTTP_ROUTE_JSON},
    {TRELLIS_HTTP_POST, "/v1/reenroll", tr__reg_handle_reenroll, TRELLIS_HTTP_ROUTE_JSON},
    {TRELLIS_HTTP_GET, "/v1/ca", tr__reg_handle_ca, 0},
    {TRELLIS_HTTP_GET, "/v1/crl", tr__reg_handle_crl, 0},
    {TRELLIS_HTTP_GET, "/healthz", tr__reg_handle_healthz, 0},
    {TRELLIS_HTTP_GET, "/metrics", tr__reg_handle_metrics, 0},
};

static trellis_err_t worker_init(void *app, unsigned index, struct event_base *base, void **ctx)
{
    trellis_registrar_t *r = app;
    trellis_reason_t why;
    tr__reg_worker_t *w = calloc(1, sizeof(*w));
    (void)index;
    if (w == NULL)
        return TRELLIS_ERR_NOMEM;
    trellis_http_client_config_t cc = {
        .ca_file = r->cfg.verifier_ca,
        .cert_file = r->cfg.verifier_cert,
        .key_file = r->cfg.verifier_key,
        .allow_plain_http = false,
        .timeout_ms = (unsigned)r->cfg.verifier_timeout_ms,
        .max_response_body = 64 * 1024,
        /* Keep-alive to the verifier: a handshake per enrollment would cost more than the
         * verdict itself. */
        .max_idle_per_host = (unsigned)r->cfg.verifier_max_conns,
        .max_conns_per_host = (unsigned)r->cfg.verifier_max_conns,
    };
    trellis_err_t err = trellis_http_client_new(base, &cc, &w->verifier, &why);
    if (err != TRELLIS_OK) {
        trellis_log(TRELLIS_LOG_ERROR, "registrar.verifier_client",
                    TRELLIS_KV_STR("error", trellis_err_name(err)),
                    TRELLIS_KV_STR("detail", why.text));
        free(w);
        return err;
    }
    err = trellis_registrar_open_store(&r->cfg, &w->store, &why);
    if (err == TRELLIS_OK)
        err = tr__reg_ca_signer_new(r->ca, &w->ca_signer);
    if (err != TRELLIS_OK) {
        trellis_rstore_close(w->store);
        trellis_http_client_free(w->verifier);
        free(w);
        return err;
    }
    w->r = r;
    w->base = base;
    *ctx = w;
    return TRELLIS_OK;
}

static void worker_fini(void *app, unsigned index, void *ctx)
{
    tr__reg_worker_t *w = ctx;
    (void)app;
    (void)index;
    if (w == NULL)
        return;
    EVP_PKEY_CTX_free(w->ca_signer);
    trellis_http_client_free(w->verifier);
    trellis_rstore_close(w->store);
    free(w);
}

/* ---- the CRL, kept fresh by the writer thread ---- */

/* Serves the registry's latest CRL if it is not the one served already. */
static void crl_refresh(trellis_registrar_t *r, trellis_rstore_t *store)
{
    uint64_t number = 0;
    int64_t this_update = 0;
    size_t len = 0;
    uint8_t *der = NULL;

    trellis_err_t err = store->crl_get(store->ctx, &number, &this_update, NULL, 0, &len);
    if (err != TRELLIS_ERR_BUFFER_TOO_SMALL)
        return;
    pthread_mutex_lock(&r->crl_lock);
    int same = number == r->crl_number && r->crl != NULL;
    pthread_mutex_unlock(&r->crl_lock);
    if (same)
        return;
    der = malloc(len);
    if (der == NULL)
        return;
    if (store->crl_get(store->ctx, &number, &this_update, der, len, &len) == TRELLIS_OK) {
        tr__reg_blob_t *b = tr__reg_blob_new(der, len);
        if (b != NULL) {
            pthread_mutex_lock(&r->crl_lock);
            tr__reg_blob_t *old = r->crl;
            r->crl = b;
            r->crl_number = number;
            r->crl_this_update = this_update;
            pthread_mutex_unlock(&r->crl_lock);
            tr__reg_blob_unref(old);
        }
    }
    free(der);
}

static void crl_publish(trellis_registrar_t *r, trellis_rstore_t *store, const char *why)
{
    trellis_reason_t reason;
    uint64_t number = 0;
    trellis_err_t err =
        tr__reg_crl_publish(store, r->ca, tr__reg_now_s(), (int64_t)(r->cfg.crl_validity_ms / 1000),
                            r->cfg.crl_file, &number, NULL, NULL, &reason);
    if (err != TRELLIS_OK) {
        /* The dirty flag stays set: the next tick tries again. */
        trellis_log(TRELLIS_LOG_ERROR, "crl.publish_failed",
                    TRELLIS_KV_STR("error", trellis_err_name(err)),
                    TRELLIS_KV_STR("detail", reason.text));
        return;
    }
    atomic_store(&r->crl_dirty, 0);
    r->crl_published_us = trellis_mono_us();
    atomic_fetch_add_explicit(&r->metrics.crl_published, 1, memory_order_relaxed);
    trellis_log(TRELLIS_LOG_INFO, "crl.published", TRELLIS_KV_INT("number", (long long)number),
                TRELLIS_KV_STR("why", why));
    crl_refresh(r, store);
}

static void after_batch(void *arg, const trellis_rstore_op_t *ops, size_t n)
{
    trellis_registrar_t *r = arg;
    for (size_t i = 0; i < n; i++) {
        /* A renewal or a factory reset revoked certificates: the CRL must say so now. */
        if (ops[i].type == TRELLIS_RSTORE_OP_RECORD && ops[i].err == TRELLIS_OK &&
            ops[i].revoked_certs > 0)
            atomic_store(&r->crl_dirty, 1);
    }
    /* At once when revocations are rare; under a stream of renewals at most once a second
     * (the tick publishes what is left), so the CRL's cost does not grow with the rate. */
    if (atomic_load(&r->crl_dirty) &&
        trellis_mono_us() - r->crl_published_us >= CRL_MIN_INTERVAL_US)
        crl_publish(r, r->store, "revocation");
}

static void tick(void *arg, trellis_rstore_t *store)
{
    trellis_registrar_t *r = arg;
    int64_t now = tr__reg_now_s();
    if (now - r->last_purge_s >= PURGE_EVERY_S) {
        uint64_t purged = 0;
        /* A consumed challenge is kept a minute past its expiry, beyond any accepted skew. */
        if (store->challenge_purge(store->ctx, now - 60, &purged) == TRELLIS_OK) {
            r->last_purge_s = now;
            if (purged > 0)
                trellis_log(TRELLIS_LOG_DEBUG, "challenges.purged",
                            TRELLIS_KV_INT("count", (long long)purged));
        }
    }
    /* Another process (the CLI's revoke) may have published a newer CRL. */
    crl_refresh(r, store);
    pthread_mutex_lock(&r->crl_lock);
    int64_t age = now - r->crl_this_update;
    int have = r->crl != NULL;
    pthread_mutex_unlock(&r->crl_lock);
    if (atomic_load(&r->crl_dirty))
        crl_publish(r, store, "retry");
    else if (!have || age * 2000 >= r->cfg.crl_validity_ms)
        crl_publish(r, store, "refresh");
}

/* ---- life cycle ---- */

trellis_err_t trellis_registrar_new(const trellis_registrar_config_t *cfg,
                                    trellis_registrar_t **out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_registrar_t *r = NULL;
    trellis_log_level_t level = TRELLIS_LOG_INFO;

    trellis_reason_clear(reason);
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (cfg == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (trellis_log_level_parse(cfg->log_level, &level) != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "log-level: use debug, info, warn, error or off");
    trellis_log_set_level(level);
    /* The writer wakes a worker's event loop from its own thread (event_active), which needs
     * libevent's locking, switched on before any event_base exists. */
    if (evthread_use_pthreads() != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "libevent threading unavailable");

    err = TRELLIS_ERR_NOMEM;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto out;
    if (pthread_mutex_init(&r->crl_lock, NULL) != 0) {
        free(r);
        r = NULL;
        goto out;
    }
    r->cfg = *cfg;
    err = trellis_registrar_config_resolve(&r->cfg, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CONFIG;
    if (r->cfg.oem[0] == '\0') {
        trellis_reason_set(reason, err, "oem is not set (registrar.conf is written by init)");
        goto out;
    }
    if (r->cfg.verifier_url[0] == '\0') {
        trellis_reason_set(reason, err,
                           "verifier-url is not set: run `trellis registrar join` first");
        goto out;
    }
    int n = snprintf(r->verify_url, sizeof(r->verify_url), "%s/v1/verify", r->cfg.verifier_url);
    if (n < 0 || (size_t)n >= sizeof(r->verify_url)) {
        trellis_reason_set(reason, err, "verifier-url is too long");
        goto out;
    }
    r->reset_policy = trellis_registrar_reset_policy(&r->cfg);
    err = tr__reg_ca_load(r->cfg.ca_key, r->cfg.ca_cert, r->cfg.root_cert, r->cfg.oem, &r->ca,
                          reason);
    if (err != TRELLIS_OK)
        goto out;
    err = tr__reg_challenge_secret_load(r->cfg.challenge_secret, r->secret, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_load_public_pem(r->cfg.verdict_key, &r->verdict_key);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                 "verdict key %.120s: %s (run `trellis registrar join`)",
                                 r->cfg.verdict_key, trellis_err_message(err));
        goto out;
    }
    if (r->cfg.rate_limit > 0) {
        err = tr__reg_ratelimit_new((double)r->cfg.rate_limit, (double)r->cfg.rate_burst,
                                    RATELIMIT_SLOTS, &r->ratelimit);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = tr__reg_inflight_new(INFLIGHT_SLOTS, &r->inflight);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_registrar_open_store(&r->cfg, &r->store, reason);
    if (err != TRELLIS_OK)
        goto out;
    tr__reg_writer_hooks_t hooks = {.arg = r, .after_batch = after_batch, .tick = tick};
    err =
        tr__reg_writer_new(r->store, (size_t)r->cfg.writer_queue, (size_t)r->cfg.writer_batch,
                           (unsigned)(r->cfg.writer_linger_ms * 1000), TICK_MS, &hooks, &r->writer);
    if (err != TRELLIS_OK)
        goto out;
    /* Serve the registry's CRL from the first request on; publish one if there is none. */
    crl_refresh(r, r->store);
    if (r->crl == NULL)
        crl_publish(r, r->store, "startup");

    trellis_http_server_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.bind_address = r->cfg.listen;
    hc.port = (uint16_t)r->cfg.port;
    hc.workers = (unsigned)r->cfg.workers;
    hc.cert_file = r->cfg.tls_cert;
    hc.key_file = r->cfg.tls_key;
    /* Optional at the TLS layer: first-time enrollment has no certificate yet, renewal
     * requires one (the handler refuses a renewal without it). A certificate that does not
     * chain to the device CA fails the handshake either way. */
    hc.client_auth = TRELLIS_HTTP_CLIENT_AUTH_OPTIONAL;
    hc.client_ca_file = r->cfg.client_ca;
    hc.max_body = TR__BODY_MAX;
    hc.request_timeout_ms = (unsigned)r->cfg.request_timeout_ms;
    hc.write_timeout_ms = (unsigned)r->cfg.write_timeout_ms;
    hc.max_connections = (unsigned)r->cfg.max_connections;
    hc.routes = ROUTES;
    hc.n_routes = sizeof(ROUTES) / sizeof(ROUTES[0]);
    hc.app = r;
    hc.worker_init = worker_init;
    hc.worker_fini = worker_fini;
    err = trellis_http_server_new(&hc, &r->http, reason);
    if (err != TRELLIS_OK)
        goto out;
    *out = r;
    r = NULL;
    err = TRELLIS_OK;
out:
    trellis_registrar_free(r);
    return err;
}

trellis_err_t trellis_registrar_start(trellis_registrar_t *r, trellis_reason_t *reason)
{
    if (r == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = tr__reg_writer_start(r->writer);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot start the registry writer");
    err = trellis_http_server_start(r->http, reason);
    if (err != TRELLIS_OK)
        return err;
    trellis_log(TRELLIS_LOG_INFO, "registrar.started", TRELLIS_KV_STR("oem", r->cfg.oem),
                TRELLIS_KV_STR("listen", r->cfg.listen),
                TRELLIS_KV_INT("port", trellis_http_server_port(r->http)),
                TRELLIS_KV_INT("workers", trellis_http_server_workers(r->http)),
                TRELLIS_KV_STR("verifier", r->cfg.verifier_url),
                TRELLIS_KV_STR("reset_policy", r->cfg.reset_policy));
    return TRELLIS_OK;
}

uint16_t trellis_registrar_port(const trellis_registrar_t *r)
{
    return r != NULL && r->http != NULL ? trellis_http_server_port(r->http) : 0;
}

trellis_err_t trellis_registrar_metrics_text(trellis_registrar_t *r, char **out, size_t *out_len)
{
    trellis_http_server_stats_t st;
    tr__reg_metrics_gauges_t g;

    if (r == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(&st, 0, sizeof(st));
    memset(&g, 0, sizeof(g));
    if (r->http != NULL)
        trellis_http_server_stats(r->http, &st);
    tr__reg_writer_stats(r->writer, &g.writer);
    g.connections_accepted = st.connections_accepted;
    g.connections_rejected = st.connections_rejected;
    g.connections_timed_out = st.connections_timed_out;
    g.connections_active = st.connections_active;
    g.http_requests = st.requests;
    pthread_mutex_lock(&r->crl_lock);
    g.crl_number = r->crl_number;
    pthread_mutex_unlock(&r->crl_lock);
    return tr__reg_metrics_render(&r->metrics, &g, out, out_len);
}

void trellis_registrar_free(trellis_registrar_t *r)
{
    if (r == NULL)
        return;
    /* HTTP first: it aborts the requests still waiting, so none is answered after this. Then
     * the writer commits what it holds (consumed challenges, records of aborted requests:
     * records without certificates are harmless) and ends. */
    trellis_http_server_free(r->http);
    tr__reg_writer_free(r->writer);
    trellis_rstore_close(r->store);
    tr__reg_ratelimit_free(r->ratelimit);
    tr__reg_inflight_free(r->inflight);
    EVP_PKEY_free(r->verdict_key);
    tr__reg_ca_free(r->ca);
    tr__reg_blob_unref(r->crl);
    OPENSSL_cleanse(r->secret, sizeof(r->secret));
    pthread_mutex_destroy(&r->crl_lock);
    free(r);
}
