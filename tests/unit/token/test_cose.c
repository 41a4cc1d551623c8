#include <string.h>

#include "test_support.h"
#include "token_test_util.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"

static EVP_PKEY *key;       /* signs everything below */
static EVP_PKEY *other_key; /* a different P-256 key */

static int setup(void **state)
{
    (void)state;
    if (trellis_p256_generate(&key) != TRELLIS_OK ||
        trellis_p256_generate(&other_key) != TRELLIS_OK)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
    return 0;
}

static const uint8_t es256_prot[] = {0xa1, 0x01, 0x26};
static const uint8_t empty_map[] = {0xa0};
static const uint8_t payload_hello[] = {'h', 'e', 'l', 'l', 'o'};

/* A signer that records the digest it was asked to sign and returns a fixed signature. */
struct fake_signer {
    int calls;
    uint8_t digest[32];
    trellis_err_t result;
};

static trellis_err_t fake_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    struct fake_signer *f = ctx;
    f->calls++;
    memcpy(f->digest, digest, 32);
    for (int i = 0; i < 64; i++)
        sig[i] = (uint8_t)i;
    return f->result;
}

static void test_round_trip(void **state)
{
    (void)state;
    trellis_signer_t signer;
    assert_int_equal(trellis_signer_from_pkey(key, &signer), TRELLIS_OK);
    uint8_t buf[256];
    size_t len = 0;
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, sizeof(payload_hello), NULL, 0,
                                               &signer, buf, sizeof(buf), &len),
                     TRELLIS_OK);
    trellis_cose_sign1_t msg;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_cose_sign1_verify(buf, len, key, &msg, &reason), TRELLIS_OK);
    assert_string_equal(reason.text, "");
    assert_int_equal(msg.payload_len, sizeof(payload_hello));
    assert_memory_equal(msg.payload, payload_hello, sizeof(payload_hello));
    assert_null(msg.kid);
    assert_int_equal(msg.protected_len, 3);
    assert_memory_equal(msg.protected_hdr, es256_prot, 3);

    /* The same bytes do not verify under another key. */
    assert_int_equal(trellis_cose_sign1_verify(buf, len, other_key, &msg, &reason),
                     TRELLIS_ERR_TOKEN_SIGNATURE);
    assert_true(contains(reason.text, "does not verify"));
    assert_null(msg.payload);
}

static void test_round_trip_with_kid_and_empty_payload(void **state)
{
    (void)state;
    trellis_signer_t signer;
    assert_int_equal(trellis_signer_from_pkey(key, &signer), TRELLIS_OK);
    const uint8_t kid[] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t buf[256];
    size_t len = 0;
    assert_int_equal(
        trellis_cose_sign1_encode(NULL, 0, kid, sizeof(kid), &signer, buf, sizeof(buf), &len),
        TRELLIS_OK);
    trellis_cose_sign1_t msg;
    assert_int_equal(trellis_cose_sign1_verify(buf, len, key, &msg, NULL), TRELLIS_OK);
    assert_int_equal(msg.kid_len, sizeof(kid));
    assert_memory_equal(msg.kid, kid, sizeof(kid));
    assert_int_equal(msg.payload_len, 0);
}

static void test_exact_bytes_and_sig_structure(void **state)
{
    (void)state;
    struct fake_signer f = {.calls = 0, .result = TRELLIS_OK};
    trellis_signer_t signer = {
        .version = TRELLIS_SIGNER_VERSION, .ctx = &f, .sign_digest = fake_sign};
    uint8_t buf[128];
    size_t len = 0;
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, sizeof(payload_hello), NULL, 0,
                                               &signer, buf, sizeof(buf), &len),
                     TRELLIS_OK);
    /* 18([h'a10126', {}, h'68656c6c6f', h'00..3f']) */
    tb_t want;
    tb_reset(&want);
    tb_hexraw(&want, "d28443a10126a04568656c6c6f5840");
    for (uint8_t i = 0; i < 64; i++)
        tb_raw(&want, &i, 1);
    assert_int_equal(len, want.n);
    assert_memory_equal(buf, want.b, want.n);

    /* The digest is SHA-256 of ["Signature1", h'a10126', h'', h'68656c6c6f'] (RFC 9052 §4.4). */
    tb_t tbs;
    tb_reset(&tbs);
    tb_hexraw(&tbs, "846a5369676e61747572653143a10126404568656c6c6f");
    uint8_t digest[32];
    assert_int_equal(trellis_sha256(tbs.b, tbs.n, digest), TRELLIS_OK);
    assert_int_equal(f.calls, 1);
    assert_memory_equal(f.digest, digest, 32);
}

