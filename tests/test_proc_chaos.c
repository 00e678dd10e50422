/*
 * Description: a process pool survives tasks that crash, abort, exit, hang
 * and leak.  Among 10,000 tasks on 2 workers, a seeded random 1% segfault,
 * 0.5% abort, 0.5% exit(3), 0.2% loop forever and 0.2% allocate without
 * bound: each of those gets exactly the status that says how it ended,
 * every other task its correct result, each task runs once, and the run
 * ends within a bound computed from the hanging tasks (3,000 tasks under
 * the sanitizers, every kind still there).  Retries re-run tasks that
 * crashed or timed out, and only those, in crew_run, crew_for and
 * crew_reduce, and not once stop_on_error has stopped the run.  After a
 * range fails, crew_for starts no more ranges and returns the first
 * failure.  A timeout stops a task neither early nor late, the memory
 * limit applies to what one task adds and is enforced also without a
 * timeout, and a stack overflow is a crash.
 */
#include "proc_util.h"

/*
 * 0.2 s; 0.4 s under the sanitizers, where a task's exit() runs
 * LeakSanitizer's check in its worker and every page a task touches costs
 * more, so that on a loaded machine the tasks that must not time out
 * (those that exit, those that leak) are still done well before it.
 */
#define TIMEOUT (TEST_SANITIZED ? 0.4 : 0.2)
/* Small, so that a task leaking memory reaches it long before the timeout
 * even where fresh pages come slowly and the leaking worker gets a fraction
 * of a CPU (a loaded machine, a VM): 40 MiB/s is enough.  Well-behaved
 * tasks here allocate nothing. */
#define CHAOS_MEM_LIMIT ((size_t)8 << 20)
#define MEM_LIMIT ((size_t)64 << 20)
#define WORKERS 2
#define SEED 20240611u
#define UNTOUCHED 0x5eed5eed5eed5eedull

static test_watchdog wd;

/* What a correct task computes: enough work that tasks are not free. */
static uint64_t value_of(uint64_t i)
{
    uint64_t h = i ^ SEED;
    for (int k = 0; k < 64; k++)
        h = test_mix(h + (uint64_t)k);
    return h;
}

/* ---- chaos ------------------------------------------------------------------- */

enum { K_OK, K_SEGV, K_ABORT, K_EXIT, K_LOOP, K_HOG, K_KINDS };
static const char *const kind_name[K_KINDS] = {"ok", "segv", "abort", "exit", "loop", "hog"};

/* Per mille: 10 segv, 5 abort, 5 exit, 2 loop, 2 hog. */
static int kind_of(size_t i)
{
    unsigned r = (unsigned)(test_mix(SEED + i * 0x9E3779B97F4A7C15ull) % 1000);
    return r < 10 ? K_SEGV : r < 15 ? K_ABORT : r < 20 ? K_EXIT : r < 22 ? K_LOOP
         : r < 24 ? K_HOG : K_OK;
}

typedef struct chaos_arg {
    uint32_t kind;
    uint64_t index;
} chaos_arg;

static int chaos_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const chaos_arg *a = arg;
    switch (a->kind) {
    case K_SEGV:
        test_die_segv();
        return 100; /* the fault did not happen */
    case K_ABORT:
        abort();
    case K_EXIT:
        exit(3);
    case K_LOOP:
        test_spin_forever();
    case K_HOG:
        test_hog_forever();
    }
    *(uint64_t *)result = value_of(a->index);
    return 0;
}

typedef struct chaos_seen {
    pthread_t caller;
    unsigned *done_calls;
    size_t n, wrong_thread, progress_calls, last_done, last_failed, final_calls;
} chaos_seen;

static void chaos_on_done(void *ctx, size_t i)
{
    chaos_seen *s = ctx;
    if (i < s->n)
        s->done_calls[i]++;
    if (!pthread_equal(pthread_self(), s->caller))
        s->wrong_thread++;
}

static void chaos_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    chaos_seen *s = ctx;
    (void)total;
    s->progress_calls++;
    s->last_done = done;
    s->last_failed = failed;
    s->final_calls += done == total;
}

