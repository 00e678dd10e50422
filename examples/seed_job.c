/*
 * seed_job.c -- the job crew exists for, end to end.
 *
 * One big data set is built once in a shared arena: a few thousand series of
 * doubles with very different lengths, linked by crew_ref offsets (so the
 * same bytes work in any thread, process or saved snapshot).  The arena is
 * frozen read-only.  Then 64 different statistics (16 kinds over 4 groups of
 * series, some a hundred times costlier than others) run as 64 crew_run
 * tasks: first on one worker, then on every CPU this process may use.
 * Each task writes only its own result.  The program prints the results,
 * checks that both runs agree bit for bit, and reports the speed-up.
 *
 * Usage: seed_job [--size MiB] [--workers N]
 */
#define _POSIX_C_SOURCE 200809L
#include <crew.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct series {
    uint64_t len;
    crew_ref values; /* double[len] */
} series;

typedef struct dataset {
    uint64_t nseries;
    crew_ref series; /* series[nseries] */
} dataset;

enum { KINDS = 16, GROUPS = 4, NTASKS = KINDS * GROUPS };

static const char *kind_names[KINDS] = {
    "sum",        "mean",      "variance",  "min",       "max",       "mean |dev|",
    "skewness",   "kurtosis",  "share > 1", "histogram", "autocorr 1", "autocorr 1..8",
    "median",     "longest up", "L2 norm",  "top-100 sum",
};

typedef struct stat_arg {
    const crew_arena *arena;
    int kind, group;
} stat_arg;

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- building the data set ------------------------------------------------ */

static int build(crew_arena **out, size_t bytes)
{
    crew_arena *a;
    int rc = crew_arena_create(&a, bytes + bytes / 4 + (64u << 20));
    if (rc < 0)
        return rc;
    uint64_t seed = 0x5eed, total = bytes / sizeof(double);
    /* Skewed lengths: most series are short, a few are 100 times longer. */
    uint64_t nseries = 4096;
    crew_ref sref = crew_arena_alloc(a, nseries * sizeof(series), 8);
    crew_ref dref = crew_arena_alloc(a, sizeof(dataset), 8);
    if (!sref || !dref)
        goto full;
    uint64_t *lens = malloc(nseries * sizeof *lens);
    double wsum = 0, *w = malloc(nseries * sizeof *w);
    if (!lens || !w) {
        free(lens);
        free(w);
        crew_arena_close(a);
        return CREW_ENOMEM;
    }
    for (uint64_t i = 0; i < nseries; i++) {
        double u = (double)(rng(&seed) >> 11) / 9007199254740992.0;
        w[i] = 1.0 / pow(1.0 - u * 0.999, 0.75);
        wsum += w[i];
    }
    for (uint64_t i = 0; i < nseries; i++)
        lens[i] = 1 + (uint64_t)((double)total * w[i] / wsum);
    free(w);
    for (uint64_t i = 0; i < nseries; i++) {
        crew_ref vref = crew_arena_alloc(a, lens[i] * sizeof(double), 64);
        if (!vref) {
            free(lens);
            goto full;
        }
        double *v = crew_arena_ptr(a, vref);
        double level = (double)(i % 7);
        for (uint64_t k = 0; k < lens[i]; k++) {
            level = 0.9 * level + (double)(rng(&seed) >> 11) / 4503599627370496.0 - 1.0;
            v[k] = level;
        }
        series *s = crew_arena_ptr(a, sref);
        s[i] = (series){lens[i], vref};
    }
    free(lens);
    dataset *d = crew_arena_ptr(a, dref);
    *d = (dataset){nseries, sref};
    crew_arena_set_root(a, dref);
    rc = crew_arena_freeze(a);
    if (rc < 0) {
        crew_arena_close(a);
        return rc;
    }
    *out = a;
    return 0;
full:
    crew_arena_close(a);
    return CREW_EFULL;
}

