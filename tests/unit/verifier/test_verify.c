#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "manifest.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/psa_token.h"
#include "verifier_internal.h"
#include "vtest_util.h"

enum { DEV_A1, DEV_A2, DEV_B1, DEV_GHOST, N_DEV };

typedef struct {
    char dir[256];
    trellis_vstore_t *s;
    EVP_PKEY *fkey, *vkey;
    char kid[TRELLIS_JWK_KID_LEN + 1];
    vt_device_t dev[N_DEV];
    tr__judge_t judge;
} fx_t;

static const uint8_t CSR[] = "0\x82\x01\x10 a CSR in DER would be here";
static const uint8_t CHALLENGE[32] = {1, 2, 3, 4, 5, 6, 7, 8};

static void import_for(fx_t *f, const char *owner, const char *batch, size_t from, size_t to)
{
    size_t len = 0;
    tr__import_t *imp = NULL;
    tr__import_report_t rep;
    vt_manifest_spec_t spec = {.factory = "fab-1",
                               .owner = owner,
                               .batch = batch,
                               .count = -1,
                               .devices = &f->dev[from],
                               .n_devices = to - from,
                               .signer = f->fkey};
    char *text = vt_manifest_build(&spec, &len);
    assert_int_equal(tr__import_new(f->s, "fab-1", 0, &imp), TRELLIS_OK);
    assert_int_equal(tr__import_feed(imp, (const uint8_t *)text, len), TRELLIS_OK);
    assert_int_equal(tr__import_finish(imp, &rep), TRELLIS_OK);
    tr__import_free(imp);
    free(text);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char db[300];
    uint8_t point[65];
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "verify");
    snprintf(db, sizeof(db), "%s/registry.db", f->dir);
    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 200, .create = 1};
    assert_int_equal(trellis_vstore_open_sqlite(db, &o, &f->s), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&f->fkey), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&f->vkey), TRELLIS_OK);
    assert_int_equal(trellis_verdict_kid(f->vkey, f->kid), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(f->fkey, point), TRELLIS_OK);
    trellis_vstore_t *s = f->s;
    assert_int_equal(s->oem_add(s->ctx, "acme", "admin"), TRELLIS_OK);
    assert_int_equal(s->oem_add(s->ctx, "beta", "admin"), TRELLIS_OK);
    assert_int_equal(s->factory_add(s->ctx, "fab-1", point, "admin"), TRELLIS_OK);
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_init(&f->dev[i], i);
    import_for(f, "acme", "b-a", DEV_A1, DEV_A2 + 1);
    import_for(f, "beta", "b-b", DEV_B1, DEV_B1 + 1);
    f->judge = (tr__judge_t){.store = s,
                             .verdict_key = f->vkey,
                             .kid = f->kid,
                             .verifier_id = "verifier-1",
                             .ttl_s = 300};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_cleanup(&f->dev[i]);
    EVP_PKEY_free(f->fkey);
    EVP_PKEY_free(f->vkey);
    trellis_vstore_close(f->s);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* A request for device d, its token signed by signer over challenge and csr. */
static void make_req(tr__verify_request_t *req, const vt_device_t *d, EVP_PKEY *signer,
                     const uint8_t *csr, size_t csr_len, uint16_t lifecycle)
{
    memset(req, 0, sizeof(*req));
    req->evidence_len = vt_token_make(signer, d->point, CHALLENGE, sizeof(CHALLENGE), csr, csr_len,
                                      lifecycle, req->evidence, sizeof(req->evidence));
    memcpy(req->csr, CSR, sizeof(CSR));
    req->csr_len = sizeof(CSR);
    memcpy(req->challenge, CHALLENGE, sizeof(CHALLENGE));
    req->challenge_len = sizeof(CHALLENGE);
}

