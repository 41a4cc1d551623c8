/*
 * The registrar service over real TLS on loopback, with a fake verifier that signs real verdicts
 * behind real mutual TLS: enrollment end to end, every refusal of design.md §3 with its API code
 * and no change to the registry, verifier failures, races (identical requests, revocation
 * against enrollment), a slow verifier that must not serialize enrollments, renewal over mutual
 * TLS, factory resets, revocation, the rate limit, /v1/ca, /v1/crl, /healthz and /metrics.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "rtest_util.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/x509.h"

typedef struct {
    rt_env_t env;
    rt_verifier_t fv;
    trellis_registrar_t *r;
    uint16_t port;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    rt_env_init(&f->env);
    rt_verifier_start(&f->fv, &f->env);
    f->r = rt_registrar_start(&f->env);
    f->port = trellis_registrar_port(f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    trellis_registrar_free(f->r);
    rt_verifier_stop(&f->fv);
    rt_env_cleanup(&f->env);
    free(f);
    return 0;
}

/* Restarts the registrar with the fixture's (possibly changed) configuration. */
static void restart(fixture_t *f)
{
    trellis_registrar_free(f->r);
    f->r = rt_registrar_start(&f->env);
    f->port = trellis_registrar_port(f->r);
}

static trellis_rstore_counts_t counts(fixture_t *f)
{
    trellis_rstore_t *s = rt_env_store(&f->env);
    trellis_rstore_counts_t c;
    assert_int_equal(s->counts(s->ctx, &c), TRELLIS_OK);
    trellis_rstore_close(s);
    return c;
}

static void assert_code(const rt_resp_t *r, int status, const char *code)
{
    char got[32];
    rt_error_code(r, got, sizeof(got));
    if (r->status != status || strcmp(got, code) != 0)
        print_message("got %d %s\n", r->status, r->body != NULL ? r->body : "(no body)");
    assert_int_equal(r->status, status);
    assert_string_equal(got, code);
}

/* Enrolls d and returns the 201 body's certificate chain (PEM, free()). */
static char *enroll_ok(fixture_t *f, const rt_device_t *d, char serial[33])
{
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(f->port, &f->env, d, NULL, &e);
    rt_enroll_post(f->port, &f->env, &e, &r);
    if (r.status != 201)
        print_message("enroll: %d %s\n", r.status, r.body != NULL ? r.body : "");
    assert_int_equal(r.status, 201);
    json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "device_id")), d->id);
    const char *not_after = json_string_value(json_object_get(o, "not_after"));
    assert_non_null(not_after);
    assert_int_equal(strlen(not_after), 20); /* 2026-11-25T13:40:00Z */
    char *pem = strdup(json_string_value(json_object_get(o, "certificate")));
    assert_non_null(pem);
    {
        /* not_after is the certificate's own notAfter. */
        BIO *bio = BIO_new_mem_buf(pem, -1);
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        assert_non_null(cert);
        time_t na = 0;
        char text[32];
        struct tm tm;
        assert_int_equal(trellis_x509_not_after(cert, &na), TRELLIS_OK);
        gmtime_r(&na, &tm);
        strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_string_equal(not_after, text);
        X509_free(cert);
        BIO_free(bio);
    }
    if (serial != NULL) {
        BIO *bio = BIO_new_mem_buf(pem, -1);
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        assert_non_null(cert);
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
        char *hex = BN_bn2hex(bn);
        for (size_t i = 0; hex[i] != '\0'; i++)
            serial[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
        serial[32] = '\0';
        OPENSSL_free(hex);
        BN_free(bn);
        X509_free(cert);
        BIO_free(bio);
    }
    json_decref(o);
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    return pem;
}

