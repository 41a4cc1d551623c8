/*
 * The registry writer: operations pushed from many threads are each reported once with their
 * own result, batches form under load (group commit), a full queue refuses at once, stopping
 * drains what was queued, and the tick runs on the writer's connection.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rtest_util.h"
#include "test_support.h"

typedef struct {
    char dir[RT_PATH];
    trellis_rstore_t *s;
    atomic_int done, ok, replayed, ticks, after_batches;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char path[RT_PATH];
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "writer");
    rt_path(path, sizeof(path), f->dir, "registry.db");
    trellis_rstore_sqlite_opts_t o = {.durable = 1, .busy_timeout_ms = 2000, .create = 1};
    assert_int_equal(trellis_rstore_open_sqlite(path, &o, &f->s), TRELLIS_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_rstore_close(f->s);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

static void on_done(void *arg, trellis_rstore_op_t *op)
{
    fixture_t *f = arg;
    if (op->err == TRELLIS_OK)
        atomic_fetch_add(&f->ok, 1);
    else if (op->err == TRELLIS_ERR_REPLAYED)
        atomic_fetch_add(&f->replayed, 1);
    atomic_fetch_add(&f->done, 1);
}

static void on_tick(void *arg, trellis_rstore_t *store)
{
    fixture_t *f = arg;
    trellis_rstore_counts_t c;
    /* The tick may use the store: it runs on the writer's thread. */
    assert_int_equal(store->counts(store->ctx, &c), TRELLIS_OK);
    atomic_fetch_add(&f->ticks, 1);
}

static void on_batch(void *arg, const trellis_rstore_op_t *ops, size_t n)
{
    fixture_t *f = arg;
    (void)ops;
    assert_true(n >= 1);
    atomic_fetch_add(&f->after_batches, 1);
}

typedef struct {
    fixture_t *f;
    tr__reg_writer_t *w;
    int thread;
    trellis_rstore_op_t ops[100];
} pusher_t;

/* A CONSUME of the challenge id made of key, unexpired for a minute. */
static void consume_op(trellis_rstore_op_t *op, int key)
{
    memset(op, 0, sizeof(*op));
    op->type = TRELLIS_RSTORE_OP_CONSUME;
    memcpy(op->challenge_id, &key, sizeof(key));
    op->challenge_expires = (int64_t)time(NULL) + 60;
}

static void *push_many(void *arg)
{
    pusher_t *p = arg;
    for (int i = 0; i < 100; i++) {
        trellis_rstore_op_t *op = &p->ops[i];
        /* Every second challenge repeats one of another thread: exactly one of each pair wins. */
        consume_op(op, i % 2 == 0 ? p->thread * 1000 + i : i);
        while (tr__reg_writer_push(p->w, op, on_done, p->f) != TRELLIS_OK)
            usleep(100);
    }
    return NULL;
}

static void test_many_threads(void **state)
{
    fixture_t *f = *state;
    tr__reg_writer_t *w = NULL;
    tr__reg_writer_hooks_t hooks = {.arg = f, .after_batch = on_batch, .tick = on_tick};
    assert_int_equal(tr__reg_writer_new(f->s, 4096, 256, 200, 50, &hooks, &w), TRELLIS_OK);
    assert_int_equal(tr__reg_writer_start(w), TRELLIS_OK);
    enum { THREADS = 8 };
    pthread_t t[THREADS];
    pusher_t *p = calloc(THREADS, sizeof(*p));
    assert_non_null(p);
    for (int i = 0; i < THREADS; i++) {
        p[i].f = f;
        p[i].w = w;
        p[i].thread = i + 1;
        assert_int_equal(pthread_create(&t[i], NULL, push_many, &p[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 500 && atomic_load(&f->done) < THREADS * 100; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->done), THREADS * 100);
    /* 400 unique challenges, 50 shared ones consumed once each. */
    assert_int_equal(atomic_load(&f->ok), THREADS * 50 + 50);
    assert_int_equal(atomic_load(&f->replayed), THREADS * 50 - 50);
    usleep(120000);
    assert_true(atomic_load(&f->ticks) >= 1);
    tr__reg_writer_stats_t st;
    tr__reg_writer_stats(w, &st);
    assert_int_equal(st.ops, THREADS * 100);
    assert_int_equal(st.failed_batches, 0);
    assert_int_equal(st.depth, 0);
    /* Group commit: eight threads pushing at once share transactions. */
    assert_true(st.batches < st.ops);
    assert_true(st.largest_batch > 1);
    assert_int_equal((uint64_t)atomic_load(&f->after_batches), st.batches);
    tr__reg_writer_free(w);
    trellis_rstore_counts_t c;
    assert_int_equal(f->s->counts(f->s->ctx, &c), TRELLIS_OK);
    assert_int_equal(c.challenges, THREADS * 50 + 50);
    free(p);
}

static void test_full_queue_and_drain(void **state)
{
    fixture_t *f = *state;
    tr__reg_writer_t *w = NULL;
    trellis_rstore_op_t ops[20];
    assert_int_equal(tr__reg_writer_new(f->s, 8, 4, 0, 1000, NULL, &w), TRELLIS_OK);
    /* Not started: refused. */
    memset(&ops[0], 0, sizeof(ops[0]));
    assert_int_equal(tr__reg_writer_push(w, &ops[0], on_done, f), TRELLIS_ERR_UNAVAILABLE);
    /* Started, then flooded faster than it commits: some are refused, none is lost. */
    assert_int_equal(tr__reg_writer_start(w), TRELLIS_OK);
    assert_int_equal(tr__reg_writer_start(w), TRELLIS_ERR_INVALID_ARG);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 20; i++) {
        consume_op(&ops[i], i + 1);
        if (tr__reg_writer_push(w, &ops[i], on_done, f) == TRELLIS_OK)
            accepted++;
        else
            refused++;
    }
    assert_int_equal(accepted + refused, 20);
    assert_true(accepted >= 8);
    /* Free drains: every accepted op is reported before it returns. */
    tr__reg_writer_free(w);
    assert_int_equal(atomic_load(&f->done), accepted);
    assert_int_equal(atomic_load(&f->ok), accepted);
    tr__reg_writer_stats_t st;
    tr__reg_writer_stats(NULL, &st);
    assert_int_equal(st.ops, 0);
}

/* The first batch is held in after_batch until the test has queued two more operations, so the
 * next batch has company and the writer lingers; then a full batch (batch_max) must go at once
 * instead of waiting out the linger (a minute here, far beyond the test's patience). Pushes in
 * between do not wake the writer; the one that fills the batch does. */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static int hold_first = 1, held;

static void hold_batch(void *arg, const trellis_rstore_op_t *ops, size_t n)
{
    (void)arg;
    (void)ops;
    (void)n;
    pthread_mutex_lock(&hold_lock);
    held = 1;
    pthread_cond_broadcast(&hold_cond);
    while (hold_first)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);
}

