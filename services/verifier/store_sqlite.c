/*
 * SQLite backend of the verifier store (include/trellis/verifier_store.h).
 *
 * One trellis_vstore_t is one sqlite3 connection with its prepared statements. The database runs
 * in WAL mode so readers (verdict look-ups) never wait for the writer. Manifest records are
 * staged in a TEMP table, which lives in this connection's private temporary database: staging
 * a million records takes no lock on the registry, and only the final merge holds the write
 * lock (BEGIN IMMEDIATE, so it waits for the lock up front instead of failing half-way).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "trellis/clock.h"
#include "trellis/sqlite_util.h"

#include "trellis/verifier_store.h"

#define SCHEMA_VERSION   2
#define AUDIT_APPEND_MAX 1000

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS oems("
    " name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS factories("
    " name TEXT PRIMARY KEY, key BLOB NOT NULL CHECK(length(key) = 65),"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS manifests("
    " id INTEGER PRIMARY KEY, sha256 BLOB NOT NULL UNIQUE,"
    " factory TEXT NOT NULL REFERENCES factories(name), batch TEXT NOT NULL,"
    " owner TEXT NOT NULL REFERENCES oems(name), created TEXT NOT NULL,"
    " count INTEGER NOT NULL, added INTEGER NOT NULL, imported_ms INTEGER NOT NULL,"
    " UNIQUE(factory, batch));"
    "CREATE TABLE IF NOT EXISTS devices("
    " device_id TEXT PRIMARY KEY, rot_key BLOB NOT NULL CHECK(length(rot_key) = 65),"
    " model TEXT NOT NULL, serial TEXT NOT NULL,"
    " owner TEXT NOT NULL REFERENCES oems(name),"
    " factory TEXT NOT NULL REFERENCES factories(name), batch TEXT NOT NULL,"
    " manifest_id INTEGER NOT NULL REFERENCES manifests(id),"
    " revoked INTEGER NOT NULL DEFAULT 0, revoke_reason TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS devices_owner ON devices(owner, device_id);"
    "CREATE INDEX IF NOT EXISTS devices_batch ON devices(batch, factory);"
    /* Every verdict appends here and waits for the commit, so an entry must touch as few pages
     * as possible: the sequence is the rowid (rows are never deleted, so max + 1 never goes
     * back; AUTOINCREMENT would add a page of bookkeeping per commit), and there is no index
     * by device, which would dirty a leaf at a random place in the index per verdict. Listing
     * one device's entries scans the log instead (docs/verifier.md). */
    "CREATE TABLE IF NOT EXISTS audit("
    " seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, event TEXT NOT NULL,"
    " caller TEXT NOT NULL, device TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL);"
    /* The audit log is append-only: refuse any change at the database level too, so a bug or a
     * hand-typed statement cannot rewrite history. */
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;";

static const char STAGE_SCHEMA[] =
    "CREATE TEMP TABLE IF NOT EXISTS import_stage("
    " device_id TEXT PRIMARY KEY, rot_key BLOB NOT NULL, model TEXT NOT NULL,"
    " serial TEXT NOT NULL UNIQUE, line INTEGER NOT NULL) WITHOUT ROWID;";

#define DEVICE_COLS                                                                                \
    "device_id, rot_key, model, serial, owner, factory, batch, revoked, revoke_reason,"            \
    " created_ms, changed_ms"

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_OEM_ADD,
    ST_OEM_EXISTS,
    ST_FACTORY_ADD,
    ST_FACTORY_KEY,
    ST_NAME_TAKEN,
    ST_DEVICE_GET,
    ST_DEVICE_LIST_ALL,
    ST_DEVICE_LIST_OWNER,
    ST_DEVICE_REVOKE,
    ST_DEVICE_OWNER,
    ST_DEVICE_SET_OWNER,
    ST_BATCH_COUNT,
    ST_BATCH_AUDIT,
    ST_BATCH_SET_OWNER,
    ST_AUDIT_ADD,
    ST_AUDIT_LIST_ALL,
    ST_AUDIT_LIST_DEVICE,
    ST_STAGE_ADD,
    ST_STAGE_DUP,
    ST_MANIFEST_BY_SHA,
    ST_MANIFEST_BY_BATCH,
    ST_MANIFEST_ADD,
    ST_MANIFEST_SET_ADDED,
    ST_CONFLICTS,
    ST_MERGE,
    ST_COUNT
};

