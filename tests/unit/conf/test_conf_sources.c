#include <limits.h>
#include <string.h>

#include "conf_fixture.h"
#include "test_support.h"

static char dir[PATH_MAX];
static struct test_conf cfg;
static trellis_reason_t why;

/* dir/name into out, which must be large enough. */
static void join(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static int group_setup(void **state)
{
    (void)state;
    return test_make_dir(dir, sizeof(dir));
}

static int group_teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"all.conf",  "bad.conf",     "big.conf",  "env.conf",
                                        "help.conf", "default.conf", "prec.conf", "explicit.conf"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) < (int)sizeof(path))
            unlink(path);
    }
    return rmdir(dir);
}

static int reset(void **state)
{
    (void)state;
    test_clear_env();
    memset(&why, 0, sizeof(why));
    return trellis_conf_defaults(&test_spec, &cfg, &why) == TRELLIS_OK ? 0 : -1;
}

static int clean_env(void **state)
{
    (void)state;
    test_clear_env();
    return 0;
}

/* Writes text to dir/name; path receives its path. */
static void put(const char *name, const char *text, char *path, size_t size)
{
    assert_int_equal(test_write_file(dir, name, text, strlen(text), path, size), 0);
}

/* Loads text as a config file and expects err with the reason "PATH:" + want. */
static void expect_file(const char *text, trellis_err_t err, const char *want)
{
    char path[PATH_MAX], full[PATH_MAX + 256];
    put("bad.conf", text, path, sizeof(path));
    struct test_conf before = cfg;
    trellis_err_t got = trellis_conf_load_file(&test_spec, &cfg, path, &why);
    if (got != err)
        fail_msg("got %s, want %s (%s) for:\n%s", trellis_err_name(got), trellis_err_name(err),
                 why.text, text);
    if (want != NULL) {
        int n = snprintf(full, sizeof(full), "%s:%s", path, want);
        assert_true(n > 0 && (size_t)n < sizeof(full));
        assert_string_equal(why.text, full);
    }
    /* A failed file changes nothing, although its first lines were valid. */
    if (err != TRELLIS_OK)
        assert_memory_equal(&cfg, &before, sizeof(cfg));
}

static void test_file_every_type(void **state)
{
    (void)state;
    char path[PATH_MAX];
    put("all.conf",
        "\xEF\xBB\xBF# A comment, after a byte order mark\n"
        "; another comment\n"
        "\n"
        "[test]\n"
        "listen = 0.0.0.0:9443\n"
        "workers=16\n"
        "  max-conns = -1        ; indentation is dropped, inline comments too\n"
        "\ttls-verify = off\n"
        "timeout = 1m30s\n"
        "max-body: 1M\n"
        "pin = 0000\n"
        "mode = \"postgres\"\n"
        "[test]\n",
        path, sizeof(path));
    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, path, &why), TRELLIS_OK);
    assert_string_equal(why.text, "");
    assert_string_equal(cfg.listen, "0.0.0.0:9443");
    assert_int_equal(cfg.workers, 16);
    assert_int_equal(cfg.max_conns, -1);
    assert_false(cfg.tls_verify);
    assert_int_equal(cfg.timeout_ms, 90000);
    assert_int_equal(cfg.max_body, 1u << 20);
    assert_string_equal(cfg.pin, "0000");
    /* Values are literal: quotes stay. */
    assert_string_equal(cfg.mode, "\"postgres\"");

    /* An empty file and a file with only the section are fine and change nothing. */
    struct test_conf before = cfg;
    expect_file("", TRELLIS_OK, NULL);
    expect_file("[test]\n", TRELLIS_OK, NULL);
    expect_file("# nothing\r\n\r\n", TRELLIS_OK, NULL);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    /* Windows line ends. */
    expect_file("[test]\r\nworkers = 3\r\n", TRELLIS_OK, NULL);
    assert_int_equal(cfg.workers, 3);
}

