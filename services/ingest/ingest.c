/*
 * The ingest service: libmosquitto's network thread checks each message and queues it; the
 * thread in trellis_ingest_run collects a batch, makes it durable in one transaction, and only
 * then publishes the acknowledgements (design.md §3: the broker's PUBACK is not durability).
 */
#include <errno.h>
#include <stdint.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "ingest_internal.h"
#include "trellis/clock.h"
#include "trellis/ingest.h"
#include "trellis/log.h"

/* How often a waiting thread looks at the stop flag; trellis_ingest_stop may run in a signal
 * handler, where it can only set the flag. */
#define POLL_MS 50
/* Slots of the pending-ack table (a power of two); it is flushed at half full. */
#define ACK_TABLE_SLOTS 16384

struct trellis_ingest {
    trellis_ingest_config_t cfg;
    trellis_ingest_store_t *store;
    struct mosquitto *mosq;
    char sub_topic[TRELLIS_INGEST_NAME_MAX + 32];

    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    trellis_ingest_record_t *queue; /* ring of queue_cap records */
    size_t queue_cap;
    size_t head;
    size_t count;
    uint64_t pending_rejected_topic; /* dropped since the last batch, persisted with it */
    uint64_t pending_rejected_payload;
    trellis_ingest_stats_t stats;

    trellis_ingest_record_t *batch; /* the writer's copy, batch_max records */
    trellis_ingest_ack_t *acks;

    /* Acks waiting to be published, one per device (open addressing on the device id), so a
     * device that sends many readings per ack interval gets one ack, not one per batch. */
    trellis_ingest_ack_t *ack_table;
    uint8_t *ack_used;
    size_t ack_count;
    int64_t next_ack_flush;

    volatile sig_atomic_t stop;
    volatile sig_atomic_t net_stop;
    atomic_bool subscribed;
};

/* An absolute CLOCK_MONOTONIC deadline ms from now (the conds are made on that clock). */
static struct timespec deadline_in(long long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

trellis_err_t trellis_ingest_classify(const char *topic, const void *payload, size_t len,
                                      int64_t recv_ms, long long max_future_ms,
                                      trellis_ingest_record_t *rec, bool *drop_topic)
{
    trellis_reason_t reason;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (rec == NULL || drop_topic == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(rec, 0, sizeof(*rec));
    *drop_topic = false;
    rec->recv_ms = recv_ms;
    /* The broker's ACL lets a device write only devices/<its CN>/telemetry, so the topic
     * segment is the authenticated device id: the payload need not (and does not) repeat it. */
    if (trellis_telemetry_topic_device(topic, rec->device_id) != TRELLIS_OK) {
        *drop_topic = true;
        err = TRELLIS_ERR_NOT_FOUND;
        goto out;
    }
    err = trellis_telemetry_parse(payload, len, &rec->reading, &reason);
    if (err == TRELLIS_OK && max_future_ms >= 0 && rec->reading.ts_ms > recv_ms + max_future_ms) {
        err = trellis_reason_set(&reason, TRELLIS_ERR_PARSE,
                                 "ts is %" PRId64 " ms ahead of the receive time",
                                 rec->reading.ts_ms - recv_ms);
        memset(&rec->reading, 0, sizeof(rec->reading));
    }
    if (err == TRELLIS_OK)
        goto out;
    /* Refused: keep it under its seq if it has one, so the device's acknowledgements move on. */
    int64_t seq = 0;
    if (trellis_telemetry_salvage_seq(payload, len, &seq) != TRELLIS_OK) {
        err = TRELLIS_ERR_NOT_FOUND;
        goto out;
    }
    rec->rejected = 1;
    rec->reading.seq = seq;
    _Static_assert(sizeof(rec->reason) == sizeof(reason.text), "reason sizes");
    memcpy(rec->reason, reason.text, sizeof(rec->reason));
    memcpy(rec->payload, payload, len);
    rec->payload_len = len;
    err = TRELLIS_ERR_PARSE;
out:
    if (err == TRELLIS_ERR_NOT_FOUND) {
        char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
        memcpy(id, rec->device_id, sizeof(id));
        memset(rec, 0, sizeof(*rec));
        memcpy(rec->device_id, id, sizeof(id));
        rec->recv_ms = recv_ms;
    }
    return err;
}

static void on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    trellis_ingest_t *ing = arg;
    if (rc != 0) {
        trellis_log(TRELLIS_LOG_WARN, "ingest.connect_refused",
                    TRELLIS_KV_STR("reason", mosquitto_connack_string(rc)));
        return;
    }
    trellis_log(TRELLIS_LOG_INFO, "ingest.connected",
                TRELLIS_KV_STR("broker", ing->cfg.broker_host),
                TRELLIS_KV_INT("port", ing->cfg.broker_port));
    /* Subscribe on every connect: a clean session (or a broker restart without persistence)
     * forgets subscriptions. */
    int s = mosquitto_subscribe(mosq, NULL, ing->sub_topic, 1);
    if (s != MOSQ_ERR_SUCCESS)
        trellis_log(TRELLIS_LOG_ERROR, "ingest.subscribe_failed",
                    TRELLIS_KV_STR("reason", mosquitto_strerror(s)));
}

static void on_subscribe(struct mosquitto *mosq, void *arg, int mid, int qos_count,
                         const int *granted)
{
    trellis_ingest_t *ing = arg;
    (void)mosq;
    (void)mid;
    if (qos_count < 1 || granted[0] > 2) {
        trellis_log(TRELLIS_LOG_ERROR, "ingest.subscribe_refused",
                    TRELLIS_KV_STR("topic", ing->sub_topic));
        return;
    }
    atomic_store(&ing->subscribed, true);
    trellis_log(TRELLIS_LOG_INFO, "ingest.subscribed", TRELLIS_KV_STR("topic", ing->sub_topic),
                TRELLIS_KV_INT("qos", granted[0]));
}

static void on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    trellis_ingest_t *ing = arg;
    (void)mosq;
    atomic_store(&ing->subscribed, false);
    if (rc != 0)
        trellis_log(TRELLIS_LOG_WARN, "ingest.disconnected",
                    TRELLIS_KV_STR("reason", mosquitto_strerror(rc)));
}

