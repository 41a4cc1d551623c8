/*
 * Telemetry ingest (design.md §2.8, §3): an MQTT subscriber that stores every reading of every
 * device exactly once and answers each durable write with an end-to-end acknowledgement; plus
 * the Mosquitto configuration the broker in front of it runs with.
 *
 * Flow. The ingest connects to the broker's service listener with its own certificate and takes
 * part in the shared subscription $share/<group>/devices/+/telemetry at QoS 1, so several ingest
 * processes split the load. Each message is checked (topic names a device, payload per
 * telemetry.h, timestamp not in the future beyond a bound), collected for a few milliseconds or
 * up to a batch size, and the batch is written to the store in one durable transaction (group
 * commit). Only after the commit does the ingest publish, for each device of the batch, the
 * highest seq up to which every reading of that device is stored to devices/<id>/acks: at QoS 0
 * (acks are cumulative, a later one supersedes a lost one) and at most once per ack interval per
 * device (a device sending many readings in that time gets one ack for all of them).
 * The broker's PUBACK is never taken as durability (design.md §3).
 *
 * Exactly once. The store keys readings by (device_id, seq) and ignores a second copy, so QoS 1
 * redeliveries and a device resending its spool never double a reading. A duplicate still
 * produces an ack: the device resends precisely because it missed one.
 *
 * Rejects. A message on a topic that names no device, or whose payload has no usable seq, is
 * counted and dropped. A payload refused by the parser but with a valid seq is kept in the
 * store's quarantine under (device_id, seq), counted, and covered by the acknowledgement like a
 * stored reading: otherwise one bad reading would stall the device's acknowledgements, and its
 * spool, forever. Nothing is dropped silently: every reject is counted by reason.
 *
 * Threads. libmosquitto's network thread receives and checks messages and hands them to the
 * thread that called trellis_ingest_run, which writes batches and publishes acks. A full
 * hand-over queue blocks the network thread, which pushes back on the broker (its queue limits
 * are set deliberately by trellis_broker_config_write).
 */
#ifndef TRELLIS_INGEST_H
#define TRELLIS_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trellis/conf.h"
#include "trellis/error.h"
#include "trellis/telemetry.h"

#define TRELLIS_INGEST_PATH_MAX      1024
#define TRELLIS_INGEST_HOST_MAX      256
#define TRELLIS_INGEST_NAME_MAX      64  /* client id, group, CN of the ingest identity */
#define TRELLIS_INGEST_REASON_MAX    192 /* a quarantined reading's reason, as trellis_reason_t */
#define TRELLIS_INGEST_BATCH_LIMIT   10000
#define TRELLIS_INGEST_STORE_VERSION 1

/* ------------------------------------------------------------------------------------------ */
/* Store port                                                                                 */

/* One message that passed the topic check: a reading, or a quarantined payload (rejected
 * nonzero, reason set, only seq and recv_ms meaningful besides the payload). */
typedef struct {
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    trellis_telemetry_reading_t reading;
    int64_t recv_ms; /* when the ingest received it, Unix milliseconds */
    int rejected;
    char reason[TRELLIS_INGEST_REASON_MAX];
    uint8_t payload[TRELLIS_TELEMETRY_MAX]; /* quarantine only: the refused bytes */
    size_t payload_len;
} trellis_ingest_record_t;

/* The acknowledgement owed to one device after a batch. */
typedef struct {
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    int64_t acked; /* every reading with seq <= acked is stored, quarantined or given up */
} trellis_ingest_ack_t;

/* Counts of one batch, or of everything so far. */
typedef struct {
    uint64_t received;         /* messages handed to the ingest */
    uint64_t stored;           /* readings written for the first time */
    uint64_t duplicates;       /* readings already stored (QoS 1 redelivery, resent spool) */
    uint64_t quarantined;      /* refused payloads kept under their seq (first copy) */
    uint64_t rejected_topic;   /* topic names no device: dropped */
    uint64_t rejected_payload; /* payload refused, seq unusable: dropped */
    uint64_t batches;          /* transactions committed */
    uint64_t acks;             /* acknowledgements published */
} trellis_ingest_stats_t;

