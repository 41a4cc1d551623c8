/*
 * Per-client rate limit: a token bucket per client address (rate tokens a second, at most burst
 * of them), in a fixed table so memory never grows with the number of clients.
 *
 * The table is split into shards, each with its own lock, so worker threads seldom contend.
 * A client's bucket lives in one of PROBE slots after its hash; when all of them belong to
 * other clients, the one idle longest is taken over (its client then starts with a full
 * bucket, which errs on the side of letting traffic through). Hashes are keyed with a random
 * seed, so a client cannot aim many addresses at one slot. Two clients whose 64-bit hashes
 * collide share a bucket.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"

#define SHARDS 16
#define PROBE  8

typedef struct {
    uint64_t key; /* 0: free */
    double tokens;
    uint64_t last_us;
} bucket_t;

typedef struct {
    pthread_mutex_t lock;
    bucket_t *slots;
} shard_t;

struct tr__reg_ratelimit {
    double rate, burst;
    size_t per_shard;
    uint64_t seed;
    shard_t shards[SHARDS];
};

/* FNV-1a over the seed and the text, then a final mix (splitmix64) to spread the bits. */
static uint64_t hash(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h != 0 ? h : 1;
}

trellis_err_t tr__reg_ratelimit_new(double rate, double burst, size_t slots,
                                    tr__reg_ratelimit_t **out)
{
    tr__reg_ratelimit_t *rl = NULL;
    size_t i = 0;
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (rate <= 0 || burst < 1 || slots < SHARDS * PROBE)
        return TRELLIS_ERR_INVALID_ARG;
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return TRELLIS_ERR_NOMEM;
    rl->rate = rate;
    rl->burst = burst;
    rl->per_shard = slots / SHARDS;
    if (trellis_random((uint8_t *)&rl->seed, sizeof(rl->seed)) != TRELLIS_OK)
        goto fail;
    for (i = 0; i < SHARDS; i++) {
        rl->shards[i].slots = calloc(rl->per_shard, sizeof(bucket_t));
        if (rl->shards[i].slots == NULL || pthread_mutex_init(&rl->shards[i].lock, NULL) != 0) {
            free(rl->shards[i].slots);
            goto fail;
        }
    }
    *out = rl;
    return TRELLIS_OK;
fail:
    while (i-- > 0) {
        pthread_mutex_destroy(&rl->shards[i].lock);
        free(rl->shards[i].slots);
    }
    free(rl);
    return TRELLIS_ERR_NOMEM;
}

/* The address without its port: "192.0.2.1:4242" -> "192.0.2.1", "[::1]:4242" -> "[::1]". */
static size_t host_len(const char *peer)
{
    size_t n = strlen(peer);
    const char *colon = strrchr(peer, ':');
    if (colon == NULL)
        return n;
    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');
        return close != NULL ? (size_t)(close - peer) + 1 : n;
    }
    /* An IPv4 address has one colon before the port; a bare IPv6 address has several. */
    return strchr(peer, ':') == colon ? (size_t)(colon - peer) : n;
}

unsigned tr__reg_ratelimit_take(tr__reg_ratelimit_t *rl, const char *client, uint64_t now_us)
{
    if (rl == NULL || client == NULL)
        return 0;
    uint64_t key = hash(rl->seed, client, host_len(client));
    shard_t *sh = &rl->shards[key % SHARDS];
    size_t start = (size_t)((key / SHARDS) % rl->per_shard);
    unsigned wait_s = 0;

    pthread_mutex_lock(&sh->lock);
    bucket_t *b = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        bucket_t *s = &sh->slots[(start + i) % rl->per_shard];
        if (s->key == key) {
            b = s;
            break;
        }
        if (oldest == NULL || s->key == 0 || (oldest->key != 0 && s->last_us < oldest->last_us))
            oldest = s;
    }
    if (b == NULL) {
        b = oldest;
        b->key = key;
        b->tokens = rl->burst;
        b->last_us = now_us;
    }
    if (now_us > b->last_us) {
        b->tokens += (double)(now_us - b->last_us) * rl->rate / 1e6;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_us = now_us;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        /* Whole seconds until one token is back, rounded up (Retry-After, RFC 9110 §10.2.3). */
        double need = (1.0 - b->tokens) / rl->rate;
        wait_s = (unsigned)need;
        if ((double)wait_s < need)
            wait_s++;
        if (wait_s == 0)
            wait_s = 1;
    }
    pthread_mutex_unlock(&sh->lock);
    return wait_s;
}

void tr__reg_ratelimit_free(tr__reg_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_destroy(&rl->shards[i].lock);
        free(rl->shards[i].slots);
    }
    free(rl);
}
