/* The SQLite telemetry store and the message checks of the ingest, without a broker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest_test.h"
#include "test_support.h"
#include "trellis/ingest.h"

#define TS 1764072000000LL

static const char dev_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char dev_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

typedef struct {
    char dir[256];
    char db[300];
    trellis_ingest_store_t store;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "ingest-test");
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    assert_int_equal(trellis_ingest_sqlite_open(f->db, false, &f->store, NULL), TRELLIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->store.close != NULL)
        f->store.close(f->store.ctx);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

static trellis_ingest_record_t reading(const char *dev, int64_t seq, double temp, int64_t floor)
{
    trellis_ingest_record_t r;
    memset(&r, 0, sizeof(r));
    memcpy(r.device_id, dev, TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1);
    r.reading.seq = seq;
    r.reading.ts_ms = TS + seq * 1000;
    r.reading.temp_c = temp;
    r.reading.floor = floor;
    r.recv_ms = TS + seq * 1000 + 5;
    return r;
}

/* Writes recs and returns the ack of dev (or -1 if the batch owed it none). */
static int64_t put(fixture_t *f, const trellis_ingest_record_t *recs, size_t n, const char *dev,
                   trellis_ingest_stats_t *stats)
{
    trellis_ingest_ack_t acks[16];
    size_t n_acks = 0;
    trellis_ingest_stats_t local = {0};
    if (stats == NULL)
        stats = &local;
    assert_int_equal(f->store.write_batch(f->store.ctx, recs, n, stats, acks, 16, &n_acks),
                     TRELLIS_OK);
    for (size_t i = 0; i < n_acks; i++) {
        if (strcmp(acks[i].device_id, dev) == 0)
            return acks[i].acked;
    }
    return -1;
}

static void test_watermark_is_contiguous(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[4] = {reading(dev_a, 1, 20, 0), reading(dev_a, 2, 20.5, 0),
                                    reading(dev_a, 4, 21, 0), reading(dev_b, 1, 5, 0)};
    trellis_ingest_stats_t st = {0};
    assert_true(put(f, r, 4, dev_a, &st) == 2); /* 3 is missing */
    assert_int_equal(st.stored, 4);
    assert_int_equal(st.duplicates, 0);
    assert_true(put(f, r, 4, dev_b, NULL) == 1);

    trellis_ingest_record_t three = reading(dev_a, 3, 22, 0);
    assert_true(put(f, &three, 1, dev_a, NULL) == 4); /* the gap closes: 1..4 */

    trellis_ingest_device_t d;
    assert_int_equal(f->store.device(f->store.ctx, dev_a, &d), TRELLIS_OK);
    assert_true(d.acked == 4 && d.readings == 4 && d.last_seq == 4);
    assert_true(d.last_temp_c == 21.0);
}

static void test_duplicates_are_stored_once_and_still_acked(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[3] = {reading(dev_a, 1, 20, 0), reading(dev_a, 1, 99, 0),
                                    reading(dev_a, 2, 20, 0)};
    trellis_ingest_stats_t st = {0};
    assert_true(put(f, r, 3, dev_a, &st) == 2);
    assert_int_equal(st.stored, 2);
    assert_int_equal(st.duplicates, 1);
    /* The same batch again, as a resent spool: nothing new, the ack repeats. */
    memset(&st, 0, sizeof(st));
    assert_true(put(f, r, 3, dev_a, &st) == 2);
    assert_int_equal(st.stored, 0);
    assert_int_equal(st.duplicates, 3);

    trellis_ingest_device_t d;
    assert_int_equal(f->store.device(f->store.ctx, dev_a, &d), TRELLIS_OK);
    assert_true(d.readings == 2);
    /* The first copy wins: a redelivery never rewrites a stored reading. */
    trellis_ingest_row_t rows[4];
    size_t n = ingest_test_query(&f->store, dev_a, 0, rows, 4);
    assert_int_equal(n, 2);
    assert_true(rows[0].seq == 1 && rows[0].temp_c == 20.0);
}

static void test_floor_skips_readings_the_device_gave_up(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r = reading(dev_a, 10, 20, 0);
    assert_true(put(f, &r, 1, dev_a, NULL) == 0);
    /* The device dropped 1..8 from its full spool and says so. */
    r = reading(dev_a, 11, 20, 8);
    assert_true(put(f, &r, 1, dev_a, NULL) == 8);
    r = reading(dev_a, 9, 20, 0);
    assert_true(put(f, &r, 1, dev_a, NULL) == 11);
    /* A floor never lowers the watermark. */
    r = reading(dev_a, 12, 20, 3);
    assert_true(put(f, &r, 1, dev_a, NULL) == 12);
}

