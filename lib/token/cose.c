/*
 * COSE_Sign1 with ES256: an allocation-free encoder and a strict decoder (include/trellis/cose.h
 * has the contract and the list of rejections).
 */
#include <inttypes.h>
#include <string.h>

#include "token_internal.h"
#include "trellis/cose.h"
#include "trellis/crypto.h"

/* The protected header Trellis emits: the map {1: -7} (alg: ES256), RFC 9052 §3.1. */
static const uint8_t protected_es256[] = {0xa1, 0x01, 0x26};

/* Header parameter labels (RFC 9052 §3.1). */
#define LABEL_ALG  1
#define LABEL_CRIT 2
#define LABEL_KID  4

/* Most header parameters one map may carry; real tokens use one to three. */
#define MAX_HEADER_LABELS 16

/* Sig_structure = ["Signature1", body_protected, external_aad, payload] (RFC 9052 §4.4): the
 * array head and the context string "Signature1" as CBOR. */
static const uint8_t sig1_prefix[] = {0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'};

/* Room for the Sig_structure up to the payload content: prefix, protected header with its head,
 * the empty external_aad and the payload head. */
#define TBS_PREFIX_MAX (sizeof(sig1_prefix) + 9 + TRELLIS_COSE_PROTECTED_MAX + 1 + 9)

const char *trellis_cose_alg_name(int64_t alg)
{
    /* IANA COSE Algorithms registry: the ones a token in the wild may carry. */
    switch (alg) {
    case -7:
        return "ES256";
    case -35:
        return "ES384";
    case -36:
        return "ES512";
    case -8:
        return "EdDSA";
    case -37:
        return "PS256";
    case -38:
        return "PS384";
    case -39:
        return "PS512";
    case -257:
        return "RS256";
    case -47:
        return "ES256K";
    case 5:
        return "HMAC 256/256";
    case 6:
        return "HMAC 384/384";
    case 7:
        return "HMAC 512/512";
    default:
        return "unregistered";
    }
}

static trellis_err_t pkey_sign_digest(void *ctx, const uint8_t digest[32], uint8_t sig[64])
{
    return trellis_p256_sign_digest(ctx, digest, sig);
}

trellis_err_t trellis_signer_from_pkey(EVP_PKEY *key, trellis_signer_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (key == NULL || out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    out->version = TRELLIS_SIGNER_VERSION;
    out->ctx = key;
    out->sign_digest = pkey_sign_digest;
    return TRELLIS_OK;
}

/* Writes the COSE_Sign1 up to and including the payload head. */
static void write_prefix(tr__cbor_writer_t *w, size_t payload_len, const uint8_t *kid,
                         size_t kid_len)
{
    /* RFC 9052 §4.2: COSE_Sign1_Tagged = #6.18([protected: bstr .cbor header_map,
     * unprotected: header_map, payload: bstr / nil, signature: bstr]). */
    tr__cbor_put_tag(w, TRELLIS_COSE_TAG_SIGN1);
    tr__cbor_put_array(w, 4);
    tr__cbor_put_bstr(w, protected_es256, sizeof(protected_es256));
    if (kid != NULL) {
        tr__cbor_put_map(w, 1);
        tr__cbor_put_uint(w, LABEL_KID);
        tr__cbor_put_bstr(w, kid, kid_len);
    } else {
        tr__cbor_put_map(w, 0);
    }
    tr__cbor_put_bstr_head(w, payload_len);
}

trellis_err_t tr__cose_sign1_layout(size_t payload_len, const uint8_t *kid, size_t kid_len,
                                    uint8_t *buf, size_t buf_size, size_t *payload_off,
                                    size_t *total_len)
{
    tr__cbor_writer_t w;
    tr__cbor_writer_init(&w, NULL, 0);
    write_prefix(&w, payload_len, kid, kid_len);
    *payload_off = w.pos;
    *total_len =
        w.pos + payload_len + tr__cbor_bstr_head_len(TRELLIS_COSE_SIG_LEN) + TRELLIS_COSE_SIG_LEN;
    if (buf == NULL || buf_size < *total_len)
        return TRELLIS_ERR_BUFFER_TOO_SMALL;
    tr__cbor_writer_init(&w, buf, buf_size);
    write_prefix(&w, payload_len, kid, kid_len);
    return w.overflow ? TRELLIS_ERR_INTERNAL : TRELLIS_OK;
}

trellis_err_t tr__cose_sign1_finish(uint8_t *buf, size_t total_len, size_t payload_off,
                                    size_t payload_len, const trellis_signer_t *signer)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t tbs_prefix[sizeof(sig1_prefix) + 1 + sizeof(protected_es256) + 1];
    uint8_t digest[TRELLIS_SHA256_LEN] = {0};
    uint8_t sig[TRELLIS_COSE_SIG_LEN] = {0};
    size_t head_len = tr__cbor_bstr_head_len(payload_len);

    /* Sig_structure (RFC 9052 §4.4): ["Signature1", << {1: -7} >>, h'', payload]. The payload
     * byte string, head included, already sits in buf, so it is hashed where it lies. */
    size_t n = 0;
    memcpy(tbs_prefix, sig1_prefix, sizeof(sig1_prefix));
    n += sizeof(sig1_prefix);
    tbs_prefix[n++] = (uint8_t)(0x40 + sizeof(protected_es256));
    memcpy(tbs_prefix + n, protected_es256, sizeof(protected_es256));
    n += sizeof(protected_es256);
    tbs_prefix[n++] = 0x40; /* external_aad: empty byte string */
    err = trellis_sha256_two(tbs_prefix, n, buf + payload_off - head_len, head_len + payload_len,
                             digest);
    if (err != TRELLIS_OK)
        goto out;
    err = signer->sign_digest(signer->ctx, digest, sig);
    if (err != TRELLIS_OK)
        goto out;
    tr__cbor_writer_t w;
    tr__cbor_writer_init(&w, buf + payload_off + payload_len,
                         total_len - payload_off - payload_len);
    tr__cbor_put_bstr(&w, sig, sizeof(sig));
    err = w.overflow ? TRELLIS_ERR_INTERNAL : TRELLIS_OK;
out:
    return err;
}

static trellis_err_t check_signer(const trellis_signer_t *signer)
{
    if (signer == NULL || signer->version != TRELLIS_SIGNER_VERSION || signer->sign_digest == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    return TRELLIS_OK;
}

trellis_err_t trellis_cose_sign1_encode(const uint8_t *payload, size_t payload_len,
                                        const uint8_t *kid, size_t kid_len,
                                        const trellis_signer_t *signer, uint8_t *buf,
                                        size_t buf_size, size_t *out_len)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t payload_off = 0;
    size_t total = 0;

    if (out_len == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out_len = 0;
    err = check_signer(signer);
    if (err != TRELLIS_OK)
        goto out;
    err = TRELLIS_ERR_INVALID_ARG;
    if ((payload == NULL && payload_len > 0) || payload_len > TRELLIS_COSE_MAX_TOKEN)
        goto out;
    if (kid != NULL && (kid_len == 0 || kid_len > TRELLIS_COSE_KID_MAX))
        goto out;
    err = tr__cose_sign1_layout(payload_len, kid, kid_len, buf, buf_size, &payload_off, &total);
    if (err == TRELLIS_ERR_BUFFER_TOO_SMALL)
        *out_len = total;
    if (err != TRELLIS_OK)
        goto out;
    if (payload_len > 0)
        memmove(buf + payload_off, payload, payload_len);
    err = tr__cose_sign1_finish(buf, total, payload_off, payload_len, signer);
    if (err != TRELLIS_OK)
        goto out;
    *out_len = total;
out:
    return err;
}

/* A header label as read, for the duplicate and both-maps checks. */
struct labels {
    tr__cbor_key_t key[MAX_HEADER_LABELS];
    size_t n;
};

/* Reads one header label (int or text, RFC 9052 §3) and refuses duplicates within its map. */
static trellis_err_t read_label(tr__cbor_reader_t *r, struct labels *seen, tr__cbor_key_t *label,
                                trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_UINT && it.kind != TR__CBOR_NEGINT && it.kind != TR__CBOR_TSTR)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: label at offset %zu is neither an integer nor a text "
                                  "string",
                                  r->what, it.offset);
    label->kind = it.kind;
    label->val = it.val;
    label->data = it.data;
    label->len = it.len;
    for (size_t i = 0; i < seen->n; i++) {
        if (tr__cbor_key_equal(&seen->key[i], label)) {
            char text[48];
            tr__cbor_key_describe(label, text, sizeof(text));
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                      "%s: label %s appears twice (RFC 9052 section 3)", r->what,
                                      text);
        }
    }
    if (seen->n == MAX_HEADER_LABELS)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: more than %d header parameters", r->what, MAX_HEADER_LABELS);
    seen->key[seen->n++] = *label;
    return TRELLIS_OK;
}

