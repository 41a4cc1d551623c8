/*
 * The registrar store's SQLite backend: single-use challenges (also across reopening), record
 * first with every refusal, factory reset policies, renewal, revocation and reinstatement, the
 * append-only audit log, batches in which one operation fails, CRL numbering, registries of the
 * earlier (WITHOUT ROWID) certificates layout.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rtest_util.h"
#include "sync_counter.h"
#include "test_support.h"

typedef struct {
    char dir[RT_PATH];
    char path[RT_PATH];
    trellis_rstore_t *s;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "rstore");
    rt_path(f->path, sizeof(f->path), f->dir, "registry.db");
    trellis_rstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 2000, .create = 1};
    assert_int_equal(trellis_rstore_open_sqlite(f->path, &o, &f->s), TRELLIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_close(f->s);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture_t *f)
{
    trellis_rstore_close(f->s);
    f->s = NULL;
    assert_int_equal(trellis_rstore_open_sqlite(f->path, NULL, &f->s), TRELLIS_OK);
}

static void hex_id(char out[33], unsigned n)
{
    snprintf(out, 33, "%032x", n);
}

static trellis_rstore_op_t consume(uint8_t tag)
{
    trellis_rstore_op_t op;
    memset(&op, 0, sizeof(op));
    op.type = TRELLIS_RSTORE_OP_CONSUME;
    memset(op.challenge_id, tag, sizeof(op.challenge_id));
    op.challenge_expires = (int64_t)time(NULL) + 300;
    return op;
}

static trellis_rstore_op_t enroll(unsigned device, unsigned serial, uint8_t challenge,
                                  trellis_reset_policy_t policy)
{
    trellis_rstore_op_t op;
    memset(&op, 0, sizeof(op));
    op.type = TRELLIS_RSTORE_OP_RECORD;
    trellis_rstore_enrollment_t *e = &op.record;
    e->kind = TRELLIS_RSTORE_ENROLL;
    hex_id(e->device_id, device);
    snprintf(e->serial, sizeof(e->serial), "4%031x", serial);
    memset(e->public_key, 0x04, sizeof(e->public_key));
    e->not_before = (int64_t)time(NULL) - 60;
    e->not_after = (int64_t)time(NULL) + 86400;
    memset(e->csr_sha256, 0xab, sizeof(e->csr_sha256));
    memset(e->challenge_id, challenge, sizeof(e->challenge_id));
    e->challenge_expires = (int64_t)time(NULL) + 300;
    e->verdict = "header.payload.signature";
    e->reset_policy = policy;
    snprintf(e->actor, sizeof(e->actor), "127.0.0.1:4242");
    return op;
}

static trellis_rstore_op_t reenroll(unsigned device, unsigned serial, unsigned old_serial)
{
    trellis_rstore_op_t op = enroll(device, serial, 0, TRELLIS_RESET_REPLACE);
    op.record.kind = TRELLIS_RSTORE_REENROLL;
    op.record.verdict = NULL;
    snprintf(op.record.old_serial, sizeof(op.record.old_serial), "4%031x", old_serial);
    return op;
}

static trellis_err_t apply1(fixture_t *f, trellis_rstore_op_t *op)
{
    assert_int_equal(f->s->apply(f->s->ctx, op, 1), TRELLIS_OK);
    return op->err;
}

static trellis_rstore_counts_t counts(fixture_t *f)
{
    trellis_rstore_counts_t c;
    assert_int_equal(f->s->counts(f->s->ctx, &c), TRELLIS_OK);
    return c;
}

/* A durable store syncs every commit that records an enrollment, each time (not only the
 * first); a store opened with durable = false does not. */