static void on_log(struct mosquitto *mosq, void *arg, int level, const char *text)
{
    (void)mosq;
    (void)arg;
    trellis_log(level == MOSQ_LOG_ERR ? TRELLIS_LOG_WARN : TRELLIS_LOG_DEBUG, "ingest.mqtt",
                TRELLIS_KV_STR("text", text));
}

static void on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg)
{
    trellis_ingest_t *ing = arg;
    trellis_ingest_record_t rec;
    bool drop_topic = false;
    (void)mosq;

    trellis_err_t err = trellis_ingest_classify(
        msg->topic, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
        trellis_wall_ms(), ing->cfg.max_future_ms, &rec, &drop_topic);
    pthread_mutex_lock(&ing->lock);
    ing->stats.received++;
    if (err == TRELLIS_ERR_NOT_FOUND) {
        if (drop_topic) {
            ing->stats.rejected_topic++;
            ing->pending_rejected_topic++;
        } else {
            ing->stats.rejected_payload++;
            ing->pending_rejected_payload++;
        }
        pthread_mutex_unlock(&ing->lock);
        trellis_log(TRELLIS_LOG_WARN, "ingest.reject",
                    TRELLIS_KV_STR("why", drop_topic ? "topic" : "payload"),
                    TRELLIS_KV_STR("device", rec.device_id));
        return;
    }
    /* Back-pressure: block the network thread while the writer is behind. The broker queues
     * for us meanwhile (max_queued_messages). */
    while (ing->count == ing->queue_cap && !ing->stop) {
        struct timespec until = deadline_in(POLL_MS);
        pthread_cond_timedwait(&ing->not_full, &ing->lock, &until);
    }
    if (ing->count == ing->queue_cap) {
        /* Stopping with a full queue: this copy is neither stored nor acknowledged, so the
         * device sends it again. */
        pthread_mutex_unlock(&ing->lock);
        return;
    }
    ing->queue[(ing->head + ing->count) % ing->queue_cap] = rec;
    ing->count++;
    /* The writer waits either for a first record or for a full batch: waking it for every
     * message in between would cost a context switch per reading on a busy machine. */
    if (ing->count == 1 || ing->count == (size_t)ing->cfg.batch_max)
        pthread_cond_signal(&ing->not_empty);
    pthread_mutex_unlock(&ing->lock);
    if (err == TRELLIS_ERR_PARSE)
        trellis_log(TRELLIS_LOG_WARN, "ingest.quarantine", TRELLIS_KV_STR("device", rec.device_id),
                    TRELLIS_KV_INT("seq", rec.reading.seq), TRELLIS_KV_STR("why", rec.reason));
}

