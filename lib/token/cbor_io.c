/*
 * A pull reader and a counting writer on top of libcbor's streaming decoder and low-level
 * encoders (cbor/streaming.h, cbor/encoding.h). Neither allocates: the reader returns pointers
 * into its input and the writer fills a caller buffer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <cbor.h>

#include "token_internal.h"

/* What one libcbor callback reported about the item it decoded. */
struct head {
    tr__cbor_item_t *it;
    bool indefinite;
};

static void on_uint8(void *ctx, uint8_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_UINT;
    h->it->val = v;
}

static void on_uint16(void *ctx, uint16_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_UINT;
    h->it->val = v;
}

static void on_uint32(void *ctx, uint32_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_UINT;
    h->it->val = v;
}

static void on_uint64(void *ctx, uint64_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_UINT;
    h->it->val = v;
}

static void on_negint8(void *ctx, uint8_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_NEGINT;
    h->it->val = v;
}

static void on_negint16(void *ctx, uint16_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_NEGINT;
    h->it->val = v;
}

static void on_negint32(void *ctx, uint32_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_NEGINT;
    h->it->val = v;
}

static void on_negint64(void *ctx, uint64_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_NEGINT;
    h->it->val = v;
}

static void on_bstr(void *ctx, cbor_data data, size_t len)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_BSTR;
    h->it->data = data;
    h->it->len = len;
}

static void on_tstr(void *ctx, cbor_data data, size_t len)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_TSTR;
    h->it->data = data;
    h->it->len = len;
}

static void on_array(void *ctx, size_t n)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_ARRAY;
    h->it->val = n;
}

static void on_map(void *ctx, size_t n)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_MAP;
    h->it->val = n;
}

static void on_tag(void *ctx, uint64_t v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_TAG;
    h->it->val = v;
}

static void on_indefinite(void *ctx)
{
    struct head *h = ctx;
    h->indefinite = true;
}

static void on_float(void *ctx, float v)
{
    struct head *h = ctx;
    (void)v;
    h->it->kind = TR__CBOR_FLOAT;
}

static void on_double(void *ctx, double v)
{
    struct head *h = ctx;
    (void)v;
    h->it->kind = TR__CBOR_FLOAT;
}

static void on_bool(void *ctx, bool v)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_SIMPLE;
    h->it->val = v ? 21 : 20;
}

static void on_null(void *ctx)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_SIMPLE;
    h->it->val = 22;
}

static void on_undefined(void *ctx)
{
    struct head *h = ctx;
    h->it->kind = TR__CBOR_SIMPLE;
    h->it->val = 23;
}

static const struct cbor_callbacks head_callbacks = {
    .uint8 = on_uint8,
    .uint16 = on_uint16,
    .uint32 = on_uint32,
    .uint64 = on_uint64,
    .negint8 = on_negint8,
    .negint16 = on_negint16,
    .negint32 = on_negint32,
    .negint64 = on_negint64,
    .byte_string_start = on_indefinite,
    .byte_string = on_bstr,
    .string = on_tstr,
    .string_start = on_indefinite,
    .indef_array_start = on_indefinite,
    .array_start = on_array,
    .indef_map_start = on_indefinite,
    .map_start = on_map,
    .tag = on_tag,
    .float2 = on_float,
    .float4 = on_float,
    .float8 = on_double,
    .undefined = on_undefined,
    .null = on_null,
    .boolean = on_bool,
    .indef_break = on_indefinite,
};

void tr__cbor_reader_init(tr__cbor_reader_t *r, const uint8_t *buf, size_t len, const char *what)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->what = what;
}

trellis_err_t tr__cbor_read(tr__cbor_reader_t *r, tr__cbor_item_t *it, trellis_reason_t *reason)
{
    memset(it, 0, sizeof(*it));
    it->offset = r->pos;
    if (r->pos >= r->len)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: truncated: input ends at offset %zu where an item is due",
                                  r->what, r->pos);
    uint8_t initial = r->buf[r->pos];
    /* libcbor 0.8's streaming decoder reports the one-byte tag heads 0xc6..0xd4 (tags 6 to 20)
     * as errors, and tag 18 (COSE_Sign1, 0xd2) is among them: decode those heads here. */
    if (initial >= 0xc6 && initial <= 0xd4) {
        it->kind = TR__CBOR_TAG;
        it->val = (uint64_t)(initial - 0xc0);
        r->pos++;
        return TRELLIS_OK;
    }
    struct head h = {.it = it, .indefinite = false};
    struct cbor_decoder_result res =
        cbor_stream_decode(r->buf + r->pos, r->len - r->pos, &head_callbacks, &h);
    if (res.status == CBOR_DECODER_NEDATA)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: truncated: the item at offset %zu runs past the end of "
                                  "the input (%zu bytes)",
                                  r->what, r->pos, r->len);
    if (res.status != CBOR_DECODER_FINISHED || res.read == 0 || res.read > r->len - r->pos)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: malformed CBOR: initial byte 0x%02x at offset %zu is "
                                  "reserved or unassigned",
                                  r->what, initial, r->pos);
    if (h.indefinite)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: indefinite-length item (initial byte 0x%02x) at offset %zu; "
                                  "RFC 9783 section 5.1.1 allows definite lengths only",
                                  r->what, initial, r->pos);
    r->pos += res.read;
    return TRELLIS_OK;
}