static void test_durable_records_are_synced(void **state)
{
    fixture_t *f = *state;
    char path[RT_PATH];
    trellis_rstore_t *d = NULL;
    trellis_rstore_sqlite_opts_t o = {.durable = 1, .busy_timeout_ms = 2000, .create = 1};
    rt_path(path, sizeof(path), f->dir, "durable.db");
    assert_int_equal(trellis_rstore_open_sqlite(path, &o, &d), TRELLIS_OK);
    for (unsigned i = 0; i < 3; i++) {
        /* A consumption alone may wait for the next sync; the record after it may not. */
        trellis_rstore_op_t c = consume((uint8_t)(0x70 + i));
        assert_int_equal(d->apply(d->ctx, &c, 1), TRELLIS_OK);
        long before = trellis_test_fdatasync_calls();
        trellis_rstore_op_t e =
            enroll(100 + i, 100 + i, (uint8_t)(0x60 + i), TRELLIS_RESET_REPLACE);
        assert_int_equal(d->apply(d->ctx, &e, 1), TRELLIS_OK);
        assert_int_equal(e.err, TRELLIS_OK);
        assert_true(trellis_test_fdatasync_calls() > before);
    }
    trellis_rstore_close(d);

    /* The fixture's store is not durable: its records are not synced. */
    long before = trellis_test_fdatasync_calls();
    trellis_rstore_op_t e = enroll(7, 7, 0x55, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &e), TRELLIS_OK);
    assert_int_equal(trellis_test_fdatasync_calls(), before);
}

static void test_challenges_single_use(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t a = consume(1), b = consume(1), c = consume(2);
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    assert_int_equal(apply1(f, &b), TRELLIS_ERR_REPLAYED);
    assert_int_equal(apply1(f, &c), TRELLIS_OK);
    /* Across restarts: the consumption is in the registry, not in memory. */
    reopen(f);
    trellis_rstore_op_t d = consume(1);
    assert_int_equal(apply1(f, &d), TRELLIS_ERR_REPLAYED);
    /* A second connection (another registrar instance) sees it too. */
    trellis_rstore_t *other = NULL;
    assert_int_equal(trellis_rstore_open_sqlite(f->path, NULL, &other), TRELLIS_OK);
    trellis_rstore_op_t e = consume(2);
    assert_int_equal(other->apply(other->ctx, &e, 1), TRELLIS_OK);
    assert_int_equal(e.err, TRELLIS_ERR_REPLAYED);
    trellis_rstore_close(other);
    assert_int_equal(counts(f).challenges, 2);
    /* A read tells a consumed challenge from a fresh one. */
    int used = -1;
    uint8_t id[32];
    memset(id, 1, sizeof(id));
    assert_int_equal(f->s->challenge_used(f->s->ctx, id, &used), TRELLIS_OK);
    assert_int_equal(used, 1);
    memset(id, 3, sizeof(id));
    assert_int_equal(f->s->challenge_used(f->s->ctx, id, &used), TRELLIS_OK);
    assert_int_equal(used, 0);
    /* An enrollment consumes its challenge: a consumed one cannot be recorded, and a recorded
     * one cannot be consumed again. */
    trellis_rstore_op_t rec = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &rec), TRELLIS_ERR_REPLAYED);
    rec = enroll(1, 1, 4, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &rec), TRELLIS_OK);
    trellis_rstore_op_t again = consume(4);
    assert_int_equal(apply1(f, &again), TRELLIS_ERR_REPLAYED);
    memset(id, 4, sizeof(id));
    assert_int_equal(f->s->challenge_used(f->s->ctx, id, &used), TRELLIS_OK);
    assert_int_equal(used, 1);
    assert_int_equal(counts(f).challenges, 3);
    /* Purged only once expired: the challenges of failed attempts (1 and 2). The one a recorded
     * enrollment consumed (4) is held by its certificate row and stays used for good. */
    uint64_t purged = 99;
    assert_int_equal(f->s->challenge_purge(f->s->ctx, (int64_t)time(NULL), &purged), TRELLIS_OK);
    assert_int_equal(purged, 0);
    assert_int_equal(f->s->challenge_purge(f->s->ctx, (int64_t)time(NULL) + 400, &purged),
                     TRELLIS_OK);
    assert_int_equal(purged, 2);
    assert_int_equal(counts(f).challenges, 1);
    for (uint8_t tag = 1; tag <= 4; tag++) {
        memset(id, tag, sizeof(id));
        assert_int_equal(f->s->challenge_used(f->s->ctx, id, &used), TRELLIS_OK);
        assert_int_equal(used, tag == 4);
    }
    again = consume(4);
    assert_int_equal(apply1(f, &again), TRELLIS_ERR_REPLAYED);
    rec = enroll(2, 2, 4, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &rec), TRELLIS_ERR_REPLAYED);
}

