/*
 * `trellis registrar revoke | reinstate | devices | show | audit | crl`: reading and changing
 * the registry from the state directory. The service may be running: SQLite in WAL mode lets
 * both work at once, and the service serves a CRL published here within a second.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "registrar_cli.h"
#include "trellis/encoding.h"

#define PAGE 10000

static int open_store(const char *what, const tr__rargs_t *a, trellis_rstore_t **s)
{
    trellis_reason_t why;
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_open_store(&a->cfg, s, &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    return TR__EXIT_OK;
}

static int device_arg(const char *what, const tr__rargs_t *a, const char **id)
{
    if (a->npos != 1)
        return tr__cli_usage(what, "exactly one DEVICE id is expected");
    if (!trellis_rstore_hex32_valid(a->pos[0]))
        return tr__cli_usage(what, "a device id is 32 lowercase hex digits");
    *id = a->pos[0];
    return TR__EXIT_OK;
}

int tr__registrar_revoke(int argc, char **argv)
{
    static const char *what = "registrar revoke";
    const char *reason = NULL, *code_name = NULL, *id = NULL;
    bool json = false;
    tr__rargs_t a;
    trellis_reason_t why;
    uint64_t n = 0;
    trellis_crl_reason_t code = TRELLIS_CRL_REASON_UNSPECIFIED;
    const tr__rflag_t flags[] = {
        {"reason", &reason, NULL}, {"code", &code_name, NULL}, {"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 3, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar revoke DEVICE --reason TEXT [--code CODE] --dir DIR\n"
               "       [--json]\n\n"
               "Marks DEVICE revoked, revokes every certificate it holds and publishes a new CRL\n"
               "(served at /v1/crl within a second, and written to crl-file for the broker). A\n"
               "revoked device cannot enroll again until `trellis registrar reinstate`.\n\n"
               "  --reason TEXT  why, for the audit log (required)\n"
               "  --code CODE    the CRL reason code: keyCompromise, affiliationChanged,\n"
               "                 superseded, cessationOfOperation, privilegeWithdrawn or\n"
               "                 unspecified; by default TEXT itself if it is one of these\n");
        return TR__EXIT_OK;
    }
    rc = device_arg(what, &a, &id);
    if (rc != TR__EXIT_OK)
        return rc;
    if (reason == NULL || reason[0] == '\0')
        return tr__cli_usage(what, "--reason TEXT is required");
    if (code_name != NULL) {
        if (trellis_crl_reason_parse(code_name, &code) != TRELLIS_OK)
            return tr__cli_usage(what, "--code: not a CRL reason code");
    } else if (trellis_crl_reason_parse(reason, &code) != TRELLIS_OK) {
        code = TRELLIS_CRL_REASON_UNSPECIFIED;
    }
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_revoke(&a.cfg, id, code, reason, "admin", &n, &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    if (json)
        tr__registrar_print_json(json_pack("{s:s, s:s, s:s, s:I}", "device_id", id, "status",
                                           "revoked", "code", trellis_crl_reason_name(code),
                                           "certificates_revoked", (json_int_t)n));
    else
        printf("revoked %s (%s): %" PRIu64 " certificate%s revoked, CRL published\n", id,
               trellis_crl_reason_name(code), n, n == 1 ? "" : "s");
    return TR__EXIT_OK;
}

int tr__registrar_reinstate(int argc, char **argv)
{
    static const char *what = "registrar reinstate";
    const char *id = NULL;
    bool json = false;
    tr__rargs_t a;
    trellis_reason_t why;
    const tr__rflag_t flags[] = {{"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 1, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar reinstate DEVICE --dir DIR [--json]\n\n"
               "Lets a revoked device enroll again (with its Root of Trust evidence, as at first\n"
               "boot). Its revoked certificates stay revoked.\n");
        return TR__EXIT_OK;
    }
    rc = device_arg(what, &a, &id);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_reinstate(&a.cfg, id, "admin", &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    if (json)
        tr__registrar_print_json(json_pack("{s:s, s:s}", "device_id", id, "status", "active"));
    else
        printf("reinstated %s: it may enroll again\n", id);
    return TR__EXIT_OK;
}

static json_t *device_json(const trellis_rstore_device_t *d)
{
    char enrolled[32], changed[32], not_after[32];
    tr__registrar_time_ms(d->enrolled_ms, enrolled);
    tr__registrar_time_ms(d->changed_ms, changed);
    tr__registrar_time_s(d->not_after, not_after);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I}", "device_id", d->device_id, "status",
                          d->revoked ? "revoked" : "active", "enrolled", enrolled, "changed",
                          changed, "enrollments", (json_int_t)d->enrollments);
    if (o == NULL)
        return NULL;
    if (d->revoked)
        json_object_set_new(o, "revoke_reason", json_string(d->revoke_reason));
    if (d->serial[0] != '\0') {
        json_object_set_new(o, "serial", json_string(d->serial));
        json_object_set_new(o, "not_after", json_string(not_after));
    }
    return o;
}

typedef struct {
    bool json;
    uint64_t n, limit;
    char last[TRELLIS_RSTORE_DEVICE_ID_LEN + 1];
} list_state_t;

static int print_device(void *arg, const trellis_rstore_device_t *d)
{
    list_state_t *st = arg;
    if (st->json) {
        char *text = NULL;
        json_t *o = device_json(d);
        if (o != NULL)
            text = json_dumps(o, JSON_COMPACT);
        printf("%s%s", st->n > 0 ? ",\n" : "", text != NULL ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        char not_after[32];
        tr__registrar_time_s(d->not_after, not_after);
        printf("%s  %-7s  %5" PRIu64 "  %-32s  %s\n", d->device_id,
               d->revoked ? "revoked" : "active", d->enrollments,
               d->serial[0] != '\0' ? d->serial : "-", not_after);
    }
    memcpy(st->last, d->device_id, sizeof(st->last));
    st->n++;
    return st->n >= st->limit;
}

int tr__registrar_devices(int argc, char **argv)
{
    static const char *what = "registrar devices";
    const char *after = NULL, *limit = NULL;
    bool json = false;
    long long max = INT64_MAX;
    tr__rargs_t a;
    trellis_rstore_t *s = NULL;
    const tr__rflag_t flags[] = {
        {"after", &after, NULL}, {"limit", &limit, NULL}, {"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 3, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar devices --dir DIR [--after ID] [--limit N] [--json]\n\n"
               "Lists enrolled devices in device id order: id, status, enrollments, the serial\n"
               "and notAfter of its current certificate (or a JSON array of records). --after\n"
               "ID continues a listing after that device.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (limit != NULL && !tr__registrar_number(limit, 1, INT64_MAX, &max))
        return tr__cli_usage(what, "--limit must be a positive number");
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    list_state_t st = {.json = json, .n = 0, .limit = (uint64_t)max};
    snprintf(st.last, sizeof(st.last), "%s", after != NULL ? after : "");
    if (json)
        printf("[");
    trellis_err_t err = TRELLIS_OK;
    int64_t now = (int64_t)time(NULL);
    /* Page by page, so a registry of millions lists in flat memory. */
    for (;;) {
        uint64_t before = st.n;
        err = s->device_list(s->ctx, st.last, PAGE, now, print_device, &st);
        if (err != TRELLIS_OK || st.n - before < PAGE || st.n >= st.limit)
            break;
    }
    if (json)
        printf("]\n");
    trellis_rstore_close(s);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    return TR__EXIT_OK;
}

