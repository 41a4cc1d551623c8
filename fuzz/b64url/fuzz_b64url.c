/*
 * Decodes arbitrary input as base64url and as hex, and checks each decoder against a plain
 * table-driven reference (the real decoders are branch-free arithmetic, easy to get subtly
 * wrong), that a rejection leaves nothing behind, and the round trips both ways:
 * encode(decode(x)) == x for accepted text (the decoder accepts only canonical text) and
 * decode(encode(b)) == b for the input taken as bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/encoding.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RFC 4648 §5 the slow way: 0 and the bytes in out (room for size * 3 / 4 + 2), or -1. */
static int reference_b64url(const uint8_t *in, size_t size, uint8_t *out, size_t *out_len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (size % 4 == 1)
        return -1;
    for (size_t i = 0; i < size; i++) {
        const char *p = in[i] != 0 ? strchr(b64url_alphabet, in[i]) : NULL;
        if (p == NULL)
            return -1;
        acc = acc << 6 | (uint32_t)(p - b64url_alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero */
        return -1;
    *out_len = o;
    return 0;
}

static int reference_hex(const uint8_t *in, size_t size, uint8_t *out, size_t *out_len)
{
    static const char digits[] = "0123456789abcdef0123456789ABCDEF";
    if (size % 2 != 0)
        return -1;
    for (size_t i = 0; i < size; i += 2) {
        const char *hi = in[i] != 0 ? strchr(digits, in[i]) : NULL;
        const char *lo = in[i + 1] != 0 ? strchr(digits, in[i + 1]) : NULL;
        if (hi == NULL || lo == NULL)
            return -1;
        out[i / 2] = (uint8_t)(((hi - digits) & 15) << 4 | ((lo - digits) & 15));
    }
    *out_len = size / 2;
    return 0;
}

static void check_b64url(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t need = 0, n = 99, ref_len = 0;
    uint8_t *out = malloc(size + 1);
    uint8_t *ref = malloc(size + 3);
    CHECK(out != NULL && ref != NULL);

    trellis_err_t q = trellis_b64url_decode(text, size, NULL, 0, &need);
    CHECK(size % 4 == 1 ? q == TRELLIS_ERR_ENCODING
                        : (q == TRELLIS_ERR_BUFFER_TOO_SMALL || (q == TRELLIS_OK && need == 0)));
    CHECK(need <= size);

    memset(out, 0xa5, size + 1);
    trellis_err_t err = trellis_b64url_decode(text, size, out, size + 1, &n);
    int ref_ok = reference_b64url(data, size, ref, &ref_len) == 0;
    CHECK((err == TRELLIS_OK) == ref_ok);
    if (err != TRELLIS_OK) {
        CHECK(err == TRELLIS_ERR_ENCODING && n == 0);
        for (size_t i = 0; i < need; i++)
            CHECK(out[i] == 0);
        goto done;
    }
    CHECK(n == need && n == ref_len && memcmp(out, ref, n) == 0);

    /* Canonical text only: re-encoding gives back the very same characters. */
    char *again = malloc(size + 1);
    CHECK(again != NULL);
    size_t m = 0;
    CHECK(trellis_b64url_encode(out, n, again, size + 1, &m) == TRELLIS_OK);
    CHECK(m == size && memcmp(again, text, size) == 0 && again[m] == '\0');
    free(again);
done:
    free(ref);
    free(out);
}

static void check_hex(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t n = 99, ref_len = 0;
    uint8_t *out = malloc(size / 2 + 1);
    uint8_t *ref = malloc(size / 2 + 1);
    CHECK(out != NULL && ref != NULL);
    memset(out, 0xa5, size / 2 + 1);
    trellis_err_t err = trellis_hex_decode(text, size, out, size / 2 + 1, &n);
    int ref_ok = reference_hex(data, size, ref, &ref_len) == 0;
    CHECK((err == TRELLIS_OK) == ref_ok);
    if (err != TRELLIS_OK) {
        CHECK(err == TRELLIS_ERR_ENCODING && n == 0);
        if (size % 2 == 0)
            for (size_t i = 0; i < size / 2; i++)
                CHECK(out[i] == 0);
    } else {
        CHECK(n == ref_len && memcmp(out, ref, n) == 0);
        char *again = malloc(size + 1);
        CHECK(again != NULL);
        size_t m = 0;
        CHECK(trellis_hex_encode(out, n, again, size + 1, &m) == TRELLIS_OK && m == size);
        for (size_t i = 0; i < size; i++) {
            char c = (char)data[i];
            CHECK(again[i] == (c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c));
        }
        free(again);
    }
    free(ref);
    free(out);
}

/* The input as bytes: encode, check the alphabet, decode back. */
static void check_round_trips(const uint8_t *data, size_t size)
{
    size_t need = 0, n = 0, m = 0;
    CHECK(trellis_b64url_encode(data, size, NULL, 0, &need) == TRELLIS_ERR_BUFFER_TOO_SMALL);
    CHECK(need == trellis_b64url_encoded_len(size) + 1);
    char *text = malloc(need);
    uint8_t *back = malloc(size + 1);
    CHECK(text != NULL && back != NULL);
    CHECK(trellis_b64url_encode(data, size, text, need, &n) == TRELLIS_OK && n + 1 == need);
    CHECK(strspn(text, b64url_alphabet) == n);
    CHECK(trellis_b64url_decode(text, n, back, size + 1, &m) == TRELLIS_OK);
    CHECK(m == size && (size == 0 || memcmp(back, data, size) == 0));
    free(text);

    text = malloc(2 * size + 1);
    CHECK(text != NULL);
    CHECK(trellis_hex_encode(data, size, text, 2 * size + 1, &n) == TRELLIS_OK && n == 2 * size);
    CHECK(strspn(text, "0123456789abcdef") == n);
    CHECK(trellis_hex_decode(text, n, back, size + 1, &m) == TRELLIS_OK);
    CHECK(m == size && (size == 0 || memcmp(back, data, size) == 0));
    free(text);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_b64url(data, size);
    check_hex(data, size);
    check_round_trips(data, size);
    return 0;
}
