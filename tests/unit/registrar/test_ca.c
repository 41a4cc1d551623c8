/*
 * The device CA and what surrounds it: `init`'s state directory, the certificate profile of
 * design.md §3 checked field by field on an issued certificate, chain verification, CRLs
 * (built, published, numbered), challenges (forged, altered, expired), the challenge secret
 * file and the rate limiter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "rtest_util.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/x509.h"

static int setup(void **state)
{
    rt_env_t *env = calloc(1, sizeof(*env));
    assert_non_null(env);
    rt_env_init(env);
    *state = env;
    return 0;
}

static int teardown(void **state)
{
    rt_env_t *env = *state;
    rt_env_cleanup(env);
    free(env);
    return 0;
}

static tr__reg_ca_t *load_ca(const rt_env_t *env)
{
    tr__reg_ca_t *ca = NULL;
    trellis_reason_t why;
    if (tr__reg_ca_load(env->cfg.ca_key, env->cfg.ca_cert, env->cfg.root_cert, RT_OEM, &ca, &why) !=
        TRELLIS_OK)
        fail_msg("ca: %s", why.text);
    return ca;
}

static mode_t file_mode(const char *dir, const char *name)
{
    char p[RT_PATH];
    struct stat st;
    rt_path(p, sizeof(p), dir, name);
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 0777;
}

static void test_init_dir(void **state)
{
    rt_env_t *env = *state;
    trellis_reason_t why;
    /* Secrets are 0600, the root sits apart, public files are readable. */
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_ROOT_KEY), 0600);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_CA_KEY), 0600);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_TLS_KEY), 0600);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_SECRET_FILE), 0600);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_ROOT_DIR), 0700);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_CA_CHAIN), 0644);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_CRL_FILE), 0644);
    assert_int_equal(file_mode(env->dir, TRELLIS_REGISTRAR_CONF_FILE), 0644);
    /* Nothing is overwritten. */
    trellis_registrar_init_t again = {.dir = env->dir, .oem = RT_OEM};
    assert_int_equal(trellis_registrar_init_dir(&again, &why), TRELLIS_ERR_EXISTS);
    /* Bad names are refused before anything is written. */
    char p[RT_PATH];
    rt_path(p, sizeof(p), env->root, "other");
    trellis_registrar_init_t bad = {.dir = p, .oem = "-acme"};
    assert_int_equal(trellis_registrar_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);
    bad.oem = "acme corp";
    assert_int_equal(trellis_registrar_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);
    bad.oem = RT_OEM;
    bad.hosts = "bad host!";
    assert_int_equal(trellis_registrar_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);
    bad.dir = NULL;
    assert_int_equal(trellis_registrar_init_dir(&bad, &why), TRELLIS_ERR_INVALID_ARG);

    /* registrar.conf loads back with dir and oem set. */
    trellis_registrar_config_t cfg;
    trellis_conf_cli_t cli;
    char conf_flag[RT_PATH + 16];
    rt_path(p, sizeof(p), env->dir, TRELLIS_REGISTRAR_CONF_FILE);
    snprintf(conf_flag, sizeof(conf_flag), "--config=%s", p);
    char *argv[] = {"serve", conf_flag, NULL};
    int argc = 2;
    assert_int_equal(trellis_registrar_config_load(&cfg, &argc, argv, &cli, &why), TRELLIS_OK);
    assert_string_equal(cfg.oem, RT_OEM);
    assert_string_equal(cfg.dir, env->dir);
    assert_string_equal(cfg.reset_policy, "replace");
    assert_int_equal(cfg.cert_validity_ms, 90LL * 86400 * 1000);
    rt_path(p, sizeof(p), env->dir, TRELLIS_REGISTRAR_CA_CHAIN);
    assert_string_equal(cfg.client_ca, p);

    /* The root is self-signed with pathlen 1, the device CA chains to it with pathlen 0. */
    X509 *root = NULL, *ca = NULL;
    assert_int_equal(trellis_x509_load_pem(env->cfg.root_cert, &root), TRELLIS_OK);
    assert_int_equal(trellis_x509_load_pem(env->cfg.ca_cert, &ca), TRELLIS_OK);
    EVP_PKEY *root_pub = X509_get0_pubkey(root);
    assert_int_equal(X509_verify(ca, root_pub), 1);
    assert_int_equal(X509_verify(root, root_pub), 1);
    assert_int_equal(X509_get_pathlen(ca), 0);
    assert_int_equal(X509_get_pathlen(root), 1);
    X509_free(root);
    X509_free(ca);
}

