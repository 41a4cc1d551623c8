/* Helpers for the verifier tests: devices, signed manifests, PSA tokens, temp dirs. */
#ifndef TRELLIS_VTEST_UTIL_H
#define TRELLIS_VTEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "test_dirs.h"
#include "trellis/verifier_store.h"

typedef struct {
    EVP_PKEY *key;
    uint8_t point[65];
    char id[33];
    char model[65];
    char serial[65];
} vt_device_t;

/* A fresh device with a P-256 RoT key, serial "SN-<n>". */
void vt_device_init(vt_device_t *d, unsigned n);
void vt_device_cleanup(vt_device_t *d);

typedef struct {
    const char *factory;
    const char *owner;
    const char *batch;
    long long count; /* < 0: the number of devices */
    const vt_device_t *devices;
    size_t n_devices;
    EVP_PKEY *signer; /* factory key signing the trailer */
    int no_trailer;
} vt_manifest_spec_t;

/* Builds the manifest text (malloc'ed, NUL-terminated); *len its length. */
char *vt_manifest_build(const vt_manifest_spec_t *spec, size_t *len);

/* One record line (no newline) for a device, into out. */
void vt_record_line(const vt_device_t *d, char *out, size_t size);

/* A signed PSA token for device d binding challenge and csr; lifecycle 0 means SECURED. */
size_t vt_token_make(EVP_PKEY *signer, const uint8_t point[65], const uint8_t *challenge,
                     size_t challenge_len, const uint8_t *csr, size_t csr_len, uint16_t lifecycle,
                     uint8_t *out, size_t out_size);

/* Counts of the registry, for "nothing changed" assertions. */
trellis_vstore_counts_t vt_counts(trellis_vstore_t *s);
void vt_assert_counts_equal(const trellis_vstore_counts_t *a, const trellis_vstore_counts_t *b);

#endif
