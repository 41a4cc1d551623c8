/* nftw */
#define _XOPEN_SOURCE 700
#include "test_dirs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test_support.h"

void trellis_test_tmpdir(char *out, size_t size, const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    int n = snprintf(out, size, "%s/trellis-%s-XXXXXX", base, tag);
    assert_true(n > 0 && (size_t)n < size);
    assert_non_null(mkdtemp(out));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void trellis_test_rmtree(const char *dir)
{
    struct stat st;
    if (dir == NULL || dir[0] == '\0' || (lstat(dir, &st) != 0 && errno == ENOENT))
        return;
    assert_int_equal(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}