static void test_chaos(void)
{
    const size_t n = TEST_SANITIZED ? 3000 : 10000;
    size_t count[K_KINDS] = {0};
    for (size_t i = 0; i < n; i++)
        count[kind_of(i)]++;
    for (int k = 0; k < K_KINDS; k++) /* the seed was chosen so; a new one must too */
        if (count[k] == 0)
            TEST_FAIL_("seed %u gives no task of kind %s among %zu", SEED, kind_name[k], n);
    size_t failures = n - count[K_OK];

    chaos_arg *args = calloc(n, sizeof *args);
    uint64_t *results = calloc(n, sizeof *results);
    crew_task *tasks = calloc(n, sizeof *tasks);
    chaos_seen seen = {.caller = pthread_self(), .n = n};
    seen.done_calls = calloc(n, sizeof *seen.done_calls);
    ASSERT(args && results && tasks && seen.done_calls);
    for (size_t i = 0; i < n; i++) {
        args[i] = (chaos_arg){(uint32_t)kind_of(i), i};
        results[i] = UNTOUCHED;
        tasks[i] = (crew_task){.fn = chaos_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &results[i], .result_size = sizeof results[i],
                               .status = 12345, .detail = 999, .runs = 77};
    }

    test_watchdog_step(&wd, "chaos: crew_open");
    crew *pool = test_proc_pool(WORKERS, TIMEOUT, CHAOS_MEM_LIMIT, 0);
    test_watchdog_step(&wd, "chaos: crew_run");
    crew_run_opts opts = {.on_done = chaos_on_done, .progress = chaos_progress, .ctx = &seen};
    double t0 = test_now_s();
    int rc = crew_run(pool, NULL, tasks, n, &opts);
    double elapsed = test_now_s() - t0;
    ASSERT_EQ(rc, CREW_EFAILED);

    /*
     * Every looping task holds a worker for the timeout; the two workers
     * share them, plus one timeout for an uneven split and the supervisor's
     * check period.  Everything else (crashes, respawns, 10,000 normal
     * tasks, hogs reaching 64 MiB) must fit in the margin.
     */
    /* Generous: this catches a run that waits for something that will not
     * come (a hang is the watchdog's), not a slow machine; speed is the
     * benchmarks' business. */
    double margin = TEST_SANITIZED ? 20.0 : 10.0;
    double bound = (double)count[K_LOOP] * (TIMEOUT + 0.02) / WORKERS + TIMEOUT + margin;
    printf("chaos: %zu tasks (%zu segv, %zu abort, %zu exit, %zu loop, %zu hog) in %.2f s "
           "(bound %.2f s)\n",
           n, count[K_SEGV], count[K_ABORT], count[K_EXIT], count[K_LOOP], count[K_HOG], elapsed,
           bound);
    if (elapsed > bound)
        TEST_FAIL_("chaos run took %.2f s, bound %.2f s", elapsed, bound);

    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        const crew_task *t = &tasks[i];
        int kind = kind_of(i), want = 0, want_detail = 0;
        switch (kind) {
        case K_SEGV: want = CREW_ECRASHED; want_detail = SIGSEGV; break;
        case K_ABORT: want = CREW_ECRASHED; want_detail = SIGABRT; break;
        case K_EXIT: want = CREW_EEXITED; want_detail = 3; break;
        case K_LOOP: want = CREW_ETIMEDOUT; break;
        case K_HOG: want = CREW_ENOMEM; break;
        }
        int ok = t->status == want && t->runs == 1 && seen.done_calls[i] == 1;
        if (kind == K_OK || kind == K_SEGV || kind == K_ABORT || kind == K_EXIT)
            ok = ok && t->detail == want_detail;
        /* a result is copied back when the task returned, never after a death */
        ok = ok && results[i] == (kind == K_OK ? value_of(i) : UNTOUCHED);
        if (!ok && bad++ < 10)
            fprintf(stderr, "task %zu (%s): status %d (%s) detail %d runs %u on_done %u, "
                            "result %s\n",
                    i, kind_name[kind], t->status, crew_err_name(t->status), t->detail, t->runs,
                    seen.done_calls[i], results[i] == value_of(i) ? "right" : "wrong");
    }
    if (bad)
        TEST_FAIL_("chaos: %zu of %zu tasks ended wrongly", bad, n);
    ASSERT_EQ(seen.wrong_thread, 0);
    ASSERT_EQ(seen.final_calls, 1);
    ASSERT_EQ(seen.last_done, n);
    ASSERT_EQ(seen.last_failed, failures);

    /*
     * Every failing task cost one worker (its slot records a restart) and
     * every other task was one job.  The supervisor counts the restart
     * just after settling the task, so allow it a moment.
     */
    crew_worker_stats st[WORKERS + 1];
    uint64_t restarts = 0, jobs = 0;
    size_t slots = 0;
    double until = test_now_s() + 2.0;
    for (;;) {
        slots = crew_stats(pool, st, WORKERS + 1);
        restarts = jobs = 0;
        for (size_t i = 0; i < slots && i <= WORKERS; i++) {
            restarts += st[i].restarts;
            jobs += st[i].jobs;
        }
        if (restarts == failures || test_now_s() > until)
            break;
        usleep(1000);
    }
    ASSERT_EQ(slots, WORKERS);
    ASSERT_UEQ(restarts, failures);
    ASSERT_UEQ(jobs, count[K_OK]);
    /* and the dead were replaced */
    ASSERT(pool_wait_pids(pool, WORKERS, 2.0));

    /* The pool still works after all that. */
    for (size_t i = 0; i < 100; i++) {
        args[i].kind = K_OK;
        results[i] = UNTOUCHED;
    }
    test_watchdog_step(&wd, "chaos: run after chaos");
    ASSERT_OK(crew_run(pool, NULL, tasks, 100, NULL));
    for (size_t i = 0; i < 100; i++) {
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_EQ(tasks[i].runs, 1);
        ASSERT_UEQ(results[i], value_of(i));
    }
    test_watchdog_step(&wd, "chaos: crew_close");
    crew_close(pool);
    free(args);
    free(results);
    free(tasks);
    free(seen.done_calls);
}

