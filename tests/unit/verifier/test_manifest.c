#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "vtest_util.h"

#define N_DEV 5

typedef struct {
    char dir[256];
    trellis_vstore_t *s;
    EVP_PKEY *fkey;
    vt_device_t dev[N_DEV];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char db[300];
    uint8_t point[65];
    assert_non_null(f);
    trellis_test_tmpdir(f->dir, sizeof(f->dir), "manifest");
    snprintf(db, sizeof(db), "%s/registry.db", f->dir);
    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 200, .create = 1};
    assert_int_equal(trellis_vstore_open_sqlite(db, &o, &f->s), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&f->fkey), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(f->fkey, point), TRELLIS_OK);
    assert_int_equal(f->s->oem_add(f->s->ctx, "acme", "admin"), TRELLIS_OK);
    assert_int_equal(f->s->oem_add(f->s->ctx, "beta", "admin"), TRELLIS_OK);
    assert_int_equal(f->s->factory_add(f->s->ctx, "fab-1", point, "admin"), TRELLIS_OK);
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_init(&f->dev[i], i);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    for (unsigned i = 0; i < N_DEV; i++)
        vt_device_cleanup(&f->dev[i]);
    EVP_PKEY_free(f->fkey);
    trellis_vstore_close(f->s);
    trellis_test_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- line parsers ---- */

static void test_header(void **state)
{
    (void)state;
    tr__manifest_header_t h;
    trellis_reason_t why;
    const char *good = "{\"trellis_manifest\":1,\"factory\":\"fab-1\",\"owner\":\"acme\","
                       "\"batch\":\"b 20261125/01\",\"created\":\"2026-11-25T13:00:00Z\","
                       "\"count\":2}";
    assert_int_equal(tr__manifest_parse_header(good, strlen(good), &h, &why), TRELLIS_OK);
    assert_string_equal(h.factory, "fab-1");
    assert_string_equal(h.owner, "acme");
    assert_string_equal(h.batch, "b 20261125/01");
    assert_int_equal(h.count, 2);

    static const struct {
        const char *line;
        const char *reason;
    } bad[] = {
        {"", "not JSON"},
        {"[1]", "not a JSON object"},
        {"{\"trellis_manifest\":1}", "missing member \"factory\""},
        {"{\"trellis_manifest\":2,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "version 2"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1,\"extra\":1}",
         "unknown member \"extra\""},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"factory\":\"g\",\"owner\":\"o\","
         "\"batch\":\"b\",\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "not JSON"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":0}",
         "\"count\" is 0"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":-1}",
         "\"count\" is not an integer"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1.0}",
         "\"count\" is not an integer"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":\"1\"}",
         "\"count\" is not an integer"},
        {"{\"trellis_manifest\":1,\"factory\":\"f x\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "\"factory\" is not valid"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "\"owner\" is not valid"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\\u0001\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "\"batch\" is not valid"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-02-30T13:00:00Z\",\"count\":1}",
         "\"created\" is not valid"},
        {"{\"trellis_manifest\":1,\"factory\":\"f\",\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00+01:00\",\"count\":1}",
         "\"created\" is not valid"},
        {"{\"trellis_manifest\":1,\"factory\":7,\"owner\":\"o\",\"batch\":\"b\","
         "\"created\":\"2026-11-25T13:00:00Z\",\"count\":1}",
         "\"factory\" is not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trellis_reason_clear(&why);
        assert_int_equal(tr__manifest_parse_header(bad[i].line, strlen(bad[i].line), &h, &why),
                         TRELLIS_ERR_PARSE);
        if (strstr(why.text, bad[i].reason) == NULL)
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, why.text, bad[i].reason);
        assert_string_equal(h.factory, "");
        assert_int_equal(h.count, 0);
    }
    assert_int_equal(tr__manifest_parse_header(NULL, 0, &h, &why), TRELLIS_ERR_INVALID_ARG);
}

