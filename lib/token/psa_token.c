/*
 * PSA attestation token claims (RFC 9783 §4) and the signed token (include/trellis/psa_token.h
 * has the contract, the profiles and the list of rejections).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "token_internal.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/psa_token.h"

/* Most claims one claims-set may carry; a PSA token has at most a dozen. */
#define MAX_CLAIMS 64
/* Most attributes one software component map may carry. */
#define MAX_COMPONENT_ATTRS 16

typedef enum {
    C_NONCE,
    C_INSTANCE_ID,
    C_PROFILE,
    C_CLIENT_ID,
    C_LIFECYCLE,
    C_IMPLEMENTATION_ID,
    C_BOOT_SEED,
    C_CERTIFICATION_REFERENCE,
    C_SW_COMPONENTS,
    C_NO_SW_MEASUREMENTS,
    C_VERIFICATION_SERVICE,
    C_COUNT,
} claim_id_t;

/* No key in this set (the old "no software measurements" claim has no RFC 9783 key). */
#define NO_KEY INT64_MIN

/*
 * Claim keys: RFC 9783 §6 and §4.6 Table 1 (the PSA_IOT_PROFILE_1 keys from the CWT private use
 * range). The same numbers are used by Veraison psatoken (claims_p1.go, claims_p2.go) and TF-M's
 * iat-verifier; the TF-M sample tokens under tests/vectors/psa/ carry them.
 */
static const struct {
    int64_t key;     /* RFC 9783 */
    int64_t old_key; /* PSA_IOT_PROFILE_1 */
    const char *name;
} claim_keys[C_COUNT] = {
    [C_NONCE] = {10, -75008, "nonce"},
    [C_INSTANCE_ID] = {256, -75009, "instance id"},
    [C_PROFILE] = {265, -75000, "profile"},
    [C_CLIENT_ID] = {2394, -75001, "client id"},
    [C_LIFECYCLE] = {2395, -75002, "security lifecycle"},
    [C_IMPLEMENTATION_ID] = {2396, -75003, "implementation id"},
    [C_BOOT_SEED] = {2397, -75004, "boot seed"},
    [C_CERTIFICATION_REFERENCE] = {2398, -75005, "certification reference"},
    [C_SW_COMPONENTS] = {2399, -75006, "software components"},
    [C_NO_SW_MEASUREMENTS] = {NO_KEY, -75007, "no software measurements"},
    [C_VERIFICATION_SERVICE] = {2400, -75010, "verification service indicator"},
};

/* Software component attribute keys (RFC 9783 §4.4.1). */
#define SW_MEASUREMENT_TYPE  1
#define SW_MEASUREMENT_VALUE 2
#define SW_VERSION           4
#define SW_SIGNER_ID         5
#define SW_MEASUREMENT_DESC  6

static bool old_keys(trellis_psa_profile_t profile)
{
    return profile == TRELLIS_PSA_PROFILE_IOT_1;
}

static int64_t key_of(claim_id_t id, trellis_psa_profile_t profile)
{
    return old_keys(profile) ? claim_keys[id].old_key : claim_keys[id].key;
}

/* "claim 10 (nonce)" for reasons, with the key the token uses. */
static const char *claim_label(claim_id_t id, trellis_psa_profile_t profile, char *buf, size_t size)
{
    snprintf(buf, size, "claim %" PRId64 " (%s)", key_of(id, profile), claim_keys[id].name);
    return buf;
}

#define LABEL(id) claim_label((id), profile, label_buf, sizeof(label_buf))

void trellis_psa_claims_init(trellis_psa_claims_t *claims)
{
    if (claims == NULL)
        return;
    memset(claims, 0, sizeof(*claims));
    claims->profile = TRELLIS_PSA_PROFILE_TFM;
}

const char *trellis_psa_profile_name(trellis_psa_profile_t profile)
{
    switch (profile) {
    case TRELLIS_PSA_PROFILE_TFM:
        return TRELLIS_PSA_PROFILE_TFM_NAME;
    case TRELLIS_PSA_PROFILE_2_0_0:
        return TRELLIS_PSA_PROFILE_2_0_0_NAME;
    case TRELLIS_PSA_PROFILE_IOT_1:
        return TRELLIS_PSA_PROFILE_IOT_1_NAME;
    }
    return "unknown";
}

const char *trellis_psa_lifecycle_name(uint16_t lifecycle)
{
    /* RFC 9783 §4.3.1: version[15:8] is the PSA state, version[7:0] implementation defined. */
    switch (lifecycle & 0xff00) {
    case TRELLIS_PSA_LIFECYCLE_UNKNOWN:
        return "unknown";
    case TRELLIS_PSA_LIFECYCLE_ASSEMBLY_AND_TEST:
        return "assembly-and-test";
    case TRELLIS_PSA_LIFECYCLE_PSA_ROT_PROVISIONING:
        return "psa-rot-provisioning";
    case TRELLIS_PSA_LIFECYCLE_SECURED:
        return "secured";
    case TRELLIS_PSA_LIFECYCLE_NON_PSA_ROT_DEBUG:
        return "non-psa-rot-debug";
    case TRELLIS_PSA_LIFECYCLE_RECOVERABLE_PSA_ROT_DEBUG:
        return "recoverable-psa-rot-debug";
    case TRELLIS_PSA_LIFECYCLE_DECOMMISSIONED:
        return "decommissioned";
    default:
        return "invalid";
    }
}

