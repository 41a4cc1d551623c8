/*
 * The JSON form of a PSA claims-set (docs/token-format.md, "JSON form"): what
 * `trellis token check` prints and `trellis token create --claims` reads. Member names are the
 * claim names of the IANA CWT registry (RFC 9711 for eat_nonce, ueid and eat_profile, RFC 9783
 * §11.1 for the psa- claims); byte strings are lowercase hex.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "trellis/encoding.h"
#include "trellis/psa_token.h"
#include "token_internal.h"

#define JSON_MAX_INPUT 65536 /* the largest --claims document accepted */

typedef enum {
    J_PROFILE,
    J_NONCE,
    J_UEID,
    J_CLIENT_ID,
    J_LIFECYCLE,
    J_IMPLEMENTATION_ID,
    J_BOOT_SEED,
    J_CERTIFICATION_REFERENCE,
    J_VERIFICATION_SERVICE,
    J_NO_SW_MEASUREMENTS,
    J_SW_COMPONENTS,
    J_COUNT,
} json_claim_t;

/* Canonical name (printed) and the short alias also read. */
static const struct {
    const char *name;
    const char *alias;
} json_names[J_COUNT] = {
    [J_PROFILE] = {"eat_profile", "profile"},
    [J_NONCE] = {"eat_nonce", "nonce"},
    [J_UEID] = {"ueid", "instance_id"},
    [J_CLIENT_ID] = {"psa-client-id", "client_id"},
    [J_LIFECYCLE] = {"psa-security-lifecycle", "lifecycle"},
    [J_IMPLEMENTATION_ID] = {"psa-implementation-id", "implementation_id"},
    [J_BOOT_SEED] = {"psa-boot-seed", "boot_seed"},
    [J_CERTIFICATION_REFERENCE] = {"psa-certification-reference", "certification_reference"},
    [J_VERIFICATION_SERVICE] = {"psa-verification-service-indicator", "verification_service"},
    [J_NO_SW_MEASUREMENTS] = {"psa-no-sw-measurements", "no_sw_measurements"},
    [J_SW_COMPONENTS] = {"psa-software-components", "sw_components"},
};

typedef enum {
    S_TYPE,
    S_VALUE,
    S_VERSION,
    S_SIGNER_ID,
    S_DESC,
    S_COUNT,
} json_sw_attr_t;

static const struct {
    const char *name;
    const char *alias;
} sw_names[S_COUNT] = {
    [S_TYPE] = {"measurement-type", "measurement_type"},
    [S_VALUE] = {"measurement-value", "measurement_value"},
    [S_VERSION] = {"version", "version"},
    [S_SIGNER_ID] = {"signer-id", "signer_id"},
    [S_DESC] = {"measurement-desc", "measurement_desc"},
};

/* ---- to JSON ---- */

static int set_hex(json_t *obj, const char *name, const uint8_t *data, size_t len)
{
    char hex[2 * TRELLIS_PSA_NONCE_MAX + 1];
    size_t n = 0;
    if (len > TRELLIS_PSA_NONCE_MAX ||
        trellis_hex_encode(data, len, hex, sizeof(hex), &n) != TRELLIS_OK)
        return -1;
    return json_object_set_new(obj, name, json_stringn(hex, n));
}

static int set_text(json_t *obj, const char *name, const char *text)
{
    json_t *s = json_string(text);
    if (s == NULL)
        return -1;
    return json_object_set_new(obj, name, s);
}

