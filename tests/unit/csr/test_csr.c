/*
 * lib/csr: the CSR policy of design.md §3. Every refused CSR is built here with the OpenSSL API,
 * signed properly, so that each test breaks exactly one rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/csr.h"

#define DEVICE_ID "0123456789abcdef0123456789abcdef"

static EVP_PKEY *keygen(const char *type, const char *curve)
{
    EVP_PKEY *key = NULL;
    if (strcmp(type, "RSA") == 0)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    else if (strcmp(type, "ED25519") == 0)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(key);
    return key;
}

static EVP_PKEY *p256(void)
{
    return keygen("EC", "P-256");
}

/* What make_csr puts in a request besides a subject and a key. */
typedef struct {
    const char *cn;       /* NULL: no CN; "" + cn2: see below */
    const char *cn2;      /* a second CN */
    const EVP_MD *md;     /* NULL: SHA-256; ignored for Ed25519 */
    const char *ext_name; /* extension to request, e.g. "basicConstraints" */
    const char *ext_value;
    const char *ext_name2; /* a second one */
    const char *ext_value2;
    int ext_req_twice; /* put the extensionRequest in two attributes */
    long version;
    int null_sig_params; /* ecdsa-with-SHA256 with an explicit NULL parameter */
} csr_opts_t;

static X509_EXTENSION *make_ext(X509_REQ *req, const char *name, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf(NULL, &ctx, name, value);
    assert_non_null(ext);
    return ext;
}

/* A CSR carrying pub's public key, signed by signer. Returns DER in a new buffer. */
static uint8_t *make_csr(EVP_PKEY *pub, EVP_PKEY *signer, const csr_opts_t *o, size_t *len)
{
    X509_REQ *req = X509_REQ_new();
    assert_non_null(req);
    assert_int_equal(X509_REQ_set_version(req, o->version), 1);
    X509_NAME *name = X509_REQ_get_subject_name(req);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                                (const unsigned char *)"acme", -1, -1, 0),
                     1);
    if (o->cn != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                    (const unsigned char *)o->cn, -1, -1, 0),
                         1);
    if (o->cn2 != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                    (const unsigned char *)o->cn2, -1, -1, 0),
                         1);
    assert_int_equal(X509_REQ_set_pubkey(req, pub), 1);
    if (o->ext_name != NULL) {
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        assert_non_null(exts);
        sk_X509_EXTENSION_push(exts, make_ext(req, o->ext_name, o->ext_value));
        if (o->ext_name2 != NULL)
            sk_X509_EXTENSION_push(exts, make_ext(req, o->ext_name2, o->ext_value2));
        assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
        if (o->ext_req_twice) {
            /* OpenSSL refuses a second PKCS#9 attribute; Microsoft's OID is another one. */
            assert_int_equal(X509_REQ_add_extensions_nid(req, exts, NID_ms_ext_req), 1);
        }
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    const EVP_MD *md = EVP_PKEY_is_a(signer, "ED25519") ? NULL
                       : o->md != NULL                  ? o->md
                                                        : EVP_sha256();
    assert_true(X509_REQ_sign(req, signer, md) > 0);
    if (o->null_sig_params) {
        /* The signature covers certificationRequestInfo only, so it still verifies. */
        const ASN1_BIT_STRING *sig = NULL;
        const X509_ALGOR *calg = NULL;
        X509_REQ_get0_signature(req, &sig, &calg);
        union {
            const X509_ALGOR *c;
            X509_ALGOR *m;
        } u = {.c = calg};
        assert_int_equal(
            X509_ALGOR_set0(u.m, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_NULL, NULL), 1);
    }
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_true(n > 0);
    uint8_t *copy = malloc((size_t)n);
    assert_non_null(copy);
    memcpy(copy, der, (size_t)n);
    OPENSSL_free(der);
    X509_REQ_free(req);
    *len = (size_t)n;
    return copy;
}

static csr_opts_t defaults(void)
{
    csr_opts_t o;
    memset(&o, 0, sizeof(o));
    o.cn = DEVICE_ID;
    return o;
}

/* Parses and expects err, with a reason containing needle. */
static void expect_refused(const uint8_t *der, size_t len, trellis_err_t want, const char *needle)
{
    trellis_csr_t csr;
    trellis_reason_t why;
    memset(&csr, 0xa5, sizeof(csr));
    trellis_err_t err = trellis_csr_parse(der, len, &csr, &why);
    if (err != want || strstr(why.text, needle) == NULL)
        print_message("got %s, reason '%s'\n", trellis_err_name(err), why.text);
    assert_int_equal(err, want);
    assert_non_null(strstr(why.text, needle));
    assert_null(csr.key);
    assert_string_equal(csr.cn, "");
    assert_int_equal(csr.n_ignored_extensions, 0);
}

