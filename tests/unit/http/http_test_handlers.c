/* Handlers behind the test servers: see http_test.h. They run on worker threads, so they
 * report through atomics and never call cmocka asserts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "http_test.h"
#include "test_support.h"

ht_counters_t ht_counters;

void ht_counters_reset(void)
{
    memset(&ht_counters, 0, sizeof(ht_counters));
}

static void h_echo(trellis_http_request_t *req, void *app)
{
    (void)app;
    atomic_fetch_add(&ht_counters.echo, 1);
    size_t len = 0;
    const uint8_t *body = trellis_http_request_body(req, &len);
    /* The body goes through request memory, so every echo exercises the arena. */
    char *copy = trellis_http_request_alloc(req, len + 1);
    char cn[TRELLIS_HTTP_CN_MAX + 1];
    size_t cn_len = 0;
    if (copy == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, "request memory");
        return;
    }
    if (len > 0)
        memcpy(copy, body, len);
    bool has_cn = trellis_http_request_peer_cn(req, cn, sizeof(cn), &cn_len) == TRELLIS_OK;
    json_t *o =
        json_pack("{s:s, s:s, s:s?, s:s%, s:i, s:s?, s:s?}", "method",
                  trellis_http_method_name(trellis_http_request_method(req)), "path",
                  trellis_http_request_path(req), "query", trellis_http_request_query(req), "body",
                  copy, len, "worker", (int)trellis_http_request_worker_index(req), "x_test",
                  trellis_http_request_header(req, "X-Test"), "cn", has_cn ? cn : NULL);
    if (o == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_PARSE, "body is not UTF-8");
        return;
    }
    trellis_http_respond_json(req, 200, o);
    json_decref(o);
}

static void h_json(trellis_http_request_t *req, void *app)
{
    (void)app;
    atomic_fetch_add(&ht_counters.json, 1);
    trellis_http_respond_json_text(req, 200, "{\"ok\":true}", 11);
}

struct async_ctx {
    trellis_http_request_t *req;
    struct event *timer;
};

static void async_fire(evutil_socket_t fd, short what, void *arg)
{
    struct async_ctx *ctx = arg;
    trellis_http_request_t *req = ctx->req;
    (void)fd;
    (void)what;
    event_free(ctx->timer);
    free(ctx);
    atomic_fetch_add(&ht_counters.async_answered, 1);
    trellis_http_respond_json_text(req, 200, "{\"async\":true}", 14);
}

static void async_abort(trellis_http_request_t *req, void *arg)
{
    struct async_ctx *ctx = arg;
    (void)req;
    if (ctx->timer != NULL)
        event_free(ctx->timer);
    free(ctx);
    atomic_fetch_add(&ht_counters.aborts, 1);
}

static void h_async(trellis_http_request_t *req, void *app)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    (void)app;
    atomic_fetch_add(&ht_counters.async_entered, 1);
    struct async_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    ctx->req = req;
    ctx->timer = evtimer_new(trellis_http_request_base(req), async_fire, ctx);
    if (ctx->timer == NULL || trellis_http_request_suspend(req, async_abort, ctx) != TRELLIS_OK) {
        if (ctx->timer != NULL)
            event_free(ctx->timer);
        free(ctx);
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    evtimer_add(ctx->timer, &tv);
}

static void forever_abort(trellis_http_request_t *req, void *arg)
{
    (void)req;
    (void)arg;
    atomic_fetch_add(&ht_counters.aborts, 1);
}

static void h_forever(trellis_http_request_t *req, void *app)
{
    (void)app;
    if (trellis_http_request_suspend(req, forever_abort, NULL) != TRELLIS_OK) {
        trellis_http_respond_error(req, TRELLIS_ERR_INTERNAL, NULL);
        return;
    }
    /* A second suspend is refused. */
    if (trellis_http_request_suspend(req, forever_abort, NULL) == TRELLIS_ERR_INVALID_ARG)
        atomic_fetch_add(&ht_counters.forever_entered, 1);
}

static void h_block(trellis_http_request_t *req, void *app)
{
    (void)app;
    unsigned w = trellis_http_request_worker_index(req);
    int slot = atomic_fetch_add(&ht_counters.block_entered, 1);
    if (slot >= 0 && slot < 4)
        atomic_store(&ht_counters.block_worker[slot], (int)w);
    uint64_t deadline = ht_now_ms() + 3000;
    while (atomic_load(&ht_counters.release) == 0 && ht_now_ms() < deadline)
        ht_sleep_ms(2);
    trellis_http_respond_json_text(req, 200, "{\"blocked\":true}", 16);
}

static void h_noanswer(trellis_http_request_t *req, void *app)
{
    (void)req;
    (void)app;
}