static void test_record_and_read(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t op = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &op), TRELLIS_OK);
    assert_int_equal(op.replaced, 0);
    assert_int_equal(op.revoked_certs, 0);

    trellis_rstore_device_t d;
    assert_int_equal(f->s->device_get(f->s->ctx, op.record.device_id, (int64_t)time(NULL), &d),
                     TRELLIS_OK);
    assert_string_equal(d.device_id, op.record.device_id);
    assert_int_equal(d.revoked, 0);
    assert_int_equal(d.enrollments, 1);
    assert_string_equal(d.serial, op.record.serial);
    assert_int_equal(d.not_after, op.record.not_after);

    trellis_rstore_cert_t c;
    assert_int_equal(f->s->cert_get(f->s->ctx, op.record.serial, &c), TRELLIS_OK);
    assert_string_equal(c.device_id, op.record.device_id);
    assert_int_equal(c.not_before, op.record.not_before);
    assert_int_equal(c.revoked_ms, 0);
    assert_int_equal(c.kind, TRELLIS_RSTORE_ENROLL);
    assert_memory_equal(c.public_key, op.record.public_key, 65);
    assert_int_equal(f->s->cert_get(f->s->ctx, "00000000000000000000000000000000", &c),
                     TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(f->s->device_get(f->s->ctx, "ffffffffffffffffffffffffffffffff", 0, &d),
                     TRELLIS_ERR_NOT_FOUND);
    assert_string_equal(d.device_id, "");

    /* The same challenge cannot record a second enrollment, even for another device. */
    trellis_rstore_op_t again = enroll(2, 2, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &again), TRELLIS_ERR_REPLAYED);
    /* Nor can a serial be reused. */
    trellis_rstore_op_t dup = enroll(3, 1, 3, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &dup), TRELLIS_ERR_EXISTS);
    trellis_rstore_counts_t n = counts(f);
    assert_int_equal(n.devices, 1);
    assert_int_equal(n.certificates, 1);
    assert_int_equal(n.enrollments, 1);
    /* Invalid records are refused before anything is written. */
    trellis_rstore_op_t bad = enroll(4, 4, 4, TRELLIS_RESET_REPLACE);
    snprintf(bad.record.device_id, sizeof(bad.record.device_id), "not-a-device");
    assert_int_equal(apply1(f, &bad), TRELLIS_ERR_INVALID_ARG);
    bad = enroll(4, 4, 4, TRELLIS_RESET_REPLACE);
    bad.record.verdict = NULL;
    assert_int_equal(apply1(f, &bad), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(counts(f).devices, 1);
}

static void test_factory_reset(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t a = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    /* deny: refused, nothing changes, the refusal is audited. */
    trellis_rstore_op_t b = enroll(1, 2, 2, TRELLIS_RESET_DENY);
    uint64_t audit_before = counts(f).audit;
    assert_int_equal(apply1(f, &b), TRELLIS_ERR_CONFLICT);
    assert_int_equal(counts(f).certificates, 1);
    assert_int_equal(counts(f).audit, audit_before + 1);
    /* replace: the old certificate is revoked (superseded) in the same transaction. */
    trellis_rstore_op_t c = enroll(1, 3, 3, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &c), TRELLIS_OK);
    assert_int_equal(c.replaced, 1);
    assert_int_equal(c.revoked_certs, 1);
    trellis_rstore_cert_t cert;
    assert_int_equal(f->s->cert_get(f->s->ctx, a.record.serial, &cert), TRELLIS_OK);
    assert_true(cert.revoked_ms > 0);
    assert_int_equal(cert.revoke_reason, TRELLIS_CRL_REASON_SUPERSEDED);
    trellis_rstore_device_t d;
    assert_int_equal(f->s->device_get(f->s->ctx, a.record.device_id, (int64_t)time(NULL), &d),
                     TRELLIS_OK);
    assert_string_equal(d.serial, c.record.serial);
    assert_int_equal(d.enrollments, 2);
}

