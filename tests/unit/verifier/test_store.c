#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sync_counter.h"
#include "test_support.h"
#include "trellis/verifier_store.h"
#include "vtest_util.h"

#define N_DEV 6

typedef struct {
    char dir[256];
    char db[300];
    trellis_vstore_t *s;
    vt_device_t dev[N_DEV];
    uint8_t fkey[65];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "store");
    snprintf(f->db, sizeof(f->db), "%s/registry.db", f->dir);
    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 200, .create = 1};
    assert_int_equal(trellis_vstore_open_sqlite(f->db, &o, &f->s), TRELLIS_OK);
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_init(&f->dev[i], i);
    memcpy(f->fkey, f->dev[0].point, 65);
    trellis_vstore_t *s = f->s;
    assert_int_equal(s->oem_add(s->ctx, "acme", "admin"), TRELLIS_OK);
    assert_int_equal(s->oem_add(s->ctx, "beta", "admin"), TRELLIS_OK);
    assert_int_equal(s->factory_add(s->ctx, "fab-1", f->fkey, "admin"), TRELLIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    trellis_vstore_close(f->s);
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_cleanup(&f->dev[i]);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

static trellis_vstore_record_t rec_of(const vt_device_t *d)
{
    return (trellis_vstore_record_t){
        .device_id = d->id, .rot_key = d->point, .model = d->model, .serial = d->serial};
}

/* Stages devices [from, to) of the fixture and commits them as one manifest. */
static trellis_err_t import(fx_t *f, size_t from, size_t to, const char *owner, const char *batch,
                            uint8_t sha_byte, trellis_vstore_import_result_t *res)
{
    trellis_vstore_t *s = f->s;
    uint8_t sha[32];
    memset(sha, sha_byte, sizeof(sha));
    assert_int_equal(s->import_begin(s->ctx), TRELLIS_OK);
    for (size_t i = from; i < to; i++) {
        trellis_vstore_record_t r = rec_of(&f->dev[i]);
        trellis_err_t err = s->import_stage(s->ctx, &r, i - from + 2, NULL);
        if (err != TRELLIS_OK) {
            s->import_abort(s->ctx);
            return err;
        }
    }
    trellis_vstore_manifest_t m = {.factory = "fab-1",
                                   .owner = owner,
                                   .batch = batch,
                                   .created = "2026-11-25T13:00:00Z",
                                   .count = to - from,
                                   .sha256 = sha,
                                   .caller = "fab-1"};
    return s->import_commit(s->ctx, &m, res);
}

static void test_open_and_schema(void **state)
{
    fx_t *f = *state;
    char path[320];
    trellis_vstore_t *s = NULL;
    trellis_vstore_sqlite_opts_t o = {.durable = 1, .busy_timeout_ms = 100, .create = 0};

    snprintf(path, sizeof(path), "%s/absent.db", f->dir);
    assert_int_equal(trellis_vstore_open_sqlite(path, &o, &s), TRELLIS_ERR_NOT_FOUND);
    assert_null(s);
    /* The fixture's database reopens without create. */
    assert_int_equal(trellis_vstore_open_sqlite(f->db, &o, &s), TRELLIS_OK);
    trellis_vstore_counts_t c = vt_counts(s);
    assert_int_equal(c.oems, 2);
    assert_int_equal(c.factories, 1);
    assert_int_equal(c.audit, 3);
    trellis_vstore_close(s);

    /* A database written by a newer schema is refused rather than misread. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    s = NULL;
    assert_int_equal(trellis_vstore_open_sqlite(f->db, &o, &s), TRELLIS_ERR_STORE);
    assert_null(s);
    assert_int_equal(trellis_vstore_open_sqlite(NULL, &o, &s), TRELLIS_ERR_INVALID_ARG);
    trellis_vstore_close(NULL);
}

static void test_tenants(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    int exists = -1;
    uint8_t key[65];

    assert_int_equal(s->oem_add(s->ctx, "acme", "admin"), TRELLIS_ERR_EXISTS);
    assert_int_equal(s->oem_exists(s->ctx, "acme", &exists), TRELLIS_OK);
    assert_int_equal(exists, 1);
    assert_int_equal(s->oem_exists(s->ctx, "nobody", &exists), TRELLIS_OK);
    assert_int_equal(exists, 0);
    assert_int_equal(s->factory_add(s->ctx, "fab-1", f->fkey, "admin"), TRELLIS_ERR_EXISTS);
    /* One namespace for both roles. */
    assert_int_equal(s->factory_add(s->ctx, "acme", f->fkey, "admin"), TRELLIS_ERR_EXISTS);
    assert_int_equal(s->oem_add(s->ctx, "fab-1", "admin"), TRELLIS_ERR_EXISTS);
    assert_int_equal(s->factory_key(s->ctx, "fab-1", key), TRELLIS_OK);
    assert_memory_equal(key, f->fkey, 65);
    assert_int_equal(s->factory_key(s->ctx, "fab-2", key), TRELLIS_ERR_NOT_FOUND);
    trellis_vstore_counts_t c = vt_counts(s);
    assert_int_equal(c.oems, 2);
    assert_int_equal(c.audit, 3); /* failed additions are not recorded as changes */

    assert_true(trellis_vstore_name_valid("acme-Corp_1.x"));
    assert_false(trellis_vstore_name_valid(""));
    assert_false(trellis_vstore_name_valid("-acme"));
    assert_false(trellis_vstore_name_valid("ac me"));
    assert_false(trellis_vstore_name_valid("a\"b"));
    assert_false(trellis_vstore_name_valid(NULL));
    char long_name[70];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_false(trellis_vstore_name_valid(long_name));
    long_name[64] = '\0';
    assert_true(trellis_vstore_name_valid(long_name));
    assert_true(trellis_vstore_device_id_valid(f->dev[0].id));
    assert_false(trellis_vstore_device_id_valid("ABCDEF0123456789abcdef0123456789"));
    assert_false(trellis_vstore_device_id_valid("abc"));
    assert_true(trellis_vstore_text_valid("SN 0001/x"));
    assert_false(trellis_vstore_text_valid("tab\there"));
}

typedef struct {
    int n;
    char ids[N_DEV][33];
    char owners[N_DEV][65];
} collect_t;

static int collect_dev(void *arg, const trellis_vstore_device_t *d)
{
    collect_t *c = arg;
    if (c->n < N_DEV) {
        memcpy(c->ids[c->n], d->device_id, 33);
        memcpy(c->owners[c->n], d->owner, 65);
    }
    c->n++;
    return 0;
}

static void test_import_and_read(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    trellis_vstore_import_result_t res;
    trellis_vstore_device_t d;

    assert_int_equal(import(f, 0, 4, "acme", "b-1", 0xa1, &res), TRELLIS_OK);
    assert_int_equal(res.already_present, 0);
    assert_int_equal(res.added, 4);
    assert_int_equal(res.present, 0);
    trellis_vstore_counts_t c = vt_counts(s);
    assert_int_equal(c.devices, 4);
    assert_int_equal(c.manifests, 1);
    assert_int_equal(c.audit, 4);

    assert_int_equal(s->device_get(s->ctx, f->dev[2].id, &d), TRELLIS_OK);
    assert_string_equal(d.device_id, f->dev[2].id);
    assert_memory_equal(d.rot_key, f->dev[2].point, 65);
    assert_string_equal(d.owner, "acme");
    assert_string_equal(d.factory, "fab-1");
    assert_string_equal(d.batch, "b-1");
    assert_string_equal(d.serial, f->dev[2].serial);
    assert_int_equal(d.revoked, 0);
    assert_true(d.created_ms > 0);
    assert_int_equal(s->device_get(s->ctx, f->dev[5].id, &d), TRELLIS_ERR_NOT_FOUND);
    assert_string_equal(d.device_id, "");

    /* The same manifest again is a no-op. */
    assert_int_equal(import(f, 0, 4, "acme", "b-1", 0xa1, &res), TRELLIS_OK);
    assert_int_equal(res.already_present, 1);
    trellis_vstore_counts_t c2 = vt_counts(s);
    vt_assert_counts_equal(&c, &c2);

    /* A second manifest with two known (identical) devices and two new ones. */
    assert_int_equal(import(f, 2, 6, "acme", "b-2", 0xa2, &res), TRELLIS_OK);
    assert_int_equal(res.added, 2);
    assert_int_equal(res.present, 2);

    /* Listing by owner, paginated. */
    collect_t col;
    memset(&col, 0, sizeof(col));
    assert_int_equal(s->device_list(s->ctx, "acme", NULL, 4, collect_dev, &col), TRELLIS_OK);
    assert_int_equal(col.n, 4);
    assert_true(strcmp(col.ids[0], col.ids[1]) < 0);
    collect_t rest;
    memset(&rest, 0, sizeof(rest));
    assert_int_equal(s->device_list(s->ctx, "acme", col.ids[3], 100, collect_dev, &rest),
                     TRELLIS_OK);
    assert_int_equal(rest.n, 2);
    memset(&col, 0, sizeof(col));
    assert_int_equal(s->device_list(s->ctx, "beta", NULL, 100, collect_dev, &col), TRELLIS_OK);
    assert_int_equal(col.n, 0);
    assert_int_equal(s->device_list(s->ctx, NULL, NULL, 0, collect_dev, &col),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_import_refusals(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    trellis_vstore_import_result_t res;
    trellis_reason_t why;

    assert_int_equal(import(f, 0, 3, "acme", "b-1", 0xb1, &res), TRELLIS_OK);
    trellis_vstore_counts_t before = vt_counts(s);

    /* A device id repeated inside one manifest names both lines. */
    assert_int_equal(s->import_begin(s->ctx), TRELLIS_OK);
    trellis_vstore_record_t r = rec_of(&f->dev[3]);
    assert_int_equal(s->import_stage(s->ctx, &r, 2, &why), TRELLIS_OK);
    assert_int_equal(s->import_stage(s->ctx, &r, 3, &why), TRELLIS_ERR_CONFLICT);
    assert_string_equal(why.text, "line 3 repeats the device id of line 2");
    /* So does a repeated serial. */
    trellis_vstore_record_t r2 = rec_of(&f->dev[4]);
    r2.serial = f->dev[3].serial;
    assert_int_equal(s->import_stage(s->ctx, &r2, 4, &why), TRELLIS_ERR_CONFLICT);
    assert_string_equal(why.text, "line 4 repeats the serial of line 2");
    s->import_abort(s->ctx);

    /* A record that differs from a known device (other serial) is a conflict naming its line. */
    snprintf(f->dev[1].serial, sizeof(f->dev[1].serial), "SN-CHANGED");
    snprintf(f->dev[2].model, sizeof(f->dev[2].model), "T-200");
    assert_int_equal(import(f, 0, 5, "acme", "b-2", 0xb2, &res), TRELLIS_ERR_CONFLICT);
    assert_int_equal(res.conflicts, 2);
    assert_int_equal(res.n_lines, 2);
    assert_int_equal(res.lines[0], 3);
    assert_int_equal(res.lines[1], 4);
    trellis_vstore_counts_t after = vt_counts(s);
    vt_assert_counts_equal(&before, &after);
    snprintf(f->dev[1].serial, sizeof(f->dev[1].serial), "SN-%06u", 1);
    snprintf(f->dev[2].model, sizeof(f->dev[2].model), "T-100");

    /* Known devices under another owner conflict too. */
    assert_int_equal(import(f, 0, 1, "beta", "b-3", 0xb3, &res), TRELLIS_ERR_CONFLICT);
    assert_int_equal(res.lines[0], 2);

    /* The same batch id again with other contents. */
    assert_int_equal(import(f, 3, 4, "acme", "b-1", 0xb4, &res), TRELLIS_ERR_CONFLICT);
    assert_int_equal(res.n_lines, 0);

    /* An owner that is not registered. */
    assert_int_equal(import(f, 3, 4, "nobody", "b-5", 0xb5, &res), TRELLIS_ERR_NOT_FOUND);

    after = vt_counts(s);
    vt_assert_counts_equal(&before, &after);

    /* Misuse: stage or commit without begin. */
    assert_int_equal(s->import_stage(s->ctx, &r, 2, &why), TRELLIS_ERR_INVALID_ARG);
    uint8_t sha[32] = {0};
    trellis_vstore_manifest_t m = {
        .factory = "fab-1", .owner = "acme", .batch = "b-9", .sha256 = sha, .caller = "fab-1"};
    assert_int_equal(s->import_commit(s->ctx, &m, &res), TRELLIS_ERR_INVALID_ARG);
    after = vt_counts(s);
    vt_assert_counts_equal(&before, &after);
}

static void test_staging_does_not_block_writers(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s, *other = NULL;
    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 100, .create = 0};
    trellis_vstore_import_result_t res;

    assert_int_equal(trellis_vstore_open_sqlite(f->db, &o, &other), TRELLIS_OK);
    assert_int_equal(s->import_begin(s->ctx), TRELLIS_OK);
    trellis_vstore_record_t r = rec_of(&f->dev[0]);
    assert_int_equal(s->import_stage(s->ctx, &r, 2, NULL), TRELLIS_OK);
    /* While a manifest is being staged, another connection writes and reads freely. */
    assert_int_equal(other->oem_add(other->ctx, "gamma", "admin"), TRELLIS_OK);
    trellis_vstore_audit_t e = {.event = "verdict", .caller = "acme", .outcome = "affirming"};
    assert_int_equal(other->audit_append(other->ctx, &e, 1), TRELLIS_OK);
    /* Staged records are invisible to it. */
    trellis_vstore_device_t d;
    assert_int_equal(other->device_get(other->ctx, f->dev[0].id, &d), TRELLIS_ERR_NOT_FOUND);
    uint8_t sha[32];
    memset(sha, 0xc1, sizeof(sha));
    trellis_vstore_manifest_t m = {.factory = "fab-1",
                                   .owner = "gamma",
                                   .batch = "b-1",
                                   .count = 1,
                                   .sha256 = sha,
                                   .caller = "fab-1"};
    assert_int_equal(s->import_commit(s->ctx, &m, &res), TRELLIS_OK);
    assert_int_equal(other->device_get(other->ctx, f->dev[0].id, &d), TRELLIS_OK);
    assert_string_equal(d.owner, "gamma");
    trellis_vstore_close(other);
}

static void test_revoke_and_transfer(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    trellis_vstore_import_result_t res;
    trellis_vstore_device_t d;
    uint64_t moved = 99;

    assert_int_equal(import(f, 0, 4, "acme", "b-1", 0xd1, &res), TRELLIS_OK);
    assert_int_equal(s->device_revoke(s->ctx, f->dev[0].id, "RoT key extracted", "admin"),
                     TRELLIS_OK);
    assert_int_equal(s->device_get(s->ctx, f->dev[0].id, &d), TRELLIS_OK);
    assert_int_equal(d.revoked, 1);
    assert_string_equal(d.revoke_reason, "RoT key extracted");
    assert_true(d.changed_ms > 0);
    trellis_vstore_counts_t before = vt_counts(s);
    assert_int_equal(before.revoked, 1);
    assert_int_equal(s->device_revoke(s->ctx, f->dev[0].id, "again", "admin"), TRELLIS_ERR_REVOKED);
    assert_int_equal(s->device_revoke(s->ctx, f->dev[5].id, "x", "admin"), TRELLIS_ERR_NOT_FOUND);

    /* One device. */
    assert_int_equal(s->transfer(s->ctx, f->dev[1].id, NULL, NULL, "beta", "admin", &moved),
                     TRELLIS_OK);
    assert_int_equal(moved, 1);
    assert_int_equal(s->device_get(s->ctx, f->dev[1].id, &d), TRELLIS_OK);
    assert_string_equal(d.owner, "beta");
    /* To its current owner: nothing moves. */
    assert_int_equal(s->transfer(s->ctx, f->dev[1].id, NULL, NULL, "beta", "admin", &moved),
                     TRELLIS_OK);
    assert_int_equal(moved, 0);
    /* The whole batch: the three devices still with acme move. */
    assert_int_equal(s->transfer(s->ctx, NULL, "b-1", "fab-1", "beta", "admin", &moved),
                     TRELLIS_OK);
    assert_int_equal(moved, 3);
    trellis_vstore_counts_t mid = vt_counts(s);
    assert_int_equal(mid.audit, before.audit + 4);

    /* Refusals change nothing. */
    assert_int_equal(s->transfer(s->ctx, NULL, "b-1", NULL, "nobody", "admin", &moved),
                     TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(s->transfer(s->ctx, NULL, "b-none", NULL, "acme", "admin", &moved),
                     TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(s->transfer(s->ctx, f->dev[5].id, NULL, NULL, "acme", "admin", &moved),
                     TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(s->transfer(s->ctx, f->dev[1].id, "b-1", NULL, "acme", "admin", &moved),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(s->transfer(s->ctx, NULL, NULL, NULL, "acme", "admin", &moved),
                     TRELLIS_ERR_INVALID_ARG);
    trellis_vstore_counts_t after = vt_counts(s);
    vt_assert_counts_equal(&mid, &after);
}

typedef struct {
    int n;
    trellis_vstore_audit_t last;
    int64_t prev_seq;
    int ordered;
} audit_col_t;

static int collect_audit(void *arg, const trellis_vstore_audit_t *e)
{
    audit_col_t *c = arg;
    if (e->seq <= c->prev_seq)
        c->ordered = 0;
    c->prev_seq = e->seq;
    c->last = *e;
    c->n++;
    return 0;
}

static void test_audit_log(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    trellis_vstore_import_result_t res;
    uint64_t moved = 0;

    assert_int_equal(import(f, 0, 2, "acme", "b-1", 0xe1, &res), TRELLIS_OK);
    assert_int_equal(s->transfer(s->ctx, f->dev[0].id, NULL, NULL, "beta", "admin", &moved),
                     TRELLIS_OK);
    trellis_vstore_audit_t e[2];
    memset(e, 0, sizeof(e));
    snprintf(e[0].event, sizeof(e[0].event), "verdict");
    snprintf(e[0].caller, sizeof(e[0].caller), "beta");
    snprintf(e[0].device, sizeof(e[0].device), "%s", f->dev[0].id);
    snprintf(e[0].outcome, sizeof(e[0].outcome), "affirming");
    e[1] = e[0];
    e[1].ts_ms = 1234;
    assert_int_equal(s->audit_append(s->ctx, e, 2), TRELLIS_OK);

    audit_col_t c = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, NULL, 0, 1000, collect_audit, &c), TRELLIS_OK);
    assert_int_equal(c.n, 3 + 1 + 1 + 2);
    assert_true(c.ordered);
    assert_int_equal(c.last.ts_ms, 1234);

    audit_col_t d = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, f->dev[0].id, 0, 1000, collect_audit, &d), TRELLIS_OK);
    assert_int_equal(d.n, 3); /* the transfer and the two verdicts */
    audit_col_t one = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, f->dev[0].id, 0, 1, collect_audit, &one), TRELLIS_OK);
    assert_int_equal(one.n, 1);
    assert_string_equal(one.last.event, "device.transfer");
    assert_string_equal(one.last.reason, "from=acme to=beta");
    audit_col_t after = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, f->dev[0].id, one.last.seq, 10, collect_audit, &after),
                     TRELLIS_OK);
    assert_int_equal(after.n, 2);

    /* Bad entries are refused whole: nothing of the batch is written. */
    trellis_vstore_counts_t before = vt_counts(s);
    memset(e[1].reason, 'x', sizeof(e[1].reason)); /* not NUL-terminated */
    assert_int_equal(s->audit_append(s->ctx, e, 2), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(s->audit_append(s->ctx, e, 0), TRELLIS_ERR_INVALID_ARG);
    trellis_vstore_counts_t now = vt_counts(s);
    vt_assert_counts_equal(&before, &now);

    /* Append-only at the database level: UPDATE and DELETE are refused by triggers. */
    sqlite3 *db = NULL;
    char *msg = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 1000);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET outcome = 'x'", NULL, NULL, &msg),
                         SQLITE_OK);
    assert_non_null(strstr(msg, "append-only"));
    sqlite3_free(msg);
    msg = NULL;
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, &msg), SQLITE_OK);
    assert_non_null(strstr(msg, "append-only"));
    sqlite3_free(msg);
    sqlite3_close(db);
    now = vt_counts(s);
    vt_assert_counts_equal(&before, &now);
}

