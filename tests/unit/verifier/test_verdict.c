#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/verifier.h"

static EVP_PKEY *g_key, *g_other;
static char g_kid[TRELLIS_JWK_KID_LEN + 1];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(trellis_p256_generate(&g_key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&g_other), TRELLIS_OK);
    assert_int_equal(trellis_verdict_kid(g_key, g_kid), TRELLIS_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_key);
    EVP_PKEY_free(g_other);
    return 0;
}

static trellis_verdict_t sample(trellis_verdict_status_t status)
{
    trellis_verdict_t v;
    memset(&v, 0, sizeof(v));
    snprintf(v.iss, sizeof(v.iss), "verifier-1");
    snprintf(v.oem, sizeof(v.oem), "acme");
    snprintf(v.device_id, sizeof(v.device_id), "0123456789abcdef0123456789abcdef");
    v.iat = 1700000000;
    v.exp = v.iat + TRELLIS_VERDICT_TTL_S;
    memset(v.csr_sha256, 0xab, 32);
    memset(v.nonce, 0xcd, 32);
    v.nonce_len = 32;
    v.status = status;
    if (status == TRELLIS_VERDICT_CONTRAINDICATED) {
        snprintf(v.reasons[0], sizeof(v.reasons[0]), TRELLIS_VREASON_REVOKED);
        snprintf(v.reasons[1], sizeof(v.reasons[1]), TRELLIS_VREASON_NONCE_MISMATCH);
        v.n_reasons = 2;
    }
    return v;
}

static void sign(const trellis_verdict_t *v, char *jws, size_t size, size_t *len)
{
    assert_int_equal(trellis_verdict_sign(v, g_key, g_kid, jws, size, len), TRELLIS_OK);
    assert_int_equal(strlen(jws), *len);
}

/* Decodes one base64url part of a JWS into a JSON object. */
static json_t *part_json(const char *start, size_t len)
{
    uint8_t buf[2048];
    size_t n = 0;
    assert_int_equal(trellis_b64url_decode(start, len, buf, sizeof(buf), &n), TRELLIS_OK);
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    return j;
}

static void test_roundtrip(void **state)
{
    (void)state;
    char jws[TRELLIS_VERDICT_JWS_MAX + 1];
    size_t len = 0;
    trellis_verdict_t out;
    trellis_reason_t why;

    for (int s = TRELLIS_VERDICT_AFFIRMING; s <= TRELLIS_VERDICT_CONTRAINDICATED; s++) {
        trellis_verdict_t v = sample((trellis_verdict_status_t)s);
        sign(&v, jws, sizeof(jws), &len);
        assert_int_equal(trellis_verdict_verify(jws, len, g_key, v.iat + 10, &out, &why),
                         TRELLIS_OK);
        assert_string_equal(out.iss, v.iss);
        assert_string_equal(out.oem, v.oem);
        assert_string_equal(out.device_id, v.device_id);
        assert_int_equal(out.iat, v.iat);
        assert_int_equal(out.exp, v.exp);
        assert_memory_equal(out.csr_sha256, v.csr_sha256, 32);
        assert_int_equal(out.nonce_len, 32);
        assert_memory_equal(out.nonce, v.nonce, 32);
        assert_int_equal(out.status, v.status);
        assert_int_equal(out.n_reasons, v.n_reasons);
        for (size_t i = 0; i < v.n_reasons; i++)
            assert_string_equal(out.reasons[i], v.reasons[i]);
    }
}

static void test_shape_is_ear(void **state)
{
    (void)state;
    char jws[TRELLIS_VERDICT_JWS_MAX + 1];
    size_t len = 0;
    trellis_verdict_t v = sample(TRELLIS_VERDICT_CONTRAINDICATED);
    sign(&v, jws, sizeof(jws), &len);
    const char *dot1 = strchr(jws, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    assert_null(strchr(dot2 + 1, '.'));
    /* The signature is raw r||s: 64 bytes, 86 base64url characters. */
    assert_int_equal(strlen(dot2 + 1), 86);

    json_t *h = part_json(jws, (size_t)(dot1 - jws));
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), g_kid);
    json_decref(h);

    json_t *p = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_string_equal(json_string_value(json_object_get(p, "eat_profile")),
                        "tag:github.com,2023:veraison/ear");
    assert_string_equal(json_string_value(json_object_get(p, "status")), "contraindicated");
    json_t *sub = json_object_get(json_object_get(p, "submods"), "device");
    assert_string_equal(json_string_value(json_object_get(sub, "ear.status")), "contraindicated");
    assert_non_null(json_object_get(json_object_get(p, "ear.verifier-id"), "developer"));
    assert_int_equal(json_array_size(json_object_get(p, "reasons")), 2);
    assert_string_equal(json_string_value(json_object_get(p, "csr_sha256")),
                        "abababababababababababababababababababababababababababababababab");
    json_decref(p);
}

