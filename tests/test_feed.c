/*
 * test_feed.c -- crew_run_feed on thread and process pools: every task
 * pulled is run once and handed back once, with the right result; windows
 * (CREW_EAGAIN) bound what is in flight; errors and stops end the feed;
 * resizing while a feed runs changes who takes part; odd answers from next
 * (1 without a task, 2, EAGAIN with nothing in flight) end the run with
 * CREW_EINVAL; a feed inside a process worker runs inline.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

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
    size_t neg_at;          /* task whose input makes it return a negative value */
    size_t nofn_at;         /* task given without fn */
    size_t bad_at;          /* next returns bad_rc here (1: without a task) */
    int bad_rc;
    unsigned sleep_us;      /* every task sleeps this long first */
    bool hold_first;        /* the first task waits for next's error (error_at) */
    int stop_on_error;      /* the feed's: after a failure next is not called */
    bool failed_done;       /* a failed task was handed back */
    size_t called_after_stop;
    bool eagain_pending;    /* next said EAGAIN and no done came since */
    size_t eagain_again;    /* next called again in that state */
    pthread_t caller;       /* the thread that called crew_run_feed */
    bool shrunk;            /* resized down to one worker */
    size_t foreign;         /* next called after that from another thread */
    unsigned char *seen;
    crew *pool;
    size_t resize_at;
    unsigned resize_to;
} feed_ctx;

/* Made by next when it returns its error (hold_first); set before any
 * pool forks. */
static char marker[600];

static int square(const void *shared, const void *arg, void *result)
{
    (void)shared;
    uint64_t x = *(const uint64_t *)arg;
    if (x >> 32)
        usleep((useconds_t)(x >> 32));
    if (x & 0x80000000u)
        for (int i = 0; i < 100000 && access(marker, F_OK) != 0; i++)
            usleep(100);
    x &= 0x7fffffffu;
    if (x == 666666)
        return -3;
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
    if (f->shrunk && !pthread_equal(pthread_self(), f->caller))
        f->foreign++;
    if (f->stop_on_error && f->failed_done)
        f->called_after_stop++;
    if (f->error_at && f->given == (size_t)f->error_at) {
        if (f->hold_first)
            fclose(fopen(marker, "w"));
        return CREW_EMAGIC;
    }
    if (f->bad_rc && f->given == f->bad_at) {
        *t = f->bad_rc == 1 ? NULL : &f->jobs[f->given].task;
        return f->bad_rc;
    }
    if (f->given == f->eagain_empty && f->in_flight == 0)
        return CREW_EAGAIN;
    if (f->given == f->n)
        return 0;
    if (f->window && f->in_flight >= f->window) {
        if (f->eagain_pending)
            f->eagain_again++;
        f->eagain_pending = true;
        return CREW_EAGAIN;
    }
    job *j = &f->jobs[f->given];
    j->in = f->given == f->fail_at    ? 777777
            : f->given == f->crash_at ? 888888
            : f->given == f->neg_at   ? 666666
                                      : f->given;
    j->in |= (uint64_t)f->sleep_us << 32;
    if (f->hold_first && f->given == 0)
        j->in |= 0x80000000u;
    j->out = 0;
    /* outcomes left from an earlier use of the task: crew resets them */
    j->task = (crew_task){.fn = f->given == f->nofn_at ? NULL : square, .arg = &j->in,
                          .arg_size = sizeof j->in, .result = &j->out,
                          .result_size = sizeof j->out, .status = 77, .detail = 9, .runs = 55};
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
    f->eagain_pending = false;
    if (t->status != 0)
        f->failed_done = true;
    if (f->pool && f->done == f->resize_at) {
        ASSERT_OK(crew_resize(f->pool, f->resize_to));
        f->shrunk = f->resize_to == 1;
    }
}

static feed_ctx make(size_t n)
{
    feed_ctx f = {.n = n, .fail_at = SIZE_MAX, .crash_at = SIZE_MAX, .eagain_empty = SIZE_MAX,
                  .neg_at = SIZE_MAX, .nofn_at = SIZE_MAX, .caller = pthread_self()};
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
        } else if (i == f->neg_at) {
            ASSERT_EQ(j->task.status, CREW_EINVAL);
            ASSERT_EQ(j->task.runs, 1);
        } else if (i == f->nofn_at) {
            ASSERT_EQ(j->task.status, CREW_EINVAL);
            ASSERT_EQ(j->task.runs, 0);
        } else if (j->task.status == 0) {
            ASSERT_UEQ(j->out, (uint64_t)i * i + 1);
            ASSERT_EQ(j->task.runs, 1);
            ASSERT_EQ(j->task.detail, 0);
        } else {
            /* not started after a stop */
            ASSERT_EQ(j->task.status, CREW_ECANCELED);
            ASSERT_EQ(j->task.runs, 0);
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
    /* done came (100); the feed's end was asked for after it (101), or,
     * with two workers, by the other one while the task was out */
    ASSERT(nofn_state == 100 || nofn_state == 101);
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
    /* tasks of half a millisecond: all three take part by then */
    f = make(300);
    f.pool = pool;
    f.resize_at = 50;
    f.resize_to = 1;
    f.sleep_us = 500;
    feed.ctx = &f;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    check_all(&f);
    /* the retired workers took no task after the resize */
    ASSERT(f.shrunk);
    ASSERT_EQ(f.foreign, 0);
    release(&f);
    crew_close(pool);
}