/* Takes the next batch out of the queue: waits for a first record, then up to batch_wait for
 * more, at most batch_max. Returns the number taken; 0 when stopping with an empty queue. */
static size_t take_batch(trellis_ingest_t *ing, long long max_wait_ms, uint64_t *rejected_topic,
                         uint64_t *rejected_payload)
{
    size_t n = 0;
    int64_t give_up = max_wait_ms >= 0 ? trellis_mono_ms() + max_wait_ms : INT64_MAX;
    pthread_mutex_lock(&ing->lock);
    while (ing->count == 0 && !ing->stop && ing->pending_rejected_topic == 0 &&
           ing->pending_rejected_payload == 0 && trellis_mono_ms() < give_up) {
        long long left = give_up - trellis_mono_ms();
        struct timespec until = deadline_in(left < POLL_MS ? (left > 0 ? left : 0) : POLL_MS);
        pthread_cond_timedwait(&ing->not_empty, &ing->lock, &until);
    }
    if (ing->count > 0 && ing->cfg.batch_wait_ms > 0) {
        /* Group commit: one fsync for everything that arrives within batch_wait. */
        struct timespec until = deadline_in(ing->cfg.batch_wait_ms);
        while (ing->count < (size_t)ing->cfg.batch_max && !ing->stop) {
            if (pthread_cond_timedwait(&ing->not_empty, &ing->lock, &until) == ETIMEDOUT)
                break;
        }
    }
    while (n < (size_t)ing->cfg.batch_max && ing->count > 0) {
        ing->batch[n++] = ing->queue[ing->head];
        ing->head = (ing->head + 1) % ing->queue_cap;
        ing->count--;
    }
    *rejected_topic = ing->pending_rejected_topic;
    *rejected_payload = ing->pending_rejected_payload;
    ing->pending_rejected_topic = 0;
    ing->pending_rejected_payload = 0;
    pthread_cond_broadcast(&ing->not_full);
    pthread_mutex_unlock(&ing->lock);
    return n;
}

/* Publishes every pending ack and empties the table. */
static void flush_acks(trellis_ingest_t *ing)
{
    uint64_t sent = 0;
    for (size_t i = 0; i < ACK_TABLE_SLOTS && ing->ack_count > 0; i++) {
        if (!ing->ack_used[i])
            continue;
        const trellis_ingest_ack_t *a = &ing->ack_table[i];
        char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
        char payload[64];
        size_t len = 0;
        ing->ack_used[i] = 0;
        ing->ack_count--;
        if (trellis_telemetry_ack_topic(a->device_id, topic) != TRELLIS_OK ||
            trellis_telemetry_ack_encode(a->acked, payload, sizeof(payload), &len) != TRELLIS_OK)
            continue;
        /* QoS 0: an ack is cumulative, so the next one supersedes a lost one, and a device
         * whose ack does not move resends, which brings a fresh ack. */
        int rc = mosquitto_publish(ing->mosq, NULL, topic, (int)len, payload, 0, false);
        if (rc == MOSQ_ERR_SUCCESS)
            sent++;
        trellis_log(TRELLIS_LOG_DEBUG, "ingest.ack", TRELLIS_KV_STR("device", a->device_id),
                    TRELLIS_KV_INT("seq", a->acked), TRELLIS_KV_INT("rc", rc));
    }
    ing->ack_count = 0;
    ing->next_ack_flush = trellis_mono_ms() + ing->cfg.ack_interval_ms;
    pthread_mutex_lock(&ing->lock);
    ing->stats.acks += sent;
    pthread_mutex_unlock(&ing->lock);
}

static size_t ack_slot(const char *device_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < TRELLIS_TELEMETRY_DEVICE_ID_LEN; i++)
        h = (h ^ (uint8_t)device_id[i]) * 16777619u;
    return h & (ACK_TABLE_SLOTS - 1);
}

