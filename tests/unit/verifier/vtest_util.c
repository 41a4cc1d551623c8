#include "vtest_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/psa_token.h"

void vt_device_init(vt_device_t *d, unsigned n)
{
    uint8_t digest[32];
    size_t len = 0;
    memset(d, 0, sizeof(*d));
    assert_int_equal(trellis_p256_generate(&d->key), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(d->key, d->point), TRELLIS_OK);
    assert_int_equal(trellis_sha256(d->point, 65, digest), TRELLIS_OK);
    assert_int_equal(trellis_hex_encode(digest, 16, d->id, sizeof(d->id), &len), TRELLIS_OK);
    snprintf(d->model, sizeof(d->model), "T-100");
    snprintf(d->serial, sizeof(d->serial), "SN-%06u", n);
}

void vt_device_cleanup(vt_device_t *d)
{
    EVP_PKEY_free(d->key);
    memset(d, 0, sizeof(*d));
}

void vt_record_line(const vt_device_t *d, char *out, size_t size)
{
    char key[100];
    size_t len = 0;
    assert_int_equal(trellis_b64url_encode(d->point, 65, key, sizeof(key), &len), TRELLIS_OK);
    snprintf(out, size,
             "{\"device_id\":\"%s\",\"rot_key\":\"%s\",\"model\":\"%s\",\"serial\":\"%s\"}", d->id,
             key, d->model, d->serial);
}

char *vt_manifest_build(const vt_manifest_spec_t *spec, size_t *len)
{
    size_t cap = 512 + spec->n_devices * 300;
    char *buf = malloc(cap);
    char line[512];
    size_t pos = 0;
    assert_non_null(buf);
    long long count = spec->count < 0 ? (long long)spec->n_devices : spec->count;
    pos +=
        (size_t)snprintf(buf + pos, cap - pos,
                         "{\"trellis_manifest\":1,\"factory\":\"%s\",\"owner\":\"%s\","
                         "\"batch\":\"%s\",\"created\":\"2026-11-25T13:00:00Z\",\"count\":%lld}\n",
                         spec->factory, spec->owner, spec->batch, count);
    for (size_t i = 0; i < spec->n_devices; i++) {
        vt_record_line(&spec->devices[i], line, sizeof(line));
        pos += (size_t)snprintf(buf + pos, cap - pos, "%s\n", line);
    }
    if (!spec->no_trailer) {
        uint8_t digest[32], sig[64];
        char hex[65], sig_b64[100];
        size_t n = 0;
        assert_int_equal(trellis_sha256((const uint8_t *)buf, pos, digest), TRELLIS_OK);
        assert_int_equal(trellis_p256_sign_digest(spec->signer, digest, sig), TRELLIS_OK);
        assert_int_equal(trellis_hex_encode(digest, 32, hex, sizeof(hex), &n), TRELLIS_OK);
        assert_int_equal(trellis_b64url_encode(sig, 64, sig_b64, sizeof(sig_b64), &n), TRELLIS_OK);
        pos += (size_t)snprintf(buf + pos, cap - pos, "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n",
                                hex, sig_b64);
    }
    assert_true(pos < cap);
    *len = pos;
    return buf;
}

size_t vt_token_make(EVP_PKEY *signer, const uint8_t point[65], const uint8_t *challenge,
                     size_t challenge_len, const uint8_t *csr, size_t csr_len, uint16_t lifecycle,
                     uint8_t *out, size_t out_size)
{
    trellis_psa_claims_t c;
    trellis_signer_t s;
    size_t len = 0;
    trellis_reason_t why;

    trellis_psa_claims_init(&c);
    assert_int_equal(trellis_sha256_two(challenge, challenge_len, csr, csr_len, c.nonce),
                     TRELLIS_OK);
    c.nonce_len = 32;
    c.has_instance_id = true;
    assert_int_equal(trellis_psa_ueid_from_point(point, c.instance_id), TRELLIS_OK);
    c.has_implementation_id = true;
    memset(c.implementation_id, 0x11, sizeof(c.implementation_id));
    c.has_client_id = true;
    c.client_id = -1;
    c.has_lifecycle = true;
    c.lifecycle = lifecycle != 0 ? lifecycle : TRELLIS_PSA_LIFECYCLE_SECURED;
    c.boot_seed_len = 32;
    memset(c.boot_seed, 0x22, 32);
    c.sw_component_count = 1;
    c.sw_components[0].measurement_value_len = 32;
    memset(c.sw_components[0].measurement_value, 0x33, 32);
    assert_int_equal(trellis_signer_from_pkey(signer, &s), TRELLIS_OK);
    trellis_err_t err = trellis_psa_token_encode(&c, NULL, 0, &s, out, out_size, &len, &why);
    if (err != TRELLIS_OK)
        fail_msg("token encode: %s", why.text);
    return len;
}

trellis_vstore_counts_t vt_counts(trellis_vstore_t *s)
{
    trellis_vstore_counts_t c;
    assert_int_equal(s->counts(s->ctx, &c), TRELLIS_OK);
    return c;
}

void vt_assert_counts_equal(const trellis_vstore_counts_t *a, const trellis_vstore_counts_t *b)
{
    assert_int_equal(a->oems, b->oems);
    assert_int_equal(a->factories, b->factories);
    assert_int_equal(a->manifests, b->manifests);
    assert_int_equal(a->devices, b->devices);
    assert_int_equal(a->revoked, b->revoked);
    assert_int_equal(a->audit, b->audit);
}
