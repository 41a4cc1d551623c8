/*
 * Client connections: per host:port pools of idle keep-alive connections, opening and retiring
 * connections, and name resolution.
 *
 * Names are resolved with getaddrinfo() on a short-lived helper thread, and the loop connects to
 * the numeric address it returns (so evhttp never resolves, and the socket exists as soon as
 * the connect starts, in time for TCP_NODELAY before the TLS handshake). libevent's own evdns
 * was not used because a cancelled lookup calls back later from the loop with pointers into
 * the resolver, which makes freeing a client with a lookup in flight unsafe. A lookup job is
 * shared by the loop and the thread and freed by whichever lets go of it last.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "http_internal.h"
#include "trellis/clock.h"

/* Response line and headers of an upstream answer. */
#define CLIENT_MAX_HEADERS (16u * 1024u)

/* ---- hosts ------------------------------------------------------------------------------- */

trellis_err_t tr__client_host_get(struct trellis_http_client *c, const char *name, uint16_t port,
                                  bool tls, struct tr__client_host **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct tr__client_host *h = NULL;
    unsigned char buf[sizeof(struct in6_addr)];
    char authority[300];

    *out = NULL;
    for (h = c->hosts; h != NULL; h = h->next) {
        if (h->port == port && h->tls == tls && strcmp(h->name, name) == 0) {
            *out = h;
            return TRELLIS_OK;
        }
    }
    if (c->n_hosts >= TRELLIS_HTTP_CLIENT_MAX_HOSTS)
        return TRELLIS_ERR_UNAVAILABLE;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    bool v6 = inet_pton(AF_INET6, name, buf) == 1;
    h->numeric = v6 || inet_pton(AF_INET, name, buf) == 1;
    int n = snprintf(authority, sizeof(authority), v6 ? "[%s]:%u" : "%s:%u", name, (unsigned)port);
    if (n < 0 || (size_t)n >= sizeof(authority)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    h->name = strdup(name);
    h->authority = strdup(authority);
    if (h->name == NULL || h->authority == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    h->port = port;
    h->tls = tls;
    h->next = c->hosts;
    c->hosts = h;
    c->n_hosts++;
    *out = h;
    h = NULL;
    err = TRELLIS_OK;
out:
    if (h != NULL) {
        free(h->name);
        free(h->authority);
        free(h);
    }
    return err;
}

void tr__client_hosts_free(struct trellis_http_client *c)
{
    while (c->hosts != NULL) {
        struct tr__client_host *h = c->hosts;
        c->hosts = h->next;
        free(h->name);
        free(h->authority);
        free(h);
    }
    c->n_hosts = 0;
}

/* ---- connections ----------------------------------------------------------------------------- */

static void conn_close_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    tr__client_conn_dead(arg);
}

trellis_err_t tr__client_conn_open(struct trellis_http_client *c, struct tr__client_host *host,
                                   const char *address, struct tr__client_conn **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct tr__client_conn *conn = NULL;
    struct bufferevent *bev = NULL;
    SSL *ssl = NULL;

    *out = NULL;
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (host->tls) {
        err = tr__tls_client_ssl(c->ssl_ctx, host->name, &ssl);
        if (err != TRELLIS_OK)
            goto out;
        tr__tls_client_watch(ssl, conn);
        /* Deferred callbacks: evhttp is never re-entered from inside a bufferevent call. */
        bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        /* On failure libevent may already have freed ssl; leaking it under memory exhaustion
         * beats a double free. */
        ssl = NULL;
        if (bev != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    }
    if (bev == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    conn->evcon = evhttp_connection_base_bufferevent_new(c->base, NULL, bev, address, host->port);
    if (conn->evcon == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    conn->bev = bev;
    bev = NULL;
    conn->client = c;
    conn->host = host;
    evhttp_connection_set_retries(conn->evcon, 0);
    evhttp_connection_set_max_body_size(conn->evcon, (ev_ssize_t)c->max_response);
    evhttp_connection_set_max_headers_size(conn->evcon, CLIENT_MAX_HEADERS);
    evhttp_connection_set_closecb(conn->evcon, conn_close_cb, conn);
    c->stats.connections_opened++;
    *out = conn;
    conn = NULL;
    err = TRELLIS_OK;
out:
    SSL_free(ssl);
    if (bev != NULL)
        bufferevent_free(bev);
    free(conn);
    return err;
}

void tr__client_conn_dead(struct tr__client_conn *conn)
{
    if (conn == NULL || conn->dead)
        return;
    struct tr__client_host *host = conn->host;
    conn->dead = true;
    if (conn->idle) {
        for (struct tr__client_conn **pp = &host->idle; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == conn) {
                *pp = conn->next;
                break;
            }
        }
        conn->idle = false;
        host->n_idle--;
    }
    host->n_open--;
    /* Whatever libevent still has queued for this connection must find nobody to call. */
    evhttp_connection_set_closecb(conn->evcon, NULL, NULL);
    bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
    bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
    conn->next = conn->client->dead;
    conn->client->dead = conn;
    event_active(conn->client->reap_ev, 0, 0);
}

void tr__client_reap(struct trellis_http_client *c)
{
    while (c->dead != NULL) {
        struct tr__client_conn *conn = c->dead;
        c->dead = conn->next;
        evhttp_connection_free(conn->evcon);
        free(conn);
    }
}

void tr__client_reap_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tr__client_reap(arg);
}

struct tr__client_conn *tr__client_pool_take(struct tr__client_host *host)
{
    uint64_t now = trellis_mono_us();
    while (host->idle != NULL) {
        struct tr__client_conn *conn = host->idle;
        struct trellis_http_client *c = conn->client;
        host->idle = conn->next;
        conn->next = NULL;
        conn->idle = false;
        host->n_idle--;
        /* Past idle_timeout_ms the server may be closing it right now: do not race it. */
        if (now - conn->idle_since_us > (uint64_t)c->idle_timeout_ms * 1000u) {
            tr__client_conn_dead(conn);
            continue;
        }
        return conn;
    }
    return NULL;
}

void tr__client_pool_put(struct tr__client_conn *conn)
{
    if (conn->dead)
        return;
    struct tr__client_host *host = conn->host;
    if (host->n_idle >= conn->client->max_idle) {
        tr__client_conn_dead(conn);
        return;
    }
    conn->idle = true;
    conn->idle_since_us = trellis_mono_us();
    conn->next = host->idle;
    host->idle = conn;
    host->n_idle++;
}

/* ---- name resolution ----------------------------------------------------------------------- */

struct tr__dns_job {
    atomic_int refs; /* the loop's and the thread's */
    atomic_int done;
    int fds[2];
    char host[256];
    bool ok;
    char addr[INET6_ADDRSTRLEN];
    struct event *ev;               /* loop side */
    struct trellis_http_call *call; /* loop side; NULL once cancelled */
};

static void job_unref(struct tr__dns_job *job)
{
    if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < 2; i++) {
        if (job->fds[i] >= 0)
            close(job->fds[i]);
    }
    free(job);
}

static void *dns_thread(void *arg)
{
    struct tr__dns_job *job = arg;
    struct addrinfo hints, *res = NULL;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(job->host, NULL, &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai != NULL && !job->ok; ai = ai->ai_next) {
            const void *a = NULL;
            if (ai->ai_family == AF_INET)
                a = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
            else if (ai->ai_family == AF_INET6)
                a = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
            if (a != NULL && inet_ntop(ai->ai_family, a, job->addr, sizeof(job->addr)) != NULL)
                job->ok = true;
        }
        freeaddrinfo(res);
    }
    atomic_store_explicit(&job->done, 1, memory_order_release);
    const char b = 'r';
    while (write(job->fds[1], &b, 1) < 0 && errno == EINTR)
        ;
    job_unref(job);
    return NULL;
}

