/*
 * mpi_job.c -- the MPI program bench_mpi starts with mpirun: crew_mpi_run
 * measured beside crew_run inside one MPI job.
 *
 *   mpi_job init
 *       MPI_Init_thread and MPI_Finalize only: with mpirun around it, the
 *       fixed cost of starting an MPI job, which bench_mpi reports apart.
 *   mpi_job lib SNAPSHOT ROUNDS QUICK VERBOSE TASKS   (under mpirun -np 4)
 *       seed     the 64 statistics of seed_job.h over the snapshot (every
 *                rank maps it with crew_mpi_data_open: one copy in the page
 *                cache): crew_run on a pool of 2 (the threads-only peer)
 *                and crew_mpi_run on 1x2, 2x1, 4x1, 2x2, 4x2 (ranks x
 *                workers per rank), interleaved round by round; every
 *                result must equal the threads-only run's bit for bit.
 *       latency  empty tasks (8 bytes in, 8 out, checked): crew_mpi_run of
 *                1 task, repeated; a feed that keeps one task in flight, so
 *                a task's time from the root's next() to its done() is
 *                the round trip of one chunk; TASKS tasks with chunk_max 1
 *                and with the default; 1 and 2 ranks of 1 worker each;
 *                beside a blocking MPI_Send/MPI_Recv ping-pong.
 *       bytes    with peers/mpi_count.so preloaded: the bytes crew sends
 *                per task, counted in MPI_Isend, against what the wire
 *                format says (mpi_bench.h).
 *
 * Measurements on fewer ranks than the job has are made on a
 * sub-communicator (ranks 0..K-1); the others wait in MPI_Ibarrier polled
 * every millisecond with a sleep in between, so that they take no CPU from
 * the ranks being measured (a blocking MPI call would spin).  Only rank 0
 * times and prints.
 */
#include <dlfcn.h>
#include <mpi.h>

#include "bench.h"
#include "crew_mpi.h"
#include "mpi_bench.h"
#include "seed_job.h"

static int me, nranks;
static MPI_Comm sub[5];     /* sub[K]: ranks 0..K-1, MPI_COMM_NULL elsewhere */
static crew *pools[3];      /* pools[W]: W workers */
static int quick, verbose, rounds;

/* All ranks meet without spinning: see the top. */
static void quiet_barrier(void)
{
    MPI_Request rq;
    int done = 0;
    MPI_Ibarrier(MPI_COMM_WORLD, &rq);
    for (;;) {
        MPI_Test(&rq, &done, MPI_STATUS_IGNORE);
        if (done)
            return;
        bench_sleep_ms(1);
    }
}

/* Rank 0's clock, after every rank of the measured group has arrived. */
typedef double (*step_fn)(void *ctx, MPI_Comm comm);

/*
 * One measurement on K ranks: everyone meets, rests 20 ms (as bench.h does
 * between peers), the K ranks meet again on their communicator, and fn
 * runs there.  Returns fn's figure on rank 0, 0 elsewhere.
 */
