/*
 * Internals of `trellis-device`, the device agent (docs/device-agent.md): configuration, the
 * on-disk spool, the identity (operational key + certificate chain), enrollment over HTTPS with
 * libcurl, and the MQTT client. Everything here runs on one thread.
 *
 * The state directory (--state DIR) is the device directory the factory made (factory.json and,
 * for the file backend, rot_key.pem); the agent adds:
 *   identity.pem   operational P-256 key followed by the certificate chain, mode 0600, replaced
 *                  atomically as ONE file, so a power cut leaves the old identity or the new
 *                  one, never a key without its certificate (design.md §2.7)
 *   pending.key    the key of an offline request (`request`), until `install`
 *   spool/         the readings not yet acknowledged end to end (spool.c)
 *   agent.conf     optional configuration ([device] section)
 */
#ifndef TRELLIS_DEVICE_AGENT_H
#define TRELLIS_DEVICE_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "trellis/conf.h"
#include "trellis/device.h"
#include "trellis/error.h"
#include "trellis/telemetry.h"

#define TR__AGENT_PATH_MAX     1024
#define TR__AGENT_IDENTITY     "identity.pem"
#define TR__AGENT_PENDING_KEY  "pending.key"
#define TR__AGENT_SPOOL_DIR    "spool"
#define TR__AGENT_CONF         "agent.conf"
#define TR__AGENT_RESPONSE_MAX (256 * 1024) /* largest HTTP response body read */
#define TR__AGENT_SPOOL_LIMIT  1000000      /* readings a spool may hold at most */

/* ---- configuration (agent_conf.c) ------------------------------------------------------ */

typedef struct {
    char registrar_url[TRELLIS_DEVICE_URL_MAX + 1]; /* "" -> factory.json */
    char registrar_ca[TR__AGENT_PATH_MAX];          /* "" -> factory.json's pinned CA */
    char broker_host[256];
    int broker_port;
    char broker_ca[TR__AGENT_PATH_MAX]; /* "" -> the pinned registrar CA */
    long long interval_ms;
    int spool_max;
    int window;
    long long ack_timeout_ms;
    int renew_percent;
    long long renew_check_ms;
    long long retry_base_ms;
    long long retry_max_ms;
    int attempts;
    long long http_timeout_ms;
    int keepalive_s;
    long long readings; /* run: stop after this many readings, once all are acked (0: never) */
    char pkcs11_module[TR__AGENT_PATH_MAX];
    char pkcs11_pin[128];
    char log_level[16];
} tr__agent_config_t;

/* The option rows every subcommand shares, for a config struct st whose member `agent` is a
 * tr__agent_config_t (one table per subcommand: these rows, then its own). */
