/*
 * bench_proc.c -- process pools (crew_config.isolation = CREW_PROCESSES)
 * beside crew's thread pools and beside what people use today to run work
 * in processes, all measured in the same run:
 *
 *   tasks   empty-task throughput in tasks/s: crew_run of N tiny tasks (an
 *           8-byte argument in, an 8-byte result out) on a process pool
 *           and on a thread pool, vs Python's ProcessPoolExecutor and
 *           multiprocessing.Pool (map with chunksize 1, and with the best
 *           of several chunksizes), GNU parallel and xargs -P running
 *           `true` once per task (peers/py_pool.py, peers/shell_peers.sh).
 *           Slow peers run fewer tasks; rates make the counts comparable.
 *           Targets: crew processes >= 100k tasks/s, >= 20x Python's best,
 *           >= 100x GNU parallel.
 *   seed    the seed job (seed_job.h: 64 statistics) over one frozen arena
 *           (1 GiB): the same crew_run of 64 tasks on a process pool and on
 *           a thread pool; every result must be bit for bit the same.
 *           Target: processes within 5% of threads.
 *   memory  the total PSS of 2, 4, 8 process workers that have each read
 *           all of the arena, vs Python multiprocessing workers each given
 *           the same number of bytes as a task argument.  Target: crew's
 *           total < 1.05 x the arena + 8 MiB per worker.
 *
 * Workers default to 2 (not every CPU), for every peer: -w or BENCH_WORKERS
 * changes that.  Usage: bench_proc -h.
 */
#include <stdatomic.h>
#include <sys/wait.h>

#include "bench.h"
#include "crew.h"
#include "kernels.h"
#include "seed_job.h"

#ifndef BENCH_PEERS_DIR
#define BENCH_PEERS_DIR "bench/peers"
#endif

#define MAX_ENTRIES 24     /* (peer, chunksize) pairs the tasks part records */
#define MAX_KS 8           /* worker counts the memory part may try */

static const char *const py_chunks = "1,10,100,1000,10000";

typedef struct proc_opts {
    bench_opts o;
    size_t tasks;          /* crew's empty tasks per run */
    double mib;            /* the arena's data */
    unsigned ks[MAX_KS];   /* worker counts of the memory part */
    int nks;
    const char *parts;     /* "tasks,seed,memory" */
    const char *peers_dir;
    const char *python;    /* NULL: Python peers skipped */
} proc_opts;

static int has_part(const proc_opts *po, const char *part)
{
    return bench_selected(&(bench_opts){.peers = po->parts}, part);
}

static crew *open_pool(unsigned workers, int isolation)
{
    crew *pool;
    int rc = crew_open(&pool, &(crew_config){.workers = workers, .isolation = isolation});
    if (rc != 0)
        bench_fail("crew_open (%s, %u workers): %s",
                   isolation == CREW_PROCESSES ? "processes" : "threads", workers,
                   crew_strerror(rc));
    return pool;
}

/* ---- running the peers that live outside this program ------------------- */

/* One line a peer script printed: "PEER CHUNK TASKS SECONDS". */
typedef struct entry {
    char peer[16];
    size_t chunk;          /* 0: crew (no chunks) */
    size_t tasks;
    double t[BENCH_MAX_REPS];
    int n;
    double rate;           /* out: tasks/s of the best or median round */
} entry;

typedef struct table {
    entry e[MAX_ENTRIES];
    int n;
} table;

static void record(table *tb, const char *peer, size_t chunk, size_t tasks, double s)
{
    entry *e = NULL;
    for (int i = 0; i < tb->n && !e; i++)
        if (strcmp(tb->e[i].peer, peer) == 0 && tb->e[i].chunk == chunk)
            e = &tb->e[i];
    if (!e) {
        if (tb->n == MAX_ENTRIES)
            bench_fail("too many peer lines");
        e = &tb->e[tb->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->peer, sizeof e->peer, "%s", peer);
        e->chunk = chunk;
    }
    if (e->n == BENCH_MAX_REPS)
        return;
    e->tasks = tasks;
    e->t[e->n++] = s;
}