static void test_reenroll(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t a = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    trellis_rstore_op_t r = reenroll(1, 2, 1);
    assert_int_equal(apply1(f, &r), TRELLIS_OK);
    assert_int_equal(r.revoked_certs, 1);
    /* The old certificate is no longer current: renewing with it again is refused. */
    trellis_rstore_op_t again = reenroll(1, 3, 1);
    assert_int_equal(apply1(f, &again), TRELLIS_ERR_REVOKED);
    /* Another device's certificate, or an unknown device. */
    trellis_rstore_op_t b = enroll(2, 4, 2, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &b), TRELLIS_OK);
    trellis_rstore_op_t cross = reenroll(1, 5, 4);
    assert_int_equal(apply1(f, &cross), TRELLIS_ERR_REVOKED);
    trellis_rstore_op_t unknown = reenroll(9, 6, 4);
    assert_int_equal(apply1(f, &unknown), TRELLIS_ERR_UNKNOWN_DEVICE);
    /* An expired certificate does not renew. */
    trellis_rstore_op_t old = enroll(3, 7, 3, TRELLIS_RESET_REPLACE);
    old.record.not_before = 1000;
    old.record.not_after = 2000;
    assert_int_equal(apply1(f, &old), TRELLIS_OK);
    trellis_rstore_op_t late = reenroll(3, 8, 7);
    assert_int_equal(apply1(f, &late), TRELLIS_ERR_REVOKED);
    /* With only expired certificates, a first-time enrollment is no factory reset. */
    trellis_rstore_op_t fresh = enroll(3, 9, 9, TRELLIS_RESET_DENY);
    assert_int_equal(apply1(f, &fresh), TRELLIS_OK);
    assert_int_equal(fresh.replaced, 0);
}

static void test_revoke_reinstate(void **state)
{
    fixture_t *f = *state;
    uint64_t n = 0;
    char id[33];
    trellis_rstore_op_t a = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    memcpy(id, a.record.device_id, sizeof(id));
    assert_int_equal(f->s->device_revoke(f->s->ctx, id, TRELLIS_CRL_REASON_KEY_COMPROMISE, "stolen",
                                         "admin", &n),
                     TRELLIS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(
        f->s->device_revoke(f->s->ctx, id, TRELLIS_CRL_REASON_KEY_COMPROMISE, "again", "admin", &n),
        TRELLIS_ERR_REVOKED);
    assert_int_equal(f->s->device_revoke(f->s->ctx, "ffffffffffffffffffffffffffffffff",
                                         TRELLIS_CRL_REASON_UNSPECIFIED, "x", "admin", &n),
                     TRELLIS_ERR_NOT_FOUND);
    trellis_rstore_device_t d;
    assert_int_equal(f->s->device_get(f->s->ctx, id, (int64_t)time(NULL), &d), TRELLIS_OK);
    assert_int_equal(d.revoked, 1);
    assert_string_equal(d.revoke_reason, "stolen");
    assert_string_equal(d.serial, "");
    /* A revoked device enrolls neither way. */
    trellis_rstore_op_t b = enroll(1, 2, 2, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &b), TRELLIS_ERR_REVOKED);
    trellis_rstore_op_t r = reenroll(1, 3, 1);
    assert_int_equal(apply1(f, &r), TRELLIS_ERR_REVOKED);
    /* Reinstated, it may enroll again; its old certificate stays revoked. */
    assert_int_equal(f->s->device_reinstate(f->s->ctx, id, "admin"), TRELLIS_OK);
    assert_int_equal(f->s->device_reinstate(f->s->ctx, id, "admin"), TRELLIS_ERR_CONFLICT);
    assert_int_equal(f->s->device_reinstate(f->s->ctx, "ffffffffffffffffffffffffffffffff", "a"),
                     TRELLIS_ERR_NOT_FOUND);
    trellis_rstore_op_t c = enroll(1, 4, 4, TRELLIS_RESET_DENY);
    assert_int_equal(apply1(f, &c), TRELLIS_OK);
    trellis_rstore_cert_t cert;
    assert_int_equal(f->s->cert_get(f->s->ctx, a.record.serial, &cert), TRELLIS_OK);
    assert_int_equal(cert.revoke_reason, TRELLIS_CRL_REASON_KEY_COMPROMISE);
}

