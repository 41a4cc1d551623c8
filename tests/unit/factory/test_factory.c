#define _GNU_SOURCE /* strcasestr */
/*
 * The factory (tools/trellis/factory_*.c): identity, manifests and their cross-check against the
 * verifier's own parser, batches on both backends with crash and resume, --from-keys input, and
 * the upload client against a local mutual-TLS server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "device_test_util.h"
#include "factory.h"
#include "manifest.h" /* the verifier's manifest line parsers */
#include "pkcs11_internal.h"
#include "test_pki.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/psa_token.h"

typedef struct {
    char dir[512];
    char fab[576];
    tr_factory_t f;
} fixture_t;

static int setup(void **state)
{
    static fixture_t fx;
    trellis_reason_t r;
    memset(&fx, 0, sizeof(fx));
    trellis_test_tmpdir(fx.dir, sizeof(fx.dir), "device");
    snprintf(fx.fab, sizeof(fx.fab), "%s/fab-1", fx.dir);
    assert_int_equal(tr__factory_init(fx.fab, "fab-1", &r), TRELLIS_OK);
    assert_int_equal(tr__factory_open(fx.fab, &fx.f, &r), TRELLIS_OK);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    tr__factory_close(&fx->f);
    trellis_test_rmtree(fx->dir);
    return 0;
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

/* Reads a whole small file into a new NUL-terminated buffer. */
static char *slurp(const char *path, size_t *len)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    assert_int_equal(trellis_file_read_all(path, 256 * 1024 * 1024, &buf, &n), TRELLIS_OK);
    if (len != NULL) {
        *len = n;
    }
    return (char *)buf;
}

static void spit(const char *path, const char *text, size_t len)
{
    dt_write_file(path, text, len, 0644);
}

static EVP_PKEY *factory_pub(const fixture_t *fx)
{
    char path[2048];
    EVP_PKEY *k = NULL;
    path_in(path, sizeof(path), fx->fab, TR_FACTORY_PUB);
    assert_int_equal(trellis_p256_load_public_pem(path, &k), TRELLIS_OK);
    return k;
}

/*
 * Parses every line of a manifest with the verifier's parsers (services/verifier/manifest.c),
 * checks the trailer's hash and signature by hand, and returns the records (caller frees).
 */
static tr__manifest_record_t *cross_check(const fixture_t *fx, const char *path, size_t *count,
                                          tr__manifest_header_t *hdr)
{
    size_t len = 0;
    char *text = slurp(path, &len);
    tr__manifest_trailer_t trailer;
    trellis_reason_t r;
    char *line = text;
    size_t n = 0;
    tr__manifest_record_t *recs = NULL;
    EVP_PKEY *pub = factory_pub(fx);
    uint8_t digest[32];
    size_t signed_len = 0;

    assert_true(len > 0 && text[len - 1] == '\n');
    for (size_t i = 0;; i++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        size_t ll = (size_t)(nl - line);
        if (i == 0) {
            assert_int_equal(tr__manifest_parse_header(line, ll, hdr, &r), TRELLIS_OK);
            recs = calloc(hdr->count, sizeof(*recs));
            assert_non_null(recs);
        } else if (i <= hdr->count) {
            trellis_err_t err = tr__manifest_parse_record(line, ll, &recs[n], &r);
            if (err != TRELLIS_OK) {
                fail_msg("line %zu: %s", i + 1, r.text);
            }
            n++;
        } else {
            signed_len = (size_t)(line - text);
            assert_int_equal(tr__manifest_parse_trailer(line, ll, &trailer, &r), TRELLIS_OK);
            assert_true(nl + 1 == text + len); /* the trailer is the last line */
            break;
        }
        line = nl + 1;
    }
    /* docs/manifest-format.md: sha256 of every byte above the trailer, ES256 over it. */
    assert_int_equal(trellis_sha256((const uint8_t *)text, signed_len, digest), TRELLIS_OK);
    assert_memory_equal(digest, trailer.sha256, 32);
    assert_int_equal(trellis_p256_verify_digest(pub, digest, trailer.signature), TRELLIS_OK);
    EVP_PKEY_free(pub);
    trellis_file_buffer_free((uint8_t *)text, len);
    *count = n;
    return recs;
}

static void test_names(void **state)
{
    (void)state;
    assert_true(tr__factory_name_valid("fab-1"));
    assert_true(tr__factory_name_valid("A.b_c-9"));
    assert_false(tr__factory_name_valid(""));
    assert_false(tr__factory_name_valid("-fab"));
    assert_false(tr__factory_name_valid(".hidden"));
    assert_false(tr__factory_name_valid("fab 1"));
    assert_false(tr__factory_name_valid("fab/1"));
    assert_false(tr__factory_name_valid("0123456789012345678901234567890123456789012345678901234"
                                        "5678901234"));
}

static void test_init_and_open(void **state)
{
    fixture_t *fx = *state;
    trellis_reason_t r;
    tr_factory_t g;
    char path[2048];
    char other[PATH_MAX + 16];
    struct stat st;

    path_in(path, sizeof(path), fx->fab, TR_FACTORY_KEY);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(fx->f.name, "fab-1");
    /* A factory's key is never replaced. */
    assert_int_equal(tr__factory_init(fx->fab, "fab-2", &r), TRELLIS_ERR_EXISTS);
    assert_int_equal(tr__factory_init(fx->fab, "bad name", &r), TRELLIS_ERR_INVALID_ARG);
    /* No factory, and a broken factory.conf. */
    snprintf(other, sizeof(other), "%s/none", fx->dir);
    assert_int_equal(tr__factory_open(other, &g, &r), TRELLIS_ERR_NOT_FOUND);
    assert_non_null(strstr(r.text, "factory init"));
    path_in(path, sizeof(path), fx->fab, TR_FACTORY_CONF);
    spit(path, "[factory]\nname = fab-1\nextra = 1\n", 33);
    assert_int_equal(tr__factory_open(fx->fab, &g, &r), TRELLIS_ERR_CONFIG);
    spit(path, "[factory]\n", 10);
    assert_int_equal(tr__factory_open(fx->fab, &g, &r), TRELLIS_ERR_CONFIG);
    spit(path, "[factory]\nname = bad name\n", 26);
    assert_int_equal(tr__factory_open(fx->fab, &g, &r), TRELLIS_ERR_CONFIG);
    assert_null(g.key);
}

