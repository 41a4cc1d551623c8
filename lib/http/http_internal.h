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
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "trellis/error.h"
#include "trellis/http_client.h"
#include "trellis/http_server.h"

/* "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535" plus NUL fits in 64 bytes. */
#define TR_PEER_MAX 64

/* ---- time ---------------------------------------------------------------------------------- */

/* Microseconds on the monotonic clock. */
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

/* The request parser (server_parse.c). It works on bytes already received, in place, and does
 * no I/O, so the connection code, the unit tests and the fuzzer drive it alike. */

/* What the parser refuses a request with: an HTTP status (400, 413, 417, 501, 505) and a short
 * detail for the JSON error body. */
typedef struct {
    int status;
    const char *detail; /* static text */
} tr__refusal_t;

/* A header field, as offsets from the start of the head; name and value are NUL-terminated in
 * place (the value without surrounding whitespace). */
struct tr__field {
    uint32_t name;
    uint32_t value;
};

struct tr__head {
    trellis_http_method_t method;
    uint32_t path;  /* offset of the NUL-terminated path */
    uint32_t query; /* offset of the query after '?', or UINT32_MAX when there is none */
    int minor;      /* HTTP/1.minor: 0 or 1 */
    size_t n_fields;
    bool has_length;
    uint64_t content_length;
    bool chunked;
    bool close;           /* the client asked for (or, in HTTP/1.0, defaulted to) close */
    bool expect_continue; /* Expect: 100-continue */
};

/* Looks for the CRLF CRLF that ends the head in buf[0..len), resuming at *scan (0 at first);
 * returns the head's length including it, or 0 when it has not arrived yet. */
size_t tr__head_end(const char *buf, size_t len, size_t *scan);

/*
 * Parses the request line and header fields of buf[0..len) (len from tr__head_end) in place.
 * fields has room for max_fields entries. Returns true with *out filled, or false with *why set
 * (RFC 9112 §2-§6: a malformed line, obs-fold, whitespace before a colon, a missing or repeated
 * Host, a repeated or malformed Content-Length, Content-Length with Transfer-Encoding, an
 * unknown transfer coding, a body over max_body, too many fields, an unknown method, an
 * unsupported version or expectation).
 */
bool tr__parse_head(char *buf, size_t len, size_t max_fields, size_t max_body,
                    struct tr__field *fields, struct tr__head *out, tr__refusal_t *why);

/* Incremental, in-place decoder of a chunked body (RFC 9112 §7.1). */
struct tr__chunked {
    int state;
    uint64_t size;       /* of the chunk being read */
    size_t line;         /* bytes of the current size or trailer line */
    size_t rpos;         /* next raw byte to decode (offset in the buffer) */
    size_t wpos;         /* end of the decoded body (offset in the buffer) */
    size_t body_start;   /* where the decoded body begins */
    size_t max_body;     /* decoded bytes allowed */
    size_t max_overhead; /* framing bytes allowed (sizes, extensions, CRLFs, trailers) */
};

void tr__chunked_init(struct tr__chunked *c, size_t body_start, size_t max_body,
                      size_t max_overhead);
/* Decodes buf[c->rpos..len): 1 when the body is complete (it is buf[body_start..wpos) and the
 * next request starts at rpos), 0 when more bytes are needed, -1 with *why on bad framing (400)
 * or a body over max_body (413). */
int tr__chunked_step(struct tr__chunked *c, uint8_t *buf, size_t len, tr__refusal_t *why);

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
    struct event *accept_ev; /* the shared listening socket */
    struct event *resume_ev; /* re-enables accepting after running out of descriptors */
    struct event *stop_ev;
    int stop_pipe[2];
    struct tr__conn *conns; /* every open connection, for stop */
    void *ctx;              /* from worker_init */
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
    size_t max_header_count;
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

