/*
 * PSA attestation tokens (RFC 9783, a profile of EAT, RFC 9711): the claims-set, its CBOR
 * encoder and decoder, and the signed token on top of COSE_Sign1 (cose.h). docs/token-format.md
 * describes the format with a real example.
 *
 * Claims are decoded into a trellis_psa_claims_t with fixed-size fields, so neither decoding nor
 * encoding allocates. Three generations of claim keys and profile names exist in the field and
 * all three are read:
 *
 *   TRELLIS_PSA_PROFILE_TFM    265: "tag:psacertified.org,2023:psa#tfm"   RFC 9783 keys
 *   TRELLIS_PSA_PROFILE_2_0_0  265: "http://arm.com/psa/2.0.0"            RFC 9783 keys
 *   TRELLIS_PSA_PROFILE_IOT_1  -75000: "PSA_IOT_PROFILE_1" (or absent)    keys -75000..-75010
 *
 * The profile claim decides which key set a token uses; keys of the other set are then unknown
 * claims and are ignored like any other (EAT: a receiver MUST NOT fail on claims it does not
 * understand). A token with neither profile claim is read with the old keys when it carries the
 * old nonce (-75008), as PSA_IOT_PROFILE_1 left the profile claim optional; otherwise the
 * missing profile is an error, as RFC 9783 §4.5.2 requires it.
 *
 * Mandatory claims (RFC 9783 §4): nonce, client id, instance id, implementation id, security
 * lifecycle, profile (except the old set, above) and software components with at least one entry,
 * each with a measurement value. The old set also makes the boot seed mandatory (32 bytes) and
 * allows "no software measurements" (-75007) in place of software components.
 *
 * Rejected, with TRELLIS_ERR_TOKEN_CLAIM and a reason naming the claim: a claims-set that is not
 * a map; duplicate keys (compared by value, anywhere in the claims); keys that are neither
 * integers nor text; wrong types; nonce not 32, 48 or 64 bytes, or sent as an array; instance id
 * not 33 bytes or not of type RAND (0x01); implementation id not 32 bytes; client id 0 or outside
 * int32; lifecycle outside the states of RFC 9783 §4.3.1; boot seed outside 8..32 bytes;
 * certification reference not of the form 13 digits "-" 5 digits (the two earlier profiles also
 * allow the 13 digits alone, as Veraison does; TF-M sends the long form even under -75005);
 * measurement value or signer id not 32, 48 or 64 bytes; text that is not UTF-8, holds NUL or is
 * longer than its field; more than TRELLIS_PSA_SW_COMPONENTS_MAX components; a missing
 * mandatory claim. Structural problems (truncation, indefinite lengths, trailing bytes, nesting
 * deeper than 16) are TRELLIS_ERR_TOKEN_MALFORMED.
 *
 * Trellis accepts a software component without a signer id (key 5): RFC 9783 §4.4.1.4 makes it
 * a condition of PSA-SM compliance, and a Trellis device has no firmware signing authority to
 * name. A verifier that needs it checks signer_id_len.
 */
#ifndef TRELLIS_PSA_TOKEN_H
#define TRELLIS_PSA_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "trellis/cose.h"
#include "trellis/error.h"

#define TRELLIS_PSA_NONCE_MAX         64   /* psa-hash-type: 32, 48 or 64 bytes */
#define TRELLIS_PSA_UEID_LEN          33   /* 0x01 (RAND) || 32-byte hash */
#define TRELLIS_PSA_UEID_TYPE_RAND    0x01 /* EAT UEID type byte */
#define TRELLIS_PSA_IMPL_ID_LEN       32   /* psa-implementation-id */
#define TRELLIS_PSA_BOOT_SEED_MIN     8    /* RFC 9783 §4.3.2 */
#define TRELLIS_PSA_BOOT_SEED_MAX     32   /* RFC 9783 §4.3.2 */
#define TRELLIS_PSA_HASH_MAX          64   /* measurement value and signer id */
#define TRELLIS_PSA_SW_COMPONENTS_MAX 16   /* software components kept per token */
#define TRELLIS_PSA_TEXT_MAX          127  /* bytes of the longest text claim (VSI) */
#define TRELLIS_PSA_SHORT_TEXT_MAX    63 /* bytes of the component texts and the cert. reference */
#define TRELLIS_PSA_DEVICE_ID_LEN     32 /* hex characters of a device id */

/* The profile strings (RFC 9783 §4.5.2, and the two earlier ones TF-M emits). */
#define TRELLIS_PSA_PROFILE_TFM_NAME   "tag:psacertified.org,2023:psa#tfm"
#define TRELLIS_PSA_PROFILE_2_0_0_NAME "http://arm.com/psa/2.0.0"
#define TRELLIS_PSA_PROFILE_IOT_1_NAME "PSA_IOT_PROFILE_1"

