/*
 * Challenges: minted without any state, checked without a lookup, consumed in the store.
 *
 *   challenge = 0x01 || random[16] || expires[8] || HMAC-SHA256(secret, 0x01 || random || expires)
 *
 * expires is Unix seconds, big-endian. The MAC lets any registrar holding the challenge secret
 * (several instances share it) reject forged or altered challenges, and expired ones, before
 * spending a store write or a verifier call on them; the MAC is compared in constant time.
 * Single use is the store's job: the challenge's id (SHA-256 of all its bytes) is consumed there
 * once (TRELLIS_RSTORE_OP_CONSUME) and kept until it expires.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "registrar_internal.h"
#include "trellis/crypto.h"

#define VERSION    0x01
#define RANDOM_LEN 16
#define SIGNED_LEN (1 + RANDOM_LEN + 8)
#define MAC_LEN    32
/* A challenge may claim an expiry this far beyond what this registrar would mint (another
 * instance's clock, a shorter TTL configured since): more is refused as not ours. */
#define CLOCK_SKEW_S 60

static trellis_err_t mac(const uint8_t secret[static TR__CHALLENGE_SECRET_LEN], const uint8_t *data,
                         size_t len, uint8_t out[static MAC_LEN])
{
    size_t out_len = 0;
    if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, TR__CHALLENGE_SECRET_LEN, data, len,
                  out, MAC_LEN, &out_len) == NULL ||
        out_len != MAC_LEN) {
        ERR_clear_error();
        OPENSSL_cleanse(out, MAC_LEN);
        return TRELLIS_ERR_CRYPTO;
    }
    return TRELLIS_OK;
}

trellis_err_t tr__reg_challenge_mint(const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                     int64_t now_s, int64_t ttl_s,
                                     uint8_t out[static TR__CHALLENGE_LEN])
{
    trellis_err_t err = TRELLIS_ERR_INTERNAL;
    memset(out, 0, TR__CHALLENGE_LEN);
    if (ttl_s <= 0 || now_s < 0)
        return TRELLIS_ERR_INVALID_ARG;
    uint64_t expires = (uint64_t)(now_s + ttl_s);
    out[0] = VERSION;
    err = trellis_random(out + 1, RANDOM_LEN);
    if (err != TRELLIS_OK)
        goto out;
    for (int i = 0; i < 8; i++)
        out[1 + RANDOM_LEN + i] = (uint8_t)(expires >> (56 - 8 * i));
    err = mac(secret, out, SIGNED_LEN, out + SIGNED_LEN);
out:
    if (err != TRELLIS_OK)
        memset(out, 0, TR__CHALLENGE_LEN);
    return err;
}

trellis_err_t tr__reg_challenge_check(const uint8_t secret[static TR__CHALLENGE_SECRET_LEN],
                                      const uint8_t *challenge, size_t len, int64_t now_s,
                                      int64_t ttl_s, int64_t *expires_out,
                                      uint8_t id[static TRELLIS_RSTORE_CHALLENGE_ID],
                                      trellis_reason_t *reason)
{
    uint8_t want[MAC_LEN];
    uint64_t expires = 0;

    memset(id, 0, TRELLIS_RSTORE_CHALLENGE_ID);
    if (expires_out != NULL)
        *expires_out = 0;
    if (challenge == NULL)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CHALLENGE, "no challenge");
    if (len != TR__CHALLENGE_LEN || challenge[0] != VERSION)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CHALLENGE,
                                  "not a challenge of this registrar");
    trellis_err_t err = mac(secret, challenge, SIGNED_LEN, want);
    if (err != TRELLIS_OK)
        return err;
    int same = trellis_ct_equal(want, challenge + SIGNED_LEN, MAC_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    if (!same)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CHALLENGE,
                                  "not a challenge of this registrar");
    for (int i = 0; i < 8; i++)
        expires = (expires << 8) | challenge[1 + RANDOM_LEN + i];
    if (expires > (uint64_t)INT64_MAX || (int64_t)expires < now_s)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CHALLENGE,
                                  "challenge expired; fetch a new one");
    if ((int64_t)expires > now_s + ttl_s + CLOCK_SKEW_S)
        return trellis_reason_set(reason, TRELLIS_ERR_BAD_CHALLENGE,
                                  "challenge expires later than this registrar allows");
    err = trellis_sha256(challenge, len, id);
    if (err != TRELLIS_OK)
        return err;
    if (expires_out != NULL)
        *expires_out = (int64_t)expires;
    return TRELLIS_OK;
}