struct tr__arena_chunk {
    struct tr__arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* A request lives inside its connection (at most one is dispatched at a time) and never
 * outlives it: a connection that closes aborts its request first. */
struct trellis_http_request {
    struct tr__worker *worker;
    struct tr__conn *conn;
    const char *base; /* the head in the connection's input buffer (which does not move) */
    const struct tr__field *fields;
    size_t n_fields;
    trellis_http_method_t method;
    const char *path;
    const char *query;
    const uint8_t *body;
    size_t body_len;
    uint64_t start_us;
    bool suspended;
    bool aborting;
    bool head_only; /* HEAD: the response carries no body */
    trellis_http_abort_fn on_abort;
    void *abort_arg;
    struct tr__arena_chunk *arena;
    size_t arena_total;
    char *extra; /* "Name: value\r\n" lines from trellis_http_response_header */
    size_t extra_len;
};

enum tr__conn_state {
    TR_CONN_HANDSHAKE, /* TLS handshake running */
    TR_CONN_OPEN,      /* reading, dispatching, answering */
    TR_CONN_LINGER,    /* answered and shut for writing; draining input until the peer closes */
};

enum tr__parse_state { TR_PARSE_HEAD, TR_PARSE_BODY, TR_PARSE_CHUNKED };

/* One accepted connection. */
struct tr__conn {
    struct tr__worker *worker;
    struct tr__conn *prev, *next; /* in worker->conns */
    int fd;
    SSL *ssl; /* NULL: plain HTTP */
    enum tr__conn_state state;
    struct event *read_ev;  /* persistent: added once, removed only while input is full */
    struct event *write_ev; /* added only while the socket is full (with the write timeout) */
    struct event *timer_ev; /* the request timeout, and the linger time */
    uint64_t deadline_us;   /* when the request timeout expires; 0 while a handler works */
    bool timer_armed;
    bool read_paused;
    bool write_waiting;
    bool peer_eof;    /* the client closed its side (or the connection broke) */
    bool close_after; /* close once the queued output is written */
    bool dispatching; /* a handler runs synchronously below us */
    bool doomed;      /* closed while dispatching: freed when the handler returns */
    bool handshake_wants_write;
    X509 *peer_cert;        /* verified client certificate, or NULL */
    char peer[TR_PEER_MAX]; /* "ip:port" */

    /* Input: requests are parsed from in[in_off..in_len). */
    uint8_t *in;
    size_t in_cap, in_len, in_off, in_max;
    size_t scan;
    enum tr__parse_state pstate;
    size_t head_len;
    struct tr__head head;
    struct tr__chunked chunked;
    bool sent_continue;
    size_t drained; /* bytes discarded while lingering */

    /* Output: out[out_off..out_len) is still to be written. */
    char *out;
    size_t out_cap, out_len, out_off;

    struct trellis_http_request req; /* valid while current == &req */
    struct trellis_http_request *current;
    struct tr__field fields[]; /* srv->max_header_count */
};

/* server_conn.c: accepting, reading, writing, timers, closing. */
void tr__accept_cb(evutil_socket_t fd, short what, void *arg);
void tr__accept_resume_cb(evutil_socket_t fd, short what, void *arg);
/* Closes every connection of a stopped worker (aborting suspended requests). */
void tr__worker_close_all(struct tr__worker *w);
/* The response of the current request was queued: write it and go on with the connection
 * (unless a handler is still running below us, which then does it). May free conn. */
void tr__conn_response_queued(struct tr__conn *conn);
/* Makes room for n more bytes of output (bounded by TR_OUT_MAX); NULL when refused. */
char *tr__conn_out_reserve(struct tr__conn *conn, size_t n);

/* The largest response the server writes, headers included. */
#define TR_OUT_MAX (TRELLIS_HTTP_MAX_BODY_LIMIT * 4u)

/* server_router.c */
void tr__dispatch(struct tr__conn *conn);

/* server_request.c */
void tr__request_init(struct tr__conn *conn);
/* Ends a request: logs it, detaches it from its connection, frees its memory. */
void tr__request_end(trellis_http_request_t *req, int status, size_t bytes, const char *outcome);
/* The connection went away with req suspended: abort callback, then free. */
void tr__request_abort(trellis_http_request_t *req);

/* server_response.c */
/* {"error": CODE, "detail": TEXT} as a malloc'd string. */
trellis_err_t tr__error_body(trellis_err_t err, const char *detail, char **out, size_t *out_len);
trellis_err_t tr__respond_error_status(trellis_http_request_t *req, int status, trellis_err_t err,
                                       const char *detail);
/* Queues a JSON error response for a request the parser refused (Connection: close). */
trellis_err_t tr__queue_refusal(struct tr__conn *conn, const tr__refusal_t *why);
/* Queues "HTTP/1.1 100 Continue" (RFC 9110 §10.1.1). */
trellis_err_t tr__queue_continue(struct tr__conn *conn);
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
enum evhttp_cmd_type tr__method_to_evhttp(trellis_http_method_t m);

#endif /* TRELLIS_HTTP_INTERNAL_H */
