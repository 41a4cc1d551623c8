/*
 * The SQLite telemetry store behind trellis_ingest_store_t.
 *
 * Durability: WAL with synchronous=FULL, so COMMIT returns only after the WAL is fsynced; the
 * ingest acknowledges nothing before that. Group commit (one transaction per batch) is what
 * makes FULL affordable: design.md §7 measured 2.65k fsynced commits/s but ~112k rows/s in
 * batches.
 *
 * Exactly once: readings and quarantine are keyed by (device_id, seq); INSERT OR IGNORE makes a
 * second copy a no-op, and sqlite3_changes() tells a new row from a duplicate.
 *
 * The watermark of a device (devices.acked) only ever rises: to the highest floor the device
 * sent, then through every consecutive seq present in readings or quarantine. The scan reads at
 * most WATERMARK_PAGE rows per step and stops at the first gap, so a batch costs one indexed
 * lookup per device in the steady state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ingest_internal.h"
#include "trellis/ingest.h"
#include "trellis/log.h"

#define WATERMARK_PAGE  512
#define BUSY_TIMEOUT_MS 10000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS readings ("
    " device_id TEXT NOT NULL, seq INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
    " temp_c REAL NOT NULL, recv_ms INTEGER NOT NULL,"
    " PRIMARY KEY (device_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS quarantine ("
    " device_id TEXT NOT NULL, seq INTEGER NOT NULL, recv_ms INTEGER NOT NULL,"
    " reason TEXT NOT NULL, payload BLOB NOT NULL,"
    " PRIMARY KEY (device_id, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS devices ("
    " device_id TEXT PRIMARY KEY, acked INTEGER NOT NULL DEFAULT 0,"
    " readings INTEGER NOT NULL DEFAULT 0, quarantined INTEGER NOT NULL DEFAULT 0,"
    " last_seq INTEGER NOT NULL DEFAULT 0, last_ts_ms INTEGER NOT NULL DEFAULT 0,"
    " last_temp_c REAL NOT NULL DEFAULT 0, last_recv_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS counters ("
    " name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;";

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_INSERT_READING,
    ST_INSERT_QUARANTINE,
    ST_DEVICE_GET,
    ST_DEVICE_PUT,
    ST_SEQ_PAGE,
    ST_COUNTER_ADD,
    ST_QUERY,
    ST_DEVICE_ONE,
    ST_DEVICE_ALL,
    ST_COUNTERS,
    ST_COUNT,
};

static const char *const statements[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT_READING] = "INSERT OR IGNORE INTO readings (device_id, seq, ts_ms, temp_c, recv_ms)"
                          " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_INSERT_QUARANTINE] = "INSERT OR IGNORE INTO quarantine (device_id, seq, recv_ms, reason,"
                             " payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_DEVICE_GET] = "SELECT acked, last_seq FROM devices WHERE device_id = ?1",
    [ST_DEVICE_PUT] =
        "INSERT INTO devices (device_id, acked, readings, quarantined, last_seq, last_ts_ms,"
        " last_temp_c, last_recv_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (device_id) DO UPDATE SET acked = max(acked, excluded.acked),"
        " readings = readings + excluded.readings,"
        " quarantined = quarantined + excluded.quarantined,"
        " last_ts_ms = CASE WHEN excluded.last_seq > last_seq THEN excluded.last_ts_ms"
        " ELSE last_ts_ms END,"
        " last_temp_c = CASE WHEN excluded.last_seq > last_seq THEN excluded.last_temp_c"
        " ELSE last_temp_c END,"
        " last_recv_ms = CASE WHEN excluded.last_seq > last_seq THEN excluded.last_recv_ms"
        " ELSE last_recv_ms END,"
        " last_seq = max(last_seq, excluded.last_seq)",
    [ST_SEQ_PAGE] = "SELECT seq FROM readings WHERE device_id = ?1 AND seq > ?2"
                    " UNION SELECT seq FROM quarantine WHERE device_id = ?1 AND seq > ?2"
                    " ORDER BY 1 LIMIT ?3",
    [ST_COUNTER_ADD] = "INSERT INTO counters (name, value) VALUES (?1, ?2)"
                       " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
    [ST_QUERY] = "SELECT seq, ts_ms, temp_c, recv_ms FROM readings WHERE device_id = ?1"
                 " AND ts_ms >= ?2 ORDER BY seq LIMIT ?3",
    [ST_DEVICE_ONE] = "SELECT device_id, acked, readings, quarantined, last_seq, last_ts_ms,"
                      " last_temp_c, last_recv_ms FROM devices WHERE device_id = ?1",
    [ST_DEVICE_ALL] = "SELECT device_id, acked, readings, quarantined, last_seq, last_ts_ms,"
                      " last_temp_c, last_recv_ms FROM devices ORDER BY device_id",
    [ST_COUNTERS] = "SELECT name, value FROM counters",
};

/* Per-device totals of one batch. */
typedef struct {
    char device_id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    int64_t floor;
    int64_t stored;
    int64_t quarantined;
    int64_t last_seq;
    int64_t last_ts_ms;
    double last_temp_c;
    int64_t last_recv_ms;
} device_delta_t;

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    bool readonly;
    device_delta_t *deltas; /* scratch, TRELLIS_INGEST_BATCH_LIMIT entries */
} sqlite_store_t;