static json_t *component_to_json(const trellis_psa_sw_component_t *c)
{
    json_t *obj = json_object();
    int rc = obj == NULL ? -1 : 0;
    if (rc == 0 && c->has_measurement_type)
        rc = set_text(obj, sw_names[S_TYPE].name, c->measurement_type);
    if (rc == 0)
        rc = set_hex(obj, sw_names[S_VALUE].name, c->measurement_value, c->measurement_value_len);
    if (rc == 0 && c->has_version)
        rc = set_text(obj, sw_names[S_VERSION].name, c->version);
    if (rc == 0 && c->signer_id_len > 0)
        rc = set_hex(obj, sw_names[S_SIGNER_ID].name, c->signer_id, c->signer_id_len);
    if (rc == 0 && c->has_measurement_desc)
        rc = set_text(obj, sw_names[S_DESC].name, c->measurement_desc);
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

trellis_err_t trellis_psa_claims_to_json(const trellis_psa_claims_t *claims, char **out)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *obj = NULL;
    json_t *list = NULL;
    char *text = NULL;
    int rc = 0;

    if (out == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    *out = NULL;
    if (claims == NULL)
        return TRELLIS_ERR_INVALID_ARG;
    err = TRELLIS_ERR_NOMEM;
    obj = json_object();
    list = json_array();
    if (obj == NULL || list == NULL)
        goto out;
    if (!claims->profile_implied)
        rc |= set_text(obj, json_names[J_PROFILE].name, trellis_psa_profile_name(claims->profile));
    rc |= set_hex(obj, json_names[J_NONCE].name, claims->nonce, claims->nonce_len);
    if (claims->has_instance_id)
        rc |=
            set_hex(obj, json_names[J_UEID].name, claims->instance_id, sizeof(claims->instance_id));
    if (claims->has_client_id)
        rc |=
            json_object_set_new(obj, json_names[J_CLIENT_ID].name, json_integer(claims->client_id));
    if (claims->has_lifecycle)
        rc |=
            json_object_set_new(obj, json_names[J_LIFECYCLE].name, json_integer(claims->lifecycle));
    if (claims->has_implementation_id)
        rc |= set_hex(obj, json_names[J_IMPLEMENTATION_ID].name, claims->implementation_id,
                      sizeof(claims->implementation_id));
    if (claims->boot_seed_len > 0)
        rc |= set_hex(obj, json_names[J_BOOT_SEED].name, claims->boot_seed, claims->boot_seed_len);
    if (claims->has_certification_reference)
        rc |= set_text(obj, json_names[J_CERTIFICATION_REFERENCE].name,
                       claims->certification_reference);
    if (claims->has_verification_service)
        rc |= set_text(obj, json_names[J_VERIFICATION_SERVICE].name, claims->verification_service);
    if (claims->no_sw_measurements)
        rc |= json_object_set_new(obj, json_names[J_NO_SW_MEASUREMENTS].name, json_true());
    for (size_t i = 0; i < claims->sw_component_count && i < TRELLIS_PSA_SW_COMPONENTS_MAX; i++)
        rc |= json_array_append_new(list, component_to_json(&claims->sw_components[i]));
    if (claims->sw_component_count > 0) {
        rc |= json_object_set(obj, json_names[J_SW_COMPONENTS].name, list);
    }
    if (rc != 0)
        goto out;
    text = json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto out;
    *out = strdup(text);
    if (*out == NULL)
        goto out;
    err = TRELLIS_OK;
out:
    if (text != NULL) {
        json_malloc_t jmalloc = NULL;
        json_free_t jfree = NULL;
        json_get_alloc_funcs(&jmalloc, &jfree);
        jfree(text);
    }
    json_decref(list);
    json_decref(obj);
    return err;
}

/* ---- from JSON ---- */

static trellis_err_t hex_member(const char *name, json_t *v, uint8_t *dst, size_t cap, size_t exact,
                                size_t *out_len, trellis_reason_t *reason)
{
    if (!json_is_string(v))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" must be a hex string", name);
    const char *hex = json_string_value(v);
    size_t hex_len = json_string_length(v);
    size_t n = 0;
    if (hex_len % 2 != 0 || hex_len / 2 > cap)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "\"%s\" must be hex of at most %zu bytes", name, cap);
    if (trellis_hex_decode(hex, hex_len, dst, cap, &n) != TRELLIS_OK)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" is not valid hex", name);
    if (exact != 0 && n != exact)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" must be %zu bytes, not %zu",
                                  name, exact, n);
    if (out_len != NULL)
        *out_len = n;
    return TRELLIS_OK;
}

static trellis_err_t text_member(const char *name, json_t *v, char *dst, size_t cap,
                                 trellis_reason_t *reason)
{
    if (!json_is_string(v))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" must be a string", name);
    size_t len = json_string_length(v);
    if (len >= cap || strlen(json_string_value(v)) != len)
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "\"%s\" must be at most %zu bytes without NUL", name, cap - 1);
    memcpy(dst, json_string_value(v), len);
    dst[len] = '\0';
    return TRELLIS_OK;
}