/* What a feed says back or gives that is not a plain task: a negative
 * return from a task, a task without fn, next returning 1 without a task
 * or a value it has no meaning for, EAGAIN once the tasks in flight are
 * done; and outcomes reset, stops seen at once, next not called again
 * after EAGAIN before a done. */
static void test_odd(int iso)
{
    crew *pool = open_pool(iso, 2);
    crew_feed feed = {.next = next, .done = done};

    /* a negative return is CREW_EINVAL; a task without fn too, not run */
    feed_ctx f = make(200);
    f.neg_at = 17;
    f.nofn_at = 30;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(f.given, 200);
    check_all(&f);
    release(&f);

    /* next returning 1 without a task, or 2: the feed's bug, CREW_EINVAL;
     * what was given is handed back */
    for (int rc = 1; rc <= 2; rc++) {
        f = make(100);
        f.bad_at = 40;
        f.bad_rc = rc;
        feed.ctx = &f;
        ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EINVAL);
        ASSERT_EQ(f.given, 40);
        check_all(&f);
        release(&f);
    }

    /* next's error stops the run: tasks queued and not started are
     * cancelled (process pools queue ahead; the first task holds the one
     * worker until next has said its error; in a thread pool the one
     * worker is the caller, which calls next only between tasks) */
    crew_close(pool);
    pool = open_pool(iso, 1);
    f = make(100);
    f.error_at = 10;
    f.hold_first = iso == CREW_PROCESSES;
    f.sleep_us = 2000;
    unlink(marker);
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EMAGIC);
    ASSERT_EQ(f.given, 10);
    check_all(&f);
    size_t cancelled = 0;
    for (size_t i = 0; i < f.given; i++)
        cancelled += f.jobs[i].task.status == CREW_ECANCELED;
    if (iso == CREW_PROCESSES)
        ASSERT_GE(cancelled, 1);
    else
        ASSERT_EQ(cancelled, 0);
    unlink(marker);
    release(&f);
    crew_close(pool);
    pool = open_pool(iso, 2);

    /* EAGAIN with nothing in flight, after tasks came and went */
    f = make(100);
    f.window = 1;
    f.eagain_empty = 5;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EINVAL);
    ASSERT_EQ(f.given, 5);
    check_all(&f);
    release(&f);

    /* A window of one with tasks of 30 ms: EAGAIN between them, and every
     * task runs once (that next is asked again without a done is
     * test_arrival's). */
    f = make(6);
    f.window = 1;
    f.sleep_us = 30000;
    feed.ctx = &f;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    check_all(&f);
    release(&f);
    crew_close(pool);

    /* One worker, stop_on_error: next is not called once a failure is
     * handed back, and in a process pool every task queued behind the
     * failure is cancelled, not run (the worker stops itself); the ring
     * is full, so a task also waits to be queued. */
    pool = open_pool(iso, 1);
    feed.stop_on_error = 1;
    for (int k = 0; k < 2; k++) {
        f = make(TEST_SANITIZED ? 3000 : 12000);
        if (k == 0)
            f.fail_at = 0;
        else
            f.nofn_at = 0;
        f.stop_on_error = 1;
        feed.ctx = &f;
        ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
        ASSERT_EQ(f.called_after_stop, 0);
        if (iso == CREW_THREADS || k == 1)
            ASSERT_EQ(f.given, 1);
        check_all(&f);
        for (size_t i = 1; i < f.given; i++)
            ASSERT_EQ(f.jobs[i].task.status, CREW_ECANCELED);
        release(&f);
    }
    crew_close(pool);
}

/* Thread pools: a feed grows to N participants, and one waiting after
 * EAGAIN is woken by each done.  Each task waits (at most 10 s, then
 * fails) for what only those give: N tasks running at once; an EAGAIN
 * heard after the task was given. */
static atomic_int crowd_running, crowd_max;
static atomic_size_t crowd_eagains;

typedef struct crowd_job {
    crew_task task;
    size_t want;
    bool by_eagain;
} crowd_job;

typedef struct crowd {
    crowd_job jobs[16];
    size_t n, given, in_flight;
    size_t window; /* 0: none */
} crowd;

