/*
 * Fuzzes the parsers of key and signature bytes that arrive from outside: JWK documents
 * (`trellis token check --key`), SubjectPublicKeyInfo in PEM or DER, uncompressed points
 * (manifests), and DER ECDSA signatures. The first input byte picks the parser so one corpus
 * covers them all. Whatever a parser accepts must survive a round trip through its encoder.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_key_round_trip(EVP_PKEY *key)
{
    uint8_t point[TRELLIS_P256_POINT_LEN];
    EVP_PKEY *again = NULL;
    if (trellis_p256_public_point(key, point) != TRELLIS_OK)
        abort();
    if (trellis_p256_from_point(point, &again) != TRELLIS_OK)
        abort();
    if (EVP_PKEY_eq(key, again) != 1)
        abort();
    EVP_PKEY_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 4;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    EVP_PKEY *key = NULL;

    switch (which) {
    case 0: {
        trellis_reason_t reason;
        if (trellis_p256_from_jwk((const char *)in, len, &key, &reason) == TRELLIS_OK)
            check_key_round_trip(key);
        break;
    }
    case 1:
        if (trellis_p256_public_from_spki(in, len, &key) == TRELLIS_OK)
            check_key_round_trip(key);
        break;
    case 2:
        if (len == TRELLIS_P256_POINT_LEN && trellis_p256_from_point(in, &key) == TRELLIS_OK)
            check_key_round_trip(key);
        break;
    default: {
        uint8_t raw[TRELLIS_P256_SIG_RAW_LEN];
        uint8_t der[TRELLIS_P256_SIG_DER_MAX];
        size_t der_len = 0;
        if (trellis_ecdsa_der_to_raw(in, len, raw) == TRELLIS_OK) {
            /* Strict DER has one encoding per value: re-encoding must give the input back. */
            if (trellis_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len) != TRELLIS_OK)
                abort();
            if (der_len != len || memcmp(der, in, len) != 0)
                abort();
        }
        break;
    }
    }
    EVP_PKEY_free(key);
    return 0;
}
