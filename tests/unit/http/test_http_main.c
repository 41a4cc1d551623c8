/* The http module's test binary: server, TLS and client groups against real sockets. */
#include <signal.h>
#include <stdio.h>

#include "http_test.h"
#include "test_support.h"
#include "trellis/log.h"

int main(void)
{
    /* Test clients write to sockets the server may have closed. */
    signal(SIGPIPE, SIG_IGN);
    trellis_log_set_level(TRELLIS_LOG_WARN);
    if (trellis_test_pki_create(&ht_pki) != TRELLIS_OK) {
        fprintf(stderr, "cannot create the test PKI\n");
        return 1;
    }
    int failures = ht_server_tests();
    failures += ht_parse_tests();
    failures += ht_tls_tests();
    failures += ht_client_tests();
    trellis_test_pki_destroy(&ht_pki);
    return failures;
}
