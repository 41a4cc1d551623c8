#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "rtest_util.h"
#include "test_support.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/json.h"
#include "trellis/psa_token.h"
#include "trellis/verifier.h"

void rt_path(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

/* ---- devices ---- */

void rt_device_init(rt_device_t *d)
{
    memset(d, 0, sizeof(*d));
    assert_int_equal(trellis_p256_generate(&d->rot), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&d->op), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(d->rot, d->point), TRELLIS_OK);
    assert_int_equal(trellis_psa_device_id_from_point(d->point, d->id), TRELLIS_OK);
}

void rt_device_cleanup(rt_device_t *d)
{
    EVP_PKEY_free(d->rot);
    EVP_PKEY_free(d->op);
    memset(d, 0, sizeof(*d));
}

size_t rt_csr(const rt_device_t *d, const char *cn, uint8_t *out, size_t size)
{
    size_t len = 0;
    assert_int_equal(trellis_csr_build(d->op, cn != NULL ? cn : d->id, out, size, &len),
                     TRELLIS_OK);
    return len;
}

size_t rt_evidence(EVP_PKEY *signer, const uint8_t point[65], const uint8_t *challenge,
                   size_t challenge_len, const uint8_t *csr, size_t csr_len, uint8_t *out,
                   size_t size)
{
    trellis_psa_claims_t c;
    trellis_signer_t s;
    size_t len = 0;
    trellis_reason_t why;

    trellis_psa_claims_init(&c);
    assert_int_equal(trellis_sha256_two(challenge, challenge_len, csr, csr_len, c.nonce),
                     TRELLIS_OK);
    c.nonce_len = 32;
    c.has_instance_id = true;
    assert_int_equal(trellis_psa_ueid_from_point(point, c.instance_id), TRELLIS_OK);
    c.has_implementation_id = true;
    memset(c.implementation_id, 0x11, sizeof(c.implementation_id));
    c.has_client_id = true;
    c.client_id = -1;
    c.has_lifecycle = true;
    c.lifecycle = TRELLIS_PSA_LIFECYCLE_SECURED;
    c.boot_seed_len = 32;
    memset(c.boot_seed, 0x22, 32);
    c.sw_component_count = 1;
    c.sw_components[0].measurement_value_len = 32;
    memset(c.sw_components[0].measurement_value, 0x33, 32);
    assert_int_equal(trellis_signer_from_pkey(signer, &s), TRELLIS_OK);
    trellis_err_t err = trellis_psa_token_encode(&c, NULL, 0, &s, out, size, &len, &why);
    if (err != TRELLIS_OK)
        fail_msg("token encode: %s", why.text);
    return len;
}

static void b64(const uint8_t *data, size_t len, char **out)
{
    size_t need = trellis_b64url_encoded_len(len) + 1, n = 0;
    *out = malloc(need);
    assert_non_null(*out);
    assert_int_equal(trellis_b64url_encode(data, len, *out, need, &n), TRELLIS_OK);
}

char *rt_enroll_body(const uint8_t *csr, size_t csr_len, const uint8_t *ev, size_t ev_len,
                     const uint8_t *challenge, size_t challenge_len)
{
    char *a = NULL, *b = NULL, *c = NULL;
    b64(csr, csr_len, &a);
    b64(ev, ev_len, &b);
    b64(challenge, challenge_len, &c);
    size_t cap = strlen(a) + strlen(b) + strlen(c) + 64;
    char *body = malloc(cap);
    assert_non_null(body);
    snprintf(body, cap, "{\"csr\":\"%s\",\"evidence\":\"%s\",\"challenge\":\"%s\"}", a, b, c);
    free(a);
    free(b);
    free(c);
    return body;
}

/* ---- the environment ---- */

