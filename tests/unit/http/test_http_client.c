/* The asynchronous client against the real server: mutual TLS, keep-alive reuse, timeouts,
 * refused and untrusted connections, limits, cancellation, and a server handler that calls
 * another service from its own worker loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "http_test.h"
#include "test_support.h"

typedef struct {
    atomic_int done;
    atomic_int calls;
    trellis_err_t err;
    int status;
    char body[8192];
    size_t body_len;
    char content_type[64];
    char detail[160];
} result_t;

static void on_result(const trellis_http_response_t *resp, void *arg)
{
    result_t *r = arg;
    r->err = resp->err;
    r->status = resp->status;
    r->body_len = resp->body_len < sizeof(r->body) - 1 ? resp->body_len : sizeof(r->body) - 1;
    if (r->body_len > 0)
        memcpy(r->body, resp->body, r->body_len);
    r->body[r->body_len] = '\0';
    snprintf(r->content_type, sizeof(r->content_type), "%s",
             resp->content_type != NULL ? resp->content_type : "");
    snprintf(r->detail, sizeof(r->detail), "%s", resp->detail);
    atomic_fetch_add(&r->calls, 1);
    atomic_store(&r->done, 1);
}

static trellis_http_server_t *tls_server(trellis_http_client_auth_t auth, const char *cert,
                                         const char *key)
{
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.client_auth = auth;
    cfg.client_ca_file = auth != TRELLIS_HTTP_CLIENT_AUTH_OFF ? ht_pki.ca_cert : NULL;
    return ht_server_start(&cfg);
}

static trellis_http_client_t *client_new(struct event_base *base,
                                         const trellis_http_client_config_t *cfg)
{
    trellis_http_client_t *c = NULL;
    trellis_reason_t reason;
    trellis_err_t err = trellis_http_client_new(base, cfg, &c, &reason);
    if (err != TRELLIS_OK)
        fprintf(stderr, "client_new: %s\n", reason.text);
    assert_int_equal(err, TRELLIS_OK);
    return c;
}

static void call(trellis_http_client_t *c, struct event_base *base,
                 const trellis_http_client_request_t *req, result_t *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(trellis_http_client_send(c, req, on_result, r, NULL), TRELLIS_OK);
    assert_true(ht_run_until(base, &r->done, 5000));
}

static void get(trellis_http_client_t *c, struct event_base *base, const char *url, result_t *r)
{
    trellis_http_client_request_t req = {.method = TRELLIS_HTTP_GET, .url = url};
    call(c, base, &req, r);
}

static void url_of(char *out, size_t n, const char *scheme, const char *host, uint16_t port,
                   const char *path)
{
    snprintf(out, n, "%s://%s:%u%s", scheme, host, (unsigned)port, path);
}

static void test_client_mtls(void **state)
{
    (void)state;
    ht_counters_reset();
    struct event_base *base = event_base_new();
    trellis_http_server_t *srv =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_REQUIRED, ht_pki.server_cert, ht_pki.server_key);
    uint16_t port = trellis_http_server_port(srv);
    trellis_test_pki_pair_t id;
    assert_int_equal(trellis_test_pki_client(&ht_pki, "registrar-oem-a", false, &id), TRELLIS_OK);
    trellis_http_client_config_t cfg = {
        .ca_file = ht_pki.ca_cert, .cert_file = id.cert, .key_file = id.key};
    trellis_http_client_t *c = client_new(base, &cfg);
    char url[128];
    result_t *r = malloc(sizeof(*r));
    assert_non_null(r);

    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/echo?via=client");
    trellis_http_header_t extra[] = {{"X-Test", "from-client"}};
    trellis_http_client_request_t req = {
        .method = TRELLIS_HTTP_GET, .url = url, .headers = extra, .n_headers = 1};
    call(c, base, &req, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->content_type, "application/json");
    assert_string_equal(r->detail, "");
    assert_non_null(strstr(r->body, "\"cn\":\"registrar-oem-a\""));
    assert_non_null(strstr(r->body, "\"x_test\":\"from-client\""));
    assert_non_null(strstr(r->body, "\"query\":\"via=client\""));

    static const char json_body[] = "{\"csr\":\"AAAA\",\"evidence\":\"BBBB\"}";
    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/json");
    trellis_http_client_request_t post = {.method = TRELLIS_HTTP_POST,
                                          .url = url,
                                          .content_type = "application/json",
                                          .body = json_body,
                                          .body_len = sizeof(json_body) - 1};
    call(c, base, &post, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"ok\":true}");

    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/echo");
    post.url = url;
    call(c, base, &post, r);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\\\"csr\\\":\\\"AAAA\\\""));

    /* An error status is a completed exchange: err OK, the status and the body. */
    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/limited");
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->status, 429);
    assert_non_null(strstr(r->body, "rate_limited"));

    free(r);
    trellis_http_client_free(c);
    trellis_http_server_free(srv);
    event_base_free(base);
}