static void refuse_with_key(EVP_PKEY *key, const csr_opts_t *o, const char *needle)
{
    size_t len = 0;
    uint8_t *der = make_csr(key, key, o, &len);
    expect_refused(der, len, TRELLIS_ERR_BAD_CSR, needle);
    free(der);
}

static void test_good_csr(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    trellis_csr_t csr;
    trellis_reason_t why;
    uint8_t point[65], digest[32];

    assert_int_equal(trellis_csr_parse(der, len, &csr, &why), TRELLIS_OK);
    assert_non_null(csr.key);
    assert_string_equal(csr.cn, DEVICE_ID);
    assert_int_equal(csr.n_ignored_extensions, 0);
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    assert_memory_equal(csr.point, point, 65);
    assert_int_equal(trellis_sha256(der, len, digest), TRELLIS_OK);
    assert_memory_equal(csr.sha256, digest, 32);
    /* The key carried forward is a public key only, equal to the requester's. */
    assert_int_equal(EVP_PKEY_eq(csr.key, key), 1);
    assert_int_equal(trellis_csr_check_subject(&csr, DEVICE_ID, &why), TRELLIS_OK);
    assert_int_equal(trellis_csr_check_subject(&csr, "0123456789abcdef0123456789abcdee", &why),
                     TRELLIS_ERR_BAD_CSR);
    assert_non_null(strstr(why.text, "device id"));
    assert_int_equal(trellis_csr_check_subject(&csr, "", &why), TRELLIS_ERR_BAD_CSR);
    assert_int_equal(trellis_csr_check_subject(NULL, DEVICE_ID, &why), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_csr_check_subject(&csr, NULL, &why), TRELLIS_ERR_INVALID_ARG);
    trellis_csr_cleanup(&csr);
    assert_null(csr.key);
    trellis_csr_cleanup(&csr);
    trellis_csr_cleanup(NULL);
    free(der);
    EVP_PKEY_free(key);
}

static void test_rsa_key(void **state)
{
    (void)state;
    EVP_PKEY *key = keygen("RSA", NULL);
    csr_opts_t o = defaults();
    refuse_with_key(key, &o, "rsaEncryption");
    EVP_PKEY_free(key);
}

static void test_p192_key(void **state)
{
    (void)state;
    EVP_PKEY *key = keygen("EC", "P-192");
    csr_opts_t o = defaults();
    refuse_with_key(key, &o, "prime192v1");
    EVP_PKEY_free(key);
}

static void test_secp256k1_key(void **state)
{
    (void)state;
    EVP_PKEY *key = keygen("EC", "secp256k1");
    csr_opts_t o = defaults();
    refuse_with_key(key, &o, "secp256k1");
    EVP_PKEY_free(key);
}

static void test_p384_key(void **state)
{
    (void)state;
    EVP_PKEY *key = keygen("EC", "P-384");
    csr_opts_t o = defaults();
    o.md = EVP_sha384();
    refuse_with_key(key, &o, "secp384r1");
    EVP_PKEY_free(key);
}

static void test_explicit_params_key(void **state)
{
    (void)state;
    /* A genuine P-256 key whose SubjectPublicKeyInfo spells out the curve: OpenSSL verifies
     * such a CSR without complaint. */
    EVP_PKEY *key = p256();
    assert_int_equal(EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING,
                                                    OSSL_PKEY_EC_ENCODING_EXPLICIT),
                     1);
    csr_opts_t o = defaults();
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    X509_REQ *req = d2i_X509_REQ(NULL, &(const unsigned char *){der}, (long)len);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
    X509_REQ_free(req);
    expect_refused(der, len, TRELLIS_ERR_BAD_CSR, "explicit");
    free(der);
    EVP_PKEY_free(key);
}

static void test_point_encoding(void **state)
{
    (void)state;
    /* A compressed point (RFC 5480 §2.2 leaves it optional; Trellis takes the uncompressed). */
    EVP_PKEY *key = p256();
    assert_int_equal(
        EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_COMPRESSED),
        1);
    csr_opts_t o = defaults();
    refuse_with_key(key, &o, "uncompressed");
    EVP_PKEY_free(key);
    /* A point off the curve: one byte of Y changed in an otherwise good request. */
    key = p256();
    uint8_t point[65];
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    uint8_t *at = NULL;
    for (size_t i = 0; i + 65 <= len && at == NULL; i++) {
        if (memcmp(der + i, point, 65) == 0)
            at = der + i;
    }
    assert_non_null(at);
    at[64] ^= 0x01;
    expect_refused(der, len, TRELLIS_ERR_BAD_CSR, "not on P-256");
    free(der);
    EVP_PKEY_free(key);
}