static trellis_err_t lifecycle_member(const char *name, json_t *v, uint16_t *out,
                                      trellis_reason_t *reason)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > 0xffff)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" must be 0 to 65535", name);
        *out = (uint16_t)n;
        return TRELLIS_OK;
    }
    if (json_is_string(v)) {
        /* A major state by name, with minor state 0. */
        for (uint16_t major = 0; major <= 0x6000; major += 0x1000) {
            if (strcmp(json_string_value(v), trellis_psa_lifecycle_name(major)) == 0) {
                *out = major;
                return TRELLIS_OK;
            }
        }
    }
    return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                              "\"%s\" must be an integer or a state name such as \"secured\"",
                              name);
}

static bool name_matches(const char *key, const char *name, const char *alias)
{
    return strcmp(key, name) == 0 || strcmp(key, alias) == 0;
}

static int find_claim(const char *key)
{
    for (int i = 0; i < J_COUNT; i++) {
        if (name_matches(key, json_names[i].name, json_names[i].alias))
            return i;
    }
    return -1;
}

static int find_attr(const char *key)
{
    for (int i = 0; i < S_COUNT; i++) {
        if (name_matches(key, sw_names[i].name, sw_names[i].alias))
            return i;
    }
    return -1;
}

static trellis_err_t component_from_json(json_t *obj, size_t index, trellis_psa_sw_component_t *c,
                                         trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_OK;
    const char *key;
    json_t *v;
    bool seen[S_COUNT] = {false};

    if (!json_is_object(obj))
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "software component %zu must be an object", index);
    memset(c, 0, sizeof(*c));
    json_object_foreach(obj, key, v)
    {
        int a = find_attr(key);
        if (a < 0)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "software component %zu: unknown member \"%s\"", index, key);
        if (seen[a])
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "software component %zu: \"%s\" given twice", index,
                                      sw_names[a].name);
        seen[a] = true;
        switch ((json_sw_attr_t)a) {
        case S_TYPE:
            err = text_member(key, v, c->measurement_type, sizeof(c->measurement_type), reason);
            c->has_measurement_type = err == TRELLIS_OK;
            break;
        case S_VALUE:
            err = hex_member(key, v, c->measurement_value, sizeof(c->measurement_value), 0,
                             &c->measurement_value_len, reason);
            break;
        case S_VERSION:
            err = text_member(key, v, c->version, sizeof(c->version), reason);
            c->has_version = err == TRELLIS_OK;
            break;
        case S_SIGNER_ID:
            err = hex_member(key, v, c->signer_id, sizeof(c->signer_id), 0, &c->signer_id_len,
                             reason);
            break;
        case S_DESC:
            err = text_member(key, v, c->measurement_desc, sizeof(c->measurement_desc), reason);
            c->has_measurement_desc = err == TRELLIS_OK;
            break;
        case S_COUNT:
            err = TRELLIS_ERR_INTERNAL;
            break;
        }
        if (err != TRELLIS_OK)
            return err;
    }
    return TRELLIS_OK;
}