static int query_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A registry of the first schema (audit log indexed by device) is upgraded when opened: the
 * index goes, the entries stay, and new entries follow the old ones. */
static void test_schema_upgrade(void **state)
{
    fx_t *f = *state;
    trellis_vstore_close(f->s);
    f->s = NULL;
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 2);
    assert_int_equal(
        query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'audit_device'"), 0);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE INDEX audit_device ON audit(device, seq);"
                                  " PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 200, .create = 0};
    assert_int_equal(trellis_vstore_open_sqlite(f->db, &o, &f->s), TRELLIS_OK);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 2);
    assert_int_equal(
        query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'audit_device'"), 0);
    trellis_vstore_t *s = f->s;
    trellis_vstore_audit_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event, sizeof(e.event), "verdict");
    snprintf(e.device, sizeof(e.device), "%s", f->dev[1].id);
    snprintf(e.outcome, sizeof(e.outcome), "affirming");
    assert_int_equal(s->audit_append(s->ctx, &e, 1), TRELLIS_OK);
    audit_col_t all = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, NULL, 0, 1000, collect_audit, &all), TRELLIS_OK);
    assert_int_equal(all.n, 4); /* the fixture's three, then the new one */
    assert_true(all.ordered);
    assert_int_equal(all.last.seq, 4);
    audit_col_t one = {.ordered = 1};
    assert_int_equal(s->audit_list(s->ctx, f->dev[1].id, 0, 10, collect_audit, &one), TRELLIS_OK);
    assert_int_equal(one.n, 1);
    assert_string_equal(one.last.event, "verdict");
}

