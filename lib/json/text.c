#include <string.h>

#include "json_internal.h"

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 §4, which excludes overlong forms,
 * surrogates and code points above U+10FFFF), or 0 if the bytes there are not one. */
static size_t utf8_sequence_len(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t len = 0;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        if (p[0] == 0xe0)
            lo = 0xa0; /* overlong */
        else if (p[0] == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        if (p[0] == 0xf0)
            lo = 0x90; /* overlong */
        else if (p[0] == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (avail < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    }
    return len;
}

static int is_control(const unsigned char *p, size_t len)
{
    if (len == 1)
        return p[0] < 0x20 || p[0] == 0x7f;
    /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F. */
    return len == 2 && p[0] == 0xc2 && p[1] <= 0x9f;
}

size_t tr__json_safe_text(const char *in, size_t in_len, char *out, size_t out_size)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    size_t used = 0;

    if (out_size == 0)
        return 0;
    while (i < in_len) {
        size_t len = utf8_sequence_len(p + i, in_len - i);
        const char *piece = in + i;
        size_t piece_len = len;
        if (len == 0) {
            piece = replacement;
            piece_len = sizeof(replacement) - 1;
            len = 1;
        } else if (is_control(p + i, len)) {
            piece = " ";
            piece_len = 1;
        }
        if (piece_len >= out_size - used)
            break;
        memcpy(out + used, piece, piece_len);
        used += piece_len;
        i += len;
    }
    out[used] = '\0';
    return used;
}

void tr__json_quote_name(const char *name, size_t name_len, char *out, size_t out_size)
{
    static const size_t keep = 32;
    size_t used = 0;

    if (out_size == 0)
        return;
    for (size_t i = 0; i < name_len && i < keep && used + 1 < out_size; i++) {
        unsigned char c = (unsigned char)name[i];
        out[used++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (name_len > keep && used + 3 < out_size) {
        memcpy(out + used, "...", 3);
        used += 3;
    }
    out[used] = '\0';
}