/* ---- retries ------------------------------------------------------------------ */

enum {
    RT_OK, RT_CRASH_ONCE, RT_CRASH_ALWAYS, RT_ABORT_ONCE, RT_HANG_ONCE, RT_HANG_ALWAYS, RT_EXIT_ONCE,
    RT_HOG_ONCE, RT_MODES
};
static const char *const mode_name[RT_MODES] = {"ok", "crash once", "crash always", "abort once",
                                               "hang once", "hang always", "exit once",
                                               "hog once"};

/* Starts are counted in a writable arena, which workers share with us. */
typedef struct retry_arg {
    _Atomic uint32_t *starts;
    uint32_t mode;
    uint64_t index;
} retry_arg;

static int retry_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const retry_arg *a = arg;
    uint32_t before = atomic_fetch_add(a->starts, 1);
    switch (a->mode) {
    case RT_CRASH_ONCE:
        if (before == 0)
            test_die_segv();
        break;
    case RT_CRASH_ALWAYS:
        test_die_segv();
        return 100;
    case RT_ABORT_ONCE:
        if (before == 0)
            abort();
        break;
    case RT_HANG_ONCE:
        if (before == 0)
            test_spin_forever();
        break;
    case RT_HANG_ALWAYS:
        test_spin_forever();
    case RT_EXIT_ONCE:
        if (before == 0)
            exit(7);
        break;
    case RT_HOG_ONCE:
        if (before == 0)
            test_hog_forever();
        break;
    }
    *(uint64_t *)result = value_of(a->index);
    return 0;
}

typedef struct want {
    int status, detail;
    unsigned runs;
} want;

static want retry_expect(int mode, unsigned retries)
{
    unsigned all = retries + 1;
    switch (mode) {
    case RT_CRASH_ONCE: return retries ? (want){0, 0, 2} : (want){CREW_ECRASHED, SIGSEGV, 1};
    case RT_CRASH_ALWAYS: return (want){CREW_ECRASHED, SIGSEGV, all};
    case RT_ABORT_ONCE: return retries ? (want){0, 0, 2} : (want){CREW_ECRASHED, SIGABRT, 1};
    case RT_HANG_ONCE: return retries ? (want){0, 0, 2} : (want){CREW_ETIMEDOUT, -1, 1};
    case RT_HANG_ALWAYS: return (want){CREW_ETIMEDOUT, -1, all};
    case RT_EXIT_ONCE: return (want){CREW_EEXITED, 7, 1};   /* not retried */
    case RT_HOG_ONCE: return (want){CREW_ENOMEM, -1, 1};    /* not retried */
    default: return (want){0, 0, 1};
    }
}

static void count_done(void *ctx, size_t i)
{
    ((unsigned *)ctx)[i]++;
}

