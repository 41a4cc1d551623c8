/*
 * The cost of the HTTP layer itself: a trellis_http_server with one worker and a trivial JSON
 * handler (POST /v1/echo answers {"ok":true}), mutual TLS required, driven over loopback by
 * blocking OpenSSL clients on their own threads.
 *
 *   keepalive: N connections, each sending requests back to back on one TLS session;
 *   handshake: every request on a fresh connection with a full handshake and a client
 *              certificate, no resumption (a first-boot device).
 *
 * Reports requests per second and the server worker thread's CPU time per request (read from
 * the thread's CPU clock, so the load generator's own work is not counted), and for scale the
 * CPU time of one raw P-256 ECDSA verify measured in the same run.
 *
 * usage: bench_http --ca F --cert F --key F --client-cert F --client-key F
 *                   [--mode keepalive|handshake] [--connections N] [--seconds S]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "trellis/http_server.h"
#include "trellis/log.h"

#define MAX_CONNECTIONS 256

static const char request_text[] = "POST /v1/echo HTTP/1.1\r\nHost: bench\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n"
                                   "{\"challenge\":\"x\"}";
static const char request_close[] = "POST /v1/echo HTTP/1.1\r\nHost: bench\r\n"
                                    "Content-Type: application/json\r\nContent-Length: 17\r\n"
                                    "Connection: close\r\n\r\n{\"challenge\":\"x\"}";

static SSL_CTX *client_ctx;
static uint16_t port;
static atomic_int phase; /* 0 warm-up, 1 measuring, 2 stop */
static atomic_uint_fast64_t done_measured, errors;
static atomic_int have_clock;
static clockid_t worker_clock;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double worker_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(worker_clock, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void h_echo(trellis_http_request_t *req, void *app)
{
    (void)app;
    /* The first request tells the main thread which CPU clock is the worker's. */
    if (atomic_load_explicit(&have_clock, memory_order_acquire) == 0) {
        clockid_t cid;
        if (pthread_getcpuclockid(pthread_self(), &cid) == 0) {
            worker_clock = cid;
            atomic_store_explicit(&have_clock, 1, memory_order_release);
        }
    }
    trellis_http_respond_json_text(req, 200, "{\"ok\":true}", 11);
}

static const trellis_http_route_t routes[] = {
    {TRELLIS_HTTP_POST, "/v1/echo", h_echo, TRELLIS_HTTP_ROUTE_JSON},
};

/* ---- a minimal blocking client ---------------------------------------------------------- */

typedef struct {
    int fd;
    SSL *ssl;
    char buf[4096];
    size_t len;
} client_t;

static int client_open(client_t *c)
{
    struct sockaddr_in sa;
    int one = 1;
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto fail;
    c->ssl = SSL_new(client_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    return -1;
}

static void client_close(client_t *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    ERR_clear_error();
}

/* Sends one request and reads one response with a Content-Length; 0 when it was a 200. */
static int client_exchange(client_t *c, const char *req, size_t req_len)
{
    if (SSL_write(c->ssl, req, (int)req_len) != (int)req_len)
        return -1;
    c->len = 0;
    for (;;) {
        int n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - 1 - c->len));
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL) {
            if (c->len >= sizeof(c->buf) - 1)
                return -1;
            continue;
        }
        const char *cl = strstr(c->buf, "Content-Length: ");
        if (cl == NULL || cl > end)
            return -1;
        char *stop = NULL;
        long blen = strtol(cl + 16, &stop, 10);
        if (stop == cl + 16 || blen < 0)
            return -1;
        size_t want = (size_t)(end - c->buf) + 4 + (size_t)blen;
        if (want > sizeof(c->buf) - 1)
            return -1;
        while (c->len < want) {
            n = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - 1 - c->len));
            if (n <= 0)
                return -1;
            c->len += (size_t)n;
        }
        return strncmp(c->buf, "HTTP/1.1 200 ", 13) == 0 ? 0 : -1;
    }
}

static void count_one(void)
{
    if (atomic_load(&phase) == 1)
        atomic_fetch_add(&done_measured, 1);
}

static void *load_keepalive(void *arg)
{
    client_t *c = arg;
    if (client_open(c) != 0) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    while (atomic_load(&phase) < 2) {
        if (client_exchange(c, request_text, sizeof(request_text) - 1) != 0) {
            atomic_fetch_add(&errors, 1);
            break;
        }
        count_one();
    }
    client_close(c);
    return NULL;
}

static void *load_handshake(void *arg)
{
    client_t *c = arg;
    while (atomic_load(&phase) < 2) {
        if (client_open(c) != 0) {
            atomic_fetch_add(&errors, 1);
            continue;
        }
        if (client_exchange(c, request_close, sizeof(request_close) - 1) != 0)
            atomic_fetch_add(&errors, 1);
        else
            count_one();
        client_close(c);
    }
    return NULL;
}

/* ---- the raw verify, for scale -------------------------------------------------------------- */

