/*
 * The factory side of Trellis (`trellis factory ...`, docs/factory.md): the factory identity,
 * batches of devices with freshly injected RoT keys, signed manifests (docs/manifest-format.md)
 * and their upload to the verifier.
 *
 * Internal to the CLI (tr__ prefix). cmd_factory.c parses command lines and calls these; the unit
 * tests in tests/unit/factory/ call them directly. None of them prints anything except the
 * progress lines of tr__factory_make, which go to the FILE the caller names.
 */
#ifndef TRELLIS_CLI_FACTORY_H
#define TRELLIS_CLI_FACTORY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "trellis/error.h"
#include "trellis/rot.h"

#define TR_FACTORY_CONF      "factory.conf"    /* [factory] name = ... */
#define TR_FACTORY_KEY       "factory_key.pem" /* manifest signing key, 0600 */
#define TR_FACTORY_PUB       "factory_pub.pem" /* its public half, for the verifier's admin */
#define TR_NAME_MAX          64                /* factory, owner, batch, model, serial */
#define TR_MANIFEST_NAME     "manifest.jsonl"
#define TR_BATCH_STATE       "batch.json"
#define TR_DEVICES_DIR       "devices"
#define TR_MANIFEST_MAX      1000000 /* devices in one manifest made here */
#define TR_MANIFEST_LINE_MAX 1024    /* bytes of one manifest line, newline excluded */
#define TR_KEYS_LINE_MAX     4096    /* bytes of one --from-keys input line */
#define TR_PATH_MAX          1024

/*
 * A name that travels in manifests and paths: factory, owner (OEM), batch, serial prefix.
 * 1..TR_NAME_MAX characters of [A-Za-z0-9._-], starting with a letter or digit (the verifier's
 * rule for registered names). Returns 1 if valid.
 */
int tr__factory_name_valid(const char *name);

/* ---- Factory identity ---- */

typedef struct {
    char name[TR_NAME_MAX + 1];
    EVP_PKEY *key; /* manifest signing key (private) */
} tr_factory_t;

/*
 * Creates a factory in dir (created 0700 if missing): a fresh P-256 signing key in
 * factory_key.pem (0600), its public key in factory_pub.pem, and factory.conf naming it.
 * Refuses (TRELLIS_ERR_EXISTS) if dir already holds a factory, so a signing key is never
 * replaced by accident. TRELLIS_ERR_INVALID_ARG for an invalid name.
 */
trellis_err_t tr__factory_init(const char *dir, const char *name, trellis_reason_t *reason);

/* Loads the factory in dir (its name and signing key). Close with tr__factory_close. */
trellis_err_t tr__factory_open(const char *dir, tr_factory_t *f, trellis_reason_t *reason);
void tr__factory_close(tr_factory_t *f);

/* ---- Manifests (docs/manifest-format.md) ---- */

typedef struct {
    char factory[TR_NAME_MAX + 1];
    char owner[TR_NAME_MAX + 1];
    char batch[TR_NAME_MAX + 1];
    char created[32]; /* RFC 3339 UTC; empty: now */
    uint64_t count;
} tr_manifest_header_t;

/*
 * Streams a manifest to path: the header, then count records, then the signed trailer. Lines
 * go to path.tmp as they come, hashed on the way; tr__manifest_commit appends the trailer,
 * fsyncs, renames over path and fsyncs the directory, so path appears whole or not at all
 * (the commit point of a batch). path must not exist yet (TRELLIS_ERR_EXISTS).
 */
typedef struct {
    FILE *fp;
    EVP_MD_CTX *md;
    char path[TR_PATH_MAX];
    char tmp[TR_PATH_MAX + 8];
    uint64_t count;
    uint64_t written;
} tr_manifest_writer_t;

trellis_err_t tr__manifest_begin(tr_manifest_writer_t *w, const char *path,
                                 const tr_manifest_header_t *h, trellis_reason_t *reason);
/* One record; model and serial per trellis_device_name_check (printable ASCII, 1..64). */
trellis_err_t tr__manifest_add(tr_manifest_writer_t *w, const uint8_t point[TRELLIS_ROT_POINT_LEN],
                               const char *model, const char *serial, trellis_reason_t *reason);
/* Trailer signed with key; TRELLIS_ERR_INTERNAL if fewer or more records than count were
 * added. On success *sha256 (may be NULL) receives the manifest hash. */
