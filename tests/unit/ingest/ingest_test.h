/* Helpers shared by the ingest tests. */
#ifndef TRELLIS_INGEST_TEST_H
#define TRELLIS_INGEST_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "trellis/ingest.h"

/* A fresh directory under $TMPDIR (or /tmp); fails the test if it cannot be made. */
void ingest_test_tmpdir(char *out, size_t size);

/* Removes a directory tree made by a test (regular files and directories only). */
void ingest_test_rmtree(const char *dir);

/* Runs store->query and copies at most max rows into rows; returns how many there were. */
size_t ingest_test_query(trellis_ingest_store_t *store, const char *device_id, int64_t since_ms,
                         trellis_ingest_row_t *rows, size_t max);

#endif