static const char *const STMT_SQL[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_OEM_ADD] = "INSERT INTO oems(name, created_ms) VALUES(?1, ?2)",
    [ST_OEM_EXISTS] = "SELECT 1 FROM oems WHERE name = ?1",
    [ST_FACTORY_ADD] = "INSERT INTO factories(name, key, created_ms) VALUES(?1, ?2, ?3)",
    [ST_FACTORY_KEY] = "SELECT key FROM factories WHERE name = ?1",
    /* OEMs and factories share one namespace, so a client certificate's CN names exactly one
     * tenant and an OEM's certificate can never pass for a factory's. */
    [ST_NAME_TAKEN] = "SELECT 1 FROM oems WHERE name = ?1 UNION ALL"
                      " SELECT 1 FROM factories WHERE name = ?1",
    [ST_DEVICE_GET] = "SELECT " DEVICE_COLS " FROM devices WHERE device_id = ?1",
    [ST_DEVICE_LIST_ALL] = "SELECT " DEVICE_COLS " FROM devices WHERE device_id > ?1"
                           " ORDER BY device_id LIMIT ?2",
    [ST_DEVICE_LIST_OWNER] = "SELECT " DEVICE_COLS " FROM devices WHERE owner = ?3"
                             " AND device_id > ?1 ORDER BY device_id LIMIT ?2",
    [ST_DEVICE_REVOKE] = "UPDATE devices SET revoked = 1, revoke_reason = ?2, changed_ms = ?3"
                         " WHERE device_id = ?1 AND revoked = 0",
    [ST_DEVICE_OWNER] = "SELECT owner FROM devices WHERE device_id = ?1",
    [ST_DEVICE_SET_OWNER] = "UPDATE devices SET owner = ?2, changed_ms = ?3 WHERE device_id = ?1",
    [ST_BATCH_COUNT] = "SELECT count(*) FROM devices WHERE batch = ?1"
                       " AND (?2 IS NULL OR factory = ?2)",
    [ST_BATCH_AUDIT] = "INSERT INTO audit(ts_ms, event, caller, device, outcome, reason)"
                       " SELECT ?4, 'device.transfer', ?5, device_id, 'ok',"
                       " 'batch=' || batch || ' from=' || owner || ' to=' || ?3"
                       " FROM devices WHERE batch = ?1 AND (?2 IS NULL OR factory = ?2)"
                       " AND owner <> ?3 ORDER BY device_id",
    [ST_BATCH_SET_OWNER] = "UPDATE devices SET owner = ?3, changed_ms = ?4 WHERE batch = ?1"
                           " AND (?2 IS NULL OR factory = ?2) AND owner <> ?3",
    [ST_AUDIT_ADD] = "INSERT INTO audit(ts_ms, event, caller, device, outcome, reason)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_AUDIT_LIST_ALL] = "SELECT seq, ts_ms, event, caller, device, outcome, reason FROM audit"
                          " WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_AUDIT_LIST_DEVICE] = "SELECT seq, ts_ms, event, caller, device, outcome, reason FROM audit"
                             " WHERE device = ?3 AND seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_STAGE_ADD] = "INSERT INTO temp.import_stage(device_id, rot_key, model, serial, line)"
                     " VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_STAGE_DUP] = "SELECT line, device_id = ?1 FROM temp.import_stage"
                     " WHERE device_id = ?1 OR serial = ?2 LIMIT 1",
    [ST_MANIFEST_BY_SHA] = "SELECT 1 FROM manifests WHERE sha256 = ?1",
    [ST_MANIFEST_BY_BATCH] = "SELECT 1 FROM manifests WHERE factory = ?1 AND batch = ?2",
    [ST_MANIFEST_ADD] = "INSERT INTO manifests(sha256, factory, batch, owner, created, count,"
                        " added, imported_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
    [ST_MANIFEST_SET_ADDED] = "UPDATE manifests SET added = ?2 WHERE id = ?1",
    /* A staged record conflicts with a known device when any recorded field differs. */
    [ST_CONFLICTS] = "SELECT s.line FROM temp.import_stage s JOIN devices d"
                     " ON d.device_id = s.device_id WHERE d.rot_key <> s.rot_key"
                     " OR d.model <> s.model OR d.serial <> s.serial OR d.owner <> ?1"
                     " OR d.factory <> ?2 ORDER BY s.line",
    /* Staged rows come out in device_id order (the stage's primary key), so the inserts walk
     * the registry's B-tree in order. */
    [ST_MERGE] = "INSERT INTO devices(device_id, rot_key, model, serial, owner, factory, batch,"
                 " manifest_id, created_ms)"
                 " SELECT s.device_id, s.rot_key, s.model, s.serial, ?1, ?2, ?3, ?4, ?5"
                 " FROM temp.import_stage s"
                 " WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = s.device_id)"
                 " ORDER BY s.device_id",
};

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int staging;     /* 1 while an import's staging transaction is open */
    uint64_t staged; /* records staged since import_begin */
} sq_ctx;

/* Statements are reset and unbound after each use so none holds a read snapshot open. */
static sqlite3_stmt *stmt(sq_ctx *c, int id)
{
    return trellis_sqlite_fresh(c->st[id]);
}

static void done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
}

