/*
 * The device Root of Trust (RoT) port, and the identifiers derived from the RoT key.
 *
 * A device holds one secret, its RoT key: a P-256 key made inside its secure element, which never
 * leaves it and is used only to sign evidence. Everything the device library needs from the
 * secure element goes through trellis_rot_port_t, a versioned table of three functions on an
 * opaque context (style.md §6): read the public key, sign a SHA-256 digest, report the platform
 * state (lifecycle, implementation id, boot seed, firmware measurements). No function of any
 * port returns, copies or exports the private key; a backend that cannot keep it inside (the
 * file simulation) still only ever hands out signatures.
 *
 * Backends shipped with Trellis: the file simulation (rot_file.h) and PKCS#11 (rot_pkcs11.h).
 * A microcontroller port implements the same three functions on the PSA Crypto API.
 *
 * Identifiers (design.md §3):
 *   device_id = lowercase hex of the first 16 bytes of SHA-256(point)   (32 characters)
 *   UEID      = 0x01 || SHA-256(point)                                   (33 bytes, RFC 9711
 * §4.2.1, type RAND) where point is the RoT public key as the 65-byte uncompressed SEC1 point 0x04
 * || X || Y.
 *
 * Nothing here allocates memory of its own (the POSIX build hashes with OpenSSL, which may
 * allocate inside its calls). Port contexts are not shared between threads unless the backend
 * says so.
 */
#ifndef TRELLIS_ROT_H
#define TRELLIS_ROT_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

#define TRELLIS_ROT_PORT_VERSION 1

#define TRELLIS_ROT_POINT_LEN  65 /* uncompressed SEC1 P-256 point */
#define TRELLIS_ROT_DIGEST_LEN 32 /* SHA-256 */
#define TRELLIS_ROT_SIG_LEN    64 /* ECDSA P-256 r || s, 32 bytes each, big-endian */
#define TRELLIS_DEVICE_ID_LEN  32 /* hex characters, without the NUL */
#define TRELLIS_UEID_LEN       33 /* 0x01 || SHA-256(point) */
#define TRELLIS_UEID_TYPE_RAND 0x01

/* Fixed-size claims of the platform report (RFC 9783 §4.2). */
#define TRELLIS_ROT_IMPL_ID_LEN      32
#define TRELLIS_ROT_BOOT_SEED_LEN    32
#define TRELLIS_ROT_MEASUREMENTS_MAX 4  /* software components one report may carry */
#define TRELLIS_ROT_MTYPE_MAX        32 /* measurement-type text, NUL included */
#define TRELLIS_ROT_MVERSION_MAX     32 /* version text, NUL included */
#define TRELLIS_ROT_MDESC_MAX        16 /* measurement-desc text, NUL included */

/* PSA security lifecycle major states (RFC 9783 §4.3.1), the high byte of the claim. */
#define TRELLIS_ROT_LIFECYCLE_UNKNOWN           0x0000u
#define TRELLIS_ROT_LIFECYCLE_ASSEMBLY_AND_TEST 0x1000u
#define TRELLIS_ROT_LIFECYCLE_ROT_PROVISIONING  0x2000u
#define TRELLIS_ROT_LIFECYCLE_SECURED           0x3000u
#define TRELLIS_ROT_LIFECYCLE_DECOMMISSIONED    0x6000u

/* One software component (RFC 9783 §4.4.1). Text fields are NUL-terminated; an empty version or
 * description means the claim is absent, and signer_id_len 0 means no signer id (an image no
 * firmware signing key vouches for). */
typedef struct {
    char type[TRELLIS_ROT_MTYPE_MAX];          /* measurement-type, e.g. "NSPE" */
    char version[TRELLIS_ROT_MVERSION_MAX];    /* version, e.g. "0.1.0" */
    char description[TRELLIS_ROT_MDESC_MAX];   /* measurement-desc, e.g. "sha-256" */
    uint8_t value[TRELLIS_ROT_DIGEST_LEN];     /* measurement-value: SHA-256 of the image */
    uint8_t signer_id[TRELLIS_ROT_DIGEST_LEN]; /* signer-id: hash of the image signing key */
    size_t signer_id_len;                      /* 0 or TRELLIS_ROT_DIGEST_LEN */
} trellis_rot_measurement_t;

