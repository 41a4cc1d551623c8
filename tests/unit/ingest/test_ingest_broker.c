/*
 * The broker configuration and the ingest through a real Mosquitto (design.md §3): end-to-end
 * acks after durable writes, duplicates stored once, quarantine, the per-device ACL, refused
 * identities (no certificate, another CA, revoked, the wrong listener), shared subscriptions
 * splitting the load, and the ingest coming back after the broker is killed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <openssl/x509.h>

#include "ingest_test.h"
#include "mosquitto_harness.h"
#include "test_pki.h"
#include "test_support.h"
#include "trellis/fsutil.h"
#include "trellis/ingest.h"
#include "trellis/log.h"
#include "trellis/x509.h"

#define DEV_A "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
#define DEV_B "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
#define DEV_C "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"

typedef struct {
    trellis_test_pki_t pki;
    trellis_mosq_harness_t h;
    char crl[TRELLIS_TEST_PKI_PATH + 32];
    trellis_test_pki_pair_t dev_a, dev_b, dev_c, stranger;
    char work[256];
} world_t;

static world_t *W;

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a synchronous test client on libmosquitto's threaded loop ---- */

typedef struct {
    struct mosquitto *m;
    pthread_mutex_t lock;
    int connack; /* -1 none yet, else the CONNACK code */
    bool gone;   /* disconnected */
    int pubacks;
    int64_t ack; /* highest end-to-end ack seen */
    int messages;
} tclient_t;

static void c_connect(struct mosquitto *m, void *arg, int rc)
{
    tclient_t *c = arg;
    (void)m;
    pthread_mutex_lock(&c->lock);
    c->connack = rc;
    pthread_mutex_unlock(&c->lock);
}

static void c_disconnect(struct mosquitto *m, void *arg, int rc)
{
    tclient_t *c = arg;
    (void)m;
    (void)rc;
    pthread_mutex_lock(&c->lock);
    c->gone = true;
    pthread_mutex_unlock(&c->lock);
}

static void c_publish(struct mosquitto *m, void *arg, int mid)
{
    tclient_t *c = arg;
    (void)m;
    (void)mid;
    pthread_mutex_lock(&c->lock);
    c->pubacks++;
    pthread_mutex_unlock(&c->lock);
}

static void c_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    tclient_t *c = arg;
    int64_t seq = 0;
    (void)m;
    pthread_mutex_lock(&c->lock);
    c->messages++;
    if (trellis_telemetry_ack_parse(msg->payload, (size_t)msg->payloadlen, &seq, NULL) ==
            TRELLIS_OK &&
        seq > c->ack)
        c->ack = seq;
    pthread_mutex_unlock(&c->lock);
}

/* Connects with cert/key (NULL: no client certificate); true on CONNACK 0 within 4 s. */
static bool tc_connect(tclient_t *c, int port, const char *id, const char *cert, const char *key)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->connack = -1;
    c->m = mosquitto_new(id, true, c);
    assert_non_null(c->m);
    mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
    assert_int_equal(mosquitto_tls_set(c->m, W->h.service_ca, NULL, cert, key, NULL),
                     MOSQ_ERR_SUCCESS);
    mosquitto_connect_callback_set(c->m, c_connect);
    mosquitto_disconnect_callback_set(c->m, c_disconnect);
    mosquitto_publish_callback_set(c->m, c_publish);
    mosquitto_message_callback_set(c->m, c_message);
    mosquitto_reconnect_delay_set(c->m, 60, 60, false);
    if (mosquitto_connect(c->m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS)
        return false;
    assert_int_equal(mosquitto_loop_start(c->m), MOSQ_ERR_SUCCESS);
    for (int64_t end = mono_ms() + 4000; mono_ms() < end;) {
        pthread_mutex_lock(&c->lock);
        int rc = c->connack;
        bool gone = c->gone;
        pthread_mutex_unlock(&c->lock);
        if (rc == 0 && !gone)
            return true;
        if (rc > 0 || gone)
            return false;
        sleep_ms(10);
    }
    return false;
}

