#include <string.h>
#include <unistd.h>

#include "test_support.h"
#include "trellis/log.h"

/* Captures what one logging call writes, through a pipe. */
static void capture(char *out, size_t out_size, void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    trellis_log_set_fd(fds[1]);
    fn();
    trellis_log_set_fd(STDERR_FILENO);
    close(fds[1]);
    ssize_t n = read(fds[0], out, out_size - 1);
    close(fds[0]);
    out[n < 0 ? 0 : n] = '\0';
}

static void log_plain(void)
{
    trellis_log(TRELLIS_LOG_INFO, "enroll.ok", TRELLIS_KV_STR("device", "0a1b"),
                TRELLIS_KV_INT("n", -42));
}

static void log_hostile(void)
{
    trellis_log(TRELLIS_LOG_WARN, "http.bad", TRELLIS_KV_STR("path", "/x y\"z\n\x01"),
                TRELLIS_KV_STR("bad key=", "v"), TRELLIS_KV_STR("empty", ""),
                TRELLIS_KV_STR("null", NULL));
}

static void log_debug(void)
{
    trellis_log0(TRELLIS_LOG_DEBUG, "hidden");
}

static void log_long(void)
{
    static char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    trellis_log(TRELLIS_LOG_ERROR, "long", TRELLIS_KV_STR("v", big));
}

static void test_plain_line(void **state)
{
    (void)state;
    char out[4096];
    capture(out, sizeof(out), log_plain);
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    assert_non_null(strstr(out, " level=info event=enroll.ok device=0a1b n=-42\n"));
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
}

static void test_values_are_quoted_and_keys_sanitised(void **state)
{
    (void)state;
    char out[4096];
    capture(out, sizeof(out), log_hostile);
    assert_non_null(strstr(out, "path=\"/x y\\\"z\\n\\x01\""));
    assert_non_null(strstr(out, " bad_key_=v"));
    assert_non_null(strstr(out, " empty=\"\""));
    assert_non_null(strstr(out, " null=\"\""));
    /* Exactly one line, whatever the values held. */
    assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out));
}

static void test_level_filter(void **state)
{
    (void)state;
    char out[256];
    capture(out, sizeof(out), log_debug);
    assert_string_equal(out, "");
    trellis_log_set_level(TRELLIS_LOG_DEBUG);
    capture(out, sizeof(out), log_debug);
    trellis_log_set_level(TRELLIS_LOG_INFO);
    assert_non_null(strstr(out, "event=hidden"));
}

static void test_long_line_is_cut(void **state)
{
    (void)state;
    char out[8192];
    capture(out, sizeof(out), log_long);
    size_t n = strlen(out);
    assert_true(n <= 2048);
    assert_memory_equal(out + n - 4, "...\n", 4);
}

static void test_level_parse(void **state)
{
    (void)state;
    trellis_log_level_t l;
    assert_int_equal(trellis_log_level_parse("warn", &l), 0);
    assert_int_equal(l, TRELLIS_LOG_WARN);
    assert_int_equal(trellis_log_level_parse("loud", &l), -1);
    assert_int_equal(trellis_log_level_parse(NULL, &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_line),
        cmocka_unit_test(test_values_are_quoted_and_keys_sanitised),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_long_line_is_cut),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
