/*
 * Token sign and verify rates on one core, each as a ratio to OpenSSL's own ECDSA P-256 rate
 * measured in the same run: the token work beyond one ECDSA operation (CBOR, SHA-256 of the
 * Sig_structure, claim checks) is what the ratio shows.
 *
 * Usage: bench_token [SECONDS_PER_PHASE]   (default 2)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/psa_token.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*op_fn)(void *ctx);

/* Runs op until seconds have passed; returns operations per second. */
static double rate(op_fn op, void *ctx, double seconds)
{
    long n = 0;
    double start = now_s(), t = start;
    while (t - start < seconds) {
        for (int i = 0; i < 64; i++) {
            if (op(ctx) != 0) {
                fprintf(stderr, "bench_token: operation failed\n");
                exit(1);
            }
        }
        n += 64;
        t = now_s();
    }
    return (double)n / (t - start);
}

struct fixture {
    EVP_PKEY *key;
    EVP_PKEY_CTX *sign_ctx; /* OpenSSL's own path, context made once: the baseline */
    EVP_PKEY_CTX *verify_ctx;
    uint8_t der[TRELLIS_P256_SIG_DER_MAX];
    size_t der_len;
    trellis_signer_t signer;
    uint8_t digest[32];
    uint8_t sig[64];
    trellis_psa_claims_t claims;
    uint8_t token[1024];
    size_t token_len;
};

static int raw_sign(void *ctx)
{
    struct fixture *f = ctx;
    f->der_len = sizeof(f->der);
    return EVP_PKEY_sign(f->sign_ctx, f->der, &f->der_len, f->digest, sizeof(f->digest)) == 1 ? 0
                                                                                              : 1;
}

static int raw_verify(void *ctx)
{
    struct fixture *f = ctx;
    return EVP_PKEY_verify(f->verify_ctx, f->der, f->der_len, f->digest, sizeof(f->digest)) == 1
               ? 0
               : 1;
}

static int token_sign(void *ctx)
{
    struct fixture *f = ctx;
    size_t len = 0;
    return trellis_psa_token_encode(&f->claims, NULL, 0, &f->signer, f->token, sizeof(f->token),
                                    &len, NULL) == TRELLIS_OK
               ? 0
               : 1;
}

static int token_verify(void *ctx)
{
    struct fixture *f = ctx;
    trellis_psa_claims_t out;
    return trellis_psa_token_verify(f->token, f->token_len, f->key, f->claims.nonce, 32, &out,
                                    NULL) == TRELLIS_OK
               ? 0
               : 1;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    if (argc > 1) {
        char *end = NULL;
        seconds = strtod(argv[1], &end);
        if (end == argv[1] || *end != '\0' || seconds <= 0 || seconds > 600) {
            fprintf(stderr, "usage: bench_token [SECONDS_PER_PHASE]\n");
            return 2;
        }
    }
    struct fixture f;
    memset(&f, 0, sizeof(f));
    uint8_t point[65];
    if (trellis_p256_generate(&f.key) || trellis_signer_from_pkey(f.key, &f.signer) ||
        trellis_p256_public_point(f.key, point) || trellis_random(f.digest, sizeof(f.digest)) ||
        (f.sign_ctx = EVP_PKEY_CTX_new(f.key, NULL)) == NULL ||
        (f.verify_ctx = EVP_PKEY_CTX_new(f.key, NULL)) == NULL ||
        EVP_PKEY_sign_init(f.sign_ctx) != 1 || EVP_PKEY_verify_init(f.verify_ctx) != 1) {
        fprintf(stderr, "bench_token: setup failed\n");
        return 1;
    }
    trellis_psa_claims_init(&f.claims);
    f.claims.nonce_len = 32;
    memcpy(f.claims.nonce, f.digest, 32);
    f.claims.has_instance_id = true;
    trellis_psa_ueid_from_point(point, f.claims.instance_id);
    f.claims.has_implementation_id = true;
    f.claims.has_client_id = true;
    f.claims.client_id = -1;
    f.claims.has_lifecycle = true;
    f.claims.lifecycle = 0x3000;
    f.claims.boot_seed_len = 32;
    f.claims.sw_component_count = 1;
    f.claims.sw_components[0].measurement_value_len = 32;
    trellis_reason_t reason = {{0}};
    if (raw_sign(&f) ||
        trellis_psa_token_encode(&f.claims, NULL, 0, &f.signer, f.token, sizeof(f.token),
                                 &f.token_len, &reason) != TRELLIS_OK) {
        fprintf(stderr, "bench_token: cannot make a token: %s\n", reason.text);
        return 1;
    }

    fprintf(stderr, "bench_token: measuring, %.0f s per phase, 4 phases\n", seconds);
    double rs = rate(raw_sign, &f, seconds);
    double ts = rate(token_sign, &f, seconds);
    double rv = rate(raw_verify, &f, seconds);
    double tv = rate(token_verify, &f, seconds);
    printf("openssl_p256_sign_per_s=%.0f token_create_per_s=%.0f ratio=%.2f\n", rs, ts, ts / rs);
    printf("openssl_p256_verify_per_s=%.0f token_verify_per_s=%.0f ratio=%.2f\n", rv, tv, tv / rv);
    EVP_PKEY_CTX_free(f.sign_ctx);
    EVP_PKEY_CTX_free(f.verify_ctx);
    EVP_PKEY_free(f.key);
    return 0;
}
