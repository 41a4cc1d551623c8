/* Server behaviour over plain HTTP on loopback: routing, limits, timeouts, async handlers. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "http_test.h"
#include "test_support.h"
#include "trellis/log.h"

static json_t *body_json(const ht_response_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->body_len, 0, &e);
    assert_non_null(j);
    return j;
}

static void assert_error_body(const ht_response_t *r, const char *code)
{
    char ct[64];
    assert_true(ht_header(r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    json_decref(j);
}

static trellis_http_server_t *start_default(void)
{
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    return ht_server_start(&cfg);
}

static void test_get_post_roundtrip(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;
    char v[64];

    assert_int_equal(
        ht_request(port, "GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n\r\n", &r),
        200);
    assert_true(ht_header(&r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
    assert_false(ht_header(&r, "Connection", v, sizeof(v)));
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
    assert_string_equal(json_string_value(json_object_get(j, "query")), "x=1&y=%20");
    assert_string_equal(json_string_value(json_object_get(j, "x_test")), "hello");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "");
    assert_true(json_is_null(json_object_get(j, "cn")));
    json_decref(j);
    ht_response_free(&r);

    assert_int_equal(ht_request(port,
                                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 11\r\n\r\nhello world",
                                &r),
                     200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
    assert_true(json_is_null(json_object_get(j, "query")));
    json_decref(j);
    ht_response_free(&r);

    /* Chunked request bodies are reassembled. */
    assert_int_equal(
        ht_request(port,
                   "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                   &r),
        200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "hello world");
    json_decref(j);
    ht_response_free(&r);

    assert_int_equal(atomic_load(&ht_counters.echo), 3);
    trellis_http_server_free(srv);
}

