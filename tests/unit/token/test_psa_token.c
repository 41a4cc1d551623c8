#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "test_support.h"
#include "token_test_util.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/psa_token.h"

static EVP_PKEY *key;
static EVP_PKEY *other_key;
static trellis_signer_t signer;

static int setup(void **state)
{
    (void)state;
    if (trellis_p256_generate(&key) != TRELLIS_OK ||
        trellis_p256_generate(&other_key) != TRELLIS_OK)
        return -1;
    return trellis_signer_from_pkey(key, &signer) == TRELLIS_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
    return 0;
}

/* A complete RFC 9783 claims-set, as a Trellis device makes it. */
static void default_claims(trellis_psa_claims_t *c)
{
    trellis_psa_claims_init(c);
    memset(c->nonce, 0x11, 32);
    c->nonce_len = 32;
    c->has_instance_id = true;
    c->instance_id[0] = 0x01;
    memset(c->instance_id + 1, 0x22, 32);
    c->has_implementation_id = true;
    memset(c->implementation_id, 0x33, 32);
    c->has_client_id = true;
    c->client_id = -1;
    c->has_lifecycle = true;
    c->lifecycle = TRELLIS_PSA_LIFECYCLE_SECURED;
    memset(c->boot_seed, 0x44, 32);
    c->boot_seed_len = 32;
    c->sw_component_count = 1;
    trellis_psa_sw_component_t *s = &c->sw_components[0];
    s->has_measurement_type = true;
    snprintf(s->measurement_type, sizeof(s->measurement_type), "App");
    memset(s->measurement_value, 0x55, 32);
    s->measurement_value_len = 32;
    s->has_version = true;
    snprintf(s->version, sizeof(s->version), "0.1.0");
    s->has_measurement_desc = true;
    snprintf(s->measurement_desc, sizeof(s->measurement_desc), "sha-256");
}

static void assert_claims_equal(const trellis_psa_claims_t *a, const trellis_psa_claims_t *b)
{
    assert_int_equal(a->profile, b->profile);
    assert_int_equal(a->profile_implied, b->profile_implied);
    assert_int_equal(a->nonce_len, b->nonce_len);
    assert_memory_equal(a->nonce, b->nonce, a->nonce_len);
    assert_int_equal(a->has_instance_id, b->has_instance_id);
    assert_memory_equal(a->instance_id, b->instance_id, sizeof(a->instance_id));
    assert_int_equal(a->has_implementation_id, b->has_implementation_id);
    assert_memory_equal(a->implementation_id, b->implementation_id, 32);
    assert_int_equal(a->has_client_id, b->has_client_id);
    assert_int_equal(a->client_id, b->client_id);
    assert_int_equal(a->has_lifecycle, b->has_lifecycle);
    assert_int_equal(a->lifecycle, b->lifecycle);
    assert_int_equal(a->boot_seed_len, b->boot_seed_len);
    assert_memory_equal(a->boot_seed, b->boot_seed, a->boot_seed_len);
    assert_int_equal(a->has_certification_reference, b->has_certification_reference);
    assert_string_equal(a->certification_reference, b->certification_reference);
    assert_int_equal(a->has_verification_service, b->has_verification_service);
    assert_string_equal(a->verification_service, b->verification_service);
    assert_int_equal(a->no_sw_measurements, b->no_sw_measurements);
    assert_int_equal(a->sw_component_count, b->sw_component_count);
    for (size_t i = 0; i < a->sw_component_count; i++) {
        const trellis_psa_sw_component_t *x = &a->sw_components[i], *y = &b->sw_components[i];
        assert_int_equal(x->has_measurement_type, y->has_measurement_type);
        assert_string_equal(x->measurement_type, y->measurement_type);
        assert_int_equal(x->measurement_value_len, y->measurement_value_len);
        assert_memory_equal(x->measurement_value, y->measurement_value, x->measurement_value_len);
        assert_int_equal(x->has_version, y->has_version);
        assert_string_equal(x->version, y->version);
        assert_int_equal(x->signer_id_len, y->signer_id_len);
        assert_memory_equal(x->signer_id, y->signer_id, x->signer_id_len);
        assert_int_equal(x->has_measurement_desc, y->has_measurement_desc);
        assert_string_equal(x->measurement_desc, y->measurement_desc);
    }
}

static size_t make_token(const trellis_psa_claims_t *c, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    trellis_reason_t reason = {{0}};
    trellis_err_t err = trellis_psa_token_encode(c, NULL, 0, &signer, buf, cap, &len, &reason);
    if (err != TRELLIS_OK)
        print_error("encode: %s\n", reason.text);
    assert_int_equal(err, TRELLIS_OK);
    return len;
}

