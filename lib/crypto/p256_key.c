#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "crypto_internal.h"

trellis_err_t trellis_p256_generate(EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;

    if (out_key == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    *out_key = NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_group_name(ctx, "P-256") != 1 ||
        EVP_PKEY_generate(ctx, &key) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_public_point(const EVP_PKEY *key,
                                        uint8_t out[static TRELLIS_P256_POINT_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIGNUM *x = NULL;
    BIGNUM *y = NULL;

    memset(out, 0, TRELLIS_P256_POINT_LEN);
    err = tr__p256_check_params(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    /*
     * The affine coordinates, not OSSL_PKEY_PARAM_PUB_KEY: the latter comes in whatever point
     * format the key was decoded from (a compressed SPKI stays compressed), while design.md §3
     * derives the device id from the uncompressed form (SEC 1 v2 §2.3.3).
     */
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    if (BN_bn2binpad(x, out + 1, TR__P256_SCALAR_LEN) != TR__P256_SCALAR_LEN ||
        BN_bn2binpad(y, out + 1 + TR__P256_SCALAR_LEN, TR__P256_SCALAR_LEN) !=
            TR__P256_SCALAR_LEN) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    out[0] = 0x04;
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TRELLIS_P256_POINT_LEN);
    BN_free(y);
    BN_free(x);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_from_point(const uint8_t point[static TRELLIS_P256_POINT_LEN],
                                      EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    /* OSSL_PARAM wants writable buffers even for input, so the point and name are copied. */
    uint8_t encoded[TRELLIS_P256_POINT_LEN];
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, encoded, sizeof(encoded)),
        OSSL_PARAM_construct_end(),
    };

    if (out_key == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    *out_key = NULL;
    /* Only the uncompressed form (SEC 1 v2 §2.3.3): 0x04 || X || Y. */
    if (point[0] != 0x04) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    memcpy(encoded, point, sizeof(encoded));
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* Import already refuses coordinates that do not satisfy the curve equation. */
    if (EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return tr__crypto_fail(err);
}