static trellis_err_t exec_sql(sq_ctx *c, const char *sql)
{
    return trellis_sqlite_exec(c->db, sql);
}

/* BEGIN and COMMIT are prepared once: the audit writer runs them for every batch. */
static trellis_err_t run_once(sq_ctx *c, int id)
{
    return trellis_sqlite_step_done(stmt(c, id));
}

static trellis_err_t begin_write(sq_ctx *c)
{
    return run_once(c, ST_BEGIN);
}

static trellis_err_t commit(sq_ctx *c)
{
    if (run_once(c, ST_COMMIT) == TRELLIS_OK)
        return TRELLIS_OK;
    exec_sql(c, "ROLLBACK");
    return TRELLIS_ERR_STORE;
}

static void rollback(sq_ctx *c)
{
    if (!sqlite3_get_autocommit(c->db))
        exec_sql(c, "ROLLBACK");
}

static trellis_err_t audit_insert(sq_ctx *c, int64_t ts, const char *event, const char *caller,
                                  const char *device, const char *outcome, const char *reason)
{
    sqlite3_stmt *st = stmt(c, ST_AUDIT_ADD);
    sqlite3_bind_int64(st, 1, ts);
    trellis_sqlite_bind_text_or_null(st, 2, event);
    trellis_sqlite_bind_text_or_null(st, 3, caller != NULL ? caller : "");
    trellis_sqlite_bind_text_or_null(st, 4, device != NULL ? device : "");
    trellis_sqlite_bind_text_or_null(st, 5, outcome);
    trellis_sqlite_bind_text_or_null(st, 6, reason != NULL ? reason : "");
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE ? TRELLIS_OK : TRELLIS_ERR_STORE;
}

static trellis_err_t name_free(sq_ctx *c, const char *name)
{
    sqlite3_stmt *st = stmt(c, ST_NAME_TAKEN);
    trellis_sqlite_bind_text_or_null(st, 1, name);
    int rc = sqlite3_step(st);
    done(st);
    return rc == SQLITE_DONE  ? TRELLIS_OK
           : rc == SQLITE_ROW ? TRELLIS_ERR_EXISTS
                              : TRELLIS_ERR_STORE;
}

