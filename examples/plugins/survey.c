/*
 * survey.c -- an example crew plugin: statistics over the numeric columns
 * and word counts over the text columns of a snapshot made by `crew pack`.
 *
 *   crew pack -o d.crew --csv prices.csv --lines book.txt
 *   printf 'mean price\nquantile price 0.9\nwords book 10\n' > tasks.txt
 *   crew run --plugin ./survey.so --data d.crew tasks.txt
 *
 * Each task names a function and its argument: COL is the name of a data
 * set (`datasets` lists them); a name with blanks in it is written in
 * double quotes ("unit price").  A bad argument fails that task with a
 * one-line reason; it never stops the run.
 *
 * Numbers.  Every numeric type is read as a double (integers beyond 2^53
 * round to the nearest one); NaN values are skipped, as if absent.  Results
 * print in the shortest of %.15g, %.16g and %.17g that reads back as the
 * same double.  That is exact (strtod gives back the very value, which a
 * fixed %.6f would not for 1e-9 or 123456789.123) and deterministic, yet
 * 0.1 still prints as 0.1 rather than 0.10000000000000001.
 *
 * Per-worker state.  quantile needs a private copy of the column to
 * reorder.  Rather than allocate (and fault in) a column-sized buffer for
 * every task, each worker keeps one scratch buffer from init to fini; it
 * grows to the largest column the worker has seen.  Workers run one task
 * at a time, so the buffer needs no lock.  A host that calls no init
 * (state NULL) still works: quantile then allocates per call.
 *
 * It is one file on purpose, longer than crew's own files: an example to
 * read top to bottom and copy, built with one command (README.md).
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <crew_plugin.h>

/* ---- arguments ---------------------------------------------------------- */

/* A word of the argument: a data-set name (at most 255 bytes) or a number. */
#define WORD_SIZE 256
#define MAX_WORDS 3

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/*
 * Take the next word of the argument at *p into word: a run of non-blanks,
 * or a "quoted" run that may hold blanks.  Returns 1 (a word), 0 (nothing
 * left but blanks) or -1 (the task fails: the reason is written).
 */
static int next_word(crew_out *out, const char **p, char *word)
{
    const char *s = *p, *start, *end;
    while (is_blank(*s))
        s++;
    if (!*s)
        return 0;
    if (*s == '"') {
        start = ++s;
        while (*s && *s != '"')
            s++;
        if (!*s) {
            crew_out_error(out, "unterminated quote in '%s'", start - 1);
            return -1;
        }
        end = s++;
    } else {
        start = s;
        while (*s && !is_blank(*s))
            s++;
        end = s;
    }
    if ((size_t)(end - start) >= WORD_SIZE) {
        crew_out_error(out, "argument '%.40s...' is too long (at most %d bytes)", start,
                       WORD_SIZE - 1);
        return -1;
    }
    memcpy(word, start, (size_t)(end - start));
    word[end - start] = '\0';
    *p = s;
    return 1;
}

/*
 * Split arg into exactly `want` words; on a mismatch the task fails with
 * the usage line.  Returns 0 or the failed task's code.
 */
static int split_args(crew_out *out, const char *arg, const char *usage,
                      char words[][WORD_SIZE], int want)
{
    const char *p = arg ? arg : "";
    char extra[WORD_SIZE];
    for (int n = 0; n < want; n++) {
        int got = next_word(out, &p, words[n]);
        if (got < 0)
            return 1;
        if (got == 0)
            return crew_out_error(out, "missing argument; usage: %s", usage);
    }
    int got = next_word(out, &p, extra);
    if (got < 0)
        return 1;
    if (got > 0)
        return crew_out_error(out, "too many arguments; usage: %s", usage);
    return 0;
}

/* A number: the whole word, not NaN.  0 or -1. */
static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || isnan(x))
        return -1;
    *v = x;
    return 0;
}

/* A count: decimal digits only, 1 <= value <= max.  0 or -1. */
static int parse_count(const char *s, uint64_t max, uint64_t *v)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno == ERANGE || x < 1 || x > max)
        return -1;
    *v = x;
    return 0;
}

