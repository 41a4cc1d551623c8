/* `trellis verifier serve`: runs the HTTPS API until SIGINT or SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "trellis/log.h"
#include "verifier_cli.h"

int tr__verifier_serve(int argc, char **argv)
{
    static const char *what = "verifier serve";
    tr__vargs_t a;
    trellis_reason_t why;
    trellis_verifier_t *v = NULL;
    sigset_t set;
    int sig = 0;

    int rc = tr__verifier_parse(what, argc, argv, NULL, 0, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        trellis_conf_print_help(trellis_verifier_conf_spec(), stdout);
        printf("\nServes POST /v1/verify and POST /v1/manifests (mutual TLS as an OEM or a\n"
               "factory), GET /v1/verdict-key, /healthz and /metrics (docs/verifier-api.md).\n"
               "Prints \"listening on ADDRESS:PORT\" once it accepts connections; stops cleanly\n"
               "on SIGINT or SIGTERM, after committing every queued audit entry.\n");
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
    trellis_err_t err = trellis_verifier_new(&a.cfg, &v, &why);
    if (err == TRELLIS_OK)
        err = trellis_verifier_start(v, &why);
    if (err != TRELLIS_OK) {
        trellis_verifier_free(v);
        return tr__cli_fail(what, "%s", why.text[0] != '\0' ? why.text : trellis_err_message(err));
    }
    printf("listening on %s:%u\n", a.cfg.listen, (unsigned)trellis_verifier_port(v));
    fflush(stdout);
    sigwait(&set, &sig);
    trellis_log(TRELLIS_LOG_INFO, "verifier.stopping",
                TRELLIS_KV_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    trellis_verifier_free(v);
    return TR__EXIT_OK;
}