static void push_consume(fixture_t *f, tr__reg_writer_t *w, trellis_rstore_op_t *op, int key)
{
    consume_op(op, key);
    assert_int_equal(tr__reg_writer_push(w, op, on_done, f), TRELLIS_OK);
}

static void wait_done(fixture_t *f, int n)
{
    for (int i = 0; i < 1000 && atomic_load(&f->done) < n; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&f->done), n);
}

static void test_full_batch_does_not_linger(void **state)
{
    fixture_t *f = *state;
    tr__reg_writer_t *w = NULL;
    trellis_rstore_op_t ops[7];
    tr__reg_writer_hooks_t hooks = {.arg = f, .after_batch = hold_batch};
    enum { BATCH = 4 };
    assert_int_equal(tr__reg_writer_new(f->s, 64, BATCH, 60u * 1000u * 1000u, 60000, &hooks, &w),
                     TRELLIS_OK);
    assert_int_equal(tr__reg_writer_start(w), TRELLIS_OK);
    push_consume(f, w, &ops[0], 1);
    pthread_mutex_lock(&hold_lock);
    while (!held)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);
    /* The writer sits in the first batch's hook: these two form the next batch together. */
    push_consume(f, w, &ops[1], 2);
    push_consume(f, w, &ops[2], 3);
    pthread_mutex_lock(&hold_lock);
    hold_first = 0;
    pthread_cond_broadcast(&hold_cond);
    pthread_mutex_unlock(&hold_lock);
    wait_done(f, 3);
    /* Its last batch had company: the next operation wakes it and it lingers for more (given
     * time to get there: were it slower, the test would only pass without proving anything);
     * the push that fills the batch ends the lingering. */
    push_consume(f, w, &ops[3], 4);
    usleep(100000);
    for (int i = 1; i < BATCH; i++)
        push_consume(f, w, &ops[3 + i], 4 + i);
    wait_done(f, 3 + BATCH);
    assert_int_equal(atomic_load(&f->ok), 3 + BATCH);
    tr__reg_writer_stats_t st;
    tr__reg_writer_stats(w, &st);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.largest_batch, BATCH);
    tr__reg_writer_free(w);
}

static void test_arguments(void **state)
{
    fixture_t *f = *state;
    tr__reg_writer_t *w = NULL;
    assert_int_equal(tr__reg_writer_new(NULL, 8, 4, 0, 10, NULL, &w), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_writer_new(f->s, 0, 4, 0, 10, NULL, &w), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_writer_new(f->s, 8, TRELLIS_RSTORE_BATCH_MAX + 1, 0, 10, NULL, &w),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__reg_writer_new(f->s, 8, 4, 0, 0, NULL, &w), TRELLIS_ERR_INVALID_ARG);
    assert_null(w);
    assert_int_equal(tr__reg_writer_push(NULL, NULL, NULL, NULL), TRELLIS_ERR_INVALID_ARG);
    tr__reg_writer_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_and_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_batch_does_not_linger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
