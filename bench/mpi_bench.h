/*
 * mpi_bench.h -- what bench_mpi (the driver), peers/mpi_job.c (its MPI
 * program) and peers/mpi_count.c (the byte counter) share: the seed
 * snapshot's root, the counter slots, and the sizes of crew's MPI messages
 * as read from the wire format (src/mpi/engine.c, src/cli/run_mpi.c), which
 * the benchmark then checks against the bytes it counts.
 */
#ifndef CREW_BENCH_MPI_BENCH_H
#define CREW_BENCH_MPI_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "crew.h"

/* The root of the seed job's snapshot: n doubles filled by fill_data. */
typedef struct seed_root {
    uint64_t n;
    crew_ref x; /* double[n], 64-byte aligned */
} seed_root;

/* What mpi_count.c counts: messages and bytes per tag of crew's protocol. */
enum { MPI_COUNT_CHUNK, MPI_COUNT_RESULTS, MPI_COUNT_CANCEL, MPI_COUNT_STOP, MPI_COUNT_OTHER,
       MPI_COUNT_TAGS };

static inline const char *mpi_count_name(int k)
{
    static const char *const names[MPI_COUNT_TAGS] = {"chunk", "results", "cancel", "stop",
                                                      "other"};
    return k >= 0 && k < MPI_COUNT_TAGS ? names[k] : "?";
}

/*
 * The wire format, read from engine.c: a CHUNK message is records {u64 id,
 * u64 order, u32 fn, u32 0, u64 result_size, u64 arg_size} + the argument,
 * padded to 8 bytes; a RESULTS message records {u64 id, i32 status, i32
 * detail, u32 runs, u32 0, u64 len} + the result bytes, padded to 8.  A
 * task run on the root itself sends nothing.
 */
#define WIRE_CHUNK_RECORD 40u
#define WIRE_RESULT_RECORD 32u
static inline uint64_t wire_pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }
static inline uint64_t wire_chunk_bytes(uint64_t arg_size) { return WIRE_CHUNK_RECORD + wire_pad8(arg_size); }
static inline uint64_t wire_result_bytes(uint64_t len) { return WIRE_RESULT_RECORD + wire_pad8(len); }

/*
 * crew run --mpi (run_mpi.c): a task's argument is its task_arg {a
 * pointer, u64 seq, u32 fn, u32 len} + the argument text + NUL; its reply
 * is {double t0, t1} + the output.
 */
#define WIRE_TASK_ARG 24u
#define WIRE_REPLY 16u
static inline uint64_t wire_cli_chunk(size_t arg_len) { return wire_chunk_bytes(WIRE_TASK_ARG + arg_len + 1); }
static inline uint64_t wire_cli_result(size_t out_len) { return wire_result_bytes(WIRE_REPLY + out_len); }

#endif /* CREW_BENCH_MPI_BENCH_H */
