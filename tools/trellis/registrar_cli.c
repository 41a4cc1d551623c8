/* Flag parsing and output helpers of `trellis registrar` (registrar_cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "registrar_cli.h"

#define ARGV_MAX 256

bool tr__registrar_number(const char *text, long long min, long long max, long long *out)
{
    char *end = NULL;
    if (text == NULL || text[0] == '\0')
        return false;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void tr__registrar_time_ms(int64_t ms, char out[32])
{
    struct tm tm;
    time_t s = (time_t)(ms / 1000);
    if (ms <= 0 || gmtime_r(&s, &tm) == NULL) {
        snprintf(out, 32, "-");
        return;
    }
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

void tr__registrar_time_s(int64_t s, char out[32])
{
    struct tm tm;
    time_t t = (time_t)s;
    if (s <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "-");
        return;
    }
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tr__registrar_print_json(void *json)
{
    json_t *j = json;
    if (j == NULL)
        return;
    char *text = json_dumps(j, JSON_COMPACT);
    if (text != NULL)
        printf("%s\n", text);
    free(text);
    json_decref(j);
}

int tr__registrar_fail(const char *what, trellis_err_t err, const trellis_reason_t *why)
{
    return tr__cli_fail(what, "%s",
                        why != NULL && why->text[0] != '\0' ? why->text : trellis_err_message(err));
}

/* Matches "--name", "--name=value" against the subcommand's flags. Returns the flag, and for
 * "--name=value" sets *inline_value. */
static const tr__rflag_t *match(const char *arg, const tr__rflag_t *flags, size_t n,
                                const char **inline_value)
{
    *inline_value = NULL;
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    for (size_t i = 0; i < n; i++) {
        if (strlen(flags[i].name) == len && strncmp(name, flags[i].name, len) == 0) {
            if (name[len] == '=')
                *inline_value = name + len + 1;
            return &flags[i];
        }
    }
    return NULL;
}

int tr__registrar_parse(const char *what, int argc, char **argv, const tr__rflag_t *flags,
                        size_t n_flags, bool need_config, tr__rargs_t *out)
{
    static char *rest[ARGV_MAX + 1];
    int nrest = 0;
    trellis_reason_t why;
    trellis_conf_cli_t cli;

    memset(out, 0, sizeof(*out));
    if (argc > ARGV_MAX)
        return tr__cli_usage(what, "too many arguments");
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *inline_value = NULL;
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                rest[nrest++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            out->help = true;
            continue;
        }
        const tr__rflag_t *f = match(argv[i], flags, n_flags, &inline_value);
        if (f == NULL) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (f->flag != NULL) {
            if (inline_value != NULL)
                return tr__cli_usage(what, "--%s takes no value", f->name);
            *f->flag = true;
        } else if (inline_value != NULL) {
            *f->value = inline_value;
        } else if (i + 1 < argc) {
            *f->value = argv[++i];
        } else {
            return tr__cli_usage(what, "--%s needs a value", f->name);
        }
    }
    rest[nrest] = NULL;
    if (out->help)
        return TR__EXIT_OK;
    if (!need_config) {
        out->pos = rest + 1;
        out->npos = nrest - 1;
        for (int i = 0; i < out->npos; i++) {
            if (strncmp(out->pos[i], "--", 2) == 0)
                return tr__cli_usage(what, "unknown option '%s'", out->pos[i]);
        }
        return TR__EXIT_OK;
    }
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_config_load(&out->cfg, &nrest, rest, &cli, &why);
    if (err == TRELLIS_ERR_USAGE)
        return tr__cli_usage(what, "%s", why.text);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    out->pos = rest + 1;
    out->npos = nrest - 1;
    return TR__EXIT_OK;
}