static void test_keepalive_reuse(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;

    for (int i = 0; i < 4; i++) {
        assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_int_equal(ht_read_response(c, &r, false), 200);
        ht_response_free(&r);
    }
    /* Two requests written at once (pipelined) are answered in order. */
    assert_true(ht_send_str(c, "GET /echo?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /pem HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "n=1"));
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "BEGIN CERTIFICATE"));
    ht_response_free(&r);

    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.connections_accepted, 1);
    assert_int_equal(st.requests, 6);
    assert_int_equal(st.connections_active, 1);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_keepalive_disabled(void **state)
{
    (void)state;
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.disable_keepalive = true;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;
    char v[32];

    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_true(ht_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_not_found_method_head(void **state)
{
    (void)state;
    trellis_http_server_t *srv = start_default();
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;
    char v[64];

    assert_int_equal(ht_request(port, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
    assert_error_body(&r, "bad_request");
    ht_response_free(&r);

    /* Paths match byte for byte: no decoding, no trailing-slash folding. */
    assert_int_equal(ht_request(port, "GET /%65cho HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
    ht_response_free(&r);
    assert_int_equal(ht_request(port, "GET /echo/ HTTP/1.1\r\nHost: t\r\n\r\n", &r), 404);
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "DELETE /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 405);
    assert_error_body(&r, "bad_request");
    assert_true(ht_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, HEAD, POST");
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", &r), 405);
    assert_true(ht_header(&r, "Allow", v, sizeof(v)));
    assert_string_equal(v, "POST");
    ht_response_free(&r);

    /* HEAD runs the GET route and sends the length without the body. */
    assert_int_equal(ht_request(port, "HEAD /pem HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    assert_true(ht_header(&r, "Content-Length", v, sizeof(v)));
    char *end = NULL;
    long declared = strtol(v, &end, 10);
    assert_true(end != v && *end == '\0' && declared > 0);
    assert_int_equal(r.body_len, 0);
    ht_response_free(&r);
    trellis_http_server_free(srv);
}

static void test_body_too_large(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.max_body = 1024;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;
    char *req = malloc(8192);
    assert_non_null(req);

    /* Declared too large: refused from the headers, body never read. */
    int n = snprintf(req, 8192, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n");
    memset(req + n, 'a', 5000);
    req[n + 5000] = '\0';
    assert_int_equal(ht_request(port, req, &r), 413);
    assert_error_body(&r, "too_large");
    ht_response_free(&r);

    /* Chunked, growing past the limit. */
    n = snprintf(req, 8192,
                 "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "7d0\r\n");
    memset(req + n, 'b', 2000);
    snprintf(req + n + 2000, 8192 - (size_t)n - 2000, "\r\n0\r\n\r\n");
    assert_int_equal(ht_request(port, req, &r), 413);
    assert_error_body(&r, "too_large");
    ht_response_free(&r);

    /* Exactly at the limit passes. */
    n = snprintf(req, 8192, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n");
    memset(req + n, 'c', 1024);
    req[n + 1024] = '\0';
    assert_int_equal(ht_request(port, req, &r), 200);
    ht_response_free(&r);

    assert_int_equal(atomic_load(&ht_counters.echo), 1);
    free(req);
    trellis_http_server_free(srv);
}

static void test_malformed_requests(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.max_headers = 1024;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;

    assert_int_equal(ht_request(port, "GARBAGE\r\n\r\n", &r), 400);
    assert_error_body(&r, "bad_request");
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "BREW /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 501);
    assert_error_body(&r, "bad_request");
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "TRACE /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r), 501);
    ht_response_free(&r);

    char *big = malloc(4096);
    assert_non_null(big);
    int n = snprintf(big, 4096, "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + n, 'h', 2000);
    snprintf(big + n + 2000, 4096 - (size_t)n - 2000, "\r\n\r\n");
    assert_int_equal(ht_request(port, big, &r), 400);
    assert_error_body(&r, "bad_request");
    ht_response_free(&r);
    free(big);

    assert_int_equal(
        ht_request(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", &r), 400);
    ht_response_free(&r);

    assert_int_equal(atomic_load(&ht_counters.echo), 0);
    trellis_http_server_free(srv);
}

static void test_content_type(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;

    assert_int_equal(ht_request(port,
                                "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                                "Content-Length: 2\r\n\r\n{}",
                                &r),
                     415);
    assert_error_body(&r, "bad_request");
    ht_response_free(&r);
    assert_int_equal(
        ht_request(port, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}", &r), 415);
    ht_response_free(&r);
    assert_int_equal(
        ht_request(port,
                   "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/jsonx\r\n"
                   "Content-Length: 2\r\n\r\n{}",
                   &r),
        415);
    ht_response_free(&r);
    assert_int_equal(atomic_load(&ht_counters.json), 0);

    assert_int_equal(ht_request(port,
                                "POST /json HTTP/1.1\r\nHost: t\r\n"
                                "Content-Type: Application/JSON ; charset=utf-8\r\n"
                                "Content-Length: 2\r\n\r\n{}",
                                &r),
                     200);
    assert_string_equal(r.body, "{\"ok\":true}");
    ht_response_free(&r);
    assert_int_equal(atomic_load(&ht_counters.json), 1);
    trellis_http_server_free(srv);
}

static void test_media_type_parse(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        bool ok;
    } cases[] = {
        {"application/json", true},
        {"APPLICATION/Json", true},
        {"  application/json  ", true},
        {"application/json;charset=utf-8", true},
        {"application/json ; charset=utf-8", true},
        {"\tapplication/json\t;x", true},
        {"application/jsonx", false},
        {"application/jso", false},
        {"application /json", false},
        {"text/json", false},
        {"application/json, text/plain", false},
        {"", false},
        {";application/json", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(trellis_http_media_type_is(cases[i].value, "application/json"),
                         cases[i].ok);
    assert_false(trellis_http_media_type_is(NULL, "application/json"));
    assert_false(trellis_http_media_type_is("application/json", NULL));
    assert_false(trellis_http_media_type_is("application/json", ""));
}

static void test_slow_client_cut_off(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.request_timeout_ms = 300;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    static const char req[] = "GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: yes\r\n\r\n";
    uint64_t start = ht_now_ms();
    bool closed = false;
    size_t got = 0;

    /* One byte every 40 ms: each gap is far below the timeout, the whole request far above. */
    for (size_t i = 0; i < sizeof(req) - 1 && !closed; i++) {
        if (!ht_send(c, &req[i], 1)) {
            closed = true;
            break;
        }
        closed = ht_wait_closed(c, 40, &got);
        assert_int_equal(got, 0);
    }
    uint64_t elapsed = ht_now_ms() - start;
    assert_true(closed);
    assert_true(elapsed >= 250);
    assert_true(elapsed < 1500);
    assert_int_equal(atomic_load(&ht_counters.echo), 0);
    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.connections_timed_out, 1);
    ht_conn_free(c);

    /* A silent connection and an idle kept-alive one end the same way. */
    c = ht_conn_new(trellis_http_server_port(srv));
    assert_true(ht_wait_closed(c, 1500, &got));
    assert_int_equal(got, 0);
    ht_conn_free(c);
    c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;
    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    ht_response_free(&r);
    start = ht_now_ms();
    assert_true(ht_wait_closed(c, 1500, NULL));
    assert_true(ht_now_ms() - start >= 200);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_connection_cap(void **state)
{
    (void)state;
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.max_connections = 2;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    ht_conn_t *a = ht_conn_new(port), *b = ht_conn_new(port);
    ht_response_t r;
    size_t got = 0;

    assert_true(ht_send_str(a, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(a, &r, false), 200);
    ht_response_free(&r);
    assert_true(ht_send_str(b, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(b, &r, false), 200);
    ht_response_free(&r);

    /* The third is closed at once, before it is read. */
    ht_conn_t *c = ht_conn_new(port);
    ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(ht_wait_closed(c, 1000, &got));
    assert_int_equal(got, 0);
    ht_conn_free(c);
    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.connections_rejected, 1);
    assert_int_equal(st.connections_active, 2);

    /* A freed slot is taken again. */
    ht_conn_free(a);
    uint64_t deadline = ht_now_ms() + 1000;
    do {
        trellis_http_server_stats(srv, &st);
        if (st.connections_active == 1)
            break;
        ht_sleep_ms(5);
    } while (ht_now_ms() < deadline);
    assert_int_equal(st.connections_active, 1);
    c = ht_conn_new(port);
    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    ht_response_free(&r);
    ht_conn_free(c);
    ht_conn_free(b);
    trellis_http_server_free(srv);
}

static void test_async_timer(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;

    uint64_t start = ht_now_ms();
    assert_true(ht_send_str(c, "POST /async HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_true(ht_now_ms() - start >= 90);
    assert_string_equal(r.body, "{\"async\":true}");
    ht_response_free(&r);
    /* The connection stays usable after an asynchronous answer. */
    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    ht_response_free(&r);
    assert_int_equal(atomic_load(&ht_counters.async_answered), 1);
    assert_int_equal(atomic_load(&ht_counters.aborts), 0);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_async_pipelined(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;

    /* The next request arrives while the first is suspended (a GET, so evhttp keeps reading):
     * it must wait its turn, not confuse the connection. */
    assert_true(ht_send_str(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.async_entered, 1, 1000));
    ht_sleep_ms(20);
    assert_true(ht_send_str(c, "GET /echo?second HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_string_equal(r.body, "{\"async\":true}");
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "second"));
    ht_response_free(&r);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_async_client_disconnect(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    uint16_t port = trellis_http_server_port(srv);

    /* GET, then POST (evhttp stops reading after a body; the server watches anyway). */
    ht_conn_t *c = ht_conn_new(port);
    assert_true(ht_send_str(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.async_entered, 1, 1000));
    ht_conn_free(c);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 1, 1000));

    c = ht_conn_new(port);
    assert_true(ht_send_str(c, "POST /forever HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"));
    assert_true(ht_wait_atomic(&ht_counters.forever_entered, 1, 1000));
    ht_conn_free(c);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 2, 1000));

    /* The timer of the aborted request was cancelled: it never answers. */
    ht_sleep_ms(150);
    assert_int_equal(atomic_load(&ht_counters.async_answered), 0);
    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.requests_aborted, 2);
    assert_int_equal(st.connections_active, 0);
    trellis_http_server_free(srv);
}

static void test_unanswered_and_headers(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = start_default();
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;
    char v[64];

    assert_int_equal(ht_request(port, "GET /noanswer HTTP/1.1\r\nHost: t\r\n\r\n", &r), 500);
    assert_error_body(&r, "unavailable");
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "GET /limited HTTP/1.1\r\nHost: t\r\n\r\n", &r), 429);
    assert_error_body(&r, "rate_limited");
    assert_true(ht_header(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "7");
    assert_false(ht_header(&r, "Injected", v, sizeof(v)));
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "slow down");
    json_decref(j);
    ht_response_free(&r);
    assert_int_equal(atomic_load(&ht_counters.header_checks_ok), 1);

    /* Request memory is capped (request_memory_max is 1 MiB here). */
    atomic_store(&ht_counters.big_size, 2 * 1024 * 1024);
    assert_int_equal(ht_request(port, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n", &r), 413);
    assert_error_body(&r, "too_large");
    ht_response_free(&r);
    atomic_store(&ht_counters.big_size, 900 * 1024);
    assert_int_equal(ht_request(port, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    assert_int_equal(r.body_len, 900 * 1024);
    ht_response_free(&r);

    assert_int_equal(ht_request(port, "GET /pem HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
    assert_true(ht_header(&r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/pem-certificate-chain");
    assert_non_null(strstr(r.body, "-----BEGIN CERTIFICATE-----"));
    ht_response_free(&r);
    trellis_http_server_free(srv);
}

static void test_multiple_workers(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.workers = 2;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    assert_int_equal(trellis_http_server_workers(srv), 2);
    ht_conn_t *a = ht_conn_new(port);
    ht_response_t r;

    /* While one worker is stuck in a handler, the other accepts and serves. */
    assert_true(ht_send_str(a, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.block_entered, 1, 2000));
    ht_conn_t *b = ht_conn_new(port);
    assert_true(ht_send_str(b, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.block_entered, 2, 2000));
    atomic_store(&ht_counters.release, 1);
    assert_int_equal(ht_read_response(a, &r, false), 200);
    ht_response_free(&r);
    assert_int_equal(ht_read_response(b, &r, false), 200);
    ht_response_free(&r);
    assert_int_not_equal(atomic_load(&ht_counters.block_worker[0]),
                         atomic_load(&ht_counters.block_worker[1]));
    ht_conn_free(a);
    ht_conn_free(b);
    trellis_http_server_free(srv);
}

static void test_stop_start(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.workers = 2;
    cfg.worker_init = ht_worker_init;
    cfg.worker_fini = ht_worker_fini;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    ht_response_t r;

    for (int round = 0; round < 3; round++) {
        if (round > 0) {
            trellis_reason_t reason;
            assert_int_equal(trellis_http_server_start(srv, &reason), TRELLIS_OK);
        }
        uint16_t port = trellis_http_server_port(srv);
        assert_int_equal(ht_request(port, "GET /ctx HTTP/1.1\r\nHost: t\r\n\r\n", &r), 200);
        assert_int_equal(strncmp(r.body, "worker-", 7), 0);
        ht_response_free(&r);
        /* A request left suspended is aborted by stop. */
        ht_conn_t *c = ht_conn_new(port);
        assert_true(ht_send_str(c, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_true(ht_wait_atomic(&ht_counters.forever_entered, round + 1, 1000));
        assert_int_equal(trellis_http_server_stop(srv), TRELLIS_OK);
        assert_int_equal(atomic_load(&ht_counters.aborts), round + 1);
        assert_int_equal(trellis_http_server_port(srv), 0);
        assert_true(ht_wait_closed(c, 1000, NULL));
        ht_conn_free(c);
    }
    assert_int_equal(atomic_load(&ht_counters.worker_inits), 6);
    assert_int_equal(atomic_load(&ht_counters.worker_finis), 6);
    assert_int_equal(trellis_http_server_stop(srv), TRELLIS_OK); /* stopping twice is fine */
    trellis_http_server_free(srv);
    trellis_http_server_free(NULL);
}

static trellis_err_t failing_init(void *app, unsigned index, struct event_base *base, void **ctx)
{
    (void)app;
    (void)base;
    if (index == 1)
        return TRELLIS_ERR_STORE;
    return ht_worker_init(app, index, base, ctx);
}

static void test_config_errors(void **state)
{
    (void)state;
    trellis_http_server_config_t cfg;
    trellis_http_server_t *srv = (trellis_http_server_t *)(void *)&cfg; /* new() resets it */
    trellis_reason_t reason;

    ht_config(&cfg);
    assert_int_equal(trellis_http_server_new(NULL, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_null(srv);
    assert_int_equal(trellis_http_server_new(&cfg, NULL, NULL), TRELLIS_ERR_INVALID_ARG);

    cfg.bind_address = "localhost";
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_true(strlen(reason.text) > 0);
    ht_config(&cfg);
    cfg.key_file = "x.key";
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    ht_config(&cfg);
    cfg.cert_file = ht_pki.server_cert;
    cfg.key_file = ht_pki.server_key;
    cfg.client_auth = TRELLIS_HTTP_CLIENT_AUTH_REQUIRED;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    ht_config(&cfg);
    cfg.max_body = TRELLIS_HTTP_MAX_BODY_LIMIT + 1;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    ht_config(&cfg);
    cfg.workers = TRELLIS_HTTP_MAX_WORKERS + 1;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);

    trellis_http_route_t bad[1] = {ht_routes[0]};
    ht_config(&cfg);
    cfg.routes = bad;
    cfg.n_routes = 1;
    bad[0].path = "nope";
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    bad[0].path = "/ok";
    bad[0].handler = NULL;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    cfg.routes = NULL;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    trellis_http_route_t dup[2] = {ht_routes[0], ht_routes[0]};
    cfg.routes = dup;
    cfg.n_routes = 2;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    dup[1].path = "/with space";
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    dup[1] = ht_routes[1];
    dup[1].methods = 1u << 12;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);

    /* TLS material that cannot be used is reported at creation. */
    ht_config(&cfg);
    cfg.cert_file = ht_pki.server_cert;
    cfg.key_file = ht_pki.ca_key; /* does not match */
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(reason.text, "key"));
    cfg.key_file = "/nonexistent/server.key";
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_CONFIG);
    cfg.key_file = ht_pki.server_key;
    cfg.cert_file = ht_pki.server_key; /* a key is not a certificate */
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_CONFIG);
    assert_null(srv);

    /* A port in use fails start with IO; a failing worker_init leaves nothing running. */
    ht_config(&cfg);
    trellis_http_server_t *first = ht_server_start(&cfg);
    cfg.port = trellis_http_server_port(first);
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_OK);
    assert_int_equal(trellis_http_server_start(srv, &reason), TRELLIS_ERR_IO);
    assert_non_null(strstr(reason.text, "bind"));
    assert_int_equal(trellis_http_server_port(srv), 0);
    trellis_http_server_free(srv);
    assert_int_equal(trellis_http_server_start(first, &reason), TRELLIS_ERR_INVALID_ARG);
    trellis_http_server_free(first);

    ht_counters_reset();
    ht_config(&cfg);
    cfg.workers = 3; /* worker 1 fails: 0 is undone, 2 never set up */
    cfg.worker_init = failing_init;
    cfg.worker_fini = ht_worker_fini;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_OK);
    assert_int_equal(trellis_http_server_start(srv, &reason), TRELLIS_ERR_STORE);
    assert_int_equal(trellis_http_server_port(srv), 0);
    assert_int_equal(atomic_load(&ht_counters.worker_inits),
                     atomic_load(&ht_counters.worker_finis));
    trellis_http_server_free(srv);
}

static void test_log_line(void **state)
{
    (void)state;
    int fds[2];
    char buf[8192];
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    trellis_log_set_level(TRELLIS_LOG_INFO);
    trellis_log_set_fd(fds[1]);
    trellis_http_server_t *srv = start_default();
    ht_response_t r;
    assert_int_equal(ht_request(trellis_http_server_port(srv),
                                "POST /echo?token=QUERYSECRET HTTP/1.1\r\nHost: t\r\n"
                                "Content-Length: 10\r\n\r\nBODYSECRET",
                                &r),
                     200);
    ht_response_free(&r);
    trellis_http_server_free(srv);
    trellis_log_set_fd(STDERR_FILENO);
    trellis_log_set_level(TRELLIS_LOG_WARN);
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    close(fds[1]);
    assert_true(n > 0);
    buf[n] = '\0';
    const char *line = strstr(buf, "event=http.request ");
    assert_non_null(line);
    assert_non_null(strstr(line, "method=POST path=/echo status=200 bytes="));
    assert_non_null(strstr(line, " duration_us="));
    assert_non_null(strstr(line, " peer=127.0.0.1:"));
    assert_null(strstr(buf, "BODYSECRET"));
    assert_null(strstr(buf, "QUERYSECRET"));
}

int ht_server_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_post_roundtrip),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_keepalive_disabled),
        cmocka_unit_test(test_not_found_method_head),
        cmocka_unit_test(test_body_too_large),
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_media_type_parse),
        cmocka_unit_test(test_slow_client_cut_off),
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_async_timer),
        cmocka_unit_test(test_async_pipelined),
        cmocka_unit_test(test_async_client_disconnect),
        cmocka_unit_test(test_unanswered_and_headers),
        cmocka_unit_test(test_multiple_workers),
        cmocka_unit_test(test_stop_start),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_log_line),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
