/*
 * Plumbing shared by the subcommand families of `trellis` (verifier, registrar): a subcommand's
 * own flags taken out of argv before the service's configuration table sees the rest, numbers,
 * times and JSON output.
 */
#ifndef TRELLIS_CLI_UTIL_H
#define TRELLIS_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most arguments a subcommand takes. */
#define TR__CLI_ARGV_MAX 256

/* One flag of a subcommand: a value flag (value != NULL) or a switch (flag != NULL). */
typedef struct {
    const char *name; /* without the leading "--" */
    const char **value;
    bool *flag;
} tr__cli_flag_t;

/*
 * Applies the subcommand's own flags ("--name VALUE", "--name=VALUE", "--switch") from argv and
 * copies everything else, argv[0] first, into rest (at least TR__CLI_ARGV_MAX + 1 entries,
 * NULL-terminated; the strings still point into argv). "--" ends flag parsing. -h and --help set
 * *help. Returns TR__EXIT_OK, or prints one line and returns TR__EXIT_USAGE.
 */
int tr__cli_take_flags(const char *what, int argc, char **argv, const tr__cli_flag_t *flags,
                       size_t n_flags, char **rest, int *nrest, bool *help);

/* TR__EXIT_USAGE with one line if any of the n arguments looks like an option. */
int tr__cli_reject_options(const char *what, char **args, int n);

/* Parses a decimal in [min, max]; false on anything else. */
bool tr__cli_number(const char *text, long long min, long long max, long long *out);

/* Unix milliseconds as RFC 3339 UTC with milliseconds ("2026-11-25T13:40:00.123Z"); "-" for 0. */
void tr__cli_time_ms(int64_t ms, char out[32]);

/* Prints a JSON value (a json_t *) on one line to stdout and frees it; NULL prints nothing. */
void tr__cli_print_json(void *json);

#endif
