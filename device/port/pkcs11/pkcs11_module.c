/*
 * Loading PKCS#11 modules: one dlopen and one C_Initialize per module per process, shared by
 * every token and key opened on it, released by the last user.
 *
 * Why a registry: C_Initialize and C_Finalize act on the whole process (PKCS#11 v2.40 §5.4). If
 * two keys on one module each initialised and finalised it, closing the first would pull the
 * module out from under the second.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "device_internal.h"
#include "pkcs11_internal.h"

typedef struct {
    void *dl;
    CK_FUNCTION_LIST_PTR functions;
    unsigned refs;
    int initialised_here; /* 1 if this registry called C_Initialize, so it owns C_Finalize */
} module_t;

static module_t modules[TR_PKCS11_MODULES_MAX];
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;

const char *tr__pkcs11_rv_name(CK_RV rv, char *buf, size_t size)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].rv == rv) {
            return names[i].name;
        }
    }
    if (buf != NULL && size > 0) {
        snprintf(buf, size, "CKR_0x%lx", rv);
        return buf;
    }
    return "CKR_?";
}

trellis_err_t tr__pkcs11_module_acquire(const char *path, void **entry,
                                        CK_FUNCTION_LIST_PTR *functions, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    void *dl = NULL;
    CK_C_GetFunctionList get_list = NULL;
    CK_FUNCTION_LIST_PTR list = NULL;
    module_t *slot = NULL;
    struct stat st;
    CK_RV rv;
    char rvbuf[32];
    int locked = 0;

    if (entry != NULL) {
        *entry = NULL;
    }
    if (functions != NULL) {
        *functions = NULL;
    }
    if (path == NULL || path[0] == '\0' || entry == NULL || functions == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    if (stat(path, &st) != 0) {
        err = errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO;
        err = trellis_reason_set(reason, err, "PKCS#11 module %s: %s", path,
                                 err == TRELLIS_ERR_NOT_FOUND ? "no such file" : "cannot stat");
        goto out;
    }
    if (pthread_mutex_lock(&modules_lock) != 0) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    locked = 1;
    /* RTLD_LOCAL keeps the module's symbols (and its copy of any library) out of ours. */
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE, "cannot load PKCS#11 module: %s",
                                 why != NULL ? why : "dlopen failed");
        goto out;
    }
    /* dlopen of a loaded file returns the same handle: that identifies the module. */
    for (size_t i = 0; i < TR_PKCS11_MODULES_MAX; i++) {
        if (modules[i].refs > 0 && modules[i].dl == dl) {
            modules[i].refs++;
            dlclose(dl); /* the registry holds one dlopen reference per module */
            dl = NULL;
            *entry = &modules[i];
            *functions = modules[i].functions;
            err = TRELLIS_OK;
            goto out;
        }
    }
    for (size_t i = 0; i < TR_PKCS11_MODULES_MAX; i++) {
        if (modules[i].refs == 0) {
            slot = &modules[i];
            break;
        }
    }
    if (slot == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "more than %d PKCS#11 modules loaded", TR_PKCS11_MODULES_MAX);
        goto out;
    }
    /* POSIX leaves object-to-function-pointer casts to the implementation; dlsym's own manual
     * prescribes this form. */
    *(void **)(&get_list) = dlsym(dl, "C_GetFunctionList");
    if (get_list == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE,
                                 "PKCS#11 module has no C_GetFunctionList");
        goto out;
    }
    rv = get_list(&list);
    if (rv != CKR_OK || list == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE, "C_GetFunctionList: %s",
                                 tr__pkcs11_rv_name(rv, rvbuf, sizeof(rvbuf)));
        goto out;
    }
    /* v2.40 §5.4: only version 2.x tables have the layout of pkcs11_min.h. */
    if (list->version.major != 2) {
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE,
                                 "PKCS#11 module speaks Cryptoki %u.%u, expected 2.x",
                                 list->version.major, list->version.minor);
        goto out;
    }
    /* The application may use the module from several threads: let it lock with the OS. */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = list->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        err = trellis_reason_set(reason, TRELLIS_ERR_UNAVAILABLE, "C_Initialize: %s",
                                 tr__pkcs11_rv_name(rv, rvbuf, sizeof(rvbuf)));
        goto out;
    }
    slot->dl = dl;
    slot->functions = list;
    slot->refs = 1;
    slot->initialised_here = rv == CKR_OK;
    dl = NULL;
    *entry = slot;
    *functions = list;
    err = TRELLIS_OK;
out:
    if (dl != NULL) {
        dlclose(dl);
    }
    if (locked) {
        pthread_mutex_unlock(&modules_lock);
    }
    return err;
}

void tr__pkcs11_module_release(void *entry)
{
    module_t *m = entry;

    if (m == NULL) {
        return;
    }
    if (pthread_mutex_lock(&modules_lock) != 0) {
        return;
    }
    if (m->refs > 0 && --m->refs == 0) {
        if (m->initialised_here) {
            m->functions->C_Finalize(NULL);
        }
        dlclose(m->dl);
        memset(m, 0, sizeof(*m));
    }
    pthread_mutex_unlock(&modules_lock);
}
