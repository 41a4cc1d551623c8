/*
 * The registrar's parsers of outside bytes: the enroll body (every refusal that needs neither
 * the store nor the verifier, each with its API error), the reenroll body, and the verifier's
 * answer (signature, expiry, binding to the request, status and reason mapping).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/x509.h>

#include "rtest_util.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/verifier.h"

typedef struct {
    uint8_t secret[TR__CHALLENGE_SECRET_LEN];
    rt_device_t d;
    uint8_t challenge[TR__CHALLENGE_LEN];
    uint8_t csr[2048];
    size_t csr_len;
    uint8_t ev[4096];
    size_t ev_len;
    int64_t now;
    tr__reg_enroll_req_t *req;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    memset(f->secret, 0x42, sizeof(f->secret));
    rt_device_init(&f->d);
    f->now = (int64_t)time(NULL);
    assert_int_equal(tr__reg_challenge_mint(f->secret, f->now, 300, f->challenge), TRELLIS_OK);
    f->csr_len = rt_csr(&f->d, NULL, f->csr, sizeof(f->csr));
    f->ev_len = rt_evidence(f->d.rot, f->d.point, f->challenge, sizeof(f->challenge), f->csr,
                            f->csr_len, f->ev, sizeof(f->ev));
    f->req = calloc(1, sizeof(*f->req));
    assert_non_null(f->req);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_csr_cleanup(&f->req->csr);
    free(f->req);
    rt_device_cleanup(&f->d);
    free(f);
    return 0;
}

/* Parses body and expects err with an API code and a reason containing needle. */
static void expect(fixture_t *f, const char *body, trellis_err_t want, const char *code,
                   const char *needle)
{
    trellis_reason_t why;
    trellis_err_t err = tr__reg_enroll_parse((const uint8_t *)body, strlen(body), f->secret, f->now,
                                             300, f->req, &why);
    if (err != want || strstr(why.text, needle) == NULL)
        print_message("got %s '%s'\n", trellis_err_name(err), why.text);
    assert_int_equal(err, want);
    assert_string_equal(trellis_err_api_code(err), code);
    assert_non_null(strstr(why.text, needle));
    /* A refusal leaves nothing behind. */
    assert_null(f->req->csr.key);
    assert_int_equal(f->req->csr_len, 0);
}

static char *body_of(fixture_t *f)
{
    return rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len, f->challenge, sizeof(f->challenge));
}

static void test_good(void **state)
{
    fixture_t *f = *state;
    char *body = body_of(f);
    trellis_reason_t why;
    assert_int_equal(tr__reg_enroll_parse((const uint8_t *)body, strlen(body), f->secret, f->now,
                                          300, f->req, &why),
                     TRELLIS_OK);
    assert_string_equal(f->req->device_id, f->d.id);
    assert_string_equal(f->req->csr.cn, f->d.id);
    assert_int_equal(f->req->csr_len, f->csr_len);
    assert_int_equal(f->req->evidence_len, f->ev_len);
    assert_memory_equal(f->req->challenge, f->challenge, sizeof(f->challenge));
    assert_int_equal(f->req->challenge_expires, f->now + 300);
    uint8_t nonce[32], id[32];
    assert_int_equal(
        trellis_sha256_two(f->challenge, sizeof(f->challenge), f->csr, f->csr_len, nonce),
        TRELLIS_OK);
    assert_memory_equal(f->req->nonce, nonce, 32);
    assert_int_equal(trellis_sha256(f->challenge, sizeof(f->challenge), id), TRELLIS_OK);
    assert_memory_equal(f->req->challenge_id, id, 32);
    /* The body sent to the verifier carries the same three values. */
    char *vb = NULL;
    size_t vb_len = 0;
    assert_int_equal(tr__reg_verify_body(f->req, &vb, &vb_len), TRELLIS_OK);
    assert_int_equal(strlen(vb), vb_len);
    json_t *o = json_loadb(vb, vb_len, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 3);
    json_decref(o);
    free(vb);
    free(body);
}