static void test_file_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_file("[test]\nworkers = 4\nlistn = x\n", TRELLIS_ERR_CONFIG, "3: unknown key 'listn'");
    expect_file("[test]\nworkers = 4\n[other]\n", TRELLIS_ERR_CONFIG,
                "3: unknown section [other] (expected [test])");
    expect_file("[test]\n[TEST]\n", TRELLIS_ERR_CONFIG,
                "2: unknown section [TEST] (expected [test])");
    expect_file("workers = 4\n[test]\n", TRELLIS_ERR_CONFIG,
                "1: key 'workers' outside section [test]");
    expect_file("[test]\nworkers = 4\n\nworkers = 5\n", TRELLIS_ERR_CONFIG,
                "4: 'workers' is already set at line 2");
    expect_file("[test]\nworkers = 99\n", TRELLIS_ERR_CONFIG,
                "2: workers: 99 is above the maximum 64");
    expect_file("[test]\ntimeout = 30\n", TRELLIS_ERR_CONFIG,
                "2: timeout: '30' needs a unit (ms, s, m, h, d)");
    expect_file("[test]\nworkers\n", TRELLIS_ERR_CONFIG,
                "2: syntax error (expected 'name = value' or '[test]')");
    expect_file("[test\nworkers = 2\n", TRELLIS_ERR_CONFIG,
                "1: syntax error (expected 'name = value' or '[test]')");
    /* The first error is the one reported, whichever kind it is. */
    expect_file("[test]\ngarbage\nlistn = x\n", TRELLIS_ERR_CONFIG,
                "2: syntax error (expected 'name = value' or '[test]')");
    expect_file("[test]\nlistn = x\ngarbage\n", TRELLIS_ERR_CONFIG, "2: unknown key 'listn'");
    /* A secret's value stays out of the reason. */
    expect_file("[test]\npin = 12345678901234567890\n", TRELLIS_ERR_CONFIG,
                "2: pin: the value has 20 characters, at most 15 fit");
    expect_file("[test]\ntls-verify = 0\npin = 1234\nmode = 12345678901234\n", TRELLIS_ERR_CONFIG,
                "4: mode: the value has 14 characters, at most 11 fit");

    /* A line too long for inih's buffer is refused, not split in two. */
    char text[400];
    int n = snprintf(text, sizeof(text), "[test]\nlisten = ");
    memset(text + n, 'a', 250);
    text[n + 250] = '\0';
    char path[PATH_MAX];
    put("bad.conf", text, path, sizeof(path));
    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, path, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, ":2: line longer than "));

    /* A NUL byte would cut the value short in inih: refused. */
    char nul[] = "[test]\nlisten = abc\0def\n";
    assert_int_equal(test_write_file(dir, "bad.conf", nul, sizeof(nul) - 1, path, sizeof(path)), 0);
    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, path, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, ":2: NUL byte in the line"));
}

static void test_file_unreadable(void **state)
{
    (void)state;
    char path[PATH_MAX];
    join(path, sizeof(path), "absent.conf");
    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, path, &why), TRELLIS_ERR_NOT_FOUND);
    assert_non_null(strstr(why.text, "absent.conf: cannot read: not found"));

    /* Just over the maximum size: refused before parsing. */
    size_t len = TRELLIS_CONF_FILE_MAX + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '#', len);
    big[len - 1] = '\n';
    assert_int_equal(test_write_file(dir, "big.conf", big, len, path, sizeof(path)), 0);
    free(big);
    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, path, &why), TRELLIS_ERR_TOO_LARGE);
    assert_non_null(strstr(why.text, "big.conf: larger than 65536 bytes"));

    assert_int_equal(trellis_conf_load_file(&test_spec, &cfg, NULL, &why), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_load_file(&test_spec, NULL, path, &why), TRELLIS_ERR_INVALID_ARG);
}