static void test_idset(void **state)
{
    (void)state;
    tr_idset_t s;
    uint8_t id[16];
    uint64_t first = 0;

    assert_int_equal(tr__idset_init(&s, 0), TRELLIS_OK);
    for (uint32_t i = 0; i < 20000; i++) {
        assert_int_equal(trellis_sha256((const uint8_t *)&i, sizeof(i), (uint8_t[32]){0}),
                         TRELLIS_OK);
        uint8_t d[32];
        trellis_sha256((const uint8_t *)&i, sizeof(i), d);
        assert_int_equal(tr__idset_add(&s, d, i + 1, &first), TRELLIS_OK);
    }
    uint32_t k = 1234;
    uint8_t d[32];
    trellis_sha256((const uint8_t *)&k, sizeof(k), d);
    assert_int_equal(tr__idset_add(&s, d, 99999, &first), TRELLIS_ERR_CONFLICT);
    assert_int_equal(first, 1235);
    memset(id, 0, sizeof(id));
    assert_int_equal(tr__idset_add(&s, id, 0, &first), TRELLIS_ERR_INVALID_ARG);
    tr__idset_free(&s);
    tr__idset_free(&s);
}

static void random_point(uint8_t point[65])
{
    EVP_PKEY *k = NULL;
    assert_int_equal(trellis_p256_generate(&k), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(k, point), TRELLIS_OK);
    EVP_PKEY_free(k);
}

static void write_manifest(const fixture_t *fx, const char *path, uint8_t points[][65], size_t n,
                           const char *const *serials)
{
    tr_manifest_writer_t w;
    tr_manifest_header_t h;
    trellis_reason_t r;
    memset(&h, 0, sizeof(h));
    snprintf(h.factory, sizeof(h.factory), "fab-1");
    snprintf(h.owner, sizeof(h.owner), "acme");
    snprintf(h.batch, sizeof(h.batch), "b-1");
    h.count = n;
    assert_int_equal(tr__manifest_begin(&w, path, &h, &r), TRELLIS_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tr__manifest_add(&w, points[i], "T-100 \"rev\\B\"", serials[i], &r),
                         TRELLIS_OK);
    }
    assert_int_equal(tr__manifest_commit(&w, fx->f.key, NULL, &r), TRELLIS_OK);
}

static void test_manifest_format_and_signature(void **state)
{
    fixture_t *fx = *state;
    uint8_t points[3][65];
    const char *serials[] = {"SN-1", "SN 2", "SN\"3"};
    char path[2048];
    size_t n = 0;
    tr__manifest_header_t h;
    tr_manifest_summary_t sum;
    trellis_reason_t r;
    EVP_PKEY *pub = factory_pub(fx);
    struct stat st;

    for (int i = 0; i < 3; i++) {
        random_point(points[i]);
    }
    path_in(path, sizeof(path), fx->dir, "m.jsonl");
    write_manifest(fx, path, points, 3, serials);
    /* The verifier's parser reads exactly what was written. */
    tr__manifest_record_t *recs = cross_check(fx, path, &n, &h);
    assert_int_equal(n, 3);
    assert_string_equal(h.factory, "fab-1");
    assert_string_equal(h.owner, "acme");
    assert_string_equal(h.batch, "b-1");
    assert_int_equal(h.count, 3);
    assert_true(tr__rfc3339_utc_valid(h.created));
    for (int i = 0; i < 3; i++) {
        char id[33];
        assert_int_equal(trellis_device_id_from_point(points[i], id), TRELLIS_OK);
        assert_string_equal(recs[i].device_id, id);
        assert_memory_equal(recs[i].rot_key, points[i], 65);
        assert_string_equal(recs[i].model, "T-100 \"rev\\B\"");
        assert_string_equal(recs[i].serial, serials[i]);
    }
    free(recs);
    assert_int_equal(tr__manifest_verify(path, pub, &sum, &r), TRELLIS_OK);
    assert_int_equal(sum.records, 3);
    char tmp[2100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(stat(tmp, &st), 0); /* nothing left behind */
    EVP_PKEY_free(pub);
}

/* Editing any byte after signing breaks the manifest. */
static void test_manifest_tampering(void **state)
{
    fixture_t *fx = *state;
    uint8_t points[4][65];
    const char *serials[] = {"SN-1", "SN-2", "SN-3", "SN-4"};
    char path[2048];
    char edited[2048];
    tr_manifest_summary_t sum;
    trellis_reason_t r;
    EVP_PKEY *pub = factory_pub(fx);
    size_t len = 0;

    for (int i = 0; i < 4; i++) {
        random_point(points[i]);
    }
    path_in(path, sizeof(path), fx->dir, "m.jsonl");
    path_in(edited, sizeof(edited), fx->dir, "edited.jsonl");
    write_manifest(fx, path, points, 4, serials);
    char *text = slurp(path, &len);
    char *copy = malloc(len + 64);
    assert_non_null(copy);

    /* A serial changed in a record: the hash no longer matches. */
    memcpy(copy, text, len);
    char *p = strstr(copy, "\"SN-3\"");
    assert_non_null(p);
    p[4] = '9';
    spit(edited, copy, len);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(r.text, "sha256"));

    /* The owner changed in the header. */
    memcpy(copy, text, len);
    p = strstr(copy, "\"acme\"");
    p[1] = 'A';
    spit(edited, copy, len);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_BAD_SIGNATURE);

    /* Every single byte of the signed part, flipped in turn (a sample of positions). */
    char *trailer = strstr(text, "{\"sha256\"");
    size_t signed_len = (size_t)(trailer - text);
    for (size_t i = 0; i < signed_len; i += 37) {
        if (text[i] == '\n') {
            continue;
        }
        memcpy(copy, text, len);
        copy[i] ^= 0x01;
        spit(edited, copy, len);
        assert_int_not_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_OK);
    }

    /* A consistent hash but a signature made with another key. */
    tr_factory_t other;
    char odir[1024];
    snprintf(odir, sizeof(odir), "%s/fab-x", fx->dir);
    assert_int_equal(tr__factory_init(odir, "fab-1", &r), TRELLIS_OK);
    assert_int_equal(tr__factory_open(odir, &other, &r), TRELLIS_OK);
    fixture_t fake = *fx;
    fake.f = other;
    unlink(edited);
    write_manifest(&fake, edited, points, 4, serials);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(r.text, "signature does not verify"));
    tr__factory_close(&other);

    /* Missing trailer, a line after the trailer, a duplicate member. */
    memcpy(copy, text, signed_len);
    spit(edited, copy, signed_len);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_PARSE);
    memcpy(copy, text, len);
    memcpy(copy + len, "{}\n", 3);
    spit(edited, copy, len + 3);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_PARSE);
    assert_int_equal(sum.bad_line, 7);
    memcpy(copy, text, len);
    p = strstr(copy, "\"count\":4}");
    memcpy(p, "\"count\":4,\"count\":4}", 21);
    spit(edited, copy, len + 11);
    assert_int_equal(tr__manifest_verify(edited, pub, &sum, &r), TRELLIS_ERR_PARSE);
    assert_int_equal(sum.bad_line, 1);

    free(copy);
    trellis_file_buffer_free((uint8_t *)text, len);
    EVP_PKEY_free(pub);
}

