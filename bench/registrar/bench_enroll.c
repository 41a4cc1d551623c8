/*
 * Registrar benchmark (bench/run-registrar, docs/benchmarks.md).
 *
 *   bench_enroll gen --key FACTORY_KEY.pem --factory F --owner O --batch B --devices N
 *                    --out MANIFEST --keys KEYS
 *       writes a signed manifest of N devices whose RoT keys are k0+1, k0+2, ... (k0 random:
 *       one point addition per device instead of a key generation), and KEYS, the hex of k0,
 *       so that the load generator can sign each device's evidence.
 *   bench_enroll run --ca TRUST.pem --port PORT --keys KEYS --first I --devices N
 *                    --concurrency C --seconds T [--retry] [--threads L] [--groups LIST]
 *                    [--verify full|cached] [--provider-decode]
 *       enrolls devices I, I+1, ... C at a time for T seconds (or until all N are done), each
 *       device as a real one does it: a fresh TCP connection and a full TLS 1.3 handshake (no
 *       resumption, nothing stored) verifying the registrar's certificate against the
 *       pinned CA (TRUST.pem), GET /v1/challenge, evidence signed by its RoT over
 *       SHA-256(challenge || CSR), POST /v1/enroll on the same connection, and a check that the
 *       returned certificate names the device and carries its operational key. The C devices
 *       are driven by L event loops (default: one per core), not a thread each. LIST is the
 *       key-share order offered (default X25519:P-256, the cheaper of the two for both sides on
 *       the machines measured). With --verify cached (the default), the registrar's certificate
 *       is path-validated (X509_verify_cert: pinned CA, validity, address) the first time and
 *       each later handshake's certificate is compared byte for byte with the one validated,
 *       as a TLS stack's verification cache does: every handshake still checks the server's
 *       CertificateVerify signature and Finished, so the registrar's work is the same, while
 *       the simulated devices, which share the servers' cores here, stop paying the same chain
 *       validation thousands of times; --verify full validates it in every handshake, as a
 *       lone device does. The devices read TLS records ahead (one read for what has arrived,
 *       not a header and a body each) and decode the registrar's P-256 key with libcrypto's
 *       built-in EC method instead of setting up OpenSSL 3.0's provider decoder chain for each
 *       certificate (ec_decode.c); --provider-decode keeps the latter. CSRs (one operational
 *       key per device) are made before the clock starts. With --retry, a device answered 429
 *       or 503, or whose connection is closed at once, backs off and tries again (a mass
 *       power-on). Prints JSON: enrollments per second, p50 / p99 latency (connect to
 *       certificate, retries included), the load generator's CPU per enrollment, retries,
 *       outcomes by status (1: 201 with a certificate the device cannot use; 2: a challenge
 *       answer it cannot read).
 *   bench_enroll ceiling --threads N --seconds T
 *       OpenSSL's P-256 sign and verify rates on N threads, and the enrollment ceiling they
 *       allow: one first-time enrollment costs, on the servers, three verifies (the CSR's
 *       self-signature, the evidence at the verifier, the verdict at the registrar) and two
 *       signs (the verdict, the certificate), so ceiling = 1 / (3 / verifies + 2 / signs).
 *       TLS handshakes are not in it: they are part of what the ratio measures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/asn1t.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "trellis/cose.h"
#include "trellis/crypto.h"
#include "trellis/csr.h"
#include "trellis/encoding.h"
#include "trellis/psa_token.h"

#include "ec_decode.h"

#define LAT_MAX (4u * 1024u * 1024u)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    }
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], name) == 0)
            return 1;
    }
    return 0;
}

/* ---- device keys: scalar k0 + index + 1 ---- */

static BIGNUM *load_base(const char *path)
{
    char hex[256];
    BIGNUM *k = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(hex, sizeof(hex), f) == NULL) {
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    fclose(f);
    hex[strcspn(hex, "\n")] = '\0';
    return BN_hex2bn(&k, hex) > 0 ? k : NULL;
}

/* The RoT key of device index: scalar base + index + 1 and its point. */
static EVP_PKEY *device_key(const BIGNUM *base, unsigned long index, uint8_t point[65])
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = g != NULL ? EC_POINT_new(g) : NULL;
    BIGNUM *k = BN_dup(base);
    BN_CTX *bn = BN_CTX_new();
    if (g == NULL || p == NULL || k == NULL || bn == NULL || !BN_add_word(k, index + 1) ||
        EC_POINT_mul(g, p, k, NULL, NULL, bn) != 1 ||
        EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, point, 65, bn) != 65)
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, k) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 65))
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
        key = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_CTX_free(bn);
    BN_clear_free(k);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    return key;
}

/* ---- gen ---- */