static double step(int k, step_fn fn, void *ctx)
{
    quiet_barrier();
    bench_sleep_ms(20);
    if (me >= k)
        return 0;
    MPI_Barrier(sub[k]);
    return fn(ctx, sub[k]);
}

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    if (me != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* ---- seed: the job, threads only vs ranks x workers ------------------------------ */

typedef struct seed_peer {
    const char *name;
    int ranks, workers, threads_only;
    double t[BENCH_MAX_REPS];
    int per_rank[4]; /* tasks each rank ran, last round */
} seed_peer;

typedef struct seed_ctx {
    seed_data data; /* this rank's: x points into its own mapping */
    stat_arg args[NTASKS];
    stat_result results[NTASKS], expect[NTASKS];
    crew_task tasks[NTASKS];
    crew_mpi_task mt[NTASKS];
    seed_peer *p;
    int have_expect;
} seed_ctx;

static const crew_mpi_fn seed_fns[] = {{"seed", seed_task}};

static double seed_step(void *ctx, MPI_Comm comm)
{
    seed_ctx *c = ctx;
    seed_peer *p = c->p;
    int rc;
    double t0 = bench_now_ns();
    if (p->threads_only) {
        rc = crew_run(pools[p->workers], &c->data, c->tasks, NTASKS, NULL);
    } else {
        rc = crew_mpi_run(comm, pools[p->workers], &c->data, seed_fns, 1, me == 0 ? c->mt : NULL,
                          me == 0 ? NTASKS : 0, &(crew_mpi_opts){0});
    }
    double t = bench_now_ns() - t0;
    if (rc != 0)
        bench_fail("seed %s: %s", p->name, crew_strerror(rc));
    if (me != 0)
        return 0;
    memset(p->per_rank, 0, sizeof p->per_rank);
    for (int i = 0; i < NTASKS; i++) {
        int status = p->threads_only ? c->tasks[i].status : c->mt[i].status;
        if (status != 0)
            bench_fail("seed %s: task %d failed with status %d", p->name, i, status);
        if (!p->threads_only && c->mt[i].rank >= 0 && c->mt[i].rank < 4)
            p->per_rank[c->mt[i].rank]++;
    }
    if (!c->have_expect) {
        memcpy(c->expect, c->results, sizeof c->expect);
        c->have_expect = 1;
    } else {
        for (int i = 0; i < NTASKS; i++)
            if (memcmp(&c->results[i], &c->expect[i], sizeof(stat_result)) != 0)
                bench_fail("seed %s: task %d (%s) differs from the threads-only result: %.17g "
                           "vs %.17g", p->name, i, kind_names[c->args[i].kind],
                           c->results[i].v[0], c->expect[i].v[0]);
    }
    memset(c->results, 0xff, sizeof c->results); /* NaNs: a task not run is caught */
    return t;
}

static void part_seed(const char *path)
{
    static seed_ctx c;
    crew_mpi_data *data;
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, path, 0, &data);
    if (rc != 0)
        bench_fail("crew_mpi_data_open %s: %s", path, crew_strerror(rc));
    const crew_arena *a = crew_mpi_data_arena(data);
    const seed_root *root = CREW_ARENA_GET(a, seed_root, crew_arena_root(a));
    const double *x = root ? CREW_ARENA_GET_ARRAY(a, double, root->x, root->n) : NULL;
    if (!x)
        bench_fail("%s is not bench_mpi's seed snapshot", path);
    c.data = (seed_data){x, (size_t)root->n};
    make_args(c.args, c.data.n, quick);
    for (int i = 0; i < NTASKS; i++) {
        c.tasks[i] = (crew_task){.fn = seed_task, .arg = &c.args[i], .arg_size = sizeof(stat_arg),
                                 .result = &c.results[i], .result_size = sizeof(stat_result)};
        c.mt[i] = (crew_mpi_task){.fn = 0, .arg = &c.args[i], .arg_size = sizeof(stat_arg),
                                  .result = &c.results[i], .result_size = sizeof(stat_result)};
    }

    seed_peer peers[] = {
        {"threads 1x2 (crew_run)", 1, 2, 1, {0}, {0}},
        {"mpi 1x2", 1, 2, 0, {0}, {0}},
        {"mpi 2x1", 2, 1, 0, {0}, {0}},
        {"mpi 4x1 (oversubscribed)", 4, 1, 0, {0}, {0}},
        {"mpi 2x2 (oversubscribed)", 2, 2, 0, {0}, {0}},
        {"mpi 4x2 (oversubscribed)", 4, 2, 0, {0}, {0}},
    };
    int np = (int)(sizeof peers / sizeof peers[0]);
    out("# seed: the 64 statistics of seed_job.h over a %.0f MiB snapshot (%zu doubles) that "
        "every rank maps; ranks x workers per rank; ms per job, best of %d rounds after one "
        "untimed round; mpi/threads: time over the threads-only run's\n",
        (double)c.data.n * 8 / 1048576, c.data.n, rounds);
    /* Round 0 is untimed: it faults the snapshot's pages into every rank's
     * page tables and makes the reference (the threads-only run, first). */
    for (int r = 0; r <= rounds; r++)
        for (int i = 0; i < np; i++) {
            if (peers[i].ranks > nranks)
                continue;
            c.p = &peers[i];
            double t = step(peers[i].ranks, seed_step, &c);
            if (r > 0)
                peers[i].t[r - 1] = t;
            if (verbose)
                out("#   round %d %-26s %9.1f ms%s\n", r, peers[i].name, t / 1e6,
                    r ? "" : " (untimed)");
        }
    double base = bench_pick(peers[0].t, rounds, 0);
    for (int i = 0; i < np; i++) {
        if (peers[i].ranks > nranks) {
            out("seed %-26s -  (needs %d ranks)\n", peers[i].name, peers[i].ranks);
            continue;
        }
        double t = bench_pick(peers[i].t, rounds, 0);
        out("seed %-26s %9.1f ms", peers[i].name, t / 1e6);
        if (i > 0) {
            out("  mpi/threads=%.3f  tasks per rank:", t / base);
            for (int k = 0; k < peers[i].ranks; k++)
                out(" %d", peers[i].per_rank[k]);
        }
        out("\n");
    }
    out("# seed: every result of every run equal bit for bit to the threads-only run's; a seed "
        "task sends %llu + %llu bytes when it runs on another rank (a %zu-byte argument, a "
        "%zu-byte result)\n",
        (unsigned long long)wire_chunk_bytes(sizeof(stat_arg)),
        (unsigned long long)wire_result_bytes(sizeof(stat_result)), sizeof(stat_arg),
        sizeof(stat_result));
    quiet_barrier();
    crew_mpi_data_close(data);
}

