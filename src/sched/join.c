/*
 * join.c -- crew_join: run two functions, possibly in parallel.
 *
 * The second function is pushed on the worker's deque as a job and the
 * first runs at once; then the worker pops the job back (nobody took it:
 * run it here, no synchronisation at all) or, if a thief took it, waits on
 * a latch while running other work.  C cannot capture a continuation, so
 * this is child stealing ("help-first" for the pushed half) rather than
 * Cilk's continuation stealing; the price is that a waiting worker must
 * find other work, which crew__work_wait does with a bounded nesting depth.
 */
#include <assert.h>

#include "internal.h"

typedef struct join_job {
    crew__job job;
    crew_fn *fn;
    void *arg;
    crew__latch done;
} join_job;

static void join_job_run(crew__job *job, crew__worker *w)
{
    (void)w;
    join_job *j = (join_job *)job;
    j->fn(j->arg);
    crew__latch_done(&j->done);
}

static void join_on(crew__worker *w, crew_fn *fa, void *a, crew_fn *fb, void *b)
{
    join_job j = {.job = {.run = join_job_run, .name = "join"}, .fn = fb, .arg = b};
    crew__latch_init(&j.done, 1, w);
    if (!crew__work_push(w, &j.job)) {
        /* Deque full (very deep nesting): run both here. */
        fa(a);
        fb(b);
        return;
    }
    fa(a);
    crew__job *back = crew__work_pop(w);
    if (back) {
        /* Every frame leaves the deque as it found it, so the only job that
         * can be on top now is ours. */
        assert(back == &j.job);
        fb(b);
        return;
    }
    crew__work_wait(w, &j.done);
}

typedef struct join_args {
    crew_fn *fa, *fb;
    void *a, *b;
} join_args;

static void join_entry(crew__worker *w, void *arg)
{
    join_args *j = arg;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    join_on(w, j->fa, j->a, j->fb, j->b);
    if (w->pool->tracing)
        crew__trace_add(&w->trace, "crew_join", t0, 0);
}

void crew_join(crew *pool, crew_fn *fa, void *a, crew_fn *fb, void *b)
{
    if (!fa || !fb || !pool || pool->proc || crew__pool_active(pool) < 2) {
        if (fa)
            fa(a);
        if (fb)
            fb(b);
        return;
    }
    crew__worker *w = crew__tls_worker;
    if (w && w->pool == pool) {
        join_on(w, fa, a, fb, b);
        return;
    }
    join_args args = {fa, fb, a, b};
    crew__pool_call(pool, join_entry, &args);
}
