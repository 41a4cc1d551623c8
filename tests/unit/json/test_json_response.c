#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "test_support.h"
#include "trellis/json.h"

/* Parses an error body back with plain jansson and checks both members. */
static void assert_error_body(const char *text, size_t len, const char *code, const char *detail)
{
    json_error_t jerr;
    json_t *body = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        fail_msg("error body does not parse: %s", jerr.text);
    assert_int_equal(json_object_size(body), 2);
    assert_string_equal(json_string_value(json_object_get(body, "error")), code);
    if (detail != NULL)
        assert_string_equal(json_string_value(json_object_get(body, "detail")), detail);
    json_decref(body);
}

static void test_error_body_codes(void **state)
{
    (void)state;
    static const struct {
        trellis_err_t err;
        const char *code;
    } cases[] = {
        {TRELLIS_ERR_PARSE, "bad_request"},
        {TRELLIS_ERR_TOO_LARGE, "too_large"},
        {TRELLIS_ERR_BAD_CHALLENGE, "bad_challenge"},
        {TRELLIS_ERR_REPLAYED, "replayed"},
        {TRELLIS_ERR_BAD_CSR, "bad_csr"},
        {TRELLIS_ERR_TOKEN_NONCE, "bad_evidence"},
        {TRELLIS_ERR_UNKNOWN_DEVICE, "unknown_device"},
        {TRELLIS_ERR_REVOKED, "revoked"},
        {TRELLIS_ERR_RATE_LIMITED, "rate_limited"},
        {TRELLIS_ERR_INTERNAL, "unavailable"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(
            trellis_json_error_body(cases[i].err, "member csr is missing", &text, &len),
            TRELLIS_OK);
        assert_int_equal(strlen(text), len);
        assert_error_body(text, len, cases[i].code, "member csr is missing");
        assert_string_equal(trellis_err_api_code(cases[i].err), cases[i].code);
        trellis_json_text_free(text);
    }
}

static void test_error_body_exact_text(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(
        trellis_json_error_body(TRELLIS_ERR_REPLAYED, "challenge \"x\" used", &text, &len),
        TRELLIS_OK);
    assert_string_equal(text, "{\"error\":\"replayed\",\"detail\":\"challenge \\\"x\\\" used\"}");
    trellis_json_text_free(text);
}

static void test_error_body_default_detail(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(trellis_json_error_body(TRELLIS_ERR_RATE_LIMITED, NULL, &text, &len),
                     TRELLIS_OK);
    assert_error_body(text, len, "rate_limited", "too many requests");
    trellis_json_text_free(text);
    assert_int_equal(trellis_json_error_body(TRELLIS_ERR_BAD_CSR, "", &text, NULL), TRELLIS_OK);
    assert_error_body(text, strlen(text), "bad_csr", "certificate signing request refused");
    trellis_json_text_free(text);
}

static void test_error_body_sanitises_detail(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    /* A lone continuation byte, a truncated sequence, an overlong '/', a surrogate, control
     * characters and a C1 control; valid multi-byte characters pass through. */
    static const char hostile[] = "a\x80"
                                  "b\xc3"
                                  "c\xc0\xaf"
                                  "d\xed\xa0\x80"
                                  "e\n\t\x1b\x7f"
                                  "f\xc2\x85"
                                  "g caf\xc3\xa9 \xf0\x9f\x98\x80";
    assert_int_equal(trellis_json_error_body(TRELLIS_ERR_PARSE, hostile, &text, &len), TRELLIS_OK);
    assert_error_body(text, len, "bad_request",
                      "a\xef\xbf\xbd"
                      "b\xef\xbf\xbd"
                      "c\xef\xbf\xbd\xef\xbf\xbd"
                      "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                      "e    "
                      "f "
                      "g caf\xc3\xa9 \xf0\x9f\x98\x80");
    trellis_json_text_free(text);
}

static void test_error_body_cuts_long_detail(void **state)
{
    (void)state;
    /* 400 two-byte characters: the cut must land between characters, at most 256 bytes. */
    static char detail[801];
    for (size_t i = 0; i < 400; i++)
        memcpy(detail + 2 * i, "\xc3\xa9", 2);
    detail[800] = '\0';
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(trellis_json_error_body(TRELLIS_ERR_PARSE, detail, &text, &len), TRELLIS_OK);
    json_t *body = json_loadb(text, len, 0, NULL);
    assert_non_null(body);
    const char *got = json_string_value(json_object_get(body, "detail"));
    assert_non_null(got);
    assert_int_equal(strlen(got), 256);
    assert_memory_equal(got, detail, 256);
    json_decref(body);
    trellis_json_text_free(text);
}

static void test_error_body_refuses_ok_and_null(void **state)
{
    (void)state;
    char *text = (char *)"sentinel";
    size_t len = 5;
    assert_int_equal(trellis_json_error_body(TRELLIS_OK, "fine", &text, &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_null(text);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_json_error_body(TRELLIS_ERR_PARSE, "x", NULL, &len),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_safe_text_directly(void **state)
{
    (void)state;
    char out[8];
    /* A four-byte character that does not fit is dropped whole. */
    assert_int_equal(tr__json_safe_text("abcd\xf0\x9f\x98\x80", 8, out, sizeof(out)), 4);
    assert_string_equal(out, "abcd");
    /* Above U+10FFFF and a truncated four-byte sequence at the end. */
    assert_int_equal(tr__json_safe_text("\xf4\x90\x80\x80", 4, out, sizeof(out)), 6);
    assert_int_equal(tr__json_safe_text("\xf0\x9f\x98", 3, out, sizeof(out)), 6);
    assert_int_equal(tr__json_safe_text("\xff", 1, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(tr__json_safe_text("", 0, out, sizeof(out)), 0);
}

static void test_dump_compact_in_order(void **state)
{
    (void)state;
    json_t *obj =
        json_pack("{s:s, s:i, s:[i,b]}", "challenge", "q83v", "expires_in", 60, "x", 1, 1);
    assert_non_null(obj);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(trellis_json_dump(obj, &text, &len), TRELLIS_OK);
    assert_string_equal(text, "{\"challenge\":\"q83v\",\"expires_in\":60,\"x\":[1,true]}");
    assert_int_equal(len, strlen(text));
    trellis_json_text_free(text);
    assert_int_equal(trellis_json_dump(obj, &text, NULL), TRELLIS_OK);
    trellis_json_text_free(text);
    json_decref(obj);
    trellis_json_text_free(NULL);
}

static void test_dump_limits(void **state)
{
    (void)state;
    char *big = malloc(TRELLIS_JSON_TEXT_MAX);
    assert_non_null(big);
    memset(big, 'a', TRELLIS_JSON_TEXT_MAX);
    json_t *obj = json_object();
    assert_int_equal(json_object_set_new(obj, "k", json_stringn(big, TRELLIS_JSON_TEXT_MAX)), 0);
    free(big);
    char *text = (char *)"sentinel";
    size_t len = 7;
    assert_int_equal(trellis_json_dump(obj, &text, &len), TRELLIS_ERR_TOO_LARGE);
    assert_null(text);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_json_dump(NULL, &text, &len), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_dump(obj, NULL, &len), TRELLIS_ERR_INVALID_ARG);
    json_decref(obj);
}

static void test_set_b64url_round_trip(void **state)
{
    (void)state;
    json_t *obj = json_object();
    uint8_t data[100];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (size_t n = 0; n <= sizeof(data); n += 33) {
        uint8_t back[100];
        size_t len = 0;
        assert_int_equal(trellis_json_set_b64url(obj, "v", data, n), TRELLIS_OK);
        assert_int_equal(trellis_json_get_b64url(obj, "v", back, sizeof(back), &len, NULL),
                         TRELLIS_OK);
        assert_int_equal(len, n);
        assert_memory_equal(back, data, n);
    }
    /* Three bytes of 0xfb 0xff 0xbf use both URL-safe characters and no padding. */
    static const uint8_t url[] = {0xfb, 0xff, 0xbf};
    assert_int_equal(trellis_json_set_b64url(obj, "u", url, sizeof(url)), TRELLIS_OK);
    assert_string_equal(json_string_value(json_object_get(obj, "u")), "-_-_");
    assert_int_equal(trellis_json_set_b64url(obj, "e", NULL, 0), TRELLIS_OK);
    assert_string_equal(json_string_value(json_object_get(obj, "e")), "");
    json_decref(obj);
}

static void test_set_b64url_refusals(void **state)
{
    (void)state;
    json_t *obj = json_object();
    json_t *arr = json_array();
    uint8_t byte = 1;
    assert_int_equal(trellis_json_set_b64url(arr, "v", &byte, 1), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_set_b64url(obj, NULL, &byte, 1), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_set_b64url(obj, "v", NULL, 1), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_set_b64url(obj, "\xff", &byte, 1), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_set_b64url(obj, "v", &byte, TRELLIS_JSON_B64_MAX + 1),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(json_object_size(obj), 0);
    json_decref(arr);
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_body_codes),
        cmocka_unit_test(test_error_body_exact_text),
        cmocka_unit_test(test_error_body_default_detail),
        cmocka_unit_test(test_error_body_sanitises_detail),
        cmocka_unit_test(test_error_body_cuts_long_detail),
        cmocka_unit_test(test_error_body_refuses_ok_and_null),
        cmocka_unit_test(test_safe_text_directly),
        cmocka_unit_test(test_dump_compact_in_order),
        cmocka_unit_test(test_dump_limits),
        cmocka_unit_test(test_set_b64url_round_trip),
        cmocka_unit_test(test_set_b64url_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