static void tc_close(tclient_t *c)
{
    if (c->m == NULL)
        return;
    mosquitto_disconnect(c->m);
    mosquitto_loop_stop(c->m, true);
    mosquitto_destroy(c->m);
    pthread_mutex_destroy(&c->lock);
    c->m = NULL;
}

static void tc_publish_raw(tclient_t *c, const char *topic, const char *payload)
{
    assert_int_equal(mosquitto_publish(c->m, NULL, topic, (int)strlen(payload), payload, 1, false),
                     MOSQ_ERR_SUCCESS);
}

static void tc_publish(tclient_t *c, const char *dev, int64_t seq, double temp)
{
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    char payload[TRELLIS_TELEMETRY_MAX];
    size_t len = 0;
    trellis_telemetry_reading_t r = {
        .seq = seq, .ts_ms = (int64_t)time(NULL) * 1000, .temp_c = temp, .floor = 0};
    assert_int_equal(trellis_telemetry_topic(dev, topic), TRELLIS_OK);
    assert_int_equal(trellis_telemetry_encode(&r, payload, sizeof(payload), &len), TRELLIS_OK);
    tc_publish_raw(c, topic, payload);
}

static void tc_subscribe_acks(tclient_t *c, const char *dev)
{
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    assert_int_equal(trellis_telemetry_ack_topic(dev, topic), TRELLIS_OK);
    assert_int_equal(mosquitto_subscribe(c->m, NULL, topic, 1), MOSQ_ERR_SUCCESS);
    sleep_ms(200);
}

/* Waits up to ms for the client's end-to-end ack to reach want; returns the last ack seen. */
static int64_t tc_wait_ack(tclient_t *c, int64_t want, long ms)
{
    int64_t ack = 0;
    for (int64_t end = mono_ms() + ms; mono_ms() < end;) {
        pthread_mutex_lock(&c->lock);
        ack = c->ack;
        pthread_mutex_unlock(&c->lock);
        if (ack >= want)
            break;
        sleep_ms(10);
    }
    return ack;
}

/* ---- an ingest in a thread ---- */

typedef struct {
    trellis_ingest_store_t store;  /* the ingest's (its thread only) */
    trellis_ingest_store_t reader; /* the test's own connection to the same file */
    trellis_ingest_t *ing;
    pthread_t thread;
    trellis_err_t result;
    char db[320];
} ingest_run_t;

static void *ingest_main(void *arg)
{
    ingest_run_t *r = arg;
    r->result = trellis_ingest_run(r->ing);
    return NULL;
}

static void ingest_start(ingest_run_t *r, const char *db_name, const char *client_id)
{
    trellis_ingest_config_t cfg;
    trellis_reason_t reason;
    memset(r, 0, sizeof(*r));
    assert_int_equal(trellis_conf_defaults(trellis_ingest_conf_spec(), &cfg, &reason), TRELLIS_OK);
    snprintf(r->db, sizeof(r->db), "%s/%s", W->work, db_name);
    cfg.broker_port = W->h.service_port;
    snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", W->h.service_ca);
    snprintf(cfg.cert_file, sizeof(cfg.cert_file), "%s", W->h.ingest_cert);
    snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", W->h.ingest_key);
    snprintf(cfg.client_id, sizeof(cfg.client_id), "%s", client_id);
    snprintf(cfg.db_path, sizeof(cfg.db_path), "%s", r->db);
    cfg.stats_interval_ms = 0;
    assert_int_equal(trellis_ingest_sqlite_open(r->db, false, &r->store, &reason), TRELLIS_OK);
    assert_int_equal(trellis_ingest_sqlite_open(r->db, true, &r->reader, &reason), TRELLIS_OK);
    assert_int_equal(trellis_ingest_new(&cfg, &r->store, &r->ing, &reason), TRELLIS_OK);
    assert_int_equal(pthread_create(&r->thread, NULL, ingest_main, r), 0);
    for (int64_t end = mono_ms() + 5000; mono_ms() < end && !trellis_ingest_subscribed(r->ing);)
        sleep_ms(10);
    assert_true(trellis_ingest_subscribed(r->ing));
}

