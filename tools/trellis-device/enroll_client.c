/*
 * Enrollment over HTTPS with libcurl (design.md §2.2-2.7, §3): GET /v1/challenge, a fresh
 * operational P-256 key and its CSR (CN = device id), evidence from the RoT binding challenge and
 * CSR, POST /v1/enroll; renewal through POST /v1/reenroll over mutual TLS with the current
 * identity. The registrar is authenticated by the CA pinned at the factory and nothing else (no
 * system trust store), and only https is spoken.
 *
 * Every attempt ends as OK, RETRY (network trouble, 429/5xx, a stale or replayed challenge) or
 * REFUSED (a 4xx a retry will not change: bad_csr, bad_evidence, unknown_device, revoked, ...).
 * Retries back off exponentially with jitter and never come sooner than Retry-After asks, so a
 * mass power-on spreads itself out instead of hammering the registrar in lockstep.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "agent.h"
#include "trellis/clock.h"
#include "trellis/crypto.h"
#include "trellis/csr.h"
#include "trellis/json.h"
#include "trellis/log.h"
#include "trellis/trellis.h"

#define CERT_PEM_MAX (64 * 1024)
#define REQUEST_MAX  (64 * 1024)

typedef struct {
    char *data;
    size_t len;
    bool overflow;
} body_t;

typedef struct {
    long status;
    body_t body;
    long long retry_after_ms;
} response_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    body_t *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > TR__AGENT_RESPONSE_MAX) {
        b->overflow = true;
        return 0; /* aborts the transfer */
    }
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    response_t *r = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && n < 256 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
        char value[256];
        size_t len = n - (sizeof(name) - 1);
        memcpy(value, ptr + sizeof(name) - 1, len);
        value[len] = '\0';
        long long ms = tr__parse_retry_after(value, time(NULL));
        if (ms >= 0)
            r->retry_after_ms = ms;
    }
    return n;
}

long long tr__parse_retry_after(const char *value, time_t now)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char text[64];
    size_t n = 0;
    const char *p = value;

    if (value == NULL)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    while (p[n] != '\0' && p[n] != '\r' && p[n] != '\n' && n < sizeof(text) - 1) {
        text[n] = p[n];
        n++;
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    text[n] = '\0';
    if (n == 0)
        return -1;
    /* delay-seconds = 1*DIGIT (RFC 9110 §10.2.3); cap absurd values at a day. */
    bool digits = true;
    for (size_t i = 0; i < n; i++)
        digits = digits && isdigit((unsigned char)text[i]);
    if (digits) {
        if (n > 6)
            return 24LL * 3600 * 1000;
        long long s = strtoll(text, NULL, 10);
        return (s > 24 * 3600 ? 24LL * 3600 : s) * 1000;
    }
    /* HTTP-date, IMF-fixdate form: "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7). */
    char wday[4], mon[4];
    struct tm tm;
    int consumed = 0;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(text, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wday, &tm.tm_mday, mon, &tm.tm_year,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 7 ||
        (size_t)consumed != n)
        return -1;
    tm.tm_mon = -1;
    for (int i = 0; i < 12; i++) {
        if (strcmp(mon, months[i]) == 0)
            tm.tm_mon = i;
    }
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -1;
    tm.tm_year -= 1900;
    time_t at = timegm(&tm);
    if (at <= now)
        return 0;
    long long s = (long long)(at - now);
    return (s > 24 * 3600 ? 24LL * 3600 : s) * 1000;
}

long long tr__backoff_ms(long long base, long long max, int attempt, long long retry_after)
{
    long long cap = base;
    for (int i = 1; i < attempt && cap < max; i++)
        cap *= 2;
    if (cap > max)
        cap = max;
    /* Equal jitter: half fixed, half random, so retries neither bunch up nor come at once. */
    uint32_t r = 0;
    if (trellis_random((uint8_t *)&r, sizeof(r)) != TRELLIS_OK)
        r = 0x80000000u;
    long long d = cap / 2 + (long long)((double)(cap - cap / 2) * ((double)r / 4294967296.0));
    return d < retry_after ? retry_after : d;
}

