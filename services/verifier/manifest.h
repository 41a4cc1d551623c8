/*
 * Factory manifests (docs/manifest-format.md): the line parsers, and the streaming importer that
 * feeds a manifest of any size through the store one line at a time.
 *
 * Internal to trellis_verifier (tr__ prefix); the fuzz target and the unit tests use it directly.
 */
#ifndef TRELLIS_VERIFIER_MANIFEST_H
#define TRELLIS_VERIFIER_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "trellis/crypto.h"
#include "trellis/error.h"
#include "trellis/verifier_store.h"

#define TR__MANIFEST_VERSION     1
#define TR__MANIFEST_LINE_MAX    1024     /* bytes of one line, newline excluded */
#define TR__MANIFEST_COUNT_MAX   10000000 /* records in one manifest */
#define TR__MANIFEST_CREATED_MAX 40

typedef struct {
    char factory[TRELLIS_VSTORE_NAME_MAX + 1];
    char owner[TRELLIS_VSTORE_NAME_MAX + 1];
    char batch[TRELLIS_VSTORE_NAME_MAX + 1];
    char created[TR__MANIFEST_CREATED_MAX + 1];
    uint64_t count;
} tr__manifest_header_t;

typedef struct {
    char device_id[TRELLIS_DEVICE_ID_HEX_LEN + 1];
    uint8_t rot_key[TRELLIS_ROT_KEY_LEN];
    char model[TRELLIS_VSTORE_NAME_MAX + 1];
    char serial[TRELLIS_VSTORE_NAME_MAX + 1];
} tr__manifest_record_t;

typedef struct {
    uint8_t sha256[TRELLIS_SHA256_LEN];
    uint8_t signature[TRELLIS_P256_SIG_RAW_LEN];
} tr__manifest_trailer_t;

/*
 * Each parser takes one line without its newline and fills out, or fails with
 * TRELLIS_ERR_PARSE (and a reason naming the member at fault) and out zeroed. Lines must be a
 * JSON object with exactly the members of the format, none repeated.
 * tr__manifest_parse_record also checks that rot_key is a point on P-256 (TRELLIS_ERR_BAD_KEY)
 * and that device_id is derived from it (TRELLIS_ERR_PARSE).
 */
trellis_err_t tr__manifest_parse_header(const char *line, size_t len, tr__manifest_header_t *out,
                                        trellis_reason_t *reason);
trellis_err_t tr__manifest_parse_record(const char *line, size_t len, tr__manifest_record_t *out,
                                        trellis_reason_t *reason);
trellis_err_t tr__manifest_parse_trailer(const char *line, size_t len, tr__manifest_trailer_t *out,
                                         trellis_reason_t *reason);

/* 1 if text is an RFC 3339 UTC time "YYYY-MM-DDTHH:MM:SS[.fraction]Z" with fields in range. */
int tr__rfc3339_utc_valid(const char *text);

/* What an import did, for the HTTP answer and the audit log. */
typedef struct {
    trellis_err_t err;   /* TRELLIS_OK: imported, or already present */
    int already_present; /* the same manifest (sha256) was imported before */
    uint64_t records, added, present;
    uint64_t lines_read;
    tr__manifest_header_t header; /* as far as it was read */
    int have_header;
    uint8_t sha256[TRELLIS_SHA256_LEN];
    int have_sha256;
    /* Offending lines (1-based, header = 1), ascending, and how many there were in all. */
    uint64_t lines[TRELLIS_VSTORE_REPORT_MAX];
    size_t n_lines;
    uint64_t n_bad;
    trellis_reason_t reason; /* the first problem, naming its line; never secrets */
} tr__import_report_t;

typedef struct tr__import tr__import_t;

/*
 * Starts importing one manifest uploaded by the authenticated factory `caller`, into store.
 * caller NULL is a local import by the operator: the header may name any registered factory
 * (the signature must still verify with that factory's key) and the audit says "admin".
 * count_max bounds the header's count (0 for TR__MANIFEST_COUNT_MAX). store stays owned by the
 * caller and must outlive the import.
 */
trellis_err_t tr__import_new(trellis_vstore_t *store, const char *caller, uint64_t count_max,
                             tr__import_t **out);

/*
 * Feeds the next len bytes of the body, in any chunking. Lines are parsed, checked, hashed and
 * staged as they complete; at most one partial line is buffered. The first problem ends the
 * import: this call and every later one return its error (the report says which line and why),
 * so a caller may stop reading the body at once.
 */
trellis_err_t tr__import_feed(tr__import_t *imp, const uint8_t *data, size_t len);

/*
 * Ends the body: checks it was complete (header, count records, trailer, nothing more), that the
 * trailer's sha256 matches the bytes and its signature verifies with the factory's registered
 * key, and commits through the store, all or nothing. Fills report in every case and returns
 * report->err. Can be called once; feeding afterwards fails.
 */
trellis_err_t tr__import_finish(tr__import_t *imp, tr__import_report_t *report);

/* The report so far (after a feed error, for instance). */
const tr__import_report_t *tr__import_report(const tr__import_t *imp);

/*
 * The report as the JSON object the import API answers with (docs/verifier-api.md): factory,
 * owner, batch, sha256, records, and either status ("imported" / "already_present"), added and
 * present, or error (the API code), detail, lines and offending_lines. Text is reduced to
 * printable ASCII. NULL when out of memory; the caller json_decref's it.
 */
json_t *tr__import_report_json(const tr__import_report_t *rep);

/* Releases the import; an unfinished one is aborted and leaves the registry unchanged. */
void tr__import_free(tr__import_t *imp);

#endif /* TRELLIS_VERIFIER_MANIFEST_H */
