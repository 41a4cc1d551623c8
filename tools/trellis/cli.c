/* One-line error reporting shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>

#include "commands.h"

static void print_line(const char *what, const char *fmt, va_list ap, const char *suffix)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 0)))
#endif
    ;

static void print_line(const char *what, const char *fmt, va_list ap, const char *suffix)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    fprintf(stderr, "trellis %s: %s%s\n", what, msg, suffix);
}

int tr__cli_fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(what, fmt, ap, "");
    va_end(ap);
    return TR__EXIT_FAILURE;
}

int tr__cli_usage(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(what, fmt, ap, " (see --help)");
    va_end(ap);
    return TR__EXIT_USAGE;
}
