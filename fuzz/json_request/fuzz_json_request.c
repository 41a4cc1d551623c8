/*
 * Fuzzes the strict JSON request path every HTTP handler takes, on an enrollment-style body
 * {"csr": B64, "evidence": B64}: parse, refuse unknown members, decode both members into bounded
 * buffers, then check invariants that must hold for any input:
 * - a decoded member fits its buffer and re-encodes to the same bytes;
 * - a parsed body dumps to text that parses back to an equal object;
 * - the result agrees with jansson reading the same bytes on its own (the parser's quick path for
 *   flat string-only objects must build exactly what jansson builds, and refuse nothing it
 *   accepts within the limits);
 * - an error body built from the reason, or from arbitrary bytes as detail, is valid JSON with
 *   the right code and a detail within TRELLIS_JSON_DETAIL_MAX bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trellis/json.h"

#define BODY_MAX     16384
#define CSR_MAX      4096
#define EVIDENCE_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* A member that decoded must survive a round trip through trellis_json_set_b64url. */
static void check_round_trip(const uint8_t *bytes, size_t len, size_t max)
{
    json_t *obj = json_object();
    uint8_t *back = malloc(max > 0 ? max : 1);
    size_t back_len = 0;
    check(obj != NULL && back != NULL);
    check(len <= max);
    check(trellis_json_set_b64url(obj, "v", bytes, len) == TRELLIS_OK);
    check(trellis_json_get_b64url(obj, "v", back, max, &back_len, NULL) == TRELLIS_OK);
    check(back_len == len && memcmp(back, bytes, len) == 0);
    free(back);
    json_decref(obj);
}

static void check_dump_reparses(const json_t *body)
{
    char *text = NULL;
    size_t len = 0;
    json_t *again = NULL;
    check(trellis_json_dump(body, &text, &len) == TRELLIS_OK);
    check(strlen(text) == len);
    check(trellis_json_parse_object(text, len, TRELLIS_JSON_TEXT_MAX, &again, NULL) == TRELLIS_OK);
    check(json_equal(body, again));
    json_decref(again);
    trellis_json_text_free(text);
}

static void check_error_body(trellis_err_t err, const char *detail)
{
    char *text = NULL;
    size_t len = 0;
    json_error_t jerr;
    check(trellis_json_error_body(err, detail, &text, &len) == TRELLIS_OK);
    json_t *parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    check(parsed != NULL);
    const char *code = json_string_value(json_object_get(parsed, "error"));
    const json_t *shown = json_object_get(parsed, "detail");
    check(code != NULL && strcmp(code, trellis_err_api_code(err)) == 0);
    check(json_is_string(shown) && json_string_length(shown) <= TRELLIS_JSON_DETAIL_MAX);
    json_decref(parsed);
    trellis_json_text_free(text);
}

/* Nesting depth of the body outside strings, as the parser counts it. */
static size_t depth_of(const uint8_t *data, size_t size)
{
    size_t depth = 0, max = 0;
    int in_string = 0;
    for (size_t i = 0; i < size; i++) {
        if (in_string) {
            if (data[i] == '\\')
                i++;
            else if (data[i] == '"')
                in_string = 0;
        } else if (data[i] == '"') {
            in_string = 1;
        } else if (data[i] == '{' || data[i] == '[') {
            if (++depth > max)
                max = depth;
        } else if ((data[i] == '}' || data[i] == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

static void check_agrees_with_jansson(const uint8_t *data, size_t size, const json_t *ours)
{
    json_error_t jerr;
    json_t *theirs = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (ours != NULL) {
        check(theirs != NULL && json_equal(ours, theirs));
    } else if (theirs != NULL && json_is_object(theirs) && size > 0 && size <= BODY_MAX &&
               memchr(data, '\0', size) == NULL && depth_of(data, size) <= TRELLIS_JSON_MAX_DEPTH) {
        abort(); /* refused what jansson accepts, though within every limit */
    }
    json_decref(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const allowed[] = {"csr", "evidence"};
    static uint8_t csr[CSR_MAX];
    static uint8_t evidence[EVIDENCE_MAX];
    char detail[1024];
    json_t *body = NULL;
    trellis_reason_t reason;
    size_t csr_len = 0;
    size_t evidence_len = 0;
    trellis_err_t err;

    err = trellis_json_parse_object((const char *)data, size, BODY_MAX, &body, &reason);
    check((err == TRELLIS_OK) == (body != NULL));
    check_agrees_with_jansson(data, size, body);
    if (err == TRELLIS_OK) {
        check_dump_reparses(body);
        err = trellis_json_reject_unknown(body, allowed, 2, &reason);
        if (err == TRELLIS_OK)
            err = trellis_json_get_b64url(body, "csr", csr, sizeof(csr), &csr_len, &reason);
        if (err == TRELLIS_OK) {
            check_round_trip(csr, csr_len, sizeof(csr));
            err = trellis_json_get_b64url(body, "evidence", evidence, sizeof(evidence),
                                          &evidence_len, &reason);
        }
        if (err == TRELLIS_OK)
            check_round_trip(evidence, evidence_len, sizeof(evidence));
        json_decref(body);
    }
    check(memchr(reason.text, '\0', sizeof(reason.text)) != NULL);
    if (err != TRELLIS_OK)
        check_error_body(err, reason.text);

    /* The raw input as detail text: any bytes must come out as safe, valid JSON. */
    size_t n = size < sizeof(detail) - 1 ? size : sizeof(detail) - 1;
    memcpy(detail, data, n);
    detail[n] = '\0';
    check_error_body(TRELLIS_ERR_BAD_EVIDENCE, detail);
    return 0;
}
