#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto_fixture.h"
#include "test_support.h"
#include "trellis/crypto.h"

static int has_private(const EVP_PKEY *key)
{
    BIGNUM *priv = NULL;
    int has = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1;
    BN_clear_free(priv);
    return has;
}

static void assert_same_point(const EVP_PKEY *a, const EVP_PKEY *b)
{
    uint8_t pa[TRELLIS_P256_POINT_LEN];
    uint8_t pb[TRELLIS_P256_POINT_LEN];
    assert_int_equal(trellis_p256_public_point(a, pa), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(b, pb), TRELLIS_OK);
    assert_memory_equal(pa, pb, sizeof(pa));
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_generate_and_point_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *pub = NULL;
    uint8_t point[TRELLIS_P256_POINT_LEN];
    uint8_t again[TRELLIS_P256_POINT_LEN];
    trellis_reason_t reason;

    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_check_key(key, &reason), TRELLIS_OK);
    assert_true(has_private(key));
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    assert_int_equal(point[0], 0x04);
    assert_int_equal(trellis_p256_from_point(point, &pub), TRELLIS_OK);
    assert_false(has_private(pub));
    assert_int_equal(trellis_p256_public_point(pub, again), TRELLIS_OK);
    assert_memory_equal(point, again, sizeof(point));
    assert_int_equal(trellis_p256_check_key(pub, NULL), TRELLIS_OK);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    assert_int_equal(trellis_p256_generate(NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_from_point_refuses_bad_points(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *out = NULL;
    uint8_t point[TRELLIS_P256_POINT_LEN];
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_OK);
    EVP_PKEY_free(key);

    point[64] ^= 0x01; /* y no longer satisfies the curve equation */
    assert_int_equal(trellis_p256_from_point(point, &out), TRELLIS_ERR_BAD_KEY);
    assert_null(out);
    point[64] ^= 0x01;
    point[0] = 0x02; /* compressed marker with 64 bytes after it */
    assert_int_equal(trellis_p256_from_point(point, &out), TRELLIS_ERR_BAD_KEY);
    memset(point, 0, sizeof(point));
    point[0] = 0x04; /* (0, 0) is not on P-256 */
    assert_int_equal(trellis_p256_from_point(point, &out), TRELLIS_ERR_BAD_KEY);
    /* x = p (the field prime) is out of range even before the curve equation. */
    static const uint8_t p[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    memcpy(point + 1, p, 32);
    assert_int_equal(trellis_p256_from_point(point, &out), TRELLIS_ERR_BAD_KEY);
    assert_null(out);
    assert_int_equal(trellis_p256_from_point(point, NULL), TRELLIS_ERR_INVALID_ARG);
}

static void test_save_and_load(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char priv_path[4096];
    char pub_path[4096];
    EVP_PKEY *key = NULL;
    EVP_PKEY *loaded = NULL;

    umask(022);
    fixture_path(priv_path, sizeof(priv_path), dir, "key.pem");
    fixture_path(pub_path, sizeof(pub_path), dir, "pub.pem");
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_save_private_pem(key, priv_path), TRELLIS_OK);
    assert_int_equal(file_mode(priv_path), 0600);
    assert_int_equal(trellis_p256_save_public_pem(key, pub_path), TRELLIS_OK);
    assert_int_equal(file_mode(pub_path), 0644);

    assert_int_equal(trellis_p256_load_private_pem(priv_path, &loaded), TRELLIS_OK);
    assert_true(has_private(loaded));
    assert_same_point(key, loaded);
    EVP_PKEY_free(loaded);

    /* The public loader reads a public key file, or the public half of a private one. */
    assert_int_equal(trellis_p256_load_public_pem(pub_path, &loaded), TRELLIS_OK);
    assert_false(has_private(loaded));
    assert_same_point(key, loaded);
    EVP_PKEY_free(loaded);
    assert_int_equal(trellis_p256_load_public_pem(priv_path, &loaded), TRELLIS_OK);
    assert_false(has_private(loaded));
    assert_same_point(key, loaded);
    EVP_PKEY_free(loaded);

    /* Saving again replaces the file and keeps the mode. */
    EVP_PKEY *other = NULL;
    assert_int_equal(trellis_p256_generate(&other), TRELLIS_OK);
    assert_int_equal(trellis_p256_save_private_pem(other, priv_path), TRELLIS_OK);
    assert_int_equal(file_mode(priv_path), 0600);
    assert_int_equal(trellis_p256_load_private_pem(priv_path, &loaded), TRELLIS_OK);
    assert_same_point(other, loaded);
    EVP_PKEY_free(loaded);
    EVP_PKEY_free(other);

    /* A public-only key has no private half to save. */
    EVP_PKEY *pub = NULL;
    assert_int_equal(trellis_p256_load_public_pem(pub_path, &pub), TRELLIS_OK);
    fixture_path(priv_path, sizeof(priv_path), dir, "none.pem");
    assert_int_equal(trellis_p256_save_private_pem(pub, priv_path), TRELLIS_ERR_BAD_KEY);
    assert_int_equal(access(priv_path, F_OK), -1);
    EVP_PKEY_free(pub);
    assert_int_equal(trellis_p256_save_private_pem(NULL, priv_path), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_save_private_pem(key, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_save_public_pem(NULL, pub_path), TRELLIS_ERR_INVALID_ARG);
    EVP_PKEY_free(key);
    fixture_rmdir(dir);
}

static void test_load_sec1_private_key(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    EVP_PKEY *key = NULL;
    EVP_PKEY *loaded = NULL;
    fixture_path(path, sizeof(path), dir, "sec1.pem");
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    BIO *bio = BIO_new_file(path, "wb");
    assert_non_null(bio);
    /* "EC PRIVATE KEY" (RFC 5915), as `openssl ecparam -genkey` writes. */
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL), 1);
    BIO_free(bio);
    assert_int_equal(trellis_p256_load_private_pem(path, &loaded), TRELLIS_OK);
    assert_same_point(key, loaded);
    EVP_PKEY_free(loaded);
    EVP_PKEY_free(key);
    fixture_rmdir(dir);
}

