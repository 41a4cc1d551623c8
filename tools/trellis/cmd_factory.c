/*
 * `trellis factory`: the factory's commands (docs/factory.md).
 *
 *   init      create the factory's identity (signing key, name)
 *   make      inject fresh RoT keys into a batch of devices and sign their manifest
 *   manifest  sign a manifest for chips whose keys were made by the chip vendor
 *   verify    check a manifest's format and signature before shipping it
 *   upload    send a manifest to the verifier's import API
 *   evidence  end-of-line test: have one device sign evidence, as at first boot
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "commands.h"
#include "factory.h"
#include "trellis/crypto.h"
#include "trellis/device.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"

#define FACTORY_DIR_ENV "TRELLIS_FACTORY_DIR"

static const char factory_help[] =
    "usage: trellis factory init --dir DIR [--name NAME]\n"
    "       trellis factory make --count N --model MODEL --owner OEM --out DIR [options]\n"
    "       trellis factory manifest --from-keys FILE --owner OEM --batch ID --out FILE\n"
    "       trellis factory verify MANIFEST [--key PUB.pem]\n"
    "       trellis factory upload MANIFEST --verifier URL --cert PEM --key PEM --ca PEM\n"
    "       trellis factory evidence --device DIR --challenge HEX --csr FILE --out FILE\n"
    "\n"
    "init      Creates a factory in DIR: a P-256 manifest signing key (factory_key.pem, 0600),\n"
    "          its public key (factory_pub.pem, to register at the verifier) and factory.conf\n"
    "          with the factory's name (default: the last component of DIR). Never replaces\n"
    "          an existing factory.\n"
    "make      Injects a fresh RoT key into each of N devices and writes DIR/manifest.jsonl,\n"
    "          signed by the factory. File backend (default): one directory per device under\n"
    "          DIR/devices/<serial>/ (rot_key.pem 0600 + factory.json). PKCS#11 backend: one\n"
    "          non-extractable key per device in the token, labelled with its serial, and\n"
    "          factory.json per device naming it. Options:\n"
    "            --batch ID            batch id (default b-YYYYMMDD-HHMMSS-XXXX)\n"
    "            --serial-prefix P     serials are P000001, P000002, ... (default: \"<batch>-\")\n"
    "            --serial-start N      first serial number (default 1)\n"
    "            --registrar-url URL   https:// URL each device enrolls with\n"
    "            --registrar-ca PEM    registrar server CA, pinned in each device\n"
    "            --pkcs11-module PATH  put the keys in a PKCS#11 token ...\n"
    "            --token-label L       ... with this label ...\n"
    "            --pin-env VAR         ... logging in with the PIN in $VAR (or --pin PIN,\n"
    "                                  visible to other users in the process list)\n"
    "            --progress N          a progress line every N devices (default 1000)\n"
    "            --json                print the result as JSON\n"
    "          An interrupted run resumes when run again with the same options; the manifest\n"
    "          is written last, atomically, so it never exists half-written.\n"
    "manifest  Builds the signed manifest for pre-provisioned chips from FILE, JSON Lines of\n"
    "          {\"serial\":S,\"model\":M,\"public_key\":HEX_POINT|PEM}; refuses duplicate keys\n"
    "          (cloned chips) and duplicate serials, naming both lines.\n"
    "verify    Checks a manifest as the verifier will: format, ids, duplicates, sha256 and\n"
    "          signature (with --key, default the factory's own public key).\n"
    "upload    POSTs the manifest to URL/v1/manifests over mutual TLS (the factory's client\n"
    "          certificate and key; --ca verifies the verifier) and reports the outcome:\n"
    "          imported, already present, or refused with the offending lines. --timeout S\n"
    "          (default 300), --json prints the verifier's answer. A manifest over 1 MiB\n"
    "          goes up in resumable parts (then --timeout bounds each request).\n"
    "evidence  Opens a device's RoT (DIR as written by make; --pin/--pin-env for PKCS#11,\n"
    "          --firmware PATH for the image to measure) and writes the PSA token it signs\n"
    "          over the challenge (hex) and the CSR file (DER) to --out: what the device sends\n"
    "          at first boot, for an end-of-line test or `trellis token check`.\n"
    "\n"
    "Every command but upload and verify --key reads the factory from --factory DIR, else\n"
    "$" FACTORY_DIR_ENV ", else the current directory.\n";

static int want_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *factory_dir(const char *arg)
{
    const char *env = getenv(FACTORY_DIR_ENV);
    if (arg != NULL) {
        return arg;
    }
    return env != NULL && env[0] != '\0' ? env : ".";
}

/* Parses a decimal count in 1..max with every check strtoull needs. */
static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    if (text == NULL || text[0] < '0' || text[0] > '9') {
        return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v < 1 || v > max) {
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

/* The PIN from --pin or --pin-env, copied into pin (cleansed by the caller). The argv copy of
 * --pin is wiped so the process list stops showing it. */
static int take_pin(const char *what, char *pin_arg, const char *pin_env, char *pin, size_t size)
{
    const char *src = pin_arg;
    if (pin_arg != NULL && pin_env != NULL) {
        return tr__cli_usage(what, "give --pin or --pin-env, not both");
    }
    if (pin_env != NULL) {
        src = getenv(pin_env);
        if (src == NULL) {
            return tr__cli_usage(what, "--pin-env %s: the variable is not set", pin_env);
        }
    }
    if (src == NULL) {
        pin[0] = '\0';
        return TR__EXIT_OK;
    }
    if (strlen(src) == 0 || strlen(src) >= size) {
        return tr__cli_usage(what, "the PIN must be 1..%zu characters", size - 1);
    }
    snprintf(pin, size, "%s", src);
    if (pin_arg != NULL) {
        OPENSSL_cleanse(pin_arg, strlen(pin_arg));
    }
    return TR__EXIT_OK;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\') {
            putchar('\\');
        }
        putchar(*s);
    }
    putchar('"');
}

