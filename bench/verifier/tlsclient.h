/*
 * A small blocking HTTPS/1.1 client on OpenSSL and a raw socket, for the verifier's load
 * generator and tests. It keeps connections alive, sets TCP_NODELAY, and can also write raw
 * bytes, so tests can send what no well-behaved client would.
 */
#ifndef TRELLIS_BENCH_TLSCLIENT_H
#define TRELLIS_BENCH_TLSCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define TC_RESPONSE_MAX (64u * 1024u * 1024u)

/* A client context: trust anchors (ca), and optionally a client certificate and key. NULL on
 * failure. Free with SSL_CTX_free. */
SSL_CTX *tc_ctx_new(const char *ca_file, const char *cert_file, const char *key_file);

typedef struct {
    int fd;
    SSL *ssl;
    size_t rlen;
    char rbuf[16384];
} tc_conn_t;

typedef struct {
    int status;
    int close;  /* the server said Connection: close */
    char *body; /* malloc'ed, NUL-terminated; free with tc_response_free */
    size_t body_len;
    char content_type[128];
} tc_response_t;

/* Connects to host:port (numeric IPv4/IPv6) and completes the TLS handshake. 0 on success,
 * -1 on failure (c is then closed). */
int tc_connect(tc_conn_t *c, SSL_CTX *ctx, const char *host, uint16_t port);

/* Sends one request (Content-Length framing, keep-alive) and reads the response. ctype may be
 * NULL. 0 on success, -1 on a transport failure. */
int tc_request(tc_conn_t *c, const char *method, const char *path, const char *ctype,
               const void *body, size_t len, tc_response_t *resp);

/* Writes raw bytes; 0 on success. */
int tc_write_raw(tc_conn_t *c, const void *data, size_t len);

/* Reads one response; 0 on success, -1 when the connection ended or broke first. */
int tc_read_response(tc_conn_t *c, tc_response_t *resp);

void tc_response_free(tc_response_t *resp);
void tc_close(tc_conn_t *c);

#endif
