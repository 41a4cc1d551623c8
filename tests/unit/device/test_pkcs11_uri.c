/* PKCS#11 URI parsing and formatting (RFC 7512). */
#include <stdio.h>
#include <string.h>

#include "test_support.h"
#include "trellis/rot_pkcs11.h"

static trellis_err_t parse(const char *text, trellis_pkcs11_uri_t *uri, trellis_reason_t *r)
{
    return trellis_pkcs11_uri_parse(text, strlen(text), uri, r);
}

static void test_full_uri(void **state)
{
    (void)state;
    trellis_pkcs11_uri_t u;
    trellis_reason_t r;
    const char *text =
        "pkcs11:token=Trellis%20RoT;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;"
        "serial=0123abcd;slot-id=42;object=SN-000001;id=%01%02%ff;type=private;"
        "library-manufacturer=x;library-description=y;library-version=2.6;"
        "slot-description=s;slot-manufacturer=m;x-vendor=ignored"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%2634&x-q=a/b|c?d";

    assert_int_equal(parse(text, &u, &r), TRELLIS_OK);
    assert_string_equal(u.token, "Trellis RoT");
    assert_string_equal(u.manufacturer, "SoftHSM project");
    assert_string_equal(u.model, "SoftHSM v2");
    assert_string_equal(u.serial, "0123abcd");
    assert_int_equal(u.slot_id, 42);
    assert_string_equal(u.object, "SN-000001");
    assert_int_equal(u.id_len, 3);
    assert_memory_equal(u.id, "\x01\x02\xff", 3);
    assert_int_equal(u.type, TRELLIS_PKCS11_TYPE_PRIVATE);
    assert_string_equal(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
    assert_string_equal(u.pin, "12&34");
    assert_int_equal(u.present, TRELLIS_PKCS11_HAS_TOKEN | TRELLIS_PKCS11_HAS_MANUFACTURER |
                                    TRELLIS_PKCS11_HAS_MODEL | TRELLIS_PKCS11_HAS_SERIAL |
                                    TRELLIS_PKCS11_HAS_SLOT_ID | TRELLIS_PKCS11_HAS_OBJECT |
                                    TRELLIS_PKCS11_HAS_ID | TRELLIS_PKCS11_HAS_TYPE |
                                    TRELLIS_PKCS11_HAS_MODULE_PATH | TRELLIS_PKCS11_HAS_PIN_VALUE);
    trellis_pkcs11_uri_cleanse(&u);
    assert_string_equal(u.pin, "");
}

static void test_minimal_forms(void **state)
{
    (void)state;
    trellis_pkcs11_uri_t u;

    assert_int_equal(parse("pkcs11:", &u, NULL), TRELLIS_OK);
    assert_int_equal(u.present, 0);
    assert_int_equal(parse("PKCS11:object=k", &u, NULL), TRELLIS_OK); /* scheme case-insensitive */
    assert_string_equal(u.object, "k");
    assert_int_equal(parse("pkcs11:token=", &u, NULL), TRELLIS_OK); /* empty value is legal */
    assert_int_equal(u.present, TRELLIS_PKCS11_HAS_TOKEN);
    assert_string_equal(u.token, "");
    assert_int_equal(parse("pkcs11:?pin-source=file:/etc/pin", &u, NULL), TRELLIS_OK);
    assert_string_equal(u.pin_source, "/etc/pin");
    assert_int_equal(parse("pkcs11:?pin-source=/run/pin", &u, NULL), TRELLIS_OK);
    assert_string_equal(u.pin_source, "/run/pin");
    assert_int_equal(parse("pkcs11:object=a=b&c", &u, NULL), TRELLIS_OK); /* '=' '&' in path */
    assert_string_equal(u.object, "a=b&c");
}

struct bad {
    const char *uri;
    trellis_err_t err;
    const char *reason_has;
};

static void test_negative(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"", TRELLIS_ERR_PARSE, "pkcs11:"},
        {"pkcs11", TRELLIS_ERR_PARSE, "pkcs11:"},
        {"http://x", TRELLIS_ERR_PARSE, "pkcs11:"},
        {"pkcs11:token", TRELLIS_ERR_PARSE, "NAME=VALUE"},
        {"pkcs11:=x", TRELLIS_ERR_PARSE, "NAME=VALUE"},
        {"pkcs11:token=a;", TRELLIS_ERR_PARSE, "empty attribute"},
        {"pkcs11:;token=a", TRELLIS_ERR_PARSE, "empty attribute"},
        {"pkcs11:token=a;;object=b", TRELLIS_ERR_PARSE, "empty attribute"},
        {"pkcs11:token=a;token=b", TRELLIS_ERR_PARSE, "twice"},
        {"pkcs11:?pin-value=1&pin-value=2", TRELLIS_ERR_PARSE, "twice"},
        {"pkcs11:bogus=1", TRELLIS_ERR_PARSE, "unknown attribute"},
        {"pkcs11:x-=1", TRELLIS_ERR_PARSE, "unknown attribute"},
        {"pkcs11:?token=a", TRELLIS_ERR_PARSE, "belongs in the path"},
        {"pkcs11:pin-value=1234", TRELLIS_ERR_PARSE, "belongs in the query"},
        {"pkcs11:object=a b", TRELLIS_ERR_PARSE, "not allowed"},
        {"pkcs11:object=a/b", TRELLIS_ERR_PARSE, "not allowed"}, /* '/' only in the query */
        {"pkcs11:object=a?b=c", TRELLIS_ERR_PARSE, "unknown attribute"},
        {"pkcs11:?module-path=/a&b", TRELLIS_ERR_PARSE, "NAME=VALUE"},
        {"pkcs11:object=%", TRELLIS_ERR_PARSE, "percent"},
        {"pkcs11:object=%4", TRELLIS_ERR_PARSE, "percent"},
        {"pkcs11:object=%zz", TRELLIS_ERR_PARSE, "percent"},
        {"pkcs11:object=a%00b", TRELLIS_ERR_PARSE, "NUL"},
        {"pkcs11:slot-id=", TRELLIS_ERR_PARSE, "decimal"},
        {"pkcs11:slot-id=1x", TRELLIS_ERR_PARSE, "decimal"},
        {"pkcs11:slot-id=-1", TRELLIS_ERR_PARSE, "decimal"},
        {"pkcs11:slot-id=99999999999999999999999", TRELLIS_ERR_PARSE, "range"},
        {"pkcs11:type=secret", TRELLIS_ERR_PARSE, "type"},
        {"pkcs11:library-version=2.", TRELLIS_ERR_PARSE, "DIGITS"},
        {"pkcs11:library-version=a", TRELLIS_ERR_PARSE, "DIGITS"},
        {"pkcs11:?module-path=lib.so", TRELLIS_ERR_PARSE, "absolute"},
        {"pkcs11:?module-name=softhsm2", TRELLIS_ERR_PARSE, "module-path"},
        {"pkcs11:?pin-source=|/bin/pin", TRELLIS_ERR_PARSE, "absolute"},
        {"pkcs11:?pin-source=file:relative", TRELLIS_ERR_PARSE, "absolute"},
        {"pkcs11:?pin-value=1&pin-source=/p", TRELLIS_ERR_PARSE, "mutually exclusive"},
        {"pkcs11:token=123456789012345678901234567890123", TRELLIS_ERR_TOO_LARGE, "token"},
        {"pkcs11:serial=12345678901234567", TRELLIS_ERR_TOO_LARGE, "serial"},
    };
    trellis_pkcs11_uri_t u;
    trellis_reason_t r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&u, 0x5a, sizeof(u));
        trellis_err_t err = parse(cases[i].uri, &u, &r);
        if (err != cases[i].err || strstr(r.text, cases[i].reason_has) == NULL) {
            fail_msg("'%s': got %s '%s', expected %s with '%s'", cases[i].uri,
                     trellis_err_name(err), r.text, trellis_err_name(cases[i].err),
                     cases[i].reason_has);
        }
        /* Output zeroed on failure. */
        assert_int_equal(u.present, 0);
        assert_string_equal(u.pin, "");
    }
}