static void judge(fx_t *f, const char *caller, const tr__verify_request_t *req,
                  trellis_verdict_status_t want, const char *reason, const char *audit_needle)
{
    tr__verify_outcome_t out;
    trellis_reason_t why;
    trellis_verdict_t back;
    int64_t now = (int64_t)time(NULL);
    trellis_err_t err = tr__verify_judge(&f->judge, caller, req, now, &out, &why);
    if (err != TRELLIS_OK)
        fail_msg("judge: %d %s", (int)err, why.text);
    assert_int_equal(out.verdict.status, want);
    assert_int_equal(out.jws_len, strlen(out.jws));
    /* The JWS verifies with the verdict key and says the same. */
    assert_int_equal(trellis_verdict_verify(out.jws, out.jws_len, f->vkey, now, &back, &why),
                     TRELLIS_OK);
    assert_int_equal(back.status, want);
    assert_string_equal(back.oem, caller);
    assert_string_equal(back.iss, "verifier-1");
    assert_int_equal(back.exp - back.iat, 300);
    uint8_t csr_hash[32];
    assert_int_equal(trellis_sha256(req->csr, req->csr_len, csr_hash), TRELLIS_OK);
    assert_memory_equal(back.csr_sha256, csr_hash, 32);
    if (reason == NULL) {
        assert_int_equal(back.n_reasons, 0);
    } else {
        assert_int_equal(back.n_reasons, 1);
        assert_string_equal(back.reasons[0], reason);
    }
    assert_string_equal(out.audit.event, "verdict");
    assert_string_equal(out.audit.caller, caller);
    assert_string_equal(out.audit.outcome, trellis_verdict_status_name(want));
    assert_string_equal(out.audit.device, back.device_id);
    if (strstr(out.audit.reason, audit_needle) == NULL)
        fail_msg("audit reason \"%s\" lacks \"%s\"", out.audit.reason, audit_needle);
}

static void test_affirming(void **state)
{
    fx_t *f = *state;
    tr__verify_request_t req;
    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A1].key, CSR, sizeof(CSR), 0);
    judge(f, "acme", &req, TRELLIS_VERDICT_AFFIRMING, NULL, "evidence verified");

    /* The verdict names the device and binds the nonce of this challenge and CSR. */
    tr__verify_outcome_t out;
    uint8_t nonce[32];
    assert_int_equal(tr__verify_judge(&f->judge, "acme", &req, 1000, &out, NULL), TRELLIS_OK);
    assert_string_equal(out.verdict.device_id, f->dev[DEV_A1].id);
    assert_int_equal(trellis_sha256_two(CHALLENGE, sizeof(CHALLENGE), CSR, sizeof(CSR), nonce),
                     TRELLIS_OK);
    assert_memory_equal(out.verdict.nonce, nonce, 32);
    assert_int_equal(out.verdict.iat, 1000);
    assert_int_equal(out.audit.ts_ms, 1000000);
}

static void test_tenant_isolation(void **state)
{
    fx_t *f = *state;
    tr__verify_request_t mine, theirs, ghost;
    tr__verify_outcome_t o_theirs, o_ghost;

    make_req(&mine, &f->dev[DEV_B1], f->dev[DEV_B1].key, CSR, sizeof(CSR), 0);
    judge(f, "beta", &mine, TRELLIS_VERDICT_AFFIRMING, NULL, "evidence verified");

    /* beta asks about acme's device, and about one that does not exist: the same answer. */
    make_req(&theirs, &f->dev[DEV_A1], f->dev[DEV_A1].key, CSR, sizeof(CSR), 0);
    judge(f, "beta", &theirs, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_UNKNOWN_DEVICE,
          "owned by acme");
    make_req(&ghost, &f->dev[DEV_GHOST], f->dev[DEV_GHOST].key, CSR, sizeof(CSR), 0);
    judge(f, "beta", &ghost, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_UNKNOWN_DEVICE,
          "not in the registry");

    /* Even a token with a bad signature for acme's device does not tell beta it exists. */
    make_req(&theirs, &f->dev[DEV_A1], f->dev[DEV_GHOST].key, CSR, sizeof(CSR), 0);
    judge(f, "beta", &theirs, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_UNKNOWN_DEVICE,
          "owned by acme");

    /* The verdicts differ only in the device they name (and the signature). */
    assert_int_equal(tr__verify_judge(&f->judge, "beta", &theirs, 5, &o_theirs, NULL), TRELLIS_OK);
    assert_int_equal(tr__verify_judge(&f->judge, "beta", &ghost, 5, &o_ghost, NULL), TRELLIS_OK);
    memcpy(o_ghost.verdict.device_id, o_theirs.verdict.device_id, 33);
    assert_memory_equal(&o_theirs.verdict, &o_ghost.verdict, sizeof(o_ghost.verdict));
}