/* A durable registry syncs every audit commit (a verdict is answered only after it); one opened
 * with durable = false does not. */
static void test_durable_audit_is_synced(void **state)
{
    fx_t *f = *state;
    char path[320];
    trellis_vstore_t *d = NULL;
    trellis_vstore_sqlite_opts_t o = {.durable = 1, .busy_timeout_ms = 200, .create = 1};
    trellis_vstore_audit_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event, sizeof(e.event), "verdict");
    snprintf(e.outcome, sizeof(e.outcome), "affirming");
    snprintf(path, sizeof(path), "%s/durable.db", f->dir);
    assert_int_equal(trellis_vstore_open_sqlite(path, &o, &d), TRELLIS_OK);
    for (int i = 0; i < 3; i++) {
        long before = trellis_test_fdatasync_calls();
        assert_int_equal(d->audit_append(d->ctx, &e, 1), TRELLIS_OK);
        assert_true(trellis_test_fdatasync_calls() > before);
    }
    trellis_vstore_close(d);
    long before = trellis_test_fdatasync_calls();
    assert_int_equal(f->s->audit_append(f->s->ctx, &e, 1), TRELLIS_OK);
    assert_int_equal(trellis_test_fdatasync_calls(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durable_audit_is_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staging_does_not_block_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_and_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
