/*
 * Asynchronous HTTP(S) client on a caller's libevent event_base (evhttp client over
 * bufferevent_openssl), for service-to-service calls such as registrar -> verifier.
 *
 * It runs on the loop it is given, normally a server worker's loop
 * (trellis_http_request_base()), so a handler can suspend its request, call another service
 * and answer when the reply arrives, without ever blocking the loop: a slow upstream delays
 * only the requests waiting for it (design.md §4). Nothing here blocks: names are resolved
 * with libevent's asynchronous resolver (numeric addresses skip it), connects, handshakes,
 * writes and reads are all driven by the loop.
 *
 * TLS. https URLs are verified against ca_file only (the pinned trust anchors; the system
 * store is never consulted), and the server certificate must match the URL's host: its SAN
 * DNS names for a host name, its SAN IP addresses for an IP literal. With cert_file and
 * key_file the client authenticates itself (mutual TLS); the chain in cert_file (leaf first)
 * is sent exactly as configured. TLS 1.2 minimum. http URLs are refused unless
 * allow_plain_http is set.
 *
 * Connections. Each client keeps, per host:port, a small pool of idle keep-alive connections
 * (at most max_idle_per_host, each dropped after idle_timeout_ms, which should stay below the
 * server's keep-alive timeout) and opens at most max_conns_per_host at once; a request beyond
 * that fails at once with TRELLIS_ERR_UNAVAILABLE rather than queueing behind a slow upstream.
 * Every socket gets TCP_NODELAY.
 *
 * Threads. A client and its calls belong to the thread that runs its event_base: every
 * function here must be called on that thread. The process should ignore SIGPIPE (the server
 * does it for its own workers).
 */
#ifndef TRELLIS_HTTP_CLIENT_H
#define TRELLIS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"
#include "trellis/http_server.h" /* trellis_http_method_t */

struct event_base;

#define TRELLIS_HTTP_CLIENT_DEFAULT_TIMEOUT_MS      5000u
#define TRELLIS_HTTP_CLIENT_DEFAULT_MAX_RESPONSE    (1024u * 1024u)
#define TRELLIS_HTTP_CLIENT_MAX_RESPONSE_LIMIT      (16u * 1024u * 1024u)
#define TRELLIS_HTTP_CLIENT_DEFAULT_MAX_IDLE        4u
#define TRELLIS_HTTP_CLIENT_DEFAULT_MAX_CONNS       64u
#define TRELLIS_HTTP_CLIENT_DEFAULT_IDLE_TIMEOUT_MS 4000u
#define TRELLIS_HTTP_CLIENT_MAX_URL                 2048u
#define TRELLIS_HTTP_CLIENT_MAX_HOSTS               64u
#define TRELLIS_HTTP_CLIENT_MAX_HEADERS             32u

typedef struct trellis_http_client trellis_http_client_t;
typedef struct trellis_http_call trellis_http_call_t;

typedef struct {
    const char *ca_file;   /* PEM trust anchors for https servers; required for https */
    const char *cert_file; /* PEM client chain, leaf first (mutual TLS); optional */
    const char *key_file;  /* its private key; required with cert_file */
    bool allow_plain_http; /* accept http:// URLs */

    /* 0 means the default. */
    unsigned timeout_ms;        /* whole-request timeout when a request sets none */
    size_t max_response_body;   /* larger responses fail with TOO_LARGE */
    unsigned max_idle_per_host; /* idle keep-alive connections kept per host:port */
    unsigned max_conns_per_host;
    unsigned idle_timeout_ms;
} trellis_http_client_config_t;

typedef struct {
    const char *name;
    const char *value;
} trellis_http_header_t;

typedef struct {
    trellis_http_method_t method; /* exactly one method */
    const char *url;              /* "https://host:port/path?query", at most MAX_URL bytes */
    const char *content_type;     /* for the body; NULL: none */
    const void *body;             /* may be NULL when body_len is 0 */
    size_t body_len;
    const trellis_http_header_t *headers; /* extra headers (Host, Content-Length, Content-Type,
                                             Connection, Transfer-Encoding are the client's) */
    size_t n_headers;
    unsigned timeout_ms; /* 0: the client's default. Covers resolve, connect, TLS, the whole
                            exchange. */
} trellis_http_client_request_t;

/*
 * What a call produced, handed to the completion callback. err is TRELLIS_OK when a complete
 * HTTP response arrived, whatever its status; otherwise status is 0 and err says why:
 * UNAVAILABLE (cannot resolve or connect, connection refused or closed before a response,
 * too many connections to the host), TIMEOUT, TLS (handshake failed: untrusted or mismatching
 * server certificate, our certificate refused), TOO_LARGE (response body above
 * max_response_body), HTTP (malformed response). detail is a short human-readable reason ("" on
 * success); it never holds response data.
 */
typedef struct {
    trellis_err_t err;
    int status;
    const uint8_t *body; /* NULL when body_len is 0 */
    size_t body_len;
    const char *content_type; /* the response's Content-Type, or NULL */
    const char *detail;
} trellis_http_response_t;

/* Called exactly once per call that was not cancelled, from the event loop (never from inside
 * trellis_http_client_send). resp and everything it points to are valid only during the
 * callback. The callback may start new calls; it must not free the client. */
typedef void (*trellis_http_client_cb)(const trellis_http_response_t *resp, void *arg);

/*
 * Creates a client on base (which must outlive it) and loads the TLS material once.
 * Errors: INVALID_ARG (NULL base/out, cert_file without key_file or the reverse, a limit
 * above its maximum), CONFIG (a file that cannot be read or used; reason says which), NOMEM.
 * ca_file may be NULL only with allow_plain_http, and then https URLs are refused.
 */
trellis_err_t trellis_http_client_new(struct event_base *base,
                                      const trellis_http_client_config_t *cfg,
                                      trellis_http_client_t **out, trellis_reason_t *reason);

/* Cancels every outstanding call (their callbacks are not called), closes every connection and
 * frees the client. NULL is a no-op. */
void trellis_http_client_free(trellis_http_client_t *client);

/*
 * Starts a request; cb(resp, arg) reports its outcome. The request (URL, body, headers) is
 * copied before this returns. If out_call is not NULL it receives a handle for
 * trellis_http_call_cancel(), valid until the callback has been called or the call cancelled.
 * Errors (then cb is never called): INVALID_ARG (NULL arguments, not exactly one method, a
 * malformed or too long URL, an https URL without ca_file, an http URL without
 * allow_plain_http, a reserved or malformed header), UNAVAILABLE (too many connections to the
 * host, or too many hosts), NOMEM.
 */
trellis_err_t trellis_http_client_send(trellis_http_client_t *client,
                                       const trellis_http_client_request_t *request,
                                       trellis_http_client_cb cb, void *arg,
                                       trellis_http_call_t **out_call);

/* Cancels a call that has not completed yet: its callback will not be called and its
 * connection is closed. Must not be called after the callback ran. NULL is a no-op. */
void trellis_http_call_cancel(trellis_http_call_t *call);

typedef struct {
    uint64_t connections_opened; /* new connections started */
    uint64_t connections_reused; /* requests sent on a pooled keep-alive connection */
    uint64_t requests;           /* calls started */
    uint64_t failures;           /* calls completed with err != TRELLIS_OK */
} trellis_http_client_stats_t;

void trellis_http_client_stats(const trellis_http_client_t *client,
                               trellis_http_client_stats_t *out);

#endif /* TRELLIS_HTTP_CLIENT_H */