static void test_bad_json(void **state)
{
    fixture_t *f = *state;
    expect(f, "", TRELLIS_ERR_PARSE, "bad_request", "");
    expect(f, "{", TRELLIS_ERR_PARSE, "bad_request", "");
    expect(f, "[]", TRELLIS_ERR_PARSE, "bad_request", "");
    expect(f, "{\"csr\":\"AA\",\"csr\":\"AA\"}", TRELLIS_ERR_PARSE, "bad_request", "");
    expect(f, "{\"csr\":\"AA\",\"evidence\":\"AA\"}", TRELLIS_ERR_PARSE, "bad_request",
           "challenge");
    expect(f, "{\"csr\":\"AA\",\"evidence\":\"AA\",\"challenge\":\"AA\",\"x\":1}",
           TRELLIS_ERR_PARSE, "bad_request", "unknown member");
    expect(f, "{\"csr\":1,\"evidence\":\"AA\",\"challenge\":\"AA\"}", TRELLIS_ERR_PARSE,
           "bad_request", "csr");
    expect(f, "{\"csr\":\"AA\",\"evidence\":\"AA\",\"challenge\":\"AA\"} x", TRELLIS_ERR_PARSE,
           "bad_request", "");
}

static void test_bad_base64(void **state)
{
    fixture_t *f = *state;
    expect(f, "{\"csr\":\"A+/=\",\"evidence\":\"AA\",\"challenge\":\"AA\"}", TRELLIS_ERR_ENCODING,
           "bad_request", "csr");
    expect(f, "{\"csr\":\"AA\",\"evidence\":\"A A\",\"challenge\":\"AA\"}", TRELLIS_ERR_ENCODING,
           "bad_request", "evidence");
    expect(f, "{\"csr\":\"AA\",\"evidence\":\"AA\",\"challenge\":\"AB\"}", TRELLIS_ERR_ENCODING,
           "bad_request", "challenge");
}

static void test_oversize(void **state)
{
    fixture_t *f = *state;
    /* A CSR above the 4 KiB cap, told apart from its text length. */
    size_t n = 6000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int pos = snprintf(big, 64, "{\"csr\":\"");
    memset(big + pos, 'A', n);
    snprintf(big + pos + n, 64, "\",\"evidence\":\"AA\",\"challenge\":\"AA\"}");
    expect(f, big, TRELLIS_ERR_TOO_LARGE, "too_large", "csr");
    /* A body above the 16 KiB limit. */
    char *huge = malloc(TR__BODY_MAX + 2);
    assert_non_null(huge);
    memset(huge, ' ', TR__BODY_MAX + 1);
    huge[0] = '{';
    huge[TR__BODY_MAX] = '}';
    huge[TR__BODY_MAX + 1] = '\0';
    expect(f, huge, TRELLIS_ERR_TOO_LARGE, "too_large", "");
    free(huge);
    free(big);
}

static void test_bad_challenge(void **state)
{
    fixture_t *f = *state;
    /* Forged: minted with another secret. */
    uint8_t other_secret[32], forged[TR__CHALLENGE_LEN];
    memset(other_secret, 7, sizeof(other_secret));
    assert_int_equal(tr__reg_challenge_mint(other_secret, f->now, 300, forged), TRELLIS_OK);
    char *body = rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len, forged, sizeof(forged));
    expect(f, body, TRELLIS_ERR_BAD_CHALLENGE, "bad_challenge", "not a challenge");
    free(body);
    /* Stale: the same body, parsed after the challenge expired. */
    body = body_of(f);
    trellis_reason_t why;
    assert_int_equal(tr__reg_enroll_parse((const uint8_t *)body, strlen(body), f->secret,
                                          f->now + 301, 300, f->req, &why),
                     TRELLIS_ERR_BAD_CHALLENGE);
    assert_non_null(strstr(why.text, "expired"));
    free(body);
    /* Not a challenge at all, or far too long. */
    uint8_t junk[300];
    memset(junk, 0x01, sizeof(junk));
    body = rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len, junk, 57);
    expect(f, body, TRELLIS_ERR_BAD_CHALLENGE, "bad_challenge", "");
    free(body);
    body = rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len, junk, 3);
    expect(f, body, TRELLIS_ERR_BAD_CHALLENGE, "bad_challenge", "");
    free(body);
    body = rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len, junk, sizeof(junk));
    expect(f, body, TRELLIS_ERR_TOO_LARGE, "too_large", "challenge");
    free(body);
}