/*
 * Run a peer script, hand its "PEER CHUNK TASKS SECONDS" lines to
 * `on_line` and echo its other lines as comments ("skip ..." ones once).
 * Its failure is the benchmark's: a wrong result is never a figure.
 */
static void run_script(const char *cmd, void (*on_line)(void *ctx, const char *line), void *ctx,
                       int verbose)
{
    static char said[8][512];
    static int nsaid;
    if (verbose)
        printf("# run: %s\n", cmd);
    fflush(NULL); /* the shell must not inherit our unwritten output */
    FILE *f = popen(cmd, "r");
    if (!f)
        bench_fail("cannot run: %s", cmd);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || strncmp(line, "skip ", 5) == 0) {
            int seen = 0;
            for (int i = 0; i < nsaid && !seen; i++)
                seen = strncmp(said[i], line, sizeof said[i] - 1) == 0;
            if (!seen) {
                printf("# %s\n", strncmp(line, "# ", 2) == 0 ? line + 2 : line);
                if (nsaid < 8)
                    snprintf(said[nsaid++], sizeof said[0], "%s", line);
            }
            continue;
        }
        on_line(ctx, line);
    }
    int st = pclose(f);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_fail("peer failed (status %d): %s", st == -1 ? -1 : WEXITSTATUS(st), cmd);
}

static void on_rate_line(void *ctx, const char *line)
{
    char peer[16];
    size_t chunk, tasks;
    double s;
    if (sscanf(line, "%15s %zu %zu %lf", peer, &chunk, &tasks, &s) != 4 || tasks == 0 || s <= 0)
        bench_fail("peer printed '%s'", line);
    record(ctx, peer, chunk, tasks, s);
}

/* ---- tasks: empty-task throughput ---------------------------------------- */

/* The empty task: result = 2 * arg + 1, so a task not run, or run with the
 * wrong argument, is caught. */
static int echo_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t v;
    memcpy(&v, arg, sizeof v);
    v = 2 * v + 1;
    memcpy(result, &v, sizeof v);
    return 0;
}

typedef struct tasks_ctx {
    size_t n;
    crew_task *tasks;
    uint64_t *args, *results;
} tasks_ctx;

static void crew_tasks(crew *pool, tasks_ctx *c, const char *who)
{
    int rc = crew_run(pool, NULL, c->tasks, c->n, NULL);
    if (rc != 0)
        bench_fail("crew_run of empty tasks (%s): %s", who, crew_strerror(rc));
    for (size_t i = 0; i < c->n; i++)
        if (c->tasks[i].status != 0 || c->results[i] != 2 * c->args[i] + 1)
            bench_fail("%s: empty task %zu gave status %d, result %llu", who, i,
                       c->tasks[i].status, (unsigned long long)c->results[i]);
    memset(c->results, 0, c->n * sizeof *c->results);
}

static const entry *find_entry(const table *tb, const char *peer, size_t chunk)
{
    for (int i = 0; i < tb->n; i++)
        if (strcmp(tb->e[i].peer, peer) == 0 && tb->e[i].chunk == chunk)
            return &tb->e[i];
    return NULL;
}

/* The fastest chunksize of a Python peer (the one whose rate is highest). */
static const entry *best_entry(const table *tb, const char *peer)
{
    const entry *b = NULL;
    for (int i = 0; i < tb->n; i++)
        if (strcmp(tb->e[i].peer, peer) == 0 && (!b || tb->e[i].rate > b->rate))
            b = &tb->e[i];
    return b;
}

/* "52.1x", or "17734x" once the digits after the point say nothing. */
static void print_ratio(const char *who, double r)
{
    if (r >= 100)
        printf("   procs/%s=%.0fx", who, r);
    else
        printf("   procs/%s=%.3gx", who, r);
}

static void rate_line(const char *label, const entry *e, double procs_rate)
{
    if (!e) {
        printf("tasks %-30s -\n", label);
        return;
    }
    double s = e->tasks / e->rate;
    printf("tasks %-30s n=%-8zu %9.4f s %13.0f tasks/s", label, e->tasks, s, e->rate);
    if (procs_rate > 0 && strcmp(e->peer, "procs") != 0)
        print_ratio(e->peer, procs_rate / e->rate);
    printf("\n");
}

