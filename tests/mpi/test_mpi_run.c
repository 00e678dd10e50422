/*
 * test_mpi_run.c -- crew_mpi_run and crew_mpi_run_feed across the ranks of
 * MPI_COMM_WORLD (run under mpirun with 1, 2 and 4 ranks, and with thread
 * and process pools).  Every result is checked against a value computed
 * here; every rank checks what it can and the verdicts are combined.
 */
#include <mpi.h>
#include <signal.h>
#include <stdbool.h>

#include "crew_mpi.h"
#include "test.h"

typedef struct shared_data {
    uint64_t salt;
} shared_data;

/* result = (arg^2 + salt) with the running process's pid beside it */
static int square(const void *shared, const void *arg, void *result)
{
    const shared_data *d = shared;
    uint64_t x;
    memcpy(&x, arg, sizeof x);
    uint64_t out[2] = {x * x + d->salt, (uint64_t)getpid()};
    memcpy(result, out, sizeof out);
    return 0;
}

/* fails with x % 7 + 1 when x % 7 == 3 */
static int picky(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t x;
    memcpy(&x, arg, sizeof x);
    memcpy(result, &x, sizeof x);
    return x % 7 == 3 ? (int)(x % 7) + 1 : 0;
}

/* arg: {u64 n, n bytes}; result: their sum -- a long argument travels whole */
static int sum_bytes(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t n, sum = 0;
    memcpy(&n, arg, sizeof n);
    const unsigned char *p = (const unsigned char *)arg + 8;
    for (uint64_t i = 0; i < n; i++)
        sum += p[i];
    memcpy(result, &sum, sizeof sum);
    return 0;
}

static int crash(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    raise(SIGSEGV);
    return 0;
}

static int me, size;

/* On a rank other than 0, kill this worker's supervisor: the rank's
 * process pool is lost.  result: the argument, as picky. */
static int kill_pool(const void *shared, const void *arg, void *result)
{
    (void)shared;
    memcpy(result, arg, 8);
    if (me != 0)
        kill(getppid(), SIGKILL);
    return 0;
}

static const crew_mpi_fn table[] = {
    {"square", square}, {"picky", picky}, {"sum_bytes", sum_bytes}, {"crash", crash},
    {"kill_pool", kill_pool},
};
#define N_FNS (sizeof table / sizeof table[0])

/* Every rank's verdict: the test fails on all ranks if it failed on one. */
static void agree(int ok, const char *what)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
        if (me == 0)
            fprintf(stderr, "test_mpi_run: %s failed on some rank\n", what);
        MPI_Finalize();
        exit(1);
    }
}

/* Set before crew_open: process workers see it as forked. */
static shared_data d = {.salt = 1000};

static void test_square(crew *pool, int isolation)
{
    enum { N = 5000 };
    uint64_t *args = NULL, (*res)[2] = NULL;
    crew_mpi_task *tasks = NULL;
    size_t n = 0;
    if (me == 0) {
        n = N;
        args = malloc(N * sizeof *args);
        res = calloc(N, sizeof *res);
        tasks = calloc(N, sizeof *tasks);
        for (size_t i = 0; i < N; i++) {
            args[i] = i * 3 + 1;
            tasks[i] = (crew_mpi_task){.fn = 0, .arg = &args[i], .arg_size = 8,
                                       .result = res[i], .result_size = 16};
        }
    }
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, &d, table, N_FNS, tasks, n, NULL);
    int ok = rc == 0;
    /* every rank ran some when there are enough tasks for all */
    if (me == 0) {
        int *per_rank = calloc((size_t)size, sizeof *per_rank);
        for (size_t i = 0; i < N; i++) {
            ok &= tasks[i].status == 0;
            ok &= res[i][0] == args[i] * args[i] + d.salt;
            ok &= tasks[i].rank >= 0 && tasks[i].rank < size;
            if (tasks[i].rank >= 0 && tasks[i].rank < size)
                per_rank[tasks[i].rank]++;
            if (isolation == CREW_PROCESSES)
                ok &= tasks[i].runs == 1;
        }
        for (int k = 0; k < size; k++) {
            if (!per_rank[k])
                fprintf(stderr, "rank %d ran no task\n", k);
            ok &= per_rank[k] > 0;
        }
        free(per_rank);
    }
    agree(ok, "square");
    free(args);
    free(res);
    free(tasks);
}