trellis_err_t tr__manifest_commit(tr_manifest_writer_t *w, EVP_PKEY *key, uint8_t sha256[32],
                                  trellis_reason_t *reason);
/* Drops an uncommitted manifest (removes path.tmp). Safe after commit and on a zeroed writer. */
void tr__manifest_abort(tr_manifest_writer_t *w);

/* What tr__manifest_verify found. */
typedef struct {
    tr_manifest_header_t header;
    uint64_t records;
    uint8_t sha256[32];
    uint64_t bad_line; /* 1-based line of the first problem, 0 if none or not line-bound */
} tr_manifest_summary_t;

/*
 * Checks a manifest the way the verifier will: every line a JSON object with exactly the members
 * of the format, in a file of at most TR_MANIFEST_MAX records; device_id derived from rot_key,
 * rot_key a valid P-256 point; no device id, key or serial twice; count matching; the trailer's
 * sha256 matching the bytes and its signature verifying with key. Errors: TRELLIS_ERR_PARSE,
 * TRELLIS_ERR_BAD_KEY, TRELLIS_ERR_CONFLICT (duplicates), TRELLIS_ERR_BAD_SIGNATURE, with the line
 * in summary->bad_line and reason.
 */
trellis_err_t tr__manifest_verify(const char *path, EVP_PKEY *key, tr_manifest_summary_t *summary,
                                  trellis_reason_t *reason);

/* ---- A set of 16-byte ids, to find duplicates among up to TR_MANIFEST_MAX entries ---- */

typedef struct {
    uint8_t (*keys)[16];
    uint64_t *lines; /* line of each entry (0 marks an empty slot) */
    size_t cap;
    size_t n;
} tr_idset_t;

trellis_err_t tr__idset_init(tr_idset_t *s, size_t expected);
/* Adds id seen at line (>= 1). If it was already there, returns TRELLIS_ERR_CONFLICT and sets
 * *first_line to the line it was first seen at. TRELLIS_ERR_TOO_LARGE past the expected size. */
trellis_err_t tr__idset_add(tr_idset_t *s, const uint8_t id[16], uint64_t line,
                            uint64_t *first_line);
void tr__idset_free(tr_idset_t *s);

/* ---- Keys read out of pre-provisioned chips (`factory manifest --from-keys`) ---- */

/*
 * One record of the --from-keys input, a JSON Lines file (docs/factory.md):
 *   {"serial":"SN-1","model":"T-100","public_key":"04ab...(130 hex)"}
 *   {"serial":"SN-2","model":"T-100","public_key":"-----BEGIN PUBLIC KEY-----\n...\n-----END..."}
 * public_key is the uncompressed SEC1 point in hex (either case) or a PEM SubjectPublicKeyInfo;
 * either way it must be a point on P-256. Exactly these three members, none twice. Empty lines
 * and lines starting with '#' are skipped.
 */
typedef struct {
    char serial[TR_NAME_MAX + 1];
    char model[TR_NAME_MAX + 1];
    uint8_t point[TRELLIS_ROT_POINT_LEN];
} tr_key_record_t;

/* Parses one input line (without its newline). TRELLIS_ERR_PARSE or TRELLIS_ERR_BAD_KEY with a
 * reason naming the member. */
trellis_err_t tr__keys_parse_line(const char *line, size_t len, tr_key_record_t *out,
                                  trellis_reason_t *reason);

/* Options of tr__factory_manifest_from_keys. */
typedef struct {
    const char *input;  /* the --from-keys file (a regular file: it is read twice) */
    const char *output; /* the manifest to write; must not exist */
    const char *owner;
    const char *batch;
} tr_from_keys_opts_t;

/*
 * Builds a signed manifest from a --from-keys file: a first pass validates every record and
 * refuses duplicates (the same key, hence device id, twice: a cloned chip; or the same serial
 * twice) naming both lines; a second pass writes the manifest, checking that the file did not
 * change in between. *records receives the count. Errors: those of the parsers with the line
 * number in reason, TRELLIS_ERR_CONFLICT for duplicates, TRELLIS_ERR_TOO_LARGE past
 * TR_MANIFEST_MAX records or TR_KEYS_LINE_MAX bytes per line, TRELLIS_ERR_EXISTS.
 */
trellis_err_t tr__factory_manifest_from_keys(const tr_factory_t *f, const tr_from_keys_opts_t *o,
                                             uint64_t *records, trellis_reason_t *reason);

/* ---- Batches (`factory make`) ---- */

