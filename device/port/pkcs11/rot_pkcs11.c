/*
 * The PKCS#11 RoT backend (rot_pkcs11.h): token sessions, key generation for the factory, and
 * the RoT port over a non-extractable P-256 key.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "device_internal.h"
#include "pkcs11_internal.h"

#define IMPL_LABEL       "trellis:rot:pkcs11:1"
#define EC_POINT_DER_LEN (2 + TRELLIS_ROT_POINT_LEN) /* OCTET STRING tag, length, point */
#define ATTR_MAX         256 /* largest attribute value read (CKA_EC_POINT, CKA_ID, CKA_LABEL) */
#define PIN_FILE_MAX     (TRELLIS_PKCS11_PIN_MAX + 2)

/* DER of the named-curve OID prime256v1 / secp256r1 (RFC 5480 §2.1.1.1), the CKA_EC_PARAMS of
 * a P-256 key (PKCS#11 v2.40 §2.3.3, ecParameters namedCurve). */
static CK_BYTE p256_params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static trellis_err_t ck_error(trellis_reason_t *reason, const char *fn, CK_RV rv)
{
    char buf[32];
    trellis_err_t err;

    switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_USER_PIN_NOT_INITIALIZED:
        err = TRELLIS_ERR_PERMISSION;
        break;
    case CKR_HOST_MEMORY:
    case CKR_DEVICE_MEMORY:
        err = TRELLIS_ERR_NOMEM;
        break;
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        err = TRELLIS_ERR_UNAVAILABLE;
        break;
    default:
        err = TRELLIS_ERR_CRYPTO;
        break;
    }
    return trellis_reason_set(reason, err, "%s: %s", fn, tr__pkcs11_rv_name(rv, buf, sizeof(buf)));
}

static const CK_FUNCTION_LIST *fns(const trellis_pkcs11_token_t *tok)
{
    return (const CK_FUNCTION_LIST *)tok->functions;
}

CK_FUNCTION_LIST_PTR tr__pkcs11_token_functions(const trellis_pkcs11_token_t *tok)
{
    /* The module's table is not const (C_GetFunctionList hands out a plain pointer); the token
     * only stores it as const to keep callers from writing to it. */
    return tok != NULL ? (CK_FUNCTION_LIST_PTR)(uintptr_t)tok->functions : NULL;
}

CK_SESSION_HANDLE tr__pkcs11_token_session(const trellis_pkcs11_token_t *tok)
{
    return tok != NULL ? tok->session : CK_INVALID_HANDLE;
}

trellis_err_t tr__pkcs11_parse_ec_point(const uint8_t *der, size_t len,
                                        uint8_t point[TRELLIS_ROT_POINT_LEN])
{
    memset(point, 0, TRELLIS_ROT_POINT_LEN);
    /* PKCS#11 v2.40 §2.3.3: CKA_EC_POINT is "DER-encoding of ANSI X9.62 ECPoint value Q", an
     * OCTET STRING (0x04) of length 65 (0x41) holding 0x04 || X || Y. Raw points some tokens
     * return, long-form lengths and compressed points are all refused. */
    if (der == NULL || len != EC_POINT_DER_LEN || der[0] != 0x04 ||
        der[1] != TRELLIS_ROT_POINT_LEN || der[2] != 0x04) {
        return TRELLIS_ERR_BAD_KEY;
    }
    memcpy(point, der + 2, TRELLIS_ROT_POINT_LEN);
    return TRELLIS_OK;
}

