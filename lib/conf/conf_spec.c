/* The option table: its validation and lookups. A bad table is a programming error, caught by
 * the first call (and by each service's unit test) rather than by an operator at 3 a.m. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf_internal.h"

static bool is_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool has_control_char(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* lowercase letters, digits and single inner '-', starting with a letter */
static bool valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TRELLIS_CONF_NAME_MAX || name[0] < 'a' || name[0] > 'z' ||
        name[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '-' ? name[i + 1] == '-' : !is_lower_or_digit(name[i]))
            return false;
    }
    return true;
}

static bool valid_section(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > TRELLIS_CONF_NAME_MAX)
        return false;
    for (; *s; s++) {
        if (!is_lower_or_digit(*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    }
    return true;
}

static bool valid_env_prefix(const char *s)
{
    if (s[0] == '\0' || strlen(s) > TR__CONF_ENV_PREFIX_MAX)
        return false;
    for (; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    }
    return true;
}

static bool size_fits_type(const trellis_conf_option_t *opt)
{
    switch (opt->type) {
    case TRELLIS_CONF_STRING:
        return opt->size >= 2;
    case TRELLIS_CONF_INT:
        return opt->size == sizeof(int) || opt->size == sizeof(long long);
    case TRELLIS_CONF_BOOL:
        return opt->size == sizeof(bool);
    case TRELLIS_CONF_DURATION:
        return opt->size == sizeof(long long);
    case TRELLIS_CONF_SIZE:
        return opt->size == sizeof(size_t);
    }
    return false;
}

static bool bounds_fit_type(const trellis_conf_option_t *opt)
{
    switch (opt->type) {
    case TRELLIS_CONF_STRING:
    case TRELLIS_CONF_BOOL:
        return opt->min == 0 && opt->max == 0;
    case TRELLIS_CONF_INT:
        if (opt->size == sizeof(int) && (opt->min < INT_MIN || opt->max > INT_MAX))
            return false;
        return opt->min < opt->max;
    case TRELLIS_CONF_DURATION:
    case TRELLIS_CONF_SIZE:
        return opt->min >= 0 && opt->min < opt->max;
    }
    return false;
}

/* Checks one row; i names it in the reason when its name cannot be trusted. */
static trellis_err_t check_option(const trellis_conf_spec_t *spec, size_t i,
                                  trellis_reason_t *reason)
{
    const trellis_conf_option_t *opt = &spec->options[i];
    if (opt->name == NULL || !valid_name(opt->name))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: row %zu has an invalid name", i);
    if (strcmp(opt->name, "help") == 0 || strcmp(opt->name, "config") == 0 ||
        strncmp(opt->name, "no-", 3) == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' is a reserved name", opt->name);
    if (opt->help == NULL || has_control_char(opt->help))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' needs a one-line help", opt->name);
    if (tr__conf_type_name(opt->type)[0] == '?' || !size_fits_type(opt))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' has a field size unfit for its type",
                                  opt->name);
    if (opt->offset > spec->cfg_size || opt->size > spec->cfg_size - opt->offset)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' lies outside the config struct", opt->name);
    if (!bounds_fit_type(opt))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' has bounds unfit for its type", opt->name);
    if ((opt->flags & ~TRELLIS_CONF_SECRET) != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "option table: '%s' has unknown flags", opt->name);
    for (size_t j = 0; j < i; j++) {
        const trellis_conf_option_t *o = &spec->options[j];
        if (strcmp(o->name, opt->name) == 0)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "option table: '%s' appears twice", opt->name);
        if (opt->offset < o->offset + o->size && o->offset < opt->offset + opt->size)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "option table: '%s' overlaps the field of '%s'", opt->name,
                                      o->name);
    }
    char label[TR__CONF_LABEL_MAX];
    snprintf(label, sizeof(label), "option table: '%s' default", opt->name);
    return tr__conf_assign(opt, NULL, opt->def, label, TRELLIS_ERR_INVALID_ARG, reason);
}

trellis_err_t trellis_conf_check_spec(const trellis_conf_spec_t *spec, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    if (spec == NULL || spec->program == NULL || spec->cfg_size == 0 ||
        (spec->options == NULL && spec->n_options > 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "option table: incomplete spec");
        goto out;
    }
    if (spec->n_options > TRELLIS_CONF_MAX_OPTIONS) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "option table: more than %d options", TRELLIS_CONF_MAX_OPTIONS);
        goto out;
    }
    if (!valid_section(spec->section)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "option table: invalid section name");
        goto out;
    }
    if (spec->env_prefix != NULL && !valid_env_prefix(spec->env_prefix)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "option table: invalid environment prefix");
        goto out;
    }
    if ((spec->summary != NULL && has_control_char(spec->summary)) ||
        has_control_char(spec->program) || (spec->args != NULL && has_control_char(spec->args)) ||
        (spec->default_path != NULL && has_control_char(spec->default_path))) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "option table: control character in the spec's texts");
        goto out;
    }
    for (size_t i = 0; i < spec->n_options; i++) {
        err = check_option(spec, i, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = TRELLIS_OK;
out:
    return err;
}

const trellis_conf_option_t *tr__conf_find(const trellis_conf_spec_t *spec, const char *name,
                                           size_t len)
{
    for (size_t i = 0; i < spec->n_options; i++) {
        const char *n = spec->options[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0)
            return &spec->options[i];
    }
    return NULL;
}

const char *tr__conf_type_name(trellis_conf_type_t type)
{
    switch (type) {
    case TRELLIS_CONF_STRING:
        return "string";
    case TRELLIS_CONF_INT:
        return "int";
    case TRELLIS_CONF_BOOL:
        return "bool";
    case TRELLIS_CONF_DURATION:
        return "duration";
    case TRELLIS_CONF_SIZE:
        return "size";
    }
    return "?";
}

trellis_err_t tr__conf_env_name(const trellis_conf_spec_t *spec, const char *option, char *buf,
                                size_t size)
{
    int n = snprintf(buf, size, "%s_%s", spec->env_prefix, option);
    if (n < 0 || (size_t)n >= size)
        return TRELLIS_ERR_INVALID_ARG;
    /* The option part: lowercase to uppercase, '-' to '_' (the prefix is uppercase already). */
    for (char *p = buf + strlen(spec->env_prefix) + 1; *p; p++) {
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        else if (*p == '-')
            *p = '_';
    }
    return TRELLIS_OK;
}

void tr__conf_short_path(const char *path, char *buf, size_t size)
{
    /* Keep room in a reason for the message itself: the end of a path names the file. */
    size_t len = strlen(path);
    size_t keep = size > 4 ? size - 4 : 0;
    if (len <= size - 1)
        snprintf(buf, size, "%s", path);
    else
        snprintf(buf, size, "...%s", path + (len - keep));
}

void *tr__conf_scratch_new(const trellis_conf_spec_t *spec, const void *cfg)
{
    void *scratch = malloc(spec->cfg_size);
    if (scratch != NULL)
        memcpy(scratch, cfg, spec->cfg_size);
    return scratch;
}

void tr__conf_scratch_free(const trellis_conf_spec_t *spec, void *scratch)
{
    if (scratch == NULL)
        return;
    /* The copy may hold a secret option. */
    OPENSSL_cleanse(scratch, spec->cfg_size);
    free(scratch);
}
