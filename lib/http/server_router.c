/* Routing: every complete request the connection reads arrives here. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "trellis/log.h"

/* "GET, HEAD, POST" from a method set (RFC 9110 §10.2.1). */
static void allow_text(unsigned methods, char *out, size_t out_size)
{
    static const trellis_http_method_t order[] = {
        TRELLIS_HTTP_GET,    TRELLIS_HTTP_HEAD,  TRELLIS_HTTP_POST,   TRELLIS_HTTP_PUT,
        TRELLIS_HTTP_DELETE, TRELLIS_HTTP_PATCH, TRELLIS_HTTP_OPTIONS};
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if ((methods & order[i]) == 0)
            continue;
        int n = snprintf(out + used, out_size - used, "%s%s", used > 0 ? ", " : "",
                         trellis_http_method_name(order[i]));
        if (n < 0 || (size_t)n >= out_size - used)
            return;
        used += (size_t)n;
    }
}

static void route(trellis_http_request_t *req)
{
    trellis_http_server_t *srv = req->worker->srv;
    const struct tr__route *match = NULL, *get_route = NULL;
    unsigned allowed = 0;
    bool path_known = false;

    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct tr__route *r = &srv->routes[i];
        if (strcmp(r->path, req->path) != 0)
            continue;
        path_known = true;
        allowed |= r->methods;
        if (r->methods & TRELLIS_HTTP_GET) {
            allowed |= TRELLIS_HTTP_HEAD;
            get_route = r;
        }
        if (r->methods & (unsigned)req->method)
            match = r;
    }
    /* HEAD is GET without the body (RFC 9110 §9.3.2); the response leaves the body out. */
    if (match == NULL && req->method == TRELLIS_HTTP_HEAD)
        match = get_route;
    if (!path_known) {
        tr__respond_error_status(req, 404, TRELLIS_ERR_NOT_FOUND, "no such resource");
        return;
    }
    if (match == NULL) {
        char allow[96];
        allow_text(allowed, allow, sizeof(allow));
        trellis_http_response_header(req, "Allow", allow);
        tr__respond_error_status(req, 405, TRELLIS_ERR_INVALID_ARG, "method not allowed");
        return;
    }
    if ((match->flags & TRELLIS_HTTP_ROUTE_JSON) != 0 &&
        (req->method & (TRELLIS_HTTP_POST | TRELLIS_HTTP_PUT | TRELLIS_HTTP_PATCH)) != 0 &&
        trellis_http_request_expect_content_type(req, "application/json") != TRELLIS_OK) {
        trellis_http_respond_error(req, TRELLIS_ERR_CONTENT_TYPE,
                                   "expected Content-Type: application/json");
        return;
    }

    struct tr__conn *conn = req->conn;
    match->handler(req, srv->app);
    /* The connection outlives the handler: nothing on this path closes it synchronously. The
     * request is gone if it was answered, so look at it only through the connection. */
    if (conn->current != NULL && !conn->current->suspended) {
        trellis_log(TRELLIS_LOG_ERROR, "http.handler.unanswered",
                    TRELLIS_KV_STR("path", conn->current->path));
        tr__respond_error_status(conn->current, 500, TRELLIS_ERR_INTERNAL,
                                 "the request was not answered");
    }
}

void tr__dispatch(struct tr__conn *conn)
{
    route(conn->current);
}
