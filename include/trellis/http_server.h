/*
 * The HTTP(S) server every Trellis service serves its API through: a strict HTTP/1.1 server on
 * libevent 2.1 events and OpenSSL, one event loop per worker thread (design.md §4, §7;
 * lib/http/README.md explains the design and its costs).
 *
 * Threads and accepting. start() binds one listening socket and runs `workers` threads, each
 * with its own event_base, all accepting from that one socket (each worker watches the same
 * fd). We chose the shared socket over one SO_REUSEPORT
 * socket per thread because (1) the kernel hashes SO_REUSEPORT connections onto sockets
 * without looking at load, so a worker stuck in a slow handler would still be handed its share
 * of new connections, while with a shared socket only a worker that is idle in its loop
 * accepts; (2) closing one SO_REUSEPORT socket drops the connections queued on it; (3) any
 * process of the same user can bind the same port with SO_REUSEPORT and take a share of the
 * traffic. The cost is that every idle worker wakes for a new connection and all but one find
 * nothing to accept, which at one thread per core is negligible.
 *
 * TLS. With cert_file set, the server speaks only TLS (1.2 minimum, 1.3 preferred). The key,
 * the certificate chain and the client CA file are read once, in trellis_http_server_new(),
 * into one SSL_CTX shared by all workers. The chain is sent exactly as configured
 * (SSL_MODE_NO_AUTO_CHAIN): cert_file holds the leaf first, then its intermediates. Client
 * certificate authentication is off, optional or required; a presented certificate that does
 * not verify against client_ca_file always fails the handshake. Without cert_file the server
 * speaks plain HTTP (tests, or behind a TLS-terminating proxy).
 *
 * Limits (all configurable, 0 in the config means the default below):
 * - request body: max_body bytes (default TRELLIS_HTTP_DEFAULT_MAX_BODY). A larger body is
 *   answered 413 with {"error": "too_large", ...} without calling the handler.
 * - request line and headers together: max_headers bytes; larger -> 400. At most
 *   max_header_count header fields; more -> 400.
 * - chunked request bodies (Transfer-Encoding: chunked) are decoded and handed to the handler
 *   like any body, with the same max_body limit (413); the framing itself (sizes, extensions,
 *   trailer fields) may take 8 KiB. Any other transfer coding -> 501.
 * - request timeout: the TLS handshake and a whole request must arrive within
 *   request_timeout_ms, counted from accept or, on a kept-alive connection, from the end of the
 *   previous response (so it is also the keep-alive idle timeout). A client that trickles bytes
 *   is cut off when it runs out, however often it sends. The timer is stopped while a handler
 *   works on the request.
 * - write timeout: a response that makes no progress for write_timeout_ms closes the
 *   connection (a client that does not read).
 * - connections: at most max_connections at once, across all workers. A connection over the
 *   cap is closed immediately after accept, before any TLS or HTTP work is spent on it; the
 *   client sees the connection closed and may retry. (We do not answer 503: that would cost a
 *   TLS handshake per refused connection, exactly when the server is overloaded.)
 * - keep-alive: on by default; with disable_keepalive every response carries
 *   "Connection: close".
 * - each connection buffers at most about max_headers + max_body + 32 KiB of unread input
 *   (16 KiB of slack, and TLS may read one more record of up to 16 KiB).
 *
 * Every accepted socket gets TCP_NODELAY, and every response is handed to the kernel in one
 * write (headers and body are built contiguous), so no response waits for a delayed ACK
 * (design.md §7).
 *
 * Requests the server refuses itself (malformed request line or header fields, a missing or
 * repeated Host in HTTP/1.1, a bad or repeated Content-Length, Content-Length with
 * Transfer-Encoding -> 400; body too large -> 413; unknown method or transfer coding -> 501;
 * unsupported Expect -> 417; HTTP version other than 1.x -> 505) are answered with the same
 * JSON error body as the router's own 404, 405 and 415, so a client only ever parses one error
 * format: {"error": CODE, "detail": TEXT} (design.md §3), with Connection: close.
 * Expect: 100-continue is honoured. Pipelined requests are answered one at a time, in order.
 *
 * Logging. One info line per request: event=http.request method path status bytes
 * duration_us peer (and outcome=aborted when the client left first). Bodies, headers and
 * query strings are never logged.
 *
 * Signals. Worker threads block SIGPIPE (a write to a closed socket then fails with EPIPE
 * instead of killing the process) and the usual process signals (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGALRM), which are thus delivered to the main thread.
 */
