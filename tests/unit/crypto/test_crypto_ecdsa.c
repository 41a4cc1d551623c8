#include <string.h>

#include <openssl/crypto.h>

#include "crypto_fixture.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"

/* The P-256 group order n. */
static const char order_hex[] = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

/*
 * RFC 6979 A.2.5: ECDSA, 256 bits (prime field), with SHA-256. The public key and the
 * deterministic signatures of the messages "sample" and "test".
 */
static const char rfc6979_ux[] = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";
static const char rfc6979_uy[] = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
static const struct {
    const char *message;
    const char *r_hex;
    const char *s_hex;
    const char *der_hex;
} rfc6979[] = {
    {"sample", "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
     "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
     /* Both high bits set: each INTEGER needs a 0x00 in front, 72 bytes in all. */
     "3046022100efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
     "022100f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"},
    {"test", "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
     "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083",
     "3045022100f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
     "0220019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"},
};

static size_t unhex(const char *hex, uint8_t *out, size_t out_size)
{
    size_t len = 0;
    assert_int_equal(trellis_hex_decode(hex, strlen(hex), out, out_size, &len), TRELLIS_OK);
    return len;
}

static void raw_from_hex(const char *r_hex, const char *s_hex, uint8_t raw[64])
{
    assert_int_equal(unhex(r_hex, raw, 32), 32);
    assert_int_equal(unhex(s_hex, raw + 32, 32), 32);
}

static EVP_PKEY *rfc6979_key(void)
{
    uint8_t point[TRELLIS_P256_POINT_LEN];
    point[0] = 0x04;
    assert_int_equal(unhex(rfc6979_ux, point + 1, 32), 32);
    assert_int_equal(unhex(rfc6979_uy, point + 33, 32), 32);
    EVP_PKEY *key = NULL;
    assert_int_equal(trellis_p256_from_point(point, &key), TRELLIS_OK);
    return key;
}

static void test_der_known_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc6979) / sizeof(rfc6979[0]); i++) {
        uint8_t raw[64];
        uint8_t der[TRELLIS_P256_SIG_DER_MAX];
        uint8_t want_der[TRELLIS_P256_SIG_DER_MAX];
        size_t want_len = unhex(rfc6979[i].der_hex, want_der, sizeof(want_der));
        size_t der_len = 0;
        uint8_t got_raw[64];

        raw_from_hex(rfc6979[i].r_hex, rfc6979[i].s_hex, raw);
        assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len), TRELLIS_OK);
        assert_int_equal(der_len, want_len);
        assert_memory_equal(der, want_der, want_len);
        assert_int_equal(trellis_ecdsa_der_to_raw(want_der, want_len, got_raw), TRELLIS_OK);
        assert_memory_equal(got_raw, raw, 64);
    }
}

static void test_der_small_values(void **state)
{
    (void)state;
    /* r = 1, s = 0x80: the smallest encoding and a one-byte value that needs a pad. */
    uint8_t raw[64] = {0};
    raw[31] = 0x01;
    raw[63] = 0x80;
    static const uint8_t want[] = {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80};
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len = 0;
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len), TRELLIS_OK);
    assert_int_equal(der_len, sizeof(want));
    assert_memory_equal(der, want, sizeof(want));
    uint8_t back[64];
    assert_int_equal(trellis_ecdsa_der_to_raw(der, der_len, back), TRELLIS_OK);
    assert_memory_equal(back, raw, 64);
}

static void test_raw_to_der_size_query(void **state)
{
    (void)state;
    uint8_t raw[64];
    raw_from_hex(rfc6979[0].r_hex, rfc6979[0].s_hex, raw);
    size_t need = 0;
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, NULL, 0, &need), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, TRELLIS_P256_SIG_DER_MAX);
    uint8_t small[71];
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, small, sizeof(small), &need),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, 72);
    uint8_t der[72];
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), NULL),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_raw_to_der_refuses_out_of_range(void **state)
{
    (void)state;
    uint8_t raw[64];
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len = 99;

    raw_from_hex(rfc6979[0].r_hex, rfc6979[0].s_hex, raw);
    memset(raw, 0, 32); /* r = 0 */
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len),
                     TRELLIS_ERR_BAD_SIGNATURE);
    assert_int_equal(der_len, 0);
    raw_from_hex(rfc6979[0].r_hex, order_hex, raw); /* s = n */
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len),
                     TRELLIS_ERR_BAD_SIGNATURE);
    memset(raw + 32, 0xff, 32); /* s > n */
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len),
                     TRELLIS_ERR_BAD_SIGNATURE);
}