static trellis_err_t db_error(sqlite_store_t *s, trellis_reason_t *reason, const char *what)
{
    return trellis_reason_set(reason, TRELLIS_ERR_STORE, "%s: %s", what,
                              s->db != NULL ? sqlite3_errmsg(s->db) : "no database");
}

static trellis_err_t step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? TRELLIS_OK : TRELLIS_ERR_STORE;
}

/* Finds (or appends) the delta of device_id among the first *n. */
static device_delta_t *delta_for(device_delta_t *d, size_t *n, const char *device_id)
{
    /* A device's readings usually arrive together (a spool being resent): try the last one
     * first. */
    if (*n > 0 && memcmp(d[*n - 1].device_id, device_id, TRELLIS_TELEMETRY_DEVICE_ID_LEN) == 0)
        return &d[*n - 1];
    for (size_t i = 0; i < *n; i++) {
        if (memcmp(d[i].device_id, device_id, TRELLIS_TELEMETRY_DEVICE_ID_LEN) == 0)
            return &d[i];
    }
    device_delta_t *e = &d[(*n)++];
    memset(e, 0, sizeof(*e));
    memcpy(e->device_id, device_id, sizeof(e->device_id));
    return e;
}

static trellis_err_t insert_record(sqlite_store_t *s, const trellis_ingest_record_t *r,
                                   device_delta_t *d, trellis_ingest_stats_t *stats)
{
    sqlite3_stmt *st = NULL;
    if (r->rejected) {
        st = s->st[ST_INSERT_QUARANTINE];
        sqlite3_bind_text(st, 1, r->device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r->reading.seq);
        sqlite3_bind_int64(st, 3, r->recv_ms);
        sqlite3_bind_text(st, 4, r->reason, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 5, r->payload, (int)r->payload_len, SQLITE_STATIC);
    } else {
        st = s->st[ST_INSERT_READING];
        sqlite3_bind_text(st, 1, r->device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r->reading.seq);
        sqlite3_bind_int64(st, 3, r->reading.ts_ms);
        sqlite3_bind_double(st, 4, r->reading.temp_c);
        sqlite3_bind_int64(st, 5, r->recv_ms);
    }
    if (step_done(st) != TRELLIS_OK)
        return TRELLIS_ERR_STORE;
    int added = sqlite3_changes(s->db);
    if (!r->rejected && r->reading.floor > d->floor)
        d->floor = r->reading.floor;
    if (added == 0) {
        stats->duplicates++;
        return TRELLIS_OK;
    }
    if (r->rejected) {
        stats->quarantined++;
        d->quarantined++;
        return TRELLIS_OK;
    }
    stats->stored++;
    d->stored++;
    if (r->reading.seq > d->last_seq) {
        d->last_seq = r->reading.seq;
        d->last_ts_ms = r->reading.ts_ms;
        d->last_temp_c = r->reading.temp_c;
        d->last_recv_ms = r->recv_ms;
    }
    return TRELLIS_OK;
}