static void part_tasks(const proc_opts *po)
{
    const bench_opts *o = &po->o;
    tasks_ctx c = {.n = po->tasks};
    c.tasks = calloc(c.n, sizeof *c.tasks);
    c.args = calloc(c.n, sizeof *c.args);
    c.results = calloc(c.n, sizeof *c.results);
    if (!c.tasks || !c.args || !c.results)
        bench_fail("out of memory for %zu tasks", c.n);
    for (size_t i = 0; i < c.n; i++) {
        c.args[i] = i * 0x9e3779b97f4a7c15ull;
        c.tasks[i] = (crew_task){.fn = echo_task, .arg = &c.args[i], .arg_size = sizeof c.args[i],
                                 .result = &c.results[i], .result_size = sizeof c.results[i]};
    }
    /* Slow peers run fewer tasks (rates compare): a tenth for chunksize 1
     * in Python, a hundredth for GNU parallel, a fortieth for xargs. */
    size_t n_py1 = c.n / 10 ? c.n / 10 : 1, n_par = c.n / 100 ? c.n / 100 : 1;
    size_t n_xargs = c.n / 40 ? c.n / 40 : 1;

    bench_header("empty tasks: crew process pool vs crew threads, Python, GNU parallel, "
                 "xargs; tasks/s",
                 o);
    crew *procs = bench_selected(o, "procs") ? open_pool(o->workers, CREW_PROCESSES) : NULL;
    crew *threads = bench_selected(o, "threads") ? open_pool(o->workers, CREW_THREADS) : NULL;
    /* One untimed run each: first touches of the ring, stacks, caches. */
    if (procs)
        crew_tasks(procs, &c, "processes");
    if (threads)
        crew_tasks(threads, &c, "threads");

    char py_cmd[1024] = "", par_cmd[1024], xargs_cmd[1024];
    int py = po->python && (bench_selected(o, "futures") || bench_selected(o, "mp"));
    if (py)
        snprintf(py_cmd, sizeof py_cmd,
                 "'%s' -B '%s/py_pool.py' tasks --workers %u --n %zu --n1 %zu --chunks %s "
                 "--peers %s",
                 po->python, po->peers_dir, o->workers, c.n, n_py1, py_chunks,
                 o->peers ? o->peers : "futures,mp");
    snprintf(par_cmd, sizeof par_cmd, "sh '%s/shell_peers.sh' parallel %zu %u", po->peers_dir,
             n_par, o->workers);
    snprintf(xargs_cmd, sizeof xargs_cmd, "sh '%s/shell_peers.sh' xargs %zu %u", po->peers_dir,
             n_xargs, o->workers);

    table tb = {.n = 0};
    int reps = o->reps < 1 ? 1 : o->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : o->reps;
    for (int r = 0; r < reps; r++) {
        if (procs) {
            bench_sleep_ms(20);
            double t0 = bench_now_ns();
            crew_tasks(procs, &c, "processes");
            record(&tb, "procs", 0, c.n, (bench_now_ns() - t0) / 1e9);
        }
        if (threads) {
            bench_sleep_ms(20);
            double t0 = bench_now_ns();
            crew_tasks(threads, &c, "threads");
            record(&tb, "threads", 0, c.n, (bench_now_ns() - t0) / 1e9);
        }
        if (py)
            run_script(py_cmd, on_rate_line, &tb, o->verbose);
        if (bench_selected(o, "parallel"))
            run_script(par_cmd, on_rate_line, &tb, o->verbose);
        if (bench_selected(o, "xargs"))
            run_script(xargs_cmd, on_rate_line, &tb, o->verbose);
        if (o->verbose)
            for (int i = 0; i < tb.n; i++)
                printf("# round %d %-9s chunk %-6zu %8zu tasks %9.4f s\n", r, tb.e[i].peer,
                       tb.e[i].chunk, tb.e[i].tasks, tb.e[i].t[tb.e[i].n - 1]);
    }
    for (int i = 0; i < tb.n; i++)
        tb.e[i].rate = tb.e[i].tasks / bench_pick(tb.e[i].t, tb.e[i].n, o->median);

    if (procs && o->verbose) {
        crew_worker_stats st[64];
        size_t k = crew_stats(procs, st, 64);
        for (size_t i = 0; i < k && i < 64; i++)
            printf("# procs worker %zu: pid %d, %llu jobs, %llu sleeps, busy %.3f s\n", i, st[i].pid,
                   (unsigned long long)st[i].jobs, (unsigned long long)st[i].sleeps,
                   st[i].busy_ns / 1e9);
    }
    crew_close(procs);
    crew_close(threads);

    const entry *ep = find_entry(&tb, "procs", 0);
    double pr = ep ? ep->rate : 0;
    printf("# ratios procs/X: crew processes' rate over X's (above 1: crew processes are faster)\n");
    if (ep)
        rate_line("procs (crew processes)", ep, pr);
    if (bench_selected(o, "threads"))
        rate_line("threads (crew threads)", find_entry(&tb, "threads", 0), pr);
    double py_best = 0;
    static const char *const pys[] = {"futures", "mp"};
    for (int k = 0; k < 2; k++) {
        char label[64];
        const entry *b = best_entry(&tb, pys[k]);
        if (!bench_selected(o, pys[k]) || !po->python)
            continue;
        /* -v: every chunksize; else chunksize 1 and the best one */
        for (int i = 0; i < tb.n; i++)
            if (strcmp(tb.e[i].peer, pys[k]) == 0 &&
                (o->verbose || tb.e[i].chunk == 1 || &tb.e[i] == b)) {
                snprintf(label, sizeof label, "%s chunksize=%zu%s", pys[k], tb.e[i].chunk,
                         &tb.e[i] == b ? " (best)" : "");
                rate_line(label, &tb.e[i], pr);
            }
        if (b && b->rate > py_best)
            py_best = b->rate;
    }
    const entry *epar = find_entry(&tb, "parallel", 1);
    if (bench_selected(o, "parallel"))
        rate_line("parallel (GNU parallel, true)", epar, pr);
    if (bench_selected(o, "xargs"))
        rate_line("xargs (xargs -P, true)", find_entry(&tb, "xargs", 1), pr);

    if (pr > 0) {
        int fast = pr >= 100000;
        int vs_py = py_best == 0 || pr >= 20 * py_best;
        int vs_par = !epar || pr >= 100 * epar->rate;
        printf("tasks target(procs >= 100000/s, >= 20x Python's best, >= 100x GNU parallel): "
               "%s%s%s%s%s\n",
               fast && vs_py && vs_par ? "met" : "MISSED", fast ? "" : " [< 100000 tasks/s]",
               vs_py ? "" : " [< 20x Python's best]", vs_par ? "" : " [< 100x GNU parallel]",
               py_best == 0 || !epar ? " (a peer was not run)" : "");
    }
    bench_print_pressure("tasks");
    fflush(stdout);
    free(c.tasks);
    free(c.args);
    free(c.results);
}