static int gen(int argc, char **argv)
{
    const char *key_path = arg(argc, argv, "--key"), *factory = arg(argc, argv, "--factory");
    const char *owner = arg(argc, argv, "--owner"), *batch = arg(argc, argv, "--batch");
    const char *n_text = arg(argc, argv, "--devices"), *out = arg(argc, argv, "--out");
    const char *keys = arg(argc, argv, "--keys");
    EVP_PKEY *fkey = NULL;
    if (key_path == NULL || factory == NULL || owner == NULL || batch == NULL || n_text == NULL ||
        out == NULL || keys == NULL ||
        trellis_p256_load_private_pem(key_path, &fkey) != TRELLIS_OK) {
        fprintf(stderr, "usage: bench_enroll gen --key KEY.pem --factory F --owner O --batch B "
                        "--devices N --out FILE --keys FILE\n");
        return 2;
    }
    unsigned long n = strtoul(n_text, NULL, 10);
    FILE *f = fopen(out, "w");
    FILE *kf = fopen(keys, "w");
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *p = EC_POINT_new(g);
    BN_CTX *bn = BN_CTX_new();
    BIGNUM *k = BN_new();
    char line[512], key_b64[100], id[33];
    uint8_t point[65], digest[32], sig[64];
    size_t len = 0;
    if (f == NULL || kf == NULL || md == NULL || p == NULL || bn == NULL || k == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        BN_rand(k, 200, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
        EC_POINT_mul(g, p, k, NULL, NULL, bn) != 1)
        return 1;
    char *hex = BN_bn2hex(k);
    fprintf(kf, "%s\n", hex);
    OPENSSL_free(hex);
    fclose(kf);
    /* docs/manifest-format.md: header, one record per line, trailer with the SHA-256 of every
     * line before it and the factory's signature over that digest. */
    int m = snprintf(line, sizeof(line),
                     "{\"trellis_manifest\":1,\"factory\":\"%s\",\"owner\":\"%s\",\"batch\":\"%s\","
                     "\"created\":\"2026-11-25T13:00:00Z\",\"count\":%lu}\n",
                     factory, owner, batch, n);
    fwrite(line, 1, (size_t)m, f);
    EVP_DigestUpdate(md, line, (size_t)m);
    for (unsigned long i = 0; i < n; i++) {
        if (EC_POINT_add(g, p, p, EC_GROUP_get0_generator(g), bn) != 1 ||
            EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, point, sizeof(point), bn) !=
                sizeof(point))
            return 1;
        trellis_sha256(point, sizeof(point), digest);
        trellis_hex_encode(digest, 16, id, sizeof(id), &len);
        trellis_b64url_encode(point, sizeof(point), key_b64, sizeof(key_b64), &len);
        m = snprintf(line, sizeof(line),
                     "{\"device_id\":\"%s\",\"rot_key\":\"%s\",\"model\":\"T-100\","
                     "\"serial\":\"%s-%08lu\"}\n",
                     id, key_b64, batch, i + 1);
        fwrite(line, 1, (size_t)m, f);
        EVP_DigestUpdate(md, line, (size_t)m);
    }
    unsigned int dl = 0;
    char dhex[65], sig_b64[100];
    EVP_DigestFinal_ex(md, digest, &dl);
    if (trellis_p256_sign_digest(fkey, digest, sig) != TRELLIS_OK)
        return 1;
    trellis_hex_encode(digest, 32, dhex, sizeof(dhex), &len);
    trellis_b64url_encode(sig, 64, sig_b64, sizeof(sig_b64), &len);
    fprintf(f, "{\"sha256\":\"%s\",\"signature\":\"%s\"}\n", dhex, sig_b64);
    fclose(f);
    BN_free(k);
    BN_CTX_free(bn);
    EC_POINT_free(p);
    EC_GROUP_free(g);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(fkey);
    return 0;
}

/* ---- run ---- */

/*
 * The devices are driven by a few event loops (one thread per core, each with its own epoll set
 * and its share of the concurrent devices) over non-blocking sockets, not by a thread per
 * device: the load generator shares the cores with the servers it measures, so whatever it
 * spends on scheduling and stacks is taken from them. What each device does is unchanged.
 */

#define RESP_MAX    16384 /* one HTTP response: the enroll answer is about 2 KiB */
#define REQ_MAX     4096
#define CSR_B64_MAX 700

typedef struct {
    EVP_PKEY *rot;
    uint8_t point[65];    /* the RoT key's */
    uint8_t op_point[65]; /* the operational key's, which the certificate must carry */
    uint8_t ueid[TRELLIS_PSA_UEID_LEN];
    char id[TRELLIS_PSA_DEVICE_ID_LEN + 1];
    uint8_t csr[512];
    size_t csr_len;
    char csr_b64[CSR_B64_MAX];
    size_t csr_b64_len;
} device_t;

/* Outcomes that are not HTTP statuses: 201 with a certificate the device cannot use, and a 200
 * challenge answer it cannot read. */
#define STATUS_BAD_CERT      1
#define STATUS_BAD_CHALLENGE 2

static struct {
    SSL_CTX *ctx;
    struct sockaddr_in addr;
    device_t *devices;
    unsigned long n;
    atomic_ulong next;
    atomic_int stop;    /* time is up: start no new device */
    atomic_int running; /* event loops still enrolling */
    int retry;          /* retry what the registrar says to retry */
    atomic_ulong retries;
    atomic_ulong ok, failed, statuses[600];
    double *lat; /* seconds, one per successful enrollment */
    atomic_ulong n_lat;
    trellis_psa_claims_t claims; /* what every device claims besides its nonce and UEID */
} run_state;

