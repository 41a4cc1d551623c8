/*
 * The verifier service in-process on a loopback port, exercised through real HTTPS with real
 * client certificates issued by `init` / add-oem / add-factory: imports, verdicts, tenant
 * isolation, the key endpoint, metrics, and every kind of bad input (each asserted to change
 * nothing in the registry).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>
#include <openssl/pem.h>

#include "test_support.h"
#include "tlsclient.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/http_server.h"
#include "trellis/psa_token.h"
#include "trellis/verifier.h"
#include "trellis/x509.h"
#include "verifier_internal.h"
#include "vtest_util.h"

#define N_DEV       6
#define UP_PART_MAX 400 /* the upload tests' part size: a few devices take several parts */
#define MAX_CONN    24

enum { CL_ACME, CL_BETA, CL_FAB, CL_NONE, CL_FOREIGN, CL_FAB2, N_CL };

typedef struct {
    char dir[256];
    trellis_verifier_config_t cfg;
    trellis_verifier_t *v;
    uint16_t port;
    EVP_PKEY *fkey;
    vt_device_t dev[N_DEV];
    SSL_CTX *ctx[N_CL];
    trellis_vstore_t *s; /* a reader of the registry, for assertions */
} fx_t;

static fx_t *g;

static const uint8_t CSR[] = "0\x82 a DER CSR stands here";
static const uint8_t CHAL[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

static SSL_CTX *client_ctx(const char *dir, const char *name)
{
    char cert[512], key[512], ca[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    if (name == NULL)
        return tc_ctx_new(ca, NULL, NULL);
    snprintf(cert, sizeof(cert), "%s/clients/%s/client.pem", dir, name);
    snprintf(key, sizeof(key), "%s/clients/%s/client.key", dir, name);
    SSL_CTX *ctx = tc_ctx_new(ca, cert, key);
    assert_non_null(ctx);
    return ctx;
}

/* A client certificate with a valid-looking CN from a CA the verifier does not know. */
static SSL_CTX *foreign_ctx(const char *dir)
{
    char cert[512], key[512], ca[512];
    EVP_PKEY *ca_key = NULL, *k = NULL;
    X509 *ca_cert = NULL, *c = NULL;
    assert_int_equal(trellis_p256_generate(&ca_key), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&k), TRELLIS_OK);
    trellis_x509_profile_t cp = {.kind = TRELLIS_X509_CA, .common_name = "Evil CA", .days = 2};
    trellis_x509_profile_t lp = {.kind = TRELLIS_X509_CLIENT, .common_name = "acme", .days = 2};
    assert_int_equal(trellis_x509_issue(&cp, ca_key, NULL, ca_key, &ca_cert, NULL), TRELLIS_OK);
    assert_int_equal(trellis_x509_issue(&lp, k, ca_cert, ca_key, &c, NULL), TRELLIS_OK);
    snprintf(cert, sizeof(cert), "%s/evil.pem", dir);
    snprintf(key, sizeof(key), "%s/evil.key", dir);
    assert_int_equal(trellis_x509_save_chain_pem(cert, &c, 1), TRELLIS_OK);
    assert_int_equal(trellis_p256_save_private_pem(k, key), TRELLIS_OK);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    SSL_CTX *ctx = tc_ctx_new(ca, cert, key);
    assert_non_null(ctx);
    X509_free(c);
    X509_free(ca_cert);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca_key);
    return ctx;
}

static int setup(void **state)
{
    char path[512];
    trellis_reason_t why;
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    /* Writes to a connection the server cut must fail with EPIPE, not end the test. */
    signal(SIGPIPE, SIG_IGN);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "service");
    trellis_verifier_init_t init = {.dir = f->dir, .verifier_id = "verifier-test"};
    if (trellis_verifier_init_dir(&init, &why) != TRELLIS_OK)
        fail_msg("init: %s", why.text);
    /* A second init of the same directory is refused and changes nothing. */
    assert_int_equal(trellis_verifier_init_dir(&init, &why), TRELLIS_ERR_EXISTS);

    assert_int_equal(trellis_conf_defaults(trellis_verifier_conf_spec(), &f->cfg, NULL),
                     TRELLIS_OK);
    snprintf(f->cfg.dir, sizeof(f->cfg.dir), "%s", f->dir);
    snprintf(f->cfg.verifier_id, sizeof(f->cfg.verifier_id), "verifier-test");
    f->cfg.port = 0;
    f->cfg.workers = 2;
    f->cfg.durable = false;
    f->cfg.request_timeout_ms = 1500;
    f->cfg.max_connections = MAX_CONN;
    f->cfg.manifest_max_body = 64 * 1024;
    /* Clients without a certificate get through the handshake, so the 401 paths are reached;
     * the default (certificates required) is tested in tests/integration/20-verifier.sh. */
    f->cfg.allow_anonymous = true;
    snprintf(f->cfg.log_level, sizeof(f->cfg.log_level), "warn");
    assert_int_equal(trellis_verifier_config_resolve(&f->cfg, &why), TRELLIS_OK);

    assert_int_equal(trellis_verifier_add_oem(&f->cfg, "acme", NULL, 0, NULL, &why), TRELLIS_OK);
    assert_int_equal(trellis_verifier_add_oem(&f->cfg, "beta", NULL, 0, NULL, &why), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&f->fkey), TRELLIS_OK);
    snprintf(path, sizeof(path), "%s/fab-1.pub.pem", f->dir);
    assert_int_equal(trellis_p256_save_public_pem(f->fkey, path), TRELLIS_OK);
    if (trellis_verifier_add_factory(&f->cfg, "fab-1", path, NULL, 0, NULL, &why) != TRELLIS_OK)
        fail_msg("add-factory: %s", why.text);
    /* A second factory, for uploads bound to the first. */
    if (trellis_verifier_add_factory(&f->cfg, "fab-2", path, NULL, 0, NULL, &why) != TRELLIS_OK)
        fail_msg("add-factory: %s", why.text);
    /* Names are one namespace across OEMs and factories. */
    assert_int_equal(trellis_verifier_add_factory(&f->cfg, "acme", path, NULL, 0, NULL, &why),
                     TRELLIS_ERR_EXISTS);

    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_init(&f->dev[i], i);
    if (trellis_verifier_new(&f->cfg, &f->v, &why) != TRELLIS_OK)
        fail_msg("new: %s", why.text);
    f->v->uploads.part_max = UP_PART_MAX;
    if (trellis_verifier_start(f->v, &why) != TRELLIS_OK)
        fail_msg("start: %s", why.text);
    f->port = trellis_verifier_port(f->v);
    assert_true(f->port > 0);
    f->ctx[CL_ACME] = client_ctx(f->dir, "acme");
    f->ctx[CL_BETA] = client_ctx(f->dir, "beta");
    f->ctx[CL_FAB] = client_ctx(f->dir, "fab-1");
    f->ctx[CL_NONE] = client_ctx(f->dir, NULL);
    f->ctx[CL_FOREIGN] = foreign_ctx(f->dir);
    f->ctx[CL_FAB2] = client_ctx(f->dir, "fab-2");
    assert_int_equal(trellis_verifier_open_store(&f->cfg, &f->s, NULL), TRELLIS_OK);
    g = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    trellis_verifier_free(f->v);
    trellis_vstore_close(f->s);
    for (int i = 0; i < N_CL; i++)
        SSL_CTX_free(f->ctx[i]);
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_cleanup(&f->dev[i]);
    EVP_PKEY_free(f->fkey);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* One request on a fresh connection. */
