/* Values: parsing text into a typed field with bounds, and formatting bounds back to text. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf_internal.h"

enum parse_status {
    PARSE_OK = 0,
    PARSE_MALFORMED = -1,
    PARSE_RANGE = -2,
    PARSE_NO_UNIT = -3,
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Accumulates a decimal digit run at *p into *v, refusing overflow of LLONG_MAX. */
static enum parse_status parse_digits(const char **p, long long *v)
{
    *v = 0;
    if (!is_digit(**p))
        return PARSE_MALFORMED;
    for (; is_digit(**p); (*p)++) {
        int d = **p - '0';
        if (*v > (LLONG_MAX - d) / 10)
            return PARSE_RANGE;
        *v = *v * 10 + d;
    }
    return PARSE_OK;
}

static enum parse_status parse_int(const char *s, long long *out)
{
    /* strtoll alone would accept leading whitespace, "0x" prefixes in base 0 and empty text. */
    const char *p = s + (s[0] == '+' || s[0] == '-');
    if (!is_digit(*p))
        return PARSE_MALFORMED;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == NULL || *end != '\0')
        return PARSE_MALFORMED;
    if (errno == ERANGE)
        return PARSE_RANGE;
    *out = v;
    return PARSE_OK;
}

static enum parse_status parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return PARSE_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return PARSE_OK;
        }
    }
    return PARSE_MALFORMED;
}

/* Units from largest to smallest; a duration uses each at most once, in this order. */
static const struct {
    const char *name;
    long long ms;
} duration_units[] = {
    {"d", 86400000LL}, {"h", 3600000LL}, {"m", 60000LL}, {"s", 1000LL}, {"ms", 1LL},
};
#define N_DURATION_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))

static enum parse_status parse_duration(const char *s, long long *out)
{
    const char *p = s;
    long long total = 0;
    size_t next_unit = 0; /* the first unit still allowed */

    if (strcmp(s, "0") == 0) {
        *out = 0;
        return PARSE_OK;
    }
    if (*p == '\0')
        return PARSE_MALFORMED;
    while (*p != '\0') {
        long long v = 0;
        enum parse_status st = parse_digits(&p, &v);
        if (st != PARSE_OK)
            return st;
        const char *unit = p;
        while (*p >= 'a' && *p <= 'z')
            p++;
        size_t unit_len = (size_t)(p - unit);
        if (unit_len == 0)
            return *p == '\0' ? PARSE_NO_UNIT : PARSE_MALFORMED;
        size_t u = next_unit;
        while (u < N_DURATION_UNITS && (strlen(duration_units[u].name) != unit_len ||
                                        memcmp(duration_units[u].name, unit, unit_len) != 0))
            u++;
        if (u == N_DURATION_UNITS)
            return PARSE_MALFORMED;
        if (v > LLONG_MAX / duration_units[u].ms)
            return PARSE_RANGE;
        long long part = v * duration_units[u].ms;
        if (total > LLONG_MAX - part)
            return PARSE_RANGE;
        total += part;
        next_unit = u + 1;
    }
    *out = total;
    return PARSE_OK;
}

static enum parse_status parse_size(const char *s, long long *out)
{
    static const struct {
        const char *suffix;
        long long factor;
    } suffixes[] = {
        {"", 1LL},        {"k", 1LL << 10},   {"K", 1LL << 10},   {"KiB", 1LL << 10},
        {"m", 1LL << 20}, {"M", 1LL << 20},   {"MiB", 1LL << 20}, {"g", 1LL << 30},
        {"G", 1LL << 30}, {"GiB", 1LL << 30},
    };
    const char *p = s;
    long long v = 0;
    enum parse_status st = parse_digits(&p, &v);
    if (st != PARSE_OK)
        return st;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcmp(p, suffixes[i].suffix) != 0)
            continue;
        if (v > LLONG_MAX / suffixes[i].factor)
            return PARSE_RANGE;
        *out = v * suffixes[i].factor;
        return PARSE_OK;
    }
    return PARSE_MALFORMED;
}