static void test_config_refusals(void **state)
{
    rt_env_t *env = *state;
    trellis_reason_t why;
    trellis_registrar_config_t cfg = env->cfg;
    snprintf(cfg.reset_policy, sizeof(cfg.reset_policy), "maybe");
    assert_int_equal(trellis_registrar_config_resolve(&cfg, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "reset-policy"));
    cfg = env->cfg;
    snprintf(cfg.oem, sizeof(cfg.oem), "a b");
    assert_int_equal(trellis_registrar_config_resolve(&cfg, &why), TRELLIS_ERR_CONFIG);
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(trellis_conf_defaults(trellis_registrar_conf_spec(), &cfg, &why), TRELLIS_OK);
    assert_int_equal(trellis_registrar_config_resolve(&cfg, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "--dir"));
    assert_int_equal(trellis_registrar_reset_policy(&env->cfg), TRELLIS_RESET_REPLACE);
    snprintf(cfg.reset_policy, sizeof(cfg.reset_policy), "deny");
    assert_int_equal(trellis_registrar_reset_policy(&cfg), TRELLIS_RESET_DENY);
    /* A registrar without a verifier refuses to start. */
    cfg = env->cfg;
    cfg.verifier_url[0] = '\0';
    trellis_registrar_t *r = NULL;
    assert_int_equal(trellis_registrar_new(&cfg, &r, &why), TRELLIS_ERR_CONFIG);
    assert_non_null(strstr(why.text, "join"));
    assert_null(r);
    /* Nor without the pinned verdict key. */
    cfg = env->cfg;
    rt_path(cfg.verdict_key, sizeof(cfg.verdict_key), env->root, "absent.pem");
    assert_int_equal(trellis_registrar_new(&cfg, &r, &why), TRELLIS_ERR_CONFIG);
}

static int has_ext_critical(X509 *cert, int nid)
{
    int idx = X509_get_ext_by_NID(cert, nid, -1);
    assert_true(idx >= 0);
    return X509_EXTENSION_get_critical(X509_get_ext(cert, idx));
}

