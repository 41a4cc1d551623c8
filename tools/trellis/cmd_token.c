/*
 * `trellis token create` and `trellis token check`: PSA attestation tokens (RFC 9783) from the
 * command line, for tests, demos and looking at what a device sent. The token format and the
 * JSON form of the claims are in docs/token-format.md.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "commands.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"
#include "trellis/psa_token.h"
#include "trellis/trellis.h"

#define CLAIMS_JSON_MAX (64 * 1024)

/* The implementation id of tokens this tool makes: SHA-256 of the text below, so a verifier
 * can tell them from a device's. */
static const char implementation_label[] = "trellis token create";

static const char token_help[] =
    "usage: trellis token create --key KEY.pem --nonce HEX [--claims JSON|FILE] [--out FILE]\n"
    "       trellis token check --token FILE --key PUB.pem|KEY.jwk [--nonce HEX]\n"
    "\n"
    "create  Signs a PSA attestation token (RFC 9783: COSE_Sign1, ES256) with the P-256\n"
    "        private key in KEY.pem and writes it, binary, to FILE or standard output.\n"
    "        The claims are the defaults below, then the members of --claims (inline JSON\n"
    "        when it starts with '{', otherwise a file holding JSON; names as printed by\n"
    "        check, byte strings in hex, null removes an optional claim), then --nonce\n"
    "        (hex, 32, 48 or 64 bytes).\n"
    "        Defaults: eat_profile \"" TRELLIS_PSA_PROFILE_TFM_NAME "\";\n"
    "        ueid 0x01 || SHA-256(the key's 65-byte public point); psa-client-id -1;\n"
    "        psa-security-lifecycle 12288 (0x3000, secured); psa-implementation-id\n"
    "        SHA-256(\"trellis token create\"); psa-boot-seed 32 random bytes; one software\n"
    "        component of type \"App\" whose measurement value is the SHA-256 of this trellis\n"
    "        program.\n"
    "check   Verifies the token in FILE ('-' reads standard input) with a public key (PEM\n"
    "        SubjectPublicKeyInfo, a PEM private key, or a JWK) and, with --nonce, that its\n"
    "        nonce is HEX. On success prints the claims as JSON; otherwise one line with the\n"
    "        reason on stderr and exit status 1.\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 wrong command line.\n";

static bool want_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

/* Decodes --nonce: hex of 32, 48 or 64 bytes (RFC 9783 §4.1.1). */
static int parse_nonce(const char *what, const char *hex, uint8_t nonce[static 64], size_t *len)
{
    size_t hex_len = strlen(hex);
    if (hex_len != 64 && hex_len != 96 && hex_len != 128)
        return tr__cli_usage(what, "--nonce must be 32, 48 or 64 bytes of hex, not %zu characters",
                             hex_len);
    if (trellis_hex_decode(hex, hex_len, nonce, 64, len) != TRELLIS_OK)
        return tr__cli_usage(what, "--nonce is not valid hex");
    return TR__EXIT_OK;
}

/* The claims of a token made by this tool for key, before --claims and --nonce. */
static int default_claims(const char *what, EVP_PKEY *key, trellis_psa_claims_t *c)
{
    uint8_t point[TRELLIS_P256_POINT_LEN];
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    trellis_psa_claims_init(c);
    err = trellis_p256_public_point(key, point);
    if (err == TRELLIS_OK)
        err = trellis_psa_ueid_from_point(point, c->instance_id);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "cannot derive the instance id: %s", trellis_err_message(err));
    c->has_instance_id = true;
    err = trellis_sha256((const uint8_t *)implementation_label, strlen(implementation_label),
                         c->implementation_id);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", trellis_err_message(err));
    c->has_implementation_id = true;
    /* The caller is a non-secure application asking its RoT for a token: a negative client id
     * (RFC 9783 §4.1.2). */
    c->has_client_id = true;
    c->client_id = -1;
    c->has_lifecycle = true;
    c->lifecycle = TRELLIS_PSA_LIFECYCLE_SECURED;
    err = trellis_random(c->boot_seed, TRELLIS_PSA_BOOT_SEED_MAX);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "cannot draw a boot seed: %s", trellis_err_message(err));
    c->boot_seed_len = TRELLIS_PSA_BOOT_SEED_MAX;
    /* The firmware measurement of design.md §3: the program that is running. */
    trellis_psa_sw_component_t *sw = &c->sw_components[0];
    err = trellis_sha256_file("/proc/self/exe", sw->measurement_value);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "cannot measure the running program: %s",
                            trellis_err_message(err));
    sw->measurement_value_len = TRELLIS_SHA256_LEN;
    sw->has_measurement_type = true;
    snprintf(sw->measurement_type, sizeof(sw->measurement_type), "App");
    sw->has_version = true;
    snprintf(sw->version, sizeof(sw->version), "%s", TRELLIS_VERSION);
    sw->has_measurement_desc = true;
    snprintf(sw->measurement_desc, sizeof(sw->measurement_desc), "sha-256");
    c->sw_component_count = 1;
    return TR__EXIT_OK;
}

