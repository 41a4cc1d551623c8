/* Helpers shared by the crypto tests: temporary directories, files and keys of every kind. */
#ifndef TRELLIS_TEST_CRYPTO_FIXTURE_H
#define TRELLIS_TEST_CRYPTO_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* A fresh directory under $TMPDIR (or /tmp); free with fixture_rmdir, which empties it. */
char *fixture_tmpdir(void);
void fixture_rmdir(char *dir);

/* dir/name into out (asserts it fits). */
void fixture_path(char *out, size_t out_size, const char *dir, const char *name);

void fixture_write_file(const char *path, const void *data, size_t len);
void fixture_write_private_pem(const char *path, const EVP_PKEY *key);
void fixture_write_public_pem(const char *path, const EVP_PKEY *key);

/* DER SubjectPublicKeyInfo of key in a new buffer (free with OPENSSL_free). */
uint8_t *fixture_spki_der(const EVP_PKEY *key, size_t *len);

/* Keys Trellis must refuse, generated with OpenSSL: "rsa", "p384", "secp256k1", "p192",
 * "explicit-p256" (P-256 written with explicit parameters) and "ed25519". */
EVP_PKEY *fixture_key(const char *kind);

#endif
