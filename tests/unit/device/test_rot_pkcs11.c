/* The PKCS#11 RoT backend against a real SoftHSM2 token that the test creates and removes. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "device_test_util.h"
#include "pkcs11_internal.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/psa_token.h"
#include "trellis/rot_pkcs11.h"

static dt_softhsm_t hsm;

static int setup(void **state)
{
    (void)state;
    dt_softhsm_setup(&hsm, DT_TOKEN_LABEL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dt_softhsm_teardown(&hsm);
    return 0;
}

/* Opens a read/write session on the test token (the factory's view). */
static void open_token(trellis_pkcs11_token_t *tok)
{
    trellis_pkcs11_uri_t uri;
    trellis_reason_t r;
    assert_int_equal(trellis_pkcs11_uri_parse("pkcs11:token=" DT_TOKEN_LABEL,
                                              strlen("pkcs11:token=" DT_TOKEN_LABEL), &uri, &r),
                     TRELLIS_OK);
    trellis_err_t err = trellis_pkcs11_token_open(tok, &uri, hsm.module, DT_USER_PIN, 1, &r);
    if (err != TRELLIS_OK) {
        fail_msg("token open: %s %s", trellis_err_name(err), r.text);
    }
}

static void generate(const char *label, uint8_t id, uint8_t point[65])
{
    trellis_pkcs11_token_t tok;
    trellis_reason_t r;
    open_token(&tok);
    trellis_err_t err = trellis_pkcs11_token_generate(&tok, label, &id, 1, point, &r);
    if (err != TRELLIS_OK) {
        fail_msg("generate: %s %s", trellis_err_name(err), r.text);
    }
    trellis_pkcs11_token_close(&tok);
}

static void make_uri(char *out, size_t size, const char *key_attr, const char *query)
{
    snprintf(out, size, "pkcs11:token=%s;%s?module-path=%s%s", DT_TOKEN_LABEL, key_attr, hsm.module,
             query);
}

static trellis_err_t open_rot(trellis_rot_pkcs11_t *rot, trellis_rot_port_t *port, const char *uri,
                              const char *pin, trellis_reason_t *r)
{
    trellis_rot_pkcs11_options_t opts = {0};
    opts.uri = uri;
    opts.pin = pin;
    return trellis_rot_pkcs11_open(rot, &opts, port, r);
}

static void check_signs(const trellis_rot_port_t *port, const uint8_t point[65])
{
    uint8_t digest[32];
    uint8_t sig[64];
    EVP_PKEY *pub = NULL;

    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    for (int i = 0; i < 4; i++) {
        memset(digest, 0x40 + i, sizeof(digest));
        assert_int_equal(trellis_rot_sign_digest(port, digest, sig), TRELLIS_OK);
        assert_int_equal(trellis_p256_verify_digest(pub, digest, sig), TRELLIS_OK);
    }
    digest[0] ^= 0xff;
    assert_int_equal(trellis_p256_verify_digest(pub, digest, sig), TRELLIS_ERR_BAD_SIGNATURE);
    EVP_PKEY_free(pub);
}

