/* Internals shared by the files of trellis_crypto. */
#ifndef TRELLIS_CRYPTO_INTERNAL_H
#define TRELLIS_CRYPTO_INTERNAL_H

#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/crypto.h"

#define TR__P256_SCALAR_LEN 32

/* 1 if the 32-byte big-endian integer v is in [1, n-1], n the P-256 group order; 0 otherwise.
 * Used on public signature values only, so it need not be constant time. */
int tr__p256_scalar_in_range(const uint8_t v[static TR__P256_SCALAR_LEN]);

/* The cheap part of trellis_p256_check_key: EC type, named curve P-256, not decoded from
 * explicit parameters. No point arithmetic, so it is fit for every sign and verify. */
trellis_err_t tr__p256_check_params(const EVP_PKEY *key, trellis_reason_t *reason);

/* 1 if key carries a private scalar OpenSSL can export, 0 otherwise. */
int tr__p256_has_private(const EVP_PKEY *key);

/* OpenSSL 3.0 takes a non-const EVP_PKEY for operations that only take a reference (context
 * creation) and never change the key, so const keys are handed over through this. */
EVP_PKEY *tr__pkey_mutable(const EVP_PKEY *key);

/* Clears the thread's OpenSSL error queue after a failure, so later TLS calls see no stale
 * errors, and passes err through. */
trellis_err_t tr__crypto_fail(trellis_err_t err);

#endif /* TRELLIS_CRYPTO_INTERNAL_H */