static trellis_err_t public_status(enum parse_status st)
{
    switch (st) {
    case PARSE_OK:
        return TRELLIS_OK;
    case PARSE_RANGE:
        return TRELLIS_ERR_TOO_LARGE;
    case PARSE_MALFORMED:
    case PARSE_NO_UNIT:
        break;
    }
    return TRELLIS_ERR_PARSE;
}

trellis_err_t trellis_conf_parse_duration(const char *text, long long *out_ms)
{
    long long v = 0;
    if (out_ms != NULL)
        *out_ms = 0;
    if (text == NULL || out_ms == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = public_status(parse_duration(text, &v));
    if (err == TRELLIS_OK)
        *out_ms = v;
    return err;
}

trellis_err_t trellis_conf_parse_size(const char *text, long long *out_bytes)
{
    long long v = 0;
    if (out_bytes != NULL)
        *out_bytes = 0;
    if (text == NULL || out_bytes == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = public_status(parse_size(text, &v));
    if (err == TRELLIS_OK)
        *out_bytes = v;
    return err;
}

void tr__conf_format_ms(long long ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "0");
        return;
    }
    for (size_t u = 0; u < N_DURATION_UNITS; u++) {
        if (ms % duration_units[u].ms == 0) {
            snprintf(buf, size, "%lld%s", ms / duration_units[u].ms, duration_units[u].name);
            return;
        }
    }
}

void tr__conf_format_bytes(long long bytes, char *buf, size_t size)
{
    static const struct {
        const char *suffix;
        long long factor;
    } units[] = {{"G", 1LL << 30}, {"M", 1LL << 20}, {"k", 1LL << 10}};
    for (size_t u = 0; bytes != 0 && u < sizeof(units) / sizeof(units[0]); u++) {
        if (bytes % units[u].factor == 0) {
            snprintf(buf, size, "%lld%s", bytes / units[u].factor, units[u].suffix);
            return;
        }
    }
    snprintf(buf, size, "%lld", bytes);
}

/* One bound of opt in its own syntax. */
static void format_number(const trellis_conf_option_t *opt, long long v, char *buf, size_t size)
{
    if (opt->type == TRELLIS_CONF_DURATION)
        tr__conf_format_ms(v, buf, size);
    else if (opt->type == TRELLIS_CONF_SIZE)
        tr__conf_format_bytes(v, buf, size);
    else
        snprintf(buf, size, "%lld", v);
}

void tr__conf_format_bounds(const trellis_conf_option_t *opt, char *buf, size_t size)
{
    char lo[32], hi[32];
    if (opt->type == TRELLIS_CONF_STRING || opt->type == TRELLIS_CONF_BOOL) {
        snprintf(buf, size, "%s", "");
        return;
    }
    format_number(opt, opt->min, lo, sizeof(lo));
    format_number(opt, opt->max, hi, sizeof(hi));
    snprintf(buf, size, "%s..%s", lo, hi);
}

/*
 * How a value is quoted in a reason: at most 40 characters, bytes outside printable ASCII as
 * '?', and for a secret not at all.
 */
