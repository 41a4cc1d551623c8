/*
 * The HTTP/1.1 request parser (RFC 9112): the head (request line and header fields) and the
 * chunked transfer coding. It is strict where leniency has been the root of request
 * smuggling: CRLF only, no obs-fold, no whitespace before a colon, one Content-Length made of
 * digits, never Content-Length together with Transfer-Encoding, "chunked" as the only coding,
 * exactly one Host in HTTP/1.1. It parses in place and does no I/O.
 */
#include <stdint.h>
#include <string.h>

#include "http_internal.h"

/* A chunk-size line (size and extensions) longer than this is refused. */
#define CHUNK_LINE_MAX 1024u

static bool refuse(tr__refusal_t *why, int status, const char *detail)
{
    why->status = status;
    why->detail = detail;
    return false;
}

/* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool name_is(const char *name, const char *want)
{
    while (*name != '\0' && *want != '\0' && lower((unsigned char)*name) == *want) {
        name++;
        want++;
    }
    return *name == '\0' && *want == '\0';
}

size_t tr__head_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;
    while (i < len) {
        const char *p = memchr(buf + i, '\n', len - i);
        if (p == NULL)
            break;
        size_t at = (size_t)(p - buf);
        /* "\r\n\r\n" ends at this LF when the three bytes before it are "\r\n\r". */
        if (at >= 3 && buf[at - 1] == '\r' && buf[at - 2] == '\n' && buf[at - 3] == '\r')
            return at + 1;
        i = at + 1;
    }
    /* Resume a little before the end: the terminator may straddle two reads. */
    *scan = len > 3 ? len - 3 : 0;
    return 0;
}

static trellis_http_method_t method_of(const char *m, size_t n)
{
    static const struct {
        const char *name;
        trellis_http_method_t method;
    } table[] = {
        {"GET", TRELLIS_HTTP_GET},         {"HEAD", TRELLIS_HTTP_HEAD},
        {"POST", TRELLIS_HTTP_POST},       {"PUT", TRELLIS_HTTP_PUT},
        {"DELETE", TRELLIS_HTTP_DELETE},   {"PATCH", TRELLIS_HTTP_PATCH},
        {"OPTIONS", TRELLIS_HTTP_OPTIONS},
    };
    /* Methods are case-sensitive (RFC 9110 §9.1). */
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].name) == n && memcmp(table[i].name, m, n) == 0)
            return table[i].method;
    }
    return 0;
}

/* RFC 9112 §3: request-line = method SP request-target SP HTTP-version. The line is
 * buf[0..eol) with eol at its CR. */