/* ---- init ---- */

static int factory_init(int argc, char **argv)
{
    static const char *what = "factory init";
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    const char *name = NULL;
    char base[TR_PATH_MAX];
    trellis_reason_t reason;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    }
    if (dir == NULL) {
        return tr__cli_usage(what, "--dir is required");
    }
    if (name == NULL) {
        /* Default name: the directory's last component ("factories/fab-1" -> "fab-1"). */
        snprintf(base, sizeof(base), "%s", dir);
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/') {
            base[--n] = '\0';
        }
        const char *slash = strrchr(base, '/');
        name = slash != NULL ? slash + 1 : base;
    }
    if (!tr__factory_name_valid(name)) {
        return tr__cli_usage(what,
                             "factory name '%.64s' must be 1..64 characters of "
                             "[A-Za-z0-9._-] starting with a letter or digit (use --name)",
                             name);
    }
    trellis_err_t err = tr__factory_init(dir, name, &reason);
    if (err != TRELLIS_OK) {
        return tr__cli_fail(what, "%s", reason.text[0] ? reason.text : trellis_err_message(err));
    }
    printf("factory %s created in %s\n"
           "  signing key: %s/%s (keep it secret)\n"
           "  register at the verifier: trellis verifier add-factory %s --key %s/%s\n",
           name, dir, dir, TR_FACTORY_KEY, name, dir, TR_FACTORY_PUB);
    return TR__EXIT_OK;
}

/* ---- make ---- */

