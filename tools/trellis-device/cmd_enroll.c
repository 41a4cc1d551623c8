/* `trellis-device --state DIR enroll [--force]`: enroll only (design.md §2.2-2.7), then exit. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

typedef struct {
    tr__agent_config_t agent;
    bool force;
} enroll_config_t;

static const trellis_conf_option_t enroll_options[] = {
    TR__AGENT_COMMON_ROWS(enroll_config_t),
    TRELLIS_CONF_ROW_BOOL("force", enroll_config_t, force, "false",
                          "enroll again even if the device holds a certificate (a factory "
                          "reset; the registrar's policy decides)"),
};

static const trellis_conf_spec_t enroll_spec = {
    .program = "trellis-device --state DIR enroll",
    .summary = "Enroll with the registrar (retrying as configured) and store the identity.",
    .args = NULL,
    .section = "device",
    .env_prefix = "TRELLIS_DEVICE",
    .default_path = NULL,
    .cfg_size = sizeof(enroll_config_t),
    .options = enroll_options,
    .n_options = sizeof(enroll_options) / sizeof(enroll_options[0]),
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

int tr__cmd_enroll(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "enroll";
    enroll_config_t cfg;
    tr__agent_t *a = NULL;
    tr__identity_t id;
    tr__enroll_result_t res;
    trellis_reason_t reason;
    int rc = tr__agent_load_config(what, &enroll_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    memset(&id, 0, sizeof(id));
    if (rc >= 0)
        return rc;
    if (argc > 1)
        return tr__agent_usage(what, "unexpected argument '%s'", argv[1]);
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return tr__agent_fail(what, "out of memory");
    rc = 1;
    if (tr__agent_open(a, state_dir, &cfg.agent, &reason) != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    if (!cfg.force && tr__identity_load(a, &id, NULL) == TRELLIS_OK) {
        printf("already enrolled: %s serial %s (use --force to enroll again)\n",
               a->factory.device_id, id.serial_hex);
        rc = 0;
        goto out;
    }
    tr__identity_free(&id);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    a->stop = &stop_flag;
    if (tr__enroll_with_retries(a, &id, &res) != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", res.reason.text);
        goto out;
    }
    char not_after[32];
    struct tm tm;
    gmtime_r(&id.not_after, &tm);
    strftime(not_after, sizeof(not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("enrolled %s: certificate serial %s, valid until %s\n", a->factory.device_id,
           id.serial_hex, not_after);
    rc = 0;
out:
    tr__identity_free(&id);
    if (a != NULL) {
        tr__agent_close(a);
        free(a);
    }
    return rc;
}