/* What the RoT reports about the platform it runs on; everything a PSA token needs besides the
 * nonce and the instance id. */
typedef struct {
    uint32_t lifecycle;                                 /* TRELLIS_ROT_LIFECYCLE_* */
    uint8_t implementation_id[TRELLIS_ROT_IMPL_ID_LEN]; /* identifies the RoT implementation */
    uint8_t boot_seed[TRELLIS_ROT_BOOT_SEED_LEN];       /* fresh on every boot */
    size_t measurement_count;                           /* 1..TRELLIS_ROT_MEASUREMENTS_MAX */
    trellis_rot_measurement_t measurements[TRELLIS_ROT_MEASUREMENTS_MAX];
} trellis_rot_report_t;

/*
 * The RoT port. version must be TRELLIS_ROT_PORT_VERSION; ctx is passed back to every function
 * unchanged. Each function returns TRELLIS_OK or an error of error.h and, on error, leaves its
 * output zeroed.
 *
 * public_key: writes the 65-byte uncompressed point of the RoT public key.
 * sign_digest: signs a SHA-256 digest (the digest is signed as is, never hashed again) with the
 *   RoT key and writes r || s. The key never leaves the secure element.
 * report: fills *out with the platform claims and at least one measurement.
 */
typedef struct trellis_rot_port {
    uint32_t version;
    void *ctx;
    trellis_err_t (*public_key)(void *ctx, uint8_t point[TRELLIS_ROT_POINT_LEN]);
    trellis_err_t (*sign_digest)(void *ctx, const uint8_t digest[TRELLIS_ROT_DIGEST_LEN],
                                 uint8_t sig[TRELLIS_ROT_SIG_LEN]);
    trellis_err_t (*report)(void *ctx, trellis_rot_report_t *out);
} trellis_rot_port_t;

/*
 * Checks that port is usable: not NULL, version TRELLIS_ROT_PORT_VERSION, every function set.
 * TRELLIS_ERR_INVALID_ARG for NULL or a missing function, TRELLIS_ERR_CONFIG for another
 * version.
 */
trellis_err_t trellis_rot_port_check(const trellis_rot_port_t *port);

/*
 * Checked calls through the port: each runs trellis_rot_port_check first, then the port
 * function, and zeroes the output on any failure. trellis_rot_public_key also refuses
 * (TRELLIS_ERR_BAD_KEY) a point whose first byte is not 0x04; trellis_rot_report refuses
 * (TRELLIS_ERR_INTERNAL) a report without measurements or with more than the maximum.
 */
trellis_err_t trellis_rot_public_key(const trellis_rot_port_t *port,
                                     uint8_t point[static TRELLIS_ROT_POINT_LEN]);
trellis_err_t trellis_rot_sign_digest(const trellis_rot_port_t *port,
                                      const uint8_t digest[static TRELLIS_ROT_DIGEST_LEN],
                                      uint8_t sig[static TRELLIS_ROT_SIG_LEN]);
trellis_err_t trellis_rot_report(const trellis_rot_port_t *port, trellis_rot_report_t *out);

/*
 * device_id of a point: writes TRELLIS_DEVICE_ID_LEN lowercase hex characters and a NUL into
 * out. TRELLIS_ERR_INVALID_ARG for NULL arguments, TRELLIS_ERR_BAD_KEY if point[0] != 0x04
 * (compressed or malformed points have another id, so they are refused rather than hashed).
 */
trellis_err_t trellis_device_id_from_point(const uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                           char out[static TRELLIS_DEVICE_ID_LEN + 1]);

/* The UEID of a point: 0x01 || SHA-256(point). Errors as for trellis_device_id_from_point. */
trellis_err_t trellis_ueid_from_point(const uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                      uint8_t out[static TRELLIS_UEID_LEN]);

/* The device id of the key behind a port (public_key, then trellis_device_id_from_point). */
trellis_err_t trellis_rot_device_id(const trellis_rot_port_t *port,
                                    char out[static TRELLIS_DEVICE_ID_LEN + 1]);

#endif /* TRELLIS_ROT_H */