static void test_enroll(void **state)
{
    fixture_t *f = *state;
    rt_device_t d;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    assert_int_equal(rt_enroll_post(f->port, &f->env, &e, &r), 201);
    json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(o);
    const char *pem = json_string_value(json_object_get(o, "certificate"));
    /* The chain: the device certificate, then the device CA. */
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(leaf);
    assert_non_null(ca);
    assert_null(PEM_read_bio_X509(bio, NULL, NULL, NULL));
    BIO_free(bio);
    char cn[65];
    size_t cn_len = 0;
    assert_int_equal(trellis_x509_subject_cn(leaf, cn, sizeof(cn), &cn_len), TRELLIS_OK);
    assert_string_equal(cn, d.id);
    assert_int_equal(X509_verify(leaf, X509_get0_pubkey(ca)), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), d.op), 1);
    X509_free(leaf);
    X509_free(ca);
    json_decref(o);
    rt_resp_free(&r);
    /* Recorded: device, certificate, enrollment (with the verdict), audit. */
    trellis_rstore_counts_t c = counts(f);
    assert_int_equal(c.devices, 1);
    assert_int_equal(c.certificates, 1);
    assert_int_equal(c.enrollments, 1);
    assert_int_equal(c.challenges, 1);
    /* The same request again: the challenge was used. */
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, 409, "replayed");
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    assert_int_equal(counts(f).certificates, 1);
    assert_int_equal(atomic_load(&f->fv.calls), 1);

    /* Restarted, the registrar still refuses the replay (the registry remembers). */
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    uint16_t old_port = f->port;
    (void)old_port;
    restart(f);
    assert_int_equal(rt_enroll_post(f->port, &f->env, &e, &r), 201);
    rt_resp_free(&r);
    restart(f);
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, 409, "replayed");
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    rt_device_cleanup(&d);
}

static void test_ca_crl_health_metrics(void **state)
{
    fixture_t *f = *state;
    rt_resp_t r;
    const char *ca = f->env.cfg.root_cert;
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/v1/ca", NULL, NULL, 0, &r), 200);
    char ct[128];
    assert_true(rt_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/pem-certificate-chain");
    BIO *bio = BIO_new_mem_buf(r.body, (int)r.body_len);
    X509 *a = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    X509 *b = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(X509_verify(a, X509_get0_pubkey(b)), 1);
    X509_free(a);
    X509_free(b);
    BIO_free(bio);
    rt_resp_free(&r);

    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/v1/crl", NULL, NULL, 0, &r), 200);
    assert_true(rt_header(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/pkix-crl");
    const unsigned char *p = (const unsigned char *)r.body;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)r.body_len);
    assert_non_null(crl);
    X509_CRL_free(crl);
    rt_resp_free(&r);

    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    rt_resp_free(&r);
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/nope", NULL, NULL, 0, &r), 404);
    rt_resp_free(&r);
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "POST", "/v1/challenge", NULL, NULL, 0, &r),
                     405);
    rt_resp_free(&r);

    rt_device_t d;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    free(enroll_ok(f, &d, NULL));
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    assert_non_null(strstr(r.body, "trellis_registrar_enrollments_total{outcome=\"ok\"} 1"));
    assert_non_null(strstr(r.body, "trellis_registrar_certificates_issued_total 1"));
    assert_non_null(strstr(r.body, "trellis_registrar_verifier_calls_total 1"));
    assert_non_null(strstr(r.body, "trellis_registrar_enroll_duration_seconds_count 1"));
    assert_non_null(
        strstr(r.body, "trellis_registrar_requests_total{route=\"/v1/enroll\",code=\"201\"} 1"));
    rt_resp_free(&r);
    rt_device_cleanup(&d);
}

/* /healthz reads the registry: a registrar whose store cannot answer says so (503 unavailable,
 * with Retry-After) instead of reporting ok while every enrollment fails. The fault is real: an
 * operator's statement drops a table under the running service. */
static void test_healthz_probes_registry(void **state)
{
    fixture_t *f = *state;
    rt_resp_t r;
    char ca[RT_PATH], retry[16];
    rt_path(ca, sizeof(ca), f->env.dir, "trust.pem");
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    rt_resp_free(&r);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->env.cfg.registry, &db, SQLITE_OPEN_READWRITE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE challenges", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    for (int i = 0; i < 4; i++) { /* every worker's connection, whichever answers */
        assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/healthz", NULL, NULL, 0, &r),
                         503);
        assert_code(&r, 503, "unavailable");
        assert_true(rt_header(&r, "Retry-After", retry, sizeof(retry)));
        assert_null(strstr(r.body, "\"status\":\"ok\""));
        rt_resp_free(&r);
    }
}

