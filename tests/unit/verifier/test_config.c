/* The verifier's configuration: defaults, DIR/verifier.conf written by init, environment and
 * flags in that order of precedence, derived paths, and refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_support.h"
#include "trellis/verifier.h"
#include "vtest_util.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    char vdir[300];
    trellis_reason_t why;
    trellis_test_tmpdir(g_dir, sizeof(g_dir), "config");
    snprintf(vdir, sizeof(vdir), "%s/v", g_dir);
    trellis_verifier_init_t init = {.dir = vdir, .verifier_id = "verifier-cfg"};
    if (trellis_verifier_init_dir(&init, &why) != TRELLIS_OK)
        fail_msg("init: %s", why.text);
    unsetenv("TRELLIS_VERIFIER_DIR");
    unsetenv("TRELLIS_VERIFIER_CONFIG");
    unsetenv("TRELLIS_VERIFIER_PORT");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    trellis_test_rmtree(g_dir);
    return 0;
}

static trellis_err_t load(trellis_verifier_config_t *cfg, int argc, char **argv,
                          trellis_reason_t *why)
{
    trellis_conf_cli_t cli;
    return trellis_verifier_config_load(cfg, &argc, argv, &cli, why);
}

static void test_file_env_flags(void **state)
{
    (void)state;
    trellis_verifier_config_t cfg;
    trellis_reason_t why;
    char dir_flag[320], want[400];
    snprintf(dir_flag, sizeof(dir_flag), "--dir=%s/v", g_dir);

    /* The file init wrote: its verifier-id, and every path derived from dir. */
    char *argv1[] = {"serve", dir_flag, NULL};
    assert_int_equal(load(&cfg, 2, argv1, &why), TRELLIS_OK);
    assert_string_equal(cfg.verifier_id, "verifier-cfg");
    assert_int_equal(cfg.port, TRELLIS_VERIFIER_DEFAULT_PORT);
    assert_true(cfg.durable);
    snprintf(want, sizeof(want), "%s/v/registry.db", g_dir);
    assert_string_equal(cfg.registry, want);
    snprintf(want, sizeof(want), "%s/v/ca.pem", g_dir);
    assert_string_equal(cfg.client_ca, want);
    assert_int_equal(cfg.verdict_ttl_ms, 300000);

    /* The environment beats the file, a flag beats both. */
    setenv("TRELLIS_VERIFIER_PORT", "7000", 1);
    char *argv2[] = {"serve", dir_flag, NULL};
    assert_int_equal(load(&cfg, 2, argv2, &why), TRELLIS_OK);
    assert_int_equal(cfg.port, 7000);
    char *argv3[] = {"serve", dir_flag, "--port", "7001", "--no-durable", NULL};
    assert_int_equal(load(&cfg, 5, argv3, &why), TRELLIS_OK);
    assert_int_equal(cfg.port, 7001);
    assert_false(cfg.durable);
    unsetenv("TRELLIS_VERIFIER_PORT");

    /* The directory can come from the environment too. */
    snprintf(want, sizeof(want), "%s/v", g_dir);
    setenv("TRELLIS_VERIFIER_DIR", want, 1);
    char *argv4[] = {"audit", NULL};
    assert_int_equal(load(&cfg, 1, argv4, &why), TRELLIS_OK);
    assert_string_equal(cfg.verifier_id, "verifier-cfg");
    unsetenv("TRELLIS_VERIFIER_DIR");
}

