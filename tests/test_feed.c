/*
 * test_feed.c -- crew_run_feed on thread and process pools: every task
 * pulled is run once and handed back once, with the right result; windows
 * (CREW_EAGAIN) bound what is in flight; errors and stops end the feed;
 * resizing while a feed runs changes who takes part.
 */
#include <signal.h>

#include "crew.h"
#include "test.h"

#define MAX_TASKS 20000

typedef struct job {
    crew_task task;
    uint64_t in, out;
} job;

typedef struct feed_ctx {
    job *jobs;
    size_t n, given, done;
    size_t window;          /* 0: none */
    size_t in_flight, max_in_flight;
    size_t fail_at;         /* task whose input makes it fail (SIZE_MAX: none) */
    size_t crash_at;        /* task whose input makes it crash (SIZE_MAX: none) */
    int error_at;           /* next returns -error_at's code after this many (0: never) */
    size_t eagain_empty;    /* return EAGAIN with nothing in flight at this task */
    unsigned char *seen;
    crew *pool;
    size_t resize_at;
    unsigned resize_to;
} feed_ctx;

static int square(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t x = *(const uint64_t *)arg;
    if (x == 777777)
        return 5;
    if (x == 888888)
        raise(SIGSEGV);
    *(uint64_t *)result = x * x + 1;
    return 0;
}

static int next(void *ctx, crew_task **t)
{
    feed_ctx *f = ctx;
    if (f->error_at && f->given == (size_t)f->error_at)
        return CREW_EMAGIC;
    if (f->given == f->eagain_empty && f->in_flight == 0)
        return CREW_EAGAIN;
    if (f->given == f->n)
        return 0;
    if (f->window && f->in_flight >= f->window)
        return CREW_EAGAIN;
    job *j = &f->jobs[f->given];
    j->in = f->given == f->fail_at ? 777777 : f->given == f->crash_at ? 888888 : f->given;
    j->out = 0;
    j->task = (crew_task){.fn = square, .arg = &j->in, .arg_size = sizeof j->in,
                          .result = &j->out, .result_size = sizeof j->out};
    *t = &j->task;
    f->given++;
    if (++f->in_flight > f->max_in_flight)
        f->max_in_flight = f->in_flight;
    return 1;
}

static void done(void *ctx, crew_task *t)
{
    feed_ctx *f = ctx;
    job *j = (job *)t;
    size_t i = (size_t)(j - f->jobs);
    ASSERT(i < f->given);
    ASSERT_EQ(f->seen[i], 0);
    f->seen[i] = 1;
    f->done++;
    f->in_flight--;
    if (f->pool && f->done == f->resize_at)
        ASSERT_OK(crew_resize(f->pool, f->resize_to));
}

static feed_ctx make(size_t n)
{
    feed_ctx f = {.n = n, .fail_at = SIZE_MAX, .crash_at = SIZE_MAX, .eagain_empty = SIZE_MAX};
    f.jobs = calloc(n ? n : 1, sizeof *f.jobs);
    f.seen = calloc(n ? n : 1, 1);
    ASSERT(f.jobs && f.seen);
    return f;
}

static void check_all(const feed_ctx *f)
{
    ASSERT_EQ(f->done, f->given);
    for (size_t i = 0; i < f->given; i++) {
        ASSERT_EQ(f->seen[i], 1);
        const job *j = &f->jobs[i];
        if (i == f->fail_at) {
            ASSERT_EQ(j->task.status, 5);
        } else if (i == f->crash_at) {
            ASSERT_EQ(j->task.status, CREW_ECRASHED);
            ASSERT_EQ(j->task.detail, SIGSEGV);
            ASSERT_EQ(j->task.runs, 2);
        } else if (j->task.status == 0) {
            ASSERT_UEQ(j->out, (uint64_t)i * i + 1);
            ASSERT_EQ(j->task.runs, 1);
        }
    }
}

static void release(feed_ctx *f)
{
    free(f->jobs);
    free(f->seen);
}

static crew *open_pool(int isolation, unsigned workers)
{
    crew *pool;
    crew_config cfg = {.workers = workers, .isolation = isolation};
    ASSERT_OK(crew_open(&pool, &cfg));
    return pool;
}

static void test_all_run(int iso)
{
    size_t n = TEST_SANITIZED ? 3000 : MAX_TASKS;
    for (unsigned w = 1; w <= 3; w++) {
        crew *pool = open_pool(iso, w);
        feed_ctx f = make(n);
        crew_feed feed = {.next = next, .done = done, .ctx = &f};
        ASSERT_OK(crew_run_feed(pool, NULL, &feed));
        ASSERT_EQ(f.given, n);
        check_all(&f);
        for (size_t i = 0; i < n; i++)
            ASSERT_EQ(f.jobs[i].task.status, 0);
        release(&f);
        /* an empty feed */
        f = make(0);
        ASSERT_OK(crew_run_feed(pool, NULL, &feed));
        ASSERT_EQ(f.done, 0);
        release(&f);
        crew_close(pool);
    }
}

static void test_window(int iso)
{
    crew *pool = open_pool(iso, 3);
    for (size_t window = 1; window <= 8; window *= 2) {
        feed_ctx f = make(2000);
        f.window = window;
        crew_feed feed = {.next = next, .done = done, .ctx = &f};
        ASSERT_OK(crew_run_feed(pool, NULL, &feed));
        check_all(&f);
        ASSERT_EQ(f.given, 2000);
        ASSERT_LE(f.max_in_flight, window);
        release(&f);
    }
    crew_close(pool);
}