static trellis_err_t sq_oem_add(void *ctx, const char *name, const char *caller)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int64_t ts = trellis_wall_ms();

    if (name == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    err = name_free(c, name);
    if (err != TRELLIS_OK)
        goto out;
    sqlite3_stmt *st = stmt(c, ST_OEM_ADD);
    trellis_sqlite_bind_text_or_null(st, 1, name);
    sqlite3_bind_int64(st, 2, ts);
    err = trellis_sqlite_step_done(st);
    if (err != TRELLIS_OK)
        goto out;
    err = audit_insert(c, ts, "oem.add", caller, "", "ok", name);
    if (err != TRELLIS_OK)
        goto out;
    err = commit(c);
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static trellis_err_t sq_oem_exists(void *ctx, const char *name, int *exists)
{
    sq_ctx *c = ctx;
    if (exists == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *exists = 0;
    if (name == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = stmt(c, ST_OEM_EXISTS);
    trellis_sqlite_bind_text_or_null(st, 1, name);
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    *exists = rc == SQLITE_ROW;
    return TRELLIS_OK;
}

static trellis_err_t sq_factory_add(void *ctx, const char *name,
                                    const uint8_t key[TRELLIS_ROT_KEY_LEN], const char *caller)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int64_t ts = trellis_wall_ms();

    if (name == NULL || key == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    err = name_free(c, name);
    if (err != TRELLIS_OK)
        goto out;
    sqlite3_stmt *st = stmt(c, ST_FACTORY_ADD);
    trellis_sqlite_bind_text_or_null(st, 1, name);
    sqlite3_bind_blob(st, 2, key, TRELLIS_ROT_KEY_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, ts);
    err = trellis_sqlite_step_done(st);
    if (err != TRELLIS_OK)
        goto out;
    err = audit_insert(c, ts, "factory.add", caller, "", "ok", name);
    if (err != TRELLIS_OK)
        goto out;
    err = commit(c);
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static trellis_err_t sq_factory_key(void *ctx, const char *name, uint8_t key[TRELLIS_ROT_KEY_LEN])
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_NOT_FOUND;

    if (key == NULL || name == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(key, 0, TRELLIS_ROT_KEY_LEN);
    sqlite3_stmt *st = stmt(c, ST_FACTORY_KEY);
    trellis_sqlite_bind_text_or_null(st, 1, name);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        err = TRELLIS_ERR_STORE;
        if (sqlite3_column_bytes(st, 0) == TRELLIS_ROT_KEY_LEN) {
            memcpy(key, sqlite3_column_blob(st, 0), TRELLIS_ROT_KEY_LEN);
            err = TRELLIS_OK;
        }
    } else if (rc != SQLITE_DONE) {
        err = TRELLIS_ERR_STORE;
    }
    done(st);
    return err;
}

static trellis_err_t read_device(sqlite3_stmt *st, trellis_vstore_device_t *out)
{
    memset(out, 0, sizeof(*out));
    trellis_sqlite_column_copy(out->device_id, sizeof(out->device_id), st, 0);
    if (sqlite3_column_bytes(st, 1) != TRELLIS_ROT_KEY_LEN)
        return TRELLIS_ERR_STORE;
    memcpy(out->rot_key, sqlite3_column_blob(st, 1), TRELLIS_ROT_KEY_LEN);
    trellis_sqlite_column_copy(out->model, sizeof(out->model), st, 2);
    trellis_sqlite_column_copy(out->serial, sizeof(out->serial), st, 3);
    trellis_sqlite_column_copy(out->owner, sizeof(out->owner), st, 4);
    trellis_sqlite_column_copy(out->factory, sizeof(out->factory), st, 5);
    trellis_sqlite_column_copy(out->batch, sizeof(out->batch), st, 6);
    out->revoked = sqlite3_column_int(st, 7) != 0;
    trellis_sqlite_column_copy(out->revoke_reason, sizeof(out->revoke_reason), st, 8);
    out->created_ms = sqlite3_column_int64(st, 9);
    out->changed_ms = sqlite3_column_int64(st, 10);
    return TRELLIS_OK;
}

static trellis_err_t sq_device_get(void *ctx, const char *device_id, trellis_vstore_device_t *out)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_NOT_FOUND;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (device_id == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = stmt(c, ST_DEVICE_GET);
    trellis_sqlite_bind_text_or_null(st, 1, device_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        err = read_device(st, out);
    else if (rc != SQLITE_DONE)
        err = TRELLIS_ERR_STORE;
    done(st);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

static trellis_err_t sq_device_list(void *ctx, const char *owner, const char *after_id,
                                    size_t limit, trellis_vstore_device_cb cb, void *arg)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_OK;
    trellis_vstore_device_t dev;

    if (cb == NULL || limit == 0 || limit > TRELLIS_VSTORE_LIST_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = stmt(c, owner != NULL ? ST_DEVICE_LIST_OWNER : ST_DEVICE_LIST_ALL);
    trellis_sqlite_bind_text_or_null(st, 1, after_id != NULL ? after_id : "");
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    if (owner != NULL)
        trellis_sqlite_bind_text_or_null(st, 3, owner);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = TRELLIS_ERR_STORE;
            break;
        }
        err = read_device(st, &dev);
        if (err != TRELLIS_OK || cb(arg, &dev) != 0)
            break;
    }
    done(st);
    return err;
}

static trellis_err_t sq_device_revoke(void *ctx, const char *device_id, const char *reason,
                                      const char *caller)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_device_t dev;
    int64_t ts = trellis_wall_ms();

    if (device_id == NULL || reason == NULL || strlen(reason) > TRELLIS_VSTORE_REASON_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    err = sq_device_get(c, device_id, &dev);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_REVOKED;
    if (dev.revoked)
        goto out;
    sqlite3_stmt *st = stmt(c, ST_DEVICE_REVOKE);
    trellis_sqlite_bind_text_or_null(st, 1, device_id);
    trellis_sqlite_bind_text_or_null(st, 2, reason);
    sqlite3_bind_int64(st, 3, ts);
    int rc = sqlite3_step(st);
    done(st);
    err = TRELLIS_ERR_STORE;
    if (rc != SQLITE_DONE || sqlite3_changes(c->db) != 1)
        goto out;
    err = audit_insert(c, ts, "device.revoke", caller, device_id, "revoked", reason);
    if (err != TRELLIS_OK)
        goto out;
    err = commit(c);
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static trellis_err_t transfer_one(sq_ctx *c, const char *device_id, const char *to,
                                  const char *caller, int64_t ts, uint64_t *moved)
{
    char from[TRELLIS_VSTORE_NAME_MAX + 1];
    char reason[TRELLIS_VSTORE_REASON_MAX + 1];

    sqlite3_stmt *st = stmt(c, ST_DEVICE_OWNER);
    trellis_sqlite_bind_text_or_null(st, 1, device_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        trellis_sqlite_column_copy(from, sizeof(from), st, 0);
    done(st);
    if (rc == SQLITE_DONE)
        return TRELLIS_ERR_NOT_FOUND;
    if (rc != SQLITE_ROW)
        return TRELLIS_ERR_STORE;
    if (strcmp(from, to) == 0)
        return TRELLIS_OK;
    st = stmt(c, ST_DEVICE_SET_OWNER);
    trellis_sqlite_bind_text_or_null(st, 1, device_id);
    trellis_sqlite_bind_text_or_null(st, 2, to);
    sqlite3_bind_int64(st, 3, ts);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    snprintf(reason, sizeof(reason), "from=%s to=%s", from, to);
    *moved = 1;
    return audit_insert(c, ts, "device.transfer", caller, device_id, "ok", reason);
}

static trellis_err_t transfer_batch(sq_ctx *c, const char *batch, const char *factory,
                                    const char *to, const char *caller, int64_t ts, uint64_t *moved)
{
    sqlite3_stmt *st = stmt(c, ST_BATCH_COUNT);
    trellis_sqlite_bind_text_or_null(st, 1, batch);
    trellis_sqlite_bind_text_or_null(st, 2, factory);
    int rc = sqlite3_step(st);
    sqlite3_int64 n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    done(st);
    if (n < 0)
        return TRELLIS_ERR_STORE;
    if (n == 0)
        return TRELLIS_ERR_NOT_FOUND;
    /* The audit rows are written first, while the devices still name their previous owner. */
    st = stmt(c, ST_BATCH_AUDIT);
    trellis_sqlite_bind_text_or_null(st, 1, batch);
    trellis_sqlite_bind_text_or_null(st, 2, factory);
    trellis_sqlite_bind_text_or_null(st, 3, to);
    sqlite3_bind_int64(st, 4, ts);
    trellis_sqlite_bind_text_or_null(st, 5, caller != NULL ? caller : "");
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    sqlite3_int64 audited = sqlite3_changes64(c->db);
    st = stmt(c, ST_BATCH_SET_OWNER);
    trellis_sqlite_bind_text_or_null(st, 1, batch);
    trellis_sqlite_bind_text_or_null(st, 2, factory);
    trellis_sqlite_bind_text_or_null(st, 3, to);
    sqlite3_bind_int64(st, 4, ts);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE || sqlite3_changes64(c->db) != audited)
        return TRELLIS_ERR_STORE;
    *moved = (uint64_t)audited;
    return TRELLIS_OK;
}

static trellis_err_t sq_transfer(void *ctx, const char *device_id, const char *batch,
                                 const char *factory, const char *to, const char *caller,
                                 uint64_t *moved)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int exists = 0;
    uint64_t n = 0;
    int64_t ts = trellis_wall_ms();

    if (moved == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *moved = 0;
    if (to == NULL || (device_id == NULL) == (batch == NULL))
        return TRELLIS_ERR_INVALID_ARG;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    err = sq_oem_exists(c, to, &exists);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_NOT_FOUND;
    if (!exists)
        goto out;
    if (device_id != NULL)
        err = transfer_one(c, device_id, to, caller, ts, &n);
    else
        err = transfer_batch(c, batch, factory, to, caller, ts, &n);
    if (err != TRELLIS_OK)
        goto out;
    err = commit(c);
    if (err != TRELLIS_OK)
        goto out;
    *moved = n;
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static trellis_err_t sq_audit_append(void *ctx, const trellis_vstore_audit_t *entries, size_t n)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int64_t ts = trellis_wall_ms();

    if (entries == NULL || n == 0 || n > AUDIT_APPEND_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const trellis_vstore_audit_t *e = &entries[i];
        /* The fields are fixed-size arrays; refuse any that is not NUL-terminated. */
        err = TRELLIS_ERR_INVALID_ARG;
        if (memchr(e->event, '\0', sizeof(e->event)) == NULL ||
            memchr(e->caller, '\0', sizeof(e->caller)) == NULL ||
            memchr(e->device, '\0', sizeof(e->device)) == NULL ||
            memchr(e->outcome, '\0', sizeof(e->outcome)) == NULL ||
            memchr(e->reason, '\0', sizeof(e->reason)) == NULL || e->event[0] == '\0')
            goto out;
        err = audit_insert(c, e->ts_ms != 0 ? e->ts_ms : ts, e->event, e->caller, e->device,
                           e->outcome, e->reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = commit(c);
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static trellis_err_t sq_audit_list(void *ctx, const char *device, int64_t after_seq, size_t limit,
                                   trellis_vstore_audit_cb cb, void *arg)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_OK;
    trellis_vstore_audit_t e;

    if (cb == NULL || limit == 0 || limit > TRELLIS_VSTORE_LIST_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    sqlite3_stmt *st = stmt(c, device != NULL ? ST_AUDIT_LIST_DEVICE : ST_AUDIT_LIST_ALL);
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    if (device != NULL)
        trellis_sqlite_bind_text_or_null(st, 3, device);
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = TRELLIS_ERR_STORE;
            break;
        }
        memset(&e, 0, sizeof(e));
        e.seq = sqlite3_column_int64(st, 0);
        e.ts_ms = sqlite3_column_int64(st, 1);
        trellis_sqlite_column_copy(e.event, sizeof(e.event), st, 2);
        trellis_sqlite_column_copy(e.caller, sizeof(e.caller), st, 3);
        trellis_sqlite_column_copy(e.device, sizeof(e.device), st, 4);
        trellis_sqlite_column_copy(e.outcome, sizeof(e.outcome), st, 5);
        trellis_sqlite_column_copy(e.reason, sizeof(e.reason), st, 6);
        if (cb(arg, &e) != 0)
            break;
    }
    done(st);
    return err;
}

static trellis_err_t count_rows(sq_ctx *c, const char *sql, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    trellis_err_t err = TRELLIS_ERR_STORE;
    *out = 0;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    err = TRELLIS_OK;
out:
    sqlite3_finalize(st);
    return err;
}

static trellis_err_t sq_counts(void *ctx, trellis_vstore_counts_t *out)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_counts_t n;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    memset(&n, 0, sizeof(n));
    /* One read transaction, so the counts are of one snapshot. */
    err = exec_sql(c, "BEGIN");
    if (err != TRELLIS_OK)
        goto out;
    if ((err = count_rows(c, "SELECT count(*) FROM oems", &n.oems)) != TRELLIS_OK ||
        (err = count_rows(c, "SELECT count(*) FROM factories", &n.factories)) != TRELLIS_OK ||
        (err = count_rows(c, "SELECT count(*) FROM manifests", &n.manifests)) != TRELLIS_OK ||
        (err = count_rows(c, "SELECT count(*) FROM devices", &n.devices)) != TRELLIS_OK ||
        (err = count_rows(c, "SELECT count(*) FROM devices WHERE revoked <> 0", &n.revoked)) !=
            TRELLIS_OK ||
        (err = count_rows(c, "SELECT count(*) FROM audit", &n.audit)) != TRELLIS_OK)
        goto out;
    err = exec_sql(c, "COMMIT");
    if (err != TRELLIS_OK)
        goto out;
    *out = n;
out:
    if (err != TRELLIS_OK)
        rollback(c);
    return err;
}

static void sq_import_abort(void *ctx)
{
    sq_ctx *c = ctx;
    if (c->staging)
        rollback(c);
    c->staging = 0;
    c->staged = 0;
    /* DELETE without WHERE truncates the table in one step. */
    exec_sql(c, "DELETE FROM temp.import_stage");
}

static trellis_err_t sq_import_begin(void *ctx)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    sq_import_abort(c);
    /* A deferred transaction that only ever writes the TEMP table locks nothing in the
     * registry, so verdicts and other imports proceed while a large manifest streams in. */
    err = exec_sql(c, "BEGIN");
    if (err != TRELLIS_OK)
        return err;
    c->staging = 1;
    return TRELLIS_OK;
}

static trellis_err_t sq_import_stage(void *ctx, const trellis_vstore_record_t *r, uint64_t line,
                                     trellis_reason_t *reason)
{
    sq_ctx *c = ctx;

    if (!c->staging)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no import in progress");
    if (r == NULL || r->device_id == NULL || r->rot_key == NULL || r->model == NULL ||
        r->serial == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "incomplete record");
    sqlite3_stmt *st = stmt(c, ST_STAGE_ADD);
    trellis_sqlite_bind_text_or_null(st, 1, r->device_id);
    sqlite3_bind_blob(st, 2, r->rot_key, TRELLIS_ROT_KEY_LEN, SQLITE_TRANSIENT);
    trellis_sqlite_bind_text_or_null(st, 3, r->model);
    trellis_sqlite_bind_text_or_null(st, 4, r->serial);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)line);
    int rc = sqlite3_step(st);
    done(st);
    if (rc == SQLITE_DONE) {
        c->staged++;
        return TRELLIS_OK;
    }
    if ((rc & 0xff) != SQLITE_CONSTRAINT)
        return trellis_reason_set(reason, TRELLIS_ERR_STORE, "staging failed");
    /* Name the earlier line this record repeats. */
    st = stmt(c, ST_STAGE_DUP);
    trellis_sqlite_bind_text_or_null(st, 1, r->device_id);
    trellis_sqlite_bind_text_or_null(st, 2, r->serial);
    rc = sqlite3_step(st);
    sqlite3_int64 other = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int same_id = rc == SQLITE_ROW && sqlite3_column_int(st, 1) != 0;
    done(st);
    return trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                              "line %" PRIu64 " repeats the %s of line %lld", line,
                              same_id ? "device id" : "serial", (long long)other);
}