static void ingest_finish(ingest_run_t *r)
{
    trellis_ingest_stop(r->ing);
    pthread_join(r->thread, NULL);
    assert_int_equal(r->result, TRELLIS_OK);
    trellis_ingest_free(r->ing);
    r->store.close(r->store.ctx);
    r->reader.close(r->reader.ctx);
}

static int64_t stored(trellis_ingest_store_t *store, const char *dev)
{
    trellis_ingest_device_t d;
    if (store->device(store->ctx, dev, &d) != TRELLIS_OK)
        return 0;
    return d.readings;
}

/* ---- the world: a PKI, device certificates, a CRL and a running broker ---- */

static int world_setup(void **state)
{
    (void)state;
    W = calloc(1, sizeof(*W));
    assert_non_null(W);
    assert_int_equal(trellis_test_pki_create(&W->pki), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&W->pki, DEV_A, false, &W->dev_a), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&W->pki, DEV_B, false, &W->dev_b), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&W->pki, DEV_C, false, &W->dev_c), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&W->pki, DEV_A, true, &W->stranger), TRELLIS_OK);
    snprintf(W->crl, sizeof(W->crl), "%s/device-ca.crl", W->pki.dir);
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, NULL, 0),
                     TRELLIS_OK);
    trellis_test_tmpdir(W->work, sizeof(W->work), "ingest-test");
    mosquitto_lib_init();
    if (getenv("TRELLIS_TEST_DEBUG") != NULL)
        trellis_log_set_level(TRELLIS_LOG_DEBUG);
    assert_int_equal(trellis_mosq_harness_init(&W->h, W->pki.ca_cert, W->crl), TRELLIS_OK);
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    return 0;
}

static int world_teardown(void **state)
{
    (void)state;
    trellis_mosq_harness_destroy(&W->h);
    trellis_test_rmtree(W->work);
    trellis_test_pki_destroy(&W->pki);
    mosquitto_lib_cleanup();
    free(W);
    return 0;
}

/* ---- tests ---- */

static bool file_has(const char *path, const char *text)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(trellis_file_read_all(path, 1 << 20, &buf, &len), TRELLIS_OK);
    bool found = strstr((const char *)buf, text) != NULL;
    trellis_file_buffer_free(buf, len);
    return found;
}

