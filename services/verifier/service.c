/*
 * The verifier service: loads its keys once, prepares the HTTPS server (one event loop and one
 * registry connection per worker thread), and the audit writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

#include "trellis/crypto.h"
#include "trellis/http_server.h"
#include "trellis/log.h"
#include "verifier_internal.h"

#define VERIFY_MAX_BODY (16 * 1024)

static const trellis_http_route_t ROUTES[] = {
    {TRELLIS_HTTP_POST, "/v1/verify", tr__handle_verify, TRELLIS_HTTP_ROUTE_JSON},
    {TRELLIS_HTTP_POST, "/v1/manifests", tr__handle_manifests, 0},
    {TRELLIS_HTTP_POST | TRELLIS_HTTP_GET | TRELLIS_HTTP_DELETE, "/v1/manifests/uploads",
     tr__handle_uploads, 0},
    {TRELLIS_HTTP_PUT, "/v1/manifests/uploads/part", tr__handle_upload_part, 0},
    {TRELLIS_HTTP_POST, "/v1/manifests/uploads/commit", tr__handle_upload_commit, 0},
    {TRELLIS_HTTP_GET, "/v1/verdict-key", tr__handle_verdict_key, 0},
    {TRELLIS_HTTP_GET, "/healthz", tr__handle_healthz, 0},
    {TRELLIS_HTTP_GET, "/metrics", tr__handle_metrics, 0},
};

trellis_err_t trellis_verifier_open_store(const trellis_verifier_config_t *cfg,
                                          trellis_vstore_t **out, trellis_reason_t *reason)
{
    if (cfg == NULL || out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_vstore_sqlite_opts_t o = {
        .durable = cfg->durable ? 1 : 0,
        .busy_timeout_ms = (int)cfg->busy_timeout_ms,
        .create = 0,
    };
    trellis_err_t err = trellis_vstore_open_sqlite(cfg->registry, &o, out);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "registry %.120s does not exist (run `trellis verifier init`)",
                                  cfg->registry);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "registry %.120s cannot be opened", cfg->registry);
    return TRELLIS_OK;
}

/* Worker 0, once a second: abandoned uploads give back their connection and staging space
 * even when no other upload request comes. */
static void sweep_uploads(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tr__uploads_sweep(arg);
}

static trellis_err_t worker_init(void *app, unsigned index, struct event_base *base, void **ctx)
{
    trellis_verifier_t *v = app;
    tr__worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return TRELLIS_ERR_NOMEM;
    trellis_err_t err = trellis_verifier_open_store(&v->cfg, &w->store, NULL);
    if (err != TRELLIS_OK) {
        free(w);
        return err;
    }
    if (index == 0) {
        static const struct timeval second = {1, 0};
        w->sweep = event_new(base, -1, EV_PERSIST, sweep_uploads, v);
        if (w->sweep == NULL || event_add(w->sweep, &second) != 0) {
            if (w->sweep != NULL)
                event_free(w->sweep);
            trellis_vstore_close(w->store);
            free(w);
            return TRELLIS_ERR_NOMEM;
        }
    }
    w->v = v;
    w->base = base;
    w->drain = event_new(base, -1, 0, tr__verify_drain, w);
    if (w->drain == NULL) {
        if (w->sweep != NULL)
            event_free(w->sweep);
        trellis_vstore_close(w->store);
        free(w);
        return TRELLIS_ERR_NOMEM;
    }
    w->judge = (tr__judge_t){
        .store = w->store,
        .verdict_key = v->verdict_key,
        .kid = v->kid,
        .verifier_id = v->cfg.verifier_id,
        .ttl_s = (int)(v->cfg.verdict_ttl_ms / 1000),
    };
    *ctx = w;
    return TRELLIS_OK;
}

static void worker_fini(void *app, unsigned index, void *ctx)
{
    tr__worker_t *w = ctx;
    (void)app;
    (void)index;
    if (w == NULL)
        return;
    tr__verify_worker_fini(w);
    event_free(w->drain);
    if (w->sweep != NULL)
        event_free(w->sweep);
    trellis_vstore_close(w->store);
    free(w);
}

/* GET /v1/verdict-key: {"kid", "alg", "jwk", "pem"} so a registrar can pin the key at setup. */
static trellis_err_t build_key_body(trellis_verifier_t *v)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    char jwk[512];
    size_t jwk_len = 0;
    BIO *bio = NULL;
    char *pem = NULL;
    json_t *o = NULL, *j = NULL;

    err = trellis_verdict_jwk(v->verdict_key, jwk, sizeof(jwk), &jwk_len);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_PUBKEY(bio, v->verdict_key) != 1)
        goto out;
    long pem_len = BIO_get_mem_data(bio, &pem);
    err = TRELLIS_ERR_NOMEM;
    j = json_loadb(jwk, jwk_len, 0, NULL);
    o = json_object();
    if (j == NULL || o == NULL || pem_len <= 0)
        goto out;
    json_object_set_new(o, "kid", json_string(v->kid));
    json_object_set_new(o, "alg", json_string("ES256"));
    json_object_set(o, "jwk", j);
    json_object_set_new(o, "pem", json_stringn(pem, (size_t)pem_len));
    v->key_body = json_dumps(o, JSON_COMPACT);
    if (v->key_body == NULL)
        goto out;
    v->key_body_len = strlen(v->key_body);
    err = TRELLIS_OK;
out:
    json_decref(j);
    json_decref(o);
    BIO_free(bio);
    return err;
}