/* ---- empty tasks: latency and throughput ------------------------------------------ */

static int echo_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t x;
    memcpy(&x, arg, sizeof x);
    x = 2 * x + 1;
    memcpy(result, &x, sizeof x);
    return 0;
}

/* A task of any shape for the byte count: the argument starts with {x,
 * result size}, the result is bytes (x * 31 + k) mod 256. */
typedef struct shape_arg {
    uint64_t x, result_size;
} shape_arg;

static int shape_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    shape_arg a;
    memcpy(&a, arg, sizeof a);
    for (uint64_t k = 0; k < a.result_size; k++)
        ((unsigned char *)result)[k] = (unsigned char)(a.x * 31 + k);
    return 0;
}

static const crew_mpi_fn empty_fns[] = {{"echo", echo_task}, {"shape", shape_task}};

typedef struct empty_ctx {
    size_t n;            /* tasks in a run */
    size_t calls;        /* crew_mpi_run calls of one task */
    size_t chunk_max;
    uint64_t *args, *results;
    crew_mpi_task *t;
    double *given_at, *lat;
    size_t given, in_flight;
    int ranks;           /* of the measurement now */
    size_t per_rank[2];
    double lat_med[2];   /* median latency per rank, ns (feed) */
} empty_ctx;

static void empty_prepare(empty_ctx *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->args[i] = i + 1000;
        c->results[i] = 0;
        c->t[i] = (crew_mpi_task){.fn = 0, .arg = &c->args[i], .arg_size = 8,
                                  .result = &c->results[i], .result_size = 8};
    }
}

static void empty_check(empty_ctx *c, size_t n, const char *what)
{
    c->per_rank[0] = c->per_rank[1] = 0;
    for (size_t i = 0; i < n; i++) {
        if (c->t[i].status != 0 || c->results[i] != 2 * c->args[i] + 1)
            bench_fail("%s: task %zu: status %d, result %llu (expected %llu)", what, i,
                       c->t[i].status, (unsigned long long)c->results[i],
                       (unsigned long long)(2 * c->args[i] + 1));
        if (c->t[i].rank == 0 || c->t[i].rank == 1)
            c->per_rank[c->t[i].rank]++;
    }
}