static void test_bad_requests(void **state)
{
    fixture_t *f = *state;
    rt_resp_t r;
    const char *ca = f->env.cfg.root_cert;
    trellis_rstore_counts_t before = counts(f);
    rt_device_t d;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    rt_enroll_t e;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);

    /* Wrong content type. */
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "text/plain", e.body, strlen(e.body),
             &r);
    assert_code(&r, 415, "bad_request");
    rt_resp_free(&r);
    /* Oversize body: refused from its Content-Length, before it is read. */
    rt_https_declared(f->port, ca, "POST", "/v1/enroll", "application/json", TR__BODY_MAX + 100,
                      &r);
    assert_code(&r, 413, "too_large");
    rt_resp_free(&r);
    /* Malformed JSON, bad base64. */
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "application/json", "{\"csr\":", 7, &r);
    assert_code(&r, 400, "bad_request");
    rt_resp_free(&r);
    const char *b64 = "{\"csr\":\"@@\",\"evidence\":\"AA\",\"challenge\":\"AA\"}";
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "application/json", b64, strlen(b64),
             &r);
    assert_code(&r, 400, "bad_request");
    rt_resp_free(&r);
    /* A CSR whose subject is not the device the evidence names. */
    rt_device_t other;
    rt_device_init(&other);
    uint8_t csr[2048], ev[4096];
    size_t csr_len = rt_csr(&d, other.id, csr, sizeof(csr));
    size_t ev_len =
        rt_evidence(d.rot, d.point, e.challenge, e.challenge_len, csr, csr_len, ev, sizeof(ev));
    char *body = rt_enroll_body(csr, csr_len, ev, ev_len, e.challenge, e.challenge_len);
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "application/json", body, strlen(body),
             &r);
    assert_code(&r, 400, "bad_csr");
    rt_resp_free(&r);
    free(body);
    rt_device_cleanup(&other);
    /* A stale challenge. */
    uint8_t stale[TR__CHALLENGE_LEN];
    assert_int_equal(tr__reg_challenge_mint(f->env.secret, (int64_t)time(NULL) - 400, 300, stale),
                     TRELLIS_OK);
    ev_len = rt_evidence(d.rot, d.point, stale, sizeof(stale), e.csr, e.csr_len, ev, sizeof(ev));
    body = rt_enroll_body(e.csr, e.csr_len, ev, ev_len, stale, sizeof(stale));
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "application/json", body, strlen(body),
             &r);
    assert_code(&r, 400, "bad_challenge");
    rt_resp_free(&r);
    free(body);
    /* Nothing reached the registry or the verifier. */
    trellis_rstore_counts_t after = counts(f);
    assert_int_equal(after.devices, before.devices);
    assert_int_equal(after.challenges, before.challenges);
    assert_int_equal(after.audit, before.audit);
    assert_int_equal(atomic_load(&f->fv.calls), 0);
    /* And the good request still works afterwards. */
    assert_int_equal(rt_enroll_post(f->port, &f->env, &e, &r), 201);
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    rt_device_cleanup(&d);
}

/* One enrollment refused by the verifier's judgement: the code, and nothing recorded but the
 * consumed challenge and an audit entry of the refusal. */
static void refused(fixture_t *f, const rt_device_t *d, EVP_PKEY *signer, int tamper, int status,
                    const char *code)
{
    rt_enroll_t e;
    rt_resp_t r;
    trellis_rstore_counts_t before = counts(f);
    rt_enroll_prepare(f->port, &f->env, d, signer, &e);
    if (tamper) {
        /* One bit of the signature (the token's last bytes). */
        e.evidence[e.evidence_len - 1] ^= 0x01;
        free(e.body);
        e.body = rt_enroll_body(e.csr, e.csr_len, e.evidence, e.evidence_len, e.challenge,
                                e.challenge_len);
    }
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, status, code);
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    trellis_rstore_counts_t after = counts(f);
    assert_int_equal(after.devices, before.devices);
    assert_int_equal(after.certificates, before.certificates);
}