/* Records the acks of a batch, keeping the highest per device. */
static void queue_acks(trellis_ingest_t *ing, size_t n_acks)
{
    for (size_t k = 0; k < n_acks; k++) {
        const trellis_ingest_ack_t *a = &ing->acks[k];
        size_t i = ack_slot(a->device_id);
        while (ing->ack_used[i] && memcmp(ing->ack_table[i].device_id, a->device_id,
                                          TRELLIS_TELEMETRY_DEVICE_ID_LEN) != 0)
            i = (i + 1) & (ACK_TABLE_SLOTS - 1);
        if (!ing->ack_used[i]) {
            ing->ack_used[i] = 1;
            ing->ack_count++;
            ing->ack_table[i] = *a;
        } else if (a->acked > ing->ack_table[i].acked) {
            ing->ack_table[i].acked = a->acked;
        }
        /* Half full keeps the probes short; flushing early only sends acks sooner. */
        if (ing->ack_count >= ACK_TABLE_SLOTS / 2)
            flush_acks(ing);
    }
    if (ing->cfg.ack_interval_ms == 0)
        flush_acks(ing);
}

static void log_stats(trellis_ingest_t *ing, const char *event)
{
    trellis_ingest_stats_t s;
    trellis_ingest_get_stats(ing, &s);
    trellis_log(TRELLIS_LOG_INFO, event, TRELLIS_KV_INT("received", (long long)s.received),
                TRELLIS_KV_INT("stored", (long long)s.stored),
                TRELLIS_KV_INT("duplicates", (long long)s.duplicates),
                TRELLIS_KV_INT("quarantined", (long long)s.quarantined),
                TRELLIS_KV_INT("rejected_topic", (long long)s.rejected_topic),
                TRELLIS_KV_INT("rejected_payload", (long long)s.rejected_payload),
                TRELLIS_KV_INT("batches", (long long)s.batches),
                TRELLIS_KV_INT("acks", (long long)s.acks));
}

/* Writes one batch and acknowledges it. */
static trellis_err_t write_one(trellis_ingest_t *ing, size_t n, uint64_t rejected_topic,
                               uint64_t rejected_payload)
{
    trellis_ingest_stats_t batch = {0};
    size_t n_acks = 0;
    batch.rejected_topic = rejected_topic;
    batch.rejected_payload = rejected_payload;
    trellis_err_t err = ing->store->write_batch(ing->store->ctx, ing->batch, n, &batch, ing->acks,
                                                (size_t)ing->cfg.batch_max, &n_acks);
    if (err != TRELLIS_OK) {
        trellis_log(TRELLIS_LOG_ERROR, "ingest.store_failed",
                    TRELLIS_KV_STR("error", trellis_err_name(err)),
                    TRELLIS_KV_INT("batch", (long long)n));
        return TRELLIS_ERR_STORE;
    }
    pthread_mutex_lock(&ing->lock);
    ing->stats.stored += batch.stored;
    ing->stats.duplicates += batch.duplicates;
    ing->stats.quarantined += batch.quarantined;
    ing->stats.batches++;
    pthread_mutex_unlock(&ing->lock);
    /* Only now, with the batch durable, may the devices forget these readings. */
    queue_acks(ing, n_acks);
    return TRELLIS_OK;
}

