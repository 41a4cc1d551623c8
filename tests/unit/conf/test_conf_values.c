#include <limits.h>
#include <string.h>

#include "conf_fixture.h"
#include "test_support.h"

static struct test_conf cfg;
static trellis_reason_t why;

static int reset(void **state)
{
    (void)state;
    memset(&why, 0, sizeof(why));
    return trellis_conf_defaults(&test_spec, &cfg, &why) == TRELLIS_OK ? 0 : -1;
}

/* Sets name to value and expects err; on failure the reason must equal want (if not NULL). */
static void expect_set(const char *name, const char *value, trellis_err_t err, const char *want)
{
    trellis_err_t got = trellis_conf_set(&test_spec, &cfg, name, value, &why);
    if (got != err)
        fail_msg("%s=%s: got %s, want %s (%s)", name, value, trellis_err_name(got),
                 trellis_err_name(err), why.text);
    if (want != NULL)
        assert_string_equal(why.text, want);
}

static void test_defaults(void **state)
{
    (void)state;
    assert_string_equal(cfg.listen, "127.0.0.1:8443");
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.max_conns, 10000);
    assert_true(cfg.tls_verify);
    assert_int_equal(cfg.timeout_ms, 30000);
    assert_int_equal(cfg.max_body, 65536);
    assert_string_equal(cfg.pin, "");
    assert_string_equal(cfg.mode, "sqlite");
    assert_int_equal(trellis_conf_defaults(&test_spec, NULL, &why), TRELLIS_ERR_INVALID_ARG);
}

static void test_string_values(void **state)
{
    (void)state;
    expect_set("listen", "[::1]:9000", TRELLIS_OK, NULL);
    assert_string_equal(cfg.listen, "[::1]:9000");
    expect_set("listen", "", TRELLIS_OK, NULL);
    assert_string_equal(cfg.listen, "");
    /* 31 characters fit a char[32]; 32 do not, and the field keeps its value. */
    expect_set("listen", "0123456789012345678901234567890", TRELLIS_OK, NULL);
    expect_set("listen", "01234567890123456789012345678901", TRELLIS_ERR_CONFIG,
               "listen: the value has 32 characters, at most 31 fit");
    assert_string_equal(cfg.listen, "0123456789012345678901234567890");
    expect_set("listen", "a\nb", TRELLIS_ERR_CONFIG, "listen: control character in the value");
    expect_set("listen", "tab\there", TRELLIS_ERR_CONFIG, NULL);
    expect_set("listen", "del\x7f", TRELLIS_ERR_CONFIG, NULL);
    assert_string_equal(cfg.listen, "0123456789012345678901234567890");
}

static void test_int_values(void **state)
{
    (void)state;
    expect_set("workers", "8", TRELLIS_OK, NULL);
    assert_int_equal(cfg.workers, 8);
    expect_set("workers", "+64", TRELLIS_OK, NULL);
    assert_int_equal(cfg.workers, 64);
    expect_set("workers", "1", TRELLIS_OK, NULL);
    expect_set("workers", "99", TRELLIS_ERR_CONFIG, "workers: 99 is above the maximum 64");
    expect_set("workers", "0", TRELLIS_ERR_CONFIG, "workers: 0 is below the minimum 1");
    expect_set("workers", "-3", TRELLIS_ERR_CONFIG, "workers: -3 is below the minimum 1");
    expect_set("workers", "abc", TRELLIS_ERR_CONFIG, "workers: 'abc' is not an integer");
    expect_set("workers", "", TRELLIS_ERR_CONFIG, "workers: '' is not an integer");
    expect_set("workers", " 5", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "5 ", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "0x10", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "1e3", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "4k", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "--4", TRELLIS_ERR_CONFIG, NULL);
    expect_set("workers", "99999999999999999999", TRELLIS_ERR_CONFIG,
               "workers: '99999999999999999999' is out of range");
    assert_int_equal(cfg.workers, 1);

    /* A long long field takes values beyond int. */
    expect_set("max-conns", "5000000000", TRELLIS_OK, NULL);
    assert_int_equal(cfg.max_conns, 5000000000LL);
    expect_set("max-conns", "-1", TRELLIS_OK, NULL);
    assert_int_equal(cfg.max_conns, -1);
    expect_set("max-conns", "5000000001", TRELLIS_ERR_CONFIG,
               "max-conns: 5000000001 is above the maximum 5000000000");
}

