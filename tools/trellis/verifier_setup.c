/* `trellis verifier init | add-oem | add-factory | import`: setting up the state directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "verifier_cli.h"

int tr__verifier_init(int argc, char **argv)
{
    static const char *what = "verifier init";
    const char *dir = NULL, *id = NULL, *hosts = NULL;
    bool json = false;
    tr__vargs_t a;
    trellis_reason_t why;
    const tr__vflag_t flags[] = {
        {"dir", &dir, NULL}, {"id", &id, NULL}, {"hosts", &hosts, NULL}, {"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 4, false, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf(
            "usage: trellis verifier init --dir DIR [--id VERIFIER_ID] [--hosts NAMES] "
            "[--json]\n\n"
            "Creates DIR (mode 0700) with the verdict-signing key (verdict.key, its public half\n"
            "verdict.pub.pem), a CA for the verifier's TLS peers (ca.key, ca.pem), the TLS\n"
            "server key and certificate (server.key, server.pem), an empty registry\n"
            "(registry.db) and verifier.conf. Keys are written 0600. Nothing is overwritten.\n\n"
            "  --dir DIR        the state directory (or TRELLIS_VERIFIER_DIR)\n"
            "  --id ID          verifier id, the iss of its verdicts (trellis-verifier)\n"
            "  --hosts NAMES    the server certificate's names, comma-separated DNS names\n"
            "                   and IP addresses (localhost,127.0.0.1,::1)\n"
            "  --json           print the result as JSON\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (dir == NULL)
        dir = getenv("TRELLIS_VERIFIER_DIR");
    if (dir == NULL)
        return tr__cli_usage(what, "--dir DIR is required");
    trellis_verifier_init_t init = {.dir = dir, .verifier_id = id, .hosts = hosts};
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_verifier_init_dir(&init, &why);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", why.text[0] != '\0' ? why.text : trellis_err_message(err));
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "dir", dir, "verifier_id",
                              id != NULL ? id : "trellis-verifier", "verdict_key",
                              TRELLIS_VERIFIER_VERDICT_PUB, "ca", TRELLIS_VERIFIER_CA_CERT);
        tr__verifier_print_json(o);
    } else {
        printf("initialised %s\n"
               "  verdict key  %s/%s (pin its public half: %s)\n"
               "  CA           %s/%s\n"
               "  next: trellis verifier add-oem NAME --dir %s; trellis verifier serve --dir %s\n",
               dir, dir, TRELLIS_VERIFIER_VERDICT_KEY, TRELLIS_VERIFIER_VERDICT_PUB, dir,
               TRELLIS_VERIFIER_CA_CERT, dir, dir);
    }
    return TR__EXIT_OK;
}

static int add_client(int argc, char **argv, bool factory)
{
    const char *what = factory ? "verifier add-factory" : "verifier add-oem";
    const char *out = NULL, *days = NULL, *key = NULL;
    bool json = false;
    long long d = 0;
    tr__vargs_t a;
    trellis_reason_t why;
    trellis_verifier_bundle_t b;
    const tr__vflag_t flags[] = {
        {"out", &out, NULL}, {"days", &days, NULL}, {"json", NULL, &json}, {"key", &key, NULL}};

    int rc = tr__verifier_parse(what, argc, argv, flags, factory ? 4 : 3, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        if (factory)
            printf("usage: trellis verifier add-factory NAME --key PUB.pem --dir DIR [--out DIR]\n"
                   "       [--days N] [--json]\n\n"
                   "Registers factory NAME with its manifest-signing public key (PUB.pem, P-256)\n"
                   "and writes its mutual-TLS client bundle for `trellis factory upload`.\n");
        else
            printf("usage: trellis verifier add-oem NAME --dir DIR [--out DIR] [--days N] "
                   "[--json]\n\n"
                   "Registers OEM NAME and writes the mutual-TLS client bundle its registrar uses\n"
                   "to ask for verdicts.\n");
        printf("\nThe bundle (client.key 0600, client.pem, ca.pem) goes to --out DIR, by default\n"
               "DIR/clients/NAME. The certificate's CN is NAME; it is valid --days N days\n"
               "(365). OEM and factory names share one namespace: letters, digits, '.', '_' and\n"
               "'-', at most 64.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 1)
        return tr__cli_usage(what, "give exactly one NAME");
    if (factory && key == NULL)
        return tr__cli_usage(what, "--key PUB.pem is required");
    if (days != NULL && !tr__verifier_number(days, 1, 36500, &d))
        return tr__cli_usage(what, "--days must be 1..36500");
    trellis_reason_clear(&why);
    trellis_err_t err =
        factory ? trellis_verifier_add_factory(&a.cfg, a.pos[0], key, out, (unsigned)d, &b, &why)
                : trellis_verifier_add_oem(&a.cfg, a.pos[0], out, (unsigned)d, &b, &why);
    if (err != TRELLIS_OK)
        return tr__cli_fail(what, "%s", why.text[0] != '\0' ? why.text : trellis_err_message(err));
    if (json) {
        tr__verifier_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s}", factory ? "factory" : "oem",
                                          a.pos[0], "key", b.key, "cert", b.cert, "ca", b.ca, "dir",
                                          b.dir));
    } else {
        printf("registered %s %s\n  client key   %s\n  certificate  %s\n  verifier CA  %s\n",
               factory ? "factory" : "OEM", a.pos[0], b.key, b.cert, b.ca);
    }
    return TR__EXIT_OK;
}

int tr__verifier_add_oem(int argc, char **argv)
{
    return add_client(argc, argv, false);
}

int tr__verifier_add_factory(int argc, char **argv)
{
    return add_client(argc, argv, true);
}

int tr__verifier_import(int argc, char **argv)
{
    static const char *what = "verifier import";
    bool json = false;
    tr__vargs_t a;
    trellis_reason_t why;
    char *report = NULL;
    const tr__vflag_t flags[] = {{"json", NULL, &json}};

    int rc = tr__verifier_parse(what, argc, argv, flags, 1, true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis verifier import MANIFEST --dir DIR [--json]\n\n"
               "Imports a factory manifest (docs/manifest-format.md) straight into the registry,\n"
               "with every check of the HTTP import: the factory named in its header must be\n"
               "registered and its signature must verify with that factory's key. The file is\n"
               "read in 64 KiB chunks, so any size streams through flat memory. For bulk loads\n"
               "and benchmarks; factories normally upload with `trellis factory upload`.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 1)
        return tr__cli_usage(what, "give exactly one MANIFEST");
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_verifier_import_file(&a.cfg, a.pos[0], &report, &why);
    if (json && report != NULL)
        printf("%s\n", report);
    if (err != TRELLIS_OK) {
        free(report);
        return tr__cli_fail(what, "%s: %s", a.pos[0],
                            why.text[0] != '\0' ? why.text : trellis_err_message(err));
    }
    if (!json) {
        json_t *o = json_loads(report != NULL ? report : "{}", 0, NULL);
        printf("%s: %s, %lld records, %lld added\n", a.pos[0],
               json_string_value(json_object_get(o, "status")),
               (long long)json_integer_value(json_object_get(o, "records")),
               (long long)json_integer_value(json_object_get(o, "added")));
        json_decref(o);
    }
    free(report);
    return TR__EXIT_OK;
}
