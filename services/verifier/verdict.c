/*
 * Verdicts as JWS compact serializations (RFC 7515 §7.1), ES256 (RFC 7518 §3.4), with an EAR
 * payload (draft-ietf-rats-ear). See include/trellis/verifier.h for the claims.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/json.h"
#include "trellis/trellis.h"
#include "trellis/verifier.h"

#define COORD_LEN     32
#define COORD_B64_LEN 43
#define HEADER_MAX    256
#define PAYLOAD_MAX   1400
#define CLOCK_SKEW_S  60
#define SIG_B64_LEN   86

const char *trellis_verdict_status_name(trellis_verdict_status_t status)
{
    switch (status) {
    case TRELLIS_VERDICT_AFFIRMING:
        return "affirming";
    case TRELLIS_VERDICT_CONTRAINDICATED:
        return "contraindicated";
    default:
        return "invalid";
    }
}

static int code_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= TRELLIS_VERDICT_CODE_MAX || !((s[n] >= 'a' && s[n] <= 'z') || s[n] == '_'))
            return 0;
    }
    return n > 0;
}

/* x and y of the public point, base64url (RFC 7518 §6.2.1.2: 32 bytes each for P-256). */
static trellis_err_t coords_b64(const EVP_PKEY *key, char x[static COORD_B64_LEN + 1],
                                char y[static COORD_B64_LEN + 1])
{
    uint8_t point[TRELLIS_P256_POINT_LEN];
    size_t n = 0;
    trellis_err_t err = trellis_p256_public_point(key, point);
    if (err == TRELLIS_OK)
        err = trellis_b64url_encode(point + 1, COORD_LEN, x, COORD_B64_LEN + 1, &n);
    if (err == TRELLIS_OK)
        err = trellis_b64url_encode(point + 1 + COORD_LEN, COORD_LEN, y, COORD_B64_LEN + 1, &n);
    return err;
}

trellis_err_t trellis_verdict_kid(const EVP_PKEY *key, char out[static TRELLIS_JWK_KID_LEN + 1])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1];
    char canon[160];
    uint8_t digest[TRELLIS_SHA256_LEN];
    size_t n = 0;

    memset(out, 0, TRELLIS_JWK_KID_LEN + 1);
    if (key == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = coords_b64(key, x, y);
    if (err != TRELLIS_OK)
        goto out;
    /* RFC 7638 §3.2: the required members in lexicographic order, no whitespace. */
    int len = snprintf(canon, sizeof(canon),
                       "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    err = TRELLIS_ERR_INTERNAL;
    if (len <= 0 || (size_t)len >= sizeof(canon))
        goto out;
    err = trellis_sha256((const uint8_t *)canon, (size_t)len, digest);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_b64url_encode(digest, sizeof(digest), out, TRELLIS_JWK_KID_LEN + 1, &n);
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TRELLIS_JWK_KID_LEN + 1);
    return err;
}

trellis_err_t trellis_verdict_jwk(const EVP_PKEY *key, char *out, size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1], kid[TRELLIS_JWK_KID_LEN + 1];

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (key == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = coords_b64(key, x, y);
    if (err == TRELLIS_OK)
        err = trellis_verdict_kid(key, kid);
    if (err != TRELLIS_OK)
        return err;
    char tmp[320];
    int len = snprintf(tmp, sizeof(tmp),
                       "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                       "\"alg\":\"ES256\",\"use\":\"sig\"}",
                       x, y, kid);
    if (len <= 0 || (size_t)len >= sizeof(tmp))
        return TRELLIS_ERR_INTERNAL;
    *out_len = (size_t)len;
    if (out == NULL || out_size <= (size_t)len)
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    memcpy(out, tmp, (size_t)len + 1);
    return TRELLIS_OK;
}

