/*
 * PKCS#10 (RFC 2986) parsing and the CSR policy of design.md §3. See include/trellis/csr.h for
 * the rules; each check below says which one it enforces.
 *
 * The request is decoded with templates of its own (below) rather than X509_REQ: X509_REQ turns
 * the SubjectPublicKeyInfo into an EVP_PKEY while decoding, through OpenSSL 3.0's decoder
 * framework, which costs more than the whole policy (about 130 us of 350 here), and it would
 * accept any key type and curve. With the key kept as an AlgorithmIdentifier and a BIT STRING,
 * the named-curve rule is checked on the encoding itself (id-ecPublicKey with the prime256v1
 * OID, RFC 5480 §2.1.1), the point is imported once (on the curve, not infinity), and the
 * self-signature is checked over the exact certificationRequestInfo bytes.
 */
#include "trellis/csr.h"

#include <limits.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "trellis/crypto.h"

/* More extensions than this in one request is not a device talking. */
#define EXTENSIONS_MAX 64

/* RFC 5280 §4.1.2.7 / RFC 2986 §4.1: SubjectPublicKeyInfo, kept as encoded. */
typedef struct {
    X509_ALGOR *algorithm;
    ASN1_BIT_STRING *public_key;
} TR_SPKI;

/* RFC 2986 §4.1: CertificationRequestInfo. */
typedef struct {
    ASN1_INTEGER *version;
    X509_NAME *subject;
    TR_SPKI *spki;
    STACK_OF(X509_ATTRIBUTE) * attributes;
} TR_REQ_INFO;

/* RFC 2986 §4.2: CertificationRequest. */
typedef struct {
    TR_REQ_INFO *info;
    X509_ALGOR *signature_algorithm;
    ASN1_BIT_STRING *signature;
} TR_REQ;