static void test_bad_evidence(void **state)
{
    fixture_t *f = *state;
    uint8_t junk[64];
    memset(junk, 0xa0, sizeof(junk));
    char *body =
        rt_enroll_body(f->csr, f->csr_len, junk, sizeof(junk), f->challenge, sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_EVIDENCE, "bad_evidence", "evidence");
    free(body);
    body = rt_enroll_body(f->csr, f->csr_len, f->ev, f->ev_len - 1, f->challenge,
                          sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_EVIDENCE, "bad_evidence", "evidence");
    free(body);
    /* Evidence made for another challenge: its nonce does not bind this one. */
    uint8_t other[TR__CHALLENGE_LEN], ev[4096];
    assert_int_equal(tr__reg_challenge_mint(f->secret, f->now, 300, other), TRELLIS_OK);
    size_t ev_len =
        rt_evidence(f->d.rot, f->d.point, other, sizeof(other), f->csr, f->csr_len, ev, sizeof(ev));
    body = rt_enroll_body(f->csr, f->csr_len, ev, ev_len, f->challenge, sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_EVIDENCE, "bad_evidence", "nonce");
    free(body);
}

static void test_bad_csr(void **state)
{
    fixture_t *f = *state;
    /* The subject is not the device the evidence names. */
    rt_device_t other;
    rt_device_init(&other);
    uint8_t csr[2048], ev[4096];
    size_t csr_len = rt_csr(&f->d, other.id, csr, sizeof(csr));
    size_t ev_len = rt_evidence(f->d.rot, f->d.point, f->challenge, sizeof(f->challenge), csr,
                                csr_len, ev, sizeof(ev));
    char *body = rt_enroll_body(csr, csr_len, ev, ev_len, f->challenge, sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_CSR, "bad_csr", "subject");
    free(body);
    rt_device_cleanup(&other);
    /* A CSR on another curve, properly signed and bound by the evidence. */
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    assert_non_null(k1);
    X509_REQ *req = X509_REQ_new();
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)f->d.id, -1, -1, 0);
    X509_REQ_set_pubkey(req, k1);
    assert_true(X509_REQ_sign(req, k1, EVP_sha256()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);
    ev_len = rt_evidence(f->d.rot, f->d.point, f->challenge, sizeof(f->challenge), der, (size_t)n,
                         ev, sizeof(ev));
    body = rt_enroll_body(der, (size_t)n, ev, ev_len, f->challenge, sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_CSR, "bad_csr", "secp256k1");
    free(body);
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(k1);
    /* Not a CSR. */
    uint8_t junk[40];
    memset(junk, 0x30, sizeof(junk));
    ev_len = rt_evidence(f->d.rot, f->d.point, f->challenge, sizeof(f->challenge), junk,
                         sizeof(junk), ev, sizeof(ev));
    body = rt_enroll_body(junk, sizeof(junk), ev, ev_len, f->challenge, sizeof(f->challenge));
    expect(f, body, TRELLIS_ERR_BAD_CSR, "bad_csr", "");
    free(body);
}

