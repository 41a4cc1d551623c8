/*
 * Internals shared by the files of the token component: a small pull reader and a counting
 * writer over libcbor's low-level functions, and the in-place COSE_Sign1 layout the PSA encoder
 * uses so that building a token never needs a second buffer.
 *
 * The reader hands out one data item head at a time (strings come with their content, as
 * pointers into the input) and never allocates. It refuses indefinite lengths: RFC 9783 §5.1.1
 * allows only definite-length strings, arrays and maps in a PSA token, and refusing them also
 * keeps every byte string contiguous, so signatures can be checked over the bytes as received.
 */
#ifndef TRELLIS_TOKEN_INTERNAL_H
#define TRELLIS_TOKEN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trellis/cose.h"
#include "trellis/error.h"

/* Deepest nesting the reader follows inside one token (the claims map and a software component
 * map sit at depth 3; unknown claims may nest further, up to this bound). */
#define TR__CBOR_MAX_DEPTH 16

typedef enum {
    TR__CBOR_UINT,
    TR__CBOR_NEGINT, /* value is the CBOR argument: the integer is -1 - val */
    TR__CBOR_BSTR,
    TR__CBOR_TSTR,
    TR__CBOR_ARRAY,  /* val is the number of elements */
    TR__CBOR_MAP,    /* val is the number of pairs */
    TR__CBOR_TAG,    /* val is the tag number; the tagged item follows */
    TR__CBOR_SIMPLE, /* false, true, null, undefined: val 20, 21, 22, 23 */
    TR__CBOR_FLOAT,
} tr__cbor_kind_t;

typedef struct {
    tr__cbor_kind_t kind;
    uint64_t val;
    const uint8_t *data; /* BSTR/TSTR content, pointing into the reader's input */
    size_t len;
    size_t offset; /* where the item's head starts in the input */
} tr__cbor_item_t;

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    const char *what; /* names the structure being read, for reasons ("claims-set") */
} tr__cbor_reader_t;

void tr__cbor_reader_init(tr__cbor_reader_t *r, const uint8_t *buf, size_t len, const char *what);

/* Reads the next item head. TRELLIS_ERR_TOKEN_MALFORMED with a reason naming the offset for
 * truncated input, reserved or unassigned initial bytes and indefinite lengths. */
trellis_err_t tr__cbor_read(tr__cbor_reader_t *r, tr__cbor_item_t *it, trellis_reason_t *reason);

/* Skips what follows the head it (array elements, map pairs, the tagged item), refusing to nest
 * deeper than TR__CBOR_MAX_DEPTH counting from depth. */
trellis_err_t tr__cbor_skip(tr__cbor_reader_t *r, const tr__cbor_item_t *it, unsigned depth,
                            trellis_reason_t *reason);

/* Converts an UINT or NEGINT item to int64_t; returns false when it does not fit. */
bool tr__cbor_to_int64(const tr__cbor_item_t *it, int64_t *out);

/* Map keys compared by value, so 10 and its non-preferred encoding 0x18 0x0a are one key. */
typedef struct {
    tr__cbor_kind_t kind; /* UINT, NEGINT or TSTR */
    uint64_t val;
    const uint8_t *data;
    size_t len;
} tr__cbor_key_t;

bool tr__cbor_key_equal(const tr__cbor_key_t *a, const tr__cbor_key_t *b);

/* Formats a key for a reason: "10", "-75008" or "\"name\"" (text cut to fit). */
void tr__cbor_key_describe(const tr__cbor_key_t *key, char *out, size_t out_size);

/* True when data is well-formed UTF-8 (RFC 3629) without NUL bytes, so it can live in a C
 * string and in JSON unchanged. */
bool tr__utf8_valid(const uint8_t *data, size_t len);

/* A writer that counts when it runs out of room (or has no buffer), so one pass yields the size
 * a second pass needs. */
typedef struct {
    uint8_t *buf;
    size_t size;
    size_t pos;
    bool overflow;
} tr__cbor_writer_t;

void tr__cbor_writer_init(tr__cbor_writer_t *w, uint8_t *buf, size_t size);
void tr__cbor_put_uint(tr__cbor_writer_t *w, uint64_t v);
void tr__cbor_put_int(tr__cbor_writer_t *w, int64_t v);
void tr__cbor_put_bstr(tr__cbor_writer_t *w, const uint8_t *data, size_t len);
/* Only the head of a byte string of len bytes; the caller writes the content after it. */
void tr__cbor_put_bstr_head(tr__cbor_writer_t *w, size_t len);
void tr__cbor_put_tstr(tr__cbor_writer_t *w, const char *text, size_t len);
void tr__cbor_put_array(tr__cbor_writer_t *w, size_t n);
void tr__cbor_put_map(tr__cbor_writer_t *w, size_t n);
void tr__cbor_put_tag(tr__cbor_writer_t *w, uint64_t tag);

/* Length of the head of a byte string of len bytes in preferred serialization. */
size_t tr__cbor_bstr_head_len(size_t len);

/*
 * COSE_Sign1 built in place. layout writes everything up to the payload content for a payload
 * of payload_len bytes and reports where the content goes and how long the whole message will
 * be; with buf NULL or too small it only reports *total_len and returns
 * TRELLIS_ERR_BUFFER_TOO_SMALL. The caller then writes the payload at buf + *payload_off and
 * calls finish, which signs the Sig_structure and appends the signature.
 */
trellis_err_t tr__cose_sign1_layout(size_t payload_len, const uint8_t *kid, size_t kid_len,
                                    uint8_t *buf, size_t buf_size, size_t *payload_off,
                                    size_t *total_len);
trellis_err_t tr__cose_sign1_finish(uint8_t *buf, size_t total_len, size_t payload_off,
                                    size_t payload_len, const trellis_signer_t *signer);

#endif /* TRELLIS_TOKEN_INTERNAL_H */