static void test_client_keepalive_reuse(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    trellis_http_server_t *srv =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_OFF, ht_pki.server_cert, ht_pki.server_key);
    uint16_t port = trellis_http_server_port(srv);
    trellis_http_client_config_t cfg = {.ca_file = ht_pki.ca_cert};
    trellis_http_client_t *c = client_new(base, &cfg);
    trellis_http_client_stats_t st;
    trellis_http_server_stats_t sst;
    char url[128];
    result_t *r = calloc(4, sizeof(*r));
    assert_non_null(r);

    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/echo");
    for (int i = 0; i < 5; i++) {
        get(c, base, url, &r[0]);
        assert_int_equal(r[0].status, 200);
    }
    trellis_http_client_stats(c, &st);
    assert_int_equal(st.requests, 5);
    assert_int_equal(st.connections_opened, 1);
    assert_int_equal(st.connections_reused, 4);
    assert_int_equal(st.failures, 0);
    trellis_http_server_stats(srv, &sst);
    assert_int_equal(sst.connections_accepted, 1);

    /* Three at once: the idle connection plus two new ones; then all three are reused. */
    for (int round = 0; round < 2; round++) {
        trellis_http_client_request_t req = {.method = TRELLIS_HTTP_GET, .url = url};
        atomic_int all;
        atomic_init(&all, 0);
        for (int i = 0; i < 3; i++) {
            memset(&r[i], 0, sizeof(r[i]));
            assert_int_equal(trellis_http_client_send(c, &req, on_result, &r[i], NULL), TRELLIS_OK);
        }
        uint64_t deadline = ht_now_ms() + 5000;
        while (ht_now_ms() < deadline &&
               !(atomic_load(&r[0].done) && atomic_load(&r[1].done) && atomic_load(&r[2].done)))
            ht_run_until(base, &all, 20);
        for (int i = 0; i < 3; i++)
            assert_int_equal(r[i].status, 200);
    }
    trellis_http_client_stats(c, &st);
    assert_int_equal(st.connections_opened, 3);
    assert_int_equal(st.connections_reused, 4 + 1 + 3);
    free(r);
    trellis_http_client_free(c);
    trellis_http_server_free(srv);
    event_base_free(base);
}