/* ---- the arena: the seed job's data, frozen -------------------------------- */

/* The arena holds a seed_data at its root and the doubles it points to, so
 * that the `shared` pointer given to crew_run is valid in every worker. */
static crew_arena *make_arena(double mib, seed_data **out)
{
    size_t n = (size_t)(mib * 1024 * 1024) / sizeof(double);
    if (n < 64 * 64)
        bench_fail("-s %g: the arena must hold at least 4096 doubles", mib);
    crew_arena *a;
    int rc = crew_arena_create(&a, n * sizeof(double) + (4u << 20));
    if (rc != 0)
        bench_fail("crew_arena_create: %s", crew_strerror(rc));
    crew_ref dref = CREW_ARENA_NEW(a, seed_data);
    crew_ref xref = crew_arena_array(a, n, sizeof(double), 4096);
    if (!dref || !xref)
        bench_fail("arena of %g MiB: cannot allocate", mib);
    double *x = crew_arena_ptr(a, xref);
    fill_data(x, n);
    seed_data *d = crew_arena_ptr(a, dref);
    d->x = x;
    d->n = n;
    crew_arena_set_root(a, dref);
    if ((rc = crew_arena_freeze(a)) != 0)
        bench_fail("crew_arena_freeze: %s", crew_strerror(rc));
    *out = crew_arena_ptr(a, dref); /* the same address, now read-only */
    return a;
}

