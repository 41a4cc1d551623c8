/*
 * Registrar benchmark (bench/run-registrar, docs/benchmarks.md).
 *
 *   bench_enroll gen --key FACTORY_KEY.pem --factory F --owner O --batch B --devices N
 *                    --out MANIFEST --keys KEYS
 *       writes a signed manifest of N devices whose RoT keys are k0+1, k0+2, ... (k0 random:
 *       one point addition per device instead of a key generation), and KEYS, the hex of k0,
 *       so that the load generator can sign each device's evidence.
 *   bench_enroll run --ca TRUST.pem --port PORT --keys KEYS --first I --devices N
 *                    --concurrency C --seconds T [--retry]
 *       enrolls devices I, I+1, ... from C threads for T seconds (or until all N are done),
 *       each device as a real one
 *       does it: a fresh TCP connection and TLS handshake, GET /v1/challenge, evidence signed
 *       by its RoT over SHA-256(challenge || CSR), POST /v1/enroll on the same connection.
 *       CSRs (one operational key per device) are made before the clock starts. With --retry, a
 *       device answered 429 or 503, or whose connection is closed at once, backs off and tries
 *       again (a mass power-on). Prints JSON: enrollments per second, p50 / p99 latency
 *       (connect to certificate, retries included), retries, failures by status.
 *   bench_enroll ceiling --threads N --seconds T
 *       OpenSSL's P-256 sign and verify rates on N threads, and the enrollment ceiling they
 *       allow: one first-time enrollment costs, on the servers, three verifies (the CSR's
 *       self-signature, the evidence at the verifier, the verdict at the registrar) and two
 *       signs (the verdict, the certificate), so ceiling = 1 / (3 / verifies + 2 / signs).
 *       TLS handshakes are not in it: they are part of what the ratio measures.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "tlsclient.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/csr.h"
#include "trellis/encoding.h"
#include "trellis/psa_token.h"

#define LAT_MAX (4u * 1024u * 1024u)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return 1;
    }
    return 0;
}

/* ---- device keys: scalar k0 + index + 1 ---- */

static BIGNUM *load_base(const char *path)
{
    char hex[256];
    BIGNUM *k = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(hex, sizeof(hex), f) == NULL) {
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    fclose(f);
    hex[strcspn(hex, "\n")] = '\0';
    return BN_hex2bn(&k, hex) > 0 ? k : NULL;
}

/* The RoT key of device index: scalar base + index + 1 and its point. */
static EVP_PKEY *device_key(const BIGNUM *base, unsigned long index, uint8_t point[65])
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = g != NULL ? EC_POINT_new(g) : NULL;
    BIGNUM *k = BN_dup(base);
    BN_CTX *bn = BN_CTX_new();
    if (g == NULL || p == NULL || k == NULL || bn == NULL || !BN_add_word(k, index + 1) ||
        EC_POINT_mul(g, p, k, NULL, NULL, bn) != 1 ||
        EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, point, 65, bn) != 65)
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, k) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
        key = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_CTX_free(bn);
    BN_clear_free(k);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    return key;
}

/* ---- gen ---- */