enum { S_IDLE, S_BACKOFF, S_CONNECT, S_HANDSHAKE, S_SEND, S_READ };

typedef struct {
    int state;
    int after_send; /* 0: the challenge is asked for, 1: the enrollment */
    int fd;
    SSL *ssl;
    const device_t *d;
    unsigned long index;
    double t0;   /* when the device started (retries included) */
    double wake; /* S_BACKOFF: when to try again */
    unsigned attempt;
    int last_status; /* of the attempt before a back-off */
    unsigned seed;
    char req[REQ_MAX];
    size_t req_len;
    char resp[RESP_MAX + 1];
    size_t resp_len;
} slot_t;

typedef struct {
    pthread_t thread;
    slot_t *slots;
    size_t n_slots;
    unsigned seed;
} loop_t;

static const char *find_header(const char *head, const char *end, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':')
            return p + 3 + nl;
    }
    return NULL;
}

/* 1 when resp holds a whole response (status and body set), 0 when more is needed, -1 when it
 * cannot be read. */
static int response_complete(slot_t *s, int *status, const char **body, size_t *body_len)
{
    s->resp[s->resp_len] = '\0';
    const char *end = strstr(s->resp, "\r\n\r\n");
    if (end == NULL)
        return s->resp_len >= RESP_MAX ? -1 : 0;
    if (strncmp(s->resp, "HTTP/1.", 7) != 0 || s->resp_len < 12)
        return -1;
    char *stop = NULL;
    long code = strtol(s->resp + 9, &stop, 10);
    if (stop != s->resp + 12 || code < 100 || code > 599)
        return -1;
    const char *cl = find_header(s->resp, end, "Content-Length");
    unsigned long len = 0;
    if (cl != NULL) {
        while (*cl == ' ')
            cl++;
        len = strtoul(cl, &stop, 10);
        if (stop == cl)
            return -1;
    }
    size_t head = (size_t)(end - s->resp) + 4;
    if (len > RESP_MAX - head)
        return -1;
    if (s->resp_len < head + len)
        return 0;
    s->resp[head + len] = '\0';
    *status = (int)code;
    *body = s->resp + head;
    *body_len = len;
    return 1;
}

