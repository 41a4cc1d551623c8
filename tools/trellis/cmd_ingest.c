/*
 * `trellis ingest`: the telemetry ingest as its own process (docs/ingest.md says why it is not
 * inside `trellis registrar serve`), and the commands that read what it stored.
 *
 * `trellis registrar telemetry DEVICE` of the issue lives here as `trellis ingest telemetry`:
 * the telemetry store belongs to the ingest, and keeping the reader next to the writer keeps the
 * registrar free of the ingest's schema. The registrar's CLI may alias it.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ingest_cli.h"
#include "trellis/conf.h"
#include "trellis/ingest.h"
#include "trellis/log.h"

static trellis_ingest_t *running;

static void on_signal(int sig)
{
    (void)sig;
    trellis_ingest_stop(running);
}

static int ingest_run(int argc, char **argv)
{
    static const char what[] = "ingest";
    const trellis_conf_spec_t *spec = trellis_ingest_conf_spec();
    trellis_ingest_config_t cfg;
    trellis_conf_cli_t cli;
    trellis_reason_t reason;
    trellis_ingest_store_t store = {0};
    trellis_log_level_t level = TRELLIS_LOG_INFO;
    int rc = TR__EXIT_FAILURE;

    trellis_err_t err = trellis_conf_load(spec, &cfg, &argc, argv, &cli, &reason);
    if (err != TRELLIS_OK)
        return err == TRELLIS_ERR_USAGE ? tr__cli_usage(what, "%s", reason.text)
                                        : tr__cli_fail(what, "%s", reason.text);
    if (cli.help) {
        trellis_conf_print_help(spec, stdout);
        printf("\nAlso: trellis ingest telemetry|devices|stats --db PATH (see --help of each).\n");
        return TR__EXIT_OK;
    }
    if (argc > 1)
        return tr__cli_usage(what, "unexpected argument '%s'", argv[1]);
    if (trellis_log_level_parse(cfg.log_level, &level) != 0)
        return tr__cli_usage(what, "--log-level must be debug, info, warn, error or off");
    trellis_log_set_level(level);

    err = trellis_ingest_sqlite_open(cfg.db_path, false, &store, &reason);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", reason.text);
    err = trellis_ingest_new(&cfg, &store, &running, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", reason.text);
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    trellis_log(TRELLIS_LOG_INFO, "ingest.start", TRELLIS_KV_STR("db", cfg.db_path),
                TRELLIS_KV_STR("broker", cfg.broker_host), TRELLIS_KV_INT("port", cfg.broker_port),
                TRELLIS_KV_STR("group", cfg.group), TRELLIS_KV_INT("batch_max", cfg.batch_max),
                TRELLIS_KV_INT("batch_wait_ms", cfg.batch_wait_ms));
    err = trellis_ingest_run(running);
    rc = err == TRELLIS_OK ? TR__EXIT_OK : tr__cli_fail(what, "%s", trellis_err_message(err));
out:
    trellis_ingest_free(running);
    running = NULL;
    store.close(store.ctx);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: trellis ingest [run] [options]        run the ingest (--help: options)\n"
                 "       trellis ingest telemetry DEVICE [--since T] [--limit N] [--json] "
                 "--db PATH\n"
                 "       trellis ingest devices [--json] --db PATH\n"
                 "       trellis ingest stats [--json] --db PATH\n\n"
                 "Stores every device reading exactly once and acknowledges it end to end\n"
                 "(docs/ingest.md).\n");
}

int cmd_ingest(int argc, char **argv)
{
    if (argc >= 2) {
        if (strcmp(argv[1], "help") == 0) {
            usage(stdout);
            return TR__EXIT_OK;
        }
        if (strcmp(argv[1], "run") == 0)
            return ingest_run(argc - 1, argv + 1);
        if (strcmp(argv[1], "telemetry") == 0)
            return tr__ingest_telemetry(argc - 1, argv + 1);
        if (strcmp(argv[1], "devices") == 0)
            return tr__ingest_devices(argc - 1, argv + 1);
        if (strcmp(argv[1], "stats") == 0)
            return tr__ingest_stats(argc - 1, argv + 1);
        if (argv[1][0] != '-')
            return tr__cli_usage("ingest", "unknown command '%s'", argv[1]);
    }
    return ingest_run(argc, argv);
}
