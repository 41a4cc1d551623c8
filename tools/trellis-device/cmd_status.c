/*
 * `trellis-device --state DIR status [--json]`: what the device is (id, serial, model), whether
 * it is enrolled (certificate serial and expiry), where it sends telemetry, its last sequence
 * number and how many readings wait in its spool. Reads only: safe while `run` runs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent.h"

typedef struct {
    tr__agent_config_t agent;
    bool json;
} status_config_t;

static const trellis_conf_option_t status_options[] = {
    TR__AGENT_COMMON_ROWS(status_config_t),
    TRELLIS_CONF_ROW_BOOL("json", status_config_t, json, "false", "print one JSON object"),
};

static const trellis_conf_spec_t status_spec = TR__AGENT_SPEC(
    "status", "Show the device's identity, certificate, broker, sequence number and spool.",
    status_config_t, status_options);

static void rfc3339(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int tr__cmd_status(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "status";
    status_config_t cfg;
    tr__agent_t *a = NULL;
    tr__identity_t id;
    tr__spool_t spool;
    trellis_reason_t reason;
    char not_after[32] = "";
    int rc = tr__agent_load_config(what, &status_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    memset(&id, 0, sizeof(id));
    memset(&spool, 0, sizeof(spool));
    spool.fd = -1;
    if (rc >= 0)
        return rc;
    rc = tr__agent_start(what, state_dir, &cfg.agent, &a);
    if (rc != 0)
        goto out;
    rc = 1;
    trellis_err_t id_err = tr__identity_load(a, &id, &reason);
    if (id_err != TRELLIS_OK && id_err != TRELLIS_ERR_NOT_FOUND) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    bool enrolled = id_err == TRELLIS_OK;
    if (enrolled)
        rfc3339(id.not_after, not_after);
    if (tr__spool_open(&spool, state_dir, TR__AGENT_SPOOL_LIMIT, true, &reason) != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    bool renew_due = enrolled && tr__identity_renew_due(&id, cfg.agent.renew_percent, time(NULL));
    if (cfg.json) {
        json_t *o =
            json_pack("{sssssssbsssssbsssisIsIsIsI}", "device_id", a->factory.device_id, "serial",
                      a->factory.serial, "model", a->factory.model, "enrolled", enrolled,
                      "certificate_serial", enrolled ? id.serial_hex : "", "not_after", not_after,
                      "renew_due", renew_due, "broker_host", cfg.agent.broker_host, "broker_port",
                      cfg.agent.broker_port, "last_seq", (json_int_t)spool.last_seq, "acked",
                      (json_int_t)spool.acked, "spool_depth", (json_int_t)spool.count, "dropped_to",
                      (json_int_t)spool.dropped_to);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text == NULL) {
            rc = tr__agent_fail(what, "out of memory");
            goto out;
        }
        puts(text);
        free(text);
    } else {
        printf("device       %s (serial %s, model %s)\n", a->factory.device_id, a->factory.serial,
               a->factory.model);
        if (enrolled)
            printf("enrolled     yes: certificate %s, valid until %s%s\n", id.serial_hex, not_after,
                   renew_due ? " (renewal due)" : "");
        else
            printf("enrolled     no\n");
        printf("registrar    %s\n", a->registrar_url[0] != '\0' ? a->registrar_url : "(none)");
        printf("broker       %s:%d\n", cfg.agent.broker_host, cfg.agent.broker_port);
        printf("last seq     %" PRId64 " (acknowledged up to %" PRId64 ")\n", spool.last_seq,
               spool.acked);
        printf("spool depth  %zu\n", spool.count);
    }
    rc = 0;
out:
    tr__spool_close(&spool);
    tr__identity_free(&id);
    tr__agent_free(a);
    return rc;
}
