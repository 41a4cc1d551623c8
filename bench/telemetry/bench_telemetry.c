/*
 * bench_telemetry: the load of issue 6 item 8 (bench/run-telemetry drives it).
 *
 *   bench_telemetry pki DIR N         a throwaway device CA, its (empty) CRL and N device
 *                                     identities DIR/devices/<id>.pem (key + certificate)
 *   bench_telemetry load DIR PORT CA K WINDOW ACKS
 *                                     every device of DIR connects over mutual TLS and publishes
 *                                     readings seq 1..K at QoS 1, at most WINDOW awaiting a
 *                                     PUBACK per device; with ACKS=1 it also keeps at most
 *                                     2 x WINDOW ahead of the end-to-end ack, as the agent does,
 *                                     and waits until every device's ack reaches K. Prints
 *                                     "load messages=M seconds=S rate=R".
 *   bench_telemetry sink PORT CA CERT KEY M
 *                                     a subscriber that stores nothing: joins the same shared
 *                                     subscription as the ingest and acknowledges like it (the
 *                                     highest seq seen per device, QoS 0, every 50 ms) without
 *                                     parsing, checking or storing anything, until M messages
 *                                     arrived. So both runs carry the same traffic and the same
 *                                     flow control; the difference is the ingest's work.
 *
 * All clients of `load` run on one thread around poll(2) (libmosquitto's external-loop API), so
 * 100 devices cost one core at most and the broker and the subscriber get the other.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>

#include <mosquitto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/telemetry.h"
#include "trellis/x509.h"

#define MAX_DEVICES 1000

/* Wall-clock seconds: the only clock two processes (load and sink) share. */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
    fprintf(stderr, "bench_telemetry: %s\n", what);
    return 1;
}

/* ---- pki ---- */

static int write_crl(const char *path, X509 *ca, EVP_PKEY *key)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_new();
    FILE *f = NULL;
    int rc = 1;
    if (crl == NULL || t == NULL || X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1)
        goto out;
    X509_gmtime_adj(t, -60);
    X509_CRL_set1_lastUpdate(crl, t);
    X509_gmtime_adj(t, 7 * 24 * 3600);
    X509_CRL_set1_nextUpdate(crl, t);
    if (X509_CRL_sign(crl, key, EVP_sha256()) <= 0)
        goto out;
    f = fopen(path, "w");
    if (f == NULL || PEM_write_X509_CRL(f, crl) != 1)
        goto out;
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return rc;
}

