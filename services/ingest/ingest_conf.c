/* The option table of `trellis ingest` (style.md §11): flags, [ingest] section, environment. */
#include <stddef.h>

#include "trellis/conf.h"
#include "trellis/ingest.h"

#define C trellis_ingest_config_t

static const trellis_conf_option_t options[] = {
    TRELLIS_CONF_ROW_STRING("broker-host", C, broker_host, "127.0.0.1", 0,
                            "host of the broker's service listener"),
    TRELLIS_CONF_ROW_INT("broker-port", C, broker_port, "8884", 1, 65535,
                         "port of the broker's service listener (trellis broker config "
                         "--service-port)"),
    TRELLIS_CONF_ROW_STRING("ca", C, ca_file, "", 0,
                            "CA file that signed the broker's certificate (BROKER_DIR/"
                            "service-ca.pem)"),
    TRELLIS_CONF_ROW_STRING("cert", C, cert_file, "", 0,
                            "the ingest's client certificate (BROKER_DIR/ingest.pem)"),
    TRELLIS_CONF_ROW_STRING("key", C, key_file, "", 0,
                            "the ingest's private key (BROKER_DIR/ingest.key)"),
    TRELLIS_CONF_ROW_STRING("client-id", C, client_id, "", 0,
                            "MQTT client id, unique per worker; empty: ingest-HOST-PID"),
    TRELLIS_CONF_ROW_STRING("group", C, group, "ingest", 0,
                            "shared subscription group: workers of one group split the load"),
    TRELLIS_CONF_ROW_STRING("db", C, db_path, "telemetry.db", 0,
                            "SQLite telemetry store (created 0600 if absent)"),
    TRELLIS_CONF_ROW_INT("batch-max", C, batch_max, "1000", 1, TRELLIS_INGEST_BATCH_LIMIT,
                         "readings per transaction at most (group commit)"),
    TRELLIS_CONF_ROW_DURATION("batch-wait", C, batch_wait_ms, "5ms", 0, 1000,
                              "how long a batch collects after its first reading; trades "
                              "latency for fewer fsyncs"),
    TRELLIS_CONF_ROW_DURATION("ack-interval", C, ack_interval_ms, "50ms", 0, 10000,
                              "one ack per device at most this often (they are cumulative); "
                              "0 acks after every batch"),
    TRELLIS_CONF_ROW_DURATION("max-future", C, max_future_ms, "1h", 0, 7LL * 24 * 3600 * 1000,
                              "a reading stamped further ahead of the receive time is "
                              "quarantined"),
    TRELLIS_CONF_ROW_DURATION("stats-interval", C, stats_interval_ms, "60s", 0, 24LL * 3600 * 1000,
                              "log the counters this often (0: only at exit)"),
    TRELLIS_CONF_ROW_INT("keepalive", C, keepalive_s, "30", 5, 3600, "MQTT keepalive in seconds"),
    TRELLIS_CONF_ROW_BOOL("persistent-session", C, persistent_session, "false",
                          "keep the broker session while away (single worker with a fixed "
                          "client-id only: an absent member of a shared group keeps its share)"),
    TRELLIS_CONF_ROW_STRING("log-level", C, log_level, "info", 0,
                            "debug, info, warn, error or off"),
};

#undef C

static const trellis_conf_spec_t spec = {
    .program = "trellis ingest",
    .summary = "Store every device reading once and acknowledge it end to end "
               "(docs/ingest.md).",
    .args = NULL,
    .section = "ingest",
    .env_prefix = "TRELLIS_INGEST",
    .default_path = NULL,
    .cfg_size = sizeof(trellis_ingest_config_t),
    .options = options,
    .n_options = sizeof(options) / sizeof(options[0]),
};

const trellis_conf_spec_t *trellis_ingest_conf_spec(void)
{
    return &spec;
}
