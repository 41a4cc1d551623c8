/*
 * Hex: lowercase out, either case in. Like b64url.c, characters are mapped by arithmetic so
 * the time taken does not depend on the bytes, which may be key material.
 */
#include <stdint.h>
#include <string.h>

#include "trellis/encoding.h"

/* -1 when lo <= c <= hi, 0 otherwise, for 0 <= c <= 255 (see b64url.c). */
#define IN_RANGE_MASK(c, lo, hi) (((((lo)-1) - (c)) & ((c) - ((hi) + 1))) >> 8)

static char hex_char(unsigned int nibble)
{
    int n = (int)(nibble & 15);
    return (char)(n + '0' + (((9 - n) >> 8) & ('a' - '0' - 10)));
}

/* The value of a hex digit of either case, or -1. */
static int hex_value(unsigned char ch)
{
    int c = ch;
    int v = -1;
    v += IN_RANGE_MASK(c, '0', '9') & (c - '0' + 1);
    v += IN_RANGE_MASK(c, 'a', 'f') & (c - 'a' + 11);
    v += IN_RANGE_MASK(c, 'A', 'F') & (c - 'A' + 11);
    return v;
}

trellis_err_t trellis_hex_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                 size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t o = 0;

    if (out_len != NULL)
        *out_len = 0;
    if (out != NULL && out_size > 0)
        out[0] = '\0';
    if (out_len == NULL || (in == NULL && in_len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (in_len > (SIZE_MAX - 1) / 2) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    if (out == NULL || out_size < in_len * 2 + 1) {
        *out_len = in_len * 2 + 1;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    for (size_t i = 0; i < in_len; i++) {
        out[o++] = hex_char(in[i] >> 4);
        out[o++] = hex_char(in[i]);
    }
    out[o] = '\0';
    *out_len = o;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                 size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t o = 0;
    int bad = 0; /* negative once any character is not a hex digit */

    if (out_len != NULL)
        *out_len = 0;
    if (out_len == NULL || (in == NULL && in_len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (in_len % 2 != 0) {
        err = TRELLIS_ERR_ENCODING;
        goto out;
    }
    if ((out == NULL && in_len > 0) || out_size < in_len / 2) {
        *out_len = in_len / 2;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    for (size_t i = 0; i < in_len; i += 2) {
        int hi = hex_value((unsigned char)in[i]);
        int lo = hex_value((unsigned char)in[i + 1]);
        bad |= hi | lo;
        out[o++] = (uint8_t)((unsigned int)hi << 4 | (unsigned int)(lo & 15));
    }
    if (bad < 0) {
        memset(out, 0, o);
        err = TRELLIS_ERR_ENCODING;
        goto out;
    }
    *out_len = o;
    err = TRELLIS_OK;
out:
    return err;
}
