/*
 * Description: crew_submit, crew_future_wait, crew_future_done,
 * crew_future_free.
 *
 * Many futures from outside and from inside tasks give the right results
 * and statuses; done() is 0 while a task is held back and 1 after; waiting
 * twice gives the same status; a future freed before its task ends still
 * gets its status written, and crew_close waits for it; workers = 1 runs
 * the task inside crew_submit; chains of futures waited for from inside
 * tasks do not deadlock; bad arguments give CREW_EINVAL.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

/* ---- a watchdog: a deadlock fails the test with its name, quickly ------- */

static test_watchdog dog;

static void dog_hung(const char *what)
{
    fprintf(stderr, "test_future: %s did not finish: deadlock?\n", what);
}

static void step(const char *what)
{
    test_watchdog_step(&dog, what);
}

/* ---- tasks ----------------------------------------------------------------- */

typedef struct calc_arg {
    uint64_t x;
    int fail;
} calc_arg;

static int calc_task(const void *shared, const void *arg, void *result)
{
    const calc_arg *a = arg;
    uint64_t h = a->x + *(const uint64_t *)shared;
    for (int i = 0; i < 100; i++)
        h = test_mix(h);
    *(uint64_t *)result = h;
    return a->fail;
}

static uint64_t calc_expected(uint64_t x, uint64_t base)
{
    uint64_t h = x + base;
    for (int i = 0; i < 100; i++)
        h = test_mix(h);
    return h;
}

static const uint64_t base = 77;

/* A task held back until its gate opens. */
typedef struct gate {
    atomic_int open;
    atomic_int started;
    int result;  /* plain: written by the task, read after close/wait */
} gate;

static int gated_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    gate *g = (gate *)arg;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->open))
        sched_yield();
    g->result = 1234;
    return 5;
}

/* ---- from outside ------------------------------------------------------- */

static void test_many_outside(crew *pool)
{
    enum { N = 1000 };
    static calc_arg args[N];
    static uint64_t res[N];
    static crew_task tasks[N];
    static crew_future *f[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (calc_arg){i * 3, i % 9 == 4 ? (int)(i % 13) + 1 : 0};
        tasks[i] = (crew_task){.fn = calc_task, .arg = &args[i], .result = &res[i],
                               .status = 12345};
        f[i] = NULL;
        ASSERT_OK(crew_submit(pool, &base, &tasks[i], &f[i]));
        ASSERT_NOT_NULL(f[i]);
    }
    for (size_t i = N; i-- > 0;) {
        int st = crew_future_wait(f[i]);
        ASSERT_EQ(st, args[i].fail);
        ASSERT_EQ(tasks[i].status, args[i].fail);
        ASSERT_UEQ(res[i], calc_expected(i * 3, base));
        ASSERT_EQ(crew_future_done(f[i]), 1);
        ASSERT_EQ(crew_future_wait(f[i]), st); /* again */
        crew_future_free(f[i]);
    }
}

static void test_done_polling(crew *pool)
{
    gate g = {0};
    crew_task t = {.fn = gated_task, .arg = &g, .status = 12345};
    crew_future *f;
    ASSERT_OK(crew_submit(pool, NULL, &t, &f));
    while (!atomic_load(&g.started))
        sched_yield();
    ASSERT_EQ(crew_future_done(f), 0);
    ASSERT_EQ(crew_future_done(f), 0);
    atomic_store(&g.open, 1);
    while (!crew_future_done(f))
        sched_yield();
    ASSERT_EQ(t.status, 5);
    ASSERT_EQ(crew_future_wait(f), 5);
    ASSERT_EQ(crew_future_wait(f), 5);
    ASSERT_EQ(g.result, 1234);
    crew_future_free(f);
}

/* Two threads wait for the same future. */
typedef struct shared_wait {
    crew_future *f;
    int got;
} shared_wait;

static void *wait_for(void *arg)
{
    shared_wait *w = arg;
    w->got = crew_future_wait(w->f);
    return NULL;
}

static void test_two_waiters(crew *pool)
{
    gate g = {0};
    crew_task t = {.fn = gated_task, .arg = &g};
    crew_future *f;
    ASSERT_OK(crew_submit(pool, NULL, &t, &f));
    shared_wait w[2] = {{f, 0}, {f, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, wait_for, &w[i]), 0);
    atomic_store(&g.open, 1);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
        ASSERT_EQ(w[i].got, 5);
    }
    crew_future_free(f);
}