static bool lifecycle_valid(uint16_t lifecycle)
{
    return strcmp(trellis_psa_lifecycle_name(lifecycle), "invalid") != 0;
}

bool trellis_psa_lifecycle_trusted(uint16_t lifecycle)
{
    uint16_t major = lifecycle & 0xff00;
    return major == TRELLIS_PSA_LIFECYCLE_SECURED ||
           major == TRELLIS_PSA_LIFECYCLE_NON_PSA_ROT_DEBUG;
}

/* psa-hash-type = bytes .size 32 / bytes .size 48 / bytes .size 64 (RFC 9783 §4). */
static bool hash_len_ok(size_t len)
{
    return len == 32 || len == 48 || len == 64;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* A text field is a NUL-terminated UTF-8 string within its array. */
static bool text_field_ok(const char *s, size_t capacity)
{
    size_t n = strnlen(s, capacity);
    return n < capacity && tr__utf8_valid((const uint8_t *)s, n);
}

static trellis_err_t validate_component(const trellis_psa_sw_component_t *c, size_t index,
                                        trellis_psa_profile_t profile, trellis_reason_t *reason)
{
    char label_buf[64];
    if (c->measurement_value_len == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s: entry %zu has no measurement value (key 2)",
                                  LABEL(C_SW_COMPONENTS), index);
    if (!hash_len_ok(c->measurement_value_len))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s: entry %zu: measurement value has %zu bytes, expected 32, "
                                  "48 or 64",
                                  LABEL(C_SW_COMPONENTS), index, c->measurement_value_len);
    if (c->signer_id_len != 0 && !hash_len_ok(c->signer_id_len))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s: entry %zu: signer id has %zu bytes, expected 32, 48 or 64",
                                  LABEL(C_SW_COMPONENTS), index, c->signer_id_len);
    if (!text_field_ok(c->measurement_type, sizeof(c->measurement_type)) ||
        !text_field_ok(c->version, sizeof(c->version)) ||
        !text_field_ok(c->measurement_desc, sizeof(c->measurement_desc)))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s: entry %zu: a text attribute is not UTF-8 or too long",
                                  LABEL(C_SW_COMPONENTS), index);
    return TRELLIS_OK;
}

trellis_err_t trellis_psa_claims_validate(const trellis_psa_claims_t *claims,
                                          trellis_reason_t *reason)
{
    char label_buf[64];
    if (claims == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no claims");
    trellis_psa_profile_t profile = claims->profile;
    if (profile != TRELLIS_PSA_PROFILE_TFM && profile != TRELLIS_PSA_PROFILE_2_0_0 &&
        profile != TRELLIS_PSA_PROFILE_IOT_1)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "unknown profile value %d",
                                  (int)profile);
    if (claims->profile_implied && profile != TRELLIS_PSA_PROFILE_IOT_1)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "claim 265 (profile) is mandatory (RFC 9783 section 4.5.2)");

    /* RFC 9783 §4.1.1: the nonce MUST be present, one value of 32, 48 or 64 bytes. */
    if (claims->nonce_len == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is missing", LABEL(C_NONCE));
    if (!hash_len_ok(claims->nonce_len))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s has %zu bytes, expected 32, 48 or 64", LABEL(C_NONCE),
                                  claims->nonce_len);
    /* §4.1.2: client id MUST be present; 0 is not permitted. */
    if (!claims->has_client_id)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is missing",
                                  LABEL(C_CLIENT_ID));
    if (claims->client_id == 0)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s is 0, which is not permitted", LABEL(C_CLIENT_ID));
    /* §4.2.1: instance id MUST be present: 33 bytes, type RAND (0x01) then the key hash. */
    if (!claims->has_instance_id)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is missing",
                                  LABEL(C_INSTANCE_ID));
    if (claims->instance_id[0] != TRELLIS_PSA_UEID_TYPE_RAND)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s has UEID type 0x%02x, expected 0x01 (RAND)",
                                  LABEL(C_INSTANCE_ID), claims->instance_id[0]);
    /* §4.2.2: implementation id MUST be present (its length is fixed by the struct). */
    if (!claims->has_implementation_id)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is missing",
                                  LABEL(C_IMPLEMENTATION_ID));
    /* §4.3.1: security lifecycle MUST be present and be one of the defined states. */
    if (!claims->has_lifecycle)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is missing",
                                  LABEL(C_LIFECYCLE));
    if (!lifecycle_valid(claims->lifecycle))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s 0x%04x is not a lifecycle state of RFC 9783 section 4.3.1",
                                  LABEL(C_LIFECYCLE), (unsigned)claims->lifecycle);
    /* §4.3.2: boot seed optional, 8 to 32 bytes; PSA_IOT_PROFILE_1 required exactly 32. */
    if (old_keys(profile)) {
        if (claims->boot_seed_len == 0)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s is missing (mandatory in PSA_IOT_PROFILE_1)",
                                      LABEL(C_BOOT_SEED));
        if (claims->boot_seed_len != 32)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s has %zu bytes, expected 32 in PSA_IOT_PROFILE_1",
                                      LABEL(C_BOOT_SEED), claims->boot_seed_len);
    } else if (claims->boot_seed_len != 0 && (claims->boot_seed_len < TRELLIS_PSA_BOOT_SEED_MIN ||
                                              claims->boot_seed_len > TRELLIS_PSA_BOOT_SEED_MAX)) {
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s has %zu bytes, expected 8 to 32", LABEL(C_BOOT_SEED),
                                  claims->boot_seed_len);
    }
    /* §4.2.3: "[0-9]{13}-[0-9]{5}" (EAN-13+5). The earlier profiles specified the EAN-13 alone,
     * but TF-M puts the EAN-13+5 form even under the old key (tests/vectors/psa), so for them
     * either form is accepted, as Veraison psatoken does. */
    if (claims->has_certification_reference) {
        const char *ref = claims->certification_reference;
        size_t n = strnlen(ref, sizeof(claims->certification_reference));
        bool ean13_5 = n == 19 && all_digits(ref, 13) && ref[13] == '-' && all_digits(ref + 14, 5);
        bool ean13 = n == 13 && all_digits(ref, 13);
        bool ok = profile == TRELLIS_PSA_PROFILE_TFM ? ean13_5 : (ean13 || ean13_5);
        if (!ok)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is not %s",
                                      LABEL(C_CERTIFICATION_REFERENCE),
                                      profile == TRELLIS_PSA_PROFILE_TFM
                                          ? "13 digits, '-', 5 digits"
                                          : "13 digits, optionally followed by '-' and 5 digits");
    }
    if (claims->has_verification_service &&
        !text_field_ok(claims->verification_service, sizeof(claims->verification_service)))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is not UTF-8 or too long",
                                  LABEL(C_VERIFICATION_SERVICE));
    /* §4.4.1: software components with at least one entry; the old profile allowed the
     * "no software measurements" claim instead, never both. */
    if (claims->sw_component_count > TRELLIS_PSA_SW_COMPONENTS_MAX)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s has more than %d entries",
                                  LABEL(C_SW_COMPONENTS), TRELLIS_PSA_SW_COMPONENTS_MAX);
    if (claims->no_sw_measurements && !old_keys(profile))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "\"no software measurements\" exists only in PSA_IOT_PROFILE_1");
    if (claims->no_sw_measurements && claims->sw_component_count > 0)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s and claim -75007 (no software measurements) exclude each "
                                  "other",
                                  LABEL(C_SW_COMPONENTS));
    if (claims->sw_component_count == 0 && !claims->no_sw_measurements)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s is missing or empty; at least one entry is required",
                                  LABEL(C_SW_COMPONENTS));
    for (size_t i = 0; i < claims->sw_component_count; i++) {
        trellis_err_t err = validate_component(&claims->sw_components[i], i, profile, reason);
        if (err != TRELLIS_OK)
            return err;
    }
    return TRELLIS_OK;
}

