/* `trellis ingest telemetry|devices|stats`: read the telemetry store, as text or JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "ingest_cli.h"
#include "trellis/conf.h"
#include "trellis/ingest.h"

/* Rows one `telemetry` call prints at most (--limit lowers it). */
#define QUERY_LIMIT_MAX 1000000

typedef struct {
    const char *db;
    const char *since;
    const char *limit;
    bool json;
    bool help;
    const char *positional[2];
    int n_positional;
} args_t;

static int parse(const char *what, int argc, char **argv, bool takes_since, args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **target = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        if (strcmp(arg, "--db") == 0)
            target = &a->db;
        else if (takes_since && strcmp(arg, "--since") == 0)
            target = &a->since;
        else if (takes_since && strcmp(arg, "--limit") == 0)
            target = &a->limit;
        if (target != NULL) {
            if (i + 1 >= argc)
                return tr__cli_usage(what, "%s needs a value", arg);
            *target = argv[++i];
            continue;
        }
        if (arg[0] == '-')
            return tr__cli_usage(what, "unknown option '%s'", arg);
        if (a->n_positional >= 2)
            return tr__cli_usage(what, "unexpected argument '%s'", arg);
        a->positional[a->n_positional++] = arg;
    }
    if (a->db == NULL)
        a->db = getenv("TRELLIS_INGEST_DB");
    if (!a->help && a->db == NULL)
        return tr__cli_usage(what, "--db is required (or TRELLIS_INGEST_DB)");
    return TR__EXIT_OK;
}

/* Unix milliseconds as RFC 3339 UTC with milliseconds. */
static void format_ms(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/*
 * --since: Unix milliseconds ("1764072000000"), RFC 3339 UTC ("2025-11-25T12:00:00Z"), or a
 * duration back from now ("10m", "2h", "1d").
 */
static bool parse_since(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno == 0 && end != text && *end == '\0' && v >= 0) {
        *out = v;
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int consumed = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) == 6 &&
        text[consumed] == '\0' && tm.tm_mon >= 1 && tm.tm_mon <= 12 && tm.tm_mday >= 1 &&
        tm.tm_mday <= 31 && tm.tm_hour <= 23 && tm.tm_min <= 59 && tm.tm_sec <= 60) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        if (t < 0)
            return false;
        *out = (int64_t)t * 1000;
        return true;
    }
    long long back = 0;
    if (trellis_conf_parse_duration(text, &back) == TRELLIS_OK) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        *out = back > now_ms ? 0 : now_ms - back;
        return true;
    }
    return false;
}

static int open_store(const char *what, const char *db, trellis_ingest_store_t *store)
{
    trellis_reason_t reason;
    if (trellis_ingest_sqlite_open(db, true, store, &reason) != TRELLIS_OK)
        return tr__cli_fail(what, "%s", reason.text);
    return TR__EXIT_OK;
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(j);
}

typedef struct {
    bool json;
    json_t *rows;
    bool failed;
} print_ctx_t;

static int print_row(const trellis_ingest_row_t *row, void *arg)
{
    print_ctx_t *p = arg;
    char ts[32], recv[32];
    if (p->json) {
        json_t *o =
            json_pack("{sIsIsfsI}", "seq", (json_int_t)row->seq, "ts", (json_int_t)row->ts_ms,
                      "temp_c", row->temp_c, "recv_ms", (json_int_t)row->recv_ms);
        if (o == NULL || json_array_append_new(p->rows, o) != 0) {
            p->failed = true;
            return 1;
        }
        return 0;
    }
    format_ms(row->ts_ms, ts);
    format_ms(row->recv_ms, recv);
    printf("%10" PRId64 "  %s  %7.2f  %s\n", row->seq, ts, row->temp_c, recv);
    return 0;
}

