/*
 * tbb_peers.h -- the oneTBB side of each C benchmark, implemented in
 * bench/tbb_<bench>.cpp and called from the C main.  Each program links
 * exactly one tbb_<bench>.cpp.
 */
#ifndef CREW_BENCH_TBB_PEERS_H
#define CREW_BENCH_TBB_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "crew.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limit oneTBB to `workers` threads, the caller included (global_control). */
void tbb_setup(unsigned workers);

/* bench_seed: tasks[i].fn(shared, ...) for every i, one TBB task each. */
void tbb_seed_run(const void *shared, crew_task *tasks, size_t n);

/* bench_for: bench_lcg_range over [0, n) with parallel_for, auto_partitioner. */
void tbb_for_lcg(uint64_t *a, size_t n);

/* bench_for: bench_mix_range over [0, n), each range's sum added to *total. */
void tbb_for_mix(uint64_t *total, size_t n);

/* bench_reduce: the sum of a[0, n) with parallel_reduce. */
double tbb_sum(const double *a, size_t n);

/* bench_fib: fib(n) with task_group, one task per call, no cutoff. */
long tbb_fib(int n);

/* bench_latency: `reps` parallel_for calls over [0, 2) with an empty body. */
void tbb_empty_for(size_t reps);

#ifdef __cplusplus
}
#endif

#endif /* CREW_BENCH_TBB_PEERS_H */
