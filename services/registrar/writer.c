/*
 * The registry writer: one thread, one store connection, group commit.
 *
 * Workers hand it operations (record an enrollment, consume a challenge, append an audit entry)
 * and go back to their event loops; the writer takes whatever has queued up (at most
 * batch_max; when the previous batch had company, after lingering up to linger_us for more),
 * applies it in ONE transaction (trellis_rstore_t.apply: one savepoint per
 * operation, one fsync for all), and reports each result through its done callback. Under load
 * the batches grow by themselves, which is what lets fsynced commits (about 2,600/s here) carry
 * many more enrollments per second; at low load a batch is one operation and nothing waits.
 *
 * Between batches, and at least every tick_ms, the writer runs the service's tick (purging
 * consumed challenges, keeping the CRL fresh) on the same connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registrar_internal.h"

typedef struct {
    trellis_rstore_op_t *op;
    tr__reg_writer_done_fn done;
    void *arg;
} entry_t;

struct tr__reg_writer {
    trellis_rstore_t *store;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    entry_t *ring;
    size_t cap, head, count;
    size_t batch_max;
    int stopping;
    unsigned tick_ms;
    unsigned linger_us;
    size_t last_batch;
    tr__reg_writer_hooks_t hooks;
    /* The batch being applied, owned by the writer thread. */
    entry_t *batch;
    trellis_rstore_op_t *ops;
    tr__reg_writer_stats_t stats;
};

trellis_err_t tr__reg_writer_new(trellis_rstore_t *store, size_t capacity, size_t batch_max,
                                 unsigned linger_us, unsigned tick_ms,
                                 const tr__reg_writer_hooks_t *hooks, tr__reg_writer_t **out)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    tr__reg_writer_t *w = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (store == NULL || capacity == 0 || batch_max == 0 || batch_max > TRELLIS_RSTORE_BATCH_MAX ||
        tick_ms == 0)
        return TRELLIS_ERR_INVALID_ARG;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return err;
    w->ring = calloc(capacity, sizeof(*w->ring));
    w->batch = calloc(batch_max, sizeof(*w->batch));
    w->ops = calloc(batch_max, sizeof(*w->ops));
    if (w->ring == NULL || w->batch == NULL || w->ops == NULL)
        goto fail;
    if (pthread_mutex_init(&w->lock, NULL) != 0)
        goto fail;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&w->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    w->store = store;
    w->cap = capacity;
    w->batch_max = batch_max;
    w->tick_ms = tick_ms;
    if (hooks != NULL)
        w->hooks = *hooks;
    w->linger_us = linger_us;
    *out = w;
    return TRELLIS_OK;
fail:
    free(w->ops);
    free(w->batch);
    free(w->ring);
    free(w);
    return err;
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void deadline_after_us(struct timespec *ts, unsigned us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)us * 1000L;
    while (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Applies one batch; called without the lock. */
static void run_batch(tr__reg_writer_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        w->ops[i] = *w->batch[i].op;
    trellis_err_t err = w->store->apply(w->store->ctx, w->ops, n);
    if (w->hooks.after_batch != NULL)
        w->hooks.after_batch(w->hooks.arg, w->ops, n);
    pthread_mutex_lock(&w->lock);
    w->stats.batches++;
    w->stats.ops += n;
    if (err != TRELLIS_OK)
        w->stats.failed_batches++;
    if (n > w->stats.largest_batch)
        w->stats.largest_batch = n;
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        trellis_rstore_op_t *op = w->batch[i].op;
        op->err = w->ops[i].err;
        op->replaced = w->ops[i].replaced;
        op->revoked_certs = w->ops[i].revoked_certs;
        if (w->batch[i].done != NULL)
            w->batch[i].done(w->batch[i].arg, op);
    }
}

static void *writer_main(void *arg)
{
    tr__reg_writer_t *w = arg;
    struct timespec next_tick;
    deadline_after(&next_tick, w->tick_ms);
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->count == 0 && !w->stopping && !passed(&next_tick))
            pthread_cond_timedwait(&w->wake, &w->lock, &next_tick);
        if (passed(&next_tick)) {
            pthread_mutex_unlock(&w->lock);
            if (w->hooks.tick != NULL)
                w->hooks.tick(w->hooks.arg, w->store);
            deadline_after(&next_tick, w->tick_ms);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        if (w->count == 0 && w->stopping)
            break;
        /* Lingering: when the last batch had company, wait a little for more, so that one
         * fsync carries more operations; alone, an operation goes at once. */
        if (w->linger_us > 0 && w->last_batch > 1 && w->count < w->batch_max && !w->stopping) {
            struct timespec until;
            deadline_after_us(&until, w->linger_us);
            while (w->count < w->batch_max && !w->stopping && !passed(&until))
                pthread_cond_timedwait(&w->wake, &w->lock, &until);
        }
        size_t n = w->count < w->batch_max ? w->count : w->batch_max;
        w->last_batch = n;
        for (size_t i = 0; i < n; i++) {
            w->batch[i] = w->ring[w->head];
            w->head = (w->head + 1) % w->cap;
        }
        w->count -= n;
        pthread_mutex_unlock(&w->lock);
        run_batch(w, n);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

trellis_err_t tr__reg_writer_start(tr__reg_writer_t *w)
{
    if (w == NULL || w->started)
        return TRELLIS_ERR_INVALID_ARG;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return TRELLIS_ERR_NOMEM;
    w->started = 1;
    return TRELLIS_OK;
}

trellis_err_t tr__reg_writer_push(tr__reg_writer_t *w, trellis_rstore_op_t *op,
                                  tr__reg_writer_done_fn done, void *arg)
{
    if (w == NULL || op == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    pthread_mutex_lock(&w->lock);
    if (w->stopping || !w->started || w->count == w->cap) {
        w->stats.refused++;
        pthread_mutex_unlock(&w->lock);
        return TRELLIS_ERR_UNAVAILABLE;
    }
    w->ring[(w->head + w->count) % w->cap] = (entry_t){.op = op, .done = done, .arg = arg};
    w->count++;
    /* The writer waits for the first operation of a batch, or lingers for a full one: any other
     * push would only wake it to go back to sleep (a context switch per enrollment). */
    if (w->count == 1 || w->count == w->batch_max)
        pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    return TRELLIS_OK;
}

void tr__reg_writer_stats(tr__reg_writer_t *w, tr__reg_writer_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    out->depth = w->count;
    pthread_mutex_unlock(&w->lock);
}

void tr__reg_writer_free(tr__reg_writer_t *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        /* The thread drains the queue before it ends: every op pushed gets its done call. */
        pthread_mutex_lock(&w->lock);
        w->stopping = 1;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->thread, NULL);
    }
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->ops);
    free(w->batch);
    free(w->ring);
    free(w);
}
