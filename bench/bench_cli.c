/*
 * bench_cli.c -- `crew run`, the command, measured beside its peers in the
 * same run.  Two parts (-x short,heavy):
 *
 *   short  N short tasks (default 10,000), each a few microseconds of
 *          hashing (cli_work.h): `crew run --each hash` through the
 *          benchmark plugin (plugins/bench_plug.c) with threads and with
 *          processes, vs GNU parallel and `xargs -P` running the same
 *          function as a program (peers/task_prog.c), one process per
 *          task, as shell users do.  Figure: tasks/s over the whole
 *          command; ratios are crew run's rate over the peer's.
 *   heavy  K heavy tasks (default 64), each tens of milliseconds of
 *          folding over all of a snapshot of -s MiB (default 256) that this
 *          program builds with the library: `crew run --each heavy` vs
 *          lib_run (peers/lib_run.c), a C program that makes the same
 *          calls with one crew_run over the same snapshot, with threads
 *          and with processes.  Figure: ms for the whole process; the
 *          ratio run/lib is what the command costs over the library.
 *          Target: run/lib < 1.02 (CLI overhead under 2%).
 *
 * Every output is checked outside the timing against what this program
 * computes itself from cli_work.h: crew run's (--format raw) byte for byte
 * in task order, lib_run's byte for byte, GNU parallel's and xargs' as the
 * same set of lines (they print in the order tasks finish).  Workers
 * default to 2 for every peer (-w).  Usage: bench_cli -h.
 */
#include "bench.h"
#include "cli_work.h"
#include "cmd.h"

/* Paths of the programs built beside this one (CMake sets them). */
#ifndef BENCH_CREW
#define BENCH_CREW "crew"
#endif
#ifndef BENCH_PLUGIN
#define BENCH_PLUGIN "bench_plug.so"
#endif
#ifndef BENCH_TASK_PROG
#define BENCH_TASK_PROG "task_prog"
#endif
#ifndef BENCH_LIB_RUN
#define BENCH_LIB_RUN "lib_run"
#endif

typedef struct cli_opts {
    bench_opts o;
    size_t short_n;    /* -n: short tasks */
    double mib;        /* -s: the heavy part's snapshot */
    size_t heavy_n;    /* -k: heavy tasks */
    int par_rounds;    /* -a: rounds GNU parallel takes part in */
    const char *parts; /* -x */
    char workers[16];  /* o.workers as text, for command lines */
} cli_opts;


/* ---- short: many short tasks ---------------------------------------------------- */

enum { S_THREADS, S_PROCS, S_PARALLEL, S_XARGS, S_PEERS };

typedef struct short_peer {
    const char *name, *label;
    char *argv[20];
    int rounds;          /* rounds it takes part in */
    int exact;           /* output in task order (crew run) or any order */
    double t[BENCH_MAX_REPS];
    int n;
} short_peer;

static void rate_line(const short_peer *p, size_t n, const short_peer *crew_peers, int median)
{
    if (p->n == 0) {
        printf("short %-38s -\n", p->label);
        return;
    }
    double best = bench_pick(p->t, p->n, median);
    printf("short %-38s n=%-6zu %9.4f s %10.0f tasks/s", p->label, n, best, (double)n / best);
    if (p->exact) {
        printf("\n");
        return;
    }
    for (int i = 0; i < 2; i++)
        if (crew_peers[i].n) {
            double r = best / bench_pick(crew_peers[i].t, crew_peers[i].n, median);
            printf(r >= 100 ? "  %s/%s=%.0fx" : "  %s/%s=%.3gx", crew_peers[i].name, p->name, r);
        }
    printf("\n");
}

