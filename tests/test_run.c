/*
 * Description: crew_run runs every task once and reports every status.
 *
 * Results of 1..10000 tasks of varying cost match serial ones; a task's
 * positive error becomes its status and the run returns CREW_EFAILED;
 * stop_on_error cancels tasks not yet started (and only those); on_done
 * is called once per task with its status final; progress never goes back,
 * never overlaps itself and ends with done == total; a task with fn NULL
 * runs nothing; at most N tasks run at once; runs nest and may come from
 * several outside threads.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "crew.h"
#include "test.h"

#define SENTINEL 12345
#define DATA 4096

static uint64_t shared_data[DATA];

/* ---- a batch of tasks with known answers --------------------------------- */

typedef struct batch batch;

typedef struct task_arg {
    batch *b;
    size_t index;
    unsigned cost;
    int fail;            /* what fn returns */
} task_arg;

struct batch {
    size_t n;
    task_arg *args;
    uint64_t *results;
    crew_task *tasks;
    atomic_int *ran;          /* fn calls per task */
    atomic_int *done_calls;   /* on_done calls per task */
    atomic_int bad_pointers;  /* fn saw another shared/arg/result than given */
    atomic_int done_early;    /* on_done before the status was final */
    atomic_int bad_index;     /* on_done with index >= n */
    atomic_int started_after_failure;
    atomic_int failure_reported;
    size_t fail_index;        /* for started_after_failure */
    /* progress */
    atomic_int in_progress, overlaps;
    size_t last_done, last_failed, progress_calls, final_calls;
    int progress_bad;
};

static uint64_t expected(const task_arg *a)
{
    uint64_t h = a->index;
    for (unsigned k = 0; k < a->cost; k++)
        h = test_mix(h ^ shared_data[(a->index + k) % DATA]);
    return h;
}

static int work_task(const void *shared, const void *arg, void *result)
{
    const task_arg *a = arg;
    batch *b = a->b;
    if (shared != shared_data || arg != b->tasks[a->index].arg ||
        result != b->tasks[a->index].result)
        atomic_fetch_add(&b->bad_pointers, 1);
    if (atomic_load(&b->failure_reported))
        atomic_fetch_add(&b->started_after_failure, 1);
    atomic_fetch_add(&b->ran[a->index], 1);
    *(uint64_t *)result = expected(a);
    return a->fail;
}

static void on_done(void *ctx, size_t index)
{
    batch *b = ctx;
    if (index >= b->n) {
        atomic_fetch_add(&b->bad_index, 1);
        return;
    }
    atomic_fetch_add(&b->done_calls[index], 1);
    int status = b->tasks[index].status;
    if (status == SENTINEL ||
        (status != CREW_ECANCELED && atomic_load(&b->ran[index]) != 1))
        atomic_fetch_add(&b->done_early, 1);
    if (index == b->fail_index && status > 0)
        atomic_store(&b->failure_reported, 1);
}

static void on_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    batch *b = ctx;
    if (atomic_exchange(&b->in_progress, 1))
        atomic_fetch_add(&b->overlaps, 1);
    if (total != b->n || done < b->last_done || done > total || failed > done ||
        failed < b->last_failed)
        b->progress_bad = 1;
    b->last_done = done;
    b->last_failed = failed;
    b->progress_calls++;
    if (done == total)
        b->final_calls++;
    atomic_store(&b->in_progress, 0);
}

/* cost(i) and fail(i) say what task i does. */
static batch *batch_new(size_t n, unsigned (*cost)(size_t), int (*fail)(size_t))
{
    batch *b = calloc(1, sizeof *b);
    ASSERT_NOT_NULL(b);
    b->n = n;
    b->args = calloc(n + 1, sizeof *b->args);
    b->results = calloc(n + 1, sizeof *b->results);
    b->tasks = calloc(n + 1, sizeof *b->tasks);
    b->ran = calloc(n + 1, sizeof *b->ran);
    b->done_calls = calloc(n + 1, sizeof *b->done_calls);
    ASSERT(b->args && b->results && b->tasks && b->ran && b->done_calls);
    b->fail_index = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        b->args[i] = (task_arg){b, i, cost(i), fail ? fail(i) : 0};
        b->tasks[i] = (crew_task){.fn = work_task,
                                  .arg = &b->args[i],
                                  .arg_size = sizeof b->args[i],
                                  .result = &b->results[i],
                                  .result_size = sizeof b->results[i],
                                  .status = SENTINEL};
    }
    return b;
}