/* The root's n tasks of one 8-byte argument (the caller sets it) and an
 * 8-byte result each, calling picky; the other ranks have none. */
typedef struct words {
    size_t n;
    uint64_t *args, *res;
    crew_mpi_task *tasks;
} words;

static words words_make(size_t n)
{
    words w = {0};
    if (me != 0)
        return w;
    w.n = n;
    w.args = calloc(n, sizeof *w.args);
    w.res = calloc(n, sizeof *w.res);
    w.tasks = calloc(n, sizeof *w.tasks);
    ASSERT(w.args && w.res && w.tasks);
    for (size_t i = 0; i < n; i++)
        w.tasks[i] = (crew_mpi_task){.fn = 1, .arg = &w.args[i], .arg_size = 8,
                                     .result = &w.res[i], .result_size = 8};
    return w;
}

static void words_free(words *w)
{
    free(w->args);
    free(w->res);
    free(w->tasks);
}

static void test_failures(crew *pool, int isolation)
{
    enum { N = 700 };
    words w = words_make(N);
    uint64_t *args = w.args, *res = w.res;
    crew_mpi_task *tasks = w.tasks;
    for (size_t i = 0; i < w.n; i++) {
        args[i] = i;
        if (isolation == CREW_PROCESSES && i % 100 == 50)
            tasks[i].fn = 3; /* crash */
        if (i == 10)
            tasks[i].fn = 99; /* out of range */
    }
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, tasks, w.n, NULL);
    int ok = rc == CREW_EFAILED;
    if (me == 0) {
        for (size_t i = 0; i < N; i++) {
            int want;
            if (i == 10)
                want = CREW_EINVAL;
            else if (isolation == CREW_PROCESSES && i % 100 == 50)
                want = CREW_ECRASHED;
            else
                want = i % 7 == 3 ? (int)(i % 7) + 1 : 0;
            if (tasks[i].status != want) {
                fprintf(stderr, "task %zu: status %d, want %d\n", i, tasks[i].status, want);
                ok = 0;
            }
            if (want == 0 || want > 0)
                ok &= res[i] == i;
            if (want == CREW_ECRASHED)
                ok &= tasks[i].detail == SIGSEGV;
        }
    }
    agree(ok, "failures");
    words_free(&w);
}

static void test_stop(crew *pool)
{
    enum { N = 20000 };
    words w = words_make(N);
    uint64_t *res = w.res;
    crew_mpi_task *tasks = w.tasks;
    for (size_t i = 0; i < w.n; i++)
        w.args[i] = i == 100 ? 3 : 7; /* only task 100 fails */
    crew_mpi_opts o = {.stop_on_error = 1};
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, tasks, w.n, &o);
    int ok = rc == CREW_EFAILED;
    if (me == 0) {
        size_t cancelled = 0, fine = 0;
        ok &= tasks[100].status == 4;
        /* every task before the failure ran; the cancelled ones never did */
        for (size_t i = 0; i < 100; i++)
            ok &= tasks[i].status == 0 && res[i] == 7;
        for (size_t i = 0; i < N; i++) {
            if (tasks[i].status == CREW_ECANCELED) {
                cancelled++;
                ok &= tasks[i].rank == -1;
            } else if (tasks[i].status == 0) {
                fine++;
            }
        }
        ok &= cancelled + fine == N - 1;
        ok &= cancelled > N / 2; /* the stop came early */
    }
    agree(ok, "stop_on_error");
    words_free(&w);
}