static void test_manifest_duplicates_and_writer_refusals(void **state)
{
    fixture_t *fx = *state;
    uint8_t points[3][65];
    const char *serials[] = {"SN-1", "SN-2", "SN-3"};
    const char *same_serials[] = {"SN-1", "SN-2", "SN-1"};
    char path[2048];
    tr_manifest_summary_t sum;
    trellis_reason_t r;
    EVP_PKEY *pub = factory_pub(fx);
    tr_manifest_writer_t w;
    tr_manifest_header_t h;
    struct stat st;

    random_point(points[0]);
    random_point(points[1]);
    memcpy(points[2], points[0], 65); /* a cloned chip */
    path_in(path, sizeof(path), fx->dir, "clone.jsonl");
    write_manifest(fx, path, points, 3, serials);
    assert_int_equal(tr__manifest_verify(path, pub, &sum, &r), TRELLIS_ERR_CONFLICT);
    assert_int_equal(sum.bad_line, 4);
    assert_non_null(strstr(r.text, "line 2"));
    random_point(points[2]);
    path_in(path, sizeof(path), fx->dir, "serial.jsonl");
    write_manifest(fx, path, points, 3, same_serials);
    assert_int_equal(tr__manifest_verify(path, pub, &sum, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "serial SN-1"));

    /* The writer: never over an existing manifest; header names checked; count enforced. */
    memset(&h, 0, sizeof(h));
    snprintf(h.factory, sizeof(h.factory), "fab-1");
    snprintf(h.owner, sizeof(h.owner), "acme");
    snprintf(h.batch, sizeof(h.batch), "b-2");
    h.count = 2;
    assert_int_equal(tr__manifest_begin(&w, path, &h, &r), TRELLIS_ERR_EXISTS);
    path_in(path, sizeof(path), fx->dir, "short.jsonl");
    snprintf(h.owner, sizeof(h.owner), "ac me");
    assert_int_equal(tr__manifest_begin(&w, path, &h, &r), TRELLIS_ERR_INVALID_ARG);
    snprintf(h.owner, sizeof(h.owner), "acme");
    h.count = 0;
    assert_int_equal(tr__manifest_begin(&w, path, &h, &r), TRELLIS_ERR_INVALID_ARG);
    h.count = 2;
    assert_int_equal(tr__manifest_begin(&w, path, &h, &r), TRELLIS_OK);
    assert_int_equal(tr__manifest_add(&w, points[0], "M", "S1", &r), TRELLIS_OK);
    assert_int_equal(tr__manifest_add(&w, points[1], "M", "bad\tserial", &r),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(tr__manifest_commit(&w, fx->f.key, NULL, &r), TRELLIS_ERR_INTERNAL);
    assert_int_not_equal(stat(path, &st), 0); /* no half manifest */
    char tmp[2100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(stat(tmp, &st), 0);
    tr__manifest_abort(&w);
    EVP_PKEY_free(pub);
}

/* ---- batches ---- */

static void make_opts(tr_make_opts_t *o, const char *out, uint64_t count)
{
    memset(o, 0, sizeof(*o));
    o->out_dir = out;
    o->model = "T-100";
    o->owner = "acme";
    o->count = count;
}

/* Checks a finished batch: the manifest (with the verifier's parser), and each device directory
 * against its record: factory data, key mode, the RoT opening under the manifest's identity. */
static tr__manifest_record_t *check_batch(const fixture_t *fx, const char *out, size_t count,
                                          const char *pin)
{
    char path[2048];
    char dev[1536];
    size_t n = 0;
    tr__manifest_header_t h;
    static trellis_device_factory_t fd;
    trellis_device_rot_t rot;
    trellis_device_rot_options_t ro;
    trellis_reason_t r;
    struct stat st;

    path_in(path, sizeof(path), out, TR_MANIFEST_NAME);
    tr__manifest_record_t *recs = cross_check(fx, path, &n, &h);
    assert_int_equal(n, count);
    memset(&ro, 0, sizeof(ro));
    ro.pin = pin;
    for (size_t i = 0; i < n; i++) {
        snprintf(dev, sizeof(dev), "%s/devices/%s", out, recs[i].serial);
        trellis_err_t err = trellis_device_factory_load(dev, &fd, &r);
        if (err != TRELLIS_OK) {
            fail_msg("%s: %s", dev, r.text);
        }
        assert_string_equal(fd.device_id, recs[i].device_id);
        assert_string_equal(fd.serial, recs[i].serial);
        assert_string_equal(fd.owner, h.owner);
        assert_string_equal(fd.batch, h.batch);
        assert_string_equal(fd.factory, "fab-1");
        if (fd.backend == TRELLIS_ROT_BACKEND_FILE) {
            snprintf(path, sizeof(path), "%s/%s", dev, TRELLIS_ROT_FILE_KEY_NAME);
            assert_int_equal(stat(path, &st), 0);
            assert_int_equal(st.st_mode & 0777, 0600);
        }
        /* Opening checks that the key's id is the one in factory.json (and the manifest). */
        err = trellis_device_rot_open(&rot, dev, &fd, &ro, &r);
        if (err != TRELLIS_OK) {
            fail_msg("%s: %s", dev, r.text);
        }
        trellis_device_rot_close(&rot);
    }
    return recs;
}

static int id_in(const tr__manifest_record_t *recs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].device_id, id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void test_make_file_backend_unique_ids(void **state)
{
    fixture_t *fx = *state;
    char out1[1024];
    char out2[1024];
    tr_make_opts_t o;
    tr_make_result_t res;
    trellis_reason_t r;
    const size_t n = 25;

    snprintf(out1, sizeof(out1), "%s/b1", fx->dir);
    snprintf(out2, sizeof(out2), "%s/b2", fx->dir);
    make_opts(&o, out1, n);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    assert_int_equal(res.created, n);
    assert_int_equal(res.resumed, 0);
    assert_int_equal(strncmp(res.batch, "b-", 2), 0);
    tr__manifest_record_t *a = check_batch(fx, out1, n, NULL);
    /* Default serials: "<batch>-000001"... */
    char want[128];
    snprintf(want, sizeof(want), "%s-000001", res.batch);
    assert_string_equal(a[0].serial, want);
    /* Unique within the batch. */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(id_in(a + i + 1, n - i - 1, a[i].device_id), 0);
    }
    /* And across batches. */
    make_opts(&o, out2, n);
    o.batch = "b-second";
    o.serial_prefix = "X-";
    o.serial_start = 500;
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    tr__manifest_record_t *b = check_batch(fx, out2, n, NULL);
    assert_string_equal(b[0].serial, "X-000500");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(id_in(a, n, b[i].device_id), 0);
    }
    /* A finished batch is not made twice. */
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_EXISTS);
    free(a);
    free(b);
}