/* One stored reading, as queries return it. */
typedef struct {
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    int64_t seq;
    int64_t ts_ms;
    double temp_c;
    int64_t recv_ms;
} trellis_ingest_row_t;

/* What the store knows about one device. */
typedef struct {
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    int64_t acked;       /* the watermark last acknowledged */
    int64_t readings;    /* readings stored */
    int64_t quarantined; /* payloads quarantined */
    int64_t last_seq;    /* highest seq stored, 0 if none */
    int64_t last_ts_ms;
    double last_temp_c;
    int64_t last_recv_ms;
} trellis_ingest_device_t;

/* Called once per row of a query, in ascending seq; a nonzero return stops the query (and the
 * query still succeeds). */
typedef int (*trellis_ingest_row_fn)(const trellis_ingest_row_t *row, void *arg);
typedef int (*trellis_ingest_device_fn)(const trellis_ingest_device_t *dev, void *arg);

/*
 * The telemetry store, a versioned port (style.md §6) so a PostgreSQL store can replace SQLite.
 * version must be TRELLIS_INGEST_STORE_VERSION. Every function returns TRELLIS_OK or an error
 * (TRELLIS_ERR_STORE for a database failure) and is called from one thread at a time.
 *
 * write_batch: in ONE durable transaction (committed to stable storage before it returns):
 *   inserts each record not yet present under (device_id, seq) into the readings, or into the
 *   quarantine when rejected; adds stats->rejected_* to the persistent reject counters; then,
 *   for each distinct device of the batch, raises its watermark to max(watermark, every floor
 *   of the batch) and on through every consecutive seq present (readings or quarantine), and
 *   writes one entry per distinct device to acks (acks_size >= n is enough). Fills
 *   stats->stored, ->duplicates and ->quarantined. On failure nothing of the batch is kept and
 *   *n_acks is 0.
 * query: the readings of device_id with ts_ms >= since_ms (0: all), ascending seq, at most
 *   limit rows (0: no limit), each passed to fn.
 * device: the summary of one device; TRELLIS_ERR_NOT_FOUND if it never sent anything.
 * devices: every device's summary, ascending device_id.
 * counters: the persistent totals (stored, duplicates are not persisted: 0).
 * close: releases everything; the port must not be used afterwards.
 */
typedef struct trellis_ingest_store {
    uint32_t version;
    void *ctx;
    trellis_err_t (*write_batch)(void *ctx, const trellis_ingest_record_t *records, size_t n,
                                 trellis_ingest_stats_t *stats, trellis_ingest_ack_t *acks,
                                 size_t acks_size, size_t *n_acks);
    trellis_err_t (*query)(void *ctx, const char *device_id, int64_t since_ms, size_t limit,
                           trellis_ingest_row_fn fn, void *arg);
    trellis_err_t (*device)(void *ctx, const char *device_id, trellis_ingest_device_t *out);
    trellis_err_t (*devices)(void *ctx, trellis_ingest_device_fn fn, void *arg);
    trellis_err_t (*counters)(void *ctx, trellis_ingest_stats_t *out);
    void (*close)(void *ctx);
} trellis_ingest_store_t;

/*
 * Opens (creating if needed, mode 0600) the SQLite store at path in WAL mode with
 * synchronous=FULL, so a committed batch survives a crash or power cut, and fills *store.
 * Several processes may open the same file (ingest workers on one machine, `trellis ingest
 * telemetry`): SQLite serialises their transactions. readonly opens without creating or writing
 * (for queries). Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_NOT_FOUND (readonly and absent),
 * TRELLIS_ERR_STORE (with SQLite's message in reason), TRELLIS_ERR_NOMEM. On failure *store is
 * zeroed. Release with store->close(store->ctx).
 */