/* ---- output ------------------------------------------------------------- */

/* Append v (see "Numbers" above) and then the string `after`.  0 or 1. */
static int put_double(crew_out *out, double v, const char *after)
{
    char buf[40];
    if (isnan(v))
        strcpy(buf, "nan"); /* printf may say "-nan" */
    else
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    return crew_out_printf(out, "%s%s", buf, after) ? 1 : 0;
}

static int put_count(crew_out *out, uint64_t n)
{
    return crew_out_printf(out, "%llu\n", (unsigned long long)n) ? 1 : 0;
}

/* ---- data sets ---------------------------------------------------------- */

static int find_set(const crew_arena *data, const char *name, crew_dataset *d, crew_out *out)
{
    int rc = crew_catalog_find(data, name, d);
    if (rc == 0)
        return 0;
    if (rc == CREW_ENOENT)
        return crew_out_error(out, "no data set named '%s' (the task 'datasets' lists them)",
                              name);
    if (rc == CREW_EFORMAT)
        return crew_out_error(out, "the data holds no catalog of data sets, or a damaged one "
                                   "(make it with crew pack)");
    return crew_out_error(out, "cannot read data set '%s': %s", name, crew_strerror(rc));
}

/* A numeric data set, read CHUNK values at a time as doubles. */
typedef struct column {
    const char *name;
    int type;
    uint64_t n;
    const void *base;
} column;

#define CHUNK 512

static int open_column(const crew_arena *data, const char *name, column *c, crew_out *out,
                       const char *fn)
{
    crew_dataset d;
    int rc = find_set(data, name, &d, out);
    if (rc)
        return rc;
    if (d.type == CREW_T_STR)
        return crew_out_error(out, "%s: '%s' holds strings; %s needs numbers", fn, name, fn);
    if (d.type < CREW_T_U8 || d.type > CREW_T_F64) /* a type newer than this plugin */
        return crew_out_error(out, "%s: '%s' has a type (%d) this plugin does not know", fn,
                              name, d.type);
    *c = (column){d.name, d.type, d.count, NULL};
    if (d.count && !(c->base = crew_dataset_array(data, &d, d.type)))
        return crew_out_error(out, "data set '%s' is damaged", name);
    return 0;
}

/* Convert elements [from, from + k) to dst, k = min(CHUNK, n - from); returns k. */
static size_t column_chunk(const column *c, uint64_t from, double *dst)
{
    size_t k = c->n - from < CHUNK ? (size_t)(c->n - from) : CHUNK;
#define CONVERT(T)                                      \
    do {                                                \
        const T *src = (const T *)c->base + from;       \
        for (size_t i = 0; i < k; i++)                  \
            dst[i] = (double)src[i];                    \
    } while (0)
    switch (c->type) {
    case CREW_T_U8: CONVERT(uint8_t); break;
    case CREW_T_I32: CONVERT(int32_t); break;
    case CREW_T_U32: CONVERT(uint32_t); break;
    case CREW_T_I64: CONVERT(int64_t); break;
    case CREW_T_U64: CONVERT(uint64_t); break;
    case CREW_T_F32: CONVERT(float); break;
    default: CONVERT(double); break; /* open_column let only known types in */
    }
#undef CONVERT
    return k;
}

/* The next chunk from *at with NaNs dropped: the number of values left in dst. */
static size_t column_values(const column *c, uint64_t *at, double *dst)
{
    size_t k = column_chunk(c, *at, dst), kept = 0;
    *at += k;
    if (c->type != CREW_T_F32 && c->type != CREW_T_F64)
        return k; /* integers are never NaN */
    for (size_t i = 0; i < k; i++)
        if (!isnan(dst[i]))
            dst[kept++] = dst[i];
    return kept;
}

/* ---- one-pass summaries ------------------------------------------------- */

/*
 * The sum is compensated (Neumaier): the rounding error of each addition
 * is kept aside and added back, so a million 0.1s sum to 100000, not
 * 100000.0000013: long columns do not drift.
 */
typedef struct summary {
    uint64_t count;
    double sum, compensation, min, max;
} summary;

