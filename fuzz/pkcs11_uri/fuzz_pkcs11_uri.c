/*
 * PKCS#11 URIs (RFC 7512) from configuration: the parser must never crash, and whatever it
 * accepts must format back into a URI it accepts again with the same meaning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11_internal.h"
#include "trellis/rot_pkcs11.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static trellis_pkcs11_uri_t a;
    static trellis_pkcs11_uri_t b;
    static char text[3 * TRELLIS_PKCS11_URI_MAX + 64];
    trellis_reason_t reason;
    size_t len = 0;
    uint8_t point[65];

    /* The CKA_EC_POINT parser sees token output: exercise it on the same bytes. */
    if (tr__pkcs11_parse_ec_point(data, size, point) == TRELLIS_OK && point[0] != 0x04) {
        abort();
    }
    if (trellis_pkcs11_uri_parse((const char *)data, size, &a, &reason) != TRELLIS_OK) {
        if (memchr(reason.text, '\0', sizeof(reason.text)) == NULL) {
            abort();
        }
        return 0;
    }
    if (trellis_pkcs11_uri_format(&a, text, sizeof(text), &len) != TRELLIS_OK) {
        abort();
    }
    /* Formatting percent-encodes, so it may outgrow the parser's limit; below it, the URI must
     * round-trip (the PIN is never formatted, by design). */
    if (len <= TRELLIS_PKCS11_URI_MAX) {
        if (trellis_pkcs11_uri_parse(text, len, &b, &reason) != TRELLIS_OK) {
            abort();
        }
        unsigned keep = ~(TRELLIS_PKCS11_HAS_PIN_VALUE | TRELLIS_PKCS11_HAS_PIN_SOURCE);
        if ((a.present & keep) != b.present || strcmp(a.token, b.token) != 0 ||
            strcmp(a.object, b.object) != 0 || a.id_len != b.id_len ||
            memcmp(a.id, b.id, a.id_len) != 0 || strcmp(a.module_path, b.module_path) != 0 ||
            a.slot_id != b.slot_id || a.type != b.type || strcmp(a.serial, b.serial) != 0 ||
            strcmp(a.model, b.model) != 0 || strcmp(a.manufacturer, b.manufacturer) != 0) {
            abort();
        }
    }
    trellis_pkcs11_uri_cleanse(&a);
    trellis_pkcs11_uri_cleanse(&b);
    return 0;
}
