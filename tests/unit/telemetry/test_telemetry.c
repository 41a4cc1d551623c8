/* The telemetry payloads and topics: known answers, round trips, and a table of payloads the
 * strict parser must refuse. */
#include <math.h>
#include <string.h>

#include "test_support.h"
#include "trellis/telemetry.h"

#define TS_OK 1764072000000LL /* 2025-11-25T12:00:00Z */

static const char dev[] = "0123456789abcdef0123456789abcdef";

static void test_encode_known_answer(void **state)
{
    (void)state;
    trellis_telemetry_reading_t r = {.seq = 7, .ts_ms = TS_OK, .temp_c = 21.456, .floor = 0};
    char out[TRELLIS_TELEMETRY_MAX];
    size_t len = 0;
    assert_int_equal(trellis_telemetry_encode(&r, out, sizeof(out), &len), TRELLIS_OK);
    assert_string_equal(out, "{\"seq\":7,\"ts\":1764072000000,\"temp_c\":21.46}");
    assert_int_equal(len, strlen(out));

    r.floor = 3;
    r.temp_c = -5;
    assert_int_equal(trellis_telemetry_encode(&r, out, sizeof(out), &len), TRELLIS_OK);
    assert_string_equal(out, "{\"seq\":7,\"ts\":1764072000000,\"temp_c\":-5.00,\"floor\":3}");
}