static void test_load_errors(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    EVP_PKEY *key = NULL;

    fixture_path(path, sizeof(path), dir, "absent.pem");
    assert_int_equal(trellis_p256_load_private_pem(path, &key), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(trellis_p256_load_public_pem(path, &key), TRELLIS_ERR_NOT_FOUND);
    assert_null(key);

    fixture_path(path, sizeof(path), dir, "junk.pem");
    fixture_write_file(path, "not a key\n", 10);
    assert_int_equal(trellis_p256_load_private_pem(path, &key), TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_p256_load_public_pem(path, &key), TRELLIS_ERR_PARSE);

    /* A PEM block with a broken body. */
    static const char broken[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    fixture_write_file(path, broken, sizeof(broken) - 1);
    assert_int_equal(trellis_p256_load_private_pem(path, &key), TRELLIS_ERR_PARSE);

    /* Bigger than any key file may be. */
    static char big[TRELLIS_KEY_FILE_MAX + 1];
    memset(big, '\n', sizeof(big));
    fixture_write_file(path, big, sizeof(big));
    assert_int_equal(trellis_p256_load_private_pem(path, &key), TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_p256_load_public_pem(path, &key), TRELLIS_ERR_TOO_LARGE);
    assert_null(key);

    assert_int_equal(trellis_p256_load_private_pem(NULL, &key), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_load_private_pem(path, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_load_public_pem(NULL, &key), TRELLIS_ERR_INVALID_ARG);
    fixture_rmdir(dir);
}

static void test_encrypted_key_refused_without_prompt(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    EVP_PKEY *key = NULL;
    EVP_PKEY *loaded = NULL;
    fixture_path(path, sizeof(path), dir, "enc.pem");
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static const char pass[] = "correct horse";
    assert_int_equal(PEM_write_PKCS8PrivateKey(f, key, EVP_aes_256_cbc(), pass,
                                               (int)sizeof(pass) - 1, NULL, NULL),
                     1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(trellis_p256_load_private_pem(path, &loaded), TRELLIS_ERR_PARSE);
    assert_null(loaded);
    EVP_PKEY_free(key);
    fixture_rmdir(dir);
}

static void test_mismatched_private_key_refused(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    EVP_PKEY *a = NULL;
    EVP_PKEY *b = NULL;
    EVP_PKEY *loaded = NULL;
    uint8_t point_b[TRELLIS_P256_POINT_LEN];
    assert_int_equal(trellis_p256_generate(&a), TRELLIS_OK);
    assert_int_equal(trellis_p256_generate(&b), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(b, point_b), TRELLIS_OK);

    /* RFC 5915 ECPrivateKey of a ends with its publicKey BIT STRING: the 65-byte point. Put
     * b's point there, so the scalar and the stated public key disagree. */
    uint8_t *der = NULL;
    int der_len = i2d_PrivateKey(a, &der);
    assert_true(der_len > TRELLIS_P256_POINT_LEN);
    assert_int_equal(der[der_len - TRELLIS_P256_POINT_LEN], 0x04);
    memcpy(der + der_len - TRELLIS_P256_POINT_LEN, point_b, TRELLIS_P256_POINT_LEN);
    fixture_path(path, sizeof(path), dir, "mismatch.pem");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_true(PEM_write(f, "EC PRIVATE KEY", "", der, der_len) > 0);
    assert_int_equal(fclose(f), 0);
    OPENSSL_free(der);

    assert_int_equal(trellis_p256_load_private_pem(path, &loaded), TRELLIS_ERR_BAD_KEY);
    assert_null(loaded);
    EVP_PKEY_free(b);
    EVP_PKEY_free(a);
    fixture_rmdir(dir);
}

static void test_public_from_spki(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *loaded = NULL;
    size_t der_len = 0;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    uint8_t *der = fixture_spki_der(key, &der_len);

    assert_int_equal(trellis_p256_public_from_spki(der, der_len, &loaded), TRELLIS_OK);
    assert_same_point(key, loaded);
    assert_false(has_private(loaded));
    EVP_PKEY_free(loaded);

    /* The same key as PEM, after blank lines. */
    BIO *bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);
    assert_int_equal(BIO_write(bio, "\n\r\n", 3), 3);
    assert_int_equal(PEM_write_bio_PUBKEY(bio, key), 1);
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(trellis_p256_public_from_spki((const uint8_t *)pem, (size_t)pem_len, &loaded),
                     TRELLIS_OK);
    assert_same_point(key, loaded);
    EVP_PKEY_free(loaded);
    loaded = NULL;
    BIO_free(bio);

    /* DER must span the buffer exactly. */
    uint8_t longer[256];
    assert_true(der_len < sizeof(longer));
    memcpy(longer, der, der_len);
    longer[der_len] = 0;
    assert_int_equal(trellis_p256_public_from_spki(longer, der_len + 1, &loaded),
                     TRELLIS_ERR_PARSE);
    assert_int_equal(trellis_p256_public_from_spki(der, der_len - 1, &loaded), TRELLIS_ERR_PARSE);
    /* A point off the curve. */
    memcpy(longer, der, der_len);
    longer[der_len - 1] ^= 0x01;
    trellis_err_t err = trellis_p256_public_from_spki(longer, der_len, &loaded);
    assert_true(err == TRELLIS_ERR_PARSE || err == TRELLIS_ERR_BAD_KEY);
    assert_null(loaded);
    assert_int_equal(trellis_p256_public_from_spki((const uint8_t *)"junk", 4, &loaded),
                     TRELLIS_ERR_PARSE);
    static uint8_t huge[TRELLIS_SPKI_MAX + 1];
    assert_int_equal(trellis_p256_public_from_spki(huge, sizeof(huge), &loaded),
                     TRELLIS_ERR_TOO_LARGE);
    assert_int_equal(trellis_p256_public_from_spki(NULL, 4, &loaded), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_public_from_spki(der, der_len, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_null(loaded);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
}

static void test_compressed_spki_gives_uncompressed_point(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    EVP_PKEY *loaded = NULL;
    uint8_t want[TRELLIS_P256_POINT_LEN];
    uint8_t got[TRELLIS_P256_POINT_LEN];
    size_t der_len = 0;
    assert_int_equal(trellis_p256_generate(&key), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(key, want), TRELLIS_OK);
    /* SEC 1 §2.3.3 compressed form in the SPKI: 0x02/0x03 || X, 33 bytes instead of 65. */
    assert_int_equal(EVP_PKEY_set_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                    "compressed"),
                     1);
    uint8_t *der = fixture_spki_der(key, &der_len);
    assert_int_equal(der_len, 59);
    assert_int_equal(trellis_p256_public_from_spki(der, der_len, &loaded), TRELLIS_OK);
    assert_int_equal(trellis_p256_public_point(loaded, got), TRELLIS_OK);
    assert_memory_equal(got, want, sizeof(want));
    EVP_PKEY_free(loaded);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
}

/* Every kind of key Trellis must refuse, with a word its reason must contain. */
static const struct {
    const char *kind;
    const char *reason_word;
} wrong_kinds[] = {
    {"rsa", "RSA"},         {"p384", "secp384r1"},         {"secp256k1", "secp256k1"},
    {"p192", "prime192v1"}, {"explicit-p256", "explicit"}, {"ed25519", "ED25519"},
};

static void test_wrong_kinds_refused_everywhere(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char priv_path[4096];
    char pub_path[4096];
    char out_path[4096];
    fixture_path(priv_path, sizeof(priv_path), dir, "priv.pem");
    fixture_path(pub_path, sizeof(pub_path), dir, "pub.pem");
    fixture_path(out_path, sizeof(out_path), dir, "out.pem");

    for (size_t i = 0; i < sizeof(wrong_kinds) / sizeof(wrong_kinds[0]); i++) {
        EVP_PKEY *key = fixture_key(wrong_kinds[i].kind);
        EVP_PKEY *loaded = NULL;
        trellis_reason_t reason;
        uint8_t point[TRELLIS_P256_POINT_LEN];
        size_t der_len = 0;

        print_message("refusing %s\n", wrong_kinds[i].kind);
        assert_int_equal(trellis_p256_check_key(key, &reason), TRELLIS_ERR_BAD_KEY);
        assert_non_null(strstr(reason.text, wrong_kinds[i].reason_word));

        fixture_write_private_pem(priv_path, key);
        fixture_write_public_pem(pub_path, key);
        assert_int_equal(trellis_p256_load_private_pem(priv_path, &loaded), TRELLIS_ERR_BAD_KEY);
        assert_null(loaded);
        assert_int_equal(trellis_p256_load_public_pem(pub_path, &loaded), TRELLIS_ERR_BAD_KEY);
        assert_null(loaded);
        assert_int_equal(trellis_p256_load_public_pem(priv_path, &loaded), TRELLIS_ERR_BAD_KEY);
        assert_null(loaded);

        uint8_t *der = fixture_spki_der(key, &der_len);
        assert_int_equal(trellis_p256_public_from_spki(der, der_len, &loaded), TRELLIS_ERR_BAD_KEY);
        assert_null(loaded);
        OPENSSL_free(der);

        assert_int_equal(trellis_p256_save_private_pem(key, out_path), TRELLIS_ERR_BAD_KEY);
        assert_int_equal(trellis_p256_save_public_pem(key, out_path), TRELLIS_ERR_BAD_KEY);
        assert_int_equal(access(out_path, F_OK), -1);
        assert_int_equal(trellis_p256_public_point(key, point), TRELLIS_ERR_BAD_KEY);
        EVP_PKEY_free(key);
    }
    fixture_rmdir(dir);
}

static void test_explicit_p256_decoded_is_remembered(void **state)
{
    (void)state;
    /* The decoded-from-explicit path: a key read back from explicit-parameter encodings keeps
     * the group name prime256v1, which alone would pass. */
    EVP_PKEY *key = fixture_key("explicit-p256");
    EVP_PKEY *decoded = NULL;
    size_t der_len = 0;
    uint8_t *der = fixture_spki_der(key, &der_len);
    const unsigned char *p = der;
    decoded = d2i_PUBKEY(NULL, &p, (long)der_len);
    assert_non_null(decoded);
    /* Even forced back to named-curve encoding, the key remembers where it came from. */
    assert_int_equal(EVP_PKEY_set_utf8_string_param(decoded, OSSL_PKEY_PARAM_EC_ENCODING,
                                                    OSSL_PKEY_EC_ENCODING_GROUP),
                     1);
    trellis_reason_t reason;
    assert_int_equal(trellis_p256_check_key(decoded, &reason), TRELLIS_ERR_BAD_KEY);
    assert_non_null(strstr(reason.text, "explicit"));
    EVP_PKEY_free(decoded);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
}

static void test_check_key_null(void **state)
{
    (void)state;
    trellis_reason_t reason;
    assert_int_equal(trellis_p256_check_key(NULL, &reason), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_p256_check_key(NULL, NULL), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_point_round_trip),
        cmocka_unit_test(test_from_point_refuses_bad_points),
        cmocka_unit_test(test_save_and_load),
        cmocka_unit_test(test_load_sec1_private_key),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_encrypted_key_refused_without_prompt),
        cmocka_unit_test(test_mismatched_private_key_refused),
        cmocka_unit_test(test_public_from_spki),
        cmocka_unit_test(test_compressed_spki_gives_uncompressed_point),
        cmocka_unit_test(test_wrong_kinds_refused_everywhere),
        cmocka_unit_test(test_explicit_p256_decoded_is_remembered),
        cmocka_unit_test(test_check_key_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