static int crowd_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    const crowd_job *j = arg;
    int now = atomic_fetch_add(&crowd_running, 1) + 1;
    int max = atomic_load(&crowd_max);
    while (now > max && !atomic_compare_exchange_weak(&crowd_max, &max, now))
        ;
    int rc = 9;
    for (int i = 0; i < 100000; i++) {
        if (j->by_eagain ? atomic_load(&crowd_eagains) >= j->want
                         : (size_t)atomic_load(&crowd_max) >= j->want) {
            rc = 0;
            break;
        }
        usleep(100);
    }
    atomic_fetch_sub(&crowd_running, 1);
    return rc;
}

static int crowd_next(void *ctx, crew_task **t)
{
    crowd *c = ctx;
    /* EAGAIN first: the last task too waits for one */
    if (c->window && c->in_flight >= c->window) {
        atomic_fetch_add(&crowd_eagains, 1);
        return CREW_EAGAIN;
    }
    if (c->given == c->n)
        return 0;
    crowd_job *j = &c->jobs[c->given++];
    if (c->window) {
        j->by_eagain = true;
        j->want = atomic_load(&crowd_eagains) + 1;
    }
    j->task = (crew_task){.fn = crowd_task, .arg = j};
    c->in_flight++;
    *t = &j->task;
    return 1;
}

static void crowd_done(void *ctx, crew_task *t)
{
    crowd *c = ctx;
    ASSERT_EQ(t->status, 0);
    c->in_flight--;
}

static void test_participants(void)
{
    crew_feed feed = {.next = crowd_next, .done = crowd_done};
    crew *pool = open_pool(CREW_THREADS, 3);
    crowd c = {.n = 12};
    for (size_t i = 0; i < c.n; i++)
        c.jobs[i].want = 3;
    feed.ctx = &c;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    ASSERT_EQ(atomic_load(&crowd_max), 3);
    crew_close(pool);

    pool = open_pool(CREW_THREADS, 2);
    c = (crowd){.n = 6, .window = 1};
    atomic_store(&crowd_eagains, 0);
    feed.ctx = &c;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    ASSERT_EQ(c.given, 6);
    crew_close(pool);
}

/* A feed run inside a process pool's worker runs there, inline, with the
 * same outcomes as in the caller. */
typedef struct inner_arg {
    crew *pool;
} inner_arg;

static int inner_feeds(const void *shared, const void *arg, void *result)
{
    (void)shared;
    crew *pool = ((const inner_arg *)arg)->pool;
    crew_feed feed = {.next = next, .done = done};
    /* failures of every kind, no stop */
    feed_ctx f = make(40);
    f.fail_at = 5;
    f.neg_at = 7;
    f.nofn_at = 9;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(f.given, 40);
    check_all(&f);
    release(&f);
    /* stop_on_error: nothing after the failure */
    f = make(40);
    f.fail_at = 5;
    f.stop_on_error = feed.stop_on_error = 1;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EFAILED);
    ASSERT_EQ(f.given, 6);
    ASSERT_EQ(f.called_after_stop, 0);
    check_all(&f);
    release(&f);
    feed.stop_on_error = 0;
    /* EAGAIN (nothing is ever in flight here), next without a task */
    f = make(40);
    f.eagain_empty = 3;
    feed.ctx = &f;
    ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EINVAL);
    ASSERT_EQ(f.given, 3);
    release(&f);
    for (int rc = 1; rc <= 2; rc++) {
        f = make(40);
        f.bad_at = 4;
        f.bad_rc = rc;
        feed.ctx = &f;
        ASSERT_EQ(crew_run_feed(pool, NULL, &feed), CREW_EINVAL);
        ASSERT_EQ(f.given, 4);
        check_all(&f);
        release(&f);
    }
    /* all well */
    f = make(40);
    feed.ctx = &f;
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    ASSERT_EQ(f.given, 40);
    check_all(&f);
    release(&f);
    *(int *)result = 1;
    return 0;
}

static void test_inner(void)
{
    crew *pool = open_pool(CREW_PROCESSES, 2);
    inner_arg a = {pool};
    int ran = 0;
    crew_task t = {.fn = inner_feeds, .arg = &a, .arg_size = sizeof a, .result = &ran,
                   .result_size = sizeof ran};
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    ASSERT_EQ(t.status, 0);
    ASSERT_EQ(ran, 1);
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
    crew_task t[2] = {{.fn = nested_outer, .result = &ran[0]},
                      {.fn = nested_outer, .result = &ran[1]}};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, shrink_soon, NULL), 0);
    ASSERT_OK(crew_run(nested_pool, NULL, t, 2, NULL));
    pthread_join(th, NULL);
    ASSERT_EQ(ran[0] + ran[1], 2);
    crew_close(nested_pool);
}

