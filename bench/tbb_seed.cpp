/* tbb_seed.cpp -- the oneTBB side of bench_seed: one TBB task per crew_task. */
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "tbb_common.hpp"

extern "C" void tbb_seed_run(const void *shared, crew_task *tasks, size_t n)
{
    tbb::parallel_for(
        tbb::blocked_range<size_t>(0, n, 1),
        [shared, tasks](const tbb::blocked_range<size_t> &r) {
            for (size_t i = r.begin(); i < r.end(); i++)
                tasks[i].status = tasks[i].fn(shared, tasks[i].arg, tasks[i].result);
        },
        tbb::simple_partitioner());
}