static void test_reenroll_body(void **state)
{
    fixture_t *f = *state;
    uint8_t csr[TRELLIS_CSR_DER_MAX];
    size_t len = 99;
    trellis_csr_t parsed;
    trellis_reason_t why;
    char body[4096], b64[3000];
    size_t n = 0;
    assert_int_equal(trellis_b64url_encode(f->csr, f->csr_len, b64, sizeof(b64), &n), TRELLIS_OK);
    snprintf(body, sizeof(body), "{\"csr\":\"%s\"}", b64);
    assert_int_equal(tr__reg_reenroll_parse((const uint8_t *)body, strlen(body), csr, sizeof(csr),
                                            &len, &parsed, &why),
                     TRELLIS_OK);
    assert_int_equal(len, f->csr_len);
    assert_string_equal(parsed.cn, f->d.id);
    trellis_csr_cleanup(&parsed);
    snprintf(body, sizeof(body), "{\"csr\":\"%s\",\"evidence\":\"AA\"}", b64);
    assert_int_equal(tr__reg_reenroll_parse((const uint8_t *)body, strlen(body), csr, sizeof(csr),
                                            &len, &parsed, &why),
                     TRELLIS_ERR_PARSE);
    assert_int_equal(len, 0);
    assert_null(parsed.key);
    assert_int_equal(tr__reg_reenroll_parse((const uint8_t *)"{\"csr\":\"MAA\"}", 13, csr,
                                            sizeof(csr), &len, &parsed, &why),
                     TRELLIS_ERR_BAD_CSR);
}

/* ---- the verifier's answer ---- */

typedef struct {
    EVP_PKEY *key;
    char kid[44];
    trellis_verdict_t v;
    uint8_t csr_sha256[32];
    uint8_t nonce[32];
    char device[33];
} verdict_fixture_t;

/* A good verdict for the fixture's request (the key is kept). */
static void vf_claims(verdict_fixture_t *vf)
{
    memset(vf->csr_sha256, 0x11, 32);
    memset(vf->nonce, 0x22, 32);
    snprintf(vf->device, sizeof(vf->device), "0123456789abcdef0123456789abcdef");
    trellis_verdict_t *v = &vf->v;
    snprintf(v->iss, sizeof(v->iss), "trellis-verifier");
    v->iat = (int64_t)time(NULL);
    v->exp = v->iat + 300;
    memcpy(v->device_id, vf->device, 33);
    memcpy(v->csr_sha256, vf->csr_sha256, 32);
    memcpy(v->nonce, vf->nonce, 32);
    v->nonce_len = 32;
    snprintf(v->oem, sizeof(v->oem), RT_OEM);
    v->status = TRELLIS_VERDICT_AFFIRMING;
    v->n_reasons = 0;
}

static void vf_init(verdict_fixture_t *vf)
{
    memset(vf, 0, sizeof(*vf));
    assert_int_equal(trellis_p256_generate(&vf->key), TRELLIS_OK);
    assert_int_equal(trellis_verdict_kid(vf->key, vf->kid), TRELLIS_OK);
    vf_claims(vf);
}

static trellis_err_t check(verdict_fixture_t *vf, EVP_PKEY *sign_key, int status,
                           const char *body_override, char *reason_out)
{
    char jws[TRELLIS_VERDICT_JWS_MAX + 1], body[TRELLIS_VERDICT_JWS_MAX + 64];
    char out[TR__VERDICT_MAX + 1];
    size_t len = 0;
    trellis_reason_t why;
    char kid[44];
    assert_int_equal(trellis_verdict_kid(sign_key, kid), TRELLIS_OK);
    assert_int_equal(trellis_verdict_sign(&vf->v, sign_key, kid, jws, sizeof(jws), &len),
                     TRELLIS_OK);
    snprintf(body, sizeof(body), "{\"verdict\":\"%s\",\"status\":\"%s\"}", jws,
             trellis_verdict_status_name(vf->v.status));
    const char *b = body_override != NULL ? body_override : body;
    tr__reg_verdict_expect_t e = {.verdict_key = vf->key,
                                  .oem = RT_OEM,
                                  .device_id = vf->device,
                                  .csr_sha256 = vf->csr_sha256,
                                  .nonce = vf->nonce};
    trellis_err_t err = tr__reg_verdict_check(&e, status, (const uint8_t *)b, strlen(b),
                                              (int64_t)time(NULL), out, &why);
    if (reason_out != NULL)
        snprintf(reason_out, sizeof(why.text), "%s", why.text);
    if (err == TRELLIS_OK)
        assert_string_equal(out, jws);
    return err;
}