static int call(int client, const char *method, const char *path, const char *ctype,
                const void *body, size_t len, tc_response_t *resp)
{
    tc_conn_t c;
    if (tc_connect(&c, g->ctx[client], "127.0.0.1", g->port) != 0)
        return -1;
    int rc = tc_request(&c, method, path, ctype, body, len, resp);
    tc_close(&c);
    return rc;
}

static json_t *body_json(const tc_response_t *r)
{
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %.200s", r->body);
    return j;
}

static const char *str_member(json_t *j, const char *name)
{
    const char *s = json_string_value(json_object_get(j, name));
    return s != NULL ? s : "";
}

/* The registry's contents, without the audit log (rejections are audited). */
static trellis_vstore_counts_t registry(void)
{
    tr__audit_queue_flush(g->v->audit);
    return vt_counts(g->s);
}

static void assert_registry_unchanged(const trellis_vstore_counts_t *before)
{
    trellis_vstore_counts_t now = registry();
    assert_int_equal(now.oems, before->oems);
    assert_int_equal(now.factories, before->factories);
    assert_int_equal(now.manifests, before->manifests);
    assert_int_equal(now.devices, before->devices);
    assert_int_equal(now.revoked, before->revoked);
}

static char *manifest(size_t from, size_t to, const char *owner, const char *batch,
                      EVP_PKEY *signer, size_t *len)
{
    vt_manifest_spec_t spec = {.factory = "fab-1",
                               .owner = owner,
                               .batch = batch,
                               .count = -1,
                               .devices = &g->dev[from],
                               .n_devices = to - from,
                               .signer = signer != NULL ? signer : g->fkey};
    return vt_manifest_build(&spec, len);
}

static void post_manifest(int client, const char *text, size_t len, int want_status,
                          const char *want)
{
    tc_response_t r;
    assert_int_equal(call(client, "POST", "/v1/manifests", "application/x-ndjson", text, len, &r),
                     0);
    if (r.status != want_status)
        fail_msg("manifest: %d %s", r.status, r.body);
    json_t *j = body_json(&r);
    const char *got = want_status < 300 ? str_member(j, "status") : str_member(j, "error");
    if (strcmp(got, want) != 0)
        fail_msg("manifest: want %s, got %s", want, r.body);
    json_decref(j);
    tc_response_free(&r);
}

/* Devices 0..2 belong to acme, 3..4 to beta, 5 is never imported. */
static void import_fixture(void)
{
    size_t len = 0;
    char *text = manifest(0, 3, "acme", "b-acme", NULL, &len);
    post_manifest(CL_FAB, text, len, 200, "imported");
    post_manifest(CL_FAB, text, len, 200, "already_present");
    free(text);
    text = manifest(3, 5, "beta", "b-beta", NULL, &len);
    post_manifest(CL_FAB, text, len, 200, "imported");
    free(text);
}

static void test_import_over_https(void **state)
{
    (void)state;
    import_fixture();
    trellis_vstore_device_t d;
    assert_int_equal(g->s->device_get(g->s->ctx, g->dev[1].id, &d), TRELLIS_OK);
    assert_string_equal(d.owner, "acme");
    assert_string_equal(d.factory, "fab-1");
    assert_int_equal(g->s->device_get(g->s->ctx, g->dev[4].id, &d), TRELLIS_OK);
    assert_string_equal(d.owner, "beta");
    trellis_vstore_counts_t c = registry();
    assert_int_equal(c.devices, 5);
    assert_int_equal(c.manifests, 2);
}