void rt_env_init(rt_env_t *env)
{
    trellis_reason_t why;
    char pub[RT_PATH];
    memset(env, 0, sizeof(*env));
    trellis_test_tmpdir(env->root, sizeof(env->root), "registrar");
    rt_path(env->dir, sizeof(env->dir), env->root, "reg");
    trellis_registrar_init_t init = {.dir = env->dir, .oem = RT_OEM};
    if (trellis_registrar_init_dir(&init, &why) != TRELLIS_OK)
        fail_msg("init: %s", why.text);
    assert_int_equal(trellis_test_pki_create(&env->pki), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&env->pki, RT_OEM, false, &env->oem), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&env->verdict_key), TRELLIS_OK);
    rt_path(pub, sizeof(pub), env->root, "verdict.pub.pem");
    assert_int_equal(trellis_p256_save_public_pem(env->verdict_key, pub), TRELLIS_OK);

    trellis_registrar_config_t *cfg = &env->cfg;
    assert_int_equal(trellis_conf_defaults(trellis_registrar_conf_spec(), cfg, &why), TRELLIS_OK);
    snprintf(cfg->dir, sizeof(cfg->dir), "%s", env->dir);
    snprintf(cfg->oem, sizeof(cfg->oem), "%s", RT_OEM);
    snprintf(cfg->log_level, sizeof(cfg->log_level), "error");
    cfg->port = 0;
    cfg->workers = 2;
    cfg->rate_limit = 0;
    cfg->durable = false;
    snprintf(cfg->verifier_ca, sizeof(cfg->verifier_ca), "%s", env->pki.ca_cert);
    snprintf(cfg->verifier_cert, sizeof(cfg->verifier_cert), "%s", env->oem.cert);
    snprintf(cfg->verifier_key, sizeof(cfg->verifier_key), "%s", env->oem.key);
    snprintf(cfg->verdict_key, sizeof(cfg->verdict_key), "%s", pub);
    snprintf(cfg->verifier_url, sizeof(cfg->verifier_url), "https://127.0.0.1:1");
    if (trellis_registrar_config_resolve(cfg, &why) != TRELLIS_OK)
        fail_msg("config: %s", why.text);
    assert_int_equal(tr__reg_challenge_secret_load(cfg->challenge_secret, env->secret, NULL),
                     TRELLIS_OK);
}

void rt_env_cleanup(rt_env_t *env)
{
    EVP_PKEY_free(env->verdict_key);
    trellis_test_pki_destroy(&env->pki);
    trellis_test_rmtree(env->root);
    memset(env, 0, sizeof(*env));
}

trellis_rstore_t *rt_env_store(const rt_env_t *env)
{
    trellis_rstore_t *s = NULL;
    assert_int_equal(trellis_registrar_open_store(&env->cfg, &s, NULL), TRELLIS_OK);
    return s;
}

/* ---- the fake verifier ---- */

typedef struct {
    rt_verifier_t *v;
    trellis_http_request_t *req;
    struct event *ev;
} fv_pending_t;

static void fv_json(trellis_http_request_t *req, const trellis_verdict_t *vd, EVP_PKEY *key,
                    const char *kid)
{
    char jws[TRELLIS_VERDICT_JWS_MAX + 1], body[TRELLIS_VERDICT_JWS_MAX + 64];
    size_t len = 0;
    assert_int_equal(trellis_verdict_sign(vd, key, kid, jws, sizeof(jws), &len), TRELLIS_OK);
    int n = snprintf(body, sizeof(body), "{\"verdict\":\"%s\",\"status\":\"%s\"}", jws,
                     trellis_verdict_status_name(vd->status));
    trellis_http_respond_json_text(req, 200, body, (size_t)n);
}

static void fv_contra(trellis_verdict_t *vd, const char *code)
{
    vd->status = TRELLIS_VERDICT_CONTRAINDICATED;
    vd->n_reasons = 1;
    snprintf(vd->reasons[0], sizeof(vd->reasons[0]), "%s", code);
}