#define TR__AGENT_COMMON_ROWS(st)                                                                  \
    TRELLIS_CONF_ROW_STRING("registrar-url", st, agent.registrar_url, "", 0,                       \
                            "registrar base URL; empty: the one in factory.json"),                 \
        TRELLIS_CONF_ROW_STRING("registrar-ca", st, agent.registrar_ca, "", 0,                     \
                                "PEM file of the registrar CA to pin; empty: factory.json's"),     \
        TRELLIS_CONF_ROW_STRING("broker-host", st, agent.broker_host, "127.0.0.1", 0,              \
                                "MQTT broker host (its certificate must name it)"),                \
        TRELLIS_CONF_ROW_INT("broker-port", st, agent.broker_port, "8883", 1, 65535,               \
                             "MQTT broker port (mutual TLS)"),                                     \
        TRELLIS_CONF_ROW_STRING("broker-ca", st, agent.broker_ca, "", 0,                           \
                                "PEM file of the CA that signed the broker's certificate; "        \
                                "empty: the pinned registrar CA"),                                 \
        TRELLIS_CONF_ROW_DURATION("interval", st, agent.interval_ms, "5s", 10, 24LL * 3600 * 1000, \
                                  "time between two readings"),                                    \
        TRELLIS_CONF_ROW_INT("spool-max", st, agent.spool_max, "10000", 1, TR__AGENT_SPOOL_LIMIT,  \
                             "readings kept unacknowledged at most; beyond, the oldest is "        \
                             "dropped (and logged)"),                                              \
        TRELLIS_CONF_ROW_INT("window", st, agent.window, "100", 1, 10000,                          \
                             "readings published ahead of the end-to-end ack"),                    \
        TRELLIS_CONF_ROW_DURATION("ack-timeout", st, agent.ack_timeout_ms, "10s", 100,             \
                                  3600LL * 1000,                                                   \
                                  "resend from the oldest unacknowledged reading when the ack "    \
                                  "has not moved for this long"),                                  \
        TRELLIS_CONF_ROW_INT("renew-percent", st, agent.renew_percent, "33", 1, 99,                \
                             "renew the certificate when less than this percentage of its "        \
                             "lifetime is left"),                                                  \
        TRELLIS_CONF_ROW_DURATION("renew-check", st, agent.renew_check_ms, "1m", 100,              \
                                  24LL * 3600 * 1000,                                              \
                                  "how often run checks the certificate's remaining lifetime"),    \
        TRELLIS_CONF_ROW_DURATION("retry-base", st, agent.retry_base_ms, "1s", 10, 3600LL * 1000,  \
                                  "first enrollment retry delay (doubles, jittered)"),             \
        TRELLIS_CONF_ROW_DURATION("retry-max", st, agent.retry_max_ms, "5m", 10,                   \
                                  24LL * 3600 * 1000, "longest delay between enrollment retries"), \
        TRELLIS_CONF_ROW_INT("attempts", st, agent.attempts, "0", 0, 1000000,                      \
                             "enrollment attempts before giving up (0: never give up)"),           \
        TRELLIS_CONF_ROW_DURATION("http-timeout", st, agent.http_timeout_ms, "15s", 100,           \
                                  600LL * 1000, "timeout of one HTTPS exchange"),                  \
        TRELLIS_CONF_ROW_INT("keepalive", st, agent.keepalive_s, "30", 5, 3600,                    \
                             "MQTT keepalive in seconds"),                                         \
        TRELLIS_CONF_ROW_INT("readings", st, agent.readings, "0", 0, 1000000000,                   \
                             "run: stop after this many readings, once all are acknowledged "      \
                             "(0: run forever)"),                                                  \
        TRELLIS_CONF_ROW_STRING("pkcs11-module", st, agent.pkcs11_module, "", 0,                   \
                                "PKCS#11 module for a RoT in a token (if the URI names none)"),    \
        TRELLIS_CONF_ROW_STRING("pkcs11-pin", st, agent.pkcs11_pin, "", TRELLIS_CONF_SECRET,       \
                                "PIN of the token (file or environment only)"),                    \
        TRELLIS_CONF_ROW_STRING("log-level", st, agent.log_level, "info", 0,                       \
                                "debug, info, warn, error or off")

/* ---- the agent's context ---------------------------------------------------------------- */

typedef struct {
    char state_dir[TR__AGENT_PATH_MAX];
    tr__agent_config_t cfg;
    trellis_device_factory_t factory; /* ~40 KiB: allocate the context on the heap */
    char registrar_url[TRELLIS_DEVICE_URL_MAX + 1];
    char *registrar_ca_pem; /* the pinned CA, PEM text (owned) */
    size_t registrar_ca_len;
    volatile sig_atomic_t *stop; /* set by SIGINT/SIGTERM; may be NULL */
} tr__agent_t;

/* Loads factory.json from state_dir and resolves the registrar URL and pinned CA (config
 * overrides first). Errors come with a reason. */
trellis_err_t tr__agent_open(tr__agent_t *a, const char *state_dir, const tr__agent_config_t *cfg,
                             trellis_reason_t *reason);
void tr__agent_close(tr__agent_t *a);

/* DIR/name into out. */
trellis_err_t tr__agent_path(const tr__agent_t *a, const char *name,
                             char out[static TR__AGENT_PATH_MAX]);

/* ---- identity (identity.c) -------------------------------------------------------------- */

typedef struct {
    EVP_PKEY *key;
    X509 *chain[8];
    size_t n_chain;
    time_t not_before;
    time_t not_after;
    char serial_hex[80];
} tr__identity_t;

/* Loads DIR/identity.pem. TRELLIS_ERR_NOT_FOUND when the device is not enrolled. */
trellis_err_t tr__identity_load(const tr__agent_t *a, tr__identity_t *id, trellis_reason_t *reason);
void tr__identity_free(tr__identity_t *id);

/*
 * Checks a chain the registrar returned for key: the leaf's public key is key's, its CN is the
 * device id, it is a client certificate within its validity, and it chains to the pinned CA.
 * Then stores key and chain as one file, atomically. Errors: TRELLIS_ERR_BAD_CSR-free codes:
 * PARSE (no certificate), BAD_KEY (key mismatch), PERMISSION (does not chain / wrong name), IO.
 */