static void test_size_query_and_short_buffer(void **state)
{
    (void)state;
    struct fake_signer f = {.calls = 0, .result = TRELLIS_OK};
    trellis_signer_t signer = {
        .version = TRELLIS_SIGNER_VERSION, .ctx = &f, .sign_digest = fake_sign};
    size_t need = 0;
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, sizeof(payload_hello), NULL, 0,
                                               &signer, NULL, 0, &need),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(need, 7 + 1 + 5 + 2 + 64);
    uint8_t buf[128];
    size_t len = 99;
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, sizeof(payload_hello), NULL, 0,
                                               &signer, buf, need - 1, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, need);
    assert_int_equal(f.calls, 0);
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, sizeof(payload_hello), NULL, 0,
                                               &signer, buf, need, &len),
                     TRELLIS_OK);
    assert_int_equal(len, need);
    assert_int_equal(f.calls, 1);
}

static void test_encode_bad_arguments(void **state)
{
    (void)state;
    struct fake_signer f = {.calls = 0, .result = TRELLIS_OK};
    trellis_signer_t signer = {
        .version = TRELLIS_SIGNER_VERSION, .ctx = &f, .sign_digest = fake_sign};
    trellis_signer_t bad_version = signer;
    bad_version.version = 2;
    trellis_signer_t no_fn = signer;
    no_fn.sign_digest = NULL;
    uint8_t buf[256];
    uint8_t kid[65] = {0};
    size_t len = 7;

    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, NULL, 0, NULL, buf, sizeof(buf), &len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(len, 0);
    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, NULL, 0, &bad_version, buf, sizeof(buf), &len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, NULL, 0, &no_fn, buf, sizeof(buf), &len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_cose_sign1_encode(NULL, 5, NULL, 0, &signer, buf, sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, kid, 0, &signer, buf, sizeof(buf), &len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_cose_sign1_encode(payload_hello, 5, kid, sizeof(kid), &signer, buf,
                                               sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, NULL, 0, &signer, buf, sizeof(buf), NULL),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(f.calls, 0);

    trellis_signer_t out;
    assert_int_equal(trellis_signer_from_pkey(NULL, &out), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_signer_from_pkey(key, NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_signer_failure_is_passed_on(void **state)
{
    (void)state;
    struct fake_signer f = {.calls = 0, .result = TRELLIS_ERR_CRYPTO};
    trellis_signer_t signer = {
        .version = TRELLIS_SIGNER_VERSION, .ctx = &f, .sign_digest = fake_sign};
    uint8_t buf[256];
    size_t len = 5;
    assert_int_equal(
        trellis_cose_sign1_encode(payload_hello, 5, NULL, 0, &signer, buf, sizeof(buf), &len),
        TRELLIS_ERR_CRYPTO);
    assert_int_equal(len, 0);
    assert_int_equal(f.calls, 1);
}

/* Variation-tolerant decoding (RFC 9783 §5.1.1): non-preferred heads for the tag, the array,
 * the payload length and the header values are accepted, and the signature is checked over the
 * protected bytes as sent. */
static void test_non_preferred_encodings_accepted(void **state)
{
    (void)state;
    const uint8_t prot[] = {0xa1, 0x18, 0x01, 0x38, 0x06}; /* {1: -7}, both non-preferred */
    uint8_t sig[64];
    sign_parts(key, prot, sizeof(prot), payload_hello, sizeof(payload_hello), sig);
    tb_t t;
    tb_reset(&t);
    tb_hexraw(&t, "d812" /* tag 18 in two bytes */ "9804" /* array(4) in two bytes */);
    tb_bstr(&t, prot, sizeof(prot));
    tb_hexraw(&t, "b800" /* {} in two bytes */ "590005" /* bstr(5) in three bytes */);
    tb_raw(&t, payload_hello, sizeof(payload_hello));
    tb_bstr(&t, sig, sizeof(sig));
    trellis_cose_sign1_t msg;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_cose_sign1_verify(t.b, t.n, key, &msg, &reason), TRELLIS_OK);
    assert_int_equal(msg.protected_len, sizeof(prot));
    assert_memory_equal(msg.payload, payload_hello, 5);
}

static void test_other_header_parameters_and_crit_kid_accepted(void **state)
{
    (void)state;
    /* {1: -7, 2: [4], 3: 0} protected; {4: h'01', "x": [1, {2: 3}]} unprotected */
    tb_t prot, unprot, t;
    tb_reset(&prot);
    tb_hexraw(&prot, "a30126028104"
                     "0300");
    tb_reset(&unprot);
    tb_hexraw(&unprot, "a2044101"
                       "6178"
                       "8201a10203");
    build_sign1(&t, key, prot.b, prot.n, unprot.b, unprot.n, payload_hello, 5);
    trellis_cose_sign1_t msg;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_cose_sign1_verify(t.b, t.n, key, &msg, &reason), TRELLIS_OK);
    assert_int_equal(msg.kid_len, 1);
}

/* One rejection: the token, the error and a piece of the reason. */
struct reject_case {
    const char *name;
    trellis_err_t err;
    const char *reason;
};

static void expect_reject(const tb_t *t, trellis_err_t want, const char *why)
{
    trellis_cose_sign1_t msg;
    trellis_reason_t reason = {{0}};
    trellis_err_t err = trellis_cose_sign1_verify(t->b, t->n, key, &msg, &reason);
    if (err != want)
        print_error("got %s (%s), wanted %s\n", trellis_err_name(err), reason.text,
                    trellis_err_name(want));
    assert_int_equal(err, want);
    assert_true(contains(reason.text, why));
    assert_null(msg.payload);
    assert_null(msg.signature);
    /* decode alone agrees, unless only the signature is wrong */
    if (want != TRELLIS_ERR_TOKEN_SIGNATURE) {
        trellis_reason_t r2 = {{0}};
        assert_int_equal(trellis_cose_sign1_decode(t->b, t->n, &msg, &r2), want);
        assert_string_equal(r2.text, reason.text);
    }
}

/* A valid token with protected header prot and unprotected header unprot (hex). */
static void signed_with(tb_t *t, const char *prot_hex, const char *unprot_hex)
{
    tb_t prot, unprot;
    tb_reset(&prot);
    tb_hexraw(&prot, prot_hex);
    tb_reset(&unprot);
    tb_hexraw(&unprot, unprot_hex);
    build_sign1(t, key, prot.b, prot.n, unprot.b, unprot.n, payload_hello, 5);
}

static void test_reject_framing(void **state)
{
    (void)state;
    tb_t t;
    uint8_t sig[64];
    sign_parts(key, es256_prot, 3, payload_hello, 5, sig);

    tb_reset(&t);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "empty input");

    tb_reset(&t);
    tb_bstr_fill(&t, 0, 500);
    for (int i = 0; i < 8; i++)
        tb_bstr_fill(&t, 0, 500);
    assert_true(t.n > TRELLIS_COSE_MAX_TOKEN);
    expect_reject(&t, TRELLIS_ERR_TOO_LARGE, "more than the 4096 accepted");

    /* untagged: RFC 9783 §5.1.1 requires tag 18 */
    signed_with(&t, "a10126", "a0");
    memmove(t.b, t.b + 1, t.n - 1);
    t.n--;
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "not a tagged COSE_Sign1");

    signed_with(&t, "a10126", "a0");
    t.b[0] = 0xd3; /* tag 19 */
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "tag 19 where tag 18");

    tb_reset(&t);
    tb_hexraw(&t, "d83dd28443a10126a0"
                  "4568656c6c6f"
                  "5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "CWT tag 61");

    tb_reset(&t);
    tb_hexraw(&t, "d2d28443a10126a0"
                  "4568656c6c6f"
                  "5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "tag 18 wraps a tag");

    tb_reset(&t);
    tb_hexraw(&t, "d28343a10126a0"
                  "4568656c6c6f");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "array of 3 items, not 4");

    tb_reset(&t);
    tb_hexraw(&t, "d28543a10126a0"
                  "4568656c6c6f"
                  "5840");
    tb_raw(&t, sig, 64);
    tb_hexraw(&t, "00");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "array of 5 items, not 4");

    tb_reset(&t);
    tb_hexraw(&t, "d2a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "tag 18 wraps a map");

    /* trailing byte after a valid token */
    signed_with(&t, "a10126", "a0");
    tb_hexraw(&t, "00");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "1 bytes after the COSE_Sign1 array");

    /* indefinite-length array and payload (RFC 9783 §5.1.1) */
    tb_reset(&t);
    tb_hexraw(&t, "d29f43a10126a0"
                  "4568656c6c6f"
                  "5840");
    tb_raw(&t, sig, 64);
    tb_hexraw(&t, "ff");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "indefinite-length");
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a0"
                  "5f4568656c6c6fff"
                  "5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "indefinite-length");

    /* reserved initial byte and truncation */
    tb_reset(&t);
    tb_hexraw(&t, "d2841c");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "reserved or unassigned");
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a0"
                  "4568656c");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "truncated");
    tb_reset(&t);
    tb_hexraw(&t, "d2845b"
                  "ffffffffffffffff");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "truncated");
}

