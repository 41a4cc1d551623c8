/* Responses: JSON, raw bytes, the error body; one write per response; the request log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <jansson.h>

#include "http_internal.h"
#include "trellis/log.h"

/* A longer detail is replaced by the generic message rather than cut inside a character. */
#define DETAIL_MAX 512u

void tr__log_request(const char *method, const char *path, int status, size_t bytes,
                     uint64_t duration_us, const char *peer, const char *outcome)
{
    trellis_log(TRELLIS_LOG_INFO, "http.request", TRELLIS_KV_STR("method", method),
                TRELLIS_KV_STR("path", path), TRELLIS_KV_INT("status", status),
                TRELLIS_KV_INT("bytes", (long long)bytes),
                TRELLIS_KV_INT("duration_us", (long long)duration_us), TRELLIS_KV_STR("peer", peer),
                TRELLIS_KV_STR("outcome", outcome));
}

trellis_err_t tr__error_body(trellis_err_t err, const char *detail, char **out, size_t *out_len)
{
    trellis_err_t rc = TRELLIS_ERR_INTERNAL;
    json_t *obj = NULL, *d = NULL;
    char *text = NULL;

    *out = NULL;
    *out_len = 0;
    /* json_string() refuses invalid UTF-8, so a detail that is not text never reaches the
     * client. */
    if (detail != NULL && strlen(detail) <= DETAIL_MAX)
        d = json_string(detail);
    if (d == NULL)
        d = json_string(trellis_err_message(err));
    obj = json_object();
    if (d == NULL || obj == NULL ||
        json_object_set_new(obj, "error", json_string(trellis_err_api_code(err))) != 0 ||
        json_object_set(obj, "detail", d) != 0) {
        rc = TRELLIS_ERR_NOMEM;
        goto out;
    }
    /* design.md §3: {"error": CODE, "detail": TEXT} */
    text = json_dumps(obj, JSON_COMPACT);
    if (text == NULL) {
        rc = TRELLIS_ERR_NOMEM;
        goto out;
    }
    *out_len = strlen(text);
    *out = text;
    text = NULL;
    rc = TRELLIS_OK;
out:
    free(text);
    json_decref(d);
    json_decref(obj);
    return rc;
}

static const char *phrase_of(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return status >= 500 ? "Server Error" : "Client Error";
    }
}

trellis_err_t tr__internal_error_response(int status, size_t max_body, char **out, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_err_t code = TRELLIS_ERR_PARSE;
    char detail[96];
    char head[192];
    char *body = NULL, *resp = NULL;
    size_t body_len = 0;

    *out = NULL;
    *out_len = 0;
    switch (status) {
    case 413:
        code = TRELLIS_ERR_TOO_LARGE;
        snprintf(detail, sizeof(detail), "request body larger than %zu bytes", max_body);
        break;
    case 400:
        snprintf(detail, sizeof(detail), "malformed request or headers too large");
        break;
    case 417:
        snprintf(detail, sizeof(detail), "expectation not supported");
        break;
    case 501:
        snprintf(detail, sizeof(detail), "method not supported");
        break;
    default:
        if (status >= 500)
            code = TRELLIS_ERR_INTERNAL;
        snprintf(detail, sizeof(detail), "request refused");
        break;
    }
    err = tr__error_body(code, detail, &body, &body_len);
    if (err != TRELLIS_OK)
        goto out;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, phrase_of(status), body_len);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    resp = malloc((size_t)n + body_len);
    if (resp == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    memcpy(resp, head, (size_t)n);
    memcpy(resp + n, body, body_len);
    *out = resp;
    *out_len = (size_t)n + body_len;
    resp = NULL;
    err = TRELLIS_OK;
out:
    free(resp);
    free(body);
    return err;
}

/* Queues the response and ends the request. Never fails to end it: if the response cannot be
 * built, the connection is closed instead. */