trellis_err_t tr__identity_install(const tr__agent_t *a, EVP_PKEY *key, const char *chain_pem,
                                   size_t chain_len, tr__identity_t *out, trellis_reason_t *reason);

/* Whether the identity should be renewed now: less than renew_percent of its lifetime left. */
bool tr__identity_renew_due(const tr__identity_t *id, int renew_percent, time_t now);

/* ---- enrollment (enroll_client.c) ------------------------------------------------------- */

/* What one attempt came to. */
typedef enum {
    TR__ENROLL_OK = 0,
    TR__ENROLL_RETRY,   /* try again after retry_after_ms (0: the caller's backoff) */
    TR__ENROLL_REFUSED, /* the registrar said no for a reason a retry will not change */
} tr__enroll_outcome_t;

typedef struct {
    tr__enroll_outcome_t outcome;
    long http_status;
    long long retry_after_ms;
    char error_code[32]; /* the API error code of design.md §3, "" if none */
    trellis_reason_t reason;
} tr__enroll_result_t;

/* The exact JSON body of POST /v1/enroll for a fresh key, with evidence from the RoT. With
 * challenge NULL a challenge is fetched from the registrar first. *key_out receives the new
 * operational key (caller frees); *body_out the NUL-terminated body (free()). */
trellis_err_t tr__enroll_build_request(tr__agent_t *a, const uint8_t *challenge,
                                       size_t challenge_len, EVP_PKEY **key_out, char **body_out,
                                       tr__enroll_result_t *res);

/* One first-time enrollment attempt: challenge, key, CSR, evidence, POST /v1/enroll, install. */
trellis_err_t tr__enroll_once(tr__agent_t *a, tr__identity_t *out, tr__enroll_result_t *res);

/* One renewal attempt over mutual TLS with the current identity: POST /v1/reenroll. */
trellis_err_t tr__reenroll_once(tr__agent_t *a, tr__identity_t *out, tr__enroll_result_t *res);

/* Enrolls, retrying with exponential backoff and full jitter (capped at retry_max, honouring
 * Retry-After) until it works, the registrar refuses for good, cfg.attempts run out (0: no
 * limit), or *a->stop is set. */
trellis_err_t tr__enroll_with_retries(tr__agent_t *a, tr__identity_t *out,
                                      tr__enroll_result_t *res);

/* The delay before retry number attempt (1-based): full jitter over base * 2^(attempt-1),
 * capped at max, never below retry_after. */
long long tr__backoff_ms(long long base, long long max, int attempt, long long retry_after);

/* Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, relative to now. -1 if it
 * parses as neither. */
long long tr__parse_retry_after(const char *value, time_t now);

/* GET /v1/challenge: the challenge bytes into buf. */
trellis_err_t tr__enroll_challenge(tr__agent_t *a, uint8_t *buf, size_t buf_size, size_t *len,
                                   tr__enroll_result_t *res);

/* ---- spool (spool.c) -------------------------------------------------------------------- */

typedef struct {
    int64_t seq;
    int64_t ts_ms;
    double temp_c;
} tr__reading_t;

typedef struct {
    char dir[TR__AGENT_PATH_MAX];
    int fd;              /* spool.dat, O_APPEND */
    tr__reading_t *ring; /* live readings, oldest first, cap entries */
    size_t cap;
    size_t head;
    size_t count;
    size_t file_records;    /* records in spool.dat, live or not */
    int64_t acked;          /* highest end-to-end ack received */
    int64_t dropped_to;     /* highest seq dropped from a full spool */
    int64_t last_seq;       /* highest seq ever assigned */
    uint64_t dropped_total; /* this session */
} tr__spool_t;

/* Opens (creating) DIR/spool with room for cap readings; recovers from a torn last record.
 * readonly (status, while `run` may be appending) creates, truncates and writes nothing. */
trellis_err_t tr__spool_open(tr__spool_t *s, const char *state_dir, size_t cap, bool readonly,
                             trellis_reason_t *reason);
void tr__spool_close(tr__spool_t *s);

/* Appends a reading with the next seq, durably (fdatasync) before returning; when full, drops
 * the oldest first and logs it. *out gets the reading as stored. */
trellis_err_t tr__spool_append(tr__spool_t *s, int64_t ts_ms, double temp_c, tr__reading_t *out);

/* The end-to-end ack: forgets every reading with seq <= seq (persisting the floor first). An
 * ack beyond the last seq (a store that knows more than this device remembers) moves the next
 * seq past it. Older acks are ignored. */
