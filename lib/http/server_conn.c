/*
 * Connections: accepting (with the connection cap), the TLS handshake, reading requests into a
 * per-connection buffer, writing responses, the request and write timeouts, closing.
 *
 * The costs this layout avoids (design.md §7): each connection has one persistent read event,
 * added at accept and removed only when its input buffer is full, so a keep-alive request costs
 * no epoll_ctl; a readiness is served with as few reads as possible (TLS reads ahead, so one
 * read(2) usually brings a whole request); a response is built contiguous and handed to one
 * SSL_write or send, one TLS record and one write(2) up to 16 KiB; a write event exists only
 * while the socket is full; the request timer is a deadline checked lazily, not a timer
 * re-armed per request; the request object lives inside the connection.
 *
 * A connection is driven by conn_advance(), which runs whenever something may let it move on
 * (input arrived, output drained, a suspended handler answered): flush queued output, then
 * parse and dispatch the next request, one at a time and in order. Bytes of a pipelined request
 * that arrive while a handler is suspended stay in the buffer (which never moves while a
 * request points into it) until the answer has been written.
 */
/* accept4() */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_internal.h"
#include "trellis/clock.h"
#include "trellis/log.h"

/* Room for framing (chunk sizes, trailers) and whole TLS records above max_headers +
 * max_body. */
#define INPUT_SLACK (16u * 1024u)
/* First size of the input buffer; most requests of the services fit. */
#define INPUT_FIRST (4u * 1024u)
/* Buffers above this are given back when a connection goes idle. */
#define BUFFER_KEEP (64u * 1024u)
/* Pause after accept() failed for lack of descriptors or memory. */
#define ACCEPT_RETRY_MS 100u
/* Connections taken per listening-socket readiness, so that idle workers get a share. */
#define ACCEPT_BATCH 16
/* After the last response: how long and how much unread input we drain before closing, so
 * that the close does not turn into a reset that destroys the response in flight. */
#define LINGER_MS    1000u
#define LINGER_BYTES (256u * 1024u)

static void conn_advance(struct tr__conn *conn);
static void conn_free(struct tr__conn *conn);

/* ---- closing ----------------------------------------------------------------------------- */

/* Closes now, or, with a handler running below us, as soon as it returns. */
static void conn_close(struct tr__conn *conn)
{
    if (conn->dispatching) {
        conn->doomed = true;
        return;
    }
    conn_free(conn);
}

/* What a connection owns in libevent and OpenSSL (any of it may be NULL). */
static void release_events_and_tls(struct tr__conn *conn)
{
    if (conn->read_ev != NULL)
        event_free(conn->read_ev);
    if (conn->write_ev != NULL)
        event_free(conn->write_ev);
    if (conn->timer_ev != NULL)
        event_free(conn->timer_ev);
    SSL_free(conn->ssl);
}

static void conn_free(struct tr__conn *conn)
{
    struct tr__worker *w = conn->worker;

    if (conn->current != NULL)
        tr__request_abort(conn->current);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        w->conns = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    release_events_and_tls(conn);
    ERR_clear_error();
    if (conn->fd >= 0)
        close(conn->fd);
    X509_free(conn->peer_cert);
    free(conn->in);
    free(conn->out);
    atomic_fetch_sub_explicit(&w->srv->active, 1, memory_order_relaxed);
    free(conn);
}

/* ---- timers -------------------------------------------------------------------------------- */

static void timer_at(struct tr__conn *conn, uint64_t deadline_us)
{
    conn->deadline_us = deadline_us;
    if (conn->timer_armed)
        return; /* it fires early at worst, and then re-arms for the rest */
    uint64_t now = trellis_mono_us();
    uint64_t wait = deadline_us > now ? deadline_us - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000000u),
                         .tv_usec = (suseconds_t)(wait % 1000000u)};
    if (evtimer_add(conn->timer_ev, &tv) == 0)
        conn->timer_armed = true;
}