static void test_refusals(void **state)
{
    (void)state;
    trellis_verifier_config_t cfg;
    trellis_reason_t why;
    char dir_flag[320];
    snprintf(dir_flag, sizeof(dir_flag), "--dir=%s/v", g_dir);

    char *no_dir[] = {"serve", NULL};
    assert_int_equal(load(&cfg, 1, no_dir, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "--dir"));
    char *bad_port[] = {"serve", dir_flag, "--port", "70000", NULL};
    assert_int_equal(load(&cfg, 4, bad_port, &why), TRELLIS_ERR_USAGE);
    char *bad_id[] = {"serve", dir_flag, "--verifier-id", "a b", NULL};
    assert_int_equal(load(&cfg, 4, bad_id, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "verifier-id"));
    char *unknown[] = {"serve", dir_flag, "--colour", "blue", NULL};
    assert_int_equal(load(&cfg, 4, unknown, &why), TRELLIS_ERR_USAGE);
    char *big_body[] = {"serve", dir_flag, "--manifest-max-body", "1G", NULL};
    assert_int_equal(load(&cfg, 4, big_body, &why), TRELLIS_ERR_USAGE);

    /* A broken file is reported with its line. */
    char path[400];
    snprintf(path, sizeof(path), "%s/broken.conf", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[verifier]\nlisn = 1\n", f);
    fclose(f);
    char cfg_flag[420];
    snprintf(cfg_flag, sizeof(cfg_flag), "--config=%s", path);
    char *broken[] = {"serve", cfg_flag, NULL};
    assert_int_equal(load(&cfg, 2, broken, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, ":2"));

    /* A service on a directory with no registry refuses to start. */
    trellis_verifier_config_t c2;
    trellis_verifier_t *v = NULL;
    assert_int_equal(trellis_conf_defaults(trellis_verifier_conf_spec(), &c2, NULL), TRELLIS_OK);
    snprintf(c2.dir, sizeof(c2.dir), "%s/absent", g_dir);
    assert_int_equal(trellis_verifier_new(&c2, &v, &why), TRELLIS_ERR_CONFIG);
    assert_null(v);
    assert_non_null(strstr(why.text, "verdict key"));
}

static void test_init_and_bundles(void **state)
{
    (void)state;
    trellis_reason_t why;
    trellis_verifier_config_t cfg;
    trellis_verifier_bundle_t b;
    struct stat st;
    char path[400];

    /* init refuses bad input and leaves nothing behind. */
    snprintf(path, sizeof(path), "%s/w", g_dir);
    trellis_verifier_init_t bad = {.dir = path, .verifier_id = "bad id"};
    assert_int_equal(trellis_verifier_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);
    bad = (trellis_verifier_init_t){.dir = path, .hosts = ","};
    assert_int_equal(trellis_verifier_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);
    bad = (trellis_verifier_init_t){.dir = path, .hosts = "a..b"};
    assert_int_not_equal(trellis_verifier_init_dir(&bad, &why), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/w/registry.db", g_dir);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(trellis_verifier_init_dir(NULL, &why), TRELLIS_ERR_INVALID_ARG);

    assert_int_equal(trellis_conf_defaults(trellis_verifier_conf_spec(), &cfg, NULL), TRELLIS_OK);
    snprintf(cfg.dir, sizeof(cfg.dir), "%s/v", g_dir);
    assert_int_equal(trellis_verifier_config_resolve(&cfg, &why), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/bundle-acme", g_dir);
    assert_int_equal(trellis_verifier_add_oem(&cfg, "acme", path, 30, &b, &why), TRELLIS_OK);
    assert_int_equal(stat(b.key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Refused: the same name, a bad name, a factory without key, a key that is not P-256. */
    assert_int_equal(trellis_verifier_add_oem(&cfg, "acme", NULL, 0, &b, &why), TRELLIS_ERR_EXISTS);
    assert_int_equal(trellis_verifier_add_oem(&cfg, "-x", NULL, 0, &b, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_verifier_add_factory(&cfg, "fab", NULL, NULL, 0, &b, &why),
                     TRELLIS_ERR_INVALID_ARG);
    snprintf(path, sizeof(path), "%s/v/ca.pem", g_dir);
    assert_int_not_equal(trellis_verifier_add_factory(&cfg, "fab", path, NULL, 0, &b, &why),
                         TRELLIS_OK);
    /* Nothing registered by the refusals; the bundle directory of "fab" does not exist. */
    trellis_vstore_t *s = NULL;
    assert_int_equal(trellis_verifier_open_store(&cfg, &s, &why), TRELLIS_OK);
    trellis_vstore_counts_t c = vt_counts(s);
    assert_int_equal(c.oems, 1);
    assert_int_equal(c.factories, 0);
    trellis_vstore_close(s);
    snprintf(path, sizeof(path), "%s/v/clients/fab", g_dir);
    assert_int_not_equal(stat(path, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_env_flags),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_init_and_bundles),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