/* Process pools, stop_on_error: the run stops at the failure in task
 * order.  Every task before the failed one runs (none is cancelled because
 * another worker saw the failure first); tasks after it may run or not. */
static int fail_at_50(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    uint64_t i = *(const uint64_t *)arg;
    for (volatile int spin = 0; spin < 2000; spin++)
        ;
    return i == 50 ? 7 : 0;
}

static void test_stop_in_order(void)
{
    crew *pool = open_pool(CREW_PROCESSES, 3);
    enum { N = 400 };
    static uint64_t in[N];
    static crew_task t[N];
    for (int round = 0; round < (TEST_SANITIZED ? 10 : 40); round++) {
        for (int i = 0; i < N; i++) {
            in[i] = (uint64_t)i;
            t[i] = (crew_task){.fn = fail_at_50, .arg = &in[i], .arg_size = sizeof in[i]};
        }
        crew_run_opts o = {.stop_on_error = 1};
        ASSERT_EQ(crew_run(pool, NULL, t, N, &o), CREW_EFAILED);
        for (int i = 0; i < 50; i++)
            ASSERT_EQ(t[i].status, 0);
        ASSERT_EQ(t[50].status, 7);
        for (int i = 51; i < N; i++)
            ASSERT(t[i].status == 0 || t[i].status == CREW_ECANCELED);
    }
    crew_close(pool);
}

/* A feed whose tasks come from elsewhere (here another thread): next
 * says CREW_EAGAIN while a long task runs, a task arrives meanwhile, and
 * it must start before the long one ends -- crew asks next again without
 * waiting for a done.  The long task waits for the other to start (up to
 * 20 s, far beyond the 2 ms crew promises), so the check is an event, not
 * a time.  The flags live in memory mapped before crew_open, which a
 * process pool's workers share. */
typedef struct arrival_shared {
    _Atomic int short_started;
    _Atomic int long_saw_it;
} arrival_shared;

static arrival_shared *arr; /* MAP_SHARED, before crew_open */

typedef struct arrival {
    pthread_mutex_t mu;
    bool ready;            /* the second task may be given */
    int given, done;
    crew_task tasks[2];
    int which[2];
} arrival;

static int arrival_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    if (*(const int *)arg == 0) {
        for (int i = 0; i < 20000 && !atomic_load(&arr->short_started); i++)
            usleep(1000);
        atomic_store(&arr->long_saw_it, atomic_load(&arr->short_started));
    } else {
        atomic_store(&arr->short_started, 1);
    }
    return 0;
}

static int arrival_next(void *ctx, crew_task **t)
{
    arrival *a = ctx;
    pthread_mutex_lock(&a->mu);
    int rc;
    if (a->given == 2)
        rc = 0;
    else if (a->given == 1 && !a->ready)
        rc = CREW_EAGAIN;
    else {
        *t = &a->tasks[a->given++];
        rc = 1;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void arrival_done(void *ctx, crew_task *t)
{
    arrival *a = ctx;
    ASSERT_EQ(t->status, 0);
    a->done++;
}

static void *arrive_later(void *arg)
{
    arrival *a = arg;
    usleep(20000);
    pthread_mutex_lock(&a->mu);
    a->ready = true;
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void test_arrival(int iso)
{
    atomic_store(&arr->short_started, 0);
    atomic_store(&arr->long_saw_it, 0);
    crew *pool = open_pool(iso, 2);
    arrival a = {.mu = PTHREAD_MUTEX_INITIALIZER, .which = {0, 1}};
    for (int i = 0; i < 2; i++)
        a.tasks[i] = (crew_task){.fn = arrival_task, .arg = &a.which[i],
                                 .arg_size = sizeof a.which[i]};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, arrive_later, &a), 0);
    crew_feed feed = {.next = arrival_next, .done = arrival_done, .ctx = &a};
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    pthread_join(th, NULL);
    ASSERT_EQ(a.done, 2);
    ASSERT_EQ(atomic_load(&arr->long_saw_it), 1);
    crew_close(pool);
}

int main(void)
{
    arr = mmap(NULL, sizeof *arr, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(arr != MAP_FAILED);
    test_stop_in_order();
    const char *tmp = getenv("TMPDIR");
    snprintf(marker, sizeof marker, "%s/crew-test-feed.%d", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    test_nested_retired();
    for (int iso = CREW_THREADS; iso <= CREW_PROCESSES; iso++) {
        test_all_run(iso);
        test_window(iso);
        test_errors(iso);
        test_no_fn(iso);
        test_resize(iso);
        test_odd(iso);
        test_arrival(iso);
    }
    test_participants();
    test_inner();
    test_crash();
    puts("test_feed: ok");
    return 0;
}