static void retry_round(unsigned retries)
{
    enum { EACH = 2, PLAIN = 300 };
    const size_t n = PLAIN + EACH * (RT_MODES - 1);
    crew *pool = test_proc_pool(WORKERS, TIMEOUT, CHAOS_MEM_LIMIT, retries);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20)); /* after crew_open: workers see it all the same */
    _Atomic uint32_t *starts = CREW_ARENA_PTR(a, _Atomic uint32_t,
                                              CREW_ARENA_ARRAY(a, _Atomic uint32_t, n));
    ASSERT_NOT_NULL(starts);
    retry_arg args[PLAIN + EACH * (RT_MODES - 1)];
    uint64_t results[PLAIN + EACH * (RT_MODES - 1)];
    crew_task tasks[PLAIN + EACH * (RT_MODES - 1)];
    /* the special tasks spread among plain ones */
    for (size_t i = 0; i < n; i++) {
        uint32_t mode = i % 20 == 3 && i / 20 < EACH * (RT_MODES - 1)
                            ? (uint32_t)(1 + (i / 20) % (RT_MODES - 1))
                            : RT_OK;
        args[i] = (retry_arg){&starts[i], mode, i};
        results[i] = UNTOUCHED;
        tasks[i] = (crew_task){.fn = retry_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &results[i], .result_size = sizeof results[i]};
    }
    test_watchdog_step(&wd, retries ? "retries: crew_run" : "no retries: crew_run");
    unsigned done_calls[PLAIN + EACH * (RT_MODES - 1)] = {0};
    crew_run_opts opts = {.on_done = count_done, .ctx = done_calls};
    ASSERT_EQ(crew_run(pool, NULL, tasks, n, &opts), CREW_EFAILED);
    size_t bad = 0, special = 0;
    for (size_t i = 0; i < n; i++) {
        want w = retry_expect((int)args[i].mode, retries);
        const crew_task *t = &tasks[i];
        special += args[i].mode != RT_OK;
        unsigned started = atomic_load(&starts[i]);
        /* on_done once, when the status is final: not for a run that is retried */
        int ok = t->status == w.status && t->runs == w.runs && started == w.runs &&
                 done_calls[i] == 1 &&
                 (w.detail < 0 || t->detail == w.detail) &&
                 results[i] == (w.status == 0 ? value_of(i) : UNTOUCHED);
        if (!ok && bad++ < 10)
            fprintf(stderr, "retries %u, task %zu (%s): status %s detail %d runs %u, started "
                            "%u times; want %s detail %d runs %u\n",
                    retries, i, mode_name[args[i].mode], crew_err_name(t->status), t->detail,
                    t->runs, started, crew_err_name(w.status), w.detail, w.runs);
    }
    ASSERT_EQ(special, EACH * (RT_MODES - 1));
    if (bad)
        TEST_FAIL_("retries %u: %zu tasks ended wrongly", retries, bad);

    /* A crash that a retry makes good is no failure: stop_on_error does
     * not stop the run for it. */
    if (retries) {
        for (size_t i = 0; i < n; i++) {
            args[i].mode = i == 5 ? RT_CRASH_ONCE : RT_OK;
            atomic_store(&starts[i], 0);
        }
        crew_run_opts stop = {.stop_on_error = 1};
        ASSERT_OK(crew_run(pool, NULL, tasks, n, &stop));
        for (size_t i = 0; i < n; i++) {
            ASSERT_EQ(tasks[i].status, 0);
            ASSERT_EQ(tasks[i].runs, i == 5 ? 2 : 1);
            ASSERT_UEQ(results[i], value_of(i));
        }
    }
    crew_arena_close(a);
    crew_close(pool);
}

/* crew_for and crew_reduce retry a range the same way. */
typedef struct range_ctx {
    _Atomic uint32_t *hits;      /* per index */
    _Atomic uint32_t crashed;    /* starts of the range holding `victim` */
    size_t victim;
    int always;                  /* crash on every start, not just the first */
} range_ctx;

static void crashing_body(void *ctx, size_t lo, size_t hi)
{
    range_ctx *c = ctx;
    if (c->victim >= lo && c->victim < hi &&
        (atomic_fetch_add(&c->crashed, 1) == 0 || c->always))
        test_die_segv();
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static void sum_init(void *ctx, void *acc)
{
    (void)ctx;
    *(uint64_t *)acc = 0;
}

static void sum_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    crashing_body(ctx, lo, hi);
    for (size_t i = lo; i < hi; i++)
        *(uint64_t *)acc += i;
}

