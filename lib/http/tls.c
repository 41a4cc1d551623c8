/* TLS settings shared by the server and the client, and OpenSSL error reporting. */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http_internal.h"

/* TLS 1.2 suites: ECDHE only (forward secrecy), AEAD only. TLS 1.3 keeps OpenSSL's default
 * list, which is AEAD-only by construction. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";

trellis_err_t tr__tls_reason(trellis_reason_t *reason, trellis_err_t err, const char *what)
{
    char text[160];
    unsigned long e = ERR_peek_last_error();
    if (e != 0)
        ERR_error_string_n(e, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "no detail");
    ERR_clear_error();
    return trellis_reason_set(reason, err, "%s: %s", what, text);
}

trellis_err_t tr__tls_common(SSL_CTX *ctx, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CRYPTO, "TLS minimum version");
        goto out;
    }
    /* Renegotiation is a CPU-exhaustion lever for clients and nothing Trellis needs. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CRYPTO, "TLS 1.2 cipher list");
        goto out;
    }
    /* P-256 first: the curve of every Trellis key, and the fastest here (design.md §7). The
     * array is writable because OpenSSL's macro casts away const. */
    char groups[] = "P-256:X25519:P-384";
    if (SSL_CTX_set1_groups_list(ctx, groups) != 1) {
        err = tr__tls_reason(reason, TRELLIS_ERR_CRYPTO, "TLS groups");
        goto out;
    }
    err = TRELLIS_OK;
out:
    return err;
}