static void test_rfc3339(void **state)
{
    (void)state;
    assert_true(tr__rfc3339_utc_valid("2026-11-25T13:00:00Z"));
    assert_true(tr__rfc3339_utc_valid("2026-11-25T13:00:00.123456Z"));
    assert_true(tr__rfc3339_utc_valid("2028-02-29T23:59:60Z"));
    assert_false(tr__rfc3339_utc_valid("2026-11-25 13:00:00Z"));
    assert_false(tr__rfc3339_utc_valid("2026-13-01T00:00:00Z"));
    assert_false(tr__rfc3339_utc_valid("2026-11-25T24:00:00Z"));
    assert_false(tr__rfc3339_utc_valid("2026-11-25T13:00:00.Z"));
    assert_false(tr__rfc3339_utc_valid("2026-11-25T13:00:00"));
    assert_false(tr__rfc3339_utc_valid("2026-11-2aT13:00:00Z"));
    assert_false(tr__rfc3339_utc_valid(NULL));
}

static void test_record(void **state)
{
    fx_t *f = *state;
    char line[512];
    tr__manifest_record_t r;
    trellis_reason_t why;

    vt_record_line(&f->dev[0], line, sizeof(line));
    assert_int_equal(tr__manifest_parse_record(line, strlen(line), &r, &why), TRELLIS_OK);
    assert_string_equal(r.device_id, f->dev[0].id);
    assert_memory_equal(r.rot_key, f->dev[0].point, 65);
    assert_string_equal(r.serial, f->dev[0].serial);

    /* The device id of another device. */
    vt_device_t d = f->dev[1];
    memcpy(d.id, f->dev[0].id, 33);
    vt_record_line(&d, line, sizeof(line));
    assert_int_equal(tr__manifest_parse_record(line, strlen(line), &r, &why), TRELLIS_ERR_PARSE);
    assert_non_null(strstr(why.text, "not derived from rot_key"));
    assert_string_equal(r.device_id, "");

    /* A point off the curve. */
    d = f->dev[1];
    d.point[64] ^= 1;
    vt_record_line(&d, line, sizeof(line));
    assert_int_equal(tr__manifest_parse_record(line, strlen(line), &r, &why), TRELLIS_ERR_BAD_KEY);
    assert_non_null(strstr(why.text, "not a point on P-256"));
    /* The point at infinity / a compressed prefix. */
    d = f->dev[1];
    d.point[0] = 0x02;
    vt_record_line(&d, line, sizeof(line));
    assert_int_equal(tr__manifest_parse_record(line, strlen(line), &r, &why), TRELLIS_ERR_BAD_KEY);

    static const char *const bad[] = {
        "{\"device_id\":\"00\",\"rot_key\":\"AA\",\"model\":\"m\",\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA==\",\"model\":\"m\","
        "\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789ABCDEF0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"model\":\"m\",\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"\","
        "\"serial\":\"s\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"s\",\"owner\":\"x\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"caf\xc3\xa9\"}",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"s\"} x",
        "{\"device_id\":\"0123456789abcdef0123456789abcdef\",\"rot_key\":\"AA\",\"model\":\"m\","
        "\"serial\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        trellis_err_t err = tr__manifest_parse_record(bad[i], strlen(bad[i]), &r, &why);
        if (err != TRELLIS_ERR_PARSE)
            fail_msg("case %zu: %d (%s)", i, (int)err, why.text);
    }
}

static void test_trailer(void **state)
{
    (void)state;
    tr__manifest_trailer_t t;
    trellis_reason_t why;
    char sig[100], line[300];
    uint8_t raw[64];
    size_t n = 0;
    memset(raw, 0x5a, sizeof(raw));
    assert_int_equal(trellis_b64url_encode(raw, 64, sig, sizeof(sig), &n), TRELLIS_OK);
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    snprintf(line, sizeof(line), "{\"sha256\":\"%s\",\"signature\":\"%s\"}", hex, sig);
    assert_int_equal(tr__manifest_parse_trailer(line, strlen(line), &t, &why), TRELLIS_OK);
    assert_int_equal(t.sha256[1], 0x11);
    assert_memory_equal(t.signature, raw, 64);

    snprintf(line, sizeof(line), "{\"sha256\":\"%s\",\"signature\":\"%s\"}",
             "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff", sig);
    assert_int_equal(tr__manifest_parse_trailer(line, strlen(line), &t, &why), TRELLIS_ERR_PARSE);
    assert_non_null(strstr(why.text, "lowercase hex"));
    snprintf(line, sizeof(line), "{\"sha256\":\"%s\",\"signature\":\"%.80s\"}", hex, sig);
    assert_int_equal(tr__manifest_parse_trailer(line, strlen(line), &t, &why), TRELLIS_ERR_PARSE);
    snprintf(line, sizeof(line), "{\"sha256\":\"%s\",\"signature\":\"%s==\"}", hex, sig);
    assert_int_equal(tr__manifest_parse_trailer(line, strlen(line), &t, &why), TRELLIS_ERR_PARSE);
    snprintf(line, sizeof(line), "{\"sha256\":\"%s\"}", hex);
    assert_int_equal(tr__manifest_parse_trailer(line, strlen(line), &t, &why), TRELLIS_ERR_PARSE);
    assert_memory_equal(t.sha256, (uint8_t[32]){0}, 32);
}