/* ---- decoding ---- */

/* One claims-set being decoded. */
struct claims_reader {
    tr__cbor_reader_t r;
    trellis_psa_profile_t profile;
    trellis_psa_claims_t *out;
    trellis_reason_t *reason;
};

static trellis_err_t read_key(tr__cbor_reader_t *r, tr__cbor_key_t *key, const char *where,
                              trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    /* RFC 8392 §7.1 (CWT, which EAT builds on): claim keys are integers or text strings. */
    if (it.kind != TR__CBOR_UINT && it.kind != TR__CBOR_NEGINT && it.kind != TR__CBOR_TSTR)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s: key at offset %zu is neither an integer nor a text string",
                                  where, it.offset);
    key->kind = it.kind;
    key->val = it.val;
    key->data = it.data;
    key->len = it.len;
    return TRELLIS_OK;
}

static bool key_is(const tr__cbor_key_t *key, int64_t v)
{
    if (v == NO_KEY)
        return false;
    return v >= 0 ? (key->kind == TR__CBOR_UINT && key->val == (uint64_t)v)
                  : (key->kind == TR__CBOR_NEGINT && key->val == (uint64_t)(-(v + 1)));
}

static trellis_err_t dup_check(tr__cbor_key_t *seen, size_t *n, size_t max,
                               const tr__cbor_key_t *key, const char *where,
                               trellis_reason_t *reason)
{
    for (size_t i = 0; i < *n; i++) {
        if (tr__cbor_key_equal(&seen[i], key)) {
            char text[48];
            tr__cbor_key_describe(key, text, sizeof(text));
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s: key %s appears twice",
                                      where, text);
        }
    }
    if (*n == max)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s: more than %zu entries",
                                  where, max);
    seen[(*n)++] = *key;
    return TRELLIS_OK;
}

static trellis_err_t wrong_type(struct claims_reader *c, claim_id_t id, const char *expected)
{
    char label_buf[64];
    trellis_psa_profile_t profile = c->profile;
    return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is not %s", LABEL(id),
                              expected);
}

/* Reads a byte string claim of at most cap bytes into dst. */
static trellis_err_t read_bytes(struct claims_reader *c, claim_id_t id, uint8_t *dst, size_t cap,
                                size_t *len, const char *expected)
{
    char label_buf[64];
    trellis_psa_profile_t profile = c->profile;
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(&c->r, &it, c->reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind == TR__CBOR_ARRAY && id == C_NONCE)
        return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s is an array; RFC 9783 section 4.1.1 allows a single value",
                                  LABEL(id));
    if (it.kind != TR__CBOR_BSTR)
        return wrong_type(c, id, "a byte string");
    if (it.len > cap || it.len == 0)
        return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s has %zu bytes, expected %s", LABEL(id), it.len, expected);
    memcpy(dst, it.data, it.len);
    *len = it.len;
    return TRELLIS_OK;
}

