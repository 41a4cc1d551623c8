/* The environment source: PREFIX_NAME for each option of the table. */
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

trellis_err_t trellis_conf_load_env(const trellis_conf_spec_t *spec, void *cfg,
                                    trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    void *scratch = NULL;
    char var[TR__CONF_ENV_NAME_MAX];

    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "environment: NULL argument");
        goto out;
    }
    if (spec->env_prefix == NULL) {
        err = TRELLIS_OK;
        goto out;
    }
    scratch = tr__conf_scratch_new(spec, cfg);
    if (scratch == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "environment: out of memory");
        goto out;
    }
    for (size_t i = 0; i < spec->n_options; i++) {
        const trellis_conf_option_t *opt = &spec->options[i];
        /* The table check bounds the prefix and the name, so the variable name always fits. */
        if (tr__conf_env_name(spec, opt->name, var, sizeof(var)) != TRELLIS_OK) {
            err = trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "environment: name too long");
            goto out;
        }
        const char *value = getenv(var);
        if (value == NULL)
            continue;
        err = tr__conf_assign(opt, scratch, value, var, TRELLIS_ERR_CONFIG, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    memcpy(cfg, scratch, spec->cfg_size);
    err = TRELLIS_OK;
out:
    tr__conf_scratch_free(spec, scratch);
    return err;
}