static int gen(int argc, char **argv)
{
    const char *key_path = arg(argc, argv, "--key"), *factory = arg(argc, argv, "--factory");
    const char *owner = arg(argc, argv, "--owner"), *batch = arg(argc, argv, "--batch");
    const char *n_text = arg(argc, argv, "--devices"), *out = arg(argc, argv, "--out");
    const char *keys = arg(argc, argv, "--keys");
    EVP_PKEY *fkey = NULL;
    if (key_path == NULL || factory == NULL || owner == NULL || batch == NULL || n_text == NULL ||
        out == NULL || keys == NULL ||
        trellis_p256_load_private_pem(key_path, &fkey) != TRELLIS_OK) {
        fprintf(stderr, "usage: bench_enroll gen --key KEY.pem --factory F --owner O --batch B "
                        "--devices N --out FILE --keys FILE\n");
        return 2;
    }
    unsigned long n = strtoul(n_text, NULL, 10);
    FILE *f = fopen(out, "w");
    FILE *kf = fopen(keys, "w");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *k = BN_new();
    char line[512], key_b64[100], id[33];
    uint8_t point[65], digest[32], sig[64];
    size_t len = 0;
    if (f == NULL || kf == NULL || md == NULL || p == NULL || bn == NULL || k == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        BN_rand(k, 200, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
        EC_POINT_mul(g, p, k, NULL, NULL, bn) != 1)
        return 1;
    char *hex = BN_bn2hex(k);
    fprintf(kf, "%s\n", hex);
    OPENSSL_free(hex);
    fclose(kf);
    /* docs/manifest-format.md: header, one record per line, trailer with the SHA-256 of every
     * line before it and the factory's signature over that digest. */
    int m = snprintf(line, sizeof(line),
                     "{\"trellis_manifest\":1,\"factory\":\"%s\",\"owner\":\"%s\",\"batch\":\"%s\","
                     "\"created\":\"2026-11-25T13:00:00Z\",\"count\":%lu}\n",
                     factory, owner, batch, n);
    fwrite(line, 1, (size_t)m, f);
    EVP_DigestUpdate(md, line, (size_t)m);
    for (unsigned long i = 0; i < n; i++) {
        if (EC_POINT_add(g, p, p, EC_GROUP_get0_generator(g), bn) != 1 ||
            EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point), bn) !=
                sizeof(point))
            return 1;
        trellis_sha256(point, sizeof(point), digest);
        trellis_hex_encode(digest, 16, id, sizeof(id), &len);
        trellis_b64url_encode(point, sizeof(point), key_b64, sizeof(key_b64), &len);
        m = snprintf(line, sizeof(line),
                     "{\"device_id\":\"%s\",\"rot_key\":\"%s\",\"model\":\"T-100\","
                     "\"serial\":\"%s-%08lu\"}\n",
                     id, key_b64, batch, i + 1);
        fwrite(line, 1, (size_t)m, f);
        EVP_DigestUpdate(md, line, (size_t)m);
    }
    unsigned int dl = 0;
    char dhex[65], sig_b64[100];
    EVP_DigestFinal_ex(md, digest, &dl);
    if (trellis_p256_sign_digest(fkey, digest, sig) != TRELLIS_OK)
        return 1;
    trellis_hex_encode(digest, 32, dhex, sizeof(dhex), &len);
    trellis_b64url_encode(sig, 64, sig_b64, sizeof(sig_b64), &len);
    fprintf(f, "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n", dhex, sig_b64);
    fclose(f);
    BN_free(k);
    BN_CTX_free(bn);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(fkey);
    return 0;
}

/* ---- run ---- */

typedef struct {
    EVP_PKEY *rot;
    uint8_t point[65];
    uint8_t csr[512];
    size_t csr_len;
} device_t;

static struct {
    SSL_CTX *ctx;
    uint16_t port;
    device_t *devices;
    unsigned long n;
    atomic_ulong next;
    atomic_int stop;    /* time is up */
    atomic_int running; /* threads still enrolling */
    int retry;          /* retry what the registrar says to retry */
    atomic_ulong retries;
    atomic_ulong ok, failed, statuses[600];
    double *lat; /* seconds, one per successful enrollment */
    atomic_ulong n_lat;
} run_state;

static int decode_challenge(const char *body, uint8_t *out, size_t size, size_t *len)
{
    const char *p = strstr(body, "\"challenge\":\"");
    if (p == NULL)
        return -1;
    p += 13;
    const char *end = strchr(p, '"');
    if (end == NULL)
        return -1;
    return trellis_b64url_decode(p, (size_t)(end - p), out, size, len) == TRELLIS_OK ? 0 : -1;
}