static void test_verdicts(void **state)
{
    (void)state;
    verdict_fixture_t vf;
    char why[sizeof(trellis_reason_t)];
    vf_init(&vf);
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_OK);

    /* Not signed by the pinned key. */
    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
    assert_int_equal(check(&vf, other, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    assert_non_null(strstr(why, "signature"));
    EVP_PKEY_free(other);
    /* Expired. */
    vf.v.iat -= 400;
    vf.v.exp = vf.v.iat + 300;
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    assert_non_null(strstr(why, "expired"));
    vf_claims(&vf);
    /* About another device, CSR, nonce or OEM. */
    vf.v.device_id[0] = 'f';
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    assert_non_null(strstr(why, "another request"));
    vf_claims(&vf);
    vf.v.csr_sha256[5] ^= 1;
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    vf_claims(&vf);
    vf.v.nonce[0] ^= 1;
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    vf_claims(&vf);
    snprintf(vf.v.oem, sizeof(vf.v.oem), "globex");
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNAVAILABLE);
    vf_claims(&vf);

    /* Negative verdicts map to the device-facing codes. */
    vf.v.status = TRELLIS_VERDICT_CONTRAINDICATED;
    vf.v.n_reasons = 1;
    snprintf(vf.v.reasons[0], sizeof(vf.v.reasons[0]), TRELLIS_VREASON_UNKNOWN_DEVICE);
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_UNKNOWN_DEVICE);
    snprintf(vf.v.reasons[0], sizeof(vf.v.reasons[0]), TRELLIS_VREASON_REVOKED);
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_REVOKED);
    snprintf(vf.v.reasons[0], sizeof(vf.v.reasons[0]), TRELLIS_VREASON_BAD_SIGNATURE);
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_BAD_EVIDENCE);
    snprintf(vf.v.reasons[0], sizeof(vf.v.reasons[0]), TRELLIS_VREASON_NONCE_MISMATCH);
    assert_int_equal(check(&vf, vf.key, 200, NULL, why), TRELLIS_ERR_BAD_EVIDENCE);
    vf_claims(&vf);

    /* Refusals and failures of the verifier itself. */
    assert_int_equal(check(&vf, vf.key, 400,
                           "{\"error\":\"bad_evidence\",\"detail\":\"token is truncated\"}", why),
                     TRELLIS_ERR_BAD_EVIDENCE);
    assert_non_null(strstr(why, "truncated"));
    assert_int_equal(check(&vf, vf.key, 413, "{\"error\":\"too_large\"}", why),
                     TRELLIS_ERR_BAD_EVIDENCE);
    assert_int_equal(check(&vf, vf.key, 500, "{\"error\":\"unavailable\"}", why),
                     TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(check(&vf, vf.key, 403, "{\"error\":\"bad_request\"}", why),
                     TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(check(&vf, vf.key, 502, "<html>", why), TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(check(&vf, vf.key, 200, "{\"hello\":1}", why), TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(check(&vf, vf.key, 200, "{\"verdict\":\"a.b.c\"}", why),
                     TRELLIS_ERR_UNAVAILABLE);
    assert_int_equal(check(&vf, vf.key, 200, "not json", why), TRELLIS_ERR_UNAVAILABLE);
    EVP_PKEY_free(vf.key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_evidence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_csr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reenroll_body, setup, teardown),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