static void test_config_says_what_design_requires(void **state)
{
    (void)state;
    char acl[600], listener[64], key[600];
    snprintf(acl, sizeof(acl), "%s/acl", W->h.dir);
    static const char *const lines[] = {
        "\nper_listener_settings false\n",
        "\nallow_anonymous false\n",
        "\nrequire_certificate true\n",
        "\nuse_identity_as_username true\n",
        "\nset_tcp_nodelay true\n",
        "\npersistence false\n",
        "\nmax_queued_messages 100000\n",
        "\nmax_inflight_messages 1000\n",
        "\nmax_packet_size 4096\n",
        "\ncrlfile /",
        "\nacl_file /",
        "\ntls_version tlsv1.2\n",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (!file_has(W->h.conf, lines[i]))
            fail_msg("mosquitto.conf lacks '%s'", lines[i] + 1);
    }
    snprintf(listener, sizeof(listener), "\nlistener %d 127.0.0.1\n", W->h.port);
    assert_true(file_has(W->h.conf, listener));
    snprintf(listener, sizeof(listener), "\nlistener %d 127.0.0.1\n", W->h.service_port);
    assert_true(file_has(W->h.conf, listener));
    assert_true(file_has(acl, "\npattern write devices/%u/telemetry\n"));
    assert_true(file_has(acl, "\npattern read devices/%u/acks\n"));
    assert_true(file_has(acl, "\nuser ingest\ntopic read devices/+/telemetry\n"));
    assert_true(file_has(acl, "\ntopic write devices/+/acks\n"));

    struct stat st;
    snprintf(key, sizeof(key), "%s/%s", W->h.dir, TRELLIS_BROKER_SERVICE_CA_KEY);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(W->h.ingest_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* Running it again keeps the service CA and the identities made before. */
    X509 *before = NULL, *after = NULL;
    uint8_t fp1[32], fp2[32];
    assert_int_equal(trellis_x509_load_pem(W->h.ingest_cert, &before), TRELLIS_OK);
    trellis_broker_conf_t conf = {.out_dir = W->h.dir,
                                  .device_ca_file = W->pki.ca_cert,
                                  .crl_file = W->crl,
                                  .port = W->h.port,
                                  .service_port = W->h.service_port};
    assert_int_equal(trellis_broker_config_write(&conf, NULL), TRELLIS_OK);
    assert_int_equal(trellis_x509_load_pem(W->h.ingest_cert, &after), TRELLIS_OK);
    assert_int_equal(trellis_x509_fingerprint(before, fp1), TRELLIS_OK);
    assert_int_equal(trellis_x509_fingerprint(after, fp2), TRELLIS_OK);
    assert_memory_equal(fp1, fp2, 32);
    X509_free(before);
    X509_free(after);
}

static void test_config_refuses_bad_inputs(void **state)
{
    (void)state;
    char out[400], der[400], other_crl[400];
    trellis_reason_t reason;
    snprintf(out, sizeof(out), "%s/bad-broker", W->work);
    snprintf(der, sizeof(der), "%s/crl.der", W->work);
    snprintf(other_crl, sizeof(other_crl), "%s/other.crl", W->work);
    const uint8_t der_bytes[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(trellis_file_write_atomic(der, der_bytes, sizeof(der_bytes), 0644),
                     TRELLIS_OK);
    assert_int_equal(trellis_mosq_write_crl(other_crl, W->pki.other, W->pki.other_pkey, NULL, 0),
                     TRELLIS_OK);

    struct {
        trellis_broker_conf_t conf;
        trellis_err_t want;
        const char *says;
    } cases[] = {
        {{.out_dir = out, .device_ca_file = W->pki.ca_cert, .crl_file = der, .port = 1883},
         TRELLIS_ERR_PARSE,
         "PEM"},
        {{.out_dir = out, .device_ca_file = W->pki.ca_cert, .crl_file = other_crl, .port = 1883},
         TRELLIS_ERR_BAD_SIGNATURE,
         "not signed"},
        {{.out_dir = out, .device_ca_file = W->dev_a.cert, .crl_file = W->crl, .port = 1883},
         TRELLIS_ERR_PARSE,
         "not a CA"},
        {{.out_dir = out, .device_ca_file = W->pki.ca_cert, .crl_file = NULL, .port = 1883},
         TRELLIS_ERR_INVALID_ARG,
         "--crl"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = "/nonexistent/x.crl",
          .port = 1883},
         TRELLIS_ERR_NOT_FOUND,
         "--crl"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = W->crl,
          .port = 1883,
          .cert_file = W->pki.server_cert},
         TRELLIS_ERR_INVALID_ARG,
         "--cert and --key"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = W->crl,
          .port = 1883,
          .cert_file = W->pki.server_cert,
          .key_file = W->dev_a.key},
         TRELLIS_ERR_BAD_KEY,
         "does not match"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = W->crl,
          .port = 1883,
          .ingest_name = DEV_A},
         TRELLIS_ERR_INVALID_ARG,
         "device id"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = W->crl,
          .port = 1883,
          .ingest_name = "in gest"},
         TRELLIS_ERR_INVALID_ARG,
         "ingest-name"},
        {{.out_dir = out,
          .device_ca_file = W->pki.ca_cert,
          .crl_file = W->crl,
          .port = 1883,
          .service_port = 1883},
         TRELLIS_ERR_INVALID_ARG,
         "service-port"},
        {{.out_dir = out, .device_ca_file = W->pki.ca_cert, .crl_file = W->crl, .port = 0},
         TRELLIS_ERR_INVALID_ARG,
         "--port"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        trellis_err_t err = trellis_broker_config_write(&cases[i].conf, &reason);
        if (err != cases[i].want || strstr(reason.text, cases[i].says) == NULL)
            fail_msg("case %zu: %s (%s), want %s mentioning '%s'", i, trellis_err_name(err),
                     reason.text, trellis_err_name(cases[i].want), cases[i].says);
    }
    /* Nothing was written for a refused configuration. */
    char conf_path[500];
    snprintf(conf_path, sizeof(conf_path), "%s/mosquitto.conf", out);
    assert_int_not_equal(access(conf_path, F_OK), 0);

    /* A server certificate given with its key is used on the device listener. */
    trellis_broker_conf_t good = {.out_dir = out,
                                  .device_ca_file = W->pki.ca_cert,
                                  .crl_file = W->crl,
                                  .port = 1883,
                                  .cert_file = W->pki.server_cert,
                                  .key_file = W->pki.server_key};
    assert_int_equal(trellis_broker_config_write(&good, &reason), TRELLIS_OK);
    char certline[700];
    snprintf(certline, sizeof(certline), "\ncertfile %s\n", W->pki.server_cert);
    assert_true(file_has(conf_path, certline));
}