static trellis_err_t check_named(sq_ctx *c, const trellis_vstore_manifest_t *m)
{
    int exists = 0;
    uint8_t key[TRELLIS_ROT_KEY_LEN];
    trellis_err_t err = sq_oem_exists(c, m->owner, &exists);
    if (err != TRELLIS_OK)
        return err;
    if (!exists)
        return TRELLIS_ERR_NOT_FOUND;
    return sq_factory_key(c, m->factory, key);
}

static trellis_err_t find_conflicts(sq_ctx *c, const trellis_vstore_manifest_t *m,
                                    trellis_vstore_import_result_t *res)
{
    sqlite3_stmt *st = stmt(c, ST_CONFLICTS);
    trellis_sqlite_bind_text_or_null(st, 1, m->owner);
    trellis_sqlite_bind_text_or_null(st, 2, m->factory);
    trellis_err_t err = TRELLIS_OK;
    for (;;) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = TRELLIS_ERR_STORE;
            break;
        }
        if (res->n_lines < TRELLIS_VSTORE_REPORT_MAX)
            res->lines[res->n_lines++] = (uint64_t)sqlite3_column_int64(st, 0);
        res->conflicts++;
    }
    done(st);
    if (err == TRELLIS_OK && res->conflicts > 0)
        err = TRELLIS_ERR_CONFLICT;
    return err;
}