static void test_make_crash_and_resume(void **state)
{
    fixture_t *fx = *state;
    char out[1024];
    char path[2048];
    tr_make_opts_t o;
    tr_make_result_t res;
    trellis_reason_t r;
    const size_t n = 10;

    snprintf(out, sizeof(out), "%s/b", fx->dir);
    make_opts(&o, out, n);
    o.batch = "b-resume";
    o.serial_prefix = "SN-";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    tr__manifest_record_t *before = check_batch(fx, out, n, NULL);

    /* A crash before the commit point: no manifest, one device without factory.json (crash
     * between key and data), one with a torn key file, and a manifest.tmp being written. */
    path_in(path, sizeof(path), out, TR_MANIFEST_NAME);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/%s.tmp", out, TR_MANIFEST_NAME);
    spit(path, "{\"trellis_manifest\":1", 21);
    snprintf(path, sizeof(path), "%s/devices/SN-000003/%s", out, TRELLIS_DEVICE_FACTORY_NAME);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/devices/SN-000007/%s", out, TRELLIS_ROT_FILE_KEY_NAME);
    dt_write_file(path, "-----BEGIN PRIVATE KEY-----\nMIGH", 32, 0600);

    /* Different options are refused, naming what differs. */
    o.count = n + 1;
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "count"));
    o.count = n;
    o.owner = "other";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "owner"));
    o.owner = "acme";

    /* The same options resume: complete devices kept, the two half-made ones redone. */
    o.batch = NULL; /* taken from batch.json */
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    assert_int_equal(res.resumed, n - 2);
    assert_int_equal(res.redone, 2);
    assert_int_equal(res.created, 0);
    assert_string_equal(res.batch, "b-resume");
    tr__manifest_record_t *after = check_batch(fx, out, n, NULL);
    for (size_t i = 0; i < n; i++) {
        int redone = i == 2 || i == 6;
        assert_int_equal(strcmp(before[i].device_id, after[i].device_id) == 0, !redone);
    }

    /* A stranger's file in a half-made device is not deleted: the run stops instead. */
    path_in(path, sizeof(path), out, TR_MANIFEST_NAME);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/devices/SN-000005/%s", out, TRELLIS_DEVICE_FACTORY_NAME);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/devices/SN-000005/notes.txt", out);
    spit(path, "x", 1);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);

    /* Devices without batch state are not adopted. */
    char stray[1024];
    snprintf(stray, sizeof(stray), "%s/s", fx->dir);
    snprintf(path, sizeof(path), "%s/devices/SN-000001", stray);
    assert_int_equal(trellis_mkdir_p(path, 0700), TRELLIS_OK);
    make_opts(&o, stray, 2);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    free(before);
    free(after);
}