static void test_batch_isolation(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t ops[5];
    ops[0] = consume(7);
    ops[1] = consume(7); /* replayed within the batch */
    ops[2] = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    ops[3] = enroll(2, 1, 2, TRELLIS_RESET_REPLACE); /* serial taken by ops[2] */
    memset(&ops[4], 0, sizeof(ops[4]));
    ops[4].type = TRELLIS_RSTORE_OP_AUDIT;
    snprintf(ops[4].audit.event, sizeof(ops[4].audit.event), "enroll");
    snprintf(ops[4].audit.outcome, sizeof(ops[4].audit.outcome), "refused");
    snprintf(ops[4].audit.detail, sizeof(ops[4].audit.detail), "verifier verdict: bad_evidence");
    assert_int_equal(f->s->apply(f->s->ctx, ops, 5), TRELLIS_OK);
    assert_int_equal(ops[0].err, TRELLIS_OK);
    assert_int_equal(ops[1].err, TRELLIS_ERR_REPLAYED);
    assert_int_equal(ops[2].err, TRELLIS_OK);
    assert_int_equal(ops[3].err, TRELLIS_ERR_EXISTS);
    assert_int_equal(ops[4].err, TRELLIS_OK);
    trellis_rstore_counts_t n = counts(f);
    assert_int_equal(n.devices, 1); /* ops[3]'s device row was rolled back with it */
    assert_int_equal(n.certificates, 1);
    assert_int_equal(n.challenges, 2); /* 7, and the one ops[2] consumed; not ops[3]'s */
    /* Bad arguments. */
    assert_int_equal(f->s->apply(f->s->ctx, ops, 0), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f->s->apply(f->s->ctx, ops, TRELLIS_RSTORE_BATCH_MAX + 1),
                     TRELLIS_ERR_INVALID_ARG);
    trellis_rstore_op_t unknown;
    memset(&unknown, 0, sizeof(unknown));
    unknown.type = (trellis_rstore_op_type_t)99;
    assert_int_equal(apply1(f, &unknown), TRELLIS_ERR_INVALID_ARG);
}

typedef struct {
    int n;
    char events[16][24];
    char outcomes[16][24];
} audit_seen_t;

static int collect_audit(void *arg, const trellis_rstore_audit_t *e)
{
    audit_seen_t *s = arg;
    if (s->n < 16) {
        snprintf(s->events[s->n], 24, "%s", e->event);
        snprintf(s->outcomes[s->n], 24, "%s", e->outcome);
    }
    s->n++;
    return 0;
}

