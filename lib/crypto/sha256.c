#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crypto_internal.h"

#define SHA256_FILE_CHUNK (64 * 1024)

/*
 * SHA-256 fetched from the default provider once per process. EVP_sha256() is a legacy handle
 * that EVP_DigestInit_ex resolves again on every call (a name lookup in the provider's method
 * store under its lock), which costs several times the hash of a CSR. Kept for the life of the
 * process; NULL if the fetch failed, and then the legacy handle is used.
 */
static EVP_MD *sha256_fetched;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256_md(void)
{
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_fetched != NULL ? sha256_fetched : EVP_sha256();
}

trellis_err_t trellis_sha256(const uint8_t *data, size_t len,
                             uint8_t out[static TRELLIS_SHA256_LEN])
{
    return trellis_sha256_two(data, len, NULL, 0, out);
}

trellis_err_t trellis_sha256_two(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                                 uint8_t out[static TRELLIS_SHA256_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    unsigned int out_len = 0;

    memset(out, 0, TRELLIS_SHA256_LEN);
    if ((a == NULL && a_len > 0) || (b == NULL && b_len > 0)) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, sha256_md(), NULL) != 1 ||
        (a_len > 0 && EVP_DigestUpdate(ctx, a, a_len) != 1) ||
        (b_len > 0 && EVP_DigestUpdate(ctx, b, b_len) != 1) ||
        EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != TRELLIS_SHA256_LEN) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TRELLIS_SHA256_LEN);
    EVP_MD_CTX_free(ctx);
    return tr__crypto_fail(err);
}

static trellis_err_t errno_to_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return TRELLIS_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
        return TRELLIS_ERR_PERMISSION;
    case ENOMEM:
        return TRELLIS_ERR_NOMEM;
    default:
        return TRELLIS_ERR_IO;
    }
}

trellis_err_t trellis_sha256_file(const char *path, uint8_t out[static TRELLIS_SHA256_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    uint8_t *chunk = NULL;
    int fd = -1;
    struct stat st;
    unsigned int out_len = 0;

    memset(out, 0, TRELLIS_SHA256_LEN);
    if (path == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* O_NONBLOCK so that opening a FIFO by mistake cannot hang; it is refused just below. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        err = errno_to_err(errno);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        err = errno_to_err(errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    chunk = malloc(SHA256_FILE_CHUNK);
    ctx = EVP_MD_CTX_new();
    if (chunk == NULL || ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, sha256_md(), NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, SHA256_FILE_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno_to_err(errno);
            goto out;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(ctx, chunk, (size_t)n) != 1) {
            err = TRELLIS_ERR_CRYPTO;
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != TRELLIS_SHA256_LEN) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TRELLIS_SHA256_LEN);
    EVP_MD_CTX_free(ctx);
    free(chunk);
    if (fd >= 0)
        close(fd);
    return tr__crypto_fail(err);
}