/* The next request (or the TLS handshake, or the keep-alive idle time) starts now. */
static void request_clock_start(struct tr__conn *conn)
{
    timer_at(conn, trellis_mono_us() + (uint64_t)conn->worker->srv->request_timeout_ms * 1000u);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__conn *conn = arg;
    (void)fd;
    (void)what;
    conn->timer_armed = false;
    if (conn->deadline_us == 0)
        return; /* a handler works on a request: its clock is stopped */
    if (trellis_mono_us() < conn->deadline_us) {
        uint64_t d = conn->deadline_us;
        timer_at(conn, d);
        return;
    }
    if (conn->state != TR_CONN_LINGER) {
        atomic_fetch_add_explicit(&conn->worker->srv->timed_out, 1, memory_order_relaxed);
        trellis_log(TRELLIS_LOG_INFO, "http.conn.timeout", TRELLIS_KV_STR("peer", conn->peer),
                    TRELLIS_KV_INT("request_timeout_ms", conn->worker->srv->request_timeout_ms));
    }
    conn_close(conn);
}

/* ---- output ------------------------------------------------------------------------------- */

char *tr__conn_out_reserve(struct tr__conn *conn, size_t n)
{
    if (n > TR_OUT_MAX || conn->out_len > TR_OUT_MAX - n)
        return NULL;
    size_t need = conn->out_len + n;
    if (need > conn->out_cap) {
        size_t cap = conn->out_cap != 0 ? conn->out_cap : 1024u;
        while (cap < need)
            cap *= 2;
        char *p = realloc(conn->out, cap);
        if (p == NULL)
            return NULL;
        conn->out = p;
        conn->out_cap = cap;
    }
    return conn->out + conn->out_len;
}

static void write_wait(struct tr__conn *conn, bool on)
{
    if (on == conn->write_waiting)
        return;
    if (on) {
        struct timeval tv;
        tr__ms_to_tv(conn->worker->srv->write_timeout_ms, &tv);
        /* Persistent with a timeout: the timeout restarts at every callback, so it fires only
         * after write_timeout_ms without progress. */
        if (event_add(conn->write_ev, &tv) == 0)
            conn->write_waiting = true;
    } else {
        event_del(conn->write_ev);
        conn->write_waiting = false;
    }
}

enum flush_result { FLUSH_DONE, FLUSH_WAIT, FLUSH_ERROR };

static enum flush_result flush(struct tr__conn *conn)
{
    while (conn->out_off < conn->out_len) {
        size_t left = conn->out_len - conn->out_off;
        if (conn->ssl != NULL) {
            int chunk = left > (size_t)(1u << 30) ? (1 << 30) : (int)left;
            int n = SSL_write(conn->ssl, conn->out + conn->out_off, chunk);
            if (n <= 0) {
                int e = SSL_get_error(conn->ssl, n);
                ERR_clear_error();
                if (e == SSL_ERROR_WANT_WRITE) {
                    write_wait(conn, true);
                    return FLUSH_WAIT;
                }
                return FLUSH_ERROR;
            }
            conn->out_off += (size_t)n;
        } else {
            ssize_t n = send(conn->fd, conn->out + conn->out_off, left, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    write_wait(conn, true);
                    return FLUSH_WAIT;
                }
                return FLUSH_ERROR;
            }
            conn->out_off += (size_t)n;
        }
    }
    write_wait(conn, false);
    conn->out_len = conn->out_off = 0;
    if (conn->out_cap > BUFFER_KEEP) {
        free(conn->out);
        conn->out = NULL;
        conn->out_cap = 0;
    }
    return FLUSH_DONE;
}

/* ---- input -------------------------------------------------------------------------------- */

static void read_pause(struct tr__conn *conn, bool pause)
{
    if (pause == conn->read_paused)
        return;
    if (pause)
        event_del(conn->read_ev);
    else if (event_add(conn->read_ev, NULL) != 0)
        return;
    conn->read_paused = pause;
}

