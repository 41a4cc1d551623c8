/*
 * The file RoT backend: a simulated secure element for development, tests and boards without
 * one. The "element" is a directory holding the RoT key as rot_key.pem (PKCS#8 PEM, mode 0600)
 * next to the device's factory data (device.h). The backend signs with the key and reports the
 * platform state, and has no call that returns, copies or exports the private key; whoever can
 * read the directory can, which is exactly why real devices use the PKCS#11 backend.
 *
 * The key file must be a regular file owned by the calling user and not readable, writable or
 * executable by group or others (mode 0600 or 0400): anything looser is refused
 * (TRELLIS_ERR_PERMISSION), like ssh refuses a private key others can read.
 *
 * The context lives in caller memory. It holds an OpenSSL key object between open and close,
 * which OpenSSL allocates; the backend itself allocates nothing else.
 */
#ifndef TRELLIS_ROT_FILE_H
#define TRELLIS_ROT_FILE_H

#include <stdint.h>

#include "trellis/error.h"
#include "trellis/rot.h"

#define TRELLIS_ROT_FILE_KEY_NAME "rot_key.pem"
#define TRELLIS_ROT_PATH_MAX      1024 /* longest directory or file path a backend accepts */

/* Measurement options shared by the file and PKCS#11 backends. */
typedef struct {
    /* The firmware image measured into the software-component claim when the RoT is opened: the
     * running program by default ("/proc/self/exe" when NULL). */
    const char *firmware_path;
    /* Its version text for the claim; NULL for TRELLIS_VERSION. At most
     * TRELLIS_ROT_MVERSION_MAX - 1 characters. */
    const char *firmware_version;
} trellis_rot_measure_options_t;

/* Private state of an open file RoT; read nothing from it directly. */
typedef struct {
    struct evp_pkey_st *key;
    uint8_t point[TRELLIS_ROT_POINT_LEN];
    trellis_rot_report_t report;
    int is_open;
} trellis_rot_file_t;

/*
 * Opens the file RoT in directory dir: loads dir/rot_key.pem (checking its mode, see above, and
 * that it is a valid P-256 key), measures the firmware image, draws a fresh boot seed, and fills
 * *port with a TRELLIS_ROT_PORT_VERSION table whose ctx is rot. opts may be NULL for defaults.
 *
 * rot must stay at the same address, and be closed with trellis_rot_file_close, while port is
 * used. Errors: TRELLIS_ERR_INVALID_ARG (NULL rot, dir or port; a path over
 * TRELLIS_ROT_PATH_MAX), TRELLIS_ERR_NOT_FOUND (no key file, or no firmware image),
 * TRELLIS_ERR_PERMISSION (key file mode or owner), TRELLIS_ERR_PARSE or TRELLIS_ERR_BAD_KEY (not
 * a P-256 private key), TRELLIS_ERR_IO, TRELLIS_ERR_CRYPTO. reason (may be NULL) says which; it
 * never holds key material. On failure rot is left closed and *port zeroed.
 */
trellis_err_t trellis_rot_file_open(trellis_rot_file_t *rot, const char *dir,
                                    const trellis_rot_measure_options_t *opts,
                                    trellis_rot_port_t *port, trellis_reason_t *reason);

/* Releases the key (OpenSSL cleanses it) and zeroes rot. NULL and an already closed rot are
 * no-ops. */
void trellis_rot_file_close(trellis_rot_file_t *rot);

/* Flags of trellis_rot_file_generate. */
#define TRELLIS_ROT_FILE_DURABLE 0x1u /* fsync the key file and dir before returning */

/*
 * Factory side: injects a fresh RoT into the simulated element at dir (which must exist). Makes a
 * new P-256 key, writes it to dir/rot_key.pem created with mode 0600 from the start (O_EXCL: an
 * existing key is never overwritten, TRELLIS_ERR_EXISTS) and returns its public point. The
 * private key is cleansed from memory before returning.
 *
 * Without TRELLIS_ROT_FILE_DURABLE nothing is fsynced: a factory making thousands of devices
 * syncs the filesystem once at the end (see docs/factory.md) instead of paying two fsyncs per
 * device. Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_EXISTS, TRELLIS_ERR_NOT_FOUND (no dir),
 * TRELLIS_ERR_PERMISSION, TRELLIS_ERR_IO, TRELLIS_ERR_CRYPTO. On failure no key file is left
 * behind and point is zeroed.
 */
trellis_err_t trellis_rot_file_generate(const char *dir, unsigned flags,
                                        uint8_t point[static TRELLIS_ROT_POINT_LEN]);

#endif /* TRELLIS_ROT_FILE_H */