static void test_verdict_refusals(void **state)
{
    fixture_t *f = *state;
    rt_device_t mine, theirs, stranger, compromised;
    rt_device_init(&mine);
    rt_device_init(&theirs);
    rt_device_init(&stranger);
    rt_device_init(&compromised);
    rt_verifier_add(&f->fv, &mine, RT_OEM);
    rt_verifier_add(&f->fv, &theirs, "globex");
    rt_verifier_add(&f->fv, &compromised, RT_OEM);
    pthread_mutex_lock(&f->fv.lock);
    f->fv.revoked[2] = 1;
    pthread_mutex_unlock(&f->fv.lock);

    refused(f, &stranger, NULL, 0, 404, "unknown_device");
    refused(f, &theirs, NULL, 0, 404, "unknown_device");
    refused(f, &compromised, NULL, 0, 403, "revoked");
    /* Evidence signed by another device's RoT, and evidence altered in transit. */
    refused(f, &mine, stranger.rot, 0, 400, "bad_evidence");
    refused(f, &mine, NULL, 1, 400, "bad_evidence");
    assert_int_equal(atomic_load(&f->fv.calls), 5);
    /* The refusals are audited with the verdict's outcome. */
    assert_true(counts(f).audit >= 5);
    rt_device_cleanup(&mine);
    rt_device_cleanup(&theirs);
    rt_device_cleanup(&stranger);
    rt_device_cleanup(&compromised);
}

static void test_verifier_failures(void **state)
{
    fixture_t *f = *state;
    rt_device_t d;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    static const rt_fv_mode_t modes[] = {FV_WRONG_KEY, FV_EXPIRED,  FV_OTHER_DEVICE, FV_OTHER_OEM,
                                         FV_HTTP_500,  FV_HTTP_403, FV_GARBAGE};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        atomic_store(&f->fv.mode, modes[i]);
        rt_enroll_t e;
        rt_resp_t r;
        char retry[16];
        rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
        rt_enroll_post(f->port, &f->env, &e, &r);
        assert_code(&r, 503, "unavailable");
        assert_true(rt_header(&r, "Retry-After", retry, sizeof(retry)));
        assert_string_equal(retry, "1");
        rt_resp_free(&r);
        rt_enroll_cleanup(&e);
    }
    assert_int_equal(counts(f).certificates, 0);
    /* The verifier is down. */
    atomic_store(&f->fv.mode, FV_JUDGE);
    trellis_http_server_stop(f->fv.srv);
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, 503, "unavailable");
    char retry[16];
    assert_true(rt_header(&r, "Retry-After", retry, sizeof(retry)));
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    assert_int_equal(counts(f).certificates, 0);
    rt_device_cleanup(&d);
}

typedef struct {
    fixture_t *f;
    const char *body;
    int status;
} racer_t;

static void *race_post(void *arg)
{
    racer_t *x = arg;
    rt_resp_t r;
    x->status = rt_https(x->f->port, x->f->env.cfg.root_cert, NULL, NULL, "POST", "/v1/enroll",
                         "application/json", x->body, strlen(x->body), &r);
    rt_resp_free(&r);
    return NULL;
}

static void test_race_identical(void **state)
{
    fixture_t *f = *state;
    enum { N = 100 };
    rt_device_t d;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    rt_enroll_t e;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    pthread_t t[N];
    racer_t *x = calloc(N, sizeof(*x));
    assert_non_null(x);
    for (int i = 0; i < N; i++) {
        x[i].f = f;
        x[i].body = e.body;
        assert_int_equal(pthread_create(&t[i], NULL, race_post, &x[i]), 0);
    }
    int created = 0, replayed = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        created += x[i].status == 201;
        replayed += x[i].status == 409;
    }
    /* Exactly one certificate; the other 99 are told the request was used. */
    assert_int_equal(created, 1);
    assert_int_equal(replayed, N - 1);
    assert_int_equal(counts(f).certificates, 1);
    assert_int_equal(atomic_load(&f->fv.calls), 1);
    free(x);
    rt_enroll_cleanup(&e);
    rt_device_cleanup(&d);
}

typedef struct {
    fixture_t *f;
    rt_device_t d;
    int status;
} parallel_t;

