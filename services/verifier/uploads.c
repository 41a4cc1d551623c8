/*
 * Manifest uploads in parts (docs/verifier-api.md, "Large manifests"): a manifest larger than
 * one request body goes up as numbered parts of at most part_max bytes, each fed at once, in
 * order, into one streaming importer (manifest.c), then committed all or nothing:
 *
 *   POST   /v1/manifests/uploads                        -> 201 {"upload": ID, "part_max": N, ...}
 *   PUT    /v1/manifests/uploads/part?upload=ID&part=N  (application/octet-stream)
 *   POST   /v1/manifests/uploads/commit?upload=ID       -> the answer of POST /v1/manifests
 *   GET    /v1/manifests/uploads?upload=ID              -> where it stands (to resume)
 *   DELETE /v1/manifests/uploads?upload=ID              -> abandoned
 *
 * lib/http routes exact paths, so the upload id and the part number travel in the query.
 *
 * Parts of one upload may arrive on any worker thread, so an upload has its own registry
 * connection (its staging table lives in that connection's temporary database, on disk) and
 * is used by one request at a time: a request takes it ("busy") under the table lock, works
 * without the lock, and gives it back. An upload is bound to the factory that opened it; any
 * other caller is told it does not exist. Nothing reaches the registry before the commit, so
 * an upload that fails, is abandoned or expires leaves it unchanged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "manifest.h"
#include "trellis/clock.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/http_server.h"
#include "trellis/log.h"
#include "verifier_internal.h"

#define PART_MEDIA_TYPE "application/octet-stream"

struct tr__upload {
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    char factory[TRELLIS_VSTORE_NAME_MAX + 1];
    trellis_vstore_t *store; /* this upload's own connection */
    tr__import_t *imp;
    uint64_t next_part;                      /* 1-based */
    uint64_t bytes;                          /* fed so far */
    uint8_t last_sha256[TRELLIS_SHA256_LEN]; /* of part next_part - 1: a resent part is a no-op */
    long long last_active_ms;
    int busy;
};

static void upload_free(tr__upload_t *u)
{
    if (u == NULL)
        return;
    /* An unfinished import is aborted: its staged records go, the registry is untouched. */
    tr__import_free(u->imp);
    trellis_vstore_close(u->store);
    free(u);
}

trellis_err_t tr__uploads_init(tr__uploads_t *t, size_t max_body)
{
    if (t == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    memset(t, 0, sizeof(*t));
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        return TRELLIS_ERR_INTERNAL;
    t->part_max = max_body < TR__UPLOAD_PART_MAX_DEFAULT ? max_body : TR__UPLOAD_PART_MAX_DEFAULT;
    t->ttl_ms = TR__UPLOAD_TTL_MS_DEFAULT;
    return TRELLIS_OK;
}

static void audit_upload(trellis_verifier_t *v, const tr__upload_t *u, const char *outcome,
                         const char *why)
{
    trellis_vstore_audit_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.event, sizeof(e.event), "manifest.upload");
    snprintf(e.caller, sizeof(e.caller), "%s", u->factory);
    snprintf(e.outcome, sizeof(e.outcome), "%s", outcome);
    snprintf(e.reason, sizeof(e.reason),
             "upload=%s parts=%" PRIu64 " bytes=%" PRIu64 " records=%" PRIu64 " %s", u->id,
             u->next_part - 1, u->bytes, tr__import_report(u->imp)->records, why);
    tr__sanitize(e.reason);
    tr__audit_queue_push(v->audit, &e, NULL, NULL);
}

void tr__uploads_fini(trellis_verifier_t *v)
{
    if (v == NULL)
        return;
    tr__uploads_t *t = &v->uploads;
    for (size_t i = 0; i < TR__UPLOADS_MAX; i++) {
        if (t->slot[i] != NULL && v->audit != NULL)
            audit_upload(v, t->slot[i], "abandoned", "the verifier stopped");
        upload_free(t->slot[i]);
        t->slot[i] = NULL;
    }
    pthread_mutex_destroy(&t->lock);
}