static bool starts_with_brace(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isspace((unsigned char)s[i]))
            return s[i] == '{';
    }
    return false;
}

/* Applies --claims: inline JSON or a file holding it. */
static int apply_claims_arg(const char *what, const char *arg, trellis_psa_claims_t *c)
{
    trellis_reason_t reason = {{0}};
    uint8_t *file = NULL;
    size_t file_len = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int rc = TR__EXIT_FAILURE;

    if (starts_with_brace(arg, strlen(arg))) {
        err = trellis_psa_claims_from_json(arg, strlen(arg), c, &reason);
    } else {
        err = trellis_file_read_all(arg, CLAIMS_JSON_MAX, &file, &file_len);
        if (err != TRELLIS_OK) {
            rc =
                tr__cli_fail(what, "cannot read claims file %s: %s", arg, trellis_err_message(err));
            goto out;
        }
        err = trellis_psa_claims_from_json((const char *)file, file_len, c, &reason);
    }
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "--claims: %s", reason.text);
        goto out;
    }
    rc = TR__EXIT_OK;
out:
    trellis_file_buffer_free(file, file_len);
    return rc;
}

static int write_output(const char *what, const char *out_path, const uint8_t *buf, size_t len)
{
    if (out_path != NULL) {
        trellis_err_t err = trellis_file_write_atomic(out_path, buf, len, TRELLIS_FILE_PUBLIC);
        if (err != TRELLIS_OK)
            return tr__cli_fail(what, "cannot write %s: %s", out_path, trellis_err_message(err));
        return TR__EXIT_OK;
    }
    /* A binary token on a terminal helps nobody and can upset it. */
    if (isatty(STDOUT_FILENO))
        return tr__cli_fail(what, "refusing to write a binary token to a terminal; use --out "
                                  "FILE or redirect standard output");
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
        return tr__cli_fail(what, "cannot write the token to standard output");
    return TR__EXIT_OK;
}

static int token_create(int argc, char **argv)
{
    static const char what[] = "token create";
    static const struct option options[] = {
        {"key", required_argument, NULL, 'k'},    {"nonce", required_argument, NULL, 'n'},
        {"claims", required_argument, NULL, 'c'}, {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL, *nonce_hex = NULL, *claims_arg = NULL, *out_path = NULL;
    EVP_PKEY *key = NULL;
    trellis_psa_claims_t claims;
    trellis_signer_t signer = {.version = 0, .ctx = NULL, .sign_digest = NULL};
    trellis_reason_t reason = {{0}};
    uint8_t nonce[64];
    size_t nonce_len = 0;
    uint8_t token[TRELLIS_COSE_MAX_TOKEN];
    size_t token_len = 0;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int rc = TR__EXIT_FAILURE;
    int opt;

    if (want_help(argc, argv)) {
        fputs(token_help, stdout);
        return TR__EXIT_OK;
    }
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 'k':
            key_path = optarg;
            break;
        case 'n':
            nonce_hex = optarg;
            break;
        case 'c':
            claims_arg = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    if (key_path == NULL || nonce_hex == NULL)
        return tr__cli_usage(what, "--key and --nonce are required");
    rc = parse_nonce(what, nonce_hex, nonce, &nonce_len);
    if (rc != TR__EXIT_OK)
        return rc;

    rc = TR__EXIT_FAILURE;
    err = trellis_p256_load_private_pem(key_path, &key);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot load the private key %s: %s", key_path,
                          trellis_err_message(err));
        goto out;
    }
    rc = default_claims(what, key, &claims);
    if (rc != TR__EXIT_OK)
        goto out;
    if (claims_arg != NULL) {
        rc = apply_claims_arg(what, claims_arg, &claims);
        if (rc != TR__EXIT_OK)
            goto out;
    }
    rc = TR__EXIT_FAILURE;
    memcpy(claims.nonce, nonce, nonce_len);
    claims.nonce_len = nonce_len;
    err = trellis_signer_from_pkey(key, &signer);
    if (err == TRELLIS_OK)
        err = trellis_psa_token_encode(&claims, NULL, 0, &signer, token, sizeof(token), &token_len,
                                       &reason);
    if (err == TRELLIS_ERR_BUFFER_TOO_SMALL) {
        rc = tr__cli_fail(what, "the token would be %zu bytes, more than the %d a verifier accepts",
                          token_len, TRELLIS_COSE_MAX_TOKEN);
        goto out;
    }
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s",
                          reason.text[0] != '\0' ? reason.text : trellis_err_message(err));
        goto out;
    }
    rc = write_output(what, out_path, token, token_len);
out:
    EVP_PKEY_free(key);
    return rc;
}

/* Reads the token from a file, or standard input for "-", refusing more than a verifier would
 * accept. */