static int cmd_pki(const char *dir, int n)
{
    char path[1024], id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    const trellis_x509_profile_t ca_profile = {
        .kind = TRELLIS_X509_CA, .common_name = "bench device CA", .days = 30, .path_len = 0};
    if (n < 1 || n > MAX_DEVICES)
        return die("device count out of range");
    snprintf(path, sizeof(path), "%s/devices", dir);
    if (trellis_mkdir_p(path, 0700) != TRELLIS_OK || trellis_p256_generate(&ca_key) != TRELLIS_OK ||
        trellis_x509_issue(&ca_profile, ca_key, NULL, ca_key, &ca, NULL) != TRELLIS_OK)
        return die("cannot make the CA");
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    if (trellis_x509_save_chain_pem(path, &ca, 1) != TRELLIS_OK)
        return die("cannot write the CA");
    snprintf(path, sizeof(path), "%s/crl.pem", dir);
    if (write_crl(path, ca, ca_key) != 0)
        return die("cannot write the CRL");
    for (int i = 0; i < n; i++) {
        uint8_t raw[16];
        size_t len = 0;
        EVP_PKEY *key = NULL;
        X509 *cert = NULL;
        if (trellis_random(raw, sizeof(raw)) != TRELLIS_OK ||
            trellis_hex_encode(raw, sizeof(raw), id, sizeof(id), &len) != TRELLIS_OK)
            return die("random");
        const trellis_x509_profile_t p = {
            .kind = TRELLIS_X509_CLIENT, .common_name = id, .days = 30, .path_len = -1};
        if (trellis_p256_generate(&key) != TRELLIS_OK ||
            trellis_x509_issue(&p, key, ca, ca_key, &cert, NULL) != TRELLIS_OK)
            return die("cannot issue a device certificate");
        snprintf(path, sizeof(path), "%s/devices/%s.pem", dir, id);
        if (trellis_x509_save_bundle_pem(path, key, &cert, 1) != TRELLIS_OK)
            return die("cannot write a device identity");
        X509_free(cert);
        EVP_PKEY_free(key);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* ---- load ---- */

typedef struct {
    struct mosquitto *m;
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    char ack_topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    bool connected;
    bool subscribed;
    int64_t sent;     /* last seq published */
    int64_t inflight; /* published, PUBACK not yet received */
    int64_t pubacked; /* PUBACKs received */
    int64_t acked;    /* end-to-end ack */
    double progress;  /* when the ack last moved */
} bdev_t;

static int connected_count, subscribed_count;

static void on_connect(struct mosquitto *m, void *arg, int rc)
{
    bdev_t *d = arg;
    if (rc == 0 && !d->connected) {
        d->connected = true;
        connected_count++;
        mosquitto_subscribe(m, NULL, d->ack_topic, 1);
    }
}

static void on_subscribe(struct mosquitto *m, void *arg, int mid, int n, const int *g)
{
    bdev_t *d = arg;
    (void)m;
    (void)mid;
    (void)n;
    (void)g;
    if (!d->subscribed) {
        d->subscribed = true;
        subscribed_count++;
    }
}

static void on_publish(struct mosquitto *m, void *arg, int mid)
{
    bdev_t *d = arg;
    (void)m;
    (void)mid;
    d->pubacked++;
    d->inflight--;
}

static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    bdev_t *d = arg;
    int64_t seq = 0;
    (void)m;
    if (trellis_telemetry_ack_parse(msg->payload, (size_t)msg->payloadlen, &seq, NULL) ==
            TRELLIS_OK &&
        seq > d->acked) {
        d->acked = seq;
        d->progress = now_s();
    }
}

/* One pass of the external loop over every client: poll, then read/write/misc. */
static void pump(bdev_t *devs, int n, struct pollfd *pfd, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        pfd[i].fd = mosquitto_socket(devs[i].m);
        pfd[i].events = POLLIN | (mosquitto_want_write(devs[i].m) ? POLLOUT : 0);
        pfd[i].revents = 0;
    }
    poll(pfd, (nfds_t)n, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
            mosquitto_loop_read(devs[i].m, 1);
        if (mosquitto_want_write(devs[i].m))
            mosquitto_loop_write(devs[i].m, 1);
        mosquitto_loop_misc(devs[i].m);
    }
}