static void test_manifest_bad_input(void **state)
{
    (void)state;
    size_t len = 0;
    tc_response_t r;
    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
    trellis_vstore_counts_t before = registry();

    char *text = manifest(5, 6, "acme", "b-new", NULL, &len);
    /* Wrong content type. */
    assert_int_equal(call(CL_FAB, "POST", "/v1/manifests", "application/json", text, len, &r), 0);
    assert_int_equal(r.status, 415);
    tc_response_free(&r);
    /* No client certificate. */
    assert_int_equal(call(CL_NONE, "POST", "/v1/manifests", "application/x-ndjson", text, len, &r),
                     0);
    assert_int_equal(r.status, 401);
    tc_response_free(&r);
    /* An OEM's certificate cannot upload a factory's manifest. */
    post_manifest(CL_ACME, text, len, 403, "bad_request");
    free(text);

    /* An unknown factory: beta's certificate, a manifest naming beta as its factory. */
    vt_manifest_spec_t spec = {.factory = "beta",
                               .owner = "acme",
                               .batch = "b-x",
                               .count = -1,
                               .devices = &g->dev[5],
                               .n_devices = 1,
                               .signer = g->fkey};
    text = vt_manifest_build(&spec, &len);
    post_manifest(CL_BETA, text, len, 403, "bad_request");
    free(text);

    /* A bad signature. */
    text = manifest(5, 6, "acme", "b-new", other, &len);
    post_manifest(CL_FAB, text, len, 400, "bad_request");
    free(text);

    /* A malformed line is named. */
    text = manifest(5, 6, "acme", "b-new", NULL, &len);
    char *rec = strstr(text, "\"model\"");
    rec[1] = 'M';
    assert_int_equal(call(CL_FAB, "POST", "/v1/manifests", "application/x-ndjson", text, len, &r),
                     0);
    assert_int_equal(r.status, 400);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "lines"), 0)), 2);
    assert_non_null(strstr(str_member(j, "detail"), "line 2"));
    json_decref(j);
    tc_response_free(&r);
    free(text);

    /* A record conflicting with a known device (another owner): 409 naming the line. */
    text = manifest(0, 2, "beta", "b-steal", NULL, &len);
    assert_int_equal(call(CL_FAB, "POST", "/v1/manifests", "application/x-ndjson", text, len, &r),
                     0);
    assert_int_equal(r.status, 409);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "lines")), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "lines"), 1)), 3);
    json_decref(j);
    tc_response_free(&r);
    free(text);

    /* Not a manifest at all. */
    post_manifest(CL_FAB, "hello\n", 6, 400, "bad_request");

    /* A body over the configured limit (64 KiB here) is cut off by the server. */
    size_t big_len = 80 * 1024;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    assert_int_equal(
        call(CL_FAB, "POST", "/v1/manifests", "application/x-ndjson", big, big_len, &r), 0);
    assert_int_equal(r.status, 413);
    tc_response_free(&r);
    free(big);

    assert_registry_unchanged(&before);
    EVP_PKEY_free(other);
}

static char *verify_body(const vt_device_t *d, EVP_PKEY *signer, size_t *len)
{
    uint8_t token[4096];
    char ev[6000], csr[200], chal[100];
    size_t n = 0;
    size_t tlen = vt_token_make(signer, d->point, CHAL, sizeof(CHAL), CSR, sizeof(CSR), 0, token,
                                sizeof(token));
    assert_int_equal(trellis_b64url_encode(token, tlen, ev, sizeof(ev), &n), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(CSR, sizeof(CSR), csr, sizeof(csr), &n), TRELLIS_OK);
    assert_int_equal(trellis_b64url_encode(CHAL, sizeof(CHAL), chal, sizeof(chal), &n), TRELLIS_OK);
    char *body = malloc(8000);
    int m = snprintf(body, 8000, "{\"evidence\":\"%s\",\"csr\":\"%s\",\"challenge\":\"%s\"}", ev,
                     csr, chal);
    *len = (size_t)m;
    return body;
}

static EVP_PKEY *verdict_pub(void)
{
    char path[512];
    EVP_PKEY *k = NULL;
    snprintf(path, sizeof(path), "%s/verdict.pub.pem", g->dir);
    assert_int_equal(trellis_p256_load_public_pem(path, &k), TRELLIS_OK);
    return k;
}

/* Verifies as client, checks the verdict's signature and returns its status and first reason. */
static trellis_verdict_t verify_as(int client, const vt_device_t *d, EVP_PKEY *signer)
{
    size_t len = 0;
    tc_response_t r;
    trellis_verdict_t v;
    trellis_reason_t why;
    char *body = verify_body(d, signer, &len);
    assert_int_equal(call(client, "POST", "/v1/verify", "application/json", body, len, &r), 0);
    if (r.status != 200)
        fail_msg("verify: %d %s", r.status, r.body);
    json_t *j = body_json(&r);
    const char *jws = str_member(j, "verdict");
    EVP_PKEY *k = verdict_pub();
    if (trellis_verdict_verify(jws, strlen(jws), k, (int64_t)time(NULL), &v, &why) != TRELLIS_OK)
        fail_msg("verdict: %s", why.text);
    assert_string_equal(str_member(j, "status"), trellis_verdict_status_name(v.status));
    assert_string_equal(v.iss, "verifier-test");
    EVP_PKEY_free(k);
    json_decref(j);
    tc_response_free(&r);
    free(body);
    return v;
}

typedef struct {
    char last_reason[256];
    int n;
} audit_seen_t;

static int last_audit(void *arg, const trellis_vstore_audit_t *e)
{
    audit_seen_t *a = arg;
    snprintf(a->last_reason, sizeof(a->last_reason), "%s", e->reason);
    a->n++;
    return 0;
}

