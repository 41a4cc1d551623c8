/* `trellis registrar serve`: runs the HTTPS API until SIGINT or SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "registrar_cli.h"
#include "trellis/log.h"

int tr__registrar_serve(int argc, char **argv)
{
    static const char *what = "registrar serve";
    tr__rargs_t a;
    trellis_reason_t why;
    trellis_registrar_t *r = NULL;
    sigset_t set;
    int sig = 0;

    int rc = tr__registrar_parse(what, argc, argv, NULL, 0, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        trellis_conf_print_help(trellis_registrar_conf_spec(), stdout);
        printf("\nServes GET /v1/challenge, POST /v1/enroll, POST /v1/reenroll (mutual TLS with\n"
               "the device's certificate), GET /v1/ca, GET /v1/crl, /healthz and /metrics\n"
               "(docs/registrar-api.md). Prints \"listening on ADDRESS:PORT\" once it accepts\n"
               "connections; stops cleanly on SIGINT or SIGTERM.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);

    /* Blocked before any thread starts, so every thread inherits the mask and the signals
     * wait for sigwait below. A write to a closed socket fails with EPIPE instead of killing
     * the process. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_new(&a.cfg, &r, &why);
    if (err == TRELLIS_OK)
        err = trellis_registrar_start(r, &why);
    if (err != TRELLIS_OK) {
        trellis_registrar_free(r);
        return tr__registrar_fail(what, err, &why);
    }
    printf("listening on %s:%u\n", a.cfg.listen, (unsigned)trellis_registrar_port(r));
    fflush(stdout);
    sigwait(&set, &sig);
    trellis_log(TRELLIS_LOG_INFO, "registrar.stopping",
                TRELLIS_KV_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    trellis_registrar_free(r);
    return TR__EXIT_OK;
}