trellis_err_t trellis_ingest_sqlite_open(const char *path, bool readonly,
                                         trellis_ingest_store_t *store, trellis_reason_t *reason);

/* Checks a port: not NULL, right version, every function set. INVALID_ARG or CONFIG. */
trellis_err_t trellis_ingest_store_check(const trellis_ingest_store_t *store);

/* ------------------------------------------------------------------------------------------ */
/* The ingest service                                                                         */

typedef struct {
    char broker_host[TRELLIS_INGEST_HOST_MAX]; /* the broker's service listener */
    int broker_port;
    char ca_file[TRELLIS_INGEST_PATH_MAX];   /* CA that signed the broker's certificate */
    char cert_file[TRELLIS_INGEST_PATH_MAX]; /* the ingest identity (CN = the ACL user) */
    char key_file[TRELLIS_INGEST_PATH_MAX];
    char client_id[TRELLIS_INGEST_NAME_MAX]; /* "" -> "ingest-<hostname>-<pid>" */
    char group[TRELLIS_INGEST_NAME_MAX];     /* shared subscription group */
    char db_path[TRELLIS_INGEST_PATH_MAX];
    int batch_max;               /* readings per transaction at most */
    long long batch_wait_ms;     /* how long a batch collects after its first message */
    long long ack_interval_ms;   /* one ack per device at most this often (0: after each batch) */
    long long max_future_ms;     /* ts more than this ahead of the receive time: quarantined */
    long long stats_interval_ms; /* a stats log line this often (0: never) */
    int keepalive_s;
    bool persistent_session; /* clean_session false: the broker queues while we restart */
    char log_level[16];
} trellis_ingest_config_t;

/* The option table of trellis_ingest_config_t: `trellis ingest` flags, [ingest] in the config
 * file, TRELLIS_INGEST_* environment variables. */
const trellis_conf_spec_t *trellis_ingest_conf_spec(void);

typedef struct trellis_ingest trellis_ingest_t;

/*
 * Makes an ingest with cfg (copied) writing to store (borrowed: it must outlive the ingest).
 * Nothing connects yet. Errors: TRELLIS_ERR_INVALID_ARG (NULL, a bad store port),
 * TRELLIS_ERR_CONFIG (a value out of range, with the option in reason), TRELLIS_ERR_NOMEM,
 * TRELLIS_ERR_TLS (libmosquitto refused the CA, certificate or key files).
 */
trellis_err_t trellis_ingest_new(const trellis_ingest_config_t *cfg, trellis_ingest_store_t *store,
                                 trellis_ingest_t **out, trellis_reason_t *reason);

/*
 * Connects (retrying while the broker is away) and ingests until trellis_ingest_stop is called;
 * then writes what it has received, publishes the last acks, disconnects and returns TRELLIS_OK.
 * A store failure stops it with TRELLIS_ERR_STORE: a batch that could not be made durable is
 * never acknowledged, and the devices resend it.
 */
trellis_err_t trellis_ingest_run(trellis_ingest_t *ing);

/* Asks a running ingest to stop; safe from any thread, and from a signal handler. */
void trellis_ingest_stop(trellis_ingest_t *ing);

/* A copy of the counters so far (any thread). */
void trellis_ingest_get_stats(trellis_ingest_t *ing, trellis_ingest_stats_t *out);

/* true once the subscription is acknowledged by the broker (any thread). */
bool trellis_ingest_subscribed(trellis_ingest_t *ing);

/* Frees an ingest that is not running. NULL is a no-op. */
void trellis_ingest_free(trellis_ingest_t *ing);

/*
 * Checks one message as the ingest does and fills *rec: the topic must be
 * devices/<id>/telemetry, the payload a reading (telemetry.h) whose ts is at most max_future_ms
 * after recv_ms. Returns TRELLIS_OK for a reading to store; TRELLIS_ERR_PARSE with rec->rejected
 * set, reason filled, for a payload to quarantine; TRELLIS_ERR_NOT_FOUND for a message to drop
 * (stats->rejected_topic or ->rejected_payload counted by the caller: *drop_topic tells which).
 */
