/*
 * The file RoT backend (rot_file.h): a simulated secure element in a directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "device_internal.h"
#include "trellis/rot_file.h"

#define KEY_FILE_MAX (16 * 1024) /* a P-256 PKCS#8 PEM is about 250 bytes */
#define IMPL_LABEL   "trellis:rot:file:1"

/* Never prompt for a passphrase: an encrypted key file is refused, not unlocked. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static trellis_err_t errno_to_err(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return TRELLIS_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
    case ELOOP:
        return TRELLIS_ERR_PERMISSION;
    case EEXIST:
        return TRELLIS_ERR_EXISTS;
    default:
        return TRELLIS_ERR_IO;
    }
}

static trellis_err_t key_path(const char *dir, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%s", dir, TRELLIS_ROT_FILE_KEY_NAME);
    if (n < 0 || (size_t)n >= size) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    return TRELLIS_OK;
}

/* Checks that key is EC on the named curve P-256 (explicit parameters refused, even when they
 * spell out P-256) and that its private and public halves belong together. */
static trellis_err_t check_p256(EVP_PKEY *key, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char group[64] = {0};
    char encoding[32] = {0};
    EVP_PKEY_CTX *ctx = NULL;

    if (!EVP_PKEY_is_a(key, "EC")) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "RoT key is not an EC key");
        goto out;
    }
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "RoT key is not on P-256");
        goto out;
    }
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, encoding, sizeof(encoding),
                                       NULL) == 1 &&
        strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "RoT key uses explicit curve parameters");
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_pairwise_check(ctx) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "RoT key halves do not match");
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    return err;
}

static trellis_err_t point_of(EVP_PKEY *key, uint8_t point[TRELLIS_ROT_POINT_LEN])
{
    size_t len = 0;

    /* Ask for the uncompressed form whatever form the file was written in. */
    if (EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) != 1) {
        return TRELLIS_ERR_CRYPTO;
    }
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                        TRELLIS_ROT_POINT_LEN, &len) != 1 ||
        len != TRELLIS_ROT_POINT_LEN || point[0] != 0x04) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        return TRELLIS_ERR_BAD_KEY;
    }
    return TRELLIS_OK;
}

/* Reads the key file after checking it is a regular file of ours that nobody else can read. */
static trellis_err_t read_key_file(const char *path, uint8_t *buf, size_t size, size_t *len,
                                   trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int fd = -1;
    struct stat st;
    size_t used = 0;

    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        err = errno_to_err(errno);
        err = trellis_reason_set(reason, err, "cannot open RoT key file: %s",
                                 trellis_err_message(err));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PERMISSION,
                                 "RoT key file is not a regular file");
        goto out;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PERMISSION,
                                 "RoT key file must be owned by this user with mode 0600 (is %04o)",
                                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    for (;;) {
        if (used == size) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "RoT key file is too large");
            goto out;
        }
        ssize_t n = read(fd, buf + used, size - used);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = TRELLIS_ERR_IO;
            goto out;
        }
        if (n == 0) {
            break;
        }
        used += (size_t)n;
    }
    *len = used;
    err = TRELLIS_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (err != TRELLIS_OK) {
        tr__dev_wipe(buf, size);
    }
    return err;
}

static trellis_err_t file_public_key(void *ctx, uint8_t point[TRELLIS_ROT_POINT_LEN])
{
    const trellis_rot_file_t *rot = ctx;

    if (rot == NULL || point == NULL || !rot->is_open) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memcpy(point, rot->point, TRELLIS_ROT_POINT_LEN);
    return TRELLIS_OK;
}

