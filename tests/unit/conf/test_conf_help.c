#include <limits.h>
#include <string.h>

#include "conf_fixture.h"
#include "test_support.h"

static char dir[PATH_MAX];
static trellis_reason_t why;

static int group_setup(void **state)
{
    (void)state;
    test_clear_env();
    return test_make_dir(dir, sizeof(dir));
}

static int group_teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"example.conf", "uncommented.conf", "printed.txt"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) < (int)sizeof(path))
            unlink(path);
    }
    return rmdir(dir);
}

/* Formats with fn into a new buffer, after checking the size query. */
static char *format(trellis_err_t (*fn)(const trellis_conf_spec_t *, char *, size_t, size_t *),
                    const trellis_conf_spec_t *spec)
{
    size_t need = 0, len = 0;
    assert_int_equal(fn(spec, NULL, 0, &need), TRELLIS_ERR_BUFFER_TOO_SMALL);
    char *buf = malloc(need);
    assert_non_null(buf);
    /* One byte short: nothing but the size needed. */
    memset(buf, 'x', need);
    assert_int_equal(fn(spec, buf, need - 1, &len), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, need);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(fn(spec, buf, need, &len), TRELLIS_OK);
    assert_int_equal(len, need - 1);
    assert_int_equal(strlen(buf), len);
    return buf;
}

/* The line of text that contains needle, copied into line. */
static void line_with(const char *text, const char *needle, char *line, size_t size)
{
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        fail_msg("no line with '%s' in:\n%s", needle, text);
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t n = end != NULL ? (size_t)(end - start) : strlen(start);
    assert_true(n < size);
    memcpy(line, start, n);
    line[n] = '\0';
}

/* A table whose secret has a default, which must never be printed. */
static const trellis_conf_option_t secret_options[] = {
    TRELLIS_CONF_ROW_STRING("listen", struct test_conf, listen, "127.0.0.1:8443", 0,
                            "address and port to listen on"),
    TRELLIS_CONF_ROW_STRING("pin", struct test_conf, pin, "s3cr3t-default", TRELLIS_CONF_SECRET,
                            "PIN of the token"),
};

static const trellis_conf_spec_t secret_spec = {
    .program = "trellis secret",
    .section = "secret",
    .env_prefix = NULL,
    .cfg_size = sizeof(struct test_conf),
    .options = secret_options,
    .n_options = 2,
};

static void test_help_lists_every_option_aligned(void **state)
{
    (void)state;
    char *help = format(trellis_conf_format_help, &test_spec);
    char line[256];

    assert_int_equal(strncmp(help,
                             "Usage: trellis test [OPTIONS] [FILE...]\n"
                             "A service that exists for the tests.\n",
                             strlen("Usage: trellis test [OPTIONS] [FILE...]\n"
                                    "A service that exists for the tests.\n")),
                     0);
    line_with(help, "  flag ", line, sizeof(line));
    const char *type_col = strstr(line, "type");
    const char *def_col = strstr(line, "default");
    const char *help_col = strstr(line, "meaning");
    assert_non_null(type_col);
    assert_non_null(def_col);
    assert_non_null(help_col);
    size_t type_at = (size_t)(type_col - line), def_at = (size_t)(def_col - line),
           help_at = (size_t)(help_col - line);

    static const struct {
        const char *flag, *type, *def, *help;
    } rows[] = {
        {"--listen", "string", "127.0.0.1:8443", "address and port to listen on"},
        {"--workers", "int", "2", "worker threads (1..64)"},
        {"--max-conns", "int", "10000",
         "open connections at most, -1 for no limit (-1..5000000000)"},
        {"--[no-]tls-verify", "bool", "true", "check the peer's certificate"},
        {"--timeout", "duration", "30s", "how long to wait for the upstream (100ms..5m)"},
        {"--max-body", "size", "64k", "largest request body (1k..16M)"},
        {"--pin", "string", "(secret)", "PIN of the token"},
        {"--mode", "string", "sqlite", "store: sqlite or postgres"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "  %s ", rows[i].flag);
        line_with(help, flag, line, sizeof(line));
        /* Each column starts where its heading does. */
        assert_int_equal(strncmp(line + 2, rows[i].flag, strlen(rows[i].flag)), 0);
        assert_int_equal(strncmp(line + type_at, rows[i].type, strlen(rows[i].type)), 0);
        assert_int_equal(strncmp(line + def_at, rows[i].def, strlen(rows[i].def)), 0);
        assert_string_equal(line + help_at, rows[i].help);
    }
    line_with(help, "  --config ", line, sizeof(line));
    assert_int_equal(strncmp(line + type_at, "path", 4), 0);
    assert_int_equal(strncmp(line + def_at, "(none)", 6), 0);
    assert_string_equal(line + help_at, "the config file to read");
    line_with(help, "  -h, --help ", line, sizeof(line));
    assert_string_equal(line + help_at, "print this help and exit");
    assert_non_null(strstr(help, "[test] section of the config file,\n"));
    assert_non_null(strstr(help, "in the environment as " TEST_ENV_PREFIX "_NAME"));
    assert_non_null(strstr(help, "\n" TEST_ENV_PREFIX "_CONFIG names the config file.\n"));
    assert_non_null(strstr(help, "Flags override the environment, which overrides the file."));
    /* The fixed text stays within 100 columns (option rows are as wide as their help). */
    for (const char *p = help; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (strncmp(p, "  -", 3) != 0)
            assert_true(nl - p <= 100);
        p = nl + 1;
    }
    free(help);

    /* The default file is named when the spec has one. */
    trellis_conf_spec_t spec = test_spec;
    spec.default_path = "/etc/trellis/test.conf";
    help = format(trellis_conf_format_help, &spec);
    line_with(help, "  --config ", line, sizeof(line));
    assert_non_null(strstr(line, " /etc/trellis/test.conf  the config file to read (if present)"));
    free(help);
}