static void test_negative_verdicts(void **state)
{
    fx_t *f = *state;
    tr__verify_request_t req;

    /* Signed by a key that is not the device's RoT key. */
    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A2].key, CSR, sizeof(CSR), 0);
    judge(f, "acme", &req, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_BAD_SIGNATURE,
          "signature");

    /* A token bound to another CSR than the one presented. */
    static const uint8_t other_csr[] = "another CSR";
    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A1].key, other_csr, sizeof(other_csr), 0);
    judge(f, "acme", &req, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_NONCE_MISMATCH,
          "nonce");

    /* A RoT still in assembly-and-test. */
    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A1].key, CSR, sizeof(CSR),
             TRELLIS_PSA_LIFECYCLE_ASSEMBLY_AND_TEST);
    judge(f, "acme", &req, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_LIFECYCLE, "assembly");

    /* Revoked: negative whatever the evidence. */
    assert_int_equal(f->s->device_revoke(f->s->ctx, f->dev[DEV_A2].id, "key leaked", "admin"),
                     TRELLIS_OK);
    make_req(&req, &f->dev[DEV_A2], f->dev[DEV_A2].key, CSR, sizeof(CSR), 0);
    judge(f, "acme", &req, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_REVOKED,
          "revoked: key leaked");

    /* After a transfer the new owner gets verdicts and the old one does not. */
    uint64_t moved = 0;
    assert_int_equal(
        f->s->transfer(f->s->ctx, f->dev[DEV_A1].id, NULL, NULL, "beta", "admin", &moved),
        TRELLIS_OK);
    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A1].key, CSR, sizeof(CSR), 0);
    judge(f, "beta", &req, TRELLIS_VERDICT_AFFIRMING, NULL, "verified");
    judge(f, "acme", &req, TRELLIS_VERDICT_CONTRAINDICATED, TRELLIS_VREASON_UNKNOWN_DEVICE,
          "owned by beta");
}

static void test_malformed_evidence(void **state)
{
    fx_t *f = *state;
    tr__verify_request_t req;
    tr__verify_outcome_t out;
    trellis_reason_t why;

    make_req(&req, &f->dev[DEV_A1], f->dev[DEV_A1].key, CSR, sizeof(CSR), 0);
    req.evidence_len -= 10; /* truncated CBOR */
    assert_int_equal(tr__verify_judge(&f->judge, "acme", &req, 5, &out, &why),
                     TRELLIS_ERR_TOKEN_MALFORMED);
    assert_int_equal(out.jws_len, 0);
    assert_string_equal(out.audit.event, "");
    memset(req.evidence, 0xff, 16);
    req.evidence_len = 16;
    assert_int_not_equal(tr__verify_judge(&f->judge, "acme", &req, 5, &out, &why), TRELLIS_OK);
    assert_int_equal(tr__verify_judge(NULL, "acme", &req, 5, &out, &why), TRELLIS_ERR_INVALID_ARG);
}

