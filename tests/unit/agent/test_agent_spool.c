/*
 * The device agent without a network: the spool (durable append, ack, drop, compaction, crash
 * recovery, seq across restarts), retry timing, the thermometer, renewal timing, and the
 * checks an issued certificate must pass before it becomes the device's identity.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "agent_test.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/x509.h"

#define TS 1764072000000LL

typedef struct {
    char dir[256];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "agent-test");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

static void append_n(tr__spool_t *s, int n)
{
    for (int i = 0; i < n; i++) {
        tr__reading_t r;
        assert_int_equal(tr__spool_append(s, TS + i, 20.0 + i / 100.0, &r), TRELLIS_OK);
    }
}

static off_t file_size(const fixture_t *f, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/spool/%s", f->dir, name);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_append_ack_and_reopen(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s;
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    append_n(&s, 10);
    assert_int_equal(s.count, 10);
    assert_true(s.last_seq == 10);
    assert_true(tr__spool_at(&s, 0)->seq == 1 && tr__spool_at(&s, 9)->seq == 10);
    assert_null(tr__spool_at(&s, 10));
    assert_int_equal(tr__spool_ack(&s, 4), TRELLIS_OK);
    assert_int_equal(s.count, 6);
    assert_true(tr__spool_at(&s, 0)->seq == 5);
    /* An older ack changes nothing. */
    assert_int_equal(tr__spool_ack(&s, 2), TRELLIS_OK);
    assert_int_equal(s.count, 6);
    tr__spool_close(&s);

    /* After a restart: the same readings, the ack kept, the seq carries on. */
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(s.count, 6);
    assert_true(s.acked == 4 && s.last_seq == 10);
    assert_true(tr__spool_at(&s, 0)->seq == 5);
    assert_true(fabs(tr__spool_at(&s, 0)->temp_c - 20.04) < 1e-9);
    tr__reading_t r;
    assert_int_equal(tr__spool_append(&s, TS, 1.0, &r), TRELLIS_OK);
    assert_true(r.seq == 11);
    assert_int_equal(tr__spool_ack(&s, 11), TRELLIS_OK);
    assert_int_equal(s.count, 0);
    tr__spool_close(&s);

    /* Everything acknowledged and compacted away: seq still survives. */
    assert_int_equal(file_size(f, "spool.dat"), 0);
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(tr__spool_append(&s, TS, 1.0, &r), TRELLIS_OK);
    assert_true(r.seq == 12);
    tr__spool_close(&s);

    struct stat st;
    char path[512];
    snprintf(path, sizeof(path), "%s/spool", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_full_spool_drops_oldest(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s;
    assert_int_equal(tr__spool_open(&s, f->dir, 5, false, NULL), TRELLIS_OK);
    append_n(&s, 12);
    assert_int_equal(s.count, 5);
    assert_true(tr__spool_at(&s, 0)->seq == 8);
    assert_true(s.dropped_to == 7);
    assert_int_equal(s.dropped_total, 7);
    /* The floor announced to the ingest covers what was dropped. */
    assert_true(tr__spool_floor(&s) == 7);
    assert_int_equal(tr__spool_ack(&s, 9), TRELLIS_OK);
    assert_true(tr__spool_floor(&s) == 9);
    assert_int_equal(s.count, 3);
    tr__spool_close(&s);

    /* The file stays bounded however long the spool keeps dropping. */
    assert_int_equal(tr__spool_open(&s, f->dir, 5, false, NULL), TRELLIS_OK);
    append_n(&s, 500);
    assert_true(file_size(f, "spool.dat") <= (off_t)(2 * 5 + 64) * 32);
    assert_int_equal(s.count, 5);
    int64_t last = s.last_seq;
    tr__spool_close(&s);
    assert_int_equal(tr__spool_open(&s, f->dir, 5, false, NULL), TRELLIS_OK);
    assert_true(s.last_seq == last);
    assert_int_equal(s.count, 5);
    assert_true(tr__spool_at(&s, 4)->seq == last);
    tr__spool_close(&s);
}

static void test_torn_record_is_cut(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s;
    char path[512];
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    append_n(&s, 3);
    tr__spool_close(&s);
    /* A power cut in the middle of the fourth record. */
    snprintf(path, sizeof(path), "%s/spool/spool.dat", f->dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x04\0\0\0\0\0\0\0\x01\x02\x03", 11), 11);
    close(fd);
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(s.count, 3);
    assert_int_equal(file_size(f, "spool.dat"), 3 * 32);
    tr__reading_t r;
    assert_int_equal(tr__spool_append(&s, TS, 1.0, &r), TRELLIS_OK);
    assert_true(r.seq == 4);
    tr__spool_close(&s);

    /* A flipped bit in record 2: records 2.. are not trusted. */
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\xff", 1, 32 + 9), 1);
    close(fd);
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(s.count, 1);
    tr__spool_close(&s);
}

static void test_interrupted_compaction_keeps_live_records(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s;
    char path[512];
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    append_n(&s, 10);
    tr__spool_close(&s);
    /* The state says 6 is acknowledged but the file was not rewritten yet. */
    snprintf(path, sizeof(path), "%s/spool/spool.state", f->dir);
    assert_int_equal(trellis_file_write_atomic(path, "acked 6\ndropped 0\n", 18, 0600), TRELLIS_OK);
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(s.count, 4);
    assert_true(tr__spool_at(&s, 0)->seq == 7 && s.last_seq == 10);
    tr__spool_close(&s);
    /* A state file that is not ours is an error, not a reset. */
    assert_int_equal(trellis_file_write_atomic(path, "acked x\n", 8, 0600), TRELLIS_OK);
    trellis_reason_t reason;
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, &reason), TRELLIS_ERR_PARSE);
}