/* ---- seed: the 64 statistics on processes and on threads ------------------ */

typedef struct seed_ctx {
    crew *pool;            /* set before each peer's run */
    crew *procs, *threads;
    const seed_data *data;
    stat_arg args[NTASKS];
    crew_task tasks[NTASKS];
    stat_result results[NTASKS];
    stat_result expect[NTASKS]; /* the threads' untimed first run */
} seed_ctx;

static void seed_run(seed_ctx *c, crew *pool)
{
    int rc = crew_run(pool, c->data, c->tasks, NTASKS, NULL);
    if (rc != 0)
        bench_fail("crew_run of the seed job (%s): %s",
                   pool == c->procs ? "processes" : "threads", crew_strerror(rc));
}

static void run_seed_procs(void *p)
{
    seed_ctx *c = p;
    seed_run(c, c->procs);
}

static void run_seed_threads(void *p)
{
    seed_ctx *c = p;
    seed_run(c, c->threads);
}

/* Every status 0, every result bitwise the reference; then poison them. */
static int seed_check(void *p)
{
    seed_ctx *c = p;
    for (int i = 0; i < NTASKS; i++) {
        if (c->tasks[i].status != 0) {
            fprintf(stderr, "seed: task %d failed with status %d (%s)\n", i, c->tasks[i].status,
                    crew_strerror(c->tasks[i].status));
            return 1;
        }
        if (memcmp(&c->results[i], &c->expect[i], sizeof(stat_result)) != 0) {
            fprintf(stderr, "seed: task %d (%s) differs between processes and threads: %.17g vs %.17g\n",
                    i, kind_names[c->args[i].kind], c->results[i].v[0], c->expect[i].v[0]);
            return 1;
        }
    }
    memset(c->results, 0xff, sizeof c->results); /* NaNs: a task not run is caught */
    for (int i = 0; i < NTASKS; i++)
        c->tasks[i].status = -1;
    return 0;
}

static void part_seed(const proc_opts *po, const seed_data *data)
{
    static seed_ctx c;
    bench_opts o = po->o;
    c.data = data;
    make_args(c.args, data->n, o.quick);
    for (int i = 0; i < NTASKS; i++)
        c.tasks[i] = (crew_task){.fn = seed_task, .arg = &c.args[i], .arg_size = sizeof c.args[i],
                                 .result = &c.results[i], .result_size = sizeof(stat_result)};
    c.procs = open_pool(o.workers, CREW_PROCESSES);
    c.threads = open_pool(o.workers, CREW_THREADS);
    bench_header("seed job in processes vs threads: 64 statistics over one frozen arena; "
                 "ms per job",
                 &o);

    /* The first run of each pool is untimed: it is where the workers map
     * the arena and fault its pages in.  The threads' results are the
     * reference every later run must equal bit for bit. */
    double t0 = bench_now_ns();
    run_seed_threads(&c);
    double cold_thr = bench_now_ns() - t0;
    for (int i = 0; i < NTASKS; i++)
        if (c.tasks[i].status != 0)
            bench_fail("seed: task %d failed on threads with status %d", i, c.tasks[i].status);
    memcpy(c.expect, c.results, sizeof c.expect);
    memset(c.results, 0xff, sizeof c.results);
    t0 = bench_now_ns();
    run_seed_procs(&c);
    double cold_proc = bench_now_ns() - t0;
    if (seed_check(&c) != 0)
        bench_fail("seed: processes' first run differs from threads'");
    printf("# arena %.0f MiB (%zu doubles); first call, untimed: procs %.1f ms, threads %.1f ms\n",
           po->mib, data->n, cold_proc / 1e6, cold_thr / 1e6);

    bench_peer p[] = {{"procs", run_seed_procs, seed_check, 0},
                      {"threads", run_seed_threads, seed_check, 0}};
    bench_measure_line(p, 2, &c, &o, 1e6, "ms", "seed 64 stats %.0fMiB", po->mib);
    if (p[0].fig > 0 && p[1].fig > 0)
        printf("  target(procs <= 1.05*threads): %s\n",
               p[0].fig <= 1.05 * p[1].fig ? "met" : "MISSED");
    else
        printf("\n");
    bench_print_pressure("seed");
    fflush(stdout);
    crew_close(c.procs);
    crew_close(c.threads);
}

