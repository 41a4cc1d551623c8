/*
 * COSE_Sign1 (RFC 9052 §4.2, §4.4) with ES256 only (RFC 9053 §2.1: ECDSA P-256 over SHA-256,
 * signature as raw r || s, 64 bytes).
 *
 * The wire form Trellis emits is
 *
 *     18([ bstr(<< {1: -7} >>), {} or {4: kid}, bstr(payload), bstr(r || s) ])
 *
 * and the decoder accepts exactly that shape, with the tolerance RFC 9783 §5.1.1 asks of a
 * receiver (non-preferred integer and length encodings, other header parameters it does not
 * need). It rejects, each with its own reason:
 *
 * - input larger than TRELLIS_COSE_MAX_TOKEN or empty (TRELLIS_ERR_TOO_LARGE / TOKEN_MALFORMED);
 * - a missing tag 18: RFC 9783 §5.1.1 requires the tagged form, so an untagged array is refused
 *   rather than guessed at; tag 17 (COSE_Mac0) and any other tag (TOKEN_ALG / TOKEN_MALFORMED);
 * - anything but an array of exactly 4 items; indefinite lengths anywhere (RFC 9783 §5.1.1);
 *   nesting deeper than 16 levels; bytes after the array (TOKEN_MALFORMED);
 * - a protected header that is not a byte string holding exactly one CBOR map, or is longer than
 *   TRELLIS_COSE_PROTECTED_MAX; duplicate labels in either header map; a label present in both
 *   (RFC 9052 §3) (TOKEN_MALFORMED);
 * - alg (label 1) missing, not in the protected header, or not -7 (TOKEN_ALG);
 * - crit (label 2) that is not a non-empty array in the protected header, or that lists a label
 *   Trellis does not process (only 1 alg and 4 kid are understood) (TOKEN_MALFORMED);
 * - an unprotected header that is not a map; a kid that is not a byte string or is longer than
 *   TRELLIS_COSE_KID_MAX (TOKEN_MALFORMED);
 * - a payload that is nil (detached content) or not a byte string (TOKEN_MALFORMED);
 * - a signature that is not a byte string of exactly 64 bytes (TOKEN_MALFORMED);
 * - a signature that does not verify (TOKEN_SIGNATURE).
 *
 * The signature is checked over the Sig_structure ["Signature1", protected, h'', payload] built
 * from the protected header bytes exactly as received (RFC 9052 §4.4). External AAD is always
 * empty. The unprotected header, kid included, is not covered by the signature.
 */
#ifndef TRELLIS_COSE_H
#define TRELLIS_COSE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/error.h"

#define TRELLIS_COSE_MAX_TOKEN     4096 /* largest COSE_Sign1 the decoder accepts, in bytes */
#define TRELLIS_COSE_PROTECTED_MAX 256  /* largest serialized protected header accepted */
#define TRELLIS_COSE_KID_MAX       64   /* largest kid accepted or emitted */
#define TRELLIS_COSE_ALG_ES256     (-7) /* RFC 9053 §2.1 */
#define TRELLIS_COSE_TAG_SIGN1     18   /* RFC 9052 §4.2 */
#define TRELLIS_COSE_SIG_LEN       64   /* ES256: r || s */

#define TRELLIS_SIGNER_VERSION 1

/*
 * A Root of Trust that signs. sign_digest receives the SHA-256 of the Sig_structure and writes
 * the raw r || s signature; it returns TRELLIS_OK or an error, which the encoder passes on.
 * version must be TRELLIS_SIGNER_VERSION; ctx belongs to whoever built the signer and is only
 * passed through. A file-backed key, a PKCS#11 token or a PSA Crypto key all fit behind it.
 */
typedef struct {
    uint32_t version;
    void *ctx;
    trellis_err_t (*sign_digest)(void *ctx, const uint8_t digest[32], uint8_t sig[64]);
} trellis_signer_t;

/*
 * Fills *out with a signer over an OpenSSL P-256 private key. The signer borrows key: it must
 * outlive every use of *out, and the caller still frees it. TRELLIS_ERR_INVALID_ARG if key or
 * out is NULL.
 */
trellis_err_t trellis_signer_from_pkey(EVP_PKEY *key, trellis_signer_t *out);

/*
 * A decoded COSE_Sign1. Every pointer points into the buffer that was decoded, so the view is
 * valid only while that buffer is; nothing is allocated and nothing needs freeing.
 */
typedef struct {
    const uint8_t *protected_hdr; /* serialized protected header map, as received */
    size_t protected_len;
    const uint8_t *kid; /* unprotected kid (label 4), NULL when absent; not signed */
    size_t kid_len;
    const uint8_t *payload;
    size_t payload_len;
    const uint8_t *signature; /* TRELLIS_COSE_SIG_LEN bytes, r || s */
} trellis_cose_sign1_t;

/*
 * Builds and signs 18([<< {1: -7} >>, unprotected, payload, signature]) into buf. The
 * unprotected header is {} when kid is NULL and {4: kid} otherwise (kid_len 1 to
 * TRELLIS_COSE_KID_MAX). Nothing is allocated; the encoder writes only into buf.
 *
 * With buf NULL (or buf_size too small) *out_len receives the size needed and the result is
 * TRELLIS_ERR_BUFFER_TOO_SMALL; the signer is not called. payload may be empty but not NULL
 * unless payload_len is 0. Errors: TRELLIS_ERR_INVALID_ARG (NULL signer or out_len, bad kid
 * length, unknown signer version, payload larger than TRELLIS_COSE_MAX_TOKEN), or whatever the
 * signer returns. On failure *out_len is 0 (except for BUFFER_TOO_SMALL) and buf holds no
 * signature.
 */
trellis_err_t trellis_cose_sign1_encode(const uint8_t *payload, size_t payload_len,
                                        const uint8_t *kid, size_t kid_len,
                                        const trellis_signer_t *signer, uint8_t *buf,
                                        size_t buf_size, size_t *out_len);

/*
 * Parses and checks the structure of a COSE_Sign1 (every rule in the list above except the
 * signature itself) and fills *out (may be NULL) with views into buf. It does NOT verify the
 * signature: whatever it returns is unauthenticated. On failure *out is zeroed and reason says
 * why.
 */
trellis_err_t trellis_cose_sign1_decode(const uint8_t *buf, size_t len, trellis_cose_sign1_t *out,
                                        trellis_reason_t *reason);

/*
 * trellis_cose_sign1_decode, then verifies the ES256 signature with the P-256 public key key.
 * On success *out (may be NULL) holds the views; on failure it is zeroed. Errors are those of
 * the decoder, TRELLIS_ERR_TOKEN_SIGNATURE when the signature does not verify, and
 * TRELLIS_ERR_INVALID_ARG for a NULL buf or key.
 */
trellis_err_t trellis_cose_sign1_verify(const uint8_t *buf, size_t len, const EVP_PKEY *key,
                                        trellis_cose_sign1_t *out, trellis_reason_t *reason);

/* The name of a COSE algorithm for messages ("ES384"), or "unregistered". Never NULL. */
const char *trellis_cose_alg_name(int64_t alg);

#endif /* TRELLIS_COSE_H */