/* Sleeps ms in POLL_MS steps, returning early once flag is set. */
static void nap(long ms, volatile sig_atomic_t *flag)
{
    for (long left = ms; left > 0 && !*flag; left -= POLL_MS) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (left < POLL_MS ? left : POLL_MS) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/*
 * The network thread: connects, runs libmosquitto's loop, and reconnects with backoff whatever
 * went wrong. (mosquitto_loop_forever gives up for good on a TLS error, which is what a broker
 * killed mid-stream looks like, so it cannot be the loop of a service that must outlive the
 * broker.)
 */
static void *net_main(void *arg)
{
    trellis_ingest_t *ing = arg;
    bool connected = false;
    bool warned = false;
    long delay = 250;

    while (!ing->net_stop) {
        if (!connected) {
            int rc = mosquitto_connect(ing->mosq, ing->cfg.broker_host, ing->cfg.broker_port,
                                       ing->cfg.keepalive_s);
            if (rc != MOSQ_ERR_SUCCESS) {
                if (!warned)
                    trellis_log(TRELLIS_LOG_WARN, "ingest.connect_failed",
                                TRELLIS_KV_STR("reason", mosquitto_strerror(rc)),
                                TRELLIS_KV_STR("broker", ing->cfg.broker_host),
                                TRELLIS_KV_INT("port", ing->cfg.broker_port));
                warned = true;
                nap(delay, &ing->net_stop);
                delay = delay * 2 > 5000 ? 5000 : delay * 2;
                continue;
            }
            connected = true;
            warned = false;
            delay = 250;
        }
        int rc = mosquitto_loop(ing->mosq, POLL_MS, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            connected = false;
            atomic_store(&ing->subscribed, false);
            nap(delay, &ing->net_stop);
        }
    }
    if (connected) {
        /* Let the last acks leave, then say goodbye. */
        for (int i = 0; i < 20 && mosquitto_want_write(ing->mosq); i++)
            mosquitto_loop(ing->mosq, POLL_MS, 1);
        mosquitto_disconnect(ing->mosq);
        mosquitto_loop(ing->mosq, POLL_MS, 1);
    }
    return NULL;
}

trellis_err_t trellis_ingest_run(trellis_ingest_t *ing)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    bool net_started = false;
    pthread_t net;
    int64_t next_stats = 0;

    if (ing == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    ing->net_stop = 0;
    if (pthread_create(&net, NULL, net_main, ing) != 0) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    net_started = true;
    if (ing->cfg.stats_interval_ms > 0)
        next_stats = trellis_mono_ms() + ing->cfg.stats_interval_ms;
    err = TRELLIS_OK;
    for (;;) {
        uint64_t rt = 0, rp = 0;
        bool stopping = ing->stop;
        long long wait = -1;
        if (ing->ack_count > 0) {
            wait = ing->next_ack_flush - trellis_mono_ms();
            wait = wait < 0 ? 0 : wait;
        }
        size_t n = take_batch(ing, wait, &rt, &rp);
        if (n > 0 || rt > 0 || rp > 0) {
            err = write_one(ing, n, rt, rp);
            if (err != TRELLIS_OK)
                break;
        }
        if (ing->ack_count > 0 && trellis_mono_ms() >= ing->next_ack_flush)
            flush_acks(ing);
        if (next_stats > 0 && trellis_mono_ms() >= next_stats) {
            log_stats(ing, "ingest.stats");
            next_stats = trellis_mono_ms() + ing->cfg.stats_interval_ms;
        }
        /* Stop only once a pass that began after the stop request found nothing left. */
        if (stopping && n == 0)
            break;
    }
out:
    if (ing->ack_count > 0)
        flush_acks(ing);
    if (net_started) {
        /* The network thread may be blocked handing over a message: wake it. */
        ing->stop = 1;
        pthread_mutex_lock(&ing->lock);
        pthread_cond_broadcast(&ing->not_full);
        pthread_mutex_unlock(&ing->lock);
        ing->net_stop = 1;
        pthread_join(net, NULL);
    }
    log_stats(ing, "ingest.exit");
    return err;
}

void trellis_ingest_stop(trellis_ingest_t *ing)
{
    if (ing != NULL)
        ing->stop = 1;
}

void trellis_ingest_get_stats(trellis_ingest_t *ing, trellis_ingest_stats_t *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (ing == NULL)
        return;
    pthread_mutex_lock(&ing->lock);
    *out = ing->stats;
    pthread_mutex_unlock(&ing->lock);
}

bool trellis_ingest_subscribed(trellis_ingest_t *ing)
{
    return ing != NULL && atomic_load(&ing->subscribed);
}

static trellis_err_t check_config(const trellis_ingest_config_t *c, trellis_reason_t *reason)
{
    if (c->broker_host[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "broker-host is empty");
    if (c->broker_port < 1 || c->broker_port > 65535)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "broker-port is out of range");
    if (c->ca_file[0] == '\0' || c->cert_file[0] == '\0' || c->key_file[0] == '\0')
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "ca, cert and key are required (the ingest identity from "
                                  "trellis broker config)");
    if (c->batch_max < 1 || c->batch_max > TRELLIS_INGEST_BATCH_LIMIT)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "batch-max is out of range");
    if (c->batch_wait_ms < 0 || c->batch_wait_ms > 1000)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "batch-wait is out of range");
    if (c->keepalive_s < 5)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "keepalive is below 5 s");
    /* The group is one topic level of $share/<group>/...: no wildcard, no separator. */
    if (c->group[0] == '\0' || strpbrk(c->group, "/+#") != NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "group must be non-empty without '/', '+' or '#'");
    return TRELLIS_OK;
}

