/* The request object handed to handlers: accessors, per-request memory, suspension, end. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "http_internal.h"
#include "trellis/clock.h"

/* Smallest arena chunk: most handlers need a few small strings. */
#define ARENA_CHUNK 4096u

void tr__request_init(struct tr__conn *conn)
{
    struct trellis_http_request *req = &conn->req;
    memset(req, 0, sizeof(*req));
    req->worker = conn->worker;
    req->conn = conn;
    req->start_us = trellis_mono_us();
}

/* Frees what the request allocated; the request itself is part of its connection. */
static void request_release(trellis_http_request_t *req)
{
    struct tr__arena_chunk *c = req->arena;
    while (c != NULL) {
        struct tr__arena_chunk *next = c->next;
        OPENSSL_cleanse(c->data, c->used);
        free(c);
        c = next;
    }
    req->arena = NULL;
    free(req->extra);
    req->extra = NULL;
}

static const char *method_text(trellis_http_method_t m)
{
    const char *name = trellis_http_method_name(m);
    return name != NULL ? name : "-";
}

void tr__request_end(trellis_http_request_t *req, int status, size_t bytes, const char *outcome)
{
    tr__log_request(method_text(req->method), req->path, status, bytes,
                    trellis_mono_us() - req->start_us, req->conn->peer, outcome);
    request_release(req);
    req->conn->current = NULL;
}

void tr__request_abort(trellis_http_request_t *req)
{
    struct tr__conn *conn = req->conn;

    req->aborting = true;
    atomic_fetch_add_explicit(&req->worker->srv->aborted, 1, memory_order_relaxed);
    if (req->on_abort != NULL)
        req->on_abort(req, req->abort_arg);
    tr__log_request(method_text(req->method), req->path, 0, 0, trellis_mono_us() - req->start_us,
                    conn->peer, "aborted");
    request_release(req);
    conn->current = NULL;
}

trellis_err_t trellis_http_request_suspend(trellis_http_request_t *req,
                                           trellis_http_abort_fn on_abort, void *arg)
{
    if (req == NULL || on_abort == NULL || req->suspended || req->aborting ||
        req->conn->current != req)
        return TRELLIS_ERR_INVALID_ARG;
    req->suspended = true;
    req->on_abort = on_abort;
    req->abort_arg = arg;
    return TRELLIS_OK;
}

/* ---- accessors ------------------------------------------------------------------------------ */

trellis_http_method_t trellis_http_request_method(const trellis_http_request_t *req)
{
    return req->method;
}

const char *trellis_http_request_path(const trellis_http_request_t *req)
{
    return req->path;
}

const char *trellis_http_request_query(const trellis_http_request_t *req)
{
    return req->query;
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool same_name(const char *a, const char *b)
{
    while (*a != '\0' && ascii_lower((unsigned char)*a) == ascii_lower((unsigned char)*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

const char *trellis_http_request_header(const trellis_http_request_t *req, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < req->n_fields; i++) {
        if (same_name(req->base + req->fields[i].name, name))
            return req->base + req->fields[i].value;
    }
    return NULL;
}

const uint8_t *trellis_http_request_body(const trellis_http_request_t *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body;
}

const char *trellis_http_request_peer(const trellis_http_request_t *req)
{
    return req->conn->peer;
}

struct event_base *trellis_http_request_base(const trellis_http_request_t *req)
{
    return req->worker->base;
}

void *trellis_http_request_worker_ctx(const trellis_http_request_t *req)
{
    return req->worker->ctx;
}

unsigned trellis_http_request_worker_index(const trellis_http_request_t *req)
{
    return req->worker->index;
}

void *trellis_http_request_alloc(trellis_http_request_t *req, size_t size)
{
    const size_t align = alignof(max_align_t);
    size_t max = req->worker->srv->request_memory_max;

    if (size == 0 || size > max)
        return NULL;
    size_t need = (size + align - 1) & ~(align - 1);
    struct tr__arena_chunk *c = req->arena;
    if (c == NULL || c->size - c->used < need) {
        size_t csize = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        if (req->arena_total + csize > max) {
            if (req->arena_total + need > max)
                return NULL;
            csize = need;
        }
        c = calloc(1, sizeof(*c) + csize);
        if (c == NULL)
            return NULL;
        c->size = csize;
        c->next = req->arena;
        req->arena = c;
        req->arena_total += csize;
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += need;
    return p;
}

/* ---- content type ------------------------------------------------------------------------ */

bool trellis_http_media_type_is(const char *value, const char *media_type)
{
    if (value == NULL || media_type == NULL || media_type[0] == '\0')
        return false;
    /* RFC 9110 §8.3.1: media-type = type "/" subtype parameters, where
     * parameters = *( OWS ";" OWS [ parameter ] ). Type and subtype are case-insensitive;
     * no whitespace is allowed inside "type/subtype". */
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    for (const char *m = media_type; *m != '\0'; m++, p++) {
        if (*p == '\0' || ascii_lower((unsigned char)*p) != ascii_lower((unsigned char)*m))
            return false;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';';
}

trellis_err_t trellis_http_request_expect_content_type(const trellis_http_request_t *req,
                                                       const char *media_type)
{
    if (req == NULL || media_type == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    const char *value = trellis_http_request_header(req, "Content-Type");
    return trellis_http_media_type_is(value, media_type) ? TRELLIS_OK : TRELLIS_ERR_CONTENT_TYPE;
}