ASN1_SEQUENCE(TR_SPKI) =
    {
        ASN1_SIMPLE(TR_SPKI, algorithm, X509_ALGOR),
        ASN1_SIMPLE(TR_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(TR_SPKI)

        ASN1_SEQUENCE(TR_REQ_INFO) =
            {
                ASN1_SIMPLE(TR_REQ_INFO, version, ASN1_INTEGER),
                ASN1_SIMPLE(TR_REQ_INFO, subject, X509_NAME),
                ASN1_SIMPLE(TR_REQ_INFO, spki, TR_SPKI),
                /* [0] IMPLICIT SET OF Attribute; optional, as OpenSSL reads it, since some encoders
                 * leave an empty set out. */
                ASN1_IMP_SET_OF_OPT(TR_REQ_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END(TR_REQ_INFO)

                ASN1_SEQUENCE(TR_REQ) =
                    {
                        ASN1_SIMPLE(TR_REQ, info, TR_REQ_INFO),
                        ASN1_SIMPLE(TR_REQ, signature_algorithm, X509_ALGOR),
                        ASN1_SIMPLE(TR_REQ, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(TR_REQ)

                        static EVP_PKEY
                    * pkey_mutable(const EVP_PKEY *key)
{
    /* OpenSSL takes non-const keys where it only reads them (X509_REQ_set_pubkey, _sign). */
    union {
        const EVP_PKEY *c;
        EVP_PKEY *m;
    } u = {.c = key};
    return u.m;
}

static int printable_ascii(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* One CertificationRequest spanning the input, and DER: re-encoding gives back the input. */
static trellis_err_t decode_der(const uint8_t *der, size_t len, TR_REQ **out,
                                trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_BAD_CSR;
    const unsigned char *p = der;
    unsigned char *again = NULL;
    TR_REQ *req = (TR_REQ *)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(TR_REQ));

    if (req == NULL) {
        trellis_reason_set(reason, err, "not a DER PKCS#10 certification request");
        goto out;
    }
    if (p != der + len) {
        trellis_reason_set(reason, err, "%zu bytes follow the certification request",
                           len - (size_t)(p - der));
        goto out;
    }
    int n = ASN1_item_i2d((ASN1_VALUE *)req, &again, ASN1_ITEM_rptr(TR_REQ));
    if (n <= 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "cannot re-encode the request");
        goto out;
    }
    if ((size_t)n != len || memcmp(again, der, len) != 0) {
        trellis_reason_set(reason, err, "the request is not in distinguished encoding (DER)");
        goto out;
    }
    *out = req;
    req = NULL;
    err = TRELLIS_OK;
out:
    OPENSSL_free(again);
    ASN1_item_free((ASN1_VALUE *)req, ASN1_ITEM_rptr(TR_REQ));
    return err;
}

/* Exactly one CN, printable ASCII, 1..TRELLIS_CSR_CN_MAX characters. */
static trellis_err_t read_cn(const X509_NAME *name, char out[static TRELLIS_CSR_CN_MAX + 1],
                             trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_BAD_CSR;
    unsigned char *utf8 = NULL;
    int idx = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;

    if (idx < 0) {
        trellis_reason_set(reason, err, "subject has no common name");
        goto out;
    }
    if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0) {
        trellis_reason_set(reason, err, "subject has more than one common name");
        goto out;
    }
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n <= 0 || n > TRELLIS_CSR_CN_MAX || !printable_ascii(utf8, (size_t)n)) {
        trellis_reason_set(reason, err,
                           "subject common name is not 1..%d printable ASCII characters",
                           TRELLIS_CSR_CN_MAX);
        goto out;
    }
    memcpy(out, utf8, (size_t)n);
    out[n] = '\0';
    err = TRELLIS_OK;
out:
    OPENSSL_free(utf8);
    return err;
}

static const char *oid_name(const ASN1_OBJECT *obj)
{
    int nid = OBJ_obj2nid(obj);
    const char *sn = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
    return sn != NULL ? sn : "an unknown algorithm";
}

/*
 * The key (RFC 5480 §2): id-ecPublicKey whose parameters are the namedCurve OID prime256v1 (no
 * implicitCurve, no specifiedCurve: explicit parameters would let the sender choose the curve
 * arithmetic), and an uncompressed point (RFC 5480 §2.2: the form every implementation must
 * support and the one Trellis devices send). trellis_p256_from_point refuses a point off the
 * curve or at infinity.
 */
static trellis_err_t read_key(const TR_SPKI *spki, trellis_csr_t *out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_BAD_CSR;
    const ASN1_OBJECT *alg = NULL, *curve = NULL;
    const void *param = NULL;
    int ptype = V_ASN1_UNDEF;
    uint8_t point[TRELLIS_P256_POINT_LEN];

    X509_ALGOR_get0(&alg, &ptype, &param, spki->algorithm);
    if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey) {
        trellis_reason_set(reason, err, "public key: key type is %s, expected EC P-256",
                           oid_name(alg));
        goto out;
    }
    if (ptype != V_ASN1_OBJECT) {
        trellis_reason_set(reason, err,
                           "public key: key uses explicit curve parameters, expected named "
                           "curve P-256");
        goto out;
    }
    curve = param;
    if (OBJ_obj2nid(curve) != NID_X9_62_prime256v1) {
        trellis_reason_set(reason, err, "public key: key is on curve %s, expected P-256",
                           oid_name(curve));
        goto out;
    }
    const ASN1_BIT_STRING *bits = spki->public_key;
    if (ASN1_STRING_length(bits) != TRELLIS_P256_POINT_LEN ||
        (bits->flags & ASN1_STRING_FLAG_BITS_LEFT && (bits->flags & 0x07) != 0) ||
        ASN1_STRING_get0_data(bits)[0] != 0x04) {
        trellis_reason_set(reason, err,
                           "public key: not an uncompressed P-256 point (RFC 5480 §2.2)");
        goto out;
    }
    memcpy(point, ASN1_STRING_get0_data(bits), sizeof(point));
    err = trellis_p256_from_point(point, &out->key);
    if (err == TRELLIS_ERR_BAD_KEY) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR, "public key: point is not on P-256");
        goto out;
    }
    if (err != TRELLIS_OK)
        goto out;
    memcpy(out->point, point, sizeof(point));
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        EVP_PKEY_free(out->key);
        out->key = NULL;
    }
    return err;
}

/* RFC 5758 §3.2: ecdsa-with-SHA256, and "the encoding MUST omit the parameters field". */
static trellis_err_t check_signature_alg(const X509_ALGOR *alg, trellis_reason_t *reason)
{
    const ASN1_OBJECT *obj = NULL;
    int ptype = V_ASN1_UNDEF;

    X509_ALGOR_get0(&obj, &ptype, NULL, alg);
    if (OBJ_obj2nid(obj) != NID_ecdsa_with_SHA256)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "signature algorithm is %s, expected ecdsa-with-SHA256",
                                  oid_name(obj));
    if (ptype != V_ASN1_UNDEF)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "ecdsa-with-SHA256 must have no parameters (RFC 5758 §3.2)");
    return TRELLIS_OK;
}

/* The extensionRequest attribute (PKCS#9, or Microsoft's), decoded; NULL with TRELLIS_OK when
 * there is none. */
