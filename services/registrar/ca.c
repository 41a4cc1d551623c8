/*
 * The device CA: the intermediate that signs device certificates and CRLs, loaded once into
 * long-lived objects (design.md §7: nothing per request grows with the number of devices).
 *
 * A device certificate is built from the fixed profile of design.md §3 and nothing else:
 *   X.509 v3, serial = 16 random bytes (positive), issuer = the device CA,
 *   subject O = OEM, CN = device id, notBefore = now - 60 s, notAfter = now + validity (cut to
 *   the CA's own notAfter), SubjectPublicKeyInfo = the CSR's P-256 key,
 *   basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
 *   extendedKeyUsage clientAuth, subjectKeyIdentifier (RFC 5280 §4.2.1.2 method 1),
 *   authorityKeyIdentifier = the CA's subjectKeyIdentifier, subjectAltName
 *   URI urn:trellis:device:<device id>, signature ecdsa-with-SHA256.
 * The serial and validity are drawn first (tr__reg_ca_plan) so that the enrollment can be recorded
 * with them before the certificate exists.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/x509.h"

#define BACKDATE_S 60
#define SAN_PREFIX "urn:trellis:device:"

struct tr__reg_ca {
    EVP_PKEY *key;
    X509 *cert;
    X509 *root;
    char oem[TR__OEM_MAX + 1];
    int64_t not_after; /* the CA certificate's */
    /* Extensions every device certificate carries, built once. */
    X509_EXTENSION *ext_bc, *ext_ku, *ext_eku, *ext_aki;
    char *ca_pem; /* the intermediate, appended to every issued chain */
    size_t ca_pem_len;
    char *chain_pem; /* intermediate + root: GET /v1/ca */
    size_t chain_pem_len;
    EVP_MD *sha256; /* fetched once: EVP_sha256() is looked up again on every use */
};

static char *pem_of(X509 *const *certs, size_t n, size_t *len)
{
    char *out = NULL, *data = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    *len = 0;
    if (bio == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (PEM_write_bio_X509(bio, certs[i]) != 1)
            goto out;
    }
    long l = BIO_get_mem_data(bio, &data);
    if (l <= 0)
        goto out;
    out = malloc((size_t)l + 1);
    if (out == NULL)
        goto out;
    memcpy(out, data, (size_t)l);
    out[l] = '\0';
    *len = (size_t)l;
out:
    BIO_free(bio);
    return out;
}

static trellis_err_t asn1_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return TRELLIS_ERR_PARSE;
    *out = (int64_t)timegm(&tm);
    return TRELLIS_OK;
}

static X509_EXTENSION *conf_ext(int nid, const char *value)
{
    return X509V3_EXT_conf_nid(NULL, NULL, nid, value);
}

/* authorityKeyIdentifier = keyIdentifier of the CA's subjectKeyIdentifier (RFC 5280 §4.2.1.1). */
static X509_EXTENSION *aki_ext(const X509 *ca)
{
    X509_EXTENSION *ext = NULL;
    AUTHORITY_KEYID *akid = NULL;
    ASN1_OCTET_STRING *ski = X509_get_ext_d2i(ca, NID_subject_key_identifier, NULL, NULL);
    if (ski == NULL)
        return NULL;
    akid = AUTHORITY_KEYID_new();
    if (akid != NULL) {
        akid->keyid = ski;
        ski = NULL;
        ext = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
    }
    AUTHORITY_KEYID_free(akid);
    ASN1_OCTET_STRING_free(ski);
    return ext;
}

static int is_ca(const X509 *cert)
{
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(cert, NID_basic_constraints, NULL, NULL);
    int ca = bc != NULL && bc->ca;
    BASIC_CONSTRAINTS_free(bc);
    return ca;
}

