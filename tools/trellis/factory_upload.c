/*
 * `trellis factory upload`: the manifest to the verifier's import API, over mutual TLS.
 *
 *   POST /v1/manifests   Content-Type: application/x-ndjson   (the manifest, streamed)
 *   200 {"status":"imported"|"already_present","devices":N}
 *   4xx {"error":CODE,"detail":TEXT,"lines":[...]}
 *
 * A manifest over SINGLE_MAX goes up in parts instead (docs/verifier-api.md, "Large
 * manifests"), since one request body is capped by the verifier: POST /v1/manifests/uploads
 * opens an upload, each part is PUT in order (a part whose answer was lost is sent again: the
 * verifier takes a resent last part as a no-op), and POST .../commit answers like
 * POST /v1/manifests. Only one part is in memory at a time.
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

#define RESPONSE_MAX  (64 * 1024) /* the import API answers a few hundred bytes */
#define IMPORT_PATH   "/v1/manifests"
#define UPLOADS_PATH  "/v1/manifests/uploads"
#define SINGLE_MAX    (1024 * 1024)     /* larger manifests go up in parts */
#define PART_MAX      (4 * 1024 * 1024) /* the client's own cap on a part */
#define PART_ATTEMPTS 3                 /* a part is sent again after a transport failure */
#define ID_LEN        32

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

static trellis_err_t curl_error(CURLcode cc, const body_t *b)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return TRELLIS_ERR_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CIPHER:
        return TRELLIS_ERR_TLS;
    case CURLE_WRITE_ERROR:
        return b->too_large ? TRELLIS_ERR_HTTP : TRELLIS_ERR_NOMEM;
    default:
        return TRELLIS_ERR_UNAVAILABLE;
    }
}

/* One request of the upload protocol: method on url with data (len bytes, may be 0) from
 * memory; the answer in *b (reset first) and its status in *status. */
static trellis_err_t part_request(CURL *curl, const tr_upload_opts_t *o, struct curl_slist *headers,
                                  const char *method, const char *url, const char *data, size_t len,
                                  body_t *b, long *status, trellis_reason_t *reason)
{
    char curl_err[CURL_ERROR_SIZE];

    free(b->buf);
    b->buf = NULL;
    b->len = 0;
    b->too_large = 0;
    *status = 0;
    curl_easy_reset(curl);
    curl_err[0] = '\0';
    if (curl_easy_setopt(curl, CURLOPT_URL, url) != CURLE_OK || set_https_only(curl) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
        (strcmp(method, "DELETE") != 0 &&
         (curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data != NULL ? data : "") != CURLE_OK ||
          curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK)) ||
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, b) != CURLE_OK ||
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
        return trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "libcurl refused an option");
    }
    CURLcode cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    if (cc != CURLE_OK) {
        return trellis_reason_set(reason, curl_error(cc, b), "%s: %s", url,
                                  curl_err[0] != '\0' ? curl_err : curl_easy_strerror(cc));
    }
    return TRELLIS_OK;
}

/*
 * The upload in parts. Returns TRELLIS_OK with *b the final answer and *status its status
 * (that of the commit, or of the first refusal), or a transport error. On any refusal or
 * failure after the upload was opened, it is abandoned (DELETE, best effort).
 */
static trellis_err_t upload_in_parts(CURL *curl, const tr_upload_opts_t *o, const char *root,
                                     FILE *fp, body_t *b, long *status, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct curl_slist *headers = NULL, *part_headers = NULL;
    json_t *ans = NULL;
    char *buf = NULL;
    char url[2300], id[ID_LEN + 1];
    int opened = 0;
    body_t scratch = {NULL, 0, 0};
    long scratch_status = 0;
    trellis_reason_t ignored;

    id[0] = '\0';
    err = TRELLIS_ERR_NOMEM;
    headers = curl_slist_append(headers, "Expect:");
    part_headers = curl_slist_append(part_headers, "Expect:");
    if (part_headers != NULL)
        part_headers = curl_slist_append(part_headers, "Content-Type: application/octet-stream");
    if (headers == NULL || part_headers == NULL)
        goto out;
    snprintf(url, sizeof(url), "%s%s", root, UPLOADS_PATH);
    err = part_request(curl, o, headers, "POST", url, NULL, 0, b, status, reason);
    if (err != TRELLIS_OK || *status != 201)
        goto out; /* the answer says why (an older verifier: 404) */
    ans = json_loadb(b->buf != NULL ? b->buf : "", b->len, 0, NULL);
    const char *s = json_string_value(json_object_get(ans, "upload"));
    json_int_t part_max = json_integer_value(json_object_get(ans, "part_max"));
    if (s == NULL || strlen(s) != ID_LEN || strspn(s, "0123456789abcdef") != ID_LEN ||
        part_max <= 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_HTTP,
                                 "the verifier opened an upload without a valid id or part size");
        goto out;
    }
    memcpy(id, s, ID_LEN + 1);
    opened = 1;
    size_t part_size = part_max < PART_MAX ? (size_t)part_max : PART_MAX;
    err = TRELLIS_ERR_NOMEM;
    buf = malloc(part_size);
    if (buf == NULL)
        goto out;
    for (unsigned long part = 1;; part++) {
        size_t n = fread(buf, 1, part_size, fp);
        if (n == 0) {
            if (ferror(fp)) {
                err = trellis_reason_set(reason, TRELLIS_ERR_IO, "cannot read %s", o->manifest);
                goto out;
            }
            break;
        }
        snprintf(url, sizeof(url), "%s%s/part?upload=%s&part=%lu", root, UPLOADS_PATH, id, part);
        for (int attempt = 1;; attempt++) {
            err = part_request(curl, o, part_headers, "PUT", url, buf, n, b, status, reason);
            /* A lost answer is safe to retry: the same last part again is a no-op. */
            if (err == TRELLIS_OK || err == TRELLIS_ERR_TLS || attempt == PART_ATTEMPTS)
                break;
        }
        if (err != TRELLIS_OK || *status != 200)
            goto out;
    }
    snprintf(url, sizeof(url), "%s%s/commit?upload=%s", root, UPLOADS_PATH, id);
    err = part_request(curl, o, headers, "POST", url, NULL, 0, b, status, reason);
    /* Answered, whatever the outcome, the upload is over at the verifier. */
    if (err == TRELLIS_OK)
        opened = 0;
out:
    if (opened) {
        snprintf(url, sizeof(url), "%s%s?upload=%s", root, UPLOADS_PATH, id);
        part_request(curl, o, headers, "DELETE", url, NULL, 0, &scratch, &scratch_status, &ignored);
    }
    free(scratch.buf);
    free(buf);
    json_decref(ans);
    curl_slist_free_all(part_headers);
    curl_slist_free_all(headers);
    return err;
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
    if (st.st_size > SINGLE_MAX) {
        /* The root of the verifier's URL: url less the import path. */
        url[n - (int)strlen(IMPORT_PATH)] = '\0';
        err = upload_in_parts(curl, o, url, fp, &body, &res->http_status, reason);
        if (err != TRELLIS_OK)
            goto out;
        snprintf(res->body, sizeof(res->body), "%s", body.buf != NULL ? body.buf : "");
        err = parse_answer(&body, res, reason);
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
