/*
 * The verify decision (design.md §2 step 5): parse the request, find the device by the token's
 * instance id, and judge. Kept apart from HTTP so the decision is tested on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/json.h"
#include "trellis/psa_token.h"
#include "verifier_internal.h"

trellis_err_t tr__verify_parse(const char *body, size_t len, tr__verify_request_t *out,
                               trellis_reason_t *reason)
{
    static const char *const members[] = {"evidence", "csr", "challenge"};
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *root = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    err = trellis_json_parse_object(body, len, TR__VERIFY_BODY_MAX, &root, reason);
    if (err != TRELLIS_OK)
        goto out;
    if ((err = trellis_json_reject_unknown(root, members, 3, reason)) != TRELLIS_OK ||
        (err = trellis_json_get_b64url(root, "evidence", out->evidence, sizeof(out->evidence),
                                       &out->evidence_len, reason)) != TRELLIS_OK ||
        (err = trellis_json_get_b64url(root, "csr", out->csr, sizeof(out->csr), &out->csr_len,
                                       reason)) != TRELLIS_OK ||
        (err = trellis_json_get_b64url(root, "challenge", out->challenge, sizeof(out->challenge),
                                       &out->challenge_len, reason)) != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_PARSE;
    if (out->evidence_len == 0 || out->csr_len == 0 || out->challenge_len == 0) {
        trellis_reason_set(reason, err, "member %s is empty",
                           out->evidence_len == 0 ? "evidence"
                           : out->csr_len == 0    ? "csr"
                                                  : "challenge");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(root);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

static void set_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static void add_reason(trellis_verdict_t *v, const char *code)
{
    if (v->n_reasons < TRELLIS_VERDICT_REASONS_MAX)
        set_text(v->reasons[v->n_reasons++], sizeof(v->reasons[0]), code);
    v->status = TRELLIS_VERDICT_CONTRAINDICATED;
}

/* Checks the evidence against the device's recorded RoT key. Fills reasons and the audit
 * detail; returns an error only when the check itself could not run. */
static trellis_err_t appraise(const trellis_vstore_device_t *dev, const tr__verify_request_t *req,
                              const uint8_t nonce[static TRELLIS_SHA256_LEN], trellis_verdict_t *v,
                              trellis_vstore_audit_t *audit)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *key = NULL;
    trellis_psa_claims_t claims;
    trellis_reason_t why;

    trellis_reason_clear(&why);
    if (dev->revoked) {
        add_reason(v, TRELLIS_VREASON_REVOKED);
        snprintf(audit->reason, sizeof(audit->reason), "revoked: %.200s", dev->revoke_reason);
        return TRELLIS_OK;
    }
    /* The point was checked when it entered the registry; decoding it checks it again. */
    err = trellis_p256_from_point(dev->rot_key, &key);
    if (err != TRELLIS_OK)
        goto out;
    /* Signature first, then the nonce: the binding to this challenge and CSR only means
     * something once the RoT key is known to have signed it. */
    err = trellis_psa_token_verify(req->evidence, req->evidence_len, key, nonce, TRELLIS_SHA256_LEN,
                                   &claims, &why);
    if (err == TRELLIS_ERR_TOKEN_SIGNATURE) {
        add_reason(v, TRELLIS_VREASON_BAD_SIGNATURE);
    } else if (err == TRELLIS_ERR_TOKEN_NONCE) {
        add_reason(v, TRELLIS_VREASON_NONCE_MISMATCH);
    } else if (err != TRELLIS_OK) {
        add_reason(v, TRELLIS_VREASON_BAD_EVIDENCE);
    } else if (!trellis_psa_lifecycle_trusted(claims.lifecycle)) {
        /* RFC 9783 §4.3.1: only a SECURED or NON_PSA_ROT_DEBUG RoT produces reports a verifier
         * can trust. */
        add_reason(v, TRELLIS_VREASON_LIFECYCLE);
        snprintf(why.text, sizeof(why.text), "lifecycle %s (0x%04x)",
                 trellis_psa_lifecycle_name(claims.lifecycle), claims.lifecycle);
    }
    snprintf(audit->reason, sizeof(audit->reason), "%s",
             v->n_reasons == 0 ? "evidence verified" : why.text);
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    return err;
}