static void test_limits_and_secrets(void **state)
{
    (void)state;
    trellis_pkcs11_uri_t u;
    trellis_reason_t r;
    char big[TRELLIS_PKCS11_URI_MAX + 16];
    char id[16 + 3 * (TRELLIS_PKCS11_ID_MAX + 1)];

    memset(big, 'a', sizeof(big));
    memcpy(big, "pkcs11:object=", 14);
    assert_int_equal(trellis_pkcs11_uri_parse(big, sizeof(big), &u, &r), TRELLIS_ERR_TOO_LARGE);
    /* id of 65 bytes: one over. */
    snprintf(id, sizeof(id), "pkcs11:id=");
    for (int i = 0; i <= TRELLIS_PKCS11_ID_MAX; i++) {
        strncat(id, "%01", sizeof(id) - strlen(id) - 1);
    }
    assert_int_equal(parse(id, &u, &r), TRELLIS_ERR_TOO_LARGE);
    /* A NUL inside the given length is refused, not treated as the end. */
    assert_int_equal(trellis_pkcs11_uri_parse("pkcs11:object=a\0b", 17, &u, &r), TRELLIS_ERR_PARSE);
    /* A failing PIN never shows up in the reason. */
    assert_int_equal(parse("pkcs11:?pin-value=s3cr3t%zz", &u, &r), TRELLIS_ERR_PARSE);
    assert_null(strstr(r.text, "s3cr3t"));
    assert_int_equal(parse("pkcs11:?pin-value=s3cr3t&pin-source=/x", &u, &r), TRELLIS_ERR_PARSE);
    assert_null(strstr(r.text, "s3cr3t"));
    assert_int_equal(parse("pkcs11:?pin-value=0123456789012345678901234567890123456789012345678901"
                           "234567890123456789",
                           &u, &r),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_pkcs11_uri_parse(NULL, 0, &u, &r), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_pkcs11_uri_parse("pkcs11:", 7, NULL, &r), TRELLIS_ERR_INVALID_ARG);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    trellis_pkcs11_uri_t u;
    trellis_pkcs11_uri_t back;
    char text[TRELLIS_PKCS11_URI_MAX + 1];
    size_t len = 0;
    size_t need = 0;

    assert_int_equal(parse("pkcs11:token=My%20Token;object=SN%3B1%2F2;id=%00%41;type=private;"
                           "slot-id=7?module-path=/opt/p%20k/lib.so&pin-value=9999",
                           &u, NULL),
                     TRELLIS_OK);
    assert_int_equal(trellis_pkcs11_uri_format(&u, NULL, 0, &need), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(trellis_pkcs11_uri_format(&u, text, need - 1, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(trellis_pkcs11_uri_format(&u, text, need, &len), TRELLIS_OK);
    assert_int_equal(len + 1, need);
    assert_string_equal(text, "pkcs11:token=My%20Token;slot-id=7;object=SN%3B1%2F2;id=%00%41;"
                              "type=private?module-path=/opt/p%20k/lib.so");
    assert_null(strstr(text, "9999")); /* the PIN is never written */
    assert_int_equal(parse(text, &back, NULL), TRELLIS_OK);
    assert_string_equal(back.token, u.token);
    assert_string_equal(back.object, u.object);
    assert_int_equal(back.id_len, 2);
    assert_memory_equal(back.id, u.id, 2);
    assert_string_equal(back.module_path, u.module_path);
    assert_int_equal(back.slot_id, 7);
    assert_int_equal(back.present & TRELLIS_PKCS11_HAS_PIN_VALUE, 0);
    trellis_pkcs11_uri_cleanse(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_uri),          cmocka_unit_test(test_minimal_forms),
        cmocka_unit_test(test_negative),          cmocka_unit_test(test_limits_and_secrets),
        cmocka_unit_test(test_format_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