trellis_err_t trellis_ingest_new(const trellis_ingest_config_t *cfg, trellis_ingest_store_t *store,
                                 trellis_ingest_t **out, trellis_reason_t *reason)
{
    trellis_ingest_t *ing = NULL;
    pthread_condattr_t cattr;
    bool cattr_init = false;
    char host[64];
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL || trellis_ingest_store_check(store) != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no config, output or store");
        goto out;
    }
    err = check_config(cfg, reason);
    if (err != TRELLIS_OK)
        goto out;
    ing = calloc(1, sizeof(*ing));
    if (ing == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    ing->cfg = *cfg;
    ing->store = store;
    pthread_mutex_init(&ing->lock, NULL);
    pthread_condattr_init(&cattr);
    cattr_init = true;
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&ing->not_empty, &cattr);
    pthread_cond_init(&ing->not_full, &cattr);
    ing->queue_cap = (size_t)cfg->batch_max * 2;
    ing->queue = calloc(ing->queue_cap, sizeof(*ing->queue));
    ing->batch = calloc((size_t)cfg->batch_max, sizeof(*ing->batch));
    ing->acks = calloc((size_t)cfg->batch_max, sizeof(*ing->acks));
    ing->ack_table = calloc(ACK_TABLE_SLOTS, sizeof(*ing->ack_table));
    ing->ack_used = calloc(ACK_TABLE_SLOTS, 1);
    if (ing->queue == NULL || ing->batch == NULL || ing->acks == NULL || ing->ack_table == NULL ||
        ing->ack_used == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    snprintf(ing->sub_topic, sizeof(ing->sub_topic), "$share/%s/devices/+/telemetry", cfg->group);
    if (ing->cfg.client_id[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "host");
        host[sizeof(host) - 1] = '\0';
        snprintf(ing->cfg.client_id, sizeof(ing->cfg.client_id), "ingest-%.40s-%ld", host,
                 (long)getpid());
    }

    /* Not paired with mosquitto_lib_cleanup: other clients of the process may still run. */
    mosquitto_lib_init();
    ing->mosq = mosquitto_new(ing->cfg.client_id, !cfg->persistent_session, ing);
    if (ing->mosq == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "cannot make the MQTT client");
        goto out;
    }
    /* Our own network thread runs the loop while this thread publishes acks. */
    mosquitto_threaded_set(ing->mosq, true);
    mosquitto_int_option(ing->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    int rc = mosquitto_tls_set(ing->mosq, cfg->ca_file, NULL, cfg->cert_file, cfg->key_file, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(ing->mosq, 1, "tlsv1.2", NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TLS, "TLS files refused: %s",
                                 mosquitto_strerror(rc));
        goto out;
    }
    mosquitto_connect_callback_set(ing->mosq, on_connect);
    mosquitto_disconnect_callback_set(ing->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(ing->mosq, on_subscribe);
    mosquitto_message_callback_set(ing->mosq, on_message);
    mosquitto_log_callback_set(ing->mosq, on_log);
    *out = ing;
    ing = NULL;
    err = TRELLIS_OK;
out:
    if (cattr_init)
        pthread_condattr_destroy(&cattr);
    trellis_ingest_free(ing);
    return err;
}

void trellis_ingest_free(trellis_ingest_t *ing)
{
    if (ing == NULL)
        return;
    if (ing->mosq != NULL)
        mosquitto_destroy(ing->mosq);
    pthread_cond_destroy(&ing->not_full);
    pthread_cond_destroy(&ing->not_empty);
    pthread_mutex_destroy(&ing->lock);
    free(ing->queue);
    free(ing->batch);
    free(ing->acks);
    free(ing->ack_table);
    free(ing->ack_used);
    free(ing);
}