static int cmd_load(const char *dir, int port, const char *ca, int64_t k, int window, int acks)
{
    char path[1024];
    bdev_t *devs = calloc(MAX_DEVICES, sizeof(*devs));
    struct pollfd *pfd = calloc(MAX_DEVICES, sizeof(*pfd));
    int n = 0;
    snprintf(path, sizeof(path), "%s/devices", dir);
    DIR *dp = opendir(path);
    struct dirent *e;
    if (devs == NULL || pfd == NULL || dp == NULL)
        return die("cannot read the devices");
    mosquitto_lib_init();
    while ((e = readdir(dp)) != NULL && n < MAX_DEVICES) {
        size_t len = strlen(e->d_name);
        if (len != TRELLIS_TELEMETRY_DEVICE_ID_LEN + 4 || strcmp(e->d_name + len - 4, ".pem") != 0)
            continue;
        bdev_t *d = &devs[n];
        memcpy(d->id, e->d_name, TRELLIS_TELEMETRY_DEVICE_ID_LEN);
        trellis_telemetry_topic(d->id, d->topic);
        trellis_telemetry_ack_topic(d->id, d->ack_topic);
        snprintf(path, sizeof(path), "%s/devices/%s", dir, e->d_name);
        d->m = mosquitto_new(d->id, true, d);
        if (d->m == NULL || mosquitto_tls_set(d->m, ca, NULL, path, path, NULL) != 0)
            return die("client setup");
        mosquitto_int_option(d->m, MOSQ_OPT_TCP_NODELAY, 1);
        mosquitto_max_inflight_messages_set(d->m, (unsigned)window);
        mosquitto_connect_callback_set(d->m, on_connect);
        mosquitto_subscribe_callback_set(d->m, on_subscribe);
        mosquitto_publish_callback_set(d->m, on_publish);
        mosquitto_message_callback_set(d->m, on_message);
        if (mosquitto_connect(d->m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
            return die("connect");
        n++;
    }
    closedir(dp);
    double deadline = now_s() + 30;
    while (subscribed_count < n && now_s() < deadline)
        pump(devs, n, pfd, 10);
    if (subscribed_count < n)
        return die("not every device connected");

    int64_t total = k * n;
    double t0 = now_s();
    double wall0 = wall_s();
    const char *stall_env = getenv("BENCH_STALL_SECONDS");
    double stall_s = stall_env != NULL ? strtod(stall_env, NULL) : 10.0;
    int64_t resends = 0;
    deadline = t0 + 120;
    for (int i = 0; i < n; i++)
        devs[i].progress = t0;
    char payload[TRELLIS_TELEMETRY_MAX];
    for (;;) {
        bool done = true;
        for (int i = 0; i < n; i++) {
            bdev_t *d = &devs[i];
            /* With end-to-end acks the load behaves like the agent, which keeps at most its
             * window (default 100, here 2 x WINDOW) of readings ahead of the ack: that, not the
             * PUBACK, bounds what the broker must queue for the ingest. */
            while (d->sent < k && d->inflight < window &&
                   (!acks || d->sent - d->acked < 2 * (int64_t)window)) {
                trellis_telemetry_reading_t r = {
                    .seq = d->sent + 1, .ts_ms = (int64_t)time(NULL) * 1000, .temp_c = 21.5};
                size_t len = 0;
                trellis_telemetry_encode(&r, payload, sizeof(payload), &len);
                if (mosquitto_publish(d->m, NULL, d->topic, (int)len, payload, 1, false) != 0)
                    break;
                d->sent++;
                d->inflight++;
            }
            if (acks ? d->acked < k : d->pubacked < k)
                done = false;
            /* Like the agent (ack-timeout 10 s): when the end-to-end ack stalls, send again from
             * the oldest reading not acknowledged (a broker can lose a QoS 1 message it PUBACKed,
             * e.g. one queued for a shared subscriber that left); the ingest stores each seq once.
             */
            if (acks && d->acked < k && d->sent > d->acked && now_s() - d->progress > stall_s) {
                fprintf(stderr, "bench_telemetry: resend %s from %" PRId64 " (sent %" PRId64 ")\n",
                        d->id, d->acked + 1, d->sent);
                d->sent = d->acked;
                d->progress = now_s();
                resends++;
            }
        }
        if (done || now_s() > deadline)
            break;
        pump(devs, n, pfd, 5);
    }
    double secs = now_s() - t0;
    int64_t got = 0;
    for (int i = 0; i < n; i++)
        got += acks ? devs[i].acked : (devs[i].pubacked < k ? devs[i].pubacked : k);
    printf("load messages=%" PRId64 " seconds=%.3f rate=%.0f resends=%" PRId64
           " start=%.6f end=%.6f\n",
           got, secs, (double)got / secs, resends, wall0, wall0 + secs);
    for (int i = 0; i < n && got != total; i++) {
        if (acks ? devs[i].acked < k : devs[i].pubacked < k)
            fprintf(stderr,
                    "bench_telemetry: device %s sent %" PRId64 " pubacked %" PRId64
                    " acked %" PRId64 " connected %d\n",
                    devs[i].id, devs[i].sent, devs[i].pubacked, devs[i].acked,
                    (int)devs[i].connected);
    }
    for (int i = 0; i < n; i++) {
        mosquitto_disconnect(devs[i].m);
        mosquitto_loop_write(devs[i].m, 1);
        mosquitto_destroy(devs[i].m);
    }
    free(devs);
    free(pfd);
    return got == total ? 0 : die("not every reading was confirmed in time");
}

/* ---- sink ---- */

/* What the sink knows of one device: the highest seq seen, and whether its ack is due. It
 * stores nothing and checks nothing else: readings of one device arrive in order, so the
 * highest seq seen is what the ingest would acknowledge. */
typedef struct {
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    int64_t seq;
    bool dirty;
} sink_dev_t;

static sink_dev_t sink_devs[MAX_DEVICES];
static int sink_ndevs;
static int64_t sink_count;
static double sink_last_wall;

static void sink_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    char text[TRELLIS_TELEMETRY_MAX + 1];
    (void)m;
    (void)arg;
    sink_count++;
    sink_last_wall = wall_s();
    if (trellis_telemetry_topic_device(msg->topic, id) != TRELLIS_OK || msg->payloadlen < 0 ||
        msg->payloadlen > TRELLIS_TELEMETRY_MAX)
        return;
    memcpy(text, msg->payload, (size_t)msg->payloadlen);
    text[msg->payloadlen] = '\0';
    const char *p = strstr(text, "\"seq\":");
    if (p == NULL)
        return;
    int64_t seq = strtoll(p + 6, NULL, 10);
    int i = 0;
    while (i < sink_ndevs && strcmp(sink_devs[i].id, id) != 0)
        i++;
    if (i == sink_ndevs) {
        if (sink_ndevs == MAX_DEVICES)
            return;
        memcpy(sink_devs[sink_ndevs++].id, id, sizeof(id));
    }
    if (seq > sink_devs[i].seq)
        sink_devs[i].seq = seq;
    sink_devs[i].dirty = true;
}

/* Acks like the ingest's: one per device per interval, QoS 0. */
static void sink_acks(struct mosquitto *m)
{
    for (int i = 0; i < sink_ndevs; i++) {
        char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
        char payload[64];
        size_t len = 0;
        if (!sink_devs[i].dirty)
            continue;
        sink_devs[i].dirty = false;
        trellis_telemetry_ack_topic(sink_devs[i].id, topic);
        trellis_telemetry_ack_encode(sink_devs[i].seq, payload, sizeof(payload), &len);
        mosquitto_publish(m, NULL, topic, (int)len, payload, 0, false);
    }
}

static void sink_connect(struct mosquitto *m, void *arg, int rc)
{
    (void)arg;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, "$share/ingest/devices/+/telemetry", 1);
}