trellis_err_t tr__cbor_skip(tr__cbor_reader_t *r, const tr__cbor_item_t *it, unsigned depth,
                            trellis_reason_t *reason)
{
    uint64_t children = 0;
    switch (it->kind) {
    case TR__CBOR_ARRAY:
        children = it->val;
        break;
    case TR__CBOR_MAP:
        /* A map with more pairs than the input has bytes would overflow the doubling; it is
         * truncated anyway, and the loop below reports that. */
        children = it->val > UINT64_MAX / 2 ? UINT64_MAX : it->val * 2;
        break;
    case TR__CBOR_TAG:
        children = 1;
        break;
    default:
        return TRELLIS_OK;
    }
    if (depth + 1 > TR__CBOR_MAX_DEPTH)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: nesting deeper than %d levels at offset %zu", r->what,
                                  TR__CBOR_MAX_DEPTH, it->offset);
    /* Every child takes at least one byte, so this loop ends with the input at the latest. */
    for (uint64_t i = 0; i < children; i++) {
        tr__cbor_item_t child;
        trellis_err_t err = tr__cbor_read(r, &child, reason);
        if (err != TRELLIS_OK)
            return err;
        err = tr__cbor_skip(r, &child, depth + 1, reason);
        if (err != TRELLIS_OK)
            return err;
    }
    return TRELLIS_OK;
}

bool tr__cbor_to_int64(const tr__cbor_item_t *it, int64_t *out)
{
    if (it->kind == TR__CBOR_UINT && it->val <= (uint64_t)INT64_MAX) {
        *out = (int64_t)it->val;
        return true;
    }
    if (it->kind == TR__CBOR_NEGINT && it->val <= (uint64_t)INT64_MAX) {
        *out = -1 - (int64_t)it->val;
        return true;
    }
    return false;
}

bool tr__cbor_key_equal(const tr__cbor_key_t *a, const tr__cbor_key_t *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == TR__CBOR_TSTR)
        return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    return a->val == b->val;
}

void tr__cbor_key_describe(const tr__cbor_key_t *key, char *out, size_t out_size)
{
    if (key->kind == TR__CBOR_UINT) {
        snprintf(out, out_size, "%" PRIu64, key->val);
    } else if (key->kind == TR__CBOR_NEGINT) {
        if (key->val < UINT64_MAX)
            snprintf(out, out_size, "-%" PRIu64, key->val + 1);
        else
            snprintf(out, out_size, "-18446744073709551616");
    } else {
        /* Only printable ASCII goes into a reason; anything else becomes '?'. */
        char text[33];
        size_t n = key->len < sizeof(text) - 1 ? key->len : sizeof(text) - 1;
        for (size_t i = 0; i < n; i++)
            text[i] = (key->data[i] >= 0x20 && key->data[i] < 0x7f && key->data[i] != '"')
                          ? (char)key->data[i]
                          : '?';
        text[n] = '\0';
        snprintf(out, out_size, "\"%s%s\"", text, key->len > n ? "..." : "");
    }
}

bool tr__utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n > len - i - 1)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid. */
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

void tr__cbor_writer_init(tr__cbor_writer_t *w, uint8_t *buf, size_t size)
{
    w->buf = buf;
    w->size = buf != NULL ? size : 0;
    w->pos = 0;
    w->overflow = false;
}

static void put_bytes(tr__cbor_writer_t *w, const uint8_t *data, size_t len)
{
    if (w->buf != NULL && !w->overflow && w->pos <= w->size && len <= w->size - w->pos) {
        if (len > 0)
            memcpy(w->buf + w->pos, data, len);
    } else {
        w->overflow = true;
    }
    w->pos += len;
}

/* Every head fits in 9 bytes (initial byte + 8-byte argument). */
#define HEAD_MAX 9

void tr__cbor_put_uint(tr__cbor_writer_t *w, uint64_t v)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_uint(v, head, sizeof(head)));
}

void tr__cbor_put_int(tr__cbor_writer_t *w, int64_t v)
{
    uint8_t head[HEAD_MAX];
    if (v >= 0)
        put_bytes(w, head, cbor_encode_uint((uint64_t)v, head, sizeof(head)));
    else
        put_bytes(w, head, cbor_encode_negint((uint64_t)(-(v + 1)), head, sizeof(head)));
}

void tr__cbor_put_bstr(tr__cbor_writer_t *w, const uint8_t *data, size_t len)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_bytestring_start(len, head, sizeof(head)));
    put_bytes(w, data, len);
}

void tr__cbor_put_bstr_head(tr__cbor_writer_t *w, size_t len)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_bytestring_start(len, head, sizeof(head)));
}

void tr__cbor_put_tstr(tr__cbor_writer_t *w, const char *text, size_t len)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_string_start(len, head, sizeof(head)));
    put_bytes(w, (const uint8_t *)text, len);
}

void tr__cbor_put_array(tr__cbor_writer_t *w, size_t n)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_array_start(n, head, sizeof(head)));
}

void tr__cbor_put_map(tr__cbor_writer_t *w, size_t n)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_map_start(n, head, sizeof(head)));
}

void tr__cbor_put_tag(tr__cbor_writer_t *w, uint64_t tag)
{
    uint8_t head[HEAD_MAX];
    put_bytes(w, head, cbor_encode_tag(tag, head, sizeof(head)));
}

size_t tr__cbor_bstr_head_len(size_t len)
{
    uint8_t head[HEAD_MAX];
    return cbor_encode_bytestring_start(len, head, sizeof(head));
}