static void result_set(tr__enroll_result_t *res, tr__enroll_outcome_t outcome, long status)
{
    res->outcome = outcome;
    res->http_status = status;
}

/* Classifies a non-2xx answer from its status and error body {"error", "detail"}. */
static void classify_error(const response_t *r, tr__enroll_result_t *res)
{
    json_t *o = NULL;
    const char *code = "", *detail = "";
    char clean[120];

    if (r->body.data != NULL &&
        trellis_json_parse_object(r->body.data, r->body.len, TR__AGENT_RESPONSE_MAX, &o, NULL) ==
            TRELLIS_OK) {
        const json_t *c = json_object_get(o, "error");
        const json_t *d = json_object_get(o, "detail");
        if (json_is_string(c))
            code = json_string_value(c);
        if (json_is_string(d))
            detail = json_string_value(d);
    }
    snprintf(res->error_code, sizeof(res->error_code), "%s", code);
    /* The detail comes from the network: keep it printable before it reaches a log line. */
    size_t i = 0;
    for (; detail[i] != '\0' && i < sizeof(clean) - 1; i++)
        clean[i] = isprint((unsigned char)detail[i]) ? detail[i] : ' ';
    clean[i] = '\0';
    for (char *p = res->error_code; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '_')
            *p = '?';
    }
    trellis_reason_set(&res->reason, TRELLIS_ERR_HTTP, "registrar answered %ld %s: %s", r->status,
                       res->error_code[0] != '\0' ? res->error_code : "(no code)", clean);
    res->retry_after_ms = r->retry_after_ms;
    bool retry = r->status == 429 || r->status >= 500 || strcmp(code, "bad_challenge") == 0 ||
                 strcmp(code, "replayed") == 0 || strcmp(code, "rate_limited") == 0 ||
                 strcmp(code, "unavailable") == 0;
    result_set(res, retry ? TR__ENROLL_RETRY : TR__ENROLL_REFUSED, r->status);
    json_decref(o);
}

/*
 * One HTTPS exchange with the registrar. body NULL makes a GET. With mtls, the identity bundle
 * is the client certificate. Transport failures become RETRY in res.
 */
static trellis_err_t exchange(tr__agent_t *a, const char *path, const char *body, bool mtls,
                              response_t *r, tr__enroll_result_t *res)
{
    char url[TRELLIS_DEVICE_URL_MAX + 64];
    char identity[TR__AGENT_PATH_MAX];
    char errbuf[CURL_ERROR_SIZE];
    CURL *c = NULL;
    struct curl_slist *headers = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(r, 0, sizeof(*r));
    errbuf[0] = '\0';
    if (a->registrar_url[0] == '\0') {
        err = trellis_reason_set(&res->reason, TRELLIS_ERR_CONFIG,
                                 "no registrar URL (factory.json or --registrar-url)");
        result_set(res, TR__ENROLL_REFUSED, 0);
        goto out;
    }
    if (a->registrar_ca_pem == NULL) {
        /* Fail closed: without a pinned CA anyone could play the registrar. */
        err = trellis_reason_set(&res->reason, TRELLIS_ERR_CONFIG,
                                 "no pinned registrar CA (factory.json or --registrar-ca)");
        result_set(res, TR__ENROLL_REFUSED, 0);
        goto out;
    }
    if (snprintf(url, sizeof(url), "%s%s", a->registrar_url, path) >= (int)sizeof(url) ||
        tr__agent_path(a, TR__AGENT_IDENTITY, identity) != TRELLIS_OK) {
        err = TRELLIS_ERR_INVALID_ARG;
        goto out;
    }
    c = curl_easy_init();
    if (c == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    struct curl_blob ca = {
        .data = a->registrar_ca_pem, .len = a->registrar_ca_len, .flags = CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)a->cfg.http_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)a->cfg.http_timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "trellis-device/" TRELLIS_VERSION);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        /* No "Expect: 100-continue" round trip for a body of a few KiB. */
        headers = curl_slist_append(headers, "Expect:");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (headers == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (mtls) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, identity);
        curl_easy_setopt(c, CURLOPT_SSLKEY, identity);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        err = trellis_reason_set(&res->reason,
                                 r->body.overflow ? TRELLIS_ERR_TOO_LARGE : TRELLIS_ERR_UNAVAILABLE,
                                 "%s %s: %s", body != NULL ? "POST" : "GET", path,
                                 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        result_set(res, TR__ENROLL_RETRY, 0);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    err = TRELLIS_OK;
out:
    curl_slist_free_all(headers);
    if (c != NULL)
        curl_easy_cleanup(c);
    return err;
}