static trellis_err_t check_verdict(const trellis_verdict_t *v)
{
    if (!trellis_vstore_name_valid(v->iss) || !trellis_vstore_name_valid(v->oem) ||
        !trellis_vstore_device_id_valid(v->device_id) ||
        (v->status != TRELLIS_VERDICT_AFFIRMING && v->status != TRELLIS_VERDICT_CONTRAINDICATED) ||
        v->n_reasons > TRELLIS_VERDICT_REASONS_MAX ||
        (v->nonce_len != 32 && v->nonce_len != 48 && v->nonce_len != 64))
        return TRELLIS_ERR_INVALID_ARG;
    for (size_t i = 0; i < v->n_reasons; i++) {
        if (memchr(v->reasons[i], '\0', sizeof(v->reasons[i])) == NULL ||
            !code_valid(v->reasons[i]))
            return TRELLIS_ERR_INVALID_ARG;
    }
    /* An affirming verdict with reasons, or a negative one without, would be ambiguous. */
    if ((v->status == TRELLIS_VERDICT_AFFIRMING) != (v->n_reasons == 0))
        return TRELLIS_ERR_INVALID_ARG;
    return TRELLIS_OK;
}

/* Appends with snprintf semantics; *pos grows past size on overflow, which the caller checks. */
static void put(char *buf, size_t size, size_t *pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void put(char *buf, size_t size, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*pos < size ? buf + *pos : NULL, *pos < size ? size - *pos : 0, fmt, ap);
    va_end(ap);
    *pos += n > 0 ? (size_t)n : 0;
}

/* The EAR payload. Every text field has been checked to need no JSON escaping. */
static trellis_err_t build_payload(const trellis_verdict_t *v, char *buf, size_t size,
                                   size_t *out_len)
{
    char nonce_b64[TRELLIS_VERDICT_NONCE_MAX * 2];
    char csr_hex[65];
    size_t n = 0, pos = 0;
    const char *status = trellis_verdict_status_name(v->status);

    trellis_err_t err =
        trellis_b64url_encode(v->nonce, v->nonce_len, nonce_b64, sizeof(nonce_b64), &n);
    if (err == TRELLIS_OK)
        err =
            trellis_hex_encode(v->csr_sha256, sizeof(v->csr_sha256), csr_hex, sizeof(csr_hex), &n);
    if (err != TRELLIS_OK)
        return err;
    put(buf, size, &pos,
        "{\"eat_profile\":\"" TRELLIS_VERDICT_PROFILE "\",\"iss\":\"%s\",\"iat\":%" PRId64
        ",\"exp\":%" PRId64
        ",\"ear.verifier-id\":{\"developer\":\"trellis\",\"build\":\"trellis " TRELLIS_VERSION
        "\"},\"eat_nonce\":\"%s\",\"device_id\":\"%s\",\"csr_sha256\":\"%s\","
        "\"oem\":\"%s\",\"status\":\"%s\",\"reasons\":[",
        v->iss, v->iat, v->exp, nonce_b64, v->device_id, csr_hex, v->oem, status);
    for (size_t i = 0; i < v->n_reasons; i++)
        put(buf, size, &pos, "%s\"%s\"", i > 0 ? "," : "", v->reasons[i]);
    put(buf, size, &pos, "],\"submods\":{\"device\":{\"ear.status\":\"%s\"}}}", status);
    if (pos >= size)
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    *out_len = pos;
    return TRELLIS_OK;
}

