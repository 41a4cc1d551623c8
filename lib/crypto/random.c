#include <limits.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "crypto_internal.h"

int trellis_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    if (len == 0)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    /* CRYPTO_memcmp reads every byte whatever differs, so timing does not leak where. */
    return CRYPTO_memcmp(a, b, len) == 0;
}

trellis_err_t trellis_random(uint8_t *buf, size_t len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t done = 0;

    if (buf == NULL && len > 0) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* RAND_bytes takes an int length, so a huge request is served in pieces. */
    while (done < len) {
        size_t n = len - done;
        if (n > INT_MAX)
            n = INT_MAX;
        if (RAND_bytes(buf + done, (int)n) != 1) {
            err = TRELLIS_ERR_CRYPTO;
            goto out;
        }
        done += n;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && buf != NULL)
        memset(buf, 0, len);
    return tr__crypto_fail(err);
}
