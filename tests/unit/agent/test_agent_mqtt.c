/*
 * The agent's MQTT client and spool against a real Mosquitto and the real ingest (design.md §3,
 * issue 6 items 2 and 7): readings reach the store and leave the spool only on the end-to-end
 * ack; a broker killed with SIGKILL, a broker stopped for a while and an ingest restart lose no
 * reading; a full spool drops the oldest and the ingest's acks still move on (floor); a revoked
 * device is refused. Device certificates come from tests/support/test_pki, so these tests do
 * not need the registrar.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "agent_test.h"
#include "mosquitto_harness.h"
#include "test_support.h"
#include "trellis/clock.h"
#include "trellis/ingest.h"
#include "trellis/log.h"
#include "trellis/x509.h"

typedef struct {
    trellis_test_pki_t pki;
    trellis_mosq_harness_t h;
    char crl[TRELLIS_TEST_PKI_PATH + 32];
    char work[256];
    char db[320];
    trellis_ingest_store_t store, reader;
    trellis_ingest_t *ing;
    pthread_t thread;
    bool running;
    int devices;
} world_t;

static world_t *W;

static void *ingest_main(void *arg)
{
    (void)arg;
    trellis_ingest_run(W->ing);
    return NULL;
}

static void ingest_start(void)
{
    trellis_ingest_config_t cfg;
    assert_int_equal(trellis_conf_defaults(trellis_ingest_conf_spec(), &cfg, NULL), TRELLIS_OK);
    cfg.broker_port = W->h.service_port;
    snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", W->h.service_ca);
    snprintf(cfg.cert_file, sizeof(cfg.cert_file), "%s", W->h.ingest_cert);
    snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", W->h.ingest_key);
    snprintf(cfg.client_id, sizeof(cfg.client_id), "ingest-agent-test");
    cfg.stats_interval_ms = 0;
    assert_int_equal(trellis_ingest_sqlite_open(W->db, false, &W->store, NULL), TRELLIS_OK);
    assert_int_equal(trellis_ingest_new(&cfg, &W->store, &W->ing, NULL), TRELLIS_OK);
    assert_int_equal(pthread_create(&W->thread, NULL, ingest_main, NULL), 0);
    for (int i = 0; i < 500 && !trellis_ingest_subscribed(W->ing); i++)
        usleep(10000);
    assert_true(trellis_ingest_subscribed(W->ing));
    W->running = true;
}

static void ingest_stop(void)
{
    if (!W->running)
        return;
    trellis_ingest_stop(W->ing);
    pthread_join(W->thread, NULL);
    trellis_ingest_free(W->ing);
    W->store.close(W->store.ctx);
    W->running = false;
}

static int world_setup(void **state)
{
    (void)state;
    W = calloc(1, sizeof(*W));
    assert_non_null(W);
    if (getenv("TRELLIS_TEST_DEBUG") == NULL)
        trellis_log_set_level(TRELLIS_LOG_ERROR);
    mosquitto_lib_init();
    assert_int_equal(trellis_test_pki_create(&W->pki), TRELLIS_OK);
    snprintf(W->crl, sizeof(W->crl), "%s/device-ca.crl", W->pki.dir);
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, NULL, 0),
                     TRELLIS_OK);
    trellis_test_tmpdir(W->work, sizeof(W->work), "agent-test");
    snprintf(W->db, sizeof(W->db), "%s/telemetry.db", W->work);
    assert_int_equal(trellis_mosq_harness_init(&W->h, W->pki.ca_cert, W->crl), TRELLIS_OK);
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    ingest_start();
    assert_int_equal(trellis_ingest_sqlite_open(W->db, true, &W->reader, NULL), TRELLIS_OK);
    return 0;
}

static int world_teardown(void **state)
{
    (void)state;
    ingest_stop();
    W->reader.close(W->reader.ctx);
    trellis_mosq_harness_destroy(&W->h);
    trellis_test_rmtree(W->work);
    trellis_test_pki_destroy(&W->pki);
    mosquitto_lib_cleanup();
    free(W);
    return 0;
}

/* A device with an identity, its spool and its MQTT client. */
typedef struct {
    char dir[512];
    char id[TRELLIS_DEVICE_ID_LEN + 1];
    tr__agent_t *a;
    tr__spool_t spool;
    tr__mqtt_t m;
} device_t;