static void test_certificate_profile(void **state)
{
    rt_env_t *env = *state;
    tr__reg_ca_t *ca = load_ca(env);
    rt_device_t d;
    rt_device_init(&d);
    tr__reg_cert_plan_t plan;
    int64_t now = (int64_t)time(NULL);
    X509 *cert = NULL;
    EVP_PKEY *pub = NULL;
    uint8_t point[65];

    assert_int_equal(trellis_p256_public_point(d.op, point), TRELLIS_OK);
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    assert_int_equal(tr__reg_ca_plan(ca, now, 90 * 86400, &plan), TRELLIS_OK);
    assert_int_equal(plan.not_before, now - 60);
    assert_int_equal(plan.not_after, now + 90 * 86400);
    assert_int_equal(strlen(plan.serial_hex), 32);
    assert_int_equal(tr__reg_ca_issue(ca, &plan, d.id, point, &cert), TRELLIS_OK);
    /* Checked as a peer sees it: decoded from its DER. */
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    assert_true(der_len > 0);
    X509_free(cert);
    const unsigned char *dp = der;
    cert = d2i_X509(NULL, &dp, der_len);
    assert_non_null(cert);
    OPENSSL_free(der);

    /* v3, serial = the planned 16 positive bytes. */
    assert_int_equal(X509_get_version(cert), X509_VERSION_3);
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    assert_non_null(bn);
    assert_int_equal(BN_num_bytes(bn), 16);
    assert_false(BN_is_negative(bn));
    uint8_t serial[16];
    assert_int_equal(BN_bn2bin(bn, serial), 16);
    assert_memory_equal(serial, plan.serial, 16);
    BN_free(bn);
    /* Subject O = OEM, CN = device id; nothing else. */
    X509_NAME *subject = X509_get_subject_name(cert);
    assert_int_equal(X509_NAME_entry_count(subject), 2);
    char text[128];
    assert_true(X509_NAME_get_text_by_NID(subject, NID_commonName, text, sizeof(text)) > 0);
    assert_string_equal(text, d.id);
    assert_true(X509_NAME_get_text_by_NID(subject, NID_organizationName, text, sizeof(text)) > 0);
    assert_string_equal(text, RT_OEM);
    /* Validity exactly as planned (notBefore backdated 60 s). */
    int64_t nb = 0, na = 0;
    time_t na_t = 0;
    assert_int_equal(trellis_x509_not_after(cert, &na_t), TRELLIS_OK);
    na = (int64_t)na_t;
    assert_int_equal(na, plan.not_after);
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm), 1);
    nb = (int64_t)timegm(&tm);
    assert_int_equal(nb, now - 60);
    /* Extensions: exactly the profile, with the right criticality. */
    assert_int_equal(X509_get_ext_count(cert), 6);
    assert_true(has_ext_critical(cert, NID_basic_constraints));
    assert_true(has_ext_critical(cert, NID_key_usage));
    assert_false(has_ext_critical(cert, NID_ext_key_usage));
    assert_false(has_ext_critical(cert, NID_subject_key_identifier));
    assert_false(has_ext_critical(cert, NID_authority_key_identifier));
    assert_false(has_ext_critical(cert, NID_subject_alt_name));
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_get_key_usage(cert), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(cert), XKU_SSL_CLIENT);
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    assert_non_null(sans);
    assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, 0);
    assert_int_equal(gn->type, GEN_URI);
    snprintf(text, sizeof(text), "urn:trellis:device:%s", d.id);
    assert_int_equal(ASN1_STRING_length(gn->d.uniformResourceIdentifier), strlen(text));
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), text, strlen(text));
    GENERAL_NAMES_free(sans);
    /* SKI is the SHA-1 of the key (RFC 5280 §4.2.1.2 (1)); AKI is the CA's SKI. */
    unsigned char md[20];
    unsigned int md_len = 0;
    assert_int_equal(X509_pubkey_digest(cert, EVP_sha1(), md, &md_len), 1);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
    assert_non_null(ski);
    assert_int_equal(ASN1_STRING_length(ski), 20);
    assert_memory_equal(ASN1_STRING_get0_data(ski), md, 20);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(cert);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, X509_get0_subject_key_id(tr__reg_ca_cert(ca))), 0);
    /* ECDSA with SHA-256, the key the CSR carried, signed by the device CA. */
    assert_int_equal(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), pub), 1);
    assert_int_equal(X509_verify(cert, X509_get0_pubkey(tr__reg_ca_cert(ca))), 1);

    /* The chain verifies to the root for TLS client authentication. */
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509 *root = NULL;
    assert_int_equal(trellis_x509_load_pem(env->cfg.root_cert, &root), TRELLIS_OK);
    assert_int_equal(X509_STORE_add_cert(store, root), 1);
    sk_X509_push(untrusted, tr__reg_ca_cert(ca));
    assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, untrusted), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    X509_free(root);

    /* The chain handed to the device: leaf then the device CA. */
    char *pem = NULL;
    size_t pem_len = 0;
    assert_int_equal(tr__reg_ca_leaf_chain_pem(ca, cert, &pem, &pem_len), TRELLIS_OK);
    assert_int_equal(strlen(pem), pem_len);
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    X509 *first = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *second = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(first);
    assert_non_null(second);
    assert_int_equal(X509_cmp(first, cert), 0);
    assert_int_equal(X509_cmp(second, tr__reg_ca_cert(ca)), 0);
    X509_free(first);
    X509_free(second);
    BIO_free(bio);
    free(pem);

    /* Refusals: a bad device id, a validity that outlives the CA is cut. */
    X509 *none = NULL;
    assert_int_equal(tr__reg_ca_issue(ca, &plan, "not-an-id", point, &none),
                     TRELLIS_ERR_INVALID_ARG);
    assert_null(none);
    assert_int_equal(tr__reg_ca_plan(ca, now, 100LL * 365 * 86400, &plan), TRELLIS_OK);
    X509 *cacert = tr__reg_ca_cert(ca);
    time_t ca_end = 0;
    assert_int_equal(trellis_x509_not_after(cacert, &ca_end), TRELLIS_OK);
    assert_int_equal(plan.not_after, (int64_t)ca_end);
    /* An expired CA issues nothing. */
    assert_int_equal(tr__reg_ca_plan(ca, (int64_t)ca_end + 10, 86400, &plan),
                     TRELLIS_ERR_UNAVAILABLE);
    X509_free(cert);
    EVP_PKEY_free(pub);
    rt_device_cleanup(&d);
    tr__reg_ca_free(ca);
}

