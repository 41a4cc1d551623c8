#include "ingest_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_support.h"

void ingest_test_tmpdir(char *out, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(out, size, "%s/trellis-ingest-test.XXXXXX", tmp);
    assert_non_null(mkdtemp(out));
}

void ingest_test_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            ingest_test_rmtree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

typedef struct {
    trellis_ingest_row_t *rows;
    size_t max;
    size_t n;
} collect_t;

static int collect(const trellis_ingest_row_t *row, void *arg)
{
    collect_t *c = arg;
    if (c->n < c->max)
        c->rows[c->n] = *row;
    c->n++;
    return 0;
}

size_t ingest_test_query(trellis_ingest_store_t *store, const char *device_id, int64_t since_ms,
                         trellis_ingest_row_t *rows, size_t max)
{
    collect_t c = {rows, max, 0};
    assert_int_equal(store->query(store->ctx, device_id, since_ms, max, collect, &c), TRELLIS_OK);
    return c.n;
}
