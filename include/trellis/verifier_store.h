/*
 * The verifier's store: OEMs, factories, manifests, the public record of every device, and the
 * append-only audit log.
 *
 * The store is a port (style.md §6): a versioned struct of function pointers over an opaque
 * backend context, so the SQLite backend here and a PostgreSQL backend later are
 * interchangeable. A trellis_vstore_t is one connection: it is used by one thread at a time; a
 * multi-threaded service opens one per thread. Backends guarantee:
 *
 * - Every mutation (OEM or factory added, manifest imported, device revoked or transferred)
 *   appends its audit entry in the same transaction as the change, so the log never misses a
 *   change and never records one that did not happen.
 * - The audit log is append-only: there is no update or delete path, and the backend refuses
 *   one at the database level where it can (SQLite: triggers).
 * - A failed call changes nothing.
 *
 * Names (OEM, factory) are 1..TRELLIS_VSTORE_NAME_MAX characters of [A-Za-z0-9._-] starting
 * with a letter or digit (trellis_vstore_name_valid); the backends trust callers to have checked
 * them. Text columns never hold secrets.
 */
#ifndef TRELLIS_VERIFIER_STORE_H
#define TRELLIS_VERIFIER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

#define TRELLIS_VSTORE_VERSION 1

#define TRELLIS_VSTORE_NAME_MAX   64  /* OEM, factory, batch, model, serial */
#define TRELLIS_VSTORE_REASON_MAX 255 /* audit reason and revocation reason, bytes */
#define TRELLIS_VSTORE_EVENT_MAX  23
#define TRELLIS_DEVICE_ID_HEX_LEN 32     /* lowercase hex of SHA-256(point)[0..15] */
#define TRELLIS_ROT_KEY_LEN       65     /* uncompressed SEC1 P-256 point */
#define TRELLIS_VSTORE_REPORT_MAX 20     /* conflicting lines named in one import report */
#define TRELLIS_VSTORE_LIST_MAX   100000 /* rows one list call returns at most */

typedef struct {
    char device_id[TRELLIS_DEVICE_ID_HEX_LEN + 1];
    uint8_t rot_key[TRELLIS_ROT_KEY_LEN];
    char model[TRELLIS_VSTORE_NAME_MAX + 1];
    char serial[TRELLIS_VSTORE_NAME_MAX + 1];
    char owner[TRELLIS_VSTORE_NAME_MAX + 1];
    char factory[TRELLIS_VSTORE_NAME_MAX + 1];
    char batch[TRELLIS_VSTORE_NAME_MAX + 1];
    int revoked; /* 1 once revoked: every later verdict is negative */
    char revoke_reason[TRELLIS_VSTORE_REASON_MAX + 1];
    int64_t created_ms; /* when the manifest that brought it was committed */
    int64_t changed_ms; /* last revocation or transfer, 0 if never */
} trellis_vstore_device_t;

typedef struct {
    int64_t seq;   /* assigned by the store, strictly increasing */
    int64_t ts_ms; /* unix time in milliseconds; 0 asks the store to use its clock */
    char event[TRELLIS_VSTORE_EVENT_MAX + 1];   /* "verdict", "manifest.import", ... */
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];   /* OEM, factory, or "admin" */
    char device[TRELLIS_DEVICE_ID_HEX_LEN + 1]; /* "" when not about one device */
    char outcome[TRELLIS_VSTORE_EVENT_MAX + 1]; /* "affirming", "rejected", "ok", ... */
    char reason[TRELLIS_VSTORE_REASON_MAX + 1]; /* why, in short words; never secrets */
} trellis_vstore_audit_t;

typedef struct {
    uint64_t oems, factories, manifests, devices, revoked, audit;
} trellis_vstore_counts_t;

/* One manifest record, staged before the manifest's signature is known to verify. */
typedef struct {
    const char *device_id;  /* 32 lowercase hex characters, already checked against rot_key */
    const uint8_t *rot_key; /* TRELLIS_ROT_KEY_LEN bytes, already checked to be on P-256 */
    const char *model;
    const char *serial;
} trellis_vstore_record_t;

