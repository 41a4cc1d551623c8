/*
 * OpenSSL helpers for the one algorithm family Trellis speaks: ECDSA over P-256 with SHA-256.
 *
 * Keys are OpenSSL EVP_PKEY objects owned by the caller (free with EVP_PKEY_free). Every loader
 * checks that the key is on P-256 with a named curve (explicit parameters are refused, even when
 * they spell out P-256 itself) and that a public point is valid. Private keys are written 0600
 * through an atomic file write and are never logged or put in error text.
 *
 * Errors shared by every function below: TRELLIS_ERR_INVALID_ARG for a NULL pointer the contract
 * does not allow, TRELLIS_ERR_NOMEM when OpenSSL cannot allocate, TRELLIS_ERR_CRYPTO when an
 * OpenSSL operation fails for a reason other than the input. Key arguments that are not P-256
 * named-curve EC keys give TRELLIS_ERR_BAD_KEY. On failure every output is NULL or zeroed, and the
 * OpenSSL error queue of the calling thread is cleared, so a later TLS call does not see stale
 * errors. All functions are safe to call from several threads on distinct outputs; a key may be
 * shared between threads for signing and verifying.
 */
#ifndef TRELLIS_CRYPTO_H
#define TRELLIS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/error.h"

#define TRELLIS_SHA256_LEN       32
#define TRELLIS_P256_POINT_LEN   65 /* uncompressed SEC1: 0x04 || X || Y */
#define TRELLIS_P256_SIG_RAW_LEN 64 /* r || s, each 32 bytes big-endian */
#define TRELLIS_P256_SIG_DER_MAX 72

/* Largest key file the PEM loaders read (a P-256 key in PEM is under 300 bytes). */
#define TRELLIS_KEY_FILE_MAX (64 * 1024)
/* Largest SubjectPublicKeyInfo (PEM or DER) trellis_p256_public_from_spki accepts. */
#define TRELLIS_SPKI_MAX (16 * 1024)
/* Largest JWK text trellis_p256_from_jwk accepts. */
#define TRELLIS_JWK_MAX (4 * 1024)

/* Generates a fresh P-256 key pair into *out_key (caller frees). */
trellis_err_t trellis_p256_generate(EVP_PKEY **out_key);

/*
 * Checks that key is an EC key on the named curve P-256 (not decoded from explicit parameters),
 * that its public point is valid (on the curve, not the point at infinity) and, when the key
 * holds a private scalar, that the scalar is in range and matches the public point.
 * Returns TRELLIS_OK or TRELLIS_ERR_BAD_KEY with a reason such as "key type is RSA, expected EC
 * P-256" or "key is on curve secp384r1, expected P-256"; TRELLIS_ERR_INVALID_ARG if key is NULL.
 * The registrar uses it on CSR public keys, which OpenSSL itself accepts on any curve.
 */
trellis_err_t trellis_p256_check_key(const EVP_PKEY *key, trellis_reason_t *reason);

/*
 * Loads a P-256 private key from a PEM file (PKCS#8 or SEC1 "EC PRIVATE KEY"). Encrypted keys are
 * refused (no passphrase prompt). Errors: TRELLIS_ERR_NOT_FOUND if the file is absent,
 * TRELLIS_ERR_TOO_LARGE above TRELLIS_KEY_FILE_MAX, TRELLIS_ERR_IO on read failure,
 * TRELLIS_ERR_PARSE if no private key can be decoded, TRELLIS_ERR_BAD_KEY if the key fails
 * trellis_p256_check_key. The file buffer is cleansed before release.
 */
trellis_err_t trellis_p256_load_private_pem(const char *path, EVP_PKEY **out_key);

/* Loads a P-256 public key from a PEM file (SubjectPublicKeyInfo) or, if the file holds a
 * private key, its public half (the returned key then holds no private scalar). Errors as for
 * trellis_p256_load_private_pem. */
trellis_err_t trellis_p256_load_public_pem(const char *path, EVP_PKEY **out_key);

/* Parses a P-256 public key from a PEM or DER SubjectPublicKeyInfo in memory. DER must span
 * exactly len bytes. TRELLIS_ERR_TOO_LARGE above TRELLIS_SPKI_MAX, TRELLIS_ERR_PARSE if it does
 * not decode, TRELLIS_ERR_BAD_KEY if the key fails trellis_p256_check_key. */
trellis_err_t trellis_p256_public_from_spki(const uint8_t *buf, size_t len, EVP_PKEY **out_key);

/* Writes the private key as PKCS#8 PEM, mode 0600, atomically (write, fsync, rename, fsync dir).
 * TRELLIS_ERR_BAD_KEY if key is not a valid P-256 key or holds no private scalar; file errors
 * come from trellis_file_write_atomic (fsutil.h). The PEM text is cleansed after writing. */
trellis_err_t trellis_p256_save_private_pem(const EVP_PKEY *key, const char *path);

/* Writes the public key as SubjectPublicKeyInfo PEM, mode 0644, atomically. */
trellis_err_t trellis_p256_save_public_pem(const EVP_PKEY *key, const char *path);

