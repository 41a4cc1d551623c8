#include "ingest_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_support.h"

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