static void part_short(const cli_opts *co)
{
    const bench_opts *o = &co->o;
    size_t n = co->short_n;
    char args_path[4200], data_path[4200], out_path[4200];
    work_path(args_path, sizeof args_path, "short-args.txt");
    work_path(data_path, sizeof data_path, "short.crew");
    work_path(out_path, sizeof out_path, "short-out.txt");

    /* The arguments, one per line, and the output every peer must print:
     * computed here, timed as the body alone on one thread. */
    size_t acap = n * 24 + 1, ecap = n * 48 + 1, alen = 0, elen = 0;
    char *args = malloc(acap), *expect = malloc(ecap);
    if (!args || !expect)
        bench_fail("out of memory for %zu tasks", n);
    double t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        char a[24];
        snprintf(a, sizeof a, "%zu", i);
        alen += (size_t)snprintf(args + alen, acap - alen, "%s\n", a);
        elen += (size_t)snprintf(expect + elen, ecap - elen, CLI_SHORT_LINE, a, cli_short_hash(a));
    }
    double body_ns = (bench_now_ns() - t0) / (double)n;
    write_file(args_path, args, alen);
    char *sorted_buf = malloc(elen + 1);
    if (!sorted_buf)
        bench_fail("out of memory");
    memcpy(sorted_buf, expect, elen + 1);
    size_t nsorted;
    char **sorted = sorted_lines(sorted_buf, elen, &nsorted);

    /* crew run needs a snapshot; these tasks do not read it. */
    crew_arena *small = build_arena(4096);
    save_arena(small, data_path);
    crew_arena_close(small);

    short_peer p[S_PEERS] = {
        [S_THREADS] = {"run-threads", "run-threads (crew run, threads)",
                       {BENCH_CREW, "run", "--plugin", BENCH_PLUGIN, "--data", data_path,
                        "--each", "hash", "--format", "raw", "-j", (char *)co->workers,
                        "--isolation", "threads", "--no-progress", args_path, NULL},
                       o->reps, 1, {0}, 0},
        [S_PROCS] = {"run-procs", "run-procs (crew run, processes)",
                     {BENCH_CREW, "run", "--plugin", BENCH_PLUGIN, "--data", data_path,
                      "--each", "hash", "--format", "raw", "-j", (char *)co->workers,
                      "--isolation", "processes", "--no-progress", args_path, NULL},
                     o->reps, 1, {0}, 0},
        [S_PARALLEL] = {"parallel", "parallel (GNU parallel -j, task_prog)",
                        {"parallel", "--will-cite", "-j", (char *)co->workers, BENCH_TASK_PROG,
                         NULL},
                        co->par_rounds, 0, {0}, 0},
        [S_XARGS] = {"xargs", "xargs (xargs -P -n 1, task_prog)",
                     {"xargs", "-P", (char *)co->workers, "-n", "1", BENCH_TASK_PROG, NULL},
                     o->reps, 0, {0}, 0},
    };
    int have_parallel = have_command("parallel");

    printf("# short: %zu tasks, each the hash of its argument mixed %d times (%.2f us alone, "
           "one thread): crew run with the plugin vs GNU parallel and xargs -P running "
           "task_prog once per task; tasks/s\n",
           n, CLI_SHORT_ROUNDS, body_ns / 1e3);
    bench_header("short", o);
    printf("# GNU parallel takes part in the first %d round(s) only: it needs milliseconds a "
           "task\n", co->par_rounds);
    if (have_parallel && bench_selected(o, "parallel"))
        print_version("parallel --version 2>/dev/null");
    else if (!have_parallel)
        printf("# skip parallel: GNU parallel is not installed (Debian package parallel)\n");
    if (bench_selected(o, "xargs"))
        print_version("xargs --version 2>/dev/null");

    /* One untimed run of each crew run: the first loads the plugin and the
     * command from disk into the page cache. */
    for (int i = S_THREADS; i <= S_PROCS; i++)
        if (bench_selected(o, p[i].name)) {
            run_cmd(p[i].argv, NULL, out_path, o->verbose, NULL);
            if (check_exact(p[i].name, out_path, expect, elen) != 0)
                bench_fail("%s gave a wrong output (first run)", p[i].name);
        }

    int reps = o->reps < 1 ? 1 : o->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : o->reps;
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < S_PEERS; i++) {
            if (!bench_selected(o, p[i].name) || r >= p[i].rounds ||
                (i == S_PARALLEL && !have_parallel))
                continue;
            bench_sleep_ms(20);
            double s = run_cmd(p[i].argv, p[i].exact ? NULL : args_path, out_path, o->verbose,
                               NULL);
            int bad = p[i].exact ? check_exact(p[i].name, out_path, expect, elen)
                                 : check_set(p[i].name, out_path, sorted, nsorted);
            if (bad)
                bench_fail("%s gave a wrong output (round %d)", p[i].name, r);
            p[i].t[p[i].n++] = s;
            if (o->verbose)
                printf("# round %d %-12s %9.4f s\n", r, p[i].name, s);
        }

    printf("# ratios run-X/Y: crew run's rate over Y's (above 1: crew run is faster)\n");
    for (int i = 0; i < S_PEERS; i++)
        if (bench_selected(o, p[i].name))
            rate_line(&p[i], n, p, o->median);
    /* GNU parallel (a Perl process and W jobs) keeps more processes
     * runnable than there are CPUs: some pressure here is its own. */
    if (p[S_PARALLEL].n)
        printf("# short: GNU parallel makes CPU pressure of its own (21%% over 10 s on an "
               "idle machine with 2 CPUs): compare with the 'before' line\n");
    bench_print_pressure("short");
    fflush(stdout);
    free(sorted);
    free(sorted_buf);
    free(args);
    free(expect);
}

