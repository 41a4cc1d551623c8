/* Device id and UEID derivation (design.md §3) and the RoT port checks. */
#include <string.h>

#include "test_support.h"
#include "trellis/psa_token.h"
#include "trellis/rot.h"

/* The P-256 base point G (SEC 2 §2.4.2) as an uncompressed point: a fixed, public, valid key. */
static const uint8_t g_point[65] = {
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5,
    0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4,
    0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a,
    0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5};

/* SHA-256(g_point), computed independently (Python hashlib). */
static const char g_device_id[] = "698bea63dc44a344663ff1429aea1084";
static const uint8_t g_ueid[33] = {0x01, 0x69, 0x8b, 0xea, 0x63, 0xdc, 0x44, 0xa3, 0x44,
                                   0x66, 0x3f, 0xf1, 0x42, 0x9a, 0xea, 0x10, 0x84, 0x2d,
                                   0xf2, 0x7b, 0x6b, 0x99, 0x1e, 0xf2, 0x58, 0x66, 0xb2,
                                   0xc6, 0xc0, 0x2c, 0xdc, 0xc5, 0xbe};

static void test_known_vector(void **state)
{
    (void)state;
    char id[TRELLIS_DEVICE_ID_LEN + 1];
    uint8_t ueid[TRELLIS_UEID_LEN];

    assert_int_equal(trellis_device_id_from_point(g_point, id), TRELLIS_OK);
    assert_string_equal(id, g_device_id);
    assert_int_equal(trellis_ueid_from_point(g_point, ueid), TRELLIS_OK);
    assert_memory_equal(ueid, g_ueid, sizeof(ueid));
}

static void test_agrees_with_token_library(void **state)
{
    (void)state;
    uint8_t point[65];
    char a[33];
    char b[33];
    uint8_t ua[33];
    uint8_t ub[33];

    /* The verifier derives ids with psa_token.h; both sides must agree on every key. */
    for (int i = 0; i < 32; i++) {
        memcpy(point, g_point, sizeof(point));
        point[1 + i] ^= (uint8_t)(i * 37 + 1);
        assert_int_equal(trellis_device_id_from_point(point, a), TRELLIS_OK);
        assert_int_equal(trellis_psa_device_id_from_point(point, b), TRELLIS_OK);
        assert_string_equal(a, b);
        assert_int_equal(trellis_ueid_from_point(point, ua), TRELLIS_OK);
        assert_int_equal(trellis_psa_ueid_from_point(point, ub), TRELLIS_OK);
        assert_memory_equal(ua, ub, sizeof(ua));
        assert_int_equal(strlen(a), 32);
    }
}

static void test_refuses_other_forms(void **state)
{
    (void)state;
    uint8_t point[65];
    char id[33];
    uint8_t ueid[33];

    memcpy(point, g_point, sizeof(point));
    point[0] = 0x02; /* compressed form marker */
    assert_int_equal(trellis_device_id_from_point(point, id), TRELLIS_ERR_BAD_KEY);
    assert_string_equal(id, "");
    assert_int_equal(trellis_ueid_from_point(point, ueid), TRELLIS_ERR_BAD_KEY);
    for (size_t i = 0; i < sizeof(ueid); i++) {
        assert_int_equal(ueid[i], 0);
    }
}

/* A port over a fixed point that signs with a constant, to test the checked calls. */
static int signs;
static trellis_err_t fake_public_key(void *ctx, uint8_t point[65])
{
    memcpy(point, ctx, 65);
    return TRELLIS_OK;
}
static trellis_err_t fake_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    signs++;
    memcpy(sig, digest, 32);
    memcpy(sig + 32, digest, 32);
    return TRELLIS_OK;
}
static trellis_err_t fake_report(void *ctx, trellis_rot_report_t *out)
{
    (void)ctx;
    memset(out, 0, sizeof(*out));
    return TRELLIS_OK; /* no measurements: must be refused by trellis_rot_report */
}
static trellis_err_t failing_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    (void)digest;
    memset(sig, 0xaa, 64); /* garbage the checked call must wipe */
    return TRELLIS_ERR_UNAVAILABLE;
}

static void test_port_checks(void **state)
{
    (void)state;
    uint8_t point[65];
    memcpy(point, g_point, sizeof(point));
    trellis_rot_port_t port = {TRELLIS_ROT_PORT_VERSION, point, fake_public_key, fake_sign,
                               fake_report};
    uint8_t digest[32];
    uint8_t sig[64];
    uint8_t out[65];
    char id[33];
    trellis_rot_report_t report;

    memset(digest, 7, sizeof(digest));
    assert_int_equal(trellis_rot_port_check(&port), TRELLIS_OK);
    assert_int_equal(trellis_rot_device_id(&port, id), TRELLIS_OK);
    assert_string_equal(id, g_device_id);
    signs = 0;
    assert_int_equal(trellis_rot_sign_digest(&port, digest, sig), TRELLIS_OK);
    assert_int_equal(signs, 1);
    assert_memory_equal(sig, digest, 32);
    assert_int_equal(trellis_rot_report(&port, &report), TRELLIS_ERR_INTERNAL);

    port.version = 2;
    assert_int_equal(trellis_rot_port_check(&port), TRELLIS_ERR_CONFIG);
    assert_int_equal(trellis_rot_sign_digest(&port, digest, sig), TRELLIS_ERR_CONFIG);
    assert_int_equal(signs, 1);
    port.version = TRELLIS_ROT_PORT_VERSION;
    port.sign_digest = NULL;
    assert_int_equal(trellis_rot_port_check(&port), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_rot_port_check(NULL), TRELLIS_ERR_INVALID_ARG);

    port.sign_digest = failing_sign;
    assert_int_equal(trellis_rot_sign_digest(&port, digest, sig), TRELLIS_ERR_UNAVAILABLE);
    for (size_t i = 0; i < sizeof(sig); i++) {
        assert_int_equal(sig[i], 0);
    }
    /* A port handing out a compressed point is refused. */
    point[0] = 0x03;
    assert_int_equal(trellis_rot_public_key(&port, out), TRELLIS_ERR_BAD_KEY);
    assert_int_equal(trellis_rot_device_id(&port, id), TRELLIS_ERR_BAD_KEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vector),
        cmocka_unit_test(test_agrees_with_token_library),
        cmocka_unit_test(test_refuses_other_forms),
        cmocka_unit_test(test_port_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
