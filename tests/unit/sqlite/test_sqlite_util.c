/*
 * The SQLite helpers the stores share, on an in-memory database: a statement run to its end,
 * refused by a constraint or failing; bounded text columns; NULL-aware binding; plain SQL.
 */
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_done),
        cmocka_unit_test(test_columns_and_binding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
