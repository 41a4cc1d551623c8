/*
 * OpenSSL helpers for the one algorithm family Trellis speaks: ECDSA over P-256 with SHA-256.
 *
 * Keys are OpenSSL EVP_PKEY objects owned by the caller (free with EVP_PKEY_free). Every loader
 * checks that the key is on P-256 with a named curve (explicit parameters are refused) and that
 * a public point is valid. Private keys are written 0600 through an atomic file write and are
 * never logged or put in error text.
 */
#ifndef TRELLIS_CRYPTO_H
#define TRELLIS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/error.h"

#define TRELLIS_SHA256_LEN 32
#define TRELLIS_P256_POINT_LEN 65  /* uncompressed SEC1: 0x04 || X || Y */
#define TRELLIS_P256_SIG_RAW_LEN 64 /* r || s, each 32 bytes big-endian */
#define TRELLIS_P256_SIG_DER_MAX 72

/* Generates a fresh P-256 key pair. */
trellis_err_t trellis_p256_generate(EVP_PKEY **out_key);

/* Loads a P-256 private key from a PEM file (PKCS#8 or SEC1). */
trellis_err_t trellis_p256_load_private_pem(const char *path, EVP_PKEY **out_key);

/* Loads a P-256 public key from a PEM file (SubjectPublicKeyInfo) or, if the file holds a
 * private key, its public half. */
trellis_err_t trellis_p256_load_public_pem(const char *path, EVP_PKEY **out_key);

/* Parses a P-256 public key from a PEM or DER SubjectPublicKeyInfo in memory. */
trellis_err_t trellis_p256_public_from_spki(const uint8_t *buf, size_t len, EVP_PKEY **out_key);

/* Writes the private key as PKCS#8 PEM, mode 0600, atomically (write, fsync, rename, fsync dir). */
trellis_err_t trellis_p256_save_private_pem(const EVP_PKEY *key, const char *path);

/* Writes the public key as SubjectPublicKeyInfo PEM, mode 0644, atomically. */
trellis_err_t trellis_p256_save_public_pem(const EVP_PKEY *key, const char *path);

/* The 65-byte uncompressed SEC1 point of a P-256 key (public or private). */
trellis_err_t trellis_p256_public_point(const EVP_PKEY *key,
                                        uint8_t out[static TRELLIS_P256_POINT_LEN]);

/* Builds a public key from a 65-byte uncompressed point; refuses points not on the curve. */
trellis_err_t trellis_p256_from_point(const uint8_t point[static TRELLIS_P256_POINT_LEN],
                                      EVP_PKEY **out_key);

/* Builds a public key from the JWK members x and y (base64url, 32 bytes each, crv "P-256"). */
trellis_err_t trellis_p256_from_jwk(const char *jwk_json, size_t len, EVP_PKEY **out_key,
                                    trellis_reason_t *reason);

/* SHA-256 of one buffer, or of two buffers concatenated (a || b). */
trellis_err_t trellis_sha256(const uint8_t *data, size_t len,
                             uint8_t out[static TRELLIS_SHA256_LEN]);
trellis_err_t trellis_sha256_two(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                                 uint8_t out[static TRELLIS_SHA256_LEN]);
/* SHA-256 of a whole file, streamed. */
trellis_err_t trellis_sha256_file(const char *path, uint8_t out[static TRELLIS_SHA256_LEN]);

/* ECDSA-P256 over a SHA-256 digest, signature as raw r||s (RFC 9053 §2.1 / JWS form). */
trellis_err_t trellis_p256_sign_digest(const EVP_PKEY *key,
                                       const uint8_t digest[static TRELLIS_SHA256_LEN],
                                       uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN]);
/* Returns TRELLIS_OK if sig verifies, TRELLIS_ERR_BAD_SIGNATURE if not. Rejects r or s equal to
 * zero or not below the group order before calling OpenSSL. */
trellis_err_t trellis_p256_verify_digest(const EVP_PKEY *key,
                                         const uint8_t digest[static TRELLIS_SHA256_LEN],
                                         const uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN]);

/* DER ECDSA-Sig-Value <-> raw r||s. der_to_raw is strict: minimal DER, INTEGERs positive,
 * non-zero and below the P-256 group order, no trailing bytes. */
trellis_err_t trellis_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
                                       uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN]);
trellis_err_t trellis_ecdsa_raw_to_der(const uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN],
                                       uint8_t *der, size_t der_size, size_t *der_len);

/* Constant-time equality of two equal-length buffers: 1 if equal, 0 otherwise. */
int trellis_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Fills buf with len bytes from the OpenSSL CSPRNG. */
trellis_err_t trellis_random(uint8_t *buf, size_t len);

#endif /* TRELLIS_CRYPTO_H */
