#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include "crypto_internal.h"

/* The P-256 group order n (SEC 2 v2 §2.4.2; FIPS 186-4 D.1.2.3), big-endian. */
static const uint8_t p256_order[TR__P256_SCALAR_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

int tr__p256_scalar_in_range(const uint8_t v[static TR__P256_SCALAR_LEN])
{
    int nonzero = 0;
    for (size_t i = 0; i < TR__P256_SCALAR_LEN; i++)
        nonzero |= v[i];
    /* Big-endian arrays of equal length compare like the integers they hold. */
    return nonzero != 0 && memcmp(v, p256_order, TR__P256_SCALAR_LEN) < 0;
}

EVP_PKEY *tr__pkey_mutable(const EVP_PKEY *key)
{
    union {
        const EVP_PKEY *c;
        EVP_PKEY *m;
    } u = {.c = key};
    return u.m;
}

trellis_err_t tr__crypto_fail(trellis_err_t err)
{
    if (err != TRELLIS_OK)
        ERR_clear_error();
    return err;
}

static int is_p256_name(const char *name)
{
    /* OpenSSL reports the SEC/X9.62 short name; accept the NIST alias too. */
    return strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0;
}

trellis_err_t tr__p256_check_params(const EVP_PKEY *key, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char group[64] = "";
    char encoding[32] = "";
    size_t text_len = 0;
    int from_explicit = 1;

    if (key == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no key given");
        goto out;
    }
    if (!EVP_PKEY_is_a(key, "EC")) {
        const char *type = EVP_PKEY_get0_type_name(key);
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "key type is %s, expected EC P-256",
                                 type != NULL ? type : "unknown");
        goto out;
    }
    if (EVP_PKEY_get_group_name(key, group, sizeof(group), &text_len) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "key has no named curve, expected P-256");
        goto out;
    }
    if (!is_p256_name(group)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "key is on curve %s, expected P-256",
                                 group);
        goto out;
    }
    /*
     * OpenSSL maps explicit parameters that spell out a known curve to that curve's name, so the
     * group name alone does not tell them apart: the encoding and the decoded-from-explicit flag
     * do. Explicit parameters are refused because they let a peer choose the curve arithmetic
     * (CVE-2020-0601 class) and no Trellis party ever produces them.
     */
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding, sizeof(encoding),
                                       &text_len) != 1 ||
        strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0 ||
        EVP_PKEY_get_int_param(key, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS,
                               &from_explicit) != 1 ||
        from_explicit != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "key uses explicit curve parameters, expected named curve P-256");
        goto out;
    }
    err = TRELLIS_OK;
out:
    return tr__crypto_fail(err);
}

int tr__p256_has_private(const EVP_PKEY *key)
{
    BIGNUM *priv = NULL;
    int has = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1 && priv != NULL;
    BN_clear_free(priv);
    /* A public key answers "no such parameter" through the error queue; that is not an error. */
    if (!has)
        ERR_clear_error();
    return has;
}

trellis_err_t trellis_p256_check_key(const EVP_PKEY *key, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;

    trellis_reason_clear(reason);
    err = tr__p256_check_params(key, reason);
    if (err != TRELLIS_OK)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, tr__pkey_mutable(key), NULL);
    if (ctx == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "out of memory checking key");
        goto out;
    }
    /* Full public check: on the curve, not infinity, n * Q = infinity (SP 800-56A 5.6.2.3.3). */
    if (EVP_PKEY_public_check(ctx) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "public point is not a valid P-256 point");
        goto out;
    }
    if (tr__p256_has_private(key) &&
        (EVP_PKEY_private_check(ctx) != 1 || EVP_PKEY_pairwise_check(ctx) != 1)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "private scalar is out of range or does not match the point");
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return tr__crypto_fail(err);
}
