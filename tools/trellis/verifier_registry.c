/*
 * `trellis verifier list-devices | show-device | revoke-device | transfer | audit`: reading and
 * changing the registry from the state directory (the service may be running: SQLite in WAL
 * mode lets both work at once).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "trellis/encoding.h"
#include "verifier_cli.h"

#define PAGE 10000

static int open_store(const char *what, const tr__vargs_t *a, trellis_vstore_t **s)
{
    trellis_reason_t why;
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_verifier_open_store(&a->cfg, s, &why);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", why.text[0] != '\0' ? why.text : trellis_err_message(err));
    return TR__EXIT_OK;
}

static json_t *device_json(const trellis_vstore_device_t *d)
{
    char key[100], created[32], changed[32];
    size_t n = 0;
    if (trellis_b64url_encode(d->rot_key, sizeof(d->rot_key), key, sizeof(key), &n) != TRELLIS_OK)
        key[0] = '\0';
    tr__verifier_time(d->created_ms, created);
    tr__verifier_time(d->changed_ms, changed);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "device_id",
                          d->device_id, "status", d->revoked ? "revoked" : "active", "owner",
                          d->owner, "factory", d->factory, "batch", d->batch, "model", d->model,
                          "serial", d->serial, "rot_key", key, "created", created);
    if (o != NULL && d->revoked)
        json_object_set_new(o, "revoke_reason", json_string(d->revoke_reason));
    if (o != NULL && d->changed_ms > 0)
        json_object_set_new(o, "changed", json_string(changed));
    return o;
}

typedef struct {
    bool json;
    uint64_t n;
    uint64_t limit;
    char last[TRELLIS_DEVICE_ID_HEX_LEN + 1];
} list_state_t;

static int print_device(void *arg, const trellis_vstore_device_t *d)
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
        printf("%s  %-7s  %-16s  %-16s  %s\n", d->device_id, d->revoked ? "revoked" : "active",
               d->owner, d->batch, d->serial);
    }
    memcpy(st->last, d->device_id, sizeof(st->last));
    st->n++;
    return st->n >= st->limit;
}

int tr__verifier_list_devices(int argc, char **argv)
{
    static const char *what = "verifier list-devices";
    const char *owner = NULL, *after = NULL, *limit = NULL;
    bool json = false;
    long long max = INT64_MAX;
    tr__vargs_t a;
    trellis_vstore_t *s = NULL;
    const tr__vflag_t flags[] = {{"owner", &owner, NULL},
                                 {"after", &after, NULL},
                                 {"limit", &limit, NULL},
                                 {"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 4, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier list-devices --dir DIR [--owner OEM] [--after ID]\n"
               "       [--limit N] [--json]\n\n"
               "Lists devices in device id order: id, status, owner, batch, serial (or a JSON\n"
               "array of records). --after ID continues a listing after that device.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (limit != NULL && !tr__verifier_number(limit, 1, INT64_MAX, &max))
        return tr__cli_usage(what, "--limit must be a positive number");
    if (owner != NULL && !trellis_vstore_name_valid(owner))
        return tr__cli_usage(what, "--owner is not a valid OEM name");
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    list_state_t st = {.json = json, .n = 0, .limit = (uint64_t)max};
    snprintf(st.last, sizeof(st.last), "%s", after != NULL ? after : "");
    if (json)
        printf("[");
    trellis_err_t err = TRELLIS_OK;
    /* Page by page, so a registry of millions lists in flat memory. */
    for (;;) {
        uint64_t before = st.n;
        err = s->device_list(s->ctx, owner, st.last, PAGE, print_device, &st);
        if (err != TRELLIS_OK || st.n - before < PAGE || st.n >= st.limit)
            break;
    }
    if (json)
        printf("]\n");
    trellis_vstore_close(s);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    if (!json && st.n == 0)
        printf("no devices\n");
    return TR__EXIT_OK;
}

