/*
 * `trellis verifier`: the attestation service and the administration of its state directory.
 * One table dispatches to the subcommands (verifier_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "verifier_cli.h"

static const tr__subcommand_t SUBCOMMANDS[] = {
    {"init", tr__verifier_init, "create a state directory: keys, CA, TLS certificate, registry"},
    {"serve", tr__verifier_serve, "run the HTTPS API (verify, manifest import, verdict key)"},
    {"add-oem", tr__verifier_add_oem, "register an OEM and write its mutual-TLS client bundle"},
    {"add-factory", tr__verifier_add_factory,
     "register a factory's manifest key and write its client bundle"},
    {"import", tr__verifier_import, "import a manifest file directly (bulk loads)"},
    {"list-devices", tr__verifier_list_devices, "list devices, optionally of one owner"},
    {"show-device", tr__verifier_show_device, "show one device's public record"},
    {"revoke-device", tr__verifier_revoke_device,
     "revoke a device whose RoT is compromised (every later verdict is negative)"},
    {"transfer", tr__verifier_transfer, "give a device or a whole batch to another OEM"},
    {"audit", tr__verifier_audit, "list the audit log, optionally of one device"},
};

static const tr__command_group_t GROUP = {
    .group = "verifier",
    .synopsis = "<command> [--dir DIR] [options]",
    .intro = "The RoT vendor's attestation service: it knows every device ever made, accepts\n"
             "devices only from registered factories, and answers an OEM, and only the OEM\n"
             "that owns a device, with a signed verdict on its evidence.\n",
    .outro = "\nEvery command takes --dir DIR (or TRELLIS_VERIFIER_DIR) and reads\n"
             "DIR/verifier.conf; `trellis verifier <command> --help` has the details.\n"
             "See docs/verifier.md (operations) and docs/verifier-api.md (HTTP API).\n",
    .subs = SUBCOMMANDS,
    .n_subs = sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]),
};

int cmd_verifier(int argc, char **argv)
{
    return tr__cli_dispatch(&GROUP, argc, argv);
}
