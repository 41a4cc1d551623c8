/* Internals shared by the files of trellis_ingest. */
#ifndef TRELLIS_INGEST_INTERNAL_H
#define TRELLIS_INGEST_INTERNAL_H

#include <stdint.h>

#include "trellis/ingest.h"

/* Wall-clock time in Unix milliseconds. */
int64_t tr__ingest_now_ms(void);

/* Monotonic time in milliseconds, for batch deadlines. */
int64_t tr__ingest_mono_ms(void);

#endif /* TRELLIS_INGEST_INTERNAL_H */
