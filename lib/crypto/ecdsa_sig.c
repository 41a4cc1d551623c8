#include <string.h>

#include "crypto_internal.h"

/*
 * ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }     (RFC 3279 §2.2.3)
 *
 * In DER (X.690 §8.3, §10.1) each INTEGER is two's complement, big-endian, in the fewest octets:
 * a leading 0x00 only when the next octet has its high bit set. With r and s below a 256-bit
 * order an INTEGER holds at most 33 octets, the SEQUENCE content at most 70, so every length is
 * in short form and the whole value is at most 72 octets.
 */

#define DER_TAG_SEQUENCE 0x30
#define DER_TAG_INTEGER  0x02

/* Reads one INTEGER at p (avail octets left) into out, right-aligned; *used gets its size. */
static trellis_err_t read_integer(const uint8_t *p, size_t avail, size_t *used,
                                  uint8_t out[static TR__P256_SCALAR_LEN])
{
    trellis_err_t err = TRELLIS_ERR_BAD_SIGNATURE;
    const uint8_t *value = NULL;
    size_t len = 0;

    *used = 0;
    if (avail < 2 || p[0] != DER_TAG_INTEGER)
        goto out;
    len = p[1];
    /* Long form is never minimal here, and an INTEGER has at least one content octet. */
    if ((len & 0x80) != 0 || len == 0 || len > avail - 2)
        goto out;
    value = p + 2;
    if ((value[0] & 0x80) != 0) /* negative */
        goto out;
    if (value[0] == 0x00 && len > 1) {
        if ((value[1] & 0x80) == 0) /* superfluous leading zero */
            goto out;
        value++;
        len--;
    }
    if (len > TR__P256_SCALAR_LEN)
        goto out;
    memset(out, 0, TR__P256_SCALAR_LEN);
    memcpy(out + TR__P256_SCALAR_LEN - len, value, len);
    if (!tr__p256_scalar_in_range(out))
        goto out;
    *used = 2 + (size_t)p[1];
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
                                       uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN])
{
    trellis_err_t err = TRELLIS_ERR_BAD_SIGNATURE;
    size_t pos = 2;
    size_t used = 0;

    memset(raw, 0, TRELLIS_P256_SIG_RAW_LEN);
    if (der == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* Smallest: 30 06 02 01 r 02 01 s. */
    if (der_len < 8 || der_len > TRELLIS_P256_SIG_DER_MAX)
        goto out;
    if (der[0] != DER_TAG_SEQUENCE || (der[1] & 0x80) != 0 || der[1] != der_len - 2)
        goto out;
    err = read_integer(der + pos, der_len - pos, &used, raw);
    if (err != TRELLIS_OK)
        goto out;
    pos += used;
    err = read_integer(der + pos, der_len - pos, &used, raw + TR__P256_SCALAR_LEN);
    if (err != TRELLIS_OK)
        goto out;
    pos += used;
    /* Both INTEGERs must fill the SEQUENCE exactly. */
    err = pos == der_len ? TRELLIS_OK : TRELLIS_ERR_BAD_SIGNATURE;
out:
    if (err != TRELLIS_OK)
        memset(raw, 0, TRELLIS_P256_SIG_RAW_LEN);
    return err;
}

/* Size of the minimal INTEGER content for a 32-byte non-zero big-endian value. */
static size_t integer_content_len(const uint8_t v[static TR__P256_SCALAR_LEN])
{
    size_t skip = 0;
    while (skip < TR__P256_SCALAR_LEN - 1 && v[skip] == 0)
        skip++;
    return TR__P256_SCALAR_LEN - skip + ((v[skip] & 0x80) != 0 ? 1 : 0);
}

static size_t write_integer(const uint8_t v[static TR__P256_SCALAR_LEN], uint8_t *out)
{
    size_t content = integer_content_len(v);
    size_t i = 0;
    out[i++] = DER_TAG_INTEGER;
    out[i++] = (uint8_t)content;
    if (content > TR__P256_SCALAR_LEN) {
        out[i++] = 0x00;
        content = TR__P256_SCALAR_LEN;
    }
    memcpy(out + i, v + TR__P256_SCALAR_LEN - content, content);
    return i + content;
}

trellis_err_t trellis_ecdsa_raw_to_der(const uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN],
                                       uint8_t *der, size_t der_size, size_t *der_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const uint8_t *r = raw;
    const uint8_t *s = raw + TR__P256_SCALAR_LEN;
    size_t content = 0;
    size_t pos = 0;

    if (der_len == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    *der_len = 0;
    if (!tr__p256_scalar_in_range(r) || !tr__p256_scalar_in_range(s)) {
        err = TRELLIS_ERR_BAD_SIGNATURE;
        goto out;
    }
    content = 2 + integer_content_len(r) + 2 + integer_content_len(s);
    if (der == NULL || der_size < 2 + content) {
        *der_len = 2 + content;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    der[pos++] = DER_TAG_SEQUENCE;
    der[pos++] = (uint8_t)content;
    pos += write_integer(r, der + pos);
    pos += write_integer(s, der + pos);
    *der_len = pos;
    err = TRELLIS_OK;
out:
    return err;
}
