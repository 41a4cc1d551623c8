/*
 * Counts the fdatasync calls of the whole test process. Linking this helper into a test binary
 * puts its own fdatasync in front of libc's, for SQLite too (the executable's definition comes
 * first when shared libraries resolve the name), so a test can check that a commit reached the
 * disk: the one thing a SIGKILL test cannot see, since the page cache survives a killed process.
 */
#ifndef TRELLIS_TEST_SYNC_COUNTER_H
#define TRELLIS_TEST_SYNC_COUNTER_H

/* fdatasync calls so far in this process. */
long trellis_test_fdatasync_calls(void);

#endif
