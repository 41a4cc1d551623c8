/* One-line error reports of the command-line tools (error.h). */
#include <stdarg.h>
#include <stdio.h>

#include "trellis/error.h"

void trellis_report_error(const char *program, const char *what, const char *suffix,
                          const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    fprintf(stderr, "%s %s: %s%s\n", program, what, msg, suffix);
}