static void batch_free(batch *b)
{
    free(b->args);
    free(b->results);
    free(b->tasks);
    free((void *)b->ran);
    free((void *)b->done_calls);
    free(b);
}

static crew_run_opts opts_for(batch *b, int stop)
{
    return (crew_run_opts){.stop_on_error = stop, .on_done = on_done,
                           .progress = on_progress, .ctx = b};
}

/* Checks shared by every run: callbacks and pointers. */
static void check_callbacks(batch *b, const char *what)
{
    if (atomic_load(&b->bad_pointers) || atomic_load(&b->done_early) ||
        atomic_load(&b->bad_index) || atomic_load(&b->overlaps) || b->progress_bad)
        TEST_FAIL_("%s (n %zu): %d wrong pointers, %d on_done before final, %d bad indexes, "
                   "%d overlapping progress calls, progress out of order: %d",
                   what, b->n, atomic_load(&b->bad_pointers), atomic_load(&b->done_early),
                   atomic_load(&b->bad_index), atomic_load(&b->overlaps), b->progress_bad);
    for (size_t i = 0; i < b->n; i++)
        if (atomic_load(&b->done_calls[i]) != 1)
            TEST_FAIL_("%s: on_done(%zu) called %d times", what, i,
                       atomic_load(&b->done_calls[i]));
    if (b->n > 0) {
        if (b->final_calls != 1 || b->last_done != b->n)
            TEST_FAIL_("%s: %zu final progress calls, last done %zu of %zu", what,
                       b->final_calls, b->last_done, b->n);
    }
}

static unsigned cost_varied(size_t i)
{
    uint64_t h = test_mix(i * 31 + 7);
    return h % 97 == 0 ? 5000 : (unsigned)(h % 200);
}

static unsigned cost_small(size_t i)
{
    return (unsigned)(i % 50);
}

static int fail_some(size_t i)
{
    return i % 7 == 3 ? (int)(i % 50) + 1 : 0;
}

static int fail_first(size_t i)
{
    return i == 0 ? 9 : 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_results(crew *pool)
{
    static const size_t sizes[] = {1, 2, 3, 10, 100, 1000, 10000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        batch *b = batch_new(sizes[s], cost_varied, NULL);
        crew_run_opts o = opts_for(b, 0);
        ASSERT_OK(crew_run(pool, shared_data, b->tasks, b->n, &o));
        for (size_t i = 0; i < b->n; i++) {
            ASSERT_EQ(b->tasks[i].status, 0);
            ASSERT_EQ(atomic_load(&b->ran[i]), 1);
            ASSERT_UEQ(b->results[i], expected(&b->args[i]));
        }
        check_callbacks(b, "results");
        ASSERT_EQ(b->last_failed, 0);
        batch_free(b);

        /* opts NULL */
        b = batch_new(sizes[s], cost_small, NULL);
        ASSERT_OK(crew_run(pool, shared_data, b->tasks, b->n, NULL));
        for (size_t i = 0; i < b->n; i++) {
            ASSERT_EQ(b->tasks[i].status, 0);
            ASSERT_EQ(atomic_load(&b->ran[i]), 1);
            ASSERT_UEQ(b->results[i], expected(&b->args[i]));
        }
        batch_free(b);
    }
}

static void test_errors(crew *pool)
{
    batch *b = batch_new(2000, cost_small, fail_some);
    crew_run_opts o = opts_for(b, 0);
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EFAILED);
    size_t failed = 0;
    for (size_t i = 0; i < b->n; i++) {
        ASSERT_EQ(b->tasks[i].status, fail_some(i));
        ASSERT_EQ(atomic_load(&b->ran[i]), 1);
        ASSERT_UEQ(b->results[i], expected(&b->args[i]));
        failed += fail_some(i) != 0;
    }
    check_callbacks(b, "errors");
    ASSERT_EQ(b->last_failed, failed);
    batch_free(b);

    /* A single failing task among many. */
    b = batch_new(500, cost_small, fail_first);
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, NULL), CREW_EFAILED);
    ASSERT_EQ(b->tasks[0].status, 9);
    for (size_t i = 1; i < b->n; i++)
        ASSERT_EQ(b->tasks[i].status, 0);
    batch_free(b);
}