/* Room to read into. The buffer grows (and may move) only while no request points into it. */
static size_t in_space(struct tr__conn *conn)
{
    if (conn->in_len < conn->in_cap)
        return conn->in_cap - conn->in_len;
    if (conn->current != NULL || conn->in_cap >= conn->in_max)
        return 0;
    size_t cap = conn->in_cap != 0 ? conn->in_cap * 2 : INPUT_FIRST;
    if (cap > conn->in_max)
        cap = conn->in_max;
    uint8_t *p = realloc(conn->in, cap);
    if (p == NULL)
        return 0;
    conn->in = p;
    conn->in_cap = cap;
    return cap - conn->in_len;
}

/* Reads what is there. Returns false when the connection broke; a clean end of input only
 * sets peer_eof. A full buffer pauses reading until requests have been taken out of it. */
static bool fill(struct tr__conn *conn)
{
    for (;;) {
        size_t space = in_space(conn);
        if (space == 0) {
            read_pause(conn, true);
            return true;
        }
        if (conn->ssl != NULL) {
            int want = space > (size_t)(1u << 30) ? (1 << 30) : (int)space;
            int n = SSL_read(conn->ssl, conn->in + conn->in_len, want);
            if (n > 0) {
                conn->in_len += (size_t)n;
                /* With read-ahead, whatever OpenSSL took from the socket and has not handed
                 * out yet is pending; otherwise the socket's own readiness tells us. */
                if (SSL_has_pending(conn->ssl))
                    continue;
                return true;
            }
            int e = SSL_get_error(conn->ssl, n);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_READ)
                return true;
            if (e == SSL_ERROR_ZERO_RETURN) {
                conn->peer_eof = true;
                return true;
            }
            conn->peer_eof = true;
            return false;
        }
        ssize_t n = recv(conn->fd, conn->in + conn->in_len, space, 0);
        if (n > 0) {
            conn->in_len += (size_t)n;
            if ((size_t)n < space)
                return true; /* drained; level-triggered readiness says if more comes */
            continue;
        }
        if (n == 0) {
            conn->peer_eof = true;
            return true;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return true;
        conn->peer_eof = true;
        return false;
    }
}

/* Between requests: moves what is left (a pipelined request) to the front, or, when nothing
 * is, gives back a buffer that a large request grew. */
static void in_compact(struct tr__conn *conn)
{
    if (conn->in_off == 0)
        return;
    if (conn->in_off >= conn->in_len) {
        conn->in_len = conn->in_off = 0;
        conn->scan = 0;
        if (conn->in_cap > BUFFER_KEEP) {
            free(conn->in);
            conn->in = NULL;
            conn->in_cap = 0;
        }
        return;
    }
    memmove(conn->in, conn->in + conn->in_off, conn->in_len - conn->in_off);
    conn->in_len -= conn->in_off;
    conn->in_off = 0;
    conn->scan = 0;
}

enum parse_result { PARSE_MORE, PARSE_READY, PARSE_REFUSED };

/* Moves the request at in_off forward as far as the input allows. */
static enum parse_result parse_next(struct tr__conn *conn, tr__refusal_t *why)
{
    trellis_http_server_t *srv = conn->worker->srv;

    if (conn->pstate == TR_PARSE_HEAD) {
        in_compact(conn);
        size_t avail = conn->in_len - conn->in_off;
        size_t end = tr__head_end((const char *)conn->in + conn->in_off, avail, &conn->scan);
        if (end == 0) {
            if (avail > srv->max_headers) {
                why->status = 400;
                why->detail = "request line and headers too large";
                return PARSE_REFUSED;
            }
            return PARSE_MORE;
        }
        if (end > srv->max_headers) {
            why->status = 400;
            why->detail = "request line and headers too large";
            return PARSE_REFUSED;
        }
        if (!tr__parse_head((char *)conn->in + conn->in_off, end, srv->max_header_count,
                            srv->max_body, conn->fields, &conn->head, why))
            return PARSE_REFUSED;
        conn->head_len = end;
        conn->sent_continue = false;
        if (conn->head.chunked) {
            conn->pstate = TR_PARSE_CHUNKED;
            tr__chunked_init(&conn->chunked, conn->in_off + end, srv->max_body, INPUT_SLACK / 2);
        } else {
            conn->pstate = TR_PARSE_BODY;
        }
    }
    size_t body_start = conn->in_off + conn->head_len;
    bool complete;
    if (conn->pstate == TR_PARSE_CHUNKED) {
        int rc = tr__chunked_step(&conn->chunked, conn->in, conn->in_len, why);
        if (rc < 0)
            return PARSE_REFUSED;
        complete = rc == 1;
    } else {
        complete = conn->in_len - body_start >= conn->head.content_length;
    }
    if (!complete) {
        /* The client waits for our go-ahead before it sends the body (RFC 9110 §10.1.1). */
        if (conn->head.expect_continue && !conn->sent_continue && conn->in_len == body_start) {
            conn->sent_continue = true;
            if (tr__queue_continue(conn) != TRELLIS_OK) {
                why->status = 500;
                why->detail = "out of memory";
                return PARSE_REFUSED;
            }
        }
        return PARSE_MORE;
    }
    return PARSE_READY;
}

