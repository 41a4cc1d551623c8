/*
 * The registrar's store: devices, the certificates issued to them, enrollments (with the
 * verifier's signed verdict kept as evidence), consumed challenges, the CRL, and the append-only
 * audit log.
 *
 * The store is a port (style.md §6): a versioned struct of function pointers over an opaque
 * backend context. The SQLite backend lives here; a PostgreSQL backend implements the same table
 * so that several registrars can share one registry (challenge replay state included). A
 * trellis_rstore_t is one connection, used by one thread at a time; a service opens one per
 * thread that needs it. Backends guarantee:
 *
 * - Record first. An enrollment (device, key, verdict, certificate serial and validity) is
 *   committed before the registrar signs the certificate, so every certificate that exists is
 *   in the registry. A crash between the commit and the signature leaves a recorded serial that
 *   no certificate carries, which is harmless.
 * - Single use. A challenge is consumed once, by the enrollment it is recorded with
 *   (TRELLIS_RSTORE_OP_RECORD) or by an attempt that failed (TRELLIS_RSTORE_OP_CONSUME); every
 *   later consumption is refused with TRELLIS_ERR_REPLAYED, from any connection, across
 *   restarts, until the challenge is purged after its expiry. A certificate also carries its
 *   challenge id under a uniqueness constraint, so one challenge never yields two
 *   certificates. challenge_used lets a service refuse a replay before any work is spent on
 *   it.
 * - Revocation is atomic with its effects. Revoking a device marks it revoked and revokes every
 *   certificate it holds in one transaction; an enrollment of a revoked device is refused inside
 *   the transaction that would record it. A revocation racing an enrollment therefore either
 *   sees the new certificate (and revokes it) or makes the enrollment fail.
 * - Every change appends its audit entry in the same transaction. The audit log has no update or
 *   delete path, and the SQLite backend refuses one with triggers.
 * - A failed call changes nothing.
 *
 * Text fields never hold secrets. Times are Unix seconds (certificates, challenges) or Unix
 * milliseconds (events), as each field says.
 */
#ifndef TRELLIS_REGISTRAR_STORE_H
#define TRELLIS_REGISTRAR_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/error.h"

#define TRELLIS_RSTORE_VERSION 1

#define TRELLIS_RSTORE_DEVICE_ID_LEN   32   /* lowercase hex */
#define TRELLIS_RSTORE_SERIAL_LEN      32   /* lowercase hex of the 16 serial bytes */
#define TRELLIS_RSTORE_KEY_LEN         65   /* uncompressed SEC1 P-256 point */
#define TRELLIS_RSTORE_CHALLENGE_ID    32   /* SHA-256 of the challenge */
#define TRELLIS_RSTORE_VERDICT_MAX     4096 /* bytes of the verdict JWS kept with an enrollment */
#define TRELLIS_RSTORE_NAME_MAX        64   /* actor, peer */
#define TRELLIS_RSTORE_EVENT_MAX       23
#define TRELLIS_RSTORE_TEXT_MAX        255     /* audit detail, revocation reason */
#define TRELLIS_RSTORE_LIST_MAX        100000  /* rows one list call returns at most */
#define TRELLIS_RSTORE_BATCH_MAX       1024    /* operations in one apply call */
#define TRELLIS_RSTORE_CRL_ENTRIES_MAX 1000000 /* revoked, unexpired certificates in one CRL */

/* CRL reason codes (RFC 5280 §5.3.1) the registrar uses. */
typedef enum {
    TRELLIS_CRL_REASON_UNSPECIFIED = 0,
    TRELLIS_CRL_REASON_KEY_COMPROMISE = 1,
    TRELLIS_CRL_REASON_AFFILIATION_CHANGED = 3,
    TRELLIS_CRL_REASON_SUPERSEDED = 4,
    TRELLIS_CRL_REASON_CESSATION_OF_OPERATION = 5,
    TRELLIS_CRL_REASON_PRIVILEGE_WITHDRAWN = 9,
} trellis_crl_reason_t;

/* What a second first-time enrollment of an enrolled device (a factory reset) does. */
typedef enum {
    TRELLIS_RESET_REPLACE = 0, /* allowed: the old certificates are revoked, audited as such */
    TRELLIS_RESET_DENY = 1,    /* refused with TRELLIS_ERR_CONFLICT */
} trellis_reset_policy_t;

typedef enum {
    TRELLIS_RSTORE_ENROLL = 1,   /* first-time enrollment: evidence, verdict, challenge */
    TRELLIS_RSTORE_REENROLL = 2, /* renewal over mutual TLS with a current certificate */
} trellis_rstore_kind_t;