static trellis_err_t apply_member(json_claim_t id, const char *key, json_t *v,
                                  trellis_psa_claims_t *c, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_OK;
    size_t n = 0;

    switch (id) {
    case J_PROFILE:
        if (json_is_string(v)) {
            for (int p = TRELLIS_PSA_PROFILE_TFM; p <= TRELLIS_PSA_PROFILE_IOT_1; p++) {
                if (strcmp(json_string_value(v),
                           trellis_psa_profile_name((trellis_psa_profile_t)p)) == 0) {
                    c->profile = (trellis_psa_profile_t)p;
                    c->profile_implied = false;
                    return TRELLIS_OK;
                }
            }
        }
        return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                  "\"%s\" must be one of \"%s\", \"%s\", \"%s\"", key,
                                  TRELLIS_PSA_PROFILE_TFM_NAME, TRELLIS_PSA_PROFILE_2_0_0_NAME,
                                  TRELLIS_PSA_PROFILE_IOT_1_NAME);
    case J_NONCE:
        return hex_member(key, v, c->nonce, sizeof(c->nonce), 0, &c->nonce_len, reason);
    case J_UEID:
        err = hex_member(key, v, c->instance_id, sizeof(c->instance_id), TRELLIS_PSA_UEID_LEN, NULL,
                         reason);
        c->has_instance_id = err == TRELLIS_OK;
        return err;
    case J_IMPLEMENTATION_ID:
        err = hex_member(key, v, c->implementation_id, sizeof(c->implementation_id),
                         TRELLIS_PSA_IMPL_ID_LEN, NULL, reason);
        c->has_implementation_id = err == TRELLIS_OK;
        return err;
    case J_CLIENT_ID:
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "\"%s\" must be a 32-bit signed integer", key);
        c->client_id = (int32_t)json_integer_value(v);
        c->has_client_id = true;
        return TRELLIS_OK;
    case J_LIFECYCLE:
        err = lifecycle_member(key, v, &c->lifecycle, reason);
        c->has_lifecycle = err == TRELLIS_OK;
        return err;
    case J_BOOT_SEED:
        if (json_is_null(v)) {
            c->boot_seed_len = 0;
            return TRELLIS_OK;
        }
        return hex_member(key, v, c->boot_seed, sizeof(c->boot_seed), 0, &c->boot_seed_len, reason);
    case J_CERTIFICATION_REFERENCE:
        c->has_certification_reference = false;
        if (json_is_null(v))
            return TRELLIS_OK;
        err = text_member(key, v, c->certification_reference, sizeof(c->certification_reference),
                          reason);
        c->has_certification_reference = err == TRELLIS_OK;
        return err;
    case J_VERIFICATION_SERVICE:
        c->has_verification_service = false;
        if (json_is_null(v))
            return TRELLIS_OK;
        err = text_member(key, v, c->verification_service, sizeof(c->verification_service), reason);
        c->has_verification_service = err == TRELLIS_OK;
        return err;
    case J_NO_SW_MEASUREMENTS:
        if (!json_is_boolean(v))
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE, "\"%s\" must be true or false",
                                      key);
        c->no_sw_measurements = json_is_true(v);
        return TRELLIS_OK;
    case J_SW_COMPONENTS:
        if (!json_is_array(v) || json_array_size(v) > TRELLIS_PSA_SW_COMPONENTS_MAX)
            return trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                      "\"%s\" must be an array of at most %d objects", key,
                                      TRELLIS_PSA_SW_COMPONENTS_MAX);
        n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            err = component_from_json(json_array_get(v, i), i, &c->sw_components[i], reason);
            if (err != TRELLIS_OK)
                return err;
        }
        c->sw_component_count = n;
        return TRELLIS_OK;
    case J_COUNT:
        break;
    }
    return TRELLIS_ERR_INTERNAL;
}

trellis_err_t trellis_psa_claims_from_json(const char *json, size_t len,
                                           trellis_psa_claims_t *claims, trellis_reason_t *reason)
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    json_t *root = NULL;
    json_error_t jerr;
    trellis_psa_claims_t work;
    bool seen[J_COUNT] = {false};
    const char *key;
    json_t *v;

    trellis_reason_clear(reason);
    if (json == NULL || claims == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_INVALID_ARG, "no JSON or no claims");
    if (len > JSON_MAX_INPUT)
        return trellis_reason_set(reason, TRELLIS_ERR_TOO_LARGE,
                                  "claims JSON is %zu bytes, more than %d", len, JSON_MAX_INPUT);
    work = *claims;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claims JSON, line %d: %s", jerr.line,
                                 jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "claims JSON is not an object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        int id = find_claim(key);
        if (id < 0) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE, "unknown claim \"%s\"", key);
            goto out;
        }
        if (seen[id]) {
            err = trellis_reason_set(reason, TRELLIS_ERR_PARSE,
                                     "claim \"%s\" given twice (name and alias)",
                                     json_names[id].name);
            goto out;
        }
        seen[id] = true;
        err = apply_member((json_claim_t)id, key, v, &work, reason);
        if (err != TRELLIS_OK)
            goto out;
    }
    *claims = work;
    err = TRELLIS_OK;
out:
    json_decref(root);
    return err;
}
