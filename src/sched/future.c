/*
 * future.c -- crew_submit and futures: one task started in the background.
 *
 * A future is a job in the pool's injector (never in a worker's deque: a
 * deque must be left by every frame as it was found, and a future outlives
 * the frame that made it).  Whoever claims it first runs it: normally a
 * worker that takes it from the injector, but a worker that waits for a
 * future nobody has started yet claims and runs it itself.  Without that,
 * a chain of futures each waiting for the next could leave every worker
 * waiting while the next link sits in the queue.  The queued job is then
 * only a husk that, when taken, does nothing but let go of the future.
 *
 * References: one for the submitter (crew_future_free) and one for the
 * queue (dropped when the queued job is taken).  The pool's `futures`
 * latch counts queued jobs not yet taken, so that crew_close can wait for
 * them.
 */
#include <stdlib.h>

#include "internal.h"

enum { QUEUED, RUNNING, DONE };

struct crew_future {
    crew__job job;
    crew *pool;
    const void *shared;
    crew_task *task;
    _Atomic uint32_t state;            /* QUEUED -> RUNNING -> DONE */
    _Atomic(crew__worker *) waiter;    /* a worker waiting for DONE, or NULL */
    _Atomic int refs;
};

static void future_unref(crew_future *f)
{
    /* acq_rel: the last owner sees every write of the other before free. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

static bool future_claim(crew_future *f)
{
    uint32_t expected = QUEUED;
    return atomic_compare_exchange_strong_explicit(&f->state, &expected, RUNNING,
                                                   memory_order_acq_rel, memory_order_relaxed);
}

/* Run the claimed future's task and publish its status.  The caller holds
 * a reference, so f stays valid throughout. */
static void future_execute(crew_future *f)
{
    crew_task *t = f->task;
    int rc = t->fn(f->shared, t->arg, t->result);
    t->status = rc < 0 ? CREW_EINVAL : rc;
    /* seq_cst: publishes the status (release) and is ordered before the
     * look at the waiter (the Dekker pair with crew_future_wait). */
    atomic_store_explicit(&f->state, DONE, memory_order_seq_cst);
    crew__worker *w = atomic_load_explicit(&f->waiter, memory_order_seq_cst);
    if (w)
        crew__work_wake_waiter(w);
    crew__futex_wake(&f->state, INT_MAX); /* outside waiters */
}

/* Run a claimed future; trace it when w, a worker of its pool, runs it (an
 * outside thread has no trace buffer). */
static void future_execute_on(crew_future *f, crew__worker *w)
{
    bool traced = w && f->pool->tracing;
    uint64_t t0 = traced ? crew__now_ns() : 0;
    future_execute(f);
    if (traced)
        crew__trace_add(&w->trace, "future", t0, 0);
}

/*
 * Run a claimed future on the calling thread, outside the queue (inside
 * crew_submit when N == 1, or in crew_future_wait), counted as a job of
 * this worker (worker 0 for a thread outside the pool).
 */
static void future_run_here(crew_future *f)
{
    crew__worker *w = crew__tls_worker;
    if (w && w->pool != f->pool)
        w = NULL;
    crew__count(&(w ? w : f->pool->slots[0])->jobs, 1);
    future_execute_on(f, w);
}

/* The queue lets go of the future: its reference, and its count in the
 * pool's latch (crew_close waits for that). */
static void future_leave_queue(crew_future *f)
{
    crew *pool = f->pool;
    future_unref(f);
    crew__latch_done(&pool->futures);
}

/* The queued job: run the future unless a waiter already did. */
static void future_run(crew__job *job, crew__worker *w)
{
    crew_future *f = (crew_future *)job;
    if (future_claim(f)) {
        future_execute_on(f, w);
    } else {
        /* Its waiter ran it and counted it: this husk is not a second job
         * (crew__work_run_job counted it before it ran). */
        atomic_fetch_sub_explicit(&w->jobs, 1, memory_order_relaxed);
    }
    future_leave_queue(f);
}

int crew_submit(crew *pool, const void *shared, crew_task *task, crew_future **out)
{
    if (!pool || !task || !task->fn || !out)
        return CREW_EINVAL;
    if (pool->proc)
        return CREW_ENOTSUP;
    crew_future *f = crew__sys.malloc(sizeof *f);
    if (!f)
        return CREW_ENOMEM;
    /* No name: future_run traces the run itself, so that the husk of a
     * future its waiter ran leaves no event. */
    f->job = (crew__job){.run = future_run, .name = NULL};
    f->pool = pool;
    f->shared = shared;
    f->task = task;
    atomic_init(&f->state, QUEUED);
    atomic_init(&f->waiter, NULL);
    atomic_init(&f->refs, 2);
    crew__latch_add(&pool->futures, 1);
    *out = f;
    if (crew__pool_active(pool) < 2) {
        /* No thread may run it (N == 1): run it now.  The queue's share of
         * the future is let go at once, as if the husk had been taken. */
        future_claim(f);
        future_run_here(f);
        future_leave_queue(f);
    } else {
        crew__work_inject(pool, &f->job);
    }
    return 0;
}

int crew_future_wait(crew_future *f)
{
    if (!f)
        return CREW_EINVAL;
    if (future_claim(f)) {
        /* Nobody started it: run it here rather than wait for the queue. */
        future_run_here(f);
        return f->task->status;
    }
    crew__worker *w = crew__tls_worker;
    crew__worker *none = NULL;
    /* seq_cst: register before the last look at the state (Dekker pair
     * with future_execute).  One worker at a time can be woken this way;
     * others (and outside threads) sleep on the state word itself. */
    if (w && w->pool == f->pool &&
        atomic_compare_exchange_strong_explicit(&f->waiter, &none, w, memory_order_seq_cst,
                                                memory_order_seq_cst)) {
        /* Keep the pool going: run other work, sleep wakeable for work. */
        crew__work_wait_word(w, &f->state, DONE);
        atomic_store_explicit(&f->waiter, NULL, memory_order_relaxed);
    } else {
        for (;;) {
            uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
            if (s == DONE)
                break;
            crew__futex_wait(&f->state, s);
        }
    }
    return f->task->status;
}

int crew_future_done(const crew_future *f)
{
    return f && atomic_load_explicit(&((crew_future *)f)->state, memory_order_acquire) == DONE;
}

void crew_future_free(crew_future *f)
{
    if (f)
        future_unref(f);
}
