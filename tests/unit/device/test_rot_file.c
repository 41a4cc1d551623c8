/* The file RoT backend, factory.json, and evidence built with it. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "device_test_util.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/psa_token.h"
#include "trellis/rot_file.h"
#include "trellis/trellis.h"

typedef struct {
    char dir[PATH_MAX];
    char key[PATH_MAX + 32];
    uint8_t point[65];
} fixture_t;

static int setup(void **state)
{
    static fixture_t f;
    memset(&f, 0, sizeof(f));
    trellis_test_tmpdir(f.dir, sizeof(f.dir), "device");
    snprintf(f.key, sizeof(f.key), "%s/%s", f.dir, TRELLIS_ROT_FILE_KEY_NAME);
    assert_int_equal(trellis_rot_file_generate(f.dir, 0, f.point), TRELLIS_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_test_rmtree(f->dir);
    return 0;
}

static void verify_sig(const uint8_t point[65], const uint8_t digest[32], const uint8_t sig[64])
{
    EVP_PKEY *pub = NULL;
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    assert_int_equal(trellis_p256_verify_digest(pub, digest, sig), TRELLIS_OK);
    EVP_PKEY_free(pub);
}

static void test_generate_open_sign(void **state)
{
    fixture_t *f = *state;
    trellis_rot_file_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    uint8_t point[65];
    uint8_t digest[32];
    uint8_t sig[64];
    struct stat st;
    char id[33];

    /* The key file is 0600 from the start and a real P-256 key. */
    assert_int_equal(stat(f->key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, NULL, &port, &r), TRELLIS_OK);
    assert_int_equal(port.version, TRELLIS_ROT_PORT_VERSION);
    assert_int_equal(trellis_rot_public_key(&port, point), TRELLIS_OK);
    assert_memory_equal(point, f->point, 65);
    assert_int_equal(trellis_rot_device_id(&port, id), TRELLIS_OK);
    assert_int_equal(strlen(id), 32);
    for (int i = 0; i < 3; i++) {
        memset(digest, i, sizeof(digest));
        assert_int_equal(trellis_rot_sign_digest(&port, digest, sig), TRELLIS_OK);
        verify_sig(point, digest, sig);
    }
    /* A signature over another digest does not verify: the digest is signed as given. */
    EVP_PKEY *pub = NULL;
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    digest[0] ^= 1;
    assert_int_equal(trellis_p256_verify_digest(pub, digest, sig), TRELLIS_ERR_BAD_SIGNATURE);
    EVP_PKEY_free(pub);
    trellis_rot_file_close(&rot);
    trellis_rot_file_close(&rot); /* closing twice is a no-op */
    trellis_rot_file_close(NULL);
}

static void test_report(void **state)
{
    fixture_t *f = *state;
    trellis_rot_file_t rot;
    trellis_rot_port_t port;
    trellis_rot_report_t a;
    trellis_rot_report_t b;
    uint8_t exe[32];
    char fw[PATH_MAX + 32];
    trellis_rot_measure_options_t opts = {NULL, "9.8.7"};

    assert_int_equal(trellis_rot_file_open(&rot, f->dir, NULL, &port, NULL), TRELLIS_OK);
    assert_int_equal(trellis_rot_report(&port, &a), TRELLIS_OK);
    assert_int_equal(a.lifecycle, TRELLIS_ROT_LIFECYCLE_SECURED);
    assert_int_equal(a.measurement_count, 1);
    assert_string_equal(a.measurements[0].type, "NSPE");
    assert_string_equal(a.measurements[0].description, "sha-256");
    assert_string_equal(a.measurements[0].version, TRELLIS_VERSION);
    /* The measurement is the SHA-256 of the running program. */
    assert_int_equal(trellis_sha256_file("/proc/self/exe", exe), TRELLIS_OK);
    assert_memory_equal(a.measurements[0].value, exe, 32);
    trellis_rot_file_close(&rot);

    /* A configured image and version; a new boot seed on every open, same implementation id. */
    snprintf(fw, sizeof(fw), "%s/firmware.bin", f->dir);
    dt_write_file(fw, "firmware image", 14, 0644);
    opts.firmware_path = fw;
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, &opts, &port, NULL), TRELLIS_OK);
    assert_int_equal(trellis_rot_report(&port, &b), TRELLIS_OK);
    assert_string_equal(b.measurements[0].version, "9.8.7");
    assert_int_equal(trellis_sha256((const uint8_t *)"firmware image", 14, exe), TRELLIS_OK);
    assert_memory_equal(b.measurements[0].value, exe, 32);
    assert_memory_equal(a.implementation_id, b.implementation_id, 32);
    assert_memory_not_equal(a.boot_seed, b.boot_seed, 32);
    trellis_rot_file_close(&rot);

    /* A missing image fails the open (a RoT that cannot measure does not attest). */
    opts.firmware_path = "/nonexistent/firmware";
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, &opts, &port, NULL),
                     TRELLIS_ERR_NOT_FOUND);
    assert_null(port.sign_digest);
    opts.firmware_path = f->dir; /* a directory is not an image */
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, &opts, &port, NULL), TRELLIS_ERR_IO);
    opts.firmware_path = fw;
    opts.firmware_version = "0123456789012345678901234567890123456789";
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, &opts, &port, NULL),
                     TRELLIS_ERR_TOO_LARGE);
}