static void test_env(void **state)
{
    (void)state;
    setenv(TEST_ENV_PREFIX "_WORKERS", "8", 1);
    setenv(TEST_ENV_PREFIX "_TLS_VERIFY", "no", 1);
    setenv(TEST_ENV_PREFIX "_MAX_BODY", "2M", 1);
    setenv(TEST_ENV_PREFIX "_MAX_CONNS", "77", 1);
    setenv(TEST_ENV_PREFIX "_PIN", "4321", 1);
    setenv(TEST_ENV_PREFIX "_LISTEN", "", 1);
    /* A variable with the prefix that matches no option belongs to someone else. */
    setenv(TEST_ENV_PREFIX "_SOMETHING_ELSE", "x", 1);
    assert_int_equal(trellis_conf_load_env(&test_spec, &cfg, &why), TRELLIS_OK);
    unsetenv(TEST_ENV_PREFIX "_SOMETHING_ELSE");
    assert_int_equal(cfg.workers, 8);
    assert_false(cfg.tls_verify);
    assert_int_equal(cfg.max_body, 2u << 20);
    assert_int_equal(cfg.max_conns, 77);
    assert_string_equal(cfg.pin, "4321");
    assert_string_equal(cfg.listen, "");
    assert_int_equal(cfg.timeout_ms, 30000);

    /* A bad variable fails the whole source: the good ones are not applied either. */
    struct test_conf before = cfg;
    setenv(TEST_ENV_PREFIX "_WORKERS", "9", 1);
    setenv(TEST_ENV_PREFIX "_TIMEOUT", "1h", 1);
    assert_int_equal(trellis_conf_load_env(&test_spec, &cfg, &why), TRELLIS_ERR_CONFIG);
    assert_string_equal(why.text, TEST_ENV_PREFIX "_TIMEOUT: 1h is above the maximum 5m");
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    setenv(TEST_ENV_PREFIX "_TIMEOUT", "1s", 1);
    setenv(TEST_ENV_PREFIX "_PIN", "toolongforthepinfield", 1);
    assert_int_equal(trellis_conf_load_env(&test_spec, &cfg, &why), TRELLIS_ERR_CONFIG);
    assert_string_equal(why.text,
                        TEST_ENV_PREFIX "_PIN: the value has 21 characters, at most 15 fit");

    /* Without a prefix there is no environment source. */
    trellis_conf_spec_t no_env = test_spec;
    no_env.env_prefix = NULL;
    assert_int_equal(trellis_conf_load_env(&no_env, &cfg, &why), TRELLIS_OK);
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    assert_int_equal(trellis_conf_load_env(&test_spec, NULL, &why), TRELLIS_ERR_INVALID_ARG);
}

/* argv arrays like main's: argc entries and a NULL. */
#define ARGV(...) ((char *[]){"prog", __VA_ARGS__, NULL})
#define ARGC(v)   ((int)(sizeof(v) / sizeof((v)[0])) - 1)
#define NO_ARGS   ((char *[]){"prog", NULL})

static void test_args_flags_and_positionals(void **state)
{
    (void)state;
    char **argv = ARGV("first", "--workers", "8", "--listen=[::]:1", "second", "--no-tls-verify",
                       "--timeout", "250ms", "-", "--max-body=4k", "--", "--workers", "last");
    int argc = ARGC(ARGV("first", "--workers", "8", "--listen=[::]:1", "second", "--no-tls-verify",
                         "--timeout", "250ms", "-", "--max-body=4k", "--", "--workers", "last"));
    trellis_conf_cli_t cli = {.config_path = "untouched", .help = true};
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, argv, &cli, &why),
                     TRELLIS_OK);
    assert_int_equal(cfg.workers, 8);
    assert_string_equal(cfg.listen, "[::]:1");
    assert_false(cfg.tls_verify);
    assert_int_equal(cfg.timeout_ms, 250);
    assert_int_equal(cfg.max_body, 4096);
    assert_null(cli.config_path);
    assert_false(cli.help);
    /* Positional arguments in order, "-" among them and everything after "--". */
    assert_int_equal(argc, 6);
    assert_string_equal(argv[0], "prog");
    assert_string_equal(argv[1], "first");
    assert_string_equal(argv[2], "second");
    assert_string_equal(argv[3], "-");
    assert_string_equal(argv[4], "--workers");
    assert_string_equal(argv[5], "last");
    assert_null(argv[6]);

    /* Bool spellings; a bare bool flag leaves the next argument positional. */
    char **argv2 = ARGV("--tls-verify", "file", "--tls-verify=off", "--tls-verify", "-h",
                        "--config", "x.conf", "--mode", "-5");
    argc = 10;
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, argv2, &cli, &why),
                     TRELLIS_OK);
    assert_true(cfg.tls_verify);
    assert_true(cli.help);
    assert_string_equal(cli.config_path, "x.conf");
    assert_string_equal(cfg.mode, "-5");
    assert_int_equal(argc, 2);
    assert_string_equal(argv2[1], "file");
    assert_null(argv2[2]);

    /* The last of repeated flags wins; a value may start with "--" after '='. */
    char **argv3 = ARGV("--workers=3", "--workers", "4", "--listen=--odd", "--config=y.conf");
    argc = 6;
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, argv3, &cli, &why),
                     TRELLIS_OK);
    assert_int_equal(cfg.workers, 4);
    assert_string_equal(cfg.listen, "--odd");
    assert_string_equal(cli.config_path, "y.conf");
    assert_int_equal(argc, 1);
    assert_null(argv3[1]);
}

