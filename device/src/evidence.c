/*
 * The device's evidence: a PSA attestation token signed by the RoT (design.md §3).
 */
#include <string.h>

#include "device_internal.h"
#include "trellis/device.h"
#include "trellis/psa_token.h"

/* PSA client id of the caller (RFC 9783 §4.2.1): negative for a non-secure caller. The agent is
 * the non-secure application asking its RoT for a token. */
#define NSPE_CLIENT_ID (-1)

/* The signer of psa_token.h over a RoT port: the RoT signs the Sig_structure digest. */
static trellis_err_t rot_signer_sign(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    return trellis_rot_sign_digest(ctx, digest, sig);
}

static trellis_err_t fill_claims(const trellis_rot_port_t *rot, const uint8_t *challenge,
                                 size_t challenge_len, const uint8_t *csr_der, size_t csr_der_len,
                                 trellis_psa_claims_t *claims)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_rot_report_t report;
    uint8_t point[TRELLIS_ROT_POINT_LEN];

    trellis_psa_claims_init(claims);
    err = trellis_rot_public_key(rot, point);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = trellis_rot_report(rot, &report);
    if (err != TRELLIS_OK) {
        goto out;
    }
    claims->profile = TRELLIS_PSA_PROFILE_TFM;
    /* design.md §3: the nonce binds the registrar's challenge and the exact CSR bytes, so the
     * evidence cannot be replayed with another CSR or under another challenge. */
    err = tr__dev_sha256(challenge, challenge_len, csr_der, csr_der_len, claims->nonce);
    if (err != TRELLIS_OK) {
        goto out;
    }
    claims->nonce_len = TRELLIS_ROT_DIGEST_LEN;
    err = trellis_ueid_from_point(point, claims->instance_id);
    if (err != TRELLIS_OK) {
        goto out;
    }
    claims->has_instance_id = true;
    memcpy(claims->implementation_id, report.implementation_id, TRELLIS_ROT_IMPL_ID_LEN);
    claims->has_implementation_id = true;
    claims->has_client_id = true;
    claims->client_id = NSPE_CLIENT_ID;
    if (report.lifecycle > 0xffffu) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    claims->has_lifecycle = true;
    claims->lifecycle = (uint16_t)report.lifecycle;
    memcpy(claims->boot_seed, report.boot_seed, TRELLIS_ROT_BOOT_SEED_LEN);
    claims->boot_seed_len = TRELLIS_ROT_BOOT_SEED_LEN;
    /* RFC 9783 §4.4.1: one entry per measured component; the first is the firmware image. */
    for (size_t i = 0; i < report.measurement_count; i++) {
        const trellis_rot_measurement_t *m = &report.measurements[i];
        trellis_psa_sw_component_t *c = &claims->sw_components[i];
        c->has_measurement_type = m->type[0] != '\0';
        memcpy(c->measurement_type, m->type, sizeof(m->type));
        memcpy(c->measurement_value, m->value, TRELLIS_ROT_DIGEST_LEN);
        c->measurement_value_len = TRELLIS_ROT_DIGEST_LEN;
        c->has_version = m->version[0] != '\0';
        memcpy(c->version, m->version, sizeof(m->version));
        memcpy(c->signer_id, m->signer_id, m->signer_id_len);
        c->signer_id_len = m->signer_id_len;
        c->has_measurement_desc = m->description[0] != '\0';
        memcpy(c->measurement_desc, m->description, sizeof(m->description));
    }
    claims->sw_component_count = report.measurement_count;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_device_evidence(const trellis_rot_port_t *rot, const uint8_t *challenge,
                                      size_t challenge_len, const uint8_t *csr_der,
                                      size_t csr_der_len, uint8_t *out, size_t out_size,
                                      size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_psa_claims_t claims;
    trellis_rot_port_t port;
    trellis_signer_t signer;

    if (out_len == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    *out_len = 0;
    if (challenge == NULL || challenge_len == 0 || csr_der == NULL || csr_der_len == 0) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (challenge_len > TRELLIS_EVIDENCE_CHALLENGE_MAX || csr_der_len > TRELLIS_EVIDENCE_CSR_MAX) {
        return TRELLIS_ERR_TOO_LARGE;
    }
    err = trellis_rot_port_check(rot);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = fill_claims(rot, challenge, challenge_len, csr_der, csr_der_len, &claims);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* The signer's ctx is not const; hand it a copy of the port rather than cast. */
    port = *rot;
    signer.version = TRELLIS_SIGNER_VERSION;
    signer.ctx = &port;
    signer.sign_digest = rot_signer_sign;
    err = trellis_psa_token_encode(&claims, NULL, 0, &signer, out, out_size, out_len, NULL);
    if (err == TRELLIS_OK && *out_len > TRELLIS_EVIDENCE_MAX) {
        err = TRELLIS_ERR_INTERNAL;
    }
out:
    if (err != TRELLIS_OK && err != TRELLIS_ERR_BUFFER_TOO_SMALL) {
        *out_len = 0;
        if (out != NULL) {
            memset(out, 0, out_size);
        }
    }
    return err;
}