static void test_client_timeout_and_cancel(void **state)
{
    (void)state;
    ht_counters_reset();
    struct event_base *base = event_base_new();
    trellis_http_server_t *srv =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_OFF, ht_pki.server_cert, ht_pki.server_key);
    uint16_t port = trellis_http_server_port(srv);
    trellis_http_client_config_t cfg = {.ca_file = ht_pki.ca_cert, .timeout_ms = 200};
    trellis_http_client_t *c = client_new(base, &cfg);
    char url[128];
    result_t *r = malloc(sizeof(*r));
    assert_non_null(r);

    /* A server that never answers: TIMEOUT after the client's default timeout. */
    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/forever");
    uint64_t start = ht_now_ms();
    get(c, base, url, r);
    uint64_t elapsed = ht_now_ms() - start;
    assert_int_equal(r->err, TRELLIS_ERR_TIMEOUT);
    assert_int_equal(r->status, 0);
    assert_true(elapsed >= 180 && elapsed < 2000);
    /* The connection was closed, so the server aborted its request. */
    assert_true(ht_wait_atomic(&ht_counters.aborts, 1, 1000));

    /* A per-request timeout overrides the default. */
    trellis_http_client_request_t req = {.method = TRELLIS_HTTP_GET, .url = url, .timeout_ms = 50};
    start = ht_now_ms();
    call(c, base, &req, r);
    assert_int_equal(r->err, TRELLIS_ERR_TIMEOUT);
    assert_true(ht_now_ms() - start < 180);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 2, 1000));

    /* Cancelled: the callback never runs and the server sees the client leave. */
    trellis_http_call_t *h = NULL;
    memset(r, 0, sizeof(*r));
    req.timeout_ms = 0;
    assert_int_equal(trellis_http_client_send(c, &req, on_result, r, &h), TRELLIS_OK);
    assert_non_null(h);
    atomic_int never;
    atomic_init(&never, 0);
    while (atomic_load(&ht_counters.forever_entered) < 3 && !atomic_load(&r->done))
        ht_run_until(base, &never, 20);
    trellis_http_call_cancel(h);
    ht_run_until(base, &never, 300);
    assert_int_equal(atomic_load(&r->calls), 0);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 3, 1000));
    trellis_http_call_cancel(NULL);

    /* Freeing the client with calls in flight: no callback, nothing leaks. */
    memset(r, 0, sizeof(*r));
    assert_int_equal(trellis_http_client_send(c, &req, on_result, r, NULL), TRELLIS_OK);
    url_of(url, sizeof(url), "https", "localhost", port, "/forever");
    req.url = url;
    assert_int_equal(trellis_http_client_send(c, &req, on_result, r, NULL), TRELLIS_OK);
    trellis_http_client_free(c);
    ht_run_until(base, &never, 50);
    assert_int_equal(atomic_load(&r->calls), 0);
    free(r);
    trellis_http_server_free(srv);
    event_base_free(base);
}

