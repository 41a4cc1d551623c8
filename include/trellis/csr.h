/*
 * PKCS#10 certificate signing requests (RFC 2986) and the CSR policy of design.md §3.
 *
 * A CSR comes from outside (a device, or anything pretending to be one), so the parser trusts
 * nothing and checks the policy itself: OpenSSL happily parses and verifies CSRs with RSA keys,
 * keys on other curves, keys with explicit curve parameters, SHA-1 signatures and unknown
 * critical extensions. trellis_csr_parse accepts a CSR only when all of this holds:
 *
 *   - the input is at most TRELLIS_CSR_DER_MAX bytes of DER: one CertificationRequest that spans
 *     the whole input (no trailing bytes) and re-encodes to exactly the input (no BER forms in
 *     the outer layers);
 *   - version is 0 (v1, RFC 2986 §4.1);
 *   - the subject holds exactly one commonName of 1..TRELLIS_CSR_CN_MAX printable ASCII
 *     characters (the caller compares it with the attested device id, trellis_csr_check_subject);
 *     other subject attributes are ignored;
 *   - the public key is EC on the named curve P-256 (no explicit parameters, no other curve, no
 *     RSA) and its point is valid (trellis_p256_check_key);
 *   - the signature algorithm is ecdsa-with-SHA256 (RFC 5758 §3.2) with its parameters absent,
 *     and the self-signature verifies with that key (proof of possession);
 *   - the attributes hold at most one extensionRequest (PKCS#9, or Microsoft's), with exactly one
 *     value that decodes as Extensions. Extensions are checked, never used:
 *       * a critical extension of any kind is REFUSED: the requester says "do not accept me if you
 *         do not understand this", and the registrar honours that by not issuing;
 *       * basicConstraints with cA TRUE is REFUSED, critical or not: a device asking to be a CA
 *         is not one the registrar wants to serve;
 *       * a repeated extension, or an extensionRequest that does not decode, is REFUSED;
 *       * every other (non-critical) extension is IGNORED and counted in n_ignored_extensions.
 *     Other attributes (challengePassword, ...) are ignored.
 *
 * Nothing from a CSR but its public key ever reaches a certificate: the registrar builds the
 * certificate from its fixed profile and takes the identity from the attested device id.
 *
 * Errors: TRELLIS_ERR_TOO_LARGE for input above TRELLIS_CSR_DER_MAX; TRELLIS_ERR_BAD_CSR, with a
 * reason naming the rule broken ("public key: key is on curve secp256k1, expected P-256"), for
 * anything else the input does wrong; TRELLIS_ERR_INVALID_ARG for NULL arguments;
 * TRELLIS_ERR_NOMEM. Reasons quote no bytes of the CSR, so they are safe to log and to return.
 * Every function leaves the OpenSSL error queue of the calling thread empty and is safe to call
 * from several threads on distinct objects.
 */
#ifndef TRELLIS_CSR_H
#define TRELLIS_CSR_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/error.h"

/* Largest CSR accepted, in DER bytes. A Trellis CSR (P-256 key, one CN) is about 250 bytes. */
#define TRELLIS_CSR_DER_MAX 4096
/* Longest subject common name, in characters (RFC 5280 ub-common-name). */
#define TRELLIS_CSR_CN_MAX 64

/* A parsed CSR that passed the policy. Lives in caller memory; release with
 * trellis_csr_cleanup. */
typedef struct {
    EVP_PKEY *key;                   /* the P-256 public key; owned */
    char cn[TRELLIS_CSR_CN_MAX + 1]; /* the subject common name, NUL-terminated */
    uint8_t sha256[32];              /* SHA-256 of the DER exactly as received */
    uint8_t point[65];               /* the key as an uncompressed SEC1 point */
    size_t n_ignored_extensions;     /* non-critical extensions requested and ignored */
} trellis_csr_t;

/*
 * Parses der (len bytes) and checks the whole policy above. On success *out holds the key and
 * the facts the registrar needs; on failure *out is zeroed (key NULL) and reason (may be NULL)
 * says which rule was broken.
 */
trellis_err_t trellis_csr_parse(const uint8_t *der, size_t len, trellis_csr_t *out,
                                trellis_reason_t *reason);

/* Frees the key and zeroes *csr. NULL, or a zeroed csr, is a no-op. */
void trellis_csr_cleanup(trellis_csr_t *csr);

/*
 * TRELLIS_OK when the CSR's common name is exactly device_id (compared byte for byte: the
 * identity is the attested device id, 32 lowercase hex characters). TRELLIS_ERR_BAD_CSR with a
 * reason otherwise; TRELLIS_ERR_INVALID_ARG for NULL arguments.
 */
trellis_err_t trellis_csr_check_subject(const trellis_csr_t *csr, const char *device_id,
                                        trellis_reason_t *reason);

/*
 * Builds a CSR a Trellis device would send: subject CN = common_name (1..TRELLIS_CSR_CN_MAX
 * printable ASCII characters), the public half of key (a P-256 private key), signed
 * ecdsa-with-SHA256, no attributes. DER into (out, out_size, *out_len): with out NULL or too
 * small, *out_len receives a size that is always enough (ECDSA signatures vary by a few bytes,
 * so it may exceed the final length) and TRELLIS_ERR_BUFFER_TOO_SMALL is returned.
 * Errors: TRELLIS_ERR_INVALID_ARG (NULL, bad common name), TRELLIS_ERR_BAD_KEY (not a P-256
 * key with its private scalar), TRELLIS_ERR_CRYPTO, TRELLIS_ERR_NOMEM. The output always passes
 * trellis_csr_parse.
 */
trellis_err_t trellis_csr_build(const EVP_PKEY *key, const char *common_name, uint8_t *out,
                                size_t out_size, size_t *out_len);

#endif /* TRELLIS_CSR_H */
