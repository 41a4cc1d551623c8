/*
 * The asynchronous client: calls, their timeouts and completion.
 *
 * A call's evhttp_request is owned by us from the start (evhttp_request_own), whatever happens
 * to its connection, so there is exactly one place that frees it: call_free(). Completion is
 * always delivered from the call's own event, never from inside evhttp or inside
 * trellis_http_client_send(), so user callbacks may start new calls freely.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http_internal.h"
#include "trellis/trellis.h"

#define CLIENT_MAX_BODY TRELLIS_HTTP_MAX_BODY_LIMIT

/* ---- completion --------------------------------------------------------------------------- */

static void complete(struct trellis_http_call *call, trellis_err_t err, int status, const char *fmt,
                     ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void complete(struct trellis_http_call *call, trellis_err_t err, int status, const char *fmt,
                     ...)
{
    va_list ap;
    if (call->state == TR_CALL_DONE)
        return;
    if (call->reserved) {
        call->host->n_open--;
        call->reserved = false;
    }
    call->state = TR_CALL_DONE;
    call->err = err;
    call->status = status;
    va_start(ap, fmt);
    vsnprintf(call->detail, sizeof(call->detail), fmt, ap);
    va_end(ap);
    evtimer_del(call->timer_ev);
    event_active(call->finish_ev, 0, 0);
}

static void unlink_call(struct trellis_http_call *call)
{
    struct trellis_http_client *c = call->client;
    if (call->prev != NULL)
        call->prev->next = call->next;
    else if (c->calls == call)
        c->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

/* The request must no longer be queued on a live connection. */
static void call_free(struct trellis_http_call *call)
{
    tr__client_resolve_cancel(call);
    if (call->timer_ev != NULL)
        event_free(call->timer_ev);
    if (call->finish_ev != NULL)
        event_free(call->finish_ev);
    if (call->evreq != NULL)
        evhttp_request_free(call->evreq);
    free(call->target);
    free(call);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
    struct trellis_http_call *call = arg;
    struct trellis_http_client *c = call->client;
    trellis_http_response_t resp;
    (void)fd;
    (void)what;

    unlink_call(call);
    memset(&resp, 0, sizeof(resp));
    resp.err = call->err;
    resp.status = call->status;
    resp.detail = call->detail;
    if (call->err == TRELLIS_OK) {
        struct evbuffer *in = evhttp_request_get_input_buffer(call->evreq);
        size_t n = evbuffer_get_length(in);
        if (n > 0) {
            resp.body = evbuffer_pullup(in, -1);
            resp.body_len = resp.body != NULL ? n : 0;
            if (resp.body == NULL) {
                resp.err = TRELLIS_ERR_NOMEM;
                resp.status = 0;
            }
        }
        if (resp.err == TRELLIS_OK)
            resp.content_type =
                evhttp_find_header(evhttp_request_get_input_headers(call->evreq), "Content-Type");
    }
    if (resp.err != TRELLIS_OK)
        c->stats.failures++;
    call->cb(&resp, call->arg);
    call_free(call);
}

/* ---- failure classification --------------------------------------------------------------- */

/* True (with a detail) when the connection failed in TLS: a server certificate we refuse, an
 * alert from the server (our certificate refused), or a TLS protocol error. Reads what the
 * connection recorded while it ran: evhttp resets the SSL object when the connection fails. */
static bool tls_failure(const struct tr__client_conn *conn, char *detail, size_t n)
{
    if (conn == NULL || !conn->host->tls)
        return false;
    if (conn->verify_error != X509_V_OK) {
        snprintf(detail, n, "server certificate refused: %s",
                 X509_verify_cert_error_string(conn->verify_error));
        return true;
    }
    if (conn->tls_alert != 0) {
        snprintf(detail, n, "the server ended TLS with the alert \"%s\"",
                 SSL_alert_desc_string_long(conn->tls_alert));
        return true;
    }
    /* libevent records OpenSSL error codes, and for a failed socket also the bare
     * SSL_ERROR_SYSCALL (library 0): only errors of a TLS library count as a TLS failure. */
    unsigned long e, first = 0;
    while ((e = bufferevent_get_openssl_error(conn->bev)) != 0) {
        if (ERR_GET_LIB(e) != 0 && ERR_GET_LIB(e) != ERR_LIB_SYS)
            first = e; /* popped newest first: keep the root cause */
    }
    if (first != 0) {
        const char *why = ERR_reason_error_string(first);
        snprintf(detail, n, "TLS failed: %s", why != NULL ? why : "unknown error");
        return true;
    }
    return false;
}

/* A connection that ended without a response: say why as well as we can tell. */
static void classify_closed(struct trellis_http_call *call, const struct tr__client_conn *conn)
{
    char tls_detail[sizeof(call->detail)];

    if (tls_failure(conn, tls_detail, sizeof(tls_detail))) {
        call->err = TRELLIS_ERR_TLS;
        memcpy(call->detail, tls_detail, sizeof(call->detail));
        return;
    }
    call->err = TRELLIS_ERR_UNAVAILABLE;
    if (conn != NULL && conn->exchanges > 0) {
        snprintf(call->detail, sizeof(call->detail), "connection closed before a response");
    } else if (conn != NULL && conn->host->tls && conn->tls_done) {
        /* TLS 1.3 ends our side of the handshake before the server has looked at our
         * certificate; its refusal can reach us as a plain reset. */
        snprintf(call->detail, sizeof(call->detail),
                 "connection closed right after the TLS handshake%s",
                 call->client->has_client_cert ? " (the server may have refused our certificate)"
                                               : " (the server may require a client certificate)");
    } else {
        snprintf(call->detail, sizeof(call->detail), "cannot connect to %s", call->host->authority);
    }
}

static void on_error(enum evhttp_request_error error, void *arg)
{
    struct trellis_http_call *call = arg;

    if (call->state != TR_CALL_SENT || error == EVREQ_HTTP_REQUEST_CANCEL)
        return;
    call->have_error = true;
    switch (error) {
    case EVREQ_HTTP_TIMEOUT:
        call->err = TRELLIS_ERR_TIMEOUT;
        snprintf(call->detail, sizeof(call->detail), "no progress within %u ms", call->timeout_ms);
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        call->err = TRELLIS_ERR_TOO_LARGE;
        snprintf(call->detail, sizeof(call->detail), "response larger than %zu bytes",
                 call->client->max_response);
        break;
    case EVREQ_HTTP_INVALID_HEADER:
    case EVREQ_HTTP_BUFFER_ERROR:
        call->err = TRELLIS_ERR_HTTP;
        snprintf(call->detail, sizeof(call->detail), "malformed response");
        break;
    case EVREQ_HTTP_EOF:
    case EVREQ_HTTP_REQUEST_CANCEL:
    default:
        classify_closed(call, call->conn);
        break;
    }
}

static void on_done(struct evhttp_request *evreq, void *arg)
{
    struct trellis_http_call *call = arg;

    if (call->state != TR_CALL_SENT)
        return;
    struct tr__client_conn *conn = call->conn;
    call->conn = NULL;
    int code = evreq != NULL ? evhttp_request_get_response_code(evreq) : 0;
    if (code == 0) {
        /* Without an error callback the connection itself failed: refused, unreachable, or
         * (libevent reports it the same way) a handshake that failed. */
        if (!call->have_error)
            classify_closed(call, conn);
        tr__client_conn_dead(conn);
        char detail[sizeof(call->detail)];
        memcpy(detail, call->detail, sizeof(detail));
        complete(call, call->err, 0, "%s", detail);
        return;
    }
    if (conn != NULL) {
        conn->exchanges++;
        tr__client_pool_put(conn);
    }
    complete(call, TRELLIS_OK, code, "%s", "");
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg);

/* ---- sending ---------------------------------------------------------------------------- */

static void start(struct trellis_http_call *call, struct tr__client_conn *conn, bool fresh)
{
    struct timeval tv;
    int one = 1;

    call->conn = conn;
    call->state = TR_CALL_SENT;
    /* evhttp's inactivity timeout backs up the call timer. */
    tr__ms_to_tv(call->timeout_ms, &tv);
    evhttp_connection_set_timeout_tv(conn->evcon, &tv);
    if (evhttp_make_request(conn->evcon, call->evreq, call->cmd, call->target) != 0) {
        call->conn = NULL;
        tr__client_conn_dead(conn);
        complete(call, TRELLIS_ERR_UNAVAILABLE, 0, "cannot start the request");
        return;
    }
    if (fresh && call->state == TR_CALL_SENT) {
        /* The connect was started synchronously on the numeric address, so the socket
         * exists: TCP_NODELAY before the first handshake byte (design.md §7). */
        evutil_socket_t s = bufferevent_getfd(conn->bev);
        if (s >= 0)
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

static void open_and_start(struct trellis_http_call *call, const char *address)
{
    struct tr__client_conn *conn = NULL;
    trellis_err_t err = tr__client_conn_open(call->client, call->host, address, &conn);
    if (err != TRELLIS_OK) {
        complete(call, err, 0, "cannot open a connection to %s", call->host->authority);
        return;
    }
    call->reserved = false; /* the connection now holds the slot */
    start(call, conn, true);
}

void tr__client_resolved(struct trellis_http_call *call, const char *address)
{
    if (call->state != TR_CALL_RESOLVING)
        return;
    if (address == NULL) {
        complete(call, TRELLIS_ERR_UNAVAILABLE, 0, "cannot resolve %s", call->host->name);
        return;
    }
    open_and_start(call, address);
}

/* Stops whatever the call is waiting for; its connection, if any, is retired. */
static void stop_call(struct trellis_http_call *call)
{
    if (call->state == TR_CALL_RESOLVING) {
        tr__client_resolve_cancel(call);
    } else if (call->state == TR_CALL_SENT) {
        struct tr__client_conn *conn = call->conn;
        call->conn = NULL;
        call->state = TR_CALL_DONE; /* evhttp's callbacks below must find nothing to do */
        evhttp_cancel_request(call->evreq);
        call->state = TR_CALL_SENT;
        tr__client_conn_dead(conn);
    }
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct trellis_http_call *call = arg;
    (void)fd;
    (void)what;
    stop_call(call);
    complete(call, TRELLIS_ERR_TIMEOUT, 0, "no response within %u ms", call->timeout_ms);
}

/* ---- URL and request validation ------------------------------------------------------------ */

static bool token_ok(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (s == NULL || s[0] == '\0')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char ch = *p;
        bool alnum =
            (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!alnum && strchr(extra, ch) == NULL)
            return false;
    }
    return true;
}

static bool value_ok(const char *v)
{
    if (v == NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

static bool name_is(const char *a, const char *lower)
{
    for (; *a != '\0' && *lower != '\0'; a++, lower++) {
        char ch = (*a >= 'A' && *a <= 'Z') ? (char)(*a + ('a' - 'A')) : *a;
        if (ch != *lower)
            return false;
    }
    return *a == '\0' && *lower == '\0';
}

static bool reserved(const char *name)
{
    return name_is(name, "host") || name_is(name, "content-length") ||
           name_is(name, "content-type") || name_is(name, "connection") ||
           name_is(name, "transfer-encoding");
}

struct parsed_url {
    char host[256];
    uint16_t port;
    bool tls;
    char *target;
};

static trellis_err_t parse_url(const char *url, struct parsed_url *out)
{
    trellis_err_t err = TRELLIS_ERR_INVALID_ARG;
    struct evhttp_uri *uri = NULL;

    memset(out, 0, sizeof(*out));
    size_t n = strnlen(url, TRELLIS_HTTP_CLIENT_MAX_URL + 1);
    if (n == 0 || n > TRELLIS_HTTP_CLIENT_MAX_URL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= 0x20 || ch >= 0x7f)
            goto out; /* RFC 3986 URIs are visible ASCII; no room for smuggled CR/LF */
    }
    uri = evhttp_uri_parse_with_flags(url, 0);
    if (uri == NULL)
        goto out;
    const char *scheme = evhttp_uri_get_scheme(uri);
    if (scheme != NULL && name_is(scheme, "https"))
        out->tls = true;
    else if (scheme == NULL || !name_is(scheme, "http"))
        goto out;
    const char *host = evhttp_uri_get_host(uri);
    if (host == NULL || host[0] == '\0' || evhttp_uri_get_userinfo(uri) != NULL)
        goto out;
    size_t hlen = strlen(host);
    if (host[0] == '[') {
        /* RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]" (evhttp checked the address) */
        if (hlen < 3 || host[hlen - 1] != ']' || hlen - 2 >= sizeof(out->host))
            goto out;
        memcpy(out->host, host + 1, hlen - 2);
        out->host[hlen - 2] = '\0';
    } else {
        if (hlen >= sizeof(out->host))
            goto out;
        /* DNS names compare case-insensitively (RFC 4343): one pool per name. */
        for (size_t i = 0; i <= hlen; i++)
            out->host[i] = (host[i] >= 'A' && host[i] <= 'Z') ? (char)(host[i] + 32) : host[i];
    }
    int port = evhttp_uri_get_port(uri);
    if (port == 0 || port > 65535)
        goto out;
    out->port = port < 0 ? (out->tls ? 443 : 80) : (uint16_t)port;
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (path[0] != '/')
        goto out;
    size_t tlen = strlen(path) + (query != NULL ? strlen(query) + 1 : 0) + 1;
    out->target = malloc(tlen);
    if (out->target == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    snprintf(out->target, tlen, "%s%s%s", path, query != NULL ? "?" : "",
             query != NULL ? query : "");
    err = TRELLIS_OK;
out:
    if (uri != NULL)
        evhttp_uri_free(uri);
    return err;
}

static trellis_err_t check_request(const trellis_http_client_request_t *r)
{
    if (r->url == NULL || tr__method_to_evhttp(r->method) == 0)
        return TRELLIS_ERR_INVALID_ARG;
    if ((r->body == NULL && r->body_len > 0) || r->body_len > CLIENT_MAX_BODY)
        return TRELLIS_ERR_INVALID_ARG;
    if (r->content_type != NULL && (r->content_type[0] == '\0' || !value_ok(r->content_type)))
        return TRELLIS_ERR_INVALID_ARG;
    if (r->n_headers > TRELLIS_HTTP_CLIENT_MAX_HEADERS || (r->n_headers > 0 && r->headers == NULL))
        return TRELLIS_ERR_INVALID_ARG;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!token_ok(r->headers[i].name) || reserved(r->headers[i].name) ||
            !value_ok(r->headers[i].value))
            return TRELLIS_ERR_INVALID_ARG;
    }
    if (r->timeout_ms > TRELLIS_HTTP_MAX_TIMEOUT_MS)
        return TRELLIS_ERR_INVALID_ARG;
    return TRELLIS_OK;
}

/* The evhttp request, headers and body, owned by the call. */
static trellis_err_t build_request(struct trellis_http_call *call,
                                   const trellis_http_client_request_t *r)
{
    char len[24];
    call->evreq = evhttp_request_new(on_done, call);
    if (call->evreq == NULL)
        return TRELLIS_ERR_NOMEM;
    evhttp_request_own(call->evreq);
    evhttp_request_set_error_cb(call->evreq, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(call->evreq);
    if (evhttp_add_header(h, "Host", call->host->authority) != 0 ||
        evhttp_add_header(h, "User-Agent", "trellis/" TRELLIS_VERSION) != 0)
        return TRELLIS_ERR_NOMEM;
    if (r->content_type != NULL && evhttp_add_header(h, "Content-Type", r->content_type) != 0)
        return TRELLIS_ERR_NOMEM;
    bool body_method =
        (r->method & (TRELLIS_HTTP_POST | TRELLIS_HTTP_PUT | TRELLIS_HTTP_PATCH)) != 0;
    if (r->body_len > 0 || body_method) {
        snprintf(len, sizeof(len), "%zu", r->body_len);
        if (evhttp_add_header(h, "Content-Length", len) != 0)
            return TRELLIS_ERR_NOMEM;
    }
    for (size_t i = 0; i < r->n_headers; i++) {
        if (evhttp_add_header(h, r->headers[i].name, r->headers[i].value) != 0)
            return TRELLIS_ERR_NOMEM;
    }
    if (r->body_len > 0 &&
        evbuffer_add(evhttp_request_get_output_buffer(call->evreq), r->body, r->body_len) != 0)
        return TRELLIS_ERR_NOMEM;
    return TRELLIS_OK;
}

/* ---- public API ----------------------------------------------------------------------------- */

trellis_err_t trellis_http_client_new(struct event_base *base,
                                      const trellis_http_client_config_t *cfg,
                                      trellis_http_client_t **out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_http_client_t *c = NULL;

    trellis_reason_clear(reason);
    if (out == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "out is NULL");
    *out = NULL;
    if (base == NULL || cfg == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "base or cfg is NULL");
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "cert_file and key_file go together");
    if (cfg->ca_file == NULL && (cfg->cert_file != NULL || !cfg->allow_plain_http))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "ca_file is required for https");
    if (cfg->timeout_ms > TRELLIS_HTTP_MAX_TIMEOUT_MS ||
        cfg->idle_timeout_ms > TRELLIS_HTTP_MAX_TIMEOUT_MS ||
        cfg->max_response_body > TRELLIS_HTTP_CLIENT_MAX_RESPONSE_LIMIT ||
        cfg->max_idle_per_host > 1024 || cfg->max_conns_per_host > 65536)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "a limit is out of range");

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    c->base = base;
    c->allow_plain = cfg->allow_plain_http;
    c->has_client_cert = cfg->cert_file != NULL;
    c->timeout_ms = cfg->timeout_ms != 0 ? cfg->timeout_ms : TRELLIS_HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
    c->max_response = cfg->max_response_body != 0 ? cfg->max_response_body
                                                  : TRELLIS_HTTP_CLIENT_DEFAULT_MAX_RESPONSE;
    c->max_idle =
        cfg->max_idle_per_host != 0 ? cfg->max_idle_per_host : TRELLIS_HTTP_CLIENT_DEFAULT_MAX_IDLE;
    c->max_conns = cfg->max_conns_per_host != 0 ? cfg->max_conns_per_host
                                                : TRELLIS_HTTP_CLIENT_DEFAULT_MAX_CONNS;
    c->idle_timeout_ms = cfg->idle_timeout_ms != 0 ? cfg->idle_timeout_ms
                                                   : TRELLIS_HTTP_CLIENT_DEFAULT_IDLE_TIMEOUT_MS;
    c->reap_ev = event_new(base, -1, 0, tr__client_reap_cb, c);
    if (c->reap_ev == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (cfg->ca_file != NULL) {
        err = tr__tls_client_ctx(cfg, &c->ssl_ctx, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    *out = c;
    c = NULL;
    err = TRELLIS_OK;
out:
    trellis_http_client_free(c);
    return err;
}

void trellis_http_client_free(trellis_http_client_t *c)
{
    if (c == NULL)
        return;
    /* Retire every connection first: freeing an evhttp connection unlinks the requests queued
     * on it, after which the calls can free them. */
    for (struct trellis_http_call *call = c->calls; call != NULL; call = call->next) {
        tr__client_resolve_cancel(call);
        if (call->conn != NULL) {
            tr__client_conn_dead(call->conn);
            call->conn = NULL;
        }
    }
    for (struct tr__client_host *h = c->hosts; h != NULL; h = h->next) {
        while (h->idle != NULL)
            tr__client_conn_dead(h->idle);
    }
    tr__client_reap(c);
    while (c->calls != NULL) {
        struct trellis_http_call *call = c->calls;
        unlink_call(call);
        call_free(call);
    }
    tr__client_hosts_free(c);
    if (c->reap_ev != NULL)
        event_free(c->reap_ev);
    SSL_CTX_free(c->ssl_ctx);
    free(c);
}

trellis_err_t trellis_http_client_send(trellis_http_client_t *c,
                                       const trellis_http_client_request_t *r,
                                       trellis_http_client_cb cb, void *arg,
                                       trellis_http_call_t **out_call)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct trellis_http_call *call = NULL;
    struct tr__client_host *host = NULL;
    struct tr__client_conn *conn = NULL;
    struct parsed_url url;
    struct timeval tv;

    memset(&url, 0, sizeof(url));
    if (out_call != NULL)
        *out_call = NULL;
    if (c == NULL || r == NULL || cb == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = check_request(r);
    if (err != TRELLIS_OK)
        goto out;
    err = parse_url(r->url, &url);
    if (err != TRELLIS_OK)
        goto out;
    if ((url.tls && c->ssl_ctx == NULL) || (!url.tls && !c->allow_plain)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = tr__client_host_get(c, url.host, url.port, url.tls, &host);
    if (err != TRELLIS_OK)
        goto out;
    conn = tr__client_pool_take(host);
    if (conn == NULL && host->n_open >= c->max_conns) {
        err = TRELLIS_ERR_UNAVAILABLE;
        goto out;
    }

    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    call->client = c;
    call->host = host;
    call->cb = cb;
    call->arg = arg;
    call->cmd = tr__method_to_evhttp(r->method);
    call->target = url.target;
    url.target = NULL;
    call->timeout_ms = r->timeout_ms != 0 ? r->timeout_ms : c->timeout_ms;
    call->state = TR_CALL_RESOLVING;
    call->timer_ev = evtimer_new(c->base, timeout_cb, call);
    call->finish_ev = event_new(c->base, -1, 0, finish_cb, call);
    if (call->timer_ev == NULL || call->finish_ev == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = build_request(call, r);
    if (err != TRELLIS_OK)
        goto out;
    tr__ms_to_tv(call->timeout_ms, &tv);
    if (evtimer_add(call->timer_ev, &tv) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }

    /* From here on the outcome goes through the callback. */
    call->next = c->calls;
    if (c->calls != NULL)
        c->calls->prev = call;
    c->calls = call;
    c->stats.requests++;
    if (out_call != NULL)
        *out_call = call;
    if (conn != NULL) {
        c->stats.connections_reused++;
        start(call, conn, false);
        conn = NULL;
    } else {
        host->n_open++;
        call->reserved = true;
        if (host->numeric) {
            open_and_start(call, host->name);
        } else {
            err = tr__client_resolve(call);
            if (err != TRELLIS_OK)
                complete(call, err, 0, "cannot start resolving %s", host->name);
        }
    }
    call = NULL;
    err = TRELLIS_OK;
out:
    if (conn != NULL)
        tr__client_pool_put(conn);
    if (call != NULL)
        call_free(call);
    free(url.target);
    return err;
}

void trellis_http_call_cancel(trellis_http_call_t *call)
{
    if (call == NULL)
        return;
    if (call->state != TR_CALL_DONE) {
        stop_call(call);
        if (call->reserved) {
            call->host->n_open--;
            call->reserved = false;
        }
    }
    unlink_call(call);
    call_free(call); /* a pending finish event goes with it */
}

void trellis_http_client_stats(const trellis_http_client_t *c, trellis_http_client_stats_t *out)
{
    if (out == NULL)
        return;
    if (c == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = c->stats;
}
