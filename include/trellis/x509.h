/*
 * X.509 helpers (OpenSSL 3): issue certificates from a small profile, write and read PEM, and
 * read the identity out of a peer certificate.
 *
 * A certificate is described by a trellis_x509_profile_t (what it is for, who it names, how long
 * it lives, which subject alternative names it carries) and issued by trellis_x509_issue, which
 * always produces the same well-formed shape: X.509 v3, a 16-byte random positive serial, a
 * SHA-256 signature (ecdsa-with-SHA256 with the P-256 keys Trellis uses), subjectKeyIdentifier
 * and authorityKeyIdentifier, and the basicConstraints / keyUsage / extendedKeyUsage that fit the
 * kind (RFC 5280 §4.2.1). Nothing is copied from anywhere else, so a caller cannot produce a
 * certificate with a surprising extension by accident.
 *
 * Objects are plain OpenSSL X509 / EVP_PKEY owned by the caller (X509_free, EVP_PKEY_free).
 * Private keys are written mode 0600 through an atomic replace and are never logged.
 */
#ifndef TRELLIS_X509_H
#define TRELLIS_X509_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "trellis/error.h"

/* What a certificate is for; decides its extensions (RFC 5280 §4.2.1.3, §4.2.1.9, §4.2.1.12). */
typedef enum {
    /* basicConstraints CA:TRUE (critical, pathLenConstraint if path_len >= 0), keyUsage
     * keyCertSign | cRLSign (critical). */
    TRELLIS_X509_CA = 1,
    /* basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
     * extendedKeyUsage serverAuth. Needs at least one DNS name or IP address. */
    TRELLIS_X509_SERVER = 2,
    /* basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
     * extendedKeyUsage clientAuth. */
    TRELLIS_X509_CLIENT = 3,
} trellis_x509_kind_t;

/* Hard limits of a profile. */
#define TRELLIS_X509_NAME_MAX   64 /* characters of CN and O (RFC 5280 ub-common-name) */
#define TRELLIS_X509_SANS_MAX   16 /* DNS names + IP addresses + URIs together */
#define TRELLIS_X509_DAYS_MAX   36500
#define TRELLIS_X509_URI_MAX    256
#define TRELLIS_X509_PEM_MAX    (256 * 1024) /* largest PEM file the loaders read */
#define TRELLIS_X509_CHAIN_MAX  8            /* certificates in one chain file */
#define TRELLIS_X509_BACKDATE_S 300          /* notBefore = now - 5 minutes, for clock skew */

typedef struct {
    trellis_x509_kind_t kind;
    /* Subject CN: required, 1..TRELLIS_X509_NAME_MAX printable characters. */
    const char *common_name;
    /* Subject O: optional (NULL for none), same limits as common_name. */
    const char *organization;
    /* Validity in days from now (backdated by TRELLIS_X509_BACKDATE_S): 1..TRELLIS_X509_DAYS_MAX.
     */
    unsigned days;
    /* CA only: pathLenConstraint; -1 for none. Ignored for leaves. */
    int path_len;
    /* Subject alternative names (RFC 5280 §4.2.1.6). Arrays may be NULL when their count is 0.
     * IP addresses are textual IPv4 or IPv6 ("127.0.0.1", "::1"). */
    const char *const *dns_names;
    size_t n_dns;
    const char *const *ip_addrs;
    size_t n_ip;
    const char *const *uris;
    size_t n_uri;
} trellis_x509_profile_t;

/*
 * Issues a certificate for subject_key (only its public half is used) as described by profile.
 *
 * issuer_cert NULL makes a self-signed certificate: issuer_key must then be the private half of
 * subject_key, and the subject is its own issuer. Otherwise the issuer name and the authority key
 * identifier come from issuer_cert, which must be a CA certificate whose public key matches
 * issuer_key, and the validity is cut so it never outlives the issuer.
 *
 * Errors: TRELLIS_ERR_INVALID_ARG (NULL argument, profile outside its limits, a SAN that does
 * not parse, a SERVER profile without DNS or IP name, issuer not a CA or key mismatch, with the
 * precise cause in reason), TRELLIS_ERR_CRYPTO (OpenSSL failure), TRELLIS_ERR_NOMEM. On success
 * *out_cert is a new X509 the caller frees; on failure it is NULL.
 */
