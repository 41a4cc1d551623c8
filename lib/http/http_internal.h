/*
 * Internals shared by the files of lib/http (tr__ prefix). Nothing here is part of the public
 * API; see include/trellis/http_server.h and http_client.h for the contracts.
 */
#ifndef TRELLIS_HTTP_INTERNAL_H
#define TRELLIS_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "trellis/error.h"
#include "trellis/http_client.h"
#include "trellis/http_server.h"

/* "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" plus NUL fits in 64 bytes. */
#define TR_PEER_MAX 64

/* ---- time ---------------------------------------------------------------------------------- */

/* Microseconds on the monotonic clock. */
uint64_t tr__now_us(void);
/* Fills tv with ms milliseconds. */
void tr__ms_to_tv(unsigned ms, struct timeval *tv);

/* ---- TLS (tls.c, server_tls.c, client_tls.c) ----------------------------------------------- */

/* Settings every Trellis TLS context shares: TLS 1.2 minimum (1.3 preferred by OpenSSL), AEAD
 * ciphers with ECDHE only, P-256 first among the groups, no renegotiation, no compression. */
trellis_err_t tr__tls_common(SSL_CTX *ctx, trellis_reason_t *reason);
/* Puts "what: <first OpenSSL error>" into reason and empties OpenSSL's error queue. */
trellis_err_t tr__tls_reason(trellis_reason_t *reason, trellis_err_t err, const char *what);

/* The server context: certificate chain and key loaded once, chain sent exactly as configured
 * (SSL_MODE_NO_AUTO_CHAIN), client authentication as configured. */
trellis_err_t tr__tls_server_ctx(const trellis_http_server_config_t *cfg, SSL_CTX **out,
                                 trellis_reason_t *reason);
/* The client context: the pinned CA file only (no system store), optional client chain/key. */
trellis_err_t tr__tls_client_ctx(const trellis_http_client_config_t *cfg, SSL_CTX **out,
                                 trellis_reason_t *reason);
/* A client SSL for one connection to host (a DNS name or an IP literal without brackets):
 * SNI for names, and the certificate must match the name (SAN DNS) or the address (SAN IP). */
trellis_err_t tr__tls_client_ssl(SSL_CTX *ctx, const char *host, SSL **out);

/* Records on conn (a struct tr__client_conn) the handshake's completion, a fatal alert from the
 * server and the first failed certificate check: evhttp resets the SSL object when a
 * connection fails, so this is the only way to tell afterwards why it did. */
void tr__tls_client_watch(SSL *ssl, void *conn);

/* Peer identity (server_tls.c). */
trellis_err_t tr__x509_cn(const X509 *cert, char *out, size_t out_size, size_t *out_len);
trellis_err_t tr__x509_sha256(const X509 *cert, uint8_t out[static 32]);

/* ---- server ------------------------------------------------------------------------------- */

struct tr__route {
    unsigned methods;
    char *path;
    trellis_http_handler_fn handler;
    unsigned flags;
};

struct tr__conn;

struct tr__worker {
    struct trellis_http_server *srv;
    unsigned index;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener; /* owned by http once bound */
    bool listener_bound;
    struct event *stop_ev;
    int stop_pipe[2];
    struct event *adopt_ev;      /* adopts connections created by the bufferevent callback */
    struct tr__conn *adopt_head; /* created, not yet adopted */
    struct tr__conn **table;     /* evhttp_connection -> tr__conn, chained */
    size_t table_mask;
    void *ctx; /* from worker_init */
    bool ctx_ready;
    pthread_t thread;
    bool thread_started;
};

struct trellis_http_server {
    char *bind_address;
    uint16_t port_cfg;
    unsigned n_workers;
    size_t max_body;
    size_t max_headers;
    unsigned request_timeout_ms;
    unsigned write_timeout_ms;
    unsigned max_connections;
    bool keepalive;
    size_t request_memory_max;
    int backlog;
    struct tr__route *routes;
    size_t n_routes;
    void *app;
    trellis_err_t (*worker_init)(void *app, unsigned index, struct event_base *base,
                                 void **worker_ctx);
    void (*worker_fini)(void *app, unsigned index, void *worker_ctx);

