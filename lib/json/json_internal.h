/* Internals shared by the files of trellis_json. */
#ifndef TRELLIS_JSON_INTERNAL_H
#define TRELLIS_JSON_INTERNAL_H

#include <stddef.h>

/*
 * Copies in (in_len bytes) into out (out_size bytes, at least 1) as text safe to show anyone:
 * well-formed UTF-8 (RFC 3629 §4) is kept, each byte that does not start a well-formed sequence
 * becomes U+FFFD, and control characters (C0, DEL, C1) become a space. Stops before the first
 * character that would not fit, so the result is never cut inside a character. Always
 * NUL-terminates; returns the length written without the NUL.
 */
size_t tr__json_safe_text(const char *in, size_t in_len, char *out, size_t out_size);

/* Copies a member name from the body into out for a reason: printable ASCII only (others,
 * quotes and backslashes become '?'), cut with "..." past a few dozen characters. */
void tr__json_quote_name(const char *name, size_t name_len, char *out, size_t out_size);

#endif /* TRELLIS_JSON_INTERNAL_H */
