#include "trellis/x509.h"

#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "trellis/fsutil.h"

#define SERIAL_LEN  16
#define DNS_MAX_LEN 253

/* Printable ASCII only: the names Trellis puts in certificates are identifiers, and refusing
 * everything else keeps them unambiguous in logs and in name comparisons. */
static int printable_ascii(const char *s, size_t max_len)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max_len || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e)
            return 0;
    }
    return n > 0;
}

/* RFC 1034 §3.5 preferred name syntax (letters, digits, hyphens, dots), optionally one leading
 * "*." wildcard label. */
static int valid_dns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DNS_MAX_LEN)
        return 0;
    const char *p = s;
    if (strncmp(p, "*.", 2) == 0)
        p += 2;
    size_t label = 0;
    for (; *p != '\0'; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        int ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok || ++label > 63)
            return 0;
    }
    return label > 0;
}

static int valid_uri(const char *s)
{
    if (!printable_ascii(s, TRELLIS_X509_URI_MAX) || strchr(s, ' ') != NULL)
        return 0;
    const char *colon = strchr(s, ':');
    return colon != NULL && colon != s;
}

static trellis_err_t check_profile(const trellis_x509_profile_t *p, trellis_reason_t *reason)
{
    if (p->kind != TRELLIS_X509_CA && p->kind != TRELLIS_X509_SERVER &&
        p->kind != TRELLIS_X509_CLIENT)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "unknown certificate kind %d",
                                  (int)p->kind);
    if (p->common_name == NULL || !printable_ascii(p->common_name, TRELLIS_X509_NAME_MAX))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "common name must be 1..%d printable ASCII characters",
                                  TRELLIS_X509_NAME_MAX);
    if (p->organization != NULL && !printable_ascii(p->organization, TRELLIS_X509_NAME_MAX))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "organization must be 1..%d printable ASCII characters",
                                  TRELLIS_X509_NAME_MAX);
    if (p->days < 1 || p->days > TRELLIS_X509_DAYS_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "validity must be 1..%d days",
                                  TRELLIS_X509_DAYS_MAX);
    if (p->kind == TRELLIS_X509_CA && p->path_len < -1)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "path length below -1");
    if ((p->n_dns > 0 && p->dns_names == NULL) || (p->n_ip > 0 && p->ip_addrs == NULL) ||
        (p->n_uri > 0 && p->uris == NULL))
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "SAN count without array");
    if (p->n_dns > TRELLIS_X509_SANS_MAX || p->n_ip > TRELLIS_X509_SANS_MAX ||
        p->n_uri > TRELLIS_X509_SANS_MAX || p->n_dns + p->n_ip + p->n_uri > TRELLIS_X509_SANS_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "more than %d subject alternative names", TRELLIS_X509_SANS_MAX);
    if (p->kind == TRELLIS_X509_SERVER && p->n_dns + p->n_ip == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "a server certificate needs a DNS name or an IP address");
    for (size_t i = 0; i < p->n_dns; i++) {
        if (p->dns_names[i] == NULL || !valid_dns_name(p->dns_names[i]))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "DNS name %zu is not a valid host name", i + 1);
    }
    for (size_t i = 0; i < p->n_uri; i++) {
        if (p->uris[i] == NULL || !valid_uri(p->uris[i]))
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "URI %zu is not valid",
                                      i + 1);
    }
    for (size_t i = 0; i < p->n_ip; i++) {
        if (p->ip_addrs[i] == NULL)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "IP address %zu is NULL",
                                      i + 1);
    }
    return TRELLIS_OK;
}

static trellis_err_t add_conf_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    /* Only the subject is needed: the values used here are constants or "hash" (the subject key
     * identifier of RFC 5280 §4.2.1.2 method 1, which reads the subject's public key). */
    X509V3_set_ctx(&ctx, NULL, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return TRELLIS_ERR_CRYPTO;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? TRELLIS_OK : TRELLIS_ERR_CRYPTO;
}

static trellis_err_t push_name(GENERAL_NAMES *names, int type, const char *value)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = NULL;
    if (gn == NULL)
        goto out;
    ia5 = ASN1_IA5STRING_new();
    if (ia5 == NULL || ASN1_STRING_set(ia5, value, (int)strlen(value)) != 1)
        goto out;
    GENERAL_NAME_set0_value(gn, type, ia5);
    ia5 = NULL;
    if (sk_GENERAL_NAME_push(names, gn) <= 0)
        goto out;
    gn = NULL;
    err = TRELLIS_OK;
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    return err;
}

/* SubjectAltName built as structures, never as an OpenSSL config string: a name containing a
 * comma must not be able to smuggle in a second name (RFC 5280 §4.2.1.6). */
