/*
 * The subcommands of `trellis`. Adding one is a line in TRELLIS_COMMANDS and a cmd_<name>.c
 * file defining `int cmd_<name>(int argc, char **argv)`: main.c builds its dispatch table and
 * `trellis --help` from this list.
 *
 * A command receives its own name as argv[0] and returns the process exit status:
 * TR__EXIT_OK, TR__EXIT_FAILURE (the operation failed; one line on stderr says why) or
 * TR__EXIT_USAGE (the command line is wrong).
 */
#ifndef TRELLIS_CLI_COMMANDS_H
#define TRELLIS_CLI_COMMANDS_H

#include <stddef.h>

/* X(name, one-line help) */
#define TRELLIS_COMMANDS(X)                                                                        \
    X(token, "create and check PSA attestation tokens (RFC 9783)")                                 \
    X(factory, "inject device RoT keys, sign and upload manifests (docs/factory.md)")              \
    X(verifier, "the attestation service: registry, manifest import, signed verdicts")             \
    X(registrar, "the OEM's enrollment service and device CA (docs/registrar.md)")                 \
    X(broker, "configure the Mosquitto broker: mutual TLS, device ACL, CRL (docs/broker.md)")      \
    X(ingest, "store device telemetry exactly once, with end-to-end acks (docs/ingest.md)")        \
    X(demo, "run the seed scenario end to end on loopback (docs/demo.md)")

#define TR__EXIT_OK      0
#define TR__EXIT_FAILURE 1
#define TR__EXIT_USAGE   2

#define TRELLIS_COMMAND_DECLARE(name, help) int cmd_##name(int argc, char **argv);
TRELLIS_COMMANDS(TRELLIS_COMMAND_DECLARE)
#undef TRELLIS_COMMAND_DECLARE

/* Prints "trellis <what>: <message>" as one line on stderr and returns TR__EXIT_FAILURE. Line
 * breaks in the message become spaces, so the output stays one line. */
int tr__cli_fail(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Same, for a wrong command line: adds a pointer to --help and returns TR__EXIT_USAGE. */
int tr__cli_usage(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A command with subcommands (`trellis GROUP SUB ...`): their table and the text of its usage,
 * "usage: trellis GROUP SYNOPSIS", intro, the table, outro. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} tr__subcommand_t;

typedef struct {
    const char *group;
    const char *synopsis;
    const char *intro; /* ends with a newline */
    const char *outro; /* starts with a newline */
    const tr__subcommand_t *subs;
    size_t n_subs;
} tr__command_group_t;

/* Runs the subcommand argv[1] with argv + 1; usage on stdout for --help, -h and help, on stderr
 * (TR__EXIT_USAGE) without one; an unknown name is a usage error. */
int tr__cli_dispatch(const tr__command_group_t *g, int argc, char **argv);

#endif /* TRELLIS_CLI_COMMANDS_H */
