#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
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

/* SEC 2 §2.4.2: the base point G of secp256r1, uncompressed. Any valid point would do: the
 * template below only carries the group. */
static const uint8_t P256_G[TRELLIS_P256_POINT_LEN] = {
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5,
    0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4,
    0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a,
    0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
};

/*
 * A public P-256 key made once per process, which every key built from a point is a copy of:
 * building a key from the group's name (EVP_PKEY_fromdata) makes a new EC_GROUP and fetches the
 * key manager each time (about 100 µs under load in OpenSSL 3.0), while duplicating a key of the
 * right group and setting its point costs a few µs. Read-only once made, so shared by threads;
 * kept for the life of the process.
 */
static EVP_PKEY *p256_template;
static pthread_once_t template_once = PTHREAD_ONCE_INIT;

static void make_template(void)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    /* OSSL_PARAM wants writable buffers even for input, so the point and name are copied. */
    uint8_t point[TRELLIS_P256_POINT_LEN];
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };
    memcpy(point, P256_G, sizeof(point));
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &p256_template, EVP_PKEY_PUBLIC_KEY, params) != 1)
        p256_template = NULL;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
}

trellis_err_t trellis_p256_from_point(const uint8_t point[static TRELLIS_P256_POINT_LEN],
                                      EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *key = NULL;

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
    pthread_once(&template_once, make_template);
    if (p256_template == NULL) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* EVP_PKEY_dup takes a non-const key but only reads it. */
    key = EVP_PKEY_dup(p256_template);
    if (key == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* Decoding the point refuses coordinates out of range or off the curve (SEC 1 §2.3.4,
     * which also checks the equation); an uncompressed point is never the point at infinity.
     * That is all a public-key check can ask on P-256, whose cofactor is 1: the full check's
     * extra n·Q multiplication (SP 800-56A §5.6.2.3.3) adds nothing. */
    if (EVP_PKEY_set1_encoded_public_key(key, point, TRELLIS_P256_POINT_LEN) != 1) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    return tr__crypto_fail(err);
}
