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
#include <math.h>
#include <omp.h>

#include "bench.h"
#include "crew.h"
#include "tbb_peers.h"

#define NTASKS 64
#define NBINS 16

typedef struct seed_data {
    const double *x;
    size_t n;
} seed_data;

enum stat_kind {
    ST_SUM, ST_MEAN, ST_VAR, ST_MINMAX, ST_HIST, ST_PCTL, ST_ACF, ST_COUNT,
    ST_LOGSUM, ST_SINSUM, ST_MOVMAX, ST_PEAKS, ST_RUNS, ST_MOMENTS, ST_TRIM, ST_ENTROPY,
    ST_KINDS
};

static const char *const kind_names[ST_KINDS] = {
    "sum", "mean", "variance", "minmax", "histogram", "percentiles", "autocorr", "counts",
    "logsum", "sinsum", "movmax", "peaks", "runs", "moments", "trimmed", "entropy",
};

typedef struct stat_arg {
    int kind;
    size_t lo, len;
    size_t param; /* lag, window, sample size, ... */
} stat_arg;

typedef struct stat_result {
    double v[NBINS];
} stat_result;

/* ---- the statistics: each reads x[0, n) and writes v[] ---------------- */

static double mean_of(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s / (double)n;
}

static void st_variance(const double *x, size_t n, double *v)
{
    double m = mean_of(x, n), s = 0;
    for (size_t i = 0; i < n; i++)
        s += (x[i] - m) * (x[i] - m);
    v[0] = m;
    v[1] = s / (double)(n - 1);
}

static void st_minmax(const double *x, size_t n, double *v)
{
    double lo = x[0], hi = x[0];
    size_t ilo = 0, ihi = 0;
    for (size_t i = 1; i < n; i++) {
        if (x[i] < lo)
            lo = x[i], ilo = i;
        if (x[i] > hi)
            hi = x[i], ihi = i;
    }
    v[0] = lo, v[1] = hi, v[2] = (double)ilo, v[3] = (double)ihi;
}

static void st_histogram(const double *x, size_t n, double *v)
{
    uint64_t bins[NBINS] = {0};
    for (size_t i = 0; i < n; i++) {
        int b = (int)(x[i] * NBINS);
        bins[b < 0 ? 0 : b >= NBINS ? NBINS - 1 : b]++;
    }
    for (int b = 0; b < NBINS; b++)
        v[b] = (double)bins[b];
}

/* The k-th smallest of s[0, n) (s is reordered): Hoare quickselect. */
static double select_kth(double *s, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = s[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (s[i] < pivot)
                i++;
            while (s[j] > pivot)
                j--;
            if (i <= j) {
                double t = s[i];
                s[i] = s[j], s[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return s[k];
}

/* A strided sample of m elements, in a buffer the caller frees. */
static double *sample(const double *x, size_t n, size_t m, size_t *got)
{
    m = m > n ? n : m;
    double *s = malloc(m * sizeof *s);
    if (!s)
        return NULL;
    size_t step = n / m;
    for (size_t i = 0; i < m; i++)
        s[i] = x[i * step];
    *got = m;
    return s;
}

static int st_percentiles(const double *x, size_t n, size_t m, double *v)
{
    double *s = sample(x, n, m, &m);
    if (!s)
        return 1;
    static const double q[] = {0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.99};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        v[i] = select_kth(s, m, (size_t)(q[i] * (double)(m - 1)));
    free(s);
    return 0;
}

static void st_autocorr(const double *x, size_t n, size_t lag, double *v)
{
    double m = mean_of(x, n), num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        den += (x[i] - m) * (x[i] - m);
        if (i + lag < n)
            num += (x[i] - m) * (x[i + lag] - m);
    }
    v[0] = num / den;
}

static void st_counts(const double *x, size_t n, double *v)
{
    uint64_t c[4] = {0};
    for (size_t i = 0; i < n; i++)
        c[0] += x[i] > 0.25, c[1] += x[i] > 0.5, c[2] += x[i] > 0.75, c[3] += x[i] > 0.9;
    for (int k = 0; k < 4; k++)
        v[k] = (double)c[k];
}

static void st_logsum(const double *x, size_t n, double *v)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += log1p(x[i]);
    v[0] = s;
}

static void st_sinsum(const double *x, size_t n, double *v)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += sin(x[i] * 7.0);
    v[0] = s;
}

static void st_movmax(const double *x, size_t n, size_t w, double *v)
{
    w = w > n ? n : w;
    double s = 0;
    for (size_t i = 0; i < w; i++)
        s += x[i];
    double best = s;
    size_t at = 0;
    for (size_t i = w; i < n; i++) {
        s += x[i] - x[i - w];
        if (s > best)
            best = s, at = i + 1 - w;
    }
    v[0] = best / (double)w, v[1] = (double)at;
}

static void st_peaks(const double *x, size_t n, double *v)
{
    uint64_t peaks = 0, troughs = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        peaks += x[i] > x[i - 1] && x[i] > x[i + 1];
        troughs += x[i] < x[i - 1] && x[i] < x[i + 1];
    }
    v[0] = (double)peaks, v[1] = (double)troughs;
}

static void st_runs(const double *x, size_t n, double *v)
{
    double m = mean_of(x, n);
    uint64_t runs = 0, longest = 0, cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t above = x[i] > m;
        runs += above & (cur == 0);
        cur = (cur + 1) * above;
        longest = cur > longest ? cur : longest;
    }
    v[0] = (double)runs, v[1] = (double)longest;
}