/* Freed before the task ends: the task still runs to the end and its
 * status is written; crew_close waits for it. */
static atomic_int counted;

static int count_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    for (volatile int i = 0; i < 2000; i++)
        ;
    *(int *)result = 1;
    atomic_fetch_add(&counted, 1);
    return 0;
}

static void test_free_early(unsigned workers)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = workers}));
    gate g = {0};
    crew_task held = {.fn = gated_task, .arg = &g, .status = 12345};
    crew_future *f;
    if (workers > 1) {
        ASSERT_OK(crew_submit(pool, NULL, &held, &f));
        crew_future_free(f);
    }
    enum { N = 1000 };
    static crew_task tasks[N];
    static int res[N];
    atomic_store(&counted, 0);
    for (size_t i = 0; i < N; i++) {
        res[i] = 0;
        tasks[i] = (crew_task){.fn = count_task, .result = &res[i], .status = 12345};
        ASSERT_OK(crew_submit(pool, NULL, &tasks[i], &f));
        crew_future_free(f);
    }
    atomic_store(&g.open, 1);
    crew_close(pool);
    ASSERT_EQ(atomic_load(&counted), N);
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_EQ(res[i], 1);
    }
    if (workers > 1) {
        ASSERT_EQ(held.status, 5);
        ASSERT_EQ(g.result, 1234);
    }
}

/* crew_close waits for futures nobody waited for; freeing them afterwards
 * is still fine. */
static void test_close_then_free(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 3}));
    enum { N = 200 };
    static calc_arg args[N];
    static uint64_t res[N];
    static crew_task tasks[N];
    static crew_future *f[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (calc_arg){i, 0};
        tasks[i] = (crew_task){.fn = calc_task, .arg = &args[i], .result = &res[i],
                               .status = 12345};
        ASSERT_OK(crew_submit(pool, &base, &tasks[i], &f[i]));
    }
    crew_close(pool);
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_UEQ(res[i], calc_expected(i, base));
        crew_future_free(f[i]);
    }
}

/* ---- from inside tasks ----------------------------------------------------- */

typedef struct inner_arg {
    crew *pool;
    size_t index;
} inner_arg;

/* Submits ten futures, waits for all of them, returns their sum. */
static int fan_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const inner_arg *a = arg;
    calc_arg args[10];
    uint64_t res[10];
    crew_task t[10];
    crew_future *f[10];
    for (size_t i = 0; i < 10; i++) {
        args[i] = (calc_arg){a->index * 10 + i, 0};
        t[i] = (crew_task){.fn = calc_task, .arg = &args[i], .result = &res[i]};
        if (crew_submit(a->pool, &base, &t[i], &f[i]) != 0)
            return 1;
    }
    uint64_t s = 0;
    int bad = 0;
    for (size_t i = 0; i < 10; i++) {
        bad |= crew_future_wait(f[i]) != 0;
        crew_future_free(f[i]);
        s += res[i];
    }
    *(uint64_t *)result = s;
    return bad ? 2 : 0;
}

static uint64_t fan_expected(size_t index)
{
    uint64_t s = 0;
    for (size_t i = 0; i < 10; i++)
        s += calc_expected(index * 10 + i, base);
    return s;
}

typedef struct for_fan {
    crew *pool;
    uint64_t out[64];
    int status[64];
} for_fan;

static void fan_each(void *ctx, size_t lo, size_t hi)
{
    for_fan *ff = ctx;
    for (size_t i = lo; i < hi; i++) {
        inner_arg a = {ff->pool, i};
        ff->status[i] = fan_task(NULL, &a, &ff->out[i]);
    }
}

static void test_inside_tasks(crew *pool)
{
    inner_arg args[40];
    uint64_t res[40];
    crew_task t[40];
    for (size_t i = 0; i < 40; i++) {
        args[i] = (inner_arg){pool, i};
        t[i] = (crew_task){.fn = fan_task, .arg = &args[i], .result = &res[i]};
    }
    ASSERT_OK(crew_run(pool, NULL, t, 40, NULL));
    for (size_t i = 0; i < 40; i++) {
        ASSERT_EQ(t[i].status, 0);
        ASSERT_UEQ(res[i], fan_expected(i));
    }
    for_fan ff = {.pool = pool};
    ASSERT_OK(crew_for(pool, 0, 64, 1, fan_each, &ff));
    for (size_t i = 0; i < 64; i++) {
        ASSERT_EQ(ff.status[i], 0);
        ASSERT_UEQ(ff.out[i], fan_expected(i));
    }
    /* A future whose task submits and waits for futures. */
    inner_arg a = {pool, 99};
    uint64_t r = 0;
    crew_task outer = {.fn = fan_task, .arg = &a, .result = &r};
    crew_future *f;
    ASSERT_OK(crew_submit(pool, NULL, &outer, &f));
    ASSERT_EQ(crew_future_wait(f), 0);
    ASSERT_UEQ(r, fan_expected(99));
    crew_future_free(f);
}