static void test_secrets_never_printed(void **state)
{
    (void)state;
    char *help = format(trellis_conf_format_help, &secret_spec);
    char *example = format(trellis_conf_format_example, &secret_spec);
    assert_null(strstr(help, "s3cr3t"));
    assert_null(strstr(example, "s3cr3t"));
    assert_non_null(strstr(help, "(secret)"));
    assert_non_null(strstr(example, "\n#pin =\n"));
    assert_non_null(strstr(example, "secret: keep this file private\n"));
    /* Without an environment prefix the help says so. */
    assert_non_null(strstr(help, "Flags override the file."));
    assert_null(strstr(help, "environment"));
    free(help);
    free(example);
}

static void test_example_content(void **state)
{
    (void)state;
    char *example = format(trellis_conf_format_example, &test_spec);
    assert_int_equal(strncmp(example, "# Example configuration of trellis test.\n", 41), 0);
    assert_non_null(strstr(example, "\n[test]\n"));
    assert_non_null(strstr(example, "\n# worker threads\n# int, 1..64\n#workers = 2\n"));
    assert_non_null(
        strstr(example, "\n# largest request body\n# size, 1k..16M\n#max-body = 64k\n"));
    assert_non_null(
        strstr(example, "\n# check the peer's certificate\n# bool\n#tls-verify = true\n"));
    assert_non_null(strstr(example, "\n# address and port to listen on\n# string\n"
                                    "#listen = 127.0.0.1:8443\n"));
    assert_non_null(strstr(example, "\n# PIN of the token\n# string; secret: keep this file "
                                    "private or set " TEST_ENV_PREFIX "_PIN\n#pin =\n"));
    assert_non_null(strstr(example, "Environment variables " TEST_ENV_PREFIX "_NAME"));
    free(example);
}

/* Drops the '#' of every "#name = value" line, leaving comments alone. */
static void uncomment(char *text)
{
    char *out = text;
    for (char *p = text; *p;) {
        if (p[0] == '#' && p[1] >= 'a' && p[1] <= 'z' && (p == text || p[-1] == '\n'))
            p++;
        *out++ = *p++;
    }
    *out = '\0';
}

/* The example is a valid config file as shipped, and with every option uncommented it sets
 * exactly the defaults. */
static void test_example_round_trip(void **state)
{
    (void)state;
    char path[PATH_MAX];
    struct test_conf defaults, loaded;
    char *example = format(trellis_conf_format_example, &test_spec);
    assert_int_equal(trellis_conf_defaults(&test_spec, &defaults, &why), TRELLIS_OK);

    assert_int_equal(
        test_write_file(dir, "example.conf", example, strlen(example), path, sizeof(path)), 0);
    memcpy(&loaded, &defaults, sizeof(loaded));
    assert_int_equal(trellis_conf_load_file(&test_spec, &loaded, path, &why), TRELLIS_OK);
    assert_memory_equal(&loaded, &defaults, sizeof(loaded));

    uncomment(example);
    assert_non_null(strstr(example, "\nworkers = 2\n"));
    assert_int_equal(
        test_write_file(dir, "uncommented.conf", example, strlen(example), path, sizeof(path)), 0);
    memset(&loaded, 0, sizeof(loaded));
    assert_int_equal(trellis_conf_load_file(&test_spec, &loaded, path, &why), TRELLIS_OK);
    assert_memory_equal(&loaded, &defaults, sizeof(loaded));
    free(example);
}

static void test_print_and_bad_arguments(void **state)
{
    (void)state;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/printed.txt", dir);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    assert_int_equal(trellis_conf_print_help(&test_spec, f), TRELLIS_OK);
    assert_int_equal(trellis_conf_print_example(&test_spec, f), TRELLIS_OK);
    long size = ftell(f);
    fclose(f);
    char *help = format(trellis_conf_format_help, &test_spec);
    char *example = format(trellis_conf_format_example, &test_spec);
    assert_int_equal(size, (long)(strlen(help) + strlen(example)));
    free(help);
    free(example);

    size_t len = 9;
    char buf[16];
    trellis_conf_spec_t broken = test_spec;
    broken.section = "Bad Section";
    assert_int_equal(trellis_conf_format_help(&broken, buf, sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_conf_format_example(&broken, buf, sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_format_help(&test_spec, buf, sizeof(buf), NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_print_help(&test_spec, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_print_example(&broken, stdout), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_every_option_aligned),
        cmocka_unit_test(test_secrets_never_printed),
        cmocka_unit_test(test_example_content),
        cmocka_unit_test(test_example_round_trip),
        cmocka_unit_test(test_print_and_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