/* Token info fields are blank-padded, not NUL-terminated (v2.40 §3.2). */
static void trim_copy(char *dst, size_t dst_size, const CK_UTF8CHAR *src, size_t n)
{
    while (n > 0 && (src[n - 1] == ' ' || src[n - 1] == '\0')) {
        n--;
    }
    if (n >= dst_size) {
        n = dst_size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int padded_equal(const CK_UTF8CHAR *field, size_t n, const char *want)
{
    char have[64];
    trim_copy(have, sizeof(have), field, n);
    return strcmp(have, want) == 0;
}

/* Reads a PIN from a file (pin-source): the first line, without its newline. */
static trellis_err_t read_pin_file(const char *path, char *pin, size_t pin_size,
                                   trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char buf[PIN_FILE_MAX + 1];
    ssize_t n = 0;
    int fd = -1;

    memset(pin, 0, pin_size);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = trellis_reason_set(reason,
                                 errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_PERMISSION,
                                 "cannot read the pin-source file");
        goto out;
    }
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot read the pin-source file");
        goto out;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (tr__dev_strlcpy(pin, pin_size, buf) != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "PIN longer than %d bytes",
                                 TRELLIS_PKCS11_PIN_MAX);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    tr__dev_wipe(buf, sizeof(buf));
    return err;
}

static int token_matches(const CK_TOKEN_INFO *info, CK_SLOT_ID slot,
                         const trellis_pkcs11_uri_t *uri)
{
    if ((uri->present & TRELLIS_PKCS11_HAS_TOKEN) &&
        !padded_equal(info->label, sizeof(info->label), uri->token)) {
        return 0;
    }
    if ((uri->present & TRELLIS_PKCS11_HAS_MANUFACTURER) &&
        !padded_equal(info->manufacturerID, sizeof(info->manufacturerID), uri->manufacturer)) {
        return 0;
    }
    if ((uri->present & TRELLIS_PKCS11_HAS_MODEL) &&
        !padded_equal(info->model, sizeof(info->model), uri->model)) {
        return 0;
    }
    if ((uri->present & TRELLIS_PKCS11_HAS_SERIAL) &&
        !padded_equal(info->serialNumber, sizeof(info->serialNumber), uri->serial)) {
        return 0;
    }
    if ((uri->present & TRELLIS_PKCS11_HAS_SLOT_ID) && uri->slot_id != slot) {
        return 0;
    }
    return 1;
}

trellis_err_t trellis_pkcs11_token_open(trellis_pkcs11_token_t *tok,
                                        const trellis_pkcs11_uri_t *uri, const char *module_path,
                                        const char *pin, int read_write, trellis_reason_t *reason)
{
    static const trellis_pkcs11_uri_t any_token;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    CK_FUNCTION_LIST_PTR f = NULL;
    CK_SLOT_ID slots[TR_PKCS11_SLOTS_MAX];
    CK_ULONG nslots = TR_PKCS11_SLOTS_MAX;
    CK_TOKEN_INFO info;
    CK_TOKEN_INFO found_info;
    CK_SLOT_ID found = 0;
    size_t matches = 0;
    char pinbuf[TRELLIS_PKCS11_PIN_MAX + 1];
    const char *path = module_path;
    int have_pin = 0;
    CK_RV rv;

    trellis_reason_clear(reason);
    memset(pinbuf, 0, sizeof(pinbuf));
    if (tok == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(tok, 0, sizeof(*tok));
    if (uri == NULL) {
        uri = &any_token;
    }
    if (path == NULL && (uri->present & TRELLIS_PKCS11_HAS_MODULE_PATH)) {
        path = uri->module_path;
    }
    if (path == NULL || path[0] == '\0') {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFIG,
                                 "no PKCS#11 module path (module-path in the URI, or configured)");
        goto out;
    }
    /* The PIN: given explicitly, else the URI's pin-value, else read from its pin-source. It
     * lives only in pinbuf, which is cleansed on every way out. */
    if (pin != NULL) {
        if (tr__dev_strlcpy(pinbuf, sizeof(pinbuf), pin) != TRELLIS_OK) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "PIN longer than %d bytes",
                                     TRELLIS_PKCS11_PIN_MAX);
            goto out;
        }
        have_pin = 1;
    } else if (uri->present & TRELLIS_PKCS11_HAS_PIN_VALUE) {
        memcpy(pinbuf, uri->pin, sizeof(pinbuf));
        pinbuf[sizeof(pinbuf) - 1] = '\0';
        have_pin = 1;
    } else if (uri->present & TRELLIS_PKCS11_HAS_PIN_SOURCE) {
        err = read_pin_file(uri->pin_source, pinbuf, sizeof(pinbuf), reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        have_pin = 1;
    }
    err = tr__pkcs11_module_acquire(path, &tok->module, &f, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    tok->functions = f;
    rv = f->C_GetSlotList(CK_TRUE, slots, &nslots);
    if (rv == CKR_BUFFER_TOO_SMALL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE, "more than %d slots with tokens",
                                 TR_PKCS11_SLOTS_MAX);
        goto out;
    }
    if (rv != CKR_OK) {
        err = ck_error(reason, "C_GetSlotList", rv);
        goto out;
    }
    for (CK_ULONG i = 0; i < nslots && i < TR_PKCS11_SLOTS_MAX; i++) {
        rv = f->C_GetTokenInfo(slots[i], &info);
        /* A token being removed, or one never initialised (SoftHSM2 always offers a blank
         * one), holds no keys: not a match. */
        if (rv != CKR_OK || !(info.flags & CKF_TOKEN_INITIALIZED)) {
            continue;
        }
        if (token_matches(&info, slots[i], uri)) {
            matches++;
            found = slots[i];
            found_info = info;
        }
    }
    if (matches == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOT_FOUND, "no PKCS#11 token matches%s%s",
                                 (uri->present & TRELLIS_PKCS11_HAS_TOKEN) ? " label " : "",
                                 (uri->present & TRELLIS_PKCS11_HAS_TOKEN) ? uri->token : "");
        goto out;
    }
    if (matches > 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                 "%zu PKCS#11 tokens match: name one by label or serial", matches);
        goto out;
    }
    tok->slot = found;
    rv = f->C_OpenSession(found, CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0), NULL, NULL,
                          &tok->session);
    if (rv != CKR_OK) {
        tok->session = CK_INVALID_HANDLE;
        err = ck_error(reason, "C_OpenSession", rv);
        goto out;
    }
    if (have_pin) {
        /* The login state belongs to the application, not the session (v2.40 §5.6): another
         * open key on the same token may have logged in already. */
        rv = f->C_Login(tok->session, CKU_USER, (CK_UTF8CHAR_PTR)pinbuf, strlen(pinbuf));
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
            err = ck_error(reason, "C_Login", rv);
            goto out;
        }
        tok->logged_in = 1;
    } else if (found_info.flags & CKF_LOGIN_REQUIRED) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PERMISSION,
                                 "the token requires a PIN and none was given");
        goto out;
    }
    trim_copy(tok->manufacturer, sizeof(tok->manufacturer), found_info.manufacturerID,
              sizeof(found_info.manufacturerID));
    trim_copy(tok->model, sizeof(tok->model), found_info.model, sizeof(found_info.model));
    err = TRELLIS_OK;
