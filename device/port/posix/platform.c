/*
 * The platform report of the POSIX backends (file and PKCS#11): what a PSA RoT reports about
 * the platform, made from what a Linux host can honestly say about itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "device_internal.h"
#include "trellis/device.h"
#include "trellis/trellis.h"

#define DEFAULT_FIRMWARE "/proc/self/exe"
#define MEASURE_CHUNK    (16 * 1024)

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

trellis_err_t trellis_device_measure_file(const char *path,
                                          uint8_t out[static TRELLIS_ROT_DIGEST_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int fd = -1;
    EVP_MD_CTX *ctx = NULL;
    struct stat st;
    unsigned int len = 0;
    uint8_t chunk[MEASURE_CHUNK];

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, TRELLIS_ROT_DIGEST_LEN);
    if (path == NULL || path[0] == '\0') {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno_to_err(errno);
        goto out;
    }
    /* A measurement of a pipe or a device would not be reproducible by anyone else. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = TRELLIS_ERR_IO;
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
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
        if (EVP_DigestUpdate(ctx, chunk, (size_t)n) != 1) {
            err = TRELLIS_ERR_CRYPTO;
            goto out;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != TRELLIS_ROT_DIGEST_LEN) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = TRELLIS_OK;
out:
    EVP_MD_CTX_free(ctx);
    if (fd >= 0) {
        close(fd);
    }
    if (err != TRELLIS_OK) {
        memset(out, 0, TRELLIS_ROT_DIGEST_LEN);
    }
    return err;
}

trellis_err_t tr__dev_platform_report(const char *impl_label, const uint8_t *impl_extra,
                                      size_t impl_extra_len, const char *firmware_path,
                                      const char *firmware_version, trellis_rot_report_t *out,
                                      trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    const char *path = firmware_path != NULL ? firmware_path : DEFAULT_FIRMWARE;
    const char *version = firmware_version != NULL ? firmware_version : TRELLIS_VERSION;
    trellis_rot_measurement_t *m = NULL;

    if (out == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (impl_label == NULL) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    /* RFC 9783 §4.2.1: a device that left the factory with its RoT provisioned and debug closed
     * is "secured"; the backends only open keys that were injected at the factory. */
    out->lifecycle = TRELLIS_ROT_LIFECYCLE_SECURED;
    /* RFC 9783 §4.2.2: the implementation id names the RoT implementation, so it is derived
     * from what the backend is (and, for a token, which make and model of token). */
    err = tr__dev_sha256((const uint8_t *)impl_label, strlen(impl_label), impl_extra,
                         impl_extra_len, out->implementation_id);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* RFC 9783 §4.2.3: the boot seed is random and changes on every boot; a port is opened
     * once per boot of the agent. */
    if (RAND_bytes(out->boot_seed, (int)sizeof(out->boot_seed)) != 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CRYPTO, "no randomness for the boot seed");
        goto out;
    }
    m = &out->measurements[0];
    err = tr__dev_strlcpy(m->type, sizeof(m->type), "NSPE");
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = tr__dev_strlcpy(m->description, sizeof(m->description), "sha-256");
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = tr__dev_strlcpy(m->version, sizeof(m->version), version);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "firmware version is longer than %d characters",
                                 TRELLIS_ROT_MVERSION_MAX - 1);
        goto out;
    }
    err = trellis_device_measure_file(path, m->value);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot measure firmware image %s: %s", path,
                                 trellis_err_message(err));
        goto out;
    }
    /* The agent image is not signed by a firmware signing key, so there is no signer id to
     * report (RFC 9783 §4.4.1.4 makes it a PSA-SM compliance condition, not a token rule). */
    m->signer_id_len = 0;
    out->measurement_count = 1;
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}
