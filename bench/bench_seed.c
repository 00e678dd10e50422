/*
 * bench_seed.c -- the job crew exists for: 64 different statistics over one
 * big shared read-only array of doubles (256 MiB by default), N at a time.
 *
 * The 64 tasks are 16 kinds of statistic (sum, mean, variance, min/max,
 * histogram, percentiles of a sample by quickselect, autocorrelation at a
 * lag, counts above thresholds, sum of logs, sum of sines, moving-window
 * maximum, local peaks, runs above the mean, skewness and kurtosis, a
 * sorted sample's trimmed mean, entropy), each four times over a different
 * sub-range: lengths from 1/64 of the array to all of it (to an eighth of
 * it for the two that call libm per element), in a fixed shuffled order.
 * So the tasks are irregular: the costliest takes a hundred times as long
 * as the cheapest.
 *
 *   crew    crew_run over 64 crew_task, each fn(shared, arg, result)
 *   omp     #pragma omp parallel for schedule(dynamic, 1) over the 64
 *   tbb     parallel_for over the 64, grain 1, simple_partitioner
 *   serial  a plain loop
 *
 * Each statistic is computed by one thread from start to end, so every peer
 * must produce bit for bit the same 64 results; after every timed run they
 * are compared with the serial ones (and checked before any timing), and
 * the benchmark fails on the first difference.
 *
 * Usage: bench_seed [-w N] [-r R] [-m] [-q] [-p PEERS] [-s MiB] [-v]
 *   -s MiB  size of the shared array (default 256; quick 16)
 *   -v      also print each task's kind, range and serial time
 */
#include <omp.h>

#include "bench.h"
#include "crew.h"
#include "seed_job.h"
#include "tbb_peers.h"

typedef struct seed_ctx {
    crew *pool;
    seed_data data;
    crew_task tasks[NTASKS];     /* the run under test */
    stat_result results[NTASKS]; /* its results */
    stat_result expect[NTASKS];  /* the serial results */
} seed_ctx;

static void run_crew(void *p)
{
    seed_ctx *c = p;
    int rc = crew_run(c->pool, &c->data, c->tasks, NTASKS, NULL);
    if (rc != 0)
        bench_fail("crew_run: %s", crew_strerror(rc));
}

static void run_omp(void *p)
{
    seed_ctx *c = p;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < NTASKS; i++)
        c->tasks[i].status = c->tasks[i].fn(&c->data, c->tasks[i].arg, c->tasks[i].result);
}

static void run_tbb(void *p)
{
    seed_ctx *c = p;
    tbb_seed_run(&c->data, c->tasks, NTASKS);
}

static void run_serial(void *p)
{
    seed_ctx *c = p;
    for (int i = 0; i < NTASKS; i++)
        c->tasks[i].status = c->tasks[i].fn(&c->data, c->tasks[i].arg, c->tasks[i].result);
}

/* Every status 0, every result bitwise the serial one; then poison them. */
static int check(void *p)
{
    seed_ctx *c = p;
    for (int i = 0; i < NTASKS; i++) {
        if (c->tasks[i].status != 0) {
            fprintf(stderr, "seed: task %d failed with status %d\n", i, c->tasks[i].status);
            return 1;
        }
        if (memcmp(&c->results[i], &c->expect[i], sizeof(stat_result)) != 0) {
            const stat_arg *a = c->tasks[i].arg;
            fprintf(stderr, "seed: task %d (%s) differs from the serial result: %.17g vs %.17g\n",
                    i, kind_names[a->kind], c->results[i].v[0], c->expect[i].v[0]);
            return 1;
        }
    }
    memset(c->results, 0xff, sizeof c->results); /* NaNs: a task not run is caught */
    for (int i = 0; i < NTASKS; i++)
        c->tasks[i].status = -1;
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    double mib = 0;
    int c;

    bench_defaults(&o, 3);
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "s:")) != -1) {
        if (bench_common_opt(&o, c, optarg))
            continue;
        if (c == 's' && (mib = atof(optarg)) > 0)
            continue;
        return bench_usage(argv[0], "  -s MiB  size of the shared array (default 256; quick 16)\n",
                           c);
    }
    if (mib <= 0)
        mib = o.quick ? 16 : 256;

    static seed_ctx ctx;
    static stat_arg args[NTASKS];
    ctx.data.n = (size_t)(mib * 1024 * 1024) / sizeof(double);
    if (ctx.data.n < 64 * 64)
        bench_fail("-s %g: the array must hold at least 4096 doubles", mib);
    double *x = malloc(ctx.data.n * sizeof *x);
    if (!x)
        bench_fail("out of memory for %g MiB", mib);
    fill_data(x, ctx.data.n);
    ctx.data.x = x;
    make_args(args, ctx.data.n, o.quick);
    for (int i = 0; i < NTASKS; i++)
        ctx.tasks[i] = (crew_task){.fn = seed_task, .arg = &args[i], .arg_size = sizeof args[i],
                                   .result = &ctx.results[i], .result_size = sizeof(stat_result)};

    /* The reference: one serial pass, also each task's cost for -v. */
    double total = 0, longest = 0;
    for (int i = 0; i < NTASKS; i++) {
        double t0 = bench_now_ns();
        if (seed_task(&ctx.data, &args[i], &ctx.expect[i]) != 0)
            bench_fail("seed: task %d failed in the reference run", i);
        double t = bench_now_ns() - t0;
        total += t, longest = t > longest ? t : longest;
        if (o.verbose)
            printf("# task %2d %-12s lo=%-10zu len=%-10zu param=%-8zu %8.2f ms\n", i,
                   kind_names[args[i].kind], args[i].lo, args[i].len, args[i].param, t / 1e6);
    }
    memset(ctx.results, 0xff, sizeof ctx.results);

    crew *pool = bench_open_peers(&o);
    ctx.pool = pool;
    bench_header("seed job: 64 statistics over one shared array; ms per job", &o);
    printf("# array %.0f MiB (%zu doubles); reference serial pass %.0f ms, longest task %.1f ms\n",
           mib, ctx.data.n, total / 1e6, longest / 1e6);

    bench_peer p[] = BENCH_PEERS4(run_crew, run_omp, run_tbb, run_serial, check);
    bench_measure_line(p, 4, &ctx, &o, 1e6, "ms", "seed 64 stats %.0fMiB", mib);
    bench_verdict_parallel(p, 4);
    crew_close(pool);
    free(x);
    return 0;
}