static bool label_is_int(const tr__cbor_key_t *label, int64_t v)
{
    return v >= 0 ? (label->kind == TR__CBOR_UINT && label->val == (uint64_t)v)
                  : (label->kind == TR__CBOR_NEGINT && label->val == (uint64_t)(-(v + 1)));
}

/* What the protected header said about the algorithm. */
struct alg_info {
    bool present;
    bool is_int;
    int64_t value;
};

static trellis_err_t read_crit(tr__cbor_reader_t *r, trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    /* RFC 9052 §3.1: crit is an array of at least one label. */
    if (it.kind != TR__CBOR_ARRAY || it.val == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "%s: crit (label 2) must be a non-empty array of labels",
                                  r->what);
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_item_t el;
        err = tr__cbor_read(r, &el, reason);
        if (err != TRELLIS_OK)
            return err;
        if (el.kind != TR__CBOR_UINT && el.kind != TR__CBOR_NEGINT && el.kind != TR__CBOR_TSTR)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                      "%s: crit (label 2) element %" PRIu64 " is not a label",
                                      r->what, i);
        tr__cbor_key_t label = {.kind = el.kind, .val = el.val, .data = el.data, .len = el.len};
        /* Trellis processes alg and kid; any other critical parameter would change how the
         * token must be read, so refusing it is the only safe answer. */
        if (!label_is_int(&label, LABEL_ALG) && !label_is_int(&label, LABEL_KID)) {
            char text[48];
            tr__cbor_key_describe(&label, text, sizeof(text));
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                      "%s: crit (label 2) lists label %s, which Trellis does not "
                                      "understand",
                                      r->what, text);
        }
    }
    return TRELLIS_OK;
}

