/* Clocks in the units the services count in: wall time for what is stored and shown, the
 * monotonic clock for deadlines, timeouts and durations. */
#ifndef TRELLIS_CLOCK_H
#define TRELLIS_CLOCK_H

#include <stdint.h>

/* CLOCK_REALTIME in milliseconds since the Unix epoch. */
int64_t trellis_wall_ms(void);
/* CLOCK_MONOTONIC in milliseconds / microseconds (from an arbitrary start). */
int64_t trellis_mono_ms(void);
uint64_t trellis_mono_us(void);

#endif /* TRELLIS_CLOCK_H */
