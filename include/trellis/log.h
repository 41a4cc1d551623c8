/*
 * Structured logging: one line per event on stderr, in logfmt
 * (`ts=2026-11-25T13:40:00.123Z level=info event=enroll.ok device=0a1b... serial=7f...`).
 *
 * An event name is a short dotted identifier chosen by the caller; fields are key/value pairs.
 * Values are quoted and escaped when they contain spaces, quotes, '=' or control bytes, so every
 * line parses back unambiguously. Logging is thread-safe: each line is written with one write(2).
 * Never pass secrets (keys, PINs, tokens) as values.
 */
#ifndef TRELLIS_LOG_H
#define TRELLIS_LOG_H

#include <stddef.h>

typedef enum {
    TRELLIS_LOG_DEBUG = 0,
    TRELLIS_LOG_INFO = 1,
    TRELLIS_LOG_WARN = 2,
    TRELLIS_LOG_ERROR = 3,
    TRELLIS_LOG_OFF = 4,
} trellis_log_level_t;

typedef struct {
    const char *key;
    const char *str; /* used when is_num is 0; NULL prints as "" */
    long long num;
    int is_num;
} trellis_kv_t;

#define TRELLIS_KV_STR(k, v) ((trellis_kv_t){.key = (k), .str = (v), .num = 0, .is_num = 0})
#define TRELLIS_KV_INT(k, v) ((trellis_kv_t){.key = (k), .str = NULL, .num = (v), .is_num = 1})

/* Lines below this level are dropped. Default TRELLIS_LOG_INFO. */
void trellis_log_set_level(trellis_log_level_t level);
trellis_log_level_t trellis_log_get_level(void);

/* Parses "debug", "info", "warn", "error" or "off". Returns 0 on success, -1 otherwise. */
int trellis_log_level_parse(const char *text, trellis_log_level_t *out);

/* Sends lines to fd instead of stderr (tests capture them through a pipe). */
void trellis_log_set_fd(int fd);

/* Writes one line for event with n fields. */
void trellis_log_kv(trellis_log_level_t level, const char *event, const trellis_kv_t *fields,
                    size_t n);

/* trellis_log(level, "event", TRELLIS_KV_STR("k", v), TRELLIS_KV_INT("n", 3)) */
#define trellis_log(level, event, ...)                                                             \
    trellis_log_kv((level), (event), (const trellis_kv_t[]){__VA_ARGS__},                          \
                   sizeof((const trellis_kv_t[]){__VA_ARGS__}) / sizeof(trellis_kv_t))

/* An event with no fields. */
#define trellis_log0(level, event) trellis_log_kv((level), (event), NULL, 0)

#endif /* TRELLIS_LOG_H */