/* ---- streaming import ---- */

static trellis_err_t run_import(fx_t *f, const char *caller, const char *text, size_t len,
                                size_t chunk, tr__import_report_t *rep)
{
    tr__import_t *imp = NULL;
    assert_int_equal(tr__import_new(f->s, caller, 0, &imp), TRELLIS_OK);
    trellis_err_t err = TRELLIS_OK;
    for (size_t off = 0; off < len && err == TRELLIS_OK; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        err = tr__import_feed(imp, (const uint8_t *)text + off, n);
    }
    trellis_err_t fin = tr__import_finish(imp, rep);
    if (err != TRELLIS_OK)
        assert_int_equal(fin, err);
    tr__import_free(imp);
    return fin;
}

static vt_manifest_spec_t spec_of(fx_t *f, size_t from, size_t to, const char *batch)
{
    return (vt_manifest_spec_t){.factory = "fab-1",
                                .owner = "acme",
                                .batch = batch,
                                .count = -1,
                                .devices = &f->dev[from],
                                .n_devices = to - from,
                                .signer = f->fkey};
}

static void test_import_ok_any_chunking(void **state)
{
    fx_t *f = *state;
    tr__import_report_t rep;
    size_t len = 0;
    vt_manifest_spec_t spec = spec_of(f, 0, 3, "b-1");
    char *text = vt_manifest_build(&spec, &len);

    /* One byte at a time. */
    assert_int_equal(run_import(f, "fab-1", text, len, 1, &rep), TRELLIS_OK);
    assert_int_equal(rep.records, 3);
    assert_int_equal(rep.added, 3);
    assert_int_equal(rep.already_present, 0);
    assert_int_equal(rep.lines_read, 5);
    assert_true(rep.have_sha256);
    trellis_vstore_counts_t c = vt_counts(f->s);
    assert_int_equal(c.devices, 3);
    assert_int_equal(c.manifests, 1);
    trellis_vstore_device_t d;
    assert_int_equal(f->s->device_get(f->s->ctx, f->dev[1].id, &d), TRELLIS_OK);
    assert_string_equal(d.owner, "acme");
    assert_string_equal(d.batch, "b-1");

    /* The same bytes in one chunk: already present, nothing changes. */
    assert_int_equal(run_import(f, "fab-1", text, len, len, &rep), TRELLIS_OK);
    assert_int_equal(rep.already_present, 1);
    trellis_vstore_counts_t c2 = vt_counts(f->s);
    vt_assert_counts_equal(&c, &c2);
    free(text);

    /* Another batch with an identical known device plus new ones, in odd chunks. */
    spec = spec_of(f, 2, 5, "b-2");
    text = vt_manifest_build(&spec, &len);
    assert_int_equal(run_import(f, "fab-1", text, len, 7, &rep), TRELLIS_OK);
    assert_int_equal(rep.added, 2);
    assert_int_equal(rep.present, 1);
    free(text);
}

/* Asserts that importing text fails with err, names line (0: no line) and changes nothing. */
static void expect_rejected(fx_t *f, const char *caller, const char *text, size_t len,
                            trellis_err_t want, uint64_t line, const char *needle)
{
    tr__import_report_t rep;
    trellis_vstore_counts_t before = vt_counts(f->s);
    trellis_err_t err = run_import(f, caller, text, len, 13, &rep);
    if (err != want)
        fail_msg("want %d, got %d (%s)", (int)want, (int)err, rep.reason.text);
    assert_int_equal(rep.err, want);
    if (line > 0) {
        assert_true(rep.n_lines >= 1);
        assert_int_equal(rep.lines[0], line);
    }
    if (strstr(rep.reason.text, needle) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\"", rep.reason.text, needle);
    trellis_vstore_counts_t after = vt_counts(f->s);
    vt_assert_counts_equal(&before, &after);
}

