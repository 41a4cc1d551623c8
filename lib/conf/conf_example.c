/* The example config file (etc/NAME.conf.example) from the option table: every option with its
 * help, type and bounds, commented out at its default, so uncommenting changes nothing. */
#include <stdio.h>

#include "conf_internal.h"

trellis_err_t trellis_conf_format_example(const trellis_conf_spec_t *spec, char *out,
                                          size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__conf_text_t t;
    char bounds[80];
    char var[TR__CONF_ENV_NAME_MAX];

    tr__conf_text_init(&t, out, out_size);
    if (out_len == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    *out_len = 0;
    err = trellis_conf_check_spec(spec, NULL);
    if (err != TRELLIS_OK)
        goto out;

    tr__conf_text_printf(&t, "# Example configuration of %s.\n", spec->program);
    if (spec->summary != NULL)
        tr__conf_text_printf(&t, "# %s\n", spec->summary);
    tr__conf_text_printf(&t, "#\n# Generated from the option table, like --help: every option is "
                             "shown commented out\n# at its default.");
    if (spec->env_prefix != NULL)
        tr__conf_text_printf(&t,
                             " Environment variables %s_NAME and flags --NAME\n# override "
                             "this file.",
                             spec->env_prefix);
    else
        tr__conf_text_printf(&t, " Flags --NAME override this file.");
    tr__conf_text_printf(&t, "\n# Durations take ms, s, m, h, d (like 1h30m); sizes take k, M, G "
                             "(powers of 1024).\n# Values are taken literally: no quotes.\n\n");
    tr__conf_text_printf(&t, "[%s]\n", spec->section);

    for (size_t i = 0; i < spec->n_options; i++) {
        const trellis_conf_option_t *opt = &spec->options[i];
        tr__conf_format_bounds(opt, bounds, sizeof(bounds));
        tr__conf_text_printf(&t, "\n# %s\n# %s%s%s", opt->help, tr__conf_type_name(opt->type),
                             bounds[0] ? ", " : "", bounds);
        if (opt->flags & TRELLIS_CONF_SECRET) {
            /* A secret's default is not shown, and the file holding it should be 0600. */
            tr__conf_text_printf(&t, "; secret: keep this file private");
            if (spec->env_prefix != NULL &&
                tr__conf_env_name(spec, opt->name, var, sizeof(var)) == TRELLIS_OK)
                tr__conf_text_printf(&t, " or set %s", var);
            tr__conf_text_printf(&t, "\n#%s =\n", opt->name);
            continue;
        }
        tr__conf_text_printf(&t, "\n#%s = %s\n", opt->name,
                             opt->def != NULL                   ? opt->def
                             : opt->type == TRELLIS_CONF_BOOL   ? "false"
                             : opt->type == TRELLIS_CONF_STRING ? ""
                                                                : "0");
    }
    err = tr__conf_text_finish(&t, out_len);
out:
    return err;
}

trellis_err_t trellis_conf_print_example(const trellis_conf_spec_t *spec, FILE *f)
{
    return tr__conf_print(spec, f, trellis_conf_format_example);
}
