/* A throwaway test PKI: see test_pki.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_pki.h"

#define VALID_SECONDS (30L * 24L * 3600L)

enum cert_kind { KIND_ROOT, KIND_INTERMEDIATE, KIND_SERVER, KIND_CLIENT };

static trellis_err_t join(char out[TRELLIS_TEST_PKI_PATH], const char *dir, const char *name)
{
    int n = snprintf(out, TRELLIS_TEST_PKI_PATH, "%s/%s", dir, name);
    return (n < 0 || n >= TRELLIS_TEST_PKI_PATH) ? TRELLIS_ERR_INVALID_ARG : TRELLIS_OK;
}

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

static trellis_err_t add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (ext == NULL)
        return TRELLIS_ERR_CRYPTO;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? TRELLIS_OK : TRELLIS_ERR_CRYPTO;
}

/* RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random bytes, top bit clear. */
static trellis_err_t set_serial(X509 *cert)
{
    unsigned char raw[16];
    BIGNUM *bn = NULL;
    trellis_err_t err = TRELLIS_ERR_CRYPTO;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        goto out;
    raw[0] &= 0x7f;
    raw[0] |= 0x01; /* never zero */
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL)
        goto out;
    err = TRELLIS_OK;
out:
    BN_free(bn);
    return err;
}

static trellis_err_t make_cert(enum cert_kind kind, const char *cn, const char *san, EVP_PKEY *key,
                               X509 *issuer, EVP_PKEY *issuer_key, X509 **out)
{
    trellis_err_t err = TRELLIS_ERR_CRYPTO;
    X509 *cert = NULL;
    X509_NAME *name = NULL;
    X509V3_CTX ctx;

    *out = NULL;
    cert = X509_new();
    name = X509_NAME_new();
    if (cert == NULL || name == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (X509_set_version(cert, 2) != 1 || set_serial(cert) != TRELLIS_OK)
        goto out;
    if (X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(cert), VALID_SECONDS) == NULL)
        goto out;
    if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Trellis Test",
                                   -1, -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        goto out;
    if (X509_set_subject_name(cert, name) != 1 ||
        X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
        X509_set_pubkey(cert, key) != 1)
        goto out;

    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
    switch (kind) {
    case KIND_ROOT:
        err = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        if (err == TRELLIS_OK)
            err = add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        break;
    case KIND_INTERMEDIATE:
        err = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
        if (err == TRELLIS_OK)
            err = add_ext(cert, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
        break;
    case KIND_SERVER:
    case KIND_CLIENT:
        err = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE");
        if (err == TRELLIS_OK)
            err = add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature");
        if (err == TRELLIS_OK)
            err = add_ext(cert, &ctx, NID_ext_key_usage,
                          kind == KIND_SERVER ? "serverAuth" : "clientAuth");
        if (err == TRELLIS_OK && san != NULL)
            err = add_ext(cert, &ctx, NID_subject_alt_name, san);
        break;
    }
    if (err == TRELLIS_OK)
        err = add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
    if (err == TRELLIS_OK && issuer != NULL)
        err = add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_CRYPTO;
    if (X509_sign(cert, issuer_key, EVP_sha256()) <= 0)
        goto out;
    *out = cert;
    cert = NULL;
    err = TRELLIS_OK;
out:
    X509_NAME_free(name);
    X509_free(cert);
    return err;
}

static trellis_err_t write_key(const char *path, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return TRELLIS_ERR_IO;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return TRELLIS_ERR_IO;
    }
    int ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(f) != 0)
        ok = 0;
    return ok == 1 ? TRELLIS_OK : TRELLIS_ERR_IO;
}

static trellis_err_t write_certs(const char *path, X509 *first, X509 *second)
{
    FILE *f = fopen(path, "wx");
    if (f == NULL)
        return TRELLIS_ERR_IO;
    int ok = PEM_write_X509(f, first);
    if (ok == 1 && second != NULL)
        ok = PEM_write_X509(f, second);
    if (fclose(f) != 0)
        ok = 0;
    return ok == 1 ? TRELLIS_OK : TRELLIS_ERR_IO;
}

/* Makes a key and a certificate of that kind and writes both; cert_path gets the leaf and,
 * when chain is not NULL, chain after it. */