/* The 65-byte uncompressed SEC1 point of a P-256 key (public or private), whatever point format
 * the key was loaded from. */
trellis_err_t trellis_p256_public_point(const EVP_PKEY *key,
                                        uint8_t out[static TRELLIS_P256_POINT_LEN]);

/* Builds a public key from a 65-byte uncompressed point; refuses (TRELLIS_ERR_BAD_KEY) another
 * leading byte and points not on the curve. */
trellis_err_t trellis_p256_from_point(const uint8_t point[static TRELLIS_P256_POINT_LEN],
                                      EVP_PKEY **out_key);

/*
 * Builds a public key from a JWK (RFC 7518 §6.2.1): {"kty":"EC","crv":"P-256","x":B64URL,
 * "y":B64URL}, x and y exactly 32 bytes each. Other members (kid, use, alg) are ignored, except
 * "d": a private key is refused rather than silently dropped. Errors: TRELLIS_ERR_TOO_LARGE
 * above TRELLIS_JWK_MAX, TRELLIS_ERR_PARSE for text that is not one JSON object (duplicate
 * members included), a missing member or a member of the wrong type, TRELLIS_ERR_ENCODING for x
 * or y not strict base64url, TRELLIS_ERR_BAD_KEY for another kty or crv, a wrong length, a "d"
 * member or a point not on the curve. reason (may be NULL) names the member at fault.
 */
trellis_err_t trellis_p256_from_jwk(const char *jwk_json, size_t len, EVP_PKEY **out_key,
                                    trellis_reason_t *reason);

/* SHA-256 of one buffer, or of two buffers concatenated (a || b). A NULL pointer is allowed
 * only with length 0. */
trellis_err_t trellis_sha256(const uint8_t *data, size_t len,
                             uint8_t out[static TRELLIS_SHA256_LEN]);
trellis_err_t trellis_sha256_two(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                                 uint8_t out[static TRELLIS_SHA256_LEN]);
/* SHA-256 of a whole regular file, streamed in 64 KiB chunks. TRELLIS_ERR_NOT_FOUND if absent,
 * TRELLIS_ERR_PERMISSION if unreadable, TRELLIS_ERR_IO for other failures or a file that is not
 * a regular file. */
trellis_err_t trellis_sha256_file(const char *path, uint8_t out[static TRELLIS_SHA256_LEN]);

/* ECDSA-P256 over a SHA-256 digest, signature as raw r||s (RFC 9053 §2.1 / JWS form).
 * TRELLIS_ERR_BAD_KEY if key is not P-256; TRELLIS_ERR_CRYPTO if it cannot sign (no private
 * scalar). */
trellis_err_t trellis_p256_sign_digest(const EVP_PKEY *key,
                                       const uint8_t digest[static TRELLIS_SHA256_LEN],
                                       uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN]);
/* Returns TRELLIS_OK if sig verifies, TRELLIS_ERR_BAD_SIGNATURE if not. Rejects r or s equal to
 * zero or not below the group order before calling OpenSSL. TRELLIS_ERR_BAD_KEY if key is not
 * P-256. */
trellis_err_t trellis_p256_verify_digest(const EVP_PKEY *key,
                                         const uint8_t digest[static TRELLIS_SHA256_LEN],
                                         const uint8_t sig[static TRELLIS_P256_SIG_RAW_LEN]);

/*
 * DER ECDSA-Sig-Value (RFC 3279 §2.2.3) <-> raw r||s.
 *
 * der_to_raw is strict: one SEQUENCE of two INTEGERs in minimal DER (short-form lengths, no
 * superfluous leading zero), both positive, non-zero and below the P-256 group order, no
 * trailing bytes, at most TRELLIS_P256_SIG_DER_MAX bytes. Anything else is
 * TRELLIS_ERR_BAD_SIGNATURE and raw is zeroed.
 *
 * raw_to_der refuses (TRELLIS_ERR_BAD_SIGNATURE) r or s that are zero or not below the order.
 * With der NULL or der_size too small it stores the size needed in *der_len and returns
 * TRELLIS_ERR_BUFFER_TOO_SMALL; the size is never above TRELLIS_P256_SIG_DER_MAX.
 */
trellis_err_t trellis_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
                                       uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN]);
trellis_err_t trellis_ecdsa_raw_to_der(const uint8_t raw[static TRELLIS_P256_SIG_RAW_LEN],
                                       uint8_t *der, size_t der_size, size_t *der_len);

/* Constant-time equality of two equal-length buffers: 1 if equal, 0 otherwise. Two empty
 * buffers are equal; a NULL pointer with len > 0 compares unequal. */
int trellis_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Fills buf with len bytes from the OpenSSL CSPRNG. TRELLIS_ERR_CRYPTO if the generator fails
 * (buf is then zeroed). */
trellis_err_t trellis_random(uint8_t *buf, size_t len);

#endif /* TRELLIS_CRYPTO_H */