/* A negative return is reserved for crew: the task's status is CREW_EINVAL. */
static int negative_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    return -*(const int *)arg;
}

static void test_negative_status(crew *pool)
{
    static const int errs[4] = {0, 1, EPIPE, 10000};
    crew_task t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (crew_task){.fn = negative_task, .arg = &errs[i], .status = SENTINEL};
    ASSERT_EQ(crew_run(pool, NULL, t, 4, NULL), CREW_EFAILED);
    ASSERT_EQ(t[0].status, 0);
    for (int i = 1; i < 4; i++)
        ASSERT_EQ(t[i].status, CREW_EINVAL);
}

static void test_stop_on_error(crew *pool)
{
    unsigned workers = crew_workers(pool);
    for (int round = 0; round < 3; round++) {
        batch *b = batch_new(10000, cost_small, round == 2 ? fail_some : fail_first);
        b->fail_index = round == 2 ? 3 : 0;
        crew_run_opts o = opts_for(b, 1);
        ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EFAILED);
        size_t cancelled = 0;
        for (size_t i = 0; i < b->n; i++) {
            int st = b->tasks[i].status, ran = atomic_load(&b->ran[i]);
            if (st == CREW_ECANCELED) {
                cancelled++;
                if (ran != 0)
                    TEST_FAIL_("stop_on_error: task %zu ran but is CREW_ECANCELED", i);
            } else {
                if (ran != 1 || st != b->args[i].fail)
                    TEST_FAIL_("stop_on_error: task %zu ran %d times, status %d, want %d", i, ran,
                               st, b->args[i].fail);
                ASSERT_UEQ(b->results[i], expected(&b->args[i]));
            }
        }
        ASSERT_NE(b->tasks[b->fail_index].status, CREW_ECANCELED);
        if (cancelled == 0)
            TEST_FAIL_("stop_on_error: task %zu failed, yet none of 10000 tasks was cancelled",
                       b->fail_index);
        /* Once on_done has seen the failure, a worker may at most be between
         * its stop check and the call of fn: fewer than N tasks start. */
        if (atomic_load(&b->started_after_failure) >= (int)workers)
            TEST_FAIL_("stop_on_error: %d tasks started after the failure was reported (N = %u)",
                       atomic_load(&b->started_after_failure), workers);
        check_callbacks(b, "stop_on_error");
        batch_free(b);
    }
}

/* With one worker the order is fixed: everything after the failure is cancelled. */
static int fail_17(size_t i)
{
    return i == 17 ? 4 : 0;
}

static void test_stop_on_error_serial(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    batch *b = batch_new(1000, cost_small, fail_17);
    crew_run_opts o = opts_for(b, 1);
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EFAILED);
    for (size_t i = 0; i < b->n; i++) {
        int want = i < 17 ? 0 : i == 17 ? 4 : CREW_ECANCELED;
        ASSERT_EQ(b->tasks[i].status, want);
        ASSERT_EQ(atomic_load(&b->ran[i]), i <= 17);
    }
    check_callbacks(b, "serial stop_on_error");
    /* "failed counts failed and cancelled tasks" (crew_run_opts.progress). */
    if (b->last_failed != 1 + (1000 - 18))
        TEST_FAIL_("serial stop_on_error: progress reports %zu failed", b->last_failed);
    batch_free(b);
    crew_close(pool);
}