trellis_err_t trellis_x509_issue(const trellis_x509_profile_t *profile, EVP_PKEY *subject_key,
                                 const X509 *issuer_cert, EVP_PKEY *issuer_key, X509 **out_cert,
                                 trellis_reason_t *reason);

/*
 * Splits a --hosts list such as "localhost,127.0.0.1,::1" in place (commas become NULs) into DNS
 * names and IP addresses for a server profile: an entry with ':' or of digits and dots only is an
 * address and must parse as IPv4 or IPv6; any other must be a host name in RFC 1034 §3.5's
 * preferred syntax. dns and ips each hold max entries (at most TRELLIS_X509_SANS_MAX in all);
 * empty entries are skipped. Errors: TRELLIS_ERR_INVALID_ARG (an entry of neither kind, more than
 * max names, none at all; the reason quotes the entry, cut short), and on NULL arguments.
 */
trellis_err_t trellis_x509_split_hosts(char *hosts, const char **dns, size_t *n_dns,
                                       const char **ips, size_t *n_ip, size_t max,
                                       trellis_reason_t *reason);

/*
 * Writes certs[0..n-1] as concatenated PEM to path, mode 0644, atomically (leaf first, then its
 * issuers, as TLS sends them). n must be 1..TRELLIS_X509_CHAIN_MAX.
 * Errors: TRELLIS_ERR_INVALID_ARG, TRELLIS_ERR_CRYPTO, TRELLIS_ERR_IO.
 */
trellis_err_t trellis_x509_save_chain_pem(const char *path, X509 *const *certs, size_t n);

/*
 * Writes a private key followed by a certificate chain to path as one PEM file, mode 0600,
 * atomically: the "bundle" a TLS client or server loads as both its key and its certificate.
 * The temporary PEM text is cleansed before it is released.
 */
trellis_err_t trellis_x509_save_bundle_pem(const char *path, const EVP_PKEY *key,
                                           X509 *const *certs, size_t n);

/*
 * Reads the certificates of a PEM file (at most TRELLIS_X509_CHAIN_MAX, file at most
 * TRELLIS_X509_PEM_MAX bytes) into certs[0..*n_out-1], skipping any private key block.
 * Errors: TRELLIS_ERR_NOT_FOUND (no file), TRELLIS_ERR_TOO_LARGE, TRELLIS_ERR_PARSE (no
 * certificate, or a certificate that does not parse), TRELLIS_ERR_IO. On failure nothing is left
 * in certs and *n_out is 0.
 */
trellis_err_t trellis_x509_load_chain_pem(const char *path, X509 **certs, size_t max,
                                          size_t *n_out);

/* Reads the first certificate of a PEM file. Same errors as trellis_x509_load_chain_pem. */
trellis_err_t trellis_x509_load_pem(const char *path, X509 **out_cert);

/*
 * Copies the subject's common name into out (NUL-terminated). Fails closed on anything a peer
 * could use to confuse a name check: no CN, more than one CN, an embedded NUL, a control
 * character, or more than TRELLIS_X509_NAME_MAX bytes (TRELLIS_ERR_PARSE).
 * TRELLIS_ERR_BUFFER_TOO_SMALL when out cannot hold it (*out_len then says the size needed
 * without the NUL).
 */
trellis_err_t trellis_x509_subject_cn(const X509 *cert, char *out, size_t out_size,
                                      size_t *out_len);

/* SHA-256 over the DER encoding of the certificate (its usual "fingerprint"). */
trellis_err_t trellis_x509_fingerprint(const X509 *cert, uint8_t out[static 32]);

/* notAfter as seconds since the epoch. */
trellis_err_t trellis_x509_not_after(const X509 *cert, time_t *out);

#endif /* TRELLIS_X509_H */
