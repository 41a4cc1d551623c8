/*
 * Table-driven configuration (style.md §11): one table per service, each row naming an option,
 * its type, the struct field it fills, its default, its bounds and its help. The same table
 * drives parsing of every source, `--help` and the example file shipped as etc/NAME.conf.example.
 *
 * Sources, in increasing precedence:
 *   1. the defaults of the table;
 *   2. an INI file (inih): keys in the one section the spec names, e.g. [verifier]; unknown
 *      keys, unknown sections, keys outside the section, a key set twice and syntax errors are
 *      errors naming file:line. Values are taken literally (no quotes are removed); inih strips
 *      surrounding whitespace and an inline comment introduced by " ;". Indented lines are read
 *      as if not indented (no multi-line values). A line holds at most 197 characters, a file at
 *      most TRELLIS_CONF_FILE_MAX bytes;
 *   3. environment variables PREFIX_NAME: the spec's prefix, '_', the option name uppercased
 *      with '-' turned into '_' (TRELLIS_VERIFIER_LISTEN for "listen"). Variables with the prefix
 *      that match no option are ignored, since the environment is shared with other programs;
 *   4. command-line flags: `--name VALUE` and `--name=VALUE`; a bool is set by a bare `--name`
 *      and cleared by `--no-name` (or `--name=VALUE` with any bool word). `--` ends the flags;
 *      other arguments are positional and handed back in order. `-h`/`--help` and
 *      `--config FILE` are always understood. An unknown flag is an error.
 *
 * Value syntax by type:
 *   string    any text without control characters, shorter than the field (size - 1 at most);
 *   int       decimal, optional sign, within [min, max];
 *   bool      true/false, yes/no, on/off, 1/0 (any case);
 *   duration  "0" or number-unit pairs in decreasing units: ms, s, m, h, d ("250ms", "30s",
 *             "1h30m"), stored as milliseconds, within [min, max] milliseconds;
 *   size      a number of bytes, optionally with k, M or G (also KiB, MiB, GiB; powers of 1024),
 *             stored as bytes, within [min, max] bytes.
 * An enumerated choice is a string option that the caller validates after loading.
 *
 * Errors: every failure comes with a one-line trellis_reason_t naming the option and its source:
 * "--workers: 99 is above the maximum 64", "verifier.conf:12: unknown key 'listn'",
 * "TRELLIS_VERIFIER_TIMEOUT: '30' needs a unit (ms, s, m, h, d)". Values of options flagged
 * TRELLIS_CONF_SECRET never appear in reasons, --help or the example file, and such an option is
 * refused on the command line (where every local user can read it); it comes from the file or
 * the environment. Codes: INVALID_ARG (a bad argument or a bad table: a programming error),
 * CONFIG (a bad value, key or line in the file or environment), USAGE (a bad flag or flag
 * value), NOT_FOUND/PERMISSION/TOO_LARGE/IO (the config file could not be read), NOMEM.
 *
 * State: functions keep no global state. Loading reads the process environment (getenv), so it
 * belongs at startup, before threads that might call setenv. Every function that fills cfg
 * leaves it unchanged when it fails, except trellis_conf_defaults and trellis_conf_load, which
 * leave it zeroed.
 */
#ifndef TRELLIS_CONF_H
#define TRELLIS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "trellis/error.h"

/* Hard limits: options in one table, characters of an option name, bytes of a config file. */
#define TRELLIS_CONF_MAX_OPTIONS 128
#define TRELLIS_CONF_NAME_MAX    48
#define TRELLIS_CONF_FILE_MAX    (64 * 1024)

typedef enum {
    TRELLIS_CONF_STRING = 1, /* field: char[size], NUL-terminated */
    TRELLIS_CONF_INT,        /* field: int or long long (told apart by size) */
    TRELLIS_CONF_BOOL,       /* field: bool */
    TRELLIS_CONF_DURATION,   /* field: long long, milliseconds */
    TRELLIS_CONF_SIZE,       /* field: size_t, bytes */
} trellis_conf_type_t;

/* Flags of an option. */
#define TRELLIS_CONF_SECRET 0x1u /* value never shown; not accepted as a flag */

