/*
 * bench_latency.c -- what a parallel call costs when it has nothing to do,
 * and what a pool costs when it is not used.
 *
 *   open+close   crew_open + crew_close of a pool of N workers (target < 1 ms)
 *   idle         CPU time the whole process uses during 1 s of sleep right
 *                after a parallel call, measured with getrusage (target 0%:
 *                idle workers must sleep, not spin).  Measured for crew
 *                before OpenMP or oneTBB have started any thread, then for
 *                the other two for comparison.
 *   empty call   a round trip with an empty body, repeated (100k times):
 *                crew_for over [0, 2) with grain 1, an empty OpenMP parallel
 *                region, a TBB parallel_for over [0, 2).  Back to back, so
 *                the workers are awake: the runtime's fork/join overhead.
 *   wake         the same single call after 5 ms of sleep, when the workers
 *                have gone to sleep: how fast they wake (median of 200).
 *
 * Usage: bench_latency [-w N] [-r R] [-m] [-q] [-p PEERS] [-n CALLS]
 */
#include <omp.h>
#include <sys/resource.h>

#include "bench.h"
#include "crew.h"
#include "tbb_peers.h"

typedef struct lat_ctx {
    crew *pool;
    size_t calls;
} lat_ctx;

static void empty_body(void *ctx, size_t lo, size_t hi)
{
    (void)ctx, (void)lo, (void)hi;
}

static void crew_once(crew *pool)
{
    int rc = crew_for(pool, 0, 2, 1, empty_body, NULL);
    if (rc != 0)
        bench_fail("crew_for: %s", crew_strerror(rc));
}

static void omp_once(void)
{
#pragma omp parallel
    {
        __asm__ volatile("" ::: "memory");
    }
}

static void run_crew(void *p)
{
    lat_ctx *c = p;
    for (size_t i = 0; i < c->calls; i++)
        crew_once(c->pool);
}

static void run_omp(void *p)
{
    lat_ctx *c = p;
    for (size_t i = 0; i < c->calls; i++)
        omp_once();
}

static void run_tbb(void *p)
{
    lat_ctx *c = p;
    tbb_empty_for(c->calls);
}

/* CPU time (user + system) of the whole process, in nanoseconds. */
static double process_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

/* Percent of one CPU the process used while the caller slept for 1 s. */
static double idle_percent(void)
{
    double c0 = process_cpu_ns(), t0 = bench_now_ns();
    bench_sleep_ms(1000);
    double c1 = process_cpu_ns(), t1 = bench_now_ns();
    return 100 * (c1 - c0) / (t1 - t0);
}

static void print_idle(const char *what, double pct)
{
    printf("%-24s %s=%.3f %%CPU over 1 s", "idle 1s after a call", what, pct);
    if (strcmp(what, "crew") == 0)
        printf("  target(0%%, < 0.1): %s", pct < 0.1 ? "met" : "MISSED");
    printf("\n");
    fflush(stdout);
}

static void bench_open_close(const bench_opts *o)
{
    enum { TIMES = 200 };
    double t[TIMES];
    int times = o->quick ? 20 : TIMES;
    for (int i = 0; i < times; i++) {
        double t0 = bench_now_ns();
        crew *pool = bench_crew_open(o);
        crew_close(pool);
        t[i] = bench_now_ns() - t0;
    }
    double best = bench_pick(t, times, 0), median = bench_pick(t, times, 1);
    double worst = best;
    for (int i = 0; i < times; i++)
        worst = t[i] > worst ? t[i] : worst;
    printf("%-24s crew=%.1f us (best of %d; median %.1f, worst %.1f)  target(< 1 ms): %s\n",
           "pool open+close", (o->median ? median : best) / 1e3, times, median / 1e3, worst / 1e3,
           (o->median ? median : best) < 1e6 ? "met" : "MISSED");
    fflush(stdout);
}

/* One call after the workers fell asleep, median of many. */
static void bench_wake(crew *pool, const bench_opts *o)
{
    enum { SAMPLES = 200 };
    double t[3][SAMPLES];
    int samples = o->quick ? 20 : SAMPLES;
    const char *names[3] = {"crew", "omp", "tbb"};
    for (int s = 0; s < samples; s++)
        for (int k = 0; k < 3; k++) {
            if (!bench_selected(o, names[k])) {
                t[k][s] = 0;
                continue;
            }
            bench_sleep_ms(5);
            double t0 = bench_now_ns();
            if (k == 0)
                crew_once(pool);
            else if (k == 1)
                omp_once();
            else
                tbb_empty_for(1);
            t[k][s] = bench_now_ns() - t0;
        }
    bench_peer p[3] = {{"crew", NULL, NULL, 0}, {"omp", NULL, NULL, 0}, {"tbb", NULL, NULL, 0}};
    for (int k = 0; k < 3; k++)
        p[k].fig = bench_selected(o, names[k]) ? bench_pick(t[k], samples, 1) : 0;
    bench_line("wake: 1 call after 5ms", p, 3, 1e3, "us (median)");
    printf("\n");
}

int main(int argc, char **argv)
{
    bench_opts o;
    size_t calls = 0;
    int c;

    bench_defaults(&o, 5);
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "n:")) != -1) {
        if (bench_common_opt(&o, c, optarg))
            continue;
        if (c == 'n' && atof(optarg) >= 1) {
            calls = (size_t)atof(optarg);
            continue;
        }
        return bench_usage(argv[0],
                           "  -n CALLS  empty calls per timed run (default 1e5; quick 1e4)\n", c);
    }
    if (calls == 0)
        calls = o.quick ? 10000 : 100000;
    bench_header("empty-pool latency and idle cost", &o);

    bench_open_close(&o);

    crew *pool = bench_crew_open(&o);
    for (int i = 0; i < 1000; i++)
        crew_once(pool);
    print_idle("crew", idle_percent()); /* no OpenMP or TBB thread exists yet */

    omp_set_num_threads((int)o.workers);
    tbb_setup(o.workers);
    lat_ctx ctx = {.pool = pool, .calls = calls};
    bench_peer p[] = {
        {"crew", run_crew, NULL, 0},
        {"omp", run_omp, NULL, 0},
        {"tbb", run_tbb, NULL, 0},
    };
    bench_measure_line(p, 3, &ctx, &o, 1e3 * (double)calls, "us/call", "empty call x%zu", calls);
    printf("\n");

    bench_wake(pool, &o);

    omp_once();
    print_idle("omp", idle_percent()); /* the crew pool is idle too */
    tbb_empty_for(1);
    print_idle("tbb", idle_percent());
    crew_close(pool);
    return 0;
}
