/*
 * base64url (RFC 4648 §5, no padding) and lowercase hex.
 *
 * Decoders are strict: base64url rejects padding, whitespace, characters outside the URL-safe
 * alphabet, impossible lengths (len % 4 == 1) and non-zero trailing bits (non-canonical input);
 * hex accepts upper or lower case but rejects odd lengths and non-hex characters. Outputs go to
 * caller buffers as (out, out_size, *out_len). With out NULL, or out_size too small, *out_len
 * receives the size needed and TRELLIS_ERR_BUFFER_TOO_SMALL is returned; encoders NUL-terminate
 * and count the NUL in the size needed but not in *out_len. A decoder with nothing to write
 * (empty input) succeeds even with out NULL.
 *
 * Common to all four functions: `in` may be NULL only when in_len is 0; out_len must not be
 * NULL (TRELLIS_ERR_INVALID_ARG). On any failure other than BUFFER_TOO_SMALL, *out_len is 0, an
 * encoder's out (if it has room) holds the empty string and a decoder's out holds no byte of the
 * rejected input. The time taken depends on the length of the input and on whether it is
 * accepted, never on the bytes themselves (no branch or table lookup on their values), so these
 * functions are fit for keys and tokens. No allocation, no global state: safe from any thread.
 */
#ifndef TRELLIS_ENCODING_H
#define TRELLIS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

/* Encoded length of n bytes, without the terminating NUL; SIZE_MAX if it would not fit in a
 * size_t. */
size_t trellis_b64url_encoded_len(size_t n);
/* Upper bound of the decoded length of an n-character base64url text (exact for every valid
 * length). */
size_t trellis_b64url_decoded_max(size_t n);

/* Encodes in_len bytes into out as NUL-terminated base64url text without padding.
 * Errors: INVALID_ARG, BUFFER_TOO_SMALL, TOO_LARGE (in_len beyond what a size_t can encode). */
trellis_err_t trellis_b64url_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                    size_t *out_len);
/* Decodes exactly in_len characters (a NUL among them is an invalid character, not an end).
 * Errors: INVALID_ARG, BUFFER_TOO_SMALL, ENCODING (any rejection listed above). */
trellis_err_t trellis_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                    size_t *out_len);

/* Encodes in_len bytes as 2 * in_len lowercase hex digits plus a NUL.
 * Errors: INVALID_ARG, BUFFER_TOO_SMALL, TOO_LARGE. */
trellis_err_t trellis_hex_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                 size_t *out_len);
/* Decodes in_len hex digits of either case into in_len / 2 bytes.
 * Errors: INVALID_ARG, BUFFER_TOO_SMALL, ENCODING (odd length, a non-hex character). */
trellis_err_t trellis_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                 size_t *out_len);

#endif /* TRELLIS_ENCODING_H */