static void test_end_to_end_ack_after_store(void **state)
{
    (void)state;
    ingest_run_t r;
    tclient_t dev;
    ingest_start(&r, "e2e.db", "ingest-e2e");
    assert_true(tc_connect(&dev, W->h.port, DEV_A, W->dev_a.cert, W->dev_a.key));
    tc_subscribe_acks(&dev, DEV_A);
    for (int i = 1; i <= 20; i++)
        tc_publish(&dev, DEV_A, i, 20.0 + i / 10.0);
    assert_true(tc_wait_ack(&dev, 20, 5000) == 20);
    /* The ack came after the readings were durable. */
    assert_true(stored(&r.reader, DEV_A) == 20);

    /* Redeliveries and a resent spool: stored once, acknowledged again. */
    pthread_mutex_lock(&dev.lock);
    int before = dev.messages;
    pthread_mutex_unlock(&dev.lock);
    for (int i = 5; i <= 10; i++)
        tc_publish(&dev, DEV_A, i, 99.0);
    for (int64_t end = mono_ms() + 3000; mono_ms() < end;) {
        pthread_mutex_lock(&dev.lock);
        int now = dev.messages;
        pthread_mutex_unlock(&dev.lock);
        if (now > before)
            break;
        sleep_ms(10);
    }
    assert_true(stored(&r.reader, DEV_A) == 20);
    trellis_ingest_row_t rows[32];
    assert_int_equal(ingest_test_query(&r.reader, DEV_A, 0, rows, 32), 20);
    assert_true(rows[6].seq == 7 && rows[6].temp_c < 99.0);

    /* A reading out of range is quarantined under its seq and still acknowledged; a payload
     * with no seq is dropped and counted. */
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    trellis_telemetry_topic(DEV_A, topic);
    tc_publish_raw(&dev, topic, "{\"seq\":21,\"ts\":1764072000000,\"temp_c\":900}");
    tc_publish_raw(&dev, topic, "not json at all");
    assert_true(tc_wait_ack(&dev, 21, 5000) == 21);
    sleep_ms(200);
    trellis_ingest_stats_t st;
    trellis_ingest_get_stats(r.ing, &st);
    assert_int_equal(st.stored, 20);
    assert_int_equal(st.duplicates, 6);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal(st.rejected_payload, 1);
    assert_true(st.acks >= 2);
    tc_close(&dev);
    ingest_finish(&r);
}

static void test_device_cannot_use_another_devices_topics(void **state)
{
    (void)state;
    ingest_run_t r;
    tclient_t a, b;
    ingest_start(&r, "acl.db", "ingest-acl");
    assert_true(tc_connect(&a, W->h.port, DEV_A, W->dev_a.cert, W->dev_a.key));
    assert_true(tc_connect(&b, W->h.port, DEV_B, W->dev_b.cert, W->dev_b.key));
    /* A eavesdrops on B's acks and forges a reading on B's topic. */
    tc_subscribe_acks(&a, DEV_B);
    tc_subscribe_acks(&b, DEV_B);
    tc_publish(&a, DEV_B, 1, 20.0);
    sleep_ms(500);
    assert_true(stored(&r.reader, DEV_B) == 0);
    /* B's own reading goes through, and only B hears the ack. */
    tc_publish(&b, DEV_B, 1, 21.0);
    assert_true(tc_wait_ack(&b, 1, 5000) == 1);
    sleep_ms(200);
    pthread_mutex_lock(&a.lock);
    assert_int_equal(a.messages, 0);
    pthread_mutex_unlock(&a.lock);
    trellis_ingest_row_t row;
    assert_int_equal(ingest_test_query(&r.reader, DEV_B, 0, &row, 1), 1);
    assert_true(row.temp_c == 21.0);
    tc_close(&a);
    tc_close(&b);
    ingest_finish(&r);
}

