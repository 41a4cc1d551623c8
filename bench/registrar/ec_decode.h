#ifndef BENCH_EC_DECODE_H
#define BENCH_EC_DECODE_H

/* Registers, for this process, libcrypto's built-in EC key method as the engine default
 * (ec_decode.c says why). 0 on success, -1 otherwise. */
int bench_ec_decode_install(void);

#endif
