/*
 * The device's operational identity: its P-256 key and the certificate chain the registrar
 * issued for it, kept together in DIR/identity.pem (key first, then leaf, then issuers).
 *
 * One file rather than a key file and a chain file, because the pair must change atomically
 * (design.md §2.7): trellis_x509_save_bundle_pem writes a temporary file, fsyncs it, renames it
 * over identity.pem and fsyncs the directory, so a power cut or SIGKILL at any instant leaves the
 * old identity or the new one. TLS stacks read the same file as certificate and as key (each
 * skips the other's PEM blocks), so libcurl and libmosquitto use it as it is.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agent.h"
#include "trellis/crypto.h"
#include "trellis/x509.h"

#define CHAIN_MAX 8

static void serial_hex(const X509 *cert, char *out, size_t size)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    out[0] = '\0';
    if (hex != NULL) {
        snprintf(out, size, "%s", hex);
        for (char *p = out; *p != '\0'; p++) {
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
        }
    }
    OPENSSL_free(hex);
    BN_free(bn);
}

static void fill_times(tr__identity_t *id)
{
    struct tm tm;
    const ASN1_TIME *nb = X509_get0_notBefore(id->chain[0]);
    const ASN1_TIME *na = X509_get0_notAfter(id->chain[0]);
    if (ASN1_TIME_to_tm(nb, &tm) == 1)
        id->not_before = timegm(&tm);
    if (ASN1_TIME_to_tm(na, &tm) == 1)
        id->not_after = timegm(&tm);
    serial_hex(id->chain[0], id->serial_hex, sizeof(id->serial_hex));
}

void tr__identity_free(tr__identity_t *id)
{
    if (id == NULL)
        return;
    EVP_PKEY_free(id->key);
    for (size_t i = 0; i < id->n_chain; i++)
        X509_free(id->chain[i]);
    memset(id, 0, sizeof(*id));
}

trellis_err_t tr__identity_load(const tr__agent_t *a, tr__identity_t *id, trellis_reason_t *reason)
{
    char path[TR__AGENT_PATH_MAX];
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(id, 0, sizeof(*id));
    err = tr__agent_path(a, TR__AGENT_IDENTITY, path);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_load_private_pem(path, &id->key);
    if (err == TRELLIS_ERR_NOT_FOUND) {
        trellis_reason_set(reason, err, "not enrolled (no %s)", TR__AGENT_IDENTITY);
        goto out;
    }
    if (err == TRELLIS_OK)
        err = trellis_x509_load_chain_pem(path, id->chain, CHAIN_MAX, &id->n_chain);
    if (err == TRELLIS_OK && X509_check_private_key(id->chain[0], id->key) != 1)
        err = TRELLIS_ERR_BAD_KEY;
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "%s is unusable: %s", TR__AGENT_IDENTITY,
                           trellis_err_message(err));
        goto out;
    }
    fill_times(id);
    err = TRELLIS_OK;
out:
    ERR_clear_error();
    if (err != TRELLIS_OK)
        tr__identity_free(id);
    return err;
}

/* Reads every certificate of a PEM text (at most max). */
static trellis_err_t parse_chain(const char *pem, size_t len, X509 **certs, size_t max, size_t *n)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *c = NULL;
    *n = 0;
    if (bio == NULL)
        return TRELLIS_ERR_NOMEM;
    while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (*n == max) {
            X509_free(c);
            break;
        }
        certs[(*n)++] = c;
    }
    BIO_free(bio);
    ERR_clear_error();
    return *n > 0 ? TRELLIS_OK : TRELLIS_ERR_PARSE;
}

/* The leaf must chain, as a TLS client certificate, to a certificate of the pinned CA. */
static trellis_err_t verify_chain(const tr__agent_t *a, X509 **chain, size_t n,
                                  trellis_reason_t *reason)
{
    X509 *anchors[CHAIN_MAX] = {0};
    size_t n_anchors = 0;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (a->registrar_ca_pem == NULL || parse_chain(a->registrar_ca_pem, a->registrar_ca_len,
                                                   anchors, CHAIN_MAX, &n_anchors) != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                 "no pinned registrar CA to check "
                                 "the certificate against");
        goto out;
    }
    store = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    untrusted = sk_X509_new_null();
    if (store == NULL || ctx == NULL || untrusted == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_anchors; i++)
        X509_STORE_add_cert(store, anchors[i]);
    for (size_t i = 1; i < n; i++)
        sk_X509_push(untrusted, chain[i]);
    if (X509_STORE_CTX_init(ctx, store, chain[0], untrusted) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PERMISSION,
                                 "the certificate does not chain to the pinned CA: %s",
                                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    err = TRELLIS_OK;
out:
    ERR_clear_error();
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    for (size_t i = 0; i < n_anchors; i++)
        X509_free(anchors[i]);
    return err;
}

trellis_err_t tr__identity_install(const tr__agent_t *a, EVP_PKEY *key, const char *chain_pem,
                                   size_t chain_len, tr__identity_t *out, trellis_reason_t *reason)
{
    tr__identity_t id;
    char path[TR__AGENT_PATH_MAX];
    char cn[TRELLIS_X509_NAME_MAX + 1];
    size_t cn_len = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(&id, 0, sizeof(id));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (key == NULL || chain_pem == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = parse_chain(chain_pem, chain_len, id.chain, CHAIN_MAX, &id.n_chain);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "the answer holds no certificate");
        goto out;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(id.chain[0]), key) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "the certificate is not for this device's new key");
        goto out;
    }
    if (trellis_x509_subject_cn(id.chain[0], cn, sizeof(cn), &cn_len) != TRELLIS_OK ||
        strcmp(cn, a->factory.device_id) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PERMISSION,
                                 "the certificate does not name this device");
        goto out;
    }
    err = verify_chain(a, id.chain, id.n_chain, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = tr__agent_path(a, TR__AGENT_IDENTITY, path);
    if (err == TRELLIS_OK)
        err = trellis_x509_save_bundle_pem(path, key, id.chain, id.n_chain);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot store %s: %s", TR__AGENT_IDENTITY,
                                 trellis_err_message(err));
        goto out;
    }
    if (EVP_PKEY_up_ref(key) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    id.key = key;
    fill_times(&id);
    if (out != NULL) {
        *out = id;
        memset(&id, 0, sizeof(id));
    }
    err = TRELLIS_OK;
out:
    ERR_clear_error();
    tr__identity_free(&id);
    return err;
}

bool tr__identity_renew_due(const tr__identity_t *id, int renew_percent, time_t now)
{
    if (id == NULL || id->not_after <= id->not_before)
        return false;
    long long lifetime = (long long)(id->not_after - id->not_before);
    long long left = (long long)(id->not_after - now);
    return left * 100 < lifetime * renew_percent;
}
