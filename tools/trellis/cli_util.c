/* Flag splitting and output helpers shared by the subcommand families (cli_util.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli_util.h"
#include "commands.h"

bool tr__cli_number(const char *text, long long min, long long max, long long *out)
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

void tr__cli_time_ms(int64_t ms, char out[32])
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

void tr__cli_print_json(void *json)
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

/* Matches "--name", "--name=value" against the subcommand's flags. Returns the flag, and for
 * "--name=value" sets *inline_value. */
static const tr__cli_flag_t *match(const char *arg, const tr__cli_flag_t *flags, size_t n,
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

int tr__cli_take_flags(const char *what, int argc, char **argv, const tr__cli_flag_t *flags,
                       size_t n_flags, char **rest, int *nrest, bool *help)
{
    int k = 0;
    *help = false;
    *nrest = 0;
    if (argc < 1 || argc > TR__CLI_ARGV_MAX)
        return tr__cli_usage(what, "too many arguments");
    rest[k++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *inline_value = NULL;
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                rest[k++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            *help = true;
            continue;
        }
        const tr__cli_flag_t *f = match(argv[i], flags, n_flags, &inline_value);
        if (f == NULL) {
            rest[k++] = argv[i];
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
    rest[k] = NULL;
    *nrest = k;
    return TR__EXIT_OK;
}

int tr__cli_reject_options(const char *what, char **args, int n)
{
    for (int i = 0; i < n; i++) {
        if (strncmp(args[i], "--", 2) == 0)
            return tr__cli_usage(what, "unknown option '%s'", args[i]);
    }
    return TR__EXIT_OK;
}
