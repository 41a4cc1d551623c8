/*
 * A throwaway PKI for tests, made with the OpenSSL API in a fresh temporary directory.
 *
 * trellis_test_pki_create() makes:
 * - a root CA (P-256, "Trellis Test Root CA") -> ca_cert, ca_key;
 * - an intermediate CA signed by the root -> inter_cert;
 * - a server certificate for 127.0.0.1 and localhost (SAN IP and DNS, serverAuth) signed by the
 *   intermediate -> server_cert holds the chain (leaf, then intermediate) as a server sends it,
 *   server_key its key;
 * - an unrelated second root CA for negative tests -> other_ca_cert.
 * trellis_test_pki_client() and trellis_test_pki_server() issue more certificates on demand.
 *
 * Every key is P-256 and written unencrypted with mode 0600; every certificate is X.509 v3 with
 * a random positive 16-byte serial, valid from an hour ago for 30 days, signed with
 * ecdsa-with-SHA256. The directory lives under $TMPDIR (or /tmp) and trellis_test_pki_destroy()
 * removes it with everything in it. Paths are NUL-terminated and at most
 * TRELLIS_TEST_PKI_PATH - 1 bytes. Not thread-safe: one PKI per test thread.
 */
#ifndef TRELLIS_TEST_PKI_H
#define TRELLIS_TEST_PKI_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "trellis/error.h"

#define TRELLIS_TEST_PKI_PATH 512

typedef struct {
    char dir[TRELLIS_TEST_PKI_PATH];
    char ca_cert[TRELLIS_TEST_PKI_PATH];       /* root CA certificate: the trust anchor */
    char ca_key[TRELLIS_TEST_PKI_PATH];        /* root CA key */
    char inter_cert[TRELLIS_TEST_PKI_PATH];    /* intermediate CA certificate */
    char server_cert[TRELLIS_TEST_PKI_PATH];   /* server leaf + intermediate */
    char server_key[TRELLIS_TEST_PKI_PATH];    /* server key */
    char other_ca_cert[TRELLIS_TEST_PKI_PATH]; /* unrelated root CA certificate */

    /* The CAs, kept to issue more certificates. */
    X509 *ca;
    EVP_PKEY *ca_pkey;
    X509 *inter;
    EVP_PKEY *inter_pkey;
    X509 *other;
    EVP_PKEY *other_pkey;
    unsigned issued; /* names the files of issued certificates */
} trellis_test_pki_t;

/* A certificate file (the chain a peer sends, leaf first) and its key file. */
typedef struct {
    char cert[TRELLIS_TEST_PKI_PATH];
    char key[TRELLIS_TEST_PKI_PATH];
} trellis_test_pki_pair_t;

/* Makes the directory and the PKI described above. On failure nothing is left on disk and
 * *pki is zeroed. Errors: IO (directory or file), CRYPTO, NOMEM, INVALID_ARG (NULL). */
trellis_err_t trellis_test_pki_create(trellis_test_pki_t *pki);

/* Issues a client certificate (extendedKeyUsage clientAuth) with subject CN=cn, signed by the
 * root CA, or by the unrelated CA when other_ca is set. out->cert holds the leaf only. */
trellis_err_t trellis_test_pki_client(trellis_test_pki_t *pki, const char *cn, bool other_ca,
                                      trellis_test_pki_pair_t *out);

/* Issues a server certificate (serverAuth) with subject CN=cn and the subjectAltName san in
 * OpenSSL's syntax ("IP:127.0.0.1,DNS:localhost"). Signed by the intermediate (out->cert holds
 * leaf and intermediate), or directly by the unrelated CA when other_ca is set. */
trellis_err_t trellis_test_pki_server(trellis_test_pki_t *pki, const char *cn, const char *san,
                                      bool other_ca, trellis_test_pki_pair_t *out);

/* Frees the CA objects and removes the directory with every file in it. Safe on a zeroed or
 * already destroyed PKI. */
void trellis_test_pki_destroy(trellis_test_pki_t *pki);

#endif /* TRELLIS_TEST_PKI_H */