static trellis_err_t send_response(trellis_http_request_t *req, int status,
                                   const char *content_type, const void *body, size_t len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct tr__conn *conn = req->conn;
    struct evhttp_request *evreq = req->evreq;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(evreq);
    struct evbuffer *buf = NULL;
    bool head = req->method == TRELLIS_HTTP_HEAD;

    buf = evbuffer_new();
    if (buf == NULL) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (content_type != NULL && evhttp_add_header(headers, "Content-Type", content_type) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (!req->worker->srv->keepalive && evhttp_add_header(headers, "Connection", "close") != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    if (head) {
        /* evhttp would send a HEAD body along; the length is what GET would send. */
        char n[24];
        snprintf(n, sizeof(n), "%zu", len);
        if (evhttp_add_header(headers, "Content-Length", n) != 0) {
            err = TRELLIS_ERR_NOMEM;
            goto out;
        }
    } else if (len > 0 && evbuffer_add(buf, body, len) != 0) {
        err = TRELLIS_ERR_NOMEM;
        goto out;
    }
    conn->sending = true;
    evhttp_send_reply(evreq, status, NULL, buf);
    conn->sending = false;
    /* evhttp queued the status line, each header and the body as separate pieces; made
     * contiguous, they leave in one write(2) (one TLS record up to 16 KiB) on the next loop
     * iteration instead of one write per piece. */
    evbuffer_pullup(bufferevent_get_output(conn->bev), -1);
    tr__request_end(req, status, head ? 0 : len, "ok");
    err = TRELLIS_OK;
out:
    if (buf != NULL)
        evbuffer_free(buf);
    if (err != TRELLIS_OK) {
        tr__request_end(req, status, 0, "failed");
        tr__conn_kill(conn);
    }
    return err;
}

trellis_err_t tr__respond_error_status(trellis_http_request_t *req, int status, trellis_err_t err,
                                       const char *detail)
{
    char *body = NULL;
    size_t len = 0;
    trellis_err_t rc = tr__error_body(err, detail, &body, &len);
    if (rc != TRELLIS_OK) {
        struct tr__conn *conn = req->conn;
        tr__request_end(req, status, 0, "failed");
        tr__conn_kill(conn);
        return rc;
    }
    rc = send_response(req, status, "application/json", body, len);
    free(body);
    return rc;
}

/* A respond call the server cannot honour still ends the request: with a 500. */
static trellis_err_t refuse_call(trellis_http_request_t *req, trellis_err_t why)
{
    tr__respond_error_status(req, 500, TRELLIS_ERR_INTERNAL, NULL);
    return why;
}

static bool status_ok(int status)
{
    return status >= 200 && status <= 599;
}

static bool usable(const trellis_http_request_t *req)
{
    return req != NULL && !req->aborting && req->conn != NULL;
}

trellis_err_t trellis_http_respond_json(trellis_http_request_t *req, int status, const json_t *body)
{
    if (!usable(req))
        return TRELLIS_ERR_INVALID_ARG;
    if (!status_ok(status) || body == NULL)
        return refuse_call(req, TRELLIS_ERR_INVALID_ARG);
    char *text = json_dumps(body, JSON_COMPACT);
    if (text == NULL)
        return refuse_call(req, TRELLIS_ERR_NOMEM);
    trellis_err_t err = send_response(req, status, "application/json", text, strlen(text));
    free(text);
    return err;
}

trellis_err_t trellis_http_respond_json_text(trellis_http_request_t *req, int status,
                                             const char *text, size_t len)
{
    if (!usable(req))
        return TRELLIS_ERR_INVALID_ARG;
    if (!status_ok(status) || (text == NULL && len > 0))
        return refuse_call(req, TRELLIS_ERR_INVALID_ARG);
    return send_response(req, status, "application/json", text, len);
}

static bool header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    return true;
}

trellis_err_t trellis_http_respond_bytes(trellis_http_request_t *req, int status,
                                         const char *content_type, const void *body, size_t len)
{
    if (!usable(req))
        return TRELLIS_ERR_INVALID_ARG;
    if (!status_ok(status) || content_type == NULL || content_type[0] == '\0' ||
        !header_value_ok(content_type) || (body == NULL && len > 0))
        return refuse_call(req, TRELLIS_ERR_INVALID_ARG);
    return send_response(req, status, content_type, body, len);
}

trellis_err_t trellis_http_respond_error(trellis_http_request_t *req, trellis_err_t err,
                                         const char *detail)
{
    if (!usable(req))
        return TRELLIS_ERR_INVALID_ARG;
    if (err == TRELLIS_OK || trellis_err_http_status(err) < 400)
        return refuse_call(req, TRELLIS_ERR_INVALID_ARG);
    return tr__respond_error_status(req, trellis_err_http_status(err), err, detail);
}

/* RFC 9110 §5.6.2: token = 1*tchar */
static bool token_ok(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (s[0] == '\0')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && strchr(extra, c) == NULL)
            return false;
    }
    return true;
}

static bool reserved_header(const char *name)
{
    static const char *const reserved[] = {"content-type", "content-length", "transfer-encoding",
                                           "connection"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        const char *r = reserved[i];
        const char *p = name;
        while (*r != '\0' && *p != '\0' &&
               (*p == *r || (*p >= 'A' && *p <= 'Z' && *p + ('a' - 'A') == *r))) {
            p++;
            r++;
        }
        if (*r == '\0' && *p == '\0')
            return true;
    }
    return false;
}

trellis_err_t trellis_http_response_header(trellis_http_request_t *req, const char *name,
                                           const char *value)
{
    if (!usable(req) || name == NULL || value == NULL || !token_ok(name) || reserved_header(name) ||
        !header_value_ok(value))
        return TRELLIS_ERR_INVALID_ARG;
    if (evhttp_add_header(evhttp_request_get_output_headers(req->evreq), name, value) != 0)
        return TRELLIS_ERR_NOMEM;
    return TRELLIS_OK;
}
