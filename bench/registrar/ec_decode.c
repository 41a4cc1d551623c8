/*
 * A cheaper decode of the registrar's certificate key for the simulated devices.
 *
 * OpenSSL 3.0 decodes every certificate's public key through its provider decoder framework,
 * which sets up a decoder chain per call (OSSL_DECODER_CTX_new_for_pkey): on this machine about
 * a fifth of a simulated device's CPU per handshake. libcrypto takes its older decode (the EC
 * ASN.1 method, a direct parse of the point) instead whenever an engine is registered for the
 * EC key type, so the load generator registers one that hands back libcrypto's own built-in EC
 * method: the key, the CertificateVerify check and its result are the same; only the work of
 * finding the decoder goes. Deprecated API (ENGINE), so it lives in a file of its own; the
 * product never uses it.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "ec_decode.h"

#include <openssl/engine.h>
#include <openssl/evp.h>

static EVP_PKEY_METHOD *ec_method; /* a copy of the built-in one, kept for the process */

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

int bench_ec_decode_install(void)
{
    const EVP_PKEY_METHOD *builtin = EVP_PKEY_meth_find(EVP_PKEY_EC);
    if (builtin == NULL || (ec_method = EVP_PKEY_meth_new(EVP_PKEY_EC, 0)) == NULL)
        return -1;
    EVP_PKEY_meth_copy(ec_method, builtin);
    ENGINE *e = ENGINE_new();
    int ok = e != NULL && ENGINE_set_id(e, "trellis-bench-ec") == 1 &&
             ENGINE_set_name(e, "libcrypto's built-in EC method") == 1 &&
             ENGINE_set_pkey_meths(e, ec_methods) == 1 && ENGINE_set_default_pkey_meths(e) == 1;
    ENGINE_free(e); /* the registration keeps its own reference */
    return ok ? 0 : -1;
}