static void test_token_round_trip(void **state)
{
    (void)state;
    trellis_psa_claims_t in, out;
    default_claims(&in);
    uint8_t buf[2048];
    size_t len = make_token(&in, buf, sizeof(buf));
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_token_verify(buf, len, key, in.nonce, 32, &out, &reason),
                     TRELLIS_OK);
    assert_string_equal(reason.text, "");
    assert_claims_equal(&in, &out);

    /* Without an expected nonce the claims still come back. */
    assert_int_equal(trellis_psa_token_verify(buf, len, key, NULL, 0, &out, &reason), TRELLIS_OK);
    assert_claims_equal(&in, &out);
    assert_int_equal(trellis_psa_token_decode_unverified(buf, len, &out, &reason), TRELLIS_OK);
    assert_claims_equal(&in, &out);

    /* Wrong nonce, wrong nonce length, wrong key. */
    uint8_t nonce[64];
    memcpy(nonce, in.nonce, 32);
    nonce[31] ^= 1;
    assert_int_equal(trellis_psa_token_verify(buf, len, key, nonce, 32, &out, &reason),
                     TRELLIS_ERR_TOKEN_NONCE);
    assert_true(contains(reason.text, "not the expected one"));
    assert_int_equal(out.nonce_len, 0);
    assert_false(out.has_instance_id);
    memcpy(nonce, in.nonce, 32);
    assert_int_equal(trellis_psa_token_verify(buf, len, key, nonce, 31, &out, &reason),
                     TRELLIS_ERR_TOKEN_NONCE);
    assert_int_equal(trellis_psa_token_verify(buf, len, key, nonce, 48, &out, &reason),
                     TRELLIS_ERR_TOKEN_NONCE);
    assert_int_equal(trellis_psa_token_verify(buf, len, other_key, in.nonce, 32, &out, &reason),
                     TRELLIS_ERR_TOKEN_SIGNATURE);
    assert_int_equal(trellis_psa_token_verify(buf, len, key, in.nonce, 32, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_token_with_kid_and_size_query(void **state)
{
    (void)state;
    trellis_psa_claims_t in, out;
    default_claims(&in);
    const uint8_t kid[] = "device-7";
    size_t need = 0;
    trellis_reason_t reason = {{0}};
    assert_int_equal(
        trellis_psa_token_encode(&in, kid, sizeof(kid) - 1, &signer, NULL, 0, &need, &reason),
        TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(need > 100);
    uint8_t *buf = malloc(need);
    assert_non_null(buf);
    size_t len = 0;
    assert_int_equal(
        trellis_psa_token_encode(&in, kid, sizeof(kid) - 1, &signer, buf, need - 1, &len, &reason),
        TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, need);
    assert_int_equal(
        trellis_psa_token_encode(&in, kid, sizeof(kid) - 1, &signer, buf, need, &len, &reason),
        TRELLIS_OK);
    assert_int_equal(len, need);
    trellis_cose_sign1_t msg;
    assert_int_equal(trellis_cose_sign1_verify(buf, len, key, &msg, &reason), TRELLIS_OK);
    assert_int_equal(msg.kid_len, sizeof(kid) - 1);
    assert_int_equal(trellis_psa_token_verify(buf, len, key, in.nonce, 32, &out, &reason),
                     TRELLIS_OK);
    assert_claims_equal(&in, &out);
    free(buf);

    /* Bad arguments. */
    uint8_t small[8];
    assert_int_equal(trellis_psa_token_encode(&in, NULL, 0, NULL, small, 8, &len, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_psa_token_encode(&in, kid, 0, &signer, small, 8, &len, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_psa_token_encode(&in, NULL, 0, &signer, small, 8, NULL, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_psa_token_encode(NULL, NULL, 0, &signer, small, 8, &len, &reason),
                     TRELLIS_ERR_INVALID_ARG);
}

/* The payload is the claims encoder's output, and that is the expected CBOR. */
static void test_claims_encoding_known_answer(void **state)
{
    (void)state;
    /* The RFC 9783 Appendix A.1 claims, rebuilt from a struct, encode to the same claims map
     * except for the order, which follows the CDDL of §6. */
    trellis_psa_claims_t c;
    trellis_psa_claims_init(&c);
    memset(c.nonce, 0x01, 32);
    c.nonce_len = 32;
    c.has_instance_id = true;
    c.instance_id[0] = 1;
    memset(c.instance_id + 1, 0x02, 32);
    c.has_implementation_id = true;
    c.has_client_id = true;
    c.client_id = 2147483647;
    c.has_lifecycle = true;
    c.lifecycle = 12288;
    c.boot_seed_len = 8;
    c.sw_component_count = 1;
    memset(c.sw_components[0].measurement_value, 3, 32);
    c.sw_components[0].measurement_value_len = 32;
    memset(c.sw_components[0].signer_id, 4, 32);
    c.sw_components[0].signer_id_len = 32;
    uint8_t buf[512];
    size_t len = 0;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_claims_encode(&c, buf, sizeof(buf), &len, &reason), TRELLIS_OK);
    tb_t want;
    tb_reset(&want);
    tb_hexraw(&want, "a8"
                     "0a5820");
    for (int i = 0; i < 32; i++)
        tb_hexraw(&want, "01");
    tb_hexraw(&want, "190100582101");
    for (int i = 0; i < 32; i++)
        tb_hexraw(&want, "02");
    tb_hexraw(&want, "190109782174"
                     "61673a70736163657274"
                     "69666965642e6f72672c323032333a70"
                     "73612374666d");
    tb_hexraw(&want, "19095c5820");
    for (int i = 0; i < 32; i++)
        tb_hexraw(&want, "00");
    tb_hexraw(&want, "19095a1a7fffffff"
                     "19095b193000"
                     "19095d480000000000000000"
                     "19095f81a2"
                     "025820");
    for (int i = 0; i < 32; i++)
        tb_hexraw(&want, "03");
    tb_hexraw(&want, "055820");
    for (int i = 0; i < 32; i++)
        tb_hexraw(&want, "04");
    assert_int_equal(len, want.n);
    assert_memory_equal(buf, want.b, want.n);

    size_t need = 0;
    assert_int_equal(trellis_psa_claims_encode(&c, NULL, 0, &need, &reason),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, len);

    /* and the decoder reads it back */
    trellis_psa_claims_t back;
    assert_int_equal(trellis_psa_claims_decode(buf, len, &back, &reason), TRELLIS_OK);
    assert_claims_equal(&c, &back);
}

static bool has_bytes(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t len)
{
    for (size_t i = 0; i + len <= hay_len; i++) {
        if (memcmp(hay + i, needle, len) == 0)
            return true;
    }
    return false;
}

static void test_old_profiles_round_trip(void **state)
{
    (void)state;
    trellis_psa_claims_t in, out;
    uint8_t buf[2048];
    size_t len;
    trellis_reason_t reason = {{0}};

    default_claims(&in);
    in.profile = TRELLIS_PSA_PROFILE_2_0_0;
    snprintf(in.certification_reference, sizeof(in.certification_reference), "1234567890123-12345");
    in.has_certification_reference = true;
    snprintf(in.verification_service, sizeof(in.verification_service), "https://v.example");
    in.has_verification_service = true;
    len = make_token(&in, buf, sizeof(buf));
    assert_int_equal(trellis_psa_token_verify(buf, len, key, NULL, 0, &out, &reason), TRELLIS_OK);
    assert_claims_equal(&in, &out);

    /* PSA_IOT_PROFILE_1: the old keys, with and without the profile claim, and the
     * "no software measurements" claim. */
    default_claims(&in);
    in.profile = TRELLIS_PSA_PROFILE_IOT_1;
    snprintf(in.certification_reference, sizeof(in.certification_reference), "1234567890123");
    in.has_certification_reference = true;
    len = make_token(&in, buf, sizeof(buf));
    assert_int_equal(trellis_psa_token_verify(buf, len, key, in.nonce, 32, &out, &reason),
                     TRELLIS_OK);
    assert_claims_equal(&in, &out);
    /* the nonce sits under -75008: 0x3a 0x00 0x01 0x24 0xff */
    const uint8_t old_nonce_key[] = {0x3a, 0x00, 0x01, 0x24, 0xff};
    assert_true(has_bytes(buf, len, old_nonce_key, sizeof(old_nonce_key)));

    in.profile_implied = true;
    in.sw_component_count = 0;
    in.no_sw_measurements = true;
    len = make_token(&in, buf, sizeof(buf));
    assert_int_equal(trellis_psa_token_verify(buf, len, key, in.nonce, 32, &out, &reason),
                     TRELLIS_OK);
    assert_claims_equal(&in, &out);
    assert_true(out.profile_implied);
}

/* ---- the claims-set on the wire, case by case ---- */

/*
 * A tiny notation for CBOR values, so each case fits on a line: space-separated items,
 * u:N uint, i:N int, b:N:XX bstr of N bytes XX, r:N:XX N raw bytes XX, t:TEXT text, m:N map
 * head, a:N array head, x:HEX raw bytes.
 */
static void tb_spec(tb_t *t, const char *spec)
{
    char item[256];
    while (*spec != '\0') {
        while (*spec == ' ')
            spec++;
        size_t n = strcspn(spec, " ");
        assert_true(n < sizeof(item));
        memcpy(item, spec, n);
        item[n] = '\0';
        spec += n;
        if (n == 0)
            break;
        char kind = item[0];
        const char *arg = item + 2;
        if (kind == 'u') {
            tb_uint(t, strtoull(arg, NULL, 0));
        } else if (kind == 'i') {
            tb_int(t, strtoll(arg, NULL, 0));
        } else if (kind == 'b' || kind == 'r') {
            char *end;
            unsigned long count = strtoul(arg, &end, 10);
            unsigned long byte = strtoul(end + 1, NULL, 16);
            if (kind == 'b') {
                tb_bstr_fill(t, (uint8_t)byte, count);
            } else {
                for (unsigned long k = 0; k < count; k++) {
                    uint8_t v = (uint8_t)byte;
                    tb_raw(t, &v, 1);
                }
            }
        } else if (kind == 't') {
            tb_tstr(t, arg);
        } else if (kind == 'm') {
            tb_map(t, strtoul(arg, NULL, 0));
        } else if (kind == 'a') {
            tb_array(t, strtoul(arg, NULL, 0));
        } else if (kind == 'x') {
            tb_hexraw(t, arg);
        } else {
            fail_msg("bad spec item %s", item);
        }
    }
}

struct base_entry {
    int64_t key;
    const char *value;
};

static const struct base_entry base_rfc[] = {
    {10, "b:32:11"},
    {256, "x:582101 r:32:22"},
    {265, "t:tag:psacertified.org,2023:psa#tfm"},
    {2396, "b:32:33"},
    {2394, "i:-1"},
    {2395, "u:12288"},
    {2397, "b:32:44"},
    {2399, "a:1 m:2 u:1 t:App u:2 b:32:55"},
};

static const struct base_entry base_old[] = {
    {-75008, "b:32:11"},
    {-75009, "x:582101 r:32:22"},
    {-75000, "t:PSA_IOT_PROFILE_1"},
    {-75003, "b:32:33"},
    {-75001, "i:-1"},
    {-75002, "u:12288"},
    {-75004, "b:32:44"},
    {-75006, "a:1 m:2 u:1 t:App u:2 b:32:55"},
};

#define NONE 0 /* no claim has key 0 */

struct claim_case {
    const char *name;
    bool old;          /* start from the PSA_IOT_PROFILE_1 base */
    int64_t key;       /* base entry to replace or drop, NONE for none */
    const char *value; /* its new value, NULL to drop it */
    const char *extra; /* spec of one more entry (key then value), or NULL */
    trellis_err_t err;
    const char *reason;
};

/* One minimal software component. */
#define SW "m:1 u:2 b:32:55 "

static const struct claim_case claim_cases[] = {
    /* accepted variations */
    {"base", false, NONE, NULL, NULL, TRELLIS_OK, ""},
    {"nonce 48", false, 10, "b:48:11", NULL, TRELLIS_OK, ""},
    {"nonce 64", false, 10, "b:64:11", NULL, TRELLIS_OK, ""},
    {"nonce non-preferred key", false, 10, NULL, "x:180a b:32:11", TRELLIS_OK, ""},
    {"boot seed 8", false, 2397, "b:8:44", NULL, TRELLIS_OK, ""},
    {"boot seed absent", false, 2397, NULL, NULL, TRELLIS_OK, ""},
    {"unknown int claim", false, NONE, NULL, "u:99 m:1 t:x a:2 u:1 b:3:00", TRELLIS_OK, ""},
    {"unknown text claim", false, NONE, NULL, "t:iat u:1700000000", TRELLIS_OK, ""},
    {"old key ignored", false, NONE, NULL, "i:-75008 t:not-a-nonce", TRELLIS_OK, ""},
    {"client id spe", false, 2394, "u:2147483647", NULL, TRELLIS_OK, ""},
    {"client id min", false, 2394, "i:-2147483648", NULL, TRELLIS_OK, ""},
    {"profile 2.0.0", false, 265, "t:http://arm.com/psa/2.0.0", NULL, TRELLIS_OK, ""},
    {"cert ref", false, NONE, NULL, "u:2398 t:1234567890123-12345", TRELLIS_OK, ""},
    {"vsi", false, NONE, NULL, "u:2400 t:https://veraison.example/v1", TRELLIS_OK, ""},
    {"component full", false, 2399,
     "a:1 m:6 u:1 t:BL u:2 b:48:55 u:4 t:1.2 u:5 b:64:66 u:6 t:sha-384 u:9 a:0", NULL, TRELLIS_OK,
     ""},
    {"lifecycle non-psa-rot-debug", false, 2395, "u:0x4001", NULL, TRELLIS_OK, ""},
    {"old base", true, NONE, NULL, NULL, TRELLIS_OK, ""},
    {"old implied profile", true, -75000, NULL, NULL, TRELLIS_OK, ""},
    {"old no sw measurements", true, -75006, NULL, "i:-75007 u:1", TRELLIS_OK, ""},
    {"old ean13", true, NONE, NULL, "i:-75005 t:1234567890123", TRELLIS_OK, ""},
    {"old new nonce ignored", true, NONE, NULL, "u:10 t:x", TRELLIS_OK, ""},

    /* shape */
    {"not a map", false, NONE, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM, "not a CBOR map"},
    {"duplicate nonce", false, NONE, NULL, "u:10 b:32:11", TRELLIS_ERR_TOKEN_CLAIM,
     "key 10 appears twice"},
    {"duplicate nonce non-preferred", false, NONE, NULL, "x:180a b:32:11", TRELLIS_ERR_TOKEN_CLAIM,
     "key 10 appears twice"},
    {"duplicate unknown", false, NONE, NULL, "u:2394 i:-1", TRELLIS_ERR_TOKEN_CLAIM,
     "key 2394 appears twice"},
    {"bstr key", false, NONE, NULL, "b:1:00 u:1", TRELLIS_ERR_TOKEN_CLAIM,
     "neither an integer nor a text string"},
    {"deep unknown", false, NONE, NULL,
     "u:99 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 a:1 u:0",
     TRELLIS_ERR_TOKEN_MALFORMED, "nesting deeper than 16"},
    {"indefinite value", false, NONE, NULL, "u:99 x:5f41014102ff", TRELLIS_ERR_TOKEN_MALFORMED,
     "indefinite-length"},
    {"reserved byte", false, NONE, NULL, "u:99 x:fc", TRELLIS_ERR_TOKEN_MALFORMED, "reserved"},

    /* nonce (RFC 9783 §4.1.1) */
    {"nonce missing", false, 10, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 10 (nonce) is missing"},
    {"nonce 31", false, 10, "b:31:11", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 10 (nonce) has 31 bytes, expected 32, 48 or 64"},
    {"nonce 65", false, 10, "b:65:11", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 65 bytes"},
    {"nonce 0", false, 10, "b:0:11", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 0 bytes"},
    {"nonce array", false, 10, "a:1 b:32:11", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "is an array; RFC 9783 section 4.1.1 allows a single value"},
    {"nonce text", false, 10, "t:abc", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 10 (nonce) is not a byte string"},

    /* instance id (§4.2.1) */
    {"ueid missing", false, 256, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 256 (instance id) is missing"},
    {"ueid 32", false, 256, "b:32:01", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 32 bytes, expected 33"},
    {"ueid 34", false, 256, "b:34:01", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 34 bytes, expected 33"},
    {"ueid type", false, 256, "x:582102 r:32:22", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "UEID type 0x02, expected 0x01"},
    {"ueid int", false, 256, "u:1", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is not a byte string"},

    /* implementation id (§4.2.2) */
    {"impl missing", false, 2396, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 2396 (implementation id) is missing"},
    {"impl 31", false, 2396, "b:31:33", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 31 bytes, expected 32"},
    {"impl text", false, 2396, "t:x", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is not a byte string"},

    /* client id (§4.1.2) */
    {"client missing", false, 2394, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 2394 (client id) is missing"},
    {"client zero", false, 2394, "u:0", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is 0, which is not"},
    {"client big", false, 2394, "u:2147483648", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "outside the 32-bit signed range"},
    {"client small", false, 2394, "i:-2147483649", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "outside the 32-bit signed range"},
    {"client text", false, 2394, "t:1", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is not an integer"},

    /* lifecycle (§4.3.1) */
    {"lifecycle missing", false, 2395, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 2395 (security lifecycle) is missing"},
    {"lifecycle ffff", false, 2395, "u:0xffff", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "0xffff is not a lifecycle state"},
    {"lifecycle 7000", false, 2395, "u:0x7000", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "not a lifecycle state"},
    {"lifecycle 17 bits", false, 2395, "u:0x13000", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "larger than 16 bits"},
    {"lifecycle negative", false, 2395, "i:-1", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "is not an unsigned integer"},

    /* boot seed (§4.3.2) */
    {"boot seed 7", false, 2397, "b:7:44", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 2397 (boot seed) has 7 bytes, expected 8 to 32"},
    {"boot seed 33", false, 2397, "b:33:44", NULL, TRELLIS_ERR_TOKEN_CLAIM, "has 33 bytes"},
    {"boot seed text", false, 2397, "t:x", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is not a byte string"},

    /* texts */
    {"cert ref format", false, NONE, NULL, "u:2398 t:1234567890123", TRELLIS_ERR_TOKEN_CLAIM,
     "is not 13 digits, '-', 5 digits"},
    {"cert ref letters", false, NONE, NULL, "u:2398 t:123456789012a-12345", TRELLIS_ERR_TOKEN_CLAIM,
     "is not 13 digits"},
    {"cert ref bstr", false, NONE, NULL, "u:2398 b:19:30", TRELLIS_ERR_TOKEN_CLAIM,
     "is not a text string"},
    {"vsi int", false, NONE, NULL, "u:2400 u:1", TRELLIS_ERR_TOKEN_CLAIM, "is not a text string"},
    {"vsi bad utf8", false, NONE, NULL, "u:2400 x:62c328", TRELLIS_ERR_TOKEN_CLAIM,
     "is not valid UTF-8"},
    {"vsi overlong utf8", false, NONE, NULL, "u:2400 x:62c0af", TRELLIS_ERR_TOKEN_CLAIM,
     "is not valid UTF-8"},
    {"vsi nul", false, NONE, NULL, "u:2400 x:626100", TRELLIS_ERR_TOKEN_CLAIM, "contains NUL"},
    {"vsi too long", false, NONE, NULL, "u:2400 x:7880 r:128:61", TRELLIS_ERR_TOKEN_CLAIM,
     "128 bytes long, more than the 127"},

    /* profile (§4.5.2) */
    {"profile missing", false, 265, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 265 (profile) is missing"},
    {"profile unknown", false, 265, "t:http://arm.com/psa/3.0.0", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "\"http://arm.com/psa/3.0.0\" is not a PSA profile"},
    {"profile bstr", false, 265, "b:3:00", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 265 (profile) is not a text string"},
    {"profile old name on new key", false, 265, "t:PSA_IOT_PROFILE_1", NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "is not a PSA profile"},

    /* software components (§4.4.1) */
    {"sw missing", false, 2399, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim 2399 (software components) is missing or empty"},
    {"sw empty", false, 2399, "a:0", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is empty"},
    {"sw map", false, 2399, "m:0", NULL, TRELLIS_ERR_TOKEN_CLAIM, "is not an array"},
    {"sw entry not map", false, 2399, "a:1 b:32:55", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "entry 0 is not a map"},
    {"sw no measurement", false, 2399, "a:2 m:1 u:2 b:32:55 m:1 u:1 t:BL", NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "entry 1 has no measurement value (key 2)"},
    {"sw measurement 31", false, 2399, "a:1 m:1 u:2 b:31:55", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "measurement value (2) has 31 bytes"},
    {"sw measurement text", false, 2399, "a:1 m:1 u:2 t:x", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "measurement value (2) is not a byte string"},
    {"sw signer 20", false, 2399, "a:1 m:2 u:2 b:32:55 u:5 b:20:66", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "signer id (5) has 20 bytes"},
    {"sw type int", false, 2399, "a:1 m:2 u:2 b:32:55 u:1 u:1", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "measurement type (1) is not a text string"},
    {"sw version bstr", false, 2399, "a:1 m:2 u:2 b:32:55 u:4 b:1:00", NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "version (4) is not a text string"},
    {"sw desc too long", false, 2399, "a:1 m:2 u:2 b:32:55 u:6 x:7840 r:64:61", NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "measurement description (6) is 64 bytes long"},
    {"sw duplicate attr", false, 2399, "a:1 m:2 u:2 b:32:55 u:2 b:32:55", NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "key 2 appears twice"},
    {"sw too many", false, 2399, "a:17 " SW SW SW SW SW SW SW SW SW SW SW SW SW SW SW SW SW, NULL,
     TRELLIS_ERR_TOKEN_CLAIM, "17 entries, more than the 16 accepted"},
    {"sw sixteen", false, 2399, "a:16 " SW SW SW SW SW SW SW SW SW SW SW SW SW SW SW SW, NULL,
     TRELLIS_OK, ""},
    {"no sw on new keys", false, NONE, NULL, "i:-75007 u:1", TRELLIS_OK, ""},

    /* PSA_IOT_PROFILE_1 */
    {"old wrong profile", true, -75000, "t:http://arm.com/psa/2.0.0", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim -75000 (profile) is not the text \"PSA_IOT_PROFILE_1\""},
    {"old boot seed 16", true, -75004, "b:16:44", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim -75004 (boot seed) has 16 bytes, expected 32 in PSA_IOT_PROFILE_1"},
    {"old boot seed missing", true, -75004, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim -75004 (boot seed) is missing"},
    {"old both sw", true, NONE, NULL, "i:-75007 u:1", TRELLIS_ERR_TOKEN_CLAIM,
     "exclude each other"},
    {"old no sw 2", true, -75006, NULL, "i:-75007 u:2", TRELLIS_ERR_TOKEN_CLAIM,
     "is not the unsigned integer 1"},
    {"old ean13 with suffix", true, NONE, NULL, "i:-75005 t:1234567890123-12345", TRELLIS_OK, ""},
    {"old ean13 short", true, NONE, NULL, "i:-75005 t:123456789012", TRELLIS_ERR_TOKEN_CLAIM,
     "optionally followed by"},
    {"2.0.0 ean13", false, 265, "t:http://arm.com/psa/2.0.0", "u:2398 t:1234567890123", TRELLIS_OK,
     ""},
    {"old client missing", true, -75001, NULL, NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim -75001 (client id) is missing"},
    {"old nonce 31", true, -75008, "b:31:11", NULL, TRELLIS_ERR_TOKEN_CLAIM,
     "claim -75008 (nonce) has 31 bytes"},
};

static void build_claims(tb_t *t, const struct claim_case *c)
{
    const struct base_entry *base = c->old ? base_old : base_rfc;
    size_t n =
        c->old ? sizeof(base_old) / sizeof(base_old[0]) : sizeof(base_rfc) / sizeof(base_rfc[0]);
    tb_reset(t);
    if (strcmp(c->name, "not a map") == 0) {
        tb_array(t, 0);
        return;
    }
    size_t count = n + (c->extra != NULL) - (c->key != NONE && c->value == NULL);
    tb_map(t, count);
    for (size_t i = 0; i < n; i++) {
        const char *value = base[i].value;
        if (base[i].key == c->key) {
            if (c->value == NULL)
                continue;
            value = c->value;
        }
        tb_int(t, base[i].key);
        tb_spec(t, value);
    }
    if (c->extra != NULL)
        tb_spec(t, c->extra);
}

static void test_claim_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(claim_cases) / sizeof(claim_cases[0]); i++) {
        const struct claim_case *c = &claim_cases[i];
        tb_t t;
        build_claims(&t, c);
        trellis_psa_claims_t claims;
        trellis_reason_t reason = {{0}};
        trellis_err_t err = trellis_psa_claims_decode(t.b, t.n, &claims, &reason);
        if (err != c->err || !contains(reason.text, c->reason))
            fail_msg("case \"%s\": got %s \"%s\", wanted %s \"%s\"", c->name, trellis_err_name(err),
                     reason.text, trellis_err_name(c->err), c->reason);
        if (err != TRELLIS_OK) {
            assert_int_equal(claims.nonce_len, 0);
            assert_int_equal(claims.sw_component_count, 0);
        }

        /* The same claims-set as the payload of a signed token gives the same answer. */
        uint8_t token[8192];
        size_t len = 0;
        assert_int_equal(
            trellis_cose_sign1_encode(t.b, t.n, NULL, 0, &signer, token, sizeof(token), &len),
            TRELLIS_OK);
        trellis_reason_t r2 = {{0}};
        assert_int_equal(trellis_psa_token_verify(token, len, key, NULL, 0, &claims, &r2), c->err);
        assert_string_equal(r2.text, reason.text);
        if (c->err == TRELLIS_OK) {
            /* and re-encoding what was decoded is accepted again */
            uint8_t again[8192];
            trellis_psa_claims_t back;
            len = make_token(&claims, again, sizeof(again));
            assert_int_equal(trellis_psa_token_verify(again, len, key, NULL, 0, &back, &r2),
                             TRELLIS_OK);
            assert_claims_equal(&claims, &back);
        }
    }
}

static void test_claim_case_details(void **state)
{
    (void)state;
    tb_t t;
    trellis_psa_claims_t claims;
    trellis_reason_t reason = {{0}};

    const struct claim_case full = {"component full",
                                    false,
                                    2399,
                                    "a:1 m:6 u:1 t:BL u:2 b:48:55 u:4 t:1.2 u:5 b:64:66 u:6 "
                                    "t:sha-384 u:9 a:0",
                                    NULL,
                                    TRELLIS_OK,
                                    ""};
    build_claims(&t, &full);
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, &claims, &reason), TRELLIS_OK);
    assert_int_equal(claims.profile, TRELLIS_PSA_PROFILE_TFM);
    assert_int_equal(claims.client_id, -1);
    assert_int_equal(claims.lifecycle, 0x3000);
    assert_int_equal(claims.sw_component_count, 1);
    assert_string_equal(claims.sw_components[0].measurement_type, "BL");
    assert_int_equal(claims.sw_components[0].measurement_value_len, 48);
    assert_string_equal(claims.sw_components[0].version, "1.2");
    assert_int_equal(claims.sw_components[0].signer_id_len, 64);
    assert_string_equal(claims.sw_components[0].measurement_desc, "sha-384");

    const struct claim_case implied = {"old implied", true, -75000, NULL, NULL, TRELLIS_OK, ""};
    build_claims(&t, &implied);
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, &claims, &reason), TRELLIS_OK);
    assert_int_equal(claims.profile, TRELLIS_PSA_PROFILE_IOT_1);
    assert_true(claims.profile_implied);

    /* A claims-set with the new nonce but no profile at all is refused. */
    tb_reset(&t);
    tb_spec(&t, "m:1 u:10 b:32:11");
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, &claims, &reason),
                     TRELLIS_ERR_TOKEN_CLAIM);
    assert_true(contains(reason.text, "claim 265 (profile) is missing"));

    /* Trailing bytes after the claims map, truncation, size and NULLs. */
    build_claims(&t, &full);
    tb_spec(&t, "u:0");
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, &claims, &reason),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_true(contains(reason.text, "1 bytes after the claims map"));
    build_claims(&t, &full);
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n - 1, &claims, &reason),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_true(contains(reason.text, "truncated"));
    assert_int_equal(trellis_psa_claims_decode(t.b, 0, &claims, &reason),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_int_equal(trellis_psa_claims_decode(t.b, 5000, &claims, &reason), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_psa_claims_decode(NULL, 3, &claims, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, NULL, &reason), TRELLIS_ERR_INVALID_ARG);

    /* More claims than the decoder keeps track of. */
    tb_reset(&t);
    tb_map(&t, 65);
    for (int i = 0; i < 65; i++) {
        tb_uint(&t, 1000 + (uint64_t)i);
        tb_uint(&t, 0);
    }
    assert_int_equal(trellis_psa_claims_decode(t.b, t.n, &claims, &reason),
                     TRELLIS_ERR_TOKEN_CLAIM);
    assert_true(contains(reason.text, "65 claims, more than the 64"));
}

/* The encoder refuses what the decoder refuses. */
static void test_validate_and_encode_refuse_bad_structs(void **state)
{
    (void)state;
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    uint8_t buf[2048];
    size_t len = 0;

#define EXPECT_REFUSED(stmt, why)                                                                  \
    do {                                                                                           \
        default_claims(&c);                                                                        \
        stmt;                                                                                      \
        assert_int_equal(trellis_psa_claims_validate(&c, &reason), TRELLIS_ERR_TOKEN_CLAIM);       \
        assert_true(contains(reason.text, why));                                                   \
        assert_int_equal(                                                                          \
            trellis_psa_token_encode(&c, NULL, 0, &signer, buf, sizeof(buf), &len, &reason),       \
            TRELLIS_ERR_TOKEN_CLAIM);                                                              \
        assert_int_equal(len, 0);                                                                  \
        assert_int_equal(trellis_psa_claims_encode(&c, buf, sizeof(buf), &len, &reason),           \
                         TRELLIS_ERR_TOKEN_CLAIM);                                                 \
    } while (0)

    EXPECT_REFUSED(c.nonce_len = 0, "claim 10 (nonce) is missing");
    EXPECT_REFUSED(c.nonce_len = 33, "has 33 bytes, expected 32, 48 or 64");
    EXPECT_REFUSED(c.has_instance_id = false, "instance id) is missing");
    EXPECT_REFUSED(c.instance_id[0] = 2, "UEID type 0x02");
    EXPECT_REFUSED(c.has_implementation_id = false, "implementation id) is missing");
    EXPECT_REFUSED(c.has_client_id = false, "client id) is missing");
    EXPECT_REFUSED(c.client_id = 0, "is 0");
    EXPECT_REFUSED(c.has_lifecycle = false, "lifecycle) is missing");
    EXPECT_REFUSED(c.lifecycle = 0x8000, "0x8000 is not a lifecycle state");
    EXPECT_REFUSED(c.boot_seed_len = 4, "has 4 bytes, expected 8 to 32");
    EXPECT_REFUSED(
        (c.has_certification_reference = true, snprintf(c.certification_reference, 20, "12345")),
        "is not 13 digits");
    EXPECT_REFUSED(c.sw_component_count = 0, "missing or empty");
    EXPECT_REFUSED(c.sw_component_count = 17, "more than 16 entries");
    EXPECT_REFUSED(c.sw_components[0].measurement_value_len = 0, "no measurement value");
    EXPECT_REFUSED(c.sw_components[0].measurement_value_len = 20, "measurement value has 20");
    EXPECT_REFUSED(c.sw_components[0].signer_id_len = 20, "signer id has 20");
    EXPECT_REFUSED(memset(c.sw_components[0].version, 'v', sizeof(c.sw_components[0].version)),
                   "not UTF-8 or too long");
    EXPECT_REFUSED((c.has_verification_service = true, c.verification_service[0] = (char)0xff),
                   "verification service indicator) is not UTF-8");
    EXPECT_REFUSED(c.no_sw_measurements = true, "exists only in PSA_IOT_PROFILE_1");
    EXPECT_REFUSED(c.profile_implied = true, "claim 265 (profile) is mandatory");
    EXPECT_REFUSED(c.profile = (trellis_psa_profile_t)7, "unknown profile value 7");
    EXPECT_REFUSED((c.profile = TRELLIS_PSA_PROFILE_IOT_1, c.no_sw_measurements = true),
                   "exclude each other");
    EXPECT_REFUSED((c.profile = TRELLIS_PSA_PROFILE_IOT_1, c.boot_seed_len = 0),
                   "claim -75004 (boot seed) is missing");
#undef EXPECT_REFUSED
    assert_int_equal(trellis_psa_claims_validate(NULL, &reason), TRELLIS_ERR_INVALID_ARG);
}

/* ---- tamper: every byte, every truncation ---- */

static void tamper_all(const uint8_t *token, size_t len, EVP_PKEY *k)
{
    uint8_t copy[TRELLIS_COSE_MAX_TOKEN + 1];
    trellis_psa_claims_t claims;
    trellis_reason_t reason;
    assert_true(len < sizeof(copy));
    memcpy(copy, token, len);
    assert_int_equal(trellis_psa_token_verify(copy, len, k, NULL, 0, &claims, NULL), TRELLIS_OK);

    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    size_t rejected = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof(masks); m++) {
            copy[i] ^= masks[m];
            reason.text[0] = '\0';
            trellis_err_t err = trellis_psa_token_verify(copy, len, k, NULL, 0, &claims, &reason);
            if (err == TRELLIS_OK || reason.text[0] == '\0')
                fail_msg("flipping byte %zu with 0x%02x was %s (\"%s\")", i, masks[m],
                         trellis_err_name(err), reason.text);
            assert_int_equal(claims.nonce_len, 0);
            copy[i] ^= masks[m];
            rejected++;
        }
    }
    assert_int_equal(rejected, len * sizeof(masks));
    for (size_t n = 0; n < len; n++) {
        reason.text[0] = '\0';
        trellis_err_t err = trellis_psa_token_verify(copy, n, k, NULL, 0, &claims, &reason);
        if (err == TRELLIS_OK || reason.text[0] == '\0')
            fail_msg("truncating to %zu bytes was %s", n, trellis_err_name(err));
    }
    /* and one byte more */
    copy[len] = 0x00;
    assert_int_equal(trellis_psa_token_verify(copy, len + 1, k, NULL, 0, &claims, &reason),
                     TRELLIS_ERR_TOKEN_MALFORMED);
}

static void test_tamper_every_byte(void **state)
{
    (void)state;
    trellis_psa_claims_t in;
    default_claims(&in);
    uint8_t buf[2048];
    size_t len = make_token(&in, buf, sizeof(buf));
    tamper_all(buf, len, key);

    /* The interoperability vectors too. */
    uint8_t vec[1024];
    EVP_PKEY *rfc_key = load_vector_jwk("rfc9783-a1-iak.jwk");
    len = load_vector_hex("rfc9783-a1-sign1.hex", vec, sizeof(vec));
    tamper_all(vec, len, rfc_key);
    EVP_PKEY_free(rfc_key);
    EVP_PKEY *tfm_key = load_vector_jwk("tfm-iak.jwk");
    len = load_vector_hex("tfm-psa-2_0_0-sign1.hex", vec, sizeof(vec));
    tamper_all(vec, len, tfm_key);
    len = load_vector_hex("tfm-psa-iot-1-sign1.hex", vec, sizeof(vec));
    tamper_all(vec, len, tfm_key);
    EVP_PKEY_free(tfm_key);
}

/* ---- interoperability vectors (tests/vectors/psa/README.md) ---- */

static void assert_bytes(const uint8_t *got, size_t got_len, uint8_t byte, size_t len)
{
    assert_int_equal(got_len, len);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(got[i], byte);
}

static void test_vector_rfc9783_sign1(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("rfc9783-a1-sign1.hex", buf, sizeof(buf));
    EVP_PKEY *iak = load_vector_jwk("rfc9783-a1-iak.jwk");
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    uint8_t nonce[32];
    memset(nonce, 1, sizeof(nonce));
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, nonce, 32, &c, &reason), TRELLIS_OK);
    assert_int_equal(c.profile, TRELLIS_PSA_PROFILE_TFM);
    assert_bytes(c.nonce, c.nonce_len, 0x01, 32);
    assert_int_equal(c.instance_id[0], 0x01);
    assert_bytes(c.instance_id + 1, 32, 0x02, 32);
    assert_bytes(c.implementation_id, 32, 0x00, 32);
    assert_int_equal(c.client_id, 2147483647);
    assert_int_equal(c.lifecycle, 0x3000);
    assert_bytes(c.boot_seed, c.boot_seed_len, 0x00, 8);
    assert_int_equal(c.sw_component_count, 1);
    assert_bytes(c.sw_components[0].measurement_value, c.sw_components[0].measurement_value_len,
                 0x03, 32);
    assert_bytes(c.sw_components[0].signer_id, c.sw_components[0].signer_id_len, 0x04, 32);
    assert_false(c.sw_components[0].has_measurement_type);

    /* another key: signature; another nonce: nonce */
    assert_int_equal(trellis_psa_token_verify(buf, len, key, nonce, 32, &c, &reason),
                     TRELLIS_ERR_TOKEN_SIGNATURE);
    nonce[0] = 2;
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, nonce, 32, &c, &reason),
                     TRELLIS_ERR_TOKEN_NONCE);
    EVP_PKEY_free(iak);
}

static void test_vector_rfc9783_mac0_refused(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("rfc9783-a2-mac0.hex", buf, sizeof(buf));
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_token_verify(buf, len, key, NULL, 0, &c, &reason),
                     TRELLIS_ERR_TOKEN_ALG);
    assert_true(contains(reason.text, "COSE_Mac0"));
    assert_int_equal(trellis_psa_token_decode_unverified(buf, len, &c, &reason),
                     TRELLIS_ERR_TOKEN_ALG);
}

static void test_vector_tfm_profile_2_0_0(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("tfm-psa-2_0_0-sign1.hex", buf, sizeof(buf));
    EVP_PKEY *iak = load_vector_jwk("tfm-iak.jwk");
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    uint8_t nonce[64] = {0};
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, nonce, 64, &c, &reason), TRELLIS_OK);
    assert_int_equal(c.profile, TRELLIS_PSA_PROFILE_2_0_0);
    assert_int_equal(c.nonce_len, 64);
    assert_int_equal(c.client_id, 3002);
    assert_int_equal(c.lifecycle, 0x3000);
    assert_int_equal(c.boot_seed_len, 32);
    assert_int_equal(c.boot_seed[0], 0xa0);
    assert_int_equal(c.instance_id[1], 0xfa);
    assert_string_equal(c.certification_reference, "0604565272829-10010");
    assert_string_equal(c.verification_service, "www.trustedfirmware.org");
    assert_int_equal(c.sw_component_count, 2);
    assert_string_equal(c.sw_components[0].measurement_type, "SPE");
    assert_string_equal(c.sw_components[0].version, "1.6.0");
    assert_string_equal(c.sw_components[0].measurement_desc, "SHA256");
    assert_int_equal(c.sw_components[0].signer_id_len, 32);
    assert_string_equal(c.sw_components[1].measurement_type, "NSPE");
    /* a 32-byte expected nonce does not match the 64-byte one */
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, nonce, 32, &c, &reason),
                     TRELLIS_ERR_TOKEN_NONCE);
    EVP_PKEY_free(iak);
}

static void test_vector_tfm_profile_iot_1(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("tfm-psa-iot-1-sign1.hex", buf, sizeof(buf));
    EVP_PKEY *iak = load_vector_jwk("tfm-iak.jwk");
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, NULL, 0, &c, &reason), TRELLIS_OK);
    assert_int_equal(c.profile, TRELLIS_PSA_PROFILE_IOT_1);
    assert_false(c.profile_implied);
    assert_int_equal(c.nonce_len, 64);
    assert_int_equal(c.client_id, 3002);
    assert_int_equal(c.sw_component_count, 2);
    assert_string_equal(c.verification_service, "www.trustedfirmware.org");
    /* -75005 holds the EAN-13+5 form although PSA_IOT_PROFILE_1 specified EAN-13 alone. */
    assert_string_equal(c.certification_reference, "0604565272829-10010");
    EVP_PKEY_free(iak);
}

/* The example of docs/token-format.md, made by `trellis token create`. */
static void test_vector_trellis_example(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("trellis-example-sign1.hex", buf, sizeof(buf));
    assert_int_equal(len, 333);
    EVP_PKEY *iak = load_vector_jwk("rfc9783-a1-iak.jwk");
    tb_t nonce;
    tb_reset(&nonce);
    tb_hexraw(&nonce, "1cd3ac863ea31f6e927a8ac65dfcf4591ff0b9d3aeb095a31fb001153ba394fb");
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_token_verify(buf, len, iak, nonce.b, nonce.n, &c, &reason),
                     TRELLIS_OK);
    assert_int_equal(c.profile, TRELLIS_PSA_PROFILE_TFM);
    assert_int_equal(c.client_id, -1);
    assert_int_equal(c.lifecycle, TRELLIS_PSA_LIFECYCLE_SECURED);
    assert_int_equal(c.boot_seed_len, 32);
    assert_int_equal(c.implementation_id[0], 0x0a);
    assert_int_equal(c.sw_component_count, 1);
    assert_string_equal(c.sw_components[0].measurement_type, "App");
    assert_string_equal(c.sw_components[0].measurement_desc, "sha-256");
    assert_int_equal(c.sw_components[0].signer_id_len, 0);
    /* its device id is characters 3 to 34 of the ueid in hex (docs/token-format.md) */
    assert_int_equal(c.instance_id[1], 0x39);
    EVP_PKEY_free(iak);
}

/* The COSE WG ES256 example verifies as COSE but its payload is text, not claims; ES384 is
 * refused for its algorithm. */
static void test_vector_cose_wg(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t len = load_vector_hex("cose-ecdsa-sig-01.hex", buf, sizeof(buf));
    EVP_PKEY *wg = load_vector_jwk("cose-ecdsa-sig-01.jwk");
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    /* "This is the content." read as CBOR starts with 0x54, a 20-byte string that the 19
     * bytes after it cannot hold. */
    assert_int_equal(trellis_psa_token_verify(buf, len, wg, NULL, 0, &c, &reason),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_true(contains(reason.text, "claims-set: truncated"));
    len = load_vector_hex("cose-ecdsa-sig-02.hex", buf, sizeof(buf));
    assert_int_equal(trellis_psa_token_verify(buf, len, wg, NULL, 0, &c, &reason),
                     TRELLIS_ERR_TOKEN_ALG);
    assert_true(contains(reason.text, "alg -35 (ES384)"));
    EVP_PKEY_free(wg);
}

/* ---- identifiers (design.md §3) ---- */

static void test_ueid_and_device_id(void **state)
{
    (void)state;
    /* The public point of the COSE WG example key; SHA-256 computed independently. */
    tb_t p;
    tb_reset(&p);
    tb_hexraw(&p, "04bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff20138bf8"
                  "2dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e");
    assert_int_equal(p.n, 65);
    char id[TRELLIS_PSA_DEVICE_ID_LEN + 1];
    assert_int_equal(trellis_psa_device_id_from_point(p.b, id), TRELLIS_OK);
    assert_string_equal(id, "82316ad6c6598b75d1a8b9fa3bcd2dc7");
    uint8_t ueid[TRELLIS_PSA_UEID_LEN];
    assert_int_equal(trellis_psa_ueid_from_point(p.b, ueid), TRELLIS_OK);
    tb_t want;
    tb_reset(&want);
    tb_hexraw(&want, "0182316ad6c6598b75d1a8b9fa3bcd2dc704af4de47e6acbfde9b1a89b305fdf45");
    assert_memory_equal(ueid, want.b, 33);

    p.b[0] = 0x02; /* compressed points are not the input */
    assert_int_equal(trellis_psa_device_id_from_point(p.b, id), TRELLIS_ERR_BAD_KEY);
    assert_string_equal(id, "");
    assert_int_equal(trellis_psa_ueid_from_point(p.b, ueid), TRELLIS_ERR_BAD_KEY);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(trellis_psa_profile_name(TRELLIS_PSA_PROFILE_TFM),
                        "tag:psacertified.org,2023:psa#tfm");
    assert_string_equal(trellis_psa_profile_name((trellis_psa_profile_t)9), "unknown");
    assert_string_equal(trellis_psa_lifecycle_name(0x3000), "secured");
    assert_string_equal(trellis_psa_lifecycle_name(0x30ff), "secured");
    assert_string_equal(trellis_psa_lifecycle_name(0x6000), "decommissioned");
    assert_string_equal(trellis_psa_lifecycle_name(0x7000), "invalid");
    assert_true(trellis_psa_lifecycle_trusted(0x3000));
    assert_true(trellis_psa_lifecycle_trusted(0x4003));
    assert_false(trellis_psa_lifecycle_trusted(0x5000));
    assert_false(trellis_psa_lifecycle_trusted(0x2000));
}

/* ---- JSON form ---- */

static void test_json_round_trip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = load_vector_hex("tfm-psa-2_0_0-sign1.hex", buf, sizeof(buf));
    trellis_psa_claims_t c, back;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_psa_token_decode_unverified(buf, len, &c, &reason), TRELLIS_OK);
    char *text = NULL;
    assert_int_equal(trellis_psa_claims_to_json(&c, &text), TRELLIS_OK);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "eat_profile")),
                        "http://arm.com/psa/2.0.0");
    assert_int_equal(strlen(json_string_value(json_object_get(root, "eat_nonce"))), 128);
    assert_string_equal(json_string_value(json_object_get(root, "ueid")),
                        "01fa58755f658627ce5460f29b75296713248cae7ad9e2984b90280efcbcb50248");
    assert_int_equal(json_integer_value(json_object_get(root, "psa-client-id")), 3002);
    assert_int_equal(json_integer_value(json_object_get(root, "psa-security-lifecycle")), 12288);
    assert_string_equal(json_string_value(json_object_get(root, "psa-certification-reference")),
                        "0604565272829-10010");
    json_t *sw = json_object_get(root, "psa-software-components");
    assert_int_equal(json_array_size(sw), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(sw, 0), "measurement-value")),
        "96a2ec56c65120a60ce3a53ef8d2082233772aacd5b17935a92be12ac577f685");
    assert_string_equal(json_string_value(json_object_get(json_array_get(sw, 0), "signer-id")),
                        "bfe6d86f8826f4ff97fb96c4e6fbc4993e4619fc565da26adf34c329489adc38");
    json_decref(root);

    trellis_psa_claims_init(&back);
    assert_int_equal(trellis_psa_claims_from_json(text, strlen(text), &back, &reason), TRELLIS_OK);
    assert_claims_equal(&c, &back);
    free(text);

    /* and a PSA_IOT_PROFILE_1 token without profile claim keeps that */
    default_claims(&c);
    c.profile = TRELLIS_PSA_PROFILE_IOT_1;
    c.profile_implied = true;
    c.sw_component_count = 0;
    c.no_sw_measurements = true;
    assert_int_equal(trellis_psa_claims_to_json(&c, &text), TRELLIS_OK);
    assert_null(strstr(text, "eat_profile"));
    assert_non_null(strstr(text, "\"psa-no-sw-measurements\": true"));
    free(text);
    assert_int_equal(trellis_psa_claims_to_json(NULL, &text), TRELLIS_ERR_INVALID_ARG);
    assert_null(text);
}

static void test_json_aliases_and_overrides(void **state)
{
    (void)state;
    trellis_psa_claims_t c;
    trellis_reason_t reason = {{0}};
    default_claims(&c);
    const char *json = "{\"nonce\": \""
                       "abababababababababababababababababababababababababababab"
                       "abababab\", \"lifecycle\": \"non-psa-rot-debug\", \"client_id\": 7,"
                       " \"boot_seed\": null, \"certification_reference\": \"1234567890123-00001\","
                       " \"verification_service\": \"https://x\","
                       " \"sw_components\": [{\"measurement_value\": \""
                       "0000000000000000000000000000000000000000000000000000000000000000"
                       "\", \"measurement_type\": \"BL\", \"signer_id\": \""
                       "0101010101010101010101010101010101010101010101010101010101010101"
                       "\", \"version\": \"2\", \"measurement_desc\": \"sha-256\"}]}";
    assert_int_equal(trellis_psa_claims_from_json(json, strlen(json), &c, &reason), TRELLIS_OK);
    assert_int_equal(c.nonce_len, 32);
    assert_int_equal(c.nonce[0], 0xab);
    assert_int_equal(c.lifecycle, 0x4000);
    assert_int_equal(c.client_id, 7);
    assert_int_equal(c.boot_seed_len, 0);
    assert_string_equal(c.certification_reference, "1234567890123-00001");
    assert_string_equal(c.verification_service, "https://x");
    assert_int_equal(c.sw_component_count, 1);
    assert_string_equal(c.sw_components[0].measurement_type, "BL");
    assert_int_equal(c.sw_components[0].signer_id_len, 32);
    /* untouched claims keep their values */
    assert_int_equal(c.implementation_id[0], 0x33);
    assert_int_equal(trellis_psa_claims_validate(&c, &reason), TRELLIS_OK);
    const char *more = "{\"eat_profile\": \"PSA_IOT_PROFILE_1\", \"psa-boot-seed\": \""
                       "0000000000000000000000000000000000000000000000000000000000000000\","
                       " \"ueid\": \"01"
                       "0202020202020202020202020202020202020202020202020202020202020202"
                       "\", \"implementation_id\": \""
                       "0303030303030303030303030303030303030303030303030303030303030303\","
                       " \"psa-security-lifecycle\": 12289, \"no_sw_measurements\": false}";
    assert_int_equal(trellis_psa_claims_from_json(more, strlen(more), &c, &reason), TRELLIS_OK);
    assert_int_equal(c.profile, TRELLIS_PSA_PROFILE_IOT_1);
    assert_int_equal(c.boot_seed_len, 32);
    assert_int_equal(c.instance_id[1], 0x02);
    assert_int_equal(c.implementation_id[0], 0x03);
    assert_int_equal(c.lifecycle, 12289);
}

static void test_json_rejects(void **state)
{
    (void)state;
    struct {
        const char *json;
        const char *reason;
    } cases[] = {
        {"[1]", "not an object"},
        {"{", "claims JSON, line 1"},
        {"{\"nonce\": \"ab\", \"nonce\": \"cd\"}", "claims JSON"},
        {"{\"nonce\": \"ab\", \"eat_nonce\": \"cd\"}", "given twice"},
        {"{\"colour\": 1}", "unknown claim \"colour\""},
        {"{\"nonce\": 5}", "must be a hex string"},
        {"{\"nonce\": \"abc\"}", "hex of at most 64 bytes"},
        {"{\"nonce\": \"zz\"}", "not valid hex"},
        {"{\"ueid\": \"01\"}", "must be 33 bytes, not 1"},
        {"{\"implementation_id\": \"00\"}", "must be 32 bytes"},
        {"{\"client_id\": 2147483648}", "32-bit signed integer"},
        {"{\"client_id\": \"1\"}", "32-bit signed integer"},
        {"{\"lifecycle\": 65536}", "0 to 65535"},
        {"{\"lifecycle\": \"sleepy\"}", "state name"},
        {"{\"profile\": \"psa\"}", "must be one of"},
        {"{\"boot_seed\": true}", "hex string"},
        {"{\"verification_service\": 3}", "must be a string"},
        {"{\"verification_service\": \"a\\u0000b\"}", "claims JSON, line 1"},
        {"{\"no_sw_measurements\": 1}", "true or false"},
        {"{\"sw_components\": {}}", "array of at most 16"},
        {"{\"sw_components\": [1]}", "software component 0 must be an object"},
        {"{\"sw_components\": [{\"hash\": \"00\"}]}", "unknown member \"hash\""},
        {"{\"sw_components\": [{\"signer_id\": \"00\", \"signer-id\": \"00\"}]}", "given twice"},
        {"{\"sw_components\": [{\"version\": 1}]}", "must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        trellis_psa_claims_t c, before;
        default_claims(&c);
        before = c;
        trellis_reason_t reason = {{0}};
        trellis_err_t err =
            trellis_psa_claims_from_json(cases[i].json, strlen(cases[i].json), &c, &reason);
        if (err != TRELLIS_ERR_PARSE || !contains(reason.text, cases[i].reason))
            fail_msg("%s: got %s \"%s\"", cases[i].json, trellis_err_name(err), reason.text);
        /* nothing was applied */
        assert_memory_equal(&c, &before, sizeof(c));
    }
    trellis_psa_claims_t c;
    assert_int_equal(trellis_psa_claims_from_json(NULL, 0, &c, NULL), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_token_with_kid_and_size_query),
        cmocka_unit_test(test_claims_encoding_known_answer),
        cmocka_unit_test(test_old_profiles_round_trip),
        cmocka_unit_test(test_claim_cases),
        cmocka_unit_test(test_claim_case_details),
        cmocka_unit_test(test_validate_and_encode_refuse_bad_structs),
        cmocka_unit_test(test_tamper_every_byte),
        cmocka_unit_test(test_vector_rfc9783_sign1),
        cmocka_unit_test(test_vector_rfc9783_mac0_refused),
        cmocka_unit_test(test_vector_tfm_profile_2_0_0),
        cmocka_unit_test(test_vector_tfm_profile_iot_1),
        cmocka_unit_test(test_vector_trellis_example),
        cmocka_unit_test(test_vector_cose_wg),
        cmocka_unit_test(test_ueid_and_device_id),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_aliases_and_overrides),
        cmocka_unit_test(test_json_rejects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