static uint16_t closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_client_unavailable_and_tls_errors(void **state)
{
    (void)state;
    ht_counters_reset();
    struct event_base *base = event_base_new();
    trellis_test_pki_pair_t id, other_id, wrong;
    assert_int_equal(trellis_test_pki_client(&ht_pki, "oem-b", false, &id), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&ht_pki, "oem-b", true, &other_id), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_server(&ht_pki, "wrong", "DNS:wrong.example", false, &wrong),
                     TRELLIS_OK);
    trellis_http_client_config_t good_cfg = {.ca_file = ht_pki.ca_cert,
                                             .cert_file = id.cert,
                                             .key_file = id.key,
                                             .allow_plain_http = true};
    trellis_http_client_t *good = client_new(base, &good_cfg);
    char url[128];
    result_t *r = malloc(sizeof(*r));
    assert_non_null(r);

    /* Connection refused. */
    uint16_t dead = closed_port();
    url_of(url, sizeof(url), "https", "127.0.0.1", dead, "/echo");
    get(good, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(r->status, 0);
    assert_true(strlen(r->detail) > 0);
    url_of(url, sizeof(url), "http", "127.0.0.1", dead, "/echo");
    get(good, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_UNAVAILABLE);

    /* Server with mutual TLS required. */
    trellis_http_server_t *srv =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_REQUIRED, ht_pki.server_cert, ht_pki.server_key);
    uint16_t port = trellis_http_server_port(srv);
    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/echo");

    /* We do not trust the server's CA. */
    trellis_http_client_config_t cfg = {
        .ca_file = ht_pki.other_ca_cert, .cert_file = id.cert, .key_file = id.key};
    trellis_http_client_t *c = client_new(base, &cfg);
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_TLS);
    assert_non_null(strstr(r->detail, "certificate"));
    trellis_http_client_free(c);

    /* The server does not trust ours, or we have none. In TLS 1.3 our side of the handshake
     * ends before the server checks our certificate, so its refusal arrives either as an alert
     * (TLS) or, when its reset overtakes the alert, as a closed connection (UNAVAILABLE). */
    cfg.ca_file = ht_pki.ca_cert;
    cfg.cert_file = other_id.cert;
    cfg.key_file = other_id.key;
    c = client_new(base, &cfg);
    get(c, base, url, r);
    assert_true(r->err == TRELLIS_ERR_TLS || r->err == TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(r->status, 0);
    if (r->err == TRELLIS_ERR_UNAVAILABLE)
        assert_non_null(strstr(r->detail, "refused our certificate"));
    trellis_http_client_free(c);
    cfg.cert_file = cfg.key_file = NULL;
    c = client_new(base, &cfg);
    get(c, base, url, r);
    assert_true(r->err == TRELLIS_ERR_TLS || r->err == TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(r->status, 0);
    trellis_http_client_free(c);
    assert_int_equal(atomic_load(&ht_counters.echo), 0);

    /* And with everything right it works. */
    get(good, base, url, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->status, 200);
    trellis_http_server_free(srv);

    /* A trusted certificate issued for another name. */
    srv = tls_server(TRELLIS_HTTP_CLIENT_AUTH_OFF, wrong.cert, wrong.key);
    port = trellis_http_server_port(srv);
    url_of(url, sizeof(url), "https", "127.0.0.1", port, "/echo");
    get(good, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_TLS);
    url_of(url, sizeof(url), "https", "localhost", port, "/echo");
    get(good, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_TLS);
    trellis_http_server_free(srv);

    trellis_http_client_stats_t st;
    trellis_http_client_stats(good, &st);
    assert_int_equal(st.failures, 4);
    free(r);
    trellis_http_client_free(good);
    event_base_free(base);
}

static void test_client_names_plain_and_limits(void **state)
{
    (void)state;
    ht_counters_reset();
    struct event_base *base = event_base_new();
    trellis_http_server_t *tls =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_OFF, ht_pki.server_cert, ht_pki.server_key);
    trellis_http_server_config_t pcfg;
    ht_config(&pcfg);
    trellis_http_server_t *plain = ht_server_start(&pcfg);
    trellis_http_client_config_t cfg = {
        .ca_file = ht_pki.ca_cert, .allow_plain_http = true, .max_response_body = 1024};
    trellis_http_client_t *c = client_new(base, &cfg);
    char url[128];
    result_t *r = malloc(sizeof(*r));
    assert_non_null(r);

    /* A host name is resolved off the loop and checked against the certificate's SAN DNS. */
    url_of(url, sizeof(url), "https", "LocalHost", trellis_http_server_port(tls), "/echo");
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->status, 200);
    get(c, base, url, r);
    assert_int_equal(r->status, 200);
    trellis_http_client_stats_t st;
    trellis_http_client_stats(c, &st);
    assert_int_equal(st.connections_opened, 1);

    url_of(url, sizeof(url), "http", "127.0.0.1", trellis_http_server_port(plain), "/pem");
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_string_equal(r->content_type, "application/pem-certificate-chain");

    /* Response body cap. */
    atomic_store(&ht_counters.big_size, 1024);
    url_of(url, sizeof(url), "http", "127.0.0.1", trellis_http_server_port(plain), "/big");
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_OK);
    assert_int_equal(r->body_len, 1024);
    atomic_store(&ht_counters.big_size, 4096);
    get(c, base, url, r);
    assert_int_equal(r->err, TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(r->status, 0);

    /* A request body on a method without one still gets its length. */
    url_of(url, sizeof(url), "http", "127.0.0.1", trellis_http_server_port(plain), "/echo");
    trellis_http_client_request_t post = {
        .method = TRELLIS_HTTP_POST, .url = url, .body = "abc", .body_len = 3};
    call(c, base, &post, r);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"body\":\"abc\""));
    post.method = TRELLIS_HTTP_DELETE;
    call(c, base, &post, r);
    assert_int_equal(r->status, 405);
    free(r);
    trellis_http_client_free(c);
    trellis_http_server_free(tls);
    trellis_http_server_free(plain);
    event_base_free(base);
}

