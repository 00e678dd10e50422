/*
 * bench_mpi.c -- crew across MPI ranks on one machine, measured beside
 * crew on threads in the same run.  Built when an MPI is found.  Parts
 * (-x lib,e2e,bytes):
 *
 *   lib    one job of `mpirun -np 4 peers/mpi_job lib ...` (see mpi_job.c),
 *          which prints its own lines: the seed job's scaling (crew_run on
 *          2 workers vs crew_mpi_run on 1x2, 2x1, 4x1, 2x2, 4x2 ranks x
 *          workers, results bit for bit the same), the latency of one
 *          chunk and the throughput of empty tasks beside an MPI
 *          ping-pong, and the bytes per task counted in MPI_Isend
 *          (peers/mpi_count.so, preloaded) against the wire format.
 *   e2e    `crew run` on one node vs `mpirun -np K crew run --mpi` on the
 *          same task files: N short tasks and K heavy ones (cli_work.h,
 *          the plugin of bench_cli), -np 1 x -j 2 and -np 2 x -j 1, and
 *          -np 1 with Open MPI's default binding; beside `mpirun -np K
 *          mpi_job init` (MPI_Init and MPI_Finalize alone), the cost of
 *          starting a job, which the lines also subtract.  Every output is
 *          checked byte for byte against what this program computes.
 *   bytes  one `mpirun -np 2 crew run --mpi` of the short tasks with the
 *          counter preloaded: bytes per task sent to and from rank 1,
 *          against the wire format of run_mpi.c.
 *
 * Every mpirun gets --oversubscribe and, but for the "bound" peer, --bind-to
 * none: Open MPI binds each rank of a job of 1 or 2 to one core, which
 * puts both workers of `-np 1 crew run -j 2` on the same CPU.
 */
#include "bench.h"
#include "cli_work.h"
#include "cmd.h"
#include "mpi_bench.h"
#include "seed_job.h"

#ifndef BENCH_CREW
#define BENCH_CREW "crew"
#endif
#ifndef BENCH_PLUGIN
#define BENCH_PLUGIN "bench_plug.so"
#endif
#ifndef BENCH_MPI_JOB
#define BENCH_MPI_JOB "mpi_job"
#endif
#ifndef BENCH_MPI_COUNT
#define BENCH_MPI_COUNT "mpi_count.so"
#endif
#ifndef BENCH_MPIRUN
#define BENCH_MPIRUN "mpirun"
#endif

typedef struct mpi_opts {
    bench_opts o;
    double mib;          /* -s: each snapshot */
    size_t short_n;      /* -n */
    size_t heavy_n;      /* -k */
    size_t empty_n;      /* -e */
    const char *parts;   /* -x */
} mpi_opts;

/* ---- lib: the MPI job that measures the library ----------------------------------- */

/* The seed snapshot: a seed_root and n doubles filled by fill_data. */
static void save_seed(const char *path, uint64_t n)
{
    crew_arena *a;
    int rc = crew_arena_create(&a, n * sizeof(double) + ((size_t)1 << 20));
    if (rc != 0)
        bench_fail("crew_arena_create: %s", crew_strerror(rc));
    crew_ref rref = CREW_ARENA_NEW(a, seed_root);
    crew_ref xref = crew_arena_array(a, n, sizeof(double), 64);
    if (!rref || !xref)
        bench_fail("a seed arena of %llu doubles: cannot allocate", (unsigned long long)n);
    fill_data(crew_arena_ptr(a, xref), n);
    seed_root *r = crew_arena_ptr(a, rref);
    r->n = n;
    r->x = xref;
    crew_arena_set_root(a, rref);
    save_arena(a, path);
    crew_arena_close(a);
}

static void part_lib(const mpi_opts *mo)
{
    char path[4200], rounds[16], quick[4], verbose[4], tasks[24], preload[4200];
    uint64_t n = (uint64_t)(mo->mib * 1048576.0) / sizeof(double);
    if (n < 64 * 64)
        bench_fail("-s %g: the seed array must hold at least 4096 doubles", mo->mib);
    work_path(path, sizeof path, "seed.crew");
    check_space(work_dir, (double)n * sizeof(double));
    save_seed(path, n);
    snprintf(rounds, sizeof rounds, "%d", mo->o.reps);
    snprintf(quick, sizeof quick, "%d", mo->o.quick);
    snprintf(verbose, sizeof verbose, "%d", mo->o.verbose);
    snprintf(tasks, sizeof tasks, "%zu", mo->empty_n);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", BENCH_MPI_COUNT);
    char *argv[] = {BENCH_MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", "4",
                    "-x", preload, BENCH_MPI_JOB, "lib", path, rounds, quick, verbose, tasks,
                    NULL};
    printf("# lib: mpirun -np 4 --bind-to none mpi_job (with mpi_count.so preloaded: MPI_Isend "
           "counts its bytes, a few ns a message)\n");
    double t = run_cmd(argv, NULL, NULL, mo->o.verbose, NULL);
    printf("# lib: the MPI job took %.1f s in all\n", t);
    bench_print_pressure("lib");
    unlink(path);
}