static void test_reject_protected_header(void **state)
{
    (void)state;
    tb_t t;
    uint8_t sig[64];
    sign_parts(key, es256_prot, 3, payload_hello, 5, sig);

    tb_reset(&t);
    tb_hexraw(&t, "d284a10126a0"
                  "4568656c6c6f"
                  "5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "protected header (element 1) is a map");

    signed_with(&t, "820126", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "does not hold a CBOR map");
    signed_with(&t, "a1012600", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "1 bytes after the header map");
    signed_with(&t, "", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "no alg");
    signed_with(&t, "a0", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "no alg");
    signed_with(&t, "a10303", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "no alg");
    signed_with(&t, "a1013822", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "alg -35 (ES384) is not accepted");
    signed_with(&t, "a10105", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "alg 5 (HMAC 256/256)");
    signed_with(&t, "a1016545533235360a", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "after the header map");
    signed_with(&t, "a101654553323536", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "alg is a text string");
    signed_with(&t, "a10141ff", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "neither an integer nor a text string");
    signed_with(&t, "a0", "a10126");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "alg (label 1) is in the unprotected header");
    signed_with(&t, "a10126", "a10126");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "label 1 is in both");
    signed_with(&t, "a1030a", "a10126");
    expect_reject(&t, TRELLIS_ERR_TOKEN_ALG, "in the unprotected header");
    signed_with(&t, "a201260126", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "label 1 appears twice");
    signed_with(&t, "a20126180126", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "label 1 appears twice");
    signed_with(&t,
                "a301266178006178"
                "01",
                "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "label \"x\" appears twice");
    signed_with(&t, "a2012641ff00", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "neither an integer nor a text string");

    /* crit (label 2): non-empty array of labels Trellis understands, protected only */
    signed_with(&t, "a2012602811863", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "crit (label 2) lists label 99");
    signed_with(&t, "a2012602816378797a", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "lists label \"xyz\"");
    signed_with(&t, "a201260280", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "non-empty array");
    signed_with(&t, "a201260201", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "non-empty array");
    signed_with(&t, "a20126028140", "a0");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "element 0 is not a label");
    signed_with(&t, "a10126", "a1028101");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "crit (label 2) is in the unprotected");

    /* size and count limits */
    tb_t big;
    tb_reset(&big);
    tb_map(&big, 2);
    tb_uint(&big, 1);
    tb_int(&big, -7);
    tb_uint(&big, 99);
    tb_bstr_fill(&big, 7, 260);
    build_sign1(&t, key, big.b, big.n, empty_map, 1, payload_hello, 5);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "more than the 256 accepted");
    tb_reset(&big);
    tb_map(&big, 17);
    tb_uint(&big, 1);
    tb_int(&big, -7);
    for (int i = 0; i < 16; i++) {
        tb_uint(&big, 100 + (uint64_t)i);
        tb_uint(&big, 0);
    }
    build_sign1(&t, key, big.b, big.n, empty_map, 1, payload_hello, 5);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "more than 16 header parameters");
}

