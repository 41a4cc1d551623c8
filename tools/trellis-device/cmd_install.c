/*
 * `trellis-device --state DIR install --in FILE`: offline enrollment, step two. FILE is the
 * registrar's answer to the request (the 201 JSON body {"device_id", "certificate",
 * "not_after"}) or just the PEM chain. The chain is checked like an online answer (for the
 * pending key, naming this device, chaining to the pinned CA) and stored with the key as the
 * device's identity; pending.key is then removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/json.h"

typedef struct {
    tr__agent_config_t agent;
    char in[TR__AGENT_PATH_MAX];
} install_config_t;

static const trellis_conf_option_t install_options[] = {
    TR__AGENT_COMMON_ROWS(install_config_t),
    TRELLIS_CONF_ROW_STRING("in", install_config_t, in, "", 0,
                            "the registrar's answer (JSON) or the certificate chain (PEM)"),
};

static const trellis_conf_spec_t install_spec =
    TR__AGENT_SPEC("install", "Install the certificate answering an offline enrollment request.",
                   install_config_t, install_options);

int tr__cmd_install(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "install";
    install_config_t cfg;
    tr__agent_t *a = NULL;
    tr__identity_t id;
    trellis_reason_t reason;
    EVP_PKEY *key = NULL;
    uint8_t *file = NULL;
    size_t file_len = 0;
    json_t *o = NULL;
    char key_path[TR__AGENT_PATH_MAX];
    const char *pem = NULL;
    size_t pem_len = 0;
    int rc = tr__agent_load_config(what, &install_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    memset(&id, 0, sizeof(id));
    if (rc >= 0)
        return rc;
    if (cfg.in[0] == '\0')
        return tr__agent_usage(what, "--in FILE is required");
    rc = tr__agent_start(what, state_dir, &cfg.agent, &a);
    if (rc != 0)
        goto out;
    rc = 1;
    trellis_err_t err = tr__agent_path(a, TR__AGENT_PENDING_KEY, key_path);
    if (err == TRELLIS_OK)
        err = trellis_p256_load_private_pem(key_path, &key);
    if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "no pending request (%s): %s", TR__AGENT_PENDING_KEY,
                            trellis_err_message(err));
        goto out;
    }
    err = trellis_file_read_all(cfg.in, TR__AGENT_RESPONSE_MAX, &file, &file_len);
    if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "cannot read %s: %s", cfg.in, trellis_err_message(err));
        goto out;
    }
    size_t skip = 0;
    while (skip < file_len &&
           (file[skip] == ' ' || file[skip] == '\n' || file[skip] == '\r' || file[skip] == '\t'))
        skip++;
    if (skip < file_len && file[skip] == '{') {
        const char *device = NULL;
        err = trellis_json_parse_object((const char *)file, file_len, TR__AGENT_RESPONSE_MAX, &o,
                                        &reason);
        if (err == TRELLIS_OK)
            err = trellis_json_get_string(o, "certificate", TR__AGENT_RESPONSE_MAX, &pem, &pem_len,
                                          &reason);
        if (err == TRELLIS_OK)
            err = trellis_json_get_string_opt(o, "device_id", TRELLIS_DEVICE_ID_LEN, &device, NULL,
                                              &reason);
        if (err == TRELLIS_OK && device != NULL && strcmp(device, a->factory.device_id) != 0)
            err = trellis_reason_set(&reason, TRELLIS_ERR_PERMISSION, "the answer is for device %s",
                                     device);
        if (err != TRELLIS_OK) {
            rc = tr__agent_fail(what, "%s: %s", cfg.in, reason.text);
            goto out;
        }
    } else {
        pem = (const char *)file;
        pem_len = file_len;
    }
    err = tr__identity_install(a, key, pem, pem_len, &id, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", reason.text);
        goto out;
    }
    /* The key now lives in identity.pem; the pending copy must not outlive the request. */
    if (unlink(key_path) != 0)
        fprintf(stderr, "trellis-device install: warning: cannot remove %s\n", key_path);
    printf("installed certificate %s for %s\n", id.serial_hex, a->factory.device_id);
    rc = 0;
out:
    json_decref(o);
    trellis_file_buffer_free(file, file_len);
    EVP_PKEY_free(key);
    tr__identity_free(&id);
    tr__agent_free(a);
    return rc;
}
