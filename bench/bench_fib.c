/*
 * bench_fib.c -- the classic task-overhead test: fib(30..32) computed by
 * naive recursion with a task at every call and no cutoff, so nearly all
 * the time goes to creating, running, stealing and waiting for tasks.
 *
 *   crew    crew_join(pool, fib(n-1), fib(n-2)) at every call with n >= 2
 *   omp     #pragma omp task for fib(n-1), fib(n-2) inline, taskwait
 *   tbb     task_group: run(fib(n-1)), fib(n-2) inline, wait
 *   serial  the plain recursive function
 *
 * The figure is nanoseconds per call of fib, calls = 2 * fib(n+1) - 1 for
 * every peer (the serial figure is the cost of a bare call).  The result is
 * checked after every run.
 *
 * Usage: bench_fib [-w N] [-r R] [-m] [-q] [-p PEERS] [-n 30,31,32]
 */
#include <omp.h>

#include "bench.h"
#include "crew.h"
#include "tbb_peers.h"

typedef struct fib_ctx {
    crew *pool;
    int n;
    long result, expect;
} fib_ctx;

/* ---- crew: one crew_join per call ------------------------------------- */

static crew *fib_pool;

typedef struct fib_arg {
    int n;
    long r;
} fib_arg;

static void fib_crew(void *p)
{
    fib_arg *f = p;
    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    fib_arg a = {f->n - 1, 0}, b = {f->n - 2, 0};
    crew_join(fib_pool, fib_crew, &a, fib_crew, &b);
    f->r = a.r + b.r;
}

static void run_crew(void *p)
{
    fib_ctx *c = p;
    fib_arg top = {c->n, 0};
    fib_pool = c->pool;
    fib_crew(&top);
    c->result = top.r;
}

/* ---- OpenMP tasks ----------------------------------------------------- */

static long fib_omp(int n)
{
    if (n < 2)
        return n;
    long x, y;
#pragma omp task shared(x)
    x = fib_omp(n - 1);
    y = fib_omp(n - 2);
#pragma omp taskwait
    return x + y;
}

static void run_omp(void *p)
{
    fib_ctx *c = p;
    long r = 0;
#pragma omp parallel
#pragma omp single
    r = fib_omp(c->n);
    c->result = r;
}

/* ---- oneTBB and serial ------------------------------------------------ */

static void run_tbb(void *p)
{
    fib_ctx *c = p;
    c->result = tbb_fib(c->n);
}

__attribute__((noinline)) static long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static void run_serial(void *p)
{
    fib_ctx *c = p;
    c->result = fib_serial(c->n);
}

static int check(void *p)
{
    fib_ctx *c = p;
    if (c->result == c->expect) {
        c->result = -1;
        return 0;
    }
    fprintf(stderr, "fib(%d) = %ld, expected %ld\n", c->n, c->result, c->expect);
    return 1;
}

int main(int argc, char **argv)
{
    bench_opts o;
    size_t ns[BENCH_MAX_SIZES] = {30, 31, 32};
    static const size_t quick[] = {24, 25};
    int count = 3;
    int rc = bench_sized_args(argc, argv, &o, 5,
                              "  -n LIST  which fib(n) (default 30,31,32; quick 24,25)\n", ns,
                              &count, quick, 2);
    if (rc >= 0)
        return rc;

    crew *pool = bench_open_peers(&o);
    bench_header("fib(n), a task per call, no cutoff; ns per call", &o);

    for (int i = 0; i < count; i++) {
        int n = (int)ns[i];
        if (n < 2 || n > 45)
            bench_fail("fib(%d): n must be in 2..45", n);
        long f0 = 0, f1 = 1; /* f1 = fib(k), f0 = fib(k - 1) */
        for (int k = 1; k <= n; k++) {
            long t = f0 + f1;
            f0 = f1, f1 = t;
        }
        /* now f0 = fib(n), f1 = fib(n + 1) */
        fib_ctx ctx = {.pool = pool, .n = n, .expect = f0};
        double calls = 2.0 * (double)f1 - 1;
        bench_peer p[] = BENCH_PEERS4(run_crew, run_omp, run_tbb, run_serial, check);
        bench_measure_line(p, 4, &ctx, &o, calls, "ns/call", "fib(%d) %.0f calls", n, calls);
        const bench_peer *omp = &p[1], *tbb = &p[2];
        if (p[0].fig <= 0 || omp->fig <= 0 || tbb->fig <= 0) {
            printf("\n");
            continue;
        }
        int vs_tbb = p[0].fig <= tbb->fig, vs_omp = omp->fig >= 5 * p[0].fig;
        printf("  target(<=tbb,>=5x omp): %s%s%s\n", vs_tbb && vs_omp ? "met" : "MISSED",
               vs_tbb ? "" : " [slower than tbb]", vs_omp ? "" : " [< 5x omp]");
        fflush(stdout);
    }
    crew_close(pool);
    return 0;
}