out:
    tr__dev_wipe(pinbuf, sizeof(pinbuf));
    if (err != TRELLIS_OK && tok != NULL) {
        trellis_pkcs11_token_close(tok);
    }
    return err;
}

void trellis_pkcs11_token_close(trellis_pkcs11_token_t *tok)
{
    if (tok == NULL) {
        return;
    }
    if (tok->functions != NULL && tok->session != CK_INVALID_HANDLE) {
        /* No C_Logout: closing the application's last session on the token logs out
         * (v2.40 §5.6), and an explicit logout would also log out other open keys. */
        fns(tok)->C_CloseSession(tok->session);
    }
    tr__pkcs11_module_release(tok->module);
    memset(tok, 0, sizeof(*tok));
}

/* Finds up to max objects matching tmpl; *count says how many (max + 1 is never reported, so
 * callers asking "exactly one?" pass max 2). */
static trellis_err_t find_objects(const trellis_pkcs11_token_t *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                                  CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *count,
                                  trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    CK_RV rv;

    *count = 0;
    rv = fns(tok)->C_FindObjectsInit(tok->session, tmpl, n);
    if (rv != CKR_OK) {
        return ck_error(reason, "C_FindObjectsInit", rv);
    }
    rv = fns(tok)->C_FindObjects(tok->session, out, max, count);
    if (rv != CKR_OK) {
        *count = 0;
        err = ck_error(reason, "C_FindObjects", rv);
    } else {
        err = TRELLIS_OK;
    }
    /* Always end the search: a session with an active search refuses other operations. */
    rv = fns(tok)->C_FindObjectsFinal(tok->session);
    if (err == TRELLIS_OK && rv != CKR_OK) {
        err = ck_error(reason, "C_FindObjectsFinal", rv);
    }
    if (*count > max) {
        *count = max;
    }
    return err;
}

static trellis_err_t get_attr(const trellis_pkcs11_token_t *tok, CK_OBJECT_HANDLE obj,
                              CK_ATTRIBUTE_TYPE type, void *buf, CK_ULONG size, CK_ULONG *len,
                              trellis_reason_t *reason)
{
    CK_ATTRIBUTE a = {type, buf, size};
    CK_RV rv = fns(tok)->C_GetAttributeValue(tok->session, obj, &a, 1);

    *len = 0;
    if (rv != CKR_OK) {
        return ck_error(reason, "C_GetAttributeValue", rv);
    }
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > size) {
        return trellis_reason_set(reason, TRELLIS_ERR_CRYPTO, "attribute 0x%lx unavailable", type);
    }
    *len = a.ulValueLen;
    return TRELLIS_OK;
}