static void st_moments(const double *x, size_t n, double *v)
{
    double m = mean_of(x, n), m2 = 0, m3 = 0, m4 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - m, d2 = d * d;
        m2 += d2, m3 += d2 * d, m4 += d2 * d2;
    }
    m2 /= (double)n, m3 /= (double)n, m4 /= (double)n;
    v[0] = m3 / pow(m2, 1.5), v[1] = m4 / (m2 * m2) - 3;
}

/* The 10% trimmed mean and the median of a fully sorted sample. */
static int st_trimmed(const double *x, size_t n, size_t m, double *v)
{
    double *s = sample(x, n, m, &m);
    if (!s)
        return 1;
    qsort(s, m, sizeof *s, bench_cmp_double);
    size_t cut = m / 10;
    double t = 0;
    for (size_t i = cut; i < m - cut; i++)
        t += s[i];
    v[0] = t / (double)(m - 2 * cut), v[1] = s[m / 2];
    free(s);
    return 0;
}

/* Shannon entropy of a 4096-bin histogram. */
static int st_entropy(const double *x, size_t n, double *v)
{
    enum { B = 4096 };
    uint32_t *bins = calloc(B, sizeof *bins);
    if (!bins)
        return 1;
    for (size_t i = 0; i < n; i++) {
        long b = lrint(x[i] * (B - 1));
        bins[b < 0 ? 0 : b >= B ? B - 1 : b]++;
    }
    double h = 0;
    for (int b = 0; b < B; b++)
        if (bins[b]) {
            double p = (double)bins[b] / (double)n;
            h -= p * log2(p);
        }
    v[0] = h;
    free(bins);
    return 0;
}

/* The one crew_task_fn every task uses: 0, or 1 for a bad range or no memory. */
static int seed_task(const void *shared, const void *arg, void *result)
{
    const seed_data *d = shared;
    const stat_arg *a = arg;
    double *v = ((stat_result *)result)->v;
    if (a->len < 2 || a->lo > d->n || a->len > d->n - a->lo)
        return 1;
    const double *x = d->x + a->lo;
    size_t n = a->len;
    memset(v, 0, sizeof(stat_result));
    switch (a->kind) {
    case ST_SUM: v[0] = mean_of(x, n) * (double)n; return 0;
    case ST_MEAN: v[0] = mean_of(x, n); return 0;
    case ST_VAR: st_variance(x, n, v); return 0;
    case ST_MINMAX: st_minmax(x, n, v); return 0;
    case ST_HIST: st_histogram(x, n, v); return 0;
    case ST_PCTL: return st_percentiles(x, n, a->param, v);
    case ST_ACF: st_autocorr(x, n, a->param, v); return 0;
    case ST_COUNT: st_counts(x, n, v); return 0;
    case ST_LOGSUM: st_logsum(x, n, v); return 0;
    case ST_SINSUM: st_sinsum(x, n, v); return 0;
    case ST_MOVMAX: st_movmax(x, n, a->param, v); return 0;
    case ST_PEAKS: st_peaks(x, n, v); return 0;
    case ST_RUNS: st_runs(x, n, v); return 0;
    case ST_MOMENTS: st_moments(x, n, v); return 0;
    case ST_TRIM: return st_trimmed(x, n, a->param, v);
    case ST_ENTROPY: return st_entropy(x, n, v);
    default: return 1;
    }
}

/* ---- the job ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* A slowly wandering series in [0, 1): autocorrelated, with noise. */
static double *make_data(size_t n)
{
    double *x = malloc(n * sizeof *x);
    if (!x)
        return NULL;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    double y = 0.5;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rng_next(&s) >> 11) * 0x1p-53;
        y = 0.95 * y + 0.05 * u;
        x[i] = 0.5 * y + 0.5 * u;
    }
    return x;
}

/*
 * The 64 arguments: kind k four times, over lengths from 1/64 to all of the
 * array at pseudo-random offsets, then shuffled (fixed seed), so that
 * costly and cheap tasks come in no particular order.
 */
static void make_args(stat_arg *args, size_t n, int quick)
{
    uint64_t s = 12345;
    for (int t = 0; t < NTASKS; t++) {
        stat_arg *a = &args[t];
        a->kind = t % ST_KINDS;
        size_t sixtyfourths = 1 + rng_next(&s) % 64;
        a->len = n / 64 * sixtyfourths;
        if (a->kind == ST_LOGSUM)
            a->len /= 6; /* a libm call per element: ten times a sum's cost */
        if (a->kind == ST_SINSUM)
            a->len /= 8;
        a->lo = (size_t)(rng_next(&s) % (n - a->len + 1));
        switch (a->kind) {
        case ST_ACF: a->param = 1 + rng_next(&s) % 100; break;
        case ST_MOVMAX: a->param = 1000 + rng_next(&s) % 100000; break;
        case ST_PCTL: a->param = quick ? 100000 : 2000000; break;
        case ST_TRIM: a->param = quick ? 20000 : 400000; break;
        default: a->param = 0;
        }
    }
    for (int t = NTASKS - 1; t > 0; t--) {
        int j = (int)(rng_next(&s) % (uint64_t)(t + 1));
        stat_arg tmp = args[t];
        args[t] = args[j], args[j] = tmp;
    }
}

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
    double *x = make_data(ctx.data.n);
    if (!x)
        bench_fail("out of memory for %g MiB", mib);
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
