/*
 * The PKCS#11 RoT backend: the RoT key lives in a PKCS#11 token (a secure element, an HSM, a
 * TPM behind a PKCS#11 module; SoftHSM2 in tests) as a non-extractable, sensitive P-256 key
 * (CKA_EXTRACTABLE false, CKA_SENSITIVE true), found by label (CKA_LABEL) or id (CKA_ID), and
 * signs through C_Sign with CKM_ECDSA over the SHA-256 digest.
 *
 * The module (a shared library) is loaded with dlopen and initialised once per process however
 * many tokens or keys are opened: opens and closes are reference counted, and the last close
 * finalises and unloads it. If the application already initialised the module itself, Trellis
 * uses it and leaves finalisation to the application. Module loading is thread-safe; one open
 * token or key is not shared between threads.
 *
 * Where the key is comes from configuration: a PKCS#11 URI (RFC 7512), optionally overridden by
 * an explicit module path, token label and PIN. The PIN is never logged nor put in a reason, and
 * every buffer that held it is cleansed.
 *
 * Contexts live in caller memory; nothing here allocates (the module may, inside its calls).
 */
#ifndef TRELLIS_ROT_PKCS11_H
#define TRELLIS_ROT_PKCS11_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"
#include "trellis/rot.h"
#include "trellis/rot_file.h"

/* Hard limits. Token label, manufacturer, model and serial are the fixed-size fields of
 * CK_TOKEN_INFO (PKCS#11 v2.40 §3.2); the others are Trellis maxima. */
#define TRELLIS_PKCS11_URI_MAX          2048
#define TRELLIS_PKCS11_TOKEN_MAX        32
#define TRELLIS_PKCS11_MANUFACTURER_MAX 32
#define TRELLIS_PKCS11_MODEL_MAX        16
#define TRELLIS_PKCS11_SERIAL_MAX       16
#define TRELLIS_PKCS11_OBJECT_MAX       128
#define TRELLIS_PKCS11_ID_MAX           64
#define TRELLIS_PKCS11_PIN_MAX          64
#define TRELLIS_PKCS11_PATH_MAX         1024

/* Object type of the URI "type" attribute (RFC 7512 §2.3). */
typedef enum {
    TRELLIS_PKCS11_TYPE_ANY = 0, /* no type attribute */
    TRELLIS_PKCS11_TYPE_PRIVATE,
    TRELLIS_PKCS11_TYPE_PUBLIC,
    TRELLIS_PKCS11_TYPE_CERT,
    TRELLIS_PKCS11_TYPE_SECRET_KEY,
    TRELLIS_PKCS11_TYPE_DATA,
} trellis_pkcs11_type_t;

/* Bits of trellis_pkcs11_uri_t.present: which attributes the URI carried. */
#define TRELLIS_PKCS11_HAS_TOKEN        0x0001u
#define TRELLIS_PKCS11_HAS_MANUFACTURER 0x0002u
#define TRELLIS_PKCS11_HAS_MODEL        0x0004u
#define TRELLIS_PKCS11_HAS_SERIAL       0x0008u
#define TRELLIS_PKCS11_HAS_OBJECT       0x0010u
#define TRELLIS_PKCS11_HAS_ID           0x0020u
#define TRELLIS_PKCS11_HAS_TYPE         0x0040u
#define TRELLIS_PKCS11_HAS_SLOT_ID      0x0080u
#define TRELLIS_PKCS11_HAS_MODULE_PATH  0x0100u
#define TRELLIS_PKCS11_HAS_PIN_VALUE    0x0200u
#define TRELLIS_PKCS11_HAS_PIN_SOURCE   0x0400u

/*
 * A parsed PKCS#11 URI. Text values are percent-decoded and NUL-terminated; id holds raw bytes.
 * Attributes Trellis matches on: token, manufacturer, model, serial (token selection), slot-id,
 * object and id (key selection), type. Library and slot description attributes are parsed and
 * checked for syntax but do not narrow the search. pin holds pin-value, or the PIN read from
 * pin-source when the URI is resolved by trellis_rot_pkcs11_open; it is secret: clear the
 * structure with trellis_pkcs11_uri_cleanse when done.
 */