trellis_err_t tr__reg_ca_load(const char *key_path, const char *cert_path, const char *root_path,
                              const char *oem, tr__reg_ca_t **out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__reg_ca_t *ca = NULL;
    EVP_PKEY *root_key = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (key_path == NULL || cert_path == NULL || root_path == NULL || oem == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    if (!tr__reg_oem_name_valid(oem))
        return trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "oem: not a valid OEM name");
    err = TRELLIS_ERR_NOMEM;
    ca = calloc(1, sizeof(*ca));
    if (ca == NULL)
        goto out;
    snprintf(ca->oem, sizeof(ca->oem), "%s", oem);
    err = trellis_p256_load_private_pem(key_path, &ca->key);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "CA key %.120s: %s", key_path,
                                 trellis_err_message(err));
        goto out;
    }
    err = trellis_x509_load_pem(cert_path, &ca->cert);
    if (err == TRELLIS_OK)
        err = trellis_x509_load_pem(root_path, &ca->root);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG, "CA certificates %.100s, %.100s: %s",
                                 cert_path, root_path, trellis_err_message(err));
        goto out;
    }
    err = TRELLIS_ERR_CONFIG;
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        trellis_reason_set(reason, err, "CA key does not match the CA certificate");
        goto out;
    }
    if (!is_ca(ca->cert) || !is_ca(ca->root)) {
        trellis_reason_set(reason, err, "device CA or root certificate is not a CA");
        goto out;
    }
    root_key = X509_get_pubkey(ca->root);
    if (root_key == NULL || X509_verify(ca->cert, root_key) != 1) {
        trellis_reason_set(reason, err, "the device CA is not signed by the root");
        goto out;
    }
    if (asn1_time_to_unix(X509_get0_notAfter(ca->cert), &ca->not_after) != TRELLIS_OK) {
        trellis_reason_set(reason, err, "CA certificate validity does not parse");
        goto out;
    }
    err = TRELLIS_ERR_CRYPTO;
    ca->ext_bc = conf_ext(NID_basic_constraints, "critical,CA:FALSE");
    ca->ext_ku = conf_ext(NID_key_usage, "critical,digitalSignature");
    ca->ext_eku = conf_ext(NID_ext_key_usage, "clientAuth");
    ca->ext_aki = aki_ext(ca->cert);
    if (ca->ext_bc == NULL || ca->ext_ku == NULL || ca->ext_eku == NULL || ca->ext_aki == NULL) {
        trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                           "cannot build the certificate profile (does the CA certificate have a "
                           "subject key identifier?)");
        err = TRELLIS_ERR_CONFIG;
        goto out;
    }
    err = TRELLIS_ERR_NOMEM;
    ca->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (ca->sha256 == NULL)
        goto out;
    X509 *chain[2] = {ca->cert, ca->root};
    ca->ca_pem = pem_of(chain, 1, &ca->ca_pem_len);
    ca->chain_pem = pem_of(chain, 2, &ca->chain_pem_len);
    if (ca->ca_pem == NULL || ca->chain_pem == NULL)
        goto out;
    *out = ca;
    ca = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(root_key);
    tr__reg_ca_free(ca);
    ERR_clear_error();
    return err;
}