/* ---- e2e: crew run, one node vs --mpi ------------------------------------------------- */

enum { E_RUN, E_NP1, E_NP2, E_BOUND, E_START1, E_START2, E_PEERS };

typedef struct e2e_peer {
    const char *name, *label;
    char *argv[32];
    int check;       /* its output is crew run's */
    double t[BENCH_MAX_REPS];
} e2e_peer;

/* argv of `[mpirun ... -np NP] crew run ... -j J -o OUT FILE`; mpi 0: no mpirun. */
static void crew_argv(char **v, int mpi, int bind, const char *np, const char *j,
                      const char *data, const char *each, const char *out, const char *file)
{
    int k = 0;
    if (mpi) {
        v[k++] = BENCH_MPIRUN;
        v[k++] = "--oversubscribe";
        if (!bind) {
            v[k++] = "--bind-to";
            v[k++] = "none";
        }
        v[k++] = "-np";
        v[k++] = (char *)np;
    }
    char *const rest[] = {BENCH_CREW, "run", "--plugin", BENCH_PLUGIN, "--data", (char *)data,
                          "--each", (char *)each, "--format", "raw", "-j", (char *)j,
                          "--isolation", "threads", "--no-progress", "-o", (char *)out,
                          (char *)file, NULL};
    if (mpi)
        v[k++] = BENCH_CREW, v[k++] = "run", v[k++] = "--mpi";
    for (int i = mpi ? 2 : 0; rest[i]; i++)
        v[k++] = rest[i];
    v[k] = NULL;
}

static void start_argv(char **v, const char *np)
{
    char *const a[] = {BENCH_MPIRUN, "--oversubscribe", "--bind-to", "none", "-np", (char *)np,
                       BENCH_MPI_JOB, "init", NULL};
    memcpy(v, a, sizeof a);
}

/*
 * One workload (short or heavy): every peer once per round, interleaved,
 * outputs checked; then a line per peer with the best round, the ratio to
 * crew run on one node, and for --mpi the time without the job's start.
 */
static void e2e_measure(const mpi_opts *mo, const char *what, const char *file, size_t n,
                        const char *expect, size_t elen, const char *data, const char *each,
                        int warm)
{
    const bench_opts *o = &mo->o;
    char out[4200];
    work_path(out, sizeof out, "out.txt");
    static e2e_peer p[E_PEERS];
    memset(p, 0, sizeof p);
    p[E_RUN] = (e2e_peer){.name = "run", .label = "crew run -j 2", .check = 1};
    p[E_NP1] = (e2e_peer){.name = "mpi-np1", .label = "mpirun -np 1 crew run --mpi -j 2",
                          .check = 1};
    p[E_NP2] = (e2e_peer){.name = "mpi-np2", .label = "mpirun -np 2 crew run --mpi -j 1",
                          .check = 1};
    p[E_BOUND] = (e2e_peer){.name = "mpi-np1-bound",
                            .label = "mpirun -np 1 (bound to 1 core) ... -j 2", .check = 1};
    p[E_START1] = (e2e_peer){.name = "start-np1", .label = "mpirun -np 1 mpi_job init"};
    p[E_START2] = (e2e_peer){.name = "start-np2", .label = "mpirun -np 2 mpi_job init"};
    crew_argv(p[E_RUN].argv, 0, 0, NULL, "2", data, each, out, file);
    crew_argv(p[E_NP1].argv, 1, 0, "1", "2", data, each, out, file);
    crew_argv(p[E_NP2].argv, 1, 0, "2", "1", data, each, out, file);
    crew_argv(p[E_BOUND].argv, 1, 1, "1", "2", data, each, out, file);
    start_argv(p[E_START1].argv, "1");
    start_argv(p[E_START2].argv, "2");

    for (int i = 0; warm && i < E_PEERS; i++) {
        run_cmd(p[i].argv, NULL, p[i].check ? out : "/dev/null", o->verbose, NULL);
        if (p[i].check && check_exact(p[i].name, out, expect, elen) != 0)
            bench_fail("%s %s gave a wrong output (first run)", what, p[i].name);
    }
    int reps = o->reps < 1 ? 1 : o->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : o->reps;
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < E_PEERS; i++) {
            if (!bench_selected(o, p[i].name))
                continue;
            bench_sleep_ms(20);
            unlink(out);
            p[i].t[r] = run_cmd(p[i].argv, NULL, p[i].check ? out : "/dev/null", o->verbose,
                                NULL);
            if (p[i].check && check_exact(p[i].name, out, expect, elen) != 0)
                bench_fail("%s %s gave a wrong output (round %d)", what, p[i].name, r);
            if (o->verbose)
                printf("#   round %d %-14s %9.1f ms\n", r, p[i].name, p[i].t[r] * 1e3);
        }
    double f[E_PEERS];
    for (int i = 0; i < E_PEERS; i++)
        f[i] = bench_selected(o, p[i].name) ? bench_pick(p[i].t, reps, o->median) : 0;
    for (int i = 0; i < E_PEERS; i++) {
        if (f[i] <= 0) {
            printf("e2e %-5s %-42s -\n", what, p[i].label);
            continue;
        }
        printf("e2e %-5s %-42s %9.1f ms", what, p[i].label, f[i] * 1e3);
        if (p[i].check)
            printf(" %9.0f tasks/s", (double)n / f[i]);
        if (i != E_RUN && p[i].check && f[E_RUN] > 0)
            printf("  mpi/run=%.3f", f[i] / f[E_RUN]);
        double start = i == E_NP2 ? f[E_START2] : i == E_NP1 || i == E_BOUND ? f[E_START1] : 0;
        if (p[i].check && i != E_RUN && start > 0 && f[E_RUN] > 0)
            printf("  without the start (%.1f ms): %.1f ms, mpi/run=%.3f", start * 1e3,
                   (f[i] - start) * 1e3, (f[i] - start) / f[E_RUN]);
        printf("\n");
    }
    fflush(stdout);
}