/* What a manifest commit writes beside the records. */
typedef struct {
    const char *factory;
    const char *owner;
    const char *batch;
    const char *created; /* the header's RFC 3339 time, kept as text */
    uint64_t count;
    const uint8_t *sha256; /* 32 bytes: the manifest's identity for idempotency */
    const char *caller;    /* the authenticated factory */
} trellis_vstore_manifest_t;

typedef struct {
    int already_present; /* 1: this manifest was imported before; nothing changed */
    uint64_t added;      /* devices new to the registry */
    uint64_t present;    /* records identical to a known device */
    /* On TRELLIS_ERR_CONFLICT: the first conflicting line numbers (1-based, header = line 1),
     * ascending, and how many lines conflict in all. */
    uint64_t lines[TRELLIS_VSTORE_REPORT_MAX];
    size_t n_lines;
    uint64_t conflicts;
} trellis_vstore_import_result_t;

/* Return non-zero to stop the iteration early (the list call then still returns TRELLIS_OK). */
typedef int (*trellis_vstore_device_cb)(void *arg, const trellis_vstore_device_t *device);
typedef int (*trellis_vstore_audit_cb)(void *arg, const trellis_vstore_audit_t *entry);

typedef struct trellis_vstore trellis_vstore_t;

struct trellis_vstore {
    unsigned version; /* TRELLIS_VSTORE_VERSION */
    void *ctx;        /* the backend's connection */

    /* Releases the connection and ctx; the struct itself is freed by trellis_vstore_close. */
    void (*close)(void *ctx);

    /* TRELLIS_ERR_EXISTS if the name is taken by an OEM or a factory (one namespace, so a
     * client certificate's CN names exactly one tenant). Audited as "oem.add". */
    trellis_err_t (*oem_add)(void *ctx, const char *name, const char *caller);
    /* *exists = 1 or 0. */
    trellis_err_t (*oem_exists)(void *ctx, const char *name, int *exists);

    /* Registers a factory and its manifest-signing public key (uncompressed point).
     * TRELLIS_ERR_EXISTS if the name is taken by an OEM or a factory. Audited as
     * "factory.add". */
    trellis_err_t (*factory_add)(void *ctx, const char *name,
                                 const uint8_t key[TRELLIS_ROT_KEY_LEN], const char *caller);
    /* TRELLIS_ERR_NOT_FOUND for an unknown factory. */
    trellis_err_t (*factory_key)(void *ctx, const char *name, uint8_t key[TRELLIS_ROT_KEY_LEN]);

    /* TRELLIS_ERR_NOT_FOUND for an unknown device; out is zeroed then. */
    trellis_err_t (*device_get)(void *ctx, const char *device_id, trellis_vstore_device_t *out);
    /* Devices in device_id order, after after_id (NULL or "" for the start), of one owner
     * (NULL for all), at most limit (1..TRELLIS_VSTORE_LIST_MAX) of them. */
    trellis_err_t (*device_list)(void *ctx, const char *owner, const char *after_id, size_t limit,
                                 trellis_vstore_device_cb cb, void *arg);
    /* Marks a device revoked for good. TRELLIS_ERR_NOT_FOUND for an unknown device,
     * TRELLIS_ERR_REVOKED if it already is. Audited as "device.revoke". */
    trellis_err_t (*device_revoke)(void *ctx, const char *device_id, const char *reason,
                                   const char *caller);
    /* Gives one device (device_id) or every device of a batch (batch, optionally narrowed to one
     * factory) to the OEM to. Exactly one of device_id and batch is non-NULL. Devices already
     * owned by `to` are left alone; *moved counts the others. TRELLIS_ERR_NOT_FOUND when nothing
     * matches or `to` is not a registered OEM. Audited as "device.transfer", one entry per device
     * moved, each naming the previous owner. */
    trellis_err_t (*transfer)(void *ctx, const char *device_id, const char *batch,
                              const char *factory, const char *to, const char *caller,
                              uint64_t *moved);

