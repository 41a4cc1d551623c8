/* Includes every cmocka test needs, in the order cmocka requires. */
#ifndef TRELLIS_TEST_SUPPORT_H
#define TRELLIS_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#endif