typedef struct {
    bool json;
    json_t *arr;
} certs_t;

static int print_cert(void *arg, const trellis_rstore_cert_t *c)
{
    certs_t *st = arg;
    char nb[32], na[32], issued[32], revoked[32];
    tr__registrar_time_s(c->not_before, nb);
    tr__registrar_time_s(c->not_after, na);
    tr__registrar_time_ms(c->issued_ms, issued);
    tr__registrar_time_ms(c->revoked_ms, revoked);
    const char *kind = c->kind == TRELLIS_RSTORE_REENROLL ? "reenroll" : "enroll";
    if (st->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "serial", c->serial, "kind", kind,
                              "issued", issued, "not_before", nb, "not_after", na);
        if (o != NULL && c->revoked_ms > 0) {
            json_object_set_new(o, "revoked", json_string(revoked));
            json_object_set_new(o, "revoke_reason",
                                json_string(trellis_crl_reason_name(c->revoke_reason)));
        }
        if (o != NULL)
            json_array_append_new(st->arr, o);
    } else {
        printf("  %s  %-8s  issued %s  until %s%s%s%s\n", c->serial, kind, issued, na,
               c->revoked_ms > 0 ? "  REVOKED " : "", c->revoked_ms > 0 ? revoked : "",
               c->revoked_ms > 0 ? "" : "");
    }
    return 0;
}