static void h_limited(trellis_http_request_t *req, void *app)
{
    (void)app;
    int ok = 1;
    ok &= trellis_http_response_header(req, "Content-Length", "3") == TRELLIS_ERR_INVALID_ARG;
    ok &= trellis_http_response_header(req, "connection", "keep") == TRELLIS_ERR_INVALID_ARG;
    ok &= trellis_http_response_header(req, "Bad Name", "x") == TRELLIS_ERR_INVALID_ARG;
    ok &=
        trellis_http_response_header(req, "X-Split", "a\r\nInjected: 1") == TRELLIS_ERR_INVALID_ARG;
    ok &= trellis_http_response_header(req, NULL, "x") == TRELLIS_ERR_INVALID_ARG;
    ok &= trellis_http_response_header(req, "Retry-After", "7") == TRELLIS_OK;
    if (ok)
        atomic_fetch_add(&ht_counters.header_checks_ok, 1);
    trellis_http_respond_error(req, TRELLIS_ERR_RATE_LIMITED, "slow down");
}

static const char pem_body[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

static void h_pem(trellis_http_request_t *req, void *app)
{
    (void)app;
    trellis_http_respond_bytes(req, 200, "application/pem-certificate-chain", pem_body,
                               sizeof(pem_body) - 1);
}

static void h_big(trellis_http_request_t *req, void *app)
{
    (void)app;
    size_t n = (size_t)atomic_load(&ht_counters.big_size);
    char *body = trellis_http_request_alloc(req, n + 1);
    if (body == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_TOO_LARGE, "request memory");
        return;
    }
    memset(body, 'x', n);
    trellis_http_respond_bytes(req, 200, "text/plain", body, n);
}

static void h_cn(trellis_http_request_t *req, void *app)
{
    (void)app;
    char cn[TRELLIS_HTTP_CN_MAX + 1];
    char hex[65];
    uint8_t fp[32];
    size_t len = 0;
    trellis_err_t err = trellis_http_request_peer_cn(req, cn, sizeof(cn), &len);
    if (err != TRELLIS_OK) {
        trellis_http_respond_error(req, err, "no usable client certificate");
        return;
    }
    if (trellis_http_request_peer_sha256(req, fp) != TRELLIS_OK ||
        trellis_http_request_peer_cert(req) == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", fp[i]);
    json_t *o = json_pack("{s:s, s:s}", "cn", cn, "sha256", hex);
    trellis_http_respond_json(req, 200, o);
    json_decref(o);
}

static void h_ctx(trellis_http_request_t *req, void *app)
{
    const char *ctx = trellis_http_request_worker_ctx(req);
    (void)app;
    trellis_http_respond_bytes(req, 200, "text/plain", ctx != NULL ? ctx : "none",
                               ctx != NULL ? strlen(ctx) : 4);
}

const trellis_http_route_t ht_routes[] = {
    {TRELLIS_HTTP_GET | TRELLIS_HTTP_POST, "/echo", h_echo, 0},
    {TRELLIS_HTTP_POST, "/json", h_json, TRELLIS_HTTP_ROUTE_JSON},
    {TRELLIS_HTTP_GET | TRELLIS_HTTP_POST, "/async", h_async, 0},
    {TRELLIS_HTTP_GET | TRELLIS_HTTP_POST, "/forever", h_forever, 0},
    {TRELLIS_HTTP_GET, "/block", h_block, 0},
    {TRELLIS_HTTP_GET, "/noanswer", h_noanswer, 0},
    {TRELLIS_HTTP_GET, "/limited", h_limited, 0},
    {TRELLIS_HTTP_GET, "/pem", h_pem, 0},
    {TRELLIS_HTTP_GET, "/big", h_big, 0},
    {TRELLIS_HTTP_GET, "/cn", h_cn, 0},
    {TRELLIS_HTTP_GET, "/ctx", h_ctx, 0},
};
const size_t ht_n_routes = sizeof(ht_routes) / sizeof(ht_routes[0]);

void ht_config(trellis_http_server_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = 1;
    cfg->routes = ht_routes;
    cfg->n_routes = ht_n_routes;
    cfg->request_timeout_ms = 2000;
    cfg->write_timeout_ms = 2000;
    cfg->request_memory_max = 1024 * 1024;
}

trellis_err_t ht_worker_init(void *app, unsigned index, struct event_base *base, void **ctx)
{
    (void)app;
    if (base == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    char *s = malloc(32);
    if (s == NULL)
        return TRELLIS_ERR_NOMEM;
    snprintf(s, 32, "worker-%u", index);
    *ctx = s;
    atomic_fetch_add(&ht_counters.worker_inits, 1);
    return TRELLIS_OK;
}

void ht_worker_fini(void *app, unsigned index, void *ctx)
{
    (void)app;
    (void)index;
    free(ctx);
    atomic_fetch_add(&ht_counters.worker_finis, 1);
}
