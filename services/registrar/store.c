/* Backend-independent parts of the registrar store (include/trellis/registrar_store.h). */
#include <stdlib.h>
#include <string.h>

#include "trellis/registrar_store.h"

void trellis_rstore_close(trellis_rstore_t *store)
{
    if (store == NULL)
        return;
    if (store->close != NULL)
        store->close(store->ctx);
    free(store);
}

int trellis_rstore_hex32_valid(const char *s)
{
    if (s == NULL)
        return 0;
    for (size_t i = 0; i < 32; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[32] == '\0';
}

static const struct {
    trellis_crl_reason_t code;
    const char *name;
} REASONS[] = {
    {TRELLIS_CRL_REASON_UNSPECIFIED, "unspecified"},
    {TRELLIS_CRL_REASON_KEY_COMPROMISE, "keyCompromise"},
    {TRELLIS_CRL_REASON_AFFILIATION_CHANGED, "affiliationChanged"},
    {TRELLIS_CRL_REASON_SUPERSEDED, "superseded"},
    {TRELLIS_CRL_REASON_CESSATION_OF_OPERATION, "cessationOfOperation"},
    {TRELLIS_CRL_REASON_PRIVILEGE_WITHDRAWN, "privilegeWithdrawn"},
};

#define N_REASONS (sizeof(REASONS) / sizeof(REASONS[0]))

const char *trellis_crl_reason_name(trellis_crl_reason_t code)
{
    for (size_t i = 0; i < N_REASONS; i++) {
        if (REASONS[i].code == code)
            return REASONS[i].name;
    }
    return "unspecified";
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Compares text with name ignoring case and any '-' or '_' in text ("key-compromise"). */
static int same_words(const char *text, const char *name)
{
    const char *t = text;
    const char *n = name;
    for (;;) {
        while (*t == '-' || *t == '_')
            t++;
        if (*t == '\0' || *n == '\0')
            return *t == '\0' && *n == '\0';
        if (lower(*t) != lower(*n))
            return 0;
        t++;
        n++;
    }
}

trellis_err_t trellis_crl_reason_parse(const char *text, trellis_crl_reason_t *out)
{
    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = TRELLIS_CRL_REASON_UNSPECIFIED;
    if (text == NULL || text[0] == '\0' || strlen(text) > 64)
        return TRELLIS_ERR_NOT_FOUND;
    for (size_t i = 0; i < N_REASONS; i++) {
        if (same_words(text, REASONS[i].name)) {
            *out = REASONS[i].code;
            return TRELLIS_OK;
        }
    }
    return TRELLIS_ERR_NOT_FOUND;
}