/* A chain: the task at depth d submits depth d - 1 and waits for it. */
typedef struct chain_arg {
    crew *pool;
    unsigned depth;
} chain_arg;

static int chain_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const chain_arg *a = arg;
    if (a->depth == 0) {
        *(uint64_t *)result = 0;
        return 0;
    }
    chain_arg next = {a->pool, a->depth - 1};
    uint64_t r = 0;
    crew_task t = {.fn = chain_task, .arg = &next, .result = &r};
    crew_future *f;
    if (crew_submit(a->pool, NULL, &t, &f) != 0)
        return 1;
    int st = crew_future_wait(f);
    crew_future_free(f);
    *(uint64_t *)result = r + a->depth;
    return st;
}

/* A tree: the task at depth d submits two of depth d - 1. */
static int tree_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const chain_arg *a = arg;
    if (a->depth == 0) {
        *(uint64_t *)result = 1;
        return 0;
    }
    chain_arg next = {a->pool, a->depth - 1};
    uint64_t r[2] = {0, 0};
    crew_task t[2] = {{.fn = tree_task, .arg = &next, .result = &r[0]},
                      {.fn = tree_task, .arg = &next, .result = &r[1]}};
    crew_future *f[2];
    if (crew_submit(a->pool, NULL, &t[0], &f[0]) != 0)
        return 1;
    if (crew_submit(a->pool, NULL, &t[1], &f[1]) != 0)
        return 1;
    int st = crew_future_wait(f[1]) | crew_future_wait(f[0]);
    crew_future_free(f[0]);
    crew_future_free(f[1]);
    *(uint64_t *)result = r[0] + r[1];
    return st;
}

static void test_chains(crew *pool, unsigned chain_depth)
{
    chain_arg a = {pool, chain_depth};
    uint64_t r = 0;
    crew_task t = {.fn = chain_task, .arg = &a, .result = &r};
    crew_future *f;
    ASSERT_OK(crew_submit(pool, NULL, &t, &f));
    ASSERT_EQ(crew_future_wait(f), 0);
    ASSERT_UEQ(r, (uint64_t)chain_depth * (chain_depth + 1) / 2);
    crew_future_free(f);

    /* The same chain started from a crew_run task. */
    r = 0;
    t = (crew_task){.fn = chain_task, .arg = &a, .result = &r};
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    ASSERT_UEQ(r, (uint64_t)chain_depth * (chain_depth + 1) / 2);

    chain_arg ta = {pool, 8};
    r = 0;
    t = (crew_task){.fn = tree_task, .arg = &ta, .result = &r};
    ASSERT_OK(crew_submit(pool, NULL, &t, &f));
    ASSERT_EQ(crew_future_wait(f), 0);
    ASSERT_UEQ(r, 256);
    crew_future_free(f);
}

/* ---- workers = 1 ------------------------------------------------------------ */

static int thread_task(const void *shared, const void *arg, void *result)
{
    (void)arg;
    *(int *)result = pthread_equal(pthread_self(), *(const pthread_t *)shared);
    return 3;
}

static void test_one_worker(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    pthread_t me = pthread_self();
    int on_caller = -1;
    crew_task t = {.fn = thread_task, .result = &on_caller, .status = 12345};
    crew_future *f;
    ASSERT_OK(crew_submit(pool, &me, &t, &f));
    /* The task ran inside crew_submit. */
    ASSERT_EQ(on_caller, 1);
    ASSERT_EQ(t.status, 3);
    ASSERT_EQ(crew_future_done(f), 1);
    ASSERT_EQ(crew_future_wait(f), 3);
    crew_future_free(f);
    test_many_outside(pool);
    test_inside_tasks(pool);
    test_chains(pool, 50);
    crew_close(pool);
}

/* ---- bad arguments --------------------------------------------------------- */

