/*
 * base64url without padding (RFC 4648 §5) with a strict decoder.
 *
 * Characters are mapped by arithmetic on the byte, not by indexing a table with it, and the
 * decoder inspects every character before it reports, so the time taken does not depend on the
 * value of a secret being encoded or decoded (the approach of wireguard-tools' encoding.c).
 */
#include <stdint.h>
#include <string.h>

#include "trellis/encoding.h"

/*
 * Yields -1 (all bits set) when lo <= c <= hi and 0 otherwise, for 0 <= c <= 255: both
 * differences are negative only inside the range, and their AND then stays within [-256, -1].
 */
#define IN_RANGE_MASK(c, lo, hi) (((((lo)-1) - (c)) & ((c) - ((hi) + 1))) >> 8)

/* Maps a 6-bit value to its character of the URL- and filename-safe alphabet (RFC 4648 §5,
 * Table 2): 0..25 'A'..'Z', 26..51 'a'..'z', 52..61 '0'..'9', 62 '-', 63 '_'. */
static char b64url_char(unsigned int value)
{
    int x = (int)(value & 63);
    int c = x + 'A';
    c += ((25 - x) >> 8) & 6;   /* from 26: 'a' - 'A' - 26 */
    c += ((51 - x) >> 8) & -75; /* from 52: '0' - 'a' - 26 */
    c += ((61 - x) >> 8) & -13; /* 62: '-' - ('0' + 10) */
    c += ((62 - x) >> 8) & 49;  /* 63: '_' - ('-' + 1) */
    return (char)c;
}

/* The 6-bit value of a character of the alphabet, or -1 for any other byte ('=', '+', '/',
 * whitespace, NUL, ...). */
static int b64url_value(unsigned char ch)
{
    int c = ch;
    int v = -1;
    v += IN_RANGE_MASK(c, 'A', 'Z') & (c - 'A' + 1);
    v += IN_RANGE_MASK(c, 'a', 'z') & (c - 'a' + 27);
    v += IN_RANGE_MASK(c, '0', '9') & (c - '0' + 53);
    v += IN_RANGE_MASK(c, '-', '-') & 63;
    v += IN_RANGE_MASK(c, '_', '_') & 64;
    return v;
}

size_t trellis_b64url_encoded_len(size_t n)
{
    /* SIZE_MAX stands for "does not fit"; a real encoding is always shorter. */
    if (n / 3 > (SIZE_MAX - 4) / 4)
        return SIZE_MAX;
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t trellis_b64url_decoded_max(size_t n)
{
    /* A final group of 2 or 3 characters carries 1 or 2 bytes; one of 1 character is invalid. */
    return n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0);
}

trellis_err_t trellis_b64url_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                    size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t enc_len = 0;
    size_t o = 0;
    size_t i = 0;

    if (out_len != NULL)
        *out_len = 0;
    if (out != NULL && out_size > 0)
        out[0] = '\0';
    if (out_len == NULL || (in == NULL && in_len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    enc_len = trellis_b64url_encoded_len(in_len);
    if (enc_len == SIZE_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    if (out == NULL || out_size < enc_len + 1) {
        *out_len = enc_len + 1;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }

    /* RFC 4648 §4: each 24-bit group becomes four 6-bit indexes, most significant first. */
    for (; in_len - i >= 3; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_char(w >> 18);
        out[o++] = b64url_char(w >> 12);
        out[o++] = b64url_char(w >> 6);
        out[o++] = b64url_char(w);
    }
    /* §3.2 without the '=' padding: 8 bits make 2 characters, 16 bits make 3, the unused low
     * bits of the last character being zero. */
    if (in_len - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        out[o++] = b64url_char(w >> 18);
        out[o++] = b64url_char(w >> 12);
    } else if (in_len - i == 2) {
        uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_char(w >> 18);
        out[o++] = b64url_char(w >> 12);
        out[o++] = b64url_char(w >> 6);
    }
    out[o] = '\0';
    *out_len = o;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                    size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t need = 0;
    size_t o = 0;
    size_t i = 0;
    int bad = 0; /* negative once any character is invalid */

    if (out_len != NULL)
        *out_len = 0;
    if (out_len == NULL || (in == NULL && in_len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* A single character left over carries only 6 bits: no byte can end there. */
    if (in_len % 4 == 1) {
        err = TRELLIS_ERR_ENCODING;
        goto out;
    }
    need = trellis_b64url_decoded_max(in_len);
    if ((out == NULL && need > 0) || out_size < need) {
        *out_len = need;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }

    for (; in_len - i >= 4; i += 4) {
        int a = b64url_value((unsigned char)in[i]);
        int b = b64url_value((unsigned char)in[i + 1]);
        int c = b64url_value((unsigned char)in[i + 2]);
        int d = b64url_value((unsigned char)in[i + 3]);
        bad |= a | b | c | d;
        uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(w >> 16);
        out[o++] = (uint8_t)(w >> 8);
        out[o++] = (uint8_t)w;
    }
    /* RFC 4648 §3.5: the pad bits of the last character must be zero, or two texts would decode
     * to the same bytes and a signature over the text could be replayed with a twin. */
    if (in_len - i == 2) {
        int a = b64url_value((unsigned char)in[i]);
        int b = b64url_value((unsigned char)in[i + 1]);
        bad |= a | b | -((b & 0x0f) != 0);
        out[o++] = (uint8_t)((uint32_t)a << 2 | (uint32_t)b >> 4);
    } else if (in_len - i == 3) {
        int a = b64url_value((unsigned char)in[i]);
        int b = b64url_value((unsigned char)in[i + 1]);
        int c = b64url_value((unsigned char)in[i + 2]);
        bad |= a | b | c | -((c & 0x03) != 0);
        out[o++] = (uint8_t)((uint32_t)a << 2 | (uint32_t)b >> 4);
        out[o++] = (uint8_t)((uint32_t)b << 4 | (uint32_t)c >> 2);
    }
    if (bad < 0) {
        /* Fail closed: nothing of a rejected input stays in the caller's buffer. */
        memset(out, 0, o);
        err = TRELLIS_ERR_ENCODING;
        goto out;
    }
    *out_len = o;
    err = TRELLIS_OK;
out:
    return err;
}
