/*
 * Fuzzes everything the ingest and the device agent parse from the broker: the reading payload,
 * the ack payload and the telemetry topic. Invariants for any input:
 * - a reading that parses passes trellis_telemetry_check, encodes, and the encoding parses back
 *   to the same seq, ts and floor and a temperature within half a hundredth;
 * - salvage_seq agrees with parse on every payload parse accepts;
 * - an ack that parses re-encodes to text that parses to the same seq;
 * - a topic that parses names a valid device id and is rebuilt byte for byte from it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/telemetry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void fuzz_reading(const uint8_t *data, size_t size)
{
    trellis_telemetry_reading_t r;
    trellis_telemetry_reading_t back;
    trellis_reason_t reason;
    char text[TRELLIS_TELEMETRY_MAX];
    size_t len = 0;
    int64_t seq = 0;

    trellis_err_t err = trellis_telemetry_parse(data, size, &r, &reason);
    check(memchr(reason.text, '\0', sizeof(reason.text)) != NULL);
    if (err != TRELLIS_OK) {
        check(r.seq == 0 && r.ts_ms == 0 && r.floor == 0 && r.temp_c == 0.0);
        check(reason.text[0] != '\0');
        return;
    }
    check(trellis_telemetry_check(&r, NULL) == TRELLIS_OK);
    check(trellis_telemetry_salvage_seq(data, size, &seq) == TRELLIS_OK && seq == r.seq);
    check(trellis_telemetry_encode(&r, text, sizeof(text), &len) == TRELLIS_OK);
    check(len == strlen(text) && len <= TRELLIS_TELEMETRY_MAX);
    check(trellis_telemetry_parse(text, len, &back, NULL) == TRELLIS_OK);
    check(back.seq == r.seq && back.ts_ms == r.ts_ms && back.floor == r.floor);
    check(fabs(back.temp_c - r.temp_c) <= 0.005 + 1e-9);
}

static void fuzz_ack(const uint8_t *data, size_t size)
{
    int64_t seq = -1;
    int64_t again = -1;
    char text[64];
    size_t len = 0;
    if (trellis_telemetry_ack_parse(data, size, &seq, NULL) != TRELLIS_OK) {
        check(seq == 0);
        return;
    }
    check(seq >= 0 && seq <= TRELLIS_TELEMETRY_SEQ_MAX);
    check(trellis_telemetry_ack_encode(seq, text, sizeof(text), &len) == TRELLIS_OK);
    check(trellis_telemetry_ack_parse(text, len, &again, NULL) == TRELLIS_OK && again == seq);
}

static void fuzz_topic(const uint8_t *data, size_t size)
{
    char topic[128];
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    char rebuilt[TRELLIS_TELEMETRY_TOPIC_MAX];
    size_t n = size < sizeof(topic) - 1 ? size : sizeof(topic) - 1;
    memcpy(topic, data, n);
    topic[n] = '\0';
    if (trellis_telemetry_topic_device(topic, id) != TRELLIS_OK) {
        check(id[0] == '\0');
        return;
    }
    check(trellis_telemetry_device_id_check(id) == TRELLIS_OK);
    check(trellis_telemetry_topic(id, rebuilt) == TRELLIS_OK);
    check(strcmp(rebuilt, topic) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reading(data, size);
    fuzz_ack(data, size);
    fuzz_topic(data, size);
    return 0;
}