static void test_bad_args(crew *pool)
{
    static char dummy;
    crew_future *const sentinel = (crew_future *)(void *)&dummy;
    crew_future *f = sentinel;
    uint64_t r;
    calc_arg a = {1, 0};
    crew_task ok = {.fn = calc_task, .arg = &a, .result = &r};
    crew_task nofn = {.fn = NULL, .arg = &a, .result = &r, .status = 12345};
    ASSERT_EQ(crew_submit(NULL, &base, &ok, &f), CREW_EINVAL);
    ASSERT_EQ(crew_submit(pool, &base, NULL, &f), CREW_EINVAL);
    ASSERT_EQ(crew_submit(pool, &base, &nofn, &f), CREW_EINVAL);
    ASSERT_EQ(crew_submit(pool, &base, &ok, NULL), CREW_EINVAL);
    ASSERT_PTR_EQ(f, sentinel);
    ASSERT_EQ(nofn.status, 12345);
    ASSERT_EQ(crew_future_wait(NULL), CREW_EINVAL);
    crew_future_free(NULL);
    /* A task's negative return is reserved for crew: status CREW_EINVAL. */
    calc_arg neg = {1, -EPIPE};
    crew_task t = {.fn = calc_task, .arg = &neg, .result = &r, .status = 12345};
    ASSERT_OK(crew_submit(pool, &base, &t, &f));
    ASSERT_EQ(crew_future_wait(f), CREW_EINVAL);
    ASSERT_EQ(t.status, CREW_EINVAL);
    crew_future_free(f);
}

/* ---- at most N at once, also after a resize --------------------------------- */

/* Failures that let the rest of the test go on; main fails at the end. */
static int soft_failures;

typedef struct overlap {
    atomic_int running, most;
    int limit;
} overlap;

static int overlap_task(const void *shared, const void *arg, void *result)
{
    (void)arg;
    (void)result;
    overlap *o = (overlap *)shared;
    int now = atomic_fetch_add(&o->running, 1) + 1;
    double until = test_now_s() + 0.05;
    do {
        now = atomic_load(&o->running);
        test_raise_max(&o->most, now);
        sched_yield();
    } while (now <= o->limit && test_now_s() < until);
    atomic_fetch_sub(&o->running, 1);
    return 0;
}

static int overlap_futures(crew *pool, int limit)
{
    overlap o = {.limit = limit};
    crew_task t[8];
    crew_future *f[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (crew_task){.fn = overlap_task};
        ASSERT_OK(crew_submit(pool, &o, &t[i], &f[i]));
    }
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(crew_future_wait(f[i]), 0);
        crew_future_free(f[i]);
    }
    return atomic_load(&o.most);
}

static void test_n_at_a_time(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 3}));
    int most = overlap_futures(pool, 3);
    if (most > 3) {
        fprintf(stderr, "%s:%d: workers = 3: %d futures ran at once\n", __FILE__, __LINE__, most);
        soft_failures++;
    }
    ASSERT_OK(crew_resize(pool, 6));
    ASSERT_OK(crew_resize(pool, 2));
    most = overlap_futures(pool, 2);
    if (most > 2) {
        fprintf(stderr, "%s:%d: resized 6 -> 2: %d futures ran at once\n", __FILE__, __LINE__,
                most);
        soft_failures++;
    }
    crew_close(pool);
}

int main(void)
{
    test_watchdog_start(&dog, TEST_SANITIZED ? 120 : 30, "start", dog_hung);

    step("workers = 1");
    test_one_worker();
    step("bad arguments");
    {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));
        test_bad_args(pool);
        crew_close(pool);
    }
    step("free before the task ends (workers = 1)");
    test_free_early(1);
    step("free before the task ends (workers = 2)");
    test_free_early(2);
    step("free before the task ends (workers = 4)");
    test_free_early(4);
    step("close, then free");
    test_close_then_free();
    static const unsigned sizes[] = {2, 3, 4};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        step("many futures from outside");
        test_many_outside(pool);
        step("done() polling");
        test_done_polling(pool);
        step("two waiters");
        test_two_waiters(pool);
        step("futures inside tasks");
        test_inside_tasks(pool);
        crew_close(pool);
    }
    step("N at a time");
    test_n_at_a_time();
    /* Last, so that a deadlock here leaves the checks above reported. */
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        step("a chain of 20 futures, and a tree of 511, waited for inside tasks");
        test_chains(pool, 20);
        step("a chain of 200 futures, and a tree of 511, waited for inside tasks");
        test_chains(pool, 200);
        crew_close(pool);
    }

    test_watchdog_stop(&dog);
    if (soft_failures)
        return 1;
    printf("test_future: ok\n");
    return 0;
}
