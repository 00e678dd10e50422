/* tbb_fib.cpp -- the oneTBB side of bench_fib: a task_group per call. */
#include <tbb/task_group.h>

#include "tbb_common.hpp"

static long fib(int n)
{
    if (n < 2)
        return n;
    long x = 0, y;
    tbb::task_group g;
    g.run([&x, n] { x = fib(n - 1); });
    y = fib(n - 2);
    g.wait();
    return x + y;
}

extern "C" long tbb_fib(int n)
{
    return fib(n);
}