void tr__reg_ca_free(tr__reg_ca_t *ca)
{
    if (ca == NULL)
        return;
    X509_EXTENSION_free(ca->ext_bc);
    X509_EXTENSION_free(ca->ext_ku);
    X509_EXTENSION_free(ca->ext_eku);
    X509_EXTENSION_free(ca->ext_aki);
    EVP_MD_free(ca->sha256);
    free(ca->ca_pem);
    free(ca->chain_pem);
    X509_free(ca->root);
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

const char *tr__reg_ca_chain_pem(const tr__reg_ca_t *ca, size_t *len)
{
    *len = ca->chain_pem_len;
    return ca->chain_pem;
}

X509 *tr__reg_ca_cert(const tr__reg_ca_t *ca)
{
    return ca->cert;
}

trellis_err_t tr__reg_ca_plan(const tr__reg_ca_t *ca, int64_t now_s, int64_t validity_s,
                              tr__reg_cert_plan_t *out)
{
    size_t n = 0;
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    if (ca == NULL || validity_s <= 0)
        return TRELLIS_ERR_INVALID_ARG;
    /* A CA that has expired (or is about to) issues nothing rather than certificates that are
     * dead on arrival. */
    if (now_s + BACKDATE_S >= ca->not_after)
        return TRELLIS_ERR_UNAVAILABLE;
    trellis_err_t err = trellis_random(out->serial, sizeof(out->serial));
    if (err != TRELLIS_OK)
        return err;
    /* Positive and exactly 16 bytes long (RFC 5280 §4.1.2.2): the top bit clear, as a DER
     * INTEGER reads it as a sign, and the next bit set, so no leading zero byte is dropped. */
    out->serial[0] = (uint8_t)((out->serial[0] & 0x7f) | 0x40);
    err = trellis_hex_encode(out->serial, sizeof(out->serial), out->serial_hex,
                             sizeof(out->serial_hex), &n);
    if (err != TRELLIS_OK) {
        memset(out, 0, sizeof(*out));
        return err;
    }
    out->not_before = now_s - BACKDATE_S;
    out->not_after = now_s + validity_s;
    if (out->not_after > ca->not_after)
        out->not_after = ca->not_after;
    return TRELLIS_OK;
}

static trellis_err_t set_time(ASN1_TIME *t, int64_t when)
{
    /* ASN1_TIME_set chooses UTCTime before 2050 and GeneralizedTime after (RFC 5280
     * §4.1.2.5). */
    return ASN1_TIME_set(t, (time_t)when) != NULL ? TRELLIS_OK : TRELLIS_ERR_CRYPTO;
}

static trellis_err_t add_san_uri(X509 *cert, const char *device_id)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    char uri[sizeof(SAN_PREFIX) + TRELLIS_RSTORE_DEVICE_ID_LEN];
    GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

    snprintf(uri, sizeof(uri), SAN_PREFIX "%s", device_id);
    if (names == NULL || gn == NULL || ia5 == NULL ||
        ASN1_STRING_set(ia5, uri, (int)strlen(uri)) != 1)
        goto out;
    GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
    ia5 = NULL;
    if (sk_GENERAL_NAME_push(names, gn) <= 0)
        goto out;
    gn = NULL;
    err = X509_add1_ext_i2d(cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1
              ? TRELLIS_OK
              : TRELLIS_ERR_CRYPTO;
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    return err;
}

/* RFC 5280 §4.2.1.2 (1): the SHA-1 of the subjectPublicKey BIT STRING's value. */
static trellis_err_t add_ski(X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    trellis_err_t err = TRELLIS_ERR_CRYPTO;
    ASN1_OCTET_STRING *ski = NULL;
    if (X509_pubkey_digest(cert, EVP_sha1(), md, &md_len) != 1)
        goto out;
    err = TRELLIS_ERR_NOMEM;
    ski = ASN1_OCTET_STRING_new();
    if (ski == NULL || ASN1_OCTET_STRING_set(ski, md, (int)md_len) != 1)
        goto out;
    err = X509_add1_ext_i2d(cert, NID_subject_key_identifier, ski, 0, X509V3_ADD_DEFAULT) == 1
              ? TRELLIS_OK
              : TRELLIS_ERR_CRYPTO;
out:
    ASN1_OCTET_STRING_free(ski);
    return err;
}

/*
 * The SubjectPublicKeyInfo, set from the point (RFC 5480 §2: id-ecPublicKey, namedCurve
 * prime256v1, the uncompressed point) without an EVP_PKEY: X509_set_pubkey would run the key
 * through OpenSSL 3.0's encoder framework, which costs several signatures' worth of time.
 */
static trellis_err_t set_spki(X509 *cert, const uint8_t point[static 65])
{
    X509_PUBKEY *spki = X509_get_X509_PUBKEY(cert);
    unsigned char *copy = OPENSSL_malloc(65);
    if (spki == NULL || copy == NULL) {
        OPENSSL_free(copy);
        return TRELLIS_ERR_NOMEM;
    }
    memcpy(copy, point, 65);
    if (X509_PUBKEY_set0_param(spki, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                               OBJ_nid2obj(NID_X9_62_prime256v1), copy, 65) != 1) {
        OPENSSL_free(copy);
        return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

/* The device certificate of plan, complete but for its signature. */
static trellis_err_t build_unsigned(const tr__reg_ca_t *ca, const tr__reg_cert_plan_t *plan,
                                    const char *device_id, const uint8_t point[static 65],
                                    X509 **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509 *cert = NULL;
    BIGNUM *bn = NULL;

    *out = NULL;
    if (ca == NULL || plan == NULL || !trellis_rstore_hex32_valid(device_id) || point[0] != 0x04)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_NOMEM;
    cert = X509_new();
    bn = BN_bin2bn(plan->serial, sizeof(plan->serial), NULL);
    if (cert == NULL || bn == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    X509_NAME *subject = X509_get_subject_name(cert);
    if (X509_set_version(cert, X509_VERSION_3) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL ||
        X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) != 1 ||
        X509_NAME_add_entry_by_NID(subject, NID_organizationName, MBSTRING_ASC,
                                   (const unsigned char *)ca->oem, -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                   (const unsigned char *)device_id, -1, -1, 0) != 1)
        goto out;
    err = set_spki(cert, point);
    if (err != TRELLIS_OK)
        goto out;
    err = set_time(X509_getm_notBefore(cert), plan->not_before);
    if (err == TRELLIS_OK)
        err = set_time(X509_getm_notAfter(cert), plan->not_after);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_add_ext(cert, ca->ext_bc, -1) != 1 || X509_add_ext(cert, ca->ext_ku, -1) != 1 ||
        X509_add_ext(cert, ca->ext_eku, -1) != 1)
        goto out;
    err = add_ski(cert);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_add_ext(cert, ca->ext_aki, -1) != 1)
        goto out;
    err = add_san_uri(cert, device_id);
    if (err != TRELLIS_OK)
        goto out;
    *out = cert;
    cert = NULL;
    err = TRELLIS_OK;
out:
    BN_free(bn);
    X509_free(cert);
    return err;
}

trellis_err_t tr__reg_ca_issue(const tr__reg_ca_t *ca, const tr__reg_cert_plan_t *plan,
                               const char *device_id, const uint8_t point[static 65], X509 **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509 *cert = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    err = build_unsigned(ca, plan, device_id, point, &cert);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_sign(cert, ca->key, EVP_sha256()) <= 0)
        goto out;
    *out = cert;
    cert = NULL;
    err = TRELLIS_OK;
out:
    X509_free(cert);
    ERR_clear_error();
    return err;
}