/* One device, start to finish, on a fresh connection. Returns the HTTP status (0: transport). */
static int enroll_one(const device_t *d)
{
    tc_conn_t c;
    tc_response_t r;
    uint8_t challenge[256], ev[2048];
    size_t challenge_len = 0, ev_len = 0;
    char body[4096], b64[3][2800];
    size_t n = 0;
    int status = 0;

    if (tc_connect(&c, run_state.ctx, "127.0.0.1", run_state.port) != 0)
        return 0;
    if (tc_request(&c, "GET", "/v1/challenge", NULL, NULL, 0, &r) != 0)
        goto out;
    status = r.status;
    if (r.status != 200 || decode_challenge(r.body, challenge, sizeof(challenge), &challenge_len)) {
        tc_response_free(&r);
        goto out;
    }
    tc_response_free(&r);
    /* The evidence: a PSA token signed by the RoT, nonce = SHA-256(challenge || CSR). */
    trellis_psa_claims_t cl;
    trellis_signer_t s;
    trellis_psa_claims_init(&cl);
    trellis_sha256_two(challenge, challenge_len, d->csr, d->csr_len, cl.nonce);
    cl.nonce_len = 32;
    cl.has_instance_id = true;
    trellis_psa_ueid_from_point(d->point, cl.instance_id);
    cl.has_implementation_id = true;
    memset(cl.implementation_id, 0x11, sizeof(cl.implementation_id));
    cl.has_client_id = true;
    cl.client_id = -1;
    cl.has_lifecycle = true;
    cl.lifecycle = TRELLIS_PSA_LIFECYCLE_SECURED;
    cl.boot_seed_len = 32;
    memset(cl.boot_seed, 0x22, 32);
    cl.sw_component_count = 1;
    cl.sw_components[0].measurement_value_len = 32;
    memset(cl.sw_components[0].measurement_value, 0x33, 32);
    trellis_signer_from_pkey(d->rot, &s);
    if (trellis_psa_token_encode(&cl, NULL, 0, &s, ev, sizeof(ev), &ev_len, NULL) != TRELLIS_OK)
        goto out;
    trellis_b64url_encode(d->csr, d->csr_len, b64[0], sizeof(b64[0]), &n);
    trellis_b64url_encode(ev, ev_len, b64[1], sizeof(b64[1]), &n);
    trellis_b64url_encode(challenge, challenge_len, b64[2], sizeof(b64[2]), &n);
    int len =
        snprintf(body, sizeof(body), "{\"csr\":\"%s\",\"evidence\":\"%s\",\"challenge\":\"%s\"}",
                 b64[0], b64[1], b64[2]);
    status = 0;
    if (tc_request(&c, "POST", "/v1/enroll", "application/json", body, (size_t)len, &r) != 0)
        goto out;
    status = r.status;
    tc_response_free(&r);
out:
    tc_close(&c);
    return status;
}

/* A device told to come back later (429, 503, or the connection closed at once) waits and
 * tries again with a fresh challenge, as the device agent does: 50 ms doubling to 1 s, with
 * jitter so that a crowd spreads out. */
static int retryable(int status)
{
    return status == 0 || status == 429 || status == 503;
}

static void backoff(unsigned attempt, unsigned *seed)
{
    unsigned ms = attempt >= 5 ? 1000 : 50u << attempt;
    ms = ms / 2 + (unsigned)rand_r(seed) % (ms / 2 + 1);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *run_thread(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&run_state.stop)) {
        unsigned long i = atomic_fetch_add(&run_state.next, 1);
        if (i >= run_state.n)
            break;
        double t0 = now_s();
        int status = enroll_one(&run_state.devices[i]);
        for (unsigned attempt = 0;
             run_state.retry && retryable(status) && !atomic_load(&run_state.stop); attempt++) {
            atomic_fetch_add(&run_state.retries, 1);
            backoff(attempt, &seed);
            status = enroll_one(&run_state.devices[i]);
        }
        double dt = now_s() - t0;
        if (status >= 0 && status < 600)
            atomic_fetch_add(&run_state.statuses[status], 1);
        if (status == 201) {
            atomic_fetch_add(&run_state.ok, 1);
            unsigned long k = atomic_fetch_add(&run_state.n_lat, 1);
            if (k < LAT_MAX)
                run_state.lat[k] = dt;
        } else {
            atomic_fetch_add(&run_state.failed, 1);
        }
    }
    atomic_fetch_sub(&run_state.running, 1);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const BIGNUM *base;
    unsigned long first, n;
    atomic_ulong next;
    atomic_int failed;
} prep_t;