static trellis_err_t exists_row(sq_ctx *c, int id, const trellis_vstore_manifest_t *m, int *found)
{
    sqlite3_stmt *st = stmt(c, id);
    if (id == ST_MANIFEST_BY_SHA) {
        sqlite3_bind_blob(st, 1, m->sha256, 32, SQLITE_TRANSIENT);
    } else {
        trellis_sqlite_bind_text_or_null(st, 1, m->factory);
        trellis_sqlite_bind_text_or_null(st, 2, m->batch);
    }
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    *found = rc == SQLITE_ROW;
    return TRELLIS_OK;
}

static trellis_err_t merge(sq_ctx *c, const trellis_vstore_manifest_t *m, int64_t ts,
                           trellis_vstore_import_result_t *res)
{
    char reason[TRELLIS_VSTORE_REASON_MAX + 1];
    sqlite3_stmt *st = stmt(c, ST_MANIFEST_ADD);
    sqlite3_bind_blob(st, 1, m->sha256, 32, SQLITE_TRANSIENT);
    trellis_sqlite_bind_text_or_null(st, 2, m->factory);
    trellis_sqlite_bind_text_or_null(st, 3, m->batch);
    trellis_sqlite_bind_text_or_null(st, 4, m->owner);
    trellis_sqlite_bind_text_or_null(st, 5, m->created != NULL ? m->created : "");
    sqlite3_bind_int64(st, 6, (sqlite3_int64)m->count);
    sqlite3_bind_int64(st, 7, ts);
    int rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    sqlite3_int64 manifest_id = sqlite3_last_insert_rowid(c->db);

    st = stmt(c, ST_MERGE);
    trellis_sqlite_bind_text_or_null(st, 1, m->owner);
    trellis_sqlite_bind_text_or_null(st, 2, m->factory);
    trellis_sqlite_bind_text_or_null(st, 3, m->batch);
    sqlite3_bind_int64(st, 4, manifest_id);
    sqlite3_bind_int64(st, 5, ts);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;
    res->added = (uint64_t)sqlite3_changes64(c->db);
    res->present = c->staged - res->added;

    st = stmt(c, ST_MANIFEST_SET_ADDED);
    sqlite3_bind_int64(st, 1, manifest_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)res->added);
    rc = sqlite3_step(st);
    done(st);
    if (rc != SQLITE_DONE)
        return TRELLIS_ERR_STORE;

    char sha_hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(sha_hex + 2 * i, 3, "%02x", m->sha256[i]);
    snprintf(reason, sizeof(reason),
             "factory=%s batch=%s owner=%s records=%" PRIu64 " added=%" PRIu64 " present=%" PRIu64
             " sha256=%s...",
             m->factory, m->batch, m->owner, c->staged, res->added, res->present, sha_hex);
    return audit_insert(c, ts, "manifest.import", m->caller, "", "imported", reason);
}

