/*
 * Connection lifecycle and limits: creating each connection's bufferevent, adopting the
 * connection (cap, TCP_NODELAY, timers, input bound), the request timeout, noticing a
 * disconnect while a handler works, and turning evhttp's own HTML error pages into our JSON
 * error body.
 *
 * evhttp 2.1 has no "new connection" hook that sees the connection object, only the bufferevent
 * callback (tr__bevcb), which runs just before evhttp builds its evhttp_connection around the
 * bufferevent we return. So tr__bevcb queues the bufferevent (holding a reference, so a
 * connection evhttp gives up at once cannot leave us a dangling pointer) and activates the
 * worker's adopt event; tr__adopt_cb runs later in the same loop iteration, before any I/O on the
 * new socket can be processed, and finds the evhttp_connection as the bufferevent's callback
 * argument.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "http_internal.h"
#include "trellis/log.h"

/* Slack above max_headers + max_body for chunk framing and whole TLS records. */
#define INPUT_SLACK (16u * 1024u)
/* Pause after accept() failed for lack of descriptors or memory. */
#define ACCEPT_RETRY_MS 100u

/* ---- the evhttp_connection -> tr__conn table -------------------------------------------- */

static size_t slot_of(const struct tr__worker *w, const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 29;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & w->table_mask;
}

static void table_insert(struct tr__worker *w, struct tr__conn *conn)
{
    size_t s = slot_of(w, conn->evcon);
    conn->hash_next = w->table[s];
    w->table[s] = conn;
}

static void table_remove(struct tr__worker *w, struct tr__conn *conn)
{
    struct tr__conn **pp = &w->table[slot_of(w, conn->evcon)];
    while (*pp != NULL) {
        if (*pp == conn) {
            *pp = conn->hash_next;
            conn->hash_next = NULL;
            return;
        }
        pp = &(*pp)->hash_next;
    }
}

struct tr__conn *tr__conn_lookup(struct tr__worker *w, const struct evhttp_connection *evcon)
{
    for (struct tr__conn *c = w->table[slot_of(w, evcon)]; c != NULL; c = c->hash_next) {
        if (c->evcon == evcon)
            return c;
    }
    return NULL;
}

/* ---- creation and adoption ------------------------------------------------------------------ */

struct bufferevent *tr__bevcb(struct event_base *base, void *arg)
{
    struct tr__worker *w = arg;
    struct bufferevent *bev = NULL;
    struct tr__conn *conn = NULL;

    if (w->srv->ssl_ctx != NULL) {
        SSL *ssl = SSL_new(w->srv->ssl_ctx);
        if (ssl != NULL) {
            /* On failure libevent may or may not have freed ssl already (it depends on how
             * far it got); a leak under memory exhaustion beats a double free. */
            bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
            if (bev != NULL)
                bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        }
    }
    if (bev == NULL) {
        /* Plain HTTP, or we could not make a TLS bufferevent: then the connection is never
         * adopted and the router refuses its requests (fail closed). */
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == NULL || w->srv->ssl_ctx != NULL)
            return bev;
    }
    conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return bev;
    conn->worker = w;
    conn->bev = bev;
    bufferevent_incref(bev);
    conn->adopt_next = w->adopt_head;
    w->adopt_head = conn;
    event_active(w->adopt_ev, 0, 0);
    return bev;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg);
static void defer_cb(evutil_socket_t fd, short what, void *arg);
static void output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void close_cb(struct evhttp_connection *evcon, void *arg);

static void arm_deadline(struct tr__conn *conn)
{
    struct timeval tv;
    tr__ms_to_tv(conn->worker->srv->request_timeout_ms, &tv);
    evtimer_add(conn->deadline_ev, &tv);
}

static void format_peer(struct tr__conn *conn)
{
    char *raw = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(conn->evcon, &raw, &port);
    const char *addr = raw != NULL ? raw : "?";
    if (strchr(addr, ':') != NULL)
        snprintf(conn->peer, sizeof(conn->peer), "[%s]:%u", addr, (unsigned)port);
    else
        snprintf(conn->peer, sizeof(conn->peer), "%s:%u", addr, (unsigned)port);
}