size_t tr__uploads_sweep(trellis_verifier_t *v)
{
    tr__uploads_t *t = &v->uploads;
    tr__upload_t *gone[TR__UPLOADS_MAX];
    size_t n = 0;
    long long now = trellis_mono_ms();

    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < TR__UPLOADS_MAX; i++) {
        tr__upload_t *u = t->slot[i];
        if (u != NULL && !u->busy && now - u->last_active_ms > t->ttl_ms) {
            gone[n++] = u;
            t->slot[i] = NULL;
        }
    }
    t->abandoned += n;
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; i < n; i++) {
        trellis_log(TRELLIS_LOG_INFO, "manifest.upload.abandoned",
                    TRELLIS_KV_STR("caller", gone[i]->factory),
                    TRELLIS_KV_STR("upload", gone[i]->id));
        audit_upload(v, gone[i], "abandoned", "idle for too long");
        upload_free(gone[i]);
    }
    return n;
}

size_t tr__uploads_open(trellis_verifier_t *v)
{
    size_t n = 0;
    pthread_mutex_lock(&v->uploads.lock);
    for (size_t i = 0; i < TR__UPLOADS_MAX; i++)
        n += v->uploads.slot[i] != NULL;
    pthread_mutex_unlock(&v->uploads.lock);
    return n;
}

/* ---- the query: upload=ID[&part=N], each once, nothing else ---- */