/* A feed with a window of 8 tasks in flight, consumed in order. */
typedef struct window_feed {
    crew_mpi_task slots[8];
    uint64_t args[8], res[8][2];
    uint64_t given, total, sum;
    int in_flight, max_in_flight;
} window_feed;

static int wf_next(void *ctx, crew_mpi_task **t)
{
    window_feed *w = ctx;
    if (w->given == w->total)
        return 0;
    if (w->in_flight == 8)
        return CREW_EAGAIN;
    for (int i = 0; i < 8; i++)
        if (!w->slots[i].arg) {
            w->args[i] = w->given++;
            w->slots[i] = (crew_mpi_task){.fn = 0, .arg = &w->args[i], .arg_size = 8,
                                          .result = w->res[i], .result_size = 16};
            w->in_flight++;
            if (w->in_flight > w->max_in_flight)
                w->max_in_flight = w->in_flight;
            *t = &w->slots[i];
            return 1;
        }
    return CREW_EINVAL;
}

static void wf_done(void *ctx, crew_mpi_task *t)
{
    window_feed *w = ctx;
    uint64_t x;
    memcpy(&x, t->arg, 8);
    if (t->status == 0)
        w->sum += w->res[t - w->slots][0] - d.salt;
    t->arg = NULL;
    w->in_flight--;
}

static void test_feed(crew *pool)
{
    window_feed w = {.total = 3000};
    crew_mpi_feed f = {.next = wf_next, .done = wf_done, .ctx = &w, .total = 0};
    int rc = crew_mpi_run_feed(MPI_COMM_WORLD, pool, &d, table, N_FNS, me == 0 ? &f : NULL,
                               NULL);
    int ok = rc == 0;
    if (me == 0) {
        uint64_t want = 0;
        for (uint64_t i = 0; i < w.total; i++)
            want += i * i;
        ok &= w.sum == want && w.in_flight == 0 && w.max_in_flight <= 8;
    }
    agree(ok, "feed");
}

/* Process pools: ranks other than 0 lose their pool (a task kills its
 * supervisor).  The tasks they had not started go to the others: only the
 * ones running at that moment fail (CREW_ELOST, at most 2 workers per
 * lost rank), every other task is right, and the run says CREW_ELOST. */
static void test_lost(void)
{
    crew *pool;
    agree(crew_open(&pool, &(crew_config){.workers = 2, .isolation = CREW_PROCESSES}) == 0,
          "crew_open (lost)");
    enum { N = 1000 };
    words w = words_make(N);
    uint64_t *args = w.args, *res = w.res;
    crew_mpi_task *tasks = w.tasks;
    for (size_t i = 0; i < w.n; i++) {
        args[i] = 10 + i; /* picky fails none of these: (10 + i) % 7 == 3 is avoided below */
        if (args[i] % 7 == 3)
            args[i] = 1;
        if (i % 50 == 7)
            tasks[i].fn = 4; /* kill_pool */
    }
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, tasks, w.n, NULL);
    int ok = rc == (size > 1 ? CREW_ELOST : 0);
    if (me == 0) {
        size_t lost = 0;
        for (size_t i = 0; i < N; i++) {
            if (tasks[i].status == CREW_ELOST) {
                lost++;
                ok &= tasks[i].rank > 0;
            } else if (tasks[i].status != 0 || res[i] != args[i]) {
                fprintf(stderr, "lost: task %zu status %d rank %d\n", i, tasks[i].status,
                        tasks[i].rank);
                ok = 0;
            }
        }
        if (lost > 2 * (size_t)(size - 1)) {
            fprintf(stderr, "lost: %zu tasks failed, at most %d were running\n", lost,
                    2 * (size - 1));
            ok = 0;
        }
    }
    agree(ok, "lost pools");
    crew_close(pool);
    words_free(&w);
}