static void test_bool_values(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes", "ON"};
    static const char *const no[] = {"false", "no", "off", "0", "False", "NO", "Off"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        expect_set("tls-verify", no[i], TRELLIS_OK, NULL);
        assert_false(cfg.tls_verify);
        expect_set("tls-verify", yes[i], TRELLIS_OK, NULL);
        assert_true(cfg.tls_verify);
    }
    expect_set("tls-verify", "maybe", TRELLIS_ERR_CONFIG,
               "tls-verify: 'maybe' is not a bool (true/false, yes/no, on/off, 1/0)");
    expect_set("tls-verify", "", TRELLIS_ERR_CONFIG, NULL);
    expect_set("tls-verify", "2", TRELLIS_ERR_CONFIG, NULL);
    expect_set("tls-verify", "y", TRELLIS_ERR_CONFIG, NULL);
    assert_true(cfg.tls_verify);
}

static void test_duration_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long ms;
    } good[] = {
        {"250ms", 250},   {"30s", 30000}, {"5m", 300000},    {"1m30s", 90000},
        {"2m0s", 120000}, {"100ms", 100}, {"1s500ms", 1500},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        expect_set("timeout", good[i].text, TRELLIS_OK, NULL);
        assert_int_equal(cfg.timeout_ms, good[i].ms);
    }
    expect_set("timeout", "1h", TRELLIS_ERR_CONFIG, "timeout: 1h is above the maximum 5m");
    expect_set("timeout", "99ms", TRELLIS_ERR_CONFIG, "timeout: 99ms is below the minimum 100ms");
    expect_set("timeout", "0", TRELLIS_ERR_CONFIG, "timeout: 0 is below the minimum 100ms");
    expect_set("timeout", "30", TRELLIS_ERR_CONFIG, "timeout: '30' needs a unit (ms, s, m, h, d)");
    expect_set("timeout", "1m30", TRELLIS_ERR_CONFIG, NULL);
    expect_set("timeout", "3x", TRELLIS_ERR_CONFIG,
               "timeout: '3x' is not a duration (like 250ms, 30s, 1h30m)");
    static const char *const bad[] = {"",     "s",  "1s1m", "1m1m",   "-5s", "5 s",
                                      "1.5s", "5S", "1sms", "1m 30s", "ms",  " 1s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_set("timeout", bad[i], TRELLIS_ERR_CONFIG, NULL);
    assert_int_equal(cfg.timeout_ms, 1500);

    long long ms = 7;
    assert_int_equal(trellis_conf_parse_duration("1d", &ms), TRELLIS_OK);
    assert_int_equal(ms, 86400000LL);
    assert_int_equal(trellis_conf_parse_duration("1d2h3m4s5ms", &ms), TRELLIS_OK);
    assert_int_equal(ms, 86400000LL + 7200000LL + 180000LL + 4000LL + 5LL);
    assert_int_equal(trellis_conf_parse_duration("0", &ms), TRELLIS_OK);
    assert_int_equal(ms, 0);
    assert_int_equal(trellis_conf_parse_duration("9223372036854775807ms", &ms), TRELLIS_OK);
    assert_int_equal(ms, LLONG_MAX);
    assert_int_equal(trellis_conf_parse_duration("9223372036854775808ms", &ms),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(ms, 0);
    /* LLONG_MAX ms is 106751991167 days and about 7.2 hours: overflow by multiplication, and
     * by the sum of parts that each fit. */
    assert_int_equal(trellis_conf_parse_duration("106751991168d", &ms), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_conf_parse_duration("106751991167d7h", &ms), TRELLIS_OK);
    assert_int_equal(ms, 106751991167LL * 86400000LL + 7LL * 3600000LL);
    assert_int_equal(trellis_conf_parse_duration("106751991167d8h", &ms), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_conf_parse_duration("9223372036854775s808ms", &ms),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_conf_parse_duration("1h30", &ms), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_conf_parse_duration("30", &ms), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_conf_parse_duration(NULL, &ms), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_parse_duration("1s", NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_size_values(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t bytes;
    } good[] = {
        {"1024", 1024},   {"64k", 65536},   {"64K", 65536},       {"64KiB", 65536},
        {"1M", 1u << 20}, {"1m", 1u << 20}, {"16MiB", 16u << 20}, {"2k", 2048},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        expect_set("max-body", good[i].text, TRELLIS_OK, NULL);
        assert_int_equal(cfg.max_body, good[i].bytes);
    }
    expect_set("max-body", "2G", TRELLIS_ERR_CONFIG, "max-body: 2G is above the maximum 16M");
    expect_set("max-body", "1023", TRELLIS_ERR_CONFIG, "max-body: 1023 is below the minimum 1k");
    expect_set("max-body", "64KB", TRELLIS_ERR_CONFIG,
               "max-body: '64KB' is not a size (like 512, 64k, 1M; k, M, G = 1024^n)");
    static const char *const bad[] = {"", "k", "1.5M", "-1", "1 M", "1MB", "1T", "0x10", "1kk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_set("max-body", bad[i], TRELLIS_ERR_CONFIG, NULL);
    assert_int_equal(cfg.max_body, 2048);

    long long n = 5;
    assert_int_equal(trellis_conf_parse_size("3G", &n), TRELLIS_OK);
    assert_int_equal(n, 3LL << 30);
    assert_int_equal(trellis_conf_parse_size("8589934591G", &n), TRELLIS_OK);
    assert_int_equal(trellis_conf_parse_size("8589934592G", &n), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(n, 0);
    assert_int_equal(trellis_conf_parse_size("12x", &n), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_conf_parse_size(NULL, &n), TRELLIS_ERR_INVALID_ARG);
}

/* A secret's value never appears in a reason, whatever is wrong with it. */
static void test_secret_never_shown(void **state)
{
    (void)state;
    expect_set("pin", "123456", TRELLIS_OK, NULL);
    assert_string_equal(cfg.pin, "123456");
    expect_set("pin", "9876543210987654321", TRELLIS_ERR_CONFIG,
               "pin: the value has 19 characters, at most 15 fit");
    assert_null(strstr(why.text, "98765"));
    expect_set("pin", "98765\n", TRELLIS_ERR_CONFIG, "pin: control character in the value");
    assert_string_equal(cfg.pin, "123456");
}

static void test_unknown_and_bad_arguments(void **state)
{
    (void)state;
    expect_set("listn", "x", TRELLIS_ERR_NOT_FOUND, "unknown option 'listn'");
    assert_int_equal(trellis_conf_set(&test_spec, &cfg, NULL, "x", &why), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_set(&test_spec, &cfg, "listen", NULL, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_set(&test_spec, NULL, "listen", "x", &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_set(NULL, &cfg, "listen", "x", &why), TRELLIS_ERR_INVALID_ARG);
    /* A NULL reason is allowed. */
    assert_int_equal(trellis_conf_set(&test_spec, &cfg, "workers", "100", NULL),
                     TRELLIS_ERR_CONFIG);
}

/* Tables with one mistake each; every one is refused with a reason naming the table. */
struct bad_conf {
    int a;
    int b;
    char s[8];
    bool flag;
    long long d;
    size_t z;
};

static void expect_bad_table(const trellis_conf_option_t *opt, size_t cfg_size, const char *want)
{
    trellis_conf_option_t rows[2] = {
        TRELLIS_CONF_ROW_INT("fine", struct bad_conf, b, "1", 0, 10, "a good row"),
        *opt,
    };
    trellis_conf_spec_t spec = {
        .program = "bad",
        .section = "bad",
        .env_prefix = "BAD",
        .cfg_size = cfg_size,
        .options = rows,
        .n_options = 2,
    };
    struct bad_conf c;
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    if (strstr(why.text, want) == NULL)
        fail_msg("reason '%s' lacks '%s'", why.text, want);
    assert_int_equal(trellis_conf_defaults(&spec, &c, &why), TRELLIS_ERR_INVALID_ARG);
}

static void test_bad_tables(void **state)
{
    (void)state;
    const size_t sz = sizeof(struct bad_conf);
    const trellis_conf_option_t good =
        TRELLIS_CONF_ROW_INT("a", struct bad_conf, a, "1", 0, 9, "h");
    trellis_conf_option_t o;

    static const char *const bad_names[] = {"Upper", "a--b", "-a",   "a-",     "9a",
                                            "a_b",   "",     "help", "config", "no-thing"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        o = good;
        o.name = bad_names[i];
        expect_bad_table(&o, sz, "option table");
    }
    o = good;
    o.name = NULL;
    expect_bad_table(&o, sz, "invalid name");
    o = good;
    o.name = "fine";
    expect_bad_table(&o, sz, "'fine' appears twice");
    o = good;
    o.offset = offsetof(struct bad_conf, b);
    expect_bad_table(&o, sz, "'a' overlaps the field of 'fine'");
    expect_bad_table(&good, offsetof(struct bad_conf, a) + 2, "outside the config struct");
    o = good;
    o.def = "10";
    expect_bad_table(&o, sz, "option table: 'a' default: 10 is above the maximum 9");
    o = good;
    o.min = 9;
    expect_bad_table(&o, sz, "bounds unfit");
    o = good;
    o.max = (long long)INT_MAX + 1;
    expect_bad_table(&o, sz, "bounds unfit");
    o = good;
    o.size = 2;
    expect_bad_table(&o, sz, "field size unfit");
    o = good;
    o.type = (trellis_conf_type_t)99;
    expect_bad_table(&o, sz, "field size unfit");
    o = good;
    o.help = NULL;
    expect_bad_table(&o, sz, "needs a one-line help");
    o = good;
    o.help = "two\nlines";
    expect_bad_table(&o, sz, "needs a one-line help");
    o = good;
    o.flags = 0x80;
    expect_bad_table(&o, sz, "unknown flags");

    const trellis_conf_option_t str =
        TRELLIS_CONF_ROW_STRING("s", struct bad_conf, s, "12345678", 0, "too long a default");
    expect_bad_table(&str, sz, "at most 7 fit");
    o = str;
    o.def = "ok";
    o.max = 5;
    expect_bad_table(&o, sz, "bounds unfit");
    const trellis_conf_option_t flag =
        TRELLIS_CONF_ROW_BOOL("flag", struct bad_conf, flag, "perhaps", "bad default");
    expect_bad_table(&flag, sz, "is not a bool");
    const trellis_conf_option_t dur =
        TRELLIS_CONF_ROW_DURATION("d", struct bad_conf, d, "1s", -5, 10, "negative minimum");
    expect_bad_table(&dur, sz, "bounds unfit");
    o = dur;
    o.min = 0;
    o.size = sizeof(int);
    expect_bad_table(&o, sz, "field size unfit");

    /* Spec-level mistakes. */
    trellis_conf_spec_t spec = test_spec;
    spec.section = "Test";
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    spec = test_spec;
    spec.section = NULL;
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    spec = test_spec;
    spec.env_prefix = "trellis";
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    spec = test_spec;
    spec.summary = "line\nbreak";
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    spec = test_spec;
    spec.n_options = TRELLIS_CONF_MAX_OPTIONS + 1;
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    assert_string_equal(why.text, "option table: more than 128 options");
    spec = test_spec;
    spec.cfg_size = 0;
    assert_int_equal(trellis_conf_check_spec(&spec, &why), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_check_spec(NULL, &why), TRELLIS_ERR_INVALID_ARG);

    assert_int_equal(trellis_conf_check_spec(&test_spec, &why), TRELLIS_OK);
    assert_string_equal(why.text, "");
}

/* Path options defaulting to files of the state directory. */
static void test_path_in_dir(void **state)
{
    (void)state;
    char field[32] = "";
    assert_int_equal(trellis_conf_path_in_dir(field, sizeof(field), "/srv/v", "registry.db",
                                              "TRELLIS_X_DIR", &why),
                     TRELLIS_OK);
    assert_string_equal(field, "/srv/v/registry.db");
    /* Set already (by file, environment or flag): left alone. */
    assert_int_equal(trellis_conf_path_in_dir(field, sizeof(field), "/elsewhere", "other",
                                              "TRELLIS_X_DIR", &why),
                     TRELLIS_OK);
    assert_string_equal(field, "/srv/v/registry.db");
    field[0] = '\0';
    assert_int_equal(
        trellis_conf_path_in_dir(field, sizeof(field), "", "registry.db", "TRELLIS_X_DIR", &why),
        TRELLIS_ERR_CONFIG);
    assert_string_equal(why.text, "no state directory: pass --dir DIR (or set TRELLIS_X_DIR)");
    assert_int_equal(trellis_conf_path_in_dir(field, sizeof(field), "/a/very/long/state/directory",
                                              "registry.db", "TRELLIS_X_DIR", &why),
                     TRELLIS_ERR_CONFIG);
    assert_string_equal(why.text, "state directory path too long");
    assert_string_equal(field, "");
    assert_int_equal(trellis_conf_path_in_dir(NULL, 0, "/d", "f", "E", &why),
                     TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, reset),
        cmocka_unit_test_setup(test_string_values, reset),
        cmocka_unit_test_setup(test_int_values, reset),
        cmocka_unit_test_setup(test_bool_values, reset),
        cmocka_unit_test_setup(test_duration_values, reset),
        cmocka_unit_test_setup(test_size_values, reset),
        cmocka_unit_test_setup(test_secret_never_shown, reset),
        cmocka_unit_test_setup(test_unknown_and_bad_arguments, reset),
        cmocka_unit_test_setup(test_bad_tables, reset),
        cmocka_unit_test_setup(test_path_in_dir, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
