/* Helpers of the device tests: temporary directories and a SoftHSM2 token made for the test. */
#ifndef TRELLIS_DEVICE_TEST_UTIL_H
#define TRELLIS_DEVICE_TEST_UTIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "test_dirs.h"

/* Writes len bytes to path with mode; aborts the test on failure. */
void dt_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* The SoftHSM2 module on this machine, from a list of the places distributions install it
 * (TRELLIS_TEST_SOFTHSM2 in the environment comes first); NULL if none exists. */
const char *dt_softhsm_module(void);

/* A SoftHSM2 token of the test's own: a softhsm2.conf and token directory in a temporary
 * directory (SOFTHSM2_CONF points at it), with one token initialised through the PKCS#11 API. */
typedef struct {
    char dir[PATH_MAX];
    char conf[PATH_MAX + 32];
    char tokens[PATH_MAX + 32];
    const char *module;
} dt_softhsm_t;

#define DT_TOKEN_LABEL "trellis-test"
#define DT_USER_PIN    "1234"
#define DT_SO_PIN      "5678"

/* Sets up a token labelled label with the PINs above; aborts the test on failure. */
void dt_softhsm_setup(dt_softhsm_t *hsm, const char *label);

/* Removes the token directory and unsets SOFTHSM2_CONF. */
void dt_softhsm_teardown(dt_softhsm_t *hsm);

#endif