static void *enroll_thread(void *arg)
{
    parallel_t *p = arg;
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(p->f->port, &p->f->env, &p->d, NULL, &e);
    p->status = rt_enroll_post(p->f->port, &p->f->env, &e, &r);
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_slow_verifier_does_not_serialize(void **state)
{
    fixture_t *f = *state;
    enum { N = 16, DELAY_MS = 300 };
    parallel_t *p = calloc(N, sizeof(*p));
    pthread_t t[N];
    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        p[i].f = f;
        rt_device_init(&p[i].d);
        rt_verifier_add(&f->fv, &p[i].d, RT_OEM);
    }
    atomic_store(&f->fv.delay_ms, DELAY_MS);
    uint64_t t0 = now_ms();
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, enroll_thread, &p[i]), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(p[i].status, 201);
    }
    uint64_t elapsed = now_ms() - t0;
    print_message("16 enrollments behind a %d ms verifier: %llu ms, %d at once at the verifier\n",
                  DELAY_MS, (unsigned long long)elapsed, atomic_load(&f->fv.max_in_flight));
    /* Serialized on two workers, at most two calls would ever be at the verifier at once; more
     * proves a waiting enrollment does not hold its loop. Counted, not timed, so a loaded
     * machine cannot fail it. */
    assert_true(atomic_load(&f->fv.max_in_flight) > 2);
    for (int i = 0; i < N; i++)
        rt_device_cleanup(&p[i].d);
    free(p);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void write_key(const char *path, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
}

static char *reenroll_body(const rt_device_t *d, EVP_PKEY *new_op, const char *cn)
{
    uint8_t csr[2048];
    size_t len = 0;
    char b64[4096];
    size_t n = 0;
    assert_int_equal(trellis_csr_build(new_op, cn != NULL ? cn : d->id, csr, sizeof(csr), &len),
                     TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(csr, len, b64, sizeof(b64), &n), TRELLIS_OK);
    char *body = malloc(n + 16);
    assert_non_null(body);
    snprintf(body, n + 16, "{\"csr\":\"%s\"}", b64);
    return body;
}

static int cert_revoked(fixture_t *f, const char *serial)
{
    trellis_rstore_t *s = rt_env_store(&f->env);
    trellis_rstore_cert_t c;
    assert_int_equal(s->cert_get(s->ctx, serial, &c), TRELLIS_OK);
    trellis_rstore_close(s);
    return c.revoked_ms > 0;
}

static void test_reenroll(void **state)
{
    fixture_t *f = *state;
    rt_device_t d;
    char serial[33], cert_path[RT_PATH], key_path[RT_PATH];
    rt_resp_t r;
    const char *ca = f->env.cfg.root_cert;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    char *chain = enroll_ok(f, &d, serial);
    rt_path(cert_path, sizeof(cert_path), f->env.root, "device.pem");
    rt_path(key_path, sizeof(key_path), f->env.root, "device.key");
    write_file(cert_path, chain);
    write_key(key_path, d.op);

    EVP_PKEY *op2 = NULL;
    assert_int_equal(trellis_p256_generate(&op2), TRELLIS_OK);
    char *body = reenroll_body(&d, op2, NULL);
    /* Without the device certificate. */
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/reenroll", "application/json", body,
             strlen(body), &r);
    assert_code(&r, 401, "bad_request");
    rt_resp_free(&r);
    /* With another device's subject in the CSR. */
    char *wrong = reenroll_body(&d, op2, "ffffffffffffffffffffffffffffffff");
    rt_https(f->port, ca, cert_path, key_path, "POST", "/v1/reenroll", "application/json", wrong,
             strlen(wrong), &r);
    assert_code(&r, 400, "bad_csr");
    rt_resp_free(&r);
    free(wrong);
    /* Renewed: a fresh certificate for the new key, the old one revoked. */
    assert_int_equal(rt_https(f->port, ca, cert_path, key_path, "POST", "/v1/reenroll",
                              "application/json", body, strlen(body), &r),
                     201);
    json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "device_id")), d.id);
    json_decref(o);
    rt_resp_free(&r);
    assert_true(cert_revoked(f, serial));
    /* The old certificate renews no more. */
    rt_https(f->port, ca, cert_path, key_path, "POST", "/v1/reenroll", "application/json", body,
             strlen(body), &r);
    assert_code(&r, 403, "revoked");
    rt_resp_free(&r);
    assert_int_equal(counts(f).certificates, 2);
    /* The CRL served lists the old serial: published right after the renewal, or within a
     * second when another publication was that recent. */
    int listed = 0;
    for (int i = 0; i < 30 && !listed; i++) {
        assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/v1/crl", NULL, NULL, 0, &r),
                         200);
        const unsigned char *p = (const unsigned char *)r.body;
        X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)r.body_len);
        assert_non_null(crl);
        listed = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) == 1;
        X509_CRL_free(crl);
        rt_resp_free(&r);
        if (!listed)
            usleep(100000);
    }
    assert_true(listed);
    free(body);
    free(chain);
    EVP_PKEY_free(op2);
    rt_device_cleanup(&d);
}