/* crew_mpi_run of one task, c->calls times: ns per call. */
static double calls_step(void *ctx, MPI_Comm comm)
{
    empty_ctx *c = ctx;
    size_t r0 = 0, r1 = 0;
    double t0 = bench_now_ns();
    for (size_t i = 0; i < c->calls; i++) {
        if (me == 0)
            empty_prepare(c, 1);
        int rc = crew_mpi_run(comm, pools[1], NULL, empty_fns, 2, me == 0 ? c->t : NULL,
                              me == 0, &(crew_mpi_opts){0});
        if (rc != 0)
            bench_fail("one-task run: %s", crew_strerror(rc));
        if (me == 0) {
            empty_check(c, 1, "one-task run");
            r0 += c->per_rank[0], r1 += c->per_rank[1];
        }
    }
    double t = (bench_now_ns() - t0) / (double)c->calls;
    c->per_rank[0] = r0, c->per_rank[1] = r1;
    return t;
}

static int one_next(void *ctx, crew_mpi_task **task)
{
    empty_ctx *c = ctx;
    if (c->given == c->n)
        return 0;
    if (c->in_flight)
        return CREW_EAGAIN;
    c->given_at[c->given] = bench_now_ns();
    *task = &c->t[c->given++];
    c->in_flight = 1;
    return 1;
}

static void one_done(void *ctx, crew_mpi_task *task)
{
    empty_ctx *c = ctx;
    size_t i = (size_t)(task - c->t);
    c->lat[i] = bench_now_ns() - c->given_at[i];
    c->in_flight = 0;
}

/* One task in flight at a time, c->n of them: the median round trip of the
 * tasks each rank ran (lat_med), and the mean over all as the figure. */
static double feed_step(void *ctx, MPI_Comm comm)
{
    empty_ctx *c = ctx;
    c->given = c->in_flight = 0;
    if (me == 0)
        empty_prepare(c, c->n);
    crew_mpi_feed feed = {.next = one_next, .done = one_done, .ctx = c, .total = c->n};
    double t0 = bench_now_ns();
    int rc = crew_mpi_run_feed(comm, pools[1], NULL, empty_fns, 2, me == 0 ? &feed : NULL,
                               &(crew_mpi_opts){0});
    double t = bench_now_ns() - t0;
    if (rc != 0)
        bench_fail("one-in-flight feed: %s", crew_strerror(rc));
    if (me != 0)
        return 0;
    empty_check(c, c->n, "one-in-flight feed");
    for (int k = 0; k < 2; k++) {
        size_t m = 0;
        for (size_t i = 0; i < c->n; i++)
            if (c->t[i].rank == k)
                c->given_at[m++] = c->lat[i]; /* given_at is free now: reuse it */
        c->lat_med[k] = m ? bench_pick(c->given_at, (int)m, 1) : 0;
    }
    return t / (double)c->n;
}

/* c->n tasks in one crew_mpi_run with c->chunk_max: ns per task. */
static double many_step(void *ctx, MPI_Comm comm)
{
    empty_ctx *c = ctx;
    if (me == 0)
        empty_prepare(c, c->n);
    double t0 = bench_now_ns();
    int rc = crew_mpi_run(comm, pools[1], NULL, empty_fns, 2, me == 0 ? c->t : NULL,
                          me == 0 ? c->n : 0, &(crew_mpi_opts){.chunk_max = c->chunk_max});
    double t = bench_now_ns() - t0;
    if (rc != 0)
        bench_fail("%zu empty tasks: %s", c->n, crew_strerror(rc));
    if (me == 0)
        empty_check(c, c->n, "empty tasks");
    return t / (double)c->n;
}

/* Blocking ping-pong of a 40-byte message (one empty task's chunk record)
 * between ranks 0 and 1, c->calls x 10 times: ns per round trip. */
static double pingpong_step(void *ctx, MPI_Comm comm)
{
    empty_ctx *c = ctx;
    char msg[40] = {0};
    size_t n = c->calls * 10;
    double t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        if (me == 0) {
            MPI_Send(msg, sizeof msg, MPI_BYTE, 1, 7, comm);
            MPI_Recv(msg, sizeof msg, MPI_BYTE, 1, 7, comm, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(msg, sizeof msg, MPI_BYTE, 0, 7, comm, MPI_STATUS_IGNORE);
            MPI_Send(msg, sizeof msg, MPI_BYTE, 0, 7, comm);
        }
    }
    return (bench_now_ns() - t0) / (double)n;
}