static void summary_add(summary *s, double x)
{
    double t = s->sum + x;
    if (fabs(s->sum) >= fabs(x))
        s->compensation += (s->sum - t) + x;
    else
        s->compensation += (x - t) + s->sum;
    s->sum = t;
    if (s->count == 0 || x < s->min)
        s->min = x;
    if (s->count == 0 || x > s->max)
        s->max = x;
    s->count++;
}

static double summary_sum(const summary *s)
{
    /* With an infinity in the data the compensation is NaN: leave it out. */
    return isfinite(s->sum) ? s->sum + s->compensation : s->sum;
}

static void summarize(const column *c, summary *s)
{
    double v[CHUNK];
    *s = (summary){0};
    for (uint64_t at = 0; at < c->n;) {
        size_t k = column_values(c, &at, v);
        for (size_t i = 0; i < k; i++)
            summary_add(s, v[i]);
    }
}

/* Open COL (the only argument) and summarize it; fn names the caller. */
static int summarize_arg(const crew_arena *data, const char *arg, crew_out *out,
                         const char *fn, int need_values, column *c, summary *s)
{
    char w[1][WORD_SIZE];
    char usage[64];
    snprintf(usage, sizeof usage, "%s COL", fn);
    int rc = split_args(out, arg, usage, w, 1);
    if (!rc)
        rc = open_column(data, w[0], c, out, fn);
    if (rc)
        return rc;
    summarize(c, s);
    if (s->count < (uint64_t)need_values)
        return crew_out_error(out, "%s: '%s' has %llu value%s (not NaN); %s needs %d", fn,
                              w[0], (unsigned long long)s->count, s->count == 1 ? "" : "s",
                              fn, need_values);
    return 0;
}

static int fn_count(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[1][WORD_SIZE];
    int rc = split_args(out, arg, "count COL", w, 1);
    crew_dataset d;
    if (rc || (rc = find_set(data, w[0], &d, out)))
        return rc;
    if (d.type == CREW_T_STR)
        return put_count(out, d.count);
    column c;
    summary s;
    if ((rc = open_column(data, w[0], &c, out, "count")))
        return rc;
    summarize(&c, &s);
    return put_count(out, s.count);
}

static int fn_sum(const crew_arena *data, const char *arg, crew_out *out)
{
    column c;
    summary s;
    int rc = summarize_arg(data, arg, out, "sum", 0, &c, &s);
    return rc ? rc : put_double(out, summary_sum(&s), "\n");
}

static int fn_mean(const crew_arena *data, const char *arg, crew_out *out)
{
    column c;
    summary s;
    int rc = summarize_arg(data, arg, out, "mean", 1, &c, &s);
    return rc ? rc : put_double(out, summary_sum(&s) / (double)s.count, "\n");
}

static int fn_min(const crew_arena *data, const char *arg, crew_out *out)
{
    column c;
    summary s;
    int rc = summarize_arg(data, arg, out, "min", 1, &c, &s);
    return rc ? rc : put_double(out, s.min, "\n");
}

static int fn_max(const crew_arena *data, const char *arg, crew_out *out)
{
    column c;
    summary s;
    int rc = summarize_arg(data, arg, out, "max", 1, &c, &s);
    return rc ? rc : put_double(out, s.max, "\n");
}

/* The sample standard deviation (n - 1 below), in two passes: the mean
 * first, then the squared distances from it, which loses far less than
 * the one-pass sum of squares. */
static int fn_stddev(const crew_arena *data, const char *arg, crew_out *out)
{
    column c;
    summary s, dev = {0};
    int rc = summarize_arg(data, arg, out, "stddev", 2, &c, &s);
    if (rc)
        return rc;
    double mean = summary_sum(&s) / (double)s.count, v[CHUNK];
    for (uint64_t at = 0; at < c.n;) {
        size_t k = column_values(&c, &at, v);
        for (size_t i = 0; i < k; i++)
            summary_add(&dev, (v[i] - mean) * (v[i] - mean));
    }
    return put_double(out, sqrt(summary_sum(&dev) / (double)(s.count - 1)), "\n");
}