typedef struct {
    const char *out_dir;
    const char *model;
    const char *owner;
    const char *batch;         /* NULL: the batch being resumed, or b-YYYYMMDD-HHMMSS-XXXX */
    const char *serial_prefix; /* NULL: "<batch>-" */
    uint64_t serial_start;     /* first serial number (0 means 1) */
    uint64_t count;            /* 1..TR_MANIFEST_MAX */
    const char *registrar_url; /* optional, https:// */
    const char *registrar_ca;  /* optional PEM file, pinned in every device */
    const char *pkcs11_module; /* set: keys go into this module's token */
    const char *token_label;
    const char *pin;
    FILE *progress;          /* progress lines every progress_every devices; NULL: none */
    uint64_t progress_every; /* 0 means 1000 */
} tr_make_opts_t;

typedef struct {
    char batch[TR_NAME_MAX + 1];
    uint64_t created; /* devices injected by this run */
    uint64_t resumed; /* devices found complete from an earlier, interrupted run */
    uint64_t redone;  /* half-made devices of an interrupted run, made again */
    double seconds;
    char manifest[TR_PATH_MAX];
    uint8_t sha256[32];
} tr_make_result_t;

/*
 * Makes a batch in o->out_dir (docs/factory.md, "Crash behaviour"): records the batch's
 * parameters in batch.json (durably) first; then, for each device, injects a RoT (file backend:
 * devices/<serial>/rot_key.pem; PKCS#11: a key labelled <serial> in the token) and writes
 * devices/<serial>/factory.json, without fsyncing each file; then syncs the filesystem once and
 * writes the signed manifest last, atomically, as the commit point.
 *
 * Run again after a crash with the same parameters, it resumes: complete devices are kept,
 * half-made ones are made again (no manifest has named them yet, so no key was ever published).
 * Different parameters are refused (TRELLIS_ERR_CONFLICT); a finished batch (manifest present)
 * is TRELLIS_ERR_EXISTS.
 */
trellis_err_t tr__factory_make(const tr_factory_t *f, const tr_make_opts_t *o,
                               tr_make_result_t *res, trellis_reason_t *reason);

/* ---- Upload (`factory upload`) ---- */

typedef struct {
    const char *manifest;
    const char *verifier_url; /* https://host:port (/v1/manifests is appended) */
    const char *cert;         /* the factory's client certificate (PEM) */
    const char *key;          /* its private key (PEM) */
    const char *ca;           /* CA bundle that signed the verifier's certificate */
    long timeout_s;           /* 0 means 300 */
} tr_upload_opts_t;

#define TR_UPLOAD_LINES_MAX 32

typedef struct {
    long http_status;                     /* 0 if no answer */
    char status[32];                      /* "imported" or "already_present" on 200 */
    long long devices;                    /* "devices" of a 200 answer, -1 if absent */
    char error[64];                       /* "error" of a 4xx/5xx answer */
    char detail[256];                     /* "detail" of a 4xx/5xx answer */
    long long lines[TR_UPLOAD_LINES_MAX]; /* "lines" of a 4xx answer */
    size_t n_lines;
    char body[4096]; /* the answer as received (truncated), for --json */
} tr_upload_result_t;

/*
 * POSTs the manifest to <verifier_url>/v1/manifests over mutual TLS (libcurl), streamed from the
 * file as application/x-ndjson, and parses the answer into *res. Returns TRELLIS_OK when the
 * verifier answered (whatever the status: the caller reports it), TRELLIS_ERR_TLS or
 * TRELLIS_ERR_UNAVAILABLE or TRELLIS_ERR_TIMEOUT when it could not be reached, TRELLIS_ERR_HTTP
 * for an answer that is not the JSON of the import API.
 */
trellis_err_t tr__factory_upload(const tr_upload_opts_t *o, tr_upload_result_t *res,
                                 trellis_reason_t *reason);

/* ---- Helpers shared by the factory files ---- */

/* "YYYY-MM-DDTHH:MM:SSZ" of now, into out (at least 21 bytes). */
void tr__rfc3339_now(char *out, size_t size);

/* JSON string text of s (printable ASCII only) with '"' and '\\' escaped, appended into buf at
 * *pos; TRELLIS_ERR_BUFFER_TOO_SMALL if it does not fit. */
trellis_err_t tr__json_put_string(char *buf, size_t size, size_t *pos, const char *s);

#endif /* TRELLIS_CLI_FACTORY_H */
