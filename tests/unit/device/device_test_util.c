#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device_test_util.h"
#include "pkcs11_internal.h"
#include "test_support.h"

void dt_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, (mode_t)mode), 0);
    assert_int_equal(close(fd), 0);
}

const char *dt_softhsm_module(void)
{
    static const char *const candidates[] = {
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
    };
    const char *env = getenv("TRELLIS_TEST_SOFTHSM2");
    if (env != NULL && access(env, R_OK) == 0) {
        return env;
    }
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        if (access(candidates[i], R_OK) == 0) {
            return candidates[i];
        }
    }
    return NULL;
}

static void pad32(CK_UTF8CHAR out[32], const char *label)
{
    memset(out, ' ', 32);
    memcpy(out, label, strlen(label));
}

void dt_softhsm_setup(dt_softhsm_t *hsm, const char *label)
{
    void *entry = NULL;
    CK_FUNCTION_LIST_PTR f = NULL;
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK_TOKEN_INFO info;
    CK_SLOT_ID free_slot = (CK_SLOT_ID)-1;
    CK_SLOT_ID token_slot = (CK_SLOT_ID)-1;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_UTF8CHAR lab[32];
    char text[2 * PATH_MAX];
    trellis_reason_t reason;

    memset(hsm, 0, sizeof(*hsm));
    hsm->module = dt_softhsm_module();
    if (hsm->module == NULL) {
        fail_msg("SoftHSM2 is not installed (package softhsm2); scripts/install-deps installs it");
    }
    trellis_test_tmpdir(hsm->dir, sizeof(hsm->dir), "device");
    snprintf(hsm->tokens, sizeof(hsm->tokens), "%s/tokens", hsm->dir);
    snprintf(hsm->conf, sizeof(hsm->conf), "%s/softhsm2.conf", hsm->dir);
    assert_int_equal(mkdir(hsm->tokens, 0700), 0);
    int len = snprintf(text, sizeof(text),
                       "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
                       "slots.removable = false\n",
                       hsm->tokens);
    dt_write_file(hsm->conf, text, (size_t)len, 0600);
    assert_int_equal(setenv("SOFTHSM2_CONF", hsm->conf, 1), 0);

    /* C_InitToken on the free slot, then the user PIN through an SO session. */
    assert_int_equal(tr__pkcs11_module_acquire(hsm->module, &entry, &f, &reason), TRELLIS_OK);
    assert_int_equal(f->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK && !(info.flags & CKF_TOKEN_INITIALIZED)) {
            free_slot = slots[i];
            break;
        }
    }
    assert_true(free_slot != (CK_SLOT_ID)-1);
    pad32(lab, label);
    assert_int_equal(f->C_InitToken(free_slot, (CK_UTF8CHAR_PTR)DT_SO_PIN, strlen(DT_SO_PIN), lab),
                     CKR_OK);
    /* SoftHSM2 moves an initialised token to a new slot id: look it up by label. */
    n = 16;
    assert_int_equal(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK && memcmp(info.label, lab, 32) == 0) {
            token_slot = slots[i];
        }
    }
    assert_true(token_slot != (CK_SLOT_ID)-1);
    assert_int_equal(
        f->C_OpenSession(token_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)DT_SO_PIN, strlen(DT_SO_PIN)), CKR_OK);
    assert_int_equal(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)DT_USER_PIN, strlen(DT_USER_PIN)), CKR_OK);
    assert_int_equal(f->C_Logout(s), CKR_OK);
    assert_int_equal(f->C_CloseSession(s), CKR_OK);
    tr__pkcs11_module_release(entry);
}

void dt_softhsm_teardown(dt_softhsm_t *hsm)
{
    trellis_test_rmtree(hsm->dir);
    unsetenv("SOFTHSM2_CONF");
    memset(hsm, 0, sizeof(*hsm));
}