static trellis_err_t sq_import_commit(void *ctx, const trellis_vstore_manifest_t *m,
                                      trellis_vstore_import_result_t *res)
{
    sq_ctx *c = ctx;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int found = 0;
    int64_t ts = trellis_wall_ms();

    if (res == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(res, 0, sizeof(*res));
    if (m == NULL || m->factory == NULL || m->owner == NULL || m->batch == NULL ||
        m->sha256 == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_INVALID_ARG;
    if (!c->staging)
        goto out;
    /* End the staging transaction (it only wrote the TEMP table), then take the registry's
     * write lock for the merge. */
    err = exec_sql(c, "COMMIT");
    c->staging = 0;
    if (err != TRELLIS_OK)
        goto out;
    err = begin_write(c);
    if (err != TRELLIS_OK)
        goto out;
    err = exists_row(c, ST_MANIFEST_BY_SHA, m, &found);
    if (err != TRELLIS_OK)
        goto out;
    if (found) {
        res->already_present = 1;
        rollback(c);
        err = TRELLIS_OK;
        goto out;
    }
    err = check_named(c, m);
    if (err != TRELLIS_OK)
        goto out;
    err = exists_row(c, ST_MANIFEST_BY_BATCH, m, &found);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CONFLICT;
    if (found)
        goto out;
    err = find_conflicts(c, m, res);
    if (err != TRELLIS_OK)
        goto out;
    err = merge(c, m, ts, res);
    if (err != TRELLIS_OK)
        goto out;
    err = commit(c);
out:
    if (err != TRELLIS_OK) {
        rollback(c);
        uint64_t conflicts = res->conflicts;
        size_t n_lines = res->n_lines;
        uint64_t lines[TRELLIS_VSTORE_REPORT_MAX];
        memcpy(lines, res->lines, sizeof(lines));
        memset(res, 0, sizeof(*res));
        if (err == TRELLIS_ERR_CONFLICT) {
            res->conflicts = conflicts;
            res->n_lines = n_lines;
            memcpy(res->lines, lines, sizeof(lines));
        }
    }
    c->staged = 0;
    exec_sql(c, "DELETE FROM temp.import_stage");
    return err;
}

static void sq_close(void *ctx)
{
    sq_ctx *c = ctx;
    if (c == NULL)
        return;
    if (c->db != NULL)
        rollback(c);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static trellis_err_t check_schema(sq_ctx *c, int create)
{
    sqlite3_stmt *st = NULL;
    trellis_err_t err = TRELLIS_ERR_STORE;
    int version = -1;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW)
        goto out;
    version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (version > SCHEMA_VERSION)
        goto out; /* written by a newer Trellis: refuse rather than misread it */
    if (version == 0 && !create) {
        err = TRELLIS_ERR_NOT_FOUND;
        goto out;
    }
    if (version < SCHEMA_VERSION) {
        /* Statements are not prepared yet: plain SQL for the transaction. Version 1 indexed the
         * audit log by device; version 2 does not (see SCHEMA), and its rows stay as they are. */
        char set_version[64];
        snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d", SCHEMA_VERSION);
        err = exec_sql(c, "BEGIN IMMEDIATE");
        if (err != TRELLIS_OK)
            goto out;
        if (exec_sql(c, version == 0 ? SCHEMA : "DROP INDEX IF EXISTS audit_device") !=
                TRELLIS_OK ||
            exec_sql(c, set_version) != TRELLIS_OK || exec_sql(c, "COMMIT") != TRELLIS_OK) {
            exec_sql(c, "ROLLBACK");
            err = TRELLIS_ERR_STORE;
            goto out;
        }
    }
    err = TRELLIS_OK;
out:
    sqlite3_finalize(st);
    return err;
}

trellis_err_t trellis_vstore_open_sqlite(const char *path, const trellis_vstore_sqlite_opts_t *opts,
                                         trellis_vstore_t **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_vstore_sqlite_opts_t o = {.durable = 1, .busy_timeout_ms = 5000, .create = 0};
    trellis_vstore_t *s = NULL;
    sq_ctx *c = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (path == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (opts != NULL)
        o = *opts;
    err = TRELLIS_ERR_NOMEM;
    s = calloc(1, sizeof(*s));
    c = calloc(1, sizeof(*c));
    if (s == NULL || c == NULL)
        goto out;
    /* The import stage's cache is bounded: a manifest of any size stages through 16 MiB. */
    err = trellis_sqlite_open_store(path, o.create, o.durable, o.busy_timeout_ms,
                                    "PRAGMA temp.cache_size=-16384;", &c->db);
    if (err != TRELLIS_OK)
        goto out;
    err = check_schema(c, o.create);
    if (err != TRELLIS_OK)
        goto out;
    err = exec_sql(c, STAGE_SCHEMA);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_sqlite_prepare_all(c->db, STMT_SQL, ST_COUNT, c->st);
    if (err != TRELLIS_OK)
        goto out;
    s->version = TRELLIS_VSTORE_VERSION;
    s->ctx = c;
    s->close = sq_close;
    s->oem_add = sq_oem_add;
    s->oem_exists = sq_oem_exists;
    s->factory_add = sq_factory_add;
    s->factory_key = sq_factory_key;
    s->device_get = sq_device_get;
    s->device_list = sq_device_list;
    s->device_revoke = sq_device_revoke;
    s->transfer = sq_transfer;
    s->audit_append = sq_audit_append;
    s->audit_list = sq_audit_list;
    s->counts = sq_counts;
    s->import_begin = sq_import_begin;
    s->import_stage = sq_import_stage;
    s->import_commit = sq_import_commit;
    s->import_abort = sq_import_abort;
    *out = s;
    s = NULL;
    c = NULL;
    err = TRELLIS_OK;
out:
    sq_close(c);
    free(s);
    return err;
}
