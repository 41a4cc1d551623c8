#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trellis/log.h"

/* A line longer than this is cut and marked with "..."; events are short by design. */
#define LOG_LINE_MAX 2048

static atomic_int log_level = TRELLIS_LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void trellis_log_set_level(trellis_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

trellis_log_level_t trellis_log_get_level(void)
{
    return (trellis_log_level_t)atomic_load(&log_level);
}

int trellis_log_level_parse(const char *text, trellis_log_level_t *out)
{
    if (text == NULL || out == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (trellis_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void trellis_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    int truncated;
};

static void line_putc(struct line *l, char c)
{
    /* Keep room for "...\n". */
    if (l->len + 5 >= sizeof(l->buf)) {
        l->truncated = 1;
        return;
    }
    l->buf[l->len++] = c;
}

static void line_puts(struct line *l, const char *s)
{
    while (*s)
        line_putc(l, *s++);
}

static int needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f)
            return 1;
    }
    return 0;
}

/* Keys are identifiers chosen by the program; anything else is replaced so a key can never
 * break the line's structure. */
static void line_put_key(struct line *l, const char *key)
{
    for (; *key; key++) {
        unsigned char c = (unsigned char)*key;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        line_putc(l, ok ? (char)c : '_');
    }
}

static void line_put_value(struct line *l, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    if (!needs_quotes(v)) {
        line_puts(l, v);
        return;
    }
    line_putc(l, '"');
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (c == '"' || c == '\\') {
            line_putc(l, '\\');
            line_putc(l, (char)c);
        } else if (c == '\n') {
            line_puts(l, "\\n");
        } else if (c < ' ' || c == 0x7f) {
            line_puts(l, "\\x");
            line_putc(l, hex[c >> 4]);
            line_putc(l, hex[c & 15]);
        } else {
            line_putc(l, (char)c);
        }
    }
    line_putc(l, '"');
}

void trellis_log_kv(trellis_log_level_t level, const char *event, const trellis_kv_t *fields,
                    size_t n)
{
    if ((int)level < atomic_load(&log_level) || level >= TRELLIS_LOG_OFF)
        return;

    struct line l = {.len = 0, .truncated = 0};
    struct timespec ts;
    struct tm tm;
    char stamp[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + k, sizeof(stamp) - k, ".%03ldZ", ts.tv_nsec / 1000000L);

    line_puts(&l, "ts=");
    line_puts(&l, stamp);
    line_puts(&l, " level=");
    line_puts(&l, level_names[level]);
    line_puts(&l, " event=");
    line_put_value(&l, event ? event : "");
    for (size_t i = 0; i < n; i++) {
        line_putc(&l, ' ');
        line_put_key(&l, fields[i].key ? fields[i].key : "");
        line_putc(&l, '=');
        if (fields[i].is_num) {
            char num[32];
            snprintf(num, sizeof(num), "%lld", fields[i].num);
            line_puts(&l, num);
        } else {
            line_put_value(&l, fields[i].str ? fields[i].str : "");
        }
    }
    if (l.truncated) {
        memcpy(l.buf + l.len, "...", 3);
        l.len += 3;
    }
    l.buf[l.len++] = '\n';

    /* One write per line keeps lines from concurrent threads and processes whole. */
    ssize_t w = write(atomic_load(&log_fd), l.buf, l.len);
    (void)w;
}