static void test_make_refusals(void **state)
{
    fixture_t *fx = *state;
    char out[1024];
    tr_make_opts_t o;
    tr_make_result_t res;
    trellis_reason_t r;

    snprintf(out, sizeof(out), "%s/bad", fx->dir);
    make_opts(&o, out, 0);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    make_opts(&o, out, 2);
    o.owner = "bad owner";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    make_opts(&o, out, 2);
    o.model = "";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    make_opts(&o, out, 2);
    o.serial_prefix = "../x";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    make_opts(&o, out, 2);
    o.registrar_url = "http://plain";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    make_opts(&o, out, 2);
    o.pkcs11_module = "/x.so";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    assert_non_null(strstr(r.text, "--token-label"));
    make_opts(&o, out, 2);
    o.registrar_ca = "/nonexistent.pem";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_NOT_FOUND);

    /* Two runs in one batch directory at once: the second is refused while the first works. */
    char lock[2048];
    make_opts(&o, out, 2);
    assert_int_equal(trellis_mkdir_p(out, 0755), TRELLIS_OK);
    path_in(lock, sizeof(lock), out, ".batch.lock");
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "another"));
    close(fd);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
}

static void test_make_registrar_data(void **state)
{
    fixture_t *fx = *state;
    char out[1024];
    char ca[1024];
    char dev[2048];
    tr_make_opts_t o;
    tr_make_result_t res;
    trellis_reason_t r;
    static trellis_device_factory_t fd;
    const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

    snprintf(out, sizeof(out), "%s/reg", fx->dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", fx->dir);
    spit(ca, pem, strlen(pem));
    make_opts(&o, out, 2);
    o.serial_prefix = "R-";
    o.registrar_url = "https://registrar.example:8443";
    o.registrar_ca = ca;
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    snprintf(dev, sizeof(dev), "%s/devices/R-000002", out);
    assert_int_equal(trellis_device_factory_load(dev, &fd, &r), TRELLIS_OK);
    assert_string_equal(fd.registrar_url, "https://registrar.example:8443");
    assert_string_equal(fd.registrar_ca_pem, pem);
    /* Resuming with another CA is another batch. */
    char path[2048];
    path_in(path, sizeof(path), out, TR_MANIFEST_NAME);
    assert_int_equal(unlink(path), 0);
    spit(ca, "-----BEGIN CERTIFICATE-----\nother\n-----END CERTIFICATE-----\n", 59);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "registrar CA"));
}

