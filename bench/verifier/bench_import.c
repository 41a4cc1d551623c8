/*
 * Manifest import benchmark.
 *
 *   bench_import gen --key KEY.pem --factory F --owner O --batch B --devices N --out FILE
 *       writes a signed manifest of N devices (docs/manifest-format.md) quickly: the RoT points
 *       are k*G, k*G + G, ... (distinct valid points; one addition each instead of a key
 *       generation), so a million records take seconds.
 *   bench_import import --dir VDIR FILE
 *       imports FILE into the verifier's registry in this process, through the same streaming
 *       importer as the HTTP API, and prints records/s and the peak RSS (getrusage) as JSON.
 *   bench_import upload --dir VDIR --client NAME --port PORT FILE
 *       POSTs FILE to a running verifier's /v1/manifests over mutual TLS and prints the time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "tlsclient.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/verifier.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static int gen(int argc, char **argv)
{
    const char *key_path = arg(argc, argv, "--key"), *factory = arg(argc, argv, "--factory");
    const char *owner = arg(argc, argv, "--owner"), *batch = arg(argc, argv, "--batch");
    const char *n_text = arg(argc, argv, "--devices"), *out = arg(argc, argv, "--out");
    EVP_PKEY *fkey = NULL;
    if (key_path == NULL || factory == NULL || owner == NULL || batch == NULL || n_text == NULL ||
        out == NULL || trellis_p256_load_private_pem(key_path, &fkey) != TRELLIS_OK) {
        fprintf(stderr, "usage: bench_import gen --key KEY.pem --factory F --owner O --batch B "
                        "--devices N --out FILE\n");
        return 2;
    }
    unsigned long n = strtoul(n_text, NULL, 10);
    FILE *f = fopen(out, "w");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *k = BN_new();
    char line[512], key_b64[100], id[33];
    uint8_t point[65], digest[32], sig[64];
    size_t len = 0;
    double t0 = now_s();
    if (f == NULL || md == NULL || p == NULL || bn == NULL || k == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        BN_rand(k, 200, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
        EC_POINT_mul(g, p, k, NULL, NULL, bn) != 1)
        return 1;
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
    char hex[65], sig_b64[100];
    EVP_DigestFinal_ex(md, digest, &dl);
    if (trellis_p256_sign_digest(fkey, digest, sig) != TRELLIS_OK)
        return 1;
    trellis_hex_encode(digest, 32, hex, sizeof(hex), &len);
    trellis_b64url_encode(sig, 64, sig_b64, sizeof(sig_b64), &len);
    fprintf(f, "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n", hex, sig_b64);
    long size = ftell(f);
    fclose(f);
    fprintf(stderr, "gen: %lu devices, %ld bytes in %.1f s\n", n, size, now_s() - t0);
    BN_free(k);
    BN_CTX_free(bn);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(fkey);
    return 0;
}

static int load_cfg(const char *dir, trellis_verifier_config_t *cfg)
{
    trellis_reason_t why;
    if (trellis_conf_defaults(trellis_verifier_conf_spec(), cfg, &why) != TRELLIS_OK)
        return -1;
    snprintf(cfg->dir, sizeof(cfg->dir), "%s", dir);
    return trellis_verifier_config_resolve(cfg, &why) == TRELLIS_OK ? 0 : -1;
}

static int import(int argc, char **argv)
{
    const char *dir = arg(argc, argv, "--dir");
    trellis_verifier_config_t cfg;
    trellis_reason_t why;
    char *report = NULL;
    if (dir == NULL || argc < 5 || load_cfg(dir, &cfg) != 0) {
        fprintf(stderr, "usage: bench_import import --dir VDIR FILE\n");
        return 2;
    }
    long rss0 = peak_rss_kb();
    double t0 = now_s();
    trellis_err_t err = trellis_verifier_import_file(&cfg, argv[argc - 1], &report, &why);
    double dt = now_s() - t0;
    if (err != TRELLIS_OK) {
        fprintf(stderr, "import: %s\n", why.text);
        free(report);
        return 1;
    }
    char *rec = report != NULL ? strstr(report, "\"records\":") : NULL;
    unsigned long records = rec != NULL ? strtoul(rec + 10, NULL, 10) : 0;
    printf("{\"records\":%lu,\"seconds\":%.2f,\"records_per_s\":%.0f,\"peak_rss_mb\":%.1f,"
           "\"rss_before_mb\":%.1f,\"report\":%s}\n",
           records, dt, (double)records / dt, (double)peak_rss_kb() / 1024.0, (double)rss0 / 1024.0,
           report != NULL ? report : "null");
    free(report);
    return 0;
}

static int upload(int argc, char **argv)
{
    const char *dir = arg(argc, argv, "--dir"), *client = arg(argc, argv, "--client");
    const char *port = arg(argc, argv, "--port");
    char ca[1024], cert[1024], key[1024];
    if (dir == NULL || client == NULL || port == NULL) {
        fprintf(stderr, "usage: bench_import upload --dir VDIR --client NAME --port PORT FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[argc - 1], "r");
    if (f == NULL)
        return 1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)size);
    if (body == NULL || fread(body, 1, (size_t)size, f) != (size_t)size)
        return 1;
    fclose(f);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/clients/%s/client.pem", dir, client);
    snprintf(key, sizeof(key), "%s/clients/%s/client.key", dir, client);
    SSL_CTX *ctx = tc_ctx_new(ca, cert, key);
    tc_conn_t c;
    tc_response_t r;
    double t0 = now_s();
    if (ctx == NULL || tc_connect(&c, ctx, "127.0.0.1", (uint16_t)strtoul(port, NULL, 10)) != 0 ||
        tc_request(&c, "POST", "/v1/manifests", "application/x-ndjson", body, (size_t)size, &r) !=
            0)
        return 1;
    double dt = now_s() - t0;
    printf("{\"status\":%d,\"bytes\":%ld,\"seconds\":%.2f,\"answer\":%s}\n", r.status, size, dt,
           r.body);
    int ok = r.status == 200;
    tc_response_free(&r);
    tc_close(&c);
    SSL_CTX_free(ctx);
    free(body);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return gen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "import") == 0)
        return import(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "upload") == 0)
        return upload(argc, argv);
    fprintf(stderr, "usage: bench_import gen|import|upload ... (see the source's header)\n");
    return 2;
}