static trellis_err_t extension_request(const STACK_OF(X509_ATTRIBUTE) * attrs,
                                       STACK_OF(X509_EXTENSION) * *out, trellis_reason_t *reason)
{
    X509_ATTRIBUTE *found = NULL;
    int n_found = 0;

    *out = NULL;
    for (int i = 0; i < sk_X509_ATTRIBUTE_num(attrs); i++) {
        X509_ATTRIBUTE *attr = sk_X509_ATTRIBUTE_value(attrs, i);
        int nid = OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr));
        if (nid == NID_ext_req || nid == NID_ms_ext_req) {
            found = attr;
            n_found++;
        }
    }
    if (n_found == 0)
        return TRELLIS_OK;
    if (n_found > 1)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "more than one extensionRequest attribute");
    if (X509_ATTRIBUTE_count(found) != 1)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "extensionRequest must hold exactly one value");
    const ASN1_TYPE *value = X509_ATTRIBUTE_get0_type(found, 0);
    if (value == NULL || value->type != V_ASN1_SEQUENCE)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "extensionRequest does not decode as Extensions");
    const unsigned char *p = value->value.sequence->data;
    long len = value->value.sequence->length;
    *out = d2i_X509_EXTENSIONS(NULL, &p, len);
    if (*out == NULL || p != value->value.sequence->data + len) {
        sk_X509_EXTENSION_pop_free(*out, X509_EXTENSION_free);
        *out = NULL;
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "extensionRequest does not decode as Extensions");
    }
    return TRELLIS_OK;
}

/* Refused: a critical extension, basicConstraints cA TRUE, a repeated or malformed extension.
 * Everything else is counted and ignored. */
static trellis_err_t check_extensions(const STACK_OF(X509_ATTRIBUTE) * attrs, size_t *n_ignored,
                                      trellis_reason_t *reason)
{
    STACK_OF(X509_EXTENSION) *exts = NULL;
    BASIC_CONSTRAINTS *bc = NULL;

    *n_ignored = 0;
    trellis_err_t err = extension_request(attrs, &exts, reason);
    if (err != TRELLIS_OK || exts == NULL)
        return err;
    err = TRELLIS_ERR_BAD_CSR;
    int n = sk_X509_EXTENSION_num(exts);
    if (n > EXTENSIONS_MAX) {
        trellis_reason_set(reason, err, "more than %d requested extensions", EXTENSIONS_MAX);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        const ASN1_OBJECT *oid = X509_EXTENSION_get_object(ext);
        const char *sn = oid_name(oid);
        for (int j = 0; j < i; j++) {
            if (OBJ_cmp(oid, X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, j))) == 0) {
                trellis_reason_set(reason, err, "extension %s requested twice", sn);
                goto out;
            }
        }
        if (X509_EXTENSION_get_critical(ext)) {
            trellis_reason_set(reason, err,
                               "critical extension %s requested; the certificate profile is "
                               "fixed and critical requests are refused",
                               sn);
            goto out;
        }
        if (OBJ_obj2nid(oid) == NID_basic_constraints) {
            bc = X509V3_EXT_d2i(ext);
            if (bc == NULL) {
                trellis_reason_set(reason, err, "basicConstraints does not decode");
                goto out;
            }
            if (bc->ca) {
                trellis_reason_set(reason, err, "basicConstraints cA TRUE requested");
                goto out;
            }
            BASIC_CONSTRAINTS_free(bc);
            bc = NULL;
        }
        (*n_ignored)++;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        *n_ignored = 0;
    BASIC_CONSTRAINTS_free(bc);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return err;
}

/* Proof of possession (RFC 2986 §3): the signature over the certificationRequestInfo bytes as
 * received, with the key the request carries. The ECDSA-Sig-Value must be strict DER. */
static trellis_err_t check_signature(const TR_REQ *req, const EVP_PKEY *key,
                                     trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_BAD_CSR;
    unsigned char *tbs = NULL;
    uint8_t digest[TRELLIS_SHA256_LEN], raw[TRELLIS_P256_SIG_RAW_LEN];
    const ASN1_BIT_STRING *sig = req->signature;

    /* DER is checked already, so re-encoding the info gives back the signed bytes. */
    int n = ASN1_item_i2d((ASN1_VALUE *)req->info, &tbs, ASN1_ITEM_rptr(TR_REQ_INFO));
    if (n <= 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOMEM, "cannot encode the signed part");
        goto out;
    }
    if ((sig->flags & ASN1_STRING_FLAG_BITS_LEFT && (sig->flags & 0x07) != 0) ||
        trellis_ecdsa_der_to_raw(ASN1_STRING_get0_data(sig), (size_t)ASN1_STRING_length(sig),
                                 raw) != TRELLIS_OK) {
        trellis_reason_set(reason, err, "self-signature is not a DER ECDSA signature");
        goto out;
    }
    err = trellis_sha256(tbs, (size_t)n, digest);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_verify_digest(key, digest, raw);
    if (err == TRELLIS_ERR_BAD_SIGNATURE || err == TRELLIS_ERR_BAD_KEY)
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR, "self-signature does not verify");
out:
    OPENSSL_free(tbs);
    return err;
}

