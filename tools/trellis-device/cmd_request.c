/*
 * `trellis-device --state DIR request --out FILE [--challenge B64URL]`: offline enrollment, step
 * one. Writes the exact JSON body of POST /v1/enroll ({"csr", "evidence"}) for a fresh key, kept
 * as DIR/pending.key (0600) until `install`. The challenge comes from --challenge (fetched from
 * /v1/challenge by whoever carries the request to the registrar) or, without it, from the
 * registrar directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "agent.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"
#include "trellis/fsutil.h"

typedef struct {
    tr__agent_config_t agent;
    char out[TR__AGENT_PATH_MAX];
    char challenge[512];
} request_config_t;

static const trellis_conf_option_t request_options[] = {
    TR__AGENT_COMMON_ROWS(request_config_t),
    TRELLIS_CONF_ROW_STRING("out", request_config_t, out, "", 0,
                            "file to write the request body to"),
    TRELLIS_CONF_ROW_STRING("challenge", request_config_t, challenge, "", 0,
                            "the registrar's challenge, base64url as /v1/challenge gives it; "
                            "empty: fetch it"),
};

static const trellis_conf_spec_t request_spec = TR__AGENT_SPEC(
    "request", "Write an enrollment request (the body of POST /v1/enroll) for offline enrollment.",
    request_config_t, request_options);

int tr__cmd_request(const char *state_dir, int argc, char **argv)
{
    static const char what[] = "request";
    request_config_t cfg;
    tr__agent_t *a = NULL;
    tr__enroll_result_t res;
    EVP_PKEY *key = NULL;
    char *body = NULL;
    char key_path[TR__AGENT_PATH_MAX];
    uint8_t challenge[TRELLIS_EVIDENCE_CHALLENGE_MAX];
    size_t challenge_len = 0;
    int rc = tr__agent_load_config(what, &request_spec, &cfg, &cfg.agent, state_dir, &argc, argv);

    if (rc >= 0)
        return rc;
    if (cfg.out[0] == '\0')
        return tr__agent_usage(what, "--out FILE is required");
    if (cfg.challenge[0] != '\0' &&
        (trellis_b64url_decode(cfg.challenge, strlen(cfg.challenge), challenge, sizeof(challenge),
                               &challenge_len) != TRELLIS_OK ||
         challenge_len == 0))
        return tr__agent_usage(what, "--challenge is not base64url of 1..%d bytes",
                               TRELLIS_EVIDENCE_CHALLENGE_MAX);
    rc = tr__agent_start(what, state_dir, &cfg.agent, &a);
    if (rc != 0)
        goto out;
    rc = 1;
    if (tr__enroll_build_request(a, challenge_len > 0 ? challenge : NULL, challenge_len, &key,
                                 &body, &res) != TRELLIS_OK) {
        rc = tr__agent_fail(what, "%s", res.reason.text);
        goto out;
    }
    /* The key first: a request whose key was lost could never be installed. */
    trellis_err_t err = tr__agent_path(a, TR__AGENT_PENDING_KEY, key_path);
    if (err == TRELLIS_OK)
        err = trellis_p256_save_private_pem(key, key_path);
    if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "cannot store %s: %s", TR__AGENT_PENDING_KEY,
                            trellis_err_message(err));
        goto out;
    }
    err = trellis_file_write_atomic(cfg.out, body, strlen(body), TRELLIS_FILE_PUBLIC);
    if (err != TRELLIS_OK) {
        rc = tr__agent_fail(what, "cannot write %s: %s", cfg.out, trellis_err_message(err));
        goto out;
    }
    printf("wrote %s: POST it to %s/v1/enroll, then `trellis-device --state %s install --in "
           "ANSWER`\n",
           cfg.out, a->registrar_url[0] != '\0' ? a->registrar_url : "REGISTRAR", state_dir);
    rc = 0;
out:
    free(body);
    EVP_PKEY_free(key);
    tr__agent_free(a);
    OPENSSL_cleanse(challenge, sizeof(challenge));
    return rc;
}
