/* Backend-independent parts of the verifier store: closing, and the name rules every backend and
 * caller shares. */
#include <stdlib.h>
#include <string.h>

#include "trellis/verifier_store.h"

void trellis_vstore_close(trellis_vstore_t *store)
{
    if (store == NULL)
        return;
    if (store->close != NULL)
        store->close(store->ctx);
    free(store);
}

int trellis_vstore_name_valid(const char *name)
{
    if (name == NULL)
        return 0;
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        char ch = name[n];
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (n >= TRELLIS_VSTORE_NAME_MAX ||
            (!alnum && (n == 0 || (ch != '.' && ch != '_' && ch != '-'))))
            return 0;
    }
    return n > 0;
}

int trellis_vstore_text_valid(const char *s)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= TRELLIS_VSTORE_NAME_MAX || (unsigned char)s[n] < 0x20 ||
            (unsigned char)s[n] > 0x7e)
            return 0;
    }
    return n > 0;
}

int trellis_vstore_device_id_valid(const char *s)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (n >= TRELLIS_DEVICE_ID_HEX_LEN ||
            !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return 0;
    }
    return n == TRELLIS_DEVICE_ID_HEX_LEN;
}