/* Takes the parsed request out of the input and hands it to the router. */
static void dispatch(struct tr__conn *conn)
{
    struct trellis_http_request *req = &conn->req;
    const struct tr__head *h = &conn->head;
    const char *base = (const char *)conn->in + conn->in_off;
    size_t body_start = conn->in_off + conn->head_len;

    tr__request_init(conn);
    req->base = base;
    req->fields = conn->fields;
    req->n_fields = h->n_fields;
    req->method = h->method;
    req->head_only = h->method == TRELLIS_HTTP_HEAD;
    req->path = base + h->path;
    req->query = h->query != UINT32_MAX ? base + h->query : NULL;
    if (conn->pstate == TR_PARSE_CHUNKED) {
        req->body_len = conn->chunked.wpos - body_start;
        conn->in_off = conn->chunked.rpos;
    } else {
        req->body_len = (size_t)h->content_length;
        conn->in_off = body_start + req->body_len;
    }
    req->body = req->body_len > 0 ? conn->in + body_start : NULL;
    conn->pstate = TR_PARSE_HEAD;
    conn->scan = 0;
    if (h->close || !conn->worker->srv->keepalive)
        conn->close_after = true;
    conn->current = req;
    /* The clock is stopped while the handler works; it restarts when the answer is out. */
    conn->deadline_us = 0;
    atomic_fetch_add_explicit(&conn->worker->srv->requests, 1, memory_order_relaxed);

    conn->dispatching = true;
    tr__dispatch(conn);
    conn->dispatching = false;
}

static void refused(struct tr__conn *conn, const tr__refusal_t *why)
{
    tr__log_request("-", "-", why->status, 0, 0, conn->peer, "refused");
    conn->close_after = true;
    conn->pstate = TR_PARSE_HEAD;
    conn->in_off = conn->in_len; /* nothing after a refused request is read as a request */
    if (tr__queue_refusal(conn, why) != TRELLIS_OK)
        conn->out_len = conn->out_off; /* no answer then, only the close */
}

/* After the last response: shut our side, drain input for a moment, then close. */
static void linger(struct tr__conn *conn)
{
    if (conn->ssl != NULL && SSL_is_init_finished(conn->ssl)) {
        /* close_notify, so that the client can tell the end from a truncation. */
        SSL_shutdown(conn->ssl);
        ERR_clear_error();
    }
    if (conn->peer_eof || shutdown(conn->fd, SHUT_WR) != 0) {
        conn_close(conn);
        return;
    }
    conn->state = TR_CONN_LINGER;
    read_pause(conn, false);
    unsigned ms = conn->worker->srv->request_timeout_ms < LINGER_MS
                      ? conn->worker->srv->request_timeout_ms
                      : LINGER_MS;
    conn->deadline_us = 0;
    timer_at(conn, trellis_mono_us() + (uint64_t)ms * 1000u);
}

