/*
 * demo.c -- `crew demo`: the job crew exists for, end to end, with nothing
 * to install or download.
 *
 * It builds a shop's order book (demo_data.c) in a shared arena with every
 * CPU, freezes it, and runs a few dozen analyses of very different cost
 * (demo_stats.c, demo_groups.c) as crew_run tasks: once on one worker, once
 * on every usable CPU (or -j N).  Both runs must agree bit for bit: each
 * analysis is deterministic, so a difference could only come from crew
 * running a task wrongly, and is reported as a failure (exit 1).  Then it
 * prints the headline results and the speed-up.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo.h"

static const char usage[] =
    "usage: crew demo [OPTIONS]\n"
    "\n"
    "Build a data set in memory -- a shop's orders: prices, quantities, stores,\n"
    "customers, days and product names, as columns in a shared arena -- and run\n"
    "a few dozen analyses of it as crew tasks, first on one worker, then on\n"
    "every usable CPU.  Prints the main results, the times and the speed-up;\n"
    "fails (exit 1) unless both runs give the same results, bit for bit.\n"
    "\n"
    "options:\n"
    "  --size SIZE       data set size, such as 256M or 2G (default: 1G, at most\n"
    "                    an eighth of this machine's memory)\n"
    "  -j, --jobs N      workers of the parallel run (default: every usable CPU)\n"
    "  --all             print every analysis's result, not only the main ones\n"
    "  --progress        show progress bars on stderr (default: when a terminal)\n"
    "  --no-progress     do not\n"
    "  -h, --help        this text\n";

typedef struct options {
    size_t size;
    unsigned workers;
    bool all;
    int progress; /* -1: when stderr is a terminal */
} options;

/* Parse the options into *o: CLI_OK, a usage error, or -1 after --help.
 * Values come as --size SIZE, --size=SIZE, -j N, -jN, --jobs N, --jobs=N. */
static int parse(int argc, char **argv, options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq && !strncmp(arg, "--", 2) ? (size_t)(eq - arg) : strlen(arg);
        bool is_size = name_len == 6 && !strncmp(arg, "--size", 6);
        bool is_jobs = (name_len == 6 && !strncmp(arg, "--jobs", 6)) || !strncmp(arg, "-j", 2);
        if (is_size || is_jobs) {
            if (eq && !strncmp(arg, "--", 2))
                val = eq + 1;
            else if (!strncmp(arg, "-j", 2) && arg[2])
                val = arg + 2;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                return cli_usage_error("%s needs a value", arg);
        }
        unsigned long long n;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(usage, stdout);
            return -1;
        } else if (is_size) {
            if (!cli_parse_size(val, &o->size))
                return cli_usage_error("--size: '%s' is not a size (such as 256M or 2G)", val);
            if (o->size == 0) /* 0 would read as "not given" */
                return cli_usage_error("--size 0 is too small: at least 1M");
        } else if (is_jobs) {
            if (!cli_parse_uint(val, CREW_MAX_WORKERS, &n) || n == 0)
                return cli_usage_error("-j: '%s' is not a number of workers from 1 to %d", val,
                                       CREW_MAX_WORKERS);
            o->workers = (unsigned)n;
        } else if (!strcmp(arg, "--all")) {
            o->all = true;
        } else if (!strcmp(arg, "--progress")) {
            o->progress = 1;
        } else if (!strcmp(arg, "--no-progress")) {
            o->progress = 0;
        } else {
            return cli_usage_error("unknown option '%s'", arg);
        }
    }
    return CLI_OK;
}

/* ---- progress bars, and a clean line when interrupted ---------------- */

static bool show_progress;
static volatile sig_atomic_t bar_drawn;

