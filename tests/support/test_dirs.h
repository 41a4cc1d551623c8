/* Temporary directories for tests: made under $TMPDIR (or /tmp), removed with all they hold. */
#ifndef TRELLIS_TEST_DIRS_H
#define TRELLIS_TEST_DIRS_H

#include <stddef.h>

/* mkdtemp of $TMPDIR/trellis-TAG-XXXXXX into out (size bytes); fails the test if it cannot. */
void trellis_test_tmpdir(char *out, size_t size, const char *tag);

/* Removes dir and everything in it, symbolic links not followed. A directory that is already
 * gone is fine; any other failure fails the test. */
void trellis_test_rmtree(const char *dir);

#endif