static void sum_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    *(uint64_t *)acc += *(const uint64_t *)other;
}

static void test_range_retries(void)
{
    enum { N = 20000 };
    static const crew_reducer sum = {sizeof(uint64_t), sum_init, sum_body, sum_combine};
    for (unsigned retries = 0; retries <= 1; retries++) {
        crew *pool = test_proc_pool(WORKERS, 0, 0, retries);
        crew_arena *a;
        ASSERT_OK(crew_arena_create(&a, 1 << 20));
        /* ctx lives in the arena: workers cannot see the caller's later stack */
        range_ctx *c = CREW_ARENA_PTR(a, range_ctx, CREW_ARENA_NEW(a, range_ctx));
        c->hits = CREW_ARENA_PTR(a, _Atomic uint32_t, CREW_ARENA_ARRAY(a, _Atomic uint32_t, N));
        ASSERT(c && c->hits);
        for (int grain = 0; grain <= 100; grain += 100) {
            c->victim = 12345;
            c->always = 0;
            atomic_store(&c->crashed, 0);
            for (size_t i = 0; i < N; i++)
                atomic_store(&c->hits[i], 0);
            test_watchdog_step(&wd, "range retries: crew_for");
            int rc = crew_for(pool, 0, N, (size_t)grain, crashing_body, c);
            if (retries) {
                ASSERT_OK(rc);
                ASSERT_EQ(atomic_load(&c->crashed), 2);
                for (size_t i = 0; i < N; i++)
                    if (atomic_load(&c->hits[i]) != 1)
                        TEST_FAIL_("grain %d: index %zu covered %u times after a retried crash",
                                   grain, i, atomic_load(&c->hits[i]));
            } else {
                ASSERT_EQ(rc, CREW_ECRASHED);
                ASSERT_EQ(atomic_load(&c->crashed), 1);
                ASSERT_EQ(atomic_load(&c->hits[c->victim]), 0);
            }

            /* a range that crashes every time: the failure, *out untouched */
            c->always = 1;
            atomic_store(&c->crashed, 0);
            uint64_t out = UNTOUCHED;
            test_watchdog_step(&wd, "range retries: crew_reduce");
            ASSERT_EQ(crew_reduce(pool, 0, N, (size_t)grain, &sum, c, &out), CREW_ECRASHED);
            ASSERT_EQ(atomic_load(&c->crashed), retries + 1);
            ASSERT_UEQ(out, UNTOUCHED);
            /* and without the victim, the exact sum */
            c->victim = SIZE_MAX;
            ASSERT_OK(crew_reduce(pool, 0, N, (size_t)grain, &sum, c, &out));
            ASSERT_UEQ(out, (uint64_t)N * (N - 1) / 2);
        }
        crew_arena_close(a);
        crew_close(pool);
    }
}

/*
 * After a range fails, crew_for starts no more ranges.  One worker, so
 * range 0, which crashes, runs before any other; and the loop has far
 * more ranges than the ring of work in flight holds, so that most of them
 * could only be handed out after the crash has been settled: they must
 * never start, however fast the replacement worker runs the ones already
 * handed out.
 */
typedef struct stop_ctx {
    _Atomic uint32_t started;
} stop_ctx;

static void fail_first_body(void *ctx, size_t lo, size_t hi)
{
    stop_ctx *c = ctx;
    (void)hi;
    if (lo == 0)
        test_die_segv();
    atomic_fetch_add(&c->started, 1);
}

/*
 * The first failure is the one crew_for returns.  Two ranges, one per
 * worker: range 0 crashes once range 1 has started; range 1 exits only
 * after range 0's worker is gone (reaped by the supervisor, which settles
 * its range in the same step), so its failure comes strictly later.
 */
typedef struct order_ctx {
    _Atomic uint32_t second_started;
    _Atomic int32_t first_pid;
} order_ctx;

static void ordered_failures_body(void *ctx, size_t lo, size_t hi)
{
    order_ctx *c = ctx;
    (void)hi;
    double until = test_now_s() + 10.0;
    if (lo == 0) {
        atomic_store(&c->first_pid, (int32_t)getpid());
        while (!atomic_load(&c->second_started) && test_now_s() < until)
            ;
        test_die_segv();
    }
    atomic_store(&c->second_started, 1);
    pid_t first;
    while (((first = atomic_load(&c->first_pid)) == 0 || kill(first, 0) == 0) &&
           test_now_s() < until)
        usleep(100);
    _exit(3);
}