static void test_reject_unprotected_payload_signature(void **state)
{
    (void)state;
    tb_t t;
    uint8_t sig[64];
    sign_parts(key, es256_prot, 3, payload_hello, 5, sig);

    signed_with(&t, "a10126", "40");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "unprotected header (element 2) is not a map");
    signed_with(&t, "a10126", "a10401");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "kid (label 4) must be a byte string");
    signed_with(&t, "a10126", "a10440");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "kid (label 4)");
    tb_t unprot;
    tb_reset(&unprot);
    tb_map(&unprot, 1);
    tb_uint(&unprot, 4);
    tb_bstr_fill(&unprot, 1, 65);
    build_sign1(&t, key, es256_prot, 3, unprot.b, unprot.n, payload_hello, 5);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "kid (label 4)");
    signed_with(&t, "a10126", "a2044101044102");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "label 4 appears twice");

    /* nesting: 17 arrays deep inside an unprotected value */
    tb_reset(&unprot);
    tb_map(&unprot, 1);
    tb_uint(&unprot, 99);
    for (int i = 0; i < 17; i++)
        tb_array(&unprot, 1);
    tb_uint(&unprot, 0);
    build_sign1(&t, key, es256_prot, 3, unprot.b, unprot.n, payload_hello, 5);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "nesting deeper than 16");

    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a0f65840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "detached payload (nil)");
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a06568656c6c6f5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "payload (element 3) is not a byte string");

    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a04568656c6c6f583f");
    tb_raw(&t, sig, 63);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "signature is 63 bytes");
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a04568656c6c6f5841");
    tb_raw(&t, sig, 64);
    tb_hexraw(&t, "00");
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "signature is 65 bytes");
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a04568656c6c6f7840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_MALFORMED, "signature (element 4) is a text string");

    /* a well-formed token whose signature is for another payload */
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a04568656c6c6e5840");
    tb_raw(&t, sig, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_SIGNATURE, "does not verify");
    /* r = 0 */
    tb_reset(&t);
    tb_hexraw(&t, "d28443a10126a04568656c6c6f5840");
    uint8_t zero[64] = {0};
    tb_raw(&t, zero, 64);
    expect_reject(&t, TRELLIS_ERR_TOKEN_SIGNATURE, "does not verify");
}

