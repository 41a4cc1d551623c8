/* The host names and addresses a server certificate is made for, from a --hosts list. */
#include <arpa/inet.h>
#include <string.h>

#include "trellis/x509.h"

/* RFC 1034 §3.5 preferred name syntax: labels of letters, digits and inner hyphens. */
static int dns_ok(const char *s)
{
    size_t label = 0, n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c == '-' && label > 0);
        if (!ok || ++label > 63)
            return 0;
    }
    return label > 0 && s[n - 1] != '-';
}

static int ip_ok(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

trellis_err_t trellis_x509_split_hosts(char *hosts, const char **dns, size_t *n_dns,
                                       const char **ips, size_t *n_ip, size_t max,
                                       trellis_reason_t *reason)
{
    if (hosts == NULL || dns == NULL || n_dns == NULL || ips == NULL || n_ip == NULL ||
        max > TRELLIS_X509_SANS_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--hosts: no list given");
    *n_dns = 0;
    *n_ip = 0;
    char *p = hosts;
    while (p != NULL && *p != '\0') {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0') {
            int ip = strchr(p, ':') != NULL || strspn(p, "0123456789.") == strlen(p);
            if (*n_dns + *n_ip >= max)
                return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                          "--hosts: more than %zu names", max);
            if (ip ? !ip_ok(p) : !dns_ok(p))
                return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG,
                                          "--hosts: '%.64s' is neither a host name nor an IP "
                                          "address",
                                          p);
            if (ip)
                ips[(*n_ip)++] = p;
            else
                dns[(*n_dns)++] = p;
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    if (*n_dns + *n_ip == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "--hosts: no name given");
    return TRELLIS_OK;
}
