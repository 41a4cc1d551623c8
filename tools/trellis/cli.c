/* One-line error reporting shared by the subcommands. */
#include <stdarg.h>
#include <stdio.h>

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
