/*
 * The reading and ack payloads of design.md §3 and their topics. Payloads arrive from devices
 * through the broker, so the parser takes nothing on trust: trellis_json_parse_object gives one
 * RFC 8259 object without duplicates, NUL or trailing bytes; the checks below give exactly the
 * members the format names, each of the right JSON type and within its bounds.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "trellis/json.h"
#include "trellis/telemetry.h"

static const char topic_prefix[] = "devices/";
static const char topic_telemetry[] = "/telemetry";
static const char topic_acks[] = "/acks";

trellis_err_t trellis_telemetry_check(const trellis_telemetry_reading_t *r,
                                      trellis_reason_t *reason)
{
    trellis_reason_clear(reason);
    if (r == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no reading");
    if (r->seq < 1 || r->seq > TRELLIS_TELEMETRY_SEQ_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "seq is out of range 1..2^53-1");
    if (r->ts_ms < TRELLIS_TELEMETRY_TS_MIN_MS || r->ts_ms > TRELLIS_TELEMETRY_TS_MAX_MS)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "ts is outside 2020-01-01..2100-01-01 (Unix milliseconds)");
    /* NaN fails both comparisons, so test isfinite first and explicitly. */
    if (!isfinite(r->temp_c) || r->temp_c < TRELLIS_TELEMETRY_TEMP_MIN ||
        r->temp_c > TRELLIS_TELEMETRY_TEMP_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "temp_c is outside -60..150");
    if (r->floor < 0 || (r->floor > 0 && r->floor >= r->seq))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "floor is not below seq");
    return TRELLIS_OK;
}

/* Hands the n bytes an encoder formatted into text (of size bytes) to the caller's buffer, with
 * the NUL: TRELLIS_ERR_BUFFER_TOO_SMALL and the size needed in *out_len when it does not fit. */