/* Arguments base..base+n-1, all of the same length, one a line; the
 * expected raw output (CLI_SHORT_LINE each, in order).  Returns the
 * argument length. */
static size_t short_files(size_t n, const char *args_path, char **expect, size_t *elen)
{
    size_t base = 1;
    while (base < n)
        base *= 10;
    size_t acap = n * 24 + 1, ecap = n * 48 + 1, alen = 0, len = 0;
    char *args = malloc(acap), *e = malloc(ecap);
    if (!args || !e)
        bench_fail("out of memory for %zu tasks", n);
    *elen = 0;
    for (size_t i = 0; i < n; i++) {
        char a[24];
        len = (size_t)snprintf(a, sizeof a, "%zu", base + i);
        alen += (size_t)snprintf(args + alen, acap - alen, "%s\n", a);
        *elen += (size_t)snprintf(e + *elen, ecap - *elen, CLI_SHORT_LINE, a, cli_short_hash(a));
    }
    write_file(args_path, args, alen);
    free(args);
    *expect = e;
    return len;
}

static void part_e2e(const mpi_opts *mo, const char *data)
{
    char args_path[4200], heavy_path[4200];
    work_path(args_path, sizeof args_path, "short.txt");
    work_path(heavy_path, sizeof heavy_path, "heavy.txt");
    char *expect;
    size_t elen;
    short_files(mo->short_n, args_path, &expect, &elen);
    printf("# e2e: crew run on one node vs mpirun crew run --mpi, threads, whole commands (spawn "
           "to exit) with -o FILE; best of %d rounds, interleaved; the `start` lines are "
           "mpirun of MPI_Init + MPI_Finalize alone\n", mo->o.reps);
    e2e_measure(mo, "short", args_path, mo->short_n, expect, elen, data, "hash", 1);
    free(expect);

    /* Heavy tasks: their sums, computed here with the library. */
    crew_arena *a;
    int rc = crew_arena_open(&a, data, 0);
    if (rc != 0)
        bench_fail("crew_arena_open %s: %s", data, crew_strerror(rc));
    size_t k = mo->heavy_n, acap = k * 24 + 1, ecap = k * 48 + 1, alen = 0;
    char *args = malloc(acap);
    expect = malloc(ecap);
    if (!args || !expect)
        bench_fail("out of memory");
    elen = 0;
    double t0 = bench_now_ns();
    for (size_t i = 0; i < k; i++) {
        uint64_t sum;
        if (cli_heavy_task(a, i, &sum) != 0)
            bench_fail("heavy: task %zu failed", i);
        alen += (size_t)snprintf(args + alen, acap - alen, "%zu\n", i);
        elen += (size_t)snprintf(expect + elen, ecap - elen, CLI_HEAVY_LINE, (uint64_t)i, sum);
    }
    double serial = bench_now_ns() - t0;
    crew_arena_close(a);
    write_file(heavy_path, args, alen);
    printf("# e2e heavy: %zu tasks, each a fold over all of the %.0f MiB snapshot (%.1f ms "
           "each alone, serially here)\n", k, mo->mib, serial / (double)k / 1e6);
    e2e_measure(mo, "heavy", heavy_path, k, expect, elen, data, "heavy", 0);
    free(args);
    free(expect);
    bench_print_pressure("e2e");
}

