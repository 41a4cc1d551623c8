/*
 * Fuzzes the HTTP server with whatever a client could send. First the request parser alone
 * (the head, then a chunked body decoded in pieces), which is fast and reaches deep; then the
 * real thing. One server (one worker, small
 * limits) runs for the whole session; each input is written on a fresh loopback connection,
 * the write side is shut, and the answer is read until the server closes. The handlers cover
 * the router's paths: bodies and headers read back, JSON-only routes, suspended requests
 * answered from a timer, per-request memory and a handler that forgets to answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http_internal.h"
#include "trellis/http_server.h"
#include "trellis/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static trellis_http_server_t *server;
static uint16_t port;

static void h_echo(trellis_http_request_t *req, void *app)
{
    size_t len = 0;
    (void)app;
    const uint8_t *body = trellis_http_request_body(req, &len);
    const char *ct = trellis_http_request_header(req, "Content-Type");
    const char *q = trellis_http_request_query(req);
    size_t extra = (ct != NULL ? strlen(ct) : 0) + (q != NULL ? strlen(q) : 0);
    char *copy = trellis_http_request_alloc(req, len + extra + 1);
    if (copy == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_TOO_LARGE, "request memory");
        return;
    }
    if (len > 0)
        memcpy(copy, body, len);
    trellis_http_respond_bytes(req, 200, "application/octet-stream", copy, len);
}

static void h_json(trellis_http_request_t *req, void *app)
{
    (void)app;
    trellis_http_respond_json_text(req, 201, "{\"ok\":true}", 11);
}

struct pending {
    trellis_http_request_t *req;
    struct event *timer;
};

static void fire(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    trellis_http_request_t *req = p->req;
    (void)fd;
    (void)what;
    event_free(p->timer);
    free(p);
    trellis_http_response_header(req, "Retry-After", "1");
    trellis_http_respond_error(req, TRELLIS_ERR_RATE_LIMITED, "later");
}

static void on_abort(trellis_http_request_t *req, void *arg)
{
    struct pending *p = arg;
    (void)req;
    event_free(p->timer);
    free(p);
}

static void h_async(trellis_http_request_t *req, void *app)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 1000};
    (void)app;
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    p->req = req;
    p->timer = evtimer_new(trellis_http_request_base(req), fire, p);
    if (p->timer == NULL || trellis_http_request_suspend(req, on_abort, p) != TRELLIS_OK) {
        if (p->timer != NULL)
            event_free(p->timer);
        free(p);
        trellis_http_respond_error(req, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    evtimer_add(p->timer, &tv);
}

static void h_cn(trellis_http_request_t *req, void *app)
{
    char cn[TRELLIS_HTTP_CN_MAX + 1];
    size_t n = 0;
    (void)app;
    trellis_err_t err = trellis_http_request_peer_cn(req, cn, sizeof(cn), &n);
    trellis_http_respond_error(req, err == TRELLIS_OK ? TRELLIS_ERR_INTERNAL : err, NULL);
}

static void h_forget(trellis_http_request_t *req, void *app)
{
    (void)req;
    (void)app;
}

static const trellis_http_route_t routes[] = {
    {TRELLIS_HTTP_GET | TRELLIS_HTTP_POST | TRELLIS_HTTP_PUT, "/echo", h_echo, 0},
    {TRELLIS_HTTP_POST | TRELLIS_HTTP_PATCH, "/v1/enroll", h_json, TRELLIS_HTTP_ROUTE_JSON},
    {TRELLIS_HTTP_GET | TRELLIS_HTTP_POST, "/async", h_async, 0},
    {TRELLIS_HTTP_GET, "/cn", h_cn, 0},
    {TRELLIS_HTTP_DELETE, "/forget", h_forget, 0},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    trellis_http_server_config_t cfg;
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    trellis_log_set_level(TRELLIS_LOG_OFF);
    memset(&cfg, 0, sizeof(cfg));
    cfg.workers = 1;
    cfg.max_body = 4096;
    cfg.max_headers = 2048;
    cfg.request_timeout_ms = 2000;
    cfg.write_timeout_ms = 2000;
    cfg.request_memory_max = 16384;
    cfg.routes = routes;
    cfg.n_routes = sizeof(routes) / sizeof(routes[0]);
    if (trellis_http_server_new(&cfg, &server, NULL) != TRELLIS_OK ||
        trellis_http_server_start(server, NULL) != TRELLIS_OK)
        abort();
    port = trellis_http_server_port(server);
    return 0;
}

/* The parser on its own, in place on a copy, with the limits of the running server. */
static void parse_alone(const uint8_t *data, size_t size)
{
    static struct tr__field fields[16];
    struct tr__head head;
    tr__refusal_t why;
    size_t scan = 0;

    uint8_t *buf = malloc(size + 1);
    if (buf == NULL)
        return;
    memcpy(buf, data, size);
    /* The head end is found the same however the bytes arrive: feed the first half, then all. */
    size_t end = tr__head_end((const char *)buf, size / 2, &scan);
    if (end == 0)
        end = tr__head_end((const char *)buf, size, &scan);
    if (end == 0 || end > 2048 ||
        !tr__parse_head((char *)buf, end, 16, 4096, fields, &head, &why) || !head.chunked) {
        free(buf);
        return;
    }
    /* Decode the rest as a chunked body, in steps whose size the input picks. */
    struct tr__chunked c;
    tr__chunked_init(&c, end, 4096, 8192);
    size_t step = 1 + (size > 0 ? data[0] % 64 : 0);
    for (size_t have = end;;) {
        have = have + step < size ? have + step : size;
        int rc = tr__chunked_step(&c, buf, have, &why);
        if (rc != 0 || have == size)
            break;
    }
    if (c.wpos < c.body_start || c.wpos > c.rpos || c.rpos > size || c.wpos - c.body_start > 4096)
        abort();
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_alone(data, size);

    struct sockaddr_in sa;
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    char sink[4096];

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    /* The server closes once it has answered what it could parse and read our EOF. */
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof(sink), 0);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    close(fd);
    return 0;
}