static void response_free(response_t *r)
{
    free(r->body.data);
    memset(r, 0, sizeof(*r));
}

trellis_err_t tr__enroll_challenge(tr__agent_t *a, uint8_t *buf, size_t buf_size, size_t *len,
                                   tr__enroll_result_t *res)
{
    response_t r;
    json_t *o = NULL;
    trellis_err_t err = exchange(a, "/v1/challenge", NULL, false, &r, res);

    *len = 0;
    if (err != TRELLIS_OK)
        goto out;
    if (r.status != 200) {
        classify_error(&r, res);
        err = TRELLIS_ERR_HTTP;
        goto out;
    }
    err = trellis_json_parse_object(r.body.data, r.body.len, TR__AGENT_RESPONSE_MAX, &o,
                                    &res->reason);
    if (err == TRELLIS_OK)
        err = trellis_json_get_b64url(o, "challenge", buf, buf_size, len, &res->reason);
    if (err == TRELLIS_OK && *len == 0)
        err = trellis_reason_set(&res->reason, TRELLIS_ERR_PARSE, "empty challenge");
    if (err != TRELLIS_OK) {
        result_set(res, TR__ENROLL_RETRY, r.status);
        goto out;
    }
    result_set(res, TR__ENROLL_OK, r.status);
out:
    json_decref(o);
    response_free(&r);
    return err;
}

/* Evidence from the RoT for (challenge, csr): opens the RoT for just this signature. */
static trellis_err_t make_evidence(tr__agent_t *a, const uint8_t *challenge, size_t challenge_len,
                                   const uint8_t *csr, size_t csr_len, uint8_t *out,
                                   size_t out_size, size_t *out_len, trellis_reason_t *reason)
{
    trellis_device_rot_t rot;
    trellis_device_rot_options_t opts;
    memset(&rot, 0, sizeof(rot));
    memset(&opts, 0, sizeof(opts));
    opts.pkcs11_module = a->cfg.pkcs11_module[0] != '\0' ? a->cfg.pkcs11_module : NULL;
    opts.pin = a->cfg.pkcs11_pin[0] != '\0' ? a->cfg.pkcs11_pin : NULL;
    trellis_err_t err = trellis_device_rot_open(&rot, a->state_dir, &a->factory, &opts, reason);
    if (err != TRELLIS_OK)
        return err;
    err = trellis_device_evidence(&rot.port, challenge, challenge_len, csr, csr_len, out, out_size,
                                  out_len);
    if (err != TRELLIS_OK)
        trellis_reason_set(reason, err, "cannot make evidence: %s", trellis_err_message(err));
    trellis_device_rot_close(&rot);
    return err;
}