/* Raises *acked through every consecutive seq present. */
static trellis_err_t advance(sqlite_store_t *s, const char *device_id, int64_t *acked)
{
    sqlite3_stmt *st = s->st[ST_SEQ_PAGE];
    for (;;) {
        int rows = 0;
        bool gap = false;
        int rc = SQLITE_ROW;
        sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, *acked);
        sqlite3_bind_int(st, 3, WATERMARK_PAGE);
        while (!gap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            rows++;
            if (sqlite3_column_int64(st, 0) == *acked + 1)
                (*acked)++;
            else
                gap = true;
        }
        bool failed = !gap && rc != SQLITE_DONE;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (failed)
            return TRELLIS_ERR_STORE;
        if (gap || rows < WATERMARK_PAGE)
            return TRELLIS_OK;
    }
}

static trellis_err_t update_device(sqlite_store_t *s, device_delta_t *d, trellis_ingest_ack_t *ack)
{
    sqlite3_stmt *st = s->st[ST_DEVICE_GET];
    int64_t acked = 0;
    int rc;

    sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        acked = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    /* floor: the device holds nothing at or below it any more (telemetry.h). */
    if (d->floor > acked)
        acked = d->floor;
    if (advance(s, d->device_id, &acked) != TRELLIS_OK)
        return TRELLIS_ERR_STORE;

    st = s->st[ST_DEVICE_PUT];
    sqlite3_bind_text(st, 1, d->device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, acked);
    sqlite3_bind_int64(st, 3, d->stored);
    sqlite3_bind_int64(st, 4, d->quarantined);
    sqlite3_bind_int64(st, 5, d->last_seq);
    sqlite3_bind_int64(st, 6, d->last_ts_ms);
    sqlite3_bind_double(st, 7, d->last_temp_c);
    sqlite3_bind_int64(st, 8, d->last_recv_ms);
    if (step_done(st) != TRELLIS_OK)
        return TRELLIS_ERR_STORE;
    memcpy(ack->device_id, d->device_id, sizeof(ack->device_id));
    ack->acked = acked;
    return TRELLIS_OK;
}

static trellis_err_t add_counter(sqlite_store_t *s, const char *name, uint64_t value)
{
    if (value == 0)
        return TRELLIS_OK;
    sqlite3_stmt *st = s->st[ST_COUNTER_ADD];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)value);
    return step_done(st);
}