/* Reads a text claim or attribute into a NUL-terminated field of cap bytes. */
static trellis_err_t read_text(tr__cbor_reader_t *r, char *dst, size_t cap, const char *what,
                               trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_TSTR)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is not a text string", what);
    if (it.len >= cap)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s is %zu bytes long, more than the %zu accepted", what, it.len,
                                  cap - 1);
    if (!tr__utf8_valid(it.data, it.len))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s is not valid UTF-8 or contains NUL", what);
    memcpy(dst, it.data, it.len);
    dst[it.len] = '\0';
    return TRELLIS_OK;
}

static trellis_err_t read_hash_attr(tr__cbor_reader_t *r, uint8_t *dst, size_t *len,
                                    const char *what, trellis_reason_t *reason)
{
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_BSTR)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM, "%s is not a byte string", what);
    if (!hash_len_ok(it.len))
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "%s has %zu bytes, expected 32, 48 or 64", what, it.len);
    memcpy(dst, it.data, it.len);
    *len = it.len;
    return TRELLIS_OK;
}

static trellis_err_t read_component(struct claims_reader *c, size_t index)
{
    char label_buf[64];
    char what[96];
    trellis_psa_profile_t profile = c->profile;
    trellis_psa_sw_component_t *comp = &c->out->sw_components[index];
    tr__cbor_key_t seen[MAX_COMPONENT_ATTRS];
    size_t nseen = 0;
    tr__cbor_item_t it;
    trellis_err_t err = tr__cbor_read(&c->r, &it, c->reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_MAP)
        return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM, "%s: entry %zu is not a map",
                                  LABEL(C_SW_COMPONENTS), index);
    snprintf(what, sizeof(what), "%s entry %zu", LABEL(C_SW_COMPONENTS), index);
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_key_t key = {0};
        err = read_key(&c->r, &key, what, c->reason);
        if (err != TRELLIS_OK)
            return err;
        err = dup_check(seen, &nseen, MAX_COMPONENT_ATTRS, &key, what, c->reason);
        if (err != TRELLIS_OK)
            return err;
        char attr[128];
        if (key_is(&key, SW_MEASUREMENT_TYPE)) {
            snprintf(attr, sizeof(attr), "%s: measurement type (1)", what);
            err = read_text(&c->r, comp->measurement_type, sizeof(comp->measurement_type), attr,
                            c->reason);
            comp->has_measurement_type = err == TRELLIS_OK;
        } else if (key_is(&key, SW_MEASUREMENT_VALUE)) {
            snprintf(attr, sizeof(attr), "%s: measurement value (2)", what);
            err = read_hash_attr(&c->r, comp->measurement_value, &comp->measurement_value_len, attr,
                                 c->reason);
        } else if (key_is(&key, SW_VERSION)) {
            snprintf(attr, sizeof(attr), "%s: version (4)", what);
            err = read_text(&c->r, comp->version, sizeof(comp->version), attr, c->reason);
            comp->has_version = err == TRELLIS_OK;
        } else if (key_is(&key, SW_SIGNER_ID)) {
            snprintf(attr, sizeof(attr), "%s: signer id (5)", what);
            err = read_hash_attr(&c->r, comp->signer_id, &comp->signer_id_len, attr, c->reason);
        } else if (key_is(&key, SW_MEASUREMENT_DESC)) {
            snprintf(attr, sizeof(attr), "%s: measurement description (6)", what);
            err = read_text(&c->r, comp->measurement_desc, sizeof(comp->measurement_desc), attr,
                            c->reason);
            comp->has_measurement_desc = err == TRELLIS_OK;
        } else {
            tr__cbor_item_t v;
            err = tr__cbor_read(&c->r, &v, c->reason);
            if (err == TRELLIS_OK)
                err = tr__cbor_skip(&c->r, &v, 4, c->reason);
        }
        if (err != TRELLIS_OK)
            return err;
    }
    return TRELLIS_OK;
}

