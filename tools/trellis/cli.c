/* One-line error reporting and subcommand dispatch shared by the commands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "trellis/error.h"

int tr__cli_fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trellis_report_error("trellis", what, "", fmt, ap);
    va_end(ap);
    return TR__EXIT_FAILURE;
}

int tr__cli_usage(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    trellis_report_error("trellis", what, " (see --help)", fmt, ap);
    va_end(ap);
    return TR__EXIT_USAGE;
}

static void group_usage(const tr__command_group_t *g, FILE *out)
{
    int width = 8;
    for (size_t i = 0; i < g->n_subs; i++) {
        int len = (int)strlen(g->subs[i].name) + 1;
        if (len > width)
            width = len;
    }
    fprintf(out, "usage: trellis %s %s\n\n%s\ncommands:\n", g->group, g->synopsis, g->intro);
    for (size_t i = 0; i < g->n_subs; i++)
        fprintf(out, "  %-*s %s\n", width, g->subs[i].name, g->subs[i].help);
    fputs(g->outro, out);
}

int tr__cli_dispatch(const tr__command_group_t *g, int argc, char **argv)
{
    if (argc < 2) {
        group_usage(g, stderr);
        return TR__EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        group_usage(g, stdout);
        return TR__EXIT_OK;
    }
    for (size_t i = 0; i < g->n_subs; i++) {
        if (strcmp(argv[1], g->subs[i].name) == 0)
            return g->subs[i].fn(argc - 1, argv + 1);
    }
    return tr__cli_usage(g->group, "unknown command '%s'", argv[1]);
}