/* ---- memory: PSS of workers that have read the whole arena ----------------- */

/* In a small unfrozen arena (writable by workers, seen by the caller): the
 * count of tasks that have finished reading. */
typedef struct gate {
    _Atomic uint32_t arrived;
} gate;

typedef struct reader_arg {
    const seed_data *data;
    gate *gate;
    uint32_t parties;
} reader_arg;

typedef struct reader_result {
    double sum;
    int64_t pid;
} reader_result;

/*
 * Read every double of the arena, then wait until all `parties` tasks
 * have: a worker waiting here cannot take another task, so the tasks land
 * on as many different workers, and each of them has read everything.
 */
static int reader_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const reader_arg *a = arg;
    reader_result *r = result;
    r->sum = bench_sum_range(a->data->x, 0, a->data->n);
    r->pid = getpid();
    atomic_fetch_add(&a->gate->arrived, 1);
    for (int ms = 0; atomic_load(&a->gate->arrived) < a->parties; ms++) {
        if (ms > 600000)
            return 2; /* ten minutes: some worker never came */
        bench_sleep_ms(1);
    }
    return 0;
}

/* Pss and Private_* (kB) of a process, from smaps_rollup; 0 if it is gone. */
static void smaps_kb(long pid, double *pss, double *uss)
{
    char path[64], line[256];
    unsigned long long v;
    *pss = *uss = 0;
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", pid);
    FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %llu kB", &v) == 1)
            *pss = (double)v;
        else if (sscanf(line, "Private_Clean: %llu kB", &v) == 1 ||
                 sscanf(line, "Private_Dirty: %llu kB", &v) == 1)
            *uss += (double)v;
    if (f)
        fclose(f);
}

typedef struct mem_line {
    double pss_kb, uss_kb;
    int have;
} mem_line;

static void on_mem_line(void *ctx, const char *line)
{
    mem_line *m = ctx;
    char mode[16];
    unsigned w;
    if (sscanf(line, "memory %15s %u %lf %lf", mode, &w, &m->pss_kb, &m->uss_kb) != 4)
        bench_fail("memory peer printed '%s'", line);
    m->have = 1;
}

/*
 * The PSS (kB) of this process and of its children (forked by this thread:
 * while a process pool is open and no peer script runs, only crew's
 * supervisor).
 */
static double self_and_children_kb(void)
{
    char path[96];
    double pss, uss, total;
    smaps_kb(getpid(), &total, &uss);
    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)gettid());
    FILE *f = fopen(path, "re");
    long pid;
    while (f && fscanf(f, "%ld", &pid) == 1) {
        smaps_kb(pid, &pss, &uss);
        total += pss;
    }
    if (f)
        fclose(f);
    return total;
}

/* crew: k process workers each read the arena; their PSS summed, in kB;
 * *others_kb: the caller's and the supervisor's. */
static void crew_memory(const seed_data *data, gate *g, unsigned k, double expect_sum,
                        mem_line *out, double *others_kb)
{
    crew *pool = open_pool(k, CREW_PROCESSES);
    crew_task *tasks = calloc(k, sizeof *tasks);
    reader_arg *args = calloc(k, sizeof *args);
    reader_result *res = calloc(k, sizeof *res);
    if (!tasks || !args || !res)
        bench_fail("out of memory");
    atomic_store(&g->arrived, 0);
    for (unsigned i = 0; i < k; i++) {
        args[i] = (reader_arg){.data = data, .gate = g, .parties = k};
        tasks[i] = (crew_task){.fn = reader_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &res[i], .result_size = sizeof res[i]};
    }
    int rc = crew_run(pool, NULL, tasks, k, NULL);
    if (rc != 0)
        bench_fail("memory: crew_run of %u readers: %s (task 0: %s)", k, crew_strerror(rc),
                   crew_strerror(tasks[0].status));
    for (unsigned i = 0; i < k; i++) {
        if (res[i].sum != expect_sum)
            bench_fail("memory: reader %u summed %.17g, not %.17g", i, res[i].sum, expect_sum);
        for (unsigned j = 0; j < i; j++)
            if (res[i].pid == res[j].pid)
                bench_fail("memory: readers %u and %u ran in the same worker", j, i);
    }
    /* The workers keep their mappings after the tasks: measure them now. */
    crew_worker_stats *st = calloc(k, sizeof *st);
    if (!st)
        bench_fail("out of memory");
    size_t have = crew_stats(pool, st, k);
    out->pss_kb = out->uss_kb = 0;
    for (size_t i = 0; i < have && i < k; i++) {
        int ran = 0;
        for (unsigned j = 0; j < k; j++)
            ran |= res[j].pid == st[i].pid;
        if (!ran)
            bench_fail("memory: worker %zu (pid %d) is not one of the readers", i, st[i].pid);
        out->pss_kb += st[i].pss / 1024.0;
        out->uss_kb += st[i].uss / 1024.0;
    }
    out->have = 1;
    *others_kb = self_and_children_kb();
    crew_close(pool);
    free(st);
    free(tasks);
    free(args);
    free(res);
}

