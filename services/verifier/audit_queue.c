/*
 * Group commit for the audit log. Every verdict appends an audit entry, and the answer waits for
 * it to be committed (persist before replying). One writer thread owns a store connection and
 * commits whatever has queued up in one transaction, so the cost of a commit (an fsync with
 * durable = true) is shared by every verdict waiting at that moment, and the event-loop threads
 * never contend for SQLite's write lock or sleep in its busy handler.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trellis/log.h"
#include "verifier_internal.h"

#define BATCH_MAX 1000

struct tr__audit_queue {
    trellis_vstore_t *store;
    size_t capacity;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t idle;
    tr__audit_item_t *head, *tail;
    size_t depth;
    int stop;
    int running;
    int busy; /* the writer is committing a batch */
    pthread_t thread;
    unsigned linger_us;
    size_t last_batch;
    tr__audit_batch_fn on_batch;
    void *batch_arg;
    uint64_t committed, failed;
    trellis_vstore_audit_t *batch; /* BATCH_MAX entries, the writer's */
};

trellis_err_t tr__audit_queue_new(trellis_vstore_t *store, size_t capacity, unsigned linger_us,
                                  tr__audit_batch_fn on_batch, void *batch_arg,
                                  tr__audit_queue_t **out)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    tr__audit_queue_t *q = NULL;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (store == NULL || capacity == 0)
        return TRELLIS_ERR_INVALID_ARG;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        goto out;
    q->batch = calloc(BATCH_MAX, sizeof(*q->batch));
    if (q->batch == NULL)
        goto out;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    pthread_cond_init(&q->idle, NULL);
    q->store = store;
    q->capacity = capacity;
    q->linger_us = linger_us;
    q->on_batch = on_batch;
    q->batch_arg = batch_arg;
    *out = q;
    q = NULL;
    err = TRELLIS_OK;
out:
    if (q != NULL) {
        free(q->batch);
        free(q);
    }
    return err;
}

static void *writer(void *arg)
{
    tr__audit_queue_t *q = arg;
    tr__audit_item_t *items[BATCH_MAX];

    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->stop)
            pthread_cond_wait(&q->wake, &q->lock);
        if (q->head == NULL && q->stop)
            break;
        /* Busy (the last commit had company): let more verdicts join this one's fsync. Pushes
         * meanwhile do not wake the writer (only a push into an empty queue signals). */
        if (q->linger_us > 0 && q->last_batch > 1 && !q->stop) {
            pthread_mutex_unlock(&q->lock);
            struct timespec ts = {0, (long)q->linger_us * 1000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&q->lock);
        }
        size_t n = 0;
        while (q->head != NULL && n < BATCH_MAX) {
            items[n] = q->head;
            q->head = q->head->next;
            n++;
        }
        if (q->head == NULL)
            q->tail = NULL;
        q->depth -= n;
        q->last_batch = n;
        q->busy = 1;
        pthread_mutex_unlock(&q->lock);

        for (size_t i = 0; i < n; i++)
            q->batch[i] = items[i]->entry;
        trellis_err_t err = q->store->audit_append(q->store->ctx, q->batch, n);
        if (err != TRELLIS_OK)
            trellis_log(TRELLIS_LOG_ERROR, "audit.commit_failed",
                        TRELLIS_KV_STR("error", trellis_err_name(err)),
                        TRELLIS_KV_INT("entries", (long long)n));
        for (size_t i = 0; i < n; i++) {
            /* done may free a caller-owned item: nothing of it is read afterwards. */
            int owned = items[i]->queue_owned;
            if (items[i]->done != NULL)
                items[i]->done(items[i]->arg, err);
            if (owned)
                free(items[i]);
        }
        if (q->on_batch != NULL)
            q->on_batch(q->batch_arg);

        pthread_mutex_lock(&q->lock);
        if (err == TRELLIS_OK)
            q->committed += n;
        else
            q->failed += n;
        q->busy = 0;
        if (q->head == NULL)
            pthread_cond_broadcast(&q->idle);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

trellis_err_t tr__audit_queue_start(tr__audit_queue_t *q)
{
    if (q == NULL || q->running)
        return TRELLIS_ERR_INVALID_ARG;
    q->stop = 0;
    if (pthread_create(&q->thread, NULL, writer, q) != 0)
        return TRELLIS_ERR_NOMEM;
    q->running = 1;
    return TRELLIS_OK;
}

/* Fail closed when the writer cannot keep up (or is stopping): a verdict whose audit entry
 * cannot be written is not given out. */
static trellis_err_t enqueue(tr__audit_queue_t *q, tr__audit_item_t *it)
{
    trellis_err_t err = TRELLIS_ERR_UNAVAILABLE;
    it->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->running && !q->stop && q->depth < q->capacity) {
        if (q->tail != NULL)
            q->tail->next = it;
        else
            q->head = it;
        q->tail = it;
        q->depth++;
        err = TRELLIS_OK;
        /* The writer sleeps only on an empty queue, so only the first entry needs to wake it. */
        if (q->depth == 1)
            pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->lock);
    return err;
}

trellis_err_t tr__audit_queue_push(tr__audit_queue_t *q, const trellis_vstore_audit_t *entry,
                                   tr__audit_done_fn done, void *arg)
{
    if (q == NULL || entry == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    tr__audit_item_t *it = malloc(sizeof(*it));
    if (it == NULL)
        return TRELLIS_ERR_NOMEM;
    it->entry = *entry;
    it->done = done;
    it->arg = arg;
    it->queue_owned = 1;
    trellis_err_t err = enqueue(q, it);
    if (err != TRELLIS_OK)
        free(it);
    return err;
}

trellis_err_t tr__audit_queue_push_item(tr__audit_queue_t *q, tr__audit_item_t *item)
{
    if (q == NULL || item == NULL || item->done == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    item->queue_owned = 0;
    return enqueue(q, item);
}

void tr__audit_queue_flush(tr__audit_queue_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->lock);
    while (q->running && (q->head != NULL || q->busy))
        pthread_cond_wait(&q->idle, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

void tr__audit_queue_stats(tr__audit_queue_t *q, size_t *depth, uint64_t *committed,
                           uint64_t *failed)
{
    pthread_mutex_lock(&q->lock);
    *depth = q->depth;
    *committed = q->committed;
    *failed = q->failed;
    pthread_mutex_unlock(&q->lock);
}

void tr__audit_queue_free(tr__audit_queue_t *q)
{
    if (q == NULL)
        return;
    if (q->running) {
        /* The writer commits everything still queued before it ends. */
        pthread_mutex_lock(&q->lock);
        q->stop = 1;
        pthread_cond_signal(&q->wake);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        q->running = 0;
    }
    pthread_cond_destroy(&q->idle);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    free(q->batch);
    free(q);
}
