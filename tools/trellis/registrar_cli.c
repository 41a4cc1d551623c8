/* Flag parsing and output helpers of `trellis registrar` (registrar_cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "registrar_cli.h"

bool tr__registrar_number(const char *text, long long min, long long max, long long *out)
{
    return tr__cli_number(text, min, max, out);
}

void tr__registrar_time_ms(int64_t ms, char out[32])
{
    tr__cli_time_ms(ms, out);
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
    tr__cli_print_json(json);
}

int tr__registrar_fail(const char *what, trellis_err_t err, const trellis_reason_t *why)
{
    return tr__cli_fail(what, "%s",
                        why != NULL && why->text[0] != '\0' ? why->text : trellis_err_message(err));
}

int tr__registrar_parse(const char *what, int argc, char **argv, const tr__rflag_t *flags,
                        size_t n_flags, bool need_config, tr__rargs_t *out)
{
    static char *rest[TR__CLI_ARGV_MAX + 1];
    int nrest = 0;
    trellis_reason_t why;
    trellis_conf_cli_t cli;

    memset(out, 0, sizeof(*out));
    int rc = tr__cli_take_flags(what, argc, argv, flags, n_flags, rest, &nrest, &out->help);
    if (rc != TR__EXIT_OK || out->help)
        return rc;
    if (!need_config) {
        out->pos = rest + 1;
        out->npos = nrest - 1;
        return tr__cli_reject_options(what, out->pos, out->npos);
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