static trellis_err_t file_sign_digest(void *ctx, const uint8_t digest[TRELLIS_ROT_DIGEST_LEN],
                                      uint8_t sig[TRELLIS_ROT_SIG_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const trellis_rot_file_t *rot = ctx;
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *esig = NULL;
    uint8_t der[80];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    const BIGNUM *r = NULL;
    const BIGNUM *s = NULL;

    if (sig == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(sig, 0, TRELLIS_ROT_SIG_LEN);
    if (rot == NULL || digest == NULL || !rot->is_open) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, rot->key, NULL);
    if (pctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* The digest is signed as is (ECDSA over a precomputed SHA-256), never hashed again. */
    if (EVP_PKEY_sign_init(pctx) != 1 ||
        EVP_PKEY_sign(pctx, der, &der_len, digest, TRELLIS_ROT_DIGEST_LEN) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* RFC 3279 §2.2.3 Ecdsa-Sig-Value -> r || s, each left-padded to 32 bytes (RFC 9053 §2.1). */
    esig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (esig == NULL || p != der + der_len) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    ECDSA_SIG_get0(esig, &r, &s);
    if (BN_bn2binpad(r, sig, 32) != 32 || BN_bn2binpad(s, sig + 32, 32) != 32) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    ECDSA_SIG_free(esig);
    EVP_PKEY_CTX_free(pctx);
    if (err != TRELLIS_OK) {
        memset(sig, 0, TRELLIS_ROT_SIG_LEN);
        ERR_clear_error();
    }
    return err;
}

static trellis_err_t file_report(void *ctx, trellis_rot_report_t *out)
{
    const trellis_rot_file_t *rot = ctx;

    if (rot == NULL || out == NULL || !rot->is_open) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    *out = rot->report;
    return TRELLIS_OK;
}

trellis_err_t trellis_rot_file_open(trellis_rot_file_t *rot, const char *dir,
                                    const trellis_rot_measure_options_t *opts,
                                    trellis_rot_port_t *port, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char path[TRELLIS_ROT_PATH_MAX + 1];
    uint8_t pem[KEY_FILE_MAX];
    size_t pem_len = 0;
    BIO *bio = NULL;
    EVP_PKEY *key = NULL;

    trellis_reason_clear(reason);
    if (port != NULL) {
        memset(port, 0, sizeof(*port));
    }
    if (rot == NULL || dir == NULL || port == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(rot, 0, sizeof(*rot));
    if (key_path(dir, path, sizeof(path)) != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "RoT directory path too long");
        goto out;
    }
    err = read_key_file(path, pem, sizeof(pem), &pem_len, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (key == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                 "RoT key file holds no unencrypted private key");
        goto out;
    }
    err = check_p256(key, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = point_of(key, rot->point);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = tr__dev_platform_report(IMPL_LABEL, NULL, 0, opts ? opts->firmware_path : NULL,
                                  opts ? opts->firmware_version : NULL, &rot->report, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    rot->key = key;
    key = NULL;
    rot->is_open = 1;
    port->version = TRELLIS_ROT_PORT_VERSION;
    port->ctx = rot;
    port->public_key = file_public_key;
    port->sign_digest = file_sign_digest;
    port->report = file_report;
    err = TRELLIS_OK;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    tr__dev_wipe(pem, sizeof(pem));
    if (err != TRELLIS_OK) {
        ERR_clear_error();
        trellis_rot_file_close(rot);
        if (port != NULL) {
            memset(port, 0, sizeof(*port));
        }
    }
    return err;
}

void trellis_rot_file_close(trellis_rot_file_t *rot)
{
    if (rot == NULL) {
        return;
    }
    /* EVP_PKEY_free clears the private scalar (BN_clear_free) before releasing it. */
    EVP_PKEY_free(rot->key);
    memset(rot, 0, sizeof(*rot));
}

static trellis_err_t write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return TRELLIS_ERR_IO;
        }
        buf += n;
        len -= (size_t)n;
    }
    return TRELLIS_OK;
}

static trellis_err_t fsync_path(const char *path)
{
    trellis_err_t err = TRELLIS_ERR_IO;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd < 0) {
        return errno_to_err(errno);
    }
    if (fsync(fd) == 0) {
        err = TRELLIS_OK;
    }
    close(fd);
    return err;
}

trellis_err_t trellis_rot_file_generate(const char *dir, unsigned flags,
                                        uint8_t point[static TRELLIS_ROT_POINT_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char path[TRELLIS_ROT_PATH_MAX + 1];
    EVP_PKEY *key = NULL;
    BIO *bio = NULL;
    BUF_MEM *mem = NULL;
    int fd = -1;
    int created = 0;

    if (point == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(point, 0, TRELLIS_ROT_POINT_LEN);
    if (dir == NULL || (flags & ~TRELLIS_ROT_FILE_DURABLE) != 0) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = key_path(dir, path, sizeof(path));
    if (err != TRELLIS_OK) {
        goto out;
    }
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = point_of(key, point);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* Secure-heap memory BIO: the PEM text of the key is cleansed when the BIO is freed. */
    bio = BIO_new(BIO_s_secmem());
    if (bio == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    BIO_get_mem_ptr(bio, &mem);
    if (mem == NULL || mem->length == 0) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    /* Mode 0600 from the start and O_EXCL: a key is never readable by others for an instant,
     * and an injected key is never overwritten. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err = errno_to_err(errno);
        goto out;
    }
    created = 1;
    err = write_all(fd, (const uint8_t *)mem->data, mem->length);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if ((flags & TRELLIS_ROT_FILE_DURABLE) && fsync(fd) != 0) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        err = TRELLIS_ERR_IO;
        goto out;
    }
    fd = -1;
    if (flags & TRELLIS_ROT_FILE_DURABLE) {
        err = fsync_path(dir);
        if (err != TRELLIS_OK) {
            goto out;
        }
    }
    err = TRELLIS_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (err != TRELLIS_OK) {
        if (created) {
            unlink(path);
        }
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        ERR_clear_error();
    }
    BIO_free(bio);
    EVP_PKEY_free(key);
    return err;
}