trellis_err_t trellis_ingest_classify(const char *topic, const void *payload, size_t len,
                                      int64_t recv_ms, long long max_future_ms,
                                      trellis_ingest_record_t *rec, bool *drop_topic);

/* ------------------------------------------------------------------------------------------ */
/* Broker configuration                                                                       */

typedef struct {
    const char *out_dir;           /* created if absent; files below are written into it */
    const char *device_ca_file;    /* PEM: the registrar's device CA chain (root, intermediate) */
    const char *crl_file;          /* PEM CRL of the device CA (the registrar's CRL file) */
    const char *cert_file;         /* broker server certificate chain; NULL: issue one */
    const char *key_file;          /* its key; NULL with cert_file NULL */
    const char *bind;              /* listener address; NULL -> "127.0.0.1" */
    int port;                      /* device listener (mutual TLS, device CA) */
    int service_port;              /* ingest listener (mutual TLS, service CA); 0 -> port + 1 */
    const char *ingest_name;       /* CN and ACL user of the ingest identity; NULL -> "ingest" */
    const char *run_user;          /* `user` line; NULL -> the effective user running this */
    long long max_queued_messages; /* per-client queue bound; 0 -> the default below */
    long long max_queued_bytes;
    int max_inflight_messages;
    int max_packet_size;
} trellis_broker_conf_t;

#define TRELLIS_BROKER_DEFAULT_MAX_QUEUED       100000
#define TRELLIS_BROKER_DEFAULT_MAX_QUEUED_BYTES (64LL * 1024 * 1024)
#define TRELLIS_BROKER_DEFAULT_MAX_INFLIGHT     1000
#define TRELLIS_BROKER_DEFAULT_MAX_PACKET       4096

/* File names inside out_dir. */
#define TRELLIS_BROKER_CONF_FILE      "mosquitto.conf"
#define TRELLIS_BROKER_ACL_FILE       "acl"
#define TRELLIS_BROKER_PID_FILE       "mosquitto.pid"
#define TRELLIS_BROKER_SERVICE_CA     "service-ca.pem"
#define TRELLIS_BROKER_SERVICE_CA_KEY "service-ca.key"
#define TRELLIS_BROKER_SERVER_CERT    "broker.pem"
#define TRELLIS_BROKER_SERVER_KEY     "broker.key"
#define TRELLIS_BROKER_INGEST_CERT    "ingest.pem"
#define TRELLIS_BROKER_INGEST_KEY     "ingest.key"

/*
 * Writes a Mosquitto 2.0 configuration for Trellis into out_dir (docs/broker.md explains every
 * line): mosquitto.conf and acl, plus, made once and kept on later runs, a service CA
 * (service-ca.pem/.key), the ingest's client certificate from it (ingest.pem/.key, CN
 * ingest_name) and, without cert_file, a broker server certificate for 127.0.0.1 and localhost
 * from it (broker.pem/.key). Keys are written 0600, everything atomically.
 *
 * Before writing, it checks what the broker would only find out at start or, worse, at the
 * first device: the CA file holds CA certificates, the CRL parses as PEM and is signed by one of
 * them, a given server key matches its certificate. Paths in mosquitto.conf are absolute, so
 * the broker can be started from anywhere. Errors: TRELLIS_ERR_INVALID_ARG (a missing or bad
 * argument), TRELLIS_ERR_NOT_FOUND, TRELLIS_ERR_PARSE (a file that does not hold what it
 * should), TRELLIS_ERR_BAD_SIGNATURE (CRL not from the device CA), TRELLIS_ERR_IO,
 * TRELLIS_ERR_CRYPTO; reason says which file and why.
 */
trellis_err_t trellis_broker_config_write(const trellis_broker_conf_t *conf,
                                          trellis_reason_t *reason);

#endif /* TRELLIS_INGEST_H */
