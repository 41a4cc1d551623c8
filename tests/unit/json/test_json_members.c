#include <string.h>

#include "test_support.h"
#include "trellis/json.h"

static json_t *load(const char *text)
{
    json_t *obj = NULL;
    trellis_reason_t reason;
    if (trellis_json_parse_object(text, strlen(text), 65536, &obj, &reason) != TRELLIS_OK)
        fail_msg("fixture does not parse: %s", reason.text);
    return obj;
}

static void assert_reason(const trellis_reason_t *reason, const char *want)
{
    if (strcmp(reason->text, want) != 0)
        fail_msg("reason \"%s\", expected \"%s\"", reason->text, want);
}

static void test_get_string(void **state)
{
    (void)state;
    json_t *obj = load("{\"name\":\"caf\xc3\xa9\",\"n\":3,\"z\":null,\"e\":\"\"}");
    const char *s = NULL;
    size_t len = 99;
    trellis_reason_t reason;

    assert_int_equal(trellis_json_get_string(obj, "name", 16, &s, &len, &reason), TRELLIS_OK);
    assert_string_equal(s, "caf\xc3\xa9");
    assert_int_equal(len, 5);
    assert_int_equal(trellis_json_get_string(obj, "e", 0, &s, NULL, &reason), TRELLIS_OK);
    assert_string_equal(s, "");
    /* The limit counts bytes, not characters. */
    assert_int_equal(trellis_json_get_string(obj, "name", 5, &s, &len, &reason), TRELLIS_OK);
    assert_int_equal(trellis_json_get_string(obj, "name", 4, &s, &len, &reason),
                     TRELLIS_ERR_TOO_LARGE);
    assert_reason(&reason, "member name is longer than 4 bytes");
    assert_null(s);
    assert_int_equal(len, 0);

    assert_int_equal(trellis_json_get_string(obj, "absent", 16, &s, &len, &reason),
                     TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member absent is missing");
    assert_int_equal(trellis_json_get_string(obj, "n", 16, &s, &len, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member n is not a string");
    assert_int_equal(trellis_json_get_string(obj, "z", 16, &s, &len, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member z is not a string");
    json_decref(obj);
}

static void test_get_string_opt(void **state)
{
    (void)state;
    json_t *obj = load("{\"name\":\"x\",\"n\":3}");
    const char *s = "sentinel";
    size_t len = 99;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_get_string_opt(obj, "absent", 16, &s, &len, &reason), TRELLIS_OK);
    assert_null(s);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_json_get_string_opt(obj, "name", 16, &s, &len, &reason), TRELLIS_OK);
    assert_string_equal(s, "x");
    /* Present but wrong is still wrong. */
    assert_int_equal(trellis_json_get_string_opt(obj, "n", 16, &s, &len, &reason),
                     TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member n is not a string");
    json_decref(obj);
}

static void test_string_with_nul_built_in_code(void **state)
{
    (void)state;
    json_t *obj = json_object();
    assert_int_equal(json_object_set_new(obj, "k", json_stringn("a\0b", 3)), 0);
    const char *s = NULL;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_get_string(obj, "k", 16, &s, NULL, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member k contains a NUL character");
    json_decref(obj);
}

static void test_get_b64url(void **state)
{
    (void)state;
    /* "AQID" is 01 02 03; "AQIDBA" is 01 02 03 04. */
    json_t *obj = load("{\"csr\":\"AQIDBA\",\"empty\":\"\",\"num\":5,\"std\":\"AQ+/\","
                       "\"pad\":\"AQ==\",\"short\":\"AQIDB\",\"noncanon\":\"AR\","
                       "\"space\":\"AQ ID\",\"null\":null}");
    uint8_t buf[8];
    size_t len = 99;
    trellis_reason_t reason;
    static const uint8_t want[] = {1, 2, 3, 4};

    assert_int_equal(trellis_json_get_b64url(obj, "csr", buf, sizeof(buf), &len, &reason),
                     TRELLIS_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, want, 4);
    /* Exactly the buffer size fits. */
    assert_int_equal(trellis_json_get_b64url(obj, "csr", buf, 4, &len, &reason), TRELLIS_OK);
    assert_int_equal(len, 4);
    assert_int_equal(trellis_json_get_b64url(obj, "empty", buf, sizeof(buf), &len, &reason),
                     TRELLIS_OK);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_json_get_b64url(obj, "empty", NULL, 0, &len, &reason), TRELLIS_OK);

    struct {
        const char *key;
        size_t size;
        trellis_err_t err;
        const char *reason;
    } bad[] = {
        {"absent", sizeof(buf), TRELLIS_ERR_PARSE, "member absent is missing"},
        {"num", sizeof(buf), TRELLIS_ERR_PARSE, "member num is not a string"},
        {"null", sizeof(buf), TRELLIS_ERR_PARSE, "member null is not a string"},
        {"std", sizeof(buf), TRELLIS_ERR_ENCODING, "member std is not valid base64url"},
        {"pad", sizeof(buf), TRELLIS_ERR_ENCODING, "member pad is not valid base64url"},
        {"short", sizeof(buf), TRELLIS_ERR_ENCODING, "member short is not valid base64url"},
        {"noncanon", sizeof(buf), TRELLIS_ERR_ENCODING, "member noncanon is not valid base64url"},
        {"space", sizeof(buf), TRELLIS_ERR_ENCODING, "member space is not valid base64url"},
        {"csr", 3, TRELLIS_ERR_TOO_LARGE, "member csr decodes to more than 3 bytes"},
        {"csr", 0, TRELLIS_ERR_TOO_LARGE, "member csr decodes to more than 0 bytes"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(buf, 0xaa, sizeof(buf));
        len = 99;
        print_message("refusing %s in %zu bytes\n", bad[i].key, bad[i].size);
        assert_int_equal(trellis_json_get_b64url(obj, bad[i].key, buf, bad[i].size, &len, &reason),
                         bad[i].err);
        assert_reason(&reason, bad[i].reason);
        assert_int_equal(len, 0);
        /* The part of the buffer that was offered is wiped. */
        for (size_t j = 0; j < bad[i].size; j++)
            assert_int_equal(buf[j], 0);
    }
    assert_int_equal(trellis_json_get_b64url(obj, "csr", NULL, 4, &len, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_get_b64url(obj, "csr", buf, 4, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    json_decref(obj);
}

static void test_get_b64url_too_long_before_decoding(void **state)
{
    (void)state;
    /* 20,000 characters that are not even base64url: the length alone refuses them. */
    static char body[20100];
    memcpy(body, "{\"csr\":\"", 8);
    memset(body + 8, '!', 20000);
    memcpy(body + 20008, "\"}", 3);
    json_t *obj = load(body);
    uint8_t buf[4096];
    size_t len = 0;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_get_b64url(obj, "csr", buf, sizeof(buf), &len, &reason),
                     TRELLIS_ERR_TOO_LARGE);
    assert_reason(&reason, "member csr decodes to more than 4096 bytes");
    json_decref(obj);
}

static void test_get_int(void **state)
{
    (void)state;
    json_t *obj = load("{\"seq\":42,\"neg\":-7,\"real\":1.0,\"exp\":1e3,\"str\":\"5\","
                       "\"big\":9223372036854775807,\"t\":true}");
    long long v = 99;
    trellis_reason_t reason;

    assert_int_equal(trellis_json_get_int(obj, "seq", 0, 100, &v, &reason), TRELLIS_OK);
    assert_int_equal(v, 42);
    /* Bounds are inclusive. */
    assert_int_equal(trellis_json_get_int(obj, "seq", 42, 42, &v, &reason), TRELLIS_OK);
    assert_int_equal(trellis_json_get_int(obj, "neg", -7, 0, &v, &reason), TRELLIS_OK);
    assert_int_equal(v, -7);
    assert_int_equal(trellis_json_get_int(obj, "big", 0, 9223372036854775807LL, &v, &reason),
                     TRELLIS_OK);
    assert_int_equal(v, 9223372036854775807LL);

    assert_int_equal(trellis_json_get_int(obj, "seq", 0, 41, &v, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member seq is 42, outside [0, 41]");
    assert_int_equal(v, 0);
    assert_int_equal(trellis_json_get_int(obj, "neg", 0, 10, &v, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member neg is -7, outside [0, 10]");
    assert_int_equal(trellis_json_get_int(obj, "real", 0, 10, &v, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member real is not an integer");
    assert_int_equal(trellis_json_get_int(obj, "exp", 0, 10000, &v, &reason), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_json_get_int(obj, "str", 0, 10, &v, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member str is not an integer");
    assert_int_equal(trellis_json_get_int(obj, "t", 0, 10, &v, &reason), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_json_get_int(obj, "absent", 0, 10, &v, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member absent is missing");
    assert_int_equal(trellis_json_get_int(obj, "seq", 0, 100, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    json_decref(obj);
}

static void test_get_int_opt(void **state)
{
    (void)state;
    json_t *obj = load("{\"seq\":42,\"real\":2.5}");
    long long v = 0;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_get_int_opt(obj, "absent", 1, 10, 5, &v, &reason), TRELLIS_OK);
    assert_int_equal(v, 5);
    assert_int_equal(trellis_json_get_int_opt(obj, "seq", 1, 100, 5, &v, &reason), TRELLIS_OK);
    assert_int_equal(v, 42);
    assert_int_equal(trellis_json_get_int_opt(obj, "seq", 1, 10, 5, &v, &reason),
                     TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_json_get_int_opt(obj, "real", 1, 10, 5, &v, &reason),
                     TRELLIS_ERR_PARSE);
    assert_reason(&reason, "member real is not an integer");
    json_decref(obj);
}

static void test_not_an_object(void **state)
{
    (void)state;
    json_t *arr = json_array();
    const char *s = NULL;
    long long v = 0;
    uint8_t buf[4];
    size_t len = 0;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_get_string(arr, "k", 4, &s, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_get_string(NULL, "k", 4, &s, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_get_int(arr, "k", 0, 1, &v, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_get_b64url(arr, "k", buf, sizeof(buf), &len, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    json_t *obj = json_object();
    assert_int_equal(trellis_json_get_string(obj, NULL, 4, &s, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_get_string(obj, "k", 4, NULL, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    json_decref(obj);
    json_decref(arr);
}

static void test_reject_unknown(void **state)
{
    (void)state;
    static const char *const allowed[] = {"csr", "evidence"};
    trellis_reason_t reason;
    json_t *obj = load("{\"csr\":\"A\",\"evidence\":\"B\"}");
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 2, &reason), TRELLIS_OK);
    json_decref(obj);

    obj = load("{}");
    assert_int_equal(trellis_json_reject_unknown(obj, NULL, 0, &reason), TRELLIS_OK);
    json_decref(obj);

    obj = load("{\"csr\":\"A\",\"admin\":true}");
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 2, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "unknown member \"admin\"");
    /* A prefix of an allowed name is not that name. */
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 1, &reason), TRELLIS_ERR_PARSE);
    json_decref(obj);

    obj = load("{\"cs\":1}");
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 2, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "unknown member \"cs\"");
    json_decref(obj);

    /* Hostile names reach the reason only as short printable ASCII. */
    obj = load("{\"a\\n\\\"b\\u00e9\":1}");
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 2, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "unknown member \"a??b??\"");
    json_decref(obj);
    obj = load("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":1}");
    assert_int_equal(trellis_json_reject_unknown(obj, allowed, 2, &reason), TRELLIS_ERR_PARSE);
    assert_reason(&reason, "unknown member \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
    assert_int_equal(trellis_json_reject_unknown(obj, NULL, 2, &reason), TRELLIS_ERR_INVALID_ARG);
    json_decref(obj);
    assert_int_equal(trellis_json_reject_unknown(NULL, allowed, 2, &reason),
                     TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_string),
        cmocka_unit_test(test_get_string_opt),
        cmocka_unit_test(test_string_with_nul_built_in_code),
        cmocka_unit_test(test_get_b64url),
        cmocka_unit_test(test_get_b64url_too_long_before_decoding),
        cmocka_unit_test(test_get_int),
        cmocka_unit_test(test_get_int_opt),
        cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_reject_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