static void fv_answer(rt_verifier_t *v, trellis_http_request_t *req)
{
    int mode = atomic_load(&v->mode);
    size_t len = 0, ev_len = 0, csr_len = 0, ch_len = 0, cn_len = 0;
    uint8_t ev[4096], csr[4096], ch[256], point[65];
    json_t *o = NULL;
    trellis_psa_claims_t claims;
    trellis_verdict_t vd;
    char caller[65] = "";
    EVP_PKEY *rot = NULL, *other = NULL;
    int found = -1;

    atomic_fetch_sub(&v->in_flight, 1);
    if (mode == FV_HTTP_500) {
        trellis_http_respond_error(req, TRELLIS_ERR_INTERNAL, "fake verifier failure");
        return;
    }
    if (mode == FV_HTTP_403) {
        trellis_http_respond_error(req, TRELLIS_ERR_PERMISSION, "not a registered OEM");
        return;
    }
    if (mode == FV_GARBAGE) {
        trellis_http_respond_json_text(req, 200, "{\"hello\":1}", 11);
        return;
    }
    const uint8_t *body = trellis_http_request_body(req, &len);
    if (trellis_json_parse_object((const char *)body, len, 65536, &o, NULL) != TRELLIS_OK ||
        trellis_json_get_b64url(o, "evidence", ev, sizeof(ev), &ev_len, NULL) != TRELLIS_OK ||
        trellis_json_get_b64url(o, "csr", csr, sizeof(csr), &csr_len, NULL) != TRELLIS_OK ||
        trellis_json_get_b64url(o, "challenge", ch, sizeof(ch), &ch_len, NULL) != TRELLIS_OK) {
        json_decref(o);
        trellis_http_respond_error(req, TRELLIS_ERR_PARSE, "bad verify body");
        return;
    }
    json_decref(o);
    if (trellis_psa_token_decode_unverified(ev, ev_len, &claims, NULL) != TRELLIS_OK) {
        trellis_http_respond_error(req, TRELLIS_ERR_TOKEN_MALFORMED, "not a PSA token");
        return;
    }
    trellis_http_request_peer_cn(req, caller, sizeof(caller), &cn_len);
    memset(&vd, 0, sizeof(vd));
    snprintf(vd.iss, sizeof(vd.iss), "trellis-verifier");
    vd.iat = (int64_t)time(NULL);
    vd.exp = vd.iat + TRELLIS_VERDICT_TTL_S;
    assert_int_equal(
        trellis_hex_encode(claims.instance_id + 1, 16, vd.device_id, sizeof(vd.device_id), &len),
        TRELLIS_OK);
    assert_int_equal(trellis_sha256(csr, csr_len, vd.csr_sha256), TRELLIS_OK);
    memcpy(vd.nonce, claims.nonce, claims.nonce_len);
    vd.nonce_len = claims.nonce_len;
    snprintf(vd.oem, sizeof(vd.oem), "%s", caller);
    vd.status = TRELLIS_VERDICT_AFFIRMING;

    pthread_mutex_lock(&v->lock);
    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->ids[i], vd.device_id) == 0 && strcmp(v->owners[i], caller) == 0) {
            found = (int)i;
            memcpy(point, v->points[i], sizeof(point));
        }
    }
    int revoked = found >= 0 && v->revoked[found];
    pthread_mutex_unlock(&v->lock);
    if (found < 0) {
        fv_contra(&vd, TRELLIS_VREASON_UNKNOWN_DEVICE);
    } else if (revoked) {
        fv_contra(&vd, TRELLIS_VREASON_REVOKED);
    } else {
        uint8_t nonce[32];
        trellis_psa_claims_t verified;
        assert_int_equal(trellis_sha256_two(ch, ch_len, csr, csr_len, nonce), TRELLIS_OK);
        assert_int_equal(trellis_p256_from_point(point, &rot), TRELLIS_OK);
        trellis_err_t err =
            trellis_psa_token_verify(ev, ev_len, rot, nonce, sizeof(nonce), &verified, NULL);
        if (err == TRELLIS_ERR_TOKEN_SIGNATURE)
            fv_contra(&vd, TRELLIS_VREASON_BAD_SIGNATURE);
        else if (err == TRELLIS_ERR_TOKEN_NONCE)
            fv_contra(&vd, TRELLIS_VREASON_NONCE_MISMATCH);
        else if (err != TRELLIS_OK)
            fv_contra(&vd, TRELLIS_VREASON_BAD_EVIDENCE);
    }
    EVP_PKEY_free(rot);
    EVP_PKEY *key = v->key;
    char kid[44];
    memcpy(kid, v->kid, sizeof(kid));
    if (mode == FV_WRONG_KEY) {
        assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
        key = other;
        assert_int_equal(trellis_verdict_kid(other, kid), TRELLIS_OK);
    } else if (mode == FV_EXPIRED) {
        vd.iat -= 400;
        vd.exp = vd.iat + 300;
    } else if (mode == FV_OTHER_DEVICE) {
        memset(vd.device_id, 'f', 32);
    } else if (mode == FV_OTHER_OEM) {
        snprintf(vd.oem, sizeof(vd.oem), "globex");
    }
    fv_json(req, &vd, key, kid);
    EVP_PKEY_free(other);
}

static void fv_timer(evutil_socket_t fd, short what, void *arg)
{
    fv_pending_t *p = arg;
    (void)fd;
    (void)what;
    event_free(p->ev);
    fv_answer(p->v, p->req);
    free(p);
}

