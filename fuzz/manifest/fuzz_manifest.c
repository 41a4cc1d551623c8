/*
 * Fuzzes the manifest importer (docs/manifest-format.md) end to end against a real SQLite
 * registry in memory: the line parsers on every line of the input, then the streaming importer
 * fed in chunks of a size chosen by the input.
 *
 * Input: one flags byte, then the manifest body.
 *   bit 0     append a trailer with the body's true sha256, signed by the fixed factory key
 *             below, so mutated bodies still reach the record checks and the commit;
 *   bit 7     import as the operator (caller NULL) rather than as factory "fab-1";
 *   bits 1-6  chunk size: 1 + 61 * value bytes.
 * The registry knows OEMs "acme" and "beta" and factory "fab-1" with that key. It is rebuilt
 * after every import that commits, so each input starts from the same state.
 *
 * The key is a fixed test key of this harness only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "manifest.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/log.h"

#define BODY_MAX (256 * 1024)

static const char FACTORY_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2AgFR/XoxE25b4d9\n"
    "snByeEdDoCYF5p6iLASsDSUrA16hRANCAATq8LVGG1KzmcjuIJqHWTcm0UgZ/XMN\n"
    "XKiJT7kvCvpBOQfYuZ9gbhR3r00/Sc20tl/ikdC8P4d5cV4GRjTlMrJU\n"
    "-----END PRIVATE KEY-----\n";

static EVP_PKEY *factory_key;
static trellis_vstore_t *store;
static uint8_t *body;

static void must(int ok)
{
    if (!ok)
        abort();
}

static void open_store(void)
{
    uint8_t point[TRELLIS_P256_POINT_LEN];
    trellis_vstore_close(store);
    store = NULL;
    trellis_vstore_sqlite_opts_t o = {.durable = 0, .busy_timeout_ms = 0, .create = 1};
    must(trellis_vstore_open_sqlite(":memory:", &o, &store) == TRELLIS_OK);
    must(trellis_p256_public_point(factory_key, point) == TRELLIS_OK);
    must(store->oem_add(store->ctx, "acme", "fuzz") == TRELLIS_OK);
    must(store->oem_add(store->ctx, "beta", "fuzz") == TRELLIS_OK);
    must(store->factory_add(store->ctx, "fab-1", point, "fuzz") == TRELLIS_OK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    trellis_log_set_level(TRELLIS_LOG_OFF);
    BIO *bio = BIO_new_mem_buf(FACTORY_KEY_PEM, -1);
    factory_key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    must(factory_key != NULL);
    body = malloc(BODY_MAX + 256);
    must(body != NULL);
    open_store();
    return 0;
}

/* Every line through the parser that fits its position; a refusal always says why. */
static void parse_lines(const uint8_t *data, size_t size)
{
    size_t line_no = 0;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        trellis_reason_t why;
        trellis_err_t err;
        trellis_reason_clear(&why);
        if (line_no == 0) {
            tr__manifest_header_t h;
            err = tr__manifest_parse_header((const char *)p, len, &h, &why);
            must(err != TRELLIS_OK || (h.count > 0 && trellis_vstore_name_valid(h.factory)));
        } else if (len > 2 && p[2] == 's') {
            tr__manifest_trailer_t t;
            err = tr__manifest_parse_trailer((const char *)p, len, &t, &why);
        } else {
            tr__manifest_record_t r;
            err = tr__manifest_parse_record((const char *)p, len, &r, &why);
            must(err != TRELLIS_OK || trellis_vstore_device_id_valid(r.device_id));
        }
        must(err == TRELLIS_OK || why.text[0] != '\0');
        line_no++;
        p = nl != NULL ? nl + 1 : end;
    }
}

/* The trailer of docs/manifest-format.md over body[0..len). */
static size_t append_trailer(uint8_t *buf, size_t len)
{
    uint8_t digest[32], sig[64];
    char hex[65], sig_b64[100];
    size_t n = 0;
    must(trellis_sha256(buf, len, digest) == TRELLIS_OK);
    must(trellis_p256_sign_digest(factory_key, digest, sig) == TRELLIS_OK);
    must(trellis_hex_encode(digest, 32, hex, sizeof(hex), &n) == TRELLIS_OK);
    must(trellis_b64url_encode(sig, 64, sig_b64, sizeof(sig_b64), &n) == TRELLIS_OK);
    int m = snprintf((char *)buf + len, 256, "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n", hex,
                     sig_b64);
    return len + (size_t)m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr__import_t *imp = NULL;
    tr__import_report_t rep;

    if (size < 1 || size - 1 > BODY_MAX)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;
    if (size > 0 && (flags & 1) == 0)
        parse_lines(data, size);
    memcpy(body, data, size);
    size_t len = (flags & 1) ? append_trailer(body, size) : size;
    size_t chunk = 1 + 61 * (size_t)((flags >> 1) & 0x3f);

    trellis_vstore_counts_t before;
    must(store->counts(store->ctx, &before) == TRELLIS_OK);
    must(tr__import_new(store, (flags & 0x80) ? NULL : "fab-1", 0, &imp) == TRELLIS_OK);
    trellis_err_t fed = TRELLIS_OK;
    for (size_t off = 0; off < len && fed == TRELLIS_OK; off += chunk)
        fed = tr__import_feed(imp, body + off, len - off < chunk ? len - off : chunk);
    trellis_err_t err = tr__import_finish(imp, &rep);
    tr__import_free(imp);

    /* The report agrees with the result, and a refusal names its cause. */
    must(err == rep.err);
    must(fed == TRELLIS_OK || err == fed);
    must(rep.n_lines <= TRELLIS_VSTORE_REPORT_MAX && rep.n_lines <= rep.n_bad);
    must(err == TRELLIS_OK || rep.reason.text[0] != '\0');
    json_t *j = tr__import_report_json(&rep);
    must(j != NULL);
    json_decref(j);

    trellis_vstore_counts_t after;
    must(store->counts(store->ctx, &after) == TRELLIS_OK);
    if (err != TRELLIS_OK || rep.already_present) {
        /* All or nothing: a refused manifest leaves the registry as it was. */
        must(after.devices == before.devices && after.manifests == before.manifests &&
             after.audit == before.audit);
    } else {
        must(after.devices == before.devices + rep.added &&
             after.manifests == before.manifests + 1);
        must(rep.added + rep.present == rep.records);
        open_store();
    }
    return 0;
}