/* Parses the serialized protected header map (RFC 9052 §3). */
static trellis_err_t parse_protected(const uint8_t *data, size_t len, struct labels *seen,
                                     struct alg_info *alg, trellis_reason_t *reason)
{
    tr__cbor_reader_t r;
    tr__cbor_item_t it;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    /* A zero-length protected header stands for an empty map (RFC 9052 §3), which lacks alg. */
    if (len == 0)
        return TRELLIS_OK;
    if (len > TRELLIS_COSE_PROTECTED_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "protected header is %zu bytes, more than the %d accepted", len,
                                  TRELLIS_COSE_PROTECTED_MAX);
    tr__cbor_reader_init(&r, data, len, "protected header");
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_MAP)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "protected header does not hold a CBOR map");
    if (it.val > MAX_HEADER_LABELS)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "protected header: more than %d header parameters",
                                  MAX_HEADER_LABELS);
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_key_t label;
        err = read_label(&r, seen, &label, reason);
        if (err != TRELLIS_OK)
            return err;
        if (label_is_int(&label, LABEL_ALG)) {
            tr__cbor_item_t v;
            err = tr__cbor_read(&r, &v, reason);
            if (err != TRELLIS_OK)
                return err;
            alg->present = true;
            if (tr__cbor_to_int64(&v, &alg->value)) {
                alg->is_int = true;
            } else if (v.kind == TR__CBOR_TSTR) {
                alg->is_int = false;
            } else {
                return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                          "protected header: alg (label 1) is neither an "
                                          "integer nor a text string");
            }
        } else if (label_is_int(&label, LABEL_CRIT)) {
            err = read_crit(&r, reason);
            if (err != TRELLIS_OK)
                return err;
        } else {
            tr__cbor_item_t v;
            err = tr__cbor_read(&r, &v, reason);
            if (err != TRELLIS_OK)
                return err;
            err = tr__cbor_skip(&r, &v, 2, reason);
            if (err != TRELLIS_OK)
                return err;
        }
    }
    if (r.pos != len)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "protected header: %zu bytes after the header map", len - r.pos);
    return TRELLIS_OK;
}

