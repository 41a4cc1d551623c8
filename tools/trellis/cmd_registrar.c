/*
 * `trellis registrar`: the OEM's enrollment service and device CA, and the administration of
 * its state directory. One table dispatches to the subcommands (registrar_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "registrar_cli.h"

static const tr__subcommand_t SUBCOMMANDS[] = {
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

static const tr__command_group_t GROUP = {
    .group = "registrar",
    .synopsis = "<command> [--dir DIR] [options]",
    .intro = "The OEM's enrollment service: it hands out challenges, has the verifier judge\n"
             "a device's evidence, and issues the device its client certificate from the\n"
             "OEM's own CA.\n",
    .outro = "\nEvery command takes --dir DIR (or TRELLIS_REGISTRAR_DIR) and reads\n"
             "DIR/registrar.conf; `trellis registrar <command> --help` has the details.\n"
             "See docs/registrar.md (operations) and docs/registrar-api.md (HTTP API).\n",
    .subs = SUBCOMMANDS,
    .n_subs = sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]),
};

int cmd_registrar(int argc, char **argv)
{
    return tr__cli_dispatch(&GROUP, argc, argv);
}