static trellis_err_t read_claim(struct claims_reader *c, claim_id_t id)
{
    char label_buf[64];
    trellis_psa_profile_t profile = c->profile;
    trellis_psa_claims_t *out = c->out;
    tr__cbor_item_t it;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    size_t len = 0;
    int64_t v = 0;

    switch (id) {
    case C_NONCE:
        err = read_bytes(c, id, out->nonce, sizeof(out->nonce), &out->nonce_len, "32, 48 or 64");
        if (err == TRELLIS_OK && !hash_len_ok(out->nonce_len))
            err = trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                     "%s has %zu bytes, expected 32, 48 or 64", LABEL(id),
                                     out->nonce_len);
        return err;
    case C_INSTANCE_ID:
        err = read_bytes(c, id, out->instance_id, sizeof(out->instance_id), &len, "33");
        if (err == TRELLIS_OK && len != TRELLIS_PSA_UEID_LEN)
            err = trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                     "%s has %zu bytes, expected 33", LABEL(id), len);
        out->has_instance_id = err == TRELLIS_OK;
        return err;
    case C_IMPLEMENTATION_ID:
        err = read_bytes(c, id, out->implementation_id, sizeof(out->implementation_id), &len, "32");
        if (err == TRELLIS_OK && len != TRELLIS_PSA_IMPL_ID_LEN)
            err = trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                     "%s has %zu bytes, expected 32", LABEL(id), len);
        out->has_implementation_id = err == TRELLIS_OK;
        return err;
    case C_BOOT_SEED:
        return read_bytes(c, id, out->boot_seed, sizeof(out->boot_seed), &out->boot_seed_len,
                          old_keys(profile) ? "32" : "8 to 32");
    case C_PROFILE:
        /* Its value was checked when the key set was chosen. */
        err = tr__cbor_read(&c->r, &it, c->reason);
        return err;
    case C_CLIENT_ID:
        err = tr__cbor_read(&c->r, &it, c->reason);
        if (err != TRELLIS_OK)
            return err;
        if (it.kind != TR__CBOR_UINT && it.kind != TR__CBOR_NEGINT)
            return wrong_type(c, id, "an integer");
        /* psa-client-id-type: -2147483648...0 / 1..2147483647 (RFC 9783 §4.1.2) */
        if (!tr__cbor_to_int64(&it, &v) || v < INT32_MIN || v > INT32_MAX)
            return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s is outside the 32-bit signed range", LABEL(id));
        out->client_id = (int32_t)v;
        out->has_client_id = true;
        return TRELLIS_OK;
    case C_LIFECYCLE:
        err = tr__cbor_read(&c->r, &it, c->reason);
        if (err != TRELLIS_OK)
            return err;
        if (it.kind != TR__CBOR_UINT)
            return wrong_type(c, id, "an unsigned integer");
        if (it.val > 0xffff)
            return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s 0x%" PRIx64 " is larger than 16 bits", LABEL(id), it.val);
        out->lifecycle = (uint16_t)it.val;
        out->has_lifecycle = true;
        return TRELLIS_OK;
    case C_CERTIFICATION_REFERENCE:
        err = read_text(&c->r, out->certification_reference, sizeof(out->certification_reference),
                        LABEL(id), c->reason);
        out->has_certification_reference = err == TRELLIS_OK;
        return err;
    case C_VERIFICATION_SERVICE:
        err = read_text(&c->r, out->verification_service, sizeof(out->verification_service),
                        LABEL(id), c->reason);
        out->has_verification_service = err == TRELLIS_OK;
        return err;
    case C_NO_SW_MEASUREMENTS:
        /* psa-no-sw-measurements = 1 (draft-tschofenig-rats-psa-token, PSA_IOT_PROFILE_1) */
        err = tr__cbor_read(&c->r, &it, c->reason);
        if (err != TRELLIS_OK)
            return err;
        if (it.kind != TR__CBOR_UINT || it.val != 1)
            return wrong_type(c, id, "the unsigned integer 1");
        out->no_sw_measurements = true;
        return TRELLIS_OK;
    case C_SW_COMPONENTS:
        err = tr__cbor_read(&c->r, &it, c->reason);
        if (err != TRELLIS_OK)
            return err;
        if (it.kind != TR__CBOR_ARRAY)
            return wrong_type(c, id, "an array");
        if (it.val == 0)
            return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s is empty; at least one entry is required", LABEL(id));
        if (it.val > TRELLIS_PSA_SW_COMPONENTS_MAX)
            return trellis_reason_set(c->reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "%s has %" PRIu64 " entries, more than the %d accepted",
                                      LABEL(id), it.val, TRELLIS_PSA_SW_COMPONENTS_MAX);
        for (size_t i = 0; i < it.val; i++) {
            err = read_component(c, i);
            if (err != TRELLIS_OK)
                return err;
        }
        out->sw_component_count = (size_t)it.val;
        return TRELLIS_OK;
    case C_COUNT:
        break;
    }
    return TRELLIS_ERR_INTERNAL;
}

/*
 * First pass: checks the map shape and duplicate keys, and reads the profile claim to choose the
 * key set (psa_token.h explains the rule).
 */