enum { L_CALL1, L_CALL2, L_FEED1, L_FEED2, L_MANY1_C1, L_MANY2_C1, L_MANY1, L_MANY2, L_PING, L_N };

static void part_latency(empty_ctx *c, size_t n_tasks)
{
    static double t[L_N][BENCH_MAX_REPS], med[2][BENCH_MAX_REPS];
    static size_t share[L_N][2];
    static const struct { int ranks; const char *what; } m[L_N] = {
        {1, "run of 1 task, 1 rank"}, {2, "run of 1 task, 2 ranks"},
        {1, "one in flight, 1 rank"}, {2, "one in flight, 2 ranks"},
        {1, "chunk_max=1, 1 rank"}, {2, "chunk_max=1, 2 ranks"},
        {1, "chunk_max=1024, 1 rank"}, {2, "chunk_max=1024, 2 ranks"},
        {2, "MPI ping-pong 40 B"},
    };
    out("# latency: empty tasks (8 bytes in, 8 out, every result checked), 1 worker per rank; "
        "best of %d rounds, interleaved\n", rounds);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < L_N; i++) {
            if (m[i].ranks > nranks)
                continue;
            step_fn fn = i <= L_CALL2 ? calls_step : i <= L_FEED2 ? feed_step
                         : i == L_PING ? pingpong_step : many_step;
            c->n = i <= L_CALL2 ? 1 : i <= L_FEED2 ? c->calls * 4 : n_tasks;
            c->chunk_max = i == L_MANY1_C1 || i == L_MANY2_C1 ? 1 : 0;
            t[i][r] = step(m[i].ranks, fn, c);
            if (me == 0 && i != L_PING) {
                share[i][0] = c->per_rank[0], share[i][1] = c->per_rank[1];
                if (i == L_FEED2)
                    med[0][r] = c->lat_med[0], med[1][r] = c->lat_med[1];
            }
            if (verbose)
                out("#   round %d %-26s %9.2f us\n", r, m[i].what, t[i][r] / 1e3);
        }
    if (me != 0)
        return;
    double f[L_N];
    for (int i = 0; i < L_N; i++)
        f[i] = m[i].ranks > nranks ? 0 : bench_pick(t[i], rounds, 0) / 1e3;
    double ping = f[L_PING];
    printf("latency MPI ping-pong 40 B round trip  %8.2f us  (blocking MPI_Send/MPI_Recv: the "
           "floor)\n", ping);
    printf("latency run of 1 task, 1 rank        %8.2f us per crew_mpi_run call\n", f[L_CALL1]);
    printf("latency run of 1 task, 2 ranks       %8.2f us per crew_mpi_run call  (tasks ran on "
           "rank 0/1: %zu/%zu)\n", f[L_CALL2], share[L_CALL2][0], share[L_CALL2][1]);
    printf("latency one in flight, 1 rank        %8.2f us per task\n", f[L_FEED1]);
    printf("latency one in flight, 2 ranks       %8.2f us per task  (tasks on rank 0/1: %zu/%zu; "
           "median next->done: rank 0 %.2f us, rank 1 %.2f us = %.1fx the ping-pong)\n",
           f[L_FEED2], share[L_FEED2][0], share[L_FEED2][1], bench_pick(med[0], rounds, 0) / 1e3,
           bench_pick(med[1], rounds, 0) / 1e3,
           ping > 0 ? bench_pick(med[1], rounds, 0) / 1e3 / ping : 0);
    for (int i = L_MANY1_C1; i <= L_MANY2; i++)
        printf("throughput %-26s %8.3f us per task %10.0f tasks/s  (%zu tasks; on rank 0/1: "
               "%zu/%zu)\n", m[i].what, f[i], f[i] > 0 ? 1e6 / f[i] : 0, n_tasks, share[i][0],
               share[i][1]);
    fflush(stdout);
}

/* ---- bytes per task ---------------------------------------------------------------- */

typedef void counts_fn(uint64_t out[MPI_COUNT_TAGS][2]);

