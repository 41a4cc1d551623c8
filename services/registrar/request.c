/*
 * The registrar's parsers of outside bytes: the enroll and reenroll bodies (from devices) and
 * the verifier's answer. None of them touches the store or the network, so the unit tests and
 * the fuzz target drive them directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/json.h"
#include "trellis/psa_token.h"
#include "trellis/verifier.h"

#define SECRET_FILE_MAX 256

int tr__reg_oem_name_valid(const char *name)
{
    size_t n = 0;
    if (name == NULL)
        return 0;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (n >= TR__OEM_MAX || !(alnum || (n > 0 && (c == '.' || c == '_' || c == '-'))))
            return 0;
    }
    return n > 0;
}

trellis_err_t tr__reg_challenge_secret_load(const char *path,
                                            uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                            trellis_reason_t *reason)
{
    uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    memset(secret, 0, TR__CHALLENGE_SECRET_LEN);
    trellis_err_t err = trellis_file_read_all(path, SECRET_FILE_MAX, &buf, &len);
    if (err != TRELLIS_OK)
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "challenge secret %.120s: %s", path,
                                  trellis_err_message(err));
    size_t text_len = len;
    while (text_len > 0 && (buf[text_len - 1] == '\n' || buf[text_len - 1] == '\r'))
        text_len--;
    err = TRELLIS_ERR_CONFIG;
    if (text_len == 2 * TR__CHALLENGE_SECRET_LEN &&
        trellis_hex_decode((const char *)buf, text_len, secret, TR__CHALLENGE_SECRET_LEN, &n) ==
            TRELLIS_OK &&
        n == TR__CHALLENGE_SECRET_LEN)
        err = TRELLIS_OK;
    trellis_file_buffer_free(buf, len);
    if (err != TRELLIS_OK) {
        OPENSSL_cleanse(secret, TR__CHALLENGE_SECRET_LEN);
        return trellis_reason_set(reason, err, "challenge secret %.120s: expected 64 hex digits",
                                  path);
    }
    return TRELLIS_OK;
}

/* The device id an evidence token names: its UEID is 0x01 || SHA-256(RoT point), and the id is
 * the hex of that hash's first 16 bytes (design.md §3). */
static trellis_err_t evidence_device(const uint8_t *token, size_t len,
                                     char device_id[static TRELLIS_RSTORE_DEVICE_ID_LEN + 1],
                                     uint8_t nonce[static 32], trellis_reason_t *reason)
{
    trellis_psa_claims_t *claims = NULL;
    trellis_reason_t why;
    size_t n = 0;
    trellis_err_t err = TRELLIS_ERR_NOMEM;

    claims = malloc(sizeof(*claims));
    if (claims == NULL)
        return trellis_reason_set(reason, err, "out of memory");
    err = trellis_psa_token_decode_unverified(token, len, claims, &why);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_EVIDENCE, "evidence: %s", why.text);
        goto out;
    }
    err = TRELLIS_ERR_BAD_EVIDENCE;
    if (claims->nonce_len != 32) {
        trellis_reason_set(reason, err, "evidence nonce has %zu bytes, Trellis devices send 32",
                           claims->nonce_len);
        goto out;
    }
    if (!claims->has_instance_id || claims->instance_id[0] != TRELLIS_PSA_UEID_TYPE_RAND) {
        trellis_reason_set(reason, err, "evidence has no RAND instance id");
        goto out;
    }
    err = trellis_hex_encode(claims->instance_id + 1, 16, device_id,
                             TRELLIS_RSTORE_DEVICE_ID_LEN + 1, &n);
    if (err != TRELLIS_OK)
        goto out;
    memcpy(nonce, claims->nonce, 32);
out:
    free(claims);
    return err;
}

static trellis_err_t json_member_err(trellis_err_t err)
{
    /* A member of the wrong size is the body's fault, whatever the getter calls it. */
    return err == TRELLIS_ERR_BUFFER_TOO_SMALL ? TRELLIS_ERR_TOO_LARGE : err;
}