/* Each malformed DER signature, and why it must be refused. */
static const struct {
    const char *why;
    const char *hex;
} bad_der[] = {
    {"empty", ""},
    {"truncated", "30060201010201"},
    {"SET instead of SEQUENCE", "3106020101020101"},
    {"long-form outer length", "308106020101020101"},
    {"outer length too long", "3007020101020101"},
    {"outer length too short", "3005020101020101"},
    {"trailing byte after the SEQUENCE", "300602010102010100"},
    {"trailing byte inside the SEQUENCE", "300702010102010100"},
    {"BIT STRING instead of INTEGER", "3006030101020101"},
    {"second tag wrong", "3006020101040101"},
    {"zero-length INTEGER", "3006020002020101"},
    {"long-form INTEGER length", "300702810101020101"},
    {"INTEGER overruns the SEQUENCE", "3006020101020201"},
    {"superfluous leading zero", "300702020001020101"},
    {"r negative", "3006020180020101"},
    {"s negative", "30060201010201ff"},
    {"r zero", "3006020100020101"},
    {"s zero", "3006020101020100"},
    {"r equal to the order",
     "3026022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"
     "020101"},
    {"s equal to the order",
     "3026020101022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"},
    {"s one above the order",
     "3026020101022100ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632552"},
    {"r of 33 bytes without pad",
     "3026022101ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc6325"
     "51020101"},
    {"r 32 bytes with high bit and no pad (negative)",
     "30250220efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716020101"},
    {"longer than 72 bytes",
     "3047022100efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
     "022200"
     "00f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"},
};

static void test_der_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_der) / sizeof(bad_der[0]); i++) {
        uint8_t der[128];
        size_t len = strlen(bad_der[i].hex) == 0 ? 0 : unhex(bad_der[i].hex, der, sizeof(der));
        uint8_t raw[64];
        memset(raw, 0xaa, sizeof(raw));
        print_message("refusing: %s\n", bad_der[i].why);
        assert_int_equal(trellis_ecdsa_der_to_raw(der, len, raw), TRELLIS_ERR_BAD_SIGNATURE);
        uint8_t zero[64] = {0};
        assert_memory_equal(raw, zero, 64);
    }
    uint8_t raw[64];
    assert_int_equal(trellis_ecdsa_der_to_raw(NULL, 8, raw), TRELLIS_ERR_INVALID_ARG);
}

static void test_der_accepts_largest_in_range(void **state)
{
    (void)state;
    /* r = s = n - 1: the largest valid values, 72 bytes of DER. */
    static const char n_minus_1[] =
        "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632550";
    uint8_t raw[64];
    raw_from_hex(n_minus_1, n_minus_1, raw);
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len = 0;
    assert_int_equal(trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len), TRELLIS_OK);
    assert_int_equal(der_len, 72);
    uint8_t back[64];
    assert_int_equal(trellis_ecdsa_der_to_raw(der, der_len, back), TRELLIS_OK);
    assert_memory_equal(back, raw, 64);
}

static void test_rfc6979_signatures_verify(void **state)
{
    (void)state;
    EVP_PKEY *key = rfc6979_key();
    for (size_t i = 0; i < sizeof(rfc6979) / sizeof(rfc6979[0]); i++) {
        uint8_t digest[TRELLIS_SHA256_LEN];
        uint8_t raw[64];
        assert_int_equal(
            trellis_sha256((const uint8_t *)rfc6979[i].message, strlen(rfc6979[i].message), digest),
            TRELLIS_OK);
        raw_from_hex(rfc6979[i].r_hex, rfc6979[i].s_hex, raw);
        assert_int_equal(trellis_p256_verify_digest(key, digest, raw), TRELLIS_OK);
        /* The other message's signature does not verify this digest. */
        raw_from_hex(rfc6979[1 - i].r_hex, rfc6979[1 - i].s_hex, raw);
        assert_int_equal(trellis_p256_verify_digest(key, digest, raw), TRELLIS_ERR_BAD_SIGNATURE);
    }
    EVP_PKEY_free(key);
}

static void test_sign_verify_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
    uint8_t digest[TRELLIS_SHA256_LEN];
    assert_int_equal(trellis_sha256((const uint8_t *)"enroll", 6, digest), TRELLIS_OK);

    for (int round = 0; round < 16; round++) {
        uint8_t sig[64];
        assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_OK);
        assert_int_equal(trellis_p256_verify_digest(key, digest, sig), TRELLIS_OK);
        assert_int_equal(trellis_p256_verify_digest(other, digest, sig), TRELLIS_ERR_BAD_SIGNATURE);
        /* raw -> DER -> raw is the identity on real signatures. */
        uint8_t der[TRELLIS_P256_SIG_DER_MAX];
        size_t der_len = 0;
        uint8_t back[64];
        assert_int_equal(trellis_ecdsa_raw_to_der(sig, der, sizeof(der), &der_len), TRELLIS_OK);
        assert_int_equal(trellis_ecdsa_der_to_raw(der, der_len, back), TRELLIS_OK);
        assert_memory_equal(back, sig, 64);
    }
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
}