static void test_make_pkcs11_backend(void **state)
{
    fixture_t *fx = *state;
    dt_softhsm_t hsm;
    char out[1024];
    char out2[1024];
    char path[2048];
    tr_make_opts_t o;
    tr_make_result_t res;
    trellis_reason_t r;
    static trellis_device_factory_t fd;

    dt_softhsm_setup(&hsm, DT_TOKEN_LABEL);
    snprintf(out, sizeof(out), "%s/p11", fx->dir);
    make_opts(&o, out, 4);
    o.serial_prefix = "HSM-";
    o.pkcs11_module = hsm.module;
    o.token_label = DT_TOKEN_LABEL;
    o.pin = "0000";
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_PERMISSION);
    /* A refused login leaves nothing behind: the right PIN then starts the batch afresh. */
    o.pin = DT_USER_PIN;
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    assert_int_equal(res.created, 4);
    tr__manifest_record_t *recs = check_batch(fx, out, 4, DT_USER_PIN);

    /* factory.json names the key in the token, without the PIN. */
    snprintf(path, sizeof(path), "%s/devices/HSM-000001", out);
    assert_int_equal(trellis_device_factory_load(path, &fd, &r), TRELLIS_OK);
    assert_int_equal(fd.backend, TRELLIS_ROT_BACKEND_PKCS11);
    assert_non_null(strstr(fd.pkcs11_uri, "object=HSM-000001"));
    assert_null(strstr(fd.pkcs11_uri, "pin"));
    assert_null(strstr(fd.pkcs11_uri, DT_USER_PIN));

    /* The keys are sensitive and not extractable. */
    trellis_pkcs11_token_t tok;
    trellis_pkcs11_uri_t uri;
    trellis_pkcs11_key_state_t ks;
    uint8_t point[65];
    assert_int_equal(trellis_pkcs11_uri_parse("pkcs11:token=" DT_TOKEN_LABEL,
                                              strlen("pkcs11:token=" DT_TOKEN_LABEL), &uri, &r),
                     TRELLIS_OK);
    assert_int_equal(trellis_pkcs11_token_open(&tok, &uri, hsm.module, DT_USER_PIN, 0, &r),
                     TRELLIS_OK);
    CK_FUNCTION_LIST_PTR f = tr__pkcs11_token_functions(&tok);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    char label[] = "HSM-000002";
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, label, strlen(label)}};
    CK_OBJECT_HANDLE h[2];
    CK_ULONG hn = 0;
    CK_SESSION_HANDLE s = tr__pkcs11_token_session(&tok);
    assert_int_equal(f->C_FindObjectsInit(s, t, 2), CKR_OK);
    assert_int_equal(f->C_FindObjects(s, h, 2, &hn), CKR_OK);
    assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
    assert_int_equal(hn, 1);
    CK_BYTE value[128];
    CK_ATTRIBUTE get = {CKA_VALUE, value, sizeof(value)};
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &get, 1), CKR_ATTRIBUTE_SENSITIVE);
    CK_BBOOL b = CK_TRUE;
    CK_ATTRIBUTE ext = {CKA_EXTRACTABLE, &b, sizeof(b)};
    assert_int_equal(f->C_GetAttributeValue(s, h[0], &ext, 1), CKR_OK);
    assert_int_equal(b, CK_FALSE);
    assert_int_equal(trellis_pkcs11_token_find(&tok, "HSM-000003", &ks, point, &r), TRELLIS_OK);
    assert_int_equal(ks, TRELLIS_PKCS11_KEY_COMPLETE);
    assert_memory_equal(point, recs[2].rot_key, 65);
    trellis_pkcs11_token_close(&tok);

    /* Evidence from a PKCS#11 device verifies with the key of its manifest record. */
    trellis_device_rot_t rot;
    trellis_device_rot_options_t ro;
    memset(&ro, 0, sizeof(ro));
    ro.pin = DT_USER_PIN;
    assert_int_equal(trellis_device_rot_open(&rot, path, &fd, &ro, &r), TRELLIS_OK);
    static const uint8_t challenge[16] = {9};
    static const uint8_t csr[4] = {0x30, 0x02, 0x05, 0x00};
    uint8_t token[TRELLIS_EVIDENCE_MAX];
    size_t token_len = 0;
    assert_int_equal(trellis_device_evidence(&rot.port, challenge, sizeof(challenge), csr,
                                             sizeof(csr), token, sizeof(token), &token_len),
                     TRELLIS_OK);
    trellis_device_rot_close(&rot);
    EVP_PKEY *pub = NULL;
    uint8_t nonce[32];
    static trellis_psa_claims_t claims;
    assert_int_equal(trellis_p256_from_point(recs[0].rot_key, &pub), TRELLIS_OK);
    assert_int_equal(trellis_sha256_two(challenge, sizeof(challenge), csr, sizeof(csr), nonce),
                     TRELLIS_OK);
    assert_int_equal(trellis_psa_token_verify(token, token_len, pub, nonce, 32, &claims, &r),
                     TRELLIS_OK);
    EVP_PKEY_free(pub);

    /* Resume after losing the manifest: every key is found in the token again. */
    path_in(path, sizeof(path), out, TR_MANIFEST_NAME);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/devices/HSM-000004/%s", out, TRELLIS_DEVICE_FACTORY_NAME);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_OK);
    assert_int_equal(res.resumed, 3);
    assert_int_equal(res.redone, 1); /* the key kept, its factory.json rewritten */
    tr__manifest_record_t *again = check_batch(fx, out, 4, DT_USER_PIN);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(again[i].device_id, recs[i].device_id);
    }

    /* Another batch reusing these serials in the same token is refused, not merged. */
    snprintf(out2, sizeof(out2), "%s/p11b", fx->dir);
    o.out_dir = out2;
    assert_int_equal(tr__factory_make(&fx->f, &o, &res, &r), TRELLIS_ERR_CONFLICT);
    assert_non_null(strstr(r.text, "already holds a key labelled HSM-000001"));
    free(recs);
    free(again);
    dt_softhsm_teardown(&hsm);
}

/* ---- --from-keys ---- */

static void hex_point(const uint8_t point[65], char out[131])
{
    size_t n = 0;
    assert_int_equal(trellis_hex_encode(point, 65, out, 131, &n), TRELLIS_OK);
}

static void pem_point_json(const uint8_t point[65], char *out, size_t size)
{
    EVP_PKEY *k = NULL;
    assert_int_equal(trellis_p256_from_point(point, &k), TRELLIS_OK);
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    char *pem = NULL;
    long len = BIO_get_mem_data(bio, &pem);
    size_t o = 0;
    for (long i = 0; i < len && o + 3 < size; i++) {
        if (pem[i] == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = pem[i];
        }
    }
    out[o] = '\0';
    BIO_free(bio);
    EVP_PKEY_free(k);
}

