/*
 * Small helpers every SQLite-backed Trellis store uses (the verifier's registry, the
 * registrar's registry): prepared statements reused without holding a read snapshot between
 * calls, bounded text columns, NULL-aware text binding.
 */
#ifndef TRELLIS_SQLITE_UTIL_H
#define TRELLIS_SQLITE_UTIL_H

#include <stddef.h>

#include <sqlite3.h>

#include "trellis/error.h"

/* Resets st and clears its bindings, so a reused statement starts clean and no earlier step
 * keeps a read snapshot open; returns st. */
sqlite3_stmt *trellis_sqlite_fresh(sqlite3_stmt *st);

/* Copies text column col of the current row into dst (size > 0), truncated to size - 1 bytes
 * and NUL-terminated; a NULL column gives "". */
void trellis_sqlite_column_copy(char *dst, size_t size, sqlite3_stmt *st, int col);

/* Binds s as text (copied by SQLite), or SQL NULL when s is NULL. Returns the SQLite code. */
int trellis_sqlite_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s);

/*
 * sqlite3_open_v2 after a once-per-process set-up: SQLite's memory statistics are switched off
 * (SQLITE_CONFIG_MEMSTATUS), because they take one global mutex around every allocation, which
 * the worker threads of a service, each with its own connection, otherwise contend for. *out
 * is set even on failure (close it with sqlite3_close, as with sqlite3_open_v2). Returns the
 * SQLite code.
 */
int trellis_sqlite_open(const char *path, int flags, sqlite3 **out);

/*
 * Opens the database of a store at path (created if create), for use by one thread at a time
 * (SQLITE_OPEN_NOMUTEX), through trellis_sqlite_open: busy timeout busy_ms, WAL journal,
 * synchronous FULL when durable (every commit fsynced) and NORMAL otherwise, foreign keys on,
 * then extra_pragmas (may be NULL). *out is set even on failure (sqlite3_close it). Errors:
 * TRELLIS_ERR_NOT_FOUND when the file cannot be opened (absent without create),
 * TRELLIS_ERR_STORE otherwise.
 */
trellis_err_t trellis_sqlite_open_store(const char *path, int create, int durable, int busy_ms,
                                        const char *extra_pragmas, sqlite3 **out);

/* Prepares the n statements of sql into st (persistent: a store keeps them for its lifetime).
 * TRELLIS_ERR_STORE at the first that fails; those prepared stay in st for the caller to
 * finalize. */
trellis_err_t trellis_sqlite_prepare_all(sqlite3 *db, const char *const *sql, size_t n,
                                         sqlite3_stmt **st);

/* Steps st, a statement that returns no row, and resets it: TRELLIS_OK when it ran to the end,
 * TRELLIS_ERR_EXISTS when a constraint refused it (a duplicate key), TRELLIS_ERR_STORE
 * otherwise. */
trellis_err_t trellis_sqlite_step_done(sqlite3_stmt *st);

/* Runs sql (no results); TRELLIS_ERR_STORE on any SQLite error. */
trellis_err_t trellis_sqlite_exec(sqlite3 *db, const char *sql);

#endif /* TRELLIS_SQLITE_UTIL_H */