static trellis_err_t sqlite_write_batch(void *ctx, const trellis_ingest_record_t *records, size_t n,
                                        trellis_ingest_stats_t *stats, trellis_ingest_ack_t *acks,
                                        size_t acks_size, size_t *n_acks)
{
    sqlite_store_t *s = ctx;
    size_t n_dev = 0;
    bool in_txn = false;
    trellis_ingest_stats_t batch = {0};
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (n_acks != NULL)
        *n_acks = 0;
    if (s == NULL || stats == NULL || n_acks == NULL || (n > 0 && records == NULL) ||
        n > TRELLIS_INGEST_BATCH_LIMIT || (n > 0 && acks == NULL)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (s->readonly) {
        err = TRELLIS_ERR_PERMISSION;
        goto out;
    }
    batch.rejected_topic = stats->rejected_topic;
    batch.rejected_payload = stats->rejected_payload;
    err = step_done(s->st[ST_BEGIN]);
    if (err != TRELLIS_OK)
        goto out;
    in_txn = true;
    for (size_t i = 0; i < n; i++) {
        device_delta_t *d = delta_for(s->deltas, &n_dev, records[i].device_id);
        err = insert_record(s, &records[i], d, &batch);
        if (err != TRELLIS_OK)
            goto out;
    }
    if (n_dev > acks_size) {
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    for (size_t i = 0; i < n_dev; i++) {
        err = update_device(s, &s->deltas[i], &acks[i]);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = add_counter(s, "stored", batch.stored);
    if (err == TRELLIS_OK)
        err = add_counter(s, "quarantined", batch.quarantined);
    if (err == TRELLIS_OK)
        err = add_counter(s, "rejected_topic", batch.rejected_topic);
    if (err == TRELLIS_OK)
        err = add_counter(s, "rejected_payload", batch.rejected_payload);
    if (err == TRELLIS_OK)
        err = add_counter(s, "duplicates", batch.duplicates);
    if (err == TRELLIS_OK)
        err = step_done(s->st[ST_COMMIT]);
    if (err != TRELLIS_OK)
        goto out;
    in_txn = false;
    stats->stored = batch.stored;
    stats->duplicates = batch.duplicates;
    stats->quarantined = batch.quarantined;
    *n_acks = n_dev;
    err = TRELLIS_OK;
out:
    if (err == TRELLIS_ERR_STORE)
        trellis_log(TRELLIS_LOG_ERROR, "store.error",
                    TRELLIS_KV_STR("sqlite", sqlite3_errmsg(s->db)));
    if (in_txn) {
        /* Nothing of a failed batch stays: the devices will resend it. */
        (void)step_done(s->st[ST_ROLLBACK]);
    }
    return err;
}

static void row_device(sqlite3_stmt *st, trellis_ingest_device_t *d)
{
    memset(d, 0, sizeof(*d));
    const unsigned char *id = sqlite3_column_text(st, 0);
    if (id != NULL)
        snprintf(d->device_id, sizeof(d->device_id), "%s", (const char *)id);
    d->acked = sqlite3_column_int64(st, 1);
    d->readings = sqlite3_column_int64(st, 2);
    d->quarantined = sqlite3_column_int64(st, 3);
    d->last_seq = sqlite3_column_int64(st, 4);
    d->last_ts_ms = sqlite3_column_int64(st, 5);
    d->last_temp_c = sqlite3_column_double(st, 6);
    d->last_recv_ms = sqlite3_column_int64(st, 7);
}

static trellis_err_t sqlite_query(void *ctx, const char *device_id, int64_t since_ms, size_t limit,
                                  trellis_ingest_row_fn fn, void *arg)
{
    sqlite_store_t *s = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;
    int rc = SQLITE_ROW;

    if (s == NULL || fn == NULL || trellis_telemetry_device_id_check(device_id) != TRELLIS_OK) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    st = s->st[ST_QUERY];
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, since_ms);
    sqlite3_bind_int64(st, 3, limit == 0 ? -1 : (sqlite3_int64)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        trellis_ingest_row_t row;
        memcpy(row.device_id, device_id, sizeof(row.device_id));
        row.seq = sqlite3_column_int64(st, 0);
        row.ts_ms = sqlite3_column_int64(st, 1);
        row.temp_c = sqlite3_column_double(st, 2);
        row.recv_ms = sqlite3_column_int64(st, 3);
        if (fn(&row, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    err = rc == SQLITE_DONE ? TRELLIS_OK : TRELLIS_ERR_STORE;
out:
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return err;
}

static trellis_err_t sqlite_device(void *ctx, const char *device_id, trellis_ingest_device_t *out)
{
    sqlite_store_t *s = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    sqlite3_stmt *st = NULL;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (s == NULL || out == NULL || trellis_telemetry_device_id_check(device_id) != TRELLIS_OK) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    st = s->st[ST_DEVICE_ONE];
    sqlite3_bind_text(st, 1, device_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        row_device(st, out);
        err = TRELLIS_OK;
    } else {
        err = rc == SQLITE_DONE ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_STORE;
    }
out:
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    return err;
}

static trellis_err_t sqlite_devices(void *ctx, trellis_ingest_device_fn fn, void *arg)
{
    sqlite_store_t *s = ctx;
    int rc = SQLITE_ROW;

    if (s == NULL || fn == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = s->st[ST_DEVICE_ALL];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        trellis_ingest_device_t d;
        row_device(st, &d);
        if (fn(&d, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TRELLIS_OK : TRELLIS_ERR_STORE;
}

static trellis_err_t sqlite_counters(void *ctx, trellis_ingest_stats_t *out)
{
    sqlite_store_t *s = ctx;
    int rc = SQLITE_ROW;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (s == NULL || out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = s->st[ST_COUNTERS];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        uint64_t v = (uint64_t)sqlite3_column_int64(st, 1);
        if (name == NULL)
            continue;
        if (strcmp(name, "stored") == 0)
            out->stored = v;
        else if (strcmp(name, "duplicates") == 0)
            out->duplicates = v;
        else if (strcmp(name, "quarantined") == 0)
            out->quarantined = v;
        else if (strcmp(name, "rejected_topic") == 0)
            out->rejected_topic = v;
        else if (strcmp(name, "rejected_payload") == 0)
            out->rejected_payload = v;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TRELLIS_OK : TRELLIS_ERR_STORE;
}

static void sqlite_close(void *ctx)
{
    sqlite_store_t *s = ctx;
    if (s == NULL)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s->deltas);
    free(s);
}

trellis_err_t trellis_ingest_sqlite_open(const char *path, bool readonly,
                                         trellis_ingest_store_t *store, trellis_reason_t *reason)
{
    sqlite_store_t *s = NULL;
    struct stat st;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    if (store != NULL)
        memset(store, 0, sizeof(*store));
    if (path == NULL || path[0] == '\0' || store == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no store path");
        goto out;
    }
    if (readonly && stat(path, &st) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOT_FOUND, "no telemetry store at %s", path);
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    s->readonly = readonly;
    if (!readonly) {
        s->deltas = calloc(TRELLIS_INGEST_BATCH_LIMIT, sizeof(*s->deltas));
        if (s->deltas == NULL) {
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
        /* The file holds every reading: owner only, from its creation on (SQLite gives the
         * -wal and -shm files the mode of the database file). */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            err = trellis_reason_set(
                reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_STORE,
                "cannot open the telemetry store %s: %s", path, strerror(errno));
            goto out;
        }
        close(fd);
    }
    /* A reader opens read-write too, without creating: a WAL database needs its -shm file
     * writable even to read; s->readonly keeps the reader from writing. */
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        err = db_error(s, reason, "cannot open the telemetry store");
        goto out;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (!readonly) {
        if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                         NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
            err = db_error(s, reason, "cannot set up the telemetry store");
            goto out;
        }
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(s->db, statements[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK) {
            err = db_error(s, reason, "cannot prepare a statement (is this a telemetry store?)");
            goto out;
        }
    }
    store->version = TRELLIS_INGEST_STORE_VERSION;
    store->ctx = s;
    store->write_batch = sqlite_write_batch;
    store->query = sqlite_query;
    store->device = sqlite_device;
    store->devices = sqlite_devices;
    store->counters = sqlite_counters;
    store->close = sqlite_close;
    s = NULL;
    err = TRELLIS_OK;
out:
    sqlite_close(s);
    return err;
}

trellis_err_t trellis_ingest_store_check(const trellis_ingest_store_t *store)
{
    if (store == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (store->version != TRELLIS_INGEST_STORE_VERSION)
        return TRELLIS_ERR_CONFIG;
    if (store->write_batch == NULL || store->query == NULL || store->device == NULL ||
        store->devices == NULL || store->counters == NULL || store->close == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    return TRELLIS_OK;
}
