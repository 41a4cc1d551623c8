/*
 * factory.json, the device's factory data: whatever the parser accepts is valid factory data
 * the writer would write, and nothing makes it crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "trellis/device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static trellis_device_factory_t f;
    trellis_reason_t reason;

    /* A registrar_ca naming a file is looked up in a directory that does not exist. */
    if (tr__device_factory_parse("/nonexistent-trellis-fuzz", (const char *)data, size, &f,
                                 &reason) != TRELLIS_OK) {
        if (f.device_id[0] != '\0' || memchr(reason.text, '\0', sizeof(reason.text)) == NULL) {
            abort(); /* output zeroed and reason terminated on failure */
        }
        return 0;
    }
    if (strlen(f.device_id) != TRELLIS_DEVICE_ID_LEN ||
        trellis_device_name_check(f.serial) != TRELLIS_OK ||
        trellis_device_name_check(f.model) != TRELLIS_OK ||
        (f.backend != TRELLIS_ROT_BACKEND_FILE && f.backend != TRELLIS_ROT_BACKEND_PKCS11) ||
        (f.backend == TRELLIS_ROT_BACKEND_FILE && strchr(f.rot_key, '/') != NULL)) {
        abort();
    }
    return 0;
}