static void test_import_refusals(void **state)
{
    fx_t *f = *state;
    size_t len = 0;
    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);

    vt_manifest_spec_t spec = spec_of(f, 0, 3, "b-1");
    char *text = vt_manifest_build(&spec, &len);

    /* Authenticated as another factory. */
    expect_rejected(f, "fab-2", text, len, TRELLIS_ERR_PERMISSION, 1, "the client is \"fab-2\"");
    /* Missing final newline. */
    expect_rejected(f, "fab-1", text, len - 1, TRELLIS_ERR_PARSE, 5, "no newline");
    /* Data after the trailer. */
    char *more = malloc(len + 8);
    memcpy(more, text, len);
    memcpy(more + len, "{}\n", 3);
    expect_rejected(f, "fab-1", more, len + 3, TRELLIS_ERR_PARSE, 6, "after the trailer");
    /* A record altered after signing. */
    char *p = strstr(text, "SN-000001");
    p[3] = '9';
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_BAD_SIGNATURE, 5, "sha256 does not match");
    p[3] = '0';
    /* An empty line. */
    memcpy(more, text, len);
    char *nl = memchr(more, '\n', len);
    memmove(nl + 1, nl, len - (size_t)(nl - more));
    expect_rejected(f, "fab-1", more, len + 1, TRELLIS_ERR_PARSE, 2, "empty line");
    free(more);
    /* A truncated manifest. */
    char *last = strstr(text, "{\"sha256\"");
    expect_rejected(f, "fab-1", text, (size_t)(last - text), TRELLIS_ERR_PARSE, 0,
                    "ends after line 4");
    expect_rejected(f, "fab-1", text, 0, TRELLIS_ERR_PARSE, 0, "empty manifest");
    free(text);

    /* Signed with a key that is not the factory's. */
    spec.signer = other;
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_BAD_SIGNATURE, 5, "signature does not");
    free(text);
    spec.signer = f->fkey;

    /* The count says more than there is: the next line is read as the trailer... */
    spec.count = 4;
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_PARSE, 5, "unknown member");
    free(text);
    /* ...or less: a record where the trailer should be. */
    spec.count = 2;
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_PARSE, 4, "unknown member");
    free(text);
    spec.count = -1;

    /* Unknown factory, unknown owner. */
    spec.factory = "fab-9";
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-9", text, len, TRELLIS_ERR_PERMISSION, 1, "not registered");
    free(text);
    spec.factory = "fab-1";
    spec.owner = "nobody";
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_NOT_FOUND, 1, "not a registered OEM");
    free(text);
    spec.owner = "acme";

    /* The same device twice in one manifest: both lines named. */
    vt_device_t twice[3] = {f->dev[0], f->dev[1], f->dev[0]};
    spec.devices = twice;
    spec.n_devices = 3;
    text = vt_manifest_build(&spec, &len);
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_CONFLICT, 4,
                    "line 4 repeats the device id of line 2");
    free(text);

    /* A line too long to be a record. */
    char big[2000];
    memset(big, ' ', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    expect_rejected(f, "fab-1", big, sizeof(big), TRELLIS_ERR_TOO_LARGE, 1, "longer than 1024");

    /* A bad record is named by its line. */
    spec = spec_of(f, 0, 3, "b-1");
    text = vt_manifest_build(&spec, &len);
    char *rec3 = strstr(text, f->dev[1].id);
    rec3[0] = rec3[0] == 'a' ? 'b' : 'a';
    expect_rejected(f, "fab-1", text, len, TRELLIS_ERR_PARSE, 3, "line 3: device_id");
    free(text);
    EVP_PKEY_free(other);
}