static void test_from_keys(void **state)
{
    fixture_t *fx = *state;
    uint8_t p[3][65];
    char hex0[131];
    char hex2[131];
    char pem1[512];
    char input[1024];
    char output[1024];
    char text[4096];
    tr_from_keys_opts_t o;
    uint64_t records = 0;
    trellis_reason_t r;
    size_t n = 0;
    tr__manifest_header_t h;

    for (int i = 0; i < 3; i++) {
        random_point(p[i]);
    }
    hex_point(p[0], hex0);
    hex_point(p[2], hex2);
    for (char *c = hex2; *c; c++) {
        if (*c >= 'a' && *c <= 'f') {
            *c = (char)(*c - 'a' + 'A'); /* upper-case hex is fine */
        }
    }
    pem_point_json(p[1], pem1, sizeof(pem1));
    snprintf(input, sizeof(input), "%s/keys.jsonl", fx->dir);
    snprintf(output, sizeof(output), "%s/chips.jsonl", fx->dir);
    int len = snprintf(text, sizeof(text),
                       "# read out of the chips at incoming inspection\n"
                       "{\"serial\":\"C-1\",\"model\":\"SE-7\",\"public_key\":\"%s\"}\n"
                       "\n"
                       "{\"public_key\":\"%s\",\"serial\":\"C-2\",\"model\":\"SE-7\"}\n"
                       "{\"serial\":\"C-3\",\"model\":\"SE-8\",\"public_key\":\"%s\"}",
                       hex0, pem1, hex2);
    spit(input, text, (size_t)len);
    memset(&o, 0, sizeof(o));
    o.input = input;
    o.output = output;
    o.owner = "acme";
    o.batch = "chips-1";
    assert_int_equal(tr__factory_manifest_from_keys(&fx->f, &o, &records, &r), TRELLIS_OK);
    assert_int_equal(records, 3);
    tr__manifest_record_t *recs = cross_check(fx, output, &n, &h);
    assert_int_equal(n, 3);
    assert_string_equal(h.batch, "chips-1");
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(recs[i].rot_key, p[i], 65);
    }
    assert_string_equal(recs[1].serial, "C-2");
    assert_string_equal(recs[2].model, "SE-8");
    free(recs);
    /* Never over an existing manifest. */
    assert_int_equal(tr__factory_manifest_from_keys(&fx->f, &o, &records, &r), TRELLIS_ERR_EXISTS);

    static const struct {
        const char *body; /* %1$s: hex of p[0], %2$s: hex of p[2] */
        trellis_err_t err;
        const char *reason_has;
    } bad[] = {
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"@0\"}\n"
         "{\"serial\":\"B\",\"model\":\"M\",\"public_key\":\"@2\"}\n"
         "{\"serial\":\"C\",\"model\":\"M\",\"public_key\":\"@0\"}\n",
         TRELLIS_ERR_CONFLICT, "line 3: the same public key as line 1"},
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"@0\"}\n"
         "{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"@2\"}\n",
         TRELLIS_ERR_CONFLICT, "line 2: serial A already on line 1"},
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"04zz\"}\n", TRELLIS_ERR_PARSE,
         "line 1: public_key must be PEM or 130 hex"},
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"04"
         "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000\"}\n",
         TRELLIS_ERR_BAD_KEY, "not a point on P-256"},
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"-----BEGIN PUBLIC KEY-----\\nAAAA\\n"
         "-----END PUBLIC KEY-----\\n\"}\n",
         TRELLIS_ERR_PARSE, "not a PEM public key"},
        {"{\"serial\":\"A\",\"model\":\"M\",\"public_key\":\"@0\",\"batch\":\"x\"}\n",
         TRELLIS_ERR_PARSE, "unknown member batch"},
        {"{\"serial\":\"A\",\"public_key\":\"@0\"}\n", TRELLIS_ERR_PARSE, "model is missing"},
        {"{\"serial\":\"A\",\"serial\":\"B\",\"model\":\"M\",\"public_key\":\"@0\"}\n",
         TRELLIS_ERR_PARSE, "duplicate"},
        {"{\"serial\":7,\"model\":\"M\",\"public_key\":\"@0\"}\n", TRELLIS_ERR_PARSE,
         "serial must be a string"},
        {"{\"serial\":\"tab\\there\",\"model\":\"M\",\"public_key\":\"@0\"}\n", TRELLIS_ERR_PARSE,
         "serial must be 1..64 printable"},
        {"[1,2,3]\n", TRELLIS_ERR_PARSE, "line 1: not one JSON object"},
        {"# only a comment\n\n", TRELLIS_ERR_PARSE, "holds no records"},
    };
    snprintf(output, sizeof(output), "%s/never.jsonl", fx->dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t o2 = 0;
        for (const char *c = bad[i].body; *c != '\0' && o2 + 140 < sizeof(text);) {
            if (c[0] == '@' && (c[1] == '0' || c[1] == '2')) {
                memcpy(text + o2, c[1] == '0' ? hex0 : hex2, 130);
                o2 += 130;
                c += 2;
            } else {
                text[o2++] = *c++;
            }
        }
        spit(input, text, o2);
        trellis_err_t err = tr__factory_manifest_from_keys(&fx->f, &o, &records, &r);
        if (err != bad[i].err || strstr(r.text, bad[i].reason_has) == NULL) {
            fail_msg("case %zu: got %s '%s', expected %s with '%s'", i, trellis_err_name(err),
                     r.text, trellis_err_name(bad[i].err), bad[i].reason_has);
        }
        struct stat st;
        assert_int_not_equal(stat(output, &st), 0); /* no manifest on failure */
    }
    /* An over-long line. */
    char *big = malloc(TR_KEYS_LINE_MAX + 100);
    memset(big, 'x', TR_KEYS_LINE_MAX + 99);
    big[TR_KEYS_LINE_MAX + 99] = '\n';
    spit(input, big, TR_KEYS_LINE_MAX + 100);
    free(big);
    assert_int_equal(tr__factory_manifest_from_keys(&fx->f, &o, &records, &r),
                     TRELLIS_ERR_TOO_LARGE);
    /* Not a regular file. */
    o.input = fx->dir;
    assert_int_not_equal(tr__factory_manifest_from_keys(&fx->f, &o, &records, &r), TRELLIS_OK);
}

/* ---- upload, against a local server with mutual TLS ---- */

typedef struct {
    int fd;
    int port;
    SSL_CTX *ctx;
    const char *answer;
    char request[64 * 1024];
    size_t request_len;
    int handshake_ok;
    pthread_t thread;
} server_t;