static void test_audit_append_only(void **state)
{
    fixture_t *f = *state;
    audit_seen_t seen;
    memset(&seen, 0, sizeof(seen));
    trellis_rstore_op_t a = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    trellis_rstore_op_t b = enroll(1, 2, 2, TRELLIS_RESET_DENY);
    assert_int_equal(apply1(f, &b), TRELLIS_ERR_CONFLICT);
    trellis_rstore_op_t c = enroll(1, 3, 3, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &c), TRELLIS_OK);
    assert_int_equal(f->s->device_revoke(f->s->ctx, a.record.device_id,
                                         TRELLIS_CRL_REASON_UNSPECIFIED, "test", "admin", NULL),
                     TRELLIS_OK);
    assert_int_equal(f->s->device_reinstate(f->s->ctx, a.record.device_id, "admin"), TRELLIS_OK);
    assert_int_equal(f->s->audit_list(f->s->ctx, a.record.device_id, 0, 100, collect_audit, &seen),
                     TRELLIS_OK);
    assert_int_equal(seen.n, 5);
    assert_string_equal(seen.events[0], "enroll");
    assert_string_equal(seen.outcomes[0], "ok");
    assert_string_equal(seen.outcomes[1], "refused");
    assert_string_equal(seen.outcomes[2], "replaced");
    assert_string_equal(seen.events[3], "device.revoke");
    assert_string_equal(seen.events[4], "device.reinstate");
    /* The database itself refuses to rewrite history. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET outcome = 'ok'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(counts(f).audit, 5);
}

typedef struct {
    int n;
    char first[33], last[33];
} list_seen_t;

static int collect_device(void *arg, const trellis_rstore_device_t *d)
{
    list_seen_t *s = arg;
    if (s->n == 0)
        memcpy(s->first, d->device_id, 33);
    memcpy(s->last, d->device_id, 33);
    s->n++;
    return 0;
}

static void test_device_list(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_op_t ops[40];
    for (unsigned i = 0; i < 40; i++)
        ops[i] = enroll(i + 1, i + 1, (uint8_t)(i + 1), TRELLIS_RESET_REPLACE);
    assert_int_equal(f->s->apply(f->s->ctx, ops, 40), TRELLIS_OK);
    list_seen_t seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(
        f->s->device_list(f->s->ctx, NULL, 25, (int64_t)time(NULL), collect_device, &seen),
        TRELLIS_OK);
    assert_int_equal(seen.n, 25);
    char expect[33];
    hex_id(expect, 1);
    assert_string_equal(seen.first, expect);
    list_seen_t rest;
    memset(&rest, 0, sizeof(rest));
    assert_int_equal(
        f->s->device_list(f->s->ctx, seen.last, 100, (int64_t)time(NULL), collect_device, &rest),
        TRELLIS_OK);
    assert_int_equal(rest.n, 15);
    hex_id(expect, 40);
    assert_string_equal(rest.last, expect);
    assert_int_equal(f->s->device_list(f->s->ctx, NULL, 0, 0, collect_device, &seen),
                     TRELLIS_ERR_INVALID_ARG);
}

typedef struct {
    int n;
    char serials[8][33];
} crl_seen_t;

static int collect_revoked(void *arg, const trellis_rstore_revoked_t *e)
{
    crl_seen_t *s = arg;
    if (s->n < 8)
        memcpy(s->serials[s->n], e->serial, 33);
    s->n++;
    return 0;
}

static void test_crl_numbering(void **state)
{
    fixture_t *f = *state;
    uint64_t number = 0, got = 0;
    uint8_t der[16];
    size_t len = 0;
    crl_seen_t seen;
    memset(&seen, 0, sizeof(seen));

    assert_int_equal(f->s->crl_get(f->s->ctx, &got, NULL, NULL, 0, &len), TRELLIS_ERR_NOT_FOUND);
    trellis_rstore_op_t a = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    trellis_rstore_op_t b = enroll(2, 2, 2, TRELLIS_RESET_REPLACE);
    b.record.not_before = 1000;
    b.record.not_after = 2000; /* expired: never listed */
    assert_int_equal(apply1(f, &a), TRELLIS_OK);
    assert_int_equal(apply1(f, &b), TRELLIS_OK);
    assert_int_equal(f->s->device_revoke(f->s->ctx, a.record.device_id,
                                         TRELLIS_CRL_REASON_KEY_COMPROMISE, "x", "admin", NULL),
                     TRELLIS_OK);
    assert_int_equal(f->s->device_revoke(f->s->ctx, b.record.device_id,
                                         TRELLIS_CRL_REASON_KEY_COMPROMISE, "x", "admin", NULL),
                     TRELLIS_OK);

    assert_int_equal(f->s->crl_begin(f->s->ctx, &number), TRELLIS_OK);
    assert_int_equal(number, 1);
    assert_int_equal(f->s->crl_begin(f->s->ctx, &number), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f->s->crl_revoked(f->s->ctx, (int64_t)time(NULL), collect_revoked, &seen),
                     TRELLIS_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.serials[0], a.record.serial);
    assert_int_equal(f->s->crl_commit(f->s->ctx, 1, 1234, (const uint8_t *)"crl-one", 7),
                     TRELLIS_OK);
    /* Aborted: nothing changes, the number is not used up. */
    assert_int_equal(f->s->crl_begin(f->s->ctx, &number), TRELLIS_OK);
    assert_int_equal(number, 2);
    f->s->crl_abort(f->s->ctx);
    assert_int_equal(f->s->crl_get(f->s->ctx, &got, NULL, NULL, 0, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, 7);
    int64_t when = 0;
    assert_int_equal(f->s->crl_get(f->s->ctx, &got, &when, der, sizeof(der), &len), TRELLIS_OK);
    assert_int_equal(got, 1);
    assert_int_equal(when, 1234);
    assert_memory_equal(der, "crl-one", 7);
    assert_int_equal(f->s->crl_begin(f->s->ctx, &number), TRELLIS_OK);
    assert_int_equal(number, 2);
    f->s->crl_abort(f->s->ctx);
    /* Outside crl_begin the other steps are refused. */
    assert_int_equal(f->s->crl_revoked(f->s->ctx, 0, collect_revoked, &seen),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f->s->crl_commit(f->s->ctx, 2, 1, der, 1), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(counts(f).crl_number, 1);
}

/* The layout of the certificates table ("WITHOUT ROWID" or not) in the registry at path. */
static int certificates_without_rowid(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int without = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT sql FROM sqlite_master WHERE type = 'table'"
                                        " AND name = 'certificates'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        without = strstr((const char *)sqlite3_column_text(st, 0), "WITHOUT ROWID") != NULL;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return without;
}

/* Registries created before certificates became a rowid table keep their WITHOUT ROWID layout,
 * and everything works on it as on the new one. */
static void test_earlier_layout(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(certificates_without_rowid(f->path), 0);
    trellis_rstore_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "BEGIN; DROP INDEX certificates_device; DROP INDEX certificates_revoked;"
            " DROP TABLE certificates;"
            " CREATE TABLE certificates("
            " serial TEXT PRIMARY KEY CHECK(length(serial) = 32),"
            " device_id TEXT NOT NULL REFERENCES devices(device_id),"
            " public_key BLOB NOT NULL CHECK(length(public_key) = 65),"
            " not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, issued_ms INTEGER NOT NULL,"
            " kind INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0,"
            " revoke_reason INTEGER NOT NULL DEFAULT 0, challenge_id BLOB UNIQUE,"
            " csr_sha256 BLOB NOT NULL, verdict TEXT NOT NULL, actor TEXT NOT NULL) WITHOUT ROWID;"
            " CREATE INDEX certificates_device ON certificates(device_id, issued_ms);"
            " CREATE INDEX certificates_revoked ON certificates(serial, not_after)"
            " WHERE revoked_ms > 0; COMMIT;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(certificates_without_rowid(f->path), 1);
    reopen(f);
    trellis_rstore_op_t op = enroll(1, 1, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &op), TRELLIS_OK);
    trellis_rstore_cert_t c;
    assert_int_equal(f->s->cert_get(f->s->ctx, op.record.serial, &c), TRELLIS_OK);
    assert_string_equal(c.device_id, op.record.device_id);
    /* Single use of a recorded challenge, by a record or a consumption, across reopening. */
    reopen(f);
    trellis_rstore_op_t again = enroll(2, 2, 1, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &again), TRELLIS_ERR_REPLAYED);
    trellis_rstore_op_t consumed = consume(1);
    assert_int_equal(apply1(f, &consumed), TRELLIS_ERR_REPLAYED);
    trellis_rstore_op_t dup = enroll(3, 1, 3, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &dup), TRELLIS_ERR_EXISTS);
    /* A factory reset supersedes the first certificate, which the CRL then lists. */
    trellis_rstore_op_t reset = enroll(1, 4, 4, TRELLIS_RESET_REPLACE);
    assert_int_equal(apply1(f, &reset), TRELLIS_OK);
    assert_int_equal(reset.replaced, 1);
    assert_int_equal(reset.revoked_certs, 1);
    assert_int_equal(f->s->cert_get(f->s->ctx, op.record.serial, &c), TRELLIS_OK);
    assert_true(c.revoked_ms > 0);
    trellis_rstore_counts_t n = counts(f);
    assert_int_equal(n.certificates, 2);
    assert_int_equal(n.revoked_certificates, 1);
    assert_int_equal(n.challenges, 2);
    assert_int_equal(certificates_without_rowid(f->path), 1);
}

