/*
 * Telemetry wire formats (design.md §3): the reading a device publishes, the end-to-end
 * acknowledgement the ingest sends back, and their MQTT topics.
 *
 *   topic   devices/<device_id>/telemetry          (device -> broker -> ingest), QoS 1
 *   payload {"seq": N, "ts": UNIX_MS, "temp_c": NUMBER}              [, "floor": F]
 *   topic   devices/<device_id>/acks               (ingest -> broker -> device), QoS 1
 *   payload {"seq": N}
 *
 * seq starts at 1 and increases by one per reading; it survives restarts of the device. The ack
 * carries the highest N such that every reading of the device with seq <= N is stored (or was
 * given up by the device, see floor). The device deletes a reading from its spool only once an
 * ack covers it: the broker's PUBACK is not durability.
 *
 * floor (optional, an extension of design.md §3, see docs/ingest.md): the device states that it
 * holds no reading with seq <= floor any more (each was acknowledged, or dropped from a full
 * spool), so the ingest must not wait for them before it advances its acknowledgement. Without
 * it a device that dropped readings, or an ingest whose store was reset, would wait forever for
 * readings that will never come. floor < seq always.
 *
 * Parsing is strict, because the bytes come from outside: one JSON object (RFC 8259) of at most
 * TRELLIS_TELEMETRY_MAX bytes, no duplicate or unknown members, no NUL, nothing after the
 * object; seq and ts integers (no fraction, no exponent), temp_c a finite number; every value
 * within the bounds below. A reason names the member at fault and never quotes payload bytes.
 *
 * Nothing here allocates beyond jansson's parse tree, which is freed before returning; no global
 * state: every function is safe from any thread.
 */
#ifndef TRELLIS_TELEMETRY_H
#define TRELLIS_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

/* Largest reading and ack payload accepted (a reading is about 60 bytes). */
#define TRELLIS_TELEMETRY_MAX 256
/* seq and floor are JSON-safe integers (RFC 8259 §6: exact in an IEEE 754 double). */
#define TRELLIS_TELEMETRY_SEQ_MAX 9007199254740991LL
/* ts bounds, Unix milliseconds: 2020-01-01T00:00:00Z .. 2100-01-01T00:00:00Z. A device whose
 * clock says 1970 has no time worth storing. */
#define TRELLIS_TELEMETRY_TS_MIN_MS 1577836800000LL
#define TRELLIS_TELEMETRY_TS_MAX_MS 4102444800000LL
/* temp_c bounds in degrees Celsius: what a thermometer on an electronics board can read. */
#define TRELLIS_TELEMETRY_TEMP_MIN (-60.0)
#define TRELLIS_TELEMETRY_TEMP_MAX 150.0
/* Device ids are 32 lowercase hex characters (design.md §3). */
#define TRELLIS_TELEMETRY_DEVICE_ID_LEN 32
/* Room for any topic built below, NUL included ("devices/" + id + "/telemetry"). */
#define TRELLIS_TELEMETRY_TOPIC_MAX 64

/* One reading. floor is 0 when absent. */
typedef struct {
    int64_t seq;   /* 1..TRELLIS_TELEMETRY_SEQ_MAX */
    int64_t ts_ms; /* TRELLIS_TELEMETRY_TS_MIN_MS..TRELLIS_TELEMETRY_TS_MAX_MS */
    double temp_c; /* finite, TRELLIS_TELEMETRY_TEMP_MIN..TRELLIS_TELEMETRY_TEMP_MAX */
    int64_t floor; /* 0 (absent) or 1..seq-1 */
} trellis_telemetry_reading_t;

/*
 * Checks every field of r against the bounds above. TRELLIS_OK or TRELLIS_ERR_PARSE with the
 * field at fault in reason (may be NULL); TRELLIS_ERR_INVALID_ARG for r NULL.
 */
trellis_err_t trellis_telemetry_check(const trellis_telemetry_reading_t *r,
                                      trellis_reason_t *reason);

/*
 * Writes the payload of r into out as NUL-terminated JSON text, members in the order seq, ts,
 * temp_c[, floor]; temp_c with two decimals (0.01 degree, finer than any board thermometer
 * resolves). Follows the (out, out_size, *out_len) convention: with out NULL or too small,
 * TRELLIS_ERR_BUFFER_TOO_SMALL and the size needed (NUL included) in *out_len; on success
 * *out_len is the text length without the NUL. A reading that fails trellis_telemetry_check is
 * refused with TRELLIS_ERR_INVALID_ARG. The text is never longer than TRELLIS_TELEMETRY_MAX.
 */
trellis_err_t trellis_telemetry_encode(const trellis_telemetry_reading_t *r, char *out,
                                       size_t out_size, size_t *out_len);

/*
 * Parses a reading payload of len bytes (not NUL-terminated) into *out. Errors:
 * TRELLIS_ERR_TOO_LARGE above TRELLIS_TELEMETRY_MAX; TRELLIS_ERR_PARSE for anything that is not
 * exactly the format above (reason says what); TRELLIS_ERR_INVALID_ARG for NULL out, or payload
 * NULL with len > 0. On failure *out is zeroed.
 */
trellis_err_t trellis_telemetry_parse(const void *payload, size_t len,
                                      trellis_telemetry_reading_t *out, trellis_reason_t *reason);

/*
 * The seq of a payload that trellis_telemetry_parse refused, when the payload is still one
 * well-formed JSON object of at most TRELLIS_TELEMETRY_MAX bytes whose seq member is valid. The
 * ingest uses it to quarantine a bad reading under its seq instead of waiting for it forever.
 * TRELLIS_OK with *seq set, TRELLIS_ERR_PARSE (or TOO_LARGE, INVALID_ARG) with *seq 0.
 */
trellis_err_t trellis_telemetry_salvage_seq(const void *payload, size_t len, int64_t *seq);

/* The ack payload {"seq":N}, N in 0..TRELLIS_TELEMETRY_SEQ_MAX (0: nothing stored yet). Same
 * conventions as encode and parse above. */
trellis_err_t trellis_telemetry_ack_encode(int64_t seq, char *out, size_t out_size,
                                           size_t *out_len);
trellis_err_t trellis_telemetry_ack_parse(const void *payload, size_t len, int64_t *seq,
                                          trellis_reason_t *reason);

/* TRELLIS_OK if id is exactly TRELLIS_TELEMETRY_DEVICE_ID_LEN lowercase hex characters,
 * TRELLIS_ERR_INVALID_ARG otherwise (NULL included). */
trellis_err_t trellis_telemetry_device_id_check(const char *id);

/* "devices/<id>/telemetry" and "devices/<id>/acks" into out (TRELLIS_TELEMETRY_TOPIC_MAX
 * bytes). TRELLIS_ERR_INVALID_ARG when id fails trellis_telemetry_device_id_check. */
trellis_err_t trellis_telemetry_topic(const char *device_id,
                                      char out[static TRELLIS_TELEMETRY_TOPIC_MAX]);
trellis_err_t trellis_telemetry_ack_topic(const char *device_id,
                                          char out[static TRELLIS_TELEMETRY_TOPIC_MAX]);

/*
 * The device id of a telemetry topic: topic must be exactly "devices/<id>/telemetry" with a
 * valid id (no wildcard, no extra level, no trailing slash). TRELLIS_OK with the id and a NUL in
 * out, TRELLIS_ERR_PARSE otherwise (out then holds the empty string).
 */
trellis_err_t trellis_telemetry_topic_device(const char *topic,
                                             char out[static TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1]);

#endif /* TRELLIS_TELEMETRY_H */