static void test_factory_reset(void **state)
{
    fixture_t *f = *state;
    rt_device_t d;
    char first[33], second[33];
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    free(enroll_ok(f, &d, first));
    /* replace (the default): allowed, the old certificate revoked. */
    free(enroll_ok(f, &d, second));
    assert_string_not_equal(first, second);
    assert_true(cert_revoked(f, first));
    assert_false(cert_revoked(f, second));
    /* deny: refused, nothing changes. */
    snprintf(f->env.cfg.reset_policy, sizeof(f->env.cfg.reset_policy), "deny");
    restart(f);
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, 409, "bad_request");
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    assert_false(cert_revoked(f, second));
    assert_int_equal(counts(f).certificates, 2);
    rt_device_cleanup(&d);
}

static void test_revoked_device(void **state)
{
    fixture_t *f = *state;
    rt_device_t d;
    char serial[33];
    trellis_reason_t why;
    uint64_t n = 0;
    rt_device_init(&d);
    rt_verifier_add(&f->fv, &d, RT_OEM);
    free(enroll_ok(f, &d, serial));
    assert_int_equal(trellis_registrar_revoke(&f->env.cfg, d.id, TRELLIS_CRL_REASON_KEY_COMPROMISE,
                                              "lost in transit", "admin", &n, &why),
                     TRELLIS_OK);
    assert_int_equal(n, 1);
    assert_true(cert_revoked(f, serial));
    assert_int_equal(trellis_registrar_revoke(&f->env.cfg, d.id, TRELLIS_CRL_REASON_UNSPECIFIED,
                                              "again", "admin", &n, &why),
                     TRELLIS_ERR_REVOKED);
    assert_int_equal(trellis_registrar_revoke(&f->env.cfg, "nope", TRELLIS_CRL_REASON_UNSPECIFIED,
                                              "x", "admin", &n, &why),
                     TRELLIS_ERR_INVALID_ARG);
    /* A revoked device cannot enroll, whatever its evidence. */
    rt_enroll_t e;
    rt_resp_t r;
    rt_enroll_prepare(f->port, &f->env, &d, NULL, &e);
    rt_enroll_post(f->port, &f->env, &e, &r);
    assert_code(&r, 403, "revoked");
    rt_resp_free(&r);
    rt_enroll_cleanup(&e);
    /* The service serves the CLI's CRL within its tick. */
    usleep(1300000);
    assert_int_equal(
        rt_https(f->port, f->env.cfg.root_cert, NULL, NULL, "GET", "/v1/crl", NULL, NULL, 0, &r),
        200);
    const unsigned char *p = (const unsigned char *)r.body;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)r.body_len);
    assert_non_null(crl);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
    X509_CRL_free(crl);
    rt_resp_free(&r);
    /* Reinstated, it enrolls again. */
    assert_int_equal(trellis_registrar_reinstate(&f->env.cfg, d.id, "admin", &why), TRELLIS_OK);
    assert_int_equal(trellis_registrar_reinstate(&f->env.cfg, d.id, "admin", &why),
                     TRELLIS_ERR_CONFLICT);
    free(enroll_ok(f, &d, NULL));
    rt_device_cleanup(&d);
}

