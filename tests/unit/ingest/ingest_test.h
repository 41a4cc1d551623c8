/* Helpers shared by the ingest tests. */
#ifndef TRELLIS_INGEST_TEST_H
#define TRELLIS_INGEST_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "test_dirs.h"
#include "trellis/ingest.h"

/* Runs store->query and copies at most max rows into rows; returns how many there were. */
size_t ingest_test_query(trellis_ingest_store_t *store, const char *device_id, int64_t since_ms,
                         trellis_ingest_row_t *rows, size_t max);

#endif