/* Counters of ranks 0 and 1 (rows 0 and 1 of all), on rank 0. */
static void gather_counts(counts_fn *get, MPI_Comm comm, uint64_t all[2][MPI_COUNT_TAGS][2])
{
    uint64_t mine[MPI_COUNT_TAGS][2];
    get(mine);
    MPI_Gather(mine, MPI_COUNT_TAGS * 2, MPI_UINT64_T, all, MPI_COUNT_TAGS * 2, MPI_UINT64_T, 0,
               comm);
}

static void part_bytes(empty_ctx *c, size_t n_tasks)
{
    counts_fn *get = (counts_fn *)(uintptr_t)dlsym(RTLD_DEFAULT, "crew_bench_mpi_counts");
    int have = get != NULL, all = 0;
    MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all || nranks < 2) {
        out("# bytes: skipped (needs 2 ranks and peers/mpi_count.so preloaded)\n");
        return;
    }
    static const struct { size_t arg, result, chunk_max; } shapes[] = {
        {8, 8, 0}, {8, 8, 1}, {100, 1000, 0}};
    size_t n = n_tasks;
    unsigned char *argbuf = me == 0 ? calloc(n, 112) : NULL;
    unsigned char *resbuf = me == 0 ? calloc(n, 1000) : NULL;
    if (me == 0 && (!argbuf || !resbuf))
        bench_fail("out of memory");
    out("# bytes: what crew_mpi_run sends per task run on another rank, counted in MPI_Isend "
        "(peers/mpi_count.so) on 2 ranks x 1 worker, %zu tasks a run, against the wire format "
        "(a 40-byte record out, a 32-byte one back, arg and result padded to 8)\n", n);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        quiet_barrier();
        if (me >= 2)
            continue;
        uint64_t before[2][MPI_COUNT_TAGS][2], after[2][MPI_COUNT_TAGS][2];
        if (me == 0)
            for (size_t i = 0; i < n; i++) {
                if (shapes[s].arg == 8) {
                    c->args[i] = i;
                    c->t[i] = (crew_mpi_task){.fn = 0, .arg = &c->args[i], .arg_size = 8,
                                              .result = &c->results[i], .result_size = 8};
                } else {
                    shape_arg a = {i, shapes[s].result};
                    memcpy(argbuf + i * 112, &a, sizeof a);
                    c->t[i] = (crew_mpi_task){.fn = 1, .arg = argbuf + i * 112,
                                              .arg_size = shapes[s].arg,
                                              .result = resbuf + i * 1000,
                                              .result_size = shapes[s].result};
                }
            }
        gather_counts(get, sub[2], before);
        int rc = crew_mpi_run(sub[2], pools[1], NULL, empty_fns, 2, me == 0 ? c->t : NULL,
                              me == 0 ? n : 0, &(crew_mpi_opts){.chunk_max = shapes[s].chunk_max});
        gather_counts(get, sub[2], after);
        if (rc != 0)
            bench_fail("bytes: %s", crew_strerror(rc));
        if (me != 0)
            continue;
        uint64_t remote = 0;
        for (size_t i = 0; i < n; i++) {
            int ok = c->t[i].status == 0;
            if (ok && shapes[s].arg == 8)
                ok = c->results[i] == 2 * (uint64_t)i + 1;
            for (size_t k = 0; ok && shapes[s].arg != 8 && k < shapes[s].result; k++)
                ok = resbuf[i * 1000 + k] == (unsigned char)(i * 31 + k);
            if (!ok)
                bench_fail("bytes: task %zu gave a wrong result (status %d)", i, c->t[i].status);
            remote += c->t[i].rank == 1;
        }
        uint64_t d[2][MPI_COUNT_TAGS][2];
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < MPI_COUNT_TAGS; k++)
                for (int j = 0; j < 2; j++)
                    d[r][k][j] = after[r][k][j] - before[r][k][j];
        uint64_t chunk = d[0][MPI_COUNT_CHUNK][1], res = d[1][MPI_COUNT_RESULTS][1];
        uint64_t want_chunk = remote * wire_chunk_bytes(shapes[s].arg);
        uint64_t want_res = remote * wire_result_bytes(shapes[s].result);
        if (chunk != want_chunk || res != want_res)
            bench_fail("bytes: %zu-byte args, %zu-byte results: counted %llu + %llu bytes for "
                       "%llu tasks on rank 1, the wire format says %llu + %llu",
                       shapes[s].arg, shapes[s].result, (unsigned long long)chunk,
                       (unsigned long long)res, (unsigned long long)remote,
                       (unsigned long long)want_chunk, (unsigned long long)want_res);
        if (!remote)
            bench_fail("bytes: no task ran on rank 1, nothing was measured");
        printf("bytes arg=%zu result=%zu chunk_max=%-4zu %6.1f + %6.1f = %6.1f bytes per task "
               "(counted = wire format)  %.2f tasks per CHUNK message, %.2f per RESULTS "
               "message  (%llu of %zu tasks on rank 1; the 4-byte STOP ending a run goes by "
               "MPI_Send, not counted)\n",
               shapes[s].arg, shapes[s].result, shapes[s].chunk_max ? shapes[s].chunk_max : 1024,
               (double)chunk / (double)remote, (double)res / (double)remote,
               (double)(chunk + res) / (double)remote,
               (double)remote / (double)d[0][MPI_COUNT_CHUNK][0],
               (double)remote / (double)d[1][MPI_COUNT_RESULTS][0], (unsigned long long)remote,
               n);
        fflush(stdout);
    }
    free(argbuf);
    free(resbuf);
    quiet_barrier();
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return 1;
    if (argc >= 2 && strcmp(argv[1], "init") == 0) {
        MPI_Finalize();
        return 0;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (argc != 7 || strcmp(argv[1], "lib") != 0) {
        if (me == 0)
            fprintf(stderr, "usage: mpi_job init | mpi_job lib SNAPSHOT ROUNDS QUICK VERBOSE "
                            "TASKS\n");
        MPI_Finalize();
        return 2;
    }
    if (provided < MPI_THREAD_FUNNELED)
        bench_fail("MPI gives no MPI_THREAD_FUNNELED");
    rounds = atoi(argv[3]);
    rounds = rounds < 1 ? 1 : rounds > BENCH_MAX_REPS - 1 ? BENCH_MAX_REPS - 1 : rounds;
    quick = atoi(argv[4]);
    verbose = atoi(argv[5]);
    size_t n_tasks = (size_t)atof(argv[6]);
    if (n_tasks < 10)
        n_tasks = 10;

    for (int k = 1; k <= 4; k++) {
        sub[k] = MPI_COMM_NULL;
        if (k == 3)
            continue;
        MPI_Comm_split(MPI_COMM_WORLD, me < k ? 0 : MPI_UNDEFINED, me, &sub[k]);
    }
    for (unsigned w = 1; w <= 2; w++) {
        int rc = crew_open(&pools[w], &(crew_config){.workers = w});
        if (rc != 0)
            bench_fail("crew_open: %s", crew_strerror(rc));
    }

    part_seed(argv[2]);

    static empty_ctx c;
    c.calls = quick ? 50 : 500;
    size_t cap = n_tasks > c.calls * 4 ? n_tasks : c.calls * 4;
    c.args = calloc(cap, sizeof *c.args);
    c.results = calloc(cap, sizeof *c.results);
    c.t = calloc(cap, sizeof *c.t);
    c.given_at = calloc(cap, sizeof *c.given_at);
    c.lat = calloc(cap, sizeof *c.lat);
    if (!c.args || !c.results || !c.t || !c.given_at || !c.lat)
        bench_fail("out of memory for %zu tasks", cap);
    part_latency(&c, n_tasks);
    part_bytes(&c, n_tasks);

    quiet_barrier();
    for (int w = 1; w <= 2; w++)
        crew_close(pools[w]);
    for (int k = 1; k <= 4; k++)
        if (sub[k] != MPI_COMM_NULL)
            MPI_Comm_free(&sub[k]);
    free(c.args);
    free(c.results);
    free(c.t);
    free(c.given_at);
    free(c.lat);
    MPI_Finalize();
    return 0;
}
