/*
 * bench_for.c -- fine-grained loops: crew_for with grain 0 (automatic
 * splitting) over 10^6, 10^7 and 10^8 trivial iterations, beside OpenMP
 * `parallel for schedule(static)`, oneTBB parallel_for with the
 * auto_partitioner, and a serial loop.  Two loop bodies (kernels.h):
 *
 *   for-mem  a[i] = a[i] * K + 1 on an array of 64-bit integers: one
 *            multiply and one add per 16 bytes moved, so from 10^7 on it
 *            measures the memory bandwidth more than the runtime.
 *   for-cpu  the sum of (i * K + 1) >> 29 with no memory traffic, each
 *            range's partial sum added atomically into one total: the
 *            runtime's overhead and the cores, nothing else.
 *
 * Small counts are swept several times per timed run so that each run
 * covers about 10^8 iterations; the figure is the time of one sweep.  After
 * every run the result is checked exactly (for-mem: the whole array against
 * the closed form of the map applied once per sweep; for-cpu: the total),
 * so a range skipped or run twice by any peer fails the benchmark.
 *
 * Usage: bench_for [-w N] [-r R] [-m] [-q] [-p PEERS] [-n 1e6,1e7,1e8]
 */
#include <omp.h>

#include "bench.h"
#include "crew.h"
#include "kernels.h"
#include "tbb_peers.h"

typedef struct for_ctx {
    crew *pool;
    size_t n;
    size_t sweeps;   /* sweeps per timed run */
    uint64_t *a;     /* for-mem: the array */
    uint64_t passes; /* for-mem: sweeps done so far, by every peer */
    uint64_t total;  /* for-cpu: the sum of every range of the last run */
    uint64_t expect; /* for-cpu: what total must be */
} for_ctx;

/* ---- for-mem -------------------------------------------------------- */

static void mem_crew_body(void *ctx, size_t lo, size_t hi)
{
    bench_lcg_range(ctx, lo, hi);
}

static void mem_crew(void *p)
{
    for_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++) {
        int rc = crew_for(c->pool, 0, c->n, 0, mem_crew_body, c->a);
        if (rc != 0)
            bench_fail("crew_for: %s", crew_strerror(rc));
    }
    c->passes += c->sweeps;
}

static void mem_omp(void *p)
{
    for_ctx *c = p;
    uint64_t *a = c->a;
    size_t n = c->n;
    for (size_t s = 0; s < c->sweeps; s++) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = a[i] * BENCH_LCG_K + 1;
    }
    c->passes += c->sweeps;
}

static void mem_tbb(void *p)
{
    for_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++)
        tbb_for_lcg(c->a, c->n);
    c->passes += c->sweeps;
}

static void mem_serial(void *p)
{
    for_ctx *c = p;
    for (size_t s = 0; s < c->sweeps; s++)
        bench_lcg_range(c->a, 0, c->n);
    c->passes += c->sweeps;
}

/* a[i] started as i; after P sweeps it must be K^P * i + (K^(P-1) + ... + 1). */
static int mem_check(void *p)
{
    for_ctx *c = p;
    uint64_t mul = 1, add = 0;
    for (uint64_t k = 0; k < c->passes; k++) {
        mul *= BENCH_LCG_K;
        add = add * BENCH_LCG_K + 1;
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->a[i] != mul * (uint64_t)i + add) {
            fprintf(stderr, "for-mem n=%zu: a[%zu] wrong after %llu sweeps\n", c->n, i,
                    (unsigned long long)c->passes);
            return 1;
        }
    return 0;
}

/* ---- for-cpu -------------------------------------------------------- */

static void cpu_crew_body(void *ctx, size_t lo, size_t hi)
{
    __atomic_fetch_add((uint64_t *)ctx, bench_mix_range(lo, hi), __ATOMIC_RELAXED);
}

static void cpu_crew(void *p)
{
    for_ctx *c = p;
    c->total = 0;
    for (size_t s = 0; s < c->sweeps; s++) {
        int rc = crew_for(c->pool, 0, c->n, 0, cpu_crew_body, &c->total);
        if (rc != 0)
            bench_fail("crew_for: %s", crew_strerror(rc));
    }
}

static void cpu_omp(void *p)
{
    for_ctx *c = p;
    size_t n = c->n;
    c->total = 0;
    for (size_t s = 0; s < c->sweeps; s++) {
#pragma omp parallel
        {
            uint64_t part = 0;
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i++)
                part += ((uint64_t)i * BENCH_LCG_K + 1) >> 29;
            __atomic_fetch_add(&c->total, part, __ATOMIC_RELAXED);
        }
    }
}

static void cpu_tbb(void *p)
{
    for_ctx *c = p;
    c->total = 0;
    for (size_t s = 0; s < c->sweeps; s++)
        tbb_for_mix(&c->total, c->n);
}

static void cpu_serial(void *p)
{
    for_ctx *c = p;
    c->total = 0;
    for (size_t s = 0; s < c->sweeps; s++)
        c->total += bench_mix_range(0, c->n);
}

static int cpu_check(void *p)
{
    for_ctx *c = p;
    if (c->total == c->expect)
        return 0;
    fprintf(stderr, "for-cpu n=%zu: total %llu, expected %llu\n", c->n,
            (unsigned long long)c->total, (unsigned long long)c->expect);
    return 1;
}

/* -------------------------------------------------------------------- */

static void bench_mem(crew *pool, size_t n, size_t sweeps, const bench_opts *o)
{
    for_ctx ctx = {.pool = pool, .n = n, .sweeps = sweeps};
    ctx.a = malloc(n * sizeof *ctx.a);
    if (!ctx.a)
        bench_fail("out of memory for %zu elements", n);
    for (size_t i = 0; i < n; i++)
        ctx.a[i] = i;
    bench_peer p[] = BENCH_PEERS4(mem_crew, mem_omp, mem_tbb, mem_serial, mem_check);
    bench_measure_line(p, 4, &ctx, o, 1e6 * (double)sweeps, "ms", "for-mem n=%zu", n);
    bench_verdict_parallel(p, 4);
    free(ctx.a);
}

static void bench_cpu(crew *pool, size_t n, size_t sweeps, const bench_opts *o)
{
    for_ctx ctx = {.pool = pool, .n = n, .sweeps = sweeps};
    for (size_t s = 0; s < sweeps; s++)
        ctx.expect += bench_mix_range(0, n);
    bench_peer p[] = BENCH_PEERS4(cpu_crew, cpu_omp, cpu_tbb, cpu_serial, cpu_check);
    bench_measure_line(p, 4, &ctx, o, 1e6 * (double)sweeps, "ms", "for-cpu n=%zu", n);
    bench_verdict_parallel(p, 4);
}

int main(int argc, char **argv)
{
    bench_opts o;
    size_t sizes[BENCH_MAX_SIZES];
    int nsizes;
    int rc = bench_count_args(argc, argv, &o, "iteration counts", sizes, &nsizes);
    if (rc >= 0)
        return rc;
    double per_run = o.quick ? 1e7 : 1e8; /* iterations per timed run */

    crew *pool = bench_open_peers(&o);
    bench_header("crew_for (grain 0) vs OpenMP static vs TBB auto_partitioner; ms per sweep", &o);

    for (int s = 0; s < nsizes; s++) {
        size_t sweeps = (size_t)(per_run / (double)sizes[s]);
        sweeps = sweeps < 1 ? 1 : sweeps;
        bench_cpu(pool, sizes[s], sweeps, &o);
        bench_mem(pool, sizes[s], sweeps, &o);
    }
    crew_close(pool);
    return 0;
}
