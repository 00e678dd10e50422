/*
 * bench.h -- what every crew benchmark shares: the clock, the options
 * (workers, repetitions, best or median, quick mode) and the command line,
 * the setup of the peers, the interleaved measurement loop and the one-line
 * report with ratios.
 *
 * Every measurement runs each peer (crew, OpenMP, oneTBB, serial) once per
 * round, in turn, for several rounds, and keeps the best (default) or the
 * median time of each peer.  Interleaving the peers means a noisy moment on
 * a shared machine hurts them alike instead of spoiling one peer's figure.
 * Between two peers the program sleeps a little so that the threads of the
 * previous runtime stop spinning and go to sleep before the next one starts.
 */
#ifndef CREW_BENCH_H
#define CREW_BENCH_H

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "crew.h"
#include "tbb_peers.h"

#define BENCH_MAX_PEERS 4
#define BENCH_MAX_REPS 101
#define BENCH_MAX_SIZES 16 /* the most sizes one -n LIST may name */

/* Nanoseconds on the monotonic clock. */
static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline void bench_sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A wrong result is never a measurement: say what went wrong and stop. */
static inline void bench_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stdout);
    exit(1);
}

/* The CPUs this process may run on (its affinity mask). */
static inline unsigned bench_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

typedef struct bench_opts {
    unsigned workers; /* N for every peer, caller included */
    int reps;         /* rounds; each peer runs once per round */
    int median;       /* 1: report the median of the rounds, 0: the best */
    int quick;        /* small sizes: a smoke run that takes seconds */
    int verbose;
    const char *peers; /* NULL: every peer; else a comma list, e.g. "crew,omp" */
} bench_opts;

/*
 * Defaults, then the environment: BENCH_WORKERS, BENCH_REPS, BENCH_STAT
 * (best|median), BENCH_QUICK (nonzero: smoke sizes).  Flags parsed later by
 * bench_common_opt override them.
 */
static inline void bench_defaults(bench_opts *o, int reps)
{
    const char *s;
    memset(o, 0, sizeof *o);
    o->workers = bench_cpus();
    o->reps = reps;
    if ((s = getenv("BENCH_WORKERS")) && atoi(s) > 0)
        o->workers = (unsigned)atoi(s);
    if ((s = getenv("BENCH_REPS")) && atoi(s) > 0)
        o->reps = atoi(s);
    if ((s = getenv("BENCH_STAT")))
        o->median = strcmp(s, "median") == 0;
    if ((s = getenv("BENCH_QUICK")))
        o->quick = atoi(s) != 0;
    o->peers = getenv("BENCH_PEERS");
}

#define BENCH_COMMON_FLAGS "w:r:mqvp:h"
#define BENCH_COMMON_USAGE \
    "  -w N   workers for every peer (default: every CPU; env BENCH_WORKERS)\n" \
    "  -r R   rounds; each peer runs once per round (env BENCH_REPS)\n" \
    "  -m     report the median round instead of the best (env BENCH_STAT=median)\n" \
    "  -q     quick: small sizes, a smoke run (env BENCH_QUICK=1)\n" \
    "  -p L   run only these peers, e.g. -p crew,omp (env BENCH_PEERS): for perf\n" \
    "  -v     verbose\n"

/* Handle one of the common flags; 1 if it was one, 0 if not. */
static inline int bench_common_opt(bench_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'w': o->workers = (unsigned)atoi(arg); if (o->workers == 0) bench_fail("-w needs N > 0"); return 1;
    case 'r': o->reps = atoi(arg); return 1;
    case 'm': o->median = 1; return 1;
    case 'q': o->quick = 1; return 1;
    case 'v': o->verbose = 1; return 1;
    case 'p': o->peers = arg; return 1;
    default: return 0;
    }
}

/*
 * Print the usage (the common flags, then `extra`, the program's own flags)
 * and return main's exit code after option c: 0 for -h, 2 for a bad flag.
 */
static inline int bench_usage(const char *argv0, const char *extra, int c)
{
    fprintf(stderr, "usage: %s [options]\n" BENCH_COMMON_USAGE "%s", argv0, extra);
    return c == 'h' ? 0 : 2;
}

/* "1e6,1e7,100000" -> sizes; returns how many (at most max). */
static inline int bench_parse_sizes(const char *s, size_t *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 1)
            bench_fail("bad size list '%s'", s);
        out[n++] = (size_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            bench_fail("bad size list near '%s'", end);
    }
    return n;
}