trellis_err_t trellis_verifier_new(const trellis_verifier_config_t *cfg, trellis_verifier_t **out,
                                   trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_verifier_t *v = NULL;
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
    /* The audit writer wakes a worker's event loop from its own thread (event_active), which
     * needs libevent's locking, switched on before any event_base exists. */
    if (evthread_use_pthreads() != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "libevent threading unavailable");

    err = TRELLIS_ERR_NOMEM;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        goto out;
    v->cfg = *cfg;
    err = trellis_verifier_config_resolve(&v->cfg, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_load_private_pem(v->cfg.verdict_key, &v->verdict_key);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "verdict key %.120s: %s",
                                 v->cfg.verdict_key, trellis_err_message(err));
        goto out;
    }
    err = trellis_verdict_kid(v->verdict_key, v->kid);
    if (err == TRELLIS_OK)
        err = build_key_body(v);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_verifier_open_store(&v->cfg, &v->audit_store, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = tr__audit_queue_new(v->audit_store, (size_t)v->cfg.audit_queue,
                              (unsigned)(v->cfg.audit_linger_ms * 1000), tr__verify_batch_committed,
                              NULL, &v->audit);
    if (err != TRELLIS_OK)
        goto out;

    trellis_http_server_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.bind_address = v->cfg.listen;
    hc.port = (uint16_t)v->cfg.port;
    hc.workers = (unsigned)v->cfg.workers;
    hc.cert_file = v->cfg.tls_cert;
    hc.key_file = v->cfg.tls_key;
    /* Required by default: the body limit is server-wide (the largest manifest), so only
     * registered tenants may make the server buffer one. With allow-anonymous the handshake
     * accepts clients without a certificate, for probes and scrapers, and /v1/verify and
     * /v1/manifests still refuse them (401). A certificate that does not chain to the client CA
     * fails the handshake either way. */
    hc.client_auth = v->cfg.allow_anonymous ? TRELLIS_HTTP_CLIENT_AUTH_OPTIONAL
                                            : TRELLIS_HTTP_CLIENT_AUTH_REQUIRED;
    hc.client_ca_file = v->cfg.client_ca;
    /* One server-wide body limit: the largest manifest. Verify bodies are held to 16 KiB by
     * their parser. */
    hc.max_body =
        v->cfg.manifest_max_body > VERIFY_MAX_BODY ? v->cfg.manifest_max_body : VERIFY_MAX_BODY;
    hc.request_timeout_ms = (unsigned)v->cfg.request_timeout_ms;
    hc.write_timeout_ms = (unsigned)v->cfg.write_timeout_ms;
    hc.max_connections = (unsigned)v->cfg.max_connections;
    err = tr__uploads_init(&v->uploads, hc.max_body);
    if (err != TRELLIS_OK)
        goto out;
    v->uploads_ready = 1;
    hc.routes = ROUTES;
    hc.n_routes = sizeof(ROUTES) / sizeof(ROUTES[0]);
    hc.app = v;
    hc.worker_init = worker_init;
    hc.worker_fini = worker_fini;
    err = trellis_http_server_new(&hc, &v->http, reason);
    if (err != TRELLIS_OK)
        goto out;
    *out = v;
    v = NULL;
    err = TRELLIS_OK;
out:
    trellis_verifier_free(v);
    return err;
}

trellis_err_t trellis_verifier_start(trellis_verifier_t *v, trellis_reason_t *reason)
{
    if (v == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = tr__audit_queue_start(v->audit);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot start the audit writer");
    err = trellis_http_server_start(v->http, reason);
    if (err != TRELLIS_OK)
        return err;
    trellis_log(TRELLIS_LOG_INFO, "verifier.started", TRELLIS_KV_STR("listen", v->cfg.listen),
                TRELLIS_KV_INT("port", trellis_http_server_port(v->http)),
                TRELLIS_KV_INT("workers", trellis_http_server_workers(v->http)),
                TRELLIS_KV_STR("verifier_id", v->cfg.verifier_id), TRELLIS_KV_STR("kid", v->kid));
    return TRELLIS_OK;
}

uint16_t trellis_verifier_port(const trellis_verifier_t *v)
{
    return v != NULL && v->http != NULL ? trellis_http_server_port(v->http) : 0;
}

trellis_err_t trellis_verifier_metrics_text(trellis_verifier_t *v, char **out, size_t *out_len)
{
    trellis_http_server_stats_t st;
    tr__metrics_gauges_t g;
    size_t depth = 0;

    if (v == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(&st, 0, sizeof(st));
    memset(&g, 0, sizeof(g));
    if (v->http != NULL)
        trellis_http_server_stats(v->http, &st);
    tr__audit_queue_stats(v->audit, &depth, &g.audit_committed, &g.audit_failed);
    g.audit_depth = depth;
    g.connections_accepted = st.connections_accepted;
    g.connections_rejected = st.connections_rejected;
    g.connections_timed_out = st.connections_timed_out;
    g.connections_active = st.connections_active;
    g.http_requests = st.requests;
    g.uploads_open = v->uploads_ready ? tr__uploads_open(v) : 0;
    return tr__metrics_render(&v->metrics, &g, out, out_len);
}

void trellis_verifier_free(trellis_verifier_t *v)
{
    if (v == NULL)
        return;
    /* HTTP first: it aborts the verdicts still waiting, so none is answered after this. Then
     * the audit writer commits whatever is queued, verdicts of aborted requests included. */
    trellis_http_server_free(v->http);
    /* No handler runs now: open uploads are aborted (and audited before the writer stops). */
    if (v->uploads_ready)
        tr__uploads_fini(v);
    tr__audit_queue_free(v->audit);
    trellis_vstore_close(v->audit_store);
    free(v->key_body);
    EVP_PKEY_free(v->verdict_key);
    free(v);
}