static void test_kid_and_jwk(void **state)
{
    (void)state;
    char jwk[512], canon[256], x[64], y[64], want[TRELLIS_JWK_KID_LEN + 1];
    uint8_t point[65], digest[32];
    size_t len = 0, n = 0;
    EVP_PKEY *back = NULL;

    /* RFC 7638 §3: SHA-256 over the required members in lexicographic order. */
    assert_int_equal(trellis_p256_public_point(g_key, point), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(point + 1, 32, x, sizeof(x), &n), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(point + 33, 32, y, sizeof(y), &n), TRELLIS_OK);
    snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             x, y);
    assert_int_equal(trellis_sha256((const uint8_t *)canon, strlen(canon), digest), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(digest, 32, want, sizeof(want), &n), TRELLIS_OK);
    assert_string_equal(g_kid, want);

    assert_int_equal(trellis_verdict_jwk(g_key, jwk, sizeof(jwk), &len), TRELLIS_OK);
    assert_int_equal(strlen(jwk), len);
    assert_int_equal(trellis_p256_from_jwk(jwk, len, &back, NULL), TRELLIS_OK);
    assert_int_equal(EVP_PKEY_eq(back, g_key), 1);
    EVP_PKEY_free(back);
    assert_int_equal(trellis_verdict_jwk(g_key, jwk, 10, &len), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(trellis_verdict_jwk(g_key, NULL, 0, &len), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(len > 100);
}

static void expect_verify(const char *jws, size_t len, EVP_PKEY *key, int64_t now,
                          trellis_err_t want, const char *needle)
{
    trellis_verdict_t out;
    trellis_reason_t why;
    trellis_err_t err = trellis_verdict_verify(jws, len, key, now, &out, &why);
    if (err != want)
        fail_msg("want %d got %d (%s)", (int)want, (int)err, why.text);
    if (needle != NULL && strstr(why.text, needle) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why.text, needle);
    if (want != TRELLIS_OK)
        assert_string_equal(out.device_id, "");
}

static void test_verify_refusals(void **state)
{
    (void)state;
    char jws[TRELLIS_VERDICT_JWS_MAX + 1], bad[TRELLIS_VERDICT_JWS_MAX * 2];
    size_t len = 0;
    trellis_verdict_t v = sample(TRELLIS_VERDICT_AFFIRMING);
    sign(&v, jws, sizeof(jws), &len);

    expect_verify(jws, len, g_other, v.iat, TRELLIS_ERR_BAD_SIGNATURE, "verdict key");
    expect_verify(jws, len, g_key, v.exp + 1, TRELLIS_ERR_TIMEOUT, "expired");
    expect_verify(jws, len, g_key, v.iat - 61, TRELLIS_ERR_TIMEOUT, "not yet valid");
    expect_verify(jws, len, g_key, v.iat - 59, TRELLIS_OK, NULL);

    /* A flipped payload byte breaks the signature. */
    memcpy(bad, jws, len + 1);
    char *dot1 = strchr(bad, '.');
    dot1[5] = dot1[5] == 'A' ? 'B' : 'A';
    trellis_verdict_t out;
    assert_int_not_equal(trellis_verdict_verify(bad, len, g_key, v.iat, &out, NULL), TRELLIS_OK);

    /* Two parts, four parts, an empty signature. */
    memcpy(bad, jws, len + 1);
    *strrchr(bad, '.') = '\0';
    expect_verify(bad, strlen(bad), g_key, v.iat, TRELLIS_ERR_PARSE, "three parts");
    snprintf(bad, sizeof(bad), "%s.x", jws);
    expect_verify(bad, strlen(bad), g_key, v.iat, TRELLIS_ERR_PARSE, "three parts");
    memcpy(bad, jws, len + 1);
    strrchr(bad, '.')[1] = '\0';
    expect_verify(bad, strlen(bad), g_key, v.iat, TRELLIS_ERR_PARSE, "base64url");

    /* alg "none" with the rest intact: refused whatever the signature (RFC 8725 §3.1). */
    char hdr[64];
    size_t n = 0;
    const char *none = "{\"alg\":\"none\"}";
    assert_int_equal(
        trellis_b64url_encode((const uint8_t *)none, strlen(none), hdr, sizeof(hdr), &n),
        TRELLIS_OK);
    snprintf(bad, sizeof(bad), "%s%s", hdr, strchr(jws, '.'));
    expect_verify(bad, strlen(bad), g_key, v.iat, TRELLIS_ERR_PARSE, "not ES256");

    /* Too long to be a verdict. */
    memset(bad, 'A', sizeof(bad));
    expect_verify(bad, TRELLIS_VERDICT_JWS_MAX + 1, g_key, v.iat, TRELLIS_ERR_PARSE, "longer");
    assert_int_equal(trellis_verdict_verify(NULL, 0, g_key, 0, &out, NULL),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_sign_refuses_bad_input(void **state)
{
    (void)state;
    char jws[TRELLIS_VERDICT_JWS_MAX + 1];
    size_t len = 7;
    trellis_verdict_t v = sample(TRELLIS_VERDICT_AFFIRMING);

    snprintf(v.oem, sizeof(v.oem), "ac\"me");
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(len, 0);
    v = sample(TRELLIS_VERDICT_AFFIRMING);
    snprintf(v.reasons[0], sizeof(v.reasons[0]), "revoked");
    v.n_reasons = 1; /* affirming with a reason */
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    v = sample(TRELLIS_VERDICT_CONTRAINDICATED);
    snprintf(v.reasons[1], sizeof(v.reasons[1]), "Bad\"Code");
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    v = sample(TRELLIS_VERDICT_AFFIRMING);
    v.nonce_len = 31;
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    v = sample(TRELLIS_VERDICT_AFFIRMING);
    v.status = (trellis_verdict_status_t)0;
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    v = sample(TRELLIS_VERDICT_AFFIRMING);
    assert_int_equal(trellis_verdict_sign(&v, g_key, "short", jws, sizeof(jws), &len),
                     TRELLIS_ERR_INVALID_ARG);
    /* Too small an output says how much is needed. */
    assert_int_equal(trellis_verdict_sign(&v, g_key, g_kid, jws, 16, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(len > 16 && len < TRELLIS_VERDICT_JWS_MAX);
    assert_string_equal(trellis_verdict_status_name((trellis_verdict_status_t)9), "invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_shape_is_ear),
        cmocka_unit_test(test_kid_and_jwk),
        cmocka_unit_test(test_verify_refusals),
        cmocka_unit_test(test_sign_refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