int tr__verifier_show_device(int argc, char **argv)
{
    static const char *what = "verifier show-device";
    bool json = false;
    tr__vargs_t a;
    trellis_vstore_t *s = NULL;
    trellis_vstore_device_t d;
    const tr__vflag_t flags[] = {{"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 1, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier show-device ID --dir DIR [--json]\n\n"
               "Shows a device's public record: status, owner, factory, batch, model, serial,\n"
               "RoT public key. `trellis verifier audit --device ID` shows its history.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 1)
        return tr__cli_usage(what, "give exactly one device ID");
    if (!trellis_vstore_device_id_valid(a.pos[0]))
        return tr__cli_usage(what, "a device id is 32 lowercase hex characters");
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_err_t err = s->device_get(s->ctx, a.pos[0], &d);
    trellis_vstore_close(s);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return tr__cli_fail(what, "no device %s", a.pos[0]);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    json_t *o = device_json(&d);
    if (json) {
        tr__verifier_print_json(o);
        return TR__EXIT_OK;
    }
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
    {
        printf("%-14s %s\n", key, json_string_value(value));
    }
    json_decref(o);
    return TR__EXIT_OK;
}

int tr__verifier_revoke_device(int argc, char **argv)
{
    static const char *what = "verifier revoke-device";
    const char *reason = NULL;
    bool json = false;
    tr__vargs_t a;
    trellis_vstore_t *s = NULL;
    const tr__vflag_t flags[] = {{"reason", &reason, NULL}, {"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 2, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier revoke-device ID --reason TEXT --dir DIR [--json]\n\n"
               "Marks a device revoked for good (its RoT key is compromised): every later\n"
               "verdict for it is contraindicated with reason \"revoked\". Recorded in the\n"
               "audit log with TEXT (at most 255 bytes).\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 1)
        return tr__cli_usage(what, "give exactly one device ID");
    if (!trellis_vstore_device_id_valid(a.pos[0]))
        return tr__cli_usage(what, "a device id is 32 lowercase hex characters");
    if (reason == NULL || reason[0] == '\0' || strlen(reason) > TRELLIS_VSTORE_REASON_MAX)
        return tr__cli_usage(what, "--reason TEXT (1..255 bytes) is required");
    for (const char *p = reason; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20)
            return tr__cli_usage(what, "--reason must not hold control characters");
    }
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_err_t err = s->device_revoke(s->ctx, a.pos[0], reason, "admin");
    trellis_vstore_close(s);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return tr__cli_fail(what, "no device %s", a.pos[0]);
    if (err == TRELLIS_ERR_REVOKED)
        return tr__cli_fail(what, "device %s is already revoked", a.pos[0]);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    if (json)
        tr__verifier_print_json(json_pack("{s:s, s:s, s:s}", "device_id", a.pos[0], "status",
                                          "revoked", "reason", reason));
    else
        printf("revoked %s\n", a.pos[0]);
    return TR__EXIT_OK;
}

int tr__verifier_transfer(int argc, char **argv)
{
    static const char *what = "verifier transfer";
    const char *device = NULL, *batch = NULL, *factory = NULL, *to = NULL;
    bool json = false;
    uint64_t moved = 0;
    tr__vargs_t a;
    trellis_vstore_t *s = NULL;
    const tr__vflag_t flags[] = {{"device", &device, NULL},
                                 {"batch", &batch, NULL},
                                 {"factory", &factory, NULL},
                                 {"to", &to, NULL},
                                 {"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 5, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier transfer (--device ID | --batch ID [--factory NAME])\n"
               "       --to OEM --dir DIR [--json]\n\n"
               "Gives one device, or every device of a batch, to another registered OEM. From\n"
               "then on only the new owner gets verdicts for them. Each device moved is recorded\n"
               "in the audit log with its previous owner.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if ((device == NULL) == (batch == NULL))
        return tr__cli_usage(what, "give exactly one of --device ID and --batch ID");
    if (to == NULL || !trellis_vstore_name_valid(to))
        return tr__cli_usage(what, "--to OEM is required");
    if (device != NULL && !trellis_vstore_device_id_valid(device))
        return tr__cli_usage(what, "a device id is 32 lowercase hex characters");
    if (batch != NULL && !trellis_vstore_text_valid(batch))
        return tr__cli_usage(what, "--batch is not a valid batch id");
    if (factory != NULL && (batch == NULL || !trellis_vstore_name_valid(factory)))
        return tr__cli_usage(what, "--factory NAME narrows a --batch transfer");
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_err_t err = s->transfer(s->ctx, device, batch, factory, to, "admin", &moved);
    trellis_vstore_close(s);
    if (err == TRELLIS_ERR_NOT_FOUND)
        return tr__cli_fail(what, "no such %s, or %s is not a registered OEM",
                            device != NULL ? "device" : "batch", to);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    if (json)
        tr__verifier_print_json(json_pack("{s:s, s:I}", "to", to, "moved", (json_int_t)moved));
    else
        printf("transferred %" PRIu64 " device(s) to %s\n", moved, to);
    return TR__EXIT_OK;
}

typedef struct {
    bool json;
    uint64_t n;
    int64_t last;
} audit_state_t;

static int print_audit(void *arg, const trellis_vstore_audit_t *e)
{
    audit_state_t *st = arg;
    char when[32];
    tr__verifier_time(e->ts_ms, when);
    if (st->json) {
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
                              "time", when, "event", e->event, "caller", e->caller, "device",
                              e->device, "outcome", e->outcome, "reason", e->reason);
        char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s%s", st->n > 0 ? ",\n" : "", text != NULL ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        printf("%" PRId64 "  %s  %-15s  %-12s  %-32s  %-15s  %s\n", e->seq, when, e->event,
               e->caller, e->device[0] != '\0' ? e->device : "-", e->outcome, e->reason);
    }
    st->last = e->seq;
    st->n++;
    return 0;
}

int tr__verifier_audit(int argc, char **argv)
{
    static const char *what = "verifier audit";
    const char *device = NULL, *after = NULL, *limit = NULL;
    bool json = false;
    long long after_seq = 0, max = 1000;
    tr__vargs_t a;
    trellis_vstore_t *s = NULL;
    const tr__vflag_t flags[] = {{"device", &device, NULL},
                                 {"after", &after, NULL},
                                 {"limit", &limit, NULL},
                                 {"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 4, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier audit --dir DIR [--device ID] [--after SEQ] [--limit N]\n"
               "       [--json]\n\n"
               "Lists the append-only audit log oldest first: sequence, time, event, caller,\n"
               "device, outcome, reason. Every import, verdict, revocation and transfer is\n"
               "there. --after SEQ continues after an entry; --limit N (1000) caps the output.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (device != NULL && !trellis_vstore_device_id_valid(device))
        return tr__cli_usage(what, "a device id is 32 lowercase hex characters");
    if (after != NULL && !tr__verifier_number(after, 0, INT64_MAX, &after_seq))
        return tr__cli_usage(what, "--after must be a sequence number");
    if (limit != NULL && !tr__verifier_number(limit, 1, TRELLIS_VSTORE_LIST_MAX, &max))
        return tr__cli_usage(what, "--limit must be 1..%d", TRELLIS_VSTORE_LIST_MAX);
    rc = open_store(what, &a, &s);
    if (rc != TR__EXIT_OK)
        return rc;
    audit_state_t st = {.json = json, .n = 0, .last = after_seq};
    if (json)
        printf("[");
    trellis_err_t err = s->audit_list(s->ctx, device, after_seq, (size_t)max, print_audit, &st);
    if (json)
        printf("]\n");
    trellis_vstore_close(s);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    if (!json && st.n == 0)
        printf("no entries\n");
    return TR__EXIT_OK;
}