/* Security lifecycle major states (RFC 9783 §4.3.1), the high byte of the claim. */
#define TRELLIS_PSA_LIFECYCLE_UNKNOWN                   0x0000
#define TRELLIS_PSA_LIFECYCLE_ASSEMBLY_AND_TEST         0x1000
#define TRELLIS_PSA_LIFECYCLE_PSA_ROT_PROVISIONING      0x2000
#define TRELLIS_PSA_LIFECYCLE_SECURED                   0x3000
#define TRELLIS_PSA_LIFECYCLE_NON_PSA_ROT_DEBUG         0x4000
#define TRELLIS_PSA_LIFECYCLE_RECOVERABLE_PSA_ROT_DEBUG 0x5000
#define TRELLIS_PSA_LIFECYCLE_DECOMMISSIONED            0x6000

typedef enum {
    TRELLIS_PSA_PROFILE_TFM = 0,   /* RFC 9783; what Trellis emits */
    TRELLIS_PSA_PROFILE_2_0_0 = 1, /* TF-M's earlier tokens, RFC 9783 keys */
    TRELLIS_PSA_PROFILE_IOT_1 = 2, /* PSA_IOT_PROFILE_1, keys -75000..-75010 */
} trellis_psa_profile_t;

/* One entry of the software components claim (RFC 9783 §4.4.1). Texts are NUL-terminated; an
 * absent text is the empty string with its has_ flag false. */
typedef struct {
    bool has_measurement_type;
    char measurement_type[TRELLIS_PSA_SHORT_TEXT_MAX + 1]; /* key 1 */
    uint8_t measurement_value[TRELLIS_PSA_HASH_MAX];       /* key 2, mandatory */
    size_t measurement_value_len;
    bool has_version;
    char version[TRELLIS_PSA_SHORT_TEXT_MAX + 1]; /* key 4 */
    uint8_t signer_id[TRELLIS_PSA_HASH_MAX];      /* key 5; signer_id_len 0 when absent */
    size_t signer_id_len;
    bool has_measurement_desc;
    char measurement_desc[TRELLIS_PSA_SHORT_TEXT_MAX + 1]; /* key 6 */
} trellis_psa_sw_component_t;

/*
 * A PSA claims-set. Byte strings of variable size carry a length (0 = absent); fixed-size and
 * scalar claims carry a has_ flag. Keys are those of RFC 9783 (old keys in brackets).
 */
typedef struct {
    trellis_psa_profile_t profile;
    bool profile_implied; /* old key set without a profile claim (decode only; encode omits it) */
    uint8_t nonce[TRELLIS_PSA_NONCE_MAX]; /* 10 [-75008], eat_nonce */
    size_t nonce_len;
    bool has_instance_id;
    uint8_t instance_id[TRELLIS_PSA_UEID_LEN]; /* 256 [-75009], ueid */
    bool has_implementation_id;
    uint8_t implementation_id[TRELLIS_PSA_IMPL_ID_LEN]; /* 2396 [-75003] */
    bool has_client_id;
    int32_t client_id; /* 2394 [-75001]; negative: NSPE caller, positive: SPE; never 0 */
    bool has_lifecycle;
    uint16_t lifecycle;                           /* 2395 [-75002] */
    uint8_t boot_seed[TRELLIS_PSA_BOOT_SEED_MAX]; /* 2397 [-75004] */
    size_t boot_seed_len;
    bool has_certification_reference;
    char certification_reference[TRELLIS_PSA_SHORT_TEXT_MAX + 1]; /* 2398 [-75005] */
    bool has_verification_service;
    char verification_service[TRELLIS_PSA_TEXT_MAX + 1]; /* 2400 [-75010] */
    bool no_sw_measurements;                             /* [-75007], old key set only */
    size_t sw_component_count;
    trellis_psa_sw_component_t sw_components[TRELLIS_PSA_SW_COMPONENTS_MAX]; /* 2399 [-75006] */
} trellis_psa_claims_t;

/* Zeroes claims and sets profile to TRELLIS_PSA_PROFILE_TFM. */
void trellis_psa_claims_init(trellis_psa_claims_t *claims);

/* The profile string of a profile value ("tag:psacertified.org,2023:psa#tfm"); never NULL. */
const char *trellis_psa_profile_name(trellis_psa_profile_t profile);

/* A lifecycle's major state as a word ("secured", "non-psa-rot-debug", ...), or "invalid". */
const char *trellis_psa_lifecycle_name(uint16_t lifecycle);

/* RFC 9783 §4.3.1: a verifier can only trust reports from a PSA RoT in the SECURED or
 * NON_PSA_ROT_DEBUG state. True for those two. */
bool trellis_psa_lifecycle_trusted(uint16_t lifecycle);

/*
 * Checks every rule of the list above on a claims struct, as the decoder does on the wire and
 * the encoder does before signing. TRELLIS_ERR_TOKEN_CLAIM with a reason naming the claim, or
 * TRELLIS_ERR_INVALID_ARG for NULL claims.
 */
