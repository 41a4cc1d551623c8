/*
 * Opening a device's RoT from its factory data, whichever backend holds the key.
 */
#include <stdio.h>
#include <string.h>

#include "device_internal.h"
#include "trellis/device.h"

trellis_err_t trellis_device_rot_open(trellis_device_rot_t *rot, const char *dir,
                                      const trellis_device_factory_t *factory,
                                      const trellis_device_rot_options_t *opts,
                                      trellis_reason_t *reason)
{
    static const trellis_device_rot_options_t defaults;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char id[TRELLIS_DEVICE_ID_LEN + 1];

    trellis_reason_clear(reason);
    if (rot == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(rot, 0, sizeof(*rot));
    if (dir == NULL || factory == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (opts == NULL) {
        opts = &defaults;
    }
    switch (factory->backend) {
    case TRELLIS_ROT_BACKEND_FILE:
        /* The key file name comes from factory.json; only the default name is accepted, so a
         * tampered factory.json cannot point the RoT at another file. */
        if (strcmp(factory->rot_key, TRELLIS_ROT_FILE_KEY_NAME) != 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "rot.key must be %s",
                                     TRELLIS_ROT_FILE_KEY_NAME);
            goto out;
        }
        err = trellis_rot_file_open(&rot->u.file, dir, &opts->measure, &rot->port, reason);
        break;
    case TRELLIS_ROT_BACKEND_PKCS11: {
        trellis_rot_pkcs11_options_t p = {
            .uri = opts->pkcs11_uri != NULL ? opts->pkcs11_uri : factory->pkcs11_uri,
            .module_path = opts->pkcs11_module,
            .token_label = NULL,
            .pin = opts->pin,
            .measure = opts->measure,
        };
        err = trellis_rot_pkcs11_open(&rot->u.pkcs11, &p, &rot->port, reason);
        break;
    }
    default:
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "unknown RoT backend");
        break;
    }
    if (err != TRELLIS_OK) {
        goto out;
    }
    rot->backend = factory->backend;
    err = trellis_rot_device_id(&rot->port, id);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* The identity is the key's: a factory.json naming another device id means the directory
     * and the key were mixed up. */
    if (strcmp(id, factory->device_id) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "RoT key has device id %s, factory data says %s", id,
                                 factory->device_id);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        trellis_device_rot_close(rot);
    }
    return err;
}

void trellis_device_rot_close(trellis_device_rot_t *rot)
{
    if (rot == NULL) {
        return;
    }
    switch (rot->backend) {
    case TRELLIS_ROT_BACKEND_FILE:
        trellis_rot_file_close(&rot->u.file);
        break;
    case TRELLIS_ROT_BACKEND_PKCS11:
        trellis_rot_pkcs11_close(&rot->u.pkcs11);
        break;
    default:
        /* Nothing open: a backend whose open failed has already closed itself. */
        break;
    }
    memset(rot, 0, sizeof(*rot));
}
