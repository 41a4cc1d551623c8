/* Shared by the files of lib/conf only. */
#ifndef TRELLIS_CONF_INTERNAL_H
#define TRELLIS_CONF_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "trellis/conf.h"

/* Room for the source part of a reason: "--name", "PREFIX_NAME", "file:line: name". */
#define TR__CONF_LABEL_MAX 128
/* Room for a variable name: prefix (at most 64 characters), '_', option name, NUL. */
#define TR__CONF_ENV_PREFIX_MAX 64
#define TR__CONF_ENV_NAME_MAX   (TR__CONF_ENV_PREFIX_MAX + 1 + TRELLIS_CONF_NAME_MAX + 1)

/* The option called name[0..len), or NULL. */
const trellis_conf_option_t *tr__conf_find(const trellis_conf_spec_t *spec, const char *name,
                                           size_t len);

/* "string", "int", "bool", "duration", "size". */
const char *tr__conf_type_name(trellis_conf_type_t type);

/*
 * Parses value for opt and, if cfg is not NULL, stores it in cfg's field; with cfg NULL it only
 * validates. On a bad value returns fail_code with the reason "LABEL: what is wrong". Nothing is
 * stored unless the value is valid.
 */
trellis_err_t tr__conf_assign(const trellis_conf_option_t *opt, void *cfg, const char *value,
                              const char *label, trellis_err_t fail_code, trellis_reason_t *reason);

/* Bounds and defaults as people write them: 300000 ms -> "5m", 1048576 bytes -> "1M". */
void tr__conf_format_ms(long long ms, char *buf, size_t size);
void tr__conf_format_bytes(long long bytes, char *buf, size_t size);
/* "1..64", "100ms..5m", "1k..16M"; empty for string and bool. */
void tr__conf_format_bounds(const trellis_conf_option_t *opt, char *buf, size_t size);

/* The environment variable of an option: PREFIX_NAME. INVALID_ARG if it does not fit. */
trellis_err_t tr__conf_env_name(const trellis_conf_spec_t *spec, const char *option, char *buf,
                                size_t size);

/* A source path for reasons: kept as given unless long, then "..." and its tail. */
void tr__conf_short_path(const char *path, char *buf, size_t size);

/* A copy of cfg to change and commit only once a whole source has been applied. */
void *tr__conf_scratch_new(const trellis_conf_spec_t *spec, const void *cfg);
void tr__conf_scratch_free(const trellis_conf_spec_t *spec, void *scratch);

/* Flags walk behind trellis_conf_parse_args and trellis_conf_load: applies flags to cfg (NULL:
 * validate only), fills cli and stores the positional arguments, in order, in positional[]
 * (room for argc entries) and their count in *n_positional. */
trellis_err_t tr__conf_walk_args(const trellis_conf_spec_t *spec, void *cfg, int argc, char **argv,
                                 trellis_conf_cli_t *cli, char **positional, int *n_positional,
                                 trellis_reason_t *reason);

/* Text builder for --help and the example: counts what it could not store, like snprintf. */
typedef struct {
    char *out;
    size_t size;
    size_t len; /* length of the whole text, stored or not */
} tr__conf_text_t;

void tr__conf_text_init(tr__conf_text_t *t, char *out, size_t size);
void tr__conf_text_printf(tr__conf_text_t *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* OK with *out_len = length, or BUFFER_TOO_SMALL with *out_len = length + 1. */
trellis_err_t tr__conf_text_finish(tr__conf_text_t *t, size_t *out_len);

/* Formats with fn (format_help or format_example) into a buffer and writes it to f. */
trellis_err_t tr__conf_print(const trellis_conf_spec_t *spec, FILE *f,
                             trellis_err_t (*fn)(const trellis_conf_spec_t *, char *, size_t,
                                                 size_t *));

#endif /* TRELLIS_CONF_INTERNAL_H */