/* ---- heavy: few long tasks, the command vs the library --------------------------- */

typedef struct heavy_ctx {
    char *argv[4][20]; /* run-threads, lib-threads, run-procs, lib-procs */
    char out_path[4200];
    const char *expect;
    size_t elen;
    int verbose;
    int rounds[4];
    double cpu[4];     /* the least CPU time of the peer's rounds, s */
    double wall[4][BENCH_MAX_REPS]; /* every round's time, s */
} heavy_ctx;

static const char *const heavy_names[4] = {"run-threads", "lib-threads", "run-procs",
                                           "lib-procs"};

static void heavy_run(heavy_ctx *c, int i)
{
    double cpu, t = run_cmd(c->argv[i], NULL, c->out_path, c->verbose, &cpu);
    if (c->rounds[i] < BENCH_MAX_REPS)
        c->wall[i][c->rounds[i]] = t;
    if (c->rounds[i]++ == 0 || cpu < c->cpu[i])
        c->cpu[i] = cpu;
    if (c->verbose)
        printf("# round %d %-12s %8.1f ms, cpu %8.1f ms\n", c->rounds[i] - 1, heavy_names[i],
               t * 1e3, cpu * 1e3);
}
static void run_threads(void *c) { heavy_run(c, 0); }
static void lib_threads(void *c) { heavy_run(c, 1); }
static void run_procs(void *c) { heavy_run(c, 2); }
static void lib_procs(void *c) { heavy_run(c, 3); }

static int heavy_check(void *p)
{
    heavy_ctx *c = p;
    return check_exact("heavy", c->out_path, c->expect, c->elen);
}

static int expect_task(const void *shared, const void *arg, void *result)
{
    return cli_heavy_task(shared, *(const uint64_t *)arg, result) == 0 ? 0 : 1;
}

/*
 * The line of one isolation: run = p[0], lib = p[1] of the pair at `at` in
 * the context.  Under it, the CPU times, and the ratio of the two sides'
 * times round by round: the machine's speed drifts from round to round
 * (the CPU time of the same work with it), and a pair run back to back
 * shares the drift, so their median says what the best-of figures say
 * with less noise.
 */
static void heavy_line(const char *what, const cli_opts *co, const bench_peer *run,
                       const bench_peer *lib, const heavy_ctx *c, int at)
{
    double run_cpu = c->cpu[at], lib_cpu = c->cpu[at + 1];
    char name[64];
    snprintf(name, sizeof name, "heavy %s %zux%.0fMiB", what, co->heavy_n, co->mib);
    printf("%-32s run=%s", name, run->fig > 0 ? "" : "-");
    if (run->fig > 0)
        printf("%.1f", run->fig / 1e6);
    printf(" lib=%s", lib->fig > 0 ? "" : "-");
    if (lib->fig > 0)
        printf("%.1f", lib->fig / 1e6);
    printf(" ms");
    if (run->fig > 0 && lib->fig > 0) {
        double r = run->fig / lib->fig;
        printf("  run/lib=%.4f  target(run/lib < 1.02): %s", r, r < 1.02 ? "met" : "MISSED");
    }
    printf("\n");
    if (run_cpu > 0 && lib_cpu > 0)
        printf("#   cpu time (user + system, least of the rounds): run %.1f ms, lib %.1f ms, "
               "run/lib=%.4f\n", run_cpu * 1e3, lib_cpu * 1e3, run_cpu / lib_cpu);
    int n = c->rounds[at] < c->rounds[at + 1] ? c->rounds[at] : c->rounds[at + 1];
    if (n > BENCH_MAX_REPS)
        n = BENCH_MAX_REPS;
    if (n > 0) {
        double ratio[BENCH_MAX_REPS], lo = 0, hi = 0;
        for (int r = 0; r < n; r++) {
            ratio[r] = c->wall[at][r] / c->wall[at + 1][r];
            lo = r == 0 || ratio[r] < lo ? ratio[r] : lo;
            hi = r == 0 || ratio[r] > hi ? ratio[r] : hi;
        }
        printf("#   run/lib round by round: median %.4f, from %.4f to %.4f over %d rounds\n",
               bench_pick(ratio, n, 1), lo, hi, n);
    }
}