static void test_generate_find_open_sign(void **state)
{
    (void)state;
    trellis_pkcs11_token_t tok;
    trellis_pkcs11_key_state_t ks;
    trellis_rot_pkcs11_t rot;
    trellis_rot_port_t port;
    trellis_rot_report_t report;
    trellis_reason_t r;
    uint8_t point[65];
    uint8_t found[65];
    uint8_t again[65];
    char uri[1024];

    generate("SN-000001", 0x01, point);
    assert_int_equal(point[0], 0x04);

    open_token(&tok);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "SN-000001", &ks, found, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_COMPLETE);
    assert_memory_equal(found, point, 65);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "SN-000002", &ks, found, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_ABSENT);
    /* A label is never reused: the existing key is not replaced. */
    uint8_t id = 9;
    assert_int_equal(trellis_pkcs11_token_generate(&tok, "SN-000001", &id, 1, again, &r),
                     TRELLIS_ERR_EXISTS);
    trellis_pkcs11_token_close(&tok);

    /* By label, PIN in the URI. */
    make_uri(uri, sizeof(uri), "object=SN-000001;type=private", "&pin-value=" DT_USER_PIN);
    assert_int_equal(open_rot(&rot, &port, uri, NULL, &r), TRELLIS_OK);
    assert_int_equal(trellis_rot_public_key(&port, found), TRELLIS_OK);
    assert_memory_equal(found, point, 65);
    check_signs(&port, point);
    assert_int_equal(trellis_rot_report(&port, &report), TRELLIS_OK);
    assert_int_equal(report.lifecycle, TRELLIS_ROT_LIFECYCLE_SECURED);
    assert_int_equal(report.measurement_count, 1);

    /* A second key opened at the same time shares the module; closing the first leaves the
     * second working (the module is finalised by the last close only). */
    trellis_rot_pkcs11_t rot2;
    trellis_rot_port_t port2;
    uint8_t point2[65];
    generate("SN-000002", 0x02, point2);
    make_uri(uri, sizeof(uri), "id=%02", "");
    assert_int_equal(open_rot(&rot2, &port2, uri, DT_USER_PIN, &r), TRELLIS_OK);
    trellis_rot_pkcs11_close(&rot);
    check_signs(&port2, point2);
    trellis_rot_pkcs11_close(&rot2);
    trellis_rot_pkcs11_close(&rot2);
    trellis_rot_pkcs11_close(NULL);
}

static void test_key_cannot_be_exported(void **state)
{
    (void)state;
    trellis_pkcs11_token_t tok;
    uint8_t point[65];
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    char label[] = "SN-secret";
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, label, strlen(label)}};
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    CK_BYTE value[256];
    CK_BBOOL b = CK_TRUE;

    generate(label, 0x33, point);
    open_token(&tok);
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(&tok);
    CK_SESSION_HANDLE s = tr__pkcs11_token_session(&tok);
    assert_int_equal(f->C_FindObjectsInit(s, tmpl, 2), CKR_OK);
    assert_int_equal(f->C_FindObjects(s, h, 2, &n), CKR_OK);
    assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
    assert_int_equal(n, 1);

    /* The private value cannot be read, logged in as the user or not. */
    CK_ATTRIBUTE get = {CKA_VALUE, value, sizeof(value)};
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &get, 1), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(get.ulValueLen, CK_UNAVAILABLE_INFORMATION);

    CK_ATTRIBUTE flag = {CKA_EXTRACTABLE, &b, sizeof(b)};
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &flag, 1), CKR_OK);
    assert_int_equal(b, CK_FALSE);
    flag.type = CKA_SENSITIVE;
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &flag, 1), CKR_OK);
    assert_int_equal(b, CK_TRUE);
    flag.type = CKA_NEVER_EXTRACTABLE;
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &flag, 1), CKR_OK);
    assert_int_equal(b, CK_TRUE);
    flag.type = CKA_ALWAYS_SENSITIVE;
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &flag, 1), CKR_OK);
    assert_int_equal(b, CK_TRUE);

    /* And it cannot be made extractable afterwards (PKCS#11 v2.40 §4.9: one way only). */
    b = CK_TRUE;
    CK_ATTRIBUTE set = {CKA_EXTRACTABLE, &b, sizeof(b)};
    assert_int_not_equal(f->C_SetAttributeValue(s, h[0], &set, 1), CKR_OK);
    b = CK_FALSE;
    set.type = CKA_SENSITIVE;
    assert_int_not_equal(f->C_SetAttributeValue(s, h[0], &set, 1), CKR_OK);
    get.pValue = value;
    get.ulValueLen = sizeof(value);
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &get, 1), CKR_ATTRIBUTE_SENSITIVE);
    trellis_pkcs11_token_close(&tok);
}

