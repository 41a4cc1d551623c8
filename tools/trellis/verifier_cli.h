/*
 * Shared plumbing of the `trellis verifier` subcommands: their own flags mixed with the
 * verifier's configuration flags, and output as text or JSON.
 */
#ifndef TRELLIS_CLI_VERIFIER_H
#define TRELLIS_CLI_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_util.h"
#include "trellis/verifier.h"

/* One flag of a subcommand (cli_util.h). */
typedef tr__cli_flag_t tr__vflag_t;

/* What a subcommand gets after parsing. */
typedef struct {
    trellis_verifier_config_t cfg;
    int npos;
    char **pos; /* positional arguments (points into argv) */
    bool help;
} tr__vargs_t;

/*
 * Takes the subcommand's own flags out of argv (argv[0] is the subcommand's name), then loads
 * the verifier's configuration from the rest (--dir, --config, any option of the table, the
 * environment, DIR/verifier.conf). need_config false skips the configuration (init). Returns
 * TR__EXIT_OK, or prints one line and returns TR__EXIT_USAGE / TR__EXIT_FAILURE.
 */
int tr__verifier_parse(const char *what, int argc, char **argv, const tr__vflag_t *flags,
                       size_t n_flags, bool need_config, tr__vargs_t *out);

/* Parses a decimal in [min, max]; false on anything else. */
bool tr__verifier_number(const char *text, long long min, long long max, long long *out);

/* Unix milliseconds as RFC 3339 UTC with milliseconds ("2026-11-25T13:40:00.123Z"). */
void tr__verifier_time(int64_t ms, char out[32]);

/* Prints a JSON value on one line to stdout and frees it. */
void tr__verifier_print_json(void *json);

int tr__verifier_init(int argc, char **argv);
int tr__verifier_serve(int argc, char **argv);
int tr__verifier_add_oem(int argc, char **argv);
int tr__verifier_add_factory(int argc, char **argv);
int tr__verifier_import(int argc, char **argv);
int tr__verifier_list_devices(int argc, char **argv);
int tr__verifier_show_device(int argc, char **argv);
int tr__verifier_revoke_device(int argc, char **argv);
int tr__verifier_transfer(int argc, char **argv);
int tr__verifier_audit(int argc, char **argv);

#endif
