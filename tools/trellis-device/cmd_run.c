/*
 * `trellis-device --state DIR run`: the device's life. On first power-on it enrolls (retrying
 * until the registrar says yes), then every interval takes a reading, spools it durably and
 * publishes it; it renews its certificate before it runs out and switches to the new one
 * without losing a reading.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "trellis/clock.h"
#include "trellis/log.h"

typedef struct {
    tr__agent_config_t agent;
} run_config_t;

static const trellis_conf_option_t run_options[] = {TR__AGENT_COMMON_ROWS(run_config_t)};

static const trellis_conf_spec_t run_spec =
    TR__AGENT_SPEC("run",
                   "Enroll if needed, then publish a reading every interval; renew the "
                   "certificate before it expires.",
                   run_config_t, run_options);

/* First power-on: enroll, and keep trying even after a refusal (the manifest may not be at the
 * verifier yet, a revoked device may be reinstated), at the slowest retry pace. */
static trellis_err_t enroll_until_done(tr__agent_t *a, tr__identity_t *id)
{
    tr__enroll_result_t res;
    for (;;) {
        trellis_err_t err = tr__enroll_with_retries(a, id, &res);
        if (err == TRELLIS_OK || *a->stop || a->cfg.attempts > 0)
            return err;
        tr__sleep_ms(a->cfg.retry_max_ms, a->stop);
        if (*a->stop)
            return err;
    }
}

/* Renews the certificate if it is due; on success reconnects MQTT with the new identity. */
static void maybe_renew(tr__agent_t *a, tr__identity_t *id, tr__mqtt_t *m, tr__spool_t *spool,
                        int *failures)
{
    time_t now = time(NULL);
    tr__identity_t fresh;
    tr__enroll_result_t res;
    trellis_reason_t reason;
    trellis_err_t err;

    if (!tr__identity_renew_due(id, a->cfg.renew_percent, now))
        return;
    /* An expired certificate cannot authenticate a reenroll: enroll afresh (the registrar's
     * factory-reset policy decides). */
    if (now >= id->not_after)
        err = tr__enroll_once(a, &fresh, &res);
    else
        err = tr__reenroll_once(a, &fresh, &res);
    if (err != TRELLIS_OK) {
        (*failures)++;
        trellis_log(TRELLIS_LOG_WARN, "renew.failed", TRELLIS_KV_STR("code", res.error_code),
                    TRELLIS_KV_STR("reason", res.reason.text),
                    TRELLIS_KV_INT("failures", *failures));
        return;
    }
    trellis_log(TRELLIS_LOG_INFO, "renew.ok", TRELLIS_KV_STR("old_serial", id->serial_hex),
                TRELLIS_KV_STR("serial", fresh.serial_hex),
                TRELLIS_KV_INT("not_after", (long long)fresh.not_after));
    *failures = 0;
    tr__identity_free(id);
    *id = fresh;
    /* libmosquitto keeps the TLS context of its first connection: a new client picks up the
     * new certificate. The spool is untouched, so nothing is lost across the switch. */
    tr__mqtt_close(m);
    if (tr__mqtt_open(m, a, spool, &reason) != TRELLIS_OK)
        trellis_log(TRELLIS_LOG_ERROR, "mqtt.reopen_failed", TRELLIS_KV_STR("reason", reason.text));
}

int tr__cmd_run(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "run";
    run_config_t cfg;
    tr__agent_t *a = NULL;
    tr__identity_t id;
    tr__spool_t spool;
    tr__mqtt_t m;
    tr__thermo_t thermo;
    trellis_reason_t reason;
    int renew_failures = 0;
    long long taken = 0;
    int rc = tr__agent_load_config(what, &run_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    memset(&id, 0, sizeof(id));
    memset(&spool, 0, sizeof(spool));
    spool.fd = -1;
    memset(&m, 0, sizeof(m));
    if (rc >= 0)
        return rc;
    rc = tr__agent_start(what, state_dir, &cfg.agent, &a);
    if (rc != 0)
        goto out;
    rc = 1;
    tr__agent_catch_signals(a);
    signal(SIGPIPE, SIG_IGN);
    trellis_log(TRELLIS_LOG_INFO, "device.start", TRELLIS_KV_STR("device", a->factory.device_id),
                TRELLIS_KV_STR("registrar", a->registrar_url));

    trellis_err_t err = tr__identity_load(a, &id, &reason);
    if (err == TRELLIS_ERR_NOT_FOUND) {
        err = enroll_until_done(a, &id);
        if (err != TRELLIS_OK) {
            rc = *a->stop ? 0 : tr__agent_fail(what, "enrollment failed");
            goto out;
        }
    } else if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    if (tr__spool_open(&spool, state_dir, (size_t)a->cfg.spool_max, false, &reason) != TRELLIS_OK ||
        tr__mqtt_open(&m, a, &spool, &reason) != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    tr__thermo_init(&thermo, a->factory.device_id);
    int64_t next_reading = trellis_mono_ms();
    int64_t next_renew_check = trellis_mono_ms();
    while (!*a->stop) {
        int64_t now = trellis_mono_ms();
        bool more = a->cfg.readings == 0 || taken < a->cfg.readings;
        if (more && now >= next_reading) {
            tr__reading_t r;
            if (tr__spool_append(&spool, trellis_wall_ms(), tr__thermo_read(&thermo), &r) !=
                TRELLIS_OK) {
                rc = tr__agent_fail(what, "cannot write the spool");
                goto out;
            }
            taken++;
            trellis_log(TRELLIS_LOG_DEBUG, "reading", TRELLIS_KV_INT("seq", r.seq),
                        TRELLIS_KV_INT("backlog", (long long)spool.count));
            next_reading += a->cfg.interval_ms;
            if (next_reading < now)
                next_reading = now + a->cfg.interval_ms; /* we were away: no burst */
        }
        if (!more && spool.count == 0)
            break; /* every reading taken is acknowledged end to end */
        if (now >= next_renew_check) {
            maybe_renew(a, &id, &m, &spool, &renew_failures);
            long long wait = a->cfg.renew_check_ms;
            if (renew_failures > 0)
                wait = tr__backoff_ms(a->cfg.retry_base_ms, a->cfg.retry_max_ms, renew_failures, 0);
            next_renew_check = trellis_mono_ms() + wait;
        }
        long long timeout = more ? next_reading - trellis_mono_ms() : 100;
        if (timeout > 100)
            timeout = 100;
        if (timeout < 1)
            timeout = 1;
        tr__mqtt_step(&m, (long)timeout);
    }
    trellis_log(TRELLIS_LOG_INFO, "device.stop", TRELLIS_KV_INT("taken", taken),
                TRELLIS_KV_INT("last_seq", spool.last_seq), TRELLIS_KV_INT("acked", spool.acked),
                TRELLIS_KV_INT("backlog", (long long)spool.count),
                TRELLIS_KV_INT("published", (long long)m.published),
                TRELLIS_KV_INT("resends", (long long)m.resends),
                TRELLIS_KV_INT("dropped", (long long)spool.dropped_total));
    rc = 0;
out:
    tr__mqtt_close(&m);
    tr__spool_close(&spool);
    tr__identity_free(&id);
    tr__agent_free(a);
    return rc;
}