/* ---- bytes: crew run --mpi ------------------------------------------------------------ */

/* One rank's counter file: counts[tag][0] messages, [1] bytes. */
static void read_counts(const char *prefix, int rank, uint64_t counts[MPI_COUNT_TAGS][2])
{
    char path[4300], name[32];
    snprintf(path, sizeof path, "%s.%d", prefix, rank);
    FILE *f = fopen(path, "re");
    if (!f)
        bench_fail("no counts from rank %d (%s): was mpi_count.so preloaded?", rank, path);
    for (int k = 0; k < MPI_COUNT_TAGS; k++) {
        unsigned long long m, b;
        if (fscanf(f, "%31s %llu %llu", name, &m, &b) != 3 || strcmp(name, mpi_count_name(k)))
            bench_fail("%s: not a counter file", path);
        counts[k][0] = m, counts[k][1] = b;
    }
    fclose(f);
}

static void part_bytes(const mpi_opts *mo, const char *data)
{
    char args_path[4200], out[4200], prefix[4200], preload[4300], countenv[4300];
    work_path(args_path, sizeof args_path, "bytes.txt");
    work_path(out, sizeof out, "bytes-out.txt");
    work_path(prefix, sizeof prefix, "count");
    char *expect;
    size_t elen, n = mo->short_n;
    size_t alen = short_files(n, args_path, &expect, &elen);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", BENCH_MPI_COUNT);
    snprintf(countenv, sizeof countenv, "CREW_BENCH_MPI_COUNT=%s", prefix);
    char *cmd[40], *argv[44] = {BENCH_MPIRUN, "-x", preload, "-x", countenv};
    crew_argv(cmd, 1, 0, "2", "1", data, "hash", out, args_path);
    for (int i = 1; cmd[i - 1]; i++)
        argv[4 + i] = cmd[i]; /* after mpirun: its -x options first */
    run_cmd(argv, NULL, "/dev/null", mo->o.verbose, NULL);
    if (check_exact("bytes", out, expect, elen) != 0)
        bench_fail("bytes: crew run --mpi gave a wrong output");
    uint64_t c0[MPI_COUNT_TAGS][2], c1[MPI_COUNT_TAGS][2];
    read_counts(prefix, 0, c0);
    read_counts(prefix, 1, c1);

    /* Every task has the same argument and output lengths, so every
     * record has the same size: the counts must be whole multiples of it,
     * the same number of tasks each way. */
    uint64_t per_chunk = wire_cli_chunk(alen), per_res = wire_cli_result(alen + 18);
    uint64_t chunk = c0[MPI_COUNT_CHUNK][1], res = c1[MPI_COUNT_RESULTS][1];
    uint64_t remote = chunk / per_chunk;
    if (chunk % per_chunk || res % per_res || res / per_res != remote || remote == 0 ||
        remote > n || c1[MPI_COUNT_CHUNK][1] || c0[MPI_COUNT_RESULTS][1])
        bench_fail("bytes: counted %llu bytes of chunks from rank 0 and %llu of results from "
                   "rank 1; the wire format says %llu and %llu per task",
                   (unsigned long long)chunk, (unsigned long long)res,
                   (unsigned long long)per_chunk, (unsigned long long)per_res);
    printf("bytes crew run --mpi (hash, %zu-char argument, %zu-byte output) %llu + %llu = %llu "
           "bytes per task (counted = wire format)  %.2f tasks per CHUNK message, %.2f per "
           "RESULTS message  (%llu of %zu tasks on rank 1)\n",
           alen, alen + 18, (unsigned long long)per_chunk, (unsigned long long)per_res,
           (unsigned long long)(per_chunk + per_res),
           (double)remote / (double)c0[MPI_COUNT_CHUNK][0],
           (double)remote / (double)c1[MPI_COUNT_RESULTS][0], (unsigned long long)remote, n);
    printf("# bytes: a crew run --mpi task carries a %u-byte task_arg header and its argument "
           "+ NUL one way in a %u-byte record, %u bytes of times and its output the other in a "
           "%u-byte one, each padded to 8\n", WIRE_TASK_ARG, WIRE_CHUNK_RECORD, WIRE_REPLY,
           WIRE_RESULT_RECORD);
    free(expect);
}

