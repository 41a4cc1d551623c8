/* A real Mosquitto for tests; see mosquitto_harness.h. */
#include "mosquitto_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "trellis/fsutil.h"
#include "trellis/ingest.h"

static const char *const mosquitto_paths[] = {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
                                              "/usr/bin/mosquitto"};

int trellis_mosq_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int port = 0;
    if (fd < 0)
        return 0;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    bool ok = false;
    if (fd < 0)
        return false;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static trellis_err_t path_in(char out[static TRELLIS_MOSQ_PATH], const char *dir, const char *name)
{
    int n = snprintf(out, TRELLIS_MOSQ_PATH, "%s/%s", dir, name);
    return n > 0 && n < TRELLIS_MOSQ_PATH ? TRELLIS_OK : TRELLIS_ERR_INVALID_ARG;
}

trellis_err_t trellis_mosq_harness_init(trellis_mosq_harness_t *h, const char *device_ca_file,
                                        const char *crl_file)
{
    trellis_reason_t reason;
    const char *tmp = getenv("TMPDIR");
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    memset(h, 0, sizeof(*h));
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(h->dir, sizeof(h->dir), "%s/trellis-mosq.XXXXXX", tmp);
    if (mkdtemp(h->dir) == NULL) {
        h->dir[0] = '\0';
        return TRELLIS_ERR_IO;
    }
    for (int tries = 0; tries < 20; tries++) {
        h->port = trellis_mosq_free_port();
        h->service_port = trellis_mosq_free_port();
        if (h->port > 0 && h->service_port > 0 && h->port != h->service_port)
            break;
    }
    err = path_in(h->conf, h->dir, TRELLIS_BROKER_CONF_FILE);
    if (err == TRELLIS_OK)
        err = path_in(h->log, h->dir, "mosquitto.log");
    if (err == TRELLIS_OK)
        err = path_in(h->service_ca, h->dir, TRELLIS_BROKER_SERVICE_CA);
    if (err == TRELLIS_OK)
        err = path_in(h->ingest_cert, h->dir, TRELLIS_BROKER_INGEST_CERT);
    if (err == TRELLIS_OK)
        err = path_in(h->ingest_key, h->dir, TRELLIS_BROKER_INGEST_KEY);
    if (err != TRELLIS_OK)
        return err;
    const trellis_broker_conf_t conf = {
        .out_dir = h->dir,
        .device_ca_file = device_ca_file,
        .crl_file = crl_file,
        .port = h->port,
        .service_port = h->service_port,
    };
    err = trellis_broker_config_write(&conf, &reason);
    if (err != TRELLIS_OK)
        fprintf(stderr, "mosquitto harness: %s\n", reason.text);
    return err;
}

static void print_log(const trellis_mosq_harness_t *h)
{
    FILE *f = fopen(h->log, "r");
    char line[512];
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "mosquitto: %s", line);
    fclose(f);
}

trellis_err_t trellis_mosq_harness_start(trellis_mosq_harness_t *h)
{
    const char *bin = NULL;
    for (size_t i = 0; i < sizeof(mosquitto_paths) / sizeof(mosquitto_paths[0]); i++) {
        if (access(mosquitto_paths[i], X_OK) == 0) {
            bin = mosquitto_paths[i];
            break;
        }
    }
    if (bin == NULL || h->pid != 0)
        return TRELLIS_ERR_INVALID_ARG;
    pid_t pid = fork();
    if (pid < 0)
        return TRELLIS_ERR_IO;
    if (pid == 0) {
        int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        execl(bin, "mosquitto", "-c", h->conf, (char *)NULL);
        _exit(127);
    }
    h->pid = pid;
    for (int i = 0; i < 200; i++) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            h->pid = 0;
            print_log(h);
            return TRELLIS_ERR_IO;
        }
        if (port_open(h->port) && port_open(h->service_port))
            return TRELLIS_OK;
        sleep_ms(50);
    }
    print_log(h);
    trellis_mosq_harness_kill(h);
    return TRELLIS_ERR_IO;
}

