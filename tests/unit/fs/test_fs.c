#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"
#include "trellis/fsutil.h"

/* Every test works inside one fresh directory, removed at the end. */
static char base[PATH_MAX];

static void join(char *out, size_t out_size, const char *dir, const char *name)
{
    int n = snprintf(out, out_size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < out_size);
}

static void path_in(char *out, size_t out_size, const char *name)
{
    join(out, out_size, base, name);
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char child[PATH_MAX];
                snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
                rm_rf(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof(base), "%s/trellis-fs-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    return mkdtemp(base) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(base);
    return 0;
}

/* Number of entries in dir, and how many of them look like a temporary of the atomic write. */
static int count_entries(const char *dir, int *temps)
{
    int n = 0;
    *temps = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (strstr(e->d_name, ".tmp-") != NULL)
            (*temps)++;
    }
    closedir(d);
    return n;
}

static void put_plain(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void assert_contents(const char *path, const void *want, size_t want_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(trellis_file_read_all(path, want_len + 16, &buf, &len), TRELLIS_OK);
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, want_len);
    trellis_file_buffer_free(buf, len);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void test_write_content_and_exact_mode(void **state)
{
    (void)state;
    static const mode_t umasks[] = {022, 077, 0};
    static const mode_t modes[] = {TRELLIS_FILE_SECRET, TRELLIS_FILE_PUBLIC};
    char dir[PATH_MAX], path[PATH_MAX];
    path_in(dir, sizeof(dir), "modes");
    assert_int_equal(mkdir(dir, 0700), 0);
    for (size_t u = 0; u < 3; u++) {
        for (size_t m = 0; m < 2; m++) {
            char name[32];
            snprintf(name, sizeof(name), "f-%zu-%zu", u, m);
            join(path, sizeof(path), dir, name);
            mode_t old = umask(umasks[u]);
            trellis_err_t err = trellis_file_write_atomic(path, "secret-ish", 10, modes[m]);
            umask(old);
            assert_int_equal(err, TRELLIS_OK);
            /* The umask neither narrows (077 on 0644) nor widens (0 on 0600) the mode. */
            assert_int_equal(mode_of(path), modes[m]);
            assert_contents(path, "secret-ish", 10);
        }
    }
    int temps = 0;
    assert_int_equal(count_entries(dir, &temps), 6);
    assert_int_equal(temps, 0);
}

static void test_write_replaces_old_file(void **state)
{
    (void)state;
    char path[PATH_MAX];
    path_in(path, sizeof(path), "replace.pem");
    put_plain(path, "old contents, longer than the new ones");
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(trellis_file_write_atomic(path, "new", 3, TRELLIS_FILE_SECRET), TRELLIS_OK);
    assert_contents(path, "new", 3);
    assert_int_equal(mode_of(path), 0600);
    /* Empty contents and a NULL pointer are a valid empty file. */
    assert_int_equal(trellis_file_write_atomic(path, NULL, 0, TRELLIS_FILE_PUBLIC), TRELLIS_OK);
    assert_contents(path, "", 0);
    assert_int_equal(mode_of(path), 0644);
}

static void test_write_large_binary(void **state)
{
    (void)state;
    char path[PATH_MAX];
    path_in(path, sizeof(path), "large.bin");
    size_t len = 3u << 20;
    uint8_t *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 9));
    assert_int_equal(trellis_file_write_atomic(path, data, len, 0640), TRELLIS_OK);
    uint8_t *back = NULL;
    size_t back_len = 0;
    assert_int_equal(trellis_file_read_all(path, len, &back, &back_len), TRELLIS_OK);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, data, len);
    assert_int_equal(mode_of(path), 0640);
    trellis_file_buffer_free(back, back_len);
    free(data);
}

/*
 * A real write failure: RLIMIT_FSIZE makes write(2) fail with EFBIG once the file reaches the
 * limit (SIGXFSZ ignored), as a full disk would with ENOSPC. Whatever byte it strikes at, the
 * old file keeps its contents, an absent file stays absent and no temporary is left.
 */
static void test_write_failure_keeps_old_file(void **state)
{
    (void)state;
    static const rlim_t limits[] = {0, 1, 4095, 4096, 65536, 199999};
    char dir[PATH_MAX], path[PATH_MAX], absent[PATH_MAX];
    path_in(dir, sizeof(dir), "efbig");
    assert_int_equal(mkdir(dir, 0700), 0);
    join(path, sizeof(path), dir, "identity.key");
    join(absent, sizeof(absent), dir, "never.key");
    put_plain(path, "old identity");

    size_t len = 200000;
    uint8_t *data = calloc(1, len);
    assert_non_null(data);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        for (int target = 0; target < 2; target++) {
            struct rlimit small = {.rlim_cur = limits[i], .rlim_max = saved.rlim_max};
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
            trellis_err_t err =
                trellis_file_write_atomic(target ? absent : path, data, len, TRELLIS_FILE_SECRET);
            int e = errno;
            assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
            assert_int_equal(err, TRELLIS_ERR_IO);
            assert_int_equal(e, EFBIG);
            assert_contents(path, "old identity", 12);
            assert_int_equal(access(absent, F_OK), -1);
            int temps = -1;
            assert_int_equal(count_entries(dir, &temps), 1);
            assert_int_equal(temps, 0);
        }
    }
    signal(SIGXFSZ, old_handler);
    free(data);
}

