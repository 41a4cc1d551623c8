/*
 * libtrellis-device: the device's factory data, its Root of Trust whichever backend holds it,
 * and the evidence it signs for enrollment.
 *
 * Factory data is what the factory wrote next to (or, for PKCS#11, instead of) the RoT key: the
 * device's serial, model, owner, batch, the registrar to enroll with and the registrar CA pinned
 * for it, and where the RoT key lives. It is the file factory.json in the device directory:
 *
 *   {"trellis_device":1,"device_id":"3f1c...","serial":"SN-000001","model":"T-100",
 *    "owner":"acme","factory":"fab-1","batch":"b-20261125-01",
 *    "registrar_url":"https://registrar.example:8443","registrar_ca":"-----BEGIN
 * CERTIFICATE-----...", "rot":{"backend":"file","key":"rot_key.pem"}}
 *
 * or, for a key in a PKCS#11 token, "rot":{"backend":"pkcs11","uri":"pkcs11:token=...;object=..."}
 * (the URI never carries the PIN). registrar_url and registrar_ca may be absent (the device is
 * then told at first boot by its configuration); registrar_ca is either PEM text or the name of
 * a PEM file in the device directory. Unknown members and duplicate members are refused.
 *
 * All structures live in caller memory and have fixed sizes; the limits are below.
 */
#ifndef TRELLIS_DEVICE_H
#define TRELLIS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"
#include "trellis/rot.h"
#include "trellis/rot_file.h"
#include "trellis/rot_pkcs11.h"

#define TRELLIS_DEVICE_FACTORY_NAME    "factory.json"
#define TRELLIS_DEVICE_FACTORY_VERSION 1
#define TRELLIS_DEVICE_FACTORY_MAX     (64 * 1024) /* largest factory.json read */
#define TRELLIS_DEVICE_NAME_MAX        64          /* serial, model, owner, factory, batch */
#define TRELLIS_DEVICE_URL_MAX         512
#define TRELLIS_DEVICE_CA_PEM_MAX      (32 * 1024)
#define TRELLIS_DEVICE_KEY_NAME_MAX    128

typedef enum {
    TRELLIS_ROT_BACKEND_NONE = 0,
    TRELLIS_ROT_BACKEND_FILE = 1,
    TRELLIS_ROT_BACKEND_PKCS11 = 2,
} trellis_rot_backend_t;

/* A device's factory data. Text members are NUL-terminated; empty means absent where a member is
 * optional (registrar_url, registrar_ca_pem). */
typedef struct {
    char device_id[TRELLIS_DEVICE_ID_LEN + 1];
    char serial[TRELLIS_DEVICE_NAME_MAX + 1];
    char model[TRELLIS_DEVICE_NAME_MAX + 1];
    char owner[TRELLIS_DEVICE_NAME_MAX + 1];
    char factory[TRELLIS_DEVICE_NAME_MAX + 1];
    char batch[TRELLIS_DEVICE_NAME_MAX + 1];
    char registrar_url[TRELLIS_DEVICE_URL_MAX + 1];
    char registrar_ca_pem[TRELLIS_DEVICE_CA_PEM_MAX + 1];
    trellis_rot_backend_t backend;
    char rot_key[TRELLIS_DEVICE_KEY_NAME_MAX + 1]; /* file backend: key file name in dir */
    char pkcs11_uri[TRELLIS_PKCS11_URI_MAX + 1];   /* PKCS#11 backend: URI without PIN */
} trellis_device_factory_t;

/*
 * Checks a name used for serial, model, owner, factory and batch: 1..TRELLIS_DEVICE_NAME_MAX
 * printable ASCII characters (0x20..0x7e), as docs/manifest-format.md requires. Returns
 * TRELLIS_OK or TRELLIS_ERR_INVALID_ARG.
 */
trellis_err_t trellis_device_name_check(const char *name);

/*
 * Reads and validates dir/factory.json into *out: every member of the right type and within its
 * limits, serial and model per trellis_device_name_check, device_id 32 lowercase hex
 * characters, backend "file" with a plain file name (no '/', not "." or "..") or "pkcs11" with a
 * URI that parses and carries no PIN. A registrar_ca that is not PEM text is read from that file
 * in dir. Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_NOT_FOUND (no file), TRELLIS_ERR_TOO_LARGE,
 * TRELLIS_ERR_IO, TRELLIS_ERR_PARSE (with the member at fault in reason). On failure *out is
 * zeroed.
 */
trellis_err_t trellis_device_factory_load(const char *dir, trellis_device_factory_t *out,
                                          trellis_reason_t *reason);