static void conn_advance(struct tr__conn *conn)
{
    for (;;) {
        if (conn->doomed) {
            conn_free(conn);
            return;
        }
        if (conn->current != NULL)
            return; /* a suspended handler holds the connection */
        if (conn->out_off < conn->out_len) {
            enum flush_result fr = flush(conn);
            if (fr == FLUSH_ERROR) {
                conn_close(conn);
                return;
            }
            if (fr == FLUSH_WAIT)
                return;
        }
        if (conn->close_after) {
            linger(conn);
            return;
        }
        if (conn->deadline_us == 0)
            request_clock_start(conn);
        tr__refusal_t why = {0, NULL};
        switch (parse_next(conn, &why)) {
        case PARSE_READY:
            dispatch(conn);
            continue;
        case PARSE_REFUSED:
            refused(conn, &why);
            continue;
        case PARSE_MORE:
            if (conn->out_off < conn->out_len)
                continue; /* a 100 Continue to send */
            if (conn->peer_eof) {
                conn_close(conn);
                return;
            }
            if (conn->read_paused) {
                /* Room again: resume, and take what TLS already holds for us. */
                read_pause(conn, false);
                size_t before = conn->in_len;
                if (!fill(conn)) {
                    conn_close(conn);
                    return;
                }
                if (conn->in_len != before || conn->peer_eof)
                    continue;
            }
            return;
        }
    }
}

void tr__conn_response_queued(struct tr__conn *conn)
{
    /* A handler answering synchronously returns into dispatch(), whose loop goes on. */
    if (conn->dispatching)
        return;
    conn_advance(conn);
}

/* ---- events ----------------------------------------------------------------------------- */

static void handshake_done(struct tr__conn *conn)
{
    conn->state = TR_CONN_OPEN;
    /* The handshake fails on a certificate that does not verify; checking again costs
     * nothing and keeps an unverified certificate from ever reaching a handler. */
    if (SSL_get_verify_result(conn->ssl) == X509_V_OK)
        conn->peer_cert = SSL_get1_peer_certificate(conn->ssl);
}

/* Returns false when the connection was closed. */
static bool handshake(struct tr__conn *conn)
{
    int rc = SSL_do_handshake(conn->ssl);
    if (rc == 1) {
        conn->handshake_wants_write = false;
        write_wait(conn, false);
        handshake_done(conn);
        return true;
    }
    int e = SSL_get_error(conn->ssl, rc);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) {
        conn->handshake_wants_write = false;
        write_wait(conn, false);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        conn->handshake_wants_write = true;
        write_wait(conn, true);
        return true;
    }
    trellis_log(TRELLIS_LOG_DEBUG, "http.tls.handshake_failed", TRELLIS_KV_STR("peer", conn->peer));
    conn_close(conn);
    return false;
}

static void linger_read(struct tr__conn *conn)
{
    char sink[4096];
    for (;;) {
        ssize_t n = recv(conn->fd, sink, sizeof(sink), 0);
        if (n > 0) {
            conn->drained += (size_t)n;
            if (conn->drained > LINGER_BYTES)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        break; /* the client closed too (or the connection broke) */
    }
    conn_close(conn);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__conn *conn = arg;
    (void)fd;
    (void)what;
    switch (conn->state) {
    case TR_CONN_LINGER:
        linger_read(conn);
        return;
    case TR_CONN_HANDSHAKE:
        if (!handshake(conn))
            return;
        if (conn->state == TR_CONN_HANDSHAKE)
            return;
        break;
    case TR_CONN_OPEN:
        break;
    }
    if (!fill(conn)) {
        conn_close(conn);
        return;
    }
    /* A client that hangs up while its request is being answered asynchronously is gone:
     * the request is aborted (and whatever follows it in the buffer dropped). */
    if (conn->peer_eof && conn->current != NULL) {
        conn_close(conn);
        return;
    }
    conn_advance(conn);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__conn *conn = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        trellis_log(TRELLIS_LOG_INFO, "http.conn.write_timeout", TRELLIS_KV_STR("peer", conn->peer),
                    TRELLIS_KV_INT("write_timeout_ms", conn->worker->srv->write_timeout_ms));
        conn_close(conn);
        return;
    }
    if (conn->state == TR_CONN_HANDSHAKE) {
        if (handshake(conn) && conn->state == TR_CONN_OPEN)
            read_cb(conn->fd, EV_READ, conn);
        return;
    }
    if (conn->state == TR_CONN_LINGER)
        return;
    conn_advance(conn);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t out_size)
{
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
        port = ntohs(s6->sin6_port);
        snprintf(out, out_size, "[%s]:%u", addr, port);
        return;
    }
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
        port = ntohs(s4->sin_port);
    }
    snprintf(out, out_size, "%s:%u", addr, port);
}

