/*
 * trellis-conf-example SERVICE: prints the example configuration of verifier, registrar or
 * ingest, generated from the same option table that drives parsing and --help.
 */
#include <stdio.h>
#include <string.h>

#include "trellis/conf.h"
#include "trellis/ingest.h"
#include "trellis/registrar.h"
#include "trellis/verifier.h"

int main(int argc, char **argv)
{
    const trellis_conf_spec_t *spec = NULL;
    if (argc == 2 && strcmp(argv[1], "verifier") == 0)
        spec = trellis_verifier_conf_spec();
    else if (argc == 2 && strcmp(argv[1], "registrar") == 0)
        spec = trellis_registrar_conf_spec();
    else if (argc == 2 && strcmp(argv[1], "ingest") == 0)
        spec = trellis_ingest_conf_spec();
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: trellis-conf-example verifier|registrar|ingest\n"
               "Prints the service's example configuration file (every option, its default\n"
               "and its meaning), as kept under etc/.\n");
        return 0;
    }
    if (spec == NULL) {
        fprintf(stderr, "trellis-conf-example: expected verifier, registrar or ingest (see "
                        "--help)\n");
        return 2;
    }
    if (trellis_conf_print_example(spec, stdout) != TRELLIS_OK) {
        fprintf(stderr, "trellis-conf-example: cannot print the %s example\n", argv[1]);
        return 1;
    }
    return 0;
}