static const char telemetry_help[] =
    "usage: trellis ingest telemetry DEVICE [--since T] [--limit N] [--json] --db PATH\n"
    "\n"
    "The readings stored for DEVICE (its 32-character id), ascending seq: seq, the device's\n"
    "timestamp, the temperature and when the ingest received it. --since keeps readings whose\n"
    "device timestamp is at or after T: Unix milliseconds, RFC 3339 UTC\n"
    "(2025-11-25T12:00:00Z) or a duration back from now (10m, 2h, 1d). --limit caps the rows\n"
    "(default and maximum 1000000). --json prints one object: device_id, acked (the last\n"
    "end-to-end ack), readings, quarantined, rows [{seq, ts, temp_c, recv_ms}].\n"
    "--db defaults to $TRELLIS_INGEST_DB. This is the `registrar telemetry` command of the\n"
    "design (docs/ingest.md).\n";

int tr__ingest_telemetry(int argc, char **argv)
{
    static const char what[] = "ingest telemetry";
    args_t a;
    trellis_ingest_store_t store = {0};
    trellis_ingest_device_t dev;
    int64_t since = 0;
    long long limit = QUERY_LIMIT_MAX;
    print_ctx_t p = {0};
    int rc = parse(what, argc, argv, true, &a);

    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        fputs(telemetry_help, stdout);
        return TR__EXIT_OK;
    }
    if (a.n_positional != 1)
        return tr__cli_usage(what, "give exactly one DEVICE");
    if (trellis_telemetry_device_id_check(a.positional[0]) != TRELLIS_OK)
        return tr__cli_usage(what, "DEVICE must be 32 lowercase hex characters");
    if (a.since != NULL && !parse_since(a.since, &since))
        return tr__cli_usage(what, "--since: '%s' is not Unix ms, RFC 3339 UTC or a duration",
                             a.since);
    if (a.limit != NULL) {
        char *end = NULL;
        errno = 0;
        limit = strtoll(a.limit, &end, 10);
        if (errno != 0 || end == a.limit || *end != '\0' || limit < 1 || limit > QUERY_LIMIT_MAX)
            return tr__cli_usage(what, "--limit must be 1..%d", QUERY_LIMIT_MAX);
    }
    rc = open_store(what, a.db, &store);
    if (rc != TR__EXIT_OK)
        return rc;
    trellis_err_t err = store.device(store.ctx, a.positional[0], &dev);
    if (err == TRELLIS_ERR_NOT_FOUND) {
        rc = tr__cli_fail(what, "no telemetry from device %s", a.positional[0]);
        goto out;
    }
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", trellis_err_message(err));
        goto out;
    }
    p.json = a.json;
    if (a.json) {
        p.rows = json_array();
        if (p.rows == NULL) {
            rc = tr__cli_fail(what, "out of memory");
            goto out;
        }
    } else {
        printf("device %s: %" PRId64 " readings, %" PRId64 " quarantined, acked up to %" PRId64
               "\n%10s  %-24s  %7s  %s\n",
               dev.device_id, dev.readings, dev.quarantined, dev.acked, "seq", "ts", "temp_c",
               "received");
    }
    err = store.query(store.ctx, a.positional[0], since, (size_t)limit, print_row, &p);
    if (err != TRELLIS_OK || p.failed) {
        rc = tr__cli_fail(what, "query failed: %s", trellis_err_message(err));
        goto out;
    }
    if (a.json) {
        json_t *o = json_pack("{sssIsIsIsO}", "device_id", dev.device_id, "acked",
                              (json_int_t)dev.acked, "readings", (json_int_t)dev.readings,
                              "quarantined", (json_int_t)dev.quarantined, "rows", p.rows);
        if (o == NULL) {
            rc = tr__cli_fail(what, "out of memory");
            goto out;
        }
        print_json(o);
    }
    rc = TR__EXIT_OK;
out:
    json_decref(p.rows);
    if (store.close != NULL)
        store.close(store.ctx);
    return rc;
}

typedef struct {
    bool json;
    json_t *list;
    bool failed;
} devices_ctx_t;