/* Everything a taken connection needs; on failure the caller closes it. */
static trellis_err_t conn_setup(struct tr__conn *conn)
{
    trellis_http_server_t *srv = conn->worker->srv;
    struct event_base *base = conn->worker->base;
    struct timeval wt;
    int one = 1;

    evutil_socket_t fd = bufferevent_getfd(conn->bev);
    /* Without TCP_NODELAY a small response waits up to 40 ms for the client's delayed ACK
     * (design.md §7). */
    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return TRELLIS_ERR_IO;
    conn->deadline_ev = evtimer_new(base, deadline_cb, conn);
    conn->defer_ev = event_new(base, -1, 0, defer_cb, conn);
    if (conn->deadline_ev == NULL || conn->defer_ev == NULL)
        return TRELLIS_ERR_NOMEM;
    conn->out_cb = evbuffer_add_cb(bufferevent_get_output(conn->bev), output_cb, conn);
    if (conn->out_cb == NULL)
        return TRELLIS_ERR_NOMEM;
    format_peer(conn);
    /* Bounds what a client can make us buffer: the largest acceptable request plus slack.
     * evhttp reads a Content-Length body only once it is all buffered, so the bound must not
     * be below max_headers + max_body. */
    bufferevent_setwatermark(conn->bev, EV_READ, 0, srv->max_headers + srv->max_body + INPUT_SLACK);
    /* Reading is bounded by the request timeout instead of an inactivity timeout, which a
     * client sending one byte now and then would keep resetting forever. */
    tr__ms_to_tv(srv->write_timeout_ms, &wt);
    bufferevent_set_timeouts(conn->bev, NULL, &wt);
    evhttp_connection_set_closecb(conn->evcon, close_cb, conn);
    return TRELLIS_OK;
}

static void conn_release(struct tr__conn *conn)
{
    if (conn->out_cb != NULL)
        evbuffer_remove_cb_entry(bufferevent_get_output(conn->bev), conn->out_cb);
    if (conn->deadline_ev != NULL)
        event_free(conn->deadline_ev);
    if (conn->defer_ev != NULL)
        event_free(conn->defer_ev);
    X509_free(conn->peer_cert);
    free(conn);
}

static void adopt_one(struct tr__worker *w, struct tr__conn *conn)
{
    trellis_http_server_t *srv = w->srv;
    struct bufferevent *bev = conn->bev;
    bufferevent_event_cb eventcb = NULL;
    void *cbarg = NULL;

    /* evhttp set its callbacks with the connection as argument; bufferevent_free() clears
     * them, which tells us evhttp has already given this connection up. */
    bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
    if (eventcb == NULL || cbarg == NULL) {
        free(conn);
        bufferevent_decref(bev);
        return;
    }
    conn->evcon = cbarg;
    if (atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed) >= srv->max_connections) {
        atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->rejected, 1, memory_order_relaxed);
        trellis_log(TRELLIS_LOG_DEBUG, "http.conn.rejected",
                    TRELLIS_KV_INT("max_connections", srv->max_connections));
        evhttp_connection_free(conn->evcon);
        free(conn);
        bufferevent_decref(bev);
        return;
    }
    if (conn_setup(conn) != TRELLIS_OK) {
        atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
        evhttp_connection_set_closecb(conn->evcon, NULL, NULL);
        evhttp_connection_free(conn->evcon);
        conn_release(conn);
        bufferevent_decref(bev);
        return;
    }
    table_insert(w, conn);
    arm_deadline(conn);
    atomic_fetch_add_explicit(&srv->accepted, 1, memory_order_relaxed);
    bufferevent_decref(bev);
}

void tr__adopt_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__worker *w = arg;
    (void)fd;
    (void)what;
    while (w->adopt_head != NULL) {
        struct tr__conn *conn = w->adopt_head;
        w->adopt_head = conn->adopt_next;
        conn->adopt_next = NULL;
        adopt_one(w, conn);
    }
}

void tr__worker_forget_pending(struct tr__worker *w)
{
    while (w->adopt_head != NULL) {
        struct tr__conn *conn = w->adopt_head;
        w->adopt_head = conn->adopt_next;
        bufferevent_decref(conn->bev);
        free(conn);
    }
}

/* ---- accept errors ------------------------------------------------------------------------ */

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

void tr__accept_error_cb(struct evconnlistener *listener, void *arg)
{
    int e = errno;
    struct timeval tv;
    (void)arg;
    /* Out of descriptors or memory, the listening socket stays readable: without a pause the
     * loop would spin on accept() and starve the connections it already has. */
    trellis_log(TRELLIS_LOG_WARN, "http.accept.error", TRELLIS_KV_STR("error", strerror(e)));
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        tr__ms_to_tv(ACCEPT_RETRY_MS, &tv);
        if (evconnlistener_disable(listener) == 0 &&
            event_base_once(evconnlistener_get_base(listener), -1, EV_TIMEOUT, accept_resume_cb,
                            listener, &tv) != 0)
            evconnlistener_enable(listener);
    }
}