static trellis_err_t add_san(X509 *cert, const trellis_x509_profile_t *p, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    GENERAL_NAMES *names = NULL;
    GENERAL_NAME *gn = NULL;

    if (p->n_dns + p->n_ip + p->n_uri == 0)
        return TRELLIS_OK;
    names = sk_GENERAL_NAME_new_null();
    if (names == NULL)
        goto out;
    for (size_t i = 0; i < p->n_dns; i++) {
        err = push_name(names, GEN_DNS, p->dns_names[i]);
        if (err != TRELLIS_OK)
            goto out;
    }
    for (size_t i = 0; i < p->n_ip; i++) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(p->ip_addrs[i]);
        if (ip == NULL) {
            ERR_clear_error();
            err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                     "IP address %zu does not parse", i + 1);
            goto out;
        }
        err = TRELLIS_ERR_NOMEM;
        gn = GENERAL_NAME_new();
        if (gn == NULL) {
            ASN1_OCTET_STRING_free(ip);
            goto out;
        }
        GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
        if (sk_GENERAL_NAME_push(names, gn) <= 0)
            goto out;
        gn = NULL;
    }
    for (size_t i = 0; i < p->n_uri; i++) {
        err = push_name(names, GEN_URI, p->uris[i]);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1
              ? TRELLIS_OK
              : TRELLIS_ERR_CRYPTO;
out:
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    return err;
}

/* authorityKeyIdentifier = keyIdentifier of the issuer's subjectKeyIdentifier (RFC 5280
 * §4.2.1.1), built directly so the issuer certificate can stay const. */
static trellis_err_t add_aki(X509 *cert, const X509 *issuer)
{
    trellis_err_t err = TRELLIS_ERR_CRYPTO;
    AUTHORITY_KEYID *akid = NULL;
    ASN1_OCTET_STRING *ski = X509_get_ext_d2i(issuer, NID_subject_key_identifier, NULL, NULL);
    if (ski == NULL)
        goto out;
    err = TRELLIS_ERR_NOMEM;
    akid = AUTHORITY_KEYID_new();
    if (akid == NULL)
        goto out;
    akid->keyid = ski;
    ski = NULL;
    err = X509_add1_ext_i2d(cert, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) == 1
              ? TRELLIS_OK
              : TRELLIS_ERR_CRYPTO;
out:
    AUTHORITY_KEYID_free(akid);
    ASN1_OCTET_STRING_free(ski);
    return err;
}

static trellis_err_t set_serial(X509 *cert)
{
    trellis_err_t err = TRELLIS_ERR_CRYPTO;
    uint8_t raw[SERIAL_LEN];
    BIGNUM *bn = NULL;
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        goto out;
    /* Positive and exactly 16 bytes long: top bit clear (DER INTEGER sign), next bit set. */
    raw[0] = (uint8_t)((raw[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
        goto out;
    err = TRELLIS_OK;
out:
    BN_free(bn);
    return err;
}

static trellis_err_t set_name(X509 *cert, const trellis_x509_profile_t *p)
{
    X509_NAME *name = X509_get_subject_name(cert);
    if (p->organization != NULL &&
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)p->organization,
                                   -1, -1, 0) != 1)
        return TRELLIS_ERR_CRYPTO;
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)p->common_name,
                                   -1, -1, 0) != 1)
        return TRELLIS_ERR_CRYPTO;
    return TRELLIS_OK;
}