static bool parse_request_line(char *buf, size_t eol, struct tr__head *h, tr__refusal_t *why)
{
    size_t i = 0;
    while (i < eol && is_tchar((unsigned char)buf[i]))
        i++;
    if (i == 0 || i >= eol || buf[i] != ' ')
        return refuse(why, 400, "malformed request line");
    size_t method_len = i;
    size_t target = ++i;
    while (i < eol && buf[i] != ' ') {
        unsigned char c = (unsigned char)buf[i];
        /* Only visible ASCII: no controls, no raw UTF-8, no fragment (RFC 9112 §3.2). */
        if (c < 0x21 || c > 0x7e || c == '#')
            return refuse(why, 400, "malformed request target");
        i++;
    }
    if (i == target || i >= eol)
        return refuse(why, 400, "malformed request line");
    size_t target_end = i++;
    /* RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT */
    if (eol - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || buf[i + 5] < '0' || buf[i + 5] > '9' ||
        buf[i + 6] != '.' || buf[i + 7] < '0' || buf[i + 7] > '9')
        return refuse(why, 400, "malformed HTTP version");
    if (buf[i + 5] != '1')
        return refuse(why, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    h->minor = buf[i + 7] - '0';
    if (h->minor > 1)
        h->minor = 1; /* a later 1.x speaks 1.1 to us (RFC 9110 §6.2) */

    h->method = method_of(buf, method_len);
    if (h->method == 0)
        return refuse(why, 501, "method not supported");

    /* origin-form "/path?query", or absolute-form "http://authority/path?query", which a
     * server must accept (RFC 9112 §3.2.2); the authority is then ignored. */
    size_t path = target;
    if (buf[target] != '/') {
        size_t n = target_end - target;
        size_t skip = 0;
        if (n > 7 && lower(buf[target]) == 'h' && memcmp(buf + target + 4, "://", 3) == 0 &&
            lower(buf[target + 1]) == 't' && lower(buf[target + 2]) == 't' &&
            lower(buf[target + 3]) == 'p')
            skip = 7;
        else if (n > 8 && lower(buf[target]) == 'h' && lower(buf[target + 1]) == 't' &&
                 lower(buf[target + 2]) == 't' && lower(buf[target + 3]) == 'p' &&
                 lower(buf[target + 4]) == 's' && memcmp(buf + target + 5, "://", 3) == 0)
            skip = 8;
        if (skip == 0)
            return refuse(why, 400, "malformed request target");
        const char *slash = memchr(buf + target + skip, '/', n - skip);
        if (slash == NULL)
            return refuse(why, 400, "malformed request target");
        path = (size_t)(slash - buf);
    }
    buf[target_end] = '\0';
    h->path = (uint32_t)path;
    h->query = UINT32_MAX;
    char *q = memchr(buf + path, '?', target_end - path);
    if (q != NULL) {
        *q = '\0';
        h->query = (uint32_t)(q + 1 - buf);
    }
    return true;
}

/* Content-Length = 1*DIGIT (RFC 9110 §8.6). */
static bool parse_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    if (*v == '\0')
        return false;
    for (; *v != '\0'; v++) {
        if (*v < '0' || *v > '9')
            return false;
        if (n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return true;
}

/* Does the comma-separated list in v hold token (lower case), ignoring case? (RFC 9110 §5.6.1) */
static bool list_has(const char *v, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = v;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return false;
        const char *start = p;
        while (*p != '\0' && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen) {
            size_t k = 0;
            while (k < tlen && lower((unsigned char)start[k]) == token[k])
                k++;
            if (k == tlen)
                return true;
        }
    }
}

/* What the fields mean for framing and the connection (RFC 9112 §6, §9.3). */
static bool interpret_fields(const char *buf, const struct tr__field *fields, size_t n,
                             size_t max_body, struct tr__head *h, tr__refusal_t *why)
{
    unsigned hosts = 0, lengths = 0, encodings = 0;
    bool keep_alive = false, close = false;

    for (size_t i = 0; i < n; i++) {
        const char *name = buf + fields[i].name;
        const char *value = buf + fields[i].value;
        switch (lower((unsigned char)name[0])) {
        case 'h':
            if (name_is(name, "host"))
                hosts++;
            break;
        case 'c':
            if (name_is(name, "content-length")) {
                if (++lengths > 1)
                    return refuse(why, 400, "more than one Content-Length");
                if (!parse_length(value, &h->content_length))
                    return refuse(why, 400, "malformed Content-Length");
                h->has_length = true;
            } else if (name_is(name, "connection")) {
                if (list_has(value, "close"))
                    close = true;
                if (list_has(value, "keep-alive"))
                    keep_alive = true;
            }
            break;
        case 't':
            if (name_is(name, "transfer-encoding")) {
                if (++encodings > 1)
                    return refuse(why, 400, "more than one Transfer-Encoding");
                /* Only "chunked" alone: any other coding would have to be undone before the
                 * body could be handed out (RFC 9112 §6.1: 501 for an unknown coding). */
                if (!name_is(value, "chunked"))
                    return refuse(why, 501, "transfer coding not supported");
                h->chunked = true;
            }
            break;
        case 'e':
            if (name_is(name, "expect")) {
                if (!name_is(value, "100-continue"))
                    return refuse(why, 417, "expectation not supported");
                h->expect_continue = true;
            }
            break;
        default:
            break;
        }
    }
    /* RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host, or with
     * more than one. */
    if (hosts > 1 || (hosts == 0 && h->minor == 1))
        return refuse(why, 400, "missing or repeated Host");
    /* RFC 9112 §6.1 and §6.3: Transfer-Encoding with Content-Length is how requests are
     * smuggled past intermediaries; and chunked does not exist in HTTP/1.0. */
    if (h->chunked && (h->has_length || h->minor == 0))
        return refuse(why, 400, "conflicting message framing");
    if (h->has_length && h->content_length > max_body)
        return refuse(why, 413, "request body too large");
    h->close = h->minor == 0 ? !keep_alive : close;
    if (h->minor == 0)
        h->expect_continue = false; /* RFC 9110 §10.1.1: ignored in HTTP/1.0 */
    return true;
}

bool tr__parse_head(char *buf, size_t len, size_t max_fields, size_t max_body,
                    struct tr__field *fields, struct tr__head *out, tr__refusal_t *why)
{
    memset(out, 0, sizeof(*out));
    why->status = 0;
    why->detail = NULL;
    /* The caller found "\r\n\r\n" at the end; offsets must fit the field table. */
    if (len < 4 || len > UINT32_MAX || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0)
        return refuse(why, 400, "malformed request");
    /* RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line;
     * we accept none, a client that sends one is not one of ours. */
    char *eol = memchr(buf, '\r', len);
    if (eol == NULL || eol[1] != '\n')
        return refuse(why, 400, "malformed request line");
    if (!parse_request_line(buf, (size_t)(eol - buf), out, why))
        return false;

    size_t pos = (size_t)(eol - buf) + 2;
    size_t n = 0;
    while (pos < len - 2) {
        /* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS */
        size_t line = pos;
        if (buf[pos] == ' ' || buf[pos] == '\t')
            return refuse(why, 400, "obsolete line folding");
        while (pos < len && is_tchar((unsigned char)buf[pos]))
            pos++;
        if (pos == line || buf[pos] != ':')
            return refuse(why, 400, "malformed header field");
        if (n >= max_fields)
            return refuse(why, 400, "too many header fields");
        buf[pos++] = '\0';
        while (buf[pos] == ' ' || buf[pos] == '\t')
            pos++;
        size_t value = pos, last = pos;
        for (;;) {
            unsigned char c = (unsigned char)buf[pos];
            if (c == '\r')
                break;
            /* field-vchar / SP / HTAB; obs-text (0x80-0xff) is allowed, controls are not. */
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return refuse(why, 400, "control character in header field");
            pos++;
            if (c != ' ' && c != '\t')
                last = pos;
        }
        if (buf[pos + 1] != '\n')
            return refuse(why, 400, "malformed header field");
        buf[last] = '\0';
        fields[n].name = (uint32_t)line;
        fields[n].value = (uint32_t)value;
        n++;
        pos += 2;
    }
    out->n_fields = n;
    return interpret_fields(buf, fields, n, max_body, out, why);
}

/* ---- chunked ------------------------------------------------------------------------------ */

enum {
    CK_SIZE,       /* hex digits */
    CK_BWS,        /* whitespace after the size: then ";" or CR */
    CK_EXT,        /* chunk extensions until CR */
    CK_SIZE_LF,    /* the LF after the size line */
    CK_DATA,       /* chunk data */
    CK_DATA_CR,    /* CRLF after the data */
    CK_DATA_LF,    /* ... its LF */
    CK_TRAILER,    /* start of a trailer line (or the final CRLF) */
    CK_TRAILER_IN, /* inside a trailer field line */
    CK_TRAILER_LF, /* the LF ending a trailer line */
    CK_END_LF,     /* the LF of the final CRLF */
    CK_DONE,
};

void tr__chunked_init(struct tr__chunked *c, size_t body_start, size_t max_body,
                      size_t max_overhead)
{
    memset(c, 0, sizeof(*c));
    c->state = CK_SIZE;
    c->rpos = c->wpos = c->body_start = body_start;
    c->max_body = max_body;
    c->max_overhead = max_overhead;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = lower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static int chunk_fail(tr__refusal_t *why, int status, const char *detail)
{
    refuse(why, status, detail);
    return -1;
}

/*
 * RFC 9112 §7.1:
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   trailer-section = *( field-line CRLF )
 * Extensions are skipped (only their length is bounded); trailer fields are checked for
 * controls and discarded.
 */
int tr__chunked_step(struct tr__chunked *c, uint8_t *buf, size_t len, tr__refusal_t *why)
{
    while (c->rpos < len) {
        /* Framing is everything read but not kept as body. */
        size_t overhead = (c->rpos - c->body_start) - (c->wpos - c->body_start);
        if (overhead > c->max_overhead)
            return chunk_fail(why, 400, "chunk framing too large");
        uint8_t ch = buf[c->rpos];
        switch (c->state) {
        case CK_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                /* Leading zeros are legal, so the digits are bounded by the line limit. */
                if (++c->line > CHUNK_LINE_MAX)
                    return chunk_fail(why, 400, "malformed chunk size");
                c->size = c->size * 16 + (uint64_t)v;
                if (c->size > c->max_body)
                    return chunk_fail(why, 413, "request body too large");
            } else if (c->line == 0) {
                return chunk_fail(why, 400, "malformed chunk size");
            } else if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else if (ch == ';') {
                c->state = CK_EXT; /* ";" chunk-ext-name [ "=" chunk-ext-val ] */
            } else if (ch == ' ' || ch == '\t') {
                c->state = CK_BWS;
            } else {
                return chunk_fail(why, 400, "malformed chunk size");
            }
            c->rpos++;
            break;
        }
        case CK_BWS:
            if (ch == ';')
                c->state = CK_EXT;
            else if (ch == '\r')
                c->state = CK_SIZE_LF;
            else if ((ch != ' ' && ch != '\t') || ++c->line > CHUNK_LINE_MAX)
                return chunk_fail(why, 400, "malformed chunk size");
            c->rpos++;
            break;
        case CK_EXT:
            if (ch == '\r')
                c->state = CK_SIZE_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f || ++c->line > CHUNK_LINE_MAX)
                return chunk_fail(why, 400, "malformed chunk extension");
            c->rpos++;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(why, 400, "malformed chunk size line");
            c->rpos++;
            c->line = 0;
            if (c->size == 0) {
                c->state = CK_TRAILER;
                break;
            }
            if (c->size > c->max_body - (c->wpos - c->body_start))
                return chunk_fail(why, 413, "request body too large");
            c->state = CK_DATA;
            break;
        case CK_DATA: {
            size_t avail = len - c->rpos;
            size_t take = c->size < avail ? (size_t)c->size : avail;
            if (c->wpos != c->rpos)
                memmove(buf + c->wpos, buf + c->rpos, take);
            c->wpos += take;
            c->rpos += take;
            c->size -= take;
            if (c->size == 0)
                c->state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (ch != '\r')
                return chunk_fail(why, 400, "chunk data longer than its size");
            c->state = CK_DATA_LF;
            c->rpos++;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return chunk_fail(why, 400, "chunk data longer than its size");
            c->state = CK_SIZE;
            c->size = 0;
            c->line = 0;
            c->rpos++;
            break;
        case CK_TRAILER:
            if (ch == '\r') {
                c->state = CK_END_LF;
            } else if (ch == ' ' || ch == '\t' || !is_tchar(ch)) {
                return chunk_fail(why, 400, "malformed trailer field");
            } else {
                c->state = CK_TRAILER_IN;
            }
            c->rpos++;
            break;
        case CK_TRAILER_IN:
            if (ch == '\r')
                c->state = CK_TRAILER_LF;
            else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return chunk_fail(why, 400, "control character in trailer field");
            c->rpos++;
            break;
        case CK_TRAILER_LF:
            if (ch != '\n')
                return chunk_fail(why, 400, "malformed trailer field");
            c->state = CK_TRAILER;
            c->rpos++;
            break;
        case CK_END_LF:
            if (ch != '\n')
                return chunk_fail(why, 400, "malformed end of chunked body");
            c->rpos++;
            c->state = CK_DONE;
            return 1;
        default:
            return 1;
        }
    }
    return c->state == CK_DONE ? 1 : 0;
}