trellis_err_t tr__spool_ack(tr__spool_t *s, int64_t seq);

/* The i-th live reading (0 = oldest), or NULL. */
const tr__reading_t *tr__spool_at(const tr__spool_t *s, size_t i);

/* The floor to announce with a reading (telemetry.h): max(acked, dropped_to). */
int64_t tr__spool_floor(const tr__spool_t *s);

/* ---- MQTT (mqtt.c) ---------------------------------------------------------------------- */

struct mosquitto;

typedef struct {
    struct mosquitto *mosq;
    tr__agent_t *agent;
    tr__spool_t *spool;
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    char ack_topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    char identity_path[TR__AGENT_PATH_MAX];
    char broker_ca[TR__AGENT_PATH_MAX];
    bool connected;           /* TCP + TLS up and CONNACK 0 */
    bool subscribed;          /* SUBACK for the ack topic */
    int64_t sent_to;          /* highest seq published on this connection */
    int64_t last_progress_ms; /* when the ack last moved, or the last (re)send round began */
    bool announce_floor;
    int64_t next_connect_ms;
    long backoff_ms;
    bool warned;
    uint64_t published;
    uint64_t resends;
} tr__mqtt_t;

/* Prepares the client for the device's identity (not connected yet). */
trellis_err_t tr__mqtt_open(tr__mqtt_t *m, tr__agent_t *a, tr__spool_t *spool,
                            trellis_reason_t *reason);

/* One step: connects when due, runs the network loop for up to timeout_ms, publishes what the
 * window allows, and resends from the oldest unacknowledged reading when acks stall. */
void tr__mqtt_step(tr__mqtt_t *m, long timeout_ms);

/* Disconnects cleanly and frees the client. */
void tr__mqtt_close(tr__mqtt_t *m);

/* ---- the rest ----------------------------------------------------------------------------- */

/* A simulated thermometer: slowly drifting around a per-device base temperature. */
typedef struct {
    double base;
    double value;
    uint64_t rng;
} tr__thermo_t;

void tr__thermo_init(tr__thermo_t *t, const char *device_id);
double tr__thermo_read(tr__thermo_t *t);

/* Sleeps ms, in short steps, returning early when *stop is set (stop may be NULL). */
void tr__sleep_ms(long long ms, volatile sig_atomic_t *stop);

/* Subcommands. argv[0] is the subcommand's name; state_dir is --state. */
int tr__cmd_run(const char *state_dir, int argc, char **argv);
int tr__cmd_enroll(const char *state_dir, int argc, char **argv);
int tr__cmd_status(const char *state_dir, int argc, char **argv);
int tr__cmd_request(const char *state_dir, int argc, char **argv);
int tr__cmd_install(const char *state_dir, int argc, char **argv);

/* Shared by the subcommands: loads the configuration for the table of a subcommand (cfg_size
 * bytes at cfg, whose tr__agent_config_t is agent), applies the log level, prints --help, and
 * refuses positional arguments. Returns -1 to continue, else the exit status to return. */
int tr__agent_load_config(const char *what, const trellis_conf_spec_t *spec, void *cfg,
                          tr__agent_config_t *agent, const char *state_dir, int *argc, char **argv);

/* Allocates and opens the agent's context for a subcommand (tr__agent_open), reporting a failure
 * on stderr. Returns 0 with *out set (free it with tr__agent_free), else the exit status. */
int tr__agent_start(const char *what, const char *state_dir, const tr__agent_config_t *cfg,
                    tr__agent_t **out);
void tr__agent_free(tr__agent_t *a);

/* SIGINT and SIGTERM set *a->stop from now on, so long waits end cleanly. */
void tr__agent_catch_signals(tr__agent_t *a);

/* The option table of a subcommand: program "trellis-device --state DIR CMD", the [device]
 * section and TRELLIS_DEVICE_ environment, config struct st, rows opts (a static array). */
#define TR__AGENT_SPEC(cmd, text, st, opts)                                                        \
    {                                                                                              \
        .program = "trellis-device --state DIR " cmd, .summary = text, .args = NULL,               \
        .section = "device", .env_prefix = "TRELLIS_DEVICE", .default_path = NULL,                 \
        .cfg_size = sizeof(st), .options = opts, .n_options = sizeof(opts) / sizeof(opts[0]),      \
    }

/* One-line error on stderr ("trellis-device what: message"); returns 1. Usage: returns 2. */
int tr__agent_fail(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int tr__agent_usage(const char *what, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif /* TRELLIS_DEVICE_AGENT_H */
