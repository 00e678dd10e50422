/*
 * kernels.h -- the loop bodies the data-parallel benchmarks time, written
 * once and included by the C and the C++ sides, so that every peer runs
 * exactly the same code and only the runtime around it differs.
 */
#ifndef CREW_BENCH_KERNELS_H
#define CREW_BENCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/*
 * One step of a 64-bit linear congruential map, a[i] = a[i] * K + 1: one
 * multiply and one add per element.  The map is a bijection with a full
 * period, so an element skipped or run twice in any pass stays wrong
 * forever and the final check catches it.
 */
#define BENCH_LCG_K 6364136223846793005ull

static inline void bench_lcg_range(uint64_t *a, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        a[i] = a[i] * BENCH_LCG_K + 1;
}

/*
 * A compute-only iteration with no memory traffic: the sum over [lo, hi) of
 * (i * K + 1) >> 29.  Used where the time should be the runtime's overhead
 * and the cores' speed, not the memory bandwidth.  Integer sums wrap the
 * same in any order, so the total is exact whatever the split.
 */
static inline uint64_t bench_mix_range(size_t lo, size_t hi)
{
    uint64_t s = 0;
    for (size_t i = lo; i < hi; i++)
        s += ((uint64_t)i * BENCH_LCG_K + 1) >> 29;
    return s;
}

/* The plain left-to-right sum of a[lo, hi). */
static inline double bench_sum_range(const double *a, size_t lo, size_t hi)
{
    double s = 0;
    for (size_t i = lo; i < hi; i++)
        s += a[i];
    return s;
}

#endif /* CREW_BENCH_KERNELS_H */
