/*
 * The server's HTTP/1.1 parser: the head and chunked decoders on their own (tables of good
 * and bad inputs, every split of an input), then the same refusals over a real connection, and
 * the connection behaviours the parser drives (pipelining around a suspended handler, a client
 * leaving mid-body, 100-continue, HTTP/1.0, a TLS handshake that trickles).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "http_internal.h"
#include "http_test.h"
#include "test_support.h"

/* ---- the head ---------------------------------------------------------------------------- */

typedef struct {
    char buf[2048];
    struct tr__field fields[8];
    struct tr__head head;
    tr__refusal_t why;
} parsed_t;

/* Parses text (which must end in CRLF CRLF) with room for 8 fields and a 1000-byte body cap;
 * returns 0 when accepted, else the refusal status. */
static int parse(parsed_t *p, const char *text)
{
    size_t len = strlen(text);
    assert_true(len < sizeof(p->buf));
    memcpy(p->buf, text, len + 1);
    size_t scan = 0;
    size_t end = tr__head_end(p->buf, len, &scan);
    assert_int_equal(end, len);
    if (tr__parse_head(p->buf, len, 8, 1000, p->fields, &p->head, &p->why))
        return 0;
    assert_non_null(p->why.detail);
    return p->why.status;
}

static const char *field(const parsed_t *p, size_t i, bool value)
{
    assert_true(i < p->head.n_fields);
    return p->buf + (value ? p->fields[i].value : p->fields[i].name);
}