/* ---- quantile: selection in the worker's scratch buffer ------------------ */

typedef struct survey_worker {
    double *scratch;
    size_t cap; /* doubles */
} survey_worker;

static int survey_init(const crew_arena *data, void **state)
{
    (void)data;
    survey_worker *w = calloc(1, sizeof *w);
    if (!w)
        return ENOMEM;
    *state = w;
    return 0;
}

static void survey_fini(void *state)
{
    survey_worker *w = state;
    if (w)
        free(w->scratch);
    free(w);
}

/* Room for n doubles: the worker's buffer, or (no state) a new one that
 * the caller frees through *own.  NULL when out of memory. */
static double *scratch_get(crew_out *out, uint64_t n, double **own)
{
    survey_worker *w = crew_out_state(out);
    *own = NULL;
    if (n == 0 || n > SIZE_MAX / sizeof(double))
        return NULL;
    if (!w)
        return *own = malloc((size_t)n * sizeof(double));
    if (w->cap < n) {
        double *p = realloc(w->scratch, (size_t)n * sizeof(double));
        if (!p)
            return NULL;
        w->scratch = p;
        w->cap = (size_t)n;
    }
    return w->scratch;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void swap(double *v, size_t i, size_t j)
{
    double t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/*
 * Reorder v[0, n) (no NaNs) so that v[k] is the k-th smallest, nothing
 * after it smaller and nothing before it larger.  Quickselect with a
 * median-of-three pivot and a three-way partition (so runs of equal values
 * cost nothing); should an unlucky input use up its budget of rounds, the
 * rest is sorted, which bounds the worst case at O(n log n).
 */
static void select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    int budget = 8;
    for (size_t m = n; m > 1; m >>= 1)
        budget += 2;
    while (hi - lo > 16) {
        if (budget-- == 0) {
            qsort(v + lo, hi - lo, sizeof *v, cmp_double);
            return;
        }
        size_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], c = v[hi - 1];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t lt = lo, i = lo, gt = hi; /* [lo,lt) < pivot, [lt,i) == pivot, [gt,hi) > pivot */
        while (i < gt) {
            if (v[i] < pivot)
                swap(v, lt++, i++);
            else if (v[i] > pivot)
                swap(v, i, --gt);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;
    }
    for (size_t i = lo + 1; i < hi; i++)
        for (size_t j = i; j > lo && v[j - 1] > v[j]; j--)
            swap(v, j - 1, j);
}

/* a + t (b - a), safe for infinities and for spans that overflow. */
static double lerp(double a, double b, double t)
{
    if (t == 0 || a == b)
        return a;
    if (isinf(a) && isinf(b))
        return NAN;
    if (isinf(a) || isinf(b))
        return isinf(a) ? a : b;
    return isfinite(b - a) ? a + t * (b - a) : a * (1 - t) + b * t;
}

/*
 * quantile COL Q: linear interpolation between the two nearest ranks (the
 * definition R calls type 7, numpy's default): with the n values sorted,
 * h = (n - 1) Q, the result is x[floor h] + (h - floor h)(x[floor h + 1] -
 * x[floor h]).  Q = 0 is the minimum, 0.5 the median, 1 the maximum.
 */
static int fn_quantile(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[2][WORD_SIZE];
    double q;
    column c;
    int rc = split_args(out, arg, "quantile COL Q", w, 2);
    if (rc)
        return rc;
    if (parse_double(w[1], &q) || q < 0 || q > 1)
        return crew_out_error(out, "quantile: Q must be a number from 0 to 1, not '%s'", w[1]);
    if ((rc = open_column(data, w[0], &c, out, "quantile")))
        return rc;
    if (c.n == 0)
        return crew_out_error(out, "quantile: '%s' has no values", w[0]);
    double *own, *v = scratch_get(out, c.n, &own);
    if (!v)
        return crew_out_error(out, "quantile: out of memory for %llu values",
                              (unsigned long long)c.n);
    size_t n = 0;
    for (uint64_t at = 0; at < c.n;)
        n += column_values(&c, &at, v + n);
    if (n == 0) {
        free(own);
        return crew_out_error(out, "quantile: '%s' has no values (all NaN)", w[0]);
    }
    double h = (double)(n - 1) * q;
    size_t k = (size_t)h;
    if (k >= n - 1)
        k = n - 1;
    select_kth(v, n, k);
    double below = v[k], above = below;
    if (k + 1 < n) {
        above = v[k + 1];
        for (size_t i = k + 2; i < n; i++)
            if (v[i] < above)
                above = v[i];
    }
    free(own);
    return put_double(out, lerp(below, above, h - (double)k), "\n");
}

/* ---- histogram, above, corr --------------------------------------------- */

#define MAX_BINS 1000000u

/*
 * histogram COL BINS: BINS equal bins from the minimum to the maximum, one
 * line each: its low edge, its high edge, its count.  A value x goes to
 * the bin whose printed edges hold it, [low, high) (about floor((x - min) /
 * (max - min) * BINS)); the maximum, to the last bin.
 * When every value is the same, they all go to the first bin.
 */
static int fn_histogram(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[2][WORD_SIZE];
    uint64_t bins;
    column c;
    summary s;
    int rc = split_args(out, arg, "histogram COL BINS", w, 2);
    if (rc)
        return rc;
    if (parse_count(w[1], MAX_BINS, &bins))
        return crew_out_error(out, "histogram: BINS must be a whole number from 1 to %u, not '%s'",
                              MAX_BINS, w[1]);
    if ((rc = open_column(data, w[0], &c, out, "histogram")))
        return rc;
    summarize(&c, &s);
    if (s.count == 0)
        return crew_out_error(out, "histogram: '%s' has no values", w[0]);
    if (isinf(s.min) || isinf(s.max))
        return crew_out_error(out, "histogram: '%s' holds infinities; bins need a finite range",
                              w[0]);
    uint64_t *counts = calloc((size_t)bins, sizeof *counts);
    if (!counts)
        return crew_out_error(out, "histogram: out of memory");
    /* Halving keeps the span finite when max - min would overflow. */
    double scale = isfinite(s.max - s.min) ? 1.0 : 0.5;
    double span = s.max * scale - s.min * scale, v[CHUNK];
    for (uint64_t at = 0; at < c.n;) {
        size_t k = column_values(&c, &at, v);
        for (size_t i = 0; i < k; i++) {
            double t = span > 0 ? (v[i] * scale - s.min * scale) / span : 0;
            uint64_t b = (uint64_t)(t * (double)bins);
            if (b >= bins)
                b = bins - 1;
            /* Rounding can put a value on the wrong side of an edge as
             * printed: the printed edges decide, [low, high). */
            if (span > 0 && b > 0 && v[i] < lerp(s.min, s.max, (double)b / (double)bins))
                b--;
            else if (span > 0 && b + 1 < bins &&
                     v[i] >= lerp(s.min, s.max, (double)(b + 1) / (double)bins))
                b++;
            counts[b]++;
        }
    }
    rc = 0;
    for (uint64_t b = 0; b < bins && !rc; b++) {
        double low = lerp(s.min, s.max, (double)b / (double)bins);
        double high = b + 1 == bins ? s.max : lerp(s.min, s.max, (double)(b + 1) / (double)bins);
        rc = put_double(out, low, "\t") || put_double(out, high, "\t") ||
             crew_out_printf(out, "%llu\n", (unsigned long long)counts[b]);
    }
    free(counts);
    return rc ? 1 : 0;
}

/* above COL X: how many values are greater than X. */
static int fn_above(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[2][WORD_SIZE];
    double x, v[CHUNK];
    column c;
    int rc = split_args(out, arg, "above COL X", w, 2);
    if (rc)
        return rc;
    if (parse_double(w[1], &x))
        return crew_out_error(out, "above: X must be a number, not '%s'", w[1]);
    if ((rc = open_column(data, w[0], &c, out, "above")))
        return rc;
    uint64_t n = 0;
    for (uint64_t at = 0; at < c.n;) {
        size_t k = column_values(&c, &at, v);
        for (size_t i = 0; i < k; i++)
            n += v[i] > x;
    }
    return put_count(out, n);
}

/*
 * corr A B: Pearson's correlation of two columns of the same length, row
 * by row, over the rows where neither is NaN.  Two passes (means, then
 * the centred products), which stays accurate when the values are large
 * and close together.
 */
static int fn_corr(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[2][WORD_SIZE];
    column a, b;
    int rc = split_args(out, arg, "corr COLA COLB", w, 2);
    if (rc || (rc = open_column(data, w[0], &a, out, "corr")) ||
        (rc = open_column(data, w[1], &b, out, "corr")))
        return rc;
    if (a.n != b.n)
        return crew_out_error(out, "corr: '%s' has %llu rows and '%s' %llu; corr pairs rows",
                              w[0], (unsigned long long)a.n, w[1], (unsigned long long)b.n);
    double x[CHUNK], y[CHUNK];
    summary sx = {0}, sy = {0}, sxx = {0}, syy = {0}, sxy = {0};
    for (int pass = 0; pass < 2; pass++) {
        double mx = pass ? summary_sum(&sx) / (double)sx.count : 0;
        double my = pass ? summary_sum(&sy) / (double)sy.count : 0;
        for (uint64_t at = 0; at < a.n;) {
            size_t k = column_chunk(&a, at, x);
            column_chunk(&b, at, y);
            at += k;
            for (size_t i = 0; i < k; i++) {
                if (isnan(x[i]) || isnan(y[i]))
                    continue;
                if (pass == 0) {
                    summary_add(&sx, x[i]);
                    summary_add(&sy, y[i]);
                } else {
                    summary_add(&sxx, (x[i] - mx) * (x[i] - mx));
                    summary_add(&syy, (y[i] - my) * (y[i] - my));
                    summary_add(&sxy, (x[i] - mx) * (y[i] - my));
                }
            }
        }
        if (pass == 0 && sx.count < 2)
            return crew_out_error(out, "corr: %llu row%s where both are numbers; corr needs 2",
                                  (unsigned long long)sx.count, sx.count == 1 ? "" : "s");
    }
    double vx = summary_sum(&sxx), vy = summary_sum(&syy);
    if (!(vx > 0) || !(vy > 0) || !isfinite(vx * vy))
        return crew_out_error(out, "corr: undefined ('%s' is constant or not finite)",
                              vx > 0 && isfinite(vx) ? w[1] : w[0]);
    double r = summary_sum(&sxy) / sqrt(vx) / sqrt(vy);
    return put_double(out, r > 1 ? 1 : r < -1 ? -1 : r, "\n");
}

/* ---- string data sets ---------------------------------------------------- */

static int open_strings(const crew_arena *data, const char *name, crew_dataset *d,
                        crew_out *out, const char *fn)
{
    int rc = find_set(data, name, d, out);
    if (!rc && d->type != CREW_T_STR)
        rc = crew_out_error(out, "%s: '%s' holds numbers; %s needs strings (crew pack --lines)",
                            fn, name, fn);
    return rc;
}

/* Row i of d, or a failed task's code through *rc. */
static const char *row(const crew_arena *data, const crew_dataset *d, uint64_t i, size_t *len,
                       crew_out *out, int *rc)
{
    const char *s = crew_dataset_str(data, d, i, len);
    if (!s)
        *rc = crew_out_error(out, "data set '%s' is damaged at row %llu", d->name,
                             (unsigned long long)i + 1);
    return s;
}

/* grep COL PATTERN: rows that contain PATTERN (the rest of the argument,
 * blanks and all; bytes compared exactly). */
static int fn_grep(const crew_arena *data, const char *arg, crew_out *out)
{
    const char *pattern = arg ? arg : "";
    char name[WORD_SIZE];
    int got = next_word(out, &pattern, name);
    if (got < 0)
        return 1;
    while (is_blank(*pattern))
        pattern++;
    if (got == 0 || !*pattern)
        return crew_out_error(out, "missing argument; usage: grep COL PATTERN");
    crew_dataset d;
    int rc = open_strings(data, name, &d, out, "grep");
    if (rc)
        return rc;
    size_t plen = strlen(pattern);
    uint64_t n = 0;
    for (uint64_t i = 0; i < d.count; i++) {
        size_t len;
        const char *s = row(data, &d, i, &len, out, &rc);
        if (!s)
            return rc;
        n += memmem(s, len, pattern, plen) != NULL;
    }
    return put_count(out, n);
}

/* longest COL: the first longest row: its number (from 1), length, text. */
static int fn_longest(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[1][WORD_SIZE];
    crew_dataset d;
    int rc = split_args(out, arg, "longest COL", w, 1);
    if (rc || (rc = open_strings(data, w[0], &d, out, "longest")))
        return rc;
    if (d.count == 0)
        return crew_out_error(out, "longest: '%s' has no rows", w[0]);
    const char *best = NULL;
    size_t best_len = 0;
    uint64_t best_row = 0;
    for (uint64_t i = 0; i < d.count; i++) {
        size_t len;
        const char *s = row(data, &d, i, &len, out, &rc);
        if (!s)
            return rc;
        if (!best || len > best_len) {
            best = s;
            best_len = len;
            best_row = i;
        }
    }
    if (crew_out_printf(out, "%llu\t%zu\t", (unsigned long long)best_row + 1, best_len) ||
        crew_out_write(out, best, best_len) || crew_out_write(out, "\n", 1))
        return 1;
    return 0;
}

/*
 * words COL K.  A word is a maximal run of ASCII letters and digits and of
 * bytes >= 0x80, so a UTF-8 word is never cut in two; ASCII letters are
 * folded to lower case.  The words are counted in an open-addressing hash
 * table whose keys live back to back in one growing buffer.
 */
typedef struct word_slot {
    uint64_t hash;
    size_t off, len; /* into the key buffer */
    uint64_t count;  /* 0: empty slot */
} word_slot;

typedef struct word_table {
    word_slot *slots;
    size_t cap, used;
    char *keys;
    size_t keys_len, keys_cap;
} word_table;

typedef struct word_count {
    const char *word;
    size_t len;
    uint64_t count;
} word_count;

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

static unsigned char fold(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int table_grow(word_table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    word_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].count)
            continue;
        size_t j = (size_t)t->slots[i].hash & (cap - 1);
        while (slots[j].count)
            j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Count the word w[0, len) (not yet folded).  0 or -1 (out of memory). */
static int table_add(word_table *t, const char *w, size_t len)
{
    if (2 * (t->used + 1) > t->cap && table_grow(t))
        return -1;
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ fold((unsigned char)w[i])) * 1099511628211u;
    size_t j = (size_t)h & (t->cap - 1);
    for (; t->slots[j].count; j = (j + 1) & (t->cap - 1)) {
        word_slot *s = &t->slots[j];
        if (s->hash != h || s->len != len)
            continue;
        size_t i = 0;
        while (i < len && t->keys[s->off + i] == (char)fold((unsigned char)w[i]))
            i++;
        if (i == len) {
            s->count++;
            return 0;
        }
    }
    if (len > t->keys_cap - t->keys_len) {
        size_t cap = t->keys_cap ? t->keys_cap : 4096;
        while (len > cap - t->keys_len)
            cap *= 2;
        char *keys = realloc(t->keys, cap);
        if (!keys)
            return -1;
        t->keys = keys;
        t->keys_cap = cap;
    }
    for (size_t i = 0; i < len; i++)
        t->keys[t->keys_len + i] = (char)fold((unsigned char)w[i]);
    t->slots[j] = (word_slot){h, t->keys_len, len, 1};
    t->keys_len += len;
    t->used++;
    return 0;
}

