/*
 * Fuzzes trellis_csr_parse, the registrar's parser of CSR bytes sent by anyone. For any input it
 * must return without crashing or leaking, and when it accepts, what it hands on must be
 * consistent:
 * - the key is a valid named-curve P-256 public key whose point is the one reported;
 * - the common name is 1..TRELLIS_CSR_CN_MAX printable ASCII characters and matches itself;
 * - sha256 is the SHA-256 of exactly the input;
 * - parsing the same bytes again gives the same answer.
 * A refusal leaves the output zeroed and a non-empty reason.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/crypto.h"
#include "trellis/csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

static void check_zeroed(const trellis_csr_t *csr)
{
    static const trellis_csr_t zero;
    check(memcmp(csr, &zero, sizeof(zero)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trellis_csr_t csr, again;
    trellis_reason_t why;
    uint8_t digest[TRELLIS_SHA256_LEN], point[TRELLIS_P256_POINT_LEN];

    trellis_err_t err = trellis_csr_parse(data, size, &csr, &why);
    if (err != TRELLIS_OK) {
        check(err == TRELLIS_ERR_BAD_CSR || err == TRELLIS_ERR_TOO_LARGE ||
              err == TRELLIS_ERR_NOMEM);
        check(why.text[0] != '\0');
        check_zeroed(&csr);
        return 0;
    }
    check(size <= TRELLIS_CSR_DER_MAX);
    check(csr.key != NULL);
    check(trellis_p256_check_key(csr.key, NULL) == TRELLIS_OK);
    check(trellis_p256_public_point(csr.key, point) == TRELLIS_OK);
    check(memcmp(point, csr.point, sizeof(point)) == 0);
    size_t cn_len = strnlen(csr.cn, sizeof(csr.cn));
    check(cn_len >= 1 && cn_len <= TRELLIS_CSR_CN_MAX);
    for (size_t i = 0; i < cn_len; i++)
        check(csr.cn[i] >= 0x20 && csr.cn[i] <= 0x7e);
    check(trellis_csr_check_subject(&csr, csr.cn, NULL) == TRELLIS_OK);
    check(trellis_sha256(data, size, digest) == TRELLIS_OK);
    check(memcmp(digest, csr.sha256, sizeof(digest)) == 0);

    check(trellis_csr_parse(data, size, &again, NULL) == TRELLIS_OK);
    check(strcmp(again.cn, csr.cn) == 0 && memcmp(again.point, csr.point, sizeof(point)) == 0 &&
          again.n_ignored_extensions == csr.n_ignored_extensions);
    trellis_csr_cleanup(&again);
    trellis_csr_cleanup(&csr);
    return 0;
}