static int is_id(const char *s, size_t len)
{
    if (len != TR__UPLOAD_ID_HEX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* Decimal 1..TR__UPLOAD_PARTS_MAX, no sign, no leading zero. */
static int parse_part(const char *s, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    if (len == 0 || len > 7 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    if (n > TR__UPLOAD_PARTS_MAX)
        return 0;
    *out = n;
    return 1;
}

static trellis_err_t parse_query(const char *q, int want_part, char id[TR__UPLOAD_ID_HEX_LEN + 1],
                                 uint64_t *part, trellis_reason_t *why)
{
    int have_id = 0, have_part = 0;

    id[0] = '\0';
    *part = 0;
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        if (eq == NULL)
            return trellis_reason_set(why, TRELLIS_ERR_PARSE, "query: expected name=value");
        size_t nlen = (size_t)(eq - q);
        const char *val = eq + 1;
        size_t vlen = len - nlen - 1;
        if (nlen == 6 && memcmp(q, "upload", 6) == 0 && !have_id) {
            if (!is_id(val, vlen))
                return trellis_reason_set(why, TRELLIS_ERR_PARSE,
                                          "query: upload must be %d lowercase hex digits",
                                          TR__UPLOAD_ID_HEX_LEN);
            memcpy(id, val, vlen);
            id[vlen] = '\0';
            have_id = 1;
        } else if (want_part && nlen == 4 && memcmp(q, "part", 4) == 0 && !have_part) {
            if (!parse_part(val, vlen, part))
                return trellis_reason_set(why, TRELLIS_ERR_PARSE,
                                          "query: part must be a number from 1 to %u",
                                          TR__UPLOAD_PARTS_MAX);
            have_part = 1;
        } else {
            return trellis_reason_set(why, TRELLIS_ERR_PARSE,
                                      want_part ? "query: only upload and part, once each"
                                                : "query: only upload, once");
        }
        q = amp != NULL ? amp + 1 : q + len;
    }
    if (!have_id || (want_part && !have_part))
        return trellis_reason_set(why, TRELLIS_ERR_PARSE,
                                  want_part ? "query: upload=ID&part=N required"
                                            : "query: upload=ID required");
    return TRELLIS_OK;
}

/*
 * Takes the caller's upload id for one request: NOT_FOUND when there is none for this factory
 * (another factory's upload is reported the same way, so ids leak nothing), CONFLICT while
 * another request works on it. On success the upload is busy until give_back() or
 * take_out().
 */
static trellis_err_t take(trellis_verifier_t *v, const char *caller, const char *id,
                          tr__upload_t **out, trellis_reason_t *why)
{
    tr__uploads_t *t = &v->uploads;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    *out = NULL;
    tr__uploads_sweep(v);
    pthread_mutex_lock(&t->lock);
    tr__upload_t *u = NULL;
    for (size_t i = 0; i < TR__UPLOADS_MAX && u == NULL; i++) {
        if (t->slot[i] != NULL && strcmp(t->slot[i]->id, id) == 0 &&
            strcmp(t->slot[i]->factory, caller) == 0)
            u = t->slot[i];
    }
    if (u == NULL) {
        err = trellis_reason_set(why, TRELLIS_ERR_NOT_FOUND,
                                 "no open upload %s of factory \"%s\" (never opened, committed, "
                                 "failed or abandoned)",
                                 id, caller);
    } else if (u->busy) {
        err = trellis_reason_set(why, TRELLIS_ERR_CONFLICT,
                                 "another request on upload %s is in progress; retry", id);
    } else {
        u->busy = 1;
        *out = u;
        err = TRELLIS_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return err;
}

static void give_back(trellis_verifier_t *v, tr__upload_t *u)
{
    pthread_mutex_lock(&v->uploads.lock);
    u->busy = 0;
    u->last_active_ms = trellis_mono_ms();
    pthread_mutex_unlock(&v->uploads.lock);
}

/* Removes a taken upload from the table; the caller frees it. */
static void take_out(trellis_verifier_t *v, tr__upload_t *u)
{
    pthread_mutex_lock(&v->uploads.lock);
    for (size_t i = 0; i < TR__UPLOADS_MAX; i++) {
        if (v->uploads.slot[i] == u)
            v->uploads.slot[i] = NULL;
    }
    pthread_mutex_unlock(&v->uploads.lock);
}

static void respond_state(trellis_http_request_t *req, trellis_verifier_t *v, int status,
                          const tr__upload_t *u, const char *state)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "upload", u->id, "status", state,
                          "next_part", (json_int_t)u->next_part, "bytes", (json_int_t)u->bytes,
                          "records", (json_int_t)tr__import_report(u->imp)->records, "part_max",
                          (json_int_t)v->uploads.part_max, "expires_in_s",
                          (json_int_t)(v->uploads.ttl_ms / 1000));
    if (o == NULL) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    tr__metrics_request(&v->metrics, TR__ROUTE_UPLOADS, status);
    trellis_http_respond_json(req, status, o);
    json_decref(o);
}

static trellis_err_t upload_new(trellis_verifier_t *v, const char *caller, tr__upload_t **out)
{
    trellis_err_t err = TRELLIS_ERR_NOMEM;
    uint8_t raw[TR__UPLOAD_ID_HEX_LEN / 2];
    size_t n = 0;
    tr__upload_t *u = calloc(1, sizeof(*u));

    *out = NULL;
    if (u == NULL)
        goto out;
    snprintf(u->factory, sizeof(u->factory), "%s", caller);
    u->next_part = 1;
    u->last_active_ms = trellis_mono_ms();
    err = trellis_random(raw, sizeof(raw));
    if (err == TRELLIS_OK)
        err = trellis_hex_encode(raw, sizeof(raw), u->id, sizeof(u->id), &n);
    if (err != TRELLIS_OK)
        goto out;
    err = trellis_verifier_open_store(&v->cfg, &u->store, NULL);
    if (err != TRELLIS_OK)
        goto out;
    err = tr__import_new(u->store, caller, (uint64_t)v->cfg.manifest_max_devices, &u->imp);
    if (err != TRELLIS_OK)
        goto out;
    *out = u;
    u = NULL;
out:
    upload_free(u);
    return err;
}

/* POST opens, GET tells where an upload stands, DELETE abandons it. */
void tr__handle_uploads(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    uint64_t part = 0;
    trellis_reason_t why;
    tr__upload_t *u = NULL;

    trellis_reason_clear(&why);
    trellis_err_t err = tr__caller_of(req, caller);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err,
                          "a client certificate issued to a factory by this verifier is required");
        return;
    }
    trellis_http_method_t method = trellis_http_request_method(req);
    if (method == TRELLIS_HTTP_POST) {
        const char *q = trellis_http_request_query(req);
        if (q != NULL && *q != '\0') {
            tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_PARSE,
                              "opening an upload takes no query");
            return;
        }
        /* Only a registered factory may hold staging space. */
        trellis_vstore_t *s = tr__worker_of(req)->store;
        uint8_t key[TRELLIS_ROT_KEY_LEN];
        err = s->factory_key(s->ctx, caller, key);
        if (err == TRELLIS_ERR_NOT_FOUND)
            err = trellis_reason_set(&why, TRELLIS_ERR_PERMISSION,
                                     "the client certificate does not name a registered factory");
        if (err != TRELLIS_OK) {
            tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
            return;
        }
        tr__uploads_sweep(v);
        err = upload_new(v, caller, &u);
        if (err != TRELLIS_OK) {
            tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, "cannot open an upload");
            return;
        }
        pthread_mutex_lock(&v->uploads.lock);
        size_t i = 0;
        while (i < TR__UPLOADS_MAX && v->uploads.slot[i] != NULL)
            i++;
        if (i < TR__UPLOADS_MAX) {
            u->busy = 1; /* until answered: the sweeper leaves it alone */
            v->uploads.slot[i] = u;
        }
        pthread_mutex_unlock(&v->uploads.lock);
        if (i == TR__UPLOADS_MAX) {
            upload_free(u);
            trellis_http_response_header(req, "Retry-After", "60");
            tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_UNAVAILABLE,
                              "too many manifest uploads are open; retry later");
            return;
        }
        trellis_log(TRELLIS_LOG_INFO, "manifest.upload.opened", TRELLIS_KV_STR("caller", caller),
                    TRELLIS_KV_STR("upload", u->id));
        respond_state(req, v, 201, u, "open");
        give_back(v, u);
        return;
    }
    err = parse_query(trellis_http_request_query(req), 0, id, &part, &why);
    if (err == TRELLIS_OK)
        err = take(v, caller, id, &u, &why);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    if (method == TRELLIS_HTTP_DELETE) {
        take_out(v, u);
        trellis_log(TRELLIS_LOG_INFO, "manifest.upload.abandoned", TRELLIS_KV_STR("caller", caller),
                    TRELLIS_KV_STR("upload", u->id));
        audit_upload(v, u, "abandoned", "by the factory");
        respond_state(req, v, 200, u, "abandoned");
        upload_free(u);
        return;
    }
    respond_state(req, v, 200, u, "open");
    give_back(v, u);
}

