/*
 * Port checks and the identifiers derived from the RoT public key (design.md §3).
 */
#include <string.h>

#include "device_internal.h"
#include "trellis/rot.h"

trellis_err_t trellis_rot_port_check(const trellis_rot_port_t *port)
{
    if (port == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    /* A port built against another version of this header has another layout: refuse it
     * rather than call through pointers that may mean something else. */
    if (port->version != TRELLIS_ROT_PORT_VERSION) {
        return TRELLIS_ERR_CONFIG;
    }
    if (port->public_key == NULL || port->sign_digest == NULL || port->report == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_rot_public_key(const trellis_rot_port_t *port,
                                     uint8_t point[static TRELLIS_ROT_POINT_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (point == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(point, 0, TRELLIS_ROT_POINT_LEN);
    err = trellis_rot_port_check(port);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = port->public_key(port->ctx, point);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* SEC1 §2.3.3: 0x04 marks the uncompressed form, the only one ids are derived from. */
    if (point[0] != 0x04) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
    }
    return err;
}

trellis_err_t trellis_rot_sign_digest(const trellis_rot_port_t *port,
                                      const uint8_t digest[static TRELLIS_ROT_DIGEST_LEN],
                                      uint8_t sig[static TRELLIS_ROT_SIG_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (sig == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(sig, 0, TRELLIS_ROT_SIG_LEN);
    if (digest == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = trellis_rot_port_check(port);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = port->sign_digest(port->ctx, digest, sig);
out:
    if (err != TRELLIS_OK) {
        memset(sig, 0, TRELLIS_ROT_SIG_LEN);
    }
    return err;
}

trellis_err_t trellis_rot_report(const trellis_rot_port_t *port, trellis_rot_report_t *out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    err = trellis_rot_port_check(port);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = port->report(port->ctx, out);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* RFC 9783 §4.4.1: the software components claim has at least one entry. */
    if (out->measurement_count == 0 || out->measurement_count > TRELLIS_ROT_MEASUREMENTS_MAX) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < out->measurement_count; i++) {
        const trellis_rot_measurement_t *m = &out->measurements[i];
        if (memchr(m->type, '\0', sizeof(m->type)) == NULL ||
            memchr(m->version, '\0', sizeof(m->version)) == NULL ||
            memchr(m->description, '\0', sizeof(m->description)) == NULL ||
            (m->signer_id_len != 0 && m->signer_id_len != sizeof(m->signer_id))) {
            err = TRELLIS_ERR_INTERNAL;
            goto out;
        }
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}

trellis_err_t trellis_device_id_from_point(const uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                           char out[static TRELLIS_DEVICE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t digest[TRELLIS_ROT_DIGEST_LEN] = {0};

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, TRELLIS_DEVICE_ID_LEN + 1);
    if (point == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (point[0] != 0x04) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    err = tr__dev_sha256(point, TRELLIS_ROT_POINT_LEN, NULL, 0, digest);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* design.md §3: lowercase hex of the first 16 bytes. */
    for (size_t i = 0; i < TRELLIS_DEVICE_ID_LEN / 2; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0x0f];
    }
    out[TRELLIS_DEVICE_ID_LEN] = '\0';
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        memset(out, 0, TRELLIS_DEVICE_ID_LEN + 1);
    }
    return err;
}

trellis_err_t trellis_ueid_from_point(const uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                      uint8_t out[static TRELLIS_UEID_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, TRELLIS_UEID_LEN);
    if (point == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (point[0] != 0x04) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    /* RFC 9711 §4.2.1: a type byte, 0x01 for RAND, then the identifier bytes. */
    out[0] = TRELLIS_UEID_TYPE_RAND;
    err = tr__dev_sha256(point, TRELLIS_ROT_POINT_LEN, NULL, 0, out + 1);
out:
    if (err != TRELLIS_OK) {
        memset(out, 0, TRELLIS_UEID_LEN);
    }
    return err;
}

trellis_err_t trellis_rot_device_id(const trellis_rot_port_t *port,
                                    char out[static TRELLIS_DEVICE_ID_LEN + 1])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t point[TRELLIS_ROT_POINT_LEN] = {0};

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, TRELLIS_DEVICE_ID_LEN + 1);
    err = trellis_rot_public_key(port, point);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = trellis_device_id_from_point(point, out);
out:
    return err;
}
