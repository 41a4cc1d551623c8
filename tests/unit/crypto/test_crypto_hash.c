#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto_fixture.h"
#include "test_support.h"
#include "trellis/crypto.h"
#include "trellis/encoding.h"

/* Known-answer vectors of FIPS 180-2 appendix B (and the empty message). */
static const struct {
    const char *message;
    const char *digest_hex;
} vectors[] = {
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

/* FIPS 180-2 B.3: one million repetitions of 'a'. */
static const char million_a_hex[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void hex_to_digest(const char *hex, uint8_t out[TRELLIS_SHA256_LEN])
{
    size_t len = 0;
    assert_int_equal(trellis_hex_decode(hex, strlen(hex), out, TRELLIS_SHA256_LEN, &len),
                     TRELLIS_OK);
    assert_int_equal(len, TRELLIS_SHA256_LEN);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        uint8_t want[TRELLIS_SHA256_LEN];
        uint8_t got[TRELLIS_SHA256_LEN];
        hex_to_digest(vectors[i].digest_hex, want);
        assert_int_equal(
            trellis_sha256((const uint8_t *)vectors[i].message, strlen(vectors[i].message), got),
            TRELLIS_OK);
        assert_memory_equal(got, want, TRELLIS_SHA256_LEN);
    }
}

static void test_sha256_empty_accepts_null(void **state)
{
    (void)state;
    uint8_t want[TRELLIS_SHA256_LEN];
    uint8_t got[TRELLIS_SHA256_LEN];
    hex_to_digest(vectors[1].digest_hex, want);
    assert_int_equal(trellis_sha256(NULL, 0, got), TRELLIS_OK);
    assert_memory_equal(got, want, TRELLIS_SHA256_LEN);
    assert_int_equal(trellis_sha256_two(NULL, 0, NULL, 0, got), TRELLIS_OK);
    assert_memory_equal(got, want, TRELLIS_SHA256_LEN);
}

static void test_sha256_two_equals_one(void **state)
{
    (void)state;
    const char *msg = vectors[2].message;
    size_t len = strlen(msg);
    uint8_t want[TRELLIS_SHA256_LEN];
    assert_int_equal(trellis_sha256((const uint8_t *)msg, len, want), TRELLIS_OK);
    /* Every split point, the empty halves included, gives the one-buffer digest. */
    for (size_t cut = 0; cut <= len; cut++) {
        uint8_t got[TRELLIS_SHA256_LEN];
        assert_int_equal(trellis_sha256_two((const uint8_t *)msg, cut, (const uint8_t *)msg + cut,
                                            len - cut, got),
                         TRELLIS_OK);
        assert_memory_equal(got, want, TRELLIS_SHA256_LEN);
    }
}

static void test_sha256_null_with_length_refused(void **state)
{
    (void)state;
    uint8_t got[TRELLIS_SHA256_LEN];
    memset(got, 0xaa, sizeof(got));
    assert_int_equal(trellis_sha256(NULL, 1, got), TRELLIS_ERR_INVALID_ARG);
    uint8_t zero[TRELLIS_SHA256_LEN] = {0};
    assert_memory_equal(got, zero, sizeof(zero));
    assert_int_equal(trellis_sha256_two((const uint8_t *)"a", 1, NULL, 2, got),
                     TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_sha256_two(NULL, 2, (const uint8_t *)"a", 1, got),
                     TRELLIS_ERR_INVALID_ARG);
}

static void test_sha256_file_streams(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    fixture_path(path, sizeof(path), dir, "million-a");
    /* One million bytes span many 64 KiB chunks and end on a partial one. */
    size_t len = 1000000;
    char *data = malloc(len);
    assert_non_null(data);
    memset(data, 'a', len);
    fixture_write_file(path, data, len);
    free(data);

    uint8_t want[TRELLIS_SHA256_LEN];
    uint8_t got[TRELLIS_SHA256_LEN];
    hex_to_digest(million_a_hex, want);
    assert_int_equal(trellis_sha256_file(path, got), TRELLIS_OK);
    assert_memory_equal(got, want, TRELLIS_SHA256_LEN);

    fixture_path(path, sizeof(path), dir, "empty");
    fixture_write_file(path, "", 0);
    hex_to_digest(vectors[1].digest_hex, want);
    assert_int_equal(trellis_sha256_file(path, got), TRELLIS_OK);
    assert_memory_equal(got, want, TRELLIS_SHA256_LEN);
    fixture_rmdir(dir);
}

static void test_sha256_file_errors(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir();
    char path[4096];
    uint8_t got[TRELLIS_SHA256_LEN];
    uint8_t zero[TRELLIS_SHA256_LEN] = {0};

    fixture_path(path, sizeof(path), dir, "absent");
    assert_int_equal(trellis_sha256_file(path, got), TRELLIS_ERR_NOT_FOUND);
    assert_memory_equal(got, zero, sizeof(zero));
    /* A directory is not a file to measure. */
    assert_int_equal(trellis_sha256_file(dir, got), TRELLIS_ERR_IO);
    /* Neither is a FIFO, and opening one must not hang. */
    fixture_path(path, sizeof(path), dir, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(trellis_sha256_file(path, got), TRELLIS_ERR_IO);
    assert_int_equal(trellis_sha256_file(NULL, got), TRELLIS_ERR_INVALID_ARG);
    fixture_rmdir(dir);
}

static void test_ct_equal(void **state)
{
    (void)state;
    uint8_t a[32];
    uint8_t b[32];
    for (size_t i = 0; i < sizeof(a); i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    assert_int_equal(trellis_ct_equal(a, b, sizeof(a)), 1);
    b[0] ^= 1;
    assert_int_equal(trellis_ct_equal(a, b, sizeof(a)), 0);
    b[0] ^= 1;
    b[31] ^= 0x80;
    assert_int_equal(trellis_ct_equal(a, b, sizeof(a)), 0);
    /* Only the first len bytes count. */
    assert_int_equal(trellis_ct_equal(a, b, 31), 1);
    assert_int_equal(trellis_ct_equal(a, b, 0), 1);
    assert_int_equal(trellis_ct_equal(NULL, NULL, 0), 1);
    assert_int_equal(trellis_ct_equal(NULL, b, 1), 0);
    assert_int_equal(trellis_ct_equal(a, NULL, 1), 0);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32] = {0};
    uint8_t b[32] = {0};
    uint8_t zero[32] = {0};
    assert_int_equal(trellis_random(a, sizeof(a)), TRELLIS_OK);
    assert_int_equal(trellis_random(b, sizeof(b)), TRELLIS_OK);
    /* 2^-256 chance of a false failure. */
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(trellis_random(NULL, 0), TRELLIS_OK);
    assert_int_equal(trellis_random(NULL, 1), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_empty_accepts_null),
        cmocka_unit_test(test_sha256_two_equals_one),
        cmocka_unit_test(test_sha256_null_with_length_refused),
        cmocka_unit_test(test_sha256_file_streams),
        cmocka_unit_test(test_sha256_file_errors),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