static void *serve_one(void *arg)
{
    server_t *s = arg;
    int c = accept(s->fd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    SSL *ssl = SSL_new(s->ctx);
    SSL_set_fd(ssl, c);
    if (SSL_accept(ssl) == 1) {
        s->handshake_ok = 1;
        /* Read headers, then Content-Length bytes of body. */
        size_t need = 0;
        for (;;) {
            int n = SSL_read(ssl, s->request + s->request_len,
                             (int)(sizeof(s->request) - 1 - s->request_len));
            if (n <= 0) {
                break;
            }
            s->request_len += (size_t)n;
            s->request[s->request_len] = '\0';
            char *end = strstr(s->request, "\r\n\r\n");
            if (end != NULL) {
                char *cl = strcasestr(s->request, "Content-Length:");
                need = (size_t)(end + 4 - s->request) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
                if (s->request_len >= need) {
                    break;
                }
            }
        }
        SSL_write(ssl, s->answer, (int)strlen(s->answer));
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(c);
    ERR_clear_error();
    return NULL;
}

/* An HTTP/1.1 answer with the right Content-Length, in a static buffer. */
static const char *answer(const char *status, const char *json)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             status, strlen(json), json);
    return buf;
}

static void server_start(server_t *s, const trellis_test_pki_t *pki, const char *answer)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->answer = answer;
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(s->ctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(s->ctx, pki->server_cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, pki->server_key, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(s->ctx, pki->ca_cert, NULL), 1);
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 4), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void server_stop(server_t *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    SSL_CTX_free(s->ctx);
}

static void test_upload(void **state)
{
    fixture_t *fx = *state;
    trellis_test_pki_t pki;
    trellis_test_pki_pair_t client;
    trellis_test_pki_pair_t stranger;
    static server_t srv;
    static tr_upload_result_t res;
    tr_upload_opts_t o;
    trellis_reason_t r;
    char url[128];
    char out[1024];
    char manifest[2048];
    tr_make_opts_t mo;
    tr_make_result_t mres;

    snprintf(out, sizeof(out), "%s/up", fx->dir);
    make_opts(&mo, out, 3);
    assert_int_equal(tr__factory_make(&fx->f, &mo, &mres, &r), TRELLIS_OK);
    path_in(manifest, sizeof(manifest), out, TR_MANIFEST_NAME);
    size_t mlen = 0;
    char *mtext = slurp(manifest, &mlen);

    assert_int_equal(trellis_test_pki_create(&pki), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&pki, "fab-1", false, &client), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&pki, "fab-1", true, &stranger), TRELLIS_OK);
    memset(&o, 0, sizeof(o));
    o.manifest = manifest;
    o.cert = client.cert;
    o.key = client.key;
    o.ca = pki.ca_cert;
    o.timeout_s = 20;

    /* Imported: the request is a POST of the exact manifest bytes as NDJSON. */
    server_start(&srv, &pki, answer("200 OK", "{\"status\":\"imported\",\"devices\":3}\n"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", srv.port);
    o.verifier_url = url;
    trellis_err_t up = tr__factory_upload(&o, &res, &r);
    server_stop(&srv);
    if (up != TRELLIS_OK) {
        fail_msg("upload: %s %s", trellis_err_name(up), r.text);
    }
    assert_true(srv.handshake_ok);
    assert_int_equal(res.http_status, 200);
    assert_string_equal(res.status, "imported");
    assert_int_equal(res.devices, 3);
    assert_int_equal(strncmp(srv.request, "POST /v1/manifests HTTP/1.1\r\n", 29), 0);
    assert_non_null(strcasestr(srv.request, "Content-Type: application/x-ndjson\r\n"));
    char *body = strstr(srv.request, "\r\n\r\n") + 4;
    assert_int_equal((size_t)(srv.request + srv.request_len - body), mlen);
    assert_memory_equal(body, mtext, mlen);

    /* Refused with the offending lines. */
    server_start(&srv, &pki,
                 answer("409 Conflict", "{\"error\":\"conflict\",\"detail\":\"device known with "
                                        "another key\",\"lines\":[2,4]}"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/manifests", srv.port);
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_OK);
    server_stop(&srv);
    assert_int_equal(res.http_status, 409);
    assert_string_equal(res.error, "conflict");
    assert_string_equal(res.detail, "device known with another key");
    assert_int_equal(res.n_lines, 2);
    assert_int_equal(res.lines[0], 2);
    assert_int_equal(res.lines[1], 4);
    assert_true(strncmp(srv.request, "POST /v1/manifests HTTP/1.1", 27) == 0);

    /* An answer that is not the import API's JSON. */
    server_start(&srv, &pki, answer("200 OK", "hello"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_ERR_HTTP);
    server_stop(&srv);

    /* A client certificate the server does not trust: the handshake fails. */
    server_start(&srv, &pki, answer("200 OK", "{}"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
    o.cert = stranger.cert;
    o.key = stranger.key;
    trellis_err_t err = tr__factory_upload(&o, &res, &r);
    server_stop(&srv);
    assert_false(srv.handshake_ok);
    assert_true(err == TRELLIS_ERR_TLS || err == TRELLIS_ERR_UNAVAILABLE);
    o.cert = client.cert;
    o.key = client.key;

    /* A server the CA does not vouch for. */
    server_start(&srv, &pki, answer("200 OK", "{}"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
    o.ca = pki.other_ca_cert;
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_ERR_TLS);
    server_stop(&srv);
    o.ca = pki.ca_cert;

    /* Nobody listening; plain HTTP; no manifest. */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", srv.port);
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_ERR_UNAVAILABLE);
    o.verifier_url = "http://127.0.0.1:1";
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_ERR_INVALID_ARG);
    o.verifier_url = url;
    o.manifest = "/nonexistent/manifest.jsonl";
    assert_int_equal(tr__factory_upload(&o, &res, &r), TRELLIS_ERR_NOT_FOUND);

    trellis_file_buffer_free((uint8_t *)mtext, mlen);
    trellis_test_pki_destroy(&pki);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_idset),
        cmocka_unit_test_setup_teardown(test_init_and_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_format_and_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_tampering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_duplicates_and_writer_refusals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_make_file_backend_unique_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_crash_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_registrar_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_pkcs11_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
