#include <string.h>

#include <jansson.h>

#include "crypto_internal.h"
#include "trellis/encoding.h"

/* Reads a required string member of the JWK into *out. */
static trellis_err_t jwk_string(const json_t *jwk, const char *name, const char **out,
                                size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const json_t *member = json_object_get(jwk, name);

    *out = NULL;
    *out_len = 0;
    if (member == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "JWK member %s is missing", name);
        goto out;
    }
    if (!json_is_string(member)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "JWK member %s is not a string", name);
        goto out;
    }
    *out = json_string_value(member);
    *out_len = json_string_length(member);
    err = TRELLIS_OK;
out:
    return err;
}

/* Decodes coordinate member name (RFC 7518 §6.2.1.2-3: base64url of exactly 32 octets). */
static trellis_err_t jwk_coordinate(const json_t *jwk, const char *name,
                                    uint8_t out[static TR__P256_SCALAR_LEN],
                                    trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const char *text = NULL;
    size_t text_len = 0;
    size_t len = 0;

    memset(out, 0, TR__P256_SCALAR_LEN);
    err = jwk_string(jwk, name, &text, &text_len, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* 32 octets are exactly 43 characters unpadded; checking first also bounds the decoder. */
    if (text_len != trellis_b64url_encoded_len(TR__P256_SCALAR_LEN)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "JWK member %s has %zu characters, expected %zu (32 bytes)", name,
                                 text_len, trellis_b64url_encoded_len(TR__P256_SCALAR_LEN));
        goto out;
    }
    err = trellis_b64url_decode(text, text_len, out, TR__P256_SCALAR_LEN, &len);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_ENCODING,
                                 "JWK member %s is not valid base64url", name);
        goto out;
    }
    if (len != TR__P256_SCALAR_LEN) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "JWK member %s has %zu bytes, expected 32", name, len);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TR__P256_SCALAR_LEN);
    return err;
}

trellis_err_t trellis_p256_from_jwk(const char *jwk_json, size_t len, EVP_PKEY **out_key,
                                    trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *jwk = NULL;
    json_error_t jerr;
    const char *text = NULL;
    size_t text_len = 0;
    uint8_t point[TRELLIS_P256_POINT_LEN];

    trellis_reason_clear(reason);
    if (out_key != NULL)
        *out_key = NULL;
    if (out_key == NULL || jwk_json == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no JWK given");
        goto out;
    }
    if (len > TRELLIS_JWK_MAX) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "JWK is %zu bytes, limit %d", len,
                                 TRELLIS_JWK_MAX);
        goto out;
    }
    /* RFC 7517 §4: member names within a JWK must be unique; a duplicate is refused rather
     * than resolved, so two readers can never see two different keys. */
    jwk = json_loadb(jwk_json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (jwk == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "JWK is not valid JSON at offset %d",
                                 jerr.position);
        goto out;
    }
    if (!json_is_object(jwk)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "JWK is not a JSON object");
        goto out;
    }
    err = jwk_string(jwk, "kty", &text, &text_len, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (text_len != 2 || memcmp(text, "EC", 2) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "JWK member kty is not \"EC\"");
        goto out;
    }
    err = jwk_string(jwk, "crv", &text, &text_len, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (text_len != 5 || memcmp(text, "P-256", 5) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "JWK member crv is not \"P-256\"");
        goto out;
    }
    if (json_object_get(jwk, "d") != NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "JWK carries a private key (member d), expected a public key");
        goto out;
    }
    /* SEC 1 v2 §2.3.3 uncompressed point: 0x04 || x || y. */
    point[0] = 0x04;
    err = jwk_coordinate(jwk, "x", point + 1, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = jwk_coordinate(jwk, "y", point + 1 + TR__P256_SCALAR_LEN, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_from_point(point, out_key);
    if (err != TRELLIS_OK) {
        if (err == TRELLIS_ERR_BAD_KEY)
            trellis_reason_set(reason, err, "JWK point (x, y) is not on the curve P-256");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(jwk);
    return tr__crypto_fail(err);
}