trellis_err_t tr__verify_judge(const tr__judge_t *judge, const char *caller,
                               const tr__verify_request_t *req, int64_t now,
                               tr__verify_outcome_t *out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_psa_claims_t claims;
    trellis_vstore_device_t dev;
    uint8_t nonce[TRELLIS_SHA256_LEN];
    size_t n = 0;

    trellis_reason_clear(reason);
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (judge == NULL || judge->store == NULL || judge->verdict_key == NULL || judge->kid == NULL ||
        judge->verifier_id == NULL || caller == NULL || req == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_verdict_t *v = &out->verdict;
    trellis_vstore_audit_t *a = &out->audit;

    /* The claims are unauthenticated here: only the instance id is used, to find the key. */
    err = trellis_psa_token_decode_unverified(req->evidence, req->evidence_len, &claims, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_TOKEN_CLAIM;
    if (!claims.has_instance_id || claims.instance_id[0] != TRELLIS_PSA_UEID_TYPE_RAND) {
        trellis_reason_set(reason, err, "claim 256 (instance id) is missing or not of type RAND");
        goto out;
    }
    /* UEID = 0x01 || SHA-256(point) and device id = hex(SHA-256(point)[0..15]) (design.md §3),
     * so the device id is the hex of UEID bytes 1..16. */
    err = trellis_hex_encode(claims.instance_id + 1, TRELLIS_DEVICE_ID_HEX_LEN / 2, v->device_id,
                             sizeof(v->device_id), &n);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_sha256_two(req->challenge, req->challenge_len, req->csr, req->csr_len, nonce);
    if (err == TRELLIS_OK)
        err = trellis_sha256(req->csr, req->csr_len, v->csr_sha256);
    if (err != TRELLIS_OK)
        goto out;
    set_text(v->iss, sizeof(v->iss), judge->verifier_id);
    set_text(v->oem, sizeof(v->oem), caller);
    v->iat = now;
    v->exp = now + (judge->ttl_s > 0 ? judge->ttl_s : TRELLIS_VERDICT_TTL_S);
    memcpy(v->nonce, nonce, sizeof(nonce));
    v->nonce_len = sizeof(nonce);
    v->status = TRELLIS_VERDICT_AFFIRMING;

    set_text(a->event, sizeof(a->event), "verdict");
    set_text(a->caller, sizeof(a->caller), caller);
    set_text(a->device, sizeof(a->device), v->device_id);
    a->ts_ms = now * 1000;

    err = judge->store->device_get(judge->store->ctx, v->device_id, &dev);
    if (err == TRELLIS_ERR_NOT_FOUND || (err == TRELLIS_OK && strcmp(dev.owner, caller) != 0)) {
        /* Same answer for "does not exist" and "not yours" (design.md §1); only the audit log
         * records which it was. */
        add_reason(v, TRELLIS_VREASON_UNKNOWN_DEVICE);
        if (err == TRELLIS_ERR_NOT_FOUND)
            set_text(a->reason, sizeof(a->reason), "unknown device: not in the registry");
        else
            snprintf(a->reason, sizeof(a->reason), "unknown device: owned by %s", dev.owner);
    } else if (err != TRELLIS_OK) {
        goto out;
    } else {
        err = appraise(&dev, req, nonce, v, a);
        if (err != TRELLIS_OK)
            goto out;
    }
    set_text(a->outcome, sizeof(a->outcome), trellis_verdict_status_name(v->status));
    err = trellis_verdict_sign(v, judge->verdict_key, judge->kid, out->jws, sizeof(out->jws),
                               &out->jws_len);
out:
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}