#ifndef TRELLIS_HTTP_SERVER_H
#define TRELLIS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "trellis/error.h"

struct event_base;

/* Defaults and hard maxima of the configuration. */
#define TRELLIS_HTTP_DEFAULT_BIND               "127.0.0.1"
#define TRELLIS_HTTP_DEFAULT_MAX_BODY           (64u * 1024u)
#define TRELLIS_HTTP_MAX_BODY_LIMIT             (16u * 1024u * 1024u)
#define TRELLIS_HTTP_DEFAULT_MAX_HEADERS        (8u * 1024u)
#define TRELLIS_HTTP_MAX_HEADERS_LIMIT          (64u * 1024u)
#define TRELLIS_HTTP_DEFAULT_MAX_HEADER_COUNT   64u
#define TRELLIS_HTTP_MAX_HEADER_COUNT_LIMIT     1024u
#define TRELLIS_HTTP_DEFAULT_REQUEST_TIMEOUT_MS 10000u
#define TRELLIS_HTTP_DEFAULT_WRITE_TIMEOUT_MS   10000u
#define TRELLIS_HTTP_MAX_TIMEOUT_MS             3600000u
#define TRELLIS_HTTP_DEFAULT_MAX_CONNECTIONS    1024u
#define TRELLIS_HTTP_MAX_CONNECTIONS_LIMIT      1000000u
#define TRELLIS_HTTP_DEFAULT_REQUEST_MEMORY     (64u * 1024u)
#define TRELLIS_HTTP_REQUEST_MEMORY_LIMIT       (16u * 1024u * 1024u)
#define TRELLIS_HTTP_DEFAULT_BACKLOG            511
#define TRELLIS_HTTP_MAX_WORKERS                256u
#define TRELLIS_HTTP_MAX_ROUTES                 128u
#define TRELLIS_HTTP_MAX_PATH                   256u
/* Longest peer common name trellis_http_request_peer_cn() accepts, in bytes of UTF-8 (X.509
 * ub-common-name is 64 characters). */
#define TRELLIS_HTTP_CN_MAX 64u

/* HTTP methods, as bits so that a route can accept several. */
typedef enum {
    TRELLIS_HTTP_GET = 1u << 0,
    TRELLIS_HTTP_HEAD = 1u << 1,
    TRELLIS_HTTP_POST = 1u << 2,
    TRELLIS_HTTP_PUT = 1u << 3,
    TRELLIS_HTTP_DELETE = 1u << 4,
    TRELLIS_HTTP_PATCH = 1u << 5,
    TRELLIS_HTTP_OPTIONS = 1u << 6,
} trellis_http_method_t;

/* "GET", "POST", ...; NULL for anything but exactly one method bit. */
const char *trellis_http_method_name(trellis_http_method_t method);

typedef enum {
    TRELLIS_HTTP_CLIENT_AUTH_OFF = 0,  /* no certificate requested */
    TRELLIS_HTTP_CLIENT_AUTH_OPTIONAL, /* requested; a client may send none */
    TRELLIS_HTTP_CLIENT_AUTH_REQUIRED, /* the handshake fails without a valid one */
} trellis_http_client_auth_t;

typedef struct trellis_http_server trellis_http_server_t;
typedef struct trellis_http_request trellis_http_request_t;