trellis_err_t trellis_psa_claims_validate(const trellis_psa_claims_t *claims,
                                          trellis_reason_t *reason);

/*
 * Decodes a CBOR claims-set (the COSE payload) into *claims and validates it. Unknown claims are
 * ignored. On failure *claims is zeroed. Errors: TRELLIS_ERR_TOKEN_MALFORMED,
 * TRELLIS_ERR_TOKEN_CLAIM, TRELLIS_ERR_TOO_LARGE (more than TRELLIS_COSE_MAX_TOKEN bytes),
 * TRELLIS_ERR_INVALID_ARG.
 */
trellis_err_t trellis_psa_claims_decode(const uint8_t *buf, size_t len,
                                        trellis_psa_claims_t *claims, trellis_reason_t *reason);

/*
 * Encodes claims (after trellis_psa_claims_validate) as a CBOR map with the key set of its
 * profile, in the order of RFC 9783 §6. (buf, buf_size, *out_len) as everywhere: buf NULL
 * reports the size needed with TRELLIS_ERR_BUFFER_TOO_SMALL.
 */
trellis_err_t trellis_psa_claims_encode(const trellis_psa_claims_t *claims, uint8_t *buf,
                                        size_t buf_size, size_t *out_len, trellis_reason_t *reason);

/*
 * Builds a signed PSA token: validates claims, encodes them straight into buf as the payload of
 * a COSE_Sign1 (cose.h) and signs with signer. Nothing is allocated, so a device can build its
 * evidence with no heap. kid may be NULL (unprotected header {}). buf NULL or too small: the
 * size needed in *out_len, TRELLIS_ERR_BUFFER_TOO_SMALL, signer not called. Errors:
 * TRELLIS_ERR_TOKEN_CLAIM (with reason), TRELLIS_ERR_INVALID_ARG, or the signer's error.
 */
trellis_err_t trellis_psa_token_encode(const trellis_psa_claims_t *claims, const uint8_t *kid,
                                       size_t kid_len, const trellis_signer_t *signer, uint8_t *buf,
                                       size_t buf_size, size_t *out_len, trellis_reason_t *reason);

/*
 * Verifies a PSA token: COSE_Sign1 structure and ES256 signature with key (cose.h), then the
 * claims, then, when expected_nonce is not NULL, that the nonce claim equals it (length and
 * bytes; TRELLIS_ERR_TOKEN_NONCE otherwise). With expected_nonce NULL the caller must compare
 * the nonce itself. On success *claims holds the verified claims; on failure it is zeroed and
 * reason says why. Each check reports its own error code (cose.h, above).
 */
trellis_err_t trellis_psa_token_verify(const uint8_t *token, size_t token_len, const EVP_PKEY *key,
                                       const uint8_t *expected_nonce, size_t expected_nonce_len,
                                       trellis_psa_claims_t *claims, trellis_reason_t *reason);

/*
 * Decodes a PSA token WITHOUT checking its signature: the claims are unauthenticated. It exists
 * so a verifier can read the instance id to find the key, then call trellis_psa_token_verify;
 * never base a decision on its output. Same checks and errors as verify, minus the signature and
 * the nonce.
 */
trellis_err_t trellis_psa_token_decode_unverified(const uint8_t *token, size_t token_len,
                                                  trellis_psa_claims_t *claims,
                                                  trellis_reason_t *reason);

/* design.md §3: UEID = 0x01 || SHA-256(point), point the 65-byte uncompressed SEC1 public key. */
trellis_err_t trellis_psa_ueid_from_point(const uint8_t point[static 65],
                                          uint8_t ueid[static TRELLIS_PSA_UEID_LEN]);

/* design.md §3: device id = lowercase hex of the first 16 bytes of SHA-256(point), written to
 * out as 32 characters and a NUL. */
trellis_err_t trellis_psa_device_id_from_point(const uint8_t point[static 65],
                                               char out[static TRELLIS_PSA_DEVICE_ID_LEN + 1]);

/*
 * JSON form of a claims-set, as printed by `trellis token check` and read by
 * `trellis token create --claims` (docs/token-format.md): claim names from the IANA CWT
 * registry (eat_nonce, ueid, eat_profile, psa-client-id, ...), byte strings as lowercase hex.
 * to_json returns a NUL-terminated string to release with free(). from_json applies the members
 * of a JSON object onto *claims (members absent from the object leave the claim as it was),
 * accepting the short aliases documented there, and refuses unknown members, wrong types and bad
 * hex with TRELLIS_ERR_PARSE and a reason. It does not validate the result: call
 * trellis_psa_claims_validate.
 */
trellis_err_t trellis_psa_claims_to_json(const trellis_psa_claims_t *claims, char **out);
trellis_err_t trellis_psa_claims_from_json(const char *json, size_t len,
                                           trellis_psa_claims_t *claims, trellis_reason_t *reason);

#endif /* TRELLIS_PSA_TOKEN_H */
