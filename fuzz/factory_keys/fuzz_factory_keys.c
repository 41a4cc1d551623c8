/*
 * One line of `trellis factory manifest --from-keys` input (public keys read out of chips by a
 * vendor's tool): never a crash, and an accepted line always yields a P-256 point and valid
 * names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "factory.h"
#include "trellis/device.h"
#include "trellis/rot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_key_record_t rec;
    trellis_reason_t reason;
    char id[TRELLIS_DEVICE_ID_LEN + 1];

    if (tr__keys_parse_line((const char *)data, size, &rec, &reason) != TRELLIS_OK) {
        if (rec.point[0] != 0 || memchr(reason.text, '\0', sizeof(reason.text)) == NULL) {
            abort();
        }
        return 0;
    }
    if (rec.point[0] != 0x04 || trellis_device_id_from_point(rec.point, id) != TRELLIS_OK ||
        trellis_device_name_check(rec.serial) != TRELLIS_OK ||
        trellis_device_name_check(rec.model) != TRELLIS_OK) {
        abort();
    }
    return 0;
}
