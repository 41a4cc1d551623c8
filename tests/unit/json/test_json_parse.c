#include <string.h>

#include "test_support.h"
#include "trellis/json.h"

#define LIMIT 4096

static trellis_err_t parse(const char *text, json_t **out, trellis_reason_t *reason)
{
    return trellis_json_parse_object(text, strlen(text), LIMIT, out, reason);
}

static void test_accepts_good_bodies(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"csr\":\"MIIB\",\"evidence\":\"0oRD\"}",
        " \t\r\n{ \"csr\" : \"MIIB\" , \"evidence\" : \"0oRD\" } \n",
        "{}",
        "{\"nested\":{\"a\":[1,2,{\"b\":null}]},\"t\":true,\"n\":-1.5e3}",
        /* Brackets and escaped quotes inside strings do not count as nesting. */
        "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[\\\"{{{{{{{{{{{{{{{{{{{{{\"}",
        "{\"unicode\":\"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00\"}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_t *obj = NULL;
        trellis_reason_t reason;
        print_message("accepting %s\n", good[i]);
        assert_int_equal(parse(good[i], &obj, &reason), TRELLIS_OK);
        assert_true(json_is_object(obj));
        assert_string_equal(reason.text, "");
        json_decref(obj);
    }
}

static void test_body_need_not_be_terminated(void **state)
{
    (void)state;
    /* Only len bytes are read: the junk after them is not part of the body. */
    static const char text[] = "{\"a\":1}GARBAGE";
    json_t *obj = NULL;
    assert_int_equal(trellis_json_parse_object(text, 7, LIMIT, &obj, NULL), TRELLIS_OK);
    assert_int_equal(json_integer_value(json_object_get(obj, "a")), 1);
    json_decref(obj);
}

/* Bodies that must be refused, with a fragment of the reason each gets. */
static const struct {
    const char *why;
    const char *body;
    const char *reason;
} bad[] = {
    {"not JSON", "hello", "not valid JSON"},
    {"truncated", "{\"csr\":\"MIIB\"", "ends inside"},
    {"trailing garbage", "{\"csr\":\"MIIB\"} x", "bytes after the JSON value"},
    {"two objects", "{}{}", "bytes after the JSON value"},
    {"top-level array", "[{\"csr\":\"MIIB\"}]", "an array, expected an object"},
    {"top-level string", "\"csr\"", "a string, expected an object"},
    {"top-level number", "42", "a number, expected an object"},
    {"top-level null", "null", "null, expected an object"},
    {"duplicate member", "{\"csr\":\"A\",\"csr\":\"B\"}", "repeats a member name"},
    {"duplicate nested member", "{\"a\":{\"k\":1,\"k\":2}}", "repeats a member name"},
    {"escaped NUL", "{\"csr\":\"a\\u0000b\"}", "escaped NUL"},
    {"escaped NUL in a name", "{\"a\\u0000\":1}", "escaped NUL"},
    {"invalid UTF-8", "{\"csr\":\"\xc3\x28\"}", "not valid UTF-8"},
    {"overlong UTF-8", "{\"csr\":\"\xc0\xaf\"}", "not valid UTF-8"},
    {"single quotes", "{'csr':'MIIB'}", "not valid JSON"},
    {"trailing comma", "{\"csr\":\"MIIB\",}", "not valid JSON"},
    {"comment", "{/* c */}", "not valid JSON"},
    {"huge integer", "{\"n\":123456789012345678901234567890}", "number out of range"},
    {"whitespace only", "   ", "ends inside"},
};

static void test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *obj = NULL;
        trellis_reason_t reason;
        print_message("refusing %s\n", bad[i].why);
        assert_int_equal(parse(bad[i].body, &obj, &reason), TRELLIS_ERR_PARSE);
        assert_null(obj);
        if (strstr(reason.text, bad[i].reason) == NULL)
            fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].why, reason.text, bad[i].reason);
    }
}

/* Flat bodies of plain strings take a quick path; whatever the path, the object is the one
 * jansson builds from the same text, and the first member that is not a plain string (an escape,
 * UTF-8, a number, a nested value, a long name) changes nothing in the result. */
static void test_flat_bodies_as_jansson_reads_them(void **state)
{
    (void)state;
    char long_name[400];
    memset(long_name, 0, sizeof(long_name));
    long_name[0] = '{';
    long_name[1] = '"';
    memset(long_name + 2, 'k', 300);
    memcpy(long_name + 302, "\":\"v\"}", 6);
    const char *const bodies[] = {
        "{\"evidence\":\"0oRDoQEmoFkB\",\"csr\":\"MIIBxz\",\"challenge\":\"AAEC\"}",
        "\n{\r\"a\"\t:\t\"b c/d~!\"\n,\"e\" : \"\"}\r\n",
        "{}",
        " { } ",
        "{\"a\":\"x\\u0041y\",\"b\":\"plain\"}",
        "{\"a\":\"plain\",\"b\":\"x\\/y\\n\"}",
        "{\"a\":\"caf\xc3\xa9\"}",
        "{\"a\":\"b\",\"n\":12,\"t\":true,\"z\":null}",
        "{\"a\":\"b\",\"o\":{\"c\":\"d\"}}",
        long_name,
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        json_t *ours = NULL;
        json_error_t jerr;
        print_message("reading %s\n", bodies[i]);
        assert_int_equal(parse(bodies[i], &ours, NULL), TRELLIS_OK);
        json_t *theirs = json_loads(bodies[i], JSON_REJECT_DUPLICATES, &jerr);
        assert_non_null(theirs);
        assert_true(json_equal(ours, theirs));
        json_decref(theirs);
        json_decref(ours);
    }
    /* Near misses of the quick path are refused as before. */
    static const char *const refused[] = {
        "{\"a\":\"b\",\"a\":\"c\"}",
        "{\"a\":\"b\",}",
        "{\"a\":\"b\"} {",
        "{\"a\":\"b\"",
        "{\"a\" \"b\"}",
        "{\"a\":\"b\" \"c\":\"d\"}",
        "{,}",
        "{\"a\":\"b\x01\"}",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        json_t *obj = NULL;
        print_message("refusing %s\n", refused[i]);
        assert_int_equal(parse(refused[i], &obj, NULL), TRELLIS_ERR_PARSE);
        assert_null(obj);
    }
}

