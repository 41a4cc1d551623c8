/*
 * CRL publication: number, list, sign, store, write the file.
 *
 * Several processes publish CRLs (the service after a renewal or factory reset, the CLI after
 * `revoke`), so two rules keep the file right: the CRL is numbered and built under the
 * registry's write lock (crl_begin .. crl_commit), so a higher number always describes a newer
 * state; and the whole publication holds an exclusive lock on a file beside the CRL (flock), so
 * the last file written is the last CRL committed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "registrar_internal.h"
#include "trellis/fsutil.h"

typedef struct {
    tr__reg_crl_t *builder;
    trellis_err_t err;
} collect_t;

static int collect(void *arg, const trellis_rstore_revoked_t *e)
{
    collect_t *c = arg;
    c->err = tr__reg_crl_add(c->builder, e);
    return c->err != TRELLIS_OK;
}

static int lock_file(const char *path)
{
    char lock[TRELLIS_REGISTRAR_PATH_MAX + 8];
    int n = snprintf(lock, sizeof(lock), "%s.lock", path);
    if (n < 0 || (size_t)n >= sizeof(lock))
        return -1;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

trellis_err_t tr__reg_crl_publish(trellis_rstore_t *store, const tr__reg_ca_t *ca, int64_t now_s,
                                  int64_t validity_s, const char *path, uint64_t *number_out,
                                  uint8_t **der_out, size_t *der_len_out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    collect_t c = {NULL, TRELLIS_OK};
    uint8_t *der = NULL;
    char *pem = NULL;
    size_t der_len = 0, pem_len = 0;
    uint64_t number = 0;
    int fd = -1, in_txn = 0;

    if (number_out != NULL)
        *number_out = 0;
    if (der_out != NULL)
        *der_out = NULL;
    if (der_len_out != NULL)
        *der_len_out = 0;
    if (store == NULL || ca == NULL || validity_s <= 0)
        return TRELLIS_ERR_INVALID_ARG;
    if (path != NULL && path[0] != '\0') {
        fd = lock_file(path);
        if (fd < 0)
            return trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot lock %.150s.lock", path);
    }
    err = store->crl_begin(store->ctx, &number);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot take the registry's write lock");
        goto out;
    }
    in_txn = 1;
    err = tr__reg_crl_new(ca, number, now_s, now_s + validity_s, &c.builder);
    if (err != TRELLIS_OK)
        goto out;
    err = store->crl_revoked(store->ctx, now_s, collect, &c);
    if (err == TRELLIS_OK)
        err = c.err;
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot list the revoked certificates");
        goto out;
    }
    err = tr__reg_crl_finish(c.builder, &der, &der_len, &pem, &pem_len);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot sign the CRL");
        goto out;
    }
    in_txn = 0;
    err = store->crl_commit(store->ctx, number, now_s, der, der_len);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "cannot store the CRL");
        goto out;
    }
    if (fd >= 0) {
        err = trellis_file_write_atomic(path, pem, pem_len, TRELLIS_FILE_PUBLIC);
        if (err != TRELLIS_OK) {
            trellis_reason_set(reason, err, "CRL %llu stored but %.120s not written",
                               (unsigned long long)number, path);
            goto out;
        }
    }
    if (number_out != NULL)
        *number_out = number;
    if (der_out != NULL) {
        *der_out = der;
        der = NULL;
        if (der_len_out != NULL)
            *der_len_out = der_len;
    }
out:
    if (in_txn)
        store->crl_abort(store->ctx);
    tr__reg_crl_free(c.builder);
    free(der);
    free(pem);
    if (fd >= 0)
        close(fd); /* releases the lock */
    return err;
}