/*
 * The command line of a benchmark over a list of sizes: bench_defaults(o,
 * reps), the common flags and -n LIST (n_usage describes it).  sizes[] holds
 * BENCH_MAX_SIZES and comes with the caller's defaults (*count of them); -n
 * replaces them, else quick mode replaces them with quick[0..nquick).
 * Returns -1 to go on, else main's exit code (see bench_usage).
 */
static inline int bench_sized_args(int argc, char **argv, bench_opts *o, int reps,
                                   const char *n_usage, size_t *sizes, int *count,
                                   const size_t *quick, int nquick)
{
    const char *list = NULL;
    int c;

    bench_defaults(o, reps);
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "n:")) != -1) {
        if (bench_common_opt(o, c, optarg))
            continue;
        if (c == 'n') {
            list = optarg;
            continue;
        }
        return bench_usage(argv[0], n_usage, c);
    }
    if (list)
        *count = bench_parse_sizes(list, sizes, BENCH_MAX_SIZES);
    else if (o->quick) {
        memcpy(sizes, quick, (size_t)nquick * sizeof *sizes);
        *count = nquick;
    }
    return -1;
}

/*
 * bench_sized_args for a list of element counts, 1e6,1e7,1e8 unless -n or
 * quick mode (1e5,1e6) says otherwise; `what` names them in the usage.
 */
static inline int bench_count_args(int argc, char **argv, bench_opts *o, const char *what,
                                   size_t *sizes, int *count)
{
    static const size_t quick[] = {100000, 1000000};
    char usage[160];
    snprintf(usage, sizeof usage, "  -n LIST  %s (default 1e6,1e7,1e8; quick 1e5,1e6)\n", what);
    sizes[0] = 1000000, sizes[1] = 10000000, sizes[2] = 100000000;
    *count = 3;
    return bench_sized_args(argc, argv, o, 5, usage, sizes, count, quick, 2);
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The figure of a series of rounds: the best (smallest) or the median. */
static inline double bench_pick(const double *v, int n, int median)
{
    double *s = (double *)malloc((size_t)n * sizeof *s);
    if (!s)
        bench_fail("out of memory");
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    double fig = median ? (n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : s[0];
    free(s);
    return fig;
}

/*
 * One side of a measurement.  run(ctx) does the work once (it may loop
 * inside; the caller divides).  check(ctx), when set, is called after every
 * timed run, outside the timing, and returns 0 when the result is right.
 */
typedef struct bench_peer {
    const char *name;
    void (*run)(void *ctx);
    int (*check)(void *ctx);
    double fig; /* out: ns per run(), best or median of the rounds */
} bench_peer;

/* Whether the peer called name is to run (the -p list). */
static inline int bench_selected(const bench_opts *o, const char *name)
{
    if (!o->peers)
        return 1;
    size_t len = strlen(name);
    for (const char *s = o->peers; *s;) {
        const char *e = strchr(s, ',');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (l == len && strncmp(s, name, len) == 0)
            return 1;
        s += l + (e != NULL);
    }
    return 0;
}

/*
 * Time every selected peer o->reps times, interleaved; set each peer's fig
 * (0 for a peer not selected).
 */
static inline void bench_measure(bench_peer *p, int np, void *ctx, const bench_opts *o)
{
    double t[BENCH_MAX_PEERS][BENCH_MAX_REPS];
    int reps = o->reps < 1 ? 1 : o->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : o->reps;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < np; i++) {
            if (!bench_selected(o, p[i].name))
                continue;
            bench_sleep_ms(20); /* let the previous runtime's threads go to sleep */
            double t0 = bench_now_ns();
            p[i].run(ctx);
            t[i][r] = bench_now_ns() - t0;
            if (p[i].check && p[i].check(ctx) != 0)
                bench_fail("%s gave a wrong result (round %d)", p[i].name, r);
        }
    }
    for (int i = 0; i < np; i++)
        p[i].fig = bench_selected(o, p[i].name) ? bench_pick(t[i], reps, o->median) : 0;
}

/* The usual four peers: crew, omp, tbb and serial, one check for all. */
#define BENCH_PEERS4(crew_fn, omp_fn, tbb_fn, serial_fn, check_fn)          \
    {                                                                        \
        {"crew", crew_fn, check_fn, 0}, {"omp", omp_fn, check_fn, 0},        \
            {"tbb", tbb_fn, check_fn, 0}, {"serial", serial_fn, check_fn, 0}, \
    }

static inline const bench_peer *bench_find(const bench_peer *p, int np, const char *name)
{
    for (int i = 0; i < np; i++)
        if (strcmp(p[i].name, name) == 0)
            return &p[i];
    return NULL;
}

