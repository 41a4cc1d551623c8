#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "test_dirs.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/x509.h"

typedef struct {
    char dir[256];
    EVP_PKEY *ca_key;
    X509 *ca;
} fixture_t;

static X509 *issue_ca(EVP_PKEY *key, const char *cn, unsigned days)
{
    trellis_x509_profile_t p = {.kind = TRELLIS_X509_CA,
                                .common_name = cn,
                                .organization = "Trellis",
                                .days = days,
                                .path_len = 0};
    X509 *cert = NULL;
    trellis_reason_t why;
    assert_int_equal(trellis_x509_issue(&p, key, NULL, key, &cert, &why), TRELLIS_OK);
    return cert;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "x509");
    assert_int_equal(trellis_p256_generate(&f->ca_key), TRELLIS_OK);
    f->ca = issue_ca(f->ca_key, "Test CA", 3650);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_test_rmtree(f->dir);
    X509_free(f->ca);
    EVP_PKEY_free(f->ca_key);
    free(f);
    return 0;
}

static X509 *issue_leaf(fixture_t *f, trellis_x509_kind_t kind, const char *cn, EVP_PKEY **key_out)
{
    static const char *const dns[] = {"localhost", "verifier.example"};
    static const char *const ips[] = {"127.0.0.1", "::1"};
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    trellis_reason_t why;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    trellis_x509_profile_t p = {.kind = kind, .common_name = cn, .days = 30};
    if (kind == TRELLIS_X509_SERVER) {
        p.dns_names = dns;
        p.n_dns = 2;
        p.ip_addrs = ips;
        p.n_ip = 2;
    }
    assert_int_equal(trellis_x509_issue(&p, key, f->ca, f->ca_key, &cert, &why), TRELLIS_OK);
    if (key_out != NULL)
        *key_out = key;
    else
        EVP_PKEY_free(key);
    return cert;
}

/* Verifies cert against the test CA for an SSL purpose, as a TLS peer would. */
static int chain_ok(fixture_t *f, X509 *cert, const char *purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(store, f->ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
    X509_STORE_CTX_set_default(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok == 1;
}

static int has_critical(X509 *cert, int nid)
{
    int idx = X509_get_ext_by_NID(cert, nid, -1);
    return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx));
}

static void test_ca_profile(void **state)
{
    fixture_t *f = *state;
    X509 *ca = f->ca;
    assert_int_equal(X509_get_version(ca), X509_VERSION_3);
    /* 16-byte positive serial. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(ca);
    assert_int_equal(ASN1_STRING_length(serial), 16);
    assert_int_equal(ASN1_STRING_type(serial), V_ASN1_INTEGER);
    assert_true(X509_check_ca(ca) >= 1);
    assert_true(has_critical(ca, NID_basic_constraints));
    assert_true(has_critical(ca, NID_key_usage));
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca);
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(ca);
    assert_non_null(ski);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(ski, aki), 0);
    assert_int_equal(X509_verify(ca, f->ca_key), 1);
    assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
    char cn[80];
    size_t n = 0;
    assert_int_equal(trellis_x509_subject_cn(ca, cn, sizeof(cn), &n), TRELLIS_OK);
    assert_string_equal(cn, "Test CA");
    assert_int_equal(n, 7);
    /* notBefore is backdated a little, notAfter about 3650 days ahead. */
    time_t na = 0;
    assert_int_equal(trellis_x509_not_after(ca, &na), TRELLIS_OK);
    long long ahead = (long long)(na - time(NULL));
    assert_true(ahead > 3649LL * 86400 && ahead <= 3650LL * 86400);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(ca)) < 0);
}

static void test_server_cert(void **state)
{
    fixture_t *f = *state;
    X509 *cert = issue_leaf(f, TRELLIS_X509_SERVER, "verifier", NULL);
    assert_true(chain_ok(f, cert, "ssl_server"));
    /* serverAuth only: the same certificate cannot authenticate a client. */
    assert_false(chain_ok(f, cert, "ssl_client"));
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "verifier.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "other.example", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "10.0.0.1", 0), 0);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_true(has_critical(cert, NID_basic_constraints));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert), X509_get0_subject_key_id(f->ca)),
        0);
    X509_free(cert);
}