static int print_device(const trellis_ingest_device_t *d, void *arg)
{
    devices_ctx_t *c = arg;
    char last[32];
    if (c->json) {
        json_t *o = json_pack(
            "{sssIsIsIsIsIsfsI}", "device_id", d->device_id, "acked", (json_int_t)d->acked,
            "readings", (json_int_t)d->readings, "quarantined", (json_int_t)d->quarantined,
            "last_seq", (json_int_t)d->last_seq, "last_ts", (json_int_t)d->last_ts_ms,
            "last_temp_c", d->last_temp_c, "last_recv_ms", (json_int_t)d->last_recv_ms);
        if (o == NULL || json_array_append_new(c->list, o) != 0) {
            c->failed = true;
            return 1;
        }
        return 0;
    }
    format_ms(d->last_recv_ms, last);
    printf("%s  %10" PRId64 "  %10" PRId64 "  %7.2f  %s\n", d->device_id, d->readings, d->acked,
           d->last_temp_c, last);
    return 0;
}

/* The start of a command without positional arguments: parses, answers --help with usage,
 * opens the store. Returns -1 to go on (store open), else the exit status. */
static int begin(const char *what, int argc, char **argv, const char *usage, args_t *a,
                 trellis_ingest_store_t *store)
{
    int rc = parse(what, argc, argv, false, a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a->help) {
        puts(usage);
        return TR__EXIT_OK;
    }
    if (a->n_positional != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a->positional[0]);
    rc = open_store(what, a->db, store);
    return rc != TR__EXIT_OK ? rc : -1;
}

int tr__ingest_devices(int argc, char **argv)
{
    static const char what[] = "ingest devices";
    args_t a;
    trellis_ingest_store_t store = {0};
    devices_ctx_t c = {0};
    int rc = begin(what, argc, argv,
                   "usage: trellis ingest devices [--json] --db PATH\n\n"
                   "Every device that sent telemetry: readings stored, the last end-to-end ack, "
                   "the\nlast temperature and when it arrived.",
                   &a, &store);

    if (rc >= 0)
        return rc;
    c.json = a.json;
    if (a.json && (c.list = json_array()) == NULL) {
        rc = tr__cli_fail(what, "out of memory");
        goto out;
    }
    if (!a.json)
        printf("%-32s  %10s  %10s  %7s  %s\n", "device", "readings", "acked", "temp_c",
               "last received");
    trellis_err_t err = store.devices(store.ctx, print_device, &c);
    if (err != TRELLIS_OK || c.failed) {
        rc = tr__cli_fail(what, "query failed: %s", trellis_err_message(err));
        goto out;
    }
    if (a.json) {
        print_json(c.list);
        c.list = NULL;
    }
    rc = TR__EXIT_OK;
out:
    json_decref(c.list);
    if (store.close != NULL)
        store.close(store.ctx);
    return rc;
}

int tr__ingest_stats(int argc, char **argv)
{
    static const char what[] = "ingest stats";
    args_t a;
    trellis_ingest_store_t store = {0};
    trellis_ingest_stats_t s;
    int rc = begin(what, argc, argv,
                   "usage: trellis ingest stats [--json] --db PATH\n\n"
                   "The ingest's persistent counters: readings stored, duplicates ignored, "
                   "payloads\nquarantined, and messages rejected (bad topic; bad payload without "
                   "a seq).",
                   &a, &store);

    if (rc >= 0)
        return rc;
    trellis_err_t err = store.counters(store.ctx, &s);
    store.close(store.ctx);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    if (a.json) {
        json_t *o = json_pack("{sIsIsIsIsI}", "stored", (json_int_t)s.stored, "duplicates",
                              (json_int_t)s.duplicates, "quarantined", (json_int_t)s.quarantined,
                              "rejected_topic", (json_int_t)s.rejected_topic, "rejected_payload",
                              (json_int_t)s.rejected_payload);
        if (o == NULL)
            return tr__cli_fail(what, "out of memory");
        print_json(o);
    } else {
        printf("stored %" PRIu64 "\nduplicates %" PRIu64 "\nquarantined %" PRIu64
               "\nrejected_topic %" PRIu64 "\nrejected_payload %" PRIu64 "\n",
               s.stored, s.duplicates, s.quarantined, s.rejected_topic, s.rejected_payload);
    }
    return TR__EXIT_OK;
}