typedef struct {
    char device_id[TRELLIS_RSTORE_DEVICE_ID_LEN + 1];
    int revoked; /* 1: may not enroll until reinstated */
    char revoke_reason[TRELLIS_RSTORE_TEXT_MAX + 1];
    int64_t enrolled_ms; /* first enrollment */
    int64_t changed_ms;  /* last enrollment, revocation or reinstatement */
    uint64_t enrollments;
    /* The newest certificate that is neither revoked nor expired at the time of the call, or
     * "" and 0 when there is none. */
    char serial[TRELLIS_RSTORE_SERIAL_LEN + 1];
    int64_t not_after;
} trellis_rstore_device_t;

typedef struct {
    char serial[TRELLIS_RSTORE_SERIAL_LEN + 1];
    char device_id[TRELLIS_RSTORE_DEVICE_ID_LEN + 1];
    uint8_t public_key[TRELLIS_RSTORE_KEY_LEN];
    int64_t not_before, not_after; /* Unix seconds, as in the certificate */
    int64_t issued_ms;
    int64_t revoked_ms; /* 0: not revoked */
    trellis_crl_reason_t revoke_reason;
    trellis_rstore_kind_t kind;
} trellis_rstore_cert_t;

typedef struct {
    int64_t seq;                                   /* assigned by the store, strictly increasing */
    int64_t ts_ms;                                 /* 0 asks the store to use its clock */
    char event[TRELLIS_RSTORE_EVENT_MAX + 1];      /* "enroll", "device.revoke", ... */
    char actor[TRELLIS_RSTORE_NAME_MAX + 1];       /* "admin", or the client's address */
    char device[TRELLIS_RSTORE_DEVICE_ID_LEN + 1]; /* "" when not about one device */
    char outcome[TRELLIS_RSTORE_EVENT_MAX + 1];    /* "ok", "refused", "replaced", ... */
    char detail[TRELLIS_RSTORE_TEXT_MAX + 1];      /* why, in short words; never secrets */
} trellis_rstore_audit_t;

/* One enrollment to record before its certificate is signed. */
typedef struct {
    trellis_rstore_kind_t kind;
    char device_id[TRELLIS_RSTORE_DEVICE_ID_LEN + 1];
    char serial[TRELLIS_RSTORE_SERIAL_LEN + 1]; /* of the certificate about to be signed */
    uint8_t public_key[TRELLIS_RSTORE_KEY_LEN];
    int64_t not_before, not_after;
    uint8_t csr_sha256[32];
    /* ENROLL: the challenge's id and expiry (it is consumed with the record), the verdict JWS
     * (borrowed, NUL-terminated, at most TRELLIS_RSTORE_VERDICT_MAX bytes); reset_policy
     * decides a second first-time enrollment. */
    uint8_t challenge_id[TRELLIS_RSTORE_CHALLENGE_ID];
    int64_t challenge_expires;
    const char *verdict;
    trellis_reset_policy_t reset_policy;
    /* REENROLL: the serial of the certificate the device authenticated with. */
    char old_serial[TRELLIS_RSTORE_SERIAL_LEN + 1];
    char actor[TRELLIS_RSTORE_NAME_MAX + 1]; /* the client's address, for the audit log */
    int64_t ts_ms;                           /* 0: the store's clock */
} trellis_rstore_enrollment_t;

typedef enum {
    TRELLIS_RSTORE_OP_CONSUME = 1, /* consume a challenge */
    TRELLIS_RSTORE_OP_RECORD = 2,  /* record an enrollment */
    TRELLIS_RSTORE_OP_AUDIT = 3,   /* append one audit entry */
} trellis_rstore_op_type_t;

/*
 * One operation of a batch (trellis_rstore_t.apply). In: type and its fields. Out: err and, for
 * RECORD, replaced / revoked_certs.
 *
 * CONSUME: TRELLIS_ERR_REPLAYED if the challenge id was consumed before.
 * RECORD, kind ENROLL: consumes the challenge; TRELLIS_ERR_REPLAYED if it was consumed before;
 *   TRELLIS_ERR_REVOKED if the device is revoked; with an earlier certificate still valid,
 *   TRELLIS_ERR_CONFLICT under TRELLIS_RESET_DENY, or under TRELLIS_RESET_REPLACE those
 *   certificates are revoked (superseded), replaced is 1 and the audit entry says "replaced".
 * RECORD, kind REENROLL: TRELLIS_ERR_UNKNOWN_DEVICE if the device is not registered;
 *   TRELLIS_ERR_REVOKED if it is revoked, or old_serial is not one of its certificates that is
 *   neither revoked nor expired; otherwise old_serial is revoked (superseded) once the new
 *   certificate is recorded, in the same transaction.
 * RECORD, both: TRELLIS_ERR_EXISTS if the serial is already taken (16 random bytes: a broken
 *   random generator, never chance). Refusals of a RECORD are audited ("refused").
 * AUDIT: appends the entry.
 */