trellis_err_t trellis_csr_parse(const uint8_t *der, size_t len, trellis_csr_t *out,
                                trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    TR_REQ *req = NULL;

    trellis_reason_clear(reason);
    if (out == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output given");
    memset(out, 0, sizeof(*out));
    if (der == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no input given");
        goto out;
    }
    if (len > TRELLIS_CSR_DER_MAX) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "request is larger than %d bytes",
                                 TRELLIS_CSR_DER_MAX);
        goto out;
    }
    if (len == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR, "request is empty");
        goto out;
    }
    err = decode_der(der, len, &req, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* RFC 2986 §4.1: version is 0 (v1). */
    int64_t version = -1;
    if (ASN1_INTEGER_get_int64(&version, req->info->version) != 1 || version != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR, "version is not v1 (0)");
        goto out;
    }
    err = read_cn(req->info->subject, out->cn, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = read_key(req->info->spki, out, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = check_signature_alg(req->signature_algorithm, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = check_extensions(req->info->attributes, &out->n_ignored_extensions, reason);
    if (err != TRELLIS_OK)
        goto out;
    /* Last, as the costliest check. */
    err = check_signature(req, out->key, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_sha256(der, len, out->sha256);
out:
    ASN1_item_free((ASN1_VALUE *)req, ASN1_ITEM_rptr(TR_REQ));
    ERR_clear_error();
    if (err != TRELLIS_OK)
        trellis_csr_cleanup(out);
    return err;
}

void trellis_csr_cleanup(trellis_csr_t *csr)
{
    if (csr == NULL)
        return;
    EVP_PKEY_free(csr->key);
    memset(csr, 0, sizeof(*csr));
}

trellis_err_t trellis_csr_check_subject(const trellis_csr_t *csr, const char *device_id,
                                        trellis_reason_t *reason)
{
    trellis_reason_clear(reason);
    if (csr == NULL || device_id == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "NULL argument");
    if (strcmp(csr->cn, device_id) != 0)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CSR,
                                  "subject common name is not the attested device id");
    return TRELLIS_OK;
}

static int has_private(const EVP_PKEY *key)
{
    BIGNUM *priv = NULL;
    int has = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1 && priv != NULL;
    BN_clear_free(priv);
    ERR_clear_error();
    return has;
}

trellis_err_t trellis_csr_build(const EVP_PKEY *key, const char *common_name, uint8_t *out,
                                size_t out_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    X509_REQ *req = NULL;
    unsigned char *der = NULL;

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    if (key == NULL || common_name == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    size_t cn_len = strlen(common_name);
    if (cn_len == 0 || cn_len > TRELLIS_CSR_CN_MAX ||
        !printable_ascii((const unsigned char *)common_name, cn_len))
        return TRELLIS_ERR_INVALID_ARG;
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_BAD_KEY;
    if (!has_private(key))
        goto out;
    err = TRELLIS_ERR_NOMEM;
    req = X509_REQ_new();
    if (req == NULL)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    X509_NAME *name = X509_REQ_get_subject_name(req);
    if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 || name == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)common_name, -1,
                                   -1, 0) != 1 ||
        X509_REQ_set_pubkey(req, pkey_mutable(key)) != 1 ||
        X509_REQ_sign(req, pkey_mutable(key), EVP_sha256()) <= 0)
        goto out;
    int n = i2d_X509_REQ(req, &der);
    if (n <= 0)
        goto out;
    *out_len = (size_t)n;
    err = TRELLIS_ERR_BUFFER_TOO_SMALL;
    if (out == NULL || out_size < (size_t)n) {
        /* Another signature may be longer: answer with room for the longest one, plus the
         * length octets that may grow with it. */
        const ASN1_BIT_STRING *sig = NULL;
        X509_REQ_get0_signature(req, &sig, NULL);
        int sig_len = sig != NULL ? ASN1_STRING_length(sig) : 0;
        if (sig_len > 0 && sig_len <= TRELLIS_P256_SIG_DER_MAX)
            *out_len += (size_t)(TRELLIS_P256_SIG_DER_MAX - sig_len) + 2;
        goto out;
    }
    memcpy(out, der, (size_t)n);
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK && err != TRELLIS_ERR_BUFFER_TOO_SMALL)
        *out_len = 0;
    OPENSSL_free(der);
    X509_REQ_free(req);
    ERR_clear_error();
    return err;
}
