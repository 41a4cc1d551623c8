#include <limits.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto_internal.h"
#include "trellis/fsutil.h"

/* Encrypted keys are refused rather than prompting on a terminal nobody watches. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)userdata;
    return -1;
}

/* Decodes the first private key of a PEM buffer and checks it. */
static trellis_err_t private_from_pem(const uint8_t *pem, size_t len, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;

    *out_key = NULL;
    if (len > INT_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase, NULL);
    if (key == NULL) {
        err = TRELLIS_ERR_PARSE;
        goto out;
    }
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    return tr__crypto_fail(err);
}

/* Decodes the first SubjectPublicKeyInfo ("PUBLIC KEY") of a PEM buffer, unchecked. */
static trellis_err_t spki_from_pem(const uint8_t *pem, size_t len, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;

    *out_key = NULL;
    if (len > INT_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    *out_key = PEM_read_bio_PUBKEY(bio, NULL, refuse_passphrase, NULL);
    err = *out_key != NULL ? TRELLIS_OK : TRELLIS_ERR_PARSE;
out:
    BIO_free(bio);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_load_private_pem(const char *path, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t *pem = NULL;
    size_t pem_len = 0;

    if (out_key != NULL)
        *out_key = NULL;
    if (out_key == NULL || path == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = trellis_file_read_all(path, TRELLIS_KEY_FILE_MAX, &pem, &pem_len);
    if (err != TRELLIS_OK)
        goto out;
    err = private_from_pem(pem, pem_len, out_key);
out:
    trellis_file_buffer_free(pem, pem_len);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_load_public_pem(const char *path, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t *pem = NULL;
    size_t pem_len = 0;
    EVP_PKEY *key = NULL;
    EVP_PKEY *priv = NULL;
    uint8_t point[TRELLIS_P256_POINT_LEN];

    if (out_key != NULL)
        *out_key = NULL;
    if (out_key == NULL || path == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = trellis_file_read_all(path, TRELLIS_KEY_FILE_MAX, &pem, &pem_len);
    if (err != TRELLIS_OK)
        goto out;
    err = spki_from_pem(pem, pem_len, &key);
    if (err == TRELLIS_ERR_PARSE) {
        /* No "PUBLIC KEY" block: take the public half of a private key, rebuilt from its point
         * so that the returned object never carries the private scalar. */
        err = private_from_pem(pem, pem_len, &priv);
        if (err != TRELLIS_OK)
            goto out;
        err = trellis_p256_public_point(priv, point);
        if (err != TRELLIS_OK)
            goto out;
        err = trellis_p256_from_point(point, &key);
    }
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(priv);
    EVP_PKEY_free(key);
    trellis_file_buffer_free(pem, pem_len);
    return tr__crypto_fail(err);
}

/* PEM if, after optional whitespace, the text opens with a PEM boundary (RFC 7468 §2). */
static int looks_like_pem(const uint8_t *buf, size_t len)
{
    static const char boundary[] = "-----BEGIN ";
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    return len - i >= sizeof(boundary) - 1 && memcmp(buf + i, boundary, sizeof(boundary) - 1) == 0;
}

trellis_err_t trellis_p256_public_from_spki(const uint8_t *buf, size_t len, EVP_PKEY **out_key)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY *key = NULL;
    const unsigned char *p = buf;

    if (out_key != NULL)
        *out_key = NULL;
    if (out_key == NULL || buf == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    if (len > TRELLIS_SPKI_MAX) {
        err = TRELLIS_ERR_TOO_LARGE;
        goto out;
    }
    if (looks_like_pem(buf, len)) {
        err = spki_from_pem(buf, len, &key);
        if (err != TRELLIS_OK)
            goto out;
    } else {
        /* SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), DER spanning the whole buffer. */
        key = d2i_PUBKEY(NULL, &p, (long)len);
        if (key == NULL || p != buf + len) {
            err = TRELLIS_ERR_PARSE;
            goto out;
        }
    }
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    *out_key = key;
    key = NULL;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_save_private_pem(const EVP_PKEY *key, const char *path)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;

    if (key == NULL || path == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    if (!tr__p256_has_private(key)) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* PEM_write_bio_PrivateKey writes PKCS#8 (RFC 5958), unencrypted: the file mode guards it. */
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    if (pem == NULL || pem_len <= 0) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = trellis_file_write_atomic(path, pem, (size_t)pem_len, TRELLIS_FILE_SECRET);
out:
    if (pem != NULL && pem_len > 0)
        OPENSSL_cleanse(pem, (size_t)pem_len);
    BIO_free(bio);
    return tr__crypto_fail(err);
}

trellis_err_t trellis_p256_save_public_pem(const EVP_PKEY *key, const char *path)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;

    if (key == NULL || path == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = trellis_p256_check_key(key, NULL);
    if (err != TRELLIS_OK)
        goto out;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (PEM_write_bio_PUBKEY(bio, key) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    pem_len = BIO_get_mem_data(bio, &pem);
    if (pem == NULL || pem_len <= 0) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = trellis_file_write_atomic(path, pem, (size_t)pem_len, TRELLIS_FILE_PUBLIC);
out:
    BIO_free(bio);
    return tr__crypto_fail(err);
}
