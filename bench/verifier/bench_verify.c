/*
 * Load generator for POST /v1/verify: N connections over HTTPS with keep-alive, each on its own
 * thread, sending pre-built request bodies (one JSON body per line of --bodies) as fast as the
 * verifier answers. Reports verdicts per second, latency percentiles, and OpenSSL's raw P-256
 * verify rate measured in the same run on the same number of threads (EVP_DigestVerify in a
 * loop, before and after the load), and the ratio of the two.
 *
 * usage: bench_verify --dir VDIR --client NAME --port PORT --bodies FILE [--connections N]
 *        [--seconds S] [--threads T]
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "tlsclient.h"
#include "trellis/crypto.h"

#define BODIES_MAX  4096
#define SAMPLES_MAX (1u << 22)

static char *bodies[BODIES_MAX];
static size_t body_len[BODIES_MAX];
static size_t n_bodies;
static SSL_CTX *ctx;
static uint16_t port;
static atomic_int phase; /* 0 warm-up, 1 measuring, 2 stop */
static atomic_uint_fast64_t errors, negatives;

typedef struct {
    pthread_t thread;
    unsigned index;
    uint64_t done;
    uint32_t *lat_us; /* one sample per request */
    size_t n_lat, cap;
} worker_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *load(void *arg)
{
    worker_t *w = arg;
    tc_conn_t c;
    size_t i = w->index;
    if (tc_connect(&c, ctx, "127.0.0.1", port) != 0) {
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    while (atomic_load(&phase) < 2) {
        tc_response_t r;
        double t0 = now_s();
        const char *b = bodies[i % n_bodies];
        size_t bl = body_len[i % n_bodies];
        i++;
        if (tc_request(&c, "POST", "/v1/verify", "application/json", b, bl, &r) != 0) {
            atomic_fetch_add(&errors, 1);
            tc_close(&c);
            if (tc_connect(&c, ctx, "127.0.0.1", port) != 0)
                break;
            continue;
        }
        double dt = now_s() - t0;
        if (r.status != 200)
            atomic_fetch_add(&errors, 1);
        else if (strstr(r.body, "\"status\":\"affirming\"") == NULL)
            atomic_fetch_add(&negatives, 1);
        tc_response_free(&r);
        if (atomic_load(&phase) != 1)
            continue;
        if (w->n_lat < w->cap)
            w->lat_us[w->n_lat++] = (uint32_t)(dt * 1e6);
        w->done++;
    }
    tc_close(&c);
    return NULL;
}

/* ---- OpenSSL's raw verify rate ---- */

typedef struct {
    pthread_t thread;
    EVP_PKEY *key;
    const uint8_t *sig;
    size_t sig_len;
    double seconds;
    uint64_t done;
    double cpu_s; /* CPU time the thread used */
} raw_t;

static const uint8_t MSG[] = "the signing input of a verdict or a token, about this long....";

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *raw_verify(void *arg)
{
    raw_t *r = arg;
    double end = now_s() + r->seconds;
    double cpu0 = thread_cpu_s();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    while (now_s() < end) {
        for (int k = 0; k < 64; k++) {
            if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, r->key) != 1 ||
                EVP_DigestVerify(md, r->sig, r->sig_len, MSG, sizeof(MSG)) != 1)
                abort();
            r->done++;
        }
    }
    r->cpu_s = thread_cpu_s() - cpu0;
    EVP_MD_CTX_free(md);
    return NULL;
}

static double raw_cpu_s, raw_ops;