static trellis_err_t emit(const char *text, size_t size, int n, char *out, size_t out_size,
                          size_t *out_len)
{
    if (n < 0 || (size_t)n >= size)
        return TRELLIS_ERR_INTERNAL;
    if (out == NULL || out_size < (size_t)n + 1) {
        *out_len = (size_t)n + 1;
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(out, text, (size_t)n + 1);
    *out_len = (size_t)n;
    return TRELLIS_OK;
}

trellis_err_t trellis_telemetry_encode(const trellis_telemetry_reading_t *r, char *out,
                                       size_t out_size, size_t *out_len)
{
    char text[TRELLIS_TELEMETRY_MAX];
    int n = 0;

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (trellis_telemetry_check(r, NULL) != TRELLIS_OK)
        return TRELLIS_ERR_INVALID_ARG;
    /* A value of -0.004 prints as "-0.00": valid JSON (RFC 8259 §6 allows "-0") that parses
     * back to zero, so it is left as is. */
    if (r->floor > 0)
        n = snprintf(text, sizeof(text),
                     "{\"seq\":%" PRId64 ",\"ts\":%" PRId64 ",\"temp_c\":%.2f,\"floor\":%" PRId64
                     "}",
                     r->seq, r->ts_ms, r->temp_c, r->floor);
    else
        n = snprintf(text, sizeof(text), "{\"seq\":%" PRId64 ",\"ts\":%" PRId64 ",\"temp_c\":%.2f}",
                     r->seq, r->ts_ms, r->temp_c);
    return emit(text, sizeof(text), n, out, out_size, out_len);
}

/* Parses payload into a new object, with the size cap checked before jansson sees a byte. */
static trellis_err_t parse_object(const void *payload, size_t len, json_t **obj,
                                  trellis_reason_t *reason)
{
    *obj = NULL;
    if (payload == NULL && len > 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no payload");
    if (len > TRELLIS_TELEMETRY_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                  "payload has %zu bytes, more than %d", len,
                                  TRELLIS_TELEMETRY_MAX);
    return trellis_json_parse_object((const char *)payload, len, TRELLIS_TELEMETRY_MAX, obj,
                                     reason);
}

/* A required (or, with required 0, optional: *out 0 when absent) integer member in [min, max].
 * trellis_json_get_int already refuses reals, so "1.0" and "1e3" are not integers here. */
static trellis_err_t get_int(const json_t *obj, const char *key, int required, long long min,
                             long long max, int64_t *out, trellis_reason_t *reason)
{
    long long v = 0;
    trellis_err_t err = required ? trellis_json_get_int(obj, key, min, max, &v, reason)
                                 : trellis_json_get_int_opt(obj, key, min, max, 0, &v, reason);
    *out = err == TRELLIS_OK ? (int64_t)v : 0;
    return err;
}

trellis_err_t trellis_telemetry_parse(const void *payload, size_t len,
                                      trellis_telemetry_reading_t *out, trellis_reason_t *reason)
{
    static const char *const members[] = {"seq", "ts", "temp_c", "floor"};
    trellis_telemetry_reading_t r = {0};
    json_t *obj = NULL;
    const json_t *temp = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    if (out == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output");
        goto out;
    }
    memset(out, 0, sizeof(*out));
    err = parse_object(payload, len, &obj, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_json_reject_unknown(obj, members, sizeof(members) / sizeof(members[0]), reason);
    if (err != TRELLIS_OK)
        goto out;
    err = get_int(obj, "seq", 1, 1, TRELLIS_TELEMETRY_SEQ_MAX, &r.seq, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = get_int(obj, "ts", 1, TRELLIS_TELEMETRY_TS_MIN_MS, TRELLIS_TELEMETRY_TS_MAX_MS, &r.ts_ms,
                  reason);
    if (err != TRELLIS_OK)
        goto out;
    /* RFC 8259 §6 has one number type: 21 and 21.0 are the same temperature. jansson refuses
     * NaN, Infinity and overflowing literals while parsing, so a number here is finite. */
    temp = json_object_get(obj, "temp_c");
    if (temp == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member temp_c is missing");
        goto out;
    }
    if (!json_is_number(temp)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "member temp_c is not a number");
        goto out;
    }
    r.temp_c = json_number_value(temp);
    err = get_int(obj, "floor", 0, 1, TRELLIS_TELEMETRY_SEQ_MAX - 1, &r.floor, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_telemetry_check(&r, reason);
    if (err != TRELLIS_OK)
        goto out;
    *out = r;
    err = TRELLIS_OK;
out:
    json_decref(obj);
    return err;
}

trellis_err_t trellis_telemetry_salvage_seq(const void *payload, size_t len, int64_t *seq)
{
    json_t *obj = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (seq == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *seq = 0;
    err = parse_object(payload, len, &obj, NULL);
    if (err == TRELLIS_OK)
        err = get_int(obj, "seq", 1, 1, TRELLIS_TELEMETRY_SEQ_MAX, seq, NULL);
    json_decref(obj);
    return err;
}

trellis_err_t trellis_telemetry_ack_encode(int64_t seq, char *out, size_t out_size, size_t *out_len)
{
    char text[64];
    int n = 0;

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (seq < 0 || seq > TRELLIS_TELEMETRY_SEQ_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    n = snprintf(text, sizeof(text), "{\"seq\":%" PRId64 "}", seq);
    return emit(text, sizeof(text), n, out, out_size, out_len);
}

trellis_err_t trellis_telemetry_ack_parse(const void *payload, size_t len, int64_t *seq,
                                          trellis_reason_t *reason)
{
    static const char *const members[] = {"seq"};
    json_t *obj = NULL;
    int64_t v = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_reason_clear(reason);
    if (seq == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output");
        goto out;
    }
    *seq = 0;
    err = parse_object(payload, len, &obj, reason);
    if (err == TRELLIS_OK)
        err = trellis_json_reject_unknown(obj, members, 1, reason);
    if (err == TRELLIS_OK)
        err = get_int(obj, "seq", 1, 0, TRELLIS_TELEMETRY_SEQ_MAX, &v, reason);
    if (err != TRELLIS_OK)
        goto out;
    *seq = v;
    err = TRELLIS_OK;
out:
    json_decref(obj);
    return err;
}

trellis_err_t trellis_telemetry_device_id_check(const char *id)
{
    if (id == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    for (size_t i = 0; i < TRELLIS_TELEMETRY_DEVICE_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return TRELLIS_ERR_INVALID_ARG;
    }
    return id[TRELLIS_TELEMETRY_DEVICE_ID_LEN] == '\0' ? TRELLIS_OK : TRELLIS_ERR_INVALID_ARG;
}

static trellis_err_t make_topic(const char *device_id, const char *suffix,
                                char out[static TRELLIS_TELEMETRY_TOPIC_MAX])
{
    out[0] = '\0';
    if (trellis_telemetry_device_id_check(device_id) != TRELLIS_OK)
        return TRELLIS_ERR_INVALID_ARG;
    int n = snprintf(out, TRELLIS_TELEMETRY_TOPIC_MAX, "%s%s%s", topic_prefix, device_id, suffix);
    if (n < 0 || n >= TRELLIS_TELEMETRY_TOPIC_MAX) {
        out[0] = '\0';
        return TRELLIS_ERR_INTERNAL;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_telemetry_topic(const char *device_id,
                                      char out[static TRELLIS_TELEMETRY_TOPIC_MAX])
{
    return make_topic(device_id, topic_telemetry, out);
}

trellis_err_t trellis_telemetry_ack_topic(const char *device_id,
                                          char out[static TRELLIS_TELEMETRY_TOPIC_MAX])
{
    return make_topic(device_id, topic_acks, out);
}

trellis_err_t trellis_telemetry_topic_device(const char *topic,
                                             char out[static TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1])
{
    const size_t prefix_len = sizeof(topic_prefix) - 1;
    const size_t suffix_len = sizeof(topic_telemetry) - 1;
    const size_t want = prefix_len + TRELLIS_TELEMETRY_DEVICE_ID_LEN + suffix_len;

    out[0] = '\0';
    /* strnlen bounds the scan: a topic is at most 65535 bytes, but nothing beyond want + 1
     * bytes can make it valid. */
    if (topic == NULL || strnlen(topic, want + 1) != want)
        return TRELLIS_ERR_PARSE;
    if (memcmp(topic, topic_prefix, prefix_len) != 0 ||
        memcmp(topic + prefix_len + TRELLIS_TELEMETRY_DEVICE_ID_LEN, topic_telemetry, suffix_len) !=
            0)
        return TRELLIS_ERR_PARSE;
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    memcpy(id, topic + prefix_len, TRELLIS_TELEMETRY_DEVICE_ID_LEN);
    id[TRELLIS_TELEMETRY_DEVICE_ID_LEN] = '\0';
    if (trellis_telemetry_device_id_check(id) != TRELLIS_OK)
        return TRELLIS_ERR_PARSE;
    memcpy(out, id, sizeof(id));
    return TRELLIS_OK;
}