/* {"csr": B64 [, "evidence": B64, "challenge": B64]} for a new key. */
static trellis_err_t build_body(tr__agent_t *a, const uint8_t *challenge, size_t challenge_len,
                                EVP_PKEY **key_out, char **body_out, trellis_reason_t *reason)
{
    EVP_PKEY *key = NULL;
    uint8_t csr[TRELLIS_CSR_DER_MAX];
    size_t csr_len = 0;
    uint8_t evidence[TRELLIS_EVIDENCE_MAX];
    size_t evidence_len = 0;
    json_t *o = NULL;
    char *text = NULL;
    trellis_err_t err = trellis_p256_generate(&key);

    *key_out = NULL;
    *body_out = NULL;
    if (err == TRELLIS_OK)
        err = trellis_csr_build(key, a->factory.device_id, csr, sizeof(csr), &csr_len);
    if (err != TRELLIS_OK) {
        err = trellis_reason_set(reason, err, "cannot build the CSR: %s", trellis_err_message(err));
        goto out;
    }
    if (challenge != NULL) {
        err = make_evidence(a, challenge, challenge_len, csr, csr_len, evidence, sizeof(evidence),
                            &evidence_len, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    o = json_object();
    if (o == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = trellis_json_set_b64url(o, "csr", csr, csr_len);
    if (err == TRELLIS_OK && challenge != NULL)
        err = trellis_json_set_b64url(o, "evidence", evidence, evidence_len);
    /* The registrar's challenges are stateless (a MAC over their expiry), so the request
     * carries the challenge back next to the evidence bound to it (docs/registrar-api.md). */
    if (err == TRELLIS_OK && challenge != NULL)
        err = trellis_json_set_b64url(o, "challenge", challenge, challenge_len);
    if (err == TRELLIS_OK)
        err = trellis_json_dump(o, &text, NULL);
    if (err != TRELLIS_OK)
        goto out;
    *key_out = key;
    key = NULL;
    *body_out = strdup(text);
    if (*body_out == NULL) {
        EVP_PKEY_free(*key_out);
        *key_out = NULL;
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    err = TRELLIS_OK;
out:
    trellis_json_text_free(text);
    json_decref(o);
    EVP_PKEY_free(key);
    return err;
}

trellis_err_t tr__enroll_build_request(tr__agent_t *a, const uint8_t *challenge,
                                       size_t challenge_len, EVP_PKEY **key_out, char **body_out,
                                       tr__enroll_result_t *res)
{
    uint8_t fetched[TRELLIS_EVIDENCE_CHALLENGE_MAX];
    size_t fetched_len = 0;
    memset(res, 0, sizeof(*res));
    if (challenge == NULL) {
        trellis_err_t err = tr__enroll_challenge(a, fetched, sizeof(fetched), &fetched_len, res);
        if (err != TRELLIS_OK)
            return err;
        challenge = fetched;
        challenge_len = fetched_len;
    }
    trellis_err_t err = build_body(a, challenge, challenge_len, key_out, body_out, &res->reason);
    result_set(res, err == TRELLIS_OK ? TR__ENROLL_OK : TR__ENROLL_REFUSED, 0);
    return err;
}

/* Takes the 201 answer {"device_id", "certificate", "not_after"} and installs it. */
static trellis_err_t take_certificate(tr__agent_t *a, const response_t *r, EVP_PKEY *key,
                                      tr__identity_t *out, tr__enroll_result_t *res)
{
    json_t *o = NULL;
    const char *id = NULL, *pem = NULL;
    size_t pem_len = 0;
    trellis_err_t err = trellis_json_parse_object(r->body.data, r->body.len, TR__AGENT_RESPONSE_MAX,
                                                  &o, &res->reason);
    if (err == TRELLIS_OK)
        err =
            trellis_json_get_string(o, "device_id", TRELLIS_DEVICE_ID_LEN, &id, NULL, &res->reason);
    if (err == TRELLIS_OK)
        err = trellis_json_get_string(o, "certificate", CERT_PEM_MAX, &pem, &pem_len, &res->reason);
    if (err == TRELLIS_OK && strcmp(id, a->factory.device_id) != 0)
        err = trellis_reason_set(&res->reason, TRELLIS_ERR_PERMISSION,
                                 "the registrar answered for another device");
    if (err == TRELLIS_OK)
        err = tr__identity_install(a, key, pem, pem_len, out, &res->reason);
    json_decref(o);
    /* A certificate we cannot use is as good as none: try again from the start. */
    result_set(res, err == TRELLIS_OK ? TR__ENROLL_OK : TR__ENROLL_RETRY, r->status);
    return err;
}

/* POSTs body to path (over mutual TLS with the current identity when mutual) and installs the
 * certificate a 201 carries for key; any other answer is classified into res. */
static trellis_err_t submit(tr__agent_t *a, const char *path, bool mutual, const char *body,
                            EVP_PKEY *key, tr__identity_t *out, tr__enroll_result_t *res)
{
    response_t r = {0};
    trellis_err_t err = exchange(a, path, body, mutual, &r, res);
    if (err == TRELLIS_OK && r.status != 201) {
        classify_error(&r, res);
        err = TRELLIS_ERR_HTTP;
    } else if (err == TRELLIS_OK) {
        err = take_certificate(a, &r, key, out, res);
    }
    response_free(&r);
    return err;
}

trellis_err_t tr__enroll_once(tr__agent_t *a, tr__identity_t *out, tr__enroll_result_t *res)
{
    EVP_PKEY *key = NULL;
    char *body = NULL;
    trellis_err_t err = tr__enroll_build_request(a, NULL, 0, &key, &body, res);

    if (err == TRELLIS_OK)
        err = submit(a, "/v1/enroll", false, body, key, out, res);
    if (body != NULL) {
        OPENSSL_cleanse(body, strlen(body));
        free(body);
    }
    EVP_PKEY_free(key);
    return err;
}

trellis_err_t tr__reenroll_once(tr__agent_t *a, tr__identity_t *out, tr__enroll_result_t *res)
{
    EVP_PKEY *key = NULL;
    char *body = NULL;
    memset(res, 0, sizeof(*res));
    trellis_err_t err = build_body(a, NULL, 0, &key, &body, &res->reason);

    if (err != TRELLIS_OK)
        result_set(res, TR__ENROLL_REFUSED, 0);
    else
        err = submit(a, "/v1/reenroll", true, body, key, out, res);
    free(body);
    EVP_PKEY_free(key);
    return err;
}

trellis_err_t tr__enroll_with_retries(tr__agent_t *a, tr__identity_t *out, tr__enroll_result_t *res)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    for (int attempt = 1;; attempt++) {
        int64_t t0 = trellis_mono_ms();
        err = tr__enroll_once(a, out, res);
        if (err == TRELLIS_OK) {
            trellis_log(
                TRELLIS_LOG_INFO, "enroll.ok", TRELLIS_KV_STR("device", a->factory.device_id),
                TRELLIS_KV_STR("serial", out->serial_hex), TRELLIS_KV_INT("attempt", attempt),
                TRELLIS_KV_INT("ms", (long long)(trellis_mono_ms() - t0)));
            return TRELLIS_OK;
        }
        bool last = res->outcome == TR__ENROLL_REFUSED ||
                    (a->cfg.attempts > 0 && attempt >= a->cfg.attempts) ||
                    (a->stop != NULL && *a->stop);
        long long delay = last ? 0
                               : tr__backoff_ms(a->cfg.retry_base_ms, a->cfg.retry_max_ms, attempt,
                                                res->retry_after_ms);
        trellis_log(last ? TRELLIS_LOG_ERROR : TRELLIS_LOG_WARN, "enroll.failed",
                    TRELLIS_KV_STR("device", a->factory.device_id),
                    TRELLIS_KV_INT("attempt", attempt), TRELLIS_KV_STR("code", res->error_code),
                    TRELLIS_KV_STR("reason", res->reason.text),
                    TRELLIS_KV_INT("retry_in_ms", delay));
        if (last)
            return err;
        tr__sleep_ms(delay, a->stop);
    }
}