trellis_err_t tr__reg_ca_signer_new(const tr__reg_ca_t *ca, EVP_PKEY_CTX **out)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    EVP_PKEY_CTX *ctx = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (ca == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ca->key, NULL);
    if (ctx == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, ca->sha256) != 1)
        goto out;
    *out = ctx;
    ctx = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

/* X.690 §8.1.2-8.1.3: a tag and a definite length (in the short form below 128, else long). */
static size_t der_header(uint8_t *out, uint8_t tag, size_t len)
{
    size_t n = 0;
    out[n++] = tag;
    if (len < 0x80) {
        out[n++] = (uint8_t)len;
    } else if (len < 0x100) {
        out[n++] = 0x81;
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x82;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    return n;
}

/* RFC 7468 §2: "-----BEGIN CERTIFICATE-----", the base64 of der in lines of 64 characters,
 * "-----END CERTIFICATE-----", each line ending in a newline (what PEM_write_bio_X509 writes). */
static size_t pem_encode(const uint8_t *der, size_t len, char *out)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
    static const char end[] = "-----END CERTIFICATE-----\n";
    size_t n = sizeof(begin) - 1;
    memcpy(out, begin, n);
    for (size_t off = 0; off < len; off += 48) {
        size_t chunk = len - off < 48 ? len - off : 48;
        n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, der + off, (int)chunk);
        out[n++] = '\n';
    }
    memcpy(out + n, end, sizeof(end) - 1);
    return n + sizeof(end) - 1;
}

#define TBS_MAX  2048
#define CERT_MAX (TBS_MAX + 128)

/*
 * RFC 5280 §4.1.1: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
 * signatureValue BIT STRING }, put together here rather than by X509_sign, which fetches the
 * digest and the signature implementation and makes a signing context on every call: the TBS
 * is encoded by OpenSSL, hashed with the SHA-256 fetched at load, and signed with the caller's
 * long-lived context.
 */