/* Parses the unprotected header map, refusing labels the protected header already has. */
static trellis_err_t parse_unprotected(tr__cbor_reader_t *r, const struct labels *prot,
                                       trellis_cose_sign1_t *out, trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    struct labels seen = {.n = 0};
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_MAP)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "COSE_Sign1: unprotected header (element 2) is not a map");
    if (it.val > MAX_HEADER_LABELS)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "unprotected header: more than %d header parameters",
                                  MAX_HEADER_LABELS);
    const char *saved_what = r->what;
    r->what = "unprotected header";
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_key_t label;
        err = read_label(r, &seen, &label, reason);
        if (err != TRELLIS_OK)
            goto out;
        for (size_t k = 0; k < prot->n; k++) {
            if (tr__cbor_key_equal(&prot->key[k], &label)) {
                char text[48];
                tr__cbor_key_describe(&label, text, sizeof(text));
                err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                         "label %s is in both the protected and the unprotected "
                                         "header (RFC 9052 section 3)",
                                         text);
                goto out;
            }
        }
        tr__cbor_item_t v;
        err = tr__cbor_read(r, &v, reason);
        if (err != TRELLIS_OK)
            goto out;
        if (label_is_int(&label, LABEL_ALG)) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                     "alg (label 1) is in the unprotected header; it must be "
                                     "protected");
            goto out;
        }
        if (label_is_int(&label, LABEL_CRIT)) {
            err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                     "crit (label 2) is in the unprotected header; RFC 9052 "
                                     "section 3.1 requires it protected");
            goto out;
        }
        if (label_is_int(&label, LABEL_KID)) {
            if (v.kind != TR__CBOR_BSTR || v.len == 0 || v.len > TRELLIS_COSE_KID_MAX) {
                err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                         "unprotected header: kid (label 4) must be a byte string "
                                         "of 1 to %d bytes",
                                         TRELLIS_COSE_KID_MAX);
                goto out;
            }
            out->kid = v.data;
            out->kid_len = v.len;
            continue;
        }
        err = tr__cbor_skip(r, &v, 2, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    err = TRELLIS_OK;
out:
    r->what = saved_what;
    return err;
}

static const char *kind_name(const tr__cbor_item_t *it)
{
    switch (it->kind) {
    case TR__CBOR_UINT:
    case TR__CBOR_NEGINT:
        return "an integer";
    case TR__CBOR_BSTR:
        return "a byte string";
    case TR__CBOR_TSTR:
        return "a text string";
    case TR__CBOR_ARRAY:
        return "an array";
    case TR__CBOR_MAP:
        return "a map";
    case TR__CBOR_TAG:
        return "a tag";
    case TR__CBOR_SIMPLE:
        return it->val == 22 ? "nil" : "a simple value";
    case TR__CBOR_FLOAT:
        return "a float";
    }
    return "an unknown item";
}