static void device_open(device_t *d, int spool_max)
{
    tr__agent_config_t cfg;
    char name[32];
    memset(d, 0, sizeof(*d));
    snprintf(name, sizeof(name), "dev-%d", W->devices++);
    agent_test_device(W->work, name, NULL, W->pki.ca_cert, d->dir, sizeof(d->dir), d->id);
    agent_test_identity(&W->pki, d->dir, d->id);
    agent_test_config(&cfg);
    cfg.broker_port = W->h.port;
    snprintf(cfg.broker_ca, sizeof(cfg.broker_ca), "%s", W->h.service_ca);
    cfg.window = 10;
    cfg.ack_timeout_ms = 1000;
    cfg.spool_max = spool_max;
    d->a = calloc(1, sizeof(*d->a));
    assert_non_null(d->a);
    assert_int_equal(tr__agent_open(d->a, d->dir, &cfg, NULL), TRELLIS_OK);
    assert_int_equal(tr__spool_open(&d->spool, d->dir, (size_t)spool_max, false, NULL), TRELLIS_OK);
    assert_int_equal(tr__mqtt_open(&d->m, d->a, &d->spool, NULL), TRELLIS_OK);
}

static void device_close(device_t *d)
{
    tr__mqtt_close(&d->m);
    tr__spool_close(&d->spool);
    tr__agent_close(d->a);
    free(d->a);
}

static void take(device_t *d, int n)
{
    for (int i = 0; i < n; i++) {
        tr__reading_t r;
        assert_int_equal(tr__spool_append(&d->spool, trellis_wall_ms(), 21.0 + i / 100.0, &r),
                         TRELLIS_OK);
    }
}

/* Runs the client for ms. */
static void pump(device_t *d, long ms)
{
    for (int64_t end = trellis_mono_ms() + ms; trellis_mono_ms() < end;)
        tr__mqtt_step(&d->m, 20);
}

/* Runs the client until the spool is empty (every reading acknowledged) or ms pass. */
static bool drain(device_t *d, long ms)
{
    for (int64_t end = trellis_mono_ms() + ms; trellis_mono_ms() < end;) {
        tr__mqtt_step(&d->m, 20);
        if (d->spool.count == 0)
            return true;
    }
    return false;
}

/* The device as the store sees it. */
static trellis_ingest_device_t stored(const device_t *d)
{
    trellis_ingest_device_t s;
    memset(&s, 0, sizeof(s));
    W->reader.device(W->reader.ctx, d->id, &s);
    return s;
}

static void test_readings_leave_the_spool_only_when_stored(void **state)
{
    (void)state;
    device_t d;
    device_open(&d, 1000);
    take(&d, 30);
    assert_true(drain(&d, 10000));
    trellis_ingest_device_t s = stored(&d);
    assert_true(s.readings == 30 && s.acked == 30 && s.last_seq == 30);
    assert_true(d.spool.acked == 30);
    assert_int_equal(d.m.resends, 0);
    device_close(&d);
}

static void test_broker_sigkill_loses_nothing(void **state)
{
    (void)state;
    device_t d;
    device_open(&d, 1000);
    take(&d, 50);
    pump(&d, 100);
    assert_int_equal(trellis_mosq_harness_kill(&W->h), TRELLIS_OK);
    take(&d, 20);
    pump(&d, 800);
    assert_false(d.m.connected);
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    take(&d, 10);
    assert_true(drain(&d, 30000));
    trellis_ingest_device_t s = stored(&d);
    assert_true(s.readings == 80 && s.acked == 80);
    device_close(&d);
}

static void test_broker_stopped_for_a_while_loses_nothing(void **state)
{
    (void)state;
    device_t d;
    device_open(&d, 1000);
    take(&d, 10);
    assert_true(drain(&d, 10000));
    assert_int_equal(trellis_mosq_harness_stop(&W->h), TRELLIS_OK);
    for (int i = 0; i < 10; i++) {
        take(&d, 3);
        pump(&d, 100);
    }
    assert_int_equal(d.spool.count, 30);
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    assert_true(drain(&d, 30000));
    trellis_ingest_device_t s = stored(&d);
    assert_true(s.readings == 40 && s.acked == 40);
    device_close(&d);
}

