/*
 * Helpers shared by the http tests: misbehaving raw clients (plain sockets and OpenSSL), a
 * small HTTP/1.1 response reader, servers started on ephemeral ports, and a way to run an
 * event loop until a condition holds.
 */
#ifndef TRELLIS_HTTP_TEST_H
#define TRELLIS_HTTP_TEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "test_pki.h"
#include "trellis/http_client.h"
#include "trellis/http_server.h"

struct event_base;

/* A client connection: plain when ssl is NULL. Unread bytes stay in buf for the next read. */
typedef struct {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[1152 * 1024];
    size_t len;
} ht_conn_t;

typedef struct {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* NUL-terminated copy, malloc'd */
    size_t body_len;
} ht_response_t;

/* Plain TCP to 127.0.0.1:port, 3 s receive timeout. Asserts success. */
void ht_connect(ht_conn_t *c, uint16_t port);
/* TLS to 127.0.0.1:port trusting ca (may be NULL: no verification), presenting cert/key when
 * not NULL, at most TLS max_version when non-zero. Returns the SSL_connect result (1 = ok). */
int ht_connect_tls(ht_conn_t *c, uint16_t port, const char *ca, const char *cert, const char *key,
                   int max_version);
void ht_close(ht_conn_t *c);
/* A connection on the heap: ht_conn_new connects it (ht_connect); ht_conn_free closes and frees
 * it. */
ht_conn_t *ht_conn_new(uint16_t port);
void ht_conn_free(ht_conn_t *c);
/* Writes everything (SSL or plain); returns false on failure. */
bool ht_send(ht_conn_t *c, const void *data, size_t len);
bool ht_send_str(ht_conn_t *c, const char *s);
/* Reads one response with a Content-Length (or none for HEAD-like, when head_only). Returns the
 * status, or -1 if the connection ended or timed out first. */
int ht_read_response(ht_conn_t *c, ht_response_t *r, bool head_only);
void ht_response_free(ht_response_t *r);
/* The value of a response header, copied into out; false when absent. */
bool ht_header(const ht_response_t *r, const char *name, char *out, size_t out_size);
/* True when the peer closed (or reset) the connection within timeout_ms without sending any
 * byte; *got receives the number of bytes that arrived before the close (may be NULL). */
bool ht_wait_closed(ht_conn_t *c, int timeout_ms, size_t *got);
/* One request on a fresh plain connection; returns the status. */
int ht_request(uint16_t port, const char *raw, ht_response_t *r);

/* Server on 127.0.0.1:0 from cfg; asserts it starts. */
trellis_http_server_t *ht_server_start(const trellis_http_server_config_t *cfg);

/* Runs base until *flag becomes non-zero or timeout_ms passes; returns the flag's truth. */
bool ht_run_until(struct event_base *base, atomic_int *flag, int timeout_ms);
/* Polls (sleeping 5 ms) until *value >= want or timeout_ms passes. */
bool ht_wait_atomic(atomic_int *value, int want, int timeout_ms);
void ht_sleep_ms(int ms);
uint64_t ht_now_ms(void);

/* ---- handlers shared by the tests (http_test_handlers.c) ----
 * /echo GET POST: JSON {method, path, query, body, worker, x_test, cn}
 * /json POST (ROUTE_JSON): {"ok":true}
 * /async GET POST: suspends, answers {"async":true} from a 100 ms timer
 * /forever GET POST: suspends and never answers (counts aborts)
 * /block GET: blocks its worker until ht_counters.release is set
 * /noanswer GET: returns without answering
 * /limited GET: 429 with Retry-After: 7 (and checks header validation)
 * /pem GET: a PEM body as application/pem-certificate-chain
 * /big GET: ht_counters.big_size bytes of 'x'
 * /cn GET: the peer certificate's CN and SHA-256, or the error
 * /ctx GET: the worker context string set by ht_worker_init
 */
typedef struct {
    atomic_int echo;
    atomic_int json;
    atomic_int async_entered;
    atomic_int async_answered;
    atomic_int forever_entered;
    atomic_int aborts;
    atomic_int block_entered;
    atomic_int release;
    atomic_int block_worker[4];
    atomic_int header_checks_ok;
    atomic_int big_size;
    atomic_int worker_inits;
    atomic_int worker_finis;
} ht_counters_t;

extern ht_counters_t ht_counters;
extern const trellis_http_route_t ht_routes[];
extern const size_t ht_n_routes;

void ht_counters_reset(void);
/* A plain-HTTP config with every route, one worker, short timeouts. */
void ht_config(trellis_http_server_config_t *cfg);
trellis_err_t ht_worker_init(void *app, unsigned index, struct event_base *base, void **ctx);
void ht_worker_fini(void *app, unsigned index, void *ctx);

/* The PKI every TLS test uses, made once by the test binary's main. */
extern trellis_test_pki_t ht_pki;

/* Test groups, one per file; each returns its failure count. */
int ht_server_tests(void);
int ht_tls_tests(void);
int ht_client_tests(void);
int ht_parse_tests(void);

#endif /* TRELLIS_HTTP_TEST_H */