static trellis_err_t issue(enum cert_kind kind, const char *cn, const char *san, X509 *issuer,
                           EVP_PKEY *issuer_key, X509 *chain, const char *cert_path,
                           const char *key_path, X509 **out_cert, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *key = new_key();
    X509 *cert = NULL;

    if (key == NULL) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = make_cert(kind, cn, san, key, issuer, issuer != NULL ? issuer_key : key, &cert);
    if (err != TRELLIS_OK)
        goto out;
    if (cert_path != NULL) {
        err = write_certs(cert_path, cert, chain);
        if (err != TRELLIS_OK)
            goto out;
    }
    if (key_path != NULL) {
        err = write_key(key_path, key);
        if (err != TRELLIS_OK)
            goto out;
    }
    if (out_cert != NULL) {
        *out_cert = cert;
        cert = NULL;
    }
    if (out_key != NULL) {
        *out_key = key;
        key = NULL;
    }
    err = TRELLIS_OK;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return err;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char path[TRELLIS_TEST_PKI_PATH * 2];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

void trellis_test_pki_destroy(trellis_test_pki_t *pki)
{
    if (pki == NULL)
        return;
    X509_free(pki->ca);
    X509_free(pki->inter);
    X509_free(pki->other);
    EVP_PKEY_free(pki->ca_pkey);
    EVP_PKEY_free(pki->inter_pkey);
    EVP_PKEY_free(pki->other_pkey);
    if (pki->dir[0] != '\0')
        remove_tree(pki->dir);
    memset(pki, 0, sizeof(*pki));
}

trellis_err_t trellis_test_pki_create(trellis_test_pki_t *pki)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (pki == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(pki, 0, sizeof(*pki));
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    int n = snprintf(pki->dir, sizeof(pki->dir), "%s/trellis-pki-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof(pki->dir) - 64) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (mkdtemp(pki->dir) == NULL) {
        pki->dir[0] = '\0';
        err = TRELLIS_ERR_IO;
        goto out;
    }
    if ((err = join(pki->ca_cert, pki->dir, "ca.pem")) != TRELLIS_OK ||
        (err = join(pki->ca_key, pki->dir, "ca.key")) != TRELLIS_OK ||
        (err = join(pki->inter_cert, pki->dir, "intermediate.pem")) != TRELLIS_OK ||
        (err = join(pki->server_cert, pki->dir, "server.pem")) != TRELLIS_OK ||
        (err = join(pki->server_key, pki->dir, "server.key")) != TRELLIS_OK ||
        (err = join(pki->other_ca_cert, pki->dir, "other-ca.pem")) != TRELLIS_OK)
        goto out;

    err = issue(KIND_ROOT, "Trellis Test Root CA", NULL, NULL, NULL, NULL, pki->ca_cert,
                pki->ca_key, &pki->ca, &pki->ca_pkey);
    if (err != TRELLIS_OK)
        goto out;
    err = issue(KIND_INTERMEDIATE, "Trellis Test Intermediate CA", NULL, pki->ca, pki->ca_pkey,
                NULL, pki->inter_cert, NULL, &pki->inter, &pki->inter_pkey);
    if (err != TRELLIS_OK)
        goto out;
    err = issue(KIND_SERVER, "localhost", "IP:127.0.0.1,DNS:localhost", pki->inter, pki->inter_pkey,
                pki->inter, pki->server_cert, pki->server_key, NULL, NULL);
    if (err != TRELLIS_OK)
        goto out;
    err = issue(KIND_ROOT, "Unrelated Test Root CA", NULL, NULL, NULL, NULL, pki->other_ca_cert,
                NULL, &pki->other, &pki->other_pkey);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        trellis_test_pki_destroy(pki);
    ERR_clear_error();
    return err;
}

static trellis_err_t issue_pair(trellis_test_pki_t *pki, enum cert_kind kind, const char *cn,
                                const char *san, bool other_ca, trellis_test_pki_pair_t *out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char name[64];

    if (pki == NULL || cn == NULL || out == NULL || pki->ca == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(out, 0, sizeof(*out));
    unsigned id = ++pki->issued;
    snprintf(name, sizeof(name), "issued-%u.pem", id);
    if ((err = join(out->cert, pki->dir, name)) != TRELLIS_OK)
        goto out;
    snprintf(name, sizeof(name), "issued-%u.key", id);
    if ((err = join(out->key, pki->dir, name)) != TRELLIS_OK)
        goto out;
    X509 *issuer = pki->ca;
    EVP_PKEY *issuer_key = pki->ca_pkey;
    X509 *chain = NULL;
    if (other_ca) {
        issuer = pki->other;
        issuer_key = pki->other_pkey;
    } else if (kind == KIND_SERVER) {
        issuer = pki->inter;
        issuer_key = pki->inter_pkey;
        chain = pki->inter;
    }
    err = issue(kind, cn, san, issuer, issuer_key, chain, out->cert, out->key, NULL, NULL);
out:
    if (err != TRELLIS_OK) {
        unlink(out->cert);
        unlink(out->key);
        memset(out, 0, sizeof(*out));
    }
    ERR_clear_error();
    return err;
}

trellis_err_t trellis_test_pki_client(trellis_test_pki_t *pki, const char *cn, bool other_ca,
                                      trellis_test_pki_pair_t *out)
{
    return issue_pair(pki, KIND_CLIENT, cn, NULL, other_ca, out);
}

trellis_err_t trellis_test_pki_server(trellis_test_pki_t *pki, const char *cn, const char *san,
                                      bool other_ca, trellis_test_pki_pair_t *out)
{
    if (san == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    return issue_pair(pki, KIND_SERVER, cn, san, other_ca, out);
}
