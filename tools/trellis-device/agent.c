/* The agent's context, configuration loading, and small helpers shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "agent.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/log.h"

int tr__agent_fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trellis_report_error("trellis-device", what, "", fmt, ap);
    va_end(ap);
    return 1;
}

int tr__agent_usage(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trellis_report_error("trellis-device", what, " (see --help)", fmt, ap);
    va_end(ap);
    return 2;
}

int tr__agent_load_config(const char *what, const trellis_conf_spec_t *spec, void *cfg,
                          tr__agent_config_t *agent, const char *state_dir, int *argc, char **argv)
{
    char conf_path[TR__AGENT_PATH_MAX];
    trellis_conf_spec_t local = *spec;
    trellis_conf_cli_t cli;
    trellis_reason_t reason;
    trellis_log_level_t level = TRELLIS_LOG_INFO;

    /* DIR/agent.conf is read when present, so a device carries its own settings. */
    if (state_dir != NULL && snprintf(conf_path, sizeof(conf_path), "%s/%s", state_dir,
                                      TR__AGENT_CONF) < (int)sizeof(conf_path))
        local.default_path = conf_path;
    trellis_err_t err = trellis_conf_load(&local, cfg, argc, argv, &cli, &reason);
    if (err != TRELLIS_OK)
        return err == TRELLIS_ERR_USAGE ? tr__agent_usage(what, "%s", reason.text)
                                        : tr__agent_fail(what, "%s", reason.text);
    if (cli.help) {
        trellis_conf_print_help(&local, stdout);
        return 0;
    }
    if (trellis_log_level_parse(agent->log_level, &level) != 0)
        return tr__agent_usage(what, "--log-level must be debug, info, warn, error or off");
    /* No subcommand takes positional arguments: everything is an option. */
    if (*argc > 1)
        return tr__agent_usage(what, "unexpected argument '%s'", argv[1]);
    trellis_log_set_level(level);
    return -1;
}

int tr__agent_start(const char *what, const char *state_dir, const tr__agent_config_t *cfg,
                    tr__agent_t **out)
{
    trellis_reason_t reason;
    /* The context holds factory.json (~40 KiB): on the heap, not the stack. */
    tr__agent_t *a = calloc(1, sizeof(*a));
    *out = NULL;
    if (a == NULL)
        return tr__agent_fail(what, "out of memory");
    if (tr__agent_open(a, state_dir, cfg, &reason) != TRELLIS_OK) {
        free(a);
        return tr__agent_fail(what, "%s", reason.text);
    }
    *out = a;
    return 0;
}

void tr__agent_free(tr__agent_t *a)
{
    if (a == NULL)
        return;
    tr__agent_close(a);
    free(a);
}

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void tr__agent_catch_signals(tr__agent_t *a)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    a->stop = &stop_requested;
}

trellis_err_t tr__agent_path(const tr__agent_t *a, const char *name,
                             char out[static TR__AGENT_PATH_MAX])
{
    int n = snprintf(out, TR__AGENT_PATH_MAX, "%s/%s", a->state_dir, name);
    if (n < 0 || n >= TR__AGENT_PATH_MAX) {
        out[0] = '\0';
        return TRELLIS_ERR_INVALID_ARG;
    }
    return TRELLIS_OK;
}

trellis_err_t tr__agent_open(tr__agent_t *a, const char *state_dir, const tr__agent_config_t *cfg,
                             trellis_reason_t *reason)
{
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(a, 0, sizeof(*a));
    if (state_dir == NULL || cfg == NULL ||
        snprintf(a->state_dir, sizeof(a->state_dir), "%s", state_dir) >=
            (int)sizeof(a->state_dir)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "bad --state");
        goto out;
    }
    a->cfg = *cfg;
    err = trellis_device_factory_load(state_dir, &a->factory, reason);
    if (err != TRELLIS_OK)
        goto out;
    const char *url = cfg->registrar_url[0] != '\0' ? cfg->registrar_url : a->factory.registrar_url;
    snprintf(a->registrar_url, sizeof(a->registrar_url), "%s", url);
    /* A trailing slash would double up with the API paths. */
    size_t n = strlen(a->registrar_url);
    while (n > 0 && a->registrar_url[n - 1] == '/')
        a->registrar_url[--n] = '\0';
    if (cfg->registrar_ca[0] != '\0') {
        err = trellis_file_read_all(cfg->registrar_ca, TRELLIS_DEVICE_CA_PEM_MAX, &pem, &pem_len);
        if (err != TRELLIS_OK) {
            err = trellis_reason_set(reason, err, "--registrar-ca %s: %s", cfg->registrar_ca,
                                     trellis_err_message(err));
            goto out;
        }
        a->registrar_ca_pem = (char *)pem;
        a->registrar_ca_len = pem_len;
        pem = NULL;
    } else if (a->factory.registrar_ca_pem[0] != '\0') {
        a->registrar_ca_len = strlen(a->factory.registrar_ca_pem);
        a->registrar_ca_pem = malloc(a->registrar_ca_len + 1);
        if (a->registrar_ca_pem == NULL) {
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
        memcpy(a->registrar_ca_pem, a->factory.registrar_ca_pem, a->registrar_ca_len + 1);
    }
    err = TRELLIS_OK;
out:
    trellis_file_buffer_free(pem, pem_len);
    if (err != TRELLIS_OK)
        tr__agent_close(a);
    return err;
}

void tr__agent_close(tr__agent_t *a)
{
    if (a == NULL)
        return;
    free(a->registrar_ca_pem);
    a->registrar_ca_pem = NULL;
    a->registrar_ca_len = 0;
    OPENSSL_cleanse(a->cfg.pkcs11_pin, sizeof(a->cfg.pkcs11_pin));
}

void tr__sleep_ms(long long ms, volatile sig_atomic_t *stop)
{
    while (ms > 0 && (stop == NULL || !*stop)) {
        long long step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(step * 1000000LL)};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* xorshift64*: plenty for a simulated thermometer, seeded from the CSPRNG. */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

void tr__thermo_init(tr__thermo_t *t, const char *device_id)
{
    uint8_t h[TRELLIS_SHA256_LEN];
    memset(t, 0, sizeof(*t));
    /* Each device sits somewhere between 18 and 26 degrees, the same one across restarts. */
    if (trellis_sha256((const uint8_t *)device_id, strlen(device_id), h) != TRELLIS_OK)
        memset(h, 0, sizeof(h));
    t->base = 18.0 + (double)(h[0] % 81) / 10.0;
    t->value = t->base;
    if (trellis_random((uint8_t *)&t->rng, sizeof(t->rng)) != TRELLIS_OK || t->rng == 0)
        t->rng = 0x9E3779B97F4A7C15ULL;
}

double tr__thermo_read(tr__thermo_t *t)
{
    /* A random walk of at most 0.05 degree per reading, pulled gently back to the base. */
    t->value += (uniform(&t->rng) - 0.5) * 0.1 + (t->base - t->value) * 0.02;
    return round(t->value * 100.0) / 100.0;
}