static void test_quarantine_counts_toward_the_watermark(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[2] = {reading(dev_a, 1, 20, 0), reading(dev_a, 2, 0, 0)};
    r[1].rejected = 1;
    snprintf(r[1].reason, sizeof(r[1].reason), "temp_c is outside -60..150");
    memcpy(r[1].payload, "{\"seq\":2}", 9);
    r[1].payload_len = 9;
    trellis_ingest_stats_t st = {.rejected_topic = 3, .rejected_payload = 1};
    assert_true(put(f, r, 2, dev_a, &st) == 2);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.quarantined, 1);

    trellis_ingest_stats_t totals;
    assert_int_equal(f->store.counters(f->store.ctx, &totals), TRELLIS_OK);
    assert_int_equal(totals.stored, 1);
    assert_int_equal(totals.quarantined, 1);
    assert_int_equal(totals.rejected_topic, 3);
    assert_int_equal(totals.rejected_payload, 1);

    trellis_ingest_device_t d;
    assert_int_equal(f->store.device(f->store.ctx, dev_a, &d), TRELLIS_OK);
    assert_true(d.readings == 1 && d.quarantined == 1 && d.acked == 2);
    trellis_ingest_row_t rows[4];
    assert_int_equal(ingest_test_query(&f->store, dev_a, 0, rows, 4), 1);
}

static void test_long_backlog_crosses_pages(void **state)
{
    fixture_t *f = *state;
    enum { N = 1500 };
    trellis_ingest_record_t *r = calloc(N, sizeof(*r));
    assert_non_null(r);
    /* seq 2..N first: the watermark stays 0 until 1 arrives, then crosses every page. */
    for (int i = 0; i < N - 1; i++)
        r[i] = reading(dev_a, i + 2, 20, 0);
    assert_true(put(f, r, N - 1, dev_a, NULL) == 0);
    r[0] = reading(dev_a, 1, 20, 0);
    assert_true(put(f, r, 1, dev_a, NULL) == N);
    free(r);
}