static void test_ack_beyond_last_seq_resyncs(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s;
    tr__reading_t r;
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    append_n(&s, 3);
    /* The store knows up to 500 (this device's state was wiped and it restarted at 1). */
    assert_int_equal(tr__spool_ack(&s, 500), TRELLIS_OK);
    assert_int_equal(s.count, 0);
    assert_int_equal(tr__spool_append(&s, TS, 1.0, &r), TRELLIS_OK);
    assert_true(r.seq == 501);
    tr__spool_close(&s);
    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(tr__spool_append(&s, TS, 1.0, &r), TRELLIS_OK);
    assert_true(r.seq == 502);
    assert_int_equal(tr__spool_ack(&s, TRELLIS_TELEMETRY_SEQ_MAX + 1), TRELLIS_ERR_INVALID_ARG);
    tr__spool_close(&s);
}

static void test_readonly_open_changes_nothing(void **state)
{
    fixture_t *f = *state;
    tr__spool_t s, ro;
    /* No spool yet: empty, and nothing is created. */
    assert_int_equal(tr__spool_open(&ro, f->dir, 100, true, NULL), TRELLIS_OK);
    assert_int_equal(ro.count, 0);
    tr__spool_close(&ro);
    assert_int_equal(file_size(f, "spool.dat"), -1);

    assert_int_equal(tr__spool_open(&s, f->dir, 100, false, NULL), TRELLIS_OK);
    append_n(&s, 4);
    /* A reader sees the writer's records while it keeps appending. */
    assert_int_equal(tr__spool_open(&ro, f->dir, 100, true, NULL), TRELLIS_OK);
    assert_int_equal(ro.count, 4);
    assert_true(ro.last_seq == 4);
    tr__spool_close(&ro);
    append_n(&s, 1);
    assert_int_equal(file_size(f, "spool.dat"), 5 * 32);
    tr__spool_close(&s);
    assert_int_equal(tr__spool_open(&s, f->dir, 0, false, NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_backoff_and_retry_after(void **state)
{
    (void)state;
    for (int attempt = 1; attempt <= 12; attempt++) {
        long long cap = 1000LL << (attempt - 1);
        if (cap > 60000)
            cap = 60000;
        for (int k = 0; k < 20; k++) {
            long long d = tr__backoff_ms(1000, 60000, attempt, 0);
            assert_true(d >= cap / 2 && d <= cap);
        }
    }
    /* Retry-After is a floor. */
    assert_true(tr__backoff_ms(1000, 60000, 1, 30000) == 30000);
    assert_true(tr__backoff_ms(1000, 60000, 1000, 0) <= 60000);

    time_t now = 1764072000; /* Tue, 25 Nov 2025 12:00:00 GMT */
    assert_true(tr__parse_retry_after("5", now) == 5000);
    assert_true(tr__parse_retry_after(" 120 \r\n", now) == 120000);
    assert_true(tr__parse_retry_after("0", now) == 0);
    assert_true(tr__parse_retry_after("99999999999", now) == 24LL * 3600 * 1000);
    assert_true(tr__parse_retry_after("Tue, 25 Nov 2025 12:00:30 GMT", now) == 30000);
    assert_true(tr__parse_retry_after("Tue, 25 Nov 2025 11:00:00 GMT", now) == 0);
    assert_true(tr__parse_retry_after("", now) == -1);
    assert_true(tr__parse_retry_after("-5", now) == -1);
    assert_true(tr__parse_retry_after("1.5", now) == -1);
    assert_true(tr__parse_retry_after("Tue, 25 Foo 2025 12:00:30 GMT", now) == -1);
    assert_true(tr__parse_retry_after("Tue, 25 Nov 2025 12:00:30 UTC", now) == -1);
    assert_true(tr__parse_retry_after("soon", now) == -1);
    assert_true(tr__parse_retry_after(NULL, now) == -1);
}

static void test_thermometer_drifts_slowly(void **state)
{
    (void)state;
    tr__thermo_t t, again;
    tr__thermo_init(&t, "0123456789abcdef0123456789abcdef");
    tr__thermo_init(&again, "0123456789abcdef0123456789abcdef");
    assert_true(t.base == again.base);
    assert_true(t.base >= 18.0 && t.base <= 26.0);
    double prev = tr__thermo_read(&t);
    for (int i = 0; i < 100000; i++) {
        double v = tr__thermo_read(&t);
        assert_true(fabs(v - prev) <= 0.11);
        assert_true(v > t.base - 5 && v < t.base + 5);
        prev = v;
    }
}

static void test_renewal_timing(void **state)
{
    (void)state;
    tr__identity_t id;
    memset(&id, 0, sizeof(id));
    id.not_before = 1000;
    id.not_after = 1000 + 100 * 86400; /* 100 days */
    assert_false(tr__identity_renew_due(&id, 33, 1000 + 60 * 86400));
    assert_true(tr__identity_renew_due(&id, 33, 1000 + 68 * 86400));
    assert_true(tr__identity_renew_due(&id, 33, 1000 + 200 * 86400));
    assert_false(tr__identity_renew_due(&id, 1, 1000 + 98 * 86400));
    id.not_after = id.not_before;
    assert_false(tr__identity_renew_due(&id, 33, 5000));
    assert_false(tr__identity_renew_due(NULL, 33, 5000));
}

/* The chain as PEM text. */
static char *pem_of(const char *cert_file, const char *extra_file)
{
    uint8_t *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    assert_int_equal(trellis_file_read_all(cert_file, 1 << 20, &a, &al), TRELLIS_OK);
    if (extra_file != NULL)
        assert_int_equal(trellis_file_read_all(extra_file, 1 << 20, &b, &bl), TRELLIS_OK);
    char *out = calloc(1, al + bl + 1);
    assert_non_null(out);
    memcpy(out, a, al);
    if (b != NULL)
        memcpy(out + al, b, bl);
    trellis_file_buffer_free(a, al);
    trellis_file_buffer_free(b, bl);
    return out;
}

static void test_identity_install_checks(void **state)
{
    fixture_t *f = *state;
    trellis_test_pki_t pki;
    char dev_dir[512], id[TRELLIS_DEVICE_ID_LEN + 1];
    tr__agent_config_t cfg;
    tr__agent_t *a = calloc(1, sizeof(*a));
    trellis_reason_t reason;
    tr__identity_t got;
    assert_non_null(a);
    assert_int_equal(trellis_test_pki_create(&pki), TRELLIS_OK);
    agent_test_device(f->dir, "dev", "https://127.0.0.1:1", pki.ca_cert, dev_dir, sizeof(dev_dir),
                      id);
    agent_test_config(&cfg);
    assert_int_equal(tr__agent_open(a, dev_dir, &cfg, &reason), TRELLIS_OK);
    assert_int_equal(tr__identity_load(a, &got, &reason), TRELLIS_ERR_NOT_FOUND);

    trellis_test_pki_pair_t good, other_ca, other_name;
    EVP_PKEY *key = NULL, *wrong_key = NULL;
    assert_int_equal(trellis_test_pki_client(&pki, id, false, &good), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&pki, id, true, &other_ca), TRELLIS_OK);
    assert_int_equal(
        trellis_test_pki_client(&pki, "0000000000000000000000000000000f", false, &other_name),
        TRELLIS_OK);
    assert_int_equal(trellis_p256_load_private_pem(good.key, &key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&wrong_key), TRELLIS_OK);

    char *pem = pem_of(good.cert, NULL);
    /* Not the key the request was made with. */
    assert_int_equal(tr__identity_install(a, wrong_key, pem, strlen(pem), NULL, &reason),
                     TRELLIS_ERR_BAD_KEY);
    /* Not chaining to the pinned CA. */
    char *stranger = pem_of(other_ca.cert, NULL);
    EVP_PKEY *stranger_key = NULL;
    assert_int_equal(trellis_p256_load_private_pem(other_ca.key, &stranger_key), TRELLIS_OK);
    assert_int_equal(
        tr__identity_install(a, stranger_key, stranger, strlen(stranger), NULL, &reason),
        TRELLIS_ERR_PERMISSION);
    assert_non_null(strstr(reason.text, "pinned CA"));
    /* Naming another device. */
    char *named = pem_of(other_name.cert, NULL);
    EVP_PKEY *named_key = NULL;
    assert_int_equal(trellis_p256_load_private_pem(other_name.key, &named_key), TRELLIS_OK);
    assert_int_equal(tr__identity_install(a, named_key, named, strlen(named), NULL, &reason),
                     TRELLIS_ERR_PERMISSION);
    /* No certificate at all. */
    assert_int_equal(tr__identity_install(a, key, "garbage", 7, NULL, &reason), TRELLIS_ERR_PARSE);
    assert_int_equal(tr__identity_load(a, &got, &reason), TRELLIS_ERR_NOT_FOUND);

    /* The real one is stored as one 0600 file and loads back. */
    tr__identity_t installed;
    assert_int_equal(tr__identity_install(a, key, pem, strlen(pem), &installed, &reason),
                     TRELLIS_OK);
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/identity.pem", dev_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tr__identity_load(a, &got, &reason), TRELLIS_OK);
    assert_string_equal(got.serial_hex, installed.serial_hex);
    assert_true(got.not_after > time(NULL));
    assert_true(EVP_PKEY_eq(got.key, key) == 1);
    tr__identity_free(&got);
    tr__identity_free(&installed);

    /* A damaged identity file is reported, not taken for "not enrolled". */
    assert_int_equal(trellis_file_write_atomic(path, "-----BEGIN", 10, 0600), TRELLIS_OK);
    assert_int_not_equal(tr__identity_load(a, &got, &reason), TRELLIS_OK);
    assert_int_not_equal(tr__identity_load(a, &got, &reason), TRELLIS_ERR_NOT_FOUND);

    free(pem);
    free(stranger);
    free(named);
    EVP_PKEY_free(key);
    EVP_PKEY_free(wrong_key);
    EVP_PKEY_free(stranger_key);
    EVP_PKEY_free(named_key);
    tr__agent_close(a);
    free(a);
    trellis_test_pki_destroy(&pki);
}

static void test_agent_open_refusals(void **state)
{
    fixture_t *f = *state;
    tr__agent_config_t cfg;
    tr__agent_t *a = calloc(1, sizeof(*a));
    trellis_reason_t reason;
    char dev_dir[512], id[TRELLIS_DEVICE_ID_LEN + 1];
    assert_non_null(a);
    agent_test_config(&cfg);
    assert_int_equal(tr__agent_open(a, f->dir, &cfg, &reason), TRELLIS_ERR_NOT_FOUND);
    agent_test_device(f->dir, "d2", "https://127.0.0.1:1///", NULL, dev_dir, sizeof(dev_dir), id);
    assert_int_equal(tr__agent_open(a, dev_dir, &cfg, &reason), TRELLIS_OK);
    assert_string_equal(a->registrar_url, "https://127.0.0.1:1");
    assert_null(a->registrar_ca_pem);
    /* Without a pinned CA there is no talking to the registrar. */
    tr__enroll_result_t res;
    uint8_t ch[64];
    size_t ch_len = 0;
    assert_int_equal(tr__enroll_challenge(a, ch, sizeof(ch), &ch_len, &res), TRELLIS_ERR_CONFIG);
    assert_int_equal(res.outcome, TR__ENROLL_REFUSED);
    assert_non_null(strstr(res.reason.text, "pinned"));
    tr__agent_close(a);
    snprintf(cfg.registrar_ca, sizeof(cfg.registrar_ca), "%s/absent.pem", f->dir);
    assert_int_equal(tr__agent_open(a, dev_dir, &cfg, &reason), TRELLIS_ERR_NOT_FOUND);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_ack_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_spool_drops_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_record_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_compaction_keeps_live_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ack_beyond_last_seq_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_open_changes_nothing, setup, teardown),
        cmocka_unit_test(test_backoff_and_retry_after),
        cmocka_unit_test(test_thermometer_drifts_slowly),
        cmocka_unit_test(test_renewal_timing),
        cmocka_unit_test_setup_teardown(test_identity_install_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_open_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