static void test_verify_fails_on_flipped_bits(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    uint8_t digest[TRELLIS_SHA256_LEN];
    uint8_t sig[64];
    assert_int_equal(trellis_sha256((const uint8_t *)"x", 1, digest), TRELLIS_OK);
    assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_OK);

    for (size_t bit = 0; bit < 8 * sizeof(digest); bit += 37) {
        digest[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(trellis_p256_verify_digest(key, digest, sig), TRELLIS_ERR_BAD_SIGNATURE);
        digest[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* Low bits only, so the flipped values stay in range and reach the real verification. */
    for (size_t byte = 1; byte < sizeof(sig); byte += 7) {
        sig[byte] ^= 0x01;
        assert_int_equal(trellis_p256_verify_digest(key, digest, sig), TRELLIS_ERR_BAD_SIGNATURE);
        sig[byte] ^= 0x01;
    }
    assert_int_equal(trellis_p256_verify_digest(key, digest, sig), TRELLIS_OK);
    EVP_PKEY_free(key);
}

static void test_verify_refuses_out_of_range(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    uint8_t digest[TRELLIS_SHA256_LEN] = {1};
    uint8_t sig[64];
    assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_OK);

    uint8_t bad[64];
    memcpy(bad, sig, 64);
    memset(bad, 0, 32); /* r = 0 */
    assert_int_equal(trellis_p256_verify_digest(key, digest, bad), TRELLIS_ERR_BAD_SIGNATURE);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0, 32); /* s = 0 */
    assert_int_equal(trellis_p256_verify_digest(key, digest, bad), TRELLIS_ERR_BAD_SIGNATURE);
    memcpy(bad, sig, 64);
    assert_int_equal(unhex(order_hex, bad, 32), 32); /* r = n */
    assert_int_equal(trellis_p256_verify_digest(key, digest, bad), TRELLIS_ERR_BAD_SIGNATURE);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0xff, 32); /* s = 2^256 - 1 */
    assert_int_equal(trellis_p256_verify_digest(key, digest, bad), TRELLIS_ERR_BAD_SIGNATURE);
    EVP_PKEY_free(key);
}

static void test_sign_needs_private_key(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *pub = NULL;
    uint8_t point[TRELLIS_P256_POINT_LEN];
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    uint8_t digest[TRELLIS_SHA256_LEN] = {2};
    uint8_t sig[64];
    assert_int_equal(trellis_p256_sign_digest(pub, digest, sig), TRELLIS_ERR_CRYPTO);
    uint8_t zero[64] = {0};
    assert_memory_equal(sig, zero, 64);
    /* A public key made from the point verifies what the private key signs. */
    assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_OK);
    assert_int_equal(trellis_p256_verify_digest(pub, digest, sig), TRELLIS_OK);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
}

static void test_sign_verify_refuse_other_keys(void **state)
{
    (void)state;
    static const char *const kinds[] = {"rsa", "p384", "secp256k1", "explicit-p256", "ed25519"};
    uint8_t digest[TRELLIS_SHA256_LEN] = {3};
    uint8_t sig[64];
    memset(sig, 0x11, sizeof(sig));
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        EVP_PKEY *key = fixture_key(kinds[i]);
        print_message("refusing %s\n", kinds[i]);
        assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_ERR_BAD_KEY);
        assert_int_equal(trellis_p256_verify_digest(key, digest, sig), TRELLIS_ERR_BAD_KEY);
        EVP_PKEY_free(key);
    }
    assert_int_equal(trellis_p256_sign_digest(NULL, digest, sig), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_verify_digest(NULL, digest, sig), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_der_known_vectors),
        cmocka_unit_test(test_der_small_values),
        cmocka_unit_test(test_raw_to_der_size_query),
        cmocka_unit_test(test_raw_to_der_refuses_out_of_range),
        cmocka_unit_test(test_der_rejections),
        cmocka_unit_test(test_der_accepts_largest_in_range),
        cmocka_unit_test(test_rfc6979_signatures_verify),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_verify_fails_on_flipped_bits),
        cmocka_unit_test(test_verify_refuses_out_of_range),
        cmocka_unit_test(test_sign_needs_private_key),
        cmocka_unit_test(test_sign_verify_refuse_other_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
