/*
 * Trellis error codes.
 *
 * Every function in Trellis that can fail returns a trellis_err_t. The list below is the single
 * source of truth: each entry yields the enum constant, its stable number (never reused), a
 * one-line human message, the API error CODE of the device-facing HTTP API (design.md §3) and
 * the HTTP status that fits it. Messages never contain secrets or caller data; detail that helps
 * a caller goes into a trellis_reason_t next to the code.
 */
#ifndef TRELLIS_ERROR_H
#define TRELLIS_ERROR_H

#include <stdarg.h>
#include <stddef.h>

/* X(NAME, NUMBER, MESSAGE, API_CODE, HTTP_STATUS) */
#define TRELLIS_ERROR_LIST(X)                                                                      \
    X(OK, 0, "success", "ok", 200)                                                                 \
    X(INTERNAL, 1, "internal error", "unavailable", 500)                                           \
    X(NOMEM, 2, "out of memory", "unavailable", 503)                                               \
    X(INVALID_ARG, 3, "invalid argument", "bad_request", 400)                                      \
    X(BUFFER_TOO_SMALL, 4, "output buffer too small", "unavailable", 500)                          \
    X(IO, 5, "input/output error", "unavailable", 500)                                             \
    X(NOT_FOUND, 6, "not found", "bad_request", 404)                                               \
    X(EXISTS, 7, "already exists", "bad_request", 409)                                             \
    X(PERMISSION, 8, "permission denied", "bad_request", 403)                                      \
    X(CONFIG, 9, "invalid configuration", "unavailable", 500)                                      \
    X(PARSE, 10, "malformed input", "bad_request", 400)                                            \
    X(TOO_LARGE, 11, "input too large", "too_large", 413)                                          \
    X(ENCODING, 12, "bad base64url or hex encoding", "bad_request", 400)                           \
    X(CRYPTO, 13, "cryptographic operation failed", "unavailable", 500)                            \
    X(BAD_KEY, 14, "not a valid P-256 key", "bad_request", 400)                                    \
    X(BAD_SIGNATURE, 15, "signature does not verify", "bad_request", 400)                          \
    X(TOKEN_MALFORMED, 16, "attestation token is not well-formed", "bad_evidence", 400)            \
    X(TOKEN_ALG, 17, "attestation token uses an unsupported algorithm", "bad_evidence", 400)       \
    X(TOKEN_SIGNATURE, 18, "attestation token signature does not verify", "bad_evidence", 400)     \
    X(TOKEN_CLAIM, 19, "attestation token claim missing or invalid", "bad_evidence", 400)          \
    X(TOKEN_NONCE, 20, "attestation token nonce does not match", "bad_evidence", 400)              \
    X(TIMEOUT, 21, "timed out", "unavailable", 504)                                                \
    X(UNAVAILABLE, 22, "service unavailable", "unavailable", 503)                                  \
    X(TLS, 23, "TLS failure", "unavailable", 502)                                                  \
    X(HTTP, 24, "HTTP protocol error", "unavailable", 502)                                         \
    X(CONTENT_TYPE, 25, "unsupported content type", "bad_request", 415)                            \
    X(BAD_CHALLENGE, 26, "challenge is invalid or expired", "bad_challenge", 400)                  \
    X(REPLAYED, 27, "request was already used", "replayed", 409)                                   \
    X(BAD_CSR, 28, "certificate signing request refused", "bad_csr", 400)                          \
    X(BAD_EVIDENCE, 29, "evidence refused", "bad_evidence", 400)                                   \
    X(UNKNOWN_DEVICE, 30, "unknown device", "unknown_device", 404)                                 \
    X(REVOKED, 31, "revoked", "revoked", 403)                                                      \
    X(RATE_LIMITED, 32, "too many requests", "rate_limited", 429)                                  \
    X(USAGE, 33, "invalid command line", "bad_request", 400)                                       \
    X(STORE, 34, "store failure", "unavailable", 503)                                              \
    X(CONFLICT, 35, "conflicts with existing state", "bad_request", 409)                           \
    X(UNAUTHENTICATED, 36, "client not authenticated", "bad_request", 401)

typedef enum {
#define TRELLIS_ERROR_ENUM(name, num, msg, code, status) TRELLIS_ERR_##name = num,
    TRELLIS_ERROR_LIST(TRELLIS_ERROR_ENUM)
#undef TRELLIS_ERROR_ENUM
} trellis_err_t;

#define TRELLIS_OK TRELLIS_ERR_OK

/* Stable symbolic name, e.g. "TOKEN_ALG"; "UNKNOWN" for a value outside the list. */
const char *trellis_err_name(trellis_err_t err);

/* One-line human message; never NULL. */
const char *trellis_err_message(trellis_err_t err);

/* The API error CODE of design.md §3 ("bad_request", "replayed", ...); never NULL. */
const char *trellis_err_api_code(trellis_err_t err);

/* The HTTP status that fits the error (400, 409, 503, ...). */
int trellis_err_http_status(trellis_err_t err);

/*
 * A precise, human-readable reason for a rejection, filled by parsers and verifiers next to
 * their error code ("claim 10 (nonce) has 31 bytes, expected 32, 48 or 64"). It lives in caller
 * memory, never holds secrets, and is always NUL-terminated. Passing NULL where a function takes
 * a reason is allowed and discards it.
 */
typedef struct {
    char text[192];
} trellis_reason_t;

/* Formats into reason (if not NULL), truncating safely. Returns err, so callers can write
 * `return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "...")`. */
trellis_err_t trellis_reason_set(trellis_reason_t *reason, trellis_err_t err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Clears reason (if not NULL) to the empty string. */
void trellis_reason_clear(trellis_reason_t *reason);

/* A command-line tool's error: "PROGRAM WHAT: message SUFFIX" as ONE line on stderr (line
 * breaks in the message become spaces), so scripts and logs see one line per failure. */
void trellis_report_error(const char *program, const char *what, const char *suffix,
                          const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 0)))
#endif
    ;

#endif /* TRELLIS_ERROR_H */
