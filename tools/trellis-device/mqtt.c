/*
 * The device's MQTT client (libmosquitto, driven from the agent's own loop): mutual TLS with the
 * identity bundle, client id = device id, readings to devices/<id>/telemetry at QoS 1, the
 * ingest's end-to-end acks from devices/<id>/acks (design.md §3).
 *
 * Flow control. At most `window` readings are published ahead of the end-to-end ack. Each new
 * connection starts again from the oldest reading not acknowledged (the broker forgets a clean
 * session, and a PUBACK proves nothing about the store), and so does a connection on which the
 * ack has not moved for ack_timeout while readings are outstanding: a broker that dropped a
 * queued message, or an ingest that restarted, costs a resend, never a reading. The ingest
 * stores each (device, seq) once, so resending is always safe.
 *
 * The first reading of every such round carries the spool's floor (telemetry.h), and so does
 * every reading while readings dropped from a full spool are not yet covered by an ack: the
 * ingest then stops waiting for what this device no longer has.
 */
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>

#include "agent.h"
#include "trellis/clock.h"
#include "trellis/fsutil.h"
#include "trellis/log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define PINNED_CA_FILE "pinned-ca.pem"

static void on_connect(struct mosquitto *mosq, void *arg, int rc)
{
    tr__mqtt_t *m = arg;
    if (rc != 0) {
        trellis_log(TRELLIS_LOG_WARN, "mqtt.refused",
                    TRELLIS_KV_STR("reason", mosquitto_connack_string(rc)));
        return;
    }
    m->connected = true;
    m->warned = false;
    m->backoff_ms = BACKOFF_MIN_MS;
    trellis_log(TRELLIS_LOG_INFO, "mqtt.connected", TRELLIS_KV_STR("device", m->device_id),
                TRELLIS_KV_STR("broker", m->agent->cfg.broker_host),
                TRELLIS_KV_INT("port", m->agent->cfg.broker_port),
                TRELLIS_KV_INT("backlog", (long long)m->spool->count));
    if (mosquitto_subscribe(mosq, NULL, m->ack_topic, 1) != MOSQ_ERR_SUCCESS)
        trellis_log(TRELLIS_LOG_WARN, "mqtt.subscribe_failed",
                    TRELLIS_KV_STR("topic", m->ack_topic));
}

static void on_subscribe(struct mosquitto *mosq, void *arg, int mid, int n, const int *granted)
{
    tr__mqtt_t *m = arg;
    (void)mosq;
    (void)mid;
    if (n < 1 || granted[0] > 2) {
        trellis_log(TRELLIS_LOG_ERROR, "mqtt.subscribe_refused",
                    TRELLIS_KV_STR("topic", m->ack_topic));
        return;
    }
    /* Start over from the oldest reading the ingest has not acknowledged. */
    m->subscribed = true;
    m->sent_to = tr__spool_floor(m->spool);
    m->announce_floor = true;
    m->last_progress_ms = trellis_mono_ms();
}

static void on_disconnect(struct mosquitto *mosq, void *arg, int rc)
{
    tr__mqtt_t *m = arg;
    (void)mosq;
    m->connected = false;
    m->subscribed = false;
    if (rc != 0 && !m->warned) {
        trellis_log(TRELLIS_LOG_WARN, "mqtt.connection_lost",
                    TRELLIS_KV_STR("reason", mosquitto_strerror(rc)),
                    TRELLIS_KV_INT("backlog", (long long)m->spool->count));
        m->warned = true;
    }
}