static trellis_err_t signal_and_wait(trellis_mosq_harness_t *h, int sig)
{
    int status = 0;
    if (h->pid == 0)
        return TRELLIS_OK;
    kill(h->pid, sig);
    for (int i = 0; i < 100; i++) {
        if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
            h->pid = 0;
            return TRELLIS_OK;
        }
        sleep_ms(50);
    }
    kill(h->pid, SIGKILL);
    waitpid(h->pid, &status, 0);
    h->pid = 0;
    return sig == SIGKILL ? TRELLIS_OK : TRELLIS_ERR_TIMEOUT;
}

trellis_err_t trellis_mosq_harness_stop(trellis_mosq_harness_t *h)
{
    return signal_and_wait(h, SIGTERM);
}

trellis_err_t trellis_mosq_harness_kill(trellis_mosq_harness_t *h)
{
    return signal_and_wait(h, SIGKILL);
}

trellis_err_t trellis_mosq_harness_reload(trellis_mosq_harness_t *h)
{
    if (h->pid == 0 || kill(h->pid, SIGHUP) != 0)
        return TRELLIS_ERR_INVALID_ARG;
    /* The reload runs in the broker's main loop; give it a moment. */
    sleep_ms(300);
    return TRELLIS_OK;
}

static void remove_tree(const char *dir)
{
    static const char *const names[] = {
        TRELLIS_BROKER_CONF_FILE,  TRELLIS_BROKER_ACL_FILE,       TRELLIS_BROKER_PID_FILE,
        TRELLIS_BROKER_SERVICE_CA, TRELLIS_BROKER_SERVICE_CA_KEY, TRELLIS_BROKER_SERVER_CERT,
        TRELLIS_BROKER_SERVER_KEY, TRELLIS_BROKER_INGEST_CERT,    TRELLIS_BROKER_INGEST_KEY,
        "mosquitto.log",
    };
    char path[TRELLIS_MOSQ_PATH];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (path_in(path, dir, names[i]) == TRELLIS_OK)
            unlink(path);
    }
    rmdir(dir);
}

void trellis_mosq_harness_destroy(trellis_mosq_harness_t *h)
{
    if (h == NULL)
        return;
    trellis_mosq_harness_stop(h);
    if (h->dir[0] != '\0')
        remove_tree(h->dir);
    memset(h, 0, sizeof(*h));
}

trellis_err_t trellis_mosq_write_crl(const char *path, X509 *ca, EVP_PKEY *ca_key,
                                     X509 *const *revoked, size_t n)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *t = ASN1_TIME_new();
    BIO *bio = NULL;
    char *pem = NULL;
    long pem_len = 0;
    trellis_err_t err = TRELLIS_ERR_CRYPTO;

    if (crl == NULL || t == NULL)
        goto out;
    if (X509_CRL_set_version(crl, 1) != 1 ||
        X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) != 1)
        goto out;
    X509_gmtime_adj(t, -60);
    X509_CRL_set1_lastUpdate(crl, t);
    X509_gmtime_adj(t, 24 * 3600);
    X509_CRL_set1_nextUpdate(crl, t);
    for (size_t i = 0; i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_TIME *when = ASN1_TIME_new();
        if (r == NULL || when == NULL) {
            X509_REVOKED_free(r);
            ASN1_TIME_free(when);
            goto out;
        }
        X509_gmtime_adj(when, -30);
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked[i]));
        X509_REVOKED_set_revocationDate(r, when);
        ASN1_TIME_free(when);
        if (X509_CRL_add0_revoked(crl, r) != 1) {
            X509_REVOKED_free(r);
            goto out;
        }
    }
    X509_CRL_sort(crl);
    if (X509_CRL_sign(crl, ca_key, EVP_sha256()) <= 0)
        goto out;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509_CRL(bio, crl) != 1)
        goto out;
    pem_len = BIO_get_mem_data(bio, &pem);
    err = trellis_file_write_atomic(path, pem, (size_t)pem_len, TRELLIS_FILE_PUBLIC);
out:
    BIO_free(bio);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    return err;
}

bool trellis_mosq_log_contains(const trellis_mosq_harness_t *h, const char *text)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    bool found = false;
    if (trellis_file_read_all(h->log, 16 * 1024 * 1024, &buf, &len) != TRELLIS_OK)
        return false;
    found = strstr((const char *)buf, text) != NULL;
    trellis_file_buffer_free(buf, len);
    return found;
}