/* ---- the 64 statistics ------------------------------------------------------ */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* One kind of statistic over one series. */
static double stat_series(int kind, const double *v, uint64_t n)
{
    double s = 0, m = 0, acc = 0;
    switch (kind) {
    case 0: for (uint64_t i = 0; i < n; i++) s += v[i]; return s;
    case 1: for (uint64_t i = 0; i < n; i++) s += v[i]; return s / (double)n;
    case 3: s = v[0]; for (uint64_t i = 1; i < n; i++) s = v[i] < s ? v[i] : s; return s;
    case 4: s = v[0]; for (uint64_t i = 1; i < n; i++) s = v[i] > s ? v[i] : s; return s;
    case 8: for (uint64_t i = 0; i < n; i++) s += v[i] > 1.0; return s / (double)n;
    case 14: for (uint64_t i = 0; i < n; i++) s += v[i] * v[i]; return sqrt(s);
    case 13: {
        uint64_t best = 1, run = 1;
        for (uint64_t i = 1; i < n; i++) {
            run = v[i] > v[i - 1] ? run + 1 : 1;
            best = run > best ? run : best;
        }
        return (double)best;
    }
    case 10: case 11: {
        int lags = kind == 10 ? 1 : 8;
        for (uint64_t i = 0; i < n; i++) m += v[i];
        m /= (double)n;
        for (uint64_t i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
        for (int lag = 1; lag <= lags; lag++) {
            double c = 0;
            for (uint64_t i = (uint64_t)lag; i < n; i++) c += (v[i] - m) * (v[i - lag] - m);
            acc += s > 0 ? c / s : 0;
        }
        return acc;
    }
    case 9: {
        uint64_t bins[64] = {0};
        for (uint64_t i = 0; i < n; i++) {
            int b = (int)floor((v[i] + 8.0) * 4.0);
            bins[b < 0 ? 0 : b > 63 ? 63 : b]++;
        }
        uint64_t best = 0;
        for (int b = 0; b < 64; b++) best = bins[b] > bins[best] ? (uint64_t)b : best;
        return (double)best;
    }
    case 12: case 15: {
        /* Costly on purpose: sort a copy (the data itself is read-only). */
        uint64_t k = n < 1024 ? n : 1024;
        double *c = malloc(k * sizeof *c);
        if (!c) return NAN;
        for (uint64_t i = 0; i < k; i++) c[i] = v[i * (n / k)];
        qsort(c, k, sizeof *c, cmp_double);
        if (kind == 12) s = c[k / 2];
        else for (uint64_t i = k > 100 ? k - 100 : 0; i < k; i++) s += c[i];
        free(c);
        return s;
    }
    default: { /* 2 variance, 5 mean |dev|, 6 skewness, 7 kurtosis */
        for (uint64_t i = 0; i < n; i++) m += v[i];
        m /= (double)n;
        double m2 = 0, m3 = 0, m4 = 0, ad = 0;
        for (uint64_t i = 0; i < n; i++) {
            double d = v[i] - m, d2 = d * d;
            m2 += d2; m3 += d2 * d; m4 += d2 * d2; ad += fabs(d);
        }
        m2 /= (double)n; m3 /= (double)n; m4 /= (double)n;
        if (kind == 2) return m2;
        if (kind == 5) return ad / (double)n;
        if (m2 == 0) return 0;
        return kind == 6 ? m3 / pow(m2, 1.5) : m4 / (m2 * m2);
    }
    }
}

/* A task: one kind of statistic over every series of one group, averaged. */
static int stat_task(const void *shared, const void *argp, void *result)
{
    const stat_arg *arg = argp;
    const dataset *d = shared;
    const series *s = crew_arena_ptr(arg->arena, d->series);
    double acc = 0;
    uint64_t used = 0;
    for (uint64_t i = (uint64_t)arg->group; i < d->nseries; i += GROUPS) {
        const double *v = crew_arena_ptr(arg->arena, s[i].values);
        double x = stat_series(arg->kind, v, s[i].len);
        if (isnan(x))
            return 1; /* out of memory in this task: its own error */
        acc += x;
        used++;
    }
    *(double *)result = acc / (double)used;
    return 0;
}

/* ---- running -------------------------------------------------------------- */

static void progress(void *ctx, size_t done, size_t total, size_t failed)
{
    (void)ctx;
    if (!isatty(2))
        return;
    int width = 40, fill = (int)(width * done / total);
    fprintf(stderr, "\r  [%.*s%*s] %zu/%zu tasks, %zu failed", fill,
            "########################################", width - fill, "", done, total, failed);
    if (done == total)
        fputs("\r\033[K", stderr);
}

static int run(crew_arena *a, unsigned workers, int isolation, double *results, double *seconds)
{
    crew *pool;
    int rc = crew_open(&pool, &(crew_config){.workers = workers, .isolation = isolation});
    if (rc < 0)
        return rc;
    stat_arg args[NTASKS];
    crew_task tasks[NTASKS];
    for (int i = 0; i < NTASKS; i++) {
        args[i] = (stat_arg){a, i % KINDS, i / KINDS};
        tasks[i] = (crew_task){.fn = stat_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &results[i], .result_size = sizeof results[i]};
    }
    double t0 = now();
    rc = crew_run(pool, crew_arena_ptr(a, crew_arena_root(a)), tasks, NTASKS,
                  &(crew_run_opts){.progress = progress});
    *seconds = now() - t0;
    if (rc == CREW_EFAILED)
        for (int i = 0; i < NTASKS; i++)
            if (tasks[i].status != 0)
                fprintf(stderr, "task %d (%s, group %d) failed: %d\n", i, kind_names[i % KINDS],
                        i / KINDS, tasks[i].status);
    crew_close(pool);
    return rc;
}

int main(int argc, char **argv)
{
    size_t mib = 256;
    unsigned workers = 0;
    int processes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            mib = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--processes") == 0)
            processes = 1;
        else {
            fprintf(stderr, "usage: %s [--size MiB] [--workers N] [--processes]\n", argv[0]);
            return 2;
        }
    }
    if (mib == 0 || workers > CREW_MAX_WORKERS) {
        fprintf(stderr, "seed_job: --size must be > 0 and --workers <= %d\n", CREW_MAX_WORKERS);
        return 2;
    }
    if (workers == 0)
        workers = crew_usable_cpus();

    printf("crew %s: 64 statistics over one shared, read-only data set\n", crew_version());
    double t0 = now();
    crew_arena *a;
    int rc = build(&a, mib << 20);
    if (rc < 0) {
        fprintf(stderr, "seed_job: building the data set: %s\n", crew_strerror(rc));
        return 1;
    }
    const dataset *d = crew_arena_ptr(a, crew_arena_root(a));
    printf("data set: %llu series, %.0f MiB in a frozen arena, built in %.2f s\n",
           (unsigned long long)d->nseries, (double)crew_arena_size(a) / 1048576.0, now() - t0);

    double one[NTASKS], all[NTASKS], t_one, t_all;
    printf("running 64 tasks on 1 worker...\n");
    int rc1 = run(a, 1, CREW_THREADS, one, &t_one);
    printf("running 64 tasks on %u workers...\n", workers);
    int rc2 = run(a, workers, CREW_THREADS, all, &t_all);
    /* The same job in worker processes: same data (the arena is shared,
     * not copied), same results, isolation for the price of a fork. */
    double procs[NTASKS], t_procs = 0;
    int rc3 = 0;
    if (processes) {
        printf("running 64 tasks on %u worker processes...\n", workers);
        rc3 = run(a, workers, CREW_PROCESSES, procs, &t_procs);
    }
    if (rc1 < 0 || rc2 < 0 || rc3 < 0) {
        fprintf(stderr, "seed_job: %s\n", crew_strerror(rc1 < 0 ? rc1 : rc2 < 0 ? rc2 : rc3));
        crew_arena_close(a);
        return 1;
    }

    printf("\n%-14s %14s %14s %14s %14s\n", "statistic", "group 0", "group 1", "group 2", "group 3");
    for (int k = 0; k < KINDS; k++) {
        printf("%-14s", kind_names[k]);
        for (int g = 0; g < GROUPS; g++)
            printf(" %14.6g", all[g * KINDS + k]);
        printf("\n");
    }
    int same = memcmp(one, all, sizeof one) == 0 &&
               (!processes || memcmp(one, procs, sizeof one) == 0);
    printf("\n1 worker: %.3f s   %u workers: %.3f s   speed-up: %.2fx   results identical: %s\n",
           t_one, workers, t_all, t_one / t_all, same ? "yes" : "NO");
    if (processes)
        printf("%u worker processes: %.3f s (%.2fx the time of %u threads)\n",
               workers, t_procs, t_procs / t_all, workers);
    crew_arena_close(a);
    return same ? 0 : 1;
}
