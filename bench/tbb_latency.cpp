/* tbb_latency.cpp -- the oneTBB side of bench_latency: empty parallel_for. */
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tbb_common.hpp"

extern "C" void tbb_empty_for(size_t reps)
{
    for (size_t i = 0; i < reps; i++)
        tbb::parallel_for(
            tbb::blocked_range<size_t>(0, 2, 1),
            [](const tbb::blocked_range<size_t> &r) {
                asm volatile("" ::"r"(r.begin()) : "memory");
            },
            tbb::simple_partitioner());
}