static void test_range_failure_stops(void)
{
    const size_t n = 200000;
    crew *pool = test_proc_pool(1, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    stop_ctx *c = CREW_ARENA_PTR(a, stop_ctx, CREW_ARENA_NEW(a, stop_ctx));
    ASSERT_NOT_NULL(c);
    test_watchdog_step(&wd, "crew_for stops after a failure");
    ASSERT_EQ(crew_for(pool, 0, n, 1, fail_first_body, c), CREW_ECRASHED);
    if (atomic_load(&c->started) >= n / 2)
        TEST_FAIL_("crew_for went on after a range crashed: %u of %zu ranges started",
                   atomic_load(&c->started), n);
    crew_close(pool);

    /* a fresh pool: its first call hands range 0 out first */
    pool = test_proc_pool(WORKERS, 0, 0, 0);
    order_ctx *o = CREW_ARENA_PTR(a, order_ctx, CREW_ARENA_NEW(a, order_ctx));
    ASSERT_NOT_NULL(o);
    test_watchdog_step(&wd, "crew_for returns the first failure");
    ASSERT_EQ(crew_for(pool, 0, 2, 1, ordered_failures_body, o), CREW_ECRASHED);
    ASSERT_EQ(atomic_load(&o->second_started), 1);
    crew_close(pool);
    crew_arena_close(a);
}

/*
 * Once stop_on_error has stopped a run, a task that crashes is not run
 * again, retries or not: its crash is its final status.  Task 0 fails
 * while task 1 runs; task 1 crashes only after on_done(0), which comes
 * when the run has stopped.
 */
typedef struct late_crash {
    _Atomic uint32_t second_started, first_done;
} late_crash;

static int late_crash_task(const void *shared, const void *arg, void *result)
{
    late_crash *l = (late_crash *)(uintptr_t)shared;
    (void)result;
    double until = test_now_s() + 10.0;
    if (*(const int *)arg == 0) {
        while (!atomic_load(&l->second_started) && test_now_s() < until)
            ;
        return 5;
    }
    atomic_fetch_add(&l->second_started, 1);
    while (!atomic_load(&l->first_done) && test_now_s() < until)
        ;
    abort();
}

static void late_crash_done(void *ctx, size_t i)
{
    if (i == 0)
        atomic_store(&((late_crash *)ctx)->first_done, 1);
}

static void test_no_retry_after_stop(void)
{
    crew *pool = test_proc_pool(WORKERS, 0, 0, 1);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    late_crash *l = CREW_ARENA_PTR(a, late_crash, CREW_ARENA_NEW(a, late_crash));
    ASSERT_NOT_NULL(l);
    static const int which[2] = {0, 1};
    crew_task t[2];
    for (int i = 0; i < 2; i++)
        t[i] = (crew_task){.fn = late_crash_task, .arg = &which[i], .arg_size = sizeof which[i]};
    crew_run_opts opts = {.stop_on_error = 1, .on_done = late_crash_done, .ctx = l};
    test_watchdog_step(&wd, "no retry after a stop");
    ASSERT_EQ(crew_run(pool, l, t, 2, &opts), CREW_EFAILED);
    ASSERT_EQ(t[0].status, 5);
    ASSERT_EQ(t[1].status, CREW_ECRASHED);
    ASSERT_EQ(t[1].detail, SIGABRT);
    ASSERT_EQ(t[1].runs, 1);
    ASSERT_EQ(atomic_load(&l->second_started), 1);
    crew_arena_close(a);
    crew_close(pool);
}

/* ---- the limits: not early, not late, per task ----------------------------------- */

typedef struct limit_arg {
    unsigned ms;        /* busy for this long */
    size_t leak;        /* then allocate and touch this many bytes, never freed */
    int recurse;        /* or recurse without end */
} limit_arg;

static void *volatile leaked;

/* Read at run time, so the compiler cannot see that the recursion has no end. */
static volatile unsigned depth_limit = ~0u;

static unsigned deep(unsigned n)
{
    if (n >= depth_limit)
        return n;
    volatile char frame[512];
    frame[n % sizeof frame] = (char)n;
    return deep(n + 1) + frame[(n * 7) % sizeof frame]; /* not a tail call */
}

static int limit_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    const limit_arg *a = arg;
    if (a->recurse)
        return (int)deep(0);
    double until = test_now_s() + a->ms / 1000.0;
    while (test_now_s() < until)
        ;
    if (a->leak) {
        char *p = malloc(a->leak);
        if (!p)
            return 1;
        for (size_t k = 0; k < a->leak; k += 4096)
            p[k] = 1;
        leaked = p;
    }
    return 0;
}