static void test_refused_identities(void **state)
{
    (void)state;
    tclient_t c;
    /* No client certificate. */
    assert_false(tc_connect(&c, W->h.port, DEV_A, NULL, NULL));
    tc_close(&c);
    /* A certificate with the right name from another CA. */
    assert_false(tc_connect(&c, W->h.port, DEV_A, W->stranger.cert, W->stranger.key));
    tc_close(&c);
    /* The ingest identity on the device listener, and a device on the service listener. */
    assert_false(tc_connect(&c, W->h.port, "x", W->h.ingest_cert, W->h.ingest_key));
    tc_close(&c);
    assert_false(tc_connect(&c, W->h.service_port, DEV_A, W->dev_a.cert, W->dev_a.key));
    tc_close(&c);
    /* The real thing still works. */
    assert_true(tc_connect(&c, W->h.port, DEV_A, W->dev_a.cert, W->dev_a.key));
    tc_close(&c);
}

static void test_revoked_device_is_refused_after_reload(void **state)
{
    (void)state;
    tclient_t c;
    X509 *cert = NULL;
    assert_true(tc_connect(&c, W->h.port, DEV_C, W->dev_c.cert, W->dev_c.key));
    tc_close(&c);
    assert_int_equal(trellis_x509_load_pem(W->dev_c.cert, &cert), TRELLIS_OK);
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, &cert, 1),
                     TRELLIS_OK);
    X509_free(cert);
    /* Mosquitto reads crlfile at start and on SIGHUP only. */
    assert_true(tc_connect(&c, W->h.port, DEV_C, W->dev_c.cert, W->dev_c.key));
    tc_close(&c);
    assert_int_equal(trellis_mosq_harness_reload(&W->h), TRELLIS_OK);
    assert_false(tc_connect(&c, W->h.port, DEV_C, W->dev_c.cert, W->dev_c.key));
    tc_close(&c);
    assert_true(tc_connect(&c, W->h.port, DEV_B, W->dev_b.cert, W->dev_b.key));
    tc_close(&c);
    /* Back to an empty CRL for the tests after this one. */
    assert_int_equal(trellis_mosq_write_crl(W->crl, W->pki.ca, W->pki.ca_pkey, NULL, 0),
                     TRELLIS_OK);
    assert_int_equal(trellis_mosq_harness_reload(&W->h), TRELLIS_OK);
}

static void test_shared_subscription_splits_the_load(void **state)
{
    (void)state;
    ingest_run_t r1, r2;
    tclient_t a, b;
    ingest_start(&r1, "shared.db", "ingest-w1");
    ingest_start(&r2, "shared.db", "ingest-w2");
    assert_true(tc_connect(&a, W->h.port, DEV_A, W->dev_a.cert, W->dev_a.key));
    assert_true(tc_connect(&b, W->h.port, DEV_B, W->dev_b.cert, W->dev_b.key));
    tc_subscribe_acks(&a, DEV_A);
    tc_subscribe_acks(&b, DEV_B);
    for (int i = 1; i <= 100; i++) {
        tc_publish(&a, DEV_A, i, 20.0);
        tc_publish(&b, DEV_B, i, 21.0);
    }
    assert_true(tc_wait_ack(&a, 100, 10000) == 100);
    assert_true(tc_wait_ack(&b, 100, 10000) == 100);
    trellis_ingest_stats_t s1, s2;
    trellis_ingest_get_stats(r1.ing, &s1);
    trellis_ingest_get_stats(r2.ing, &s2);
    /* Each worker took a share; together they stored each reading exactly once. */
    assert_true(s1.received > 0 && s2.received > 0);
    assert_int_equal(s1.received + s2.received, 200);
    assert_int_equal(s1.stored + s2.stored, 200);
    assert_true(stored(&r1.reader, DEV_A) == 100 && stored(&r1.reader, DEV_B) == 100);
    tc_close(&a);
    tc_close(&b);
    ingest_finish(&r1);
    ingest_finish(&r2);
}

