/*
 * Fuzzes the verify API's body parser and the decision behind it: arbitrary bytes go through
 * tr__verify_parse (strict JSON, base64url, limits) and, when they parse, through
 * tr__verify_judge against a registry in memory holding one device (its RoT key below) owned by
 * "acme". The first input byte chooses the caller: even "acme", odd "beta" (who must only ever
 * get "unknown_device"). Every verdict must verify with the verdict key and agree with itself.
 *
 * The keys are fixed test keys of this harness only; the seed corpus holds tokens signed with
 * the device key over its challenge and CSR.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/log.h"
#include "verifier_internal.h"

static const char DEVICE_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQ9TlXmOFs813L3vA\n"
    "bF+GL47JoV3Jn0IVZic6XZXVFx2hRANCAASc2oOxn8Fdwwa4GBCYpwcnlvSb25EF\n"
    "gP6L9oWPbvCNnG2gdASTXipdJewwo0B6G21q+GBT6xBWfsvBFe+A7mEY\n"
    "-----END PRIVATE KEY-----\n";

static const char VERDICT_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoWlLtStyPYmsuAPZ\n"
    "G1Nk3PWH50c+YVFmTmErzKWeWJqhRANCAARbRgcsYco/pkuVubW+JsnX9EPeruMr\n"
    "HzmYGHNjWzGP/0yZ1fxYlYMedPLKbDiEZJAFq1qpbropeWVdBWg91mbB\n"
    "-----END PRIVATE KEY-----\n";

static trellis_vstore_t *store;
static EVP_PKEY *verdict_key;
static char kid[TRELLIS_JWK_KID_LEN + 1];
static tr__judge_t judge;
static tr__verify_request_t *req;
static tr__verify_outcome_t *out;

static void must(int ok)
{
    if (!ok)
        abort();
}

static EVP_PKEY *load(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    must(k != NULL);
    return k;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t point[65], fpoint[65], digest[32], sha[32];
    char id[33];
    size_t n = 0;
    (void)argc;
    (void)argv;
    trellis_log_set_level(TRELLIS_LOG_OFF);
    EVP_PKEY *device = load(DEVICE_KEY_PEM);
    verdict_key = load(VERDICT_KEY_PEM);
    must(trellis_verdict_kid(verdict_key, kid) == TRELLIS_OK);
    must(trellis_p256_public_point(device, point) == TRELLIS_OK);
    must(trellis_p256_public_point(verdict_key, fpoint) == TRELLIS_OK);
    must(trellis_sha256(point, 65, digest) == TRELLIS_OK);
    must(trellis_hex_encode(digest, 16, id, sizeof(id), &n) == TRELLIS_OK);

    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 0, .create = 1};
    must(trellis_vstore_open_sqlite(":memory:", &o, &store) == TRELLIS_OK);
    must(store->oem_add(store->ctx, "acme", "fuzz") == TRELLIS_OK);
    must(store->oem_add(store->ctx, "beta", "fuzz") == TRELLIS_OK);
    must(store->factory_add(store->ctx, "fab-1", fpoint, "fuzz") == TRELLIS_OK);
    must(store->import_begin(store->ctx) == TRELLIS_OK);
    trellis_vstore_record_t r = {
        .device_id = id, .rot_key = point, .model = "T-100", .serial = "SN-1"};
    must(store->import_stage(store->ctx, &r, 2, NULL) == TRELLIS_OK);
    memset(sha, 0x5a, sizeof(sha));
    trellis_vstore_manifest_t m = {.factory = "fab-1",
                                   .owner = "acme",
                                   .batch = "b-1",
                                   .created = "2026-11-25T13:00:00Z",
                                   .count = 1,
                                   .sha256 = sha,
                                   .caller = "fuzz"};
    trellis_vstore_import_result_t res;
    must(store->import_commit(store->ctx, &m, &res) == TRELLIS_OK && res.added == 1);
    EVP_PKEY_free(device);

    judge = (tr__judge_t){.store = store,
                          .verdict_key = verdict_key,
                          .kid = kid,
                          .verifier_id = "verifier-fuzz",
                          .ttl_s = 300};
    req = malloc(sizeof(*req));
    out = malloc(sizeof(*out));
    must(req != NULL && out != NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trellis_reason_t why;
    trellis_verdict_t back;

    if (size < 1)
        return 0;
    const char *caller = (data[0] & 1) ? "beta" : "acme";
    trellis_reason_clear(&why);
    trellis_err_t err = tr__verify_parse((const char *)data + 1, size - 1, req, &why);
    must(err == TRELLIS_OK || why.text[0] != '\0');
    if (err != TRELLIS_OK)
        return 0;
    must(req->evidence_len > 0 && req->evidence_len <= TR__VERIFY_EVIDENCE_MAX);
    must(req->challenge_len > 0 && req->challenge_len <= TR__VERIFY_CHALLENGE_MAX);

    trellis_reason_clear(&why);
    err = tr__verify_judge(&judge, caller, req, 1795600000, out, &why);
    if (err != TRELLIS_OK) {
        must(why.text[0] != '\0' && out->jws_len == 0);
        return 0;
    }
    /* Every verdict is signed, verifies, and says what the judge decided. */
    must(trellis_verdict_verify(out->jws, out->jws_len, verdict_key, 1795600000, &back, &why) ==
         TRELLIS_OK);
    must(back.status == out->verdict.status && back.n_reasons == out->verdict.n_reasons);
    must(strcmp(back.device_id, out->verdict.device_id) == 0);
    must(strcmp(out->audit.outcome, trellis_verdict_status_name(back.status)) == 0);
    /* Another tenant never learns anything but "unknown device". */
    if (data[0] & 1)
        must(back.status == TRELLIS_VERDICT_CONTRAINDICATED && back.n_reasons == 1 &&
             strcmp(back.reasons[0], TRELLIS_VREASON_UNKNOWN_DEVICE) == 0);
    return 0;
}
