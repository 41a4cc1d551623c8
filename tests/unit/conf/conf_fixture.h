/* The option table the conf tests share: one option of every type, a secret among them. */
#ifndef TRELLIS_TEST_CONF_FIXTURE_H
#define TRELLIS_TEST_CONF_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trellis/conf.h"

struct test_conf {
    char listen[32];
    int workers;
    long long max_conns;
    bool tls_verify;
    long long timeout_ms;
    size_t max_body;
    char pin[16];
    char mode[12];
};

static const trellis_conf_option_t test_options[] = {
    TRELLIS_CONF_ROW_STRING("listen", struct test_conf, listen, "127.0.0.1:8443", 0,
                            "address and port to listen on"),
    TRELLIS_CONF_ROW_INT("workers", struct test_conf, workers, "2", 1, 64, "worker threads"),
    TRELLIS_CONF_ROW_INT("max-conns", struct test_conf, max_conns, "10000", -1, 5000000000LL,
                         "open connections at most, -1 for no limit"),
    TRELLIS_CONF_ROW_BOOL("tls-verify", struct test_conf, tls_verify, "true",
                          "check the peer's certificate"),
    TRELLIS_CONF_ROW_DURATION("timeout", struct test_conf, timeout_ms, "30s", 100, 300000,
                              "how long to wait for the upstream"),
    TRELLIS_CONF_ROW_SIZE("max-body", struct test_conf, max_body, "64k", 1024, 16 << 20,
                          "largest request body"),
    TRELLIS_CONF_ROW_STRING("pin", struct test_conf, pin, NULL, TRELLIS_CONF_SECRET,
                            "PIN of the token"),
    TRELLIS_CONF_ROW_STRING("mode", struct test_conf, mode, "sqlite", 0,
                            "store: sqlite or postgres"),
};

#define TEST_ENV_PREFIX "TRELLIS_UNITCONF"

static const trellis_conf_spec_t test_spec = {
    .program = "trellis test",
    .summary = "A service that exists for the tests.",
    .args = "[FILE...]",
    .section = "test",
    .env_prefix = TEST_ENV_PREFIX,
    .default_path = NULL,
    .cfg_size = sizeof(struct test_conf),
    .options = test_options,
    .n_options = sizeof(test_options) / sizeof(test_options[0]),
};

/* The variables the table reads, so each test starts from a clean environment. */
static inline void test_clear_env(void)
{
    static const char *const vars[] = {
        "LISTEN",   "WORKERS", "MAX_CONNS", "TLS_VERIFY", "TIMEOUT",
        "MAX_BODY", "PIN",     "MODE",      "CONFIG",
    };
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s_%s", TEST_ENV_PREFIX, vars[i]);
        unsetenv(name);
    }
}

/* A fresh directory under $TMPDIR (or /tmp) for config files. */
static inline int test_make_dir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, size, "%s/trellis-conf-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    return mkdtemp(out) != NULL ? 0 : -1;
}

/* Writes text to dir/name and puts the path in out. Returns 0 or -1. */
static inline int test_write_file(const char *dir, const char *name, const char *text, size_t len,
                                  char *out, size_t out_size)
{
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= out_size)
        return -1;
    FILE *f = fopen(out, "wb");
    if (f == NULL)
        return -1;
    size_t w = fwrite(text, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

#endif /* TRELLIS_TEST_CONF_FIXTURE_H */
