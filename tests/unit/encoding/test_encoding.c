#include <stdint.h>
#include <string.h>

#include "test_support.h"
#include "trellis/encoding.h"

struct vector {
    const char *bytes; /* raw input, given as a C string */
    const char *b64url;
    const char *hex;
};

/* RFC 4648 §10, with base64url's missing padding and lowercase hex. */
static const struct vector rfc4648_vectors[] = {
    {"", "", ""},
    {"f", "Zg", "66"},
    {"fo", "Zm8", "666f"},
    {"foo", "Zm9v", "666f6f"},
    {"foob", "Zm9vYg", "666f6f62"},
    {"fooba", "Zm9vYmE", "666f6f6261"},
    {"foobar", "Zm9vYmFy", "666f6f626172"},
};

/* Bytes whose encoding uses the two characters where base64url differs from base64. */
struct bin_vector {
    uint8_t bytes[6];
    size_t len;
    const char *b64url;
};

static const struct bin_vector url_vectors[] = {
    {{0xfb, 0xff}, 2, "-_8"},
    {{0xff, 0xff, 0xff}, 3, "____"},
    {{0xfb, 0xef, 0xbe}, 3, "----"},
    {{0x00}, 1, "AA"},
    {{0x00, 0x01, 0x02, 0x03, 0x04, 0x05}, 6, "AAECAwQF"},
};

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Deterministic pseudo-random bytes (xorshift32), so a failure reproduces. */
static uint32_t rng_state = 0x2545f491u;
static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (uint8_t)(rng_state >> 24);
}

static trellis_err_t b64_decode_str(const char *s, uint8_t *out, size_t out_size, size_t *n)
{
    return trellis_b64url_decode(s, strlen(s), out, out_size, n);
}

static void test_b64url_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
        const struct vector *v = &rfc4648_vectors[i];
        char text[32];
        uint8_t raw[32];
        size_t n = 99;
        assert_int_equal(trellis_b64url_encode((const uint8_t *)v->bytes, strlen(v->bytes), text,
                                               sizeof(text), &n),
                         TRELLIS_OK);
        assert_string_equal(text, v->b64url);
        assert_int_equal(n, strlen(v->b64url));
        assert_int_equal(b64_decode_str(v->b64url, raw, sizeof(raw), &n), TRELLIS_OK);
        assert_int_equal(n, strlen(v->bytes));
        assert_memory_equal(raw, v->bytes, n);
    }
}

static void test_b64url_url_safe_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(url_vectors) / sizeof(url_vectors[0]); i++) {
        const struct bin_vector *v = &url_vectors[i];
        char text[16];
        uint8_t raw[16];
        size_t n = 0;
        assert_int_equal(trellis_b64url_encode(v->bytes, v->len, text, sizeof(text), &n),
                         TRELLIS_OK);
        assert_string_equal(text, v->b64url);
        assert_int_equal(b64_decode_str(v->b64url, raw, sizeof(raw), &n), TRELLIS_OK);
        assert_int_equal(n, v->len);
        assert_memory_equal(raw, v->bytes, v->len);
    }
}

/* Every one of the 256 byte values in every position of a group: accepted exactly when it is in
 * the alphabet, and then decoded to its index. */
static void test_b64url_every_byte_value(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        const char *pos = c == 0 ? NULL : strchr(alphabet, c);
        int expect = pos != NULL ? (int)(pos - alphabet) : -1;
        for (int at = 0; at < 4; at++) {
            char text[4] = {'A', 'A', 'A', 'A'};
            uint8_t raw[3] = {0xaa, 0xaa, 0xaa};
            size_t n = 7;
            text[at] = (char)c;
            trellis_err_t err = trellis_b64url_decode(text, 4, raw, sizeof(raw), &n);
            if (expect < 0) {
                assert_int_equal(err, TRELLIS_ERR_ENCODING);
                assert_int_equal(n, 0);
                assert_memory_equal(raw, "\0\0\0", 3);
                continue;
            }
            assert_int_equal(err, TRELLIS_OK);
            assert_int_equal(n, 3);
            uint32_t w = (uint32_t)raw[0] << 16 | (uint32_t)raw[1] << 8 | raw[2];
            assert_int_equal(w, (uint32_t)expect << (18 - 6 * at));
        }
    }
    /* And the encoder maps each 6-bit value to the same character. */
    for (unsigned v = 0; v < 64; v++) {
        uint8_t raw[3] = {(uint8_t)(v << 2), 0, 0};
        char text[5];
        size_t n = 0;
        assert_int_equal(trellis_b64url_encode(raw, 3, text, sizeof(text), &n), TRELLIS_OK);
        assert_int_equal(text[0], alphabet[v]);
    }
}