typedef struct {
    unsigned present; /* TRELLIS_PKCS11_HAS_* */
    char token[TRELLIS_PKCS11_TOKEN_MAX + 1];
    char manufacturer[TRELLIS_PKCS11_MANUFACTURER_MAX + 1];
    char model[TRELLIS_PKCS11_MODEL_MAX + 1];
    char serial[TRELLIS_PKCS11_SERIAL_MAX + 1];
    char object[TRELLIS_PKCS11_OBJECT_MAX + 1];
    uint8_t id[TRELLIS_PKCS11_ID_MAX];
    size_t id_len;
    trellis_pkcs11_type_t type;
    unsigned long slot_id;
    char module_path[TRELLIS_PKCS11_PATH_MAX + 1];
    char pin_source[TRELLIS_PKCS11_PATH_MAX + 1];
    char pin[TRELLIS_PKCS11_PIN_MAX + 1];
} trellis_pkcs11_uri_t;

/*
 * Parses text[0..len) as a PKCS#11 URI (RFC 7512 §2.3):
 *
 *   pkcs11:token=Trellis%20RoT;object=SN-000001;id=%01%02;type=private
 *          ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234
 *
 * Strict: the scheme is "pkcs11:" (case-insensitive); path attributes are separated by ';',
 * query attributes by '&'; every attribute is NAME=VALUE with a known name (vendor attributes
 * "x-..." are accepted and ignored) in its proper component; no attribute appears twice; values
 * use only the characters RFC 7512 allows there plus well-formed %XX escapes; a decoded text value
 * holds no NUL byte; slot-id is a decimal number; type is one of public, private, cert,
 * secret-key, data; library-version is DIGITS[.DIGITS]; module-path and a pin-source naming a
 * file are absolute paths (pin-source may be "file:" followed by an absolute path); pin-value and
 * pin-source are mutually exclusive (§2.4); module-name is refused (Trellis loads modules by
 * path only). Every value has the maximum above.
 *
 * Errors: TRELLIS_ERR_INVALID_ARG (NULL argument), TRELLIS_ERR_TOO_LARGE (len above
 * TRELLIS_PKCS11_URI_MAX or a value above its maximum), TRELLIS_ERR_PARSE (anything else), with
 * the attribute at fault in reason (never its value, which may be a PIN). On failure *out is
 * zeroed.
 */
trellis_err_t trellis_pkcs11_uri_parse(const char *text, size_t len, trellis_pkcs11_uri_t *out,
                                       trellis_reason_t *reason);

/*
 * Writes uri as text: the path attributes in the order of the structure (token, manufacturer,
 * model, serial, slot-id, object, id, type), then module-path. pin-value and pin-source are
 * never written, so the text can go into files and logs. Characters outside the unreserved set
 * are percent-encoded; id is always percent-encoded byte by byte. Output follows the
 * (buf, buf_size, *out_len) convention of trellis.h.
 */
trellis_err_t trellis_pkcs11_uri_format(const trellis_pkcs11_uri_t *uri, char *buf, size_t buf_size,
                                        size_t *out_len);

/* Zeroes *uri, cleansing the PIN. NULL is a no-op. */
void trellis_pkcs11_uri_cleanse(trellis_pkcs11_uri_t *uri);

/* Private state of an open token session; read nothing from it directly. */
typedef struct {
    void *module; /* module registry entry */
    const void *functions;
    unsigned long slot;
    unsigned long session;
    int logged_in;
    char manufacturer[TRELLIS_PKCS11_MANUFACTURER_MAX + 1];
    char model[TRELLIS_PKCS11_MODEL_MAX + 1];
} trellis_pkcs11_token_t;

/*
 * Opens a session on the one initialised token matching uri's token selection attributes (token
 * label, manufacturer, model, serial, slot-id; uri NULL or a URI with none of them matches only
 * if exactly one initialised token is present) in module_path (NULL: the URI's module-path), and
 * logs in as the normal user when a PIN is known: pin, else the URI's pin-value, else the first
 * line of its pin-source file. A token that requires login when no PIN is known is refused.
 * read_write opens a read/write session, which key generation needs.
 *
 * Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_CONFIG (no module path given),
 * TRELLIS_ERR_NOT_FOUND (module file or token not found), TRELLIS_ERR_CONFLICT (several tokens
 * match), TRELLIS_ERR_PERMISSION (wrong or locked PIN, PIN needed but absent),
 * TRELLIS_ERR_UNAVAILABLE (the module fails to load or initialise), TRELLIS_ERR_CRYPTO (other
 * PKCS#11 failures; reason names the function and the CKR_ value). On failure tok is zeroed.
 */
trellis_err_t trellis_pkcs11_token_open(trellis_pkcs11_token_t *tok,
                                        const trellis_pkcs11_uri_t *uri, const char *module_path,
                                        const char *pin, int read_write, trellis_reason_t *reason);

/* Logs out, closes the session and releases the module. NULL or a closed tok is a no-op. */
void trellis_pkcs11_token_close(trellis_pkcs11_token_t *tok);