static void test_query_since_and_limit(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[5];
    for (int i = 0; i < 5; i++)
        r[i] = reading(dev_b, i + 1, 10 + i, 0);
    put(f, r, 5, dev_b, NULL);
    trellis_ingest_row_t rows[8];
    assert_int_equal(ingest_test_query(&f->store, dev_b, TS + 3000, rows, 8), 3);
    assert_true(rows[0].seq == 3 && rows[2].seq == 5 && rows[2].temp_c == 14.0);
    assert_true(rows[0].recv_ms == TS + 3005);
    assert_int_equal(ingest_test_query(&f->store, dev_b, 0, rows, 2), 2);
    assert_int_equal(ingest_test_query(&f->store, dev_a, 0, rows, 8), 0);

    trellis_ingest_device_t d;
    assert_int_equal(f->store.device(f->store.ctx, dev_a, &d), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(f->store.device(f->store.ctx, "nope", &d), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f->store.query(f->store.ctx, "x", 0, 0, NULL, NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_survives_reopen_and_readonly(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[2] = {reading(dev_a, 1, 20, 0), reading(dev_a, 2, 21, 0)};
    put(f, r, 2, dev_a, NULL);
    f->store.close(f->store.ctx);
    memset(&f->store, 0, sizeof(f->store));

    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    trellis_ingest_store_t ro;
    assert_int_equal(trellis_ingest_sqlite_open(f->db, true, &ro, NULL), TRELLIS_OK);
    trellis_ingest_device_t d;
    assert_int_equal(ro.device(ro.ctx, dev_a, &d), TRELLIS_OK);
    assert_true(d.acked == 2 && d.readings == 2);
    trellis_ingest_stats_t stats = {0};
    trellis_ingest_ack_t acks[2];
    size_t n_acks = 9;
    assert_int_equal(ro.write_batch(ro.ctx, r, 2, &stats, acks, 2, &n_acks),
                     TRELLIS_ERR_PERMISSION);
    assert_int_equal(n_acks, 0);
    ro.close(ro.ctx);

    char missing[320];
    snprintf(missing, sizeof(missing), "%s/absent.db", f->dir);
    trellis_reason_t reason;
    assert_int_equal(trellis_ingest_sqlite_open(missing, true, &ro, &reason),
                     TRELLIS_ERR_NOT_FOUND);
    assert_null(ro.ctx);
    /* A file that is not a database. */
    char junk[320];
    snprintf(junk, sizeof(junk), "%s/junk.db", f->dir);
    FILE *j = fopen(junk, "w");
    assert_non_null(j);
    fputs("this is not sqlite, not at all, no header here...........................", j);
    fclose(j);
    assert_int_equal(trellis_ingest_sqlite_open(junk, false, &ro, &reason), TRELLIS_ERR_STORE);
    assert_true(strlen(reason.text) > 0);
    assert_int_equal(trellis_ingest_sqlite_open(NULL, false, &ro, NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_bad_batches_change_nothing(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_record_t r[3] = {reading(dev_a, 1, 20, 0), reading(dev_b, 1, 20, 0),
                                    reading(dev_a, 2, 20, 0)};
    trellis_ingest_stats_t st = {0};
    trellis_ingest_ack_t acks[1];
    size_t n_acks = 5;
    /* Room for one ack but two devices: the whole batch is rolled back. */
    assert_int_equal(f->store.write_batch(f->store.ctx, r, 3, &st, acks, 1, &n_acks),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n_acks, 0);
    trellis_ingest_row_t rows[4];
    assert_int_equal(ingest_test_query(&f->store, dev_a, 0, rows, 4), 0);
    assert_int_equal(f->store.write_batch(f->store.ctx, NULL, 2, &st, acks, 1, &n_acks),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f->store.write_batch(f->store.ctx, r, TRELLIS_INGEST_BATCH_LIMIT + 1, &st,
                                          acks, 1, &n_acks),
                     TRELLIS_ERR_INVALID_ARG);
    /* An empty batch is fine (it carries reject counts). */
    st.rejected_topic = 2;
    assert_int_equal(f->store.write_batch(f->store.ctx, NULL, 0, &st, NULL, 0, &n_acks),
                     TRELLIS_OK);
    trellis_ingest_stats_t totals;
    assert_int_equal(f->store.counters(f->store.ctx, &totals), TRELLIS_OK);
    assert_int_equal(totals.rejected_topic, 2);
}

static void test_store_port_check(void **state)
{
    fixture_t *f = *state;
    trellis_ingest_store_t copy = f->store;
    assert_int_equal(trellis_ingest_store_check(&copy), TRELLIS_OK);
    copy.version = 2;
    assert_int_equal(trellis_ingest_store_check(&copy), TRELLIS_ERR_CONFIG);
    copy = f->store;
    copy.query = NULL;
    assert_int_equal(trellis_ingest_store_check(&copy), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_ingest_store_check(NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_classify(void **state)
{
    (void)state;
    trellis_ingest_record_t rec;
    bool drop_topic = true;
    const char topic[] = "devices/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/telemetry";
    const char good[] = "{\"seq\":5,\"ts\":1764072000000,\"temp_c\":21.5}";
    assert_int_equal(
        trellis_ingest_classify(topic, good, strlen(good), TS, 3600000, &rec, &drop_topic),
        TRELLIS_OK);
    assert_false(drop_topic);
    assert_string_equal(rec.device_id, dev_a);
    assert_true(rec.reading.seq == 5 && rec.recv_ms == TS && !rec.rejected);

    /* A bad topic is dropped and counted as such. */
    assert_int_equal(trellis_ingest_classify("devices/x/telemetry", good, strlen(good), TS, 3600000,
                                             &rec, &drop_topic),
                     TRELLIS_ERR_NOT_FOUND);
    assert_true(drop_topic);

    /* A bad payload with a usable seq is quarantined under it. */
    const char hot[] = "{\"seq\":6,\"ts\":1764072000000,\"temp_c\":500}";
    assert_int_equal(
        trellis_ingest_classify(topic, hot, strlen(hot), TS, 3600000, &rec, &drop_topic),
        TRELLIS_ERR_PARSE);
    assert_false(drop_topic);
    assert_true(rec.rejected && rec.reading.seq == 6);
    assert_non_null(strstr(rec.reason, "temp_c"));
    assert_int_equal(rec.payload_len, strlen(hot));

    /* A reading from the future is quarantined too. */
    const char future[] = "{\"seq\":7,\"ts\":1764075600001,\"temp_c\":20}";
    assert_int_equal(
        trellis_ingest_classify(topic, future, strlen(future), TS, 3600000, &rec, &drop_topic),
        TRELLIS_ERR_PARSE);
    assert_true(rec.rejected && rec.reading.seq == 7);
    assert_non_null(strstr(rec.reason, "ahead"));

    /* Without a seq there is nothing to attribute it to: dropped, counted as payload. */
    const char junk[] = "\xff\xfe garbage";
    assert_int_equal(
        trellis_ingest_classify(topic, junk, strlen(junk), TS, 3600000, &rec, &drop_topic),
        TRELLIS_ERR_NOT_FOUND);
    assert_false(drop_topic);
    assert_false(rec.rejected);
    assert_int_equal(trellis_ingest_classify(topic, good, strlen(good), TS, 0, NULL, &drop_topic),
                     TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watermark_is_contiguous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_are_stored_once_and_still_acked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_floor_skips_readings_the_device_gave_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quarantine_counts_toward_the_watermark, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_backlog_crosses_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_since_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen_and_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_batches_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_port_check, setup, teardown),
        cmocka_unit_test(test_classify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
