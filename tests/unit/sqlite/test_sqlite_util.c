/*
 * The SQLite helpers the stores share, on an in-memory database: a statement run to its end,
 * refused by a constraint or failing; bounded text columns; NULL-aware binding; plain SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"
#include "trellis/sqlite_util.h"

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(
        trellis_sqlite_open(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db),
        SQLITE_OK);
    assert_int_equal(trellis_sqlite_exec(db, "CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT)"),
                     TRELLIS_OK);
    return db;
}

static void test_step_done(void **state)
{
    (void)state;
    sqlite3 *db = open_db();
    sqlite3_stmt *ins = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES(?1, ?2)", -1, &ins, NULL),
                     SQLITE_OK);
    trellis_sqlite_bind_text_or_null(trellis_sqlite_fresh(ins), 1, "a");
    assert_int_equal(trellis_sqlite_step_done(ins), TRELLIS_OK);
    /* The same key again: the primary key refuses it, and the statement is reset for reuse. */
    trellis_sqlite_bind_text_or_null(trellis_sqlite_fresh(ins), 1, "a");
    assert_int_equal(trellis_sqlite_step_done(ins), TRELLIS_ERR_EXISTS);
    trellis_sqlite_bind_text_or_null(trellis_sqlite_fresh(ins), 1, "b");
    assert_int_equal(trellis_sqlite_step_done(ins), TRELLIS_OK);
    sqlite3_finalize(ins);

    /* A failure that is not a constraint: COMMIT with no transaction open. */
    sqlite3_stmt *commit = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), SQLITE_OK);
    assert_int_equal(trellis_sqlite_step_done(commit), TRELLIS_ERR_STORE);
    sqlite3_finalize(commit);
    sqlite3_close(db);
}

static void test_columns_and_binding(void **state)
{
    (void)state;
    sqlite3 *db = open_db();
    sqlite3_stmt *ins = NULL, *sel = NULL;
    char out[4];
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(k, v) VALUES(?1, ?2)", -1, &ins, NULL),
                     SQLITE_OK);
    trellis_sqlite_bind_text_or_null(ins, 1, "long");
    trellis_sqlite_bind_text_or_null(ins, 2, "abcdef");
    assert_int_equal(trellis_sqlite_step_done(ins), TRELLIS_OK);
    trellis_sqlite_bind_text_or_null(trellis_sqlite_fresh(ins), 1, "null");
    trellis_sqlite_bind_text_or_null(ins, 2, NULL);
    assert_int_equal(trellis_sqlite_step_done(ins), TRELLIS_OK);
    sqlite3_finalize(ins);

    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT v, typeof(v) FROM t WHERE k = ?1", -1, &sel, NULL),
        SQLITE_OK);
    trellis_sqlite_bind_text_or_null(sel, 1, "long");
    assert_int_equal(sqlite3_step(sel), SQLITE_ROW);
    trellis_sqlite_column_copy(out, sizeof(out), sel, 0); /* cut to fit, still terminated */
    assert_string_equal(out, "abc");
    trellis_sqlite_bind_text_or_null(trellis_sqlite_fresh(sel), 1, "null");
    assert_int_equal(sqlite3_step(sel), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(sel, 1), "null");
    memset(out, 'x', sizeof(out));
    trellis_sqlite_column_copy(out, sizeof(out), sel, 0);
    assert_string_equal(out, "");
    sqlite3_finalize(sel);

    assert_int_equal(trellis_sqlite_exec(db, "NOT SQL"), TRELLIS_ERR_STORE);
    sqlite3_close(db);
}

static int pragma_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A store's database: absent without create, WAL, synchronous as asked, the caller's pragmas;
 * and its statements prepared at once, a bad one refused. */
static void test_open_store_and_prepare(void **state)
{
    (void)state;
    char dir[256], path[300];
    sqlite3 *db = NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/trellis-sqlite-test.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/store.db", dir);

    assert_int_equal(trellis_sqlite_open_store(path, 0, 1, 100, NULL, &db), TRELLIS_ERR_NOT_FOUND);
    sqlite3_close(db);
    db = NULL;
    for (int durable = 1; durable >= 0; durable--) {
        assert_int_equal(
            trellis_sqlite_open_store(path, 1, durable, 100, "PRAGMA cache_size=-1234;", &db),
            TRELLIS_OK);
        assert_int_equal(pragma_int(db, "PRAGMA synchronous"), durable ? 2 : 1);
        assert_int_equal(pragma_int(db, "PRAGMA foreign_keys"), 1);
        assert_int_equal(pragma_int(db, "PRAGMA cache_size"), -1234);
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close(db);
        db = NULL;
    }
    assert_int_equal(trellis_sqlite_open_store(path, 0, 0, 100, "NOT SQL", &db), TRELLIS_ERR_STORE);
    sqlite3_close(db);
    db = NULL;

    assert_int_equal(trellis_sqlite_open_store(path, 0, 0, 100, NULL, &db), TRELLIS_OK);
    static const char *const good[] = {"SELECT 1", "BEGIN IMMEDIATE", "COMMIT"};
    static const char *const bad[] = {"SELECT 1", "SELECT * FROM nowhere", "COMMIT"};
    sqlite3_stmt *st[3] = {NULL, NULL, NULL};
    assert_int_equal(trellis_sqlite_prepare_all(db, good, 3, st), TRELLIS_OK);
    assert_int_equal(trellis_sqlite_step_done(st[1]), TRELLIS_OK);
    assert_int_equal(trellis_sqlite_step_done(st[2]), TRELLIS_OK);
    for (int i = 0; i < 3; i++) {
        sqlite3_finalize(st[i]);
        st[i] = NULL;
    }
    assert_int_equal(trellis_sqlite_prepare_all(db, bad, 3, st), TRELLIS_ERR_STORE);
    assert_non_null(st[0]);
    assert_null(st[1]);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(st[i]);
    sqlite3_close(db);

    char side[320];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_done),
        cmocka_unit_test(test_columns_and_binding),
        cmocka_unit_test(test_open_store_and_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