static void test_open_refusals(void **state)
{
    fixture_t *f = *state;
    char p[RT_PATH];
    trellis_rstore_t *s = NULL;
    rt_path(p, sizeof(p), f->dir, "absent.db");
    assert_int_equal(trellis_rstore_open_sqlite(p, NULL, &s), TRELLIS_ERR_NOT_FOUND);
    assert_null(s);
    /* Another application's SQLite database is not a registry. */
    rt_path(p, sizeof(p), f->dir, "other.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "CREATE TABLE t(x); PRAGMA user_version = 1;", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    trellis_rstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 100, .create = 1};
    assert_int_equal(trellis_rstore_open_sqlite(p, &o, &s), TRELLIS_ERR_STORE);
    /* Nor a file of garbage. */
    rt_path(p, sizeof(p), f->dir, "garbage.db");
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    for (int i = 0; i < 4096; i++)
        fputc(i * 7, fp);
    fclose(fp);
    assert_int_equal(trellis_rstore_open_sqlite(p, &o, &s), TRELLIS_ERR_STORE);
    assert_null(s);
    assert_int_equal(trellis_rstore_open_sqlite(NULL, NULL, &s), TRELLIS_ERR_INVALID_ARG);
    trellis_rstore_close(NULL);
}

static void test_helpers(void **state)
{
    (void)state;
    trellis_crl_reason_t code;
    assert_true(trellis_rstore_hex32_valid("0123456789abcdef0123456789abcdef"));
    assert_false(trellis_rstore_hex32_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(trellis_rstore_hex32_valid("0123456789abcdef0123456789abcde"));
    assert_false(trellis_rstore_hex32_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(trellis_rstore_hex32_valid(NULL));
    assert_int_equal(trellis_crl_reason_parse("keyCompromise", &code), TRELLIS_OK);
    assert_int_equal(code, TRELLIS_CRL_REASON_KEY_COMPROMISE);
    assert_int_equal(trellis_crl_reason_parse("key-compromise", &code), TRELLIS_OK);
    assert_int_equal(trellis_crl_reason_parse("CESSATION_OF_OPERATION", &code), TRELLIS_OK);
    assert_int_equal(code, TRELLIS_CRL_REASON_CESSATION_OF_OPERATION);
    assert_int_equal(trellis_crl_reason_parse("stolen", &code), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(trellis_crl_reason_parse("", &code), TRELLIS_ERR_NOT_FOUND);
    assert_string_equal(trellis_crl_reason_name(TRELLIS_CRL_REASON_SUPERSEDED), "superseded");
    assert_string_equal(trellis_crl_reason_name((trellis_crl_reason_t)77), "unspecified");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_durable_records_are_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_challenges_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reenroll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_reinstate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crl_numbering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_earlier_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
