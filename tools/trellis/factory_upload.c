/*
 * `trellis factory upload`: the manifest to the verifier's import API, over mutual TLS.
 *
 *   POST /v1/manifests   Content-Type: application/x-ndjson   (the manifest, streamed)
 *   200 {"status":"imported"|"already_present","devices":N}
 *   4xx {"error":CODE,"detail":TEXT,"lines":[...]}
 *
 * libcurl, blocking: this is a one-shot command, not a service.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#include "factory.h"

#define RESPONSE_MAX (64 * 1024) /* the import API answers a few hundred bytes */
#define IMPORT_PATH  "/v1/manifests"

typedef struct {
    char *buf;
    size_t len;
    int too_large;
} body_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    body_t *b = user;
    size_t n = size * nmemb;

    if (b->len + n > RESPONSE_MAX) {
        b->too_large = 1;
        return 0; /* aborts the transfer: an answer this large is not the import API's */
    }
    char *grown = realloc(b->buf, b->len + n + 1);
    if (grown == NULL) {
        return 0;
    }
    b->buf = grown;
    memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *user)
{
    FILE *fp = user;
    size_t n = fread(buf, 1, size * nitems, fp);
    if (n == 0 && ferror(fp)) {
        return CURL_READFUNC_ABORT;
    }
    return n;
}

static trellis_err_t parse_answer(const body_t *b, tr_upload_result_t *res,
                                  trellis_reason_t *reason)
{
    json_error_t jerr;
    json_t *o = NULL;
    json_t *v;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    if (b->buf == NULL || b->len == 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_HTTP, "HTTP %ld with an empty body",
                                  res->http_status);
    }
    o = json_loadb(b->buf, b->len, 0, &jerr);
    if (!json_is_object(o)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_HTTP, "HTTP %ld with a body that is not JSON",
                                 res->http_status);
        goto out;
    }
    v = json_object_get(o, "status");
    if (json_is_string(v)) {
        snprintf(res->status, sizeof(res->status), "%s", json_string_value(v));
    }
    v = json_object_get(o, "devices");
    if (json_is_integer(v)) {
        res->devices = (long long)json_integer_value(v);
    }
    v = json_object_get(o, "error");
    if (json_is_string(v)) {
        snprintf(res->error, sizeof(res->error), "%s", json_string_value(v));
    }
    v = json_object_get(o, "detail");
    if (json_is_string(v)) {
        snprintf(res->detail, sizeof(res->detail), "%s", json_string_value(v));
    }
    v = json_object_get(o, "lines");
    if (json_is_array(v)) {
        size_t i;
        json_t *line;
        json_array_foreach(v, i, line)
        {
            if (json_is_integer(line) && res->n_lines < TR_UPLOAD_LINES_MAX) {
                res->lines[res->n_lines++] = (long long)json_integer_value(line);
            }
        }
    }
    if (res->http_status == 200 && strcmp(res->status, "imported") != 0 &&
        strcmp(res->status, "already_present") != 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_HTTP, "HTTP 200 with an unknown status");
        goto out;
    }
    err = TRELLIS_OK;
out:
    json_decref(o);
    return err;
}

static CURLcode set_https_only(CURL *curl)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    return curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
#else
    return curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
}

trellis_err_t tr__factory_upload(const tr_upload_opts_t *o, tr_upload_result_t *res,
                                 trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    CURL *curl = NULL;
    struct curl_slist *headers = NULL;
    FILE *fp = NULL;
    body_t body = {NULL, 0, 0};
    char url[2048];
    char curl_err[CURL_ERROR_SIZE];
    struct stat st;
    CURLcode cc;
    size_t base_len;
    int curl_inited = 0;

    trellis_reason_clear(reason);
    if (res == NULL) {
        return TRELLIS_ERR_INVALID_ARG;
    }
    memset(res, 0, sizeof(*res));
    res->devices = -1;
    if (o == NULL || o->manifest == NULL || o->verifier_url == NULL || o->cert == NULL ||
        o->key == NULL || o->ca == NULL) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "the manifest, --verifier, --cert, --key and --ca are required");
    }
    /* The factory authenticates with its client certificate: only HTTPS makes sense. */
    if (strncmp(o->verifier_url, "https://", 8) != 0) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                  "--verifier must be an https:// URL");
    }
    base_len = strlen(o->verifier_url);
    while (base_len > 8 && o->verifier_url[base_len - 1] == '/') {
        base_len--;
    }
    int n = snprintf(url, sizeof(url), "%.*s%s", (int)base_len, o->verifier_url,
                     base_len >= strlen(IMPORT_PATH) &&
                             strncmp(o->verifier_url + base_len - strlen(IMPORT_PATH), IMPORT_PATH,
                                     strlen(IMPORT_PATH)) == 0
                         ? ""
                         : IMPORT_PATH);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--verifier URL too long");
    }
    fp = fopen(o->manifest, "rb");
    if (fp == NULL) {
        return trellis_reason_set(reason, errno == ENOENT ? TRELLIS_ERR_NOT_FOUND : TRELLIS_ERR_IO,
                                  "cannot open %s", o->manifest);
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "%s is not a regular file",
                                 o->manifest);
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    curl_inited = 1;
    curl = curl_easy_init();
    if (curl == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    headers = curl_slist_append(headers, "Content-Type: application/x-ndjson");
    /* No "Expect: 100-continue" round trip: the verifier reads the body as it comes. */
    headers = curl_slist_append(headers, "Expect:");
    if (headers == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    curl_err[0] = '\0';
    if (curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK || set_https_only(curl) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_POST, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_READDATA, fp) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_SSLCERT, o->cert) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_SSLKEY, o->key) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_CAINFO, o->ca) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_CAPATH, NULL) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, o->timeout_s > 0 ? o->timeout_s : 300L) !=
            CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err) != CURLE_OK) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "libcurl refused an option");
        goto out;
    }
    cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->http_status);
    if (cc != CURLE_OK) {
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
            err = TRELLIS_ERR_TIMEOUT;
            break;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
            err = TRELLIS_ERR_TLS;
            break;
        case CURLE_WRITE_ERROR:
            err = body.too_large ? TRELLIS_ERR_HTTP : TRELLIS_ERR_NOMEM;
            break;
        default:
            err = TRELLIS_ERR_UNAVAILABLE;
            break;
        }
        err = trellis_reason_set(reason, err, "%s: %s", url,
                                 curl_err[0] != '\0' ? curl_err : curl_easy_strerror(cc));
        goto out;
    }
    snprintf(res->body, sizeof(res->body), "%s", body.buf != NULL ? body.buf : "");
    err = parse_answer(&body, res, reason);
out:
    free(body.buf);
    curl_slist_free_all(headers);
    if (curl != NULL) {
        curl_easy_cleanup(curl);
    }
    if (curl_inited) {
        curl_global_cleanup();
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return err;
}
