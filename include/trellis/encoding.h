/*
 * base64url (RFC 4648 §5, no padding) and lowercase hex.
 *
 * Decoders are strict: base64url rejects padding, whitespace, characters outside the URL-safe
 * alphabet, impossible lengths (len % 4 == 1) and non-zero trailing bits (non-canonical input);
 * hex accepts upper or lower case but rejects odd lengths and non-hex characters. Outputs go to
 * caller buffers as (out, out_size, *out_len). With out NULL, *out_len receives the size needed
 * and TRELLIS_ERR_BUFFER_TOO_SMALL is returned; encoders NUL-terminate and count the NUL in the
 * size needed but not in *out_len.
 */
#ifndef TRELLIS_ENCODING_H
#define TRELLIS_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

/* Encoded length of n bytes, without the terminating NUL. */
size_t trellis_b64url_encoded_len(size_t n);
/* Upper bound of the decoded length of an n-character base64url text. */
size_t trellis_b64url_decoded_max(size_t n);

trellis_err_t trellis_b64url_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                    size_t *out_len);
trellis_err_t trellis_b64url_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                    size_t *out_len);

trellis_err_t trellis_hex_encode(const uint8_t *in, size_t in_len, char *out, size_t out_size,
                                 size_t *out_len);
trellis_err_t trellis_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_size,
                                 size_t *out_len);

#endif /* TRELLIS_ENCODING_H */
