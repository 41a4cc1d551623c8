/* Helpers for the http tests: see http_test.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_test.h"
#include "test_support.h"

trellis_test_pki_t ht_pki;

uint64_t ht_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ht_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int tcp_connect(uint16_t port)
{
    struct sockaddr_in sa;
    struct timeval tv = {.tv_sec = 3, .tv_usec = 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void ht_connect(ht_conn_t *c, uint16_t port)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port);
    assert_true(c->fd >= 0);
}

int ht_connect_tls(ht_conn_t *c, uint16_t port, const char *ca, const char *cert, const char *key,
                   int max_version)
{
    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port);
    assert_true(c->fd >= 0);
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(c->ctx, max_version);
    if (ca != NULL) {
        assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, ca, NULL), 1);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    if (cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate_chain_file(c->ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    int rc = SSL_connect(c->ssl);
    ERR_clear_error();
    return rc;
}

void ht_close(ht_conn_t *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->ctx != NULL)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

ht_conn_t *ht_conn_new(uint16_t port)
{
    ht_conn_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    ht_connect(c, port);
    return c;
}

void ht_conn_free(ht_conn_t *c)
{
    ht_close(c);
    free(c);
}

bool ht_send(ht_conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n;
        if (c->ssl != NULL)
            n = SSL_write(c->ssl, p, (int)len);
        else
            n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            ERR_clear_error();
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool ht_send_str(ht_conn_t *c, const char *s)
{
    return ht_send(c, s, strlen(s));
}

/* Reads more bytes into c->buf; <= 0 on EOF, error or timeout. */
static ssize_t fill(ht_conn_t *c)
{
    if (c->len >= sizeof(c->buf))
        return -1;
    ssize_t n;
    if (c->ssl != NULL) {
        n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));
        ERR_clear_error();
    } else {
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    }
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static const char *find_crlf2(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++) {
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    }
    return NULL;
}

bool ht_header(const ht_response_t *r, const char *name, char *out, size_t out_size)
{
    size_t nlen = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p != NULL && p[2] != '\0') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t vlen = e != NULL ? (size_t)(e - v) : strlen(v);
            if (vlen >= out_size)
                vlen = out_size - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = strstr(p, "\r\n");
    }
    return false;
}

int ht_read_response(ht_conn_t *c, ht_response_t *r, bool head_only)
{
    const char *end;
    char cl[32];

    memset(r, 0, sizeof(*r));
    while ((end = find_crlf2(c->buf, c->len)) == NULL) {
        if (fill(c) <= 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 2; /* keep the last header's CRLF */
    if (hlen >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    size_t consumed = hlen + 2;
    size_t blen = 0;
    if (!head_only && ht_header(r, "Content-Length", cl, sizeof(cl))) {
        char *stop = NULL;
        errno = 0;
        unsigned long v = strtoul(cl, &stop, 10);
        if (errno != 0 || stop == cl || *stop != '\0' || v > sizeof(c->buf))
            return -1;
        blen = (size_t)v;
    }
    while (c->len < consumed + blen) {
        if (fill(c) <= 0)
            return -1;
    }
    r->body = malloc(blen + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf + consumed, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    memmove(c->buf, c->buf + consumed + blen, c->len - consumed - blen);
    c->len -= consumed + blen;
    return r->status;
}

void ht_response_free(ht_response_t *r)
{
    free(r->body);
    r->body = NULL;
}

bool ht_wait_closed(ht_conn_t *c, int timeout_ms, size_t *got)
{
    uint64_t deadline = ht_now_ms() + (uint64_t)timeout_ms;
    size_t before = c->len;
    bool closed = false;
    while (ht_now_ms() < deadline) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (c->ssl == NULL || SSL_pending(c->ssl) == 0) {
            int pr = poll(&pfd, 1, 20);
            if (pr <= 0)
                continue;
        }
        ssize_t n = fill(c);
        if (n <= 0) {
            if (n < 0 && c->ssl == NULL && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            closed = true;
            break;
        }
    }
    if (got != NULL)
        *got = c->len - before;
    return closed;
}

int ht_request(uint16_t port, const char *raw, ht_response_t *r)
{
    ht_conn_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    ht_connect(c, port);
    assert_true(ht_send_str(c, raw));
    int status = ht_read_response(c, r, strncmp(raw, "HEAD ", 5) == 0);
    ht_close(c);
    free(c);
    return status;
}

trellis_http_server_t *ht_server_start(const trellis_http_server_config_t *cfg)
{
    trellis_http_server_t *srv = NULL;
    trellis_reason_t reason;
    trellis_err_t err = trellis_http_server_new(cfg, &srv, &reason);
    if (err != TRELLIS_OK)
        fprintf(stderr, "server_new: %s: %s\n", trellis_err_name(err), reason.text);
    assert_int_equal(err, TRELLIS_OK);
    err = trellis_http_server_start(srv, &reason);
    if (err != TRELLIS_OK)
        fprintf(stderr, "server_start: %s: %s\n", trellis_err_name(err), reason.text);
    assert_int_equal(err, TRELLIS_OK);
    assert_true(trellis_http_server_port(srv) != 0);
    return srv;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

bool ht_run_until(struct event_base *base, atomic_int *flag, int timeout_ms)
{
    uint64_t deadline = ht_now_ms() + (uint64_t)timeout_ms;
    struct event *tick = evtimer_new(base, deadline_cb, NULL);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 10000};
    assert_non_null(tick);
    while (atomic_load(flag) == 0 && ht_now_ms() < deadline) {
        evtimer_add(tick, &tv); /* bounds each iteration */
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(tick);
    return atomic_load(flag) != 0;
}

bool ht_wait_atomic(atomic_int *value, int want, int timeout_ms)
{
    uint64_t deadline = ht_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(value) < want && ht_now_ms() < deadline)
        ht_sleep_ms(5);
    return atomic_load(value) >= want;
}