static trellis_err_t choose_profile(const uint8_t *buf, size_t len, trellis_psa_profile_t *profile,
                                    bool *implied, trellis_reason_t *reason)
{
    tr__cbor_reader_t r;
    tr__cbor_item_t it;
    tr__cbor_key_t seen[MAX_CLAIMS];
    size_t nseen = 0;
    const tr__cbor_item_t *new_profile = NULL, *old_profile = NULL;
    tr__cbor_item_t new_value, old_value;
    bool has_old_nonce = false;
    trellis_err_t err = TRELLIS_ERR_INTERNAL;

    tr__cbor_reader_init(&r, buf, len, "claims-set");
    err = tr__cbor_read(&r, &it, reason);
    if (err != TRELLIS_OK)
        return err;
    if (it.kind != TR__CBOR_MAP)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "the payload is not a CBOR map of claims");
    if (it.val > MAX_CLAIMS)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "claims-set has %" PRIu64 " claims, more than the %d accepted",
                                  it.val, MAX_CLAIMS);
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_key_t key = {0};
        err = read_key(&r, &key, "claims-set", reason);
        if (err != TRELLIS_OK)
            return err;
        err = dup_check(seen, &nseen, MAX_CLAIMS, &key, "claims-set", reason);
        if (err != TRELLIS_OK)
            return err;
        tr__cbor_item_t v;
        err = tr__cbor_read(&r, &v, reason);
        if (err != TRELLIS_OK)
            return err;
        if (key_is(&key, claim_keys[C_PROFILE].key)) {
            new_value = v;
            new_profile = &new_value;
        } else if (key_is(&key, claim_keys[C_PROFILE].old_key)) {
            old_value = v;
            old_profile = &old_value;
        } else if (key_is(&key, claim_keys[C_NONCE].old_key)) {
            has_old_nonce = true;
        }
        err = tr__cbor_skip(&r, &v, 1, reason);
        if (err != TRELLIS_OK)
            return err;
    }
    if (r.pos != len)
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_MALFORMED,
                                  "claims-set: %zu bytes after the claims map", len - r.pos);

    *implied = false;
    if (new_profile != NULL) {
        /* RFC 9783 §4.5.2: "The URI encoding MUST be used", so a text string. */
        if (new_profile->kind != TR__CBOR_TSTR)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "claim 265 (profile) is not a text string");
        if (new_profile->len == strlen(TRELLIS_PSA_PROFILE_TFM_NAME) &&
            memcmp(new_profile->data, TRELLIS_PSA_PROFILE_TFM_NAME, new_profile->len) == 0) {
            *profile = TRELLIS_PSA_PROFILE_TFM;
            return TRELLIS_OK;
        }
        if (new_profile->len == strlen(TRELLIS_PSA_PROFILE_2_0_0_NAME) &&
            memcmp(new_profile->data, TRELLIS_PSA_PROFILE_2_0_0_NAME, new_profile->len) == 0) {
            *profile = TRELLIS_PSA_PROFILE_2_0_0;
            return TRELLIS_OK;
        }
        tr__cbor_key_t shown = {
            .kind = TR__CBOR_TSTR, .data = new_profile->data, .len = new_profile->len};
        char text[48];
        tr__cbor_key_describe(&shown, text, sizeof(text));
        return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                  "claim 265 (profile) %s is not a PSA profile (expected \"%s\" "
                                  "or \"%s\")",
                                  text, TRELLIS_PSA_PROFILE_TFM_NAME,
                                  TRELLIS_PSA_PROFILE_2_0_0_NAME);
    }
    if (old_profile != NULL) {
        if (old_profile->kind != TR__CBOR_TSTR ||
            old_profile->len != strlen(TRELLIS_PSA_PROFILE_IOT_1_NAME) ||
            memcmp(old_profile->data, TRELLIS_PSA_PROFILE_IOT_1_NAME, old_profile->len) != 0)
            return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                                      "claim -75000 (profile) is not the text \"%s\"",
                                      TRELLIS_PSA_PROFILE_IOT_1_NAME);
        *profile = TRELLIS_PSA_PROFILE_IOT_1;
        return TRELLIS_OK;
    }
    if (has_old_nonce) {
        *profile = TRELLIS_PSA_PROFILE_IOT_1;
        *implied = true;
        return TRELLIS_OK;
    }
    return trellis_reason_set(reason, TRELLIS_ERR_TOKEN_CLAIM,
                              "claim 265 (profile) is missing (RFC 9783 section 4.5.2)");
}

trellis_err_t trellis_psa_claims_decode(const uint8_t *buf, size_t len,
                                        trellis_psa_claims_t *claims, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    struct claims_reader c;
    trellis_psa_profile_t profile = TRELLIS_PSA_PROFILE_TFM;
    bool implied = false;
    tr__cbor_item_t it;

    trellis_reason_clear(reason);
    if (claims == NULL || (buf == NULL && len > 0)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no claims buffer");
        goto out;
    }
    trellis_psa_claims_init(claims);
    if (len > TRELLIS_COSE_MAX_TOKEN) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                 "claims-set is %zu bytes, more than the %d accepted", len,
                                 TRELLIS_COSE_MAX_TOKEN);
        goto out;
    }
    err = choose_profile(buf, len, &profile, &implied, reason);
    if (err != TRELLIS_OK)
        goto out;
    claims->profile = profile;
    claims->profile_implied = implied;

    /* Second pass: the claims of the chosen key set; all other keys are ignored (EAT). */
    c.profile = profile;
    c.out = claims;
    c.reason = reason;
    tr__cbor_reader_init(&c.r, buf, len, "claims-set");
    err = tr__cbor_read(&c.r, &it, reason);
    if (err != TRELLIS_OK)
        goto out;
    for (uint64_t i = 0; i < it.val; i++) {
        tr__cbor_key_t key = {0};
        err = read_key(&c.r, &key, "claims-set", reason);
        if (err != TRELLIS_OK)
            goto out;
        claim_id_t id = C_COUNT;
        for (int k = 0; k < C_COUNT; k++) {
            if (key_is(&key, key_of((claim_id_t)k, profile))) {
                id = (claim_id_t)k;
                break;
            }
        }
        if (id == C_COUNT) {
            tr__cbor_item_t v;
            err = tr__cbor_read(&c.r, &v, reason);
            if (err == TRELLIS_OK)
                err = tr__cbor_skip(&c.r, &v, 1, reason);
        } else {
            err = read_claim(&c, id);
        }
        if (err != TRELLIS_OK)
            goto out;
    }
    err = trellis_psa_claims_validate(claims, reason);
out:
    if (err != TRELLIS_OK && claims != NULL)
        memset(claims, 0, sizeof(*claims));
    return err;
}

/* ---- encoding ---- */

