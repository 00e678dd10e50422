/* tbb_reduce.cpp -- the oneTBB side of bench_reduce: parallel_reduce. */
#include <functional>

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>

#include "kernels.h"
#include "tbb_common.hpp"

extern "C" double tbb_sum(const double *a, size_t n)
{
    return tbb::parallel_reduce(
        tbb::blocked_range<size_t>(0, n), 0.0,
        [a](const tbb::blocked_range<size_t> &r, double acc) {
            return acc + bench_sum_range(a, r.begin(), r.end());
        },
        std::plus<double>(), tbb::auto_partitioner());
}