static void test_import_conflict_with_known(void **state)
{
    fx_t *f = *state;
    size_t len = 0;
    tr__import_report_t rep;
    vt_manifest_spec_t spec = spec_of(f, 0, 4, "b-1");
    char *text = vt_manifest_build(&spec, &len);
    assert_int_equal(run_import(f, "fab-1", text, len, 64, &rep), TRELLIS_OK);
    free(text);

    /* Same devices, other serials on lines 3 and 5, in another batch. */
    vt_device_t changed[4] = {f->dev[0], f->dev[1], f->dev[2], f->dev[3]};
    snprintf(changed[1].serial, sizeof(changed[1].serial), "X-1");
    snprintf(changed[3].serial, sizeof(changed[3].serial), "X-3");
    spec.devices = changed;
    spec.batch = "b-2";
    text = vt_manifest_build(&spec, &len);
    trellis_vstore_counts_t before = vt_counts(f->s);
    assert_int_equal(run_import(f, "fab-1", text, len, 64, &rep), TRELLIS_ERR_CONFLICT);
    assert_int_equal(rep.n_lines, 2);
    assert_int_equal(rep.lines[0], 3);
    assert_int_equal(rep.lines[1], 5);
    assert_int_equal(rep.n_bad, 2);
    assert_non_null(strstr(rep.reason.text, "2 record(s) conflict"));
    trellis_vstore_counts_t after = vt_counts(f->s);
    vt_assert_counts_equal(&before, &after);
    free(text);

    /* The factory reusing a batch id for different contents. */
    spec = spec_of(f, 4, 5, "b-1");
    text = vt_manifest_build(&spec, &len);
    assert_int_equal(run_import(f, "fab-1", text, len, 64, &rep), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(rep.reason.text, "already imported another manifest"));
    free(text);
}

static void test_import_api_misuse(void **state)
{
    fx_t *f = *state;
    tr__import_t *imp = NULL;
    tr__import_report_t rep;
    assert_int_equal(tr__import_new(NULL, "fab-1", 0, &imp), TRELLIS_ERR_INVALID_ARG);
    char long_caller[80];
    memset(long_caller, 'a', 70);
    long_caller[70] = '\0';
    assert_int_equal(tr__import_new(f->s, long_caller, 0, &imp), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__import_new(f->s, "fab-1", 1, &imp), TRELLIS_OK);
    /* A count above the configured limit. */
    size_t len = 0;
    vt_manifest_spec_t spec = spec_of(f, 0, 2, "b-1");
    char *text = vt_manifest_build(&spec, &len);
    assert_int_equal(tr__import_feed(imp, (const uint8_t *)text, len), TRELLIS_ERR_TOO_LARGE);
    /* The failure is sticky. */
    assert_int_equal(tr__import_feed(imp, (const uint8_t *)"x", 1), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(tr__import_report(imp)->err, TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(tr__import_finish(imp, &rep), TRELLIS_ERR_TOO_LARGE);
    assert_non_null(strstr(rep.reason.text, "above this verifier's limit of 1"));
    assert_int_equal(tr__import_finish(imp, &rep), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__import_feed(imp, (const uint8_t *)"x", 1), TRELLIS_ERR_INVALID_ARG);
    tr__import_free(imp);
    tr__import_free(NULL);
    free(text);
    assert_int_equal(vt_counts(f->s).devices, 0);
}

/* A local import by the operator (caller NULL) accepts any registered factory in the header but
 * still needs that factory's signature, and is audited as "admin". */
static void test_admin_import(void **state)
{
    fx_t *f = *state;
    size_t len = 0;
    tr__import_t *imp = NULL;
    tr__import_report_t rep;
    vt_manifest_spec_t spec = spec_of(f, 0, 2, "b-1");
    char *text = vt_manifest_build(&spec, &len);
    assert_int_equal(tr__import_new(f->s, NULL, 0, &imp), TRELLIS_OK);
    assert_int_equal(tr__import_feed(imp, (const uint8_t *)text, len), TRELLIS_OK);
    assert_int_equal(tr__import_finish(imp, &rep), TRELLIS_OK);
    assert_int_equal(rep.added, 2);
    tr__import_free(imp);
    free(text);

    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
    spec = spec_of(f, 2, 3, "b-2");
    spec.signer = other;
    text = vt_manifest_build(&spec, &len);
    trellis_vstore_counts_t before = vt_counts(f->s);
    assert_int_equal(run_import(f, NULL, text, len, 100, &rep), TRELLIS_ERR_BAD_SIGNATURE);
    trellis_vstore_counts_t after = vt_counts(f->s);
    vt_assert_counts_equal(&before, &after);
    free(text);
    EVP_PKEY_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test_setup_teardown(test_record, setup, teardown),
        cmocka_unit_test(test_trailer),
        cmocka_unit_test_setup_teardown(test_import_ok_any_chunking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_conflict_with_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_api_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_import, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