static double raw_verify_us(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char msg[32] = {1}, sig[80];
    size_t sig_len = sizeof(sig);
    double us = 0;
    if (key == NULL || md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, msg, sizeof(msg)) != 1)
        goto out;
    struct timespec t0, t1;
    unsigned n = 0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    double start = now_s();
    while (now_s() - start < 0.5) {
        for (int i = 0; i < 50; i++, n++) {
            if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
                EVP_DigestVerify(md, sig, sig_len, msg, sizeof(msg)) != 1)
                goto out;
        }
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / n;
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return us;
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: bench_http --ca F --cert F --key F --client-cert F --client-key F\n"
                    "                  [--mode keepalive|handshake] [--connections N] "
                    "[--seconds S]\n");
    exit(2);
}

static long number_arg(const char *s, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    const char *ca = NULL, *cert = NULL, *key = NULL, *ccert = NULL, *ckey = NULL;
    const char *mode = "keepalive";
    long connections = 16, seconds = 5;
    static client_t clients[MAX_CONNECTIONS];
    pthread_t threads[MAX_CONNECTIONS];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--ca") == 0)
            ca = argv[i + 1];
        else if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--client-cert") == 0)
            ccert = argv[i + 1];
        else if (strcmp(argv[i], "--client-key") == 0)
            ckey = argv[i + 1];
        else if (strcmp(argv[i], "--mode") == 0)
            mode = argv[i + 1];
        else if (strcmp(argv[i], "--connections") == 0)
            connections = number_arg(argv[i + 1], 1, MAX_CONNECTIONS);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = number_arg(argv[i + 1], 1, 3600);
        else
            usage();
    }
    if (argc % 2 != 1 || ca == NULL || cert == NULL || key == NULL || ccert == NULL || ckey == NULL)
        usage();
    bool handshake = strcmp(mode, "handshake") == 0;
    if (!handshake && strcmp(mode, "keepalive") != 0)
        usage();
    signal(SIGPIPE, SIG_IGN);
    trellis_log_set_level(TRELLIS_LOG_WARN);

    trellis_http_server_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.workers = 1;
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.client_auth = TRELLIS_HTTP_CLIENT_AUTH_REQUIRED;
    cfg.client_ca_file = ca;
    cfg.routes = routes;
    cfg.n_routes = 1;
    trellis_http_server_t *srv = NULL;
    trellis_reason_t reason;
    if (trellis_http_server_new(&cfg, &srv, &reason) != TRELLIS_OK ||
        trellis_http_server_start(srv, &reason) != TRELLIS_OK) {
        fprintf(stderr, "bench_http: server: %s\n", reason.text);
        return 1;
    }
    port = trellis_http_server_port(srv);

    client_ctx = SSL_CTX_new(TLS_client_method());
    if (client_ctx == NULL || SSL_CTX_load_verify_locations(client_ctx, ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(client_ctx, ccert) != 1 ||
        SSL_CTX_use_PrivateKey_file(client_ctx, ckey, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "bench_http: client TLS setup failed\n");
        return 1;
    }
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
    /* A first-boot device has no session to resume. */
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(client_ctx, SSL_OP_NO_TICKET);

    double raw_us = raw_verify_us();
    for (long i = 0; i < connections; i++) {
        if (pthread_create(&threads[i], NULL, handshake ? load_handshake : load_keepalive,
                           &clients[i]) != 0) {
            fprintf(stderr, "bench_http: cannot start a client thread\n");
            return 1;
        }
    }
    /* Warm-up: connections open, caches fill, the worker's clock becomes known. */
    double warm_end = now_s() + 1.0;
    while (now_s() < warm_end || atomic_load(&have_clock) == 0) {
        if (now_s() > warm_end + 5.0) {
            fprintf(stderr, "bench_http: no request reached the server\n");
            return 1;
        }
        usleep(10000);
    }
    double cpu0 = worker_cpu_s(), t0 = now_s();
    atomic_store(&phase, 1);
    usleep((useconds_t)(seconds * 1000000L));
    atomic_store(&phase, 2);
    double cpu1 = worker_cpu_s(), t1 = now_s();
    uint64_t n = atomic_load(&done_measured);
    for (long i = 0; i < connections; i++)
        pthread_join(threads[i], NULL);

    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    trellis_http_server_free(srv);
    SSL_CTX_free(client_ctx);
    if (n == 0) {
        fprintf(stderr, "bench_http: no request completed\n");
        return 1;
    }
    double per_req_us = (cpu1 - cpu0) * 1e6 / (double)n;
    printf("http-%s: %ld connection(s), %.1f s: %.0f requests/s; server CPU %.1f us per %s "
           "(%.0f%% of one core); errors %llu\n",
           mode, connections, t1 - t0, (double)n / (t1 - t0), per_req_us,
           handshake ? "handshake+request" : "request", (cpu1 - cpu0) * 100.0 / (t1 - t0),
           (unsigned long long)atomic_load(&errors));
    printf("raw-verify: %.1f us of CPU per P-256 verify: the server's %s costs %.2f verifies\n",
           raw_us, handshake ? "handshake+request" : "request", per_req_us / raw_us);
    (void)st;
    return 0;
}
