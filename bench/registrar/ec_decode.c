/*
 * A cheaper decode of the registrar's certificate key for the simulated devices.
 *
 * OpenSSL 3.0 decodes every certificate's public key through its provider decoder framework,
 * which sets up a decoder chain per call (OSSL_DECODER_CTX_new_for_pkey): on this machine about
 * a fifth of a simulated device's CPU per handshake. libcrypto takes its older decode (an ASN.1
 * method's pub_decode, a direct parse of the point) instead whenever an engine is registered for
 * the EC key type. The load generator registers one that hands back libcrypto's own built-in EC
 * key method, and an ASN.1 method that is the built-in one except that it decodes a named P-256
 * key onto a copy of one P-256 group made at start, where the built-in one builds the group
 * from its name for every certificate (another 15-30 µs). The key, the CertificateVerify check
 * and its result are the same; only the work of finding the decoder and building the group
 * goes. Any other key type or curve is refused, and the handshake with it fails. Deprecated API
 * (ENGINE, EC_KEY), so it lives in a file of its own; the product never uses it.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "ec_decode.h"

#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

/* Made once by bench_ec_decode_install and kept for the process. */
static EVP_PKEY_METHOD *ec_method;
static EVP_PKEY_ASN1_METHOD *ec_asn1;
static EC_GROUP *p256;

static int ec_methods(ENGINE *e, EVP_PKEY_METHOD **method, const int **nids, int nid)
{
    static const int list[] = {EVP_PKEY_EC};
    (void)e;
    if (method == NULL) {
        *nids = list;
        return 1;
    }
    *method = nid == EVP_PKEY_EC ? ec_method : NULL;
    return *method != NULL;
}

static int ec_asn1_methods(ENGINE *e, EVP_PKEY_ASN1_METHOD **method, const int **nids, int nid)
{
    static const int list[] = {EVP_PKEY_EC};
    (void)e;
    if (method == NULL) {
        *nids = list;
        return 1;
    }
    *method = nid == EVP_PKEY_EC ? ec_asn1 : NULL;
    return *method != NULL;
}

/* id-ecPublicKey with namedCurve prime256v1 and an encoded point, onto a copy of p256. */
static int pub_decode(EVP_PKEY *pkey, const X509_PUBKEY *pub)
{
    const unsigned char *p = NULL;
    int len = 0, ptype = 0;
    const void *pval = NULL;
    X509_ALGOR *alg = NULL;
    EC_KEY *ec = NULL;
    if (X509_PUBKEY_get0_param(NULL, &p, &len, &alg, pub) != 1)
        return 0;
    X509_ALGOR_get0(NULL, &ptype, &pval, alg);
    if (ptype != V_ASN1_OBJECT || OBJ_obj2nid(pval) != NID_X9_62_prime256v1)
        return 0;
    ec = EC_KEY_new();
    if (ec == NULL || EC_KEY_set_group(ec, p256) != 1 || o2i_ECPublicKey(&ec, &p, len) == NULL ||
        EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
        EC_KEY_free(ec);
        return 0;
    }
    return 1;
}

static int pub_cmp(const EVP_PKEY *a, const EVP_PKEY *b)
{
    const EC_KEY *ka = EVP_PKEY_get0_EC_KEY(a), *kb = EVP_PKEY_get0_EC_KEY(b);
    const EC_POINT *pa = ka != NULL ? EC_KEY_get0_public_key(ka) : NULL;
    const EC_POINT *pb = kb != NULL ? EC_KEY_get0_public_key(kb) : NULL;
    if (pa == NULL || pb == NULL)
        return -2;
    int r = EC_POINT_cmp(EC_KEY_get0_group(ka), pa, pb, NULL);
    return r == 0 ? 1 : r == 1 ? 0 : -2;
}

static int pkey_size(const EVP_PKEY *pkey)
{
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
    return ec != NULL ? ECDSA_size(ec) : 0;
}

static int pkey_bits(const EVP_PKEY *pkey)
{
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
    return ec != NULL ? EC_GROUP_order_bits(EC_KEY_get0_group(ec)) : 0;
}

int bench_ec_decode_install(void)
{
    const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_EC);
    const EVP_PKEY_ASN1_METHOD *builtin_asn1 = EVP_PKEY_asn1_find(NULL, EVP_PKEY_EC);
    p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    ec_method = EVP_PKEY_meth_new(EVP_PKEY_EC, 0);
    ec_asn1 = EVP_PKEY_asn1_new(EVP_PKEY_EC, 0, "EC", "P-256 onto a shared group");
    if (builtin == NULL || builtin_asn1 == NULL || p256 == NULL || ec_method == NULL ||
        ec_asn1 == NULL)
        return -1;
    EVP_PKEY_meth_copy(ec_method, builtin);
    EVP_PKEY_asn1_copy(ec_asn1, builtin_asn1);
    /* pub_encode and pub_print stay unset: certificates keep their own encoding. */
    EVP_PKEY_asn1_set_public(ec_asn1, pub_decode, NULL, pub_cmp, NULL, pkey_size, pkey_bits);
    ENGINE *e = ENGINE_new();
    int ok = e != NULL && ENGINE_set_id(e, "trellis-bench-ec") == 1 &&
             ENGINE_set_name(e, "libcrypto's built-in EC methods, one P-256 group") == 1 &&
             ENGINE_set_pkey_meths(e, ec_methods) == 1 &&
             ENGINE_set_pkey_asn1_meths(e, ec_asn1_methods) == 1 &&
             ENGINE_set_default_pkey_meths(e) == 1 && ENGINE_set_default_pkey_asn1_meths(e) == 1;
    ENGINE_free(e); /* the registrations keep their own references */
    return ok ? 0 : -1;
}
