/* The `trellis ingest` subcommands that read the telemetry store (ingest_query.c). */
#ifndef TRELLIS_CLI_INGEST_H
#define TRELLIS_CLI_INGEST_H

/* `trellis ingest telemetry DEVICE [--since T] [--limit N] [--json] --db PATH` */
int tr__ingest_telemetry(int argc, char **argv);

/* `trellis ingest devices [--json] --db PATH`: one line per device with its counts. */
int tr__ingest_devices(int argc, char **argv);

/* `trellis ingest stats [--json] --db PATH`: the persistent counters (rejects by reason). */
int tr__ingest_stats(int argc, char **argv);

#endif
