/*
 * Internals shared by the files of libtrellis-device (src/ and port/). Not installed.
 */
#ifndef TRELLIS_DEVICE_INTERNAL_H
#define TRELLIS_DEVICE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"
#include "trellis/device.h"
#include "trellis/rot.h"

/* SHA-256 of a || b (either may be empty with a NULL pointer). The one place the device core
 * reaches a hash function: OpenSSL's EVP digest on POSIX, psa_hash_compute on an MCU port. */
trellis_err_t tr__dev_sha256(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
                             uint8_t out[TRELLIS_ROT_DIGEST_LEN]);

/* Zeroes len bytes in a way the compiler may not remove (for secrets and for outputs on failure).
 */
void tr__dev_wipe(void *buf, size_t len);

/*
 * Fills the platform report shared by the POSIX backends: lifecycle SECURED, implementation id
 * = SHA-256(impl_label || impl_extra), a fresh random boot seed, and one software component
 * "NSPE" whose value is the SHA-256 of the firmware image (opts->firmware_path, default
 * /proc/self/exe) and whose version is opts->firmware_version (default TRELLIS_VERSION).
 */
trellis_err_t tr__dev_platform_report(const char *impl_label, const uint8_t *impl_extra,
                                      size_t impl_extra_len, const char *firmware_path,
                                      const char *firmware_version, trellis_rot_report_t *out,
                                      trellis_reason_t *reason);

/* Copies a NUL-terminated string of at most dst_size - 1 bytes; TRELLIS_ERR_TOO_LARGE (and dst
 * zeroed) if it does not fit. */
trellis_err_t tr__dev_strlcpy(char *dst, size_t dst_size, const char *src);

/* Parses and validates the text of a factory.json (trellis_device_factory_load without the file
 * read); a registrar_ca naming a file is read from dir. For the loader and the fuzz target. */
trellis_err_t tr__device_factory_parse(const char *dir, const char *text, size_t len,
                                       trellis_device_factory_t *out, trellis_reason_t *reason);

#endif /* TRELLIS_DEVICE_INTERNAL_H */