static int factory_make(int argc, char **argv)
{
    static const char *what = "factory make";
    static const struct option options[] = {
        {"count", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"owner", required_argument, NULL, 'o'},
        {"out", required_argument, NULL, 'O'},
        {"factory", required_argument, NULL, 'f'},
        {"batch", required_argument, NULL, 'b'},
        {"serial-prefix", required_argument, NULL, 'p'},
        {"serial-start", required_argument, NULL, 's'},
        {"registrar-url", required_argument, NULL, 'u'},
        {"registrar-ca", required_argument, NULL, 'a'},
        {"pkcs11-module", required_argument, NULL, 'M'},
        {"token-label", required_argument, NULL, 'L'},
        {"pin", required_argument, NULL, 'P'},
        {"pin-env", required_argument, NULL, 'E'},
        {"progress", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    tr_make_opts_t o;
    tr_make_result_t res;
    tr_factory_t f;
    trellis_reason_t reason;
    const char *fdir = NULL;
    const char *count = NULL;
    const char *start = NULL;
    const char *progress = NULL;
    char *pin_arg = NULL;
    const char *pin_env = NULL;
    char pin[TRELLIS_PKCS11_PIN_MAX + 1];
    int json = 0;
    int rc = TR__EXIT_FAILURE;
    int opt;

    memset(&o, 0, sizeof(o));
    memset(&f, 0, sizeof(f));
    memset(pin, 0, sizeof(pin));
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            count = optarg;
            break;
        case 'm':
            o.model = optarg;
            break;
        case 'o':
            o.owner = optarg;
            break;
        case 'O':
            o.out_dir = optarg;
            break;
        case 'f':
            fdir = optarg;
            break;
        case 'b':
            o.batch = optarg;
            break;
        case 'p':
            o.serial_prefix = optarg;
            break;
        case 's':
            start = optarg;
            break;
        case 'u':
            o.registrar_url = optarg;
            break;
        case 'a':
            o.registrar_ca = optarg;
            break;
        case 'M':
            o.pkcs11_module = optarg;
            break;
        case 'L':
            o.token_label = optarg;
            break;
        case 'P':
            pin_arg = optarg;
            break;
        case 'E':
            pin_env = optarg;
            break;
        case 'g':
            progress = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    }
    if (count == NULL || o.model == NULL || o.owner == NULL || o.out_dir == NULL) {
        return tr__cli_usage(what, "--count, --model, --owner and --out are required");
    }
    if (!parse_u64(count, TR_MANIFEST_MAX, &o.count)) {
        return tr__cli_usage(what, "--count must be a number in 1..%d", TR_MANIFEST_MAX);
    }
    if (start != NULL && !parse_u64(start, 999999999999ULL, &o.serial_start)) {
        return tr__cli_usage(what, "--serial-start must be a positive number");
    }
    if (progress != NULL && !parse_u64(progress, TR_MANIFEST_MAX, &o.progress_every)) {
        return tr__cli_usage(what, "--progress must be a positive number");
    }
    rc = take_pin(what, pin_arg, pin_env, pin, sizeof(pin));
    if (rc != TR__EXIT_OK) {
        return rc;
    }
    o.pin = pin[0] != '\0' ? pin : NULL;
    o.progress = stderr;

    trellis_err_t err = tr__factory_open(factory_dir(fdir), &f, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", reason.text);
        goto out;
    }
    err = tr__factory_make(&f, &o, &res, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", reason.text[0] ? reason.text : trellis_err_message(err));
        goto out;
    }
    char hex[65];
    size_t n = 0;
    trellis_hex_encode(res.sha256, 32, hex, sizeof(hex), &n);
    if (json) {
        printf("{\"factory\":");
        print_json_string(f.name);
        printf(",\"owner\":");
        print_json_string(o.owner);
        printf(",\"batch\":");
        print_json_string(res.batch);
        printf(",\"devices\":%llu,\"created\":%llu,\"resumed\":%llu,\"redone\":%llu,"
               "\"backend\":\"%s\",\"manifest\":",
               (unsigned long long)o.count, (unsigned long long)res.created,
               (unsigned long long)res.resumed, (unsigned long long)res.redone,
               o.pkcs11_module ? "pkcs11" : "file");
        print_json_string(res.manifest);
        printf(",\"sha256\":\"%s\",\"seconds\":%.3f}\n", hex, res.seconds);
    } else {
        printf("batch %s: %llu devices for %s (%llu new, %llu resumed, %llu redone) in %.2f s\n"
               "manifest %s (sha256 %s)\n",
               res.batch, (unsigned long long)o.count, o.owner, (unsigned long long)res.created,
               (unsigned long long)res.resumed, (unsigned long long)res.redone, res.seconds,
               res.manifest, hex);
    }
    rc = TR__EXIT_OK;
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    tr__factory_close(&f);
    return rc;
}

/* ---- manifest --from-keys ---- */

static int factory_manifest(int argc, char **argv)
{
    static const char *what = "factory manifest";
    static const struct option options[] = {
        {"from-keys", required_argument, NULL, 'k'}, {"owner", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'b'},     {"out", required_argument, NULL, 'O'},
        {"factory", required_argument, NULL, 'f'},   {NULL, 0, NULL, 0},
    };
    tr_from_keys_opts_t o;
    tr_factory_t f;
    trellis_reason_t reason;
    const char *fdir = NULL;
    uint64_t records = 0;
    int rc = TR__EXIT_FAILURE;
    int opt;

    memset(&o, 0, sizeof(o));
    memset(&f, 0, sizeof(f));
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'k':
            o.input = optarg;
            break;
        case 'o':
            o.owner = optarg;
            break;
        case 'b':
            o.batch = optarg;
            break;
        case 'O':
            o.output = optarg;
            break;
        case 'f':
            fdir = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    }
    if (o.input == NULL || o.owner == NULL || o.batch == NULL || o.output == NULL) {
        return tr__cli_usage(what, "--from-keys, --owner, --batch and --out are required");
    }
    trellis_err_t err = tr__factory_open(factory_dir(fdir), &f, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", reason.text);
        goto out;
    }
    err = tr__factory_manifest_from_keys(&f, &o, &records, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s: %s", o.input,
                          reason.text[0] ? reason.text : trellis_err_message(err));
        goto out;
    }
    printf("manifest %s: %llu devices of batch %s for %s, signed by %s\n", o.output,
           (unsigned long long)records, o.batch, o.owner, f.name);
    rc = TR__EXIT_OK;