/* More frequent first; equal counts in byte order of the word. */
static int cmp_word_count(const void *a, const void *b)
{
    const word_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = memcmp(x->word, y->word, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int words_count_rows(const crew_arena *data, const crew_dataset *d, word_table *t,
                            crew_out *out)
{
    int rc = 0;
    for (uint64_t r = 0; r < d->count; r++) {
        size_t len;
        const unsigned char *s = (const unsigned char *)row(data, d, r, &len, out, &rc);
        if (!s)
            return rc;
        for (size_t i = 0; i < len;) {
            if (!is_word_byte(s[i])) {
                i++;
                continue;
            }
            size_t start = i;
            while (i < len && is_word_byte(s[i]))
                i++;
            if (table_add(t, (const char *)s + start, i - start))
                return crew_out_error(out, "words: out of memory");
        }
    }
    return 0;
}

/* words COL K: the K most frequent words, one "word<TAB>count" line each. */
static int fn_words(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[2][WORD_SIZE];
    uint64_t k;
    crew_dataset d;
    int rc = split_args(out, arg, "words COL K", w, 2);
    if (rc)
        return rc;
    if (parse_count(w[1], UINT64_MAX, &k))
        return crew_out_error(out, "words: K must be a whole number of at least 1, not '%s'",
                              w[1]);
    if ((rc = open_strings(data, w[0], &d, out, "words")))
        return rc;
    word_table t = {0};
    word_count *all = NULL;
    if (!(rc = words_count_rows(data, &d, &t, out))) {
        all = malloc((t.used ? t.used : 1) * sizeof *all);
        if (!all)
            rc = crew_out_error(out, "words: out of memory");
    }
    if (!rc) {
        size_t n = 0;
        for (size_t i = 0; i < t.cap; i++)
            if (t.slots[i].count)
                all[n++] = (word_count){t.keys + t.slots[i].off, t.slots[i].len,
                                        t.slots[i].count};
        qsort(all, n, sizeof *all, cmp_word_count);
        for (size_t i = 0; i < n && i < k && !rc; i++)
            rc = crew_out_write(out, all[i].word, all[i].len) ||
                 crew_out_printf(out, "\t%llu\n", (unsigned long long)all[i].count);
    }
    free(all);
    free(t.slots);
    free(t.keys);
    return rc ? 1 : 0;
}

/* ---- the catalog ------------------------------------------------------- */

/* datasets: one line per data set: name, type, rows. */
static int fn_datasets(const crew_arena *data, const char *arg, crew_out *out)
{
    char w[1][WORD_SIZE];
    int rc = split_args(out, arg, "datasets", w, 0);
    if (rc)
        return rc;
    int n = crew_catalog_count(data);
    if (n < 0)
        return crew_out_error(out, "the data holds no catalog of data sets (%s)",
                              crew_strerror(n));
    for (int i = 0; i < n; i++) {
        crew_dataset d;
        if ((rc = crew_catalog_get(data, (size_t)i, &d)))
            return crew_out_error(out, "catalog entry %d: %s", i + 1, crew_strerror(rc));
        const char *type = crew_type_name(d.type);
        if (crew_out_printf(out, "%s\t%s\t%llu\n", d.name, type ? type : "?",
                            (unsigned long long)d.count))
            return 1;
    }
    return 0;
}

static const crew_function survey_functions[] = {
    {"datasets", fn_datasets, "datasets: list the data sets: name, type, rows"},
    {"count", fn_count, "count COL: values that are not NaN (rows, for strings)"},
    {"sum", fn_sum, "sum COL: the sum of the values"},
    {"mean", fn_mean, "mean COL: the arithmetic mean"},
    {"stddev", fn_stddev, "stddev COL: the sample standard deviation (n - 1)"},
    {"min", fn_min, "min COL: the smallest value"},
    {"max", fn_max, "max COL: the largest value"},
    {"quantile", fn_quantile, "quantile COL Q: the Q quantile, 0 <= Q <= 1 (0.5: median)"},
    {"histogram", fn_histogram, "histogram COL BINS: BINS equal bins: low, high, count"},
    {"above", fn_above, "above COL X: how many values are greater than X"},
    {"corr", fn_corr, "corr COLA COLB: Pearson's correlation, row by row"},
    {"words", fn_words, "words COL K: the K most frequent words of a string column"},
    {"grep", fn_grep, "grep COL PATTERN: rows that contain PATTERN"},
    {"longest", fn_longest, "longest COL: the longest row: number, length, text"},
};

CREW_PLUGIN("survey", "statistics of numeric columns, words of text columns",
            survey_functions, survey_init, survey_fini);
