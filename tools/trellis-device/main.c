/*
 * trellis-device: the device agent (docs/device-agent.md). `trellis-device --state DIR
 * <command>` dispatches through a {name, fn, help} table to one file per subcommand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agent.h"
#include "trellis/trellis.h"

static const struct {
    const char *name;
    int (*fn)(const char *state_dir, int argc, char **argv);
    const char *help;
} commands[] = {
    {"run", tr__cmd_run, "enroll if needed, then publish readings; renew before expiry"},
    {"enroll", tr__cmd_enroll, "enroll with the registrar and exit"},
    {"status", tr__cmd_status, "identity, certificate, broker, last seq, spool depth [--json]"},
    {"request", tr__cmd_request, "offline enrollment: write the /v1/enroll body (--out FILE)"},
    {"install", tr__cmd_install, "offline enrollment: install the answer (--in FILE)"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: trellis-device --state DIR <command> [options]\n"
                 "       trellis-device --help | --version\n\n"
                 "The Trellis device agent: enrolls the device with its Root of Trust, then\n"
                 "sends its readings over mutual-TLS MQTT, never losing one.\n\n"
                 "DIR is the device directory made by `trellis factory make` (or\n"
                 "$TRELLIS_DEVICE_STATE). commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`trellis-device --state DIR <command> --help` lists the options; they also\n"
                 "come from DIR/agent.conf ([device]) and TRELLIS_DEVICE_* variables.\n"
                 "Exit status: 0 success, 1 failure (one line on stderr), 2 wrong command line.\n");
}

int main(int argc, char **argv)
{
    const char *state = getenv("TRELLIS_DEVICE_STATE");
    int i = 1;

    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("trellis-device %s\n", TRELLIS_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--state=", 8) == 0) {
            state = argv[i] + 8;
            continue;
        }
        break;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t c = 0; c < N_COMMANDS; c++) {
        if (strcmp(argv[i], commands[c].name) != 0)
            continue;
        bool help = false;
        for (int j = i + 1; j < argc; j++)
            help = help || strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0;
        if (state == NULL && !help) {
            fprintf(stderr, "trellis-device: --state DIR is required (see --help)\n");
            return 2;
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "trellis-device: cannot initialise libcurl\n");
            return 1;
        }
        int rc = commands[c].fn(state, argc - i, argv + i);
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "trellis-device: unknown command '%s' (see --help)\n", argv[i]);
    return 2;
}