static int read_token(const char *what, const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    if (strcmp(path, "-") == 0) {
        size_t n = 0;
        while (n <= cap) {
            uint8_t chunk[512];
            size_t got = fread(chunk, 1, sizeof(chunk), stdin);
            if (got == 0)
                break;
            if (got > cap - n)
                return tr__cli_fail(what, "the token is larger than %zu bytes", cap);
            memcpy(buf + n, chunk, got);
            n += got;
        }
        if (ferror(stdin))
            return tr__cli_fail(what, "cannot read the token from standard input");
        *len = n;
        return TR__EXIT_OK;
    }
    uint8_t *file = NULL;
    size_t file_len = 0;
    trellis_err_t err = trellis_file_read_all(path, cap, &file, &file_len);
    if (err == TRELLIS_ERR_TOO_LARGE)
        return tr__cli_fail(what, "%s is larger than %zu bytes", path, cap);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "cannot read %s: %s", path, trellis_err_message(err));
    memcpy(buf, file, file_len);
    *len = file_len;
    trellis_file_buffer_free(file, file_len);
    return TR__EXIT_OK;
}

/* Loads a verification key: a JWK when the file holds a JSON object, PEM otherwise. */
static int load_check_key(const char *what, const char *path, EVP_PKEY **key)
{
    uint8_t *file = NULL;
    size_t file_len = 0;
    trellis_reason_t reason = {{0}};
    trellis_err_t err = trellis_file_read_all(path, TRELLIS_KEY_FILE_MAX, &file, &file_len);
    int rc = TR__EXIT_FAILURE;

    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot read the key %s: %s", path, trellis_err_message(err));
        goto out;
    }
    if (starts_with_brace((const char *)file, file_len)) {
        err = trellis_p256_from_jwk((const char *)file, file_len, key, &reason);
        if (err != TRELLIS_OK) {
            rc = tr__cli_fail(what, "cannot load the JWK %s: %s", path,
                              reason.text[0] != '\0' ? reason.text : trellis_err_message(err));
            goto out;
        }
    } else {
        err = trellis_p256_load_public_pem(path, key);
        if (err != TRELLIS_OK) {
            rc = tr__cli_fail(what, "cannot load the key %s: %s", path, trellis_err_message(err));
            goto out;
        }
    }
    rc = TR__EXIT_OK;
out:
    trellis_file_buffer_free(file, file_len);
    return rc;
}

static int token_check(int argc, char **argv)
{
    static const char what[] = "token check";
    static const struct option options[] = {
        {"token", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'},
        {"nonce", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *token_path = NULL, *key_path = NULL, *nonce_hex = NULL;
    EVP_PKEY *key = NULL;
    trellis_psa_claims_t claims;
    trellis_reason_t reason = {{0}};
    uint8_t nonce[64];
    size_t nonce_len = 0;
    uint8_t token[TRELLIS_COSE_MAX_TOKEN];
    size_t token_len = 0;
    char *json = NULL;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    int rc = TR__EXIT_FAILURE;
    int opt;

    if (want_help(argc, argv)) {
        fputs(token_help, stdout);
        return TR__EXIT_OK;
    }
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":", options, NULL)) != -1) {
        switch (opt) {
        case 't':
            token_path = optarg;
            break;
        case 'k':
            key_path = optarg;
            break;
        case 'n':
            nonce_hex = optarg;
            break;
        case ':':
            return tr__cli_usage(what, "%s needs a value", argv[optind - 1]);
        default:
            return tr__cli_usage(what, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return tr__cli_usage(what, "unexpected argument '%s'", argv[optind]);
    if (token_path == NULL || key_path == NULL)
        return tr__cli_usage(what, "--token and --key are required");
    if (nonce_hex != NULL) {
        rc = parse_nonce(what, nonce_hex, nonce, &nonce_len);
        if (rc != TR__EXIT_OK)
            return rc;
    }

    rc = read_token(what, token_path, token, sizeof(token), &token_len);
    if (rc != TR__EXIT_OK)
        goto out;
    rc = load_check_key(what, key_path, &key);
    if (rc != TR__EXIT_OK)
        goto out;
    err = trellis_psa_token_verify(token, token_len, key, nonce_hex != NULL ? nonce : NULL,
                                   nonce_len, &claims, &reason);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "%s",
                          reason.text[0] != '\0' ? reason.text : trellis_err_message(err));
        goto out;
    }
    err = trellis_psa_claims_to_json(&claims, &json);
    if (err != TRELLIS_OK) {
        rc = tr__cli_fail(what, "cannot print the claims: %s", trellis_err_message(err));
        goto out;
    }
    if (printf("%s\n", json) < 0 || fflush(stdout) != 0) {
        rc = tr__cli_fail(what, "cannot write to standard output");
        goto out;
    }
    rc = TR__EXIT_OK;
out:
    free(json);
    EVP_PKEY_free(key);
    return rc;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2)
        return tr__cli_usage("token", "missing subcommand: create or check");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(token_help, stdout);
        return TR__EXIT_OK;
    }
    if (strcmp(argv[1], "create") == 0)
        return token_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return token_check(argc - 1, argv + 1);
    return tr__cli_usage("token", "unknown subcommand '%s': create or check", argv[1]);
}
