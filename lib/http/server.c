/* Server lifecycle: configuration, the shared listening socket, worker threads, stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "http_internal.h"
#include "trellis/log.h"

#define ALL_METHODS                                                                                \
    (TRELLIS_HTTP_GET | TRELLIS_HTTP_HEAD | TRELLIS_HTTP_POST | TRELLIS_HTTP_PUT |                 \
     TRELLIS_HTTP_DELETE | TRELLIS_HTTP_PATCH | TRELLIS_HTTP_OPTIONS)

void tr__ms_to_tv(unsigned ms, struct timeval *tv)
{
    tv->tv_sec = (time_t)(ms / 1000u);
    tv->tv_usec = (suseconds_t)((ms % 1000u) * 1000u);
}

const char *trellis_http_method_name(trellis_http_method_t method)
{
    switch (method) {
    case TRELLIS_HTTP_GET:
        return "GET";
    case TRELLIS_HTTP_HEAD:
        return "HEAD";
    case TRELLIS_HTTP_POST:
        return "POST";
    case TRELLIS_HTTP_PUT:
        return "PUT";
    case TRELLIS_HTTP_DELETE:
        return "DELETE";
    case TRELLIS_HTTP_PATCH:
        return "PATCH";
    case TRELLIS_HTTP_OPTIONS:
        return "OPTIONS";
    }
    return NULL;
}

/* For the client, which builds its requests with evhttp. */
enum evhttp_cmd_type tr__method_to_evhttp(trellis_http_method_t m)
{
    switch (m) {
    case TRELLIS_HTTP_GET:
        return EVHTTP_REQ_GET;
    case TRELLIS_HTTP_HEAD:
        return EVHTTP_REQ_HEAD;
    case TRELLIS_HTTP_POST:
        return EVHTTP_REQ_POST;
    case TRELLIS_HTTP_PUT:
        return EVHTTP_REQ_PUT;
    case TRELLIS_HTTP_DELETE:
        return EVHTTP_REQ_DELETE;
    case TRELLIS_HTTP_PATCH:
        return EVHTTP_REQ_PATCH;
    case TRELLIS_HTTP_OPTIONS:
        return EVHTTP_REQ_OPTIONS;
    }
    return 0;
}

/* ---- configuration ------------------------------------------------------------------------ */

static bool is_numeric_address(const char *addr)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1;
}

static bool path_ok(const char *path)
{
    size_t n = strnlen(path, TRELLIS_HTTP_MAX_PATH + 1);
    if (n == 0 || n > TRELLIS_HTTP_MAX_PATH || path[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return false;
    }
    return true;
}

static trellis_err_t check_routes(const trellis_http_server_config_t *cfg, trellis_reason_t *reason)
{
    if (cfg->n_routes > TRELLIS_HTTP_MAX_ROUTES)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "more than %u routes",
                                  TRELLIS_HTTP_MAX_ROUTES);
    if (cfg->n_routes > 0 && cfg->routes == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "routes is NULL");
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const trellis_http_route_t *r = &cfg->routes[i];
        if (r->handler == NULL || r->path == NULL || !path_ok(r->path))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "route %zu: missing handler or bad path", i);
        if (r->methods == 0 || (r->methods & ~(unsigned)ALL_METHODS) != 0)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "route %zu: bad method set",
                                      i);
        if ((r->flags & ~TRELLIS_HTTP_ROUTE_JSON) != 0)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "route %zu: bad flags", i);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->routes[j].path, r->path) == 0 &&
                (cfg->routes[j].methods & r->methods) != 0)
                return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                          "route %zu: duplicate method and path", i);
        }
    }
    return TRELLIS_OK;
}

