/* Server TLS: HTTPS round trips, explicit chain, mutual TLS (required and optional), peer
 * identity, and clients that must be refused. Raw OpenSSL clients on loopback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "http_test.h"
#include "test_support.h"

static trellis_http_server_t *tls_server(trellis_http_client_auth_t auth)
{
    trellis_http_server_config_t cfg;
    ht_config(&cfg);
    cfg.cert_file = ht_pki.server_cert;
    cfg.key_file = ht_pki.server_key;
    cfg.client_auth = auth;
    cfg.client_ca_file = auth != TRELLIS_HTTP_CLIENT_AUTH_OFF ? ht_pki.ca_cert : NULL;
    return ht_server_start(&cfg);
}

static ht_conn_t *conn_alloc(void)
{
    ht_conn_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    return c;
}

/* One GET on an established TLS connection; returns the status or -1. */
static int tls_get(ht_conn_t *c, const char *path, ht_response_t *r)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (!ht_send_str(c, req))
        return -1;
    return ht_read_response(c, r, false);
}

/* Connects with the given client certificate and checks that no HTTP answer ever comes: the
 * handshake fails, or (TLS 1.3, where the client finishes first) the server's alert ends the
 * connection before any response. */
static void assert_refused(uint16_t port, const char *cert, const char *key, int max_version)
{
    ht_conn_t *c = conn_alloc();
    ht_response_t r;
    int rc = ht_connect_tls(c, port, ht_pki.ca_cert, cert, key, max_version);
    if (rc == 1)
        assert_int_equal(tls_get(c, "/echo", &r), -1);
    ht_conn_free(c);
}

static void test_https_roundtrip(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = tls_server(TRELLIS_HTTP_CLIENT_AUTH_OFF);
    uint16_t port = trellis_http_server_port(srv);
    ht_conn_t *c = conn_alloc();
    ht_response_t r;

    /* The client trusts only the root: the handshake verifies because the server sends the
     * intermediate it was configured with. */
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, NULL, NULL, 0), 1);
    assert_int_equal(SSL_version(c->ssl), TLS1_3_VERSION);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tls_get(c, "/echo?tls=1", &r), 200);
        assert_non_null(strstr(r.body, "\"query\":\"tls=1\""));
        assert_non_null(strstr(r.body, "\"cn\":null"));
        ht_response_free(&r);
    }
    ht_conn_free(c);

    /* TLS 1.2 clients are served too. */
    c = conn_alloc();
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, NULL, NULL, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_version(c->ssl), TLS1_2_VERSION);
    assert_int_equal(tls_get(c, "/pem", &r), 200);
    ht_response_free(&r);
    ht_conn_free(c);

    /* A client trusting another CA refuses the server. */
    c = conn_alloc();
    assert_int_not_equal(ht_connect_tls(c, port, ht_pki.other_ca_cert, NULL, NULL, 0), 1);
    ht_conn_free(c);

    /* Plain HTTP on the TLS port gets no HTTP answer. */
    c = conn_alloc();
    ht_connect(c, port);
    assert_true(ht_send_str(c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert_int_equal(ht_read_response(c, &r, false), -1);
    ht_conn_free(c);

    trellis_http_server_stats_t st;
    trellis_http_server_stats(srv, &st);
    assert_int_equal(st.requests, 4);
    assert_int_equal(atomic_load(&ht_counters.echo), 3);
    trellis_http_server_free(srv);
}

static void test_mtls_required(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = tls_server(TRELLIS_HTTP_CLIENT_AUTH_REQUIRED);
    uint16_t port = trellis_http_server_port(srv);
    trellis_test_pki_pair_t good, other;
    ht_response_t r;

    assert_int_equal(trellis_test_pki_client(&ht_pki, "device-0001", false, &good), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&ht_pki, "device-0001", true, &other), TRELLIS_OK);

    /* No certificate: refused, in TLS 1.3 and 1.2 alike. */
    assert_refused(port, NULL, NULL, 0);
    assert_refused(port, NULL, NULL, TLS1_2_VERSION);
    /* A certificate from an unrelated CA, same CN: refused. */
    assert_refused(port, other.cert, other.key, 0);
    assert_refused(port, other.cert, other.key, TLS1_2_VERSION);
    assert_int_equal(atomic_load(&ht_counters.echo), 0);

    /* The right certificate: the handler sees its CN and fingerprint. */
    ht_conn_t *c = conn_alloc();
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, good.cert, good.key, 0), 1);
    assert_int_equal(tls_get(c, "/cn", &r), 200);
    json_error_t e;
    json_t *j = json_loadb(r.body, r.body_len, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "cn")), "device-0001");
    FILE *f = fopen(good.cert, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned char fp[32];
    unsigned int fplen = 0;
    char hex[65];
    assert_int_equal(X509_digest(x, EVP_sha256(), fp, &fplen), 1);
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", fp[i]);
    assert_string_equal(json_string_value(json_object_get(j, "sha256")), hex);
    X509_free(x);
    json_decref(j);
    ht_response_free(&r);
    assert_int_equal(tls_get(c, "/echo", &r), 200);
    assert_non_null(strstr(r.body, "\"cn\":\"device-0001\""));
    ht_response_free(&r);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

static void test_mtls_optional(void **state)
{
    (void)state;
    ht_counters_reset();
    trellis_http_server_t *srv = tls_server(TRELLIS_HTTP_CLIENT_AUTH_OPTIONAL);
    uint16_t port = trellis_http_server_port(srv);
    trellis_test_pki_pair_t good, other, odd;
    ht_response_t r;
    ht_conn_t *c;

    assert_int_equal(trellis_test_pki_client(&ht_pki, "registrar-oem-a", false, &good), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&ht_pki, "registrar-oem-a", true, &other), TRELLIS_OK);
    assert_int_equal(trellis_test_pki_client(&ht_pki,
                                             "oem\x01"
                                             "a",
                                             false, &odd),
                     TRELLIS_OK);

    /* Without a certificate the request is served, with no identity. */
    c = conn_alloc();
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, NULL, NULL, 0), 1);
    assert_int_equal(tls_get(c, "/cn", &r), 401);
    assert_non_null(strstr(r.body, "\"error\":\"bad_request\""));
    ht_response_free(&r);
    ht_conn_free(c);

    c = conn_alloc();
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, good.cert, good.key, 0), 1);
    assert_int_equal(tls_get(c, "/cn", &r), 200);
    assert_non_null(strstr(r.body, "\"cn\":\"registrar-oem-a\""));
    ht_response_free(&r);
    ht_conn_free(c);

    /* A certificate that does not verify is refused even though one is optional. */
    assert_refused(port, other.cert, other.key, 0);

    /* A CN with a control character is never handed out as a name. */
    c = conn_alloc();
    assert_int_equal(ht_connect_tls(c, port, ht_pki.ca_cert, odd.cert, odd.key, 0), 1);
    assert_int_equal(tls_get(c, "/cn", &r), 400);
    ht_response_free(&r);
    ht_conn_free(c);
    trellis_http_server_free(srv);
}

int ht_tls_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_roundtrip),
        cmocka_unit_test(test_mtls_required),
        cmocka_unit_test(test_mtls_optional),
    };
    return cmocka_run_group_tests_name("http_tls", tests, NULL, NULL);
}