/*
 * One row of the table.
 *   name     lowercase letters, digits and single inner '-', starting with a letter, at most
 *            TRELLIS_CONF_NAME_MAX characters; not "help" or "config", not starting with "no-".
 *   offset, size  where the field lives in the config struct and its sizeof.
 *   def      the default, in the syntax of the type; NULL means "" (string), 0 or false.
 *   min, max bounds of int, duration (ms) and size (bytes) options, min < max (duration and
 *            size: min >= 0); both 0 for string and bool.
 *   help     one line, no control characters; say what the option does and why one would
 *            change it.
 * The TRELLIS_CONF_* row macros below fill offset and size from the struct and field.
 */
typedef struct {
    const char *name;
    trellis_conf_type_t type;
    size_t offset;
    size_t size;
    const char *def;
    long long min;
    long long max;
    unsigned int flags;
    const char *help;
} trellis_conf_option_t;

#define TRELLIS_CONF_FIELD_SIZE(st, field) sizeof(((st *)0)->field)

#define TRELLIS_CONF_ROW_STRING(name_, st, field, def_, flags_, help_)                             \
    {                                                                                              \
        .name = (name_), .type = TRELLIS_CONF_STRING, .offset = offsetof(st, field),               \
        .size = TRELLIS_CONF_FIELD_SIZE(st, field), .def = (def_), .min = 0, .max = 0,             \
        .flags = (flags_), .help = (help_)                                                         \
    }
#define TRELLIS_CONF_ROW_INT(name_, st, field, def_, min_, max_, help_)                            \
    {                                                                                              \
        .name = (name_), .type = TRELLIS_CONF_INT, .offset = offsetof(st, field),                  \
        .size = TRELLIS_CONF_FIELD_SIZE(st, field), .def = (def_), .min = (min_), .max = (max_),   \
        .flags = 0, .help = (help_)                                                                \
    }
#define TRELLIS_CONF_ROW_BOOL(name_, st, field, def_, help_)                                       \
    {                                                                                              \
        .name = (name_), .type = TRELLIS_CONF_BOOL, .offset = offsetof(st, field),                 \
        .size = TRELLIS_CONF_FIELD_SIZE(st, field), .def = (def_), .min = 0, .max = 0, .flags = 0, \
        .help = (help_)                                                                            \
    }
#define TRELLIS_CONF_ROW_DURATION(name_, st, field, def_, min_ms, max_ms, help_)                   \
    {                                                                                              \
        .name = (name_), .type = TRELLIS_CONF_DURATION, .offset = offsetof(st, field),             \
        .size = TRELLIS_CONF_FIELD_SIZE(st, field), .def = (def_), .min = (min_ms),                \
        .max = (max_ms), .flags = 0, .help = (help_)                                               \
    }
#define TRELLIS_CONF_ROW_SIZE(name_, st, field, def_, min_bytes, max_bytes, help_)                 \
    {                                                                                              \
        .name = (name_), .type = TRELLIS_CONF_SIZE, .offset = offsetof(st, field),                 \
        .size = TRELLIS_CONF_FIELD_SIZE(st, field), .def = (def_), .min = (min_bytes),             \
        .max = (max_bytes), .flags = 0, .help = (help_)                                            \
    }

/*
 * What a program's configuration is: the table plus where its values come from.
 *   program       name in the usage line and the example's header ("trellis verifier").
 *   summary       one line under the usage line; may be NULL.
 *   args          what follows [OPTIONS] in the usage line ("FILE..."); may be NULL.
 *   section       INI section holding the keys ("verifier"): lowercase letters, digits, '-',
 *                 '_', '.'.
 *   env_prefix    "TRELLIS_VERIFIER" (uppercase letters, digits, '_'); NULL: no environment.
 *   default_path  file read by trellis_conf_load when no --config or PREFIX_CONFIG names one;
 *                 its absence is not an error. NULL: none.
 *   cfg_size      sizeof the config struct; every option must lie inside it, none overlapping.
 */
typedef struct {
    const char *program;
    const char *summary;
    const char *args;
    const char *section;
    const char *env_prefix;
    const char *default_path;
    size_t cfg_size;
    const trellis_conf_option_t *options;
    size_t n_options;
} trellis_conf_spec_t;

/* What the command line asked for besides options. */
typedef struct {
    /* trellis_conf_parse_args: the --config value (points into argv), or NULL.
     * trellis_conf_load: the file actually read (--config, PREFIX_CONFIG or the default path),
     * or NULL if none was. */
    const char *config_path;
    bool help; /* -h or --help was given */
} trellis_conf_cli_t;

/* Checks the table and the spec (names, types, sizes, bounds, overlaps, defaults). Every other
 * function runs this check first and fails with INVALID_ARG on a bad table. */