static void fv_abort(trellis_http_request_t *req, void *arg)
{
    fv_pending_t *p = arg;
    (void)req;
    atomic_fetch_sub(&p->v->in_flight, 1);
    event_free(p->ev);
    free(p);
}

static void fv_handle(trellis_http_request_t *req, void *app)
{
    rt_verifier_t *v = app;
    atomic_fetch_add(&v->calls, 1);
    int now = atomic_fetch_add(&v->in_flight, 1) + 1;
    int max = atomic_load(&v->max_in_flight);
    while (now > max && !atomic_compare_exchange_weak(&v->max_in_flight, &max, now))
        ;
    int delay = atomic_load(&v->delay_ms);
    if (delay <= 0) {
        fv_answer(v, req);
        return;
    }
    fv_pending_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->v = v;
    p->req = req;
    p->ev = event_new(trellis_http_request_base(req), -1, 0, fv_timer, p);
    assert_non_null(p->ev);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    assert_int_equal(trellis_http_request_suspend(req, fv_abort, p), TRELLIS_OK);
    event_add(p->ev, &tv);
}

void rt_verifier_start(rt_verifier_t *v, rt_env_t *env)
{
    trellis_reason_t why;
    memset(v, 0, sizeof(*v));
    pthread_mutex_init(&v->lock, NULL);
    v->key = env->verdict_key;
    assert_int_equal(trellis_verdict_kid(v->key, v->kid), TRELLIS_OK);
    static const trellis_http_route_t routes[] = {
        {TRELLIS_HTTP_POST, "/v1/verify", fv_handle, TRELLIS_HTTP_ROUTE_JSON},
    };
    trellis_http_server_config_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.workers = 2;
    hc.cert_file = env->pki.server_cert;
    hc.key_file = env->pki.server_key;
    hc.client_auth = TRELLIS_HTTP_CLIENT_AUTH_REQUIRED;
    hc.client_ca_file = env->pki.ca_cert;
    hc.routes = routes;
    hc.n_routes = 1;
    hc.app = v;
    if (trellis_http_server_new(&hc, &v->srv, &why) != TRELLIS_OK ||
        trellis_http_server_start(v->srv, &why) != TRELLIS_OK)
        fail_msg("fake verifier: %s", why.text);
    snprintf(env->cfg.verifier_url, sizeof(env->cfg.verifier_url), "https://127.0.0.1:%u",
             (unsigned)trellis_http_server_port(v->srv));
}

void rt_verifier_add(rt_verifier_t *v, const rt_device_t *d, const char *owner)
{
    pthread_mutex_lock(&v->lock);
    assert_true(v->n < RT_FV_DEVICES);
    memcpy(v->ids[v->n], d->id, 33);
    memcpy(v->points[v->n], d->point, 65);
    snprintf(v->owners[v->n], sizeof(v->owners[v->n]), "%s", owner);
    v->revoked[v->n] = 0;
    v->n++;
    pthread_mutex_unlock(&v->lock);
}

void rt_verifier_stop(rt_verifier_t *v)
{
    trellis_http_server_free(v->srv);
    pthread_mutex_destroy(&v->lock);
    v->srv = NULL;
}

trellis_registrar_t *rt_registrar_start(rt_env_t *env)
{
    trellis_registrar_t *r = NULL;
    trellis_reason_t why;
    trellis_reason_clear(&why);
    if (trellis_registrar_new(&env->cfg, &r, &why) != TRELLIS_OK ||
        trellis_registrar_start(r, &why) != TRELLIS_OK)
        fail_msg("registrar: %s", why.text);
    return r;
}

/* ---- a blocking HTTPS client ---- */