static trellis_err_t check_config(const trellis_http_server_config_t *cfg, trellis_reason_t *reason)
{
    if (cfg->bind_address != NULL && !is_numeric_address(cfg->bind_address))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "bind_address must be a numeric IP address");
    if (cfg->workers > TRELLIS_HTTP_MAX_WORKERS)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "more than %u workers",
                                  TRELLIS_HTTP_MAX_WORKERS);
    if (cfg->cert_file == NULL) {
        if (cfg->key_file != NULL || cfg->client_ca_file != NULL ||
            cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_OFF)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "TLS options given without cert_file");
    } else {
        if (cfg->key_file == NULL)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "cert_file given without key_file");
        if (cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_OFF &&
            cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_OPTIONAL &&
            cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_REQUIRED)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "bad client_auth");
        if (cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_OFF && cfg->client_ca_file == NULL)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "client authentication needs client_ca_file");
        if (cfg->client_auth == TRELLIS_HTTP_CLIENT_AUTH_OFF && cfg->client_ca_file != NULL)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "client_ca_file given with client authentication off");
    }
    if (cfg->max_body > TRELLIS_HTTP_MAX_BODY_LIMIT ||
        cfg->max_headers > TRELLIS_HTTP_MAX_HEADERS_LIMIT ||
        cfg->request_timeout_ms > TRELLIS_HTTP_MAX_TIMEOUT_MS ||
        cfg->write_timeout_ms > TRELLIS_HTTP_MAX_TIMEOUT_MS ||
        cfg->max_connections > TRELLIS_HTTP_MAX_CONNECTIONS_LIMIT ||
        cfg->request_memory_max > TRELLIS_HTTP_REQUEST_MEMORY_LIMIT || cfg->backlog < 0 ||
        cfg->backlog > 65535)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "a limit is out of range");
    if (cfg->max_header_count > TRELLIS_HTTP_MAX_HEADER_COUNT_LIMIT)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "a limit is out of range");
    if (cfg->max_headers != 0 && cfg->max_headers < 256)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "max_headers below 256 bytes");
    return check_routes(cfg, reason);
}

static unsigned default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    if ((unsigned long)n > TRELLIS_HTTP_MAX_WORKERS)
        return TRELLIS_HTTP_MAX_WORKERS;
    return (unsigned)n;
}