trellis_err_t tr__reg_ca_issue_chain_pem(const tr__reg_ca_t *ca, EVP_PKEY_CTX *signer,
                                         const tr__reg_cert_plan_t *plan, const char *device_id,
                                         const uint8_t point[static 65], char **out, size_t *len)
{
    /* RFC 5758 §3.2: ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent. */
    static const uint8_t ALG[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                  0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509 *cert = NULL;
    EVP_PKEY_CTX *own = NULL;
    unsigned char *tbs = NULL;
    uint8_t digest[32], sig[80], der[CERT_MAX], head[8], sig_head[8];
    size_t sig_len = sizeof(sig);
    char *text = NULL;

    if (out == NULL || len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    *len = 0;
    err = build_unsigned(ca, plan, device_id, point, &cert);
    if (err != TRELLIS_OK)
        goto out;
    if (signer == NULL) {
        err = tr__reg_ca_signer_new(ca, &own);
        if (err != TRELLIS_OK)
            goto out;
        signer = own;
    }
    err = TRELLIS_ERR_CRYPTO;
    union {
        const X509_ALGOR *c;
        X509_ALGOR *m;
    } tbs_alg = {.c = X509_get0_tbs_sigalg(cert)};
    if (X509_ALGOR_set0(tbs_alg.m, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL) != 1)
        goto out;
    int tbs_len = i2d_re_X509_tbs(cert, &tbs);
    if (tbs_len <= 0 || tbs_len > TBS_MAX ||
        EVP_Digest(tbs, (size_t)tbs_len, digest, NULL, ca->sha256, NULL) != 1 ||
        EVP_PKEY_sign(signer, sig, &sig_len, digest, sizeof(digest)) != 1)
        goto out;
    /* signatureValue: the DER ECDSA-Sig-Value in a BIT STRING with no unused bits. */
    size_t sig_head_len = der_header(sig_head, 0x03, sig_len + 1);
    sig_head[sig_head_len++] = 0x00;
    size_t body = (size_t)tbs_len + sizeof(ALG) + sig_head_len + sig_len;
    size_t head_len = der_header(head, 0x30, body);
    size_t n = 0;
    memcpy(der + n, head, head_len);
    n += head_len;
    memcpy(der + n, tbs, (size_t)tbs_len);
    n += (size_t)tbs_len;
    memcpy(der + n, ALG, sizeof(ALG));
    n += sizeof(ALG);
    memcpy(der + n, sig_head, sig_head_len);
    n += sig_head_len;
    memcpy(der + n, sig, sig_len);
    n += sig_len;
    err = TRELLIS_ERR_NOMEM;
    /* 64 characters and a newline for every 48 bytes, plus the two boundary lines. */
    size_t pem_max = (n + 47) / 48 * 65 + 64;
    text = malloc(pem_max + ca->ca_pem_len + 1);
    if (text == NULL)
        goto out;
    /* Leaf first, then its issuer, as TLS sends a chain (the root is the peer's anchor). */
    size_t leaf_len = pem_encode(der, n, text);
    memcpy(text + leaf_len, ca->ca_pem, ca->ca_pem_len);
    text[leaf_len + ca->ca_pem_len] = '\0';
    *out = text;
    *len = leaf_len + ca->ca_pem_len;
    text = NULL;
    err = TRELLIS_OK;
out:
    free(text);
    OPENSSL_free(tbs);
    EVP_PKEY_CTX_free(own);
    X509_free(cert);
    ERR_clear_error();
    return err;
}

trellis_err_t tr__reg_ca_leaf_chain_pem(const tr__reg_ca_t *ca, X509 *leaf, char **out, size_t *len)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    char *leaf_pem = NULL, *text = NULL;
    size_t leaf_len = 0;

    *out = NULL;
    *len = 0;
    leaf_pem = pem_of(&leaf, 1, &leaf_len);
    if (leaf_pem == NULL)
        goto out;
    text = malloc(leaf_len + ca->ca_pem_len + 1);
    if (text == NULL)
        goto out;
    /* Leaf first, then its issuer, as TLS sends a chain (the root is the peer's anchor). */
    memcpy(text, leaf_pem, leaf_len);
    memcpy(text + leaf_len, ca->ca_pem, ca->ca_pem_len);
    text[leaf_len + ca->ca_pem_len] = '\0';
    *out = text;
    *len = leaf_len + ca->ca_pem_len;
    text = NULL;
    err = TRELLIS_OK;
out:
    free(leaf_pem);
    free(text);
    ERR_clear_error();
    return err;
}

/* ---- CRL (RFC 5280 §5) ---- */

struct tr__reg_crl {
    const tr__reg_ca_t *ca;
    X509_CRL *crl;
    size_t entries;
};

trellis_err_t tr__reg_crl_new(const tr__reg_ca_t *ca, uint64_t number, int64_t this_update,
                              int64_t next_update, tr__reg_crl_t **out)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    tr__reg_crl_t *b = NULL;
    ASN1_TIME *t = NULL;
    ASN1_INTEGER *num = NULL;

    *out = NULL;
    if (ca == NULL || next_update <= this_update)
        return TRELLIS_ERR_INVALID_ARG;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto out;
    b->ca = ca;
    b->crl = X509_CRL_new();
    t = ASN1_TIME_new();
    num = ASN1_INTEGER_new();
    if (b->crl == NULL || t == NULL || num == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    /* v2, since it carries extensions (§5.1.2.1). */
    if (X509_CRL_set_version(b->crl, X509_CRL_VERSION_2) != 1 ||
        X509_CRL_set_issuer_name(b->crl, X509_get_subject_name(ca->cert)) != 1 ||
        ASN1_TIME_set(t, (time_t)this_update) == NULL || X509_CRL_set1_lastUpdate(b->crl, t) != 1 ||
        ASN1_TIME_set(t, (time_t)next_update) == NULL || X509_CRL_set1_nextUpdate(b->crl, t) != 1 ||
        ASN1_INTEGER_set_uint64(num, number) != 1 ||
        X509_CRL_add1_ext_i2d(b->crl, NID_crl_number, num, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509_CRL_add_ext(b->crl, ca->ext_aki, -1) != 1)
        goto out;
    *out = b;
    b = NULL;
    err = TRELLIS_OK;
out:
    ASN1_TIME_free(t);
    ASN1_INTEGER_free(num);
    tr__reg_crl_free(b);
    ERR_clear_error();
    return err;
}

trellis_err_t tr__reg_crl_add(tr__reg_crl_t *b, const trellis_rstore_revoked_t *e)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    X509_REVOKED *r = NULL;
    ASN1_TIME *t = NULL;
    ASN1_INTEGER *serial = NULL;
    ASN1_ENUMERATED *code = NULL;
    BIGNUM *bn = NULL;

    if (b == NULL || e == NULL || !trellis_rstore_hex32_valid(e->serial))
        return TRELLIS_ERR_INVALID_ARG;
    r = X509_REVOKED_new();
    t = ASN1_TIME_new();
    if (r == NULL || t == NULL || BN_hex2bn(&bn, e->serial) != 32)
        goto out;
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    if (serial == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_REVOKED_set_serialNumber(r, serial) != 1 ||
        ASN1_TIME_set(t, (time_t)(e->revoked_ms / 1000)) == NULL ||
        X509_REVOKED_set_revocationDate(r, t) != 1)
        goto out;
    /* §5.3.1: the reasonCode unspecified SHOULD be absent. */
    if (e->reason != TRELLIS_CRL_REASON_UNSPECIFIED) {
        code = ASN1_ENUMERATED_new();
        if (code == NULL || ASN1_ENUMERATED_set(code, (long)e->reason) != 1 ||
            X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, code, 0, X509V3_ADD_DEFAULT) != 1)
            goto out;
    }
    if (X509_CRL_add0_revoked(b->crl, r) != 1)
        goto out;
    r = NULL;
    b->entries++;
    err = TRELLIS_OK;
out:
    ASN1_ENUMERATED_free(code);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    ASN1_TIME_free(t);
    X509_REVOKED_free(r);
    ERR_clear_error();
    return err;
}