static void on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg)
{
    tr__mqtt_t *m = arg;
    int64_t seq = 0;
    trellis_reason_t reason;
    (void)mosq;
    if (msg->topic == NULL || strcmp(msg->topic, m->ack_topic) != 0)
        return;
    if (trellis_telemetry_ack_parse(msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
                                    &seq, &reason) != TRELLIS_OK) {
        trellis_log(TRELLIS_LOG_WARN, "mqtt.bad_ack", TRELLIS_KV_STR("reason", reason.text));
        return;
    }
    int64_t before = m->spool->acked;
    if (tr__spool_ack(m->spool, seq) != TRELLIS_OK)
        trellis_log(TRELLIS_LOG_ERROR, "spool.ack_failed", TRELLIS_KV_INT("seq", seq));
    if (m->spool->acked > before) {
        m->last_progress_ms = trellis_mono_ms();
        trellis_log(TRELLIS_LOG_DEBUG, "mqtt.ack", TRELLIS_KV_INT("seq", seq),
                    TRELLIS_KV_INT("backlog", (long long)m->spool->count));
    }
    if (m->sent_to < m->spool->acked)
        m->sent_to = m->spool->acked;
}

/* The CA file the broker's certificate is checked against. */
static trellis_err_t broker_ca_path(tr__mqtt_t *m, trellis_reason_t *reason)
{
    tr__agent_t *a = m->agent;
    if (a->cfg.broker_ca[0] != '\0') {
        snprintf(m->broker_ca, sizeof(m->broker_ca), "%s", a->cfg.broker_ca);
        return TRELLIS_OK;
    }
    if (a->registrar_ca_pem == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                  "no CA for the broker: set --broker-ca (or pin a registrar CA)");
    /* libmosquitto takes a file, and the pinned CA may live inline in factory.json. */
    trellis_err_t err = tr__agent_path(a, PINNED_CA_FILE, m->broker_ca);
    if (err == TRELLIS_OK)
        err = trellis_file_write_atomic(m->broker_ca, a->registrar_ca_pem, a->registrar_ca_len,
                                        TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, err, "cannot write %s: %s", PINNED_CA_FILE,
                                  trellis_err_message(err));
    return TRELLIS_OK;
}

trellis_err_t tr__mqtt_open(tr__mqtt_t *m, tr__agent_t *a, tr__spool_t *spool,
                            trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(m, 0, sizeof(*m));
    m->agent = a;
    m->spool = spool;
    m->backoff_ms = BACKOFF_MIN_MS;
    memcpy(m->device_id, a->factory.device_id, sizeof(m->device_id));
    err = trellis_telemetry_topic(m->device_id, m->topic);
    if (err == TRELLIS_OK)
        err = trellis_telemetry_ack_topic(m->device_id, m->ack_topic);
    if (err == TRELLIS_OK)
        err = tr__agent_path(a, TR__AGENT_IDENTITY, m->identity_path);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "bad device id or state path");
        goto out;
    }
    err = broker_ca_path(m, reason);
    if (err != TRELLIS_OK)
        goto out;
    mosquitto_lib_init();
    /* Client id = device id (design.md §3); a clean session: the spool, not the broker, holds
     * what is not yet acknowledged. */
    m->mosq = mosquitto_new(m->device_id, true, m);
    if (m->mosq == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "cannot make the MQTT client");
        goto out;
    }
    int rc =
        mosquitto_tls_set(m->mosq, m->broker_ca, NULL, m->identity_path, m->identity_path, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(m->mosq, 1, "tlsv1.2", NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TLS, "TLS setup: %s", mosquitto_strerror(rc));
        goto out;
    }
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(m->mosq, (unsigned)a->cfg.window);
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_subscribe_callback_set(m->mosq, on_subscribe);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_message_callback_set(m->mosq, on_message);
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        tr__mqtt_close(m);
    return err;
}