static void test_b64url_round_trip_lengths_0_to_300(void **state)
{
    (void)state;
    uint8_t in[300], back[300];
    char text[401];
    for (size_t len = 0; len <= 300; len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = rng_byte();
        size_t n = 0, m = 0;
        assert_int_equal(trellis_b64url_encode(in, len, text, sizeof(text), &n), TRELLIS_OK);
        assert_int_equal(n, trellis_b64url_encoded_len(len));
        assert_int_equal(strlen(text), n);
        assert_null(strpbrk(text, "=+/ \n"));
        assert_int_equal(trellis_b64url_decoded_max(n), len);
        assert_int_equal(trellis_b64url_decode(text, n, back, sizeof(back), &m), TRELLIS_OK);
        assert_int_equal(m, len);
        assert_memory_equal(back, in, len);
    }
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg==",       /* padding */
        "Zm8=",       /* padding */
        "Zg=",        /* padding making a bad length */
        "Zm9v\n",     /* trailing newline */
        " Zm9v",      /* leading space */
        "Zm 9v",      /* inner space */
        "Zm9v\tYg",   /* tab */
        "Zm9vYg\r",   /* carriage return */
        "+_8",        /* '+' of standard base64 */
        "-/8",        /* '/' of standard base64 */
        "Zm9vY",      /* length % 4 == 1 */
        "Z",          /* length % 4 == 1 */
        "Zh",         /* non-zero trailing bits (canonical is "Zg") */
        "Zm9",        /* non-zero trailing bits (canonical is "Zm8") */
        "Zm9vYh",     /* non-zero trailing bits after a full group */
        "Zm9vYmF=",   /* padding at the end of a full group */
        "Zm9vYm\x80", /* a byte above 0x7f */
        "Zm.v",       /* punctuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t raw[16];
        memset(raw, 0x5a, sizeof(raw));
        size_t n = 123;
        assert_int_equal(b64_decode_str(bad[i], raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
        assert_int_equal(n, 0);
        /* A bad length is refused before anything is written; otherwise whatever was decoded
         * before the bad character is wiped. */
        if (strlen(bad[i]) % 4 == 1)
            assert_int_equal(raw[0], 0x5a);
        for (size_t k = 0;
             strlen(bad[i]) % 4 != 1 && k < trellis_b64url_decoded_max(strlen(bad[i])); k++)
            assert_int_equal(raw[k], 0);
    }
    /* A NUL inside the counted length is a bad character, not an end. */
    uint8_t raw[8];
    size_t n = 0;
    assert_int_equal(trellis_b64url_decode("Zm\0v", 4, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
}

static void test_b64url_buffers_and_size_queries(void **state)
{
    (void)state;
    const uint8_t in[] = "foobar";
    char text[9];
    uint8_t raw[6];
    size_t n = 0;

    /* Encoder: the size needed counts the NUL. */
    assert_int_equal(trellis_b64url_encode(in, 6, NULL, 0, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 9);
    memset(text, 'x', sizeof(text));
    assert_int_equal(trellis_b64url_encode(in, 6, text, 8, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 9);
    assert_int_equal(text[0], '\0');
    assert_int_equal(trellis_b64url_encode(in, 6, text, 9, &n), TRELLIS_OK);
    assert_string_equal(text, "Zm9vYmFy");

    /* Decoder: the exact byte count. */
    assert_int_equal(trellis_b64url_decode("Zm9vYmE", 7, NULL, 0, &n),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 5);
    assert_int_equal(trellis_b64url_decode("Zm9vYmE", 7, raw, 4, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 5);
    assert_int_equal(trellis_b64url_decode("Zm9vYmE", 7, raw, 5, &n), TRELLIS_OK);
    assert_memory_equal(raw, "fooba", 5);

    /* Empty input, with or without a pointer. */
    assert_int_equal(trellis_b64url_encode(NULL, 0, text, sizeof(text), &n), TRELLIS_OK);
    assert_int_equal(n, 0);
    assert_string_equal(text, "");
    assert_int_equal(trellis_b64url_decode(NULL, 0, raw, sizeof(raw), &n), TRELLIS_OK);
    assert_int_equal(n, 0);
    /* Nothing to write needs no buffer. */
    assert_int_equal(trellis_b64url_decode("", 0, NULL, 0, &n), TRELLIS_OK);
    assert_int_equal(n, 0);

    /* Bad arguments. */
    assert_int_equal(trellis_b64url_encode(in, 6, text, sizeof(text), NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_b64url_encode(NULL, 3, text, sizeof(text), &n),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_b64url_decode(NULL, 4, raw, sizeof(raw), &n), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_b64url_decode("Zm9v", 4, raw, sizeof(raw), NULL),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_b64url_lengths(void **state)
{
    (void)state;
    assert_int_equal(trellis_b64url_encoded_len(0), 0);
    assert_int_equal(trellis_b64url_encoded_len(1), 2);
    assert_int_equal(trellis_b64url_encoded_len(2), 3);
    assert_int_equal(trellis_b64url_encoded_len(3), 4);
    assert_int_equal(trellis_b64url_encoded_len(32), 43);
    assert_int_equal(trellis_b64url_encoded_len(SIZE_MAX), SIZE_MAX);
    assert_int_equal(trellis_b64url_decoded_max(43), 32);
    assert_int_equal(trellis_b64url_decoded_max(4), 3);
    assert_int_equal(trellis_b64url_decoded_max(5), 3);
    /* An input too long to encode is refused before a byte of it is read. */
    size_t n = 1;
    char text[4];
    assert_int_equal(trellis_b64url_encode((const uint8_t *)"x", SIZE_MAX, text, sizeof(text), &n),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(n, 0);
}

static void test_hex_vectors_and_case(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648_vectors) / sizeof(rfc4648_vectors[0]); i++) {
        const struct vector *v = &rfc4648_vectors[i];
        char text[32];
        uint8_t raw[16];
        size_t n = 0;
        assert_int_equal(
            trellis_hex_encode((const uint8_t *)v->bytes, strlen(v->bytes), text, sizeof(text), &n),
            TRELLIS_OK);
        assert_string_equal(text, v->hex);
        assert_int_equal(n, strlen(v->hex));
        assert_int_equal(trellis_hex_decode(v->hex, strlen(v->hex), raw, sizeof(raw), &n),
                         TRELLIS_OK);
        assert_int_equal(n, strlen(v->bytes));
        assert_memory_equal(raw, v->bytes, n);
    }
    uint8_t raw[4];
    size_t n = 0;
    assert_int_equal(trellis_hex_decode("DeadBEEF", 8, raw, sizeof(raw), &n), TRELLIS_OK);
    assert_memory_equal(raw, "\xde\xad\xbe\xef", 4);
    char text[9];
    assert_int_equal(trellis_hex_encode(raw, 4, text, sizeof(text), &n), TRELLIS_OK);
    assert_string_equal(text, "deadbeef");
}

static void test_hex_every_byte_value(void **state)
{
    (void)state;
    static const char digits[] = "0123456789abcdef";
    for (int c = 0; c < 256; c++) {
        int expect = -1;
        if (c >= '0' && c <= '9')
            expect = c - '0';
        else if (c >= 'a' && c <= 'f')
            expect = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            expect = c - 'A' + 10;
        for (int at = 0; at < 2; at++) {
            char text[2] = {'0', '0'};
            uint8_t raw = 0x77;
            size_t n = 5;
            text[at] = (char)c;
            trellis_err_t err = trellis_hex_decode(text, 2, &raw, 1, &n);
            if (expect < 0) {
                assert_int_equal(err, TRELLIS_ERR_ENCODING);
                assert_int_equal(n, 0);
                assert_int_equal(raw, 0);
            } else {
                assert_int_equal(err, TRELLIS_OK);
                assert_int_equal(raw, at == 0 ? expect << 4 : expect);
            }
        }
    }
    for (unsigned v = 0; v < 256; v++) {
        uint8_t b = (uint8_t)v;
        char text[3];
        size_t n = 0;
        assert_int_equal(trellis_hex_encode(&b, 1, text, sizeof(text), &n), TRELLIS_OK);
        assert_int_equal(text[0], digits[v >> 4]);
        assert_int_equal(text[1], digits[v & 15]);
    }
}

static void test_hex_rejects_and_buffers(void **state)
{
    (void)state;
    uint8_t raw[8];
    char text[8];
    size_t n = 9;
    assert_int_equal(trellis_hex_decode("abc", 3, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
    assert_int_equal(n, 0);
    assert_int_equal(trellis_hex_decode("0g", 2, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
    assert_int_equal(trellis_hex_decode("00 1", 4, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
    assert_int_equal(trellis_hex_decode("0x01", 4, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);
    assert_int_equal(trellis_hex_decode("ab\0d", 4, raw, sizeof(raw), &n), TRELLIS_ERR_ENCODING);

    assert_int_equal(trellis_hex_decode("abcd", 4, NULL, 0, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 2);
    assert_int_equal(trellis_hex_decode("abcd", 4, raw, 1, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 2);
    assert_int_equal(trellis_hex_encode((const uint8_t *)"ab", 2, NULL, 0, &n),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 5);
    assert_int_equal(trellis_hex_encode((const uint8_t *)"ab", 2, text, 4, &n),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 5);
    assert_int_equal(trellis_hex_encode((const uint8_t *)"ab", 2, text, 5, &n), TRELLIS_OK);
    assert_string_equal(text, "6162");

    assert_int_equal(trellis_hex_encode(NULL, 0, text, sizeof(text), &n), TRELLIS_OK);
    assert_string_equal(text, "");
    assert_int_equal(trellis_hex_decode(NULL, 0, raw, sizeof(raw), &n), TRELLIS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(trellis_hex_decode("", 0, NULL, 0, &n), TRELLIS_OK);
    assert_int_equal(trellis_hex_encode(NULL, 1, text, sizeof(text), &n), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_hex_decode("ab", 2, raw, sizeof(raw), NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_hex_encode((const uint8_t *)"x", SIZE_MAX, text, sizeof(text), &n),
                     TRELLIS_ERR_TOO_LARGE);
}

static void test_hex_round_trip(void **state)
{
    (void)state;
    uint8_t in[300], back[300];
    char text[601];
    for (size_t len = 0; len <= 300; len += 7) {
        for (size_t i = 0; i < len; i++)
            in[i] = rng_byte();
        size_t n = 0, m = 0;
        assert_int_equal(trellis_hex_encode(in, len, text, sizeof(text), &n), TRELLIS_OK);
        assert_int_equal(n, 2 * len);
        assert_int_equal(trellis_hex_decode(text, n, back, sizeof(back), &m), TRELLIS_OK);
        assert_int_equal(m, len);
        assert_memory_equal(back, in, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url_rfc4648_vectors),
        cmocka_unit_test(test_b64url_url_safe_vectors),
        cmocka_unit_test(test_b64url_every_byte_value),
        cmocka_unit_test(test_b64url_round_trip_lengths_0_to_300),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_b64url_buffers_and_size_queries),
        cmocka_unit_test(test_b64url_lengths),
        cmocka_unit_test(test_hex_vectors_and_case),
        cmocka_unit_test(test_hex_every_byte_value),
        cmocka_unit_test(test_hex_rejects_and_buffers),
        cmocka_unit_test(test_hex_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