static void part_heavy(const cli_opts *co)
{
    static heavy_ctx c;
    bench_opts o = co->o;
    uint64_t words = (uint64_t)(co->mib * 1048576.0) / sizeof(uint64_t);
    size_t k = co->heavy_n;
    char data_path[4200], args_path[4200], tasks[24];
    work_path(data_path, sizeof data_path, "heavy.crew");
    work_path(args_path, sizeof args_path, "heavy-args.txt");
    work_path(c.out_path, sizeof c.out_path, "heavy-out.txt");
    snprintf(tasks, sizeof tasks, "%zu", k);
    if (words < 4096)
        bench_fail("-s %g: the snapshot must hold at least 4096 words (32 KiB)", co->mib);
    check_space(work_dir, (double)words * sizeof(uint64_t));

    /* The snapshot, and the expected output: computed over the arena as it
     * was built, serially on this thread (untimed, but the first task's
     * time is what a task costs without a pool), then by crew_run in this
     * process, which must agree task by task. */
    crew_arena *a = build_arena(words);
    uint64_t *idx = calloc(k, sizeof *idx), *sums = calloc(k, sizeof *sums);
    uint64_t *pooled = calloc(k, sizeof *pooled);
    crew_task *t = calloc(k, sizeof *t);
    size_t acap = k * 24 + 1, ecap = k * 48 + 1, alen = 0, elen = 0;
    char *args = malloc(acap), *expect = malloc(ecap);
    if (!idx || !sums || !pooled || !t || !args || !expect)
        bench_fail("out of memory for %zu tasks", k);
    double t_one = 0;
    for (size_t i = 0; i < k; i++) {
        double t0 = bench_now_ns();
        if (cli_heavy_task(a, i, &sums[i]) != 0)
            bench_fail("heavy: task %zu failed alone", i);
        if (i == 0)
            t_one = bench_now_ns() - t0;
        idx[i] = i;
        t[i] = (crew_task){.fn = expect_task, .arg = &idx[i], .result = &pooled[i]};
    }
    crew *pool = bench_crew_open(&o);
    double t0 = bench_now_ns();
    int rc = crew_run(pool, a, t, k, NULL);
    double t_in = bench_now_ns() - t0;
    crew_close(pool);
    if (rc != 0)
        bench_fail("heavy: in-process crew_run: %s", crew_strerror(rc));
    for (size_t i = 0; i < k; i++) {
        if (pooled[i] != sums[i])
            bench_fail("heavy: task %zu gave another sum in crew_run than alone", i);
        alen += (size_t)snprintf(args + alen, acap - alen, "%zu\n", i);
        elen += (size_t)snprintf(expect + elen, ecap - elen, CLI_HEAVY_LINE, (uint64_t)i, sums[i]);
    }
    free(pooled);
    write_file(args_path, args, alen);
    save_arena(a, data_path);
    crew_arena_close(a);
    c.expect = expect;
    c.elen = elen;
    c.verbose = o.verbose;

    char *const run_t[] = {BENCH_CREW, "run", "--plugin", BENCH_PLUGIN, "--data", data_path,
                           "--each", "heavy", "--format", "raw", "-j", (char *)co->workers,
                           "--isolation", "threads", "--no-progress", args_path, NULL};
    char *const lib_t[] = {BENCH_LIB_RUN, data_path, tasks, (char *)co->workers, "threads", NULL};
    memcpy(c.argv[0], run_t, sizeof run_t);
    memcpy(c.argv[1], lib_t, sizeof lib_t);
    memcpy(c.argv[2], run_t, sizeof run_t);
    memcpy(c.argv[3], lib_t, sizeof lib_t);
    c.argv[2][13] = "processes";
    c.argv[3][4] = "processes";

    printf("# heavy: %zu tasks, each a fold over all of a %.0f MiB snapshot (one task alone: "
           "%.1f ms; all %zu by crew_run in this process, untimed: %.1f ms): crew run with the "
           "plugin vs lib_run, the same calls through the library; ms per whole process\n",
           k, co->mib, t_one / 1e6, k, t_in / 1e6);
    bench_header("heavy", &o);
    bench_peer p[] = {{heavy_names[0], run_threads, heavy_check, 0},
                      {heavy_names[1], lib_threads, heavy_check, 0},
                      {heavy_names[2], run_procs, heavy_check, 0},
                      {heavy_names[3], lib_procs, heavy_check, 0}};
    bench_measure(p, 4, &c, &o);
    printf("# run/lib: crew run's time over lib_run's (below 1: crew run is faster)\n");
    heavy_line("threads", co, &p[0], &p[1], &c, 0);
    heavy_line("processes", co, &p[2], &p[3], &c, 2);
    bench_print_pressure("heavy");
    fflush(stdout);
    free(idx);
    free(sums);
    free(t);
    free(args);
    free(expect);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static const char usage[] =
        "  (-w defaults to 2 here, for every peer; -r to 5)\n"
        "  -n N     short tasks (default 10000; quick 500)\n"
        "  -s MiB   the heavy part's snapshot (default 256; quick 16)\n"
        "  -k K     heavy tasks (default 64)\n"
        "  -a R     rounds GNU parallel takes part in (default 1: it is slow)\n"
        "  -x LIST  parts to run: short,heavy (default both; env BENCH_CLI_PARTS)\n"
        "  peers (-p): run-threads run-procs parallel xargs lib-threads lib-procs\n"
        "  env CREW_BENCH_DIR: where the snapshots go (default $TMPDIR, else /tmp)\n";
    cli_opts co = {0};
    int c;

    bench_defaults(&co.o, 5);
    if (!getenv("BENCH_WORKERS"))
        co.o.workers = 2;
    co.heavy_n = 64;
    co.par_rounds = 1;
    co.parts = getenv("BENCH_CLI_PARTS");
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "n:s:k:a:x:")) != -1) {
        if (bench_common_opt(&co.o, c, optarg))
            continue;
        if (c == 'n' && atof(optarg) >= 1)
            co.short_n = (size_t)atof(optarg);
        else if (c == 's' && atof(optarg) > 0)
            co.mib = atof(optarg);
        else if (c == 'k' && atof(optarg) >= 1 && atof(optarg) <= 1e6)
            co.heavy_n = (size_t)atof(optarg);
        else if (c == 'a' && atoi(optarg) >= 0)
            co.par_rounds = atoi(optarg);
        else if (c == 'x')
            co.parts = optarg;
        else
            return bench_usage(argv[0], usage, c);
    }
    if (!co.short_n)
        co.short_n = co.o.quick ? 500 : 10000;
    if (co.mib <= 0)
        co.mib = co.o.quick ? 16 : 256;
    snprintf(co.workers, sizeof co.workers, "%u", co.o.workers);
    if (access(BENCH_CREW, X_OK) != 0 || access(BENCH_PLUGIN, R_OK) != 0)
        bench_fail("%s or %s is missing: build the targets crew_cli and bench_plug", BENCH_CREW,
                   BENCH_PLUGIN);
    make_work_dir("crew-bench-cli");

    /* Each part ends with the pressure over its last seconds; this line
     * says what the machine was doing before any of it ran. */
    bench_print_pressure("before");
    bench_opts parts = {.peers = co.parts};
    if (bench_selected(&parts, "short"))
        part_short(&co);
    if (bench_selected(&parts, "heavy"))
        part_heavy(&co);
    return 0;
}
