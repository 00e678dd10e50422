/*
 * bench_reduce.c -- a parallel sum of doubles: crew_reduce with grain 0
 * beside OpenMP `parallel for reduction(+:sum)`, oneTBB parallel_reduce
 * (auto_partitioner) and a serial loop, over 10^6, 10^7 and 10^8 elements.
 *
 * Every peer sums its ranges with the same left-to-right loop (kernels.h).
 * The array holds small whole numbers, so every partial sum is exact in a
 * double and the total is the same bit for bit however the range is split:
 * each run's result is compared exactly with the known total.  Small arrays
 * are summed several times per timed run (about 10^8 elements a run); the
 * figure is the time of one sum.
 *
 * Usage: bench_reduce [-w N] [-r R] [-m] [-q] [-p PEERS] [-n 1e6,1e7,1e8]
 */
#include <omp.h>

#include "bench.h"
#include "crew.h"
#include "kernels.h"
#include "tbb_peers.h"

typedef struct red_ctx {
    crew *pool;
    const double *a;
    size_t n;
    size_t sweeps;
    double result; /* the last sum of the last run */
    double expect;
    int bad;       /* some sum of the run differed from the first */
} red_ctx;

static void note(red_ctx *c, size_t s, double sum)
{
    if (s == 0)
        c->result = sum;
    else if (sum != c->result)
        c->bad = 1;
}

static void sum_init(void *ctx, void *acc)
{
    (void)ctx;
    *(double *)acc = 0;
}

static void sum_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    *(double *)acc += bench_sum_range(((const red_ctx *)ctx)->a, lo, hi);
}

static void sum_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    *(double *)acc += *(const double *)other;
}

static const crew_reducer sum_reducer = {sizeof(double), sum_init, sum_body, sum_combine};

static void run_crew(void *p)
{
    red_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++) {
        double sum;
        int rc = crew_reduce(c->pool, 0, c->n, 0, &sum_reducer, c, &sum);
        if (rc != 0)
            bench_fail("crew_reduce: %s", crew_strerror(rc));
        note(c, s, sum);
    }
}

static void run_omp(void *p)
{
    red_ctx *c = p;
    const double *a = c->a;
    size_t n = c->n;
    for (size_t s = 0; s < c->sweeps; s++) {
        double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum)
        for (size_t i = 0; i < n; i++)
            sum += a[i];
        note(c, s, sum);
    }
}

static void run_tbb(void *p)
{
    red_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++)
        note(c, s, tbb_sum(c->a, c->n));
}

static void run_serial(void *p)
{
    red_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++)
        note(c, s, bench_sum_range(c->a, 0, c->n));
}

static int check(void *p)
{
    red_ctx *c = p;
    int ok = !c->bad && c->result == c->expect;
    if (!ok)
        fprintf(stderr, "sum of %zu: got %.17g, expected %.17g%s\n", c->n, c->result, c->expect,
                c->bad ? " (and the sums of one run differed)" : "");
    c->bad = 0, c->result = -1;
    return !ok;
}

int main(int argc, char **argv)
{
    bench_opts o;
    size_t sizes[BENCH_MAX_SIZES];
    int nsizes;
    int rc = bench_count_args(argc, argv, &o, "element counts", sizes, &nsizes);
    if (rc >= 0)
        return rc;
    double per_run = o.quick ? 1e7 : 1e8;

    crew *pool = bench_open_peers(&o);
    bench_header("sum of doubles: crew_reduce vs OpenMP reduction vs TBB parallel_reduce; "
                 "ms per sum", &o);

    for (int s = 0; s < nsizes; s++) {
        size_t n = sizes[s];
        double *a = malloc(n * sizeof *a);
        if (!a)
            bench_fail("out of memory for %zu elements", n);
        double expect = 0;
        for (size_t i = 0; i < n; i++) {
            a[i] = (double)((i * 2654435761u) % 1000); /* whole numbers: exact sums */
            expect += a[i];
        }
        red_ctx ctx = {.pool = pool, .a = a, .n = n, .expect = expect, .result = -1};
        ctx.sweeps = (size_t)(per_run / (double)n);
        ctx.sweeps = ctx.sweeps < 1 ? 1 : ctx.sweeps;
        bench_peer p[] = BENCH_PEERS4(run_crew, run_omp, run_tbb, run_serial, check);
        bench_measure_line(p, 4, &ctx, &o, 1e6 * (double)ctx.sweeps, "ms", "reduce n=%zu", n);
        bench_verdict_parallel(p, 4);
        free(a);
    }
    crew_close(pool);
    return 0;
}