static trellis_err_t set_validity(X509 *cert, unsigned days, const X509 *issuer_cert)
{
    if (X509_gmtime_adj(X509_getm_notBefore(cert), -TRELLIS_X509_BACKDATE_S) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) == NULL)
        return TRELLIS_ERR_CRYPTO;
    if (issuer_cert != NULL) {
        const ASN1_TIME *limit = X509_get0_notAfter(issuer_cert);
        if (ASN1_TIME_compare(X509_get0_notAfter(cert), limit) > 0 &&
            X509_set1_notAfter(cert, limit) != 1)
            return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

static trellis_err_t add_kind_exts(X509 *cert, const trellis_x509_profile_t *p)
{
    trellis_err_t err = TRELLIS_OK;
    if (p->kind == TRELLIS_X509_CA) {
        char bc[48];
        if (p->path_len >= 0)
            snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", p->path_len);
        else
            snprintf(bc, sizeof(bc), "critical,CA:TRUE");
        err = add_conf_ext(cert, NID_basic_constraints, bc);
        if (err == TRELLIS_OK)
            err = add_conf_ext(cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        return err;
    }
    err = add_conf_ext(cert, NID_basic_constraints, "critical,CA:FALSE");
    if (err == TRELLIS_OK)
        err = add_conf_ext(cert, NID_key_usage, "critical,digitalSignature");
    if (err == TRELLIS_OK)
        err = add_conf_ext(cert, NID_ext_key_usage,
                           p->kind == TRELLIS_X509_SERVER ? "serverAuth" : "clientAuth");
    return err;
}

static trellis_err_t check_issuer(const X509 *issuer_cert, EVP_PKEY *issuer_key,
                                  EVP_PKEY *subject_key, trellis_reason_t *reason)
{
    if (issuer_cert == NULL) {
        /* Self-signed: the signing key must be the subject's own private key. */
        if (EVP_PKEY_eq(subject_key, issuer_key) != 1)
            return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                      "self-signed: issuer key is not the subject key");
        return TRELLIS_OK;
    }
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(issuer_cert, NID_basic_constraints, &crit, NULL);
    int is_ca = bc != NULL && bc->ca;
    BASIC_CONSTRAINTS_free(bc);
    if (!is_ca)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "issuer is not a CA");
    ASN1_OCTET_STRING *ski = X509_get_ext_d2i(issuer_cert, NID_subject_key_identifier, NULL, NULL);
    int has_ski = ski != NULL;
    ASN1_OCTET_STRING_free(ski);
    if (!has_ski)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "issuer has no subject key identifier");
    if (X509_check_private_key(issuer_cert, issuer_key) != 1) {
        ERR_clear_error();
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "issuer key does not match issuer certificate");
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_x509_issue(const trellis_x509_profile_t *profile, EVP_PKEY *subject_key,
                                 const X509 *issuer_cert, EVP_PKEY *issuer_key, X509 **out_cert,
                                 trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509 *cert = NULL;

    trellis_reason_clear(reason);
    if (out_cert == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "out_cert is NULL");
    *out_cert = NULL;
    if (profile == NULL || subject_key == NULL || issuer_key == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "NULL argument");
    err = check_profile(profile, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = check_issuer(issuer_cert, issuer_key, subject_key, reason);
    if (err != TRELLIS_OK)
        goto out;

    err = TRELLIS_ERR_NOMEM;
    cert = X509_new();
    if (cert == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_set_version(cert, X509_VERSION_3) != 1 || X509_set_pubkey(cert, subject_key) != 1)
        goto out;
    err = set_serial(cert);
    if (err != TRELLIS_OK)
        goto out;
    err = set_name(cert, profile);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_set_issuer_name(cert, issuer_cert != NULL ? X509_get_subject_name(issuer_cert)
                                                       : X509_get_subject_name(cert)) != 1)
        goto out;
    err = set_validity(cert, profile->days, issuer_cert);
    if (err != TRELLIS_OK)
        goto out;
    err = add_kind_exts(cert, profile);
    if (err != TRELLIS_OK)
        goto out;
    err = add_conf_ext(cert, NID_subject_key_identifier, "hash");
    if (err != TRELLIS_OK)
        goto out;
    err = add_aki(cert, issuer_cert != NULL ? issuer_cert : cert);
    if (err != TRELLIS_OK)
        goto out;
    err = add_san(cert, profile, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0)
        goto out;

    *out_cert = cert;
    cert = NULL;
    err = TRELLIS_OK;
out:
    if (err == TRELLIS_ERR_CRYPTO)
        ERR_clear_error();
    X509_free(cert);
    return err;
}

static trellis_err_t write_certs(BIO *bio, X509 *const *certs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (certs[i] == NULL)
            return TRELLIS_ERR_INVALID_ARG;
        if (PEM_write_bio_X509(bio, certs[i]) != 1)
            return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_x509_save_chain_pem(const char *path, X509 *const *certs, size_t n)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;
    char *data = NULL;

    if (path == NULL || certs == NULL || n == 0 || n > TRELLIS_X509_CHAIN_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_NOMEM;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        goto out;
    err = write_certs(bio, certs, n);
    if (err != TRELLIS_OK)
        goto out;
    long len = BIO_get_mem_data(bio, &data);
    err = TRELLIS_ERR_CRYPTO;
    if (len <= 0)
        goto out;
    err = trellis_file_write_atomic(path, data, (size_t)len, TRELLIS_FILE_PUBLIC);
out:
    BIO_free(bio);
    ERR_clear_error();
    return err;
}

trellis_err_t trellis_x509_save_bundle_pem(const char *path, const EVP_PKEY *key,
                                           X509 *const *certs, size_t n)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;
    char *data = NULL;
    long len = 0;

    if (path == NULL || key == NULL || certs == NULL || n == 0 || n > TRELLIS_X509_CHAIN_MAX)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_NOMEM;
    /* A secure-memory BIO clears every buffer it frees or outgrows, so no copy of the private
     * key is left behind in the heap. */
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    err = write_certs(bio, certs, n);
    if (err != TRELLIS_OK)
        goto out;
    len = BIO_get_mem_data(bio, &data);
    err = TRELLIS_ERR_CRYPTO;
    if (len <= 0)
        goto out;
    err = trellis_file_write_atomic(path, data, (size_t)len, TRELLIS_FILE_SECRET);
out:
    if (data != NULL && len > 0)
        OPENSSL_cleanse(data, (size_t)len);
    BIO_free(bio);
    ERR_clear_error();
    return err;
}