static trellis_err_t get_bool(const trellis_pkcs11_token_t *tok, CK_OBJECT_HANDLE obj,
                              CK_ATTRIBUTE_TYPE type, int *value, trellis_reason_t *reason)
{
    CK_BBOOL b = CK_FALSE;
    CK_ULONG len = 0;
    trellis_err_t err = get_attr(tok, obj, type, &b, sizeof(b), &len, reason);

    *value = 0;
    if (err != TRELLIS_OK) {
        return err;
    }
    if (len != sizeof(b)) {
        return trellis_reason_set(reason, TRELLIS_ERR_CRYPTO, "attribute 0x%lx is not a CK_BBOOL",
                                  type);
    }
    *value = b == CK_TRUE;
    return TRELLIS_OK;
}

/* An EC key on the named curve P-256. Content problems are TRELLIS_ERR_BAD_KEY; failures of the
 * calls themselves keep their own error. */
static trellis_err_t check_ec_p256(const trellis_pkcs11_token_t *tok, CK_OBJECT_HANDLE obj,
                                   trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    CK_KEY_TYPE kt = 0;
    CK_BYTE params[ATTR_MAX];
    CK_ULONG len = 0;

    err = get_attr(tok, obj, CKA_KEY_TYPE, &kt, sizeof(kt), &len, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (len != sizeof(kt) || kt != CKK_EC) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "key is not an EC key");
    }
    err = get_attr(tok, obj, CKA_EC_PARAMS, params, sizeof(params), &len, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (len != sizeof(p256_params) || memcmp(params, p256_params, len) != 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                  "key is not on the named curve P-256");
    }
    return TRELLIS_OK;
}

/* The private half of a RoT: P-256, can sign, sensitive, never leaves the token. */
static trellis_err_t check_rot_private(const trellis_pkcs11_token_t *tok, CK_OBJECT_HANDLE obj,
                                       trellis_reason_t *reason)
{
    trellis_err_t err = check_ec_p256(tok, obj, reason);
    int v = 0;

    if (err != TRELLIS_OK) {
        return err;
    }
    err = get_bool(tok, obj, CKA_SIGN, &v, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (!v) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY, "key may not sign (CKA_SIGN)");
    }
    err = get_bool(tok, obj, CKA_SENSITIVE, &v, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (!v) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                  "key is not sensitive (CKA_SENSITIVE false)");
    }
    err = get_bool(tok, obj, CKA_EXTRACTABLE, &v, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (v) {
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                  "key is extractable (CKA_EXTRACTABLE true)");
    }
    return TRELLIS_OK;
}

static trellis_err_t read_point(const trellis_pkcs11_token_t *tok, CK_OBJECT_HANDLE pub,
                                uint8_t point[TRELLIS_ROT_POINT_LEN], trellis_reason_t *reason)
{
    CK_BYTE der[ATTR_MAX];
    CK_ULONG len = 0;
    trellis_err_t err = get_attr(tok, pub, CKA_EC_POINT, der, sizeof(der), &len, reason);

    if (err != TRELLIS_OK) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        return err;
    }
    err = tr__pkcs11_parse_ec_point(der, len, point);
    if (err != TRELLIS_OK) {
        return trellis_reason_set(reason, err,
                                  "CKA_EC_POINT is not a DER OCTET STRING of an uncompressed "
                                  "P-256 point");
    }
    return TRELLIS_OK;
}

static trellis_err_t check_label(const char *label, trellis_reason_t *reason)
{
    size_t n = label != NULL ? strnlen(label, TRELLIS_PKCS11_OBJECT_MAX + 1) : 0;
    if (n == 0 || n > TRELLIS_PKCS11_OBJECT_MAX) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "key label must be 1..%d bytes",
                                  TRELLIS_PKCS11_OBJECT_MAX);
    }
    return TRELLIS_OK;
}

static trellis_err_t count_labelled(const trellis_pkcs11_token_t *tok, CK_OBJECT_CLASS cls,
                                    char *label, CK_OBJECT_HANDLE *out, CK_ULONG max,
                                    CK_ULONG *count, trellis_reason_t *reason)
{
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, label, strlen(label)},
    };
    return find_objects(tok, tmpl, 2, out, max, count, reason);
}