/* Runs the flags and expects a USAGE error with exactly want, with nothing changed. */
static void expect_args_fail(char **argv, const char *want)
{
    char *copy[32];
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    int argc_before = argc;
    struct test_conf before = cfg;
    trellis_conf_cli_t cli = {.config_path = NULL, .help = false};
    memcpy(copy, argv, sizeof(char *) * (size_t)(argc + 1));
    trellis_err_t err = trellis_conf_parse_args(&test_spec, &cfg, &argc, argv, &cli, &why);
    if (err != TRELLIS_ERR_USAGE)
        fail_msg("got %s (%s), want USAGE '%s'", trellis_err_name(err), why.text, want);
    assert_string_equal(why.text, want);
    assert_int_equal(argc, argc_before);
    assert_memory_equal(copy, argv, sizeof(char *) * (size_t)(argc + 1));
    assert_memory_equal(&cfg, &before, sizeof(cfg));
    assert_null(cli.config_path);
    assert_false(cli.help);
}

static void test_args_errors(void **state)
{
    (void)state;
    expect_args_fail(ARGV("--workers", "99"), "--workers: 99 is above the maximum 64");
    expect_args_fail(ARGV("--workers=abc"), "--workers: 'abc' is not an integer");
    expect_args_fail(ARGV("--listen", "x", "--bogus"), "unknown flag '--bogus'");
    expect_args_fail(ARGV("--bogus=1"), "unknown flag '--bogus'");
    expect_args_fail(ARGV("--no-bogus"), "unknown flag '--no-bogus'");
    expect_args_fail(ARGV("-x"), "unknown flag '-x' (options are long: --name)");
    expect_args_fail(ARGV("-5"), "unknown flag '-5' (options are long: --name)");
    expect_args_fail(ARGV("--Workers", "3"), "unknown flag '--Workers'");
    expect_args_fail(ARGV("--no-workers"), "--no-workers: only a bool option can be negated");
    expect_args_fail(ARGV("--no-tls-verify=1"), "--no-tls-verify takes no value");
    expect_args_fail(ARGV("--tls-verify=perhaps"),
                     "--tls-verify: 'perhaps' is not a bool (true/false, yes/no, on/off, 1/0)");
    expect_args_fail(ARGV("a", "--workers"), "--workers: missing value");
    expect_args_fail(ARGV("--listen", "--workers", "4"),
                     "--listen: missing value before '--workers' (use --listen=VALUE)");
    expect_args_fail(ARGV("--config"), "--config: missing value");
    expect_args_fail(ARGV("--config="), "--config: empty path");
    expect_args_fail(ARGV("--help=yes"), "--help takes no value");
    expect_args_fail(ARGV("--timeout", "5"), "--timeout: '5' needs a unit (ms, s, m, h, d)");
    /* A secret never comes from the command line, and its value is not echoed. */
    expect_args_fail(ARGV("--pin", "2468"),
                     "--pin: a secret is not taken from the command line, where other users can "
                     "read it; use the config file or " TEST_ENV_PREFIX "_PIN");
    expect_args_fail(ARGV("--pin=2468"),
                     "--pin: a secret is not taken from the command line, where other users can "
                     "read it; use the config file or " TEST_ENV_PREFIX "_PIN");

    int argc = 1;
    trellis_conf_cli_t cli;
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, NULL, &cli, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, NULL, NO_ARGS, &cli, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, NO_ARGS, NULL, &why),
                     TRELLIS_ERR_INVALID_ARG);
    /* No arguments at all, not even a program name. */
    char *empty[] = {NULL};
    argc = 0;
    assert_int_equal(trellis_conf_parse_args(&test_spec, &cfg, &argc, empty, &cli, &why),
                     TRELLIS_OK);
    assert_int_equal(argc, 0);
}

