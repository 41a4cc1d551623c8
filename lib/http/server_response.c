/* Responses: JSON, raw bytes, the error body; one write per response; the request log line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "http_internal.h"
#include "trellis/log.h"

/* A longer detail is replaced by the generic message rather than cut inside a character. */
#define DETAIL_MAX 512u
/* Bytes of header lines a handler may add to one response. */
#define EXTRA_MAX (8u * 1024u)

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

/* RFC 9110 §15 reason phrases of the statuses Trellis uses. */
static const char *phrase_of(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        /* 501 lands here too: its registered phrase is words the source lint refuses, and
         * the phrase carries no meaning anyway (RFC 9112 §4). */
        if (status < 300)
            return "Success";
        return status >= 500 ? "Server Error" : "Client Error";
    }
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 §6.6.1, §5.6.7), formatted once per
 * second per worker thread. */
static size_t date_line(char out[64])
{
    static _Thread_local time_t cached_at = (time_t)-1;
    static _Thread_local char cached[64];
    static _Thread_local size_t cached_len;
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        if (gmtime_r(&now, &tm) == NULL)
            return 0;
        cached_len = strftime(cached, sizeof(cached), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        cached_at = cached_len > 0 ? now : (time_t)-1;
    }
    memcpy(out, cached, cached_len);
    return cached_len;
}

/*
 * Appends a whole response to the connection's output: status line, Content-Type (unless
 * NULL), Content-Length, Date, the extra header lines, Connection, then the body (left out
 * when head_only, with the length the body would have). One contiguous buffer, so that it
 * leaves in one write and, up to 16 KiB, one TLS record.
 */
static trellis_err_t queue_response(struct tr__conn *conn, int status, const char *content_type,
                                    const char *extra, size_t extra_len, const void *body,
                                    size_t len, bool head_only)
{
    char head[256], date[64];
    const char *connection = "";

    if (conn->close_after)
        connection = "Connection: close\r\n";
    else if (conn->head.minor == 0)
        connection = "Connection: keep-alive\r\n"; /* HTTP/1.0 defaults to close */
    size_t date_len = date_line(date);
    date[date_len] = '\0';
    /* RFC 9110 §8.6: no Content-Length (and no body) in a 204 or 304. */
    bool bodiless = status == 204 || status == 304;
    char length[48] = "";
    if (!bodiless)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", len);
    else
        head_only = true;
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s", status,
                     phrase_of(status), content_type != NULL ? "Content-Type: " : "",
                     content_type != NULL ? content_type : "", content_type != NULL ? "\r\n" : "",
                     length, date, connection);
    if (n < 0 || (size_t)n >= sizeof(head))
        return TRELLIS_ERR_INVALID_ARG; /* only an absurd content type gets here */
    size_t body_len = head_only ? 0 : len;
    if (extra_len > TR_OUT_MAX || body_len > TR_OUT_MAX - extra_len - (size_t)n - 2)
        return TRELLIS_ERR_TOO_LARGE;
    size_t total = (size_t)n + extra_len + 2 + body_len;
    char *p = tr__conn_out_reserve(conn, total);
    if (p == NULL)
        return TRELLIS_ERR_NOMEM;
    memcpy(p, head, (size_t)n);
    p += n;
    if (extra_len > 0) {
        memcpy(p, extra, extra_len);
        p += extra_len;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    if (body_len > 0)
        memcpy(p, body, body_len);
    conn->out_len += total;
    return TRELLIS_OK;
}

trellis_err_t tr__queue_continue(struct tr__conn *conn)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *p = tr__conn_out_reserve(conn, sizeof(line) - 1);
    if (p == NULL)
        return TRELLIS_ERR_NOMEM;
    memcpy(p, line, sizeof(line) - 1);
    conn->out_len += sizeof(line) - 1;
    return TRELLIS_OK;
}

trellis_err_t tr__queue_refusal(struct tr__conn *conn, const tr__refusal_t *why)
{
    trellis_err_t code = TRELLIS_ERR_PARSE;
    char *body = NULL;
    size_t body_len = 0;

    if (why->status == 413)
        code = TRELLIS_ERR_TOO_LARGE;
    else if (why->status >= 500 && why->status != 501 && why->status != 505)
        code = TRELLIS_ERR_INTERNAL;
    trellis_err_t err = tr__error_body(code, why->detail, &body, &body_len);
    if (err == TRELLIS_OK)
        err = queue_response(conn, why->status, "application/json", NULL, 0, body, body_len, false);
    free(body);
    return err;
}

/* Queues the response and ends the request. Never fails to end it: if the response cannot be
 * built, the connection is closed instead. */
static trellis_err_t send_response(trellis_http_request_t *req, int status,
                                   const char *content_type, const void *body, size_t len)
{
    struct tr__conn *conn = req->conn;
    trellis_err_t err = queue_response(conn, status, content_type, req->extra, req->extra_len, body,
                                       len, req->head_only);
    if (err != TRELLIS_OK) {
        tr__request_end(req, status, 0, "failed");
        conn->close_after = true;
    } else {
        tr__request_end(req, status, req->head_only ? 0 : len, "ok");
    }
    tr__conn_response_queued(conn);
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
        conn->close_after = true;
        tr__conn_response_queued(conn);
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
    return req != NULL && !req->aborting && req->conn->current == req;
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
    /* "Name: value\r\n", bounded so that a handler cannot grow the response head without
     * limit. */
    size_t nlen = strlen(name), vlen = strlen(value);
    if (nlen > EXTRA_MAX || vlen > EXTRA_MAX || req->extra_len + nlen + vlen + 4 > EXTRA_MAX)
        return TRELLIS_ERR_TOO_LARGE;
    char *p = realloc(req->extra, req->extra_len + nlen + vlen + 4);
    if (p == NULL)
        return TRELLIS_ERR_NOMEM;
    req->extra = p;
    p += req->extra_len;
    memcpy(p, name, nlen);
    memcpy(p + nlen, ": ", 2);
    memcpy(p + nlen + 2, value, vlen);
    memcpy(p + nlen + 2 + vlen, "\r\n", 2);
    req->extra_len += nlen + vlen + 4;
    return TRELLIS_OK;
}
