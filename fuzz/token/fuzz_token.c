/*
 * Fuzzes the token decoders with arbitrary bytes: COSE_Sign1 verification against a fixed key
 * (the RFC 9783 Appendix A.1 key, so the seed vector reaches the claims), the unverified PSA
 * decode a verifier uses to find the key, and the claims-set decoder on its own. Every result
 * must be either success or an error with a reason, and a success must survive re-encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/psa_token.h"

/* The public point of the RFC 9783 Appendix A.1 IAK (tests/vectors/psa/rfc9783-a1-iak.jwk). */
static const uint8_t iak_point[65] = {
    0x04, 0x4e, 0x5e, 0x22, 0x09, 0x9e, 0x3b, 0xce, 0xb4, 0x5b, 0x44, 0x6d, 0x13,
    0x55, 0xfd, 0x1d, 0xc3, 0xb5, 0x45, 0x94, 0x7b, 0x6f, 0xd7, 0xc1, 0xc8, 0x9d,
    0x88, 0x67, 0x98, 0xc3, 0x72, 0x6e, 0x8f, 0x80, 0xd7, 0x0b, 0x84, 0x0b, 0x25,
    0x6a, 0xac, 0x34, 0xa6, 0x2e, 0xde, 0x10, 0x43, 0x36, 0x4f, 0x04, 0x40, 0x95,
    0xf0, 0x03, 0x47, 0x4b, 0x91, 0xe0, 0x18, 0x20, 0x92, 0xaf, 0xb1, 0x3f, 0x2e,
};

static EVP_PKEY *key;

static void check_result(trellis_err_t err, const trellis_reason_t *reason)
{
    /* A refusal always says why. */
    if (err != TRELLIS_OK && reason->text[0] == '\0')
        abort();
}

/* A decoded claims-set encodes and decodes back to itself. */
static void check_claims(const trellis_psa_claims_t *claims)
{
    static uint8_t buf[8192];
    size_t len = 0;
    trellis_reason_t reason;
    if (trellis_psa_claims_encode(claims, buf, sizeof(buf), &len, &reason) != TRELLIS_OK)
        abort();
    trellis_psa_claims_t again;
    if (trellis_psa_claims_decode(buf, len, &again, &reason) != TRELLIS_OK)
        abort();
    if (again.nonce_len != claims->nonce_len ||
        memcmp(again.nonce, claims->nonce, claims->nonce_len) != 0 ||
        again.sw_component_count != claims->sw_component_count || again.profile != claims->profile)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (key == NULL && trellis_p256_from_point(iak_point, &key) != TRELLIS_OK)
        abort();

    trellis_reason_t reason;
    trellis_cose_sign1_t msg;
    trellis_psa_claims_t claims;

    reason.text[0] = '\0';
    check_result(trellis_cose_sign1_verify(data, size, key, &msg, &reason), &reason);

    reason.text[0] = '\0';
    trellis_err_t err = trellis_psa_token_decode_unverified(data, size, &claims, &reason);
    check_result(err, &reason);
    if (err == TRELLIS_OK)
        check_claims(&claims);

    reason.text[0] = '\0';
    err = trellis_psa_token_verify(data, size, key, NULL, 0, &claims, &reason);
    check_result(err, &reason);

    reason.text[0] = '\0';
    err = trellis_psa_claims_decode(data, size, &claims, &reason);
    check_result(err, &reason);
    if (err == TRELLIS_OK)
        check_claims(&claims);
    return 0;
}