trellis_err_t trellis_pkcs11_token_generate(trellis_pkcs11_token_t *tok, const char *label,
                                            const uint8_t *id, size_t id_len,
                                            uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                            trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char lab[TRELLIS_PKCS11_OBJECT_MAX + 1];
    CK_BYTE idb[TRELLIS_PKCS11_ID_MAX];
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    CK_RV rv;

    trellis_reason_clear(reason);
    if (point == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(point, 0, TRELLIS_ROT_POINT_LEN);
    if (tok == NULL || tok->functions == NULL || id == NULL || id_len == 0 ||
        id_len > TRELLIS_PKCS11_ID_MAX) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    err = check_label(label, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* The template wants non-const pointers; the module only reads through them. */
    memcpy(lab, label, strlen(label) + 1);
    memcpy(idb, id, id_len);
    for (int c = 0; c < 2; c++) {
        err = count_labelled(tok, c == 0 ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY, lab, h, 1, &n, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        if (n > 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_EXISTS,
                                     "the token already holds a key labelled %s", lab);
            goto out;
        }
    }
    {
        CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
        CK_BBOOL yes = CK_TRUE;
        CK_BBOOL no = CK_FALSE;
        CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
        CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
        CK_KEY_TYPE ec = CKK_EC;
        CK_ATTRIBUTE pub_tmpl[] = {
            {CKA_CLASS, &pub_class, sizeof(pub_class)},
            {CKA_KEY_TYPE, &ec, sizeof(ec)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &no, sizeof(no)},
            {CKA_VERIFY, &yes, sizeof(yes)},
            {CKA_EC_PARAMS, p256_params, sizeof(p256_params)},
            {CKA_LABEL, lab, strlen(lab)},
            {CKA_ID, idb, id_len},
        };
        /* The RoT key: sensitive and never extractable, so no PKCS#11 call (C_GetAttributeValue
         * of CKA_VALUE, C_WrapKey) can take it out of the token; usable only to sign. */
        CK_ATTRIBUTE priv_tmpl[] = {
            {CKA_CLASS, &priv_class, sizeof(priv_class)},
            {CKA_KEY_TYPE, &ec, sizeof(ec)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_PRIVATE, &yes, sizeof(yes)},
            {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &no, sizeof(no)},
            {CKA_SIGN, &yes, sizeof(yes)},
            {CKA_DERIVE, &no, sizeof(no)},
            {CKA_LABEL, lab, strlen(lab)},
            {CKA_ID, idb, id_len},
        };
        rv = fns(tok)->C_GenerateKeyPair(tok->session, &mech, pub_tmpl,
                                         sizeof(pub_tmpl) / sizeof(pub_tmpl[0]), priv_tmpl,
                                         sizeof(priv_tmpl) / sizeof(priv_tmpl[0]), &pub, &priv);
        if (rv != CKR_OK) {
            pub = priv = CK_INVALID_HANDLE;
            err = ck_error(reason, "C_GenerateKeyPair", rv);
            goto out;
        }
    }
    /* Trust but verify: a token that ignored the template must not yield a RoT. */
    err = check_rot_private(tok, priv, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = read_point(tok, pub, point, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        if (priv != CK_INVALID_HANDLE) {
            fns(tok)->C_DestroyObject(tok->session, priv);
        }
        if (pub != CK_INVALID_HANDLE) {
            fns(tok)->C_DestroyObject(tok->session, pub);
        }
    }
    return err;
}

trellis_err_t trellis_pkcs11_token_find(trellis_pkcs11_token_t *tok, const char *label,
                                        trellis_pkcs11_key_state_t *state,
                                        uint8_t point[static TRELLIS_ROT_POINT_LEN],
                                        trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char lab[TRELLIS_PKCS11_OBJECT_MAX + 1];
    CK_OBJECT_HANDLE privs[2];
    CK_OBJECT_HANDLE pubs[2];
    CK_ULONG np = 0;
    CK_ULONG nq = 0;
    trellis_reason_t ignored;

    trellis_reason_clear(reason);
    if (point == NULL || state == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(point, 0, TRELLIS_ROT_POINT_LEN);
    *state = TRELLIS_PKCS11_KEY_ABSENT;
    if (tok == NULL || tok->functions == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    err = check_label(label, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    memcpy(lab, label, strlen(label) + 1);
    err = count_labelled(tok, CKO_PRIVATE_KEY, lab, privs, 2, &np, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    err = count_labelled(tok, CKO_PUBLIC_KEY, lab, pubs, 2, &nq, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    if (np == 0 && nq == 0) {
        return TRELLIS_OK;
    }
    *state = TRELLIS_PKCS11_KEY_PARTIAL;
    if (np != 1 || nq != 1) {
        return TRELLIS_OK;
    }
    err = check_rot_private(tok, privs[0], &ignored);
    if (err == TRELLIS_OK) {
        err = check_ec_p256(tok, pubs[0], &ignored);
    }
    if (err == TRELLIS_OK) {
        err = read_point(tok, pubs[0], point, &ignored);
    }
    if (err == TRELLIS_ERR_BAD_KEY) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        return TRELLIS_OK; /* stays PARTIAL: unusable as a RoT, to be destroyed and redone */
    }
    if (err != TRELLIS_OK) {
        memset(point, 0, TRELLIS_ROT_POINT_LEN);
        *state = TRELLIS_PKCS11_KEY_ABSENT;
        return trellis_reason_set(reason, err, "%s", ignored.text);
    }
    *state = TRELLIS_PKCS11_KEY_COMPLETE;
    return TRELLIS_OK;
}

trellis_err_t trellis_pkcs11_token_destroy(trellis_pkcs11_token_t *tok, const char *label,
                                           trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    char lab[TRELLIS_PKCS11_OBJECT_MAX + 1];
    CK_OBJECT_HANDLE h[16];
    CK_ULONG n = 0;
    CK_RV rv;

    trellis_reason_clear(reason);
    if (tok == NULL || tok->functions == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    err = check_label(label, reason);
    if (err != TRELLIS_OK) {
        return err;
    }
    memcpy(lab, label, strlen(label) + 1);
    for (int c = 0; c < 2; c++) {
        err =
            count_labelled(tok, c == 0 ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY, lab, h, 16, &n, reason);
        if (err != TRELLIS_OK) {
            return err;
        }
        for (CK_ULONG i = 0; i < n; i++) {
            rv = fns(tok)->C_DestroyObject(tok->session, h[i]);
            if (rv != CKR_OK) {
                return ck_error(reason, "C_DestroyObject", rv);
            }
        }
    }
    return TRELLIS_OK;
}

/* ---- The RoT port ---- */

static trellis_err_t pkcs11_sign(const trellis_rot_pkcs11_t *rot,
                                 const uint8_t digest[TRELLIS_ROT_DIGEST_LEN],
                                 uint8_t sig[TRELLIS_ROT_SIG_LEN], trellis_reason_t *reason)
{
    CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
    CK_BYTE data[TRELLIS_ROT_DIGEST_LEN];
    CK_ULONG sig_len = TRELLIS_ROT_SIG_LEN;
    CK_RV rv;

    memset(sig, 0, TRELLIS_ROT_SIG_LEN);
    memcpy(data, digest, sizeof(data));
    rv = fns(&rot->token)->C_SignInit(rot->token.session, &mech, rot->private_key);
    if (rv != CKR_OK) {
        return ck_error(reason, "C_SignInit", rv);
    }
    /* CKM_ECDSA signs its input as the hash (v2.40 §2.3.6) and returns r || s, each as long as
     * the group order: 64 bytes for P-256, already the COSE form (RFC 9053 §2.1). */
    rv = fns(&rot->token)->C_Sign(rot->token.session, data, sizeof(data), sig, &sig_len);
    if (rv != CKR_OK) {
        memset(sig, 0, TRELLIS_ROT_SIG_LEN);
        return ck_error(reason, "C_Sign", rv);
    }
    if (sig_len != TRELLIS_ROT_SIG_LEN) {
        memset(sig, 0, TRELLIS_ROT_SIG_LEN);
        return trellis_reason_set(reason, TRELLIS_ERR_CRYPTO, "C_Sign returned %lu bytes, not 64",
                                  sig_len);
    }
    return TRELLIS_OK;
}

/* Verifies r || s over digest with the point, in software: proves the public object the port
 * will hand out belongs to the private key that signs. */
static trellis_err_t verify_with_point(const uint8_t point[TRELLIS_ROT_POINT_LEN],
                                       const uint8_t digest[TRELLIS_ROT_DIGEST_LEN],
                                       const uint8_t sig[TRELLIS_ROT_SIG_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY_CTX *vctx = NULL;
    EVP_PKEY *key = NULL;
    ECDSA_SIG *esig = NULL;
    BIGNUM *r = NULL;
    BIGNUM *s = NULL;
    unsigned char *der = NULL;
    int der_len = 0;
    unsigned char pub[TRELLIS_ROT_POINT_LEN];
    char group[] = "prime256v1";
    OSSL_PARAM params[3];

    memcpy(pub, point, sizeof(pub));
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    vctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (vctx == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_public_check(vctx) != 1) {
        err = TRELLIS_ERR_BAD_KEY;
        goto out;
    }
    esig = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if (esig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(esig, r, s) != 1) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    r = s = NULL; /* owned by esig now */
    der_len = i2d_ECDSA_SIG(esig, &der);
    if (der_len <= 0) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    if (EVP_PKEY_verify_init(vctx) != 1 ||
        EVP_PKEY_verify(vctx, der, (size_t)der_len, digest, TRELLIS_ROT_DIGEST_LEN) != 1) {
        err = TRELLIS_ERR_BAD_SIGNATURE;
        goto out;
    }
    err = TRELLIS_OK;
out:
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(esig);
    EVP_PKEY_CTX_free(vctx);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return err;
}

static trellis_err_t port_public_key(void *ctx, uint8_t point[TRELLIS_ROT_POINT_LEN])
{
    const trellis_rot_pkcs11_t *rot = ctx;

    if (rot == NULL || point == NULL || !rot->is_open) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memcpy(point, rot->point, TRELLIS_ROT_POINT_LEN);
    return TRELLIS_OK;
}

static trellis_err_t port_sign_digest(void *ctx, const uint8_t digest[TRELLIS_ROT_DIGEST_LEN],
                                      uint8_t sig[TRELLIS_ROT_SIG_LEN])
{
    const trellis_rot_pkcs11_t *rot = ctx;

    if (sig == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (rot == NULL || digest == NULL || !rot->is_open) {
        memset(sig, 0, TRELLIS_ROT_SIG_LEN);
        return TRELLIS_ERR_INVALID_ARG;
    }
    return pkcs11_sign(rot, digest, sig, NULL);
}

static trellis_err_t port_report(void *ctx, trellis_rot_report_t *out)
{
    const trellis_rot_pkcs11_t *rot = ctx;

    if (rot == NULL || out == NULL || !rot->is_open) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    *out = rot->report;
    return TRELLIS_OK;
}

trellis_err_t trellis_rot_pkcs11_open(trellis_rot_pkcs11_t *rot,
                                      const trellis_rot_pkcs11_options_t *opts,
                                      trellis_rot_port_t *port, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_pkcs11_uri_t uri;
    CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
    CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
    CK_KEY_TYPE ec = CKK_EC;
    CK_ATTRIBUTE tmpl[4];
    CK_ULONG nt = 0;
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    CK_BYTE key_id[TRELLIS_PKCS11_ID_MAX];
    CK_ULONG key_id_len = 0;
    CK_BYTE key_label[TRELLIS_PKCS11_OBJECT_MAX];
    CK_ULONG key_label_len = 0;
    uint8_t digest[TRELLIS_ROT_DIGEST_LEN];
    uint8_t sig[TRELLIS_ROT_SIG_LEN];
    uint8_t extra[TRELLIS_PKCS11_MANUFACTURER_MAX + 1 + TRELLIS_PKCS11_MODEL_MAX];
    size_t extra_len = 0;

    trellis_reason_clear(reason);
    memset(&uri, 0, sizeof(uri));
    if (port != NULL) {
        memset(port, 0, sizeof(*port));
    }
    if (rot == NULL || port == NULL || opts == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(rot, 0, sizeof(*rot));
    if (opts->uri != NULL) {
        err = trellis_pkcs11_uri_parse(opts->uri, strlen(opts->uri), &uri, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
    }
    if (opts->token_label != NULL) {
        if (tr__dev_strlcpy(uri.token, sizeof(uri.token), opts->token_label) != TRELLIS_OK) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                     "token label longer than %d bytes", TRELLIS_PKCS11_TOKEN_MAX);
            goto out;
        }
        uri.present |= TRELLIS_PKCS11_HAS_TOKEN;
    }
    if (!(uri.present & (TRELLIS_PKCS11_HAS_OBJECT | TRELLIS_PKCS11_HAS_ID))) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "the PKCS#11 URI names no key (object= or id=)");
        goto out;
    }
    if ((uri.present & TRELLIS_PKCS11_HAS_TYPE) && uri.type != TRELLIS_PKCS11_TYPE_PRIVATE &&
        uri.type != TRELLIS_PKCS11_TYPE_PUBLIC) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                 "the PKCS#11 URI names an object that is not a key");
        goto out;
    }
    err = trellis_pkcs11_token_open(&rot->token, &uri, opts->module_path, opts->pin, 0, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* The private key: exactly one EC private key with the URI's label and/or id. */
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &priv_class, sizeof(priv_class)};
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &ec, sizeof(ec)};
    if (uri.present & TRELLIS_PKCS11_HAS_OBJECT) {
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_LABEL, uri.object, strlen(uri.object)};
    }
    if (uri.present & TRELLIS_PKCS11_HAS_ID) {
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_ID, uri.id, uri.id_len};
    }
    err = find_objects(&rot->token, tmpl, nt, h, 2, &n, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (n == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_NOT_FOUND,
                                 "no EC private key matches the URI in the token");
        goto out;
    }
    if (n > 1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_CONFLICT,
                                 "several private keys match the URI: name one by id");
        goto out;
    }
    rot->private_key = h[0];
    err = check_rot_private(&rot->token, rot->private_key, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* Its public half: same CKA_ID (the PKCS#11 convention pairing halves), else same label. */
    err = get_attr(&rot->token, rot->private_key, CKA_ID, key_id, sizeof(key_id), &key_id_len,
                   reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    nt = 0;
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &pub_class, sizeof(pub_class)};
    tmpl[nt++] = (CK_ATTRIBUTE){CKA_KEY_TYPE, &ec, sizeof(ec)};
    if (key_id_len > 0) {
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_ID, key_id, key_id_len};
    } else {
        err = get_attr(&rot->token, rot->private_key, CKA_LABEL, key_label, sizeof(key_label),
                       &key_label_len, reason);
        if (err != TRELLIS_OK) {
            goto out;
        }
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_LABEL, key_label, key_label_len};
    }
    err = find_objects(&rot->token, tmpl, nt, h, 2, &n, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (n != 1) {
        err = trellis_reason_set(reason, n == 0 ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_CONFLICT,
                                 "%s public key pairs with the RoT key",
                                 n == 0 ? "no" : "more than one");
        goto out;
    }
    err = check_ec_p256(&rot->token, h[0], reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    err = read_point(&rot->token, h[0], rot->point, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    /* Pairing check: sign a fresh digest in the token, verify it against the point. A public
     * object left over from another key would otherwise give the device a foreign identity. */
    if (RAND_bytes(digest, sizeof(digest)) != 1) {
        err = TRELLIS_ERR_CRYPTO;
        goto out;
    }
    err = pkcs11_sign(rot, digest, sig, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    if (verify_with_point(rot->point, digest, sig) != TRELLIS_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_BAD_KEY,
                                 "the public key object does not match the private key");
        goto out;
    }
    extra_len = strlen(rot->token.manufacturer);
    memcpy(extra, rot->token.manufacturer, extra_len);
    extra[extra_len++] = '\n';
    memcpy(extra + extra_len, rot->token.model, strlen(rot->token.model));
    extra_len += strlen(rot->token.model);
    err = tr__dev_platform_report(IMPL_LABEL, extra, extra_len, opts->measure.firmware_path,
                                  opts->measure.firmware_version, &rot->report, reason);
    if (err != TRELLIS_OK) {
        goto out;
    }
    rot->is_open = 1;
    port->version = TRELLIS_ROT_PORT_VERSION;
    port->ctx = rot;
    port->public_key = port_public_key;
    port->sign_digest = port_sign_digest;
    port->report = port_report;
    err = TRELLIS_OK;
out:
    trellis_pkcs11_uri_cleanse(&uri);
    if (err != TRELLIS_OK) {
        trellis_rot_pkcs11_close(rot);
        if (port != NULL) {
            memset(port, 0, sizeof(*port));
        }
    }
    return err;
}

void trellis_rot_pkcs11_close(trellis_rot_pkcs11_t *rot)
{
    if (rot == NULL) {
        return;
    }
    trellis_pkcs11_token_close(&rot->token);
    memset(rot, 0, sizeof(*rot));
}
