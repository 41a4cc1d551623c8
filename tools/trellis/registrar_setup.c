/* `trellis registrar init | join`: setting up the state directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "registrar_cli.h"

int tr__registrar_init(int argc, char **argv)
{
    static const char *what = "registrar init";
    const char *dir = NULL, *oem = NULL, *hosts = NULL, *root_days = NULL, *ca_days = NULL,
               *server_days = NULL;
    bool json = false;
    long long rd = 0, cd = 0, sd = 0;
    tr__rargs_t a;
    trellis_reason_t why;
    const tr__rflag_t flags[] = {{"dir", &dir, NULL},         {"oem", &oem, NULL},
                                 {"hosts", &hosts, NULL},     {"root-days", &root_days, NULL},
                                 {"ca-days", &ca_days, NULL}, {"server-days", &server_days, NULL},
                                 {"json", NULL, &json}};

    int rc =
        tr__registrar_parse(what, argc, argv, flags, sizeof(flags) / sizeof(flags[0]), false, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar init --oem NAME --dir DIR [--hosts NAMES]\n"
               "       [--root-days N] [--ca-days N] [--server-days N] [--json]\n\n"
               "Creates DIR (mode 0700) with:\n"
               "  root/root.key, root/root.pem  the root CA; move root/ offline after init\n"
               "  trust.pem                     the root certificate: devices pin it\n"
               "  ca.key, ca.pem                the device CA (signs device certificates, CRLs)\n"
               "  ca-chain.pem                  device CA + root, for brokers (GET /v1/ca)\n"
               "  server.key, server.pem        the TLS server certificate (signed by the root)\n"
               "  challenge.key                 the challenge MAC secret\n"
               "  registry.db, crl.pem          an empty registry and a first CRL\n"
               "  registrar.conf                every option, with dir and oem set\n"
               "Keys are written 0600. Nothing is overwritten.\n\n"
               "  --oem NAME        the OEM (O of every device certificate; the tenant name the\n"
               "                    verifier knows this OEM by)\n"
               "  --dir DIR         the state directory (or TRELLIS_REGISTRAR_DIR)\n"
               "  --hosts NAMES     the server certificate's names, comma-separated DNS names\n"
               "                    and IP addresses (localhost,127.0.0.1,::1)\n"
               "  --root-days N     root validity (7300); --ca-days N device CA (3650);\n"
               "  --server-days N   TLS certificate (825)\n"
               "  --json            print the result as JSON\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (dir == NULL)
        dir = getenv("TRELLIS_REGISTRAR_DIR");
    if (dir == NULL)
        return tr__cli_usage(what, "--dir DIR is required");
    if (oem == NULL)
        return tr__cli_usage(what, "--oem NAME is required");
    if ((root_days != NULL && !tr__registrar_number(root_days, 1, 36500, &rd)) ||
        (ca_days != NULL && !tr__registrar_number(ca_days, 1, 36500, &cd)) ||
        (server_days != NULL && !tr__registrar_number(server_days, 1, 36500, &sd)))
        return tr__cli_usage(what, "--*-days: a number of days, 1..36500");
    trellis_registrar_init_t init = {.dir = dir,
                                     .oem = oem,
                                     .hosts = hosts,
                                     .root_days = (unsigned)rd,
                                     .ca_days = (unsigned)cd,
                                     .server_days = (unsigned)sd};
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_init_dir(&init, &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "dir", dir, "oem", oem, "trust",
                              TRELLIS_REGISTRAR_TRUST_FILE, "ca_chain", TRELLIS_REGISTRAR_CA_CHAIN,
                              "root_dir", TRELLIS_REGISTRAR_ROOT_DIR);
        tr__registrar_print_json(o);
    } else {
        printf("initialised %s for OEM %s\n"
               "  devices pin   %s/%s\n"
               "  brokers trust %s/%s (CRL: %s/%s)\n"
               "  root CA       %s/%s/ (move it offline)\n"
               "  next: trellis registrar join --dir %s --verifier URL --bundle DIR\n",
               dir, oem, dir, TRELLIS_REGISTRAR_TRUST_FILE, dir, TRELLIS_REGISTRAR_CA_CHAIN, dir,
               TRELLIS_REGISTRAR_CRL_FILE, dir, TRELLIS_REGISTRAR_ROOT_DIR, dir);
    }
    return TR__EXIT_OK;
}

int tr__registrar_join(int argc, char **argv)
{
    static const char *what = "registrar join";
    const char *url = NULL, *bundle = NULL, *verdict_key = NULL;
    bool json = false;
    tr__rargs_t a;
    trellis_reason_t why;
    char kid[44];
    const tr__rflag_t flags[] = {{"verifier", &url, NULL},
                                 {"bundle", &bundle, NULL},
                                 {"verdict-key", &verdict_key, NULL},
                                 {"json", NULL, &json}};

    int rc =
        tr__registrar_parse(what, argc, argv, flags, sizeof(flags) / sizeof(flags[0]), true, &a);
    if (rc != TR__EXIT_OK)
        return rc;
    if (a.help) {
        printf("usage: trellis registrar join --dir DIR --verifier URL --bundle DIR\n"
               "       [--verdict-key FILE] [--json]\n\n"
               "Connects the registrar to the verifier: copies the OEM's client bundle (what\n"
               "`trellis verifier add-oem` wrote: client.key, client.pem, ca.pem) into\n"
               "DIR/verifier/, pins the verifier's verdict key (DIR/verifier/verdict.pub.pem,\n"
               "fetched from URL/v1/verdict-key over mutual TLS unless --verdict-key gives it)\n"
               "and sets verifier-url in registrar.conf. Prints the pinned key's thumbprint:\n"
               "compare it with the verifier operator's.\n");
        return TR__EXIT_OK;
    }
    if (a.npos != 0)
        return tr__cli_usage(what, "unexpected argument '%s'", a.pos[0]);
    if (url == NULL || bundle == NULL)
        return tr__cli_usage(what, "--verifier URL and --bundle DIR are required");
    trellis_registrar_join_t j = {
        .verifier_url = url, .bundle = bundle, .verdict_key = verdict_key};
    trellis_reason_clear(&why);
    trellis_err_t err = trellis_registrar_join(&a.cfg, &j, kid, &why);
    if (err != TRELLIS_OK)
        return tr__registrar_fail(what, err, &why);
    if (json)
        tr__registrar_print_json(json_pack("{s:s, s:s, s:s}", "verifier", url, "verdict_key_kid",
                                           kid, "verdict_key", a.cfg.verdict_key));
    else
        printf("joined verifier %s as %s\n  pinned verdict key %s (kid %s)\n", url, a.cfg.oem,
               a.cfg.verdict_key, kid);
    return TR__EXIT_OK;
}