static void test_ed25519_key(void **state)
{
    (void)state;
    EVP_PKEY *key = keygen("ED25519", NULL);
    csr_opts_t o = defaults();
    refuse_with_key(key, &o, "ED25519");
    EVP_PKEY_free(key);
}

static void test_sha1_signature(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.md = EVP_sha1();
    refuse_with_key(key, &o, "ecdsa-with-SHA1");
    o.md = EVP_sha384();
    refuse_with_key(key, &o, "ecdsa-with-SHA384");
    EVP_PKEY_free(key);
}

static void test_signature_params(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.null_sig_params = 1;
    refuse_with_key(key, &o, "no parameters");
    EVP_PKEY_free(key);
}

static void test_bad_signature(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    /* The last byte is the low byte of s: flipping it keeps the DER intact. */
    der[len - 1] ^= 0x01;
    expect_refused(der, len, TRELLIS_ERR_BAD_CSR, "self-signature");
    free(der);

    /* Signed by another key than the one it carries: no proof of possession. */
    EVP_PKEY *other = p256();
    der = make_csr(key, other, &o, &len);
    expect_refused(der, len, TRELLIS_ERR_BAD_CSR, "self-signature");
    free(der);
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
}

static void test_critical_extension(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.ext_name = "keyUsage";
    o.ext_value = "critical,digitalSignature";
    refuse_with_key(key, &o, "critical extension keyUsage");
    o.ext_name = "subjectAltName";
    o.ext_value = "critical,DNS:device.example";
    refuse_with_key(key, &o, "critical extension subjectAltName");
    /* basicConstraints CA:FALSE is harmless, but critical all the same. */
    o.ext_name = "basicConstraints";
    o.ext_value = "critical,CA:FALSE";
    refuse_with_key(key, &o, "critical");
    EVP_PKEY_free(key);
}

static void test_ca_extension(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.ext_name = "basicConstraints";
    o.ext_value = "CA:TRUE";
    refuse_with_key(key, &o, "cA TRUE");
    o.ext_value = "critical,CA:TRUE,pathlen:0";
    refuse_with_key(key, &o, "critical");
    EVP_PKEY_free(key);
}

static void test_ignored_extensions(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.ext_name = "subjectAltName";
    o.ext_value = "DNS:evil.example,URI:urn:trellis:device:ffffffffffffffffffffffffffffffff";
    o.ext_name2 = "basicConstraints";
    o.ext_value2 = "CA:FALSE";
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    trellis_csr_t csr;
    assert_int_equal(trellis_csr_parse(der, len, &csr, NULL), TRELLIS_OK);
    assert_int_equal(csr.n_ignored_extensions, 2);
    trellis_csr_cleanup(&csr);
    free(der);
    EVP_PKEY_free(key);
}

static void test_repeated_extensions(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.ext_name = "subjectAltName";
    o.ext_value = "DNS:a.example";
    o.ext_name2 = "subjectAltName";
    o.ext_value2 = "DNS:b.example";
    refuse_with_key(key, &o, "requested twice");
    o.ext_name2 = NULL;
    o.ext_req_twice = 1;
    refuse_with_key(key, &o, "more than one extensionRequest");
    EVP_PKEY_free(key);
}

static void test_subject(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.cn = NULL;
    refuse_with_key(key, &o, "no common name");
    o.cn = DEVICE_ID;
    o.cn2 = DEVICE_ID;
    refuse_with_key(key, &o, "more than one common name");
    o.cn2 = NULL;
    o.cn = "tab\there";
    refuse_with_key(key, &o, "printable");
    o.cn = "0123456789012345678901234567890123456789012345678901234567890123"; /* 64: fine */
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    trellis_csr_t csr;
    assert_int_equal(trellis_csr_parse(der, len, &csr, NULL), TRELLIS_OK);
    assert_int_equal(strlen(csr.cn), 64);
    trellis_csr_cleanup(&csr);
    free(der);
    EVP_PKEY_free(key);
}

static void test_version(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    o.version = 1;
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    trellis_csr_t csr;
    trellis_reason_t why;
    trellis_err_t err = trellis_csr_parse(der, len, &csr, &why);
    /* OpenSSL may already refuse the version while decoding; either way it is a bad CSR. */
    assert_int_equal(err, TRELLIS_ERR_BAD_CSR);
    assert_null(csr.key);
    free(der);
    EVP_PKEY_free(key);
}

