/*
 * demo_stats.c -- the analyses `crew demo` runs over the order book: sums,
 * means, spreads, quantiles, correlations and counts over the numeric
 * columns.  demo_groups.c has the group-bys (stores, days, customers,
 * product names) and the table of all analyses.
 *
 * Each analysis reads the frozen columns and writes only its own
 * demo_result, so any number of them can run at once.  Each one runs
 * serially inside its task, in row order, so its floating-point sums are
 * the same on every run: the parallelism is between analyses, which is
 * the job crew does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/demo.h"

int an_revenue(const demo_table *t, demo_result *r)
{
    double s = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        s += demo_value(t, i);
    r->v[0] = s;
    r->n[0] = t->rows;
    return 0;
}

int an_mean_price(const demo_table *t, demo_result *r)
{
    double s = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        s += t->price[i];
    r->v[0] = s / (double)t->rows;
    return 0;
}

/* Mean and standard deviation of unit prices (two passes: stable). */
static void price_moments(const demo_table *t, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        s += t->price[i];
    double m = s / (double)t->rows;
    for (uint64_t i = 0; i < t->rows; i++)
        q += (t->price[i] - m) * (t->price[i] - m);
    *mean = m;
    *sd = t->rows > 1 ? sqrt(q / (double)(t->rows - 1)) : 0;
}

int an_price_sd(const demo_table *t, demo_result *r)
{
    price_moments(t, &r->v[1], &r->v[0]);
    return 0;
}

int an_price_range(const demo_table *t, demo_result *r)
{
    double lo = t->price[0], hi = t->price[0];
    for (uint64_t i = 1; i < t->rows; i++) {
        lo = t->price[i] < lo ? t->price[i] : lo;
        hi = t->price[i] > hi ? t->price[i] : hi;
    }
    r->v[0] = lo;
    r->v[1] = hi;
    return 0;
}

int an_mean_items(const demo_table *t, demo_result *r)
{
    uint64_t s = 0, count[65] = {0};
    for (uint64_t i = 0; i < t->rows; i++) {
        s += t->quantity[i];
        count[t->quantity[i] < 64 ? t->quantity[i] : 64]++;
    }
    unsigned mode = 1;
    for (unsigned q = 1; q <= 64; q++)
        mode = count[q] > count[mode] ? q : mode;
    r->v[0] = (double)s / (double)t->rows;
    r->n[0] = mode;
    return 0;
}

int an_bulk_orders(const demo_table *t, demo_result *r)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        n += t->quantity[i] >= 10;
    r->n[0] = n;
    r->v[0] = (double)n / (double)t->rows;
    return 0;
}

int an_discounted(const demo_table *t, demo_result *r)
{
    uint64_t n = 0, pct = 0;
    for (uint64_t i = 0; i < t->rows; i++) {
        n += t->discount[i] > 0;
        pct += t->discount[i];
    }
    r->n[0] = n;
    r->v[0] = n ? (double)pct / (double)n : 0;
    return 0;
}

int an_big_orders(const demo_table *t, demo_result *r)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        n += demo_value(t, i) > 1000.0;
    r->n[0] = n;
    return 0;
}

int an_price_outliers(const demo_table *t, demo_result *r)
{
    double m, sd;
    price_moments(t, &m, &sd);
    uint64_t n = 0;
    for (uint64_t i = 0; i < t->rows; i++)
        n += fabs(t->price[i] - m) > 3 * sd;
    r->n[0] = n;
    return 0;
}

/* Pearson's correlation of x(i) and y(i) over the rows, in two passes. */
static double correlation(const demo_table *t, double (*x)(const demo_table *, uint64_t),
                          double (*y)(const demo_table *, uint64_t))
{
    double sx = 0, sy = 0;
    for (uint64_t i = 0; i < t->rows; i++) {
        sx += x(t, i);
        sy += y(t, i);
    }
    double mx = sx / (double)t->rows, my = sy / (double)t->rows, cxy = 0, cxx = 0, cyy = 0;
    for (uint64_t i = 0; i < t->rows; i++) {
        double dx = x(t, i) - mx, dy = y(t, i) - my;
        cxy += dx * dy;
        cxx += dx * dx;
        cyy += dy * dy;
    }
    return cxx > 0 && cyy > 0 ? cxy / sqrt(cxx * cyy) : 0;
}

static double col_price(const demo_table *t, uint64_t i) { return t->price[i]; }
static double col_quantity(const demo_table *t, uint64_t i) { return t->quantity[i]; }
static double col_discount(const demo_table *t, uint64_t i) { return t->discount[i]; }