static double raw_rate(unsigned threads, double seconds)
{
    EVP_PKEY *key = NULL;
    uint8_t sig[128];
    size_t sig_len = sizeof(sig);
    raw_t r[64];
    if (trellis_p256_generate(&key) != TRELLIS_OK)
        abort();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, MSG, sizeof(MSG)) != 1)
        abort();
    EVP_MD_CTX_free(md);
    double t0 = now_s();
    for (unsigned i = 0; i < threads; i++) {
        r[i] = (raw_t){.key = key, .sig = sig, .sig_len = sig_len, .seconds = seconds};
        pthread_create(&r[i].thread, NULL, raw_verify, &r[i]);
    }
    uint64_t total = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(r[i].thread, NULL);
        total += r[i].done;
        raw_cpu_s += r[i].cpu_s;
    }
    raw_ops += (double)total;
    double elapsed = now_s() - t0;
    EVP_PKEY_free(key);
    return (double)total / elapsed;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void read_bodies(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (f == NULL) {
        fprintf(stderr, "bench_verify: cannot open %s\n", path);
        exit(2);
    }
    while (n_bodies < BODIES_MAX && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        bodies[n_bodies] = strdup(line);
        body_len[n_bodies++] = (size_t)n;
    }
    free(line);
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *client = "acme", *bodies_path = NULL;
    unsigned conns = 16, threads = 2;
    double seconds = 10;
    char ca[1024], cert[1024], key[1024];

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
        else if (strcmp(argv[i], "--client") == 0)
            client = argv[i + 1];
        else if (strcmp(argv[i], "--port") == 0)
            port = (uint16_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--bodies") == 0)
            bodies_path = argv[i + 1];
        else if (strcmp(argv[i], "--connections") == 0)
            conns = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtod(argv[i + 1], NULL);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (unsigned)strtoul(argv[i + 1], NULL, 10);
    }
    if (dir == NULL || bodies_path == NULL || port == 0 || conns == 0 || conns > 1024 ||
        threads == 0 || threads > 64 || seconds <= 0) {
        fprintf(stderr, "usage: bench_verify --dir VDIR --client NAME --port PORT --bodies FILE "
                        "[--connections N] [--seconds S] [--threads T]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/clients/%s/client.pem", dir, client);
    snprintf(key, sizeof(key), "%s/clients/%s/client.key", dir, client);
    ctx = tc_ctx_new(ca, cert, key);
    if (ctx == NULL) {
        fprintf(stderr, "bench_verify: cannot load the client bundle of %s\n", client);
        return 1;
    }
    read_bodies(bodies_path);
    if (n_bodies == 0) {
        fprintf(stderr, "bench_verify: no request bodies\n");
        return 1;
    }

    double raw_before = raw_rate(threads, 3);

    worker_t *w = calloc(conns, sizeof(*w));
    size_t per = SAMPLES_MAX / conns;
    for (unsigned i = 0; i < conns; i++) {
        w[i].index = i;
        w[i].cap = per;
        w[i].lat_us = malloc(per * sizeof(uint32_t));
        pthread_create(&w[i].thread, NULL, load, &w[i]);
    }
    /* A second of warm-up (handshakes, caches) is not counted. */
    struct timespec warm = {.tv_sec = 1, .tv_nsec = 0};
    nanosleep(&warm, NULL);
    atomic_store(&phase, 1);
    double t0 = now_s();
    struct timespec run = {.tv_sec = (time_t)seconds,
                           .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&run, NULL);
    atomic_store(&phase, 2);
    double elapsed = now_s() - t0;
    size_t n_lat = 0;
    uint64_t total = 0;
    for (unsigned i = 0; i < conns; i++) {
        pthread_join(w[i].thread, NULL);
        n_lat += w[i].n_lat;
        total += w[i].done;
    }
    uint32_t *all = malloc((n_lat + 1) * sizeof(uint32_t));
    size_t k = 0;
    for (unsigned i = 0; i < conns; i++) {
        memcpy(all + k, w[i].lat_us, w[i].n_lat * sizeof(uint32_t));
        k += w[i].n_lat;
        free(w[i].lat_us);
    }
    qsort(all, n_lat, sizeof(uint32_t), cmp_u32);

    double raw_after = raw_rate(threads, 3);
    double raw = (raw_before + raw_after) / 2;
    double rate = (double)total / elapsed;
#define PCT(p) (n_lat > 0 ? all[(size_t)((double)(n_lat - 1) * (p))] / 1000.0 : 0.0)
    printf("verify: %u connections, %.0f s: %.0f verdicts/s; p50 %.2f ms, p99 %.2f ms, "
           "p99.9 %.2f ms, max %.2f ms; errors %llu, non-affirming %llu\n",
           conns, elapsed, rate, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0),
           (unsigned long long)atomic_load(&errors), (unsigned long long)atomic_load(&negatives));
    printf("raw: OpenSSL P-256 verify on %u threads: %.0f/s (before %.0f, after %.0f)\n", threads,
           raw, raw_before, raw_after);
    printf("ratio: verdicts/s / raw verifies/s = %.2f\n", rate / raw);
    printf("raw-cpu: %.1f us of CPU per raw verify\n", raw_cpu_s * 1e6 / raw_ops);
    free(all);
    free(w);
    for (size_t i = 0; i < n_bodies; i++)
        free(bodies[i]);
    SSL_CTX_free(ctx);
    return atomic_load(&errors) > 0 ? 1 : 0;
}
