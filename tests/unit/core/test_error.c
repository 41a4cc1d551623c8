#include <string.h>

#include "test_support.h"
#include "trellis/error.h"

static void test_every_code_has_name_message_and_api_code(void **state)
{
    (void)state;
    static const char *const api_codes[] = {
        "ok",           "bad_request",    "too_large", "bad_challenge", "replayed",    "bad_csr",
        "bad_evidence", "unknown_device", "revoked",   "rate_limited",  "unavailable",
    };
#define CHECK_ROW(name, num, msg, code, status)                                                    \
    do {                                                                                           \
        assert_string_equal(trellis_err_name(TRELLIS_ERR_##name), #name);                          \
        assert_string_equal(trellis_err_message(TRELLIS_ERR_##name), msg);                         \
        int found = 0;                                                                             \
        for (size_t i = 0; i < sizeof(api_codes) / sizeof(api_codes[0]); i++)                      \
            found |= strcmp(api_codes[i], trellis_err_api_code(TRELLIS_ERR_##name)) == 0;          \
        assert_true(found);                                                                        \
        assert_int_equal(trellis_err_http_status(TRELLIS_ERR_##name), status);                     \
    } while (0);
    TRELLIS_ERROR_LIST(CHECK_ROW)
#undef CHECK_ROW
}

static void test_numbers_are_stable(void **state)
{
    (void)state;
    assert_int_equal(TRELLIS_OK, 0);
    assert_int_equal(TRELLIS_ERR_TOKEN_ALG, 17);
    assert_int_equal(TRELLIS_ERR_REPLAYED, 27);
    assert_string_equal(trellis_err_api_code(TRELLIS_ERR_REPLAYED), "replayed");
    assert_int_equal(trellis_err_http_status(TRELLIS_ERR_UNAVAILABLE), 503);
}

static void test_unknown_value(void **state)
{
    (void)state;
    assert_string_equal(trellis_err_name((trellis_err_t)9999), "UNKNOWN");
    assert_string_equal(trellis_err_message((trellis_err_t)9999), "unknown error");
    assert_int_equal(trellis_err_http_status((trellis_err_t)-1), 500);
}

static void test_reason_truncates_and_accepts_null(void **state)
{
    (void)state;
    trellis_reason_t r;
    char big[512];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(trellis_reason_set(&r, TRELLIS_ERR_PARSE, "%s", big), TRELLIS_ERR_PARSE);
    assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
    assert_int_equal(trellis_reason_set(NULL, TRELLIS_ERR_IO, "x"), TRELLIS_ERR_IO);
    trellis_reason_clear(&r);
    assert_string_equal(r.text, "");
    trellis_reason_clear(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_has_name_message_and_api_code),
        cmocka_unit_test(test_numbers_are_stable),
        cmocka_unit_test(test_unknown_value),
        cmocka_unit_test(test_reason_truncates_and_accepts_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
