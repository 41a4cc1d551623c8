#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "test_support.h"
#include "token_test_util.h"
#include "trellis/crypto.h"

void tb_reset(tb_t *t)
{
    t->n = 0;
}

void tb_raw(tb_t *t, const void *data, size_t len)
{
    assert_true(len <= sizeof(t->b) - t->n);
    if (len > 0)
        memcpy(t->b + t->n, data, len);
    t->n += len;
}

void tb_hexraw(tb_t *t, const char *hex)
{
    size_t len = strlen(hex);
    assert_int_equal(len % 2, 0);
    for (size_t i = 0; i < len; i += 2) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + i, "%2x", &v), 1);
        uint8_t byte = (uint8_t)v;
        tb_raw(t, &byte, 1);
    }
}

static void tb_head(tb_t *t, size_t n)
{
    assert_true(n > 0);
    t->n += n;
    assert_true(t->n <= sizeof(t->b));
}

void tb_uint(tb_t *t, uint64_t v)
{
    tb_head(t, cbor_encode_uint(v, t->b + t->n, sizeof(t->b) - t->n));
}

void tb_int(tb_t *t, int64_t v)
{
    if (v >= 0)
        tb_uint(t, (uint64_t)v);
    else
        tb_head(t, cbor_encode_negint((uint64_t)(-(v + 1)), t->b + t->n, sizeof(t->b) - t->n));
}

void tb_bstr(tb_t *t, const void *data, size_t len)
{
    tb_head(t, cbor_encode_bytestring_start(len, t->b + t->n, sizeof(t->b) - t->n));
    tb_raw(t, data, len);
}

void tb_bstr_fill(tb_t *t, uint8_t byte, size_t len)
{
    uint8_t tmp[512];
    assert_true(len <= sizeof(tmp));
    memset(tmp, byte, len);
    tb_bstr(t, tmp, len);
}

void tb_tstr(tb_t *t, const char *s)
{
    size_t len = strlen(s);
    tb_head(t, cbor_encode_string_start(len, t->b + t->n, sizeof(t->b) - t->n));
    tb_raw(t, s, len);
}

void tb_array(tb_t *t, size_t n)
{
    tb_head(t, cbor_encode_array_start(n, t->b + t->n, sizeof(t->b) - t->n));
}

void tb_map(tb_t *t, size_t n)
{
    tb_head(t, cbor_encode_map_start(n, t->b + t->n, sizeof(t->b) - t->n));
}

void tb_tag(tb_t *t, uint64_t tag)
{
    tb_head(t, cbor_encode_tag(tag, t->b + t->n, sizeof(t->b) - t->n));
}

static char *vector_path(const char *name)
{
    const char *src = getenv("TRELLIS_SOURCE_DIR");
    assert_non_null(src);
    static char path[4096];
    int n = snprintf(path, sizeof(path), "%s/tests/vectors/psa/%s", src, name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    return path;
}

size_t load_vector_hex(const char *name, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(vector_path(name), "r");
    assert_non_null(f);
    size_t n = 0;
    int hi = -1;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (isspace(c))
            continue;
        assert_true(isxdigit(c));
        int v = isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10);
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            buf[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    assert_int_equal(hi, -1);
    return n;
}

EVP_PKEY *load_vector_jwk(const char *name)
{
    FILE *f = fopen(vector_path(name), "r");
    assert_non_null(f);
    char text[2048];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    EVP_PKEY *key = NULL;
    trellis_reason_t reason = {{0}};
    assert_int_equal(trellis_p256_from_jwk(text, n, &key, &reason), TRELLIS_OK);
    assert_non_null(key);
    return key;
}

void sign_parts(EVP_PKEY *key, const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                size_t payload_len, uint8_t sig[64])
{
    tb_t tbs;
    tb_reset(&tbs);
    tb_array(&tbs, 4);
    tb_tstr(&tbs, "Signature1");
    tb_bstr(&tbs, prot, prot_len);
    tb_bstr(&tbs, NULL, 0);
    tb_bstr(&tbs, payload, payload_len);
    uint8_t digest[32];
    assert_int_equal(trellis_sha256(tbs.b, tbs.n, digest), TRELLIS_OK);
    assert_int_equal(trellis_p256_sign_digest(key, digest, sig), TRELLIS_OK);
}

void build_sign1(tb_t *out, EVP_PKEY *key, const uint8_t *prot, size_t prot_len,
                 const uint8_t *unprot, size_t unprot_len, const uint8_t *payload,
                 size_t payload_len)
{
    uint8_t sig[64];
    sign_parts(key, prot, prot_len, payload, payload_len, sig);
    tb_reset(out);
    tb_tag(out, 18);
    tb_array(out, 4);
    tb_bstr(out, prot, prot_len);
    tb_raw(out, unprot, unprot_len);
    tb_bstr(out, payload, payload_len);
    tb_bstr(out, sig, sizeof(sig));
}

int contains(const char *haystack, const char *needle)
{
    if (strstr(haystack, needle) != NULL)
        return 1;
    print_error("expected \"%s\" in \"%s\"\n", needle, haystack);
    return 0;
}