typedef struct {
    fixture_t *f;
    const char *id;
    int delay_us;
    trellis_err_t err;
} revoker_t;

static void *revoke_thread(void *arg)
{
    revoker_t *x = arg;
    uint64_t n = 0;
    usleep((useconds_t)x->delay_us);
    x->err = trellis_registrar_revoke(&x->f->env.cfg, x->id, TRELLIS_CRL_REASON_KEY_COMPROMISE,
                                      "race", "admin", &n, NULL);
    return NULL;
}

typedef struct {
    int unrevoked;
} scan_t;

static int scan_cert(void *arg, const trellis_rstore_cert_t *c)
{
    scan_t *s = arg;
    if (c->revoked_ms == 0)
        s->unrevoked++;
    return 0;
}

static void test_revocation_races_enrollment(void **state)
{
    fixture_t *f = *state;
    /* A factory reset in flight (the verifier takes 50 ms) while the device is revoked: either
     * the enrollment lands first and its certificate is revoked with the device, or the
     * revocation lands first and the enrollment is refused. Never a valid certificate for a
     * revoked device. */
    atomic_store(&f->fv.delay_ms, 50);
    for (int round = 0; round < 6; round++) {
        rt_device_t d;
        trellis_reason_t why;
        rt_device_init(&d);
        rt_verifier_add(&f->fv, &d, RT_OEM);
        atomic_store(&f->fv.delay_ms, 0);
        free(enroll_ok(f, &d, NULL));
        atomic_store(&f->fv.delay_ms, 50);
        parallel_t p = {.f = f, .d = d};
        revoker_t x = {.f = f, .id = d.id, .delay_us = 20000 * round};
        pthread_t te, tr;
        assert_int_equal(pthread_create(&te, NULL, enroll_thread, &p), 0);
        assert_int_equal(pthread_create(&tr, NULL, revoke_thread, &x), 0);
        pthread_join(te, NULL);
        pthread_join(tr, NULL);
        assert_int_equal(x.err, TRELLIS_OK);
        assert_true(p.status == 201 || p.status == 403);
        trellis_rstore_t *s = rt_env_store(&f->env);
        scan_t scan = {0};
        assert_int_equal(s->cert_list(s->ctx, d.id, scan_cert, &scan), TRELLIS_OK);
        trellis_rstore_close(s);
        assert_int_equal(scan.unrevoked, 0);
        assert_int_equal(trellis_registrar_reinstate(&f->env.cfg, d.id, "admin", &why), TRELLIS_OK);
        rt_device_cleanup(&d);
    }
}

static void test_rate_limit(void **state)
{
    fixture_t *f = *state;
    rt_resp_t r;
    char retry[16];
    f->env.cfg.rate_limit = 1;
    f->env.cfg.rate_burst = 2;
    restart(f);
    const char *ca = f->env.cfg.root_cert;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            rt_https(f->port, ca, NULL, NULL, "GET", "/v1/challenge", NULL, NULL, 0, &r), 200);
        rt_resp_free(&r);
    }
    rt_https(f->port, ca, NULL, NULL, "GET", "/v1/challenge", NULL, NULL, 0, &r);
    assert_code(&r, 429, "rate_limited");
    assert_true(rt_header(&r, "Retry-After", retry, sizeof(retry)));
    assert_string_equal(retry, "1");
    rt_resp_free(&r);
    rt_https(f->port, ca, NULL, NULL, "POST", "/v1/enroll", "application/json", "{}", 2, &r);
    assert_code(&r, 429, "rate_limited");
    rt_resp_free(&r);
    /* The CA chain and the CRL are not limited. */
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/v1/ca", NULL, NULL, 0, &r), 200);
    rt_resp_free(&r);
    /* A token is back after a second. */
    usleep(1100000);
    assert_int_equal(rt_https(f->port, ca, NULL, NULL, "GET", "/v1/challenge", NULL, NULL, 0, &r),
                     200);
    rt_resp_free(&r);
}

int main(void)
{
    /* A client writing a body the server already refused must see EPIPE, not die. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enroll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_crl_health_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz_probes_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdict_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verifier_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_race_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_verifier_does_not_serialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reenroll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revocation_races_enrollment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