static int hog_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    test_hog_forever();
}

static void test_limits(void)
{
    /* ThreadSanitizer adds shadow pages for the pages a task writes, about
     * one for one, so a task's leak counts double there. */
    const size_t leak = (UNDER_TSAN ? 12 : 24) << 20;
    crew *pool = test_proc_pool(1, 0, MEM_LIMIT, 0);
    pid_t before = 0;
    ASSERT_EQ(pool_pids(pool, &before, 1), 1);
    /* Four tasks in one worker each leak a good part of the limit: the
     * limit is on what one task adds, so all succeed, in the same worker,
     * which by the end holds more than the limit. */
    limit_arg leaky = {0, leak, 0};
    crew_task t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (crew_task){.fn = limit_task, .arg = &leaky, .arg_size = sizeof leaky};
    test_watchdog_step(&wd, "limits: leaks below the limit");
    ASSERT_OK(crew_run(pool, NULL, t, 4, NULL));
    pid_t after = 0;
    ASSERT_EQ(pool_pids(pool, &after, 1), 1);
    ASSERT_EQ(after, before);
    crew_worker_stats st;
    ASSERT_EQ(crew_stats(pool, &st, 1), 1);
    ASSERT_UEQ(st.restarts, 0);
    ASSERT_GE(st.uss, 4 * (uint64_t)leak);
    /* and a memory limit without a timeout is enforced all the same */
    crew_task hog = {.fn = hog_task};
    test_watchdog_step(&wd, "limits: memory limit alone");
    ASSERT_EQ(crew_run(pool, NULL, &hog, 1, NULL), CREW_EFAILED);
    ASSERT_EQ(hog.status, CREW_ENOMEM);
    crew_close(pool);

    pool = test_proc_pool(1, 0.3, 0, 0);
    /* A task of 0.1 s under a 0.3 s timeout finishes; one that never ends
     * is stopped at the timeout, give or take the supervisor's period. */
    limit_arg quick = {100, 0, 0}, endless = {1000000, 0, 0};
    t[0] = (crew_task){.fn = limit_task, .arg = &quick, .arg_size = sizeof quick};
    ASSERT_OK(crew_run(pool, NULL, t, 1, NULL));
    t[0] = (crew_task){.fn = limit_task, .arg = &endless, .arg_size = sizeof endless};
    double t0 = test_now_s();
    test_watchdog_step(&wd, "limits: timeout");
    ASSERT_EQ(crew_run(pool, NULL, t, 1, NULL), CREW_EFAILED);
    double took = test_now_s() - t0;
    ASSERT_EQ(t[0].status, CREW_ETIMEDOUT);
    /* Not early, and not far later (a loaded machine may delay the kill
     * and the wake-up a little; "never" is what this catches). */
    if (took < 0.3 || took > 0.3 + (TEST_SANITIZED ? 3.0 : 1.5))
        TEST_FAIL_("a task with a 0.3 s timeout was stopped after %.3f s", took);

    /* A stack overflow is a crash like any other. */
    limit_arg rec = {0, 0, 1};
    t[0] = (crew_task){.fn = limit_task, .arg = &rec, .arg_size = sizeof rec};
    test_watchdog_step(&wd, "limits: stack overflow");
    ASSERT_EQ(crew_run(pool, NULL, t, 1, NULL), CREW_EFAILED);
    ASSERT_EQ(t[0].status, CREW_ECRASHED);
    ASSERT_EQ(t[0].detail, SIGSEGV);
    crew_close(pool);
}

int main(void)
{
    (void)test_forbidden_page(); /* before any crew_open */
    test_watchdog_start(&wd, 60, "chaos", test_hung);
    test_chaos();
    retry_round(2);
    retry_round(0);
    test_range_retries();
    test_range_failure_stops();
    test_no_retry_after_stop();
    test_limits();
    test_watchdog_stop(&wd);
    printf("test_proc_chaos: ok\n");
    return 0;
}
