/* The client's TLS context (pinned CA, optional client chain) and per-connection checks. */
#include <arpa/inet.h>
#include <stdio.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http_internal.h"

trellis_err_t tr__tls_client_ctx(const trellis_http_client_config_t *cfg, SSL_CTX **out,
                                 trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    SSL_CTX *ctx = NULL;

    *out = NULL;
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        err = tr__tls_reason(reason, TRELLIS_ERR_NOMEM, "SSL_CTX_new");
        goto out;
    }
    err = tr__tls_common(ctx, reason);
    if (err != TRELLIS_OK)
        goto out;
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_RELEASE_BUFFERS);
    /* Only the pinned anchors: no SSL_CTX_set_default_verify_paths(). */
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "CA file");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    if (cfg->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
            err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "client certificate chain file");
            goto out;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "client private key file");
            goto out;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            err =
                tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "client key does not match certificate");
            goto out;
        }
    }
    *out = ctx;
    ctx = NULL;
    err = TRELLIS_OK;
out:
    SSL_CTX_free(ctx);
    return err;
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

trellis_err_t tr__tls_client_ssl(SSL_CTX *ctx, const char *host, SSL **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    SSL *ssl = NULL;

    *out = NULL;
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (is_ip_literal(host)) {
        /* RFC 6125 §6.2.1 / RFC 9525: an IP reference identity matches SAN iPAddress only. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
    } else {
        /* SNI (RFC 6066 §3) carries names only, never addresses. The copy is writable
         * because OpenSSL's macro casts away const. */
        char name[256];
        int n = snprintf(name, sizeof(name), "%s", host);
        if (n < 0 || (size_t)n >= sizeof(name) || SSL_set_tlsext_host_name(ssl, name) != 1) {
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1) {
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
    }
    *out = ssl;
    ssl = NULL;
    err = TRELLIS_OK;
out:
    SSL_free(ssl);
    ERR_clear_error();
    return err;
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    struct tr__client_conn *conn = SSL_get_app_data(ssl);
    if (conn == NULL)
        return;
    if (where & SSL_CB_HANDSHAKE_DONE)
        conn->tls_done = true;
    /* RFC 8446 §6: alert = level (1 byte) || description (1 byte); ret carries both. */
    if ((where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL && conn->tls_alert == 0)
        conn->tls_alert = ret;
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        struct tr__client_conn *conn = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
        if (conn != NULL && conn->verify_error == X509_V_OK)
            conn->verify_error = X509_STORE_CTX_get_error(store);
    }
    return ok; /* the decision stays OpenSSL's */
}

void tr__tls_client_watch(SSL *ssl, void *conn)
{
    struct tr__client_conn *c = conn;
    c->verify_error = X509_V_OK;
    SSL_set_app_data(ssl, conn);
    SSL_set_info_callback(ssl, info_cb);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
}