static void test_encode_size_query_and_refusals(void **state)
{
    (void)state;
    trellis_telemetry_reading_t r = {.seq = 1, .ts_ms = TS_OK, .temp_c = 0.0, .floor = 0};
    char small[8];
    size_t len = 0;
    assert_int_equal(trellis_telemetry_encode(&r, NULL, 0, &len), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, strlen("{\"seq\":1,\"ts\":1764072000000,\"temp_c\":0.00}") + 1);
    assert_int_equal(trellis_telemetry_encode(&r, small, sizeof(small), &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);

    char out[TRELLIS_TELEMETRY_MAX];
    const trellis_telemetry_reading_t bad[] = {
        {.seq = 0, .ts_ms = TS_OK, .temp_c = 1},
        {.seq = TRELLIS_TELEMETRY_SEQ_MAX + 1, .ts_ms = TS_OK, .temp_c = 1},
        {.seq = 1, .ts_ms = 0, .temp_c = 1},
        {.seq = 1, .ts_ms = TRELLIS_TELEMETRY_TS_MAX_MS + 1, .temp_c = 1},
        {.seq = 1, .ts_ms = TS_OK, .temp_c = NAN},
        {.seq = 1, .ts_ms = TS_OK, .temp_c = INFINITY},
        {.seq = 1, .ts_ms = TS_OK, .temp_c = 150.01},
        {.seq = 1, .ts_ms = TS_OK, .temp_c = -60.5},
        {.seq = 5, .ts_ms = TS_OK, .temp_c = 1, .floor = 5},
        {.seq = 5, .ts_ms = TS_OK, .temp_c = 1, .floor = -1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = 99;
        assert_int_equal(trellis_telemetry_encode(&bad[i], out, sizeof(out), &len),
                         TRELLIS_ERR_INVALID_ARG);
        assert_int_equal(len, 0);
    }
    assert_int_equal(trellis_telemetry_encode(NULL, out, sizeof(out), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_telemetry_encode(&r, out, sizeof(out), NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_round_trip(void **state)
{
    (void)state;
    const trellis_telemetry_reading_t cases[] = {
        {.seq = 1, .ts_ms = TRELLIS_TELEMETRY_TS_MIN_MS, .temp_c = -60.0},
        {.seq = TRELLIS_TELEMETRY_SEQ_MAX, .ts_ms = TRELLIS_TELEMETRY_TS_MAX_MS, .temp_c = 150.0},
        {.seq = 42, .ts_ms = TS_OK, .temp_c = 23.25, .floor = 41},
        {.seq = 1000, .ts_ms = TS_OK, .temp_c = -0.5, .floor = 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[TRELLIS_TELEMETRY_MAX];
        size_t len = 0;
        trellis_telemetry_reading_t back;
        assert_int_equal(trellis_telemetry_encode(&cases[i], text, sizeof(text), &len), TRELLIS_OK);
        assert_int_equal(trellis_telemetry_parse(text, len, &back, NULL), TRELLIS_OK);
        assert_true(back.seq == cases[i].seq);
        assert_true(back.ts_ms == cases[i].ts_ms);
        assert_true(back.floor == cases[i].floor);
        assert_true(fabs(back.temp_c - cases[i].temp_c) < 0.0051);
    }
}

static void test_parse_accepts_equivalent_forms(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"seq\":3,\"ts\":1764072000000,\"temp_c\":21}",
        "{ \"temp_c\" : 21.0 , \"ts\" : 1764072000000 , \"seq\" : 3 }\n",
        "{\"seq\":3,\"ts\":1764072000000,\"temp_c\":2.1e1}",
        "{\"seq\":3,\"ts\":1764072000000,\"temp_c\":21,\"floor\":2}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        trellis_telemetry_reading_t r;
        trellis_reason_t reason;
        assert_int_equal(trellis_telemetry_parse(good[i], strlen(good[i]), &r, &reason),
                         TRELLIS_OK);
        assert_true(r.seq == 3);
        assert_true(r.ts_ms == 1764072000000LL);
        assert_true(r.temp_c == 21.0);
    }
}

/* Every entry must be refused with PARSE (or TOO_LARGE), and leave the output zeroed. */
static void test_parse_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *payload;
        const char *reason_part;
    } bad[] = {
        {"", NULL},
        {"[]", NULL},
        {"null", NULL},
        {"{}", "seq"},
        {"{\"seq\":1,\"ts\":1764072000000}", "temp_c"},
        {"{\"seq\":1,\"temp_c\":1}", "ts"},
        {"{\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1,\"hum\":3}", "hum"},
        {"{\"seq\":1,\"seq\":2,\"ts\":1764072000000,\"temp_c\":1}", NULL},
        {"{\"seq\":0,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":-1,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":9007199254740992,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":99999999999999999999999,\"ts\":1764072000000,\"temp_c\":1}", NULL},
        {"{\"seq\":1.0,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":1e2,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":\"1\",\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":true,\"ts\":1764072000000,\"temp_c\":1}", "seq"},
        {"{\"seq\":1,\"ts\":0,\"temp_c\":1}", "ts"},
        {"{\"seq\":1,\"ts\":1764072000,\"temp_c\":1}", "ts"},
        {"{\"seq\":1,\"ts\":4102444800001,\"temp_c\":1}", "ts"},
        {"{\"seq\":1,\"ts\":1764072000000.5,\"temp_c\":1}", "ts"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":\"21\"}", "temp_c"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":null}", "temp_c"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":150.001}", "temp_c"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":-273.15}", "temp_c"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":NaN}", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":Infinity}", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1e999}", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":[1]}", "temp_c"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":{}}", "temp_c"},
        {"{\"seq\":5,\"ts\":1764072000000,\"temp_c\":1,\"floor\":5}", "floor"},
        {"{\"seq\":5,\"ts\":1764072000000,\"temp_c\":1,\"floor\":0}", "floor"},
        {"{\"seq\":5,\"ts\":1764072000000,\"temp_c\":1,\"floor\":\"2\"}", "floor"},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1} x", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1}{}", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1", NULL},
        {"{\"seq\":1,\"ts\":1764072000000,\"temp_c\":01}", NULL},
        {"{'seq':1}", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trellis_telemetry_reading_t r;
        trellis_reason_t reason;
        memset(&r, 0xa5, sizeof(r));
        trellis_err_t err =
            trellis_telemetry_parse(bad[i].payload, strlen(bad[i].payload), &r, &reason);
        if (err != TRELLIS_ERR_PARSE)
            fail_msg("payload %zu (%s) gave %d", i, bad[i].payload, (int)err);
        assert_true(r.seq == 0 && r.ts_ms == 0 && r.temp_c == 0.0 && r.floor == 0);
        assert_true(strlen(reason.text) > 0);
        if (bad[i].reason_part != NULL && strstr(reason.text, bad[i].reason_part) == NULL)
            fail_msg("payload %zu: reason '%s' does not name %s", i, reason.text,
                     bad[i].reason_part);
    }
}

static void test_parse_limits(void **state)
{
    (void)state;
    char big[TRELLIS_TELEMETRY_MAX + 2];
    trellis_telemetry_reading_t r;
    trellis_reason_t reason;
    /* A valid object padded with whitespace past the cap is refused before parsing. */
    const char *base = "{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1}";
    memset(big, ' ', sizeof(big));
    memcpy(big, base, strlen(base));
    assert_int_equal(trellis_telemetry_parse(big, sizeof(big), &r, &reason), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_telemetry_parse(big, TRELLIS_TELEMETRY_MAX, &r, &reason), TRELLIS_OK);

    /* An embedded NUL is not a terminator. */
    char nul[] = "{\"seq\":1,\"ts\":1764072000000,\"temp_c\":1}\0junk";
    assert_int_equal(trellis_telemetry_parse(nul, sizeof(nul) - 1, &r, &reason), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_telemetry_parse(NULL, 3, &r, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_telemetry_parse(base, strlen(base), NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_telemetry_parse(NULL, 0, &r, NULL), TRELLIS_ERR_PARSE);
}

static void test_salvage_seq(void **state)
{
    (void)state;
    int64_t seq = 0;
    const char *hot = "{\"seq\":12,\"ts\":1764072000000,\"temp_c\":900}";
    assert_int_equal(trellis_telemetry_salvage_seq(hot, strlen(hot), &seq), TRELLIS_OK);
    assert_true(seq == 12);
    const char *noseq = "{\"ts\":1764072000000,\"temp_c\":900}";
    assert_int_equal(trellis_telemetry_salvage_seq(noseq, strlen(noseq), &seq), TRELLIS_ERR_PARSE);
    assert_true(seq == 0);
    const char *garbage = "not json";
    assert_int_equal(trellis_telemetry_salvage_seq(garbage, strlen(garbage), &seq),
                     TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_telemetry_salvage_seq(hot, strlen(hot), NULL),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_ack(void **state)
{
    (void)state;
    char out[64];
    size_t len = 0;
    int64_t seq = -1;
    assert_int_equal(trellis_telemetry_ack_encode(0, out, sizeof(out), &len), TRELLIS_OK);
    assert_string_equal(out, "{\"seq\":0}");
    assert_int_equal(trellis_telemetry_ack_encode(123456, out, sizeof(out), &len), TRELLIS_OK);
    assert_string_equal(out, "{\"seq\":123456}");
    assert_int_equal(trellis_telemetry_ack_parse(out, len, &seq, NULL), TRELLIS_OK);
    assert_true(seq == 123456);
    assert_int_equal(trellis_telemetry_ack_encode(-1, out, sizeof(out), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_telemetry_ack_encode(5, out, 3, &len), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, strlen("{\"seq\":5}") + 1);

    static const char *const bad[] = {
        "{}",
        "{\"seq\":-1}",
        "{\"seq\":1.5}",
        "{\"seq\":1,\"x\":2}",
        "[1]",
        "{\"seq\":\"1\"}",
        "{\"seq\":9007199254740992}",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        seq = 77;
        assert_int_equal(trellis_telemetry_ack_parse(bad[i], strlen(bad[i]), &seq, NULL),
                         TRELLIS_ERR_PARSE);
        assert_true(seq == 0);
    }
}

static void test_topics(void **state)
{
    (void)state;
    char topic[TRELLIS_TELEMETRY_TOPIC_MAX];
    char id[TRELLIS_TELEMETRY_DEVICE_ID_LEN + 1];
    assert_int_equal(trellis_telemetry_topic(dev, topic), TRELLIS_OK);
    assert_string_equal(topic, "devices/0123456789abcdef0123456789abcdef/telemetry");
    assert_int_equal(trellis_telemetry_topic_device(topic, id), TRELLIS_OK);
    assert_string_equal(id, dev);
    assert_int_equal(trellis_telemetry_ack_topic(dev, topic), TRELLIS_OK);
    assert_string_equal(topic, "devices/0123456789abcdef0123456789abcdef/acks");

    static const char *const bad_ids[] = {
        "0123456789ABCDEF0123456789abcdef",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeg",
        "",
        "+",
    };
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(trellis_telemetry_device_id_check(bad_ids[i]), TRELLIS_ERR_INVALID_ARG);
        assert_int_equal(trellis_telemetry_topic(bad_ids[i], topic), TRELLIS_ERR_INVALID_ARG);
        assert_string_equal(topic, "");
    }
    assert_int_equal(trellis_telemetry_device_id_check(NULL), TRELLIS_ERR_INVALID_ARG);

    static const char *const bad_topics[] = {
        "devices/0123456789abcdef0123456789abcdef/acks",
        "devices/0123456789abcdef0123456789abcdef/telemetry/",
        "devices/0123456789abcdef0123456789abcdef/telemetry/x",
        "/devices/0123456789abcdef0123456789abcdef/telemetry",
        "devices/0123456789ABCDEF0123456789abcdef/telemetry",
        "devices/+/telemetry",
        "devices/0123456789abcdef0123456789abcde/telemetryx",
        "device/0123456789abcdef0123456789abcdef/telemetry",
        "",
    };
    for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
        memset(id, 'x', sizeof(id));
        assert_int_equal(trellis_telemetry_topic_device(bad_topics[i], id), TRELLIS_ERR_PARSE);
        assert_string_equal(id, "");
    }
    assert_int_equal(trellis_telemetry_topic_device(NULL, id), TRELLIS_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_known_answer),
        cmocka_unit_test(test_encode_size_query_and_refusals),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_accepts_equivalent_forms),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_salvage_seq),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