trellis_err_t trellis_conf_check_spec(const trellis_conf_spec_t *spec, trellis_reason_t *reason);

/* Zeroes cfg (spec->cfg_size bytes) and fills in every default. */
trellis_err_t trellis_conf_defaults(const trellis_conf_spec_t *spec, void *cfg,
                                    trellis_reason_t *reason);

/* Sets one option from text, as if it came from the file (errors are CONFIG, NOT_FOUND for an
 * unknown name). */
trellis_err_t trellis_conf_set(const trellis_conf_spec_t *spec, void *cfg, const char *name,
                               const char *value, trellis_reason_t *reason);

/* Applies an INI file on top of cfg. A missing file is NOT_FOUND. */
trellis_err_t trellis_conf_load_file(const trellis_conf_spec_t *spec, void *cfg, const char *path,
                                     trellis_reason_t *reason);

/* Applies the environment variables of spec->env_prefix on top of cfg (nothing if NULL). */
trellis_err_t trellis_conf_load_env(const trellis_conf_spec_t *spec, void *cfg,
                                    trellis_reason_t *reason);

/*
 * Applies the flags of argv[1..*argc-1] on top of cfg and hands back the positional arguments:
 * on success argv[1..*argc-1] hold them in their original order, argv[*argc] is NULL and
 * argv[0] is untouched. argv has *argc + 1 entries, the last NULL, as main's has. --config is
 * recorded in cli (not read: trellis_conf_load reads it) and -h/--help sets cli->help. On failure
 * argv, *argc, cfg and *cli are unchanged.
 */
trellis_err_t trellis_conf_parse_args(const trellis_conf_spec_t *spec, void *cfg, int *argc,
                                      char **argv, trellis_conf_cli_t *cli,
                                      trellis_reason_t *reason);

/*
 * Everything in one call, in precedence order: defaults, the config file (from --config, else
 * the PREFIX_CONFIG variable, else spec->default_path if it exists), the environment, the
 * flags; argv and *argc are compacted to the positional arguments as by
 * trellis_conf_parse_args. With -h/--help, cli->help is set and only defaults and flags are
 * applied (a broken file must not hide the help). On failure cfg is zeroed and argv unchanged.
 */
trellis_err_t trellis_conf_load(const trellis_conf_spec_t *spec, void *cfg, int *argc, char **argv,
                                trellis_conf_cli_t *cli, trellis_reason_t *reason);

/*
 * The --help text: usage, summary, one aligned line per option (flag, type, default, help with
 * bounds), then where else options come from. And the example config file: a header, the
 * section, and per option its help, its type and bounds and a commented `#name = DEFAULT` line;
 * uncommenting every line yields the defaults. Secrets show "(secret)" / an empty value.
 * Output as (out, out_size, *out_len) with the NUL counted in the size needed; errors
 * BUFFER_TOO_SMALL (also for out NULL), INVALID_ARG.
 */
trellis_err_t trellis_conf_format_help(const trellis_conf_spec_t *spec, char *out, size_t out_size,
                                       size_t *out_len);
trellis_err_t trellis_conf_format_example(const trellis_conf_spec_t *spec, char *out,
                                          size_t out_size, size_t *out_len);

/* The same, written to f (e.g. stdout). Errors: INVALID_ARG, NOMEM, IO. */
trellis_err_t trellis_conf_print_help(const trellis_conf_spec_t *spec, FILE *f);
trellis_err_t trellis_conf_print_example(const trellis_conf_spec_t *spec, FILE *f);

/*
 * A path option that defaults to a file of the state directory: when field (size bytes) is
 * empty, it becomes "DIR/FILE". TRELLIS_ERR_CONFIG, field empty, when that is needed but dir is
 * empty (the reason names --dir and the environment variable dir_env) or the path does not fit.
 * A field already set is left alone.
 */
trellis_err_t trellis_conf_path_in_dir(char *field, size_t size, const char *dir, const char *file,
                                       const char *dir_env, trellis_reason_t *reason);

/* The duration and size syntaxes above, for callers with values of their own. *out is 0 on
 * failure. Errors: INVALID_ARG (NULL), PARSE (malformed, or a duration without unit), TOO_LARGE
 * (beyond LLONG_MAX). */
trellis_err_t trellis_conf_parse_duration(const char *text, long long *out_ms);
trellis_err_t trellis_conf_parse_size(const char *text, long long *out_bytes);

#endif /* TRELLIS_CONF_H */