static void test_head_accepts(void **state)
{
    (void)state;
    parsed_t *p = malloc(sizeof(*p));
    assert_non_null(p);

    assert_int_equal(parse(p, "GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nX-Test:  v w \t\r\n\r\n"), 0);
    assert_int_equal(p->head.method, TRELLIS_HTTP_GET);
    assert_string_equal(p->buf + p->head.path, "/a/b");
    assert_string_equal(p->buf + p->head.query, "x=1&y");
    assert_int_equal(p->head.minor, 1);
    assert_false(p->head.close);
    assert_false(p->head.has_length);
    assert_int_equal(p->head.n_fields, 2);
    assert_string_equal(field(p, 1, false), "X-Test");
    assert_string_equal(field(p, 1, true), "v w"); /* OWS trimmed on both sides */

    assert_int_equal(parse(p, "POST /p HTTP/1.1\r\nhost: h\r\nContent-Length: 1000\r\n"
                              "Connection: foo, Close\r\nExpect: 100-Continue\r\n\r\n"),
                     0);
    assert_true(p->head.has_length);
    assert_int_equal(p->head.content_length, 1000);
    assert_true(p->head.close);
    assert_true(p->head.expect_continue);
    assert_int_equal(p->head.query, UINT32_MAX);

    /* Absolute form: the authority is ignored, the path kept. */
    assert_int_equal(parse(p, "DELETE HTTPS://example.com:8443/v1/x?q HTTP/1.1\r\nHost: e\r\n\r\n"),
                     0);
    assert_int_equal(p->head.method, TRELLIS_HTTP_DELETE);
    assert_string_equal(p->buf + p->head.path, "/v1/x");
    assert_string_equal(p->buf + p->head.query, "q");

    /* HTTP/1.0: no Host needed, close unless keep-alive, Expect ignored. */
    assert_int_equal(parse(p, "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"), 0);
    assert_int_equal(p->head.minor, 0);
    assert_true(p->head.close);
    assert_false(p->head.expect_continue);
    assert_int_equal(parse(p, "HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    assert_false(p->head.close);
    assert_int_equal(parse(p, "OPTIONS / HTTP/1.9\r\nHost: h\r\n\r\n"), 0);
    assert_int_equal(p->head.minor, 1);

    assert_int_equal(parse(p, "PATCH /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"),
                     0);
    assert_true(p->head.chunked);
    assert_int_equal(parse(p, "PUT / HTTP/1.1\r\nHost: h\r\nX-Bin: \x80\xff\r\nEmpty:\r\n\r\n"), 0);
    assert_string_equal(field(p, 2, true), "");
    free(p);
}

static void test_head_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int status;
    } cases[] = {
        /* request line */
        {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", 400},
        {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1\r\nHost: h\r\n\r\n", 400},
        {"GET / http/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
        {"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
        {"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505},
        {"get / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        {"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        {"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        {"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n", 501},
        /* fields */
        {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nNo-Colon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\n: empty-name\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX(y): z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rz\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\nz\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n"
         "H: 8\r\n\r\n",
         400},
        /* framing */
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n", 413},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
         400},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417},
    };
    parsed_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = parse(p, cases[i].text);
        if (got != cases[i].status)
            fprintf(stderr, "case %zu: got %d, want %d\n", i, got, cases[i].status);
        assert_int_equal(got, cases[i].status);
    }
    /* Not ending in CRLF CRLF at all. */
    memcpy(p->buf, "GET / HTTP/1.1\r\n", 17);
    assert_false(tr__parse_head(p->buf, 16, 8, 1000, p->fields, &p->head, &p->why));
    assert_int_equal(p->why.status, 400);
    free(p);
}

static void test_head_end_split(void **state)
{
    (void)state;
    static const char text[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next";
    size_t want = strlen("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    /* However the bytes arrive, the end is found exactly once all of it is there. */
    for (size_t split = 0; split <= sizeof(text) - 1; split++) {
        size_t scan = 0;
        size_t end = tr__head_end(text, split, &scan);
        if (split < want) {
            assert_int_equal(end, 0);
            assert_true(scan <= split);
            assert_int_equal(tr__head_end(text, sizeof(text) - 1, &scan), want);
        } else {
            assert_int_equal(end, want);
        }
    }
    size_t scan = 0;
    assert_int_equal(tr__head_end("GET / HTTP/1.1\n\n", 16, &scan), 0); /* bare LFs never end */
    scan = 0;
    assert_int_equal(tr__head_end("\r\n\r\n", 4, &scan), 4);
}

/* ---- chunked ----------------------------------------------------------------------------- */

/* Decodes text fed in pieces of `step` bytes; returns 1 (done), -1 (refused) or 0 (needs more)
 * with the body and the refusal status. */
static int dechunk(const char *text, size_t step, size_t max_body, char *body, size_t *body_len,
                   size_t *rest, int *status)
{
    size_t len = strlen(text);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, text, len);
    struct tr__chunked c;
    tr__refusal_t why = {0, NULL};
    tr__chunked_init(&c, 0, max_body, 256);
    int rc = 0;
    for (size_t have = step < len ? step : len;; have = have + step < len ? have + step : len) {
        rc = tr__chunked_step(&c, buf, have, &why);
        if (rc != 0 || have == len)
            break;
    }
    *status = why.status;
    *body_len = c.wpos - c.body_start;
    memcpy(body, buf, *body_len);
    body[*body_len] = '\0';
    *rest = len - c.rpos;
    free(buf);
    return rc;
}

static void test_chunked(void **state)
{
    (void)state;
    char body[2048];
    size_t blen = 0, rest = 0;
    int status = 0;
    static const char good[] = "5\r\nhello\r\n6;ext=1; x = \"y\"\r\n world\r\n00A\r\n0123456789\r\n"
                               "0\r\nTrailer-A: 1\r\nB: two words\r\n\r\nGET /next";
    for (size_t step = 1; step <= sizeof(good); step++) {
        assert_int_equal(dechunk(good, step, 100, body, &blen, &rest, &status), 1);
        assert_string_equal(body, "hello world0123456789");
        assert_int_equal(rest, strlen("GET /next"));
    }
    assert_int_equal(dechunk("0\r\n\r\n", 1, 100, body, &blen, &rest, &status), 1);
    assert_int_equal(blen, 0);
    assert_int_equal(dechunk("5\r\nhel", 2, 100, body, &blen, &rest, &status), 0);
    assert_int_equal(dechunk("5\r\nhello\r\n0\r\n\r", 1, 100, body, &blen, &rest, &status), 0);

    static const struct {
        const char *text;
        size_t max_body;
        int status;
    } bad[] = {
        {"x\r\n", 100, 400},
        {"\r\n", 100, 400},
        {"-5\r\nhello\r\n0\r\n\r\n", 100, 400},
        {"5 x\r\nhello\r\n0\r\n\r\n", 100, 400},
        {"5x\r\nhello\r\n0\r\n\r\n", 100, 400},
        {"5\nhello\r\n0\r\n\r\n", 100, 400},
        {"5\r\nhelloX\r\n0\r\n\r\n", 100, 400},
        {"5\r\nhello\rX0\r\n\r\n", 100, 400},
        {"5;a\x01\r\nhello\r\n0\r\n\r\n", 100, 400},
        {"5\r\nhello\r\n0\r\n Folded: x\r\n\r\n", 100, 400},
        {"5\r\nhello\r\n0\r\nT: \x01\r\n\r\n", 100, 400},
        {"5\r\nhello\r\n0\r\nT: 1\rX\r\n", 100, 400},
        {"5\r\nhello\r\n0\r\n\rX", 100, 400},
        {"65\r\n", 100, 413},
        {"ffffffffffffffffffffffff\r\n", 100, 413},
        {"32\r\n", 100, 0}, /* 50 fits: needs more */
        {"40\r\n", 100, 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = dechunk(bad[i].text, 1, bad[i].max_body, body, &blen, &rest, &status);
        if (bad[i].status == 0) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != -1 || status != bad[i].status)
            fprintf(stderr, "chunk case %zu: rc %d status %d\n", i, rc, status);
        assert_int_equal(rc, -1);
        assert_int_equal(status, bad[i].status);
    }
    /* Chunks that add up past the cap. */
    assert_int_equal(dechunk("32\r\n"
                             "01234567890123456789012345678901234567890123456789\r\n"
                             "33\r\n",
                             7, 100, body, &blen, &rest, &status),
                     -1);
    assert_int_equal(status, 413);

    /* Framing is bounded too: a size line of leading zeros, extensions and trailers. */
    char *big = malloc(4096);
    assert_non_null(big);
    memset(big, '0', 2000);
    static const char tail[] = "5\r\nhello\r\n0\r\n\r\n";
    memcpy(big + 2000, tail, sizeof(tail));
    assert_int_equal(dechunk(big, 64, 100, body, &blen, &rest, &status), -1);
    assert_int_equal(status, 400);
    memcpy(big, "5;", 2);
    memset(big + 2, 'e', 600);
    memcpy(big + 602, tail + 1, sizeof(tail) - 1);
    assert_int_equal(dechunk(big, 64, 100, body, &blen, &rest, &status), -1);
    assert_int_equal(status, 400);
    free(big);
}

/* ---- over the wire ----------------------------------------------------------------------- */

/* Sends raw bytes on a fresh connection; expects a JSON error with status, error code and
 * Connection: close, then the close. */
static void expect_refusal(uint16_t port, const char *raw, size_t len, int status, const char *code)
{
    ht_conn_t *c = ht_conn_new(port);
    ht_response_t r;
    char v[64];
    assert_true(ht_send(c, raw, len));
    int got = ht_read_response(c, &r, false);
    if (got != status)
        fprintf(stderr, "request %.40s: got %d, want %d\n", raw, got, status);
    assert_int_equal(got, status);
    assert_true(ht_header(&r, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
    assert_true(ht_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    json_error_t e;
    json_t *j = json_loadb(r.body, r.body_len, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "error")), code);
    assert_non_null(json_string_value(json_object_get(j, "detail")));
    json_decref(j);
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
}

static void test_wire_refusals(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.max_body = 100;
    cfg.max_header_count = 4;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
#define REFUSE(raw, status, code) expect_refusal(port, raw, sizeof(raw) - 1, status, code)
    REFUSE("GET /echo HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400, "bad_request");
    REFUSE("GET /echo\x01 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "bad_request");
    REFUSE("GET /echo HTTP/3.0\r\nHost: t\r\n\r\n", 505, "bad_request");
    REFUSE("GET /echo HTTP/1.1\r\n\r\n", 400, "bad_request");
    REFUSE("GET /echo HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400, "bad_request");
    REFUSE("GET /echo HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 400,
           "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
           400, "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -2\r\n\r\nab", 400, "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n", 413, "too_large");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
           "\r\n0\r\n\r\n",
           400, "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
           400, "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
           "bad_request");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413,
           "too_large");
    REFUSE("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417,
           "bad_request");
    /* A binary NUL in the head. */
    REFUSE("GET /echo HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 400, "bad_request");
#undef REFUSE
    /* A request refused after a good one on the same connection: the good one is answered,
     * then the refusal, then the close; what follows the bad request is never run. */
    ht_conn_t *c = ht_conn_new(port);
    ht_response_t r;
    assert_true(ht_send_str(c, "GET /echo?one HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /echo HTTP/9.9\r\nHost: t\r\n\r\n"
                               "GET /echo?three HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "one"));
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 505);
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
    assert_int_equal(atomic_load(&ht_counters.echo), 1);
    trellis_http_server_free(srv);
}

static void test_wire_pipelined_suspended(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = NULL;
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    srv = ht_server_start(&cfg);
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    ht_response_t r;

    /* Three requests in one write; the first (with a body) suspends for 100 ms. The others wait
     * in the buffer and are answered in order after it. */
    assert_true(ht_send_str(c, "POST /async HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                               "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                               "\r\n3\r\ntwo\r\n0\r\n\r\n"
                               "GET /echo?third HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_string_equal(r.body, "{\"async\":true}");
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "\"body\":\"two\""));
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "third"));
    ht_response_free(&r);

    /* Two suspended requests back to back, the second arriving in pieces while the first
     * waits. */
    assert_true(ht_send_str(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\nGET /asy"));
    assert_true(ht_wait_atomic(&ht_counters.async_entered, 2, 1000));
    assert_true(ht_send_str(c, "nc HTTP/1.1\r\nHost: t\r\n\r\n"));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ht_read_response(c, &r, false), 200);
        assert_string_equal(r.body, "{\"async\":true}");
        ht_response_free(&r);
    }
    assert_int_equal(atomic_load(&ht_counters.async_answered), 3);

    /* A client that pipelines behind a suspended request and then leaves: the suspended one is
     * aborted, the rest never runs. */
    int echo_before = atomic_load(&ht_counters.echo);
    assert_true(ht_send_str(c, "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_true(ht_wait_atomic(&ht_counters.forever_entered, 1, 1000));
    ht_conn_free(c);
    assert_true(ht_wait_atomic(&ht_counters.aborts, 1, 1000));
    assert_int_equal(atomic_load(&ht_counters.echo), echo_before);
    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.requests_aborted, 1);
    trellis_http_server_free(srv);
}

static void test_wire_client_leaves_mid_body(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    trellis_http_server_stats_t st;

    static const char *const partial[] = {
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        "GET /echo HTTP/1.1\r\nHost: t\r\nX-Half: ",
    };
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        /* Half-close (the server reads our end of input) and full close alike. */
        for (int how = 0; how < 2; how++) {
            ht_conn_t *c = ht_conn_new(port);
            assert_true(ht_send_str(c, partial[i]));
            if (how == 0) {
                shutdown(c->fd, SHUT_WR);
                size_t got = 0;
                assert_true(ht_wait_closed(c, 1000, &got));
                assert_int_equal(got, 0); /* no answer to half a request */
            }
            ht_conn_free(c);
        }
    }
    uint64_t deadline = ht_now_ms() + 1000;
    do {
        trellis_http_server_stats(srv, &st);
        if (st.connections_active == 0)
            break;
        ht_sleep_ms(5);
    } while (ht_now_ms() < deadline);
    assert_int_equal(st.connections_active, 0);
    assert_int_equal(st.requests, 0);
    assert_int_equal(atomic_load(&ht_counters.echo), 0);

    /* A whole request followed by our end of input is still answered. */
    ht_conn_t *c = ht_conn_new(port);
    ht_response_t r;
    assert_true(ht_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"));
    shutdown(c->fd, SHUT_WR);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "\"body\":\"hi\""));
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_wire_continue_and_http10(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.max_body = 1000;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;
    char v[64];

    /* Expect: 100-continue gets the go-ahead before the body is sent (RFC 9110 §10.1.1). */
    ht_conn_t *c = ht_conn_new(port);
    assert_true(ht_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                               "Content-Length: 5\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, true), 100);
    ht_response_free(&r);
    assert_true(ht_send_str(c, "hello"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "\"body\":\"hello\""));
    ht_response_free(&r);
    /* A body sent without waiting gets no 100. */
    assert_true(ht_send_str(c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                               "Content-Length: 2\r\n\r\nok"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "\"body\":\"ok\""));
    ht_response_free(&r);
    ht_conn_free(c);
    /* Too large: 413 at once, no 100. */
    expect_refusal(port,
                   "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                   "Content-Length: 1001\r\n\r\n",
                   strlen("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                          "Content-Length: 1001\r\n\r\n"),
                   413, "too_large");

    /* HTTP/1.0: closed after the answer unless it asks for keep-alive. */
    c = ht_conn_new(port);
    assert_true(ht_send_str(c, "GET /echo HTTP/1.0\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_true(ht_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
    c = ht_conn_new(port);
    for (int i = 0; i < 2; i++) {
        assert_true(ht_send_str(c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert_int_equal(ht_read_response(c, &r, false), 200);
        assert_true(ht_header(&r, "Connection", v, sizeof(v)));
        assert_string_equal(v, "keep-alive");
        assert_true(ht_header(&r, "Date", v, sizeof(v)));
        ht_response_free(&r);
    }
    /* Connection: close from an HTTP/1.1 client. */
    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_true(ht_header(&r, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    ht_response_free(&r);
    assert_true(ht_wait_closed(c, 1000, NULL));
    ht_conn_free(c);
    assert_int_equal(atomic_load(&ht_counters.echo), 6);
    trellis_http_server_free(srv);
}

static void test_wire_tls_trickle_and_big(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.cert_file = ht_pki.server_cert;
    cfg.key_file = ht_pki.server_key;
    cfg.request_timeout_ms = 300;
    trellis_http_server_t *srv = ht_server_start(&cfg);
    uint16_t port = trellis_http_server_port(srv);
    ht_response_t r;

    /* A handshake that trickles (a byte of ClientHello every 40 ms) is cut off by the request
     * timeout, which covers the handshake. */
    ht_conn_t *c = ht_conn_new(port);
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc,
                                          0x03, 0x03, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                          0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    uint64_t start = ht_now_ms();
    bool closed = false;
    for (size_t i = 0; i < sizeof(hello) && !closed; i++) {
        if (!ht_send(c, &hello[i], 1))
            break;
        closed = ht_wait_closed(c, 40, NULL);
    }
    if (!closed)
        closed = ht_wait_closed(c, 1000, NULL);
    assert_true(closed);
    uint64_t elapsed = ht_now_ms() - start;
    assert_true(elapsed >= 250 && elapsed < 1500);
    ht_conn_free(c);
    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.connections_timed_out, 1);

    /* A response far larger than a TLS record and than the socket buffer leaves whole. */
    atomic_store(&ht_counters.big_size, 900 * 1024);
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, NULL, NULL, 0), 1);
    assert_true(ht_send_str(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /pem HTTP/1.1\r\n"
                               "Host: t\r\n\r\n"));
    ht_sleep_ms(50); /* the server fills the socket and waits for us */
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_int_equal(r.body_len, 900 * 1024);
    assert_int_equal(r.body[0], 'x');
    assert_int_equal(r.body[r.body_len - 1], 'x');
    ht_response_free(&r);
    assert_int_equal(ht_read_response(c, &r, false), 200);
    assert_non_null(strstr(r.body, "BEGIN CERTIFICATE"));
    ht_response_free(&r);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_wire_write_timeout_and_limits(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_config_t cfg;
    trellis_http_server_t *srv = NULL;
    trellis_reason_t reason;
    ht_config(&cfg);
    cfg.max_header_count = TRELLIS_HTTP_MAX_HEADER_COUNT_LIMIT + 1;
    assert_int_equal(trellis_http_server_new(&cfg, &srv, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_null(srv);

    /* A client that asks for 12 MiB and never reads: the response stops making progress and
     * the write timeout closes the connection. */
    ht_config(&cfg);
    cfg.write_timeout_ms = 300;
    cfg.request_memory_max = 16 * 1024 * 1024;
    srv = ht_server_start(&cfg);
    atomic_store(&ht_counters.big_size, 12 * 1024 * 1024);
    ht_conn_t *c = ht_conn_new(trellis_http_server_port(srv));
    int small = 4096;
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    assert_true(ht_send_str(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
    trellis_http_server_stats_t st;
    uint64_t deadline = ht_now_ms() + 3000;
    do {
        ht_sleep_ms(20);
        trellis_http_server_stats(srv, &st);
    } while (st.connections_active != 0 && ht_now_ms() < deadline);
    assert_int_equal(st.connections_active, 0);
    assert_int_equal(st.connections_timed_out, 0); /* not the request timeout */
    ht_conn_free(c);

    /* The default header count (64) takes a browser-sized request. */
    char *req = malloc(4096);
    assert_non_null(req);
    int n = snprintf(req, 4096, "GET /echo HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 62; i++)
        n += snprintf(req + n, 4096 - (size_t)n, "X-%d: %d\r\n", i, i);
    snprintf(req + n, 4096 - (size_t)n, "\r\n");
    ht_response_t r;
    assert_int_equal(ht_request(trellis_http_server_port(srv), req, &r), 200);
    ht_response_free(&r);
    free(req);
    trellis_http_server_free(srv);
}

int ht_parse_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_accepts),
        cmocka_unit_test(test_head_refuses),
        cmocka_unit_test(test_head_end_split),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_wire_refusals),
        cmocka_unit_test(test_wire_pipelined_suspended),
        cmocka_unit_test(test_wire_client_leaves_mid_body),
        cmocka_unit_test(test_wire_continue_and_http10),
        cmocka_unit_test(test_wire_tls_trickle_and_big),
        cmocka_unit_test(test_wire_write_timeout_and_limits),
    };
    return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