static void test_ingest_survives_broker_kill(void **state)
{
    (void)state;
    ingest_run_t r;
    tclient_t a;
    ingest_start(&r, "kill.db", "ingest-kill");
    assert_int_equal(trellis_mosq_harness_kill(&W->h), TRELLIS_OK);
    sleep_ms(300);
    assert_false(trellis_ingest_subscribed(r.ing));
    assert_int_equal(trellis_mosq_harness_start(&W->h), TRELLIS_OK);
    /* The ingest reconnects by itself and subscribes again (the broker kept no session). */
    for (int64_t end = mono_ms() + 15000; mono_ms() < end && !trellis_ingest_subscribed(r.ing);)
        sleep_ms(20);
    assert_true(trellis_ingest_subscribed(r.ing));
    assert_true(tc_connect(&a, W->h.port, DEV_A, W->dev_a.cert, W->dev_a.key));
    tc_subscribe_acks(&a, DEV_A);
    tc_publish(&a, DEV_A, 1, 20.0);
    assert_true(tc_wait_ack(&a, 1, 5000) == 1);
    tc_close(&a);
    ingest_finish(&r);
}

static void test_ingest_refuses_bad_config(void **state)
{
    (void)state;
    trellis_ingest_config_t cfg;
    trellis_ingest_store_t store;
    trellis_ingest_t *ing = NULL;
    trellis_reason_t reason;
    char db[320];
    snprintf(db, sizeof(db), "%s/cfg.db", W->work);
    assert_int_equal(trellis_ingest_sqlite_open(db, false, &store, NULL), TRELLIS_OK);
    assert_int_equal(trellis_conf_defaults(trellis_ingest_conf_spec(), &cfg, NULL), TRELLIS_OK);
    assert_int_equal(trellis_ingest_new(&cfg, &store, &ing, &reason), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(reason.text, "ca, cert and key"));
    snprintf(cfg.ca_file, sizeof(cfg.ca_file), "%s", W->h.service_ca);
    snprintf(cfg.cert_file, sizeof(cfg.cert_file), "%s", W->h.ingest_cert);
    snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", W->h.ingest_key);
    snprintf(cfg.group, sizeof(cfg.group), "a/b");
    assert_int_equal(trellis_ingest_new(&cfg, &store, &ing, &reason), TRELLIS_ERR_CONFIG);
    snprintf(cfg.group, sizeof(cfg.group), "ingest");
    snprintf(cfg.key_file, sizeof(cfg.key_file), "%s/absent.key", W->work);
    assert_int_equal(trellis_ingest_new(&cfg, &store, &ing, &reason), TRELLIS_ERR_TLS);
    assert_null(ing);
    trellis_ingest_store_t broken = store;
    broken.write_batch = NULL;
    assert_int_equal(trellis_ingest_new(&cfg, &broken, &ing, &reason), TRELLIS_ERR_INVALID_ARG);
    store.close(store.ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_says_what_design_requires),
        cmocka_unit_test(test_config_refuses_bad_inputs),
        cmocka_unit_test(test_end_to_end_ack_after_store),
        cmocka_unit_test(test_device_cannot_use_another_devices_topics),
        cmocka_unit_test(test_refused_identities),
        cmocka_unit_test(test_revoked_device_is_refused_after_reload),
        cmocka_unit_test(test_shared_subscription_splits_the_load),
        cmocka_unit_test(test_ingest_survives_broker_kill),
        cmocka_unit_test(test_ingest_refuses_bad_config),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