void tr__handle_upload_part(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    uint8_t digest[TRELLIS_SHA256_LEN];
    uint64_t part = 0;
    size_t len = 0;
    trellis_reason_t why;
    tr__upload_t *u = NULL;

    trellis_reason_clear(&why);
    trellis_err_t err = tr__caller_of(req, caller);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err,
                          "a client certificate issued to a factory by this verifier is required");
        return;
    }
    if (trellis_http_request_expect_content_type(req, PART_MEDIA_TYPE) != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_CONTENT_TYPE,
                          "a part is sent as " PART_MEDIA_TYPE);
        return;
    }
    err = parse_query(trellis_http_request_query(req), 1, id, &part, &why);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    const uint8_t *body = trellis_http_request_body(req, &len);
    if (len == 0 || len > v->uploads.part_max) {
        /* Refused before the upload is touched: it carries on with a correct part. */
        err = trellis_reason_set(&why, len == 0 ? TRELLIS_ERR_PARSE : TRELLIS_ERR_TOO_LARGE,
                                 "a part is 1 to %zu bytes", v->uploads.part_max);
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    err = trellis_sha256(body, len, digest);
    if (err == TRELLIS_OK)
        err = take(v, caller, id, &u, &why);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    if (part + 1 == u->next_part && memcmp(digest, u->last_sha256, sizeof(digest)) == 0) {
        /* The last part again (its answer was lost): already fed, nothing to do. */
        respond_state(req, v, 200, u, "open");
        give_back(v, u);
        return;
    }
    if (part != u->next_part) {
        if (part < u->next_part)
            trellis_reason_set(&why, TRELLIS_ERR_CONFLICT,
                               "part %" PRIu64
                               " was already received with other bytes; part %" PRIu64 " is next",
                               part, u->next_part);
        else
            trellis_reason_set(&why, TRELLIS_ERR_CONFLICT,
                               "parts go in order: part %" PRIu64 " is next, not %" PRIu64,
                               u->next_part, part);
        give_back(v, u);
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_CONFLICT, why.text);
        return;
    }
    err = tr__import_feed(u->imp, body, len);
    if (err != TRELLIS_OK) {
        /* The manifest is bad: the upload ends here, answered like a refused POST
         * /v1/manifests; the staged records are dropped with it. */
        take_out(v, u);
        tr__import_report_t *rep = trellis_http_request_alloc(req, sizeof(*rep));
        if (rep == NULL) {
            tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_NOMEM, NULL);
        } else {
            *rep = *tr__import_report(u->imp);
            tr__respond_import(req, v, TR__ROUTE_UPLOADS, caller, rep);
        }
        upload_free(u);
        return;
    }
    memcpy(u->last_sha256, digest, sizeof(digest));
    u->next_part++;
    u->bytes += len;
    respond_state(req, v, 200, u, "open");
    give_back(v, u);
}