/*
 * A request handler. It runs on a worker thread, so handlers of one server run concurrently on
 * different threads and must protect anything they share through `app`.
 *
 * Before it returns, the handler must either answer the request with exactly one of the
 * trellis_http_respond_* functions, or call trellis_http_request_suspend() and answer later
 * from the same worker thread. A handler that returns having done neither gets a 500 answer
 * (and an error log line): the server fails closed. After a respond call the request object is
 * gone and must not be touched.
 */
typedef void (*trellis_http_handler_fn)(trellis_http_request_t *req, void *app);

/* With this flag, POST, PUT and PATCH requests on the route must carry
 * Content-Type: application/json (parameters such as charset allowed); others are answered
 * 415 without calling the handler. */
#define TRELLIS_HTTP_ROUTE_JSON 0x1u

typedef struct {
    unsigned methods; /* OR of trellis_http_method_t; GET also answers HEAD */
    const char *path; /* matched byte for byte against the raw (undecoded) request path */
    trellis_http_handler_fn handler;
    unsigned flags; /* TRELLIS_HTTP_ROUTE_* */
} trellis_http_route_t;

typedef struct {
    const char *bind_address; /* numeric IPv4 or IPv6 address; NULL: "127.0.0.1" */
    uint16_t port;            /* 0: the kernel picks a free port (see trellis_http_server_port) */
    unsigned workers;         /* 0: one per online core */

    /* TLS. cert_file NULL: plain HTTP (then key_file, client_auth, client_ca_file must be
     * unset). cert_file: PEM, leaf first then intermediates; key_file: PEM private key. */
    const char *cert_file;
    const char *key_file;
    trellis_http_client_auth_t client_auth;
    const char *client_ca_file; /* PEM trust anchors for client certificates */

    /* Limits; 0 means the default. */
    size_t max_body;
    size_t max_headers;
    unsigned request_timeout_ms;
    unsigned write_timeout_ms;
    unsigned max_connections;
    size_t request_memory_max; /* per-request arena, see trellis_http_request_alloc() */
    int backlog;
    bool disable_keepalive;
    /* Header fields per request (0: TRELLIS_HTTP_DEFAULT_MAX_HEADER_COUNT); more -> 400. Kept
     * last among the limits so that configurations written before it still compile. */
    size_t max_header_count;

    /* Routes, copied by trellis_http_server_new(). At most TRELLIS_HTTP_MAX_ROUTES; paths
     * start with '/' and are at most TRELLIS_HTTP_MAX_PATH bytes. */
    const trellis_http_route_t *routes;
    size_t n_routes;
    void *app; /* passed to every handler and worker callback */

    /*
     * Optional per-worker context ("one event loop and context per thread"). worker_init runs
     * in trellis_http_server_start() on the calling thread, once per worker, before the worker
     * thread starts; what it stores in *worker_ctx is returned by
     * trellis_http_request_worker_ctx() for every request of that worker. A registrar creates
     * its verifier client there, on `base`, so that handlers can call the verifier without
     * blocking. An error from worker_init fails start(). worker_fini runs in
     * trellis_http_server_stop() on the calling thread after the worker thread has ended and
     * every suspended request of the worker has been aborted, before the event_base is freed:
     * it must free everything it created on `base`.
     */
    trellis_err_t (*worker_init)(void *app, unsigned index, struct event_base *base,
                                 void **worker_ctx);
    void (*worker_fini)(void *app, unsigned index, void *worker_ctx);
} trellis_http_server_config_t;

typedef struct {
    uint64_t connections_accepted;  /* taken on (under the cap) */
    uint64_t connections_rejected;  /* closed at once: over max_connections */
    uint64_t connections_timed_out; /* cut off by the request timeout */
    uint64_t connections_active;    /* open now */
    uint64_t requests;              /* requests read in full and routed */
    uint64_t requests_aborted;      /* suspended requests whose client left or server stopped */
} trellis_http_server_stats_t;