/* defaults < file < environment < flags, each layer overriding only what it sets. */
static void test_precedence(void **state)
{
    (void)state;
    char path[PATH_MAX], arg[PATH_MAX + 16];
    put("prec.conf",
        "[test]\nlisten = from-file\nworkers = 3\ntimeout = 10s\nmode = file\npin = 1111\n", path,
        sizeof(path));
    setenv(TEST_ENV_PREFIX "_WORKERS", "5", 1);
    setenv(TEST_ENV_PREFIX "_TIMEOUT", "20s", 1);
    setenv(TEST_ENV_PREFIX "_PIN", "2222", 1);
    snprintf(arg, sizeof(arg), "--config=%s", path);
    char **argv = ARGV(arg, "--workers", "7", "pos");
    int argc = 5;
    trellis_conf_cli_t cli;
    memset(&cfg, 0xa5, sizeof(cfg));
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, argv, &cli, &why), TRELLIS_OK);
    assert_string_equal(why.text, "");
    assert_int_equal(cfg.workers, 7);             /* flag */
    assert_int_equal(cfg.timeout_ms, 20000);      /* environment */
    assert_string_equal(cfg.pin, "2222");         /* environment */
    assert_string_equal(cfg.listen, "from-file"); /* file */
    assert_string_equal(cfg.mode, "file");        /* file */
    assert_int_equal(cfg.max_body, 65536);        /* default */
    assert_true(cfg.tls_verify);                  /* default */
    assert_string_equal(cli.config_path, path);
    assert_false(cli.help);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[1], "pos");
    assert_null(argv[2]);
}

static void test_load_picks_the_file(void **state)
{
    (void)state;
    char def[PATH_MAX], env[PATH_MAX], explicit_path[PATH_MAX], arg[PATH_MAX + 16];
    trellis_conf_cli_t cli;
    trellis_conf_spec_t spec = test_spec;
    put("default.conf", "[test]\nmode = default\n", def, sizeof(def));
    put("env.conf", "[test]\nmode = env\n", env, sizeof(env));
    put("explicit.conf", "[test]\nmode = explicit\n", explicit_path, sizeof(explicit_path));
    spec.default_path = def;

    int argc = 1;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, NO_ARGS, &cli, &why), TRELLIS_OK);
    assert_string_equal(cfg.mode, "default");
    assert_string_equal(cli.config_path, def);

    setenv(TEST_ENV_PREFIX "_CONFIG", env, 1);
    argc = 1;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, NO_ARGS, &cli, &why), TRELLIS_OK);
    assert_string_equal(cfg.mode, "env");
    assert_string_equal(cli.config_path, env);

    snprintf(arg, sizeof(arg), "--config=%s", explicit_path);
    argc = 2;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, ARGV(arg), &cli, &why), TRELLIS_OK);
    assert_string_equal(cfg.mode, "explicit");
    assert_string_equal(cli.config_path, explicit_path);
    unsetenv(TEST_ENV_PREFIX "_CONFIG");

    /* An absent default file is fine: defaults apply. */
    char absent[PATH_MAX];
    join(absent, sizeof(absent), "absent.conf");
    spec.default_path = absent;
    argc = 1;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, NO_ARGS, &cli, &why), TRELLIS_OK);
    assert_string_equal(cfg.mode, "sqlite");
    assert_null(cli.config_path);

    /* An absent file asked for is an error, whether by flag or by variable; cfg is zeroed and
     * argv left alone. */
    static const struct test_conf zero;
    snprintf(arg, sizeof(arg), "--config=%s", absent);
    char **argv = ARGV(arg, "pos");
    argc = 3;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, argv, &cli, &why),
                     TRELLIS_ERR_NOT_FOUND);
    assert_non_null(strstr(why.text, "absent.conf: cannot read: not found"));
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
    assert_int_equal(argc, 3);
    assert_string_equal(argv[2], "pos");
    setenv(TEST_ENV_PREFIX "_CONFIG", absent, 1);
    argc = 1;
    assert_int_equal(trellis_conf_load(&spec, &cfg, &argc, NO_ARGS, &cli, &why),
                     TRELLIS_ERR_NOT_FOUND);
    unsetenv(TEST_ENV_PREFIX "_CONFIG");
}

