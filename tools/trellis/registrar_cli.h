/*
 * Shared plumbing of the `trellis registrar` subcommands: their own flags mixed with the
 * registrar's configuration flags, and output as text or JSON.
 */
#ifndef TRELLIS_CLI_REGISTRAR_H
#define TRELLIS_CLI_REGISTRAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_util.h"
#include "trellis/registrar.h"

/* One flag of a subcommand (cli_util.h). */
typedef tr__cli_flag_t tr__rflag_t;

/* What a subcommand gets after parsing. */
typedef struct {
    trellis_registrar_config_t cfg;
    int npos;
    char **pos; /* positional arguments (points into argv) */
    bool help;
} tr__rargs_t;

/*
 * Takes the subcommand's own flags out of argv (argv[0] is the subcommand's name), then loads
 * the registrar's configuration from the rest (--dir, --config, any option of the table, the
 * environment, DIR/registrar.conf). need_config false skips the configuration (init). Returns
 * TR__EXIT_OK, or prints one line and returns TR__EXIT_USAGE / TR__EXIT_FAILURE.
 */
int tr__registrar_parse(const char *what, int argc, char **argv, const tr__rflag_t *flags,
                        size_t n_flags, bool need_config, tr__rargs_t *out);

/* Parses a decimal in [min, max]; false on anything else. */
bool tr__registrar_number(const char *text, long long min, long long max, long long *out);

/* Unix milliseconds as RFC 3339 UTC ("2026-11-25T13:40:00.123Z"); "-" for 0. */
void tr__registrar_time_ms(int64_t ms, char out[32]);
/* Unix seconds as RFC 3339 UTC ("2026-11-25T13:40:00Z"); "-" for 0. */
void tr__registrar_time_s(int64_t s, char out[32]);

/* Prints a JSON value on one line to stdout and frees it. */
void tr__registrar_print_json(void *json);

/* Prints "trellis registrar WHAT: REASON" and returns TR__EXIT_FAILURE. */
int tr__registrar_fail(const char *what, trellis_err_t err, const trellis_reason_t *why);

int tr__registrar_init(int argc, char **argv);
int tr__registrar_join(int argc, char **argv);
int tr__registrar_serve(int argc, char **argv);
int tr__registrar_revoke(int argc, char **argv);
int tr__registrar_reinstate(int argc, char **argv);
int tr__registrar_devices(int argc, char **argv);
int tr__registrar_show(int argc, char **argv);
int tr__registrar_audit(int argc, char **argv);
int tr__registrar_crl(int argc, char **argv);

#endif