static void test_empty_body(void **state)
{
    (void)state;
    json_t *obj = NULL;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_parse_object("", 0, LIMIT, &obj, &reason), TRELLIS_ERR_PARSE);
    assert_string_equal(reason.text, "body is empty");
    assert_int_equal(trellis_json_parse_object(NULL, 0, LIMIT, &obj, &reason), TRELLIS_ERR_PARSE);
    assert_null(obj);
}

static void test_embedded_nul_byte(void **state)
{
    (void)state;
    static const char body[] = "{\"csr\":\"MI\0IB\"}";
    json_t *obj = NULL;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_parse_object(body, sizeof(body) - 1, LIMIT, &obj, &reason),
                     TRELLIS_ERR_PARSE);
    assert_null(obj);
    assert_string_equal(reason.text, "body has a NUL byte at offset 10");
    /* A NUL right after a backslash is still seen. */
    static const char escaped[] = "{\"csr\":\"\\\0\"}";
    assert_int_equal(trellis_json_parse_object(escaped, sizeof(escaped) - 1, LIMIT, &obj, &reason),
                     TRELLIS_ERR_PARSE);
    assert_non_null(strstr(reason.text, "NUL byte"));
}

static void test_too_long(void **state)
{
    (void)state;
    static const char body[] = "{\"csr\":\"MIIB\"}";
    size_t len = sizeof(body) - 1;
    json_t *obj = NULL;
    trellis_reason_t reason;
    assert_int_equal(trellis_json_parse_object(body, len, len - 1, &obj, &reason),
                     TRELLIS_ERR_TOO_LARGE);
    assert_null(obj);
    assert_string_equal(reason.text, "body is 14 bytes, larger than the limit of 13");
    /* Exactly at the limit is fine. */
    assert_int_equal(trellis_json_parse_object(body, len, len, &obj, &reason), TRELLIS_OK);
    json_decref(obj);
}

/* Builds depth levels of nested arrays inside the top-level object: {"a":[[...]]}. */
static size_t nested(char *out, size_t out_size, size_t depth)
{
    size_t n = 0;
    assert_true(2 * depth + 8 < out_size);
    memcpy(out, "{\"a\":", 5);
    n = 5;
    for (size_t i = 1; i < depth; i++)
        out[n++] = '[';
    out[n++] = '1';
    for (size_t i = 1; i < depth; i++)
        out[n++] = ']';
    out[n++] = '}';
    out[n] = '\0';
    return n;
}

static void test_depth_limit(void **state)
{
    (void)state;
    static char body[300000];
    json_t *obj = NULL;
    trellis_reason_t reason;
    size_t len = nested(body, sizeof(body), TRELLIS_JSON_MAX_DEPTH);
    assert_int_equal(trellis_json_parse_object(body, len, sizeof(body), &obj, &reason), TRELLIS_OK);
    json_decref(obj);
    obj = NULL;

    len = nested(body, sizeof(body), TRELLIS_JSON_MAX_DEPTH + 1);
    assert_int_equal(trellis_json_parse_object(body, len, sizeof(body), &obj, &reason),
                     TRELLIS_ERR_PARSE);
    assert_non_null(strstr(reason.text, "nests deeper than 16 levels"));
    assert_null(obj);

    /* Far deeper than jansson's own limit: refused by the scan, quickly. */
    len = nested(body, sizeof(body), 100000);
    assert_int_equal(trellis_json_parse_object(body, len, sizeof(body), &obj, &reason),
                     TRELLIS_ERR_PARSE);
    assert_non_null(strstr(reason.text, "nests deeper"));
}

static void test_reason_quotes_no_body_bytes(void **state)
{
    (void)state;
    json_t *obj = NULL;
    trellis_reason_t reason;
    /* jansson's own message would quote the token; the reason must not. */
    assert_int_equal(parse("{\"a\":SECRETTOKEN}", &obj, &reason), TRELLIS_ERR_PARSE);
    assert_null(strstr(reason.text, "SECRET"));
    assert_int_equal(parse("{\"SECRETNAME\":1,\"SECRETNAME\":2}", &obj, &reason),
                     TRELLIS_ERR_PARSE);
    assert_null(strstr(reason.text, "SECRET"));
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    trellis_reason_t reason;
    json_t *obj = NULL;
    assert_int_equal(trellis_json_parse_object("{}", 2, LIMIT, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_json_parse_object(NULL, 2, LIMIT, &obj, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    /* A NULL reason is allowed everywhere. */
    assert_int_equal(trellis_json_parse_object("[]", 2, LIMIT, &obj, NULL), TRELLIS_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_good_bodies),
        cmocka_unit_test(test_body_need_not_be_terminated),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_flat_bodies_as_jansson_reads_them),
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_embedded_nul_byte),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_reason_quotes_no_body_bytes),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