static void test_client_invalid_arguments(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    trellis_http_client_t *c = NULL;
    trellis_reason_t reason;
    trellis_http_client_config_t cfg = {.ca_file = ht_pki.ca_cert};
    result_t r;
    memset(&r, 0, sizeof(r));

    assert_int_equal(trellis_http_client_new(NULL, &cfg, &c, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_http_client_new(base, NULL, &c, &reason), TRELLIS_ERR_INVALID_ARG);
    trellis_http_client_config_t bad = {.cert_file = ht_pki.server_cert, .ca_file = ht_pki.ca_cert};
    assert_int_equal(trellis_http_client_new(base, &bad, &c, &reason), TRELLIS_ERR_INVALID_ARG);
    trellis_http_client_config_t no_ca = {0};
    assert_int_equal(trellis_http_client_new(base, &no_ca, &c, &reason), TRELLIS_ERR_INVALID_ARG);
    trellis_http_client_config_t missing = {.ca_file = "/nonexistent/ca.pem"};
    assert_int_equal(trellis_http_client_new(base, &missing, &c, &reason), TRELLIS_ERR_CONFIG);
    assert_null(c);

    c = client_new(base, &cfg);
    static const char *const bad_urls[] = {
        "",
        "127.0.0.1/echo",
        "ftp://127.0.0.1:1/",
        "https://",
        "https://:443/",
        "https://user@127.0.0.1:1/",
        "https://127.0.0.1:0/",
        "https://127.0.0.1:99999/",
        "https://127.0.0.1:1/a b",
        "https://127.0.0.1:1/\r\nX: y",
        "http://127.0.0.1:1/", /* plain http not allowed by this client */
    };
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        trellis_http_client_request_t req = {.method = TRELLIS_HTTP_GET, .url = bad_urls[i]};
        assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                         TRELLIS_ERR_INVALID_ARG);
    }
    trellis_http_client_request_t req = {.method = TRELLIS_HTTP_GET, .url = "https://127.0.0.1:1/"};
    assert_int_equal(trellis_http_client_send(c, &req, NULL, &r, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_http_client_send(c, NULL, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    req.method = TRELLIS_HTTP_GET | TRELLIS_HTTP_POST;
    assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    req.method = TRELLIS_HTTP_POST;
    req.body_len = 4; /* with a NULL body */
    assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    req.body_len = 0;
    trellis_http_header_t hdr[] = {{"Content-Length", "5"}};
    req.headers = hdr;
    req.n_headers = 1;
    assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    hdr[0].name = "X-Ok";
    hdr[0].value = "a\nb";
    assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    req.n_headers = 0;
    req.content_type = "text/plain\r\nX: 1";
    assert_int_equal(trellis_http_client_send(c, &req, on_result, &r, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(atomic_load(&r.calls), 0);

    trellis_http_client_stats_t st;
    trellis_http_client_stats(c, &st);
    assert_int_equal(st.requests, 0);
    trellis_http_client_free(c);
    trellis_http_client_free(NULL);
    event_base_free(base);
}

/* ---- a server handler calling another service from its worker loop ------------------------ */

typedef struct {
    char echo_url[128];
    char forever_url[128];
    const char *cert, *key;
} proxy_app_t;

typedef struct {
    trellis_http_request_t *req;
    trellis_http_call_t *call;
} proxy_call_t;

static void proxy_done(const trellis_http_response_t *resp, void *arg)
{
    proxy_call_t *pc = arg;
    trellis_http_request_t *req = pc->req;
    free(pc);
    if (resp->err != TRELLIS_OK) {
        trellis_http_respond_error(req, resp->err, resp->detail);
        return;
    }
    trellis_http_respond_bytes(req, resp->status,
                               resp->content_type != NULL ? resp->content_type : "text/plain",
                               resp->body, resp->body_len);
}

static void proxy_abort(trellis_http_request_t *req, void *arg)
{
    proxy_call_t *pc = arg;
    (void)req;
    trellis_http_call_cancel(pc->call);
    free(pc);
}

static void proxy_to(trellis_http_request_t *req, const char *url)
{
    trellis_http_client_t *client = trellis_http_request_worker_ctx(req);
    proxy_call_t *pc = calloc(1, sizeof(*pc));
    trellis_http_client_request_t up = {.method = TRELLIS_HTTP_GET, .url = url};
    if (pc == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    pc->req = req;
    if (trellis_http_client_send(client, &up, proxy_done, pc, &pc->call) != TRELLIS_OK) {
        free(pc);
        trellis_http_respond_error(req, TRELLIS_ERR_UNAVAILABLE, "upstream refused");
        return;
    }
    /* Safe after send: the client never calls back before the loop runs again. */
    trellis_http_request_suspend(req, proxy_abort, pc);
}

static void h_proxy(trellis_http_request_t *req, void *app)
{
    proxy_to(req, ((proxy_app_t *)app)->echo_url);
}

static void h_proxy_forever(trellis_http_request_t *req, void *app)
{
    proxy_to(req, ((proxy_app_t *)app)->forever_url);
}

static trellis_err_t proxy_worker_init(void *app, unsigned index, struct event_base *base,
                                       void **ctx)
{
    proxy_app_t *p = app;
    trellis_http_client_config_t cfg = {
        .ca_file = ht_pki.ca_cert, .cert_file = p->cert, .key_file = p->key};
    (void)index;
    return trellis_http_client_new(base, &cfg, (trellis_http_client_t **)ctx, NULL);
}

static void proxy_worker_fini(void *app, unsigned index, void *ctx)
{
    (void)app;
    (void)index;
    trellis_http_client_free(ctx);
}

static void test_handler_calls_upstream(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *upstream =
        tls_server(TRELLIS_HTTP_CLIENT_AUTH_REQUIRED, ht_pki.server_cert, ht_pki.server_key);
    trellis_test_pki_pair_t id;
    assert_int_equal(trellis_test_pki_client(&ht_pki, "registrar", false, &id), TRELLIS_OK);
    proxy_app_t *app = calloc(1, sizeof(*app));
    assert_non_null(app);
    app->cert = id.cert;
    app->key = id.key;
    url_of(app->echo_url, sizeof(app->echo_url), "https", "127.0.0.1",
           trellis_http_server_port(upstream), "/echo");
    url_of(app->forever_url, sizeof(app->forever_url), "https", "127.0.0.1",
           trellis_http_server_port(upstream), "/forever");
    static const trellis_http_route_t routes[] = {
        {TRELLIS_HTTP_GET, "/proxy", h_proxy, 0},
        {TRELLIS_HTTP_GET, "/proxy-forever", h_proxy_forever, 0},
    };
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.routes = routes;
    cfg.n_routes = 2;
    cfg.app = app;
    cfg.worker_init = proxy_worker_init;
    cfg.worker_fini = proxy_worker_fini;
    trellis_http_server_t *front = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(front);
    ht_response_t r;

    /* Two calls through the same worker: the second reuses the upstream connection. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ht_request(port, "GET /proxy HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        assert_non_null(strstr(r.body, "\"cn\":\"registrar\""));
        ht_response_free(&r);
    }
    trellis_http_server_stats_t st;
    trellis_http_server_stats(upstream, &st);
    assert_int_equal(st.connections_accepted, 1);

    /* The front's client leaves while the upstream call is pending: the front aborts, cancels
     * its call, and the upstream sees its own client leave. */
    ht_conn_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    ht_connect(c, port);
    assert_true(ht_send_str(c, "GET /proxy-forever HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.forever_entered, 1, 2000));
    ht_close(c);
    free(c);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 1, 2000));
    trellis_http_server_stats(front, &st);
    assert_int_equal(st.requests_aborted, 1);

    /* Stopping the front with an upstream call pending aborts it cleanly. */
    c = malloc(sizeof(*c));
    assert_non_null(c);
    ht_connect(c, port);
    assert_true(ht_send_str(c, "GET /proxy-forever HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.forever_entered, 2, 2000));
    trellis_http_server_free(front);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 2, 2000));
    ht_close(c);
    free(c);
    trellis_http_server_free(upstream);
    free(app);
}

int ht_client_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_mtls),
        cmocka_unit_test(test_client_keepalive_reuse),
        cmocka_unit_test(test_client_timeout_and_cancel),
        cmocka_unit_test(test_client_unavailable_and_tls_errors),
        cmocka_unit_test(test_client_names_plain_and_limits),
        cmocka_unit_test(test_client_invalid_arguments),
        cmocka_unit_test(test_handler_calls_upstream),
    };
    return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
