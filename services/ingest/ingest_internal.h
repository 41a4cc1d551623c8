/* Internals shared by the files of trellis_ingest. */
#ifndef TRELLIS_INGEST_INTERNAL_H
#define TRELLIS_INGEST_INTERNAL_H

#include <stdint.h>

#include "trellis/ingest.h"

/* Wall-clock time in Unix milliseconds. */

/* Monotonic time in milliseconds, for batch deadlines. */

#endif /* TRELLIS_INGEST_INTERNAL_H */
