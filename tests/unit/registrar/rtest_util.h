/*
 * Helpers shared by the registrar tests: temporary directories, devices (RoT key, operational
 * key, CSR, evidence), a registrar state directory made by `init` with a test PKI for the
 * verifier, a fake verifier that signs real verdicts (over real mutual TLS), and a blocking
 * HTTPS client that sees status, headers and body.
 */
#ifndef TRELLIS_RTEST_UTIL_H
#define TRELLIS_RTEST_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "test_dirs.h"
#include "registrar_internal.h"
#include "test_pki.h"
#include "trellis/http_server.h"
#include "trellis/registrar.h"

#define RT_PATH 512
#define RT_OEM  "acme"

void rt_path(char *out, size_t size, const char *dir, const char *name);

/* A device: its RoT key and id, and an operational key for its CSRs. */
typedef struct {
    EVP_PKEY *rot;
    EVP_PKEY *op;
    uint8_t point[65];
    char id[33];
} rt_device_t;

void rt_device_init(rt_device_t *d);
void rt_device_cleanup(rt_device_t *d);
/* A CSR for d->op with subject CN cn (d->id when NULL). Returns its length. */
size_t rt_csr(const rt_device_t *d, const char *cn, uint8_t *out, size_t size);
/* Evidence naming the RoT point, nonce SHA-256(challenge || csr), signed by signer. */
size_t rt_evidence(EVP_PKEY *signer, const uint8_t point[65], const uint8_t *challenge,
                   size_t challenge_len, const uint8_t *csr, size_t csr_len, uint8_t *out,
                   size_t size);
/* {"csr","evidence","challenge"} with base64url values; free(). */
char *rt_enroll_body(const uint8_t *csr, size_t csr_len, const uint8_t *ev, size_t ev_len,
                     const uint8_t *challenge, size_t challenge_len);

/* A registrar state directory and everything around it. */
typedef struct {
    char root[RT_PATH]; /* temporary directory holding all below */
    char dir[RT_PATH];  /* the registrar's state directory */
    trellis_registrar_config_t cfg;
    trellis_test_pki_t pki;      /* the verifier's TLS PKI */
    trellis_test_pki_pair_t oem; /* the OEM's client certificate at the verifier */
    EVP_PKEY *verdict_key;       /* the fake verifier's signing key */
    uint8_t secret[TR__CHALLENGE_SECRET_LEN];
} rt_env_t;

/* init_dir + test PKI + verdict key; cfg loaded with defaults, rate limit off, port 0, two
 * workers, log level error. */
void rt_env_init(rt_env_t *env);
void rt_env_cleanup(rt_env_t *env);
/* A store connection on env's registry. */
trellis_rstore_t *rt_env_store(const rt_env_t *env);

/* How the fake verifier answers. */
typedef enum {
    FV_JUDGE = 0,    /* a real judgement: known devices, token signature, nonce */
    FV_WRONG_KEY,    /* an affirming verdict signed by another key */
    FV_EXPIRED,      /* an affirming verdict that expired a minute ago */
    FV_OTHER_DEVICE, /* an affirming verdict about another device */
    FV_OTHER_OEM,    /* an affirming verdict naming another OEM */
    FV_HTTP_500,     /* 500 unavailable */
    FV_HTTP_403,     /* 403 (as for an unknown client) */
    FV_GARBAGE,      /* 200 with a body that is not a verdict */
} rt_fv_mode_t;

#define RT_FV_DEVICES 16

typedef struct {
    trellis_http_server_t *srv;
    EVP_PKEY *key; /* borrowed from env */
    char kid[44];
    atomic_int mode;
    atomic_int delay_ms;
    atomic_int calls;
    atomic_int in_flight, max_in_flight;
    /* Devices it knows, with their owner. */
    pthread_mutex_t lock;
    size_t n;
    char ids[RT_FV_DEVICES][33];
    uint8_t points[RT_FV_DEVICES][65];
    char owners[RT_FV_DEVICES][65];
    int revoked[RT_FV_DEVICES];
} rt_verifier_t;

/* Starts the fake verifier (TLS with env's PKI, client certificates required) and points
 * env->cfg at it. */
void rt_verifier_start(rt_verifier_t *v, rt_env_t *env);
void rt_verifier_add(rt_verifier_t *v, const rt_device_t *d, const char *owner);
void rt_verifier_stop(rt_verifier_t *v);

/* The registrar service from env->cfg, started. */
trellis_registrar_t *rt_registrar_start(rt_env_t *env);

typedef struct {
    int status; /* -1: no response */
    char head[4096];
    char *body;
    size_t body_len;
} rt_resp_t;

/* One request over a fresh TLS connection to 127.0.0.1:port trusting ca, presenting cert/key
 * when not NULL. Returns the status (-1 if the exchange failed). */
int rt_https(uint16_t port, const char *ca, const char *cert, const char *key, const char *method,
             const char *path, const char *content_type, const void *body, size_t body_len,
             rt_resp_t *r);
/* Headers only, announcing a body of declared_len bytes that never comes: for the limits
 * checked before a body is read (413). */
int rt_https_declared(uint16_t port, const char *ca, const char *method, const char *path,
                      const char *content_type, size_t declared_len, rt_resp_t *r);
void rt_resp_free(rt_resp_t *r);
/* The value of a response header; false when absent. */
bool rt_header(const rt_resp_t *r, const char *name, char *out, size_t size);
/* The "error" member of a JSON error body ("" if none), into out. */
void rt_error_code(const rt_resp_t *r, char *out, size_t size);

/* GET /v1/challenge, decoded. Returns its length. */
size_t rt_challenge(uint16_t port, const rt_env_t *env, uint8_t *out, size_t size);

/* Everything one enrollment needs, built for device d at registrar port: challenge, CSR,
 * evidence (signed by signer, d->rot when NULL), body. */
typedef struct {
    uint8_t challenge[256];
    size_t challenge_len;
    uint8_t csr[2048];
    size_t csr_len;
    uint8_t evidence[4096];
    size_t evidence_len;
    char *body;
} rt_enroll_t;

void rt_enroll_prepare(uint16_t port, const rt_env_t *env, const rt_device_t *d, EVP_PKEY *signer,
                       rt_enroll_t *e);
void rt_enroll_cleanup(rt_enroll_t *e);
/* POST /v1/enroll with e->body. */
int rt_enroll_post(uint16_t port, const rt_env_t *env, const rt_enroll_t *e, rt_resp_t *r);

#endif