static size_t count_claims(const trellis_psa_claims_t *c)
{
    size_t n = 5; /* nonce, instance id, implementation id, client id, lifecycle */
    n += !(c->profile == TRELLIS_PSA_PROFILE_IOT_1 && c->profile_implied);
    n += c->boot_seed_len > 0;
    n += c->has_certification_reference;
    n += c->has_verification_service;
    n += c->sw_component_count > 0;
    n += c->no_sw_measurements;
    return n;
}

static void put_text(tr__cbor_writer_t *w, const char *s)
{
    tr__cbor_put_tstr(w, s, strlen(s));
}

static void write_claims(tr__cbor_writer_t *w, const trellis_psa_claims_t *c)
{
    trellis_psa_profile_t p = c->profile;
    /* The order of RFC 9783 §6 (psa-token). */
    tr__cbor_put_map(w, count_claims(c));
    tr__cbor_put_int(w, key_of(C_NONCE, p));
    tr__cbor_put_bstr(w, c->nonce, c->nonce_len);
    tr__cbor_put_int(w, key_of(C_INSTANCE_ID, p));
    tr__cbor_put_bstr(w, c->instance_id, sizeof(c->instance_id));
    if (c->has_verification_service) {
        tr__cbor_put_int(w, key_of(C_VERIFICATION_SERVICE, p));
        put_text(w, c->verification_service);
    }
    if (!(p == TRELLIS_PSA_PROFILE_IOT_1 && c->profile_implied)) {
        tr__cbor_put_int(w, key_of(C_PROFILE, p));
        put_text(w, trellis_psa_profile_name(p));
    }
    tr__cbor_put_int(w, key_of(C_IMPLEMENTATION_ID, p));
    tr__cbor_put_bstr(w, c->implementation_id, sizeof(c->implementation_id));
    tr__cbor_put_int(w, key_of(C_CLIENT_ID, p));
    tr__cbor_put_int(w, c->client_id);
    tr__cbor_put_int(w, key_of(C_LIFECYCLE, p));
    tr__cbor_put_uint(w, c->lifecycle);
    if (c->has_certification_reference) {
        tr__cbor_put_int(w, key_of(C_CERTIFICATION_REFERENCE, p));
        put_text(w, c->certification_reference);
    }
    if (c->boot_seed_len > 0) {
        tr__cbor_put_int(w, key_of(C_BOOT_SEED, p));
        tr__cbor_put_bstr(w, c->boot_seed, c->boot_seed_len);
    }
    if (c->no_sw_measurements) {
        tr__cbor_put_int(w, key_of(C_NO_SW_MEASUREMENTS, p));
        tr__cbor_put_uint(w, 1);
    }
    if (c->sw_component_count > 0) {
        tr__cbor_put_int(w, key_of(C_SW_COMPONENTS, p));
        tr__cbor_put_array(w, c->sw_component_count);
        for (size_t i = 0; i < c->sw_component_count; i++) {
            const trellis_psa_sw_component_t *s = &c->sw_components[i];
            size_t n = 1 + s->has_measurement_type + s->has_version + (s->signer_id_len > 0) +
                       s->has_measurement_desc;
            tr__cbor_put_map(w, n);
            if (s->has_measurement_type) {
                tr__cbor_put_uint(w, SW_MEASUREMENT_TYPE);
                put_text(w, s->measurement_type);
            }
            tr__cbor_put_uint(w, SW_MEASUREMENT_VALUE);
            tr__cbor_put_bstr(w, s->measurement_value, s->measurement_value_len);
            if (s->has_version) {
                tr__cbor_put_uint(w, SW_VERSION);
                put_text(w, s->version);
            }
            if (s->signer_id_len > 0) {
                tr__cbor_put_uint(w, SW_SIGNER_ID);
                tr__cbor_put_bstr(w, s->signer_id, s->signer_id_len);
            }
            if (s->has_measurement_desc) {
                tr__cbor_put_uint(w, SW_MEASUREMENT_DESC);
                put_text(w, s->measurement_desc);
            }
        }
    }
}