static void *prep_thread(void *arg)
{
    prep_t *p = arg;
    for (;;) {
        unsigned long i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        device_t *d = &run_state.devices[i];
        EVP_PKEY *op = NULL;
        char id[33];
        d->rot = device_key(p->base, p->first + i, d->point);
        if (d->rot == NULL || trellis_psa_device_id_from_point(d->point, id) != TRELLIS_OK ||
            trellis_p256_generate(&op) != TRELLIS_OK ||
            trellis_csr_build(op, id, d->csr, sizeof(d->csr), &d->csr_len) != TRELLIS_OK)
            atomic_store(&p->failed, 1);
        EVP_PKEY_free(op);
    }
    return NULL;
}

static int number(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    if (text == NULL || text[0] == '\0')
        return -1;
    unsigned long v = strtoul(text, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int run(int argc, char **argv)
{
    const char *ca = arg(argc, argv, "--ca"), *port = arg(argc, argv, "--port");
    const char *keys = arg(argc, argv, "--keys"), *secs = arg(argc, argv, "--seconds");
    unsigned long i0 = 0, n = 0, threads = 0, port_n = 0;
    BIGNUM *base = keys != NULL ? load_base(keys) : NULL;
    double seconds = secs != NULL ? strtod(secs, NULL) : 0;
    if (ca == NULL || base == NULL || seconds <= 0 || number(port, 65535, &port_n) ||
        number(arg(argc, argv, "--first"), 100000000, &i0) ||
        number(arg(argc, argv, "--devices"), 10000000, &n) || n == 0 ||
        number(arg(argc, argv, "--concurrency"), 4096, &threads) || threads == 0) {
        fprintf(stderr, "usage: bench_enroll run --ca TRUST.pem --port PORT --keys FILE --first I "
                        "--devices N --concurrency C --seconds T\n");
        return 2;
    }
    run_state.retry = has_flag(argc, argv, "--retry");
    run_state.ctx = tc_ctx_new(ca, NULL, NULL);
    run_state.port = (uint16_t)port_n;
    run_state.devices = calloc(n, sizeof(device_t));
    run_state.lat = calloc(LAT_MAX, sizeof(double));
    run_state.n = n;
    if (run_state.ctx == NULL || run_state.devices == NULL || run_state.lat == NULL)
        return 1;
    /* Before the clock: every device's RoT key and its CSR (its own operational key), made
     * on as many threads as there are cores. */
    prep_t prep = {.base = base, .first = i0, .n = n, .failed = 0};
    atomic_init(&prep.next, 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    pthread_t pt[64];
    int np = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    for (int i = 0; i < np; i++)
        pthread_create(&pt[i], NULL, prep_thread, &prep);
    for (int i = 0; i < np; i++)
        pthread_join(pt[i], NULL);
    if (atomic_load(&prep.failed))
        return 1;
    pthread_t *t = calloc(threads, sizeof(pthread_t));
    if (t == NULL)
        return 1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s();
    atomic_store(&run_state.running, (int)threads);
    for (unsigned long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run_thread, (void *)(uintptr_t)(i + 1));
    while (atomic_load(&run_state.running) > 0 && now_s() - t0 < seconds) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&run_state.stop, 1);
    for (unsigned long i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    unsigned long ok = atomic_load(&run_state.ok), nl = atomic_load(&run_state.n_lat);
    if (nl > LAT_MAX)
        nl = LAT_MAX;
    qsort(run_state.lat, nl, sizeof(double), cmp_double);
    double p50 = nl > 0 ? run_state.lat[nl / 2] : 0,
           p99 = nl > 0 ? run_state.lat[nl * 99 / 100] : 0;
    printf("{\"concurrency\":%lu,\"seconds\":%.2f,\"enrollments\":%lu,\"per_second\":%.0f,"
           "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"failed\":%lu,\"used_devices\":%lu,"
           "\"client_cpu_us\":%.0f,\"retries\":%lu,\"statuses\":{",
           threads, dt, ok, (double)ok / dt, p50 * 1e3, p99 * 1e3, atomic_load(&run_state.failed),
           atomic_load(&run_state.next) < n ? atomic_load(&run_state.next) : n,
           ok > 0 ? cpu * 1e6 / (double)ok : 0.0, atomic_load(&run_state.retries));
    int firstk = 1;
    for (int i = 0; i < 600; i++) {
        unsigned long c = atomic_load(&run_state.statuses[i]);
        if (c > 0) {
            printf("%s\"%d\":%lu", firstk ? "" : ",", i, c);
            firstk = 0;
        }
    }
    printf("}}\n");
    for (unsigned long i = 0; i < n; i++)
        EVP_PKEY_free(run_state.devices[i].rot);
    free(run_state.devices);
    free(run_state.lat);
    free(t);
    SSL_CTX_free(run_state.ctx);
    BN_free(base);
    return 0;
}

/* ---- ceiling ---- */

typedef struct {
    EVP_PKEY *key;
    int sign;
    double seconds;
    unsigned long ops;
} crypto_job_t;

static void *crypto_thread(void *arg)
{
    crypto_job_t *j = arg;
    uint8_t digest[32], sig[64];
    memset(digest, 0x5a, sizeof(digest));
    trellis_p256_sign_digest(j->key, digest, sig);
    double t0 = now_s();
    while (now_s() - t0 < j->seconds) {
        for (int i = 0; i < 64; i++) {
            if (j->sign)
                trellis_p256_sign_digest(j->key, digest, sig);
            else
                trellis_p256_verify_digest(j->key, digest, sig);
        }
        j->ops += 64;
    }
    j->seconds = now_s() - t0;
    return NULL;
}

/* Operations per second of one kind on n threads. */
static double crypto_rate(EVP_PKEY *key, int sign, unsigned long n, double seconds)
{
    pthread_t t[64];
    crypto_job_t j[64];
    double rate = 0;
    for (unsigned long i = 0; i < n; i++) {
        j[i] = (crypto_job_t){.key = key, .sign = sign, .seconds = seconds, .ops = 0};
        pthread_create(&t[i], NULL, crypto_thread, &j[i]);
    }
    for (unsigned long i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        rate += (double)j[i].ops / j[i].seconds;
    }
    return rate;
}

static int ceiling(int argc, char **argv)
{
    unsigned long threads = 0;
    const char *secs = arg(argc, argv, "--seconds");
    double seconds = secs != NULL ? strtod(secs, NULL) : 0;
    EVP_PKEY *key = NULL;
    if (number(arg(argc, argv, "--threads"), 64, &threads) || threads == 0 || seconds <= 0 ||
        trellis_p256_generate(&key) != TRELLIS_OK) {
        fprintf(stderr, "usage: bench_enroll ceiling --threads N --seconds T\n");
        return 2;
    }
    /* The bare operation: OpenSSL's EVP sign and verify over a digest, as Trellis calls it. */
    double signs = crypto_rate(key, 1, threads, seconds);
    double verifies = crypto_rate(key, 0, threads, seconds);
    double ceiling_rate = 1.0 / (3.0 / verifies + 2.0 / signs);
    printf("{\"threads\":%lu,\"signs_per_s\":%.0f,\"verifies_per_s\":%.0f,"
           "\"enrollment_ceiling_per_s\":%.0f}\n",
           threads, signs, verifies, ceiling_rate);
    EVP_PKEY_free(key);
    return 0;
}

int main(int argc, char **argv)
{
    /* A registrar that closes a connection at once (over its limit) must not kill the crowd. */
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return gen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "ceiling") == 0)
        return ceiling(argc, argv);
    fprintf(stderr, "usage: bench_enroll gen|run|ceiling ... (see the comment at the top)\n");
    return 2;
}