/* A key pair made directly through PKCS#11, with the private key's protection of our choosing. */
static void raw_generate(const char *label, uint8_t id, int extractable)
{
    trellis_pkcs11_token_t tok;
    CK_BYTE params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_BBOOL ext = extractable ? CK_TRUE : CK_FALSE;
    CK_BBOOL sens = extractable ? CK_FALSE : CK_TRUE;
    char lab[64];
    CK_BYTE idb = id;
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE pub;
    CK_OBJECT_HANDLE priv;

    snprintf(lab, sizeof(lab), "%s", label);
    CK_ATTRIBUTE pt[] = {{CKA_TOKEN, &yes, 1},
                         {CKA_EC_PARAMS, params, sizeof(params)},
                         {CKA_LABEL, lab, strlen(lab)},
                         {CKA_ID, &idb, 1}};
    CK_ATTRIBUTE kt[] = {{CKA_TOKEN, &yes, 1},          {CKA_PRIVATE, &yes, 1},
                         {CKA_SENSITIVE, &sens, 1},     {CKA_EXTRACTABLE, &ext, 1},
                         {CKA_SIGN, &yes, 1},           {CKA_DERIVE, &no, 1},
                         {CKA_LABEL, lab, strlen(lab)}, {CKA_ID, &idb, 1}};
    open_token(&tok);
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(&tok);
    assert_int_equal(
        f->C_GenerateKeyPair(tr__pkcs11_token_session(&tok), &mech, pt, 4, kt, 8, &pub, &priv),
        CKR_OK);
    trellis_pkcs11_token_close(&tok);
}

static CK_OBJECT_HANDLE find_one(trellis_pkcs11_token_t *tok, CK_OBJECT_CLASS cls,
                                 const char *label)
{
    char lab[64];
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    snprintf(lab, sizeof(lab), "%s", label);
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, lab, strlen(lab)}};
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(tok);
    CK_SESSION_HANDLE s = tr__pkcs11_token_session(tok);
    assert_int_equal(f->C_FindObjectsInit(s, t, 2), CKR_OK);
    assert_int_equal(f->C_FindObjects(s, h, 2, &n), CKR_OK);
    assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
    assert_int_equal(n, 1);
    return h[0];
}

static void expect_open_fails(const char *uri, const char *pin, trellis_err_t want,
                              const char *reason_has)
{
    trellis_rot_pkcs11_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    trellis_err_t err = open_rot(&rot, &port, uri, pin, &r);
    if (err != want || strstr(r.text, reason_has) == NULL) {
        fail_msg("'%s': got %s '%s', expected %s with '%s'", uri, trellis_err_name(err), r.text,
                 trellis_err_name(want), reason_has);
    }
    assert_null(port.sign_digest);
    /* The PIN never shows up in a reason. */
    assert_null(strstr(r.text, DT_USER_PIN));
    assert_null(strstr(r.text, "0000"));
}

static void test_refusals(void **state)
{
    (void)state;
    uint8_t point[65];
    char uri[1024];
    trellis_pkcs11_token_t tok;

    generate("good", 0x10, point);
    make_uri(uri, sizeof(uri), "object=good", "");
    expect_open_fails(uri, "0000", TRELLIS_ERR_PERMISSION, "CKR_PIN_INCORRECT");
    expect_open_fails(uri, NULL, TRELLIS_ERR_PERMISSION, "requires a PIN");
    make_uri(uri, sizeof(uri), "object=missing", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_NOT_FOUND, "no EC private key");
    make_uri(uri, sizeof(uri), "type=private", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_INVALID_ARG, "names no key");
    make_uri(uri, sizeof(uri), "object=good;type=cert", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_INVALID_ARG, "not a key");
    expect_open_fails("pkcs11:token=" DT_TOKEN_LABEL ";object=good", DT_USER_PIN,
                      TRELLIS_ERR_CONFIG, "module path");
    expect_open_fails("pkcs11:token=" DT_TOKEN_LABEL ";object=good?module-path=/nonexistent.so",
                      DT_USER_PIN, TRELLIS_ERR_NOT_FOUND, "no such file");
    snprintf(uri, sizeof(uri), "pkcs11:token=nope;object=good?module-path=%s", hsm.module);
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_NOT_FOUND, "no PKCS#11 token matches");
    expect_open_fails("pkcs11:object=good;bogus=1", DT_USER_PIN, TRELLIS_ERR_PARSE, "unknown");

    /* An extractable, non-sensitive key is no RoT. */
    raw_generate("weak", 0x20, 1);
    make_uri(uri, sizeof(uri), "object=weak", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_BAD_KEY, "CKA_SENSITIVE");

    /* Two private keys under one label: ambiguous, refused. */
    raw_generate("twice", 0x30, 0);
    raw_generate("twice", 0x31, 0);
    make_uri(uri, sizeof(uri), "object=twice", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_CONFLICT, "several");
    make_uri(uri, sizeof(uri), "object=twice;id=%31", "");
    trellis_rot_pkcs11_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    assert_int_equal(open_rot(&rot, &port, uri, DT_USER_PIN, &r), TRELLIS_OK);
    trellis_rot_pkcs11_close(&rot);

    /* A public key object of another key carrying this key's id: the pairing check catches it. */
    uint8_t pa[65];
    uint8_t pb[65];
    generate("key-a", 0xa1, pa);
    generate("key-b", 0xb1, pb);
    open_token(&tok);
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(&tok);
    CK_SESSION_HANDLE s = tr__pkcs11_token_session(&tok);
    assert_int_equal(f->C_DestroyObject(s, find_one(&tok, CKO_PUBLIC_KEY, "key-a")), CKR_OK);
    CK_BYTE ida = 0xa1;
    CK_ATTRIBUTE set = {CKA_ID, &ida, 1};
    assert_int_equal(f->C_SetAttributeValue(s, find_one(&tok, CKO_PUBLIC_KEY, "key-b"), &set, 1),
                     CKR_OK);
    trellis_pkcs11_token_close(&tok);
    make_uri(uri, sizeof(uri), "object=key-a", "");
    expect_open_fails(uri, DT_USER_PIN, TRELLIS_ERR_BAD_KEY, "does not match");
}