/* The enrollment's one-step issuance signs exactly what tr__reg_ca_issue signs, with a
 * signing context kept across certificates, and hands out leaf then device CA as PEM. */
static void test_issue_chain_pem(void **state)
{
    rt_env_t *env = *state;
    tr__reg_ca_t *ca = load_ca(env);
    rt_device_t d;
    rt_device_init(&d);
    tr__reg_cert_plan_t plan;
    uint8_t point[65];
    EVP_PKEY_CTX *signer = NULL;
    X509 *ref = NULL;

    assert_int_equal(trellis_p256_public_point(d.op, point), TRELLIS_OK);
    assert_int_equal(tr__reg_ca_signer_new(ca, &signer), TRELLIS_OK);
    assert_non_null(signer);
    assert_int_equal(tr__reg_ca_plan(ca, (int64_t)time(NULL), 90 * 86400, &plan), TRELLIS_OK);
    assert_int_equal(tr__reg_ca_issue(ca, &plan, d.id, point, &ref), TRELLIS_OK);
    unsigned char *ref_tbs = NULL;
    int ref_len = i2d_re_X509_tbs(ref, &ref_tbs);
    assert_true(ref_len > 0);
    for (int round = 0; round < 3; round++) {
        char *pem = NULL;
        size_t pem_len = 0;
        /* Rounds 0 and 1 reuse the signer; round 2 lets the call make its own. */
        assert_int_equal(tr__reg_ca_issue_chain_pem(ca, round < 2 ? signer : NULL, &plan, d.id,
                                                    point, &pem, &pem_len),
                         TRELLIS_OK);
        assert_int_equal(strlen(pem), pem_len);
        assert_true(strncmp(pem, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
        BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
        X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        X509 *issuer = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        assert_non_null(leaf);
        assert_non_null(issuer);
        assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
        ERR_clear_error();
        assert_int_equal(X509_cmp(issuer, tr__reg_ca_cert(ca)), 0);
        /* The same TBSCertificate, byte for byte, and a valid ECDSA-SHA256 signature on it. */
        unsigned char *tbs = NULL;
        int tbs_len = i2d_re_X509_tbs(leaf, &tbs);
        assert_int_equal(tbs_len, ref_len);
        assert_memory_equal(tbs, ref_tbs, (size_t)ref_len);
        OPENSSL_free(tbs);
        assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
        assert_int_equal(X509_verify(leaf, X509_get0_pubkey(tr__reg_ca_cert(ca))), 1);
        /* The PEM is canonical: what PEM_write_bio_X509 writes for the same certificate. */
        char *again = NULL;
        size_t again_len = 0;
        assert_int_equal(tr__reg_ca_leaf_chain_pem(ca, leaf, &again, &again_len), TRELLIS_OK);
        assert_int_equal(again_len, pem_len);
        assert_memory_equal(again, pem, pem_len);
        free(again);
        X509_free(leaf);
        X509_free(issuer);
        BIO_free(bio);
        free(pem);
    }
    /* Refusals leave nothing behind. */
    char stale = 'x';
    char *none = &stale; /* set to NULL on refusal */
    size_t none_len = 7;
    assert_int_equal(
        tr__reg_ca_issue_chain_pem(ca, signer, &plan, "not-an-id", point, &none, &none_len),
        TRELLIS_ERR_INVALID_ARG);
    assert_null(none);
    assert_int_equal(none_len, 0);
    uint8_t compressed[65];
    memcpy(compressed, point, sizeof(compressed));
    compressed[0] = 0x02;
    assert_int_equal(
        tr__reg_ca_issue_chain_pem(ca, signer, &plan, d.id, compressed, &none, &none_len),
        TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_ca_issue_chain_pem(ca, signer, &plan, d.id, point, NULL, &none_len),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_ca_issue_chain_pem(NULL, signer, &plan, d.id, point, &none, &none_len),
                     TRELLIS_ERR_INVALID_ARG);
    EVP_PKEY_CTX *no = NULL;
    assert_int_equal(tr__reg_ca_signer_new(NULL, &no), TRELLIS_ERR_INVALID_ARG);
    assert_null(no);
    assert_int_equal(tr__reg_ca_signer_new(ca, NULL), TRELLIS_ERR_INVALID_ARG);
    OPENSSL_free(ref_tbs);
    X509_free(ref);
    EVP_PKEY_CTX_free(signer);
    rt_device_cleanup(&d);
    tr__reg_ca_free(ca);
}

static void test_serials_unique(void **state)
{
    rt_env_t *env = *state;
    tr__reg_ca_t *ca = load_ca(env);
    enum { N = 2000 };
    char(*seen)[33] = calloc(N, 33);
    assert_non_null(seen);
    for (int i = 0; i < N; i++) {
        tr__reg_cert_plan_t plan;
        assert_int_equal(tr__reg_ca_plan(ca, (int64_t)time(NULL), 3600, &plan), TRELLIS_OK);
        /* Positive and exactly 16 bytes: top bit clear, next bit set. */
        assert_int_equal(plan.serial[0] & 0xc0, 0x40);
        memcpy(seen[i], plan.serial_hex, 33);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[j], seen[i]);
    }
    free(seen);
    tr__reg_ca_free(ca);
}

static void test_ca_load_refusals(void **state)
{
    rt_env_t *env = *state;
    tr__reg_ca_t *ca = NULL;
    trellis_reason_t why;
    char p[RT_PATH];
    /* The root's key is not the device CA's. */
    rt_path(p, sizeof(p), env->dir, TRELLIS_REGISTRAR_ROOT_KEY);
    assert_int_equal(tr__reg_ca_load(p, env->cfg.ca_cert, env->cfg.root_cert, RT_OEM, &ca, &why),
                     TRELLIS_ERR_CONFIG);
    assert_null(ca);
    /* A device CA not signed by the given root. */
    assert_int_equal(
        tr__reg_ca_load(env->cfg.ca_key, env->cfg.ca_cert, env->pki.ca_cert, RT_OEM, &ca, &why),
        TRELLIS_ERR_CONFIG);
    /* A leaf where a CA belongs. */
    assert_int_equal(
        tr__reg_ca_load(env->cfg.tls_key, env->cfg.tls_cert, env->cfg.root_cert, RT_OEM, &ca, &why),
        TRELLIS_ERR_CONFIG);
    assert_int_equal(tr__reg_ca_load(env->cfg.ca_key, env->cfg.ca_cert, env->cfg.root_cert,
                                     "bad name", &ca, &why),
                     TRELLIS_ERR_CONFIG);
    rt_path(p, sizeof(p), env->root, "absent.pem");
    assert_int_equal(tr__reg_ca_load(env->cfg.ca_key, p, env->cfg.root_cert, RT_OEM, &ca, &why),
                     TRELLIS_ERR_CONFIG);
}

static X509_CRL *read_crl(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    assert_non_null(crl);
    return crl;
}

static void test_crl(void **state)
{
    rt_env_t *env = *state;
    tr__reg_ca_t *ca = load_ca(env);
    trellis_rstore_t *s = rt_env_store(env);
    trellis_reason_t why;
    uint64_t number = 0;
    uint8_t *der = NULL;
    size_t len = 0;
    char serials[2][33];

    /* Two enrolled devices, one revoked for key compromise, one renewed (superseded). */
    for (int i = 0; i < 2; i++) {
        trellis_rstore_op_t op;
        memset(&op, 0, sizeof(op));
        op.type = TRELLIS_RSTORE_OP_RECORD;
        op.record.kind = TRELLIS_RSTORE_ENROLL;
        snprintf(op.record.device_id, 33, "%032x", i + 1);
        snprintf(op.record.serial, 33, "4%031x", i + 1);
        memcpy(serials[i], op.record.serial, 33);
        op.record.not_before = (int64_t)time(NULL) - 60;
        op.record.not_after = (int64_t)time(NULL) + 3600;
        memset(op.record.challenge_id, i + 1, 32);
        op.record.verdict = "";
        assert_int_equal(s->apply(s->ctx, &op, 1), TRELLIS_OK);
        assert_int_equal(op.err, TRELLIS_OK);
    }
    assert_int_equal(s->device_revoke(s->ctx, "00000000000000000000000000000001",
                                      TRELLIS_CRL_REASON_KEY_COMPROMISE, "lost", "admin", NULL),
                     TRELLIS_OK);
    assert_int_equal(s->device_revoke(s->ctx, "00000000000000000000000000000002",
                                      TRELLIS_CRL_REASON_UNSPECIFIED, "gone", "admin", NULL),
                     TRELLIS_OK);
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(
        tr__reg_crl_publish(s, ca, now, 7 * 86400, env->cfg.crl_file, &number, &der, &len, &why),
        TRELLIS_OK);
    /* init published CRL 1. */
    assert_int_equal(number, 2);
    X509_CRL *crl = read_crl(der, len);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(tr__reg_ca_cert(ca))), 1);
    assert_int_equal(
        X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(tr__reg_ca_cert(ca))), 0);
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(num);
    assert_int_equal(ASN1_INTEGER_get(num), 2);
    ASN1_INTEGER_free(num);
    STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
    assert_int_equal(sk_X509_REVOKED_num(revoked), 2);
    for (int i = 0; i < 2; i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(revoked, i);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(r), NULL);
        char *hex = BN_bn2hex(bn);
        for (char *c = hex; *c != '\0'; c++)
            *c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
        assert_string_equal(hex, serials[i]);
        ASN1_ENUMERATED *code = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
        if (i == 0) {
            assert_non_null(code);
            assert_int_equal(ASN1_ENUMERATED_get(code), TRELLIS_CRL_REASON_KEY_COMPROMISE);
        } else {
            assert_null(code); /* unspecified is left out */
        }
        ASN1_ENUMERATED_free(code);
        OPENSSL_free(hex);
        BN_free(bn);
    }
    X509_CRL_free(crl);
    free(der);
    /* The file holds the same CRL, in PEM. */
    FILE *f = fopen(env->cfg.crl_file, "r");
    assert_non_null(f);
    crl = PEM_read_X509_CRL(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(crl);
    num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_int_equal(ASN1_INTEGER_get(num), 2);
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    /* The registry keeps it too. */
    uint64_t stored = 0;
    assert_int_equal(s->crl_get(s->ctx, &stored, NULL, NULL, 0, &len),
                     TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(stored, 2);
    /* A publication to a directory that does not exist fails, after the store committed. */
    char bad[RT_PATH];
    rt_path(bad, sizeof(bad), env->root, "no/such/crl.pem");
    assert_int_not_equal(tr__reg_crl_publish(s, ca, now, 86400, bad, &number, NULL, NULL, &why),
                         TRELLIS_OK);
    assert_int_equal(tr__reg_crl_publish(s, ca, now, 0, NULL, &number, NULL, NULL, &why),
                     TRELLIS_ERR_INVALID_ARG);
    trellis_rstore_close(s);
    tr__reg_ca_free(ca);

    /* The public API publishes from the configuration. */
    assert_int_equal(trellis_registrar_publish_crl(&env->cfg, &number, &why), TRELLIS_OK);
    assert_int_equal(number, 3);
}

static void test_challenges(void **state)
{
    rt_env_t *env = *state;
    uint8_t c[TR__CHALLENGE_LEN], c2[TR__CHALLENGE_LEN], id[32], id2[32];
    int64_t now = (int64_t)time(NULL), expires = 0;
    trellis_reason_t why;

    assert_int_equal(tr__reg_challenge_mint(env->secret, now, 300, c), TRELLIS_OK);
    assert_int_equal(
        tr__reg_challenge_check(env->secret, c, sizeof(c), now, 300, &expires, id, &why),
        TRELLIS_OK);
    assert_int_equal(expires, now + 300);
    uint8_t digest[32];
    assert_int_equal(trellis_sha256(c, sizeof(c), digest), TRELLIS_OK);
    assert_memory_equal(id, digest, 32);
    /* Two challenges differ. */
    assert_int_equal(tr__reg_challenge_mint(env->secret, now, 300, c2), TRELLIS_OK);
    assert_memory_not_equal(c, c2, sizeof(c));
    assert_int_equal(
        tr__reg_challenge_check(env->secret, c2, sizeof(c2), now, 300, NULL, id2, &why),
        TRELLIS_OK);
    assert_memory_not_equal(id, id2, 32);
    /* Any altered byte, including the expiry, breaks the MAC. */
    for (size_t i = 0; i < sizeof(c); i++) {
        memcpy(c2, c, sizeof(c));
        c2[i] ^= 0x01;
        assert_int_equal(
            tr__reg_challenge_check(env->secret, c2, sizeof(c2), now, 300, NULL, id, &why),
            TRELLIS_ERR_BAD_CHALLENGE);
    }
    /* Another secret (another registrar). */
    uint8_t other[32];
    memset(other, 0x5a, sizeof(other));
    assert_int_equal(tr__reg_challenge_check(other, c, sizeof(c), now, 300, NULL, id, &why),
                     TRELLIS_ERR_BAD_CHALLENGE);
    /* Expired, and expiring later than this registrar would allow. */
    assert_int_equal(
        tr__reg_challenge_check(env->secret, c, sizeof(c), now + 301, 300, NULL, id, &why),
        TRELLIS_ERR_BAD_CHALLENGE);
    assert_non_null(strstr(why.text, "expired"));
    assert_int_equal(tr__reg_challenge_mint(env->secret, now, 3000, c2), TRELLIS_OK);
    assert_int_equal(tr__reg_challenge_check(env->secret, c2, sizeof(c2), now, 300, NULL, id, &why),
                     TRELLIS_ERR_BAD_CHALLENGE);
    /* Wrong lengths and versions. */
    assert_int_equal(
        tr__reg_challenge_check(env->secret, c, sizeof(c) - 1, now, 300, NULL, id, &why),
        TRELLIS_ERR_BAD_CHALLENGE);
    assert_int_equal(tr__reg_challenge_check(env->secret, NULL, 0, now, 300, NULL, id, &why),
                     TRELLIS_ERR_BAD_CHALLENGE);
    assert_int_equal(tr__reg_challenge_mint(env->secret, now, 0, c2), TRELLIS_ERR_INVALID_ARG);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_secret_file(void **state)
{
    rt_env_t *env = *state;
    uint8_t secret[32];
    trellis_reason_t why;
    char p[RT_PATH];
    rt_path(p, sizeof(p), env->root, "secret");
    write_text(p, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    assert_int_equal(tr__reg_challenge_secret_load(p, secret, &why), TRELLIS_OK);
    assert_int_equal(secret[0], 0x00);
    assert_int_equal(secret[31], 0xff);
    write_text(p, "0011");
    assert_int_equal(tr__reg_challenge_secret_load(p, secret, &why), TRELLIS_ERR_CONFIG);
    write_text(p, "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_int_equal(tr__reg_challenge_secret_load(p, secret, &why), TRELLIS_ERR_CONFIG);
    rt_path(p, sizeof(p), env->root, "absent");
    assert_int_equal(tr__reg_challenge_secret_load(p, secret, &why), TRELLIS_ERR_CONFIG);
    static const uint8_t zero[32];
    assert_memory_equal(secret, zero, 32);
}

static void test_ratelimit(void **state)
{
    (void)state;
    tr__reg_ratelimit_t *rl = NULL;
    uint64_t t = 1000000;
    assert_int_equal(tr__reg_ratelimit_new(2.0, 3.0, 1024, &rl), TRELLIS_OK);
    /* A burst of 3, then refusals with a wait of one second (2 tokens a second). */
    for (int i = 0; i < 3; i++)
        assert_int_equal(tr__reg_ratelimit_take(rl, "192.0.2.1:1000", t), 0);
    assert_int_equal(tr__reg_ratelimit_take(rl, "192.0.2.1:1001", t), 1);
    /* The port does not make another client; another address does. */
    assert_int_equal(tr__reg_ratelimit_take(rl, "192.0.2.2:1000", t), 0);
    assert_int_equal(tr__reg_ratelimit_take(rl, "[2001:db8::1]:443", t), 0);
    /* Tokens come back with time. */
    t += 500000;
    assert_int_equal(tr__reg_ratelimit_take(rl, "192.0.2.1:1002", t), 0);
    assert_int_equal(tr__reg_ratelimit_take(rl, "192.0.2.1:1002", t), 1);
    tr__reg_ratelimit_free(rl);
    /* A slow rate gives a longer wait. */
    assert_int_equal(tr__reg_ratelimit_new(0.1, 1.0, 1024, &rl), TRELLIS_OK);
    assert_int_equal(tr__reg_ratelimit_take(rl, "10.0.0.1:1", t), 0);
    assert_int_equal(tr__reg_ratelimit_take(rl, "10.0.0.1:1", t), 10);
    /* Many clients never grow the table; each new one starts with a full bucket. */
    for (int i = 0; i < 5000; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "10.1.%d.%d:9", i / 256, i % 256);
        assert_int_equal(tr__reg_ratelimit_take(rl, addr, t + (uint64_t)i), 0);
    }
    tr__reg_ratelimit_free(rl);
    assert_int_equal(tr__reg_ratelimit_new(0, 1, 1024, &rl), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_ratelimit_new(1, 1, 16, &rl), TRELLIS_ERR_INVALID_ARG);
    tr__reg_ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_issue_chain_pem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serials_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_load_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_challenges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
        cmocka_unit_test(test_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