/*
 * Factory side: writes *in as dir/factory.json (validated as the loader would; the CA PEM is
 * written inline), mode 0644, through a temporary file and a rename so a reader never sees half
 * a file. With durable nonzero the file and dir are fsynced; without, the caller syncs (a factory
 * syncs once per batch). Errors: TRELLIS_ERR_INVALID_ARG (a member the loader would refuse),
 * TRELLIS_ERR_IO, TRELLIS_ERR_NOMEM.
 */
trellis_err_t trellis_device_factory_write(const char *dir, const trellis_device_factory_t *in,
                                           int durable);

/* Options of trellis_device_rot_open. Every member may be NULL. */
typedef struct {
    const char *pkcs11_uri;    /* overrides factory.json's URI (PKCS#11 backend) */
    const char *pkcs11_module; /* module path if neither URI names one */
    const char *pin;           /* the token PIN (PKCS#11 backend); never logged */
    trellis_rot_measure_options_t measure;
} trellis_device_rot_options_t;

/* An open RoT of either backend, in caller memory. port is the table to use. */
typedef struct {
    trellis_rot_backend_t backend;
    union {
        trellis_rot_file_t file;
        trellis_rot_pkcs11_t pkcs11;
    } u;
    trellis_rot_port_t port;
} trellis_device_rot_t;

/*
 * Opens the RoT described by factory (loaded from dir): the file backend with dir/<rot_key>, or
 * the PKCS#11 backend with the URI (options may override it and supply the module path and
 * PIN). Then checks that the RoT key's device id equals factory->device_id, so a device
 * directory paired with the wrong key is refused (TRELLIS_ERR_BAD_KEY) instead of enrolling under
 * another identity. Other errors are those of the backend's open. rot must not move while open.
 */
trellis_err_t trellis_device_rot_open(trellis_device_rot_t *rot, const char *dir,
                                      const trellis_device_factory_t *factory,
                                      const trellis_device_rot_options_t *opts,
                                      trellis_reason_t *reason);

/* Closes either backend. NULL or a closed rot is a no-op. */
void trellis_device_rot_close(trellis_device_rot_t *rot);

/* SHA-256 of a firmware image file (e.g. "/proc/self/exe"), streamed; the measurement-value of
 * the software component. Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_NOT_FOUND,
 * TRELLIS_ERR_PERMISSION, TRELLIS_ERR_IO (not a regular file included), TRELLIS_ERR_CRYPTO. */
trellis_err_t trellis_device_measure_file(const char *path,
                                          uint8_t out[static TRELLIS_ROT_DIGEST_LEN]);

/* Largest challenge and CSR the evidence builder accepts, and the largest token it makes. */
#define TRELLIS_EVIDENCE_CHALLENGE_MAX 256
#define TRELLIS_EVIDENCE_CSR_MAX       (16 * 1024)
#define TRELLIS_EVIDENCE_MAX           2048

/*
 * Builds the device's evidence (design.md §3): a tagged COSE_Sign1 PSA attestation token, ES256,
 * signed by the RoT key through rot (psa_token.h encodes it without allocating), whose claims are
 *   10   nonce = SHA-256(challenge || csr_der)     (32 bytes)
 *   256  instance id = UEID of the RoT public key   (33 bytes)
 *   265  profile = "tag:psacertified.org,2023:psa#tfm"
 *   2394 client id = -1 (the caller is the non-secure application, RFC 9783 §4.2.1)
 *   2395 lifecycle, 2396 implementation id, 2397 boot seed, 2399 software components:
 *        from rot's report; the first component's measurement-value is the firmware image hash.
 * challenge is 1..TRELLIS_EVIDENCE_CHALLENGE_MAX bytes and csr_der 1..TRELLIS_EVIDENCE_CSR_MAX
 * bytes (the exact DER the device sends, so the verifier can recompute the nonce).
 *
 * Output follows the (buf, buf_size, *out_len) convention: with out NULL or too small,
 * TRELLIS_ERR_BUFFER_TOO_SMALL and the size needed in *out_len (without signing). Errors:
 * TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_TOO_LARGE (challenge or CSR over the limits), the RoT
 * port's errors, TRELLIS_ERR_INTERNAL (encoding). Allocates nothing.
 */
trellis_err_t trellis_device_evidence(const trellis_rot_port_t *rot, const uint8_t *challenge,
                                      size_t challenge_len, const uint8_t *csr_der,
                                      size_t csr_der_len, uint8_t *out, size_t out_size,
                                      size_t *out_len);

#endif /* TRELLIS_DEVICE_H */