static void test_partial_and_destroy(void **state)
{
    (void)state;
    trellis_pkcs11_token_t tok;
    trellis_pkcs11_key_state_t ks;
    trellis_reason_t r;
    uint8_t point[65];
    uint8_t again[65];
    uint8_t id = 0x44;

    generate("half", id, point);
    open_token(&tok);
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(&tok);
    assert_int_equal(
        f->C_DestroyObject(tr__pkcs11_token_session(&tok), find_one(&tok, CKO_PUBLIC_KEY, "half")),
        CKR_OK);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "half", &ks, again, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_PARTIAL);
    assert_int_equal(trellis_pkcs11_token_generate(&tok, "half", &id, 1, again, &r),
                     TRELLIS_ERR_EXISTS);
    assert_int_equal(trellis_pkcs11_token_destroy(&tok, "half", &r), TRELLIS_OK);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "half", &ks, again, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_ABSENT);
    assert_int_equal(trellis_pkcs11_token_generate(&tok, "half", &id, 1, again, &r), TRELLIS_OK);
    assert_memory_not_equal(again, point, 65);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "half", &ks, point, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_COMPLETE);
    assert_memory_equal(again, point, 65);
    /* Bad arguments. */
    assert_int_equal(trellis_pkcs11_token_generate(&tok, "", &id, 1, again, &r),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_pkcs11_token_generate(&tok, "x", &id, 0, again, &r),
                     TRELLIS_ERR_INVALID_ARG);
    trellis_pkcs11_token_close(&tok);

    /* Generation needs a read/write session. */
    trellis_pkcs11_uri_t uri;
    assert_int_equal(trellis_pkcs11_uri_parse("pkcs11:", 7, &uri, &r), TRELLIS_OK);
    assert_int_equal(trellis_pkcs11_token_open(&tok, &uri, hsm.module, DT_USER_PIN, 0, &r),
                     TRELLIS_OK); /* the only token: an empty URI selects it */
    assert_int_not_equal(trellis_pkcs11_token_generate(&tok, "ro", &id, 1, again, &r), TRELLIS_OK);
    trellis_pkcs11_token_close(&tok);
}