static void test_verify_bad_arguments(void **state)
{
    (void)state;
    trellis_reason_t reason = {{0}};
    trellis_cose_sign1_t msg;
    assert_int_equal(trellis_cose_sign1_verify(payload_hello, 5, NULL, &msg, &reason),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_cose_sign1_decode(NULL, 5, &msg, &reason), TRELLIS_ERR_INVALID_ARG);
    /* a NULL out and a NULL reason are allowed */
    assert_int_equal(trellis_cose_sign1_decode(payload_hello, 5, NULL, NULL),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_string_equal(trellis_cose_alg_name(-7), "ES256");
    assert_string_equal(trellis_cose_alg_name(12345), "unregistered");
}

/* COSE WG examples (github.com/cose-wg/Examples, ecdsa-examples/): a real ES256 COSE_Sign1 with
 * a content-type header and a kid verifies; the ES384 one is refused for its algorithm. */
static void test_cose_wg_vectors(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t len = load_vector_hex("cose-ecdsa-sig-01.hex", buf, sizeof(buf));
    EVP_PKEY *wg_key = load_vector_jwk("cose-ecdsa-sig-01.jwk");
    trellis_cose_sign1_t msg;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_cose_sign1_verify(buf, len, wg_key, &msg, &reason), TRELLIS_OK);
    assert_int_equal(msg.payload_len, 20);
    assert_memory_equal(msg.payload, "This is the content.", 20);
    assert_int_equal(msg.kid_len, 2);
    assert_memory_equal(msg.kid, "11", 2);
    assert_int_equal(trellis_cose_sign1_verify(buf, len, key, &msg, &reason),
                     TRELLIS_ERR_TOKEN_SIGNATURE);

    len = load_vector_hex("cose-ecdsa-sig-02.hex", buf, sizeof(buf));
    assert_int_equal(trellis_cose_sign1_verify(buf, len, wg_key, &msg, &reason),
                     TRELLIS_ERR_TOKEN_ALG);
    assert_true(contains(reason.text, "ES384"));
    EVP_PKEY_free(wg_key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_with_kid_and_empty_payload),
        cmocka_unit_test(test_exact_bytes_and_sig_structure),
        cmocka_unit_test(test_size_query_and_short_buffer),
        cmocka_unit_test(test_encode_bad_arguments),
        cmocka_unit_test(test_signer_failure_is_passed_on),
        cmocka_unit_test(test_non_preferred_encodings_accepted),
        cmocka_unit_test(test_other_header_parameters_and_crit_kid_accepted),
        cmocka_unit_test(test_reject_framing),
        cmocka_unit_test(test_reject_protected_header),
        cmocka_unit_test(test_reject_unprotected_payload_signature),
        cmocka_unit_test(test_verify_bad_arguments),
        cmocka_unit_test(test_cose_wg_vectors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