/* Arguments of 1 byte to 300 KB: several chunks past the 1 MiB batch. */
static void test_big_args(crew *pool)
{
    enum { N = 40 };
    unsigned char **args = NULL;
    uint64_t *res = NULL, *want = NULL;
    crew_mpi_task *tasks = NULL;
    size_t n = 0;
    if (me == 0) {
        n = N;
        args = calloc(N, sizeof *args);
        res = calloc(N, sizeof *res);
        want = calloc(N, sizeof *want);
        tasks = calloc(N, sizeof *tasks);
        for (size_t i = 0; i < N; i++) {
            uint64_t len = i * 7919 + 1;
            args[i] = malloc(8 + len);
            memcpy(args[i], &len, 8);
            for (uint64_t j = 0; j < len; j++) {
                args[i][8 + j] = (unsigned char)(j * 31 + i);
                want[i] += args[i][8 + j];
            }
            tasks[i] = (crew_mpi_task){.fn = 2, .arg = args[i], .arg_size = 8 + len,
                                       .result = &res[i], .result_size = 8};
        }
    }
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, tasks, n, NULL);
    int ok = rc == 0;
    if (me == 0)
        for (size_t i = 0; i < N; i++) {
            ok &= tasks[i].status == 0 && res[i] == want[i];
            free(args[i]);
        }
    agree(ok, "big arguments");
    free(args);
    free(res);
    free(want);
    free(tasks);
}

static void test_bad(crew *pool)
{
    /* a table that differs on one rank: everyone gets CREW_EINVAL */
    crew_mpi_fn other[N_FNS];
    memcpy(other, table, sizeof other);
    if (me == size - 1)
        other[1].name = "different";
    uint64_t a = 1, r = 0;
    crew_mpi_task t = {.fn = 1, .arg = &a, .arg_size = 8, .result = &r, .result_size = 8};
    int rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, other, N_FNS, me == 0 ? &t : NULL,
                          me == 0, NULL);
    agree(size == 1 ? rc == 0 : rc == CREW_EINVAL, "table mismatch");
    /* a root out of range */
    crew_mpi_opts o = {.root = size};
    rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, NULL, 0, &o);
    agree(rc == CREW_EINVAL, "bad root");
    /* a feed that says EAGAIN with nothing in flight */
    window_feed w = {.total = 10, .in_flight = 8};
    crew_mpi_feed f = {.next = wf_next, .done = wf_done, .ctx = &w};
    rc = crew_mpi_run_feed(MPI_COMM_WORLD, pool, NULL, table, N_FNS, me == 0 ? &f : NULL, NULL);
    agree(rc == CREW_EINVAL, "EAGAIN misuse");
    /* the root at another rank works too */
    o.root = size - 1;
    uint64_t args[50], res[50];
    crew_mpi_task tasks[50];
    for (int i = 0; i < 50; i++) {
        args[i] = (uint64_t)i;
        tasks[i] = (crew_mpi_task){.fn = 1, .arg = &args[i], .arg_size = 8, .result = &res[i],
                                   .result_size = 8};
    }
    bool last = me == size - 1;
    rc = crew_mpi_run(MPI_COMM_WORLD, pool, NULL, table, N_FNS, last ? tasks : NULL,
                      last ? 50 : 0, &o);
    int ok = rc == CREW_EFAILED;
    if (last)
        for (int i = 0; i < 50; i++)
            ok &= tasks[i].status == (i % 7 == 3 ? 4 : 0) && res[i] == (uint64_t)i;
    agree(ok, "other root");
}

int main(int argc, char **argv)
{
    int level;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &level);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int iso = CREW_THREADS; iso <= CREW_PROCESSES; iso++) {
        crew *pool;
        int rc = crew_open(&pool, &(crew_config){.workers = 2, .isolation = iso});
        agree(rc == 0, "crew_open");
        test_square(pool, iso);
        test_failures(pool, iso);
        test_stop(pool);
        test_feed(pool);
        test_big_args(pool);
        test_bad(pool);
        crew_close(pool);
    }
    test_lost();
    if (me == 0)
        printf("test_mpi_run: %d ranks: ok\n", size);
    MPI_Finalize();
    return 0;
}