/* ---- request timing, disconnects, close ---------------------------------------------------- */

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__conn *conn = arg;
    (void)fd;
    (void)what;
    atomic_fetch_add_explicit(&conn->worker->srv->timed_out, 1, memory_order_relaxed);
    trellis_log(TRELLIS_LOG_INFO, "http.conn.timeout", TRELLIS_KV_STR("peer", conn->peer),
                TRELLIS_KV_INT("request_timeout_ms", conn->worker->srv->request_timeout_ms));
    evhttp_connection_free(conn->evcon); /* close_cb frees conn */
}

/* While a handler holds a request, bytes of a pipelined next request must wait in the buffer:
 * evhttp 2.1 would otherwise try to parse them in the middle of the exchange and abort the
 * process ("illegal connection state"). Reading stays enabled until such bytes arrive so that a
 * client that hangs up is noticed. */
static void hold_read_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_disable(bev, EV_READ);
}

static void response_done_cb(struct evhttp_request *evreq, void *arg)
{
    struct tr__conn *conn = arg;
    (void)evreq;
    /* The next request on this connection (or the keep-alive idle time) starts now. */
    arm_deadline(conn);
}

void tr__conn_request_begins(struct tr__conn *conn, struct evhttp_request *evreq)
{
    bufferevent_data_cb writecb = NULL;
    bufferevent_event_cb eventcb = NULL;
    void *cbarg = NULL;

    evtimer_del(conn->deadline_ev);
    bufferevent_getcb(conn->bev, NULL, &writecb, &eventcb, &cbarg);
    bufferevent_setcb(conn->bev, hold_read_cb, writecb, eventcb, cbarg);
    bufferevent_enable(conn->bev, EV_READ);
    evhttp_request_set_on_complete_cb(evreq, response_done_cb, conn);
}

void tr__conn_kill(struct tr__conn *conn)
{
    conn->kill = true;
    event_active(conn->defer_ev, 0, 0);
}

static void close_cb(struct evhttp_connection *evcon, void *arg)
{
    struct tr__conn *conn = arg;
    struct tr__worker *w = conn->worker;

    /* evhttp may reach here from both a reset and the final free: once is enough. */
    evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (conn->current != NULL)
        tr__request_abort(conn->current);
    table_remove(w, conn);
    atomic_fetch_sub_explicit(&w->srv->active, 1, memory_order_relaxed);
    conn_release(conn);
}

/* ---- evhttp's own error pages -------------------------------------------------------------- */

/* Called for every change of the connection's output buffer. A response we did not queue
 * ourselves is one of evhttp's error pages (or a "100 Continue"); it is looked at from the
 * deferred callback, once evhttp has queued all of it and before any of it is written. */
static void output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct tr__conn *conn = arg;
    (void)buf;
    if (conn->sending)
        return;
    if (info->n_deleted > 0)
        conn->fixup_clean = false;
    if (info->n_added > 0 && info->n_deleted == 0 && info->orig_size == 0 && !conn->fixup_pending) {
        conn->fixup_pending = true;
        conn->fixup_clean = true;
        event_active(conn->defer_ev, 0, 0);
    }
}

static int parse_status(const char head[12])
{
    /* RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] */
    if (memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        return -1;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return -1;
        status = status * 10 + (head[i] - '0');
    }
    return status;
}

static void fixup(struct tr__conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    char head[12];
    char *resp = NULL;
    size_t resp_len = 0;

    conn->fixup_pending = false;
    if (!conn->fixup_clean)
        return; /* part of it is already on the wire: leave it alone */
    size_t len = evbuffer_get_length(out);
    if (len < sizeof(head) || evbuffer_copyout(out, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
        return;
    int status = parse_status(head);
    if (status < 400)
        return; /* "100 Continue", or not a status line we understand */
    if (tr__internal_error_response(status, conn->worker->srv->max_body, &resp, &resp_len) !=
        TRELLIS_OK)
        return; /* evhttp's page still goes out: the client gets an answer either way */
    conn->sending = true;
    evbuffer_drain(out, len);
    evbuffer_add(out, resp, resp_len);
    conn->sending = false;
    free(resp);
    tr__log_request("-", "-", status, 0, 0, conn->peer, "refused");
}

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__conn *conn = arg;
    (void)fd;
    (void)what;
    if (conn->kill) {
        evhttp_connection_free(conn->evcon); /* close_cb frees conn */
        return;
    }
    if (conn->fixup_pending)
        fixup(conn);
}
