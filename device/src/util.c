/*
 * Small helpers of the device library: the hash it needs, wiping, bounded copies.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "device_internal.h"

trellis_err_t tr__dev_sha256(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                             uint8_t out[TRELLIS_ROT_DIGEST_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    unsigned int len = 0;

    if (out == NULL || (a == NULL && a_len > 0) || (b == NULL && b_len > 0)) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, TRELLIS_ROT_DIGEST_LEN);
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        (a_len > 0 && EVP_DigestUpdate(ctx, a, a_len) != 1) ||
        (b_len > 0 && EVP_DigestUpdate(ctx, b, b_len) != 1) ||
        EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != TRELLIS_ROT_DIGEST_LEN) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_MD_CTX_free(ctx);
    if (err != TRELLIS_OK) {
        memset(out, 0, TRELLIS_ROT_DIGEST_LEN);
    }
    return err;
}

void tr__dev_wipe(void *buf, size_t len)
{
    if (buf != NULL && len > 0) {
        OPENSSL_cleanse(buf, len);
    }
}

trellis_err_t tr__dev_strlcpy(char *dst, size_t dst_size, const char *src)
{
    if (dst == NULL || dst_size == 0 || src == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    size_t n = strnlen(src, dst_size);
    if (n >= dst_size) {
        memset(dst, 0, dst_size);
        return TRELLIS_ERR_TOO_LARGE;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return TRELLIS_OK;
}
