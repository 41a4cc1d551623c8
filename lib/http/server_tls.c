/* The server's TLS context, and the identity of a verified client certificate. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "http_internal.h"

/* OpenSSL wants a session id context whenever it verifies client certificates, even with
 * resumption off (below); any constant will do since one SSL_CTX serves one service. */
static const unsigned char session_id_ctx[] = "trellis-http";

static trellis_err_t load_client_auth(SSL_CTX *ctx, const trellis_http_server_config_t *cfg,
                                      trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    STACK_OF(X509_NAME) *names = NULL;
    int mode = SSL_VERIFY_PEER;

    if (SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "client CA file");
        goto out;
    }
    /* The CertificateRequest names the acceptable CAs, so a client holding several
     * certificates picks the right one. */
    names = SSL_load_client_CA_file(cfg->client_ca_file);
    if (names == NULL) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "client CA names");
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    names = NULL;
    if (cfg->client_auth == TRELLIS_HTTP_CLIENT_AUTH_REQUIRED)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    /* No verify callback: a certificate that does not verify always ends the handshake, also
     * in optional mode, so a handler never sees an unverified certificate. */
    SSL_CTX_set_verify(ctx, mode, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    err = TRELLIS_OK;
out:
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    return err;
}

trellis_err_t tr__tls_server_ctx(const trellis_http_server_config_t *cfg, SSL_CTX **out,
                                 trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    SSL_CTX *ctx = NULL;

    *out = NULL;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        err = tr__tls_reason(reason, TRELLIS_ERR_NOMEM, "SSL_CTX_new");
        goto out;
    }
    err = tr__tls_common(ctx, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* Send the chain exactly as configured instead of building it from the trust store on
     * every handshake: ~36% cheaper mutual-TLS handshakes (design.md §7). The connection code
     * writes from a buffer that may move between retries and takes partial writes. */
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Read whole records (and whatever follows) in one read(2) instead of a header read and a
     * body read per record. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "certificate chain file");
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "private key file");
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CONFIG, "key does not match certificate");
        goto out;
    }
    if (SSL_CTX_set_session_id_context(ctx, session_id_ctx, sizeof(session_id_ctx) - 1) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CRYPTO, "session id context");
        goto out;
    }
    /* No resumption at all: no TLS 1.3 tickets, no TLS 1.2 tickets, no session cache. The
     * clients that make handshakes expensive are first-boot devices, which never resume, and
     * each ticket costs the server an encryption and a write per handshake (lib/http/README.md).
     */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cfg->client_auth != TRELLIS_HTTP_CLIENT_AUTH_OFF) {
        err = load_client_auth(ctx, cfg, reason);
        if (err != TRELLIS_OK)
            goto out;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    *out = ctx;
    ctx = NULL;
    err = TRELLIS_OK;
out:
    SSL_CTX_free(ctx);
    return err;
}

trellis_err_t tr__x509_cn(const X509 *cert, char *out, size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    unsigned char *utf8 = NULL;
    int n = -1;

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (out != NULL && out_size > 0)
        out[0] = '\0';
    const X509_NAME *name = X509_get_subject_name(cert);
    int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0) {
        /* none, or more than one: which one a check would read is ambiguous */
        err = TRELLIS_ERR_PARSE;
        goto out;
    }
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) {
        err = TRELLIS_ERR_PARSE;
        goto out;
    }
    if (n == 0 || (size_t)n > TRELLIS_HTTP_CN_MAX) {
        err = TRELLIS_ERR_PARSE;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (utf8[i] < 0x20 || utf8[i] == 0x7f) {
            err = TRELLIS_ERR_PARSE; /* embedded NUL or control character */
            goto out;
        }
    }
    if (out == NULL || out_size < (size_t)n + 1) {
        *out_len = (size_t)n + 1;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(out, utf8, (size_t)n);
    out[n] = '\0';
    *out_len = (size_t)n;
    err = TRELLIS_OK;
out:
    OPENSSL_free(utf8);
    return err;
}

trellis_err_t tr__x509_sha256(const X509 *cert, uint8_t out[static 32])
{
    unsigned int len = 0;
    memset(out, 0, 32);
    if (X509_digest(cert, EVP_sha256(), out, &len) != 1 || len != 32) {
        memset(out, 0, 32);
        ERR_clear_error();
        return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

X509 *trellis_http_request_peer_cert(const trellis_http_request_t *req)
{
    return req->conn->peer_cert;
}

trellis_err_t trellis_http_request_peer_cn(const trellis_http_request_t *req, char *out,
                                           size_t out_size, size_t *out_len)
{
    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (req->conn->peer_cert == NULL) {
        *out_len = 0;
        if (out != NULL && out_size > 0)
            out[0] = '\0';
        return TRELLIS_ERR_UNAUTHENTICATED;
    }
    return tr__x509_cn(req->conn->peer_cert, out, out_size, out_len);
}

trellis_err_t trellis_http_request_peer_sha256(const trellis_http_request_t *req,
                                               uint8_t out[static 32])
{
    if (req->conn->peer_cert == NULL) {
        memset(out, 0, 32);
        return TRELLIS_ERR_UNAUTHENTICATED;
    }
    return tr__x509_sha256(req->conn->peer_cert, out);
}
