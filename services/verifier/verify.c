/*
 * The verify decision (design.md §2 step 5): parse the request, find the device by the token's
 * instance id, and judge. Kept apart from HTTP so the decision is tested on its own.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

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

/* SEC 2 §2.4.2: the base point G of secp256r1, uncompressed. Any valid point would do: the
 * template only carries the curve. */
static const uint8_t P256_G[TRELLIS_ROT_KEY_LEN] = {
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5,
    0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4,
    0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a,
    0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
};

/*
 * The device's RoT key from its recorded point, without OpenSSL's full public-key check
 * (n·Q = ∞, a second scalar multiplication): the point was checked when it entered the
 * registry, and P-256 has cofactor 1, so on-curve (which decoding the point still checks) is
 * all that can be asked. With a template, the key is a copy of it with the point replaced,
 * which spares building the curve from its name (EC_GROUP_new_by_curve_name) per verdict.
 */
static trellis_err_t key_from_name(const uint8_t point[static TRELLIS_ROT_KEY_LEN], EVP_PKEY **out)
{
    trellis_err_t err = TRELLIS_ERR_BAD_KEY;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t encoded[TRELLIS_ROT_KEY_LEN];
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, encoded, sizeof(encoded)),
        OSSL_PARAM_construct_end(),
    };

    *out = NULL;
    memcpy(encoded, point, sizeof(encoded));
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL)
        return TRELLIS_ERR_NOMEM;
    if (EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1)
        err = TRELLIS_OK;
    EVP_PKEY_CTX_free(ctx);
    if (err != TRELLIS_OK)
        ERR_clear_error();
    return err;
}

trellis_err_t tr__device_key_template(EVP_PKEY **out)
{
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err = key_from_name(P256_G, out);
    return err == TRELLIS_ERR_BAD_KEY ? TRELLIS_ERR_CRYPTO : err;
}

static trellis_err_t device_key(const EVP_PKEY *key_template,
                                const uint8_t point[static TRELLIS_ROT_KEY_LEN], EVP_PKEY **out)
{
    *out = NULL;
    if (point[0] != 0x04)
        return TRELLIS_ERR_BAD_KEY;
    if (key_template == NULL)
        return key_from_name(point, out);
    /* EVP_PKEY_dup takes a non-const key but only reads it. */
    EVP_PKEY *key = EVP_PKEY_dup((EVP_PKEY *)(uintptr_t)key_template);
    if (key == NULL)
        return TRELLIS_ERR_NOMEM;
    /* Decodes the point: refused unless it is on the curve (and not the point at infinity). */
    if (EVP_PKEY_set1_encoded_public_key(key, point, TRELLIS_ROT_KEY_LEN) != 1) {
        EVP_PKEY_free(key);
        ERR_clear_error();
        return TRELLIS_ERR_BAD_KEY;
    }
    *out = key;
    return TRELLIS_OK;
}

/* Checks the evidence against the device's recorded RoT key. Fills reasons and the audit
 * detail; returns an error only when the check itself could not run. */
static trellis_err_t appraise(const tr__judge_t *judge, const trellis_vstore_device_t *dev,
                              const tr__verify_request_t *req,
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
    err = device_key(judge->key_template, dev->rot_key, &key);
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
        err = appraise(judge, &dev, req, nonce, v, a);
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