/*
 * Factory side: generates a P-256 key pair inside the token (C_GenerateKeyPair with
 * CKM_EC_KEY_PAIR_GEN, named curve prime256v1) as token objects labelled label with CKA_ID id:
 * the private key CKA_PRIVATE, CKA_SENSITIVE and CKA_SIGN true, CKA_EXTRACTABLE and CKA_DERIVE
 * false; the public key CKA_VERIFY true. Writes the public point. label is 1..
 * TRELLIS_PKCS11_OBJECT_MAX bytes, id 1..TRELLIS_PKCS11_ID_MAX bytes. Needs a read/write
 * session. Errors as for trellis_pkcs11_token_open, and TRELLIS_ERR_EXISTS if the token already
 * holds a private or public key with that label (keys are never replaced silently).
 */
trellis_err_t trellis_pkcs11_token_generate(trellis_pkcs11_token_t *tok, const char *label,
                                            const uint8_t *id, size_t id_len,
                                            uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                            trellis_reason_t *reason);

/* Result of trellis_pkcs11_token_find. */
typedef enum {
    TRELLIS_PKCS11_KEY_ABSENT = 0, /* neither half exists */
    TRELLIS_PKCS11_KEY_COMPLETE,   /* one private and one public key, point written */
    TRELLIS_PKCS11_KEY_PARTIAL,    /* only one half, or halves that do not fit together */
} trellis_pkcs11_key_state_t;

/*
 * Factory side (resuming a batch): looks up the EC key pair labelled label and says whether it
 * is complete (then writes its point, read from the public key's CKA_EC_POINT), absent, or
 * partial (for example after a crash in C_GenerateKeyPair on a token that is not atomic).
 * A private key that is extractable or not sensitive counts as partial: it cannot serve as a RoT.
 */
trellis_err_t trellis_pkcs11_token_find(trellis_pkcs11_token_t *tok, const char *label,
                                        trellis_pkcs11_key_state_t *state,
                                        uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                        trellis_reason_t *reason);

/* Factory side: destroys every key object (private and public) labelled label, so a partial
 * key can be generated again. Absent objects are not an error. Needs a read/write session. */
trellis_err_t trellis_pkcs11_token_destroy(trellis_pkcs11_token_t *tok, const char *label,
                                           trellis_reason_t *reason);

/* Options of trellis_rot_pkcs11_open. Every member may be NULL. */
typedef struct {
    const char *uri;         /* RFC 7512 URI naming the token and the key (object and/or id) */
    const char *module_path; /* overrides the URI's module-path */
    const char *token_label; /* overrides the URI's token */
    const char *pin;         /* overrides the URI's pin-value or pin-source */
    trellis_rot_measure_options_t measure;
} trellis_rot_pkcs11_options_t;

/* Private state of an open PKCS#11 RoT; read nothing from it directly. */
typedef struct {
    trellis_pkcs11_token_t token;
    unsigned long private_key;
    uint8_t point[TRELLIS_ROT_POINT_LEN];
    trellis_rot_report_t report;
    int is_open;
} trellis_rot_pkcs11_t;

/*
 * Opens the PKCS#11 RoT: opens the token, finds exactly one private EC key matching the URI's
 * object (CKA_LABEL) and/or id (CKA_ID) and refuses it unless it is a P-256 key that can sign and
 * is sensitive and non-extractable; reads the public point from the public key object with the
 * same CKA_ID (or, lacking one, the same label), parsing CKA_EC_POINT strictly as a DER OCTET
 * STRING of the 65-byte uncompressed point; checks that the two halves belong together by
 * signing a fresh digest and verifying it; measures the firmware; and fills *port.
 *
 * rot must stay at the same address, and be closed with trellis_rot_pkcs11_close, while port is
 * used. Errors: as trellis_pkcs11_token_open, plus TRELLIS_ERR_INVALID_ARG (the URI names no key),
 * TRELLIS_ERR_NOT_FOUND (no such key), TRELLIS_ERR_CONFLICT (several keys match),
 * TRELLIS_ERR_BAD_KEY (wrong curve or type, extractable or not sensitive, halves that do not
 * match, malformed CKA_EC_POINT). On failure rot is closed and *port zeroed.
 */
trellis_err_t trellis_rot_pkcs11_open(trellis_rot_pkcs11_t *rot,
                                      const trellis_rot_pkcs11_options_t *opts,
                                      trellis_rot_port_t *port, trellis_reason_t *reason);

/* Closes the session and releases the module. NULL or a closed rot is a no-op. */
void trellis_rot_pkcs11_close(trellis_rot_pkcs11_t *rot);

#endif /* TRELLIS_ROT_PKCS11_H */
