/* --help from the option table: one aligned line per option, then where else values come from. */
#include <stdio.h>
#include <string.h>

#include "conf_internal.h"

/* Widths past which a column stops pushing the next one out; longer cells just overflow. */
#define FLAG_COLUMN_MAX    32
#define DEFAULT_COLUMN_MAX 24

static void flag_text(const trellis_conf_option_t *opt, char *buf, size_t size)
{
    snprintf(buf, size, "--%s%s", opt->type == TRELLIS_CONF_BOOL ? "[no-]" : "", opt->name);
}

static void default_text(const trellis_conf_option_t *opt, char *buf, size_t size)
{
    if (opt->flags & TRELLIS_CONF_SECRET)
        snprintf(buf, size, "(secret)");
    else if (opt->def == NULL || opt->def[0] == '\0')
        snprintf(buf, size, "%s", opt->type == TRELLIS_CONF_STRING ? "\"\"" : "0");
    else
        snprintf(buf, size, "%s", opt->def);
}

/* Widens a column to fit text, up to its maximum. */
static void widen(int *width, const char *text, int max)
{
    int w = (int)strlen(text);
    if (w > *width && w <= max)
        *width = w;
}

trellis_err_t trellis_conf_format_help(const trellis_conf_spec_t *spec, char *out, size_t out_size,
                                       size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__conf_text_t t;
    int flag_w = (int)strlen("-h, --help");
    int def_w = (int)strlen("default");
    const char *config_def = NULL;
    char flag[TRELLIS_CONF_NAME_MAX + 16];
    char def[TRELLIS_CONF_NAME_MAX + 16];
    char bounds[80];

    tr__conf_text_init(&t, out, out_size);
    if (out_len == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    *out_len = 0;
    err = trellis_conf_check_spec(spec, NULL);
    if (err != TRELLIS_OK)
        goto out;

    config_def = spec->default_path != NULL ? spec->default_path : "(none)";
    widen(&def_w, config_def, DEFAULT_COLUMN_MAX);
    for (size_t i = 0; i < spec->n_options; i++) {
        flag_text(&spec->options[i], flag, sizeof(flag));
        default_text(&spec->options[i], def, sizeof(def));
        widen(&flag_w, flag, FLAG_COLUMN_MAX);
        widen(&def_w, def, DEFAULT_COLUMN_MAX);
    }

    tr__conf_text_printf(&t, "Usage: %s [OPTIONS]%s%s\n", spec->program, spec->args ? " " : "",
                         spec->args ? spec->args : "");
    if (spec->summary != NULL)
        tr__conf_text_printf(&t, "%s\n", spec->summary);
    tr__conf_text_printf(&t, "\nOptions:\n");
    tr__conf_text_printf(&t, "  %-*s  %-8s  %-*s  %s\n", flag_w, "flag", "type", def_w, "default",
                         "meaning");
    for (size_t i = 0; i < spec->n_options; i++) {
        const trellis_conf_option_t *opt = &spec->options[i];
        flag_text(opt, flag, sizeof(flag));
        default_text(opt, def, sizeof(def));
        tr__conf_format_bounds(opt, bounds, sizeof(bounds));
        tr__conf_text_printf(&t, "  %-*s  %-8s  %-*s  %s%s%s%s\n", flag_w, flag,
                             tr__conf_type_name(opt->type), def_w, def, opt->help,
                             bounds[0] ? " (" : "", bounds, bounds[0] ? ")" : "");
    }
    tr__conf_text_printf(&t, "  %-*s  %-8s  %-*s  %s\n", flag_w, "--config", "path", def_w,
                         config_def,
                         spec->default_path != NULL ? "the config file to read (if present)"
                                                    : "the config file to read");
    tr__conf_text_printf(&t, "  %-*s  %-8s  %-*s  %s\n", flag_w, "-h, --help", "", def_w, "",
                         "print this help and exit");

    tr__conf_text_printf(&t,
                         "\nEvery option can also be set as NAME = VALUE in the [%s] section "
                         "of the config file",
                         spec->section);
    if (spec->env_prefix != NULL) {
        tr__conf_text_printf(&t,
                             ",\nor in the environment as %s_NAME (NAME uppercased, '-' as '_').\n",
                             spec->env_prefix);
        tr__conf_text_printf(&t, "%s_CONFIG names the config file.\n", spec->env_prefix);
        tr__conf_text_printf(&t, "Flags override the environment, which overrides the file.\n");
    } else {
        tr__conf_text_printf(&t, ".\nFlags override the file.\n");
    }
    tr__conf_text_printf(&t, "Durations take ms, s, m, h, d (like 1h30m); sizes take k, M, G "
                             "(powers of 1024).\n");
    err = tr__conf_text_finish(&t, out_len);
out:
    return err;
}

trellis_err_t trellis_conf_print_help(const trellis_conf_spec_t *spec, FILE *f)
{
    return tr__conf_print(spec, f, trellis_conf_format_help);
}