static void free_routes(struct tr__route *routes, size_t n)
{
    if (routes == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(routes[i].path);
    free(routes);
}

trellis_err_t trellis_http_server_new(const trellis_http_server_config_t *cfg,
                                      trellis_http_server_t **out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_http_server_t *srv = NULL;

    trellis_reason_clear(reason);
    if (out == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (cfg == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "cfg is NULL");
    err = check_config(cfg, reason);
    if (err != TRELLIS_OK)
        goto out;

    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    srv->listen_fd = -1;
    srv->bind_address =
        strdup(cfg->bind_address != NULL ? cfg->bind_address : TRELLIS_HTTP_DEFAULT_BIND);
    if (srv->bind_address == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    srv->port_cfg = cfg->port;
    srv->n_workers = cfg->workers != 0 ? cfg->workers : default_workers();
    srv->max_body = cfg->max_body != 0 ? cfg->max_body : TRELLIS_HTTP_DEFAULT_MAX_BODY;
    srv->max_headers = cfg->max_headers != 0 ? cfg->max_headers : TRELLIS_HTTP_DEFAULT_MAX_HEADERS;
    srv->max_header_count =
        cfg->max_header_count != 0 ? cfg->max_header_count : TRELLIS_HTTP_DEFAULT_MAX_HEADER_COUNT;
    srv->request_timeout_ms = cfg->request_timeout_ms != 0
                                  ? cfg->request_timeout_ms
                                  : TRELLIS_HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
    srv->write_timeout_ms =
        cfg->write_timeout_ms != 0 ? cfg->write_timeout_ms : TRELLIS_HTTP_DEFAULT_WRITE_TIMEOUT_MS;
    srv->max_connections =
        cfg->max_connections != 0 ? cfg->max_connections : TRELLIS_HTTP_DEFAULT_MAX_CONNECTIONS;
    srv->request_memory_max = cfg->request_memory_max != 0 ? cfg->request_memory_max
                                                           : TRELLIS_HTTP_DEFAULT_REQUEST_MEMORY;
    srv->backlog = cfg->backlog != 0 ? cfg->backlog : TRELLIS_HTTP_DEFAULT_BACKLOG;
    srv->keepalive = !cfg->disable_keepalive;
    srv->app = cfg->app;
    srv->worker_init = cfg->worker_init;
    srv->worker_fini = cfg->worker_fini;

    if (cfg->n_routes > 0) {
        srv->routes = calloc(cfg->n_routes, sizeof(*srv->routes));
        if (srv->routes == NULL) {
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
        srv->n_routes = cfg->n_routes;
        for (size_t i = 0; i < cfg->n_routes; i++) {
            srv->routes[i].methods = cfg->routes[i].methods;
            srv->routes[i].handler = cfg->routes[i].handler;
            srv->routes[i].flags = cfg->routes[i].flags;
            srv->routes[i].path = strdup(cfg->routes[i].path);
            if (srv->routes[i].path == NULL) {
                err = TRELLIS_ERR_NOMEM;
                goto out;
            }
        }
    }
    if (cfg->cert_file != NULL) {
        err = tr__tls_server_ctx(cfg, &srv->ssl_ctx, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    *out = srv;
    srv = NULL;
    err = TRELLIS_OK;
out:
    trellis_http_server_free(srv);
    return err;
}

/* ---- listening socket ---------------------------------------------------------------------- */

static trellis_err_t open_listener(trellis_http_server_t *srv, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct addrinfo hints, *ai = NULL;
    char port[8];
    int fd = -1, one = 1;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", (unsigned)srv->port_cfg);
    if (getaddrinfo(srv->bind_address, port, &hints, &ai) != 0 || ai == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "cannot use bind address");
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "socket: %s", strerror(errno));
        goto out;
    }
    /* A restarted service must not wait for TIME_WAIT connections of its predecessor. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "SO_REUSEADDR: %s", strerror(errno));
        goto out;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "bind %s:%u: %s", srv->bind_address,
                                 (unsigned)srv->port_cfg, strerror(errno));
        goto out;
    }
    if (listen(fd, srv->backlog) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "listen: %s", strerror(errno));
        goto out;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "getsockname: %s", strerror(errno));
        goto out;
    }
    if (ss.ss_family == AF_INET6)
        srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
        srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    srv->listen_fd = fd;
    fd = -1;
    err = TRELLIS_OK;
out:
    if (fd >= 0)
        close(fd);
    if (ai != NULL)
        freeaddrinfo(ai);
    return err;
}

/* ---- workers ------------------------------------------------------------------------------ */

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__worker *w = arg;
    char buf[16];
    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    event_base_loopbreak(w->base);
}

static trellis_err_t worker_setup(trellis_http_server_t *srv, struct tr__worker *w, unsigned index,
                                  trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    w->srv = srv;
    w->index = index;
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    w->base = event_base_new();
    if (w->base == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* Every worker watches the one listening socket; see http_server.h for why. */
    w->accept_ev = event_new(w->base, srv->listen_fd, EV_READ | EV_PERSIST, tr__accept_cb, w);
    w->resume_ev = evtimer_new(w->base, tr__accept_resume_cb, w);
    if (w->accept_ev == NULL || w->resume_ev == NULL || event_add(w->accept_ev, NULL) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (pipe(w->stop_pipe) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "pipe: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        if (fcntl(w->stop_pipe[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(w->stop_pipe[i], F_SETFD, FD_CLOEXEC) != 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_IO, "fcntl: %s", strerror(errno));
            goto out;
        }
    }
    w->stop_ev = event_new(w->base, w->stop_pipe[0], EV_READ | EV_PERSIST, stop_cb, w);
    if (w->stop_ev == NULL || event_add(w->stop_ev, NULL) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (srv->worker_init != NULL) {
        err = srv->worker_init(srv->app, index, w->base, &w->ctx);
        if (err != TRELLIS_OK) {
            trellis_reason_set(reason, err, "worker_init of worker %u failed", index);
            goto out;
        }
        w->ctx_ready = true;
    }
    err = TRELLIS_OK;
out:
    return err;
}

/* Frees a worker whose thread has ended (or never started). */
static void worker_teardown(struct tr__worker *w)
{
    if (w->accept_ev != NULL)
        event_free(w->accept_ev);
    if (w->resume_ev != NULL)
        event_free(w->resume_ev);
    w->accept_ev = w->resume_ev = NULL;
    /* Aborts suspended requests (their abort callbacks run here, on the stopping thread)
     * before worker_fini frees what they may use. */
    tr__worker_close_all(w);
    if (w->ctx_ready && w->srv->worker_fini != NULL)
        w->srv->worker_fini(w->srv->app, w->index, w->ctx);
    w->ctx_ready = false;
    w->ctx = NULL;
    if (w->stop_ev != NULL)
        event_free(w->stop_ev);
    w->stop_ev = NULL;
    for (int i = 0; i < 2; i++) {
        if (w->stop_pipe[i] >= 0)
            close(w->stop_pipe[i]);
        w->stop_pipe[i] = -1;
    }
    if (w->base != NULL)
        event_base_free(w->base);
    w->base = NULL;
}

static void *worker_main(void *arg)
{
    struct tr__worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void worker_signal_stop(struct tr__worker *w)
{
    const char b = 's';
    ssize_t n;
    do {
        n = write(w->stop_pipe[1], &b, 1);
    } while (n < 0 && errno == EINTR);
}

/* Blocks what worker threads must not receive; the previous mask goes to *old. */
static void block_worker_signals(sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    static const int sigs[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP, SIGQUIT,
                               SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void stop_workers(trellis_http_server_t *srv)
{
    if (srv->workers == NULL)
        return;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (srv->workers[i].thread_started)
            worker_signal_stop(&srv->workers[i]);
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (srv->workers[i].thread_started) {
            pthread_join(srv->workers[i].thread, NULL);
            srv->workers[i].thread_started = false;
        }
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        worker_teardown(&srv->workers[i]);
    free(srv->workers);
    srv->workers = NULL;
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
    srv->port = 0;
}

trellis_err_t trellis_http_server_start(trellis_http_server_t *srv, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    sigset_t old;
    bool masked = false;

    trellis_reason_clear(reason);
    if (srv == NULL || srv->running)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "NULL or already running");
    err = open_listener(srv, reason);
    if (err != TRELLIS_OK)
        goto out;
    srv->workers = calloc(srv->n_workers, sizeof(*srv->workers));
    if (srv->workers == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* Workers that a failure leaves unset are torn down too: no descriptor 0 to close. */
    for (unsigned i = 0; i < srv->n_workers; i++)
        srv->workers[i].stop_pipe[0] = srv->workers[i].stop_pipe[1] = -1;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        err = worker_setup(srv, &srv->workers[i], i, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    block_worker_signals(&old);
    masked = true;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]) != 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "cannot start worker thread");
            goto out;
        }
        srv->workers[i].thread_started = true;
    }
    srv->running = true;
    trellis_log(TRELLIS_LOG_INFO, "http.start", TRELLIS_KV_STR("address", srv->bind_address),
                TRELLIS_KV_INT("port", srv->port), TRELLIS_KV_INT("workers", srv->n_workers),
                TRELLIS_KV_STR("tls", srv->ssl_ctx != NULL ? "on" : "off"));
    err = TRELLIS_OK;
out:
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != TRELLIS_OK)
        stop_workers(srv);
    return err;
}

uint16_t trellis_http_server_port(const trellis_http_server_t *srv)
{
    return (srv != NULL && srv->running) ? srv->port : 0;
}

unsigned trellis_http_server_workers(const trellis_http_server_t *srv)
{
    return srv != NULL ? srv->n_workers : 0;
}

trellis_err_t trellis_http_server_stop(trellis_http_server_t *srv)
{
    if (srv == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!srv->running)
        return TRELLIS_OK;
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < srv->n_workers; i++) {
        if (srv->workers[i].thread_started && pthread_equal(self, srv->workers[i].thread))
            return TRELLIS_ERR_INVALID_ARG; /* joining ourselves would never return */
    }
    uint16_t port = srv->port;
    stop_workers(srv);
    srv->running = false;
    trellis_log(TRELLIS_LOG_INFO, "http.stop", TRELLIS_KV_INT("port", port));
    return TRELLIS_OK;
}

void trellis_http_server_free(trellis_http_server_t *srv)
{
    if (srv == NULL)
        return;
    if (srv->running && trellis_http_server_stop(srv) != TRELLIS_OK)
        return; /* called from a worker: leaking beats freeing what threads still use */
    SSL_CTX_free(srv->ssl_ctx);
    free_routes(srv->routes, srv->n_routes);
    free(srv->bind_address);
    free(srv);
}

void trellis_http_server_stats(const trellis_http_server_t *srv, trellis_http_server_stats_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (srv == NULL)
        return;
    out->connections_accepted = atomic_load_explicit(&srv->accepted, memory_order_relaxed);
    out->connections_rejected = atomic_load_explicit(&srv->rejected, memory_order_relaxed);
    out->connections_timed_out = atomic_load_explicit(&srv->timed_out, memory_order_relaxed);
    out->connections_active = atomic_load_explicit(&srv->active, memory_order_relaxed);
    out->requests = atomic_load_explicit(&srv->requests, memory_order_relaxed);
    out->requests_aborted = atomic_load_explicit(&srv->aborted, memory_order_relaxed);
}