trellis_err_t trellis_x509_load_chain_pem(const char *path, X509 **certs, size_t max, size_t *n_out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t *buf = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    size_t n = 0;

    if (n_out != NULL)
        *n_out = 0;
    if (path == NULL || certs == NULL || n_out == NULL || max == 0)
        return TRELLIS_ERR_INVALID_ARG;
    for (size_t i = 0; i < max; i++)
        certs[i] = NULL;
    err = trellis_file_read_all(path, TRELLIS_X509_PEM_MAX, &buf, &len);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_NOMEM;
    if (len > INT_MAX)
        goto out;
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL)
        goto out;
    for (;;) {
        /* PEM_read_bio_X509 skips blocks of other types (a private key in a bundle) and ends
         * with PEM_R_NO_START_LINE at the end of the input. */
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert == NULL) {
            unsigned long e = ERR_peek_last_error();
            err = (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                      ? TRELLIS_OK
                      : TRELLIS_ERR_PARSE;
            break;
        }
        if (n == max || n == TRELLIS_X509_CHAIN_MAX) {
            X509_free(cert);
            err = TRELLIS_ERR_TOO_LARGE;
            break;
        }
        certs[n++] = cert;
    }
    if (err == TRELLIS_OK && n == 0)
        err = TRELLIS_ERR_PARSE;
    if (err != TRELLIS_OK)
        goto out;
    *n_out = n;
out:
    if (err != TRELLIS_OK) {
        for (size_t i = 0; i < n; i++) {
            X509_free(certs[i]);
            certs[i] = NULL;
        }
    }
    ERR_clear_error();
    BIO_free(bio);
    if (buf != NULL)
        trellis_file_buffer_free(buf, len);
    return err;
}

trellis_err_t trellis_x509_load_pem(const char *path, X509 **out_cert)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509 *certs[TRELLIS_X509_CHAIN_MAX] = {NULL};
    size_t n = 0;

    if (out_cert == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_cert = NULL;
    err = trellis_x509_load_chain_pem(path, certs, TRELLIS_X509_CHAIN_MAX, &n);
    if (err != TRELLIS_OK)
        return err;
    *out_cert = certs[0];
    for (size_t i = 1; i < n; i++)
        X509_free(certs[i]);
    return TRELLIS_OK;
}

trellis_err_t trellis_x509_subject_cn(const X509 *cert, char *out, size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    unsigned char *utf8 = NULL;

    if (out_len != NULL)
        *out_len = 0;
    if (out != NULL && out_size > 0)
        out[0] = '\0';
    if (cert == NULL || out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    const X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    err = TRELLIS_ERR_PARSE;
    if (idx < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
        goto out;
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n <= 0 || n > TRELLIS_X509_NAME_MAX)
        goto out;
    for (int i = 0; i < n; i++) {
        if (utf8[i] < 0x20 || utf8[i] == 0x7f)
            goto out;
    }
    *out_len = (size_t)n;
    err = TRELLIS_ERR_BUFFER_TOO_SMALL;
    if (out == NULL || out_size <= (size_t)n)
        goto out;
    memcpy(out, utf8, (size_t)n);
    out[n] = '\0';
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && err != TRELLIS_ERR_BUFFER_TOO_SMALL)
        *out_len = 0;
    OPENSSL_free(utf8);
    ERR_clear_error();
    return err;
}

trellis_err_t trellis_x509_fingerprint(const X509 *cert, uint8_t out[static 32])
{
    unsigned int len = 0;
    memset(out, 0, 32);
    if (cert == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (X509_digest(cert, EVP_sha256(), out, &len) != 1 || len != 32) {
        memset(out, 0, 32);
        ERR_clear_error();
        return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_x509_not_after(const X509 *cert, time_t *out)
{
    struct tm tm;
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = 0;
    if (cert == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
        ERR_clear_error();
        return TRELLIS_ERR_PARSE;
    }
    *out = timegm(&tm);
    return TRELLIS_OK;
}