static void test_errors(int iso)
{
    crew *pool = open_pool(iso, 2);
    feed_ctx f = make(100);
    crew_feed feed = {.next = next, .done = done, .ctx = &f};
    ASSERT_EQ(crew_run_feed(NULL, NULL, &feed), CREW_EINVAL);
    ASSERT_EQ(crew_run_feed(pool, NULL, NULL), CREW_EINVAL);
    crew_feed nodone = {.next = next, .ctx = &f};
    ASSERT_EQ(crew_run_feed(pool, NULL, &nodone), CREW_EINVAL);
    ASSERT_EQ(f.given, 0);

    /* a failing task: EFAILED, the others still run */
    f.fail_at = 40;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(f.given, 100);
    check_all(&f);
    release(&f);

    /* stop_on_error: no task is pulled after the failure is seen */
    f = make(5000);
    f.fail_at = 10;
    f.window = 4;
    feed.ctx = &f;
    feed.stop_on_error = 1;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_LE(f.given, 10 + 1 + 4);
    check_all(&f);
    feed.stop_on_error = 0;
    release(&f);

    /* next's own error ends the run and is returned; tasks given are done */
    f = make(1000);
    f.error_at = 300;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EMAGIC);
    ASSERT_EQ(f.given, 300);
    check_all(&f);
    release(&f);

    /* EAGAIN with nothing in flight is a bug of the feed */
    f = make(10);
    f.eagain_empty = 0;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EINVAL);
    ASSERT_EQ(f.given, 0);
    release(&f);
    crew_close(pool);
}

/* A task without fn is handed back with CREW_EINVAL, and the run goes on. */
static crew_task nofn_task;
static int nofn_state;
static int nofn_next(void *ctx, crew_task **t)
{
    (void)ctx;
    if (nofn_state++)
        return 0;
    nofn_task = (crew_task){0};
    *t = &nofn_task;
    return 1;
}
static void nofn_done(void *ctx, crew_task *t)
{
    (void)ctx;
    ASSERT_PTR_EQ(t, &nofn_task);
    ASSERT_EQ(t->status, CREW_EINVAL);
    nofn_state = 100;
}

static void test_no_fn(int iso)
{
    crew *pool = open_pool(iso, 2);
    nofn_state = 0;
    crew_feed feed = {.next = nofn_next, .done = nofn_done};
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(nofn_state, 101);
    crew_close(pool);
}

/* Resizing from done while the feed runs: all tasks still run once, and
 * after growing, more than one worker takes part. */
static void test_resize(int iso)
{
    crew *pool = open_pool(iso, 1);
    feed_ctx f = make(TEST_SANITIZED ? 3000 : 20000);
    f.pool = pool;
    f.resize_at = 100;
    f.resize_to = 3;
    crew_feed feed = {.next = next, .done = done, .ctx = &f};
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    check_all(&f);
    ASSERT_EQ(crew_workers(pool), 3);
    release(&f);
    f = make(5000);
    f.pool = pool;
    f.resize_at = 50;
    f.resize_to = 1;
    feed.ctx = &f;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    check_all(&f);
    release(&f);
    crew_close(pool);
}

/* Process pools: a crash costs its task; retries re-run it. */
static void test_crash(void)
{
    crew *pool;
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES, .retries = 1};
    ASSERT_OK(crew_open(&pool, &cfg));
    feed_ctx f = make(300);
    crew_feed feed = {.next = next, .done = done, .ctx = &f};
    f.crash_at = 123;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(f.given, 300);
    check_all(&f);
    release(&f);
    f = make(300);
    feed.ctx = &f;
    f.window = 16;
    f.fail_at = 7; /* returns 5 */
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    check_all(&f);
    release(&f);
    crew_close(pool);
}

/* A feed called from a task on a worker that crew_resize has just retired
 * still runs all its tasks (the call's own participant never leaves). */
static crew *nested_pool;
static atomic_int shrunk;
static int nested_outer(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    while (!atomic_load(&shrunk))
        usleep(1000);
    feed_ctx f = make(50);
    crew_feed feed = {.next = next, .done = done, .ctx = &f};
    ASSERT_OK(crew_run_feed(nested_pool, NULL, &feed));
    ASSERT_EQ(f.given, 50);
    check_all(&f);
    release(&f);
    *(int *)result = 1;
    return 0;
}

static void *shrink_soon(void *arg)
{
    (void)arg;
    usleep(50000);
    ASSERT_OK(crew_resize(nested_pool, 1));
    atomic_store(&shrunk, 1);
    return NULL;
}

static void test_nested_retired(void)
{
    nested_pool = open_pool(CREW_THREADS, 2);
    int ran[2] = {0, 0};
    crew_task t[2] = {{.fn = nested_outer, .result = &ran[0]}, {.fn = nested_outer, .result = &ran[1]}};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, shrink_soon, NULL), 0);
    ASSERT_OK(crew_run(nested_pool, NULL, t, 2, NULL));
    pthread_join(th, NULL);
    ASSERT_EQ(ran[0] + ran[1], 2);
    crew_close(nested_pool);
}

int main(void)
{
    test_nested_retired();
    for (int iso = CREW_THREADS; iso <= CREW_PROCESSES; iso++) {
        test_all_run(iso);
        test_window(iso);
        test_errors(iso);
        test_no_fn(iso);
        test_resize(iso);
    }
    test_crash();
    puts("test_feed: ok");
    return 0;
}
