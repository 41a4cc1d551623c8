/*
 * A real Mosquitto broker for tests: configured by trellis_broker_config_write (exactly what
 * `trellis broker config` writes) in a fresh temporary directory, listening on two free loopback
 * ports, started and stopped by the test.
 *
 * Typical use:
 *   trellis_mosq_harness_t h;
 *   trellis_mosq_harness_init(&h, device_ca_pem, crl_pem);   // writes the config
 *   trellis_mosq_harness_start(&h);                          // runs mosquitto, waits for ports
 *   ... connect devices to h.port, the ingest to h.service_port with h.ingest_cert/key ...
 *   trellis_mosq_harness_kill(&h);  trellis_mosq_harness_start(&h);   // crash and restart
 *   trellis_mosq_harness_destroy(&h);                        // stops it, removes the directory
 *
 * The directory lives under $TMPDIR (or /tmp). Not thread-safe: one harness per test thread.
 */
#ifndef TRELLIS_MOSQUITTO_HARNESS_H
#define TRELLIS_MOSQUITTO_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "trellis/error.h"

#define TRELLIS_MOSQ_PATH 512

typedef struct {
    char dir[TRELLIS_MOSQ_PATH];
    char conf[TRELLIS_MOSQ_PATH];
    char log[TRELLIS_MOSQ_PATH];        /* mosquitto's stderr, appended across restarts */
    char service_ca[TRELLIS_MOSQ_PATH]; /* verifies the broker on both listeners */
    char ingest_cert[TRELLIS_MOSQ_PATH];
    char ingest_key[TRELLIS_MOSQ_PATH];
    int port;         /* device listener */
    int service_port; /* ingest listener */
    pid_t pid;        /* 0 when not running */
} trellis_mosq_harness_t;

/* A free TCP port on 127.0.0.1 (bound and released; a race with another process is possible
 * but unlikely). Returns 0 on failure. */
int trellis_mosq_free_port(void);

/* Makes the directory and writes the broker configuration for device_ca_file and crl_file
 * (PEM). The broker is not started. */
trellis_err_t trellis_mosq_harness_init(trellis_mosq_harness_t *h, const char *device_ca_file,
                                        const char *crl_file);

/* Starts mosquitto and waits (up to 10 s) until both ports accept connections. IO if it does
 * not come up (its log is printed to stderr then). */
trellis_err_t trellis_mosq_harness_start(trellis_mosq_harness_t *h);

/* SIGTERM and wait; SIGKILL and wait (a crash); SIGHUP (reload: re-reads the CRL). */
trellis_err_t trellis_mosq_harness_stop(trellis_mosq_harness_t *h);
trellis_err_t trellis_mosq_harness_kill(trellis_mosq_harness_t *h);
trellis_err_t trellis_mosq_harness_reload(trellis_mosq_harness_t *h);

/* Stops the broker if it runs and removes the directory. Safe on a zeroed harness. */
void trellis_mosq_harness_destroy(trellis_mosq_harness_t *h);

/* Writes a PEM CRL issued by ca/ca_key listing the given certificates, valid for a day. */
trellis_err_t trellis_mosq_write_crl(const char *path, X509 *ca, EVP_PKEY *ca_key,
                                     X509 *const *revoked, size_t n);

/* Whether log (the broker's) contains text; for checks such as refused handshakes. */
bool trellis_mosq_log_contains(const trellis_mosq_harness_t *h, const char *text);

#endif /* TRELLIS_MOSQUITTO_HARNESS_H */