static void test_write_missing_dir(void **state)
{
    (void)state;
    char path[PATH_MAX], dir[PATH_MAX];
    path_in(path, sizeof(path), "no-such-dir/file");
    path_in(dir, sizeof(dir), "no-such-dir");
    assert_int_equal(trellis_file_write_atomic(path, "x", 1, 0600), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(dir, F_OK), -1);
}

/* Runs the write as an unprivileged user when the tests run as root, since root may write into a
 * read-only directory. Returns the trellis_err_t of the write. */
static int write_as_unprivileged(const char *path)
{
    if (geteuid() != 0)
        return (int)trellis_file_write_atomic(path, "new", 3, 0644);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(100);
        _exit((int)trellis_file_write_atomic(path, "new", 3, 0644));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_write_read_only_dir(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX];
    path_in(dir, sizeof(dir), "ro");
    assert_int_equal(mkdir(dir, 0755), 0);
    join(path, sizeof(path), dir, "cert.pem");
    put_plain(path, "old chain");
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(chmod(dir, 0555), 0);
    assert_int_equal(chmod(base, 0755), 0); /* let the unprivileged user reach it */

    assert_int_equal(write_as_unprivileged(path), TRELLIS_ERR_PERMISSION);

    assert_int_equal(chmod(base, 0700), 0);
    assert_contents(path, "old chain", 9);
    int temps = -1;
    assert_int_equal(count_entries(dir, &temps), 1);
    assert_int_equal(temps, 0);
    assert_int_equal(chmod(dir, 0755), 0);
}

