/*
 * Fuzzes what the registrar parses from outside, each on the whole input:
 * - tr__reg_enroll_parse: a POST /v1/enroll body from a device (JSON, base64url, challenge MAC
 *   and expiry, PSA token shape, CSR policy, subject, nonce binding);
 * - tr__reg_reenroll_parse: a POST /v1/reenroll body;
 * - tr__reg_verdict_check: the verifier's answer, as a 200 and as a 400.
 * Time and keys are fixed, so the seeds (good requests and verdicts made for them) stay valid.
 * Invariants: every refusal carries an error the API can name, and leaves no key behind; an
 * accepted enroll body is consistent (the CSR names the device, the nonce is SHA-256(challenge
 * || CSR)); an accepted verdict is the exact JWS text given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_S 1800000000
#define TTL_S 300

/* The seeds' challenge secret and verdict key (test material, nothing else uses them). */
static const uint8_t SECRET[TR__CHALLENGE_SECRET_LEN] = {
    0x74, 0x72, 0x65, 0x6c, 0x6c, 0x69, 0x73, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x73, 0x65, 0x63,
    0x72, 0x65, 0x74, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62};

static const char VERDICT_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkhgRGmUJEN89XypFSeoeQbmVkZu6\n"
    "/jL4QDziUm3HAd8F6GOQEzGkiqRGP4xdRPECi1XIORoaG/V2uev9tkAd9w==\n"
    "-----END PUBLIC KEY-----\n";

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Whether text (NUL-terminated) occurs in data. */
static int contains(const uint8_t *data, size_t size, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; n > 0 && i + n <= size; i++) {
        if (memcmp(data + i, text, n) == 0)
            return 1;
    }
    return 0;
}

static int api_error(trellis_err_t err)
{
    const char *code = trellis_err_api_code(err);
    return err != TRELLIS_OK && strcmp(code, "ok") != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EVP_PKEY *verdict_key;
    static tr__reg_enroll_req_t req;
    trellis_reason_t why;
    uint8_t digest[32];

    if (verdict_key == NULL)
        check(trellis_p256_public_from_spki((const uint8_t *)VERDICT_PUB, sizeof(VERDICT_PUB) - 1,
                                            &verdict_key) == TRELLIS_OK);

    trellis_err_t err = tr__reg_enroll_parse(data, size, SECRET, NOW_S, TTL_S, &req, &why);
    if (err != TRELLIS_OK) {
        check(api_error(err) && why.text[0] != '\0' && req.csr.key == NULL && req.csr_len == 0);
    } else {
        check(req.csr.key != NULL && strcmp(req.csr.cn, req.device_id) == 0);
        check(trellis_sha256_two(req.challenge, TR__CHALLENGE_LEN, req.csr_der, req.csr_len,
                                 digest) == TRELLIS_OK);
        check(memcmp(digest, req.nonce, 32) == 0);
        check(req.challenge_expires >= NOW_S && req.challenge_expires <= NOW_S + TTL_S + 60);
        char *body = NULL;
        size_t len = 0;
        check(tr__reg_verify_body(&req, &body, &len) == TRELLIS_OK && strlen(body) == len);
        free(body);
        trellis_csr_cleanup(&req.csr);
    }

    uint8_t csr[TRELLIS_CSR_DER_MAX];
    size_t csr_len = 0;
    trellis_csr_t parsed;
    err = tr__reg_reenroll_parse(data, size, csr, sizeof(csr), &csr_len, &parsed, &why);
    check(err == TRELLIS_OK ? parsed.key != NULL : (api_error(err) && parsed.key == NULL));
    trellis_csr_cleanup(&parsed);

    /* The device, CSR hash and nonce the seed verdicts were made for. */
    static const uint8_t csr_sha256[32] = {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                           0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                           0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                           0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
    static const uint8_t nonce[32] = {0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                                      0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                                      0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
                                      0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22};
    tr__reg_verdict_expect_t e = {.verdict_key = verdict_key,
                                  .oem = "acme",
                                  .device_id = "0123456789abcdef0123456789abcdef",
                                  .csr_sha256 = csr_sha256,
                                  .nonce = nonce};
    static char jws[TR__VERDICT_MAX + 1];
    static const int statuses[] = {200, 400, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        err = tr__reg_verdict_check(&e, statuses[i], data, size, NOW_S, jws, &why);
        if (err == TRELLIS_OK)
            check(statuses[i] == 200 && jws[0] != '\0' && contains(data, size, jws));
        else
            check(err == TRELLIS_ERR_UNAVAILABLE || err == TRELLIS_ERR_BAD_EVIDENCE ||
                  err == TRELLIS_ERR_UNKNOWN_DEVICE || err == TRELLIS_ERR_REVOKED);
    }
    return 0;
}