static void test_framing(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    csr_opts_t o = defaults();
    size_t len = 0;
    uint8_t *der = make_csr(key, key, &o, &len);
    uint8_t *buf = malloc(TRELLIS_CSR_DER_MAX + 2);
    assert_non_null(buf);

    /* Trailing bytes, even a single zero. */
    memcpy(buf, der, len);
    buf[len] = 0x00;
    expect_refused(buf, len + 1, TRELLIS_ERR_BAD_CSR, "follow");
    /* A second CSR after the first. */
    memcpy(buf + len, der, len > 100 ? 100 : len);
    expect_refused(buf, len + (len > 100 ? 100 : len), TRELLIS_ERR_BAD_CSR, "follow");

    /* Every truncation. */
    for (size_t cut = 1; cut < len; cut++)
        expect_refused(der, cut, TRELLIS_ERR_BAD_CSR, "");
    expect_refused(der, 0, TRELLIS_ERR_BAD_CSR, "empty");

    /* A non-minimal outer length (BER, not DER). Trellis CSRs are 128..255 bytes long, so the
     * outer SEQUENCE uses one length byte (30 81 LL); spell it with two (30 82 00 LL). */
    assert_true(len > 130 && len < 256 + 3);
    assert_int_equal(der[0], 0x30);
    assert_int_equal(der[1], 0x81);
    buf[0] = 0x30;
    buf[1] = 0x82;
    buf[2] = 0x00;
    memcpy(buf + 3, der + 2, len - 2);
    expect_refused(buf, len + 1, TRELLIS_ERR_BAD_CSR, "");

    /* Too large, whatever it holds. */
    memset(buf, 0x30, TRELLIS_CSR_DER_MAX + 1);
    expect_refused(buf, TRELLIS_CSR_DER_MAX + 1, TRELLIS_ERR_TOO_LARGE, "larger");
    /* Not DER at all. */
    memset(buf, 0x41, 64);
    expect_refused(buf, 64, TRELLIS_ERR_BAD_CSR, "not a DER");

    trellis_csr_t csr;
    assert_int_equal(trellis_csr_parse(NULL, 0, &csr, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_csr_parse(der, len, NULL, NULL), TRELLIS_ERR_INVALID_ARG);
    free(buf);
    free(der);
    EVP_PKEY_free(key);
}

static void test_build(void **state)
{
    (void)state;
    EVP_PKEY *key = p256();
    uint8_t buf[1024];
    size_t need = 0, len = 0;
    trellis_csr_t csr;

    assert_int_equal(trellis_csr_build(key, DEVICE_ID, NULL, 0, &need),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(need > 100 && need < sizeof(buf));
    assert_int_equal(trellis_csr_build(key, DEVICE_ID, buf, 100, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_true(len > 100);
    assert_int_equal(trellis_csr_build(key, DEVICE_ID, buf, sizeof(buf), &len), TRELLIS_OK);
    /* ECDSA signatures vary in length: the size asked is an upper bound. */
    assert_true(len <= need);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(trellis_csr_build(key, DEVICE_ID, buf, need, &len), TRELLIS_OK);
        assert_true(len <= need);
    }
    assert_int_equal(trellis_csr_parse(buf, len, &csr, NULL), TRELLIS_OK);
    assert_string_equal(csr.cn, DEVICE_ID);
    assert_int_equal(EVP_PKEY_eq(csr.key, key), 1);

    /* A public key cannot sign; other curves and bad names are refused. */
    assert_int_equal(trellis_csr_build(csr.key, DEVICE_ID, buf, sizeof(buf), &len),
                     TRELLIS_ERR_BAD_KEY);
    assert_int_equal(len, 0);
    trellis_csr_cleanup(&csr);
    EVP_PKEY *k1 = keygen("EC", "secp256k1");
    assert_int_equal(trellis_csr_build(k1, DEVICE_ID, buf, sizeof(buf), &len), TRELLIS_ERR_BAD_KEY);
    EVP_PKEY_free(k1);
    assert_int_equal(trellis_csr_build(key, "", buf, sizeof(buf), &len), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_csr_build(key, "new\nline", buf, sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_csr_build(NULL, DEVICE_ID, buf, sizeof(buf), &len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_csr_build(key, DEVICE_ID, buf, sizeof(buf), NULL),
                     TRELLIS_ERR_INVALID_ARG);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_csr),
        cmocka_unit_test(test_rsa_key),
        cmocka_unit_test(test_p192_key),
        cmocka_unit_test(test_secp256k1_key),
        cmocka_unit_test(test_p384_key),
        cmocka_unit_test(test_explicit_params_key),
        cmocka_unit_test(test_point_encoding),
        cmocka_unit_test(test_ed25519_key),
        cmocka_unit_test(test_sha1_signature),
        cmocka_unit_test(test_signature_params),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_critical_extension),
        cmocka_unit_test(test_ca_extension),
        cmocka_unit_test(test_ignored_extensions),
        cmocka_unit_test(test_repeated_extensions),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
