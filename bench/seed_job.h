/*
 * seed_job.h -- the seed job's 64 statistics, written once for every
 * program that runs them (bench_seed: crew threads vs OpenMP, oneTBB and
 * serial; bench_proc: crew threads vs crew processes; bench_mpi: crew_run
 * vs crew_mpi_run), so that each comparison runs exactly the same code
 * over exactly the same data and arguments, and the results can be
 * compared bit for bit.
 *
 * Every function here is static and used by seed_task, fill_data or
 * make_args, the three entry points; those are static inline, so that a
 * program may call only some of them (bench_mpi writes the data, its MPI
 * job runs the tasks).
 */
#ifndef CREW_BENCH_SEED_JOB_H
#define CREW_BENCH_SEED_JOB_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

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
static inline int seed_task(const void *shared, const void *arg, void *result)
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

/* x[0, n): a slowly wandering series in [0, 1), autocorrelated, with noise.
 * The caller provides the memory, so that it can be an arena's. */
static inline void fill_data(double *x, size_t n)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    double y = 0.5;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rng_next(&s) >> 11) * 0x1p-53;
        y = 0.95 * y + 0.05 * u;
        x[i] = 0.5 * y + 0.5 * u;
    }
}

/*
 * The 64 arguments: kind k four times, over lengths from 1/64 to all of the
 * array at pseudo-random offsets, then shuffled (fixed seed), so that
 * costly and cheap tasks come in no particular order.
 */
static inline void make_args(stat_arg *args, size_t n, int quick)
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

#endif /* CREW_BENCH_SEED_JOB_H */
