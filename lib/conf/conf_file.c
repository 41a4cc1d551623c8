/*
 * The INI file source, parsed by inih. inih reads lines through our reader, which is what lets
 * every error name its line (this inih build passes no line numbers to handlers) and lets us
 * refuse what inih would silently accept: lines longer than its buffer (it would split them),
 * NUL bytes (it would cut the value) and sections other than ours, even empty ones.
 */
#include <ini.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "conf_internal.h"
#include "trellis/fsutil.h"

struct file_ctx {
    const trellis_conf_spec_t *spec;
    void *cfg;
    char path[64]; /* as shown in reasons */
    const char *data;
    size_t len;
    size_t pos;
    int lineno;
    int set_at[TRELLIS_CONF_MAX_OPTIONS]; /* line that set each option, 0 if none */
    int failed_at;                        /* line of the first error we reported, 0 if none */
    trellis_err_t err;
    trellis_reason_t *reason;
};

/* Records the first error, "file:line: what". */
static void fail(struct file_ctx *ctx, const char *what)
{
    ctx->err = trellis_reason_set(ctx->reason, TRELLIS_ERR_CONFIG, "%s:%d: %s", ctx->path,
                                  ctx->lineno, what);
    ctx->failed_at = ctx->lineno;
}

/* Copies a name from the file for a reason: printable ASCII only, at most 40 characters. */
static void clean_name(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (; n < len && n < 40 && n + 1 < size; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[n] = '\0';
}

/* inih's fgets-like reader over the file already in memory. */
static char *read_line(char *str, int num, void *stream)
{
    struct file_ctx *ctx = stream;
    if (ctx->failed_at != 0 || ctx->pos >= ctx->len || num < 3)
        return NULL;
    const char *line = ctx->data + ctx->pos;
    const char *nl = memchr(line, '\n', ctx->len - ctx->pos);
    size_t n = nl != NULL ? (size_t)(nl - line) : ctx->len - ctx->pos;
    ctx->pos += n + (nl != NULL);
    ctx->lineno++;

    if (memchr(line, '\0', n) != NULL) {
        fail(ctx, "NUL byte in the line");
        return NULL;
    }
    /* inih strips a UTF-8 BOM itself; drop it here so the section check sees what inih sees. */
    if (ctx->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        n -= 3;
    }
    /* Indentation is dropped, so an indented line is never taken as a continuation of the
     * previous value (inih's multi-line values). */
    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    if (n + 2 > (size_t)num) {
        char what[64];
        snprintf(what, sizeof(what), "line longer than %d characters", num - 3);
        fail(ctx, what);
        return NULL;
    }
    if (n > 0 && line[0] == '[') {
        const char *close = memchr(line, ']', n);
        size_t name_len = close != NULL ? (size_t)(close - line - 1) : 0;
        if (close != NULL && (strlen(ctx->spec->section) != name_len ||
                              memcmp(line + 1, ctx->spec->section, name_len) != 0)) {
            char name[48], what[TR__CONF_LABEL_MAX];
            clean_name(line + 1, name_len, name, sizeof(name));
            snprintf(what, sizeof(what), "unknown section [%s] (expected [%s])", name,
                     ctx->spec->section);
            fail(ctx, what);
            return NULL;
        }
        /* Without ']' inih reports the syntax error itself. */
    }
    memcpy(str, line, n);
    str[n] = '\n';
    str[n + 1] = '\0';
    return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct file_ctx *ctx = user;
    char shown[48];
    if (ctx->failed_at != 0)
        return 0;
    clean_name(name, strlen(name), shown, sizeof(shown));
    if (strcmp(section, ctx->spec->section) != 0) {
        char what[TR__CONF_LABEL_MAX];
        snprintf(what, sizeof(what), "key '%s' outside section [%s]", shown, ctx->spec->section);
        fail(ctx, what);
        return 0;
    }
    const trellis_conf_option_t *opt = tr__conf_find(ctx->spec, name, strlen(name));
    if (opt == NULL) {
        char what[TR__CONF_LABEL_MAX];
        snprintf(what, sizeof(what), "unknown key '%s'", shown);
        fail(ctx, what);
        return 0;
    }
    size_t idx = (size_t)(opt - ctx->spec->options);
    if (ctx->set_at[idx] != 0) {
        char what[TR__CONF_LABEL_MAX];
        snprintf(what, sizeof(what), "'%s' is already set at line %d", opt->name, ctx->set_at[idx]);
        fail(ctx, what);
        return 0;
    }
    char label[TR__CONF_LABEL_MAX];
    snprintf(label, sizeof(label), "%s:%d: %s", ctx->path, ctx->lineno, opt->name);
    ctx->err = tr__conf_assign(opt, ctx->cfg, value, label, TRELLIS_ERR_CONFIG, ctx->reason);
    if (ctx->err != TRELLIS_OK) {
        ctx->failed_at = ctx->lineno;
        return 0;
    }
    ctx->set_at[idx] = ctx->lineno;
    return 1;
}

trellis_err_t trellis_conf_load_file(const trellis_conf_spec_t *spec, void *cfg, const char *path,
                                     trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t *data = NULL;
    size_t len = 0;
    void *scratch = NULL;
    struct file_ctx ctx;

    memset(&ctx, 0, sizeof(ctx));
    err = trellis_conf_check_spec(spec, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (cfg == NULL || path == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "config file: NULL argument");
        goto out;
    }
    tr__conf_short_path(path, ctx.path, sizeof(ctx.path));
    err = trellis_file_read_all(path, TRELLIS_CONF_FILE_MAX, &data, &len);
    if (err == TRELLIS_ERR_TOO_LARGE) {
        err = trellis_reason_set(reason, err, "%s: larger than %d bytes", ctx.path,
                                 TRELLIS_CONF_FILE_MAX);
        goto out;
    }
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "%s: cannot read: %s", ctx.path,
                                 trellis_err_message(err));
        goto out;
    }
    scratch = tr__conf_scratch_new(spec, cfg);
    if (scratch == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "%s: out of memory", ctx.path);
        goto out;
    }

    ctx.spec = spec;
    ctx.cfg = scratch;
    ctx.data = (const char *)data;
    ctx.len = len;
    ctx.err = TRELLIS_OK;
    ctx.reason = reason;
    int rc = ini_parse_stream(read_line, &ctx, on_key, &ctx);
    /* inih returns the first line with an error: a syntax error it found itself, or the line
     * where we refused something. Report whichever came first. */
    if (rc > 0 && (ctx.failed_at == 0 || rc < ctx.failed_at)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                 "%s:%d: syntax error (expected 'name = value' or '[%s]')",
                                 ctx.path, rc, spec->section);
        goto out;
    }
    if (ctx.failed_at != 0) {
        err = ctx.err;
        goto out;
    }
    if (rc != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "%s: out of memory", ctx.path);
        goto out;
    }
    memcpy(cfg, scratch, spec->cfg_size);
    trellis_reason_clear(reason);
    err = TRELLIS_OK;
out:
    tr__conf_scratch_free(spec, scratch);
    trellis_file_buffer_free(data, len);
    return err;
}
