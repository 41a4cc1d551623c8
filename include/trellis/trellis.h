/*
 * Trellis: zero-touch device enrollment anchored in a hardware Root of Trust.
 *
 * Conventions that hold for every public header under include/trellis/:
 *
 * - Errors. Every function that can fail returns a trellis_err_t (error.h); TRELLIS_OK is zero.
 *   On failure, outputs are left zeroed or NULL and no partial state is kept. Where a caller
 *   benefits from a precise reason, the function also takes a trellis_reason_t *, which may be
 *   NULL.
 * - Ownership. `_init`/`_free` (or `_cleanup`) work on caller memory; `_new`/`_free` allocate and
 *   release. `_free(NULL)` is a no-op. Inputs are `const`. Outputs into caller memory are
 *   `(buf, buf_size, *out_len)`; calling with buf NULL returns the size needed in *out_len with
 *   TRELLIS_ERR_BUFFER_TOO_SMALL.
 * - Limits. Every growable buffer has a hard maximum, documented where the buffer is declared.
 * - Secrets. Private keys and PINs are never logged and never appear in error text. Memory that
 *   held a secret is cleansed before it is released. MACs and tokens are compared in constant
 *   time.
 * - Names. `trellis_` is the public API; `tr__` marks internals shared across files of one
 *   component.
 * - Threads. Objects are not shared between threads unless their header says so; services run
 *   one event loop and one context per thread.
 */
#ifndef TRELLIS_TRELLIS_H
#define TRELLIS_TRELLIS_H

#include "trellis/error.h"
#include "trellis/log.h"

#define TRELLIS_VERSION "0.1.0"

#endif /* TRELLIS_TRELLIS_H */