    /* Appends n entries (1..1000) in one transaction; each entry's seq and, when 0, ts_ms are
     * assigned by the store (the caller's array is not modified). */
    trellis_err_t (*audit_append)(void *ctx, const trellis_vstore_audit_t *entries, size_t n);
    /* Entries with seq > after_seq in seq order, of one device (NULL for all), at most limit. */
    trellis_err_t (*audit_list)(void *ctx, const char *device, int64_t after_seq, size_t limit,
                                trellis_vstore_audit_cb cb, void *arg);

    trellis_err_t (*counts)(void *ctx, trellis_vstore_counts_t *out);

    /*
     * Manifest import, in three steps so that a manifest of any size streams through a bounded
     * amount of memory and takes the registry's write lock only at the end:
     *   import_begin  clears this connection's staging area;
     *   import_stage  adds one record to it, refusing (TRELLIS_ERR_CONFLICT, reason naming both
     *                 lines) a record whose device id or serial repeats an earlier line;
     *   import_commit checks the staged records against the registry and, in one transaction,
     *                 adds the new devices, the manifest and its audit entry.
     * import_commit returns TRELLIS_OK with result->already_present = 1 when a manifest with the
     * same sha256 was imported before (nothing changes); TRELLIS_ERR_CONFLICT with the
     * conflicting lines in result when a staged record differs from a known device (key, model,
     * serial or owner) or the factory already imported another manifest with this batch id
     * (then n_lines is 0); TRELLIS_ERR_NOT_FOUND if the owner OEM or factory is not registered.
     * import_abort drops the staging area. Nothing is visible to other connections before
     * import_commit succeeds.
     */
    trellis_err_t (*import_begin)(void *ctx);
    trellis_err_t (*import_stage)(void *ctx, const trellis_vstore_record_t *record, uint64_t line,
                                  trellis_reason_t *reason);
    trellis_err_t (*import_commit)(void *ctx, const trellis_vstore_manifest_t *manifest,
                                   trellis_vstore_import_result_t *result);
    void (*import_abort)(void *ctx);
};

/* Options of the SQLite backend. */
typedef struct {
    /* 1: synchronous=FULL (every commit fsynced); 0: synchronous=NORMAL, which in WAL mode
     * survives a process crash but may lose the last commits on power loss. */
    int durable;
    /* How long a writer waits for the write lock before giving up with TRELLIS_ERR_STORE. */
    int busy_timeout_ms;
    /* 1: create the schema if the file is new; 0: fail with TRELLIS_ERR_NOT_FOUND if absent. */
    int create;
} trellis_vstore_sqlite_opts_t;

/*
 * Opens (and with opts->create, creates) the SQLite registry at path in WAL mode.
 * opts NULL means {durable 1, busy_timeout_ms 5000, create 0}. ":memory:" is accepted for tests.
 * Errors: TRELLIS_ERR_NOT_FOUND, TRELLIS_ERR_STORE (cannot open, schema too new),
 * TRELLIS_ERR_NOMEM.
 */
trellis_err_t trellis_vstore_open_sqlite(const char *path, const trellis_vstore_sqlite_opts_t *opts,
                                         trellis_vstore_t **out);

/* Closes a store opened by any backend; NULL is a no-op. */
void trellis_vstore_close(trellis_vstore_t *store);

/* 1 if name is a valid OEM or factory name, 0 otherwise. */
int trellis_vstore_name_valid(const char *name);

/* 1 if s is 1..TRELLIS_VSTORE_NAME_MAX printable ASCII characters (model, serial, batch). */
int trellis_vstore_text_valid(const char *s);

/* 1 if s is exactly 32 lowercase hex characters. */
int trellis_vstore_device_id_valid(const char *s);

#endif /* TRELLIS_VERIFIER_STORE_H */