static void test_pin_source_and_device_open(void **state)
{
    (void)state;
    uint8_t point[65];
    char pinfile[PATH_MAX + 32];
    static char uri_big[3 * PATH_MAX];
    char dir[PATH_MAX];
    trellis_rot_pkcs11_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    static trellis_device_factory_t fd;
    trellis_device_rot_t drot;

    generate("SN-pin", 0x55, point);
    snprintf(pinfile, sizeof(pinfile), "%s/pin", hsm.dir);
    dt_write_file(pinfile, DT_USER_PIN "\n", strlen(DT_USER_PIN) + 1, 0600);
    snprintf(uri_big, sizeof(uri_big),
             "pkcs11:token=%s;object=SN-pin?module-path=%s&pin-source=file:%s", DT_TOKEN_LABEL,
             hsm.module, pinfile);
    assert_int_equal(open_rot(&rot, &port, uri_big, NULL, &r), TRELLIS_OK);
    trellis_rot_pkcs11_close(&rot);

    /* A device directory whose factory.json points into the token (no PIN in it). */
    trellis_test_tmpdir(dir, sizeof(dir), "device");
    memset(&fd, 0, sizeof(fd));
    assert_int_equal(trellis_device_id_from_point(point, fd.device_id), TRELLIS_OK);
    snprintf(fd.serial, sizeof(fd.serial), "SN-pin");
    snprintf(fd.model, sizeof(fd.model), "T-100");
    snprintf(fd.owner, sizeof(fd.owner), "acme");
    snprintf(fd.factory, sizeof(fd.factory), "fab-1");
    snprintf(fd.batch, sizeof(fd.batch), "b-1");
    fd.backend = TRELLIS_ROT_BACKEND_PKCS11;
    snprintf(fd.pkcs11_uri, sizeof(fd.pkcs11_uri), "pkcs11:token=%s;object=SN-pin?module-path=%s",
             DT_TOKEN_LABEL, hsm.module);
    assert_int_equal(trellis_device_factory_write(dir, &fd, 0), TRELLIS_OK);
    assert_int_equal(trellis_device_factory_load(dir, &fd, &r), TRELLIS_OK);
    trellis_device_rot_options_t opts = {0};
    opts.pin = DT_USER_PIN;
    assert_int_equal(trellis_device_rot_open(&drot, dir, &fd, &opts, &r), TRELLIS_OK);
    assert_int_equal(drot.backend, TRELLIS_ROT_BACKEND_PKCS11);
    check_signs(&drot.port, point);
    trellis_device_rot_close(&drot);
    opts.pin = "9999";
    assert_int_equal(trellis_device_rot_open(&drot, dir, &fd, &opts, &r), TRELLIS_ERR_PERMISSION);
    /* A key of another device under this device's label is refused by id. */
    fd.device_id[5] = fd.device_id[5] == '0' ? '1' : '0';
    opts.pin = DT_USER_PIN;
    assert_int_equal(trellis_device_rot_open(&drot, dir, &fd, &opts, &r), TRELLIS_ERR_BAD_KEY);
    trellis_test_rmtree(dir);
}

static void test_evidence(void **state)
{
    (void)state;
    uint8_t point[65];
    char uri[1024];
    trellis_rot_pkcs11_t rot;
    trellis_rot_port_t port;
    trellis_reason_t r;
    static const uint8_t challenge[32] = {1, 2, 3};
    static const uint8_t csr[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    uint8_t token[TRELLIS_EVIDENCE_MAX];
    size_t len = 0;
    uint8_t nonce[32];
    uint8_t ueid[33];
    static trellis_psa_claims_t claims;
    EVP_PKEY *pub = NULL;

    generate("SN-ev", 0x66, point);
    make_uri(uri, sizeof(uri), "object=SN-ev", "");
    assert_int_equal(open_rot(&rot, &port, uri, DT_USER_PIN, &r), TRELLIS_OK);
    assert_int_equal(trellis_device_evidence(&port, challenge, sizeof(challenge), csr, sizeof(csr),
                                             token, sizeof(token), &len),
                     TRELLIS_OK);
    trellis_rot_pkcs11_close(&rot);

    assert_int_equal(trellis_sha256_two(challenge, sizeof(challenge), csr, sizeof(csr), nonce),
                     TRELLIS_OK);
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    assert_int_equal(trellis_psa_token_verify(token, len, pub, nonce, 32, &claims, &r), TRELLIS_OK);
    assert_int_equal(trellis_ueid_from_point(point, ueid), TRELLIS_OK);
    assert_memory_equal(claims.instance_id, ueid, 33);
    assert_int_equal(claims.sw_component_count, 1);
    EVP_PKEY_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_find_open_sign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_cannot_be_exported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_and_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_source_and_device_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evidence, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
