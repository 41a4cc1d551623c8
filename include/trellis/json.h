/*
 * Strict JSON for request and response bodies (jansson).
 *
 * Every HTTP handler parses its untrusted body with trellis_json_parse_object, reads members with
 * the getters below, refuses members it does not know with trellis_json_reject_unknown, and
 * answers errors with trellis_json_error_body: {"error": CODE, "detail": TEXT} (design.md §3).
 *
 * Parsing is strict: the body must be one JSON object (RFC 8259) of at most max_len bytes, with no
 * duplicate member names, no NUL byte (raw or \u0000), valid UTF-8 and nesting at most
 * TRELLIS_JSON_MAX_DEPTH levels; nothing may follow the object but whitespace.
 *
 * Getters take the parsed object, the member name, bounds, and a trellis_reason_t (may be NULL)
 * that names the member at fault: "member csr is missing", "member csr is not a string",
 * "member csr is not valid base64url", "member csr decodes to more than 4096 bytes". Required
 * getters fail on a missing member; the _opt variants succeed with a default. A JSON null is a
 * wrong type, not an absent member. Reasons quote member names chosen by the caller, never bytes
 * of the body other than sanitised member names, so they are safe to log and to return.
 *
 * Objects are jansson json_t; the caller owns what parse returns (json_decref). Strings returned
 * by getters are borrowed from the object and live as long as it does.
 */
#ifndef TRELLIS_JSON_H
#define TRELLIS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "trellis/error.h"

/* Deepest nesting accepted; the top-level object is depth 1. Trellis bodies are flat. */
#define TRELLIS_JSON_MAX_DEPTH 16
/* Largest text trellis_json_dump produces (a response with a certificate chain is ~4 KiB). */
#define TRELLIS_JSON_TEXT_MAX (1024 * 1024)
/* Largest binary value trellis_json_set_b64url encodes (its text stays under TEXT_MAX). */
#define TRELLIS_JSON_B64_MAX (512 * 1024)
/* Longest detail text in an error body, in bytes of UTF-8, after sanitising. */
#define TRELLIS_JSON_DETAIL_MAX 256

/*
 * Parses body (len bytes, not necessarily NUL-terminated) into a new object in *out (caller
 * json_decref's it). Errors: TRELLIS_ERR_TOO_LARGE when len > max_len; TRELLIS_ERR_PARSE for
 * empty input, a NUL byte, nesting deeper than TRELLIS_JSON_MAX_DEPTH, invalid JSON or UTF-8,
 * duplicate member names, trailing bytes, or a top level that is not an object;
 * TRELLIS_ERR_NOMEM; TRELLIS_ERR_INVALID_ARG if out is NULL or body is NULL with len > 0.
 */
trellis_err_t trellis_json_parse_object(const char *body, size_t len, size_t max_len, json_t **out,
                                        trellis_reason_t *reason);

/*
 * Required string member key of obj, at most max_len bytes: *out borrows it (NUL-terminated,
 * no embedded NUL), *out_len (may be NULL) its length. Errors: TRELLIS_ERR_PARSE when missing or
 * not a string, TRELLIS_ERR_TOO_LARGE when longer than max_len, TRELLIS_ERR_INVALID_ARG if obj
 * is not an object or key/out is NULL.
 */
trellis_err_t trellis_json_get_string(const json_t *obj, const char *key, size_t max_len,
                                      const char **out, size_t *out_len, trellis_reason_t *reason);
/* As trellis_json_get_string, but an absent member gives TRELLIS_OK with *out NULL and
 * *out_len 0. */
trellis_err_t trellis_json_get_string_opt(const json_t *obj, const char *key, size_t max_len,
                                          const char **out, size_t *out_len,
                                          trellis_reason_t *reason);

/*
 * Required member key holding base64url without padding (RFC 4648 §5), decoded strictly into
 * buf (buf_size bytes); *out_len gets the decoded length (0 for ""). Errors: TRELLIS_ERR_PARSE
 * when missing or not a string, TRELLIS_ERR_ENCODING for invalid or non-canonical base64url,
 * TRELLIS_ERR_TOO_LARGE when the value decodes to more than buf_size bytes (detected from the
 * text length, before decoding). On failure buf is zeroed.
 */
trellis_err_t trellis_json_get_b64url(const json_t *obj, const char *key, uint8_t *buf,
                                      size_t buf_size, size_t *out_len, trellis_reason_t *reason);

/*
 * Required integer member key in [min, max] (a JSON number without fraction or exponent; 1.0 is
 * refused). Errors: TRELLIS_ERR_PARSE when missing, not an integer, or out of range.
 */
trellis_err_t trellis_json_get_int(const json_t *obj, const char *key, long long min, long long max,
                                   long long *out, trellis_reason_t *reason);
/* As trellis_json_get_int, but an absent member gives TRELLIS_OK with *out = dflt (dflt itself
 * is not range-checked). */
trellis_err_t trellis_json_get_int_opt(const json_t *obj, const char *key, long long min,
                                       long long max, long long dflt, long long *out,
                                       trellis_reason_t *reason);

/* TRELLIS_ERR_PARSE naming the first member of obj whose name is not among the n names of
 * allowed ("unknown member \"foo\""; the quoted name is cut and reduced to printable ASCII). */
trellis_err_t trellis_json_reject_unknown(const json_t *obj, const char *const allowed[], size_t n,
                                          trellis_reason_t *reason);

/* Sets member key of obj to the base64url text (no padding) of len bytes of data, replacing any
 * earlier value. TRELLIS_ERR_TOO_LARGE above TRELLIS_JSON_B64_MAX. */
trellis_err_t trellis_json_set_b64url(json_t *obj, const char *key, const uint8_t *data,
                                      size_t len);

/*
 * Serialises json compactly (no spaces, members in insertion order) into a new NUL-terminated
 * text in *out, its length (without the NUL) in *out_len (may be NULL). Free with
 * trellis_json_text_free. TRELLIS_ERR_TOO_LARGE above TRELLIS_JSON_TEXT_MAX bytes.
 */
trellis_err_t trellis_json_dump(const json_t *json, char **out, size_t *out_len);
/* Releases a text from trellis_json_dump or trellis_json_error_body; NULL is a no-op. */
void trellis_json_text_free(char *text);

/*
 * Builds the error body of design.md §3: {"error": CODE, "detail": TEXT}, CODE from
 * trellis_err_api_code(err), TEXT from detail (a NUL-terminated string, typically a reason) or,
 * when detail is NULL or empty, trellis_err_message(err). The detail is made safe first: bytes
 * that are not valid UTF-8 become U+FFFD, control characters become spaces, and it is cut (on a
 * character boundary) to TRELLIS_JSON_DETAIL_MAX bytes. Free *out with trellis_json_text_free.
 * TRELLIS_ERR_INVALID_ARG for err == TRELLIS_OK or out NULL.
 */
trellis_err_t trellis_json_error_body(trellis_err_t err, const char *detail, char **out,
                                      size_t *out_len);

#endif /* TRELLIS_JSON_H */