static void test_verify_and_tenant_isolation(void **state)
{
    (void)state;
    trellis_vstore_counts_t before = registry();

    trellis_verdict_t v = verify_as(CL_ACME, &g->dev[0], g->dev[0].key);
    assert_int_equal(v.status, TRELLIS_VERDICT_AFFIRMING);
    assert_string_equal(v.device_id, g->dev[0].id);
    assert_string_equal(v.oem, "acme");

    /* beta cannot verify acme's device, and cannot tell it from one that does not exist. */
    trellis_verdict_t theirs = verify_as(CL_BETA, &g->dev[0], g->dev[0].key);
    trellis_verdict_t ghost = verify_as(CL_BETA, &g->dev[5], g->dev[5].key);
    assert_int_equal(theirs.status, TRELLIS_VERDICT_CONTRAINDICATED);
    assert_int_equal(ghost.status, TRELLIS_VERDICT_CONTRAINDICATED);
    assert_int_equal(theirs.n_reasons, 1);
    assert_int_equal(ghost.n_reasons, 1);
    assert_string_equal(theirs.reasons[0], "unknown_device");
    assert_string_equal(ghost.reasons[0], "unknown_device");
    /* Not even with a forged signature. */
    trellis_verdict_t forged = verify_as(CL_BETA, &g->dev[0], g->dev[5].key);
    assert_string_equal(forged.reasons[0], "unknown_device");

    /* The audit log knows which was which. */
    audit_seen_t a;
    tr__audit_queue_flush(g->v->audit);
    memset(&a, 0, sizeof(a));
    assert_int_equal(g->s->audit_list(g->s->ctx, g->dev[5].id, 0, 100, last_audit, &a), TRELLIS_OK);
    assert_int_equal(a.n, 1);
    assert_non_null(strstr(a.last_reason, "not in the registry"));
    memset(&a, 0, sizeof(a));
    assert_int_equal(g->s->audit_list(g->s->ctx, g->dev[0].id, 0, 100, last_audit, &a), TRELLIS_OK);
    assert_int_equal(a.n, 3);
    assert_non_null(strstr(a.last_reason, "owned by acme"));

    /* beta's own device is fine; a token not signed by the RoT key is not. */
    v = verify_as(CL_BETA, &g->dev[3], g->dev[3].key);
    assert_int_equal(v.status, TRELLIS_VERDICT_AFFIRMING);
    v = verify_as(CL_ACME, &g->dev[1], g->dev[2].key);
    assert_string_equal(v.reasons[0], "bad_signature");

    /* Revoked devices get negative verdicts from then on. */
    assert_int_equal(g->s->device_revoke(g->s->ctx, g->dev[2].id, "RoT compromised", "admin"),
                     TRELLIS_OK);
    v = verify_as(CL_ACME, &g->dev[2], g->dev[2].key);
    assert_string_equal(v.reasons[0], "revoked");
    before.revoked++;
    assert_registry_unchanged(&before);
}

static void expect_status(int client, const char *ctype, const char *body, size_t len, int status,
                          const char *code)
{
    tc_response_t r;
    assert_int_equal(call(client, "POST", "/v1/verify", ctype, body, len, &r), 0);
    if (r.status != status)
        fail_msg("want %d, got %d %s", status, r.status, r.body);
    if (code != NULL) {
        json_t *j = body_json(&r);
        assert_string_equal(str_member(j, "error"), code);
        json_decref(j);
    }
    tc_response_free(&r);
}

