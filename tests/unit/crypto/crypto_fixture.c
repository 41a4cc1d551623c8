#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto_fixture.h"
#include "test_support.h"

char *fixture_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char templ[4096];
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    int n = snprintf(templ, sizeof(templ), "%s/trellis-crypto-XXXXXX", base);
    assert_true(n > 0 && (size_t)n < sizeof(templ));
    assert_non_null(mkdtemp(templ));
    char *dir = strdup(templ);
    assert_non_null(dir);
    return dir;
}

void fixture_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[4096];
        fixture_path(path, sizeof(path), dir, e->d_name);
        assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

void fixture_path(char *out, size_t out_size, const char *dir, const char *name)
{
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < out_size);
}

void fixture_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void fixture_write_private_pem(const char *path, const EVP_PKEY *key)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

void fixture_write_public_pem(const char *path, const EVP_PKEY *key)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, key), 1);
    assert_int_equal(fclose(f), 0);
}

uint8_t *fixture_spki_der(const EVP_PKEY *key, size_t *len)
{
    uint8_t *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}

static EVP_PKEY *ec_key(const char *curve)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(key);
    return key;
}

EVP_PKEY *fixture_key(const char *kind)
{
    EVP_PKEY *key = NULL;
    if (strcmp(kind, "rsa") == 0) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    } else if (strcmp(kind, "p384") == 0) {
        key = ec_key("P-384");
    } else if (strcmp(kind, "secp256k1") == 0) {
        key = ec_key("secp256k1");
    } else if (strcmp(kind, "p192") == 0) {
        key = ec_key("P-192");
    } else if (strcmp(kind, "explicit-p256") == 0) {
        /* A genuine P-256 key whose encoders then spell out the curve parameters. */
        key = ec_key("P-256");
        assert_int_equal(EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING,
                                                        OSSL_PKEY_EC_ENCODING_EXPLICIT),
                         1);
    } else if (strcmp(kind, "ed25519") == 0) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    }
    assert_non_null(key);
    return key;
}