static void on_interrupt(int sig)
{
    /* Clear the bar's line so the shell prompt starts clean, then die of
     * the signal as if there were no handler. */
    if (bar_drawn) {
        ssize_t ignored = write(STDERR_FILENO, "\r\033[K", 4);
        (void)ignored;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static cli_progress *bar_start(const char *label, uint64_t total, const char *unit)
{
    if (!show_progress)
        return NULL;
    bar_drawn = 1;
    return cli_progress_start(label, total, unit);
}

static void bar_end(cli_progress *p)
{
    cli_progress_end(p, false);
    bar_drawn = 0;
}

static void on_run_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    (void)total;
    cli_progress_set(ctx, done, failed);
}

/* ---- the runs ------------------------------------------------------------ */

/*
 * Run every analysis on `pool` into results[] (zeroed first) and time it.
 * The tasks start costliest first (`order`), so that no costly one is left
 * to run alone at the end.  Returns CLI_OK or CLI_FAILED (after a message).
 */
static int run_all(crew *pool, const demo_table *t, const size_t *order, demo_result *results,
                   double *seconds)
{
    size_t n = demo_nanalyses;
    crew_task *tasks = calloc(n, sizeof *tasks);
    if (!tasks) {
        cli_error("out of memory");
        return CLI_FAILED;
    }
    memset(results, 0, n * sizeof *results);
    for (size_t k = 0; k < n; k++) {
        size_t a = order[k];
        tasks[k] = (crew_task){.fn = demo_task, .arg = &demo_analyses[a],
                               .result = &results[a], .result_size = sizeof results[a]};
    }
    unsigned w = crew_workers(pool);
    char label[48];
    snprintf(label, sizeof label, "%u worker%s", w, w == 1 ? "" : "s");
    cli_progress *bar = bar_start(label, n, "analyses");
    double t0 = cli_now();
    int rc = crew_run(pool, t, tasks, n, &(crew_run_opts){.progress = on_run_progress, .ctx = bar});
    *seconds = cli_now() - t0;
    bar_end(bar);
    int status = CLI_OK;
    if (rc == CREW_EFAILED) {
        for (size_t k = 0; k < n; k++)
            if (tasks[k].status != 0)
                cli_error("analysis '%s' failed on %s: %s", demo_analyses[order[k]].title, label,
                          tasks[k].status == 1   ? "out of memory"
                          : tasks[k].status == 2 ? "more distinct names than expected"
                                                 : crew_strerror(tasks[k].status));
        status = CLI_FAILED;
    } else if (rc < 0) {
        cli_error("running the analyses: %s", crew_strerror(rc));
        status = CLI_FAILED;
    }
    free(tasks);
    return status;
}

/* The analyses' indexes, costliest first; a stable order (insertion), so
 * equal costs keep the list's order. */
static void costliest_first(size_t *order)
{
    for (size_t a = 0; a < demo_nanalyses; a++) {
        size_t k = a;
        while (k > 0 && demo_analyses[order[k - 1]].cost < demo_analyses[a].cost) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = a;
    }
}

/*
 * Compare the runs byte for byte.  demo_result is zeroed before each run
 * and has no padding, so equal bytes mean equal results, and any
 * difference -- one bit of one double -- means a task ran wrongly.
 */
static int compare(const demo_result *one, const demo_result *all, unsigned workers)
{
    size_t bad = 0, first = 0;
    for (size_t a = 0; a < demo_nanalyses; a++)
        if (memcmp(&one[a], &all[a], sizeof one[a]) != 0 && bad++ == 0)
            first = a;
    if (!bad)
        return CLI_OK;
    char x[160], y[160];
    demo_analyses[first].show(&one[first], x, sizeof x);
    demo_analyses[first].show(&all[first], y, sizeof y);
    cli_error("results differ between 1 worker and %u: '%s' is %s on 1 worker, %s on %u "
              "(%zu of %zu analyses differ)",
              workers, demo_analyses[first].title, x, y, workers, bad, demo_nanalyses);
    return CLI_FAILED;
}

/*
 * A test hook: CREW_DEMO_FLIP=K flips one bit of analysis K's result after
 * the parallel run, so that tests can see the comparison catch it.
 */
static void flip_for_test(demo_result *all)
{
    const char *s = getenv("CREW_DEMO_FLIP");
    unsigned long long k;
    if (s && cli_parse_uint(s, demo_nanalyses - 1, &k))
        all[k].n[3] ^= 1;
}

_Static_assert(sizeof(demo_result) == 4 * sizeof(double) + 4 * sizeof(uint64_t) + 64,
                      "demo_result has no padding");

/* ---- output ------------------------------------------------------------ */

static void print_results(const demo_result *r, bool all)
{
    size_t shown = 0;
    for (size_t a = 0; a < demo_nanalyses; a++)
        shown += all || demo_analyses[a].headline;
    printf("\nresults (%zu of %zu analyses%s):\n", shown, demo_nanalyses,
           all ? "" : "; --all shows every one");
    for (size_t a = 0; a < demo_nanalyses; a++) {
        if (!all && !demo_analyses[a].headline)
            continue;
        char line[200];
        demo_analyses[a].show(&r[a], line, sizeof line);
        printf("  %-34s %s\n", demo_analyses[a].title, line);
    }
}

/* Physical memory in bytes (0 if unknown). */
static uint64_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* The size to build: --size if given and sane, else 1 GiB or an eighth of
 * memory.  0 after a usage error. */
static size_t choose_size(size_t asked)
{
    uint64_t ram = physical_memory();
    char b1[32], b2[32];
    if (!asked) {
        size_t size = (size_t)1 << 30;
        return ram && ram / 8 < size ? (size_t)(ram / 8) : size;
    }
    if (asked < ((size_t)1 << 20)) {
        cli_usage_error("--size %s is too small: at least 1M",
                        cli_human_size((double)asked, b1, 32));
        return 0;
    }
    if (ram && asked > ram / 2) {
        cli_usage_error("--size %s is more than half of this machine's memory (%s)",
                        cli_human_size((double)asked, b1, 32), cli_human_size((double)ram, b2, 32));
        return 0;
    }
    return asked;
}

/* Build the data set of about `size` bytes with `pool`, open its table
 * into *t and describe it.  CLI_OK, or CLI_FAILED after a message. */
static int build_data_set(crew *pool, size_t size, crew_arena **arena, demo_table *t)
{
    uint64_t rows = demo_rows_for(size);
    cli_progress *bar = bar_start("building", rows, "rows");
    double t0 = cli_now();
    int rc = demo_build(pool, rows, bar, arena);
    double seconds = cli_now() - t0;
    bar_end(bar);
    if (rc == 0)
        rc = demo_table_open(*arena, t);
    if (rc < 0) {
        cli_error("building the data set: %s", crew_strerror(rc));
        return CLI_FAILED;
    }
    unsigned w = crew_workers(pool);
    char b1[32], b2[32], b3[32], b4[32];
    printf("data set: %s orders of %s products in %d stores by %s customers;\n"
           "  %s in a frozen arena, %d data sets in its catalog, built in %.2f s on %u worker%s\n",
           demo_count(t->rows, b1, 32), demo_count(DEMO_PRODUCTS, b2, 32), DEMO_STORES,
           demo_count(t->customers, b3, 32),
           cli_human_size((double)crew_arena_size(*arena), b4, 32), crew_catalog_count(*arena),
           seconds, w, w == 1 ? "" : "s");
    fflush(stdout);
    return CLI_OK;
}

static int demo(const options *o, size_t size)
{
    unsigned cpus = crew_usable_cpus(), workers = o->workers ? o->workers : cpus;
    size_t n = demo_nanalyses, *order = calloc(n, sizeof *order);
    demo_result *one = calloc(n, sizeof *one), *all = calloc(n, sizeof *all);
    crew *pool = NULL, *serial = NULL;
    crew_arena *arena = NULL;
    int status = CLI_FAILED, rc;
    if (!order || !one || !all) {
        cli_error("out of memory");
        goto out;
    }
    costliest_first(order);
    if ((rc = crew_open(&pool, &(crew_config){.workers = workers})) < 0 ||
        (rc = crew_open(&serial, &(crew_config){.workers = 1})) < 0) {
        cli_error("starting %u workers: %s", workers, crew_strerror(rc));
        goto out;
    }
    printf("crew demo: %zu analyses of one shared, read-only data set, on 1 worker, then on %u\n",
           n, workers);
    fflush(stdout);

    demo_table t;
    if ((status = build_data_set(pool, size, &arena, &t)) != CLI_OK)
        goto out;

    double t_one, t_all;
    if ((status = run_all(serial, &t, order, one, &t_one)) != CLI_OK)
        goto out;
    printf("1 worker: %zu analyses in %.2f s\n", n, t_one);
    fflush(stdout);
    if ((status = run_all(pool, &t, order, all, &t_all)) != CLI_OK)
        goto out;
    printf("%u worker%s: %zu analyses in %.2f s\n", workers, workers == 1 ? "" : "s", n, t_all);
    flip_for_test(all);
    if ((status = compare(one, all, workers)) != CLI_OK)
        goto out;

    print_results(all, o->all);
    printf("\nspeed-up on %u worker%s: %.2fx (%u CPU%s usable); results identical, bit for bit\n",
           workers, workers == 1 ? "" : "s", t_one / t_all, cpus, cpus == 1 ? "" : "s");
out:
    crew_arena_close(arena);
    crew_close(serial);
    crew_close(pool);
    free(order);
    free(one);
    free(all);
    return status;
}

int cli_demo(int argc, char **argv)
{
    options o = {.progress = -1};
    int rc = parse(argc, argv, &o);
    if (rc != CLI_OK)
        return rc < 0 ? CLI_OK : rc;
    size_t size = choose_size(o.size);
    if (!size)
        return CLI_USAGE;
    show_progress = o.progress < 0 ? isatty(STDERR_FILENO) : o.progress;
    if (show_progress) {
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
    }
    return demo(&o, size);
}