static void test_write_over_directory_and_bad_args(void **state)
{
    (void)state;
    char dir[PATH_MAX], path[PATH_MAX];
    path_in(dir, sizeof(dir), "args");
    assert_int_equal(mkdir(dir, 0700), 0);
    join(path, sizeof(path), dir, "sub");
    assert_int_equal(mkdir(path, 0700), 0);

    /* rename(2) refuses to put a file over a directory; the temporary goes away. */
    assert_int_equal(trellis_file_write_atomic(path, "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    int temps = -1;
    assert_int_equal(count_entries(dir, &temps), 1);
    assert_int_equal(temps, 0);

    char trailing[PATH_MAX];
    join(trailing, sizeof(trailing), dir, "");
    assert_int_equal(trellis_file_write_atomic(trailing, "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    join(trailing, sizeof(trailing), dir, "..");
    assert_int_equal(trellis_file_write_atomic(trailing, "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_write_atomic(".", "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_write_atomic(NULL, "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_write_atomic("", "x", 1, 0600), TRELLIS_ERR_INVALID_ARG);
    join(path, sizeof(path), dir, "f");
    assert_int_equal(trellis_file_write_atomic(path, NULL, 5, 0600), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_write_atomic(path, "x", 1, 04755), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(dir, &temps), 1);
}

static void test_write_relative_path(void **state)
{
    (void)state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(base), 0);
    trellis_err_t err = trellis_file_write_atomic("relative.txt", "rel", 3, 0600);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(err, TRELLIS_OK);
    char path[PATH_MAX];
    path_in(path, sizeof(path), "relative.txt");
    assert_contents(path, "rel", 3);
}

static void test_read_all_limits(void **state)
{
    (void)state;
    char path[PATH_MAX], empty[PATH_MAX], missing[PATH_MAX];
    path_in(path, sizeof(path), "hello.txt");
    path_in(empty, sizeof(empty), "empty.txt");
    path_in(missing, sizeof(missing), "missing.txt");
    put_plain(path, "hello");
    put_plain(empty, "");

    uint8_t *buf = (uint8_t *)"sentinel";
    size_t len = 77;
    assert_int_equal(trellis_file_read_all(path, 5, &buf, &len), TRELLIS_OK);
    assert_int_equal(len, 5);
    assert_string_equal((char *)buf, "hello");
    trellis_file_buffer_free(buf, len);

    /* One byte over the maximum is refused, and leaves nothing behind. */
    buf = (uint8_t *)"sentinel";
    assert_int_equal(trellis_file_read_all(path, 4, &buf, &len), TRELLIS_ERR_TOO_LARGE);
    assert_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(trellis_file_read_all(path, 0, &buf, &len), TRELLIS_ERR_TOO_LARGE);

    assert_int_equal(trellis_file_read_all(missing, 100, &buf, &len), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(errno, ENOENT);
    assert_null(buf);

    assert_int_equal(trellis_file_read_all(empty, 0, &buf, &len), TRELLIS_OK);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    assert_int_equal(buf[0], '\0');
    trellis_file_buffer_free(buf, len);

    assert_int_equal(trellis_file_read_all(base, 100, &buf, &len), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_read_all(NULL, 100, &buf, &len), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_read_all(path, 100, NULL, &len), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_read_all(path, 100, &buf, NULL), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_file_read_all(path, SIZE_MAX, &buf, &len), TRELLIS_ERR_INVALID_ARG);
    trellis_file_buffer_free(NULL, 0);
}

/* Feeds n bytes of a known pattern into a FIFO from a child process. */
static pid_t fifo_writer(const char *fifo, size_t n)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        int fd = open(fifo, O_WRONLY);
        if (fd < 0)
            _exit(1);
        uint8_t chunk[1000];
        for (size_t done = 0; done < n;) {
            size_t k = n - done < sizeof(chunk) ? n - done : sizeof(chunk);
            for (size_t i = 0; i < k; i++)
                chunk[i] = (uint8_t)((done + i) % 251);
            if (write(fd, chunk, k) != (ssize_t)k)
                _exit(0); /* the reader stopped early, as it should past its maximum */
            done += k;
        }
        close(fd);
        _exit(0);
    }
    return pid;
}

/* A FIFO has no size to check in advance: the buffer grows, and the maximum still holds. */
static void test_read_all_fifo(void **state)
{
    (void)state;
    char fifo[PATH_MAX];
    path_in(fifo, sizeof(fifo), "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);

    pid_t pid = fifo_writer(fifo, 50000);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(trellis_file_read_all(fifo, 1u << 20, &buf, &len), TRELLIS_OK);
    assert_int_equal(len, 50000);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(buf[i], i % 251);
    assert_int_equal(buf[len], '\0');
    trellis_file_buffer_free(buf, len);
    assert_int_equal(waitpid(pid, NULL, 0), pid);

    pid = fifo_writer(fifo, 50000);
    assert_int_equal(trellis_file_read_all(fifo, 10000, &buf, &len), TRELLIS_ERR_TOO_LARGE);
    assert_null(buf);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void test_mkdir_p(void **state)
{
    (void)state;
    char path[PATH_MAX], part[PATH_MAX];
    mode_t old = umask(022);
    path_in(path, sizeof(path), "a/b/c");
    assert_int_equal(trellis_mkdir_p(path, 0700), TRELLIS_OK);
    assert_int_equal(mode_of(path), 0700);
    path_in(part, sizeof(part), "a/b");
    assert_int_equal(mode_of(part), 0700);
    path_in(part, sizeof(part), "a");
    assert_int_equal(mode_of(part), 0700);
    /* Idempotent, and existing directories keep their mode. */
    assert_int_equal(trellis_mkdir_p(path, 0755), TRELLIS_OK);
    assert_int_equal(mode_of(path), 0700);
    assert_int_equal(mode_of(base), 0700);

    /* The umask does not narrow the mode asked for. */
    umask(077);
    path_in(path, sizeof(path), "wide//open///");
    assert_int_equal(trellis_mkdir_p(path, 0755), TRELLIS_OK);
    umask(old);
    path_in(part, sizeof(part), "wide/open");
    assert_int_equal(mode_of(part), 0755);

    /* A file in the way. */
    path_in(part, sizeof(part), "plain");
    put_plain(part, "x");
    assert_int_equal(trellis_mkdir_p(part, 0700), TRELLIS_ERR_EXISTS);
    path_in(path, sizeof(path), "plain/sub");
    assert_int_equal(trellis_mkdir_p(path, 0700), TRELLIS_ERR_EXISTS);

    assert_int_equal(trellis_mkdir_p(NULL, 0700), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_mkdir_p("", 0700), TRELLIS_ERR_INVALID_ARG);
    assert_int_equal(trellis_mkdir_p("/", 0755), TRELLIS_OK);
}

static void test_fsync_dir(void **state)
{
    (void)state;
    char path[PATH_MAX];
    assert_int_equal(trellis_fsync_dir(base), TRELLIS_OK);
    path_in(path, sizeof(path), "not-here");
    assert_int_equal(trellis_fsync_dir(path), TRELLIS_ERR_NOT_FOUND);
    path_in(path, sizeof(path), "a-file");
    put_plain(path, "x");
    assert_int_equal(trellis_fsync_dir(path), TRELLIS_ERR_NOT_FOUND);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(trellis_fsync_dir(NULL), TRELLIS_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_content_and_exact_mode),
        cmocka_unit_test(test_write_replaces_old_file),
        cmocka_unit_test(test_write_large_binary),
        cmocka_unit_test(test_write_failure_keeps_old_file),
        cmocka_unit_test(test_write_missing_dir),
        cmocka_unit_test(test_write_read_only_dir),
        cmocka_unit_test(test_write_over_directory_and_bad_args),
        cmocka_unit_test(test_write_relative_path),
        cmocka_unit_test(test_read_all_limits),
        cmocka_unit_test(test_read_all_fifo),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_fsync_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
