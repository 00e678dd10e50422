/*
 * tbb_common.hpp -- included once by each bench/tbb_<bench>.cpp: the
 * thread limit every TBB peer runs under.
 */
#ifndef CREW_BENCH_TBB_COMMON_HPP
#define CREW_BENCH_TBB_COMMON_HPP

#include <memory>

#include <tbb/global_control.h>

#include "tbb_peers.h"

/* Lives until exit: the limit holds only while the object exists. */
static std::unique_ptr<tbb::global_control> tbb_limit;

extern "C" void tbb_setup(unsigned workers)
{
    tbb_limit = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, workers);
}

#endif