static void test_bad_args(crew *pool)
{
    batch *b = batch_new(1000, cost_small, NULL);
    crew_run_opts o = opts_for(b, 0);
    b->tasks[999].fn = NULL;
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EINVAL);
    b->tasks[999].fn = work_task;
    b->tasks[0].fn = NULL;
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EINVAL);
    b->tasks[0].fn = work_task;
    ASSERT_EQ(crew_run(NULL, shared_data, b->tasks, b->n, &o), CREW_EINVAL);
    ASSERT_EQ(crew_run(pool, shared_data, NULL, 5, &o), CREW_EINVAL);
    for (size_t i = 0; i < b->n; i++) {
        ASSERT_EQ(atomic_load(&b->ran[i]), 0);
        ASSERT_EQ(atomic_load(&b->done_calls[i]), 0);
        ASSERT_EQ(b->tasks[i].status, SENTINEL);
    }
    ASSERT_EQ(b->progress_calls, 0);
    /* n == 0: nothing to do, tasks may be NULL. */
    ASSERT_OK(crew_run(pool, shared_data, NULL, 0, &o));
    ASSERT_OK(crew_run(pool, shared_data, b->tasks, 0, &o));
    ASSERT_OK(crew_run(pool, NULL, b->tasks, 0, NULL));
    for (size_t i = 0; i < b->n; i++)
        ASSERT_EQ(atomic_load(&b->done_calls[i]), 0);
    /* progress is called once even for n == 0, with done == total == 0. */
    ASSERT_EQ(b->progress_calls, 2);
    ASSERT_EQ(b->last_done, 0);
    batch_free(b);
}

/* Progress: a run long enough for periodic calls; at most ~10 a second. */
static unsigned cost_slow(size_t i)
{
    return 2000 + (unsigned)(i % 100);
}

static void test_progress(crew *pool)
{
    batch *b = batch_new(TEST_SANITIZED ? 1000 : 20000, cost_slow, fail_some);
    crew_run_opts o = opts_for(b, 0);
    double t0 = test_now_s();
    ASSERT_EQ(crew_run(pool, shared_data, b->tasks, b->n, &o), CREW_EFAILED);
    double elapsed = test_now_s() - t0;
    check_callbacks(b, "progress");
    size_t failed = 0;
    for (size_t i = 0; i < b->n; i++)
        failed += b->tasks[i].status != 0;
    ASSERT_EQ(b->last_failed, failed);
    if ((double)b->progress_calls > 20.0 * elapsed + 5.0)
        TEST_FAIL_("progress called %zu times in %.3f s", b->progress_calls, elapsed);
    batch_free(b);
}

/* ---- nesting and outside threads ------------------------------------------ */

typedef struct nest_arg {
    crew *pool;
    size_t index;
} nest_arg;

static int inner_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    *(uint64_t *)result = test_mix(*(const size_t *)arg);
    return 0;
}

static int outer_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const nest_arg *a = arg;
    size_t idx[20];
    uint64_t res[20];
    crew_task t[20];
    for (size_t i = 0; i < 20; i++) {
        idx[i] = a->index * 100 + i;
        t[i] = (crew_task){.fn = inner_task, .arg = &idx[i], .result = &res[i]};
    }
    if (crew_run(a->pool, NULL, t, 20, NULL) != 0)
        return 1;
    uint64_t s = 0;
    for (size_t i = 0; i < 20; i++) {
        if (t[i].status != 0)
            return 2;
        s += res[i];
    }
    *(uint64_t *)result = s;
    return 0;
}

static void test_nested(crew *pool)
{
    nest_arg args[50];
    uint64_t res[50];
    crew_task t[50];
    for (size_t i = 0; i < 50; i++) {
        args[i] = (nest_arg){pool, i};
        t[i] = (crew_task){.fn = outer_task, .arg = &args[i], .result = &res[i]};
    }
    ASSERT_OK(crew_run(pool, NULL, t, 50, NULL));
    for (size_t i = 0; i < 50; i++) {
        uint64_t want = 0;
        for (size_t k = 0; k < 20; k++)
            want += test_mix(i * 100 + k);
        ASSERT_EQ(t[i].status, 0);
        ASSERT_UEQ(res[i], want);
    }
}