static void test_client_cert(void **state)
{
    fixture_t *f = *state;
    X509 *cert = issue_leaf(f, TRELLIS_X509_CLIENT, "acme", NULL);
    assert_true(chain_ok(f, cert, "ssl_client"));
    assert_false(chain_ok(f, cert, "ssl_server"));
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    assert_false(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    char cn[80];
    size_t n = 0;
    assert_int_equal(trellis_x509_subject_cn(cert, cn, sizeof(cn), &n), TRELLIS_OK);
    assert_string_equal(cn, "acme");
    /* Too small a buffer says how much is needed. */
    assert_int_equal(trellis_x509_subject_cn(cert, cn, 4, &n), TRELLIS_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 4);
    /* A certificate from another CA does not chain. */
    EVP_PKEY *other_key = NULL;
    assert_int_equal(trellis_p256_generate(&other_key), TRELLIS_OK);
    X509 *other_ca = issue_ca(other_key, "Other CA", 10);
    X509 *foreign = NULL;
    trellis_x509_profile_t p = {.kind = TRELLIS_X509_CLIENT, .common_name = "acme", .days = 5};
    assert_int_equal(trellis_x509_issue(&p, other_key, other_ca, other_key, &foreign, NULL),
                     TRELLIS_OK);
    assert_false(chain_ok(f, foreign, "ssl_client"));
    X509_free(foreign);
    X509_free(other_ca);
    EVP_PKEY_free(other_key);
    X509_free(cert);
}

static void test_validity_capped_by_issuer(void **state)
{
    fixture_t *f = *state;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    assert_int_equal(trellis_p256_generate(&ca_key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    X509 *short_ca = issue_ca(ca_key, "Short CA", 2);
    X509 *cert = NULL;
    trellis_x509_profile_t p = {.kind = TRELLIS_X509_CLIENT, .common_name = "x", .days = 365};
    assert_int_equal(trellis_x509_issue(&p, key, short_ca, ca_key, &cert, NULL), TRELLIS_OK);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(cert), X509_get0_notAfter(short_ca)), 0);
    (void)f;
    X509_free(cert);
    X509_free(short_ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

static void expect_refused(fixture_t *f, const trellis_x509_profile_t *p, const char *needle)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    trellis_reason_t why;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_x509_issue(p, key, f->ca, f->ca_key, &cert, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_null(cert);
    if (strstr(why.text, needle) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", why.text, needle);
    EVP_PKEY_free(key);
}

static void test_bad_profiles(void **state)
{
    fixture_t *f = *state;
    static const char *const bad_ip[] = {"1.2.3"};
    static const char *const bad_dns[] = {"a..b"};
    static const char *const space_dns[] = {"a b"};
    static const char *const comma_dns[] = {"a,DNS:evil"};
    static const char *const bad_uri[] = {"no-scheme"};
    static const char *const ok_uri[] = {"urn:trellis:device:00"};
    static const char *const many[17] = {"a", "b", "c", "d", "e", "f", "g", "h", "i",
                                         "j", "k", "l", "m", "n", "o", "p", "q"};
    char long_cn[80];
    memset(long_cn, 'a', 65);
    long_cn[65] = '\0';

    trellis_x509_profile_t p = {.kind = TRELLIS_X509_CLIENT, .common_name = "x", .days = 1};
    p.common_name = "";
    expect_refused(f, &p, "common name");
    p.common_name = long_cn;
    expect_refused(f, &p, "common name");
    p.common_name = "bad\nname";
    expect_refused(f, &p, "common name");
    p.common_name = "x";
    p.organization = "caf\xc3\xa9";
    expect_refused(f, &p, "organization");
    p.organization = NULL;
    p.days = 0;
    expect_refused(f, &p, "validity");
    p.days = TRELLIS_X509_DAYS_MAX + 1;
    expect_refused(f, &p, "validity");
    p.days = 1;
    p.kind = (trellis_x509_kind_t)9;
    expect_refused(f, &p, "kind");
    p.kind = TRELLIS_X509_SERVER;
    expect_refused(f, &p, "needs a DNS name");
    p.ip_addrs = bad_ip;
    p.n_ip = 1;
    expect_refused(f, &p, "IP address 1");
    p.ip_addrs = NULL;
    p.n_ip = 0;
    p.dns_names = bad_dns;
    p.n_dns = 1;
    expect_refused(f, &p, "DNS name 1");
    p.dns_names = space_dns;
    expect_refused(f, &p, "DNS name 1");
    p.dns_names = comma_dns;
    expect_refused(f, &p, "DNS name 1");
    p.dns_names = many;
    p.n_dns = 17;
    expect_refused(f, &p, "more than 16");
    p.kind = TRELLIS_X509_CLIENT;
    p.dns_names = NULL;
    p.n_dns = 0;
    p.uris = bad_uri;
    p.n_uri = 1;
    expect_refused(f, &p, "URI 1");
    p.uris = NULL;
    expect_refused(f, &p, "without array");
    p.uris = ok_uri;
    /* The good URI goes through and lands in the SAN. */
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_x509_issue(&p, key, f->ca, f->ca_key, &cert, NULL), TRELLIS_OK);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    assert_non_null(names);
    assert_int_equal(sk_GENERAL_NAME_num(names), 1);
    GENERAL_NAMES_free(names);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static void test_bad_issuers(void **state)
{
    fixture_t *f = *state;
    EVP_PKEY *leaf_key = NULL, *key = NULL, *other = NULL;
    X509 *cert = NULL;
    trellis_reason_t why;
    trellis_x509_profile_t p = {.kind = TRELLIS_X509_CLIENT, .common_name = "x", .days = 1};
    X509 *leaf = issue_leaf(f, TRELLIS_X509_CLIENT, "leaf", &leaf_key);
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);

    /* A leaf cannot issue. */
    assert_int_equal(trellis_x509_issue(&p, key, leaf, leaf_key, &cert, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_non_null(strstr(why.text, "not a CA"));
    /* The issuer key must match the issuer certificate. */
    assert_int_equal(trellis_x509_issue(&p, key, f->ca, other, &cert, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_non_null(strstr(why.text, "does not match"));
    /* Self-signed needs the subject's own key. */
    assert_int_equal(trellis_x509_issue(&p, key, NULL, other, &cert, &why),
                     TRELLIS_ERR_INVALID_ARG);
    assert_null(cert);
    /* NULL arguments. */
    assert_int_equal(trellis_x509_issue(NULL, key, f->ca, f->ca_key, &cert, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_issue(&p, NULL, f->ca, f->ca_key, &cert, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_issue(&p, key, f->ca, NULL, &cert, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_issue(&p, key, f->ca, f->ca_key, NULL, NULL),
                     TRELLIS_ERR_INVALID_ARG);
    X509_free(leaf);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_chain_and_bundle_files(void **state)
{
    fixture_t *f = *state;
    char path[512], bundle[512];
    EVP_PKEY *key = NULL, *loaded_key = NULL;
    X509 *leaf = issue_leaf(f, TRELLIS_X509_CLIENT, "acme", &key);
    X509 *chain[2] = {leaf, f->ca};
    X509 *got[TRELLIS_X509_CHAIN_MAX];
    size_t n = 0;
    struct stat st;

    snprintf(path, sizeof(path), "%s/chain.pem", f->dir);
    assert_int_equal(trellis_x509_save_chain_pem(path, chain, 2), TRELLIS_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(trellis_x509_load_chain_pem(path, got, TRELLIS_X509_CHAIN_MAX, &n),
                     TRELLIS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(X509_cmp(got[0], leaf), 0);
    assert_int_equal(X509_cmp(got[1], f->ca), 0);
    X509_free(got[0]);
    X509_free(got[1]);

    /* A max smaller than the file's chain is refused, leaving nothing behind. */
    assert_int_equal(trellis_x509_load_chain_pem(path, got, 1, &n), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(n, 0);
    assert_null(got[0]);

    snprintf(bundle, sizeof(bundle), "%s/bundle.pem", f->dir);
    assert_int_equal(trellis_x509_save_bundle_pem(bundle, key, chain, 2), TRELLIS_OK);
    assert_int_equal(stat(bundle, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* The bundle is both a key file and a chain file. */
    assert_int_equal(trellis_p256_load_private_pem(bundle, &loaded_key), TRELLIS_OK);
    assert_int_equal(EVP_PKEY_eq(loaded_key, key), 1);
    X509 *first = NULL;
    assert_int_equal(trellis_x509_load_pem(bundle, &first), TRELLIS_OK);
    assert_int_equal(X509_cmp(first, leaf), 0);
    assert_int_equal(X509_check_private_key(first, loaded_key), 1);
    X509_free(first);

    /* Missing, empty, garbage and broken files. */
    snprintf(path, sizeof(path), "%s/absent.pem", f->dir);
    assert_int_equal(trellis_x509_load_pem(path, &first), TRELLIS_ERR_NOT_FOUND);
    assert_null(first);
    snprintf(path, sizeof(path), "%s/garbage.pem", f->dir);
    write_file(path, "hello\n");
    assert_int_equal(trellis_x509_load_pem(path, &first), TRELLIS_ERR_PARSE);
    write_file(path, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    assert_int_equal(trellis_x509_load_pem(path, &first), TRELLIS_ERR_PARSE);
    assert_null(first);
    assert_int_equal(trellis_x509_save_chain_pem(path, chain, 0), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_save_chain_pem(path, chain, TRELLIS_X509_CHAIN_MAX + 1),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_save_bundle_pem(path, NULL, chain, 1), TRELLIS_ERR_INVALID_ARG);

    /* More than TRELLIS_X509_CHAIN_MAX certificates in one file. */
    X509 *nine[TRELLIS_X509_CHAIN_MAX];
    for (size_t i = 0; i < TRELLIS_X509_CHAIN_MAX; i++)
        nine[i] = f->ca;
    snprintf(path, sizeof(path), "%s/eight.pem", f->dir);
    assert_int_equal(trellis_x509_save_chain_pem(path, nine, TRELLIS_X509_CHAIN_MAX), TRELLIS_OK);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    assert_int_equal(PEM_write_X509(fp, leaf), 1);
    fclose(fp);
    assert_int_equal(trellis_x509_load_chain_pem(path, got, TRELLIS_X509_CHAIN_MAX, &n),
                     TRELLIS_ERR_TOO_LARGE);

    EVP_PKEY_free(loaded_key);
    EVP_PKEY_free(key);
    X509_free(leaf);
}

/* Builds a certificate by hand with an arbitrary subject, for the CN edge cases. */
static X509 *cert_with_subject(fixture_t *f, X509_NAME *name)
{
    X509 *cert = X509_new();
    assert_non_null(cert);
    assert_int_equal(X509_set_version(cert, X509_VERSION_3), 1);
    assert_int_equal(X509_set_subject_name(cert, name), 1);
    assert_int_equal(X509_set_issuer_name(cert, X509_get_subject_name(f->ca)), 1);
    assert_int_equal(X509_set_pubkey(cert, f->ca_key), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    assert_true(X509_sign(cert, f->ca_key, EVP_sha256()) > 0);
    return cert;
}

static void test_subject_cn_refuses_ambiguity(void **state)
{
    fixture_t *f = *state;
    char cn[80];
    size_t n = 99;
    X509_NAME *name = X509_NAME_new();

    /* No CN at all. */
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"acme", -1, -1, 0);
    X509 *cert = cert_with_subject(f, name);
    assert_int_equal(trellis_x509_subject_cn(cert, cn, sizeof(cn), &n), TRELLIS_ERR_PARSE);
    assert_int_equal(n, 0);
    assert_string_equal(cn, "");
    X509_free(cert);

    /* Two CNs: which one is the tenant? Refused. */
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"acme", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"other", -1, -1, 0);
    cert = cert_with_subject(f, name);
    assert_int_equal(trellis_x509_subject_cn(cert, cn, sizeof(cn), &n), TRELLIS_ERR_PARSE);
    X509_free(cert);
    X509_NAME_free(name);

    /* An embedded NUL ("acme\0evil") would truncate a C string compare. */
    name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", V_ASN1_UTF8STRING, (const unsigned char *)"acme\0evil",
                               9, -1, 0);
    cert = cert_with_subject(f, name);
    assert_int_equal(trellis_x509_subject_cn(cert, cn, sizeof(cn), &n), TRELLIS_ERR_PARSE);
    X509_free(cert);
    X509_NAME_free(name);

    assert_int_equal(trellis_x509_subject_cn(NULL, cn, sizeof(cn), &n), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_x509_subject_cn(f->ca, cn, sizeof(cn), NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_fingerprint(void **state)
{
    fixture_t *f = *state;
    uint8_t fp[32], want[32];
    unsigned char *der = NULL;
    int len = i2d_X509(f->ca, &der);
    assert_true(len > 0);
    assert_int_equal(trellis_sha256(der, (size_t)len, want), TRELLIS_OK);
    OPENSSL_free(der);
    assert_int_equal(trellis_x509_fingerprint(f->ca, fp), TRELLIS_OK);
    assert_memory_equal(fp, want, 32);
    assert_int_equal(trellis_x509_fingerprint(NULL, fp), TRELLIS_ERR_INVALID_ARG);
    time_t t = 1;
    assert_int_equal(trellis_x509_not_after(NULL, &t), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(t, 0);
}

/* --hosts lists: names and addresses apart, bad entries and empty lists refused with a reason. */
static void test_split_hosts(void **state)
{
    (void)state;
    const char *dns[TRELLIS_X509_SANS_MAX], *ips[TRELLIS_X509_SANS_MAX];
    size_t n_dns = 0, n_ip = 0;
    trellis_reason_t why;
    char good[] = "localhost,,127.0.0.1,::1,registrar.example.com,";
    assert_int_equal(trellis_x509_split_hosts(good, dns, &n_dns, ips, &n_ip, 4, &why), TRELLIS_OK);
    assert_int_equal(n_dns, 2);
    assert_int_equal(n_ip, 2);
    assert_string_equal(dns[0], "localhost");
    assert_string_equal(dns[1], "registrar.example.com");
    assert_string_equal(ips[0], "127.0.0.1");
    assert_string_equal(ips[1], "::1");

    static const struct {
        const char *list;
        const char *reason;
    } bad[] = {
        {"under_score.example", "'under_score.example' is neither a host name nor an IP address"},
        {"-lead.example", "neither a host name nor an IP address"},
        {"999.1.1.1", "'999.1.1.1' is neither a host name nor an IP address"},
        {"fe80::zz", "neither a host name nor an IP address"},
        {"a,b,c,d,e", "--hosts: more than 4 names"},
        {",,", "--hosts: no name given"},
        {"", "--hosts: no name given"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char list[64];
        snprintf(list, sizeof(list), "%s", bad[i].list);
        assert_int_equal(trellis_x509_split_hosts(list, dns, &n_dns, ips, &n_ip, 4, &why),
                         TRELLIS_ERR_INVALID_ARG);
        if (strstr(why.text, bad[i].reason) == NULL)
            fail_msg("%s: reason \"%s\" lacks \"%s\"", bad[i].list, why.text, bad[i].reason);
    }
    assert_int_equal(trellis_x509_split_hosts(NULL, dns, &n_dns, ips, &n_ip, 4, &why),
                     TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validity_capped_by_issuer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_issuers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_and_bundle_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subject_cn_refuses_ambiguity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test(test_split_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