static void dns_ready_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__dns_job *job = arg;
    char addr[INET6_ADDRSTRLEN];
    (void)fd;
    (void)what;
    if (!atomic_load_explicit(&job->done, memory_order_acquire)) {
        event_add(job->ev, NULL);
        return;
    }
    struct trellis_http_call *call = job->call;
    bool ok = job->ok;
    if (ok)
        memcpy(addr, job->addr, sizeof(addr));
    event_free(job->ev);
    job->ev = NULL;
    job->call = NULL;
    call->dns = NULL;
    job_unref(job);
    tr__client_resolved(call, ok ? addr : NULL);
}

trellis_err_t tr__client_resolve(struct trellis_http_call *call)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct tr__dns_job *job = NULL;
    pthread_attr_t attr;
    bool attr_ready = false;
    sigset_t all, old;
    pthread_t tid;

    job = calloc(1, sizeof(*job));
    if (job == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    job->fds[0] = job->fds[1] = -1;
    atomic_init(&job->refs, 1);
    atomic_init(&job->done, 0);
    snprintf(job->host, sizeof(job->host), "%s", call->host->name);
    if (pipe(job->fds) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        if (fcntl(job->fds[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(job->fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            err = TRELLIS_ERR_IO;
            goto out;
        }
    }
    job->ev = event_new(call->client->base, job->fds[0], EV_READ, dns_ready_cb, job);
    if (job->ev == NULL || event_add(job->ev, NULL) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (pthread_attr_init(&attr) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    attr_ready = true;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The helper must never be the thread a process signal is delivered to. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store_explicit(&job->refs, 2, memory_order_relaxed);
    int rc = pthread_create(&tid, &attr, dns_thread, job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        atomic_store_explicit(&job->refs, 1, memory_order_relaxed);
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    job->call = call;
    call->dns = job;
    job = NULL;
    err = TRELLIS_OK;
out:
    if (attr_ready)
        pthread_attr_destroy(&attr);
    if (job != NULL) {
        if (job->ev != NULL)
            event_free(job->ev);
        job->ev = NULL;
        job_unref(job);
    }
    return err;
}

void tr__client_resolve_cancel(struct trellis_http_call *call)
{
    struct tr__dns_job *job = call->dns;
    if (job == NULL)
        return;
    call->dns = NULL;
    event_free(job->ev);
    job->ev = NULL;
    job->call = NULL;
    job_unref(job); /* the thread may still run; it frees the job when it ends */
}
