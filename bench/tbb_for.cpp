/* tbb_for.cpp -- the oneTBB side of bench_for: parallel_for, auto_partitioner. */
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "kernels.h"
#include "tbb_common.hpp"

extern "C" void tbb_for_lcg(uint64_t *a, size_t n)
{
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, n),
        [a](const tbb::blocked_range<size_t> &r) { bench_lcg_range(a, r.begin(), r.end()); },
        tbb::auto_partitioner());
}

extern "C" void tbb_for_mix(uint64_t *total, size_t n)
{
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, n),
        [total](const tbb::blocked_range<size_t> &r) {
            __atomic_fetch_add(total, bench_mix_range(r.begin(), r.end()), __ATOMIC_RELAXED);
        },
        tbb::auto_partitioner());
}
