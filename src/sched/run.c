/*
 * run.c -- crew_run: a flat array of tasks, N at a time.
 *
 * A flat batch needs no splitting: every participant takes the next index
 * from one shared counter, so tasks start in index order and costly and
 * cheap tasks mix without any tuning.  Participants join by a job that
 * copies itself: whoever runs it first pushes the same job again on its own
 * deque (so the next thief finds one), then takes tasks until none are
 * left, then pops its copy back if nobody took it.  The copies in flight
 * are counted by a latch on which the caller waits, so the caller's frame
 * (which holds the job) outlives every thief that could touch it.
 */
#include "internal.h"

#define PROGRESS_NS 100000000u /* at most ten progress calls a second */

typedef struct run_state {
    crew__job job;        /* pushed many times: holds no per-copy state */
    const void *shared;
    crew_task *tasks;
    size_t n;
    const crew_run_opts *opts;
    _Atomic size_t next, finished, failed;
    _Atomic bool stop;
    _Atomic uint64_t last_progress;
    atomic_flag progress_busy;
    crew__latch copies;   /* copies pushed and not yet finished */
} run_state;

static void report_progress(run_state *st, bool final)
{
    const crew_run_opts *o = st->opts;
    if (!o->progress)
        return;
    if (!final) {
        uint64_t now = crew__now_ns();
        uint64_t last = atomic_load_explicit(&st->last_progress, memory_order_relaxed);
        if (now - last < PROGRESS_NS ||
            !atomic_compare_exchange_strong_explicit(&st->last_progress, &last, now,
                                                     memory_order_relaxed, memory_order_relaxed))
            return;
    }
    /* acquire/release: calls never overlap and see each other's effects. */
    if (atomic_flag_test_and_set_explicit(&st->progress_busy, memory_order_acquire))
        return;
    size_t done = atomic_load_explicit(&st->finished, memory_order_relaxed);
    if (final || done < st->n)
        o->progress(o->ctx, final ? st->n : done, st->n,
                    atomic_load_explicit(&st->failed, memory_order_relaxed));
    atomic_flag_clear_explicit(&st->progress_busy, memory_order_release);
}

static void run_one(crew__worker *w, run_state *st, size_t i)
{
    crew_task *t = &st->tasks[i];
    const crew_run_opts *o = st->opts;
    /* relaxed: stopping is best effort; a task that already started ends. */
    t->detail = 0;
    t->fault_addr = 0;
    t->fault_offset = 0;
    t->runs = 0;
    if (atomic_load_explicit(&st->stop, memory_order_relaxed)) {
        t->status = CREW_ECANCELED;
    } else {
        t->runs = 1;
        uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
        int rc = t->fn(st->shared, t->arg, t->result);
        t->status = rc < 0 ? CREW_EINVAL : rc; /* negative is reserved for crew */
        if (w->pool->tracing)
            crew__trace_add(&w->trace, "task", t0, i);
        crew__count(&w->jobs, 1);
    }
    if (t->status != 0) {
        atomic_fetch_add_explicit(&st->failed, 1, memory_order_relaxed);
        if (o->stop_on_error)
            atomic_store_explicit(&st->stop, true, memory_order_relaxed);
    }
    if (o->on_done)
        o->on_done(o->ctx, i);
    atomic_fetch_add_explicit(&st->finished, 1, memory_order_relaxed);
    report_progress(st, false);
}

static void participate(crew__worker *w, run_state *st)
{
    bool pushed = false;
    if (crew__pool_active(w->pool) > 1 &&
        atomic_load_explicit(&st->next, memory_order_relaxed) + 1 < st->n) {
        crew__latch_add(&st->copies, 1);
        pushed = crew__work_push(w, &st->job);
        if (!pushed)
            crew__latch_done(&st->copies);
    }
    for (;;) {
        /* relaxed: the counter only hands out indexes; the task data was
         * published before the job that led us here. */
        size_t i = atomic_fetch_add_explicit(&st->next, 1, memory_order_relaxed);
        if (i >= st->n)
            break;
        run_one(w, st, i);
    }
    if (pushed && crew__work_pop(w))
        crew__latch_done(&st->copies); /* our copy was still here */
}

static void run_job(crew__job *job, crew__worker *w)
{
    run_state *st = (run_state *)job;
    participate(w, st);
    crew__latch_done(&st->copies); /* last touch of st */
}

static void run_entry(crew__worker *w, void *arg)
{
    run_state *st = arg;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    crew__latch_init(&st->copies, 0, w);
    participate(w, st);
    crew__work_wait(w, &st->copies);
    if (w->pool->tracing)
        crew__trace_add(&w->trace, "crew_run", t0, st->n);
}

int crew_run(crew *pool, const void *shared, crew_task *tasks, size_t n, const crew_run_opts *opts)
{
    static const crew_run_opts no_opts;
    if (!pool || (!tasks && n > 0))
        return CREW_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!tasks[i].fn)
            return CREW_EINVAL;
    if (pool->proc)
        return crew__proc_run(pool, shared, tasks, n, opts);
    if (n == 0) {
        if (opts && opts->progress)
            opts->progress(opts->ctx, 0, 0, 0);
        return 0;
    }
    run_state st = {.job = {.run = run_job, .name = "run"},
                    .shared = shared,
                    .tasks = tasks,
                    .n = n,
                    .opts = opts ? opts : &no_opts,
                    .progress_busy = ATOMIC_FLAG_INIT};
    atomic_init(&st.last_progress, crew__now_ns());
    crew__pool_call(pool, run_entry, &st);
    report_progress(&st, true);
    return atomic_load_explicit(&st.failed, memory_order_relaxed) ? CREW_EFAILED : 0;
}