    SSL_CTX *ssl_ctx; /* NULL: plain HTTP */

    int listen_fd;
    uint16_t port;
    struct tr__worker *workers;
    bool running;

    atomic_uint_fast64_t active;
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t rejected;
    atomic_uint_fast64_t timed_out;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t aborted;
};

/* One accepted connection, from adoption until evhttp closes it. */
struct tr__conn {
    struct tr__worker *worker;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    struct event *deadline_ev; /* the request timeout */
    struct event *defer_ev;    /* fix-up of evhttp's own error pages, deferred close */
    struct evbuffer_cb_entry *out_cb;
    struct trellis_http_request *current; /* dispatched, not yet answered */
    X509 *peer_cert;                      /* verified client certificate, or NULL */
    bool peer_checked;
    char peer[TR_PEER_MAX];
    bool sending;       /* our own response is being queued */
    bool fixup_pending; /* evhttp queued a response of its own */
    bool fixup_clean;   /* and nothing of it has been written yet */
    bool kill;          /* close at the next deferred callback */
    struct tr__conn *hash_next;
    struct tr__conn *adopt_next;
};

struct tr__arena_chunk {
    struct tr__arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

struct trellis_http_request {
    struct tr__worker *worker;
    struct tr__conn *conn;
    struct evhttp_request *evreq;
    trellis_http_method_t method;
    const char *path;
    const char *query;
    const uint8_t *body;
    size_t body_len;
    X509 *peer_cert;
    char peer[TR_PEER_MAX];
    uint64_t start_us;
    bool suspended;
    bool aborting;
    trellis_http_abort_fn on_abort;
    void *abort_arg;
    struct tr__arena_chunk *arena;
    size_t arena_total;
};

/* server_conn.c: connection lifecycle and limits. */
struct bufferevent *tr__bevcb(struct event_base *base, void *arg);
void tr__adopt_cb(evutil_socket_t fd, short what, void *arg);
void tr__accept_error_cb(struct evconnlistener *listener, void *arg);
struct tr__conn *tr__conn_lookup(struct tr__worker *w, const struct evhttp_connection *evcon);
/* A request was read in full: stop the request timer, watch for a disconnect while the
 * handler works, and re-arm the timer once the response is written. */
void tr__conn_request_begins(struct tr__conn *conn, struct evhttp_request *evreq);
/* Closes the connection from the next loop iteration (never under the caller's feet). */
void tr__conn_kill(struct tr__conn *conn);
/* Releases everything of a worker that is not evhttp's (after evhttp_free). */
void tr__worker_forget_pending(struct tr__worker *w);

/* server_router.c */
void tr__dispatch(struct evhttp_request *evreq, void *arg);

/* server_request.c */
trellis_http_request_t *tr__request_new(struct tr__worker *w, struct tr__conn *conn,
                                        struct evhttp_request *evreq);
/* Ends a request: logs it, detaches it from its connection, frees it. */
void tr__request_end(trellis_http_request_t *req, int status, size_t bytes, const char *outcome);
/* The connection went away with req suspended: abort callback, then free. */
void tr__request_abort(trellis_http_request_t *req);

/* server_response.c */
/* {"error": CODE, "detail": TEXT} as a malloc'd string. */
trellis_err_t tr__error_body(trellis_err_t err, const char *detail, char **out, size_t *out_len);
trellis_err_t tr__respond_error_status(trellis_http_request_t *req, int status, trellis_err_t err,
                                       const char *detail);
/* A whole response (status line, headers, JSON error body, Connection: close) for a status that
 * evhttp produced itself; malloc'd. */
trellis_err_t tr__internal_error_response(int status, size_t max_body, char **out, size_t *out_len);
/* Logs one request line. */
void tr__log_request(const char *method, const char *path, int status, size_t bytes,
                     uint64_t duration_us, const char *peer, const char *outcome);

/* ---- client ------------------------------------------------------------------------------ */

struct tr__client_conn;
struct tr__dns_job;

struct tr__client_host {
    char *name;      /* as in the URL; IPv6 without brackets */
    char *authority; /* the Host header: "name:port", "[v6]:port" */
    uint16_t port;
    bool tls;
    bool numeric;
    struct tr__client_conn *idle; /* most recently used first */
    unsigned n_idle;
    unsigned n_open; /* connections plus connections being prepared (resolving) */
    struct tr__client_host *next;
};

struct tr__client_conn {
    struct trellis_http_client *client;
    struct tr__client_host *host;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    bool dead;
    bool idle;
    unsigned exchanges; /* complete responses received on it */
    /* What TLS reported while the connection ran (see tr__tls_client_watch). */
    bool tls_done;
    int tls_alert;     /* a fatal alert received from the server, or 0 */
    long verify_error; /* the first server certificate check that failed, or X509_V_OK */
    uint64_t idle_since_us;
    struct tr__client_conn *next; /* in the host's idle list or the client's dead list */
};

enum tr__call_state { TR_CALL_RESOLVING, TR_CALL_SENT, TR_CALL_DONE };

struct trellis_http_call {
    struct trellis_http_client *client;
    struct tr__client_host *host;
    struct tr__client_conn *conn;
    struct tr__dns_job *dns;
    struct evhttp_request *evreq; /* always ours (evhttp_request_own) */
    enum evhttp_cmd_type cmd;
    char *target; /* path and query */
    enum tr__call_state state;
    bool reserved; /* holds one of host->n_open without a connection yet */
    struct event *timer_ev;
    struct event *finish_ev;
    unsigned timeout_ms;
    trellis_http_client_cb cb;
    void *arg;
    bool have_error; /* evhttp's error callback ran */
    trellis_err_t err;
    int status;
    char detail[160];
    struct trellis_http_call *prev, *next;
};

struct trellis_http_client {
    struct event_base *base;
    SSL_CTX *ssl_ctx; /* NULL: no https */
    bool has_client_cert;
    bool allow_plain;
    unsigned timeout_ms;
    size_t max_response;
    unsigned max_idle;
    unsigned max_conns;
    unsigned idle_timeout_ms;
    struct tr__client_host *hosts;
    unsigned n_hosts;
    struct trellis_http_call *calls;
    struct tr__client_conn *dead;
    struct event *reap_ev;
    trellis_http_client_stats_t stats;
};

/* client_pool.c */
trellis_err_t tr__client_host_get(struct trellis_http_client *c, const char *name, uint16_t port,
                                  bool tls, struct tr__client_host **out);
void tr__client_hosts_free(struct trellis_http_client *c);
/* An idle connection to host that is still usable, or NULL. */
struct tr__client_conn *tr__client_pool_take(struct tr__client_host *host);
/* Back to the pool after a complete exchange (or closed, if the pool is full). */
void tr__client_pool_put(struct tr__client_conn *conn);
/* A new connection to a numeric address; takes over one reservation of host->n_open. */
trellis_err_t tr__client_conn_open(struct trellis_http_client *c, struct tr__client_host *host,
                                   const char *address, struct tr__client_conn **out);
/* Retires a connection: it is freed from the client's reap event (or client free). */
void tr__client_conn_dead(struct tr__client_conn *conn);
void tr__client_reap_cb(evutil_socket_t fd, short what, void *arg);
void tr__client_reap(struct trellis_http_client *c);
/* Resolves host->name off the loop; calls tr__client_resolved(call, address or NULL). */
trellis_err_t tr__client_resolve(struct trellis_http_call *call);
void tr__client_resolve_cancel(struct trellis_http_call *call);

/* client.c */
void tr__client_resolved(struct trellis_http_call *call, const char *address);

/* method helpers */
trellis_http_method_t tr__method_from_evhttp(enum evhttp_cmd_type cmd);
enum evhttp_cmd_type tr__method_to_evhttp(trellis_http_method_t m);

#endif /* TRELLIS_HTTP_INTERNAL_H */