/*
 * Creates a server from cfg (copied; cfg and its strings may be freed afterwards). Loads the
 * TLS material now, so that a bad key or certificate is reported at startup.
 *
 * Errors: INVALID_ARG (a NULL argument, a route without handler or with a bad path, a limit
 * above its maximum, TLS options without cert_file, client auth without client_ca_file),
 * CONFIG (an unreadable or invalid key, certificate or CA file; reason says which),
 * NOMEM. reason (may be NULL) receives a precise message; it never contains key material.
 */
trellis_err_t trellis_http_server_new(const trellis_http_server_config_t *cfg,
                                      trellis_http_server_t **out, trellis_reason_t *reason);

/*
 * Binds, listens and starts the worker threads; returns once the server accepts connections.
 * May be called again after trellis_http_server_stop() (a new port is picked if port was 0).
 * Errors: INVALID_ARG (NULL, already running), IO (bind or listen failed: reason has the
 * system error), NOMEM, or what a worker_init returned. On failure nothing is left running.
 */
trellis_err_t trellis_http_server_start(trellis_http_server_t *srv, trellis_reason_t *reason);

/* The bound port while running (useful with port 0); 0 when not running. */
uint16_t trellis_http_server_port(const trellis_http_server_t *srv);

/* The number of workers start() runs. */
unsigned trellis_http_server_workers(const trellis_http_server_t *srv);

/*
 * Stops accepting, ends the worker threads, aborts suspended requests (their abort callbacks
 * run, on the calling thread), closes every connection and frees everything start() created.
 * Returns TRELLIS_OK also when the server was not running. Must not be called from a worker
 * thread (a handler): INVALID_ARG.
 */
trellis_err_t trellis_http_server_stop(trellis_http_server_t *srv);

/* Stops the server if it runs, then frees it. NULL is a no-op. */
void trellis_http_server_free(trellis_http_server_t *srv);

/* Counters since trellis_http_server_new(); safe from any thread. */
void trellis_http_server_stats(const trellis_http_server_t *srv, trellis_http_server_stats_t *out);

/* ---- the request, as a handler sees it ----------------------------------------------------
 * Every pointer returned below is borrowed and stays valid until the request ends (respond or
 * abort). All functions must be called on the request's worker thread; req must not be NULL.
 */

trellis_http_method_t trellis_http_request_method(const trellis_http_request_t *req);
/* The raw path, without the query ("/v1/enroll"). */
const char *trellis_http_request_path(const trellis_http_request_t *req);
/* The raw query string after '?', or NULL when there is none. */
const char *trellis_http_request_query(const trellis_http_request_t *req);
/* The first header of that name (case-insensitive), or NULL. */
const char *trellis_http_request_header(const trellis_http_request_t *req, const char *name);
/* The whole body, contiguous, at most max_body bytes; *len receives its length. NULL (and
 * *len 0) when the request has no body. len must not be NULL. */
const uint8_t *trellis_http_request_body(const trellis_http_request_t *req, size_t *len);
/* The client's address as "ip:port" ("[ip6]:port"). */
const char *trellis_http_request_peer(const trellis_http_request_t *req);

/* The client certificate that verified against client_ca_file, or NULL (no TLS, client auth
 * off, or optional and none sent). Borrowed. */
X509 *trellis_http_request_peer_cert(const trellis_http_request_t *req);
/*
 * The subject common name of the peer certificate, NUL-terminated, as (out, out_size,
 * *out_len): with out NULL or too small, *out_len receives the size needed (with the NUL) and
 * BUFFER_TOO_SMALL is returned. Fails closed on anything a peer could use to confuse a name
 * check: no CN, more than one CN, an embedded NUL or control character, or more than
 * TRELLIS_HTTP_CN_MAX bytes (PARSE). UNAUTHENTICATED when there is no peer certificate.
 */
trellis_err_t trellis_http_request_peer_cn(const trellis_http_request_t *req, char *out,
                                           size_t out_size, size_t *out_len);
/* SHA-256 of the peer certificate's DER encoding. UNAUTHENTICATED without one. */
trellis_err_t trellis_http_request_peer_sha256(const trellis_http_request_t *req,
                                               uint8_t out[static 32]);