void tr__handle_upload_commit(trellis_http_request_t *req, void *app)
{
    trellis_verifier_t *v = app;
    char caller[TRELLIS_VSTORE_NAME_MAX + 1];
    char id[TR__UPLOAD_ID_HEX_LEN + 1];
    uint64_t part = 0;
    size_t len = 0;
    trellis_reason_t why;
    tr__upload_t *u = NULL;

    trellis_reason_clear(&why);
    trellis_err_t err = tr__caller_of(req, caller);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err,
                          "a client certificate issued to a factory by this verifier is required");
        return;
    }
    err = parse_query(trellis_http_request_query(req), 0, id, &part, &why);
    if (err == TRELLIS_OK && trellis_http_request_body(req, &len) != NULL && len > 0)
        err = trellis_reason_set(&why, TRELLIS_ERR_PARSE, "a commit has no body");
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    tr__import_report_t *rep = trellis_http_request_alloc(req, sizeof(*rep));
    if (rep == NULL) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, TRELLIS_ERR_NOMEM, NULL);
        return;
    }
    err = take(v, caller, id, &u, &why);
    if (err != TRELLIS_OK) {
        tr__respond_error(req, v, TR__ROUTE_UPLOADS, err, why.text);
        return;
    }
    /* Whatever the outcome, the upload ends: committed, or refused with nothing changed. */
    take_out(v, u);
    tr__import_finish(u->imp, rep);
    trellis_log(TRELLIS_LOG_INFO, "manifest.upload.committed", TRELLIS_KV_STR("caller", caller),
                TRELLIS_KV_STR("upload", u->id),
                TRELLIS_KV_INT("parts", (long long)(u->next_part - 1)),
                TRELLIS_KV_STR("error", trellis_err_name(rep->err)));
    upload_free(u);
    tr__respond_import(req, v, TR__ROUTE_UPLOADS, caller, rep);
}