static void test_verify_bad_input(void **state)
{
    (void)state;
    size_t len = 0;
    trellis_vstore_counts_t before = registry();
    uint64_t audit_before = before.audit;
    char *body = verify_body(&g->dev[0], g->dev[0].key, &len);

    expect_status(CL_NONE, "application/json", body, len, 401, "bad_request");
    expect_status(CL_FAB, "application/json", body, len, 403, "bad_request");
    expect_status(CL_ACME, "text/plain", body, len, 415, NULL);
    expect_status(CL_ACME, NULL, body, len, 415, NULL);
    expect_status(CL_ACME, "application/json", "{\"evidence\":", 12, 400, "bad_request");
    expect_status(CL_ACME, "application/json", "{}", 2, 400, "bad_request");
    const char *bad_token = "{\"evidence\":\"2BKEQA\",\"csr\":\"AQ\",\"challenge\":\"AQ\"}";
    expect_status(CL_ACME, "application/json", bad_token, strlen(bad_token), 400, "bad_evidence");
    /* Over the verify API's 16 KiB but under the server's body limit. */
    size_t big_len = 20000;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    big[0] = '{';
    big[big_len - 1] = '}';
    expect_status(CL_ACME, "application/json", big, big_len, 413, "too_large");
    free(big);
    /* Unknown path and method. */
    tc_response_t r;
    assert_int_equal(call(CL_ACME, "GET", "/v1/verify", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 405);
    tc_response_free(&r);
    assert_int_equal(call(CL_ACME, "GET", "/v1/devices", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 404);
    tc_response_free(&r);

    /* A certificate from another CA fails the handshake (with TLS 1.3 the client learns it
     * from the server's alert, at its first read). */
    assert_int_equal(call(CL_FOREIGN, "POST", "/v1/verify", "application/json", body, len, &r), -1);

    free(body);
    assert_registry_unchanged(&before);
    /* None of these produced a verdict, so none was audited. */
    assert_int_equal(registry().audit, audit_before);
}

static void test_key_health_metrics(void **state)
{
    (void)state;
    tc_response_t r;
    assert_int_equal(call(CL_NONE, "GET", "/v1/verdict-key", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    const char *pem = str_member(j, "pem");
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    EVP_PKEY *want = verdict_pub();
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, want), 1);
    char kid[TRELLIS_JWK_KID_LEN + 1];
    assert_int_equal(trellis_verdict_kid(want, kid), TRELLIS_OK);
    assert_string_equal(str_member(j, "kid"), kid);
    char *jwk = json_dumps(json_object_get(j, "jwk"), JSON_COMPACT);
    EVP_PKEY *from_jwk = NULL;
    assert_int_equal(trellis_p256_from_jwk(jwk, strlen(jwk), &from_jwk, NULL), TRELLIS_OK);
    assert_int_equal(EVP_PKEY_eq(from_jwk, want), 1);
    free(jwk);
    EVP_PKEY_free(from_jwk);
    EVP_PKEY_free(k);
    EVP_PKEY_free(want);
    json_decref(j);
    tc_response_free(&r);

    assert_int_equal(call(CL_NONE, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(str_member(j, "status"), "ok");
    json_decref(j);
    tc_response_free(&r);

    (void)verify_as(CL_ACME, &g->dev[0], g->dev[0].key);
    assert_int_equal(call(CL_NONE, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "text/plain"));
    assert_non_null(strstr(r.body, "trellis_verifier_verdicts_total{status=\"affirming\"} "));
    assert_null(strstr(r.body, "trellis_verifier_verdicts_total{status=\"affirming\"} 0\n"));
    assert_non_null(strstr(r.body, "trellis_verifier_verify_duration_seconds_bucket{le=\"+Inf\"}"));
    assert_non_null(strstr(r.body, "trellis_verifier_requests_total{route=\"/v1/verify\","
                                   "code=\"200\"}"));
    assert_non_null(strstr(r.body, "trellis_verifier_manifests_total{outcome=\"imported\"} 2\n"));
    tc_response_free(&r);
}

/* Waits up to ms for the server to close c; 1 if it did. */
static int closed_by_server(tc_conn_t *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    char buf[256];
    for (int waited = 0; waited < ms; waited += 100) {
        if (poll(&p, 1, 100) > 0) {
            int n = SSL_read(c->ssl, buf, sizeof(buf));
            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

static void test_slow_clients_and_connection_cap(void **state)
{
    (void)state;
    trellis_vstore_counts_t before = registry();
    tc_conn_t slow;
    /* A client that trickles a request is cut off after the request timeout (1.5 s here). */
    assert_int_equal(tc_connect(&slow, g->ctx[CL_FAB], "127.0.0.1", g->port), 0);
    const char *part = "POST /v1/manifests HTTP/1.1\r\nContent-Type: application/x-ndjson\r\n";
    assert_int_equal(tc_write_raw(&slow, part, strlen(part)), 0);
    for (int i = 0; i < 5; i++) {
        usleep(400000);
        if (tc_write_raw(&slow, "X", 1) != 0)
            break;
    }
    assert_true(closed_by_server(&slow, 3000));
    tc_close(&slow);

    /* Over max-connections: the extra connections are closed at once, the others work. */
    static tc_conn_t conns[MAX_CONN + 8];
    int ok = 0;
    for (int i = 0; i < MAX_CONN + 8; i++) {
        if (tc_connect(&conns[i], g->ctx[CL_ACME], "127.0.0.1", g->port) == 0) {
            tc_response_t r;
            if (tc_request(&conns[i], "GET", "/healthz", NULL, NULL, 0, &r) == 0) {
                ok++;
                tc_response_free(&r);
            }
        }
    }
    assert_true(ok <= MAX_CONN);
    assert_true(ok >= MAX_CONN - 2);
    for (int i = 0; i < MAX_CONN + 8; i++)
        tc_close(&conns[i]);
    usleep(200000);
    tc_response_t r;
    assert_int_equal(call(CL_ACME, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    tc_response_free(&r);
    assert_registry_unchanged(&before);
}

static void test_keep_alive(void **state)
{
    (void)state;
    tc_conn_t c;
    size_t len = 0;
    char *body = verify_body(&g->dev[1], g->dev[1].key, &len);
    assert_int_equal(tc_connect(&c, g->ctx[CL_ACME], "127.0.0.1", g->port), 0);
    for (int i = 0; i < 20; i++) {
        tc_response_t r;
        assert_int_equal(tc_request(&c, "POST", "/v1/verify", "application/json", body, len, &r),
                         0);
        assert_int_equal(r.status, 200);
        assert_false(r.close);
        assert_non_null(strstr(r.body, "\"status\":\"affirming\""));
        tc_response_free(&r);
    }
    tc_close(&c);
    free(body);
}

/* Clients that send a verify request and leave before the answer. Another connection holds the
 * registry's write lock meanwhile, so every verdict is judged and then waits for its audit entry
 * while its client goes: the server aborts those requests, the writer still commits the entries
 * once the lock is released (one per verdict judged, nobody waiting for it), and the server
 * keeps answering. Under ASan and TSan this is also the race between a client leaving and the
 * audit writer handing the verdict back. */
static void test_clients_leave_before_verdict(void **state)
{
    (void)state;
    enum { N = 24 };
    static tc_conn_t conns[N];
    char head[256], db_path[512];
    size_t len = 0;
    char *body = verify_body(&g->dev[1], g->dev[1].key, &len);
    int hl = snprintf(head, sizeof(head),
                      "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      len);
    trellis_http_server_stats_t st0, st1;
    tr__audit_queue_flush(g->v->audit);
    trellis_vstore_counts_t c0 = vt_counts(g->s);
    trellis_http_server_stats(g->v->http, &st0);

    sqlite3 *lock = NULL;
    snprintf(db_path, sizeof(db_path), "%s/registry.db", g->dir);
    assert_int_equal(sqlite3_open(db_path, &lock), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    int opened = 0;
    for (int i = 0; i < N; i++) {
        if (tc_connect(&conns[i], g->ctx[CL_ACME], "127.0.0.1", g->port) != 0)
            continue;
        opened++;
        assert_int_equal(tc_write_raw(&conns[i], head, (size_t)hl), 0);
        assert_int_equal(tc_write_raw(&conns[i], body, len), 0);
    }
    assert_true(opened > N / 2);
    /* Every request judged and waiting for the audit writer, which waits for the lock. */
    for (int waited = 0; waited < 5000; waited += 20) {
        trellis_http_server_stats(g->v->http, &st1);
        if (st1.requests - st0.requests >= (uint64_t)opened)
            break;
        usleep(20000);
    }
    assert_int_equal(st1.requests - st0.requests, opened);
    for (int i = 0; i < N; i++)
        tc_close(&conns[i]);
    for (int waited = 0; waited < 5000; waited += 20) {
        trellis_http_server_stats(g->v->http, &st1);
        if (st1.requests_aborted - st0.requests_aborted >= (uint64_t)opened)
            break;
        usleep(20000);
    }
    /* Nobody was answered: all of them were aborted while their entries waited. */
    assert_int_equal(st1.requests_aborted - st0.requests_aborted, opened);
    trellis_vstore_counts_t mid = vt_counts(g->s);
    assert_int_equal(mid.audit, c0.audit);

    assert_int_equal(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    tr__audit_queue_flush(g->v->audit);
    trellis_vstore_counts_t c1 = vt_counts(g->s);
    assert_int_equal(c1.audit - c0.audit, opened);

    trellis_verdict_t v = verify_as(CL_ACME, &g->dev[1], g->dev[1].key);
    assert_int_equal(v.status, TRELLIS_VERDICT_AFFIRMING);
    /* Every connection is let go once its client has gone. */
    for (int waited = 0; waited < 3000; waited += 20) {
        trellis_http_server_stats(g->v->http, &st1);
        if (st1.connections_active == 0)
            break;
        usleep(20000);
    }
    assert_int_equal(st1.connections_active, 0);
    free(body);
}

/* ---- manifest uploads in parts ---- */

#define UP_PART UP_PART_MAX

/* One request on the upload API; fails the test unless the status is want. The answer's JSON
 * (caller json_decref's it). */
static json_t *up(int client, const char *method, const char *path, const char *ctype,
                  const void *body, size_t len, int want)
{
    tc_response_t r;
    assert_int_equal(call(client, method, path, ctype, body, len, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: want %d, got %d %s", method, path, want, r.status, r.body);
    json_t *j = body_json(&r);
    tc_response_free(&r);
    return j;
}

static void up_open(int client, char id[TR__UPLOAD_ID_HEX_LEN + 1])
{
    json_t *j = up(client, "POST", "/v1/manifests/uploads", NULL, NULL, 0, 201);
    assert_int_equal(strlen(str_member(j, "upload")), TR__UPLOAD_ID_HEX_LEN);
    snprintf(id, TR__UPLOAD_ID_HEX_LEN + 1, "%s", str_member(j, "upload"));
    assert_int_equal(json_integer_value(json_object_get(j, "part_max")), UP_PART);
    assert_int_equal(json_integer_value(json_object_get(j, "next_part")), 1);
    json_decref(j);
}

static json_t *up_part(int client, const char *id, unsigned part, const char *data, size_t len,
                       int want)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/manifests/uploads/part?upload=%s&part=%u", id, part);
    return up(client, "PUT", path, "application/octet-stream", data, len, want);
}

static json_t *up_commit(int client, const char *id, int want)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/manifests/uploads/commit?upload=%s", id);
    return up(client, "POST", path, NULL, NULL, 0, want);
}

static long long up_next_part(int client, const char *id, int want)
{
    char path[160];
    snprintf(path, sizeof(path), "/v1/manifests/uploads?upload=%s", id);
    json_t *j = up(client, "GET", path, NULL, NULL, 0, want);
    long long n = json_integer_value(json_object_get(j, "next_part"));
    json_decref(j);
    return n;
}

static void expect_error(json_t *j, const char *code, const char *detail_part)
{
    assert_string_equal(str_member(j, "error"), code);
    if (detail_part != NULL && strstr(str_member(j, "detail"), detail_part) == NULL)
        fail_msg("detail \"%s\" lacks \"%s\"", str_member(j, "detail"), detail_part);
    json_decref(j);
}

/* Sends every part of text; returns the number of parts. */
static unsigned up_all_parts(int client, const char *id, const char *text, size_t len)
{
    unsigned part = 0;
    for (size_t off = 0; off < len; off += UP_PART) {
        size_t n = len - off < UP_PART ? len - off : UP_PART;
        json_decref(up_part(client, id, ++part, text + off, n, 200));
    }
    return part;
}

static void up_devices(vt_device_t *d, size_t n, unsigned base)
{
    for (size_t i = 0; i < n; i++)
        vt_device_init(&d[i], base + (unsigned)i);
}

static char *up_manifest(const vt_device_t *d, size_t n, const char *batch, size_t *len)
{
    vt_manifest_spec_t spec = {.factory = "fab-1",
                               .owner = "acme",
                               .batch = batch,
                               .count = -1,
                               .devices = d,
                               .n_devices = n,
                               .signer = g->fkey};
    return vt_manifest_build(&spec, len);
}

static void test_upload_in_parts(void **state)
{
    (void)state;
    vt_device_t d[8];
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    char other[UP_PART];
    size_t len = 0;
    up_devices(d, 8, 100);
    char *text = up_manifest(d, 8, "b-parts", &len);
    assert_true(len > 3 * UP_PART);
    trellis_vstore_counts_t before = registry();

    up_open(CL_FAB, id);
    json_decref(up_part(CL_FAB, id, 1, text, UP_PART, 200));
    /* Out of order, a changed resend, oversize, empty, wrong type, bad queries: each refused,
     * the upload carries on where it was. */
    expect_error(up_part(CL_FAB, id, 3, text + UP_PART, UP_PART, 409), "bad_request",
                 "part 2 is next");
    memcpy(other, text, UP_PART);
    other[10] ^= 1;
    expect_error(up_part(CL_FAB, id, 1, other, UP_PART, 409), "bad_request", "already received");
    char *big = calloc(1, UP_PART + 1);
    assert_non_null(big);
    expect_error(up_part(CL_FAB, id, 2, big, UP_PART + 1, 413), "too_large", "1 to 400 bytes");
    free(big);
    expect_error(up_part(CL_FAB, id, 2, text, 0, 400), "bad_request", "1 to 400 bytes");
    expect_error(up(CL_FAB, "PUT", "/v1/manifests/uploads/part?upload=x&part=2",
                    "application/octet-stream", text, 10, 400),
                 "bad_request", "hex digits");
    char path[200];
    snprintf(path, sizeof(path), "/v1/manifests/uploads/part?upload=%s&part=02", id);
    expect_error(up(CL_FAB, "PUT", path, "application/octet-stream", text, 10, 400), "bad_request",
                 "part must be");
    snprintf(path, sizeof(path), "/v1/manifests/uploads/part?upload=%s&part=2&x=1", id);
    expect_error(up(CL_FAB, "PUT", path, "application/octet-stream", text, 10, 400), "bad_request",
                 "only upload and part");
    snprintf(path, sizeof(path), "/v1/manifests/uploads/part?upload=%s&part=2", id);
    expect_error(up(CL_FAB, "PUT", path, "application/x-ndjson", text, 10, 415), "bad_request",
                 NULL);
    /* Another tenant cannot see, feed, commit or abandon it: the same 404 as an unknown id. */
    expect_error(up_part(CL_ACME, id, 2, text + UP_PART, UP_PART, 404), "bad_request",
                 "no open upload");
    expect_error(up_part(CL_FAB2, id, 2, text + UP_PART, UP_PART, 404), "bad_request",
                 "no open upload");
    expect_error(up_commit(CL_FAB2, id, 404), "bad_request", "no open upload");
    snprintf(path, sizeof(path), "/v1/manifests/uploads?upload=%s", id);
    expect_error(up(CL_FAB2, "DELETE", path, NULL, NULL, 0, 404), "bad_request", NULL);
    expect_error(up(CL_NONE, "DELETE", path, NULL, NULL, 0, 401), "bad_request", NULL);
    assert_int_equal(up_next_part(CL_FAB, id, 200), 2);
    /* The last part again (a lost answer) is accepted and not fed twice. */
    json_decref(up_part(CL_FAB, id, 1, text, UP_PART, 200));
    assert_int_equal(up_next_part(CL_FAB, id, 200), 2);
    assert_registry_unchanged(&before);

    unsigned part = 1;
    for (size_t off = UP_PART; off < len; off += UP_PART) {
        size_t n = len - off < UP_PART ? len - off : UP_PART;
        json_decref(up_part(CL_FAB, id, ++part, text + off, n, 200));
    }
    assert_registry_unchanged(&before);
    json_t *j = up_commit(CL_FAB, id, 200);
    assert_string_equal(str_member(j, "status"), "imported");
    assert_int_equal(json_integer_value(json_object_get(j, "added")), 8);
    json_decref(j);
    trellis_vstore_counts_t after = registry();
    assert_int_equal(after.devices, before.devices + 8);
    assert_int_equal(after.manifests, before.manifests + 1);
    /* Committed: the id is gone. */
    expect_error(up_commit(CL_FAB, id, 404), "bad_request", "no open upload");

    /* The same manifest again, in parts or whole: a no-op. */
    up_open(CL_FAB, id);
    up_all_parts(CL_FAB, id, text, len);
    j = up_commit(CL_FAB, id, 200);
    assert_string_equal(str_member(j, "status"), "already_present");
    json_decref(j);
    post_manifest(CL_FAB, text, len, 200, "already_present");
    assert_registry_unchanged(&after);
    free(text);
    for (size_t i = 0; i < 8; i++)
        vt_device_cleanup(&d[i]);
}

static int count_audit(void *arg, const trellis_vstore_audit_t *e)
{
    int *n = arg;
    if (strcmp(e->event, "manifest.upload") == 0 && strcmp(e->outcome, "abandoned") == 0)
        (*n)++;
    return 0;
}

static int abandoned_audited(void)
{
    int n = 0;
    tr__audit_queue_flush(g->v->audit);
    assert_int_equal(g->s->audit_list(g->s->ctx, NULL, 0, 100000, count_audit, &n), TRELLIS_OK);
    return n;
}

static void test_upload_bad_input(void **state)
{
    (void)state;
    vt_device_t d[4];
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    char ids[TR__UPLOADS_MAX][TR__UPLOAD_ID_HEX_LEN + 1];
    char path[200];
    size_t len = 0;
    up_devices(d, 4, 200);
    char *text = up_manifest(d, 4, "b-bad-parts", &len);
    trellis_vstore_counts_t before = registry();

    /* Only a registered factory opens uploads. */
    expect_error(up(CL_ACME, "POST", "/v1/manifests/uploads", NULL, NULL, 0, 403), "bad_request",
                 "registered factory");
    expect_error(up(CL_NONE, "POST", "/v1/manifests/uploads", NULL, NULL, 0, 401), "bad_request",
                 NULL);
    expect_error(up(CL_FAB, "POST", "/v1/manifests/uploads?upload=1", NULL, NULL, 0, 400),
                 "bad_request", "no query");

    /* A commit before the last part: refused, the upload is over, nothing changed. */
    up_open(CL_FAB, id);
    json_decref(up_part(CL_FAB, id, 1, text, UP_PART, 200));
    expect_error(up_commit(CL_FAB, id, 400), "bad_request", "has no newline");
    assert_int_equal(up_next_part(CL_FAB, id, 404), 0);

    /* A bad record in a part ends the upload at once, naming the line. */
    char *bad = malloc(len);
    assert_non_null(bad);
    memcpy(bad, text, len);
    char *rec = strstr(bad, "\"device_id\":\"");
    assert_non_null(rec);
    rec[13] = rec[13] == '0' ? '1' : '0';
    up_open(CL_FAB, id);
    json_t *j = up_part(CL_FAB, id, 1, bad, UP_PART, 400);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "lines"), 0)), 2);
    expect_error(j, "bad_request", "line 2");
    expect_error(up_part(CL_FAB, id, 2, bad + UP_PART, UP_PART, 404), "bad_request", NULL);

    /* A manifest signed by another key: refused at the commit. */
    EVP_PKEY *rogue = NULL;
    assert_int_equal(trellis_p256_generate(&rogue), TRELLIS_OK);
    vt_manifest_spec_t spec = {.factory = "fab-1",
                               .owner = "acme",
                               .batch = "b-bad-parts",
                               .count = -1,
                               .devices = d,
                               .n_devices = 4,
                               .signer = rogue};
    size_t rlen = 0;
    char *forged = vt_manifest_build(&spec, &rlen);
    up_open(CL_FAB, id);
    up_all_parts(CL_FAB, id, forged, rlen);
    expect_error(up_commit(CL_FAB, id, 400), "bad_request", "signature does not verify");
    free(forged);
    EVP_PKEY_free(rogue);

    /* Abandoned by the factory. */
    int audited = abandoned_audited();
    up_open(CL_FAB, id);
    json_decref(up_part(CL_FAB, id, 1, text, UP_PART, 200));
    snprintf(path, sizeof(path), "/v1/manifests/uploads?upload=%s", id);
    j = up(CL_FAB, "DELETE", path, NULL, NULL, 0, 200);
    assert_string_equal(str_member(j, "status"), "abandoned");
    json_decref(j);
    expect_error(up_part(CL_FAB, id, 2, text + UP_PART, UP_PART, 404), "bad_request", NULL);
    assert_int_equal(abandoned_audited(), audited + 1);

    /* At most TR__UPLOADS_MAX open at once. */
    for (size_t i = 0; i < TR__UPLOADS_MAX; i++)
        up_open(CL_FAB, ids[i]);
    expect_error(up(CL_FAB, "POST", "/v1/manifests/uploads", NULL, NULL, 0, 503), "unavailable",
                 "too many");
    assert_int_equal(tr__uploads_open(g->v), TR__UPLOADS_MAX);

    /* Abandoned by silence: once idle past the time limit they are dropped (worker 0 sweeps
     * every second), with an audit entry each. */
    json_decref(up_part(CL_FAB, ids[0], 1, text, UP_PART, 200));
    pthread_mutex_lock(&g->v->uploads.lock);
    long long ttl = g->v->uploads.ttl_ms;
    g->v->uploads.ttl_ms = 200;
    pthread_mutex_unlock(&g->v->uploads.lock);
    for (int i = 0; i < 40 && tr__uploads_open(g->v) > 0; i++)
        usleep(100 * 1000);
    assert_int_equal(tr__uploads_open(g->v), 0);
    pthread_mutex_lock(&g->v->uploads.lock);
    g->v->uploads.ttl_ms = ttl;
    pthread_mutex_unlock(&g->v->uploads.lock);
    assert_int_equal(abandoned_audited(), audited + 1 + TR__UPLOADS_MAX);
    expect_error(up_part(CL_FAB, ids[0], 2, text + UP_PART, UP_PART, 404), "bad_request", NULL);
    char *metrics = NULL;
    size_t mlen = 0;
    assert_int_equal(trellis_verifier_metrics_text(g->v, &metrics, &mlen), TRELLIS_OK);
    assert_non_null(strstr(metrics, "trellis_verifier_manifest_uploads_open 0\n"));
    free(metrics);

    assert_registry_unchanged(&before);
    free(bad);
    free(text);
    for (size_t i = 0; i < 4; i++)
        vt_device_cleanup(&d[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_over_https),
        cmocka_unit_test(test_manifest_bad_input),
        cmocka_unit_test(test_verify_and_tenant_isolation),
        cmocka_unit_test(test_verify_bad_input),
        cmocka_unit_test(test_key_health_metrics),
        cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_clients_leave_before_verdict),
        cmocka_unit_test(test_upload_in_parts),
        cmocka_unit_test(test_upload_bad_input),
        cmocka_unit_test(test_slow_clients_and_connection_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