static void test_ingest_restart_is_covered_by_resend(void **state)
{
    (void)state;
    device_t d;
    device_open(&d, 1000);
    take(&d, 5);
    assert_true(drain(&d, 10000));
    ingest_stop();
    /* Published while nobody stores: the broker has no subscriber to give them to. */
    take(&d, 15);
    pump(&d, 500);
    assert_int_equal(d.spool.count, 15);
    ingest_start();
    /* The ack does not move, so after ack-timeout the device resends from the oldest. */
    assert_true(drain(&d, 15000));
    assert_true(d.m.resends >= 1);
    trellis_ingest_device_t s = stored(&d);
    assert_true(s.readings == 20 && s.acked == 20);
    device_close(&d);
}

static void test_full_spool_drops_and_acks_move_on(void **state)
{
    (void)state;
    device_t d;
    device_open(&d, 5);
    take(&d, 3);
    assert_true(drain(&d, 10000));
    assert_int_equal(trellis_mosq_harness_stop(&W->h), TRELLIS_OK);
    take(&d, 12); /* seq 4..15: 4..10 dropped, 11..15 kept */
    assert_int_equal(d.spool.count, 5);
    assert_true(d.spool.dropped_to == 10);
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    assert_true(drain(&d, 30000));
    trellis_ingest_device_t s = stored(&d);
    /* 1..3 and 11..15 are stored; the floor told the ingest not to wait for 4..10. */
    assert_true(s.readings == 8 && s.acked == 15);
    take(&d, 2);
    assert_true(drain(&d, 10000));
    s = stored(&d);
    assert_true(s.readings == 10 && s.acked == 17);
    device_close(&d);
}

static void test_revoked_device_cannot_connect(void **state)
{
    (void)state;
    device_t d;
    char path[600];
    X509 *cert = NULL;
    device_open(&d, 100);
    take(&d, 1);
    assert_true(drain(&d, 10000));
    device_close(&d);
    snprintf(path, sizeof(path), "%s/identity.pem", d.dir);
    assert_int_equal(trellis_x509_load_pem(path, &cert), TRELLIS_OK);
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, &cert, 1),
                     TRELLIS_OK);
    X509_free(cert);
    assert_int_equal(trellis_mosq_harness_reload(&W->h), TRELLIS_OK);

    /* The same device after the revocation: its readings stay in the spool. */
    tr__agent_config_t cfg;
    agent_test_config(&cfg);
    cfg.broker_port = W->h.port;
    snprintf(cfg.broker_ca, sizeof(cfg.broker_ca), "%s", W->h.service_ca);
    d.a = calloc(1, sizeof(*d.a));
    assert_non_null(d.a);
    assert_int_equal(tr__agent_open(d.a, d.dir, &cfg, NULL), TRELLIS_OK);
    assert_int_equal(tr__spool_open(&d.spool, d.dir, 100, false, NULL), TRELLIS_OK);
    assert_int_equal(tr__mqtt_open(&d.m, d.a, &d.spool, NULL), TRELLIS_OK);
    take(&d, 3);
    pump(&d, 2000);
    assert_false(d.m.subscribed);
    assert_int_equal(d.spool.count, 3);
    assert_true(stored(&d).readings == 1);
    device_close(&d);
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, NULL, 0),
                     TRELLIS_OK);
    assert_int_equal(trellis_mosq_harness_reload(&W->h), TRELLIS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readings_leave_the_spool_only_when_stored),
        cmocka_unit_test(test_broker_sigkill_loses_nothing),
        cmocka_unit_test(test_broker_stopped_for_a_while_loses_nothing),
        cmocka_unit_test(test_ingest_restart_is_covered_by_resend),
        cmocka_unit_test(test_full_spool_drops_and_acks_move_on),
        cmocka_unit_test(test_revoked_device_cannot_connect),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
