/* Helpers shared by the token tests: vector files, keys, a raw CBOR builder and a signer that
 * signs arbitrary COSE_Sign1 parts, so tests can craft tokens the encoder would never make. */
#ifndef TRELLIS_TOKEN_TEST_UTIL_H
#define TRELLIS_TOKEN_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* A growable-to-a-limit byte buffer for building CBOR by hand. */
typedef struct {
    uint8_t b[8192];
    size_t n;
} tb_t;

void tb_reset(tb_t *t);
void tb_raw(tb_t *t, const void *data, size_t len);
void tb_hexraw(tb_t *t, const char *hex); /* appends bytes given as hex */
void tb_uint(tb_t *t, uint64_t v);
void tb_int(tb_t *t, int64_t v);
void tb_bstr(tb_t *t, const void *data, size_t len);
void tb_bstr_fill(tb_t *t, uint8_t byte, size_t len);
void tb_tstr(tb_t *t, const char *s);
void tb_array(tb_t *t, size_t n);
void tb_map(tb_t *t, size_t n);
void tb_tag(tb_t *t, uint64_t tag);

/* Reads tests/vectors/psa/NAME (hex, whitespace ignored) into buf; returns the byte count. */
size_t load_vector_hex(const char *name, uint8_t *buf, size_t cap);
/* Loads tests/vectors/psa/NAME as a JWK public key. */
EVP_PKEY *load_vector_jwk(const char *name);

/* ES256 over the Sig_structure of protected/payload, raw r || s (RFC 9052 §4.4). */
void sign_parts(EVP_PKEY *key, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                size_t payload_len, uint8_t sig[64]);

/* Builds 18([bstr(prot), unprot (raw CBOR), bstr(payload), bstr(sig)]) signed with key. */
void build_sign1(tb_t *out, EVP_PKEY *key, const uint8_t *prot, size_t prot_len,
                 const uint8_t *unprot, size_t unprot_len, const uint8_t *payload,
                 size_t payload_len);

/* True when haystack contains needle. */
int contains(const char *haystack, const char *needle);

#endif