trellis_err_t trellis_verdict_sign(const trellis_verdict_t *v, const EVP_PKEY *key, const char *kid,
                                   char *out, size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char header[HEADER_MAX], payload[PAYLOAD_MAX];
    char jws[TRELLIS_VERDICT_JWS_MAX + 1];
    size_t header_len = 0, payload_len = 0, n = 0, pos = 0;
    uint8_t digest[TRELLIS_SHA256_LEN], sig[TRELLIS_P256_SIG_RAW_LEN];

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (v == NULL || key == NULL || kid == NULL || strlen(kid) != TRELLIS_JWK_KID_LEN)
        return TRELLIS_ERR_INVALID_ARG;
    err = check_verdict(v);
    if (err != TRELLIS_OK)
        goto out;
    for (size_t i = 0; i < TRELLIS_JWK_KID_LEN; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_')) {
            err = TRELLIS_ERR_INVALID_ARG;
            goto out;
        }
    }
    int hl =
        snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    err = TRELLIS_ERR_INTERNAL;
    if (hl <= 0 || (size_t)hl >= sizeof(header))
        goto out;
    header_len = (size_t)hl;
    err = build_payload(v, payload, sizeof(payload), &payload_len);
    if (err != TRELLIS_OK)
        goto out;
    /* RFC 7515 §5.1: signing input = BASE64URL(header) || '.' || BASE64URL(payload). */
    err = trellis_b64url_encode((const uint8_t *)header, header_len, jws, sizeof(jws), &n);
    if (err != TRELLIS_OK)
        goto out;
    pos = n;
    jws[pos++] = '.';
    err = trellis_b64url_encode((const uint8_t *)payload, payload_len, jws + pos, sizeof(jws) - pos,
                                &n);
    if (err != TRELLIS_OK)
        goto out;
    pos += n;
    err = trellis_sha256((const uint8_t *)jws, pos, digest);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_sign_digest(key, digest, sig);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_BUFFER_TOO_SMALL;
    if (pos + 1 + SIG_B64_LEN >= sizeof(jws))
        goto out;
    jws[pos++] = '.';
    err = trellis_b64url_encode(sig, sizeof(sig), jws + pos, sizeof(jws) - pos, &n);
    if (err != TRELLIS_OK)
        goto out;
    pos += n;
    *out_len = pos;
    err = TRELLIS_ERR_BUFFER_TOO_SMALL;
    if (out == NULL || out_size <= pos)
        goto out;
    memcpy(out, jws, pos + 1);
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && err != TRELLIS_ERR_BUFFER_TOO_SMALL)
        *out_len = 0;
    return err;
}

/* ---- verification ---- */

static trellis_err_t decode_part(const char *s, size_t len, uint8_t *buf, size_t size,
                                 size_t *out_len)
{
    if (trellis_b64url_decoded_max(len) > size)
        return TRELLIS_ERR_PARSE;
    return trellis_b64url_decode(s, len, buf, size, out_len) == TRELLIS_OK ? TRELLIS_OK
                                                                           : TRELLIS_ERR_PARSE;
}

static trellis_err_t get_name(const json_t *obj, const char *key, char *out, size_t size,
                              int (*valid)(const char *), trellis_reason_t *reason)
{
    const char *s = NULL;
    size_t n = 0;
    trellis_err_t err = trellis_json_get_string(obj, key, size - 1, &s, &n, reason);
    if (err != TRELLIS_OK)
        return TRELLIS_ERR_PARSE;
    if (!valid(s))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim %s is not valid", key);
    memcpy(out, s, n + 1);
    return TRELLIS_OK;
}

static trellis_err_t read_claims(const json_t *p, trellis_verdict_t *v, trellis_reason_t *reason)
{
    static const char *const members[] = {
        "eat_profile", "iss",        "iat", "exp",    "ear.verifier-id", "eat_nonce",
        "device_id",   "csr_sha256", "oem", "status", "reasons",         "submods"};
    const char *s = NULL;
    size_t n = 0, raw = 0;
    long long iat = 0, exp = 0;

    if (trellis_json_reject_unknown(p, members, sizeof(members) / sizeof(members[0]), reason) !=
            TRELLIS_OK ||
        trellis_json_get_string(p, "eat_profile", 64, &s, &n, reason) != TRELLIS_OK)
        return TRELLIS_ERR_PARSE;
    if (strcmp(s, TRELLIS_VERDICT_PROFILE) != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim eat_profile is not EAR");
    if (get_name(p, "iss", v->iss, sizeof(v->iss), trellis_vstore_name_valid, reason) ||
        get_name(p, "oem", v->oem, sizeof(v->oem), trellis_vstore_name_valid, reason) ||
        get_name(p, "device_id", v->device_id, sizeof(v->device_id), trellis_vstore_device_id_valid,
                 reason) ||
        trellis_json_get_int(p, "iat", 0, INT64_MAX, &iat, reason) != TRELLIS_OK ||
        trellis_json_get_int(p, "exp", 0, INT64_MAX, &exp, reason) != TRELLIS_OK)
        return TRELLIS_ERR_PARSE;
    v->iat = iat;
    v->exp = exp;
    if (trellis_json_get_b64url(p, "eat_nonce", v->nonce, sizeof(v->nonce), &v->nonce_len,
                                reason) != TRELLIS_OK ||
        (v->nonce_len != 32 && v->nonce_len != 48 && v->nonce_len != 64))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim eat_nonce is not valid");
    if (trellis_json_get_string(p, "csr_sha256", 64, &s, &n, reason) != TRELLIS_OK || n != 64 ||
        trellis_hex_decode(s, n, v->csr_sha256, sizeof(v->csr_sha256), &raw) != TRELLIS_OK)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim csr_sha256 is not valid");
    if (trellis_json_get_string(p, "status", 32, &s, &n, reason) != TRELLIS_OK)
        return TRELLIS_ERR_PARSE;
    if (strcmp(s, "affirming") == 0)
        v->status = TRELLIS_VERDICT_AFFIRMING;
    else if (strcmp(s, "contraindicated") == 0)
        v->status = TRELLIS_VERDICT_CONTRAINDICATED;
    else
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim status is not valid");
    const json_t *arr = json_object_get(p, "reasons");
    if (!json_is_array(arr) || json_array_size(arr) > TRELLIS_VERDICT_REASONS_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim reasons is not valid");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *r = json_array_get(arr, i);
        const char *code = json_string_value(r);
        if (code == NULL || json_string_length(r) > TRELLIS_VERDICT_CODE_MAX || !code_valid(code))
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claim reasons is not valid");
        memcpy(v->reasons[i], code, strlen(code) + 1);
        v->n_reasons++;
    }
    if ((v->status == TRELLIS_VERDICT_AFFIRMING) != (v->n_reasons == 0))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "status and reasons disagree");
    return TRELLIS_OK;
}