static void part_memory(const proc_opts *po, const seed_data *data)
{
    const bench_opts *o = &po->o;
    crew_arena *ga;
    int rc = crew_arena_create(&ga, 4096);
    if (rc != 0)
        bench_fail("crew_arena_create: %s", crew_strerror(rc));
    gate *g = CREW_ARENA_PTR(ga, gate, CREW_ARENA_NEW(ga, gate));
    if (!g)
        bench_fail("gate: cannot allocate");
    double expect = bench_sum_range(data->x, 0, data->n);
    double mib = (double)(data->n * sizeof(double)) / 1048576.0;
    unsigned py_mib = (unsigned)(data->n * sizeof(double) >> 20);

    printf("# memory: total PSS of the workers once each has read the whole %.0f MiB; MiB: "
           "one measurement per worker count\n", mib);
    printf("# procs: crew workers (crew_stats pss); mp: multiprocessing workers given %u MiB of "
           "bytes as their task's argument;\n# mp-fork: the bytes inherited by fork, not passed "
           "(Python's best case, no target)\n",
           py_mib);
    for (int i = 0; i < po->nks; i++) {
        unsigned k = po->ks[i];
        mem_line ours = {0}, arg = {0}, fork_ = {0};
        double others_kb = 0;
        if (bench_selected(o, "procs"))
            crew_memory(data, g, k, expect, &ours, &others_kb);
        char cmd[1024]; /* -B: no __pycache__ written into the source tree */
        if (po->python && bench_selected(o, "mp")) {
            snprintf(cmd, sizeof cmd,
                     "'%s' -B '%s/py_pool.py' memory --workers %u --mib %u --mode arg",
                     po->python, po->peers_dir, k, py_mib);
            run_script(cmd, on_mem_line, &arg, o->verbose);
        }
        if (po->python && bench_selected(o, "mp-fork")) {
            snprintf(cmd, sizeof cmd,
                     "'%s' -B '%s/py_pool.py' memory --workers %u --mib %u --mode fork",
                     po->python, po->peers_dir, k, py_mib);
            run_script(cmd, on_mem_line, &fork_, o->verbose);
        }
        char name[32];
        snprintf(name, sizeof name, "memory %u workers", k);
        printf("%-24s", name);
        const mem_line *all[] = {&ours, &arg, &fork_};
        static const char *const names[] = {"procs", "mp", "mp-fork"};
        for (int j = 0; j < 3; j++)
            if (all[j]->have)
                printf(" %s=%.1f", names[j], all[j]->pss_kb / 1024);
            else
                printf(" %s=-", names[j]);
        printf(" MiB ");
        for (int j = 1; j < 3; j++)
            if (ours.have && all[j]->have)
                printf(" procs/%s=%.3f", names[j], ours.pss_kb / all[j]->pss_kb);
        if (ours.have) {
            /* the target is for 1 GiB; other sizes scale its 5% */
            double limit = 1.05 * mib + 8.0 * k;
            printf("  target(< %.0f MiB): %s\n", limit,
                   ours.pss_kb / 1024 < limit ? "met" : "MISSED");
            printf("#   procs: private %.1f MiB in all (%.2f per worker); with the caller (which "
                   "built the arena) and the supervisor: %.1f MiB\n",
                   ours.uss_kb / 1024, ours.uss_kb / 1024 / k, (ours.pss_kb + others_kb) / 1024);
        } else {
            printf("\n");
        }
        if (arg.have)
            printf("#   mp: private %.1f MiB in all\n", arg.uss_kb / 1024);
        fflush(stdout);
    }
    bench_print_pressure("memory");
    crew_arena_close(ga);
}