static void show_value(const trellis_conf_option_t *opt, const char *value, bool quoted, char *buf,
                       size_t size)
{
    char clean[48];
    size_t n = 0;
    if (opt->flags & TRELLIS_CONF_SECRET) {
        snprintf(buf, size, "the value");
        return;
    }
    for (; value[n] != '\0' && n < 40; n++) {
        unsigned char c = (unsigned char)value[n];
        clean[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    clean[n] = '\0';
    snprintf(buf, size, "%s%s%s%s", quoted ? "'" : "", clean, value[n] != '\0' ? "..." : "",
             quoted ? "'" : "");
}

static trellis_err_t check_bounds(const trellis_conf_option_t *opt, long long v, const char *value,
                                  const char *label, trellis_err_t fail_code,
                                  trellis_reason_t *reason)
{
    char shown[64], bound[32];
    if (v >= opt->min && v <= opt->max)
        return TRELLIS_OK;
    show_value(opt, value, false, shown, sizeof(shown));
    format_number(opt, v < opt->min ? opt->min : opt->max, bound, sizeof(bound));
    return trellis_reason_set(reason, fail_code, "%s: %s is %s the %s %s", label, shown,
                              v < opt->min ? "below" : "above",
                              v < opt->min ? "minimum" : "maximum", bound);
}

trellis_err_t tr__conf_assign(const trellis_conf_option_t *opt, void *cfg, const char *value,
                              const char *label, trellis_err_t fail_code, trellis_reason_t *reason)
{
    char shown[64];
    long long v = 0;
    bool b = false;
    enum parse_status st = PARSE_OK;

    if (value == NULL)
        value = opt->type == TRELLIS_CONF_BOOL     ? "false"
                : opt->type == TRELLIS_CONF_STRING ? ""
                                                   : "0";
    for (const char *p = value; *p; p++) {
        /* A newline or escape in a value would end up in logs and generated config files. */
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return trellis_reason_set(reason, fail_code, "%s: control character in the value",
                                      label);
    }
    show_value(opt, value, true, shown, sizeof(shown));

    switch (opt->type) {
    case TRELLIS_CONF_STRING: {
        size_t len = strlen(value);
        if (len >= opt->size)
            return trellis_reason_set(reason, fail_code,
                                      "%s: the value has %zu characters, at most %zu fit", label,
                                      len, opt->size - 1);
        if (cfg != NULL) {
            char *field = (char *)cfg + opt->offset;
            memset(field, 0, opt->size);
            memcpy(field, value, len);
        }
        return TRELLIS_OK;
    }
    case TRELLIS_CONF_BOOL:
        if (parse_bool(value, &b) != PARSE_OK)
            return trellis_reason_set(reason, fail_code,
                                      "%s: %s is not a bool (true/false, yes/no, on/off, 1/0)",
                                      label, shown);
        if (cfg != NULL)
            memcpy((char *)cfg + opt->offset, &b, sizeof(b));
        return TRELLIS_OK;
    case TRELLIS_CONF_INT:
        st = parse_int(value, &v);
        if (st == PARSE_MALFORMED)
            return trellis_reason_set(reason, fail_code, "%s: %s is not an integer", label, shown);
        break;
    case TRELLIS_CONF_DURATION:
        st = parse_duration(value, &v);
        if (st == PARSE_NO_UNIT)
            return trellis_reason_set(reason, fail_code, "%s: %s needs a unit (ms, s, m, h, d)",
                                      label, shown);
        if (st == PARSE_MALFORMED)
            return trellis_reason_set(reason, fail_code,
                                      "%s: %s is not a duration (like 250ms, 30s, 1h30m)", label,
                                      shown);
        break;
    case TRELLIS_CONF_SIZE:
        st = parse_size(value, &v);
        if (st == PARSE_MALFORMED)
            return trellis_reason_set(reason, fail_code,
                                      "%s: %s is not a size (like 512, 64k, 1M; k, M, G = 1024^n)",
                                      label, shown);
        break;
    default:
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "%s: unknown option type",
                                  label);
    }
    if (st == PARSE_RANGE)
        return trellis_reason_set(reason, fail_code, "%s: %s is out of range", label, shown);
    trellis_err_t err = check_bounds(opt, v, value, label, fail_code, reason);
    if (err != TRELLIS_OK || cfg == NULL)
        return err;

    char *field = (char *)cfg + opt->offset;
    if (opt->type == TRELLIS_CONF_SIZE) {
        size_t z = (size_t)v;
        memcpy(field, &z, sizeof(z));
    } else if (opt->type == TRELLIS_CONF_INT && opt->size == sizeof(int)) {
        int i = (int)v; /* the table check keeps int bounds within INT_MIN..INT_MAX */
        memcpy(field, &i, sizeof(i));
    } else {
        memcpy(field, &v, sizeof(v));
    }
    return TRELLIS_OK;
}