static void sink_suback(struct mosquitto *m, void *arg, int mid, int n, const int *g)
{
    (void)m;
    (void)arg;
    (void)mid;
    (void)n;
    (void)g;
    printf("sink subscribed\n");
    fflush(stdout);
}

static int cmd_sink(int port, const char *ca, const char *cert, const char *key, int64_t want)
{
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new("bench-sink", true, NULL);
    if (m == NULL || mosquitto_tls_set(m, ca, NULL, cert, key, NULL) != 0)
        return die("sink setup");
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(m, sink_connect);
    mosquitto_subscribe_callback_set(m, sink_suback);
    mosquitto_message_callback_set(m, sink_message);
    if (mosquitto_connect(m, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS)
        return die("sink connect");
    double deadline = now_s() + 300;
    double next_acks = now_s() + 0.05;
    double done_at = 0;
    /* Until every reading arrived, and a little longer for the last acks and any resends. */
    while (now_s() < deadline && (done_at == 0 || now_s() < done_at)) {
        if (mosquitto_loop(m, 10, 1) != MOSQ_ERR_SUCCESS)
            break;
        if (now_s() >= next_acks) {
            sink_acks(m);
            next_acks = now_s() + 0.05;
        }
        if (done_at == 0 && sink_count >= want)
            done_at = now_s() + 1.0;
    }
    printf("sink messages=%" PRId64 " last=%.6f\n", sink_count, sink_last_wall);
    /* Leave the shared group for good before the next run starts: a member the broker still
     * believes in would be handed that run's messages. */
    mosquitto_disconnect(m);
    for (int i = 0; i < 20 && mosquitto_loop(m, 50, 1) == MOSQ_ERR_SUCCESS; i++) {
    }
    mosquitto_destroy(m);
    return sink_count >= want ? 0 : die("the sink did not get every message");
}

/* A decimal argument in [min, max], or -1. */
static long long number(const char *text, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "pki") == 0) {
        long long n = number(argv[3], 1, MAX_DEVICES);
        return n < 0 ? die("N must be 1..1000") : cmd_pki(argv[2], (int)n);
    }
    if (argc == 8 && strcmp(argv[1], "load") == 0) {
        long long port = number(argv[3], 1, 65535), k = number(argv[5], 1, 100000000);
        long long window = number(argv[6], 1, 65535), acks = number(argv[7], 0, 1);
        if (port < 0 || k < 0 || window < 0 || acks < 0)
            return die("load DIR PORT CA K WINDOW ACKS");
        return cmd_load(argv[2], (int)port, argv[4], k, (int)window, (int)acks);
    }
    if (argc == 7 && strcmp(argv[1], "sink") == 0) {
        long long port = number(argv[2], 1, 65535), want = number(argv[6], 1, 1000000000);
        if (port < 0 || want < 0)
            return die("sink PORT CA CERT KEY M");
        return cmd_sink((int)port, argv[3], argv[4], argv[5], want);
    }
    return die("usage: pki DIR N | load DIR PORT CA K WINDOW ACKS | sink PORT CA CERT KEY M");
}