typedef struct {
    trellis_rstore_op_type_t type;
    uint8_t challenge_id[TRELLIS_RSTORE_CHALLENGE_ID]; /* CONSUME */
    int64_t challenge_expires;                         /* CONSUME: Unix seconds */
    trellis_rstore_enrollment_t record;                /* RECORD */
    trellis_rstore_audit_t audit;                      /* AUDIT */
    trellis_err_t err;                                 /* out */
    int replaced;                                      /* out (RECORD) */
    uint64_t revoked_certs;                            /* out (RECORD) */
} trellis_rstore_op_t;

typedef struct {
    uint64_t devices, revoked_devices, certificates, revoked_certificates, enrollments, challenges,
        audit;
    uint64_t crl_number;
} trellis_rstore_counts_t;

/* One CRL entry (RFC 5280 §5.1.2.6). */
typedef struct {
    char serial[TRELLIS_RSTORE_SERIAL_LEN + 1];
    int64_t revoked_ms;
    trellis_crl_reason_t reason;
} trellis_rstore_revoked_t;

/* Return non-zero to stop an iteration early (the call still returns TRELLIS_OK). */
typedef int (*trellis_rstore_device_cb)(void *arg, const trellis_rstore_device_t *device);
typedef int (*trellis_rstore_cert_cb)(void *arg, const trellis_rstore_cert_t *cert);
typedef int (*trellis_rstore_audit_cb)(void *arg, const trellis_rstore_audit_t *entry);
typedef int (*trellis_rstore_revoked_cb)(void *arg, const trellis_rstore_revoked_t *entry);

typedef struct trellis_rstore trellis_rstore_t;

struct trellis_rstore {
    unsigned version; /* TRELLIS_RSTORE_VERSION */
    void *ctx;

    /* Releases the connection and ctx; the struct itself is freed by trellis_rstore_close. */
    void (*close)(void *ctx);

    /*
     * Applies ops[0..n-1] (1..TRELLIS_RSTORE_BATCH_MAX) in ONE transaction, each in its own
     * savepoint: an operation that fails leaves no trace and does not disturb the others
     * (group commit: one fsync for the whole batch). A batch holding a RECORD is durable when
     * this call returns; consumed challenges and audit entries alone may wait for the next
     * durable commit (they survive a crash of the process, not necessarily a power cut, and
     * no certificate can have been issued against a consumption that was lost). Each op's err says
     * how it went. Returns TRELLIS_OK when the transaction committed (whatever the single results),
     * or TRELLIS_ERR_STORE when it could not, and then every op's err is TRELLIS_ERR_STORE and
     * nothing changed.
     */
    trellis_err_t (*apply)(void *ctx, trellis_rstore_op_t *ops, size_t n);

    /* *used = 1 if the challenge id was consumed (and not purged yet), 0 otherwise. A read:
     * cheap enough for a service to ask before spending anything on a request. */
    trellis_err_t (*challenge_used)(void *ctx, const uint8_t id[TRELLIS_RSTORE_CHALLENGE_ID],
                                    int *used);
    /* Deletes consumed challenges that expired before now_s; *purged (may be NULL) counts
     * them. */
    trellis_err_t (*challenge_purge)(void *ctx, int64_t now_s, uint64_t *purged);

    /* TRELLIS_ERR_NOT_FOUND for an unknown device (out zeroed). now_s decides which certificate
     * is current. */
    trellis_err_t (*device_get)(void *ctx, const char *device_id, int64_t now_s,
                                trellis_rstore_device_t *out);
    /* Devices in device_id order after after_id (NULL or "" for the start), at most limit
     * (1..TRELLIS_RSTORE_LIST_MAX). */
    trellis_err_t (*device_list)(void *ctx, const char *after_id, size_t limit, int64_t now_s,
                                 trellis_rstore_device_cb cb, void *arg);
    /* TRELLIS_ERR_NOT_FOUND for an unknown serial (out zeroed). */
    trellis_err_t (*cert_get)(void *ctx, const char *serial, trellis_rstore_cert_t *out);
    /* Certificates of one device, oldest first. */
    trellis_err_t (*cert_list)(void *ctx, const char *device_id, trellis_rstore_cert_cb cb,
                               void *arg);