static void *outside_runs(void *arg)
{
    crew *pool = arg;
    for (int r = 0; r < (TEST_SANITIZED ? 30 : 100); r++) {
        batch *b = batch_new((size_t)(r % 60), cost_small, fail_some);
        crew_run_opts o = opts_for(b, 0);
        int rc = crew_run(pool, shared_data, b->tasks, b->n, &o);
        int bad = rc != (b->n > 3 ? CREW_EFAILED : 0);
        for (size_t i = 0; i < b->n; i++)
            bad |= b->tasks[i].status != fail_some(i) ||
                   b->results[i] != expected(&b->args[i]) || atomic_load(&b->done_calls[i]) != 1;
        batch_free(b);
        if (bad)
            return (void *)1;
    }
    return NULL;
}

static void test_outside_threads(crew *pool)
{
    TEST_THREADS_OK(3, outside_runs, pool);
}

/* workers = 1: every task on the caller. */
static int note_thread(const void *shared, const void *arg, void *result)
{
    (void)arg;
    (void)result;
    return pthread_equal(pthread_self(), *(const pthread_t *)shared) ? 0 : 1;
}

static void test_one_worker_on_caller(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    pthread_t me = pthread_self();
    crew_task t[100];
    for (int i = 0; i < 100; i++)
        t[i] = (crew_task){.fn = note_thread};
    ASSERT_OK(crew_run(pool, &me, t, 100, NULL));
    crew_close(pool);
}

/* ---- N at a time ----------------------------------------------------------- */

typedef struct overlap {
    atomic_int running, most;
    unsigned limit;
} overlap;

/* Stays until more than `limit` tasks run at once, or 50 ms passed. */
static int overlap_task(const void *shared, const void *arg, void *result)
{
    (void)arg;
    (void)result;
    overlap *o = (overlap *)shared;
    test_raise_max(&o->most, atomic_fetch_add(&o->running, 1) + 1);
    double until = test_now_s() + 0.05;
    while (atomic_load(&o->running) <= (int)o->limit && test_now_s() < until)
        sched_yield();
    test_raise_max(&o->most, atomic_load(&o->running));
    atomic_fetch_sub(&o->running, 1);
    return 0;
}

static int overlap_run(crew *pool, unsigned limit, size_t n)
{
    overlap o = {.limit = limit};
    crew_task t[64];
    ASSERT_LE(n, 64);
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = overlap_task};
    ASSERT_OK(crew_run(pool, &o, t, n, NULL));
    return atomic_load(&o.most);
}

static void test_n_at_a_time(void)
{
    for (unsigned n = 2; n <= 3; n++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = n}));
        int most = overlap_run(pool, n, 4 * n);
        if (most != (int)n)
            TEST_FAIL_("workers = %u: at most %d tasks ran at once, want %u", n, most, n);
        /* Shrunk from 5: at most 2 at once. */
        ASSERT_OK(crew_resize(pool, 5));
        ASSERT_OK(crew_resize(pool, 2));
        most = overlap_run(pool, 2, 8);
        if (most > 2)
            TEST_FAIL_("resized 5 -> 2: %d tasks ran at once", most);
        crew_close(pool);
    }
}

int main(void)
{
    for (size_t i = 0; i < DATA; i++)
        shared_data[i] = test_mix(i ^ 0xabcdef);
    test_stop_on_error_serial();
    test_one_worker_on_caller();
    test_n_at_a_time();
    static const unsigned sizes[] = {1, 2, 3, 8};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        test_bad_args(pool);
        test_results(pool);
        test_errors(pool);
        test_negative_status(pool);
        test_stop_on_error(pool);
        test_progress(pool);
        test_nested(pool);
        test_outside_threads(pool);
        crew_close(pool);
    }
    printf("test_run: ok\n");
    return 0;
}