/*
 * Print "name  crew=X omp=Y tbb=Z serial=W unit  crew/omp=.. crew/tbb=..
 * crew/serial=.." with each fig divided by `div` (so the unit can be ms, ns
 * per task, ...).  p[0] is crew.  No newline: the caller may add a verdict.
 */
static inline void bench_line(const char *name, const bench_peer *p, int np, double div,
                              const char *unit)
{
    printf("%-24s", name);
    for (int i = 0; i < np; i++)
        if (p[i].fig > 0)
            printf(" %s=%.4g", p[i].name, p[i].fig / div);
        else
            printf(" %s=-", p[i].name);
    printf(" %s ", unit);
    for (int i = 1; i < np; i++)
        if (p[0].fig > 0 && p[i].fig > 0)
            printf(" %s/%s=%.2f", p[0].name, p[i].name, p[0].fig / p[i].fig);
}

/*
 * bench_measure, then bench_line under the name printf(fmt, ...) (at most
 * 63 characters).  No newline, as bench_line.
 */
__attribute__((format(printf, 7, 8)))
static inline void bench_measure_line(bench_peer *p, int np, void *ctx, const bench_opts *o,
                                      double div, const char *unit, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    bench_measure(p, np, ctx, o);
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    bench_line(name, p, np, div, unit);
}

/*
 * The data-parallel targets: crew within 5% of the best parallel peer and
 * at least 1.85x faster than serial.  Appends the verdict and a newline.
 */
static inline void bench_verdict_parallel(const bench_peer *p, int np)
{
    double best = 0;
    if (p[0].fig <= 0) {
        printf("\n");
        return;
    }
    for (int i = 1; i < np; i++)
        if (strcmp(p[i].name, "serial") != 0 && p[i].fig > 0 && (best == 0 || p[i].fig < best))
            best = p[i].fig;
    const bench_peer *ser = bench_find(p, np, "serial");
    int near = best == 0 || p[0].fig <= 1.05 * best;
    int fast = !ser || ser->fig <= 0 || ser->fig >= 1.85 * p[0].fig;
    /* A loop bound by memory bandwidth stops every peer short of 1.85x. */
    int nobody = !fast && best > 0 && ser->fig < 1.85 * best;
    printf("  target(<=1.05*best,>=1.85x serial): %s%s%s%s\n", near && fast ? "met" : "MISSED",
           near ? "" : " [slower than best peer]", fast ? "" : " [speedup < 1.85]",
           nobody ? " (no peer reaches 1.85x)" : "");
    fflush(stdout);
}

/*
 * The kernel's CPU pressure (the share of time some runnable task waited
 * for a CPU) over the last 10 and 60 s, and the load average: a figure
 * taken while other jobs wanted the CPUs is not a measurement of crew, and
 * this line says so.
 */
static inline void bench_print_pressure(const char *part)
{
    FILE *f = fopen("/proc/pressure/cpu", "re");
    double a10, a60, l1 = -1, l5 = -1, l15 = -1;
    FILE *l = fopen("/proc/loadavg", "re");
    if (!l || fscanf(l, "%lf %lf %lf", &l1, &l5, &l15) != 3)
        l1 = -1;
    if (l)
        fclose(l);
    if (f && fscanf(f, "some avg10=%lf avg60=%lf", &a10, &a60) == 2)
        printf("# %s: cpu pressure (time runnable tasks waited for a CPU) %.0f%% over 10 s, "
               "%.0f%% over 60 s%s\n",
               part, a10, a60, a60 > 5 ? ": other jobs were running, figures are noisy" : "");
    if (l1 >= 0)
        printf("# %s: load average %.2f %.2f %.2f (1, 5, 15 min)\n", part, l1, l5, l15);
    if (f)
        fclose(f);
}

static inline void bench_header(const char *what, const bench_opts *o)
{
    printf("# %s: workers=%u rounds=%d figure=%s%s\n", what, o->workers, o->reps,
           o->median ? "median" : "best", o->quick ? " (quick sizes)" : "");
    fflush(stdout);
}

/* A crew pool of o->workers, or fail. */
static inline crew *bench_crew_open(const bench_opts *o)
{
    crew *pool;
    int rc = crew_open(&pool, &(crew_config){.workers = o->workers});
    if (rc != 0)
        bench_fail("crew_open: %s", crew_strerror(rc));
    return pool;
}

/* Every peer set to o->workers threads: a crew pool (returned), OpenMP, oneTBB. */
static inline crew *bench_open_peers(const bench_opts *o)
{
    crew *pool = bench_crew_open(o);
    omp_set_num_threads((int)o->workers);
    tbb_setup(o->workers);
    return pool;
}

#endif /* CREW_BENCH_H */