/* declared_len: the Content-Length sent; only body_len bytes of body follow it. */
static int https(uint16_t port, const char *ca, const char *cert, const char *key,
                 const char *method, const char *path, const char *content_type, const void *body,
                 size_t body_len, size_t declared_len, rt_resp_t *r)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *bio = NULL;
    SSL *ssl = NULL;
    char target[64], head[1024];
    char *buf = NULL;
    size_t len = 0, cap = 0;

    memset(r, 0, sizeof(*r));
    r->status = -1;
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1");
    if (cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    }
    bio = BIO_new_ssl_connect(ctx);
    assert_non_null(bio);
    snprintf(target, sizeof(target), "127.0.0.1:%u", (unsigned)port);
    BIO_set_conn_hostname(bio, target);
    if (BIO_do_connect(bio) != 1 || BIO_do_handshake(bio) != 1)
        goto out;
    BIO_get_ssl(bio, &ssl);
    int fd = -1;
    BIO_get_fd(bio, &fd);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "%s%s%sContent-Length: %zu\r\n\r\n",
                     method, path, content_type != NULL ? "Content-Type: " : "",
                     content_type != NULL ? content_type : "", content_type != NULL ? "\r\n" : "",
                     declared_len);
    if (BIO_write(bio, head, n) != n)
        goto out;
    /* A server may answer (413) and close before the whole body is sent: read what it said
     * even when the write fails. */
    if (body_len > 0)
        (void)BIO_write(bio, body, (int)body_len);
    (void)BIO_flush(bio);
    for (;;) {
        if (cap - len < 16384) {
            cap = cap * 2 + 65536;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        int got = BIO_read(bio, buf + len, (int)(cap - len));
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    if (buf == NULL)
        goto out;
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1) {
        r->status = -1;
        goto out;
    }
    size_t head_len = (size_t)(end - buf);
    snprintf(r->head, sizeof(r->head), "%.*s", (int)head_len, buf);
    r->body_len = len - head_len - 4;
    r->body = malloc(r->body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
out:
    (void)ssl;
    free(buf);
    BIO_free_all(bio);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return r->status;
}

int rt_https(uint16_t port, const char *ca, const char *cert, const char *key, const char *method,
             const char *path, const char *content_type, const void *body, size_t body_len,
             rt_resp_t *r)
{
    return https(port, ca, cert, key, method, path, content_type, body, body_len, body_len, r);
}

int rt_https_declared(uint16_t port, const char *ca, const char *method, const char *path,
                      const char *content_type, size_t declared_len, rt_resp_t *r)
{
    return https(port, ca, NULL, NULL, method, path, content_type, NULL, 0, declared_len, r);
}

void rt_resp_free(rt_resp_t *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

bool rt_header(const rt_resp_t *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    const char *p = r->head;
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r\n");
            snprintf(out, size, "%.*s", (int)l, v);
            return true;
        }
    }
    return false;
}

void rt_error_code(const rt_resp_t *r, char *out, size_t size)
{
    json_t *o = r->body != NULL ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *code = o != NULL ? json_string_value(json_object_get(o, "error")) : NULL;
    snprintf(out, size, "%s", code != NULL ? code : "");
    json_decref(o);
}

size_t rt_challenge(uint16_t port, const rt_env_t *env, uint8_t *out, size_t size)
{
    rt_resp_t r;
    size_t len = 0;
    assert_int_equal(
        rt_https(port, env->cfg.root_cert, NULL, NULL, "GET", "/v1/challenge", NULL, NULL, 0, &r),
        200);
    json_t *o = json_loadb(r.body, r.body_len, 0, NULL);
    assert_non_null(o);
    const char *c = json_string_value(json_object_get(o, "challenge"));
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(o, "expires_in")),
                     env->cfg.challenge_ttl_ms / 1000);
    assert_int_equal(trellis_b64url_decode(c, strlen(c), out, size, &len), TRELLIS_OK);
    json_decref(o);
    rt_resp_free(&r);
    return len;
}

void rt_enroll_prepare(uint16_t port, const rt_env_t *env, const rt_device_t *d, EVP_PKEY *signer,
                       rt_enroll_t *e)
{
    memset(e, 0, sizeof(*e));
    e->challenge_len = rt_challenge(port, env, e->challenge, sizeof(e->challenge));
    e->csr_len = rt_csr(d, NULL, e->csr, sizeof(e->csr));
    e->evidence_len =
        rt_evidence(signer != NULL ? signer : d->rot, d->point, e->challenge, e->challenge_len,
                    e->csr, e->csr_len, e->evidence, sizeof(e->evidence));
    e->body = rt_enroll_body(e->csr, e->csr_len, e->evidence, e->evidence_len, e->challenge,
                             e->challenge_len);
}

void rt_enroll_cleanup(rt_enroll_t *e)
{
    free(e->body);
    memset(e, 0, sizeof(*e));
}

int rt_enroll_post(uint16_t port, const rt_env_t *env, const rt_enroll_t *e, rt_resp_t *r)
{
    return rt_https(port, env->cfg.root_cert, NULL, NULL, "POST", "/v1/enroll", "application/json",
                    e->body, strlen(e->body), r);
}