/*
 * Allocates size bytes of zeroed memory (aligned for any type) that live exactly as long as
 * the request; they are cleansed and freed when it ends, so a handler may keep secrets there.
 * NULL when size is 0 or the request would exceed request_memory_max.
 */
void *trellis_http_request_alloc(trellis_http_request_t *req, size_t size);

/* The worker's event loop: where an asynchronous handler schedules its work. */
struct event_base *trellis_http_request_base(const trellis_http_request_t *req);
/* What worker_init stored for this worker (NULL without worker_init). */
void *trellis_http_request_worker_ctx(const trellis_http_request_t *req);
/* 0 .. workers-1. */
unsigned trellis_http_request_worker_index(const trellis_http_request_t *req);

/*
 * TRELLIS_OK when the request's Content-Type is media_type ("application/json"), compared
 * case-insensitively and ignoring parameters (RFC 9110 §8.3.1); CONTENT_TYPE when it is
 * absent or another type; INVALID_ARG for a NULL media_type.
 */
trellis_err_t trellis_http_request_expect_content_type(const trellis_http_request_t *req,
                                                       const char *media_type);
/* The same test on a header value: true when value names media_type. NULLs give false. */
bool trellis_http_media_type_is(const char *value, const char *media_type);

/* Called when a suspended request can no longer be answered: the client closed its
 * connection, or the server is stopping. */
typedef void (*trellis_http_abort_fn)(trellis_http_request_t *req, void *arg);

/*
 * Keeps the request open after the handler returns, to be answered later from the same worker
 * thread (a timer, or the completion of an asynchronous client call on
 * trellis_http_request_base()). on_abort is required: it is called at most once, on the worker
 * thread (or on the thread stopping the server), if the client disconnects or the server stops
 * before the answer. It must cancel whatever would later answer the request; when it returns
 * the request is freed and must not be used again (respond functions are refused while it
 * runs). While suspended, the connection is watched so that a disconnect is noticed at once.
 * Errors: INVALID_ARG (NULL on_abort, already suspended or answered).
 */
trellis_err_t trellis_http_request_suspend(trellis_http_request_t *req,
                                           trellis_http_abort_fn on_abort, void *arg);

/* ---- responses -----------------------------------------------------------------------------
 * Each respond function answers the request and ends it: whatever it returns, req is gone
 * afterwards (on an invalid argument the client gets a 500 instead; if even that cannot be
 * built the connection is closed). status must be 200..599. The response leaves in one write.
 */

/* Adds a header to the response to come (Retry-After, Allow, Location, ...). Content-Type,
 * Content-Length, Transfer-Encoding and Connection are set by the server (INVALID_ARG), as are
 * names or values with CR, LF or other control characters. TOO_LARGE when the headers added to
 * one response would exceed 8 KiB. */
trellis_err_t trellis_http_response_header(trellis_http_request_t *req, const char *name,
                                           const char *value);

/* body serialized compactly as application/json. */
trellis_err_t trellis_http_respond_json(trellis_http_request_t *req, int status,
                                        const json_t *body);
/* Pre-serialized JSON text of len bytes (application/json). */
trellis_err_t trellis_http_respond_json_text(trellis_http_request_t *req, int status,
                                             const char *text, size_t len);
/* Raw bytes with a content type ("application/pem-certificate-chain", "application/pkix-crl").
 * body may be NULL only when len is 0. */
trellis_err_t trellis_http_respond_bytes(trellis_http_request_t *req, int status,
                                         const char *content_type, const void *body, size_t len);
/*
 * The error body {"error": trellis_err_api_code(err), "detail": detail} with the status
 * trellis_err_http_status(err). detail is shown to the client: never put secrets in it. NULL
 * detail, or one that is not valid UTF-8, is replaced by trellis_err_message(err). err must
 * not be TRELLIS_OK.
 */
trellis_err_t trellis_http_respond_error(trellis_http_request_t *req, trellis_err_t err,
                                         const char *detail);

#endif /* TRELLIS_HTTP_SERVER_H */