static void publish_window(tr__mqtt_t *m)
{
    tr__spool_t *s = m->spool;
    int64_t now = trellis_mono_ms();
    int64_t floor = tr__spool_floor(s);

    if (!m->subscribed)
        return;
    if (m->sent_to < floor)
        m->sent_to = floor;
    if (m->sent_to > floor && now - m->last_progress_ms > m->agent->cfg.ack_timeout_ms) {
        trellis_log(TRELLIS_LOG_WARN, "mqtt.resend", TRELLIS_KV_INT("from", floor + 1),
                    TRELLIS_KV_INT("to", m->sent_to));
        m->sent_to = floor;
        m->announce_floor = true;
        m->last_progress_ms = now;
        m->resends++;
    }
    while (m->sent_to - floor < m->agent->cfg.window) {
        const tr__reading_t *first = tr__spool_at(s, 0);
        if (first == NULL || m->sent_to + 1 < first->seq)
            break;
        /* Live readings have consecutive seqs, so the next one is at a fixed offset. */
        const tr__reading_t *r = tr__spool_at(s, (size_t)(m->sent_to + 1 - first->seq));
        if (r == NULL)
            break;
        bool drops_pending = s->dropped_to > s->acked;
        trellis_telemetry_reading_t t = {
            .seq = r->seq,
            .ts_ms = r->ts_ms,
            .temp_c = r->temp_c,
            .floor =
                (m->announce_floor || drops_pending) && floor > 0 && floor < r->seq ? floor : 0,
        };
        char payload[TRELLIS_TELEMETRY_MAX];
        size_t len = 0;
        if (trellis_telemetry_encode(&t, payload, sizeof(payload), &len) != TRELLIS_OK) {
            /* A reading the format cannot carry (a broken sensor): nothing to do but skip it;
             * the ingest would quarantine it anyway. */
            trellis_log(TRELLIS_LOG_ERROR, "mqtt.unencodable", TRELLIS_KV_INT("seq", r->seq));
            m->sent_to = r->seq;
            continue;
        }
        int rc = mosquitto_publish(m->mosq, NULL, m->topic, (int)len, payload, 1, false);
        if (rc != MOSQ_ERR_SUCCESS)
            break;
        if (m->sent_to == floor)
            m->last_progress_ms = now;
        m->sent_to = r->seq;
        m->announce_floor = false;
        m->published++;
    }
}

void tr__mqtt_step(tr__mqtt_t *m, long timeout_ms)
{
    int64_t now = trellis_mono_ms();
    if (m->mosq == NULL)
        return;
    if (!m->connected && mosquitto_socket(m->mosq) < 0) {
        if (now < m->next_connect_ms) {
            long long wait = m->next_connect_ms - now;
            tr__sleep_ms(wait < timeout_ms ? wait : timeout_ms, m->agent->stop);
            return;
        }
        int rc = mosquitto_connect(m->mosq, m->agent->cfg.broker_host, m->agent->cfg.broker_port,
                                   m->agent->cfg.keepalive_s);
        if (rc != MOSQ_ERR_SUCCESS) {
            if (!m->warned)
                trellis_log(TRELLIS_LOG_WARN, "mqtt.connect_failed",
                            TRELLIS_KV_STR("reason", mosquitto_strerror(rc)),
                            TRELLIS_KV_STR("broker", m->agent->cfg.broker_host),
                            TRELLIS_KV_INT("port", m->agent->cfg.broker_port));
            m->warned = true;
            m->next_connect_ms = now + m->backoff_ms;
            m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
            return;
        }
    }
    int rc = mosquitto_loop(m->mosq, (int)timeout_ms, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        /* Lost (a broker restart or crash, a revoked certificate): drop the socket and come
         * back after a backoff. */
        on_disconnect(m->mosq, m, rc == MOSQ_ERR_NO_CONN ? 0 : rc);
        mosquitto_disconnect(m->mosq);
        m->next_connect_ms = trellis_mono_ms() + m->backoff_ms;
        m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
        return;
    }
    publish_window(m);
}

void tr__mqtt_close(tr__mqtt_t *m)
{
    if (m == NULL || m->mosq == NULL)
        return;
    if (m->connected) {
        for (int i = 0; i < 10 && mosquitto_want_write(m->mosq); i++)
            mosquitto_loop(m->mosq, 50, 1);
        mosquitto_disconnect(m->mosq);
        mosquitto_loop(m->mosq, 50, 1);
    }
    mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    m->connected = false;
    m->subscribed = false;
}