    /*
     * Marks a device revoked (reason text for people, code for the CRL) and revokes every
     * certificate it holds that is not revoked yet; *n_certs (may be NULL) counts them.
     * TRELLIS_ERR_NOT_FOUND for an unknown device, TRELLIS_ERR_REVOKED if it already is
     * revoked. Audited as "device.revoke".
     */
    trellis_err_t (*device_revoke)(void *ctx, const char *device_id, trellis_crl_reason_t code,
                                   const char *reason, const char *actor, uint64_t *n_certs);
    /* Lets a revoked device enroll again (its revoked certificates stay revoked).
     * TRELLIS_ERR_NOT_FOUND for an unknown device, TRELLIS_ERR_CONFLICT if it is not revoked.
     * Audited as "device.reinstate". */
    trellis_err_t (*device_reinstate)(void *ctx, const char *device_id, const char *actor);

    /* Entries with seq > after_seq in seq order, of one device (NULL for all), at most limit. */
    trellis_err_t (*audit_list)(void *ctx, const char *device, int64_t after_seq, size_t limit,
                                trellis_rstore_audit_cb cb, void *arg);

    trellis_err_t (*counts)(void *ctx, trellis_rstore_counts_t *out);

    /*
     * Publishing a CRL, in three steps under the registry's write lock, so that CRLs are
     * numbered in the order of the state they describe, whichever process publishes:
     *   crl_begin    takes the write lock and returns the next CRL number (1, 2, ...);
     *   crl_revoked  lists the revoked certificates not expired at now_s (at most
     *                TRELLIS_RSTORE_CRL_ENTRIES_MAX; more is TRELLIS_ERR_TOO_LARGE);
     *   crl_commit   stores the signed CRL (DER) with its number and releases the lock;
     *   crl_abort    releases the lock and changes nothing.
     */
    trellis_err_t (*crl_begin)(void *ctx, uint64_t *number);
    trellis_err_t (*crl_revoked)(void *ctx, int64_t now_s, trellis_rstore_revoked_cb cb, void *arg);
    trellis_err_t (*crl_commit)(void *ctx, uint64_t number, int64_t this_update_s,
                                const uint8_t *der, size_t len);
    void (*crl_abort)(void *ctx);
    /*
     * The latest CRL as (buf, buf_size, *len): with buf NULL or too small, *len receives the
     * size and TRELLIS_ERR_BUFFER_TOO_SMALL is returned. *number and *this_update_s (either may
     * be NULL) describe it. TRELLIS_ERR_NOT_FOUND before the first CRL.
     */
    trellis_err_t (*crl_get)(void *ctx, uint64_t *number, int64_t *this_update_s, uint8_t *buf,
                             size_t buf_size, size_t *len);
};

/* Options of the SQLite backend. */
typedef struct {
    /* 1: enrollment records, revocations and CRLs are fsynced when committed (they survive a
     * power cut); 0: nothing is (synchronous=NORMAL: a crash of the process loses nothing, a
     * power cut may lose the last commits). */
    int durable;
    /* How long a writer waits for the write lock before failing with TRELLIS_ERR_STORE. */
    int busy_timeout_ms;
    /* 1: create the schema if the file is new; 0: TRELLIS_ERR_NOT_FOUND if absent. */
    int create;
} trellis_rstore_sqlite_opts_t;

/*
 * Opens (with opts->create, creates) the SQLite registry at path, in WAL mode. opts NULL means
 * {durable 1, busy_timeout_ms 5000, create 0}. ":memory:" is accepted for tests. Errors:
 * TRELLIS_ERR_NOT_FOUND, TRELLIS_ERR_STORE (cannot open, not a registrar registry, schema too
 * new), TRELLIS_ERR_NOMEM, TRELLIS_ERR_INVALID_ARG.
 */
trellis_err_t trellis_rstore_open_sqlite(const char *path, const trellis_rstore_sqlite_opts_t *opts,
                                         trellis_rstore_t **out);

/* Closes a store of any backend; NULL is a no-op. */
void trellis_rstore_close(trellis_rstore_t *store);

/* 1 if s is exactly 32 lowercase hex characters (a device id or a serial), 0 otherwise. */
int trellis_rstore_hex32_valid(const char *s);

/* The RFC 5280 name of a reason code ("keyCompromise"); "unspecified" for unknown codes. */
const char *trellis_crl_reason_name(trellis_crl_reason_t code);

/* Parses an RFC 5280 reason name, case-insensitively and with '-' or '_' allowed between words
 * ("key-compromise", "keyCompromise"). TRELLIS_ERR_NOT_FOUND for anything else. */
trellis_err_t trellis_crl_reason_parse(const char *text, trellis_crl_reason_t *out);

#endif /* TRELLIS_REGISTRAR_STORE_H */
