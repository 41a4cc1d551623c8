/*
 * The challenges of enrollments in flight in this process, so that of many identical requests
 * arriving together exactly one goes on to the verifier (the others are told "replayed" at
 * once). The registry remains the authority on single use, across restarts and instances: a
 * challenge leaves this set only once its consumption is committed or queued for commit.
 *
 * A fixed open-addressing table of 16-byte keys (the first half of the challenge's SHA-256),
 * behind one mutex: entries live for the length of one enrollment, so the table stays sparse.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "registrar_internal.h"

#define KEY_LEN 16
#define PROBE   32

typedef struct {
    uint8_t key[KEY_LEN];
    int used;
} slot_t;

struct tr__reg_inflight {
    pthread_mutex_t lock;
    size_t capacity;
    slot_t *slots;
};

trellis_err_t tr__reg_inflight_new(size_t capacity, tr__reg_inflight_t **out)
{
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (capacity < PROBE)
        return TRELLIS_ERR_INVALID_ARG;
    tr__reg_inflight_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TRELLIS_ERR_NOMEM;
    s->slots = calloc(capacity, sizeof(slot_t));
    if (s->slots == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->slots);
        free(s);
        return TRELLIS_ERR_NOMEM;
    }
    s->capacity = capacity;
    *out = s;
    return TRELLIS_OK;
}

static size_t start_of(const tr__reg_inflight_t *s, const uint8_t *id)
{
    /* The id is a SHA-256 output: its bytes are already uniformly spread. */
    uint64_t h = 0;
    memcpy(&h, id, sizeof(h));
    return (size_t)(h % s->capacity);
}

trellis_err_t tr__reg_inflight_claim(tr__reg_inflight_t *s,
                                     const uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID])
{
    trellis_err_t err = TRELLIS_ERR_UNAVAILABLE;
    slot_t *free_slot = NULL;
    size_t start = start_of(s, id);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < PROBE; i++) {
        slot_t *slot = &s->slots[(start + i) % s->capacity];
        if (slot->used && memcmp(slot->key, id, KEY_LEN) == 0) {
            err = TRELLIS_ERR_REPLAYED;
            goto out;
        }
        if (!slot->used && free_slot == NULL)
            free_slot = slot;
    }
    if (free_slot != NULL) {
        memcpy(free_slot->key, id, KEY_LEN);
        free_slot->used = 1;
        err = TRELLIS_OK;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return err;
}

void tr__reg_inflight_release(tr__reg_inflight_t *s,
                              const uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID])
{
    size_t start = start_of(s, id);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < PROBE; i++) {
        slot_t *slot = &s->slots[(start + i) % s->capacity];
        if (slot->used && memcmp(slot->key, id, KEY_LEN) == 0) {
            slot->used = 0;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void tr__reg_inflight_free(tr__reg_inflight_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->slots);
    free(s);
}
