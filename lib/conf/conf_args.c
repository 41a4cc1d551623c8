/* The command-line source: long flags, bool negation, "--" and positional arguments. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_internal.h"

/* The first len characters of a flag as typed, for reasons: printable ASCII, at most 40. */
static void show_flag(const char *arg, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (; n < len && arg[n] != '\0' && n < 40 && n + 1 < size; n++) {
        unsigned char c = (unsigned char)arg[n];
        buf[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[n] = '\0';
}

/* The value of a flag that takes one: after '=', or the next argument. Returns NULL (with a
 * reason) if there is none; advances *i past a consumed argument. */
static const char *flag_value(const char *flag, size_t name_len, const char *eq, int argc,
                              char **argv, int *i, trellis_reason_t *reason)
{
    if (eq != NULL)
        return eq + 1;
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        trellis_reason_set(reason, TRELLIS_ERR_USAGE, "--%.*s: missing value", (int)name_len, flag);
        return NULL;
    }
    const char *next = argv[*i + 1];
    /* "--listen --workers 4" is a forgotten value, not a listen address of "--workers". */
    if (next[0] == '-' && next[1] == '-' && next[2] != '\0') {
        char shown[48];
        show_flag(next, strlen(next), shown, sizeof(shown));
        trellis_reason_set(reason, TRELLIS_ERR_USAGE,
                           "--%.*s: missing value before '%s' (use --%.*s=VALUE)", (int)name_len,
                           flag, shown, (int)name_len, flag);
        return NULL;
    }
    (*i)++;
    return next;
}

trellis_err_t tr__conf_walk_args(const trellis_conf_spec_t *spec, void *cfg, int argc, char **argv,
                                 trellis_conf_cli_t *cli, char **positional, int *n_positional,
                                 trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    bool flags_done = false;
    char label[TR__CONF_LABEL_MAX];
    char shown[48];

    *n_positional = 0;
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        const char *arg = argv[i];
        if (flags_done || arg[0] != '-' || arg[1] == '\0') {
            positional[(*n_positional)++] = argv[i];
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cli->help = true;
            continue;
        }
        show_flag(arg, strlen(arg), shown, sizeof(shown));
        if (arg[1] != '-') {
            err = trellis_reason_set(reason, TRELLIS_ERR_USAGE,
                                     "unknown flag '%s' (options are long: --name)", shown);
            goto out;
        }

        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (name_len == 6 && memcmp(name, "config", 6) == 0) {
            const char *path = flag_value(name, name_len, eq, argc, argv, &i, reason);
            if (path == NULL || path[0] == '\0') {
                err = path == NULL
                          ? TRELLIS_ERR_USAGE
                          : trellis_reason_set(reason, TRELLIS_ERR_USAGE, "--config: empty path");
                goto out;
            }
            cli->config_path = path;
            continue;
        }
        if (name_len == 4 && memcmp(name, "help", 4) == 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_USAGE, "--help takes no value");
            goto out;
        }

        const trellis_conf_option_t *opt = tr__conf_find(spec, name, name_len);
        bool negated = false;
        if (opt == NULL && name_len > 3 && memcmp(name, "no-", 3) == 0) {
            opt = tr__conf_find(spec, name + 3, name_len - 3);
            if (opt != NULL && opt->type != TRELLIS_CONF_BOOL) {
                err = trellis_reason_set(reason, TRELLIS_ERR_USAGE,
                                         "--%.*s: only a bool option can be negated", (int)name_len,
                                         name);
                goto out;
            }
            negated = opt != NULL;
        }
        if (opt == NULL) {
            show_flag(arg, name_len + 2, shown, sizeof(shown));
            err = trellis_reason_set(reason, TRELLIS_ERR_USAGE, "unknown flag '%s'", shown);
            goto out;
        }
        snprintf(label, sizeof(label), "--%s%s", negated ? "no-" : "", opt->name);
        if (opt->flags & TRELLIS_CONF_SECRET) {
            char var[TR__CONF_ENV_NAME_MAX];
            bool has_env = spec->env_prefix != NULL &&
                           tr__conf_env_name(spec, opt->name, var, sizeof(var)) == TRELLIS_OK;
            err = trellis_reason_set(reason, TRELLIS_ERR_USAGE,
                                     "%s: a secret is not taken from the command line, where "
                                     "other users can read it; use the config file%s%s",
                                     label, has_env ? " or " : "", has_env ? var : "");
            goto out;
        }

        const char *value = NULL;
        if (negated) {
            if (eq != NULL) {
                err = trellis_reason_set(reason, TRELLIS_ERR_USAGE, "%s takes no value", label);
                goto out;
            }
            value = "false";
        } else if (opt->type == TRELLIS_CONF_BOOL) {
            /* A bare bool flag never takes the next argument, which stays positional. */
            value = eq != NULL ? eq + 1 : "true";
        } else {
            value = flag_value(name, name_len, eq, argc, argv, &i, reason);
            if (value == NULL) {
                err = TRELLIS_ERR_USAGE;
                goto out;
            }
        }
        err = tr__conf_assign(opt, cfg, value, label, TRELLIS_ERR_USAGE, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_conf_parse_args(const trellis_conf_spec_t *spec, void *cfg, int *argc,
                                      char **argv, trellis_conf_cli_t *cli,
                                      trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    void *scratch = NULL;
    char **positional = NULL;
    int n_positional = 0;
    trellis_conf_cli_t found = {.config_path = NULL, .help = false};

    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL || argc == NULL || argv == NULL || cli == NULL || *argc < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "command line: bad argument");
        goto out;
    }
    scratch = tr__conf_scratch_new(spec, cfg);
    positional = calloc((size_t)*argc + 1, sizeof(*positional));
    if (scratch == NULL || positional == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "command line: out of memory");
        goto out;
    }
    err = tr__conf_walk_args(spec, scratch, *argc, argv, &found, positional, &n_positional, reason);
    if (err != TRELLIS_OK)
        goto out;

    /* Commit only now, so a failure leaves cfg, argv and cli as they were. */
    memcpy(cfg, scratch, spec->cfg_size);
    *cli = found;
    if (*argc > 0) {
        for (int k = 0; k < n_positional; k++)
            argv[k + 1] = positional[k];
        argv[n_positional + 1] = NULL;
        *argc = n_positional + 1;
    }
    err = TRELLIS_OK;
out:
    free(positional);
    tr__conf_scratch_free(spec, scratch);
    return err;
}
