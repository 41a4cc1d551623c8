#include "agent_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/fsutil.h"
#include "trellis/rot_file.h"
#include "trellis/x509.h"

void agent_test_device(const char *parent, const char *name, const char *registrar_url,
                       const char *ca_pem_file, char *dir_out, size_t dir_size,
                       char id[static TRELLIS_DEVICE_ID_LEN + 1])
{
    uint8_t point[TRELLIS_ROT_POINT_LEN];
    trellis_device_factory_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(dir_out, dir_size, "%s/%s", parent, name);
    assert_int_equal(mkdir(dir_out, 0700), 0);
    assert_int_equal(trellis_rot_file_generate(dir_out, 0, point), TRELLIS_OK);
    assert_int_equal(trellis_device_id_from_point(point, id), TRELLIS_OK);
    memcpy(f->device_id, id, TRELLIS_DEVICE_ID_LEN + 1);
    snprintf(f->serial, sizeof(f->serial), "SN-%s", name);
    snprintf(f->model, sizeof(f->model), "T-100");
    snprintf(f->owner, sizeof(f->owner), "acme");
    snprintf(f->factory, sizeof(f->factory), "fab-1");
    snprintf(f->batch, sizeof(f->batch), "b-test");
    if (registrar_url != NULL)
        snprintf(f->registrar_url, sizeof(f->registrar_url), "%s", registrar_url);
    if (ca_pem_file != NULL) {
        uint8_t *pem = NULL;
        size_t len = 0;
        assert_int_equal(trellis_file_read_all(ca_pem_file, TRELLIS_DEVICE_CA_PEM_MAX, &pem, &len),
                         TRELLIS_OK);
        memcpy(f->registrar_ca_pem, pem, len + 1);
        trellis_file_buffer_free(pem, len);
    }
    f->backend = TRELLIS_ROT_BACKEND_FILE;
    snprintf(f->rot_key, sizeof(f->rot_key), "%s", TRELLIS_ROT_FILE_KEY_NAME);
    assert_int_equal(trellis_device_factory_write(dir_out, f, 0), TRELLIS_OK);
    free(f);
}

void agent_test_identity(trellis_test_pki_t *pki, const char *dir, const char *id)
{
    trellis_test_pki_pair_t pair;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char path[1200];
    assert_int_equal(trellis_test_pki_client(pki, id, false, &pair), TRELLIS_OK);
    assert_int_equal(trellis_p256_load_private_pem(pair.key, &key), TRELLIS_OK);
    assert_int_equal(trellis_x509_load_pem(pair.cert, &cert), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/%s", dir, TR__AGENT_IDENTITY);
    X509 *chain[1] = {cert};
    assert_int_equal(trellis_x509_save_bundle_pem(path, key, chain, 1), TRELLIS_OK);
    X509_free(cert);
    EVP_PKEY_free(key);
}

void agent_test_config(tr__agent_config_t *cfg)
{
    typedef struct {
        tr__agent_config_t agent;
    } wrap_t;
    static const trellis_conf_option_t rows[] = {TR__AGENT_COMMON_ROWS(wrap_t)};
    const trellis_conf_spec_t spec = {
        .program = "test",
        .section = "device",
        .cfg_size = sizeof(wrap_t),
        .options = rows,
        .n_options = sizeof(rows) / sizeof(rows[0]),
    };
    wrap_t w;
    trellis_reason_t reason;
    if (trellis_conf_defaults(&spec, &w, &reason) != TRELLIS_OK)
        fail_msg("agent config table: %s", reason.text);
    *cfg = w.agent;
}
