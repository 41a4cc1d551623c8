#include <string.h>

#include <openssl/evp.h>

#include "crypto_internal.h"

trellis_err_t trellis_p256_sign_digest(const EVP_PKEY *key,
                                       const uint8_t digest[static TRELLIS_SHA256_LEN],
                                       uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len = sizeof(der);

    memset(sig, 0, TRELLIS_P256_SIG_RAW_LEN);
    err = tr__p256_check_params(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, tr__pkey_mutable(key), NULL);
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* The input is already a SHA-256 digest; setting the md makes OpenSSL check its length. */
    if (EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_sign(ctx, der, &der_len, digest, TRELLIS_SHA256_LEN) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* OpenSSL emits minimal DER with r and s in range, so the strict parser always accepts. */
    if (trellis_ecdsa_der_to_raw(der, der_len, sig) != TRELLIS_OK) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_verify_digest(const EVP_PKEY *key,
                                         const uint8_t digest[static TRELLIS_SHA256_LEN],
                                         const uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len = 0;

    err = tr__p256_check_params(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    /* FIPS 186-4 §6.4.2 step 1: r and s in [1, n-1], checked here so that no out-of-range value
     * (zero, n, n + small) ever reaches OpenSSL's arithmetic. */
    if (!tr__p256_scalar_in_range(sig) || !tr__p256_scalar_in_range(sig + TR__P256_SCALAR_LEN)) {
        err = TRELLIS_ERR_BAD_SIGNATURE;
        goto out;
    }
    err = trellis_ecdsa_raw_to_der(sig, der, sizeof(der), &der_len);
    if (err != TRELLIS_OK)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, tr__pkey_mutable(key), NULL);
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* 1 is the only success; 0 (mismatch) and negative (error) both fail closed. */
    err = EVP_PKEY_verify(ctx, der, der_len, digest, TRELLIS_SHA256_LEN) == 1
              ? TRELLIS_OK
              : TRELLIS_ERR_BAD_SIGNATURE;
out:
    EVP_PKEY_CTX_free(ctx);
    return tr__crypto_fail(err);
}