trellis_err_t tr__reg_crl_finish(tr__reg_crl_t *b, uint8_t **der, size_t *der_len, char **pem,
                                 size_t *pem_len)
{
    trellis_err_t err = TRELLIS_ERR_CRYPTO;
    unsigned char *d = NULL;
    BIO *bio = NULL;
    char *data = NULL;

    *der = NULL;
    *der_len = 0;
    *pem = NULL;
    *pem_len = 0;
    if (X509_CRL_sort(b->crl) != 1 || X509_CRL_sign(b->crl, b->ca->key, EVP_sha256()) <= 0)
        goto out;
    int n = i2d_X509_CRL(b->crl, &d);
    if (n <= 0)
        goto out;
    err = TRELLIS_ERR_NOMEM;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509_CRL(bio, b->crl) != 1)
        goto out;
    long l = BIO_get_mem_data(bio, &data);
    if (l <= 0)
        goto out;
    *pem = malloc((size_t)l + 1);
    *der = malloc((size_t)n);
    if (*pem == NULL || *der == NULL)
        goto out;
    memcpy(*pem, data, (size_t)l);
    (*pem)[l] = '\0';
    *pem_len = (size_t)l;
    memcpy(*der, d, (size_t)n);
    *der_len = (size_t)n;
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        free(*pem);
        free(*der);
        *pem = NULL;
        *der = NULL;
        *pem_len = 0;
        *der_len = 0;
    }
    BIO_free(bio);
    OPENSSL_free(d);
    ERR_clear_error();
    return err;
}

void tr__reg_crl_free(tr__reg_crl_t *b)
{
    if (b == NULL)
        return;
    X509_CRL_free(b->crl);
    free(b);
}