/* The value of "name":"..." in a JSON object, JSON escapes undone, into out. */
static int json_string(const char *body, const char *name, char *out, size_t size, size_t *len)
{
    char key[40];
    int kl = snprintf(key, sizeof(key), "\"%s\":\"", name);
    const char *p = kl > 0 && (size_t)kl < sizeof(key) ? strstr(body, key) : NULL;
    size_t n = 0;
    if (p == NULL)
        return -1;
    for (p += kl; *p != '"'; p++) {
        char c = *p;
        if (c == '\0' || n + 1 >= size)
            return -1;
        if (c == '\\') {
            c = *++p;
            c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
            if (c == '\0' || c == 'u')
                return -1;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    *len = n;
    return 0;
}

/*
 * The returned leaf, read with templates that keep its SubjectPublicKeyInfo as encoded (RFC 5280
 * §4.1): OpenSSL 3.0's d2i_X509 also turns the key into an EVP_PKEY through its decoder framework,
 * about 0.2 ms on the machines measured, which a device checking its certificate does not need
 * (it compares the key with its own).
 */
typedef struct {
    X509_ALGOR *algorithm;
    ASN1_BIT_STRING *public_key;
} BE_SPKI;

typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *serial;
    X509_ALGOR *signature;
    X509_NAME *issuer;
    X509_VAL *validity;
    X509_NAME *subject;
    BE_SPKI *spki;
    ASN1_BIT_STRING *issuer_uid;
    ASN1_BIT_STRING *subject_uid;
    STACK_OF(X509_EXTENSION) * extensions;
} BE_TBS;

typedef struct {
    BE_TBS *tbs;
    X509_ALGOR *signature_algorithm;
    ASN1_BIT_STRING *signature;
} BE_CERT;

ASN1_SEQUENCE(BE_SPKI) =
    {
        ASN1_SIMPLE(BE_SPKI, algorithm, X509_ALGOR),
        ASN1_SIMPLE(BE_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(BE_SPKI)

        ASN1_SEQUENCE(BE_TBS) =
            {
                ASN1_EXP_OPT(BE_TBS, version, ASN1_INTEGER, 0),
                ASN1_SIMPLE(BE_TBS, serial, ASN1_INTEGER),
                ASN1_SIMPLE(BE_TBS, signature, X509_ALGOR),
                ASN1_SIMPLE(BE_TBS, issuer, X509_NAME),
                ASN1_SIMPLE(BE_TBS, validity, X509_VAL),
                ASN1_SIMPLE(BE_TBS, subject, X509_NAME),
                ASN1_SIMPLE(BE_TBS, spki, BE_SPKI),
                ASN1_IMP_OPT(BE_TBS, issuer_uid, ASN1_BIT_STRING, 1),
                ASN1_IMP_OPT(BE_TBS, subject_uid, ASN1_BIT_STRING, 2),
                ASN1_EXP_SEQUENCE_OF_OPT(BE_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(BE_TBS)

                ASN1_SEQUENCE(BE_CERT) =
                    {
                        ASN1_SIMPLE(BE_CERT, tbs, BE_TBS),
                        ASN1_SIMPLE(BE_CERT, signature_algorithm, X509_ALGOR),
                        ASN1_SIMPLE(BE_CERT, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(BE_CERT)

    /* The DER of the first certificate of a PEM chain (RFC 7468 §2: base64 between the
     * encapsulation boundaries, lines of 64 characters). */
    static int first_pem_der(const char *pem, uint8_t *der, size_t size, size_t *len)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    char b64[RESP_MAX];
    size_t n = 0, pad = 0;
    const char *p = strstr(pem, begin), *q = p != NULL ? strstr(p, end) : NULL;
    if (q == NULL)
        return -1;
    for (p += sizeof(begin) - 1; p < q; p++) {
        if (*p != '\n' && *p != '\r')
            b64[n++] = *p;
    }
    if (n == 0 || n % 4 != 0 || (n / 4) * 3 > size)
        return -1;
    pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
    int got = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n);
    if (got < 0 || (size_t)got < pad)
        return -1;
    *len = (size_t)got - pad;
    return 0;
}

/* What a device does with its answer: the leaf of the returned chain must name it and carry
 * the operational key its CSR asked for. */
static int certificate_ok(const slot_t *s, const char *body)
{
    char pem[RESP_MAX];
    uint8_t der[4096];
    size_t len = 0, der_len = 0;
    char cn[64];
    int ok = 0;
    if (json_string(body, "certificate", pem, sizeof(pem), &len) != 0 ||
        first_pem_der(pem, der, sizeof(der), &der_len) != 0)
        return 0;
    const unsigned char *p = der;
    BE_CERT *c = (BE_CERT *)ASN1_item_d2i(NULL, &p, (long)der_len, ASN1_ITEM_rptr(BE_CERT));
    if (c != NULL && p == der + der_len) {
        const ASN1_BIT_STRING *key = c->tbs->spki->public_key;
        ok = ASN1_STRING_length(key) == 65 &&
             memcmp(ASN1_STRING_get0_data(key), s->d->op_point, 65) == 0 &&
             X509_NAME_get_text_by_NID(c->tbs->subject, NID_commonName, cn, sizeof(cn)) ==
                 TRELLIS_PSA_DEVICE_ID_LEN &&
             strcmp(cn, s->d->id) == 0;
    }
    ASN1_item_free((ASN1_VALUE *)c, ASN1_ITEM_rptr(BE_CERT));
    ERR_clear_error();
    return ok;
}

/* The enroll body: the evidence, a PSA token signed by the RoT over
 * nonce = SHA-256(challenge || CSR). */
static int build_enroll(slot_t *s, const uint8_t *challenge, size_t challenge_len)
{
    const device_t *d = s->d;
    trellis_psa_claims_t cl = run_state.claims;
    trellis_signer_t signer;
    uint8_t ev[2048];
    size_t ev_len = 0, n = 0;
    char ev_b64[2800], ch_b64[128];

    trellis_sha256_two(challenge, challenge_len, d->csr, d->csr_len, cl.nonce);
    cl.nonce_len = 32;
    memcpy(cl.instance_id, d->ueid, sizeof(cl.instance_id));
    if (trellis_signer_from_pkey(d->rot, &signer) != TRELLIS_OK ||
        trellis_psa_token_encode(&cl, NULL, 0, &signer, ev, sizeof(ev), &ev_len, NULL) !=
            TRELLIS_OK ||
        trellis_b64url_encode(ev, ev_len, ev_b64, sizeof(ev_b64), &n) != TRELLIS_OK ||
        trellis_b64url_encode(challenge, challenge_len, ch_b64, sizeof(ch_b64), &n) != TRELLIS_OK)
        return -1;
    char body[REQ_MAX];
    int bl =
        snprintf(body, sizeof(body), "{\"csr\":\"%s\",\"evidence\":\"%s\",\"challenge\":\"%s\"}",
                 d->csr_b64, ev_b64, ch_b64);
    if (bl < 0 || (size_t)bl >= sizeof(body))
        return -1;
    int rl = snprintf(s->req, sizeof(s->req),
                      "POST /v1/enroll HTTP/1.1\r\nHost: registrar\r\nContent-Type: "
                      "application/json\r\nContent-Length: %d\r\n\r\n%s",
                      bl, body);
    if (rl < 0 || (size_t)rl >= sizeof(s->req))
        return -1;
    s->req_len = (size_t)rl;
    return 0;
}

static void slot_close(slot_t *s)
{
    if (s->ssl != NULL) {
        /* A polite close (close_notify), as a device ends its session; not waited for. */
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    ERR_clear_error();
}

static int retryable(int status)
{
    return status == 0 || status == 429 || status == 503;
}

/* A device told to come back later (429, 503, or the connection closed at once) waits and
 * tries again with a fresh challenge, as the device agent does: 50 ms doubling to 1 s, with
 * jitter so that a crowd spreads out. */
static double backoff_s(unsigned attempt, unsigned *seed)
{
    unsigned ms = attempt >= 5 ? 1000 : 50u << attempt;
    ms = ms / 2 + (unsigned)rand_r(seed) % (ms / 2 + 1);
    return (double)ms / 1e3;
}

/* The device is done: counted with the status of its last attempt. */
static void slot_finish(slot_t *s, int status)
{
    double dt = now_s() - s->t0;
    if (status >= 0 && status < 600)
        atomic_fetch_add(&run_state.statuses[status], 1);
    if (status == 201) {
        atomic_fetch_add(&run_state.ok, 1);
        unsigned long k = atomic_fetch_add(&run_state.n_lat, 1);
        if (k < LAT_MAX)
            run_state.lat[k] = dt;
    } else {
        atomic_fetch_add(&run_state.failed, 1);
    }
    s->state = S_IDLE;
}

/* The device's attempt ended with status (0: transport). */
static void slot_end(slot_t *s, int status)
{
    slot_close(s);
    if (run_state.retry && retryable(status) && !atomic_load(&run_state.stop)) {
        atomic_fetch_add(&run_state.retries, 1);
        s->wake = now_s() + backoff_s(s->attempt++, &s->seed);
        s->last_status = status;
        s->state = S_BACKOFF;
        return;
    }
    slot_finish(s, status);
}

/* Opens the device's connection; the TLS handshake follows once it is up. */
static void slot_connect(slot_t *s, int ep)
{
    int one = 1;
    s->resp_len = 0;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        slot_end(s, 0);
        return;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(s->fd, (const struct sockaddr *)&run_state.addr, sizeof(run_state.addr)) != 0 &&
        errno != EINPROGRESS) {
        slot_end(s, 0);
        return;
    }
    /* Edge-triggered, both directions, registered once: the socket reports when it is
     * connected (writable) and whenever data arrives, and the state machine always runs until
     * OpenSSL wants more, which is what edge triggering needs. */
    s->state = S_CONNECT;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
        slot_end(s, 0);
}

/* Takes the next device, or leaves the slot idle when none is left or time is up. */
static void slot_start(slot_t *s, int ep)
{
    if (atomic_load(&run_state.stop))
        return;
    unsigned long i = atomic_fetch_add(&run_state.next, 1);
    if (i >= run_state.n)
        return;
    s->index = i;
    s->d = &run_state.devices[i];
    s->attempt = 0;
    s->t0 = now_s();
    slot_connect(s, ep);
}

/* Advances the device's conversation as far as its socket allows. */
static void slot_step(slot_t *s)
{
    for (;;) {
        switch (s->state) {
        case S_CONNECT: {
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
                slot_end(s, 0);
                return;
            }
            s->ssl = SSL_new(run_state.ctx);
            if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
                slot_end(s, 0);
                return;
            }
            SSL_set_connect_state(s->ssl);
            s->state = S_HANDSHAKE;
            break;
        }
        case S_HANDSHAKE: {
            int rc = SSL_do_handshake(s->ssl);
            if (rc != 1) {
                int e = SSL_get_error(s->ssl, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    slot_end(s, 0);
                return;
            }
            int n = snprintf(s->req, sizeof(s->req),
                             "GET /v1/challenge HTTP/1.1\r\nHost: registrar\r\n\r\n");
            s->req_len = (size_t)n;
            s->after_send = 0;
            s->state = S_SEND;
            break;
        }
        case S_SEND: {
            int rc = SSL_write(s->ssl, s->req, (int)s->req_len);
            if (rc <= 0) {
                int e = SSL_get_error(s->ssl, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    slot_end(s, 0);
                return;
            }
            s->resp_len = 0;
            s->state = S_READ;
            break;
        }
        case S_READ: {
            int rc = SSL_read(s->ssl, s->resp + s->resp_len, (int)(RESP_MAX - s->resp_len));
            if (rc <= 0) {
                int e = SSL_get_error(s->ssl, rc);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                    slot_end(s, 0);
                return;
            }
            s->resp_len += (size_t)rc;
            int status = 0;
            const char *body = NULL;
            size_t body_len = 0;
            int done = response_complete(s, &status, &body, &body_len);
            if (done < 0) {
                slot_end(s, 0);
                return;
            }
            if (done == 0)
                break;
            if (s->after_send == 1) {
                slot_end(s, status == 201 && !certificate_ok(s, body) ? STATUS_BAD_CERT : status);
                return;
            }
            char text[128];
            uint8_t challenge[96];
            size_t tl = 0, cl = 0;
            if (status != 200) {
                slot_end(s, status);
                return;
            }
            if (json_string(body, "challenge", text, sizeof(text), &tl) != 0 ||
                trellis_b64url_decode(text, tl, challenge, sizeof(challenge), &cl) != TRELLIS_OK ||
                build_enroll(s, challenge, cl) != 0) {
                slot_end(s, STATUS_BAD_CHALLENGE);
                return;
            }
            s->after_send = 1;
            s->state = S_SEND;
            break;
        }
        default:
            return;
        }
    }
}

static void *loop_thread(void *arg)
{
    loop_t *l = arg;
    struct epoll_event evs[64];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        atomic_fetch_sub(&run_state.running, 1);
        return NULL;
    }
    for (size_t i = 0; i < l->n_slots; i++) {
        l->slots[i].fd = -1;
        l->slots[i].seed = l->seed + (unsigned)i;
        slot_start(&l->slots[i], ep);
    }
    for (;;) {
        /* Devices waiting out a back-off, and slots whose device is done, are looked at here;
         * everything else wakes on its socket. */
        double now = now_s(), next_wake = now + 0.02;
        size_t busy = 0;
        for (size_t i = 0; i < l->n_slots; i++) {
            slot_t *s = &l->slots[i];
            if (s->state == S_BACKOFF && atomic_load(&run_state.stop))
                slot_finish(s, s->last_status);
            if (s->state == S_BACKOFF && s->wake <= now)
                slot_connect(s, ep);
            if (s->state == S_IDLE)
                slot_start(s, ep);
            if (s->state == S_BACKOFF && s->wake < next_wake)
                next_wake = s->wake;
            busy += s->state != S_IDLE;
        }
        if (busy == 0)
            break;
        int ms = (int)((next_wake - now) * 1e3) + 1;
        int n = epoll_wait(ep, evs, 64, ms < 1 ? 1 : ms);
        for (int i = 0; i < n; i++) {
            slot_t *s = evs[i].data.ptr;
            slot_step(s);
            if (s->state == S_IDLE)
                slot_start(s, ep);
        }
    }
    close(ep);
    atomic_fetch_sub(&run_state.running, 1);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    const BIGNUM *base;
    unsigned long first, n;
    atomic_ulong next;
    atomic_int failed;
} prep_t;

/* The operational key as the uncompressed point its certificate will carry. */
static int op_point_of(const EVP_PKEY *op, uint8_t point[65])
{
    size_t len = 0;
    return EVP_PKEY_get_octet_string_param(op, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, 65,
                                           &len) == 1 &&
                   len == 65
               ? 0
               : -1;
}

static void *prep_thread(void *arg)
{
    prep_t *p = arg;
    for (;;) {
        unsigned long i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        device_t *d = &run_state.devices[i];
        EVP_PKEY *op = NULL;
        d->rot = device_key(p->base, p->first + i, d->point);
        if (d->rot == NULL || trellis_psa_device_id_from_point(d->point, d->id) != TRELLIS_OK ||
            trellis_psa_ueid_from_point(d->point, d->ueid) != TRELLIS_OK ||
            trellis_p256_generate(&op) != TRELLIS_OK || op_point_of(op, d->op_point) != 0 ||
            trellis_csr_build(op, d->id, d->csr, sizeof(d->csr), &d->csr_len) != TRELLIS_OK ||
            trellis_b64url_encode(d->csr, d->csr_len, d->csr_b64, sizeof(d->csr_b64),
                                  &d->csr_b64_len) != TRELLIS_OK)
            atomic_store(&p->failed, 1);
        EVP_PKEY_free(op);
    }
    return NULL;
}

static int number(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    if (text == NULL || text[0] == '\0')
        return -1;
    unsigned long v = strtoul(text, &end, 10);
    if (*end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/*
 * The devices' TLS: made once. TLS 1.3 only, the registrar's certificate verified against the
 * pinned CA and its SAN against the address dialled; no session cache, so nothing is ever
 * stored or resumed (SSL_OP_NO_TICKET too, though it only speaks for TLS 1.2: OpenSSL 3.0's
 * client always sends psk_key_exchange_modes, so a TLS 1.3 server that issues tickets still
 * sends them, and they are read and dropped). groups names the key share offered first, the
 * one the server takes.
 */
/* The certificate validated first (--verify cached), shared by the loops. */
static pthread_mutex_t verified_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char verified_der[8192];
static size_t verified_len;

static int verify_cached(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned char *der = NULL;
    int len = leaf != NULL ? i2d_X509(leaf, &der) : -1;
    int ok = 0;
    if (len > 0) {
        pthread_mutex_lock(&verified_lock);
        ok = verified_len == (size_t)len && memcmp(verified_der, der, (size_t)len) == 0;
        pthread_mutex_unlock(&verified_lock);
    }
    if (!ok) {
        ok = X509_verify_cert(xs) == 1;
        if (ok && len > 0 && (size_t)len <= sizeof(verified_der)) {
            pthread_mutex_lock(&verified_lock);
            memcpy(verified_der, der, (size_t)len);
            verified_len = (size_t)len;
            pthread_mutex_unlock(&verified_lock);
        }
    }
    OPENSSL_free(der);
    return ok;
}

static SSL_CTX *device_ctx(const char *ca, const char *groups, int cached)
{
    char list[128]; /* SSL_CTX_set1_groups_list takes a non-const string */
    int ll = snprintf(list, sizeof(list), "%s", groups);
    if (ll <= 0 || (size_t)ll >= sizeof(list))
        return NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
        SSL_CTX_set1_groups_list(ctx, list) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), "127.0.0.1") != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cached)
        SSL_CTX_set_cert_verify_callback(ctx, verify_cached, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

static int run(int argc, char **argv)
{
    const char *ca = arg(argc, argv, "--ca"), *port = arg(argc, argv, "--port");
    const char *keys = arg(argc, argv, "--keys"), *secs = arg(argc, argv, "--seconds");
    const char *groups = arg(argc, argv, "--groups");
    const char *verify = arg(argc, argv, "--verify");
    unsigned long i0 = 0, n = 0, conc = 0, port_n = 0, nloops = 0;
    BIGNUM *base = keys != NULL ? load_base(keys) : NULL;
    double seconds = secs != NULL ? strtod(secs, NULL) : 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (arg(argc, argv, "--threads") == NULL)
        nloops = cores < 1 ? 1 : cores > 64 ? 64 : (unsigned long)cores;
    if (ca == NULL || base == NULL || seconds <= 0 || number(port, 65535, &port_n) ||
        number(arg(argc, argv, "--first"), 100000000, &i0) ||
        number(arg(argc, argv, "--devices"), 10000000, &n) || n == 0 ||
        number(arg(argc, argv, "--concurrency"), 4096, &conc) || conc == 0 ||
        (nloops == 0 && (number(arg(argc, argv, "--threads"), 64, &nloops) || nloops == 0)) ||
        (verify != NULL && strcmp(verify, "full") != 0 && strcmp(verify, "cached") != 0)) {
        fprintf(stderr, "usage: bench_enroll run --ca TRUST.pem --port PORT --keys FILE --first I "
                        "--devices N --concurrency C --seconds T [--retry] [--threads N] "
                        "[--groups LIST] [--verify full|cached] [--provider-decode]\n");
        return 2;
    }
    if (nloops > conc)
        nloops = conc;
    run_state.retry = has_flag(argc, argv, "--retry");
    run_state.ctx = device_ctx(ca, groups != NULL ? groups : "X25519:P-256",
                               verify == NULL || strcmp(verify, "cached") == 0);
    run_state.addr.sin_family = AF_INET;
    run_state.addr.sin_port = htons((uint16_t)port_n);
    run_state.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    run_state.devices = calloc(n, sizeof(device_t));
    run_state.lat = calloc(LAT_MAX, sizeof(double));
    run_state.n = n;
    slot_t *slots = calloc(conc, sizeof(slot_t));
    loop_t *loops = calloc(nloops, sizeof(loop_t));
    if (run_state.ctx == NULL || run_state.devices == NULL || run_state.lat == NULL ||
        slots == NULL || loops == NULL)
        return 1;
    /* What every device claims, the same for all of them but the nonce and the UEID. */
    trellis_psa_claims_t *cl = &run_state.claims;
    trellis_psa_claims_init(cl);
    cl->has_instance_id = true;
    cl->has_implementation_id = true;
    memset(cl->implementation_id, 0x11, sizeof(cl->implementation_id));
    cl->has_client_id = true;
    cl->client_id = -1;
    cl->has_lifecycle = true;
    cl->lifecycle = TRELLIS_PSA_LIFECYCLE_SECURED;
    cl->boot_seed_len = 32;
    memset(cl->boot_seed, 0x22, 32);
    cl->sw_component_count = 1;
    cl->sw_components[0].measurement_value_len = 32;
    memset(cl->sw_components[0].measurement_value, 0x33, 32);
    /* Before the clock: every device's RoT key, its operational key and CSR, made on as many
     * threads as there are cores. */
    prep_t prep = {.base = base, .first = i0, .n = n, .failed = 0};
    atomic_init(&prep.next, 0);
    pthread_t pt[64];
    int np = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores;
    for (int i = 0; i < np; i++)
        pthread_create(&pt[i], NULL, prep_thread, &prep);
    for (int i = 0; i < np; i++)
        pthread_join(pt[i], NULL);
    if (atomic_load(&prep.failed))
        return 1;
    /* Only now that the keys and CSRs are made: as the default EC method it would also take
     * over key generation and import, which lib/crypto does through the providers (and which
     * fail through the legacy method). */
    if (!has_flag(argc, argv, "--provider-decode") && bench_ec_decode_install() != 0) {
        fprintf(stderr, "bench_enroll: cannot register the built-in EC key method\n");
        return 1;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s();
    atomic_store(&run_state.running, (int)nloops);
    for (unsigned long i = 0, given = 0; i < nloops; i++) {
        size_t share = conc / nloops + (i < conc % nloops ? 1 : 0);
        loops[i] =
            (loop_t){.slots = slots + given, .n_slots = share, .seed = (unsigned)(given + 1)};
        given += share;
        pthread_create(&loops[i].thread, NULL, loop_thread, &loops[i]);
    }
    while (now_s() - t0 < seconds && atomic_load(&run_state.running) > 0) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Time is up: devices already under way finish, no new one starts. */
    atomic_store(&run_state.stop, 1);
    for (unsigned long i = 0; i < nloops; i++)
        pthread_join(loops[i].thread, NULL);
    double dt = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    unsigned long ok = atomic_load(&run_state.ok), nl = atomic_load(&run_state.n_lat);
    if (nl > LAT_MAX)
        nl = LAT_MAX;
    qsort(run_state.lat, nl, sizeof(double), cmp_double);
    double p50 = nl > 0 ? run_state.lat[nl / 2] : 0,
           p99 = nl > 0 ? run_state.lat[nl * 99 / 100] : 0;
    printf("{\"concurrency\":%lu,\"threads\":%lu,\"seconds\":%.2f,\"enrollments\":%lu,"
           "\"per_second\":%.0f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"failed\":%lu,"
           "\"used_devices\":%lu,\"client_cpu_us\":%.0f,\"retries\":%lu,\"statuses\":{",
           conc, nloops, dt, ok, (double)ok / dt, p50 * 1e3, p99 * 1e3,
           atomic_load(&run_state.failed),
           atomic_load(&run_state.next) < n ? atomic_load(&run_state.next) : n,
           ok > 0 ? cpu * 1e6 / (double)ok : 0.0, atomic_load(&run_state.retries));
    int firstk = 1;
    for (int i = 0; i < 600; i++) {
        unsigned long c = atomic_load(&run_state.statuses[i]);
        if (c > 0) {
            printf("%s\"%d\":%lu", firstk ? "" : ",", i, c);
            firstk = 0;
        }
    }
    printf("}}\n");
    for (unsigned long i = 0; i < n; i++)
        EVP_PKEY_free(run_state.devices[i].rot);
    free(run_state.devices);
    free(run_state.lat);
    free(slots);
    free(loops);
    SSL_CTX_free(run_state.ctx);
    BN_free(base);
    return 0;
}

/* ---- ceiling ---- */

typedef struct {
    EVP_PKEY *key;
    int sign;
    double seconds;
    unsigned long ops;
} crypto_job_t;

static void *crypto_thread(void *arg)
{
    crypto_job_t *j = arg;
    uint8_t digest[32], sig[64];
    memset(digest, 0x5a, sizeof(digest));
    trellis_p256_sign_digest(j->key, digest, sig);
    double t0 = now_s();
    while (now_s() - t0 < j->seconds) {
        for (int i = 0; i < 64; i++) {
            if (j->sign)
                trellis_p256_sign_digest(j->key, digest, sig);
            else
                trellis_p256_verify_digest(j->key, digest, sig);
        }
        j->ops += 64;
    }
    j->seconds = now_s() - t0;
    return NULL;
}

/* Operations per second of one kind on n threads. */
static double crypto_rate(EVP_PKEY *key, int sign, unsigned long n, double seconds)
{
    pthread_t t[64];
    crypto_job_t j[64];
    double rate = 0;
    for (unsigned long i = 0; i < n; i++) {
        j[i] = (crypto_job_t){.key = key, .sign = sign, .seconds = seconds, .ops = 0};
        pthread_create(&t[i], NULL, crypto_thread, &j[i]);
    }
    for (unsigned long i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        rate += (double)j[i].ops / j[i].seconds;
    }
    return rate;
}

static int ceiling(int argc, char **argv)
{
    unsigned long threads = 0;
    const char *secs = arg(argc, argv, "--seconds");
    double seconds = secs != NULL ? strtod(secs, NULL) : 0;
    EVP_PKEY *key = NULL;
    if (number(arg(argc, argv, "--threads"), 64, &threads) || threads == 0 || seconds <= 0 ||
        trellis_p256_generate(&key) != TRELLIS_OK) {
        fprintf(stderr, "usage: bench_enroll ceiling --threads N --seconds T\n");
        return 2;
    }
    /* The bare operation: OpenSSL's EVP sign and verify over a digest, as Trellis calls it. */
    double signs = crypto_rate(key, 1, threads, seconds);
    double verifies = crypto_rate(key, 0, threads, seconds);
    double ceiling_rate = 1.0 / (3.0 / verifies + 2.0 / signs);
    printf("{\"threads\":%lu,\"signs_per_s\":%.0f,\"verifies_per_s\":%.0f,"
           "\"enrollment_ceiling_per_s\":%.0f}\n",
           threads, signs, verifies, ceiling_rate);
    EVP_PKEY_free(key);
    return 0;
}

int main(int argc, char **argv)
{
    /* A registrar that closes a connection at once (over its limit) must not kill the crowd. */
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return gen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "ceiling") == 0)
        return ceiling(argc, argv);
    fprintf(stderr, "usage: bench_enroll gen|run|ceiling ... (see the comment at the top)\n");
    return 2;
}
