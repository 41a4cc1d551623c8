/*
 * Internals of the PKCS#11 port shared by its files and its white-box tests. Not installed.
 */
#ifndef TRELLIS_DEVICE_PKCS11_INTERNAL_H
#define TRELLIS_DEVICE_PKCS11_INTERNAL_H

#include "pkcs11_min.h"
#include "trellis/error.h"
#include "trellis/rot_pkcs11.h"

/* Most modules a process has loaded at once, and most slots looked at per module. */
#define TR_PKCS11_MODULES_MAX 8
#define TR_PKCS11_SLOTS_MAX   64

/*
 * Loads the module at path (dlopen) and initialises it, or takes another reference on it if this
 * process already did. *entry is the registry entry to pass to tr__pkcs11_module_release;
 * *functions its function list. Errors: TRELLIS_ERR_NOT_FOUND (no such file),
 * TRELLIS_ERR_UNAVAILABLE (not loadable, no C_GetFunctionList, C_Initialize failed),
 * TRELLIS_ERR_TOO_LARGE (TR_PKCS11_MODULES_MAX modules already loaded).
 */
trellis_err_t tr__pkcs11_module_acquire(const char *path, void **entry,
                                        CK_FUNCTION_LIST_PTR *functions, trellis_reason_t *reason);

/* Drops a reference; the last one finalises (if Trellis initialised it) and unloads. */
void tr__pkcs11_module_release(void *entry);

/* The function list and session of an open token, for the tests that call PKCS#11 directly. */
CK_FUNCTION_LIST_PTR tr__pkcs11_token_functions(const trellis_pkcs11_token_t *tok);
CK_SESSION_HANDLE tr__pkcs11_token_session(const trellis_pkcs11_token_t *tok);

/* The symbolic name of a CKR_ value ("CKR_PIN_INCORRECT"), or "CKR_0x..." for others, written
 * into buf. */
const char *tr__pkcs11_rv_name(CK_RV rv, char *buf, size_t size);

/*
 * Parses CKA_EC_POINT strictly: a DER OCTET STRING (tag 0x04, short length 0x41) wrapping the
 * 65-byte uncompressed point (PKCS#11 v2.40 §2.3.3). Anything else is TRELLIS_ERR_BAD_KEY.
 */
trellis_err_t tr__pkcs11_parse_ec_point(const uint8_t *der, size_t len,
                                        uint8_t point[TRELLIS_ROT_POINT_LEN]);

#endif /* TRELLIS_DEVICE_PKCS11_INTERNAL_H */