int tr__registrar_show(int argc, char **argv)
{
    static const char *what = "registrar show";
    const char *id = NULL;
    bool json = false;
    tr__rargs_t a;
    trellis_rstore_t *s = NULL;
    trellis_rstore_device_t d;
    const tr__rflag_t flags[] = {{"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 1, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar show DEVICE --dir DIR [--json]\n\n"
               "Shows one device: status, enrollments, and every certificate issued to it.\n");
        return TR__EXIT_OK;
    }
    rc = device_arg(what, &a, &id);
    if (rc != TR__EXIT_OK)
        return rc;
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_err_t err = s->device_get(s->ctx, id, (int64_t)time(NULL), &d);
    if (err != TRELLIS_OK) {
        trellis_rstore_close(s);
        if (err == TRELLIS_ERR_NOT_FOUND)
            return tr__cli_fail(what, "device %s is not in the registry", id);
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    }
    certs_t st = {.json = json, .arr = json ? json_array() : NULL};
    if (json) {
        json_t *o = device_json(&d);
        err = s->cert_list(s->ctx, id, print_cert, &st);
        if (o != NULL && st.arr != NULL)
            json_object_set(o, "certificates", st.arr);
        tr__registrar_print_json(o);
        json_decref(st.arr);
    } else {
        char enrolled[32], changed[32];
        tr__registrar_time_ms(d.enrolled_ms, enrolled);
        tr__registrar_time_ms(d.changed_ms, changed);
        printf("device       %s\nstatus       %s%s%s\nenrolled     %s\nchanged      %s\n"
               "enrollments  %" PRIu64 "\ncertificates\n",
               d.device_id, d.revoked ? "revoked" : "active", d.revoked ? ": " : "",
               d.revoked ? d.revoke_reason : "", enrolled, changed, d.enrollments);
        err = s->cert_list(s->ctx, id, print_cert, &st);
    }
    trellis_rstore_close(s);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    return TR__EXIT_OK;
}

typedef struct {
    bool json;
    uint64_t n, limit;
    int64_t last;
} audit_state_t;

static int print_audit(void *arg, const trellis_rstore_audit_t *e)
{
    audit_state_t *st = arg;
    char ts[32];
    tr__registrar_time_ms(e->ts_ms, ts);
    if (st->json) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
                              "time", ts, "event", e->event, "actor", e->actor, "device", e->device,
                              "outcome", e->outcome, "detail", e->detail);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s%s", st->n > 0 ? ",\n" : "", text != NULL ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        printf("%6" PRId64 "  %s  %-16s  %-8s  %-32s  %-21s  %s\n", e->seq, ts, e->event,
               e->outcome, e->device[0] != '\0' ? e->device : "-", e->actor, e->detail);
    }
    st->last = e->seq;
    st->n++;
    return st->n >= st->limit;
}

int tr__registrar_audit(int argc, char **argv)
{
    static const char *what = "registrar audit";
    const char *device = NULL, *after = NULL, *limit = NULL;
    bool json = false;
    long long max = INT64_MAX, from = 0;
    tr__rargs_t a;
    trellis_rstore_t *s = NULL;
    const tr__rflag_t flags[] = {{"device", &device, NULL},
                                 {"after", &after, NULL},
                                 {"limit", &limit, NULL},
                                 {"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 4, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar audit --dir DIR [--device ID] [--after SEQ] [--limit N]\n"
               "       [--json]\n\n"
               "Lists the append-only audit log in order: sequence number, time, event\n"
               "(enroll, reenroll, device.revoke, device.reinstate), outcome (ok, replaced,\n"
               "refused), device, actor (the client's address, or admin) and detail.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (device != NULL && !trellis_rstore_hex32_valid(device))
        return tr__cli_usage(what, "--device: a device id is 32 lowercase hex digits");
    if ((limit != NULL && !tr__registrar_number(limit, 1, INT64_MAX, &max)) ||
        (after != NULL && !tr__registrar_number(after, 0, INT64_MAX, &from)))
        return tr__cli_usage(what, "--limit and --after take numbers");
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    audit_state_t st = {.json = json, .n = 0, .limit = (uint64_t)max, .last = from};
    if (json)
        printf("[");
    trellis_err_t err = TRELLIS_OK;
    for (;;) {
        uint64_t before = st.n;
        err = s->audit_list(s->ctx, device, st.last, PAGE, print_audit, &st);
        if (err != TRELLIS_OK || st.n - before < PAGE || st.n >= st.limit)
            break;
    }
    if (json)
        printf("]\n");
    trellis_rstore_close(s);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    return TR__EXIT_OK;
}

int tr__registrar_crl(int argc, char **argv)
{
    static const char *what = "registrar crl";
    bool json = false;
    tr__rargs_t a;
    trellis_reason_t why;
    uint64_t number = 0;
    const tr__rflag_t flags[] = {{"json", NULL, &json}};

    int rc = tr__registrar_parse(what, argc, argv, flags, 1, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar crl --dir DIR [--json]\n\n"
               "Publishes a CRL now from the registry (signed by the device CA, valid for\n"
               "crl-validity) and writes it to crl-file. The service publishes one by itself\n"
               "after revocations and when half of the current one's validity has passed.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_publish_crl(&a.cfg, &number, &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    if (json)
        tr__registrar_print_json(
            json_pack("{s:I, s:s}", "crl_number", (json_int_t)number, "file", a.cfg.crl_file));
    else
        printf("published CRL %" PRIu64 " to %s\n", number, a.cfg.crl_file);
    return TR__EXIT_OK;
}
