#include <stdio.h>
#include <string.h>

#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"

/* RFC 7517 appendix A.1: the example EC public key. */
static const char rfc7517_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
                                  "\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
                                  "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\","
                                  "\"use\":\"enc\",\"kid\":\"1\"}";
static const char rfc7517_x[] = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
static const char rfc7517_y[] = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";

static trellis_err_t from_text(const char *text, EVP_PKEY **key, trellis_reason_t *reason)
{
    return trellis_p256_from_jwk(text, strlen(text), key, reason);
}

static void test_rfc7517_example(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    trellis_reason_t reason;
    assert_int_equal(from_text(rfc7517_jwk, &key, &reason), TRELLIS_OK);
    assert_string_equal(reason.text, "");
    uint8_t point[TRELLIS_P256_POINT_LEN];
    uint8_t want[TRELLIS_P256_POINT_LEN];
    size_t len = 0;
    want[0] = 0x04;
    assert_int_equal(trellis_b64url_decode(rfc7517_x, strlen(rfc7517_x), want + 1, 32, &len),
                     TRELLIS_OK);
    assert_int_equal(trellis_b64url_decode(rfc7517_y, strlen(rfc7517_y), want + 33, 32, &len),
                     TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    assert_memory_equal(point, want, sizeof(point));
    EVP_PKEY_free(key);
}

static void test_generated_key_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *imported = NULL;
    uint8_t point[TRELLIS_P256_POINT_LEN];
    uint8_t again[TRELLIS_P256_POINT_LEN];
    char x[64];
    char y[64];
    size_t len = 0;
    char jwk[256];
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(point + 1, 32, x, sizeof(x), &len), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(point + 33, 32, y, sizeof(y), &len), TRELLIS_OK);
    /* Member order does not matter; whitespace is allowed. */
    int n = snprintf(jwk, sizeof(jwk),
                     "{ \"y\": \"%s\", \"x\": \"%s\", \"crv\": \"P-256\", \"kty\": \"EC\", "
                     "\"alg\": \"ES256\" }",
                     y, x);
    assert_true(n > 0 && (size_t)n < sizeof(jwk));
    assert_int_equal(trellis_p256_from_jwk(jwk, (size_t)n, &imported, NULL), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(imported, again), TRELLIS_OK);
    assert_memory_equal(point, again, sizeof(point));
    EVP_PKEY_free(imported);
    EVP_PKEY_free(key);
}

/* Each JWK that must be refused, with its error and a fragment of the reason. */
static const struct {
    const char *jwk;
    trellis_err_t err;
    const char *reason;
} bad_jwks[] = {
    {"not json", TRELLIS_ERR_PARSE, "not valid JSON"},
    {"", TRELLIS_ERR_PARSE, "not valid JSON"},
    {"[1,2]", TRELLIS_ERR_PARSE, "not a JSON object"},
    {"{\"kty\":\"EC\"} trailing", TRELLIS_ERR_PARSE, "not valid JSON"},
    {"{\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_PARSE, "member kty is missing"},
    {"{\"kty\":7,\"crv\":\"P-256\"}", TRELLIS_ERR_PARSE, "member kty is not a string"},
    {"{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", TRELLIS_ERR_BAD_KEY, "kty is not \"EC\""},
    {"{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_BAD_KEY, "crv is not \"P-256\""},
    {"{\"kty\":\"EC\",\"crv\":\"secp256k1\"}", TRELLIS_ERR_BAD_KEY, "crv is not \"P-256\""},
    {"{\"kty\":\"EC\",\"kty\":\"EC\",\"crv\":\"P-256\"}", TRELLIS_ERR_PARSE, "not valid JSON"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_PARSE, "member x is missing"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\"}",
     TRELLIS_ERR_PARSE, "member y is missing"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":null,"
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_PARSE, "member x is not a string"},
    /* 31 bytes (42 characters) and 33 bytes (44 characters). */
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7A\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_BAD_KEY, "member x has 42 characters"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyMAA\"}",
     TRELLIS_ERR_BAD_KEY, "member y has 45 characters"},
    /* Standard base64 alphabet, padding, and a non-canonical last character. */
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D/\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_ENCODING, "member x is not valid base64url"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFy=\"}",
     TRELLIS_ERR_ENCODING, "member y is not valid base64url"},
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D5\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}",
     TRELLIS_ERR_ENCODING, "member x is not valid base64url"},
    /* y changed in its last byte: no longer on the curve. */
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyQ\"}",
     TRELLIS_ERR_BAD_KEY, "not on the curve"},
    /* A private key is refused, not silently used as a public one. */
    {"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
     "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\","
     "\"d\":\"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE\"}",
     TRELLIS_ERR_BAD_KEY, "member d"},
};

static void test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_jwks) / sizeof(bad_jwks[0]); i++) {
        EVP_PKEY *key = NULL;
        trellis_reason_t reason;
        print_message("refusing %s\n", bad_jwks[i].jwk);
        assert_int_equal(from_text(bad_jwks[i].jwk, &key, &reason), bad_jwks[i].err);
        assert_null(key);
        if (strstr(reason.text, bad_jwks[i].reason) == NULL)
            fail_msg("reason \"%s\" lacks \"%s\"", reason.text, bad_jwks[i].reason);
        /* The secret member's value never appears in the reason. */
        assert_null(strstr(reason.text, "870MB6"));
    }
}

static void test_too_large_and_null(void **state)
{
    (void)state;
    static char big[TRELLIS_JWK_MAX + 2];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    EVP_PKEY *key = NULL;
    trellis_reason_t reason;
    assert_int_equal(trellis_p256_from_jwk(big, sizeof(big) - 1, &key, &reason),
                     TRELLIS_ERR_TOO_LARGE);
    assert_null(key);
    assert_int_equal(trellis_p256_from_jwk(NULL, 2, &key, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_from_jwk("{}", 2, NULL, &reason), TRELLIS_ERR_INVALID_ARG);
    /* A length that stops before the closing brace is taken at its word. */
    assert_int_equal(trellis_p256_from_jwk(rfc7517_jwk, sizeof(rfc7517_jwk) - 2, &key, NULL),
                     TRELLIS_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7517_example),
        cmocka_unit_test(test_generated_key_round_trip),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_too_large_and_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