static void test_parse_body(void **state)
{
    (void)state;
    tr__verify_request_t req;
    trellis_reason_t why;
    const char *good = "{\"evidence\":\"AAEC\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\"}";
    assert_int_equal(tr__verify_parse(good, strlen(good), &req, &why), TRELLIS_OK);
    assert_int_equal(req.evidence_len, 3);
    assert_int_equal(req.csr[2], 5);
    assert_int_equal(req.challenge_len, 2);

    static const struct {
        const char *body;
        trellis_err_t err;
        const char *needle;
    } bad[] = {
        {"", TRELLIS_ERR_PARSE, ""},
        {"[]", TRELLIS_ERR_PARSE, ""},
        {"{\"evidence\":\"AAEC\",\"csr\":\"AwQF\"}", TRELLIS_ERR_PARSE, "challenge"},
        {"{\"evidence\":\"AAEC\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\",\"x\":1}",
         TRELLIS_ERR_PARSE, "unknown member"},
        {"{\"evidence\":\"AA==\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\"}", TRELLIS_ERR_ENCODING,
         "evidence"},
        {"{\"evidence\":\"AAEC\",\"csr\":5,\"challenge\":\"Bgc\"}", TRELLIS_ERR_PARSE, "csr"},
        {"{\"evidence\":\"\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\"}", TRELLIS_ERR_PARSE,
         "evidence is empty"},
        {"{\"evidence\":\"AAEC\",\"evidence\":\"AAEC\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\"}",
         TRELLIS_ERR_PARSE, ""},
        {"{\"evidence\":\"AAEC\",\"csr\":\"AwQF\",\"challenge\":\"Bgc\"} {}", TRELLIS_ERR_PARSE,
         ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trellis_reason_clear(&why);
        trellis_err_t err = tr__verify_parse(bad[i].body, strlen(bad[i].body), &req, &why);
        if (err != bad[i].err || strstr(why.text, bad[i].needle) == NULL)
            fail_msg("case %zu: %d \"%s\"", i, (int)err, why.text);
        assert_int_equal(req.evidence_len, 0);
    }

    /* A challenge over its limit is too large; a body over 16 KiB too. */
    char big[TR__VERIFY_BODY_MAX + 64];
    char chal[400];
    memset(chal, 'A', 344);
    chal[344] = '\0'; /* 258 bytes decoded */
    snprintf(big, sizeof(big), "{\"evidence\":\"AAEC\",\"csr\":\"AwQF\",\"challenge\":\"%s\"}",
             chal);
    assert_int_equal(tr__verify_parse(big, strlen(big), &req, &why), TRELLIS_ERR_TOO_LARGE);
    memset(big, ' ', sizeof(big));
    assert_int_equal(tr__verify_parse(big, sizeof(big), &req, &why), TRELLIS_ERR_TOO_LARGE);
}

/* A device whose recorded key is not a P-256 point (only a store written behind the importer's
 * back could hold one): no verdict at all, and nothing leaks. */
static void test_bad_recorded_key(void **state)
{
    fx_t *f = *state;
    trellis_vstore_t *s = f->s;
    uint8_t point[65], hash[32], sha[32] = {7};
    char id[33];
    size_t n = 0;
    trellis_vstore_import_result_t res;
    tr__verify_request_t req;
    tr__verify_outcome_t out;
    trellis_reason_t why;

    memcpy(point, f->dev[DEV_GHOST].point, sizeof(point));
    point[64] ^= 1; /* off the curve */
    assert_int_equal(trellis_sha256(point, sizeof(point), hash), TRELLIS_OK);
    assert_int_equal(trellis_hex_encode(hash, 16, id, sizeof(id), &n), TRELLIS_OK);
    trellis_vstore_record_t r = {.device_id = id, .rot_key = point, .model = "M", .serial = "S-X"};
    trellis_vstore_manifest_t m = {.factory = "fab-1",
                                   .owner = "acme",
                                   .batch = "b-x",
                                   .created = "2026-01-01T00:00:00Z",
                                   .count = 1,
                                   .sha256 = sha,
                                   .caller = "fab-1"};
    assert_int_equal(s->import_begin(s->ctx), TRELLIS_OK);
    assert_int_equal(s->import_stage(s->ctx, &r, 2, &why), TRELLIS_OK);
    assert_int_equal(s->import_commit(s->ctx, &m, &res), TRELLIS_OK);
    /* The token names the bad point (its UEID is what the look-up uses). */
    memset(&req, 0, sizeof(req));
    req.evidence_len = vt_token_make(f->dev[DEV_GHOST].key, point, CHALLENGE, sizeof(CHALLENGE),
                                     CSR, sizeof(CSR), 0, req.evidence, sizeof(req.evidence));
    assert_true(req.evidence_len > 0);
    memcpy(req.csr, CSR, sizeof(CSR));
    req.csr_len = sizeof(CSR);
    memcpy(req.challenge, CHALLENGE, sizeof(CHALLENGE));
    req.challenge_len = sizeof(CHALLENGE);
    assert_int_equal(tr__verify_judge(&f->judge, "acme", &req, (int64_t)time(NULL), &out, &why),
                     TRELLIS_ERR_BAD_KEY);
    assert_int_equal(out.jws_len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_affirming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_verdicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_evidence, setup, teardown),
        cmocka_unit_test(test_parse_body),
        cmocka_unit_test_setup_teardown(test_bad_recorded_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