/* Takes on an accepted socket (already counted in srv->active). */
static trellis_err_t conn_open(struct tr__worker *w, int fd, const struct sockaddr_storage *ss)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_http_server_t *srv = w->srv;
    struct tr__conn *conn = NULL;
    int one = 1;

    /* Without TCP_NODELAY a small response waits up to 40 ms for the client's delayed ACK
     * (design.md §7). */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    conn = calloc(1, sizeof(*conn) + srv->max_header_count * sizeof(conn->fields[0]));
    if (conn == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    conn->worker = w;
    conn->fd = fd;
    conn->in_max = srv->max_headers + srv->max_body + INPUT_SLACK;
    format_peer(ss, conn->peer, sizeof(conn->peer));
    conn->read_ev = event_new(w->base, fd, EV_READ | EV_PERSIST, read_cb, conn);
    conn->write_ev = event_new(w->base, fd, EV_WRITE | EV_PERSIST, write_cb, conn);
    conn->timer_ev = evtimer_new(w->base, timer_cb, conn);
    if (conn->read_ev == NULL || conn->write_ev == NULL || conn->timer_ev == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (srv->ssl_ctx != NULL) {
        conn->ssl = SSL_new(srv->ssl_ctx);
        if (conn->ssl == NULL || SSL_set_fd(conn->ssl, fd) != 1) {
            ERR_clear_error();
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
        SSL_set_accept_state(conn->ssl);
        conn->state = TR_CONN_HANDSHAKE;
    } else {
        conn->state = TR_CONN_OPEN;
    }
    if (event_add(conn->read_ev, NULL) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    conn->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = conn;
    w->conns = conn;
    /* The request timeout covers the TLS handshake. */
    request_clock_start(conn);
    atomic_fetch_add_explicit(&srv->accepted, 1, memory_order_relaxed);
    conn = NULL;
    fd = -1;
    err = TRELLIS_OK;
out:
    if (conn != NULL) {
        release_events_and_tls(conn);
        free(conn);
    }
    if (fd >= 0) {
        close(fd);
        atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
    }
    return err;
}

void tr__accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__worker *w = arg;
    (void)fd;
    (void)what;
    event_add(w->accept_ev, NULL);
}

void tr__accept_cb(evutil_socket_t fd, short what, void *arg)
{
    struct tr__worker *w = arg;
    trellis_http_server_t *srv = w->srv;
    (void)what;

    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return; /* another worker took it, or nothing left */
            trellis_log(TRELLIS_LOG_WARN, "http.accept.error",
                        TRELLIS_KV_STR("error", strerror(e)));
            /* Out of descriptors or memory, the listening socket stays readable: without a
             * pause the loop would spin on accept() and starve the connections it has. */
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                struct timeval tv;
                tr__ms_to_tv(ACCEPT_RETRY_MS, &tv);
                if (event_del(w->accept_ev) == 0 && evtimer_add(w->resume_ev, &tv) != 0)
                    event_add(w->accept_ev, NULL);
            }
            return;
        }
        /* Over the cap: closed at once, before any TLS or HTTP work is spent on it. */
        if (atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed) >=
            srv->max_connections) {
            atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&srv->rejected, 1, memory_order_relaxed);
            trellis_log(TRELLIS_LOG_DEBUG, "http.conn.rejected",
                        TRELLIS_KV_INT("max_connections", srv->max_connections));
            close(cfd);
            continue;
        }
        if (conn_open(w, cfd, &ss) != TRELLIS_OK)
            trellis_log(TRELLIS_LOG_WARN, "http.conn.setup_failed");
    }
}

void tr__worker_close_all(struct tr__worker *w)
{
    while (w->conns != NULL) {
        struct tr__conn *conn = w->conns;
        conn->dispatching = false;
        conn_free(conn);
    }
}
