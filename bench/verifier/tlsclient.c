#include "tlsclient.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

SSL_CTX *tc_ctx_new(const char *ca_file, const char *cert_file, const char *key_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
        goto fail;
    if (cert_file != NULL && (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
                              SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
                              SSL_CTX_check_private_key(ctx) != 1))
        goto fail;
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

int tc_connect(tc_conn_t *c, SSL_CTX *ctx, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int one = 1;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        sl = sizeof(*a6);
    } else {
        return -1;
    }
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&ss, sl) != 0)
        goto fail;
    c->ssl = SSL_new(ctx);
    if (c->ssl == NULL)
        goto fail;
    /* Check the server's certificate against the address we dialled (its SAN IP). */
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    tc_close(c);
    return -1;
}

int tc_write_raw(tc_conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(c->ssl, p, chunk);
        if (n <= 0) {
            ERR_clear_error();
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fill(tc_conn_t *c)
{
    if (c->rlen == sizeof(c->rbuf))
        return -1;
    int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof(c->rbuf) - c->rlen));
    if (n <= 0) {
        ERR_clear_error();
        return -1;
    }
    c->rlen += (size_t)n;
    return 0;
}

static const char *header_value(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            return v;
        }
    }
    return NULL;
}

int tc_read_response(tc_conn_t *c, tc_response_t *r)
{
    char *end = NULL;
    memset(r, 0, sizeof(*r));
    for (;;) {
        if (c->rlen >= 4) {
            for (size_t i = 0; i + 4 <= c->rlen; i++) {
                if (memcmp(c->rbuf + i, "\r\n\r\n", 4) == 0) {
                    end = c->rbuf + i;
                    break;
                }
            }
            if (end != NULL)
                break;
        }
        if (fill(c) != 0)
            return -1;
    }
    size_t head_len = (size_t)(end - c->rbuf) + 4;
    char head[sizeof(c->rbuf)];
    memcpy(head, c->rbuf, head_len - 2);
    head[head_len - 2] = '\0';
    if (sscanf(head, "HTTP/1.%*d %d", &r->status) != 1)
        return -1;
    const char *cl = header_value(head, "Content-Length");
    size_t body_len = cl != NULL ? strtoul(cl, NULL, 10) : 0;
    if (body_len > TC_RESPONSE_MAX)
        return -1;
    const char *conn = header_value(head, "Connection");
    r->close = conn != NULL && strncasecmp(conn, "close", 5) == 0;
    const char *ct = header_value(head, "Content-Type");
    if (ct != NULL) {
        size_t n = strcspn(ct, "\r");
        snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int)n, ct);
    }
    r->body = malloc(body_len + 1);
    if (r->body == NULL)
        return -1;
    memmove(c->rbuf, c->rbuf + head_len, c->rlen - head_len);
    c->rlen -= head_len;
    size_t got = 0;
    while (got < body_len) {
        if (c->rlen == 0 && fill(c) != 0) {
            tc_response_free(r);
            return -1;
        }
        size_t take = c->rlen < body_len - got ? c->rlen : body_len - got;
        memcpy(r->body + got, c->rbuf, take);
        memmove(c->rbuf, c->rbuf + take, c->rlen - take);
        c->rlen -= take;
        got += take;
    }
    r->body[body_len] = '\0';
    r->body_len = body_len;
    return 0;
}

int tc_request(tc_conn_t *c, const char *method, const char *path, const char *ctype,
               const void *body, size_t len, tc_response_t *resp)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: verifier\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, ctype != NULL ? "Content-Type: " : "",
                     ctype != NULL ? ctype : "", ctype != NULL ? "\r\n" : "", len);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -1;
    /* Header and a small body leave in one write, as the server's responses do. */
    if (len <= 8192) {
        char buf[sizeof(head) + 8192];
        memcpy(buf, head, (size_t)n);
        if (len > 0)
            memcpy(buf + n, body, len);
        if (tc_write_raw(c, buf, (size_t)n + len) != 0)
            return -1;
    } else if (tc_write_raw(c, head, (size_t)n) != 0 || tc_write_raw(c, body, len) != 0) {
        return -1;
    }
    return tc_read_response(c, resp);
}

void tc_response_free(tc_response_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

void tc_close(tc_conn_t *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->rlen = 0;
}