static void test_key_file_refusals(void **state)
{
    fixture_t *f = *state;
    trellis_rot_file_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    uint8_t point[65];
    char other[PATH_MAX];

    /* Readable by others: refused, like ssh refuses such a key. */
    assert_int_equal(chmod(f->key, 0640), 0);
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, NULL, &port, &r), TRELLIS_ERR_PERMISSION);
    assert_non_null(strstr(r.text, "0600"));
    assert_int_equal(chmod(f->key, 0400), 0);
    assert_int_equal(trellis_rot_file_open(&rot, f->dir, NULL, &port, &r), TRELLIS_OK);
    trellis_rot_file_close(&rot);
    assert_int_equal(chmod(f->key, 0600), 0);

    /* An injected key is never overwritten. */
    assert_int_equal(trellis_rot_file_generate(f->dir, TRELLIS_ROT_FILE_DURABLE, point),
                     TRELLIS_ERR_EXISTS);
    for (int i = 0; i < 65; i++) {
        assert_int_equal(point[i], 0);
    }

    /* No key, no directory, bad arguments. */
    trellis_test_tmpdir(other, sizeof(other), "device");
    assert_int_equal(trellis_rot_file_open(&rot, other, NULL, &port, &r), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(trellis_rot_file_generate("/nonexistent/dir", 0, point),
                     TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(trellis_rot_file_open(NULL, f->dir, NULL, &port, &r), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_rot_file_open(&rot, NULL, NULL, &port, &r), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_rot_file_generate(other, 0x80, point), TRELLIS_ERR_INVALID_ARG);

    /* Not a key, an encrypted key, a key on another curve, a symlink. */
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", other, TRELLIS_ROT_FILE_KEY_NAME);
    dt_write_file(path, "not a key\n", 10, 0600);
    assert_int_equal(trellis_rot_file_open(&rot, other, NULL, &port, &r), TRELLIS_ERR_PARSE);

    EVP_PKEY *k384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(k384);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(bio, k384, NULL, NULL, 0, NULL, NULL), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    dt_write_file(path, pem, (size_t)pem_len, 0600);
    assert_int_equal(trellis_rot_file_open(&rot, other, NULL, &port, &r), TRELLIS_ERR_BAD_KEY);
    assert_non_null(strstr(r.text, "P-256"));
    BIO_free(bio);

    bio = BIO_new(BIO_s_mem());
    EVP_PKEY *k256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_int_equal(PEM_write_bio_PKCS8PrivateKey(bio, k256, EVP_aes_256_cbc(), NULL, 0, NULL,
                                                   (void *)"passphrase"),
                     1);
    pem_len = BIO_get_mem_data(bio, &pem);
    dt_write_file(path, pem, (size_t)pem_len, 0600);
    assert_int_equal(trellis_rot_file_open(&rot, other, NULL, &port, &r), TRELLIS_ERR_PARSE);
    BIO_free(bio);
    EVP_PKEY_free(k256);
    EVP_PKEY_free(k384);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(f->key, path), 0);
    assert_int_equal(trellis_rot_file_open(&rot, other, NULL, &port, &r), TRELLIS_ERR_PERMISSION);
    trellis_test_rmtree(other);
}