trellis_err_t trellis_verdict_verify(const char *jws, size_t len, const EVP_PKEY *key, int64_t now,
                                     trellis_verdict_t *out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t header[HEADER_MAX], payload[PAYLOAD_MAX + 1], sig[TRELLIS_P256_SIG_RAW_LEN];
    uint8_t digest[TRELLIS_SHA256_LEN];
    size_t header_len = 0, payload_len = 0, sig_len = 0;
    json_t *h = NULL, *p = NULL;
    const char *alg = NULL;

    trellis_reason_clear(reason);
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (jws == NULL || key == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_PARSE;
    if (len > TRELLIS_VERDICT_JWS_MAX) {
        trellis_reason_set(reason, err, "longer than %d bytes", TRELLIS_VERDICT_JWS_MAX);
        goto out;
    }
    const char *dot1 = memchr(jws, '.', len);
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws)) != NULL) {
        trellis_reason_set(reason, err, "not a JWS compact serialization (three parts)");
        goto out;
    }
    if (decode_part(jws, (size_t)(dot1 - jws), header, sizeof(header), &header_len) ||
        decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, sizeof(payload) - 1,
                    &payload_len) ||
        decode_part(dot2 + 1, len - (size_t)(dot2 + 1 - jws), sig, sizeof(sig), &sig_len) ||
        sig_len != sizeof(sig)) {
        trellis_reason_set(reason, err, "a part is not valid base64url of the right size");
        goto out;
    }
    if (trellis_json_parse_object((const char *)header, header_len, HEADER_MAX, &h, reason) !=
            TRELLIS_OK ||
        trellis_json_get_string(h, "alg", 16, &alg, NULL, reason) != TRELLIS_OK)
        goto out;
    /* RFC 8725 §3.1: the algorithm is fixed by the verifier, never taken from the token. */
    if (strcmp(alg, "ES256") != 0) {
        trellis_reason_set(reason, err, "alg is not ES256");
        goto out;
    }
    err = trellis_sha256((const uint8_t *)jws, (size_t)(dot2 - jws), digest);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_verify_digest(key, digest, sig);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_SIGNATURE,
                                 "signature does not verify with the verdict key");
        goto out;
    }
    err = TRELLIS_ERR_PARSE;
    if (trellis_json_parse_object((const char *)payload, payload_len, PAYLOAD_MAX, &p, reason) !=
        TRELLIS_OK)
        goto out;
    err = read_claims(p, out, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_TIMEOUT;
    if (now > out->exp || now + CLOCK_SKEW_S < out->iat) {
        trellis_reason_set(reason, err, "verdict is expired or not yet valid");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(h);
    json_decref(p);
    if (err != TRELLIS_OK)
        memset(out, 0, sizeof(*out));
    return err;
}