/* ---- main ------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static const char usage[] =
        "  (-w is not used: each part fixes its workers; -r defaults to 3; -m applies to e2e,\n"
        "   the lib part always reports the best round)\n"
        "  -s MiB   each snapshot: the seed job's and the heavy tasks' (default 256; quick 16)\n"
        "  -n N     short tasks for crew run (default 10000; quick 500)\n"
        "  -k K     heavy tasks for crew run (default 64; quick 16)\n"
        "  -e N     empty tasks a run in the latency part (default 20000; quick 2000)\n"
        "  -x LIST  parts: lib,e2e,bytes (default all; env BENCH_MPI_PARTS)\n"
        "  peers (-p, e2e only): run mpi-np1 mpi-np2 mpi-np1-bound start-np1 start-np2\n"
        "  env CREW_BENCH_DIR: where the snapshots go (default $TMPDIR, else /tmp)\n";
    mpi_opts mo = {0};
    int c;
    bench_defaults(&mo.o, 3);
    mo.parts = getenv("BENCH_MPI_PARTS");
    while ((c = getopt(argc, argv, BENCH_COMMON_FLAGS "s:n:k:e:x:")) != -1) {
        if (bench_common_opt(&mo.o, c, optarg))
            continue;
        if (c == 's' && atof(optarg) > 0)
            mo.mib = atof(optarg);
        else if (c == 'n' && atof(optarg) >= 1 && atof(optarg) <= 1e7)
            mo.short_n = (size_t)atof(optarg);
        else if (c == 'k' && atof(optarg) >= 1 && atof(optarg) <= 1e6)
            mo.heavy_n = (size_t)atof(optarg);
        else if (c == 'e' && atof(optarg) >= 10 && atof(optarg) <= 1e8)
            mo.empty_n = (size_t)atof(optarg);
        else if (c == 'x')
            mo.parts = optarg;
        else
            return bench_usage(argv[0], usage, c);
    }
    if (mo.mib <= 0)
        mo.mib = mo.o.quick ? 16 : 256;
    if (!mo.short_n)
        mo.short_n = mo.o.quick ? 500 : 10000;
    if (!mo.heavy_n)
        mo.heavy_n = mo.o.quick ? 16 : 64;
    if (!mo.empty_n)
        mo.empty_n = mo.o.quick ? 2000 : 20000;
    const char *need[] = {BENCH_CREW, BENCH_PLUGIN, BENCH_MPI_JOB, BENCH_MPI_COUNT, BENCH_MPIRUN};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (access(need[i], R_OK) != 0)
            bench_fail("%s is missing: build the target bench_mpi", need[i]);
    /* As tests/mpi/mpirun.sh: root allowed (containers), shared memory
     * and self only, more ranks than cores; the caller's settings win. */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    setenv("OMPI_MCA_pml", "ob1", 0);
    setenv("OMPI_MCA_btl", "self,vader", 0);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
    make_work_dir("crew-bench-mpi");

    printf("# bench_mpi: crew_mpi_run and crew run --mpi on this machine (%u CPUs), rounds=%d "
           "figure=%s%s\n", bench_cpus(), mo.o.reps, mo.o.median ? "median" : "best",
           mo.o.quick ? " (quick sizes)" : "");
    print_version(BENCH_MPIRUN " --version 2>/dev/null");
    bench_print_pressure("before");
    bench_opts parts = {.peers = mo.parts};
    if (bench_selected(&parts, "lib"))
        part_lib(&mo);
    if (bench_selected(&parts, "e2e") || bench_selected(&parts, "bytes")) {
        char data[4200];
        uint64_t words = (uint64_t)(mo.mib * 1048576.0) / sizeof(uint64_t);
        if (words < 4096)
            bench_fail("-s %g: the snapshot must hold at least 4096 words", mo.mib);
        work_path(data, sizeof data, "heavy.crew");
        check_space(work_dir, (double)words * sizeof(uint64_t));
        crew_arena *a = build_arena(words);
        save_arena(a, data);
        crew_arena_close(a);
        if (bench_selected(&parts, "e2e"))
            part_e2e(&mo, data);
        if (bench_selected(&parts, "bytes"))
            part_bytes(&mo, data);
    }
    return 0;
}