trellis_err_t trellis_cose_sign1_decode(const uint8_t *buf, size_t len, trellis_cose_sign1_t *out,
                                        trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_cose_sign1_t msg;
    struct labels prot = {.n = 0};
    struct alg_info alg = {.present = false, .is_int = false, .value = 0};
    tr__cbor_reader_t r;
    tr__cbor_item_t it;

    memset(&msg, 0, sizeof(msg));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    trellis_reason_clear(reason);
    if (buf == NULL && len > 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no input buffer");
        goto out;
    }
    if (len == 0) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED, "empty input");
        goto out;
    }
    if (len > TRELLIS_COSE_MAX_TOKEN) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "token is %zu bytes, more than the %d accepted", len,
                                 TRELLIS_COSE_MAX_TOKEN);
        goto out;
    }
    tr__cbor_reader_init(&r, buf, len, "COSE_Sign1");

    /* RFC 9783 §5.1.1: "the signature structure MUST be a tagged (18) COSE_Sign1". */
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (it.kind != TR__CBOR_TAG) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                 "not a tagged COSE_Sign1: the input starts with %s, not tag 18 "
                                 "(RFC 9783 section 5.1.1)",
                                 kind_name(&it));
        goto out;
    }
    if (it.val == 17) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                 "tag 17 (COSE_Mac0): MAC-protected tokens are not accepted, only "
                                 "COSE_Sign1 with ES256");
        goto out;
    }
    if (it.val != TRELLIS_COSE_TAG_SIGN1) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                 "tag %" PRIu64 " where tag 18 (COSE_Sign1) is required%s", it.val,
                                 it.val == 61 ? " (PSA tokens do not use the CWT tag 61)" : "");
        goto out;
    }
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (it.kind != TR__CBOR_ARRAY || it.val != 4) {
        err = it.kind == TR__CBOR_ARRAY
                  ? trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                       "COSE_Sign1 is an array of %" PRIu64 " items, not 4", it.val)
                  : trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                       "tag 18 wraps %s, not the COSE_Sign1 array", kind_name(&it));
        goto out;
    }

    /* protected: bstr .cbor header_map (RFC 9052 §3) */
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (it.kind != TR__CBOR_BSTR) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                 "COSE_Sign1: protected header (element 1) is %s, not a byte "
                                 "string",
                                 kind_name(&it));
        goto out;
    }
    msg.protected_hdr = it.data;
    msg.protected_len = it.len;
    err = parse_protected(it.data, it.len, &prot, &alg, reason);
    if (err != TRELLIS_OK)
        goto out;

    err = parse_unprotected(&r, &prot, &msg, reason);
    if (err != TRELLIS_OK)
        goto out;

    /* The algorithm is settled before the payload and signature are looked at, so a token made
     * with another algorithm is reported as such and not as a wrong signature size. */
    if (!alg.present) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                 "protected header has no alg (label 1)");
        goto out;
    }
    if (!alg.is_int) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                 "alg is a text string; only ES256 (-7) is accepted");
        goto out;
    }
    if (alg.value != TRELLIS_COSE_ALG_ES256) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_ALG,
                                 "alg %" PRId64 " (%s) is not accepted; only ES256 (-7)", alg.value,
                                 trellis_cose_alg_name(alg.value));
        goto out;
    }

    /* payload: bstr / nil; nil means detached content, which a PSA token never uses
     * (RFC 9783 §5.1.1). */
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (it.kind != TR__CBOR_BSTR) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                 it.kind == TR__CBOR_SIMPLE && it.val == 22
                                     ? "COSE_Sign1: detached payload (nil) is not accepted"
                                     : "COSE_Sign1: payload (element 3) is not a byte string");
        goto out;
    }
    msg.payload = it.data;
    msg.payload_len = it.len;

    /* signature: bstr, r || s (RFC 9053 §2.1) */
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (it.kind != TR__CBOR_BSTR || it.len != TRELLIS_COSE_SIG_LEN) {
        err = it.kind == TR__CBOR_BSTR
                  ? trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                       "COSE_Sign1: signature is %zu bytes; ES256 needs 64", it.len)
                  : trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                       "COSE_Sign1: signature (element 4) is %s, not a byte "
                                       "string",
                                       kind_name(&it));
        goto out;
    }
    msg.signature = it.data;

    if (r.pos != len) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                 "%zu bytes after the COSE_Sign1 array", len - r.pos);
        goto out;
    }
    if (out != NULL)
        *out = msg;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_cose_sign1_verify(const uint8_t *buf, size_t len, const EVP_PKEY *key,
                                        trellis_cose_sign1_t *out, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_cose_sign1_t msg;
    uint8_t prefix[TBS_PREFIX_MAX];
    uint8_t digest[TRELLIS_SHA256_LEN] = {0};

    memset(&msg, 0, sizeof(msg));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (key == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no verification key");
        goto out;
    }
    err = trellis_cose_sign1_decode(buf, len, &msg, reason);
    if (err != TRELLIS_OK)
        goto out;

    /* Sig_structure (RFC 9052 §4.4) over the protected bytes exactly as received; the payload
     * content is hashed where it lies in buf. */
    tr__cbor_writer_t w;
    tr__cbor_writer_init(&w, prefix, sizeof(prefix));
    tr__cbor_put_array(&w, 4);
    tr__cbor_put_tstr(&w, "Signature1", 10);
    tr__cbor_put_bstr(&w, msg.protected_hdr, msg.protected_len);
    tr__cbor_put_bstr(&w, NULL, 0);
    tr__cbor_put_bstr_head(&w, msg.payload_len);
    if (w.overflow) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INTERNAL, "Sig_structure does not fit");
        goto out;
    }
    err = trellis_sha256_two(prefix, w.pos, msg.payload, msg.payload_len, digest);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "hashing the Sig_structure failed");
        goto out;
    }
    err = trellis_p256_verify_digest(key, digest, msg.signature);
    if (err == TRELLIS_ERR_BAD_SIGNATURE) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_SIGNATURE,
                                 "ES256 signature does not verify with the given key");
        goto out;
    }
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "signature check failed: %s", trellis_err_message(err));
        goto out;
    }
    if (out != NULL)
        *out = msg;
    err = TRELLIS_OK;
out:
    return err;
}