/* ---- main -------------------------------------------------------------------- */

static int parse_ks(const char *s, unsigned *ks)
{
    size_t v[BENCH_MAX_SIZES];
    int n = bench_parse_sizes(s, v, MAX_KS);
    for (int i = 0; i < n; i++) {
        if (v[i] > CREW_MAX_WORKERS)
            bench_fail("-k: %zu workers is too many", v[i]);
        ks[i] = (unsigned)v[i];
    }
    return n;
}

/*
 * The Python to run the peers with: BENCH_PYTHON, else the distribution's
 * /usr/bin/python3 (what scripts/deps.sh installs, so that the figure does
 * not depend on which python3 comes first in PATH), else python3 in PATH;
 * NULL when there is none.
 */
static const char *find_python(void)
{
    const char *py = getenv("BENCH_PYTHON");
    if (!py || !*py)
        py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", py);
    return system(cmd) == 0 ? py : NULL;
}

int main(int argc, char **argv)
{
    static const char usage[] =
        "  (-w defaults to 2 here: the workers the targets are stated for)\n"
        "  -n N     crew's empty tasks per run (default 200000; quick 20000); Python runs\n"
        "           N (N/10 at chunksize 1), GNU parallel N/100, xargs N/40\n"
        "  -s MiB   the arena of the seed and memory parts (default 1024; quick 64)\n"
        "  -k LIST  worker counts of the memory part (default 2,4,8)\n"
        "  -x LIST  parts to run: tasks,seed,memory (default all; env BENCH_PROC_PARTS)\n"
        "  peers (-p): procs threads futures mp parallel xargs mp-fork\n"
        "  env BENCH_PYTHON (default /usr/bin/python3, else python3),\n"
        "      BENCH_PEERS_DIR (default the source tree's bench/peers)\n";
    proc_opts po = {0};
    const char *klist = "2,4,8";
    int c;

    bench_defaults(&po.o, 3);
    /* The targets are stated for 2 workers; more only when asked for. */
    if (!getenv("BENCH_WORKERS"))
        po.o.workers = 2;
    po.parts = getenv("BENCH_PROC_PARTS");
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "n:s:k:x:")) != -1) {
        if (bench_common_opt(&po.o, c, optarg))
            continue;
        if (c == 'n' && atof(optarg) >= 1)
            po.tasks = (size_t)atof(optarg);
        else if (c == 's' && atof(optarg) > 0)
            po.mib = atof(optarg);
        else if (c == 'k')
            klist = optarg;
        else if (c == 'x')
            po.parts = optarg;
        else
            return bench_usage(argv[0], usage, c);
    }
    if (!po.tasks)
        po.tasks = po.o.quick ? 20000 : 200000;
    if (po.mib <= 0)
        po.mib = po.o.quick ? 64 : 1024;
    po.nks = parse_ks(klist, po.ks);
    po.peers_dir = getenv("BENCH_PEERS_DIR");
    if (!po.peers_dir || !*po.peers_dir)
        po.peers_dir = BENCH_PEERS_DIR;
    po.python = find_python();
    if (!po.python)
        printf("# python3 not found (BENCH_PYTHON): the Python peers are skipped\n");

    if (has_part(&po, "tasks"))
        part_tasks(&po);
    if (has_part(&po, "seed") || has_part(&po, "memory")) {
        seed_data *data;
        crew_arena *a = make_arena(po.mib, &data);
        if (has_part(&po, "seed"))
            part_seed(&po, data);
        if (has_part(&po, "memory"))
            part_memory(&po, data);
        crew_arena_close(a);
    }
    return 0;
}