static void fill_factory(trellis_device_factory_t *fd, const uint8_t point[65])
{
    memset(fd, 0, sizeof(*fd));
    assert_int_equal(trellis_device_id_from_point(point, fd->device_id), TRELLIS_OK);
    snprintf(fd->serial, sizeof(fd->serial), "SN-000001");
    snprintf(fd->model, sizeof(fd->model), "T-100 \"quoted\" \\ model");
    snprintf(fd->owner, sizeof(fd->owner), "acme");
    snprintf(fd->factory, sizeof(fd->factory), "fab-1");
    snprintf(fd->batch, sizeof(fd->batch), "b-1");
    snprintf(fd->registrar_url, sizeof(fd->registrar_url), "https://registrar.example:8443");
    snprintf(fd->registrar_ca_pem, sizeof(fd->registrar_ca_pem),
             "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    fd->backend = TRELLIS_ROT_BACKEND_FILE;
    snprintf(fd->rot_key, sizeof(fd->rot_key), "%s", TRELLIS_ROT_FILE_KEY_NAME);
}

static void test_factory_data_round_trip(void **state)
{
    fixture_t *f = *state;
    static trellis_device_factory_t in;
    static trellis_device_factory_t out;
    trellis_reason_t r;
    char path[PATH_MAX + 32];
    struct stat st;

    fill_factory(&in, f->point);
    assert_int_equal(trellis_device_factory_write(f->dir, &in, 1), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/%s", f->dir, TRELLIS_DEVICE_FACTORY_NAME);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(trellis_device_factory_load(f->dir, &out, &r), TRELLIS_OK);
    assert_memory_equal(&in, &out, sizeof(in));

    /* registrar_ca as a file name next to factory.json. */
    char ca[PATH_MAX + 32];
    snprintf(ca, sizeof(ca), "%s/registrar-ca.pem", f->dir);
    dt_write_file(ca, in.registrar_ca_pem, strlen(in.registrar_ca_pem), 0644);
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "{\"trellis_device\":1,\"device_id\":\"%s\",\"serial\":\"S\",\"model\":\"M\","
                     "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\","
                     "\"registrar_ca\":\"registrar-ca.pem\","
                     "\"rot\":{\"backend\":\"pkcs11\",\"uri\":\"pkcs11:token=t;object=S\"}}",
                     in.device_id);
    dt_write_file(path, text, (size_t)n, 0644);
    assert_int_equal(trellis_device_factory_load(f->dir, &out, &r), TRELLIS_OK);
    assert_string_equal(out.registrar_ca_pem, in.registrar_ca_pem);
    assert_int_equal(out.backend, TRELLIS_ROT_BACKEND_PKCS11);
    assert_string_equal(out.pkcs11_uri, "pkcs11:token=t;object=S");
    assert_string_equal(out.registrar_url, "");
}

static void test_factory_data_negative(void **state)
{
    fixture_t *f = *state;
    static trellis_device_factory_t out;
    static trellis_device_factory_t in;
    trellis_reason_t r;
    char path[PATH_MAX + 32];
    char id[33];
    static const struct {
        const char *json; /* @ID@ stands for the device id */
        const char *reason_has;
        trellis_err_t err;
    } cases[] = {
        {"[]", "not an object", TRELLIS_ERR_PARSE},
        {"{", "line", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":2,\"device_id\":\"@ID@\"}", "trellis_device", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"device_id\":\"@ID@\"}", "line",
         TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"extra\":1}", "unknown member extra",
         TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"rot\":{\"backend\":\"file\",\"key\":\"k\"}}",
         "batch is missing", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":7,\"model\":\"M\",\"owner\":"
         "\"o\","
         "\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"file\",\"key\":\"k\"}}",
         "serial must be a string", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"tab\\there\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"file\","
         "\"key\":\"k\"}}",
         "printable", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"file\","
         "\"key\":\"../k\"}}",
         "rot.key", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"tpm\"}}",
         "rot.backend", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"pkcs11\","
         "\"uri\":\"pkcs11:object=S?pin-value=1234\"}}",
         "PIN", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"pkcs11\","
         "\"uri\":\"pkcs11:token=t\"}}",
         "names no key", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"rot\":{\"backend\":\"file\","
         "\"key\":\"k\",\"uri\":\"pkcs11:object=a\"}}",
         "rot.uri", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"registrar_url\":\"http://x\","
         "\"rot\":{\"backend\":\"file\",\"key\":\"k\"}}",
         "registrar_url", TRELLIS_ERR_PARSE},
        {"{\"trellis_device\":1,\"device_id\":\"@ID@\",\"serial\":\"S\",\"model\":\"M\","
         "\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\",\"registrar_ca\":\"missing.pem\","
         "\"rot\":{\"backend\":\"file\",\"key\":\"k\"}}",
         "registrar_ca file", TRELLIS_ERR_NOT_FOUND},
        {"{\"trellis_device\":1,\"device_id\":\"ABCDEF0123456789ABCDEF0123456789\","
         "\"serial\":\"S\",\"model\":\"M\",\"owner\":\"o\",\"factory\":\"f\",\"batch\":\"b\","
         "\"rot\":{\"backend\":\"file\",\"key\":\"k\"}}",
         "device_id", TRELLIS_ERR_PARSE},
    };

    assert_int_equal(trellis_device_id_from_point(f->point, id), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/%s", f->dir, TRELLIS_DEVICE_FACTORY_NAME);
    assert_int_equal(trellis_device_factory_load(f->dir, &out, &r), TRELLIS_ERR_NOT_FOUND);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[2048];
        size_t n = 0;
        for (const char *p = cases[i].json; *p != '\0' && n + 40 < sizeof(text);) {
            if (strncmp(p, "@ID@", 4) == 0) {
                memcpy(text + n, id, 32);
                n += 32;
                p += 4;
            } else {
                text[n++] = *p++;
            }
        }
        dt_write_file(path, text, n, 0644);
        trellis_err_t err = trellis_device_factory_load(f->dir, &out, &r);
        trellis_err_t want = cases[i].err != TRELLIS_OK ? cases[i].err : TRELLIS_ERR_PARSE;
        if (err != want || strstr(r.text, cases[i].reason_has) == NULL) {
            fail_msg("case %zu: got %s '%s', expected %s with '%s'", i, trellis_err_name(err),
                     r.text, trellis_err_name(want), cases[i].reason_has);
        }
        assert_string_equal(out.device_id, "");
    }
    /* The writer refuses what the loader would refuse. */
    fill_factory(&in, f->point);
    snprintf(in.serial, sizeof(in.serial), "bad\nserial");
    assert_int_equal(trellis_device_factory_write(f->dir, &in, 0), TRELLIS_ERR_INVALID_ARG);
    fill_factory(&in, f->point);
    in.backend = TRELLIS_ROT_BACKEND_PKCS11;
    snprintf(in.pkcs11_uri, sizeof(in.pkcs11_uri), "pkcs11:object=x?pin-value=1");
    assert_int_equal(trellis_device_factory_write(f->dir, &in, 0), TRELLIS_ERR_INVALID_ARG);
    /* Names: printable ASCII, 1..64. */
    assert_int_equal(trellis_device_name_check("T-100 rev. B"), TRELLIS_OK);
    assert_int_equal(trellis_device_name_check(""), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_device_name_check("caf\xc3\xa9"), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(
        trellis_device_name_check("0123456789012345678901234567890123456789012345678901"
                                  "2345678901234"),
        TRELLIS_ERR_INVALID_ARG);
}

static void test_device_rot_open(void **state)
{
    fixture_t *f = *state;
    static trellis_device_factory_t fd;
    trellis_device_rot_t rot;
    trellis_reason_t r;
    char id[33];

    fill_factory(&fd, f->point);
    assert_int_equal(trellis_device_factory_write(f->dir, &fd, 0), TRELLIS_OK);
    assert_int_equal(trellis_device_factory_load(f->dir, &fd, &r), TRELLIS_OK);
    assert_int_equal(trellis_device_rot_open(&rot, f->dir, &fd, NULL, &r), TRELLIS_OK);
    assert_int_equal(rot.backend, TRELLIS_ROT_BACKEND_FILE);
    assert_int_equal(trellis_rot_device_id(&rot.port, id), TRELLIS_OK);
    assert_string_equal(id, fd.device_id);
    trellis_device_rot_close(&rot);

    /* factory.json of another device: the key's id wins, the open is refused. */
    fd.device_id[0] = fd.device_id[0] == 'a' ? 'b' : 'a';
    assert_int_equal(trellis_device_rot_open(&rot, f->dir, &fd, NULL, &r), TRELLIS_ERR_BAD_KEY);
    assert_non_null(strstr(r.text, "device id"));
    assert_null(rot.port.sign_digest);
    fill_factory(&fd, f->point);
    snprintf(fd.rot_key, sizeof(fd.rot_key), "other.pem");
    assert_int_equal(trellis_device_rot_open(&rot, f->dir, &fd, NULL, &r), TRELLIS_ERR_CONFIG);
    trellis_device_rot_close(&rot);
}

static void test_evidence(void **state)
{
    fixture_t *f = *state;
    trellis_rot_file_t rot;
    trellis_rot_port_t port;
    static const uint8_t challenge[] = "challenge-0123456789abcdef";
    static const uint8_t csr[] = {0x30, 0x82, 0x01, 0x0a, 0x02, 0x01, 0x00, 0xde, 0xad};
    uint8_t token[TRELLIS_EVIDENCE_MAX];
    size_t len = 0;
    size_t need = 0;
    uint8_t nonce[32];
    uint8_t exe[32];
    uint8_t ueid[33];
    static trellis_psa_claims_t claims;
    trellis_reason_t r;
    EVP_PKEY *pub = NULL;

    assert_int_equal(trellis_rot_file_open(&rot, f->dir, NULL, &port, NULL), TRELLIS_OK);
    /* Size query, then the real thing. */
    assert_int_equal(trellis_device_evidence(&port, challenge, sizeof(challenge), csr, sizeof(csr),
                                             NULL, 0, &need),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(need > 0 && need <= sizeof(token));
    assert_int_equal(trellis_device_evidence(&port, challenge, sizeof(challenge), csr, sizeof(csr),
                                             token, sizeof(token), &len),
                     TRELLIS_OK);
    assert_int_equal(len, need);

    /* It verifies with the RoT public key, and carries the claims of design.md §3. */
    assert_int_equal(trellis_sha256_two(challenge, sizeof(challenge), csr, sizeof(csr), nonce),
                     TRELLIS_OK);
    assert_int_equal(trellis_p256_from_point(f->point, &pub), TRELLIS_OK);
    assert_int_equal(trellis_psa_token_verify(token, len, pub, nonce, 32, &claims, &r), TRELLIS_OK);
    assert_int_equal(claims.profile, TRELLIS_PSA_PROFILE_TFM);
    assert_int_equal(claims.nonce_len, 32);
    assert_int_equal(trellis_ueid_from_point(f->point, ueid), TRELLIS_OK);
    assert_memory_equal(claims.instance_id, ueid, 33);
    assert_true(claims.has_lifecycle);
    assert_int_equal(claims.lifecycle, TRELLIS_PSA_LIFECYCLE_SECURED);
    assert_int_equal(claims.boot_seed_len, 32);
    assert_int_equal(claims.client_id, -1);
    assert_int_equal(claims.sw_component_count, 1);
    assert_int_equal(trellis_sha256_file("/proc/self/exe", exe), TRELLIS_OK);
    assert_int_equal(claims.sw_components[0].measurement_value_len, 32);
    assert_memory_equal(claims.sw_components[0].measurement_value, exe, 32);
    assert_string_equal(claims.sw_components[0].measurement_type, "NSPE");

    /* Another CSR gives another nonce: the evidence is bound to the exact CSR bytes. */
    uint8_t other[32];
    uint8_t csr2[sizeof(csr)];
    memcpy(csr2, csr, sizeof(csr));
    csr2[sizeof(csr2) - 1] ^= 1;
    assert_int_equal(trellis_sha256_two(challenge, sizeof(challenge), csr2, sizeof(csr2), other),
                     TRELLIS_OK);
    assert_int_equal(trellis_psa_token_verify(token, len, pub, other, 32, &claims, &r),
                     TRELLIS_ERR_TOKEN_NONCE);
    /* A flipped byte breaks the signature. */
    token[len - 5] ^= 0x01;
    assert_int_not_equal(trellis_psa_token_verify(token, len, pub, nonce, 32, &claims, &r),
                         TRELLIS_OK);

    /* Bad arguments. */
    assert_int_equal(
        trellis_device_evidence(&port, NULL, 0, csr, sizeof(csr), token, sizeof(token), &len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_device_evidence(&port, challenge, TRELLIS_EVIDENCE_CHALLENGE_MAX + 1,
                                             csr, sizeof(csr), token, sizeof(token), &len),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_device_evidence(&port, challenge, sizeof(challenge), csr, sizeof(csr),
                                             token, 10, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, need);
    trellis_rot_port_t broken = port;
    broken.version = 0;
    assert_int_equal(trellis_device_evidence(&broken, challenge, sizeof(challenge), csr,
                                             sizeof(csr), token, sizeof(token), &len),
                     TRELLIS_ERR_CONFIG);
    assert_int_equal(len, 0);
    EVP_PKEY_free(pub);
    trellis_rot_file_close(&rot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_open_sign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_data_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_data_negative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_rot_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evidence, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