trellis_err_t trellis_psa_claims_encode(const trellis_psa_claims_t *claims, uint8_t *buf,
                                        size_t buf_size, size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__cbor_writer_t w;

    trellis_reason_clear(reason);
    if (out_len == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output length");
    *out_len = 0;
    err = trellis_psa_claims_validate(claims, reason);
    if (err != TRELLIS_OK)
        goto out;
    tr__cbor_writer_init(&w, NULL, 0);
    write_claims(&w, claims);
    if (buf == NULL || buf_size < w.pos) {
        *out_len = w.pos;
        err = TRELLIS_ERR_BUFFER_TOO_SMALL;
        goto out;
    }
    tr__cbor_writer_init(&w, buf, buf_size);
    write_claims(&w, claims);
    if (w.overflow) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    *out_len = w.pos;
    err = TRELLIS_OK;
out:
    return err;
}

trellis_err_t trellis_psa_token_encode(const trellis_psa_claims_t *claims, const uint8_t *kid,
                                       size_t kid_len, const trellis_signer_t *signer, uint8_t *buf,
                                       size_t buf_size, size_t *out_len, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    tr__cbor_writer_t w;
    size_t payload_len = 0;
    size_t payload_off = 0;
    size_t total = 0;

    trellis_reason_clear(reason);
    if (out_len == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no output length");
    *out_len = 0;
    if (signer == NULL || signer->version != TRELLIS_SIGNER_VERSION ||
        signer->sign_digest == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no usable signer");
        goto out;
    }
    if (kid != NULL && (kid_len == 0 || kid_len > TRELLIS_COSE_KID_MAX)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "kid must be 1 to %d bytes",
                                 TRELLIS_COSE_KID_MAX);
        goto out;
    }
    err = trellis_psa_claims_validate(claims, reason);
    if (err != TRELLIS_OK)
        goto out;
    tr__cbor_writer_init(&w, NULL, 0);
    write_claims(&w, claims);
    payload_len = w.pos;
    err = tr__cose_sign1_layout(payload_len, kid, kid_len, buf, buf_size, &payload_off, &total);
    if (err == TRELLIS_ERR_BUFFER_TOO_SMALL)
        *out_len = total;
    if (err != TRELLIS_OK)
        goto out;
    /* The claims go straight into their place as the COSE payload: no second buffer. */
    tr__cbor_writer_init(&w, buf + payload_off, payload_len);
    write_claims(&w, claims);
    if (w.overflow || w.pos != payload_len) {
        err = TRELLIS_ERR_INTERNAL;
        goto out;
    }
    err = tr__cose_sign1_finish(buf, total, payload_off, payload_len, signer);
    if (err != TRELLIS_OK) {
        trellis_reason_set(reason, err, "signing failed: %s", trellis_err_message(err));
        goto out;
    }
    *out_len = total;
out:
    return err;
}

static trellis_err_t token_claims(const trellis_cose_sign1_t *msg, trellis_psa_claims_t *claims,
                                  trellis_reason_t *reason)
{
    return trellis_psa_claims_decode(msg->payload, msg->payload_len, claims, reason);
}

trellis_err_t trellis_psa_token_verify(const uint8_t *token, size_t token_len, const EVP_PKEY *key,
                                       const uint8_t *expected_nonce, size_t expected_nonce_len,
                                       trellis_psa_claims_t *claims, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_cose_sign1_t msg;

    if (claims == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no claims output");
    memset(claims, 0, sizeof(*claims));
    err = trellis_cose_sign1_verify(token, token_len, key, &msg, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = token_claims(&msg, claims, reason);
    if (err != TRELLIS_OK)
        goto out;
    if (expected_nonce != NULL &&
        (expected_nonce_len != claims->nonce_len ||
         !trellis_ct_equal(expected_nonce, claims->nonce, claims->nonce_len))) {
        err = trellis_reason_set(reason, TRELLIS_ERR_TOKEN_NONCE,
                                 "the nonce in the token (%zu bytes) is not the expected one",
                                 claims->nonce_len);
        goto out;
    }
    err = TRELLIS_OK;
out:
    if (err != TRELLIS_OK)
        memset(claims, 0, sizeof(*claims));
    return err;
}

trellis_err_t trellis_psa_token_decode_unverified(const uint8_t *token, size_t token_len,
                                                  trellis_psa_claims_t *claims,
                                                  trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    trellis_cose_sign1_t msg;

    if (claims == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no claims output");
    memset(claims, 0, sizeof(*claims));
    err = trellis_cose_sign1_decode(token, token_len, &msg, reason);
    if (err != TRELLIS_OK)
        goto out;
    err = token_claims(&msg, claims, reason);
out:
    if (err != TRELLIS_OK)
        memset(claims, 0, sizeof(*claims));
    return err;
}

trellis_err_t trellis_psa_ueid_from_point(const uint8_t point[static 65],
                                          uint8_t ueid[static TRELLIS_PSA_UEID_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t digest[TRELLIS_SHA256_LEN];

    memset(ueid, 0, TRELLIS_PSA_UEID_LEN);
    if (point[0] != 0x04)
        return TRELLIS_ERR_BAD_KEY;
    err = trellis_sha256(point, TRELLIS_P256_POINT_LEN, digest);
    if (err != TRELLIS_OK)
        return err;
    /* EAT UEID type RAND (RFC 9711 §4.2.1) followed by the key hash (RFC 9783 §4.2.1). */
    ueid[0] = TRELLIS_PSA_UEID_TYPE_RAND;
    memcpy(ueid + 1, digest, sizeof(digest));
    return TRELLIS_OK;
}

trellis_err_t trellis_psa_device_id_from_point(const uint8_t point[static 65],
                                               char out[static TRELLIS_PSA_DEVICE_ID_LEN + 1])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    uint8_t digest[TRELLIS_SHA256_LEN];
    size_t n = 0;

    memset(out, 0, TRELLIS_PSA_DEVICE_ID_LEN + 1);
    if (point[0] != 0x04)
        return TRELLIS_ERR_BAD_KEY;
    err = trellis_sha256(point, TRELLIS_P256_POINT_LEN, digest);
    if (err != TRELLIS_OK)
        return err;
    err = trellis_hex_encode(digest, TRELLIS_PSA_DEVICE_ID_LEN / 2, out,
                             TRELLIS_PSA_DEVICE_ID_LEN + 1, &n);
    if (err != TRELLIS_OK || n != TRELLIS_PSA_DEVICE_ID_LEN) {
        memset(out, 0, TRELLIS_PSA_DEVICE_ID_LEN + 1);
        return err != TRELLIS_OK ? err : TRELLIS_ERR_INTERNAL;
    }
    return TRELLIS_OK;
}
