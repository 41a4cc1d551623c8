/*
 * `trellis registrar`: the OEM's enrollment service and device CA, and the administration of
 * its state directory. One table dispatches to the subcommands (registrar_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "registrar_cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} SUBCOMMANDS[] = {
    {"init", tr__registrar_init,
     "create a state directory: root and device CA, TLS certificate, registry"},
    {"join", tr__registrar_join,
     "store the OEM's verifier client bundle and pin the verifier's verdict key"},
    {"serve", tr__registrar_serve, "run the HTTPS API (challenge, enroll, reenroll, ca, crl)"},
    {"revoke", tr__registrar_revoke, "revoke a device and its certificates, and publish a new CRL"},
    {"reinstate", tr__registrar_reinstate, "let a revoked device enroll again"},
    {"devices", tr__registrar_devices, "list enrolled devices"},
    {"show", tr__registrar_show, "show one device and its certificates"},
    {"audit", tr__registrar_audit, "list the audit log, optionally of one device"},
    {"crl", tr__registrar_crl, "publish a CRL now (and write the CRL file)"},
};

#define N_SUB (sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: trellis registrar <command> [--dir DIR] [options]\n\n"
                 "The OEM's enrollment service: it hands out challenges, has the verifier judge\n"
                 "a device's evidence, and issues the device its client certificate from the\n"
                 "OEM's own CA.\n\ncommands:\n");
    for (size_t i = 0; i < N_SUB; i++)
        fprintf(out, "  %-10s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].help);
    fprintf(out, "\nEvery command takes --dir DIR (or TRELLIS_REGISTRAR_DIR) and reads\n"
                 "DIR/registrar.conf; `trellis registrar <command> --help` has the details.\n"
                 "See docs/registrar.md (operations) and docs/registrar-api.md (HTTP API).\n");
}

int cmd_registrar(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TR__EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return TR__EXIT_OK;
    }
    for (size_t i = 0; i < N_SUB; i++) {
        if (strcmp(argv[1], SUBCOMMANDS[i].name) == 0)
            return SUBCOMMANDS[i].fn(argc - 1, argv + 1);
    }
    return tr__cli_usage("registrar", "unknown command '%s'", argv[1]);
}
