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

static const trellis_conf_spec_t enroll_spec = TR__AGENT_SPEC(
    "enroll", "Enroll with the registrar (retrying as configured) and store the identity.",
    enroll_config_t, enroll_options);

int tr__cmd_enroll(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "enroll";
    enroll_config_t cfg;
    tr__agent_t *a = NULL;
    tr__identity_t id;
    tr__enroll_result_t res;
    int rc = tr__agent_load_config(what, &enroll_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    memset(&id, 0, sizeof(id));
    if (rc >= 0)
        return rc;
    rc = tr__agent_start(what, state_dir, &cfg.agent, &a);
    if (rc != 0)
        goto out;
    rc = 1;
    if (!cfg.force && tr__identity_load(a, &id, NULL) == TRELLIS_OK) {
        printf("already enrolled: %s serial %s (use --force to enroll again)\n",
               a->factory.device_id, id.serial_hex);
        rc = 0;
        goto out;
    }
    tr__identity_free(&id);
    tr__agent_catch_signals(a);
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
    tr__agent_free(a);
    return rc;
}