int an_corr_price_qty(const demo_table *t, demo_result *r)
{
    r->v[0] = correlation(t, col_price, col_quantity);
    return 0;
}

int an_corr_discount_qty(const demo_table *t, demo_result *r)
{
    r->v[0] = correlation(t, col_discount, col_quantity);
    return 0;
}

/* The k-th smallest (0-based) of the values counted in hist[0, bins). */
static uint64_t hist_kth(const uint32_t *hist, size_t bins, uint64_t k)
{
    uint64_t seen = 0;
    for (size_t b = 0; b < bins; b++) {
        seen += hist[b];
        if (seen > k)
            return b;
    }
    return bins - 1;
}

/* The rank of quantile q among n values: floor(q * (n - 1)). */
static uint64_t rank_of(double q, uint64_t n)
{
    return (uint64_t)(q * (double)(n - 1));
}

/* Unit price quantiles, exact: prices are whole cents, so a histogram of
 * cents is an exact sort. */
int an_price_quantiles(const demo_table *t, demo_result *r)
{
    enum { BINS = 1 << 17 };
    uint32_t *hist = calloc(BINS, sizeof *hist);
    if (!hist)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++) {
        uint64_t c = (uint64_t)(t->price[i] * 100 + 0.5);
        hist[c < BINS ? c : BINS - 1]++;
    }
    static const double q[4] = {0.25, 0.5, 0.9, 0.99};
    for (int k = 0; k < 4; k++)
        r->v[k] = (double)hist_kth(hist, BINS, rank_of(q[k], t->rows)) / 100.0;
    free(hist);
    return 0;
}

/* Order value quantiles to the cent, from a histogram of 4M cents. */
int an_value_quantiles(const demo_table *t, demo_result *r)
{
    enum { BINS = 1 << 22 };
    uint32_t *hist = calloc(BINS, sizeof *hist);
    if (!hist)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++) {
        uint64_t c = (uint64_t)(demo_value(t, i) * 100 + 0.5);
        hist[c < BINS ? c : BINS - 1]++;
    }
    static const double q[3] = {0.5, 0.9, 0.99};
    for (int k = 0; k < 3; k++)
        r->v[k] = (double)hist_kth(hist, BINS, rank_of(q[k], t->rows)) / 100.0;
    free(hist);
    return 0;
}

/* The k-th smallest (0-based) of s[0, n), reordering s: Hoare's
 * quickselect with a median-of-three pivot. */
double demo_select(double *s, size_t n, size_t k)
{
    int64_t lo = 0, hi = (int64_t)n - 1, want = (int64_t)k;
    while (lo < hi) {
        double a = s[lo], b = s[lo + (hi - lo) / 2], c = s[hi];
        double pivot = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        int64_t i = lo, j = hi;
        /* The pivot is one of the elements, so both scans stop in range. */
        while (i <= j) {
            while (s[i] < pivot)
                i++;
            while (s[j] > pivot)
                j--;
            if (i <= j) {
                double tmp = s[i];
                s[i++] = s[j];
                s[j--] = tmp;
            }
        }
        /* Now s[lo..j] <= pivot <= s[i..hi], and anything between is the pivot. */
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            break;
    }
    return s[k];
}

/* The median order value, exactly, by selection over a copy of every
 * value: a costly one on purpose (a copy of a whole column). */
int an_value_median(const demo_table *t, demo_result *r)
{
    double *v = malloc(t->rows * sizeof *v);
    if (!v)
        return 1;
    for (uint64_t i = 0; i < t->rows; i++)
        v[i] = demo_value(t, i);
    r->v[0] = demo_select(v, t->rows, (t->rows - 1) / 2);
    free(v);
    return 0;
}

/* Four clusters of order values: eight rounds of Lloyd's algorithm over
 * every row, the costliest of the numeric analyses on purpose. */
int an_value_clusters(const demo_table *t, demo_result *r)
{
    double c[4] = {20, 100, 500, 2000};
    for (int round = 0; round < 8; round++) {
        double sum[4] = {0};
        uint64_t n[4] = {0};
        for (uint64_t i = 0; i < t->rows; i++) {
            double x = demo_value(t, i);
            int best = 0;
            for (int k = 1; k < 4; k++)
                best = fabs(x - c[k]) < fabs(x - c[best]) ? k : best;
            sum[best] += x;
            n[best]++;
        }
        for (int k = 0; k < 4; k++)
            if (n[k])
                c[k] = sum[k] / (double)n[k];
        if (round == 7)
            memcpy(r->n, n, sizeof n);
    }
    memcpy(r->v, c, sizeof c);
    return 0;
}
