#include <pthread.h>
#include <string.h>

#include "trellis/sqlite_util.h"

static pthread_once_t configured = PTHREAD_ONCE_INIT;

static void configure(void)
{
    /* Refused (SQLITE_MISUSE) once SQLite is initialised, e.g. by a caller that opened a
     * database directly: the statistics then stay on, which costs speed, not correctness. */
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int trellis_sqlite_open(const char *path, int flags, sqlite3 **out)
{
    pthread_once(&configured, configure);
    return sqlite3_open_v2(path, out, flags, NULL);
}

sqlite3_stmt *trellis_sqlite_fresh(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

void trellis_sqlite_column_copy(char *dst, size_t size, sqlite3_stmt *st, int col)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    size_t len = text == NULL || n <= 0 ? 0 : (size_t)n;
    if (len >= size)
        len = size - 1;
    if (len > 0)
        memcpy(dst, text, len);
    dst[len] = '\0';
}

trellis_err_t trellis_sqlite_open_store(const char *path, int create, int durable, int busy_ms,
                                        const char *extra_pragmas, sqlite3 **out)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = trellis_sqlite_open(path, flags, out);
    if (rc != SQLITE_OK)
        return rc == SQLITE_CANTOPEN ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_STORE;
    sqlite3_busy_timeout(*out, busy_ms > 0 ? busy_ms : 0);
    trellis_err_t err = trellis_sqlite_exec(*out, durable ? "PRAGMA journal_mode=WAL;"
                                                            " PRAGMA synchronous=FULL;"
                                                            " PRAGMA foreign_keys=ON;"
                                                          : "PRAGMA journal_mode=WAL;"
                                                            " PRAGMA synchronous=NORMAL;"
                                                            " PRAGMA foreign_keys=ON;");
    if (err == TRELLIS_OK && extra_pragmas != NULL)
        err = trellis_sqlite_exec(*out, extra_pragmas);
    return err;
}

trellis_err_t trellis_sqlite_prepare_all(sqlite3 *db, const char *const *sql, size_t n,
                                         sqlite3_stmt **st)
{
    for (size_t i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) !=
            SQLITE_OK)
            return TRELLIS_ERR_STORE;
    }
    return TRELLIS_OK;
}

trellis_err_t trellis_sqlite_step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return TRELLIS_OK;
    return (rc & 0xff) == SQLITE_CONSTRAINT ? TRELLIS_ERR_EXISTS : TRELLIS_ERR_STORE;
}

int trellis_sqlite_bind_text_or_null(sqlite3_stmt *st, int idx, const char *s)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT);
}

trellis_err_t trellis_sqlite_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? TRELLIS_OK : TRELLIS_ERR_STORE;
}
