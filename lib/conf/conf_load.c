/* Defaults, single assignments and the all-sources load, in precedence order. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_internal.h"

trellis_err_t trellis_conf_defaults(const trellis_conf_spec_t *spec, void *cfg,
                                    trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "defaults: NULL argument");
        goto out;
    }
    memset(cfg, 0, spec->cfg_size);
    for (size_t i = 0; i < spec->n_options; i++) {
        /* Cannot fail: trellis_conf_check_spec validated every default. */
        err = tr__conf_assign(&spec->options[i], cfg, spec->options[i].def, spec->options[i].name,
                              TRELLIS_ERR_INVALID_ARG, reason);
        if (err != TRELLIS_OK) {
            memset(cfg, 0, spec->cfg_size);
            goto out;
        }
    }
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_conf_set(const trellis_conf_spec_t *spec, void *cfg, const char *name,
                               const char *value, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const trellis_conf_option_t *opt = NULL;

    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL || name == NULL || value == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "set: NULL argument");
        goto out;
    }
    opt = tr__conf_find(spec, name, strlen(name));
    if (opt == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOT_FOUND, "unknown option '%.48s'", name);
        goto out;
    }
    /* tr__conf_assign stores nothing unless the value is valid. */
    err = tr__conf_assign(opt, cfg, value, opt->name, TRELLIS_ERR_CONFIG, reason);
out:
    return err;
}

/* Which file to read: --config, else PREFIX_CONFIG, else the spec's default if it exists.
 * *required tells whether its absence is an error. NULL when there is none. */
static const char *pick_config_path(const trellis_conf_spec_t *spec, const trellis_conf_cli_t *cli,
                                    bool *required)
{
    *required = true;
    if (cli->config_path != NULL)
        return cli->config_path;
    if (spec->env_prefix != NULL) {
        char var[TR__CONF_ENV_NAME_MAX];
        const char *env = NULL;
        if (tr__conf_env_name(spec, "config", var, sizeof(var)) == TRELLIS_OK)
            env = getenv(var);
        if (env != NULL && env[0] != '\0')
            return env;
    }
    *required = false;
    if (spec->default_path != NULL && access(spec->default_path, F_OK) == 0)
        return spec->default_path;
    return NULL;
}

trellis_err_t trellis_conf_load(const trellis_conf_spec_t *spec, void *cfg, int *argc, char **argv,
                                trellis_conf_cli_t *cli, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    void *scratch = NULL;
    char **positional = NULL;
    int n_positional = 0;
    trellis_conf_cli_t found = {.config_path = NULL, .help = false};
    const char *path = NULL;
    bool required = false;

    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL || argc == NULL || argv == NULL || cli == NULL || *argc < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "command line: bad argument");
        goto out;
    }
    scratch = malloc(spec->cfg_size);
    positional = calloc((size_t)*argc + 1, sizeof(*positional));
    if (scratch == NULL || positional == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "configuration: out of memory");
        goto out;
    }
    err = trellis_conf_defaults(spec, scratch, reason);
    if (err != TRELLIS_OK)
        goto out;

    /* The flags come last in precedence but first in time: they may name the file, ask for
     * help or be wrong, which should be said before the file is even opened. This pass only
     * validates. */
    err = tr__conf_walk_args(spec, NULL, *argc, argv, &found, positional, &n_positional, reason);
    if (err != TRELLIS_OK)
        goto out;

    if (!found.help) {
        path = pick_config_path(spec, &found, &required);
        if (path != NULL) {
            err = trellis_conf_load_file(spec, scratch, path, reason);
            if (err == TRELLIS_ERR_NOT_FOUND && !required)
                err = TRELLIS_OK; /* the default file vanished since access(); still optional */
            if (err != TRELLIS_OK)
                goto out;
        }
        err = trellis_conf_load_env(spec, scratch, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = tr__conf_walk_args(spec, scratch, *argc, argv, &found, positional, &n_positional, reason);
    if (err != TRELLIS_OK)
        goto out;

    memcpy(cfg, scratch, spec->cfg_size);
    found.config_path = found.help ? found.config_path : path;
    *cli = found;
    if (*argc > 0) {
        for (int k = 0; k < n_positional; k++)
            argv[k + 1] = positional[k];
        argv[n_positional + 1] = NULL;
        *argc = n_positional + 1;
    }
    trellis_reason_clear(reason);
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && cfg != NULL && spec != NULL && spec->cfg_size > 0)
        memset(cfg, 0, spec->cfg_size);
    free(positional);
    tr__conf_scratch_free(spec, scratch);
    return err;
}