out:
    tr__factory_close(&f);
    return rc;
}

/* ---- verify ---- */

static int factory_verify(int argc, char **argv)
{
    static const char *what = "factory verify";
    static const struct option options[] = {
        {"key", required_argument, NULL, 'k'},
        {"factory", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL;
    const char *fdir = NULL;
    const char *path = NULL;
    char pub_path[TR_PATH_MAX];
    EVP_PKEY *key = NULL;
    tr_manifest_summary_t sum;
    trellis_reason_t reason;
    int rc = TR__EXIT_FAILURE;
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'k':
            key_path = optarg;
            break;
        case 'f':
            fdir = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) {
        return tr__cli_usage(what, "give exactly one MANIFEST");
    }
    path = argv[optind];
    if (key_path == NULL) {
        snprintf(pub_path, sizeof(pub_path), "%s/%s", factory_dir(fdir), TR_FACTORY_PUB);
        key_path = pub_path;
    }
    trellis_err_t err = trellis_p256_load_public_pem(key_path, &key);
    if (err != TRELLIS_OK) {
        return tr__cli_fail(what, "cannot load the public key %s: %s", key_path,
                            trellis_err_message(err));
    }
    err = tr__manifest_verify(path, key, &sum, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s: %s", path, reason.text);
        goto out;
    }
    char hex[65];
    size_t n = 0;
    trellis_hex_encode(sum.sha256, 32, hex, sizeof(hex), &n);
    printf("%s: valid, %llu devices of batch %s from %s for %s, sha256 %s\n", path,
           (unsigned long long)sum.records, sum.header.batch, sum.header.factory, sum.header.owner,
           hex);
    rc = TR__EXIT_OK;
out:
    EVP_PKEY_free(key);
    return rc;
}

/* ---- upload ---- */

static int factory_upload(int argc, char **argv)
{
    static const char *what = "factory upload";
    static const struct option options[] = {
        {"verifier", required_argument, NULL, 'v'},
        {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    tr_upload_opts_t o;
    tr_upload_result_t *res = NULL;
    trellis_reason_t reason;
    const char *timeout = NULL;
    uint64_t t = 0;
    int json = 0;
    int rc = TR__EXIT_FAILURE;
    int opt;

    memset(&o, 0, sizeof(o));
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'v':
            o.verifier_url = optarg;
            break;
        case 'c':
            o.cert = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'a':
            o.ca = optarg;
            break;
        case 't':
            timeout = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc) {
        return tr__cli_usage(what, "give exactly one MANIFEST");
    }
    o.manifest = argv[optind];
    if (o.verifier_url == NULL || o.cert == NULL || o.key == NULL || o.ca == NULL) {
        return tr__cli_usage(what, "--verifier, --cert, --key and --ca are required");
    }
    if (timeout != NULL) {
        if (!parse_u64(timeout, 86400, &t)) {
            return tr__cli_usage(what, "--timeout must be 1..86400 seconds");
        }
        o.timeout_s = (long)t;
    }
    res = calloc(1, sizeof(*res));
    if (res == NULL) {
        return tr__cli_fail(what, "out of memory");
    }
    trellis_err_t err = tr__factory_upload(&o, res, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s", reason.text[0] ? reason.text : trellis_err_message(err));
        goto out;
    }
    if (json) {
        printf("%s%s", res->body,
               res->body[0] != '\0' && res->body[strlen(res->body) - 1] == '\n' ? "" : "\n");
    }
    if (res->http_status == 200) {
        int imported = strcmp(res->status, "imported") == 0;
        if (!json) {
            printf("%s: %s, %lld devices\n", o.manifest,
                   imported ? "imported" : "already present (imported before)", res->devices);
        }
        rc = TR__EXIT_OK;
        goto out;
    }
    char lines[256] = "";
    size_t pos = 0;
    for (size_t i = 0; i < res->n_lines && pos < sizeof(lines) - 24; i++) {
        int n = snprintf(lines + pos, sizeof(lines) - pos, "%s%lld", i ? ", " : "; lines ",
                         res->lines[i]);
        pos += n > 0 ? (size_t)n : 0;
    }
    rc = tr__cli_fail(what, "%s refused (HTTP %ld %s): %s%s", o.manifest, res->http_status,
                      res->error[0] ? res->error : "error",
                      res->detail[0] ? res->detail : "no detail", lines);
out:
    free(res);
    return rc;
}

/* ---- evidence ---- */

static int factory_evidence(int argc, char **argv)
{
    static const char *what = "factory evidence";
    static const struct option options[] = {
        {"device", required_argument, NULL, 'd'},   {"challenge", required_argument, NULL, 'c'},
        {"csr", required_argument, NULL, 'r'},      {"out", required_argument, NULL, 'O'},
        {"pin", required_argument, NULL, 'P'},      {"pin-env", required_argument, NULL, 'E'},
        {"firmware", required_argument, NULL, 'w'}, {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    const char *challenge_hex = NULL;
    const char *csr_path = NULL;
    const char *out_path = NULL;
    char *pin_arg = NULL;
    const char *pin_env = NULL;
    char pin[TRELLIS_PKCS11_PIN_MAX + 1];
    uint8_t challenge[TRELLIS_EVIDENCE_CHALLENGE_MAX];
    size_t challenge_len = 0;
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    uint8_t token[TRELLIS_EVIDENCE_MAX];
    size_t token_len = 0;
    trellis_device_factory_t *fd = NULL;
    trellis_device_rot_t *rot = NULL;
    trellis_device_rot_options_t ro;
    trellis_reason_t reason;
    int rc = TR__EXIT_FAILURE;
    int opt;

    memset(&ro, 0, sizeof(ro));
    memset(pin, 0, sizeof(pin));
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'c':
            challenge_hex = optarg;
            break;
        case 'r':
            csr_path = optarg;
            break;
        case 'O':
            out_path = optarg;
            break;
        case 'P':
            pin_arg = optarg;
            break;
        case 'E':
            pin_env = optarg;
            break;
        case 'w':
            ro.measure.firmware_path = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    }
    if (dir == NULL || challenge_hex == NULL || csr_path == NULL || out_path == NULL) {
        return tr__cli_usage(what, "--device, --challenge, --csr and --out are required");
    }
    if (trellis_hex_decode(challenge_hex, strlen(challenge_hex), challenge, sizeof(challenge),
                           &challenge_len) != TRELLIS_OK ||
        challenge_len == 0) {
        return tr__cli_usage(what, "--challenge must be 1..%d bytes of hex",
                             TRELLIS_EVIDENCE_CHALLENGE_MAX);
    }
    rc = take_pin(what, pin_arg, pin_env, pin, sizeof(pin));
    if (rc != TR__EXIT_OK) {
        return rc;
    }
    rc = TR__EXIT_FAILURE;
    ro.pin = pin[0] != '\0' ? pin : NULL;
    fd = calloc(1, sizeof(*fd));
    rot = calloc(1, sizeof(*rot));
    if (fd == NULL || rot == NULL) {
        rc = tr__cli_fail(what, "out of memory");
        goto out;
    }
    trellis_err_t err = trellis_file_read_all(csr_path, TRELLIS_EVIDENCE_CSR_MAX, &csr, &csr_len);
    if (err != TRELLIS_OK || csr_len == 0) {
        rc = tr__cli_fail(what, "cannot read the CSR %s: %s", csr_path,
                          err != TRELLIS_OK ? trellis_err_message(err) : "empty file");
        goto out;
    }
    err = trellis_device_factory_load(dir, fd, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s: %s", dir, reason.text);
        goto out;
    }
    err = trellis_device_rot_open(rot, dir, fd, &ro, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot open the RoT of %s: %s", dir,
                          reason.text[0] ? reason.text : trellis_err_message(err));
        goto out;
    }
    err = trellis_device_evidence(&rot->port, challenge, challenge_len, csr, csr_len, token,
                                  sizeof(token), &token_len);
    trellis_device_rot_close(rot);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "the RoT could not sign evidence: %s", trellis_err_message(err));
        goto out;
    }
    err = trellis_file_write_atomic(out_path, token, token_len, TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot write %s: %s", out_path, trellis_err_message(err));
        goto out;
    }
    printf("evidence of device %s (%s): %zu bytes in %s\n", fd->device_id, fd->serial, token_len,
           out_path);
    rc = TR__EXIT_OK;
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    trellis_file_buffer_free(csr, csr_len);
    free(rot);
    free(fd);
    return rc;
}

int cmd_factory(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {
        {"init", factory_init},     {"make", factory_make},     {"manifest", factory_manifest},
        {"verify", factory_verify}, {"upload", factory_upload}, {"evidence", factory_evidence},
    };

    if (argc < 2) {
        return tr__cli_usage("factory", "missing subcommand: init, make, manifest, verify, "
                                        "upload or evidence");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0 || want_help(argc - 1, argv + 1)) {
        fputs(factory_help, stdout);
        return TR__EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (strcmp(argv[1], subs[i].name) == 0) {
            return subs[i].fn(argc - 1, argv + 1);
        }
    }
    return tr__cli_usage("factory", "unknown subcommand '%s'", argv[1]);
}