trellis_err_t tr__reg_enroll_parse(const uint8_t *body, size_t len,
                                   const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                   int64_t now_s, int64_t ttl_s, tr__reg_enroll_req_t *out,
                                   trellis_reason_t *reason)
{
    static const char *const MEMBERS[] = {"csr", "evidence", "challenge"};
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *o = NULL;
    uint8_t challenge[256];
    size_t challenge_len = 0;
    uint8_t ev_nonce[32], want[32];

    trellis_reason_clear(reason);
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (body == NULL && len > 0)
        return TRELLIS_ERR_INVALID_ARG;
    err = trellis_json_parse_object((const char *)body, len, TR__BODY_MAX, &o, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_json_reject_unknown(o, MEMBERS, 3, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_json_get_b64url(o, "csr", out->csr_der, sizeof(out->csr_der), &out->csr_len,
                                  reason);
    if (err == TRELLIS_OK)
        err = trellis_json_get_b64url(o, "evidence", out->evidence, sizeof(out->evidence),
                                      &out->evidence_len, reason);
    if (err == TRELLIS_OK)
        err = trellis_json_get_b64url(o, "challenge", challenge, sizeof(challenge), &challenge_len,
                                      reason);
    if (err != TRELLIS_OK) {
        err = json_member_err(err);
        goto out;
    }
    /* The challenge first: an HMAC is the cheapest way to turn away what this registrar never
     * handed out. */
    err = tr__reg_challenge_check(secret, challenge, challenge_len, now_s, ttl_s,
                                  &out->challenge_expires, out->challenge_id, reason);
    if (err != TRELLIS_OK)
        goto out;
    memcpy(out->challenge, challenge, TR__CHALLENGE_LEN);
    err = evidence_device(out->evidence, out->evidence_len, out->device_id, ev_nonce, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_csr_parse(out->csr_der, out->csr_len, &out->csr, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* The identity is the one the evidence names; the verifier then proves it is the RoT's. */
    err = trellis_csr_check_subject(&out->csr, out->device_id, reason);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "CSR subject is not the device the evidence names");
        goto out;
    }
    /* design.md §3: nonce = SHA-256(challenge || CSR DER). Checked here so that evidence made
     * for another challenge or CSR never costs a verifier call. */
    err = trellis_sha256_two(out->challenge, TR__CHALLENGE_LEN, out->csr_der, out->csr_len, want);
    if (err != TRELLIS_OK)
        goto out;
    memcpy(out->nonce, want, sizeof(want));
    if (!trellis_ct_equal(want, ev_nonce, sizeof(want))) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_EVIDENCE,
                                 "evidence nonce is not SHA-256(challenge || CSR)");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(o);
    if (err != TRELLIS_OK) {
        trellis_csr_cleanup(&out->csr);
        memset(out, 0, sizeof(*out));
    }
    return err;
}

trellis_err_t tr__reg_reenroll_parse(const uint8_t *body, size_t len, uint8_t *csr_der,
                                     size_t csr_size, size_t *csr_len, trellis_csr_t *csr,
                                     trellis_reason_t *reason)
{
    static const char *const MEMBERS[] = {"csr"};
    json_t *o = NULL;
    trellis_reason_clear(reason);
    if (csr_der == NULL || csr_len == NULL || csr == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *csr_len = 0;
    memset(csr, 0, sizeof(*csr));
    if (body == NULL && len > 0)
        return TRELLIS_ERR_INVALID_ARG;
    trellis_err_t err =
        trellis_json_parse_object((const char *)body, len, TR__BODY_MAX, &o, reason);
    if (err == TRELLIS_OK)
        err = trellis_json_reject_unknown(o, MEMBERS, 1, reason);
    if (err == TRELLIS_OK)
        err =
            json_member_err(trellis_json_get_b64url(o, "csr", csr_der, csr_size, csr_len, reason));
    if (err == TRELLIS_OK)
        err = trellis_csr_parse(csr_der, *csr_len, csr, reason);
    json_decref(o);
    if (err != TRELLIS_OK)
        *csr_len = 0;
    return err;
}

/* A refusal from the verifier: {"error": CODE, "detail": TEXT}. */
static trellis_err_t verifier_refusal(int status, const uint8_t *body, size_t len,
                                      trellis_reason_t *reason)
{
    json_t *o = NULL;
    const char *code = NULL, *detail = NULL;
    trellis_err_t err = TRELLIS_ERR_UNAVAILABLE;
    if (trellis_json_parse_object((const char *)body, len, TR__BODY_MAX, &o, NULL) == TRELLIS_OK) {
        trellis_json_get_string(o, "error", 32, &code, NULL, NULL);
        trellis_json_get_string_opt(o, "detail", TRELLIS_JSON_DETAIL_MAX, &detail, NULL, NULL);
    }
    /* The evidence or the request built from it was refused: the device's to fix. */
    if ((status == 400 || status == 413) && code != NULL &&
        (strcmp(code, "bad_evidence") == 0 || strcmp(code, "bad_request") == 0 ||
         strcmp(code, "too_large") == 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_EVIDENCE, "verifier: %.150s",
                                 detail != NULL ? detail : code);
    } else {
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE, "the verifier answered %d %.40s",
                                 status, code != NULL ? code : "");
    }
    json_decref(o);
    return err;
}

trellis_err_t tr__reg_verdict_check(const tr__reg_verdict_expect_t *expect, int status,
                                    const uint8_t *body, size_t body_len, int64_t now_s,
                                    char jws[static TR__VERDICT_MAX + 1], trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *o = NULL;
    const char *text = NULL;
    size_t text_len = 0;
    trellis_verdict_t v;
    trellis_reason_t why;

    trellis_reason_clear(reason);
    memset(jws, 0, TR__VERDICT_MAX + 1);
    if (expect == NULL || expect->verdict_key == NULL || expect->oem == NULL ||
        expect->device_id == NULL || expect->csr_sha256 == NULL || expect->nonce == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (body == NULL && body_len > 0)
        return TRELLIS_ERR_INVALID_ARG;
    if (status != 200)
        return verifier_refusal(status, body, body_len, reason);
    err = TRELLIS_ERR_UNAVAILABLE;
    if (trellis_json_parse_object((const char *)body, body_len, TR__BODY_MAX, &o, &why) !=
            TRELLIS_OK ||
        trellis_json_get_string(o, "verdict", TR__VERDICT_MAX, &text, &text_len, &why) !=
            TRELLIS_OK) {
        trellis_reason_set(reason, err, "the verifier's answer is not a verdict: %.120s", why.text);
        goto out;
    }
    trellis_err_t verr =
        trellis_verdict_verify(text, text_len, expect->verdict_key, now_s, &v, &why);
    if (verr != TRELLIS_OK) {
        trellis_reason_set(reason, err, "the verifier's verdict is refused: %.120s", why.text);
        goto out;
    }
    /* The verdict must be about exactly this request, for this OEM. */
    if (strcmp(v.device_id, expect->device_id) != 0 ||
        !trellis_ct_equal(v.csr_sha256, expect->csr_sha256, 32) || v.nonce_len != 32 ||
        !trellis_ct_equal(v.nonce, expect->nonce, 32) || strcmp(v.oem, expect->oem) != 0) {
        trellis_reason_set(reason, err, "the verifier's verdict is about another request");
        goto out;
    }
    memcpy(jws, text, text_len);
    jws[text_len] = '\0';
    if (v.status == TRELLIS_VERDICT_AFFIRMING) {
        err = TRELLIS_OK;
        goto out;
    }
    err = TRELLIS_ERR_BAD_EVIDENCE;
    for (size_t i = 0; i < v.n_reasons; i++) {
        if (strcmp(v.reasons[i], TRELLIS_VREASON_UNKNOWN_DEVICE) == 0)
            err = TRELLIS_ERR_UNKNOWN_DEVICE;
        else if (strcmp(v.reasons[i], TRELLIS_VREASON_REVOKED) == 0 &&
                 err != TRELLIS_ERR_UNKNOWN_DEVICE)
            err = TRELLIS_ERR_REVOKED;
    }
    trellis_reason_set(reason, err, "verifier verdict: %s (%s)",
                       trellis_verdict_status_name(v.status),
                       v.n_reasons > 0 ? v.reasons[0] : "no reason");
out:
    json_decref(o);
    return err;
}

trellis_err_t tr__reg_verify_body(const tr__reg_enroll_req_t *req, char **out, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    size_t ev_len = trellis_b64url_encoded_len(req->evidence_len);
    size_t csr_len = trellis_b64url_encoded_len(req->csr_len);
    size_t ch_len = trellis_b64url_encoded_len(TR__CHALLENGE_LEN);
    size_t total = ev_len + csr_len + ch_len + 64, n = 0, pos = 0;
    char *text = malloc(total);

    *out = NULL;
    *out_len = 0;
    if (text == NULL)
        return err;
    /* {"evidence":"...","csr":"...","challenge":"..."}: base64url needs no JSON escaping. */
    static const char *const PARTS[] = {"{\"evidence\":\"", "\",\"csr\":\"", "\",\"challenge\":\"",
                                        "\"}"};
    const uint8_t *data[] = {req->evidence, req->csr_der, req->challenge};
    size_t lens[] = {req->evidence_len, req->csr_len, TR__CHALLENGE_LEN};
    for (size_t i = 0; i < 4; i++) {
        size_t l = strlen(PARTS[i]);
        memcpy(text + pos, PARTS[i], l);
        pos += l;
        if (i == 3)
            break;
        err = trellis_b64url_encode(data[i], lens[i], text + pos, total - pos, &n);
        if (err != TRELLIS_OK) {
            free(text);
            return err;
        }
        pos += n;
    }
    text[pos] = '\0';
    *out = text;
    *out_len = pos;
    return TRELLIS_OK;
}