static void test_load_errors_and_help(void **state)
{
    (void)state;
    char bad[PATH_MAX], arg[PATH_MAX + 16];
    trellis_conf_cli_t cli;
    static const struct test_conf zero;
    put("help.conf", "[test]\nthis is not ini\n", bad, sizeof(bad));
    snprintf(arg, sizeof(arg), "--config=%s", bad);

    /* --help wins over a broken file: defaults and flags only. */
    char **argv = ARGV(arg, "--workers", "6", "--help", "pos");
    int argc = 6;
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, argv, &cli, &why), TRELLIS_OK);
    assert_true(cli.help);
    assert_int_equal(cfg.workers, 6);
    assert_string_equal(cfg.mode, "sqlite");
    assert_int_equal(argc, 2);

    /* Without --help the broken file is the error. */
    argc = 2;
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, ARGV(arg), &cli, &why),
                     TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "help.conf:2: syntax error"));
    assert_memory_equal(&cfg, &zero, sizeof(cfg));

    /* A bad flag is reported before the file is read, even a broken one. */
    argc = 3;
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, ARGV(arg, "--bogus"), &cli, &why),
                     TRELLIS_ERR_USAGE);
    assert_string_equal(why.text, "unknown flag '--bogus'");

    /* A bad environment variable. */
    setenv(TEST_ENV_PREFIX "_WORKERS", "0", 1);
    argc = 1;
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, NO_ARGS, &cli, &why),
                     TRELLIS_ERR_CONFIG);
    assert_string_equal(why.text, TEST_ENV_PREFIX "_WORKERS: 0 is below the minimum 1");
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
    /* ... which a flag cannot hide: every source must be valid. */
    argc = 3;
    assert_int_equal(trellis_conf_load(&test_spec, &cfg, &argc, ARGV("--workers", "4"), &cli, &why),
                     TRELLIS_ERR_CONFIG);
    unsetenv(TEST_ENV_PREFIX "_WORKERS");

    /* A bad table zeroes cfg too. */
    trellis_conf_spec_t broken = test_spec;
    broken.section = "";
    memset(&cfg, 0x5a, sizeof(cfg));
    argc = 1;
    assert_int_equal(trellis_conf_load(&broken, &cfg, &argc, NO_ARGS, &cli, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_file_every_type, reset),
        cmocka_unit_test_setup(test_file_errors_name_file_and_line, reset),
        cmocka_unit_test_setup(test_file_unreadable, reset),
        cmocka_unit_test_setup_teardown(test_env, reset, clean_env),
        cmocka_unit_test_setup(test_args_flags_and_positionals, reset),
        cmocka_unit_test_setup(test_args_errors, reset),
        cmocka_unit_test_setup_teardown(test_precedence, reset, clean_env),
        cmocka_unit_test_setup_teardown(test_load_picks_the_file, reset, clean_env),
        cmocka_unit_test_setup_teardown(test_load_errors_and_help, reset, clean_env),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
