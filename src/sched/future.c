/*
 * future.c -- crew_submit and futures: one task started in the background.
 *
 * A future is a job in the pool's injector (never in a worker's deque: a
 * deque must be left by every frame as it was found, and a future outlives
 * the frame that made it).  It is shared by the submitter and the worker
 * that runs it, so it carries a reference count: whoever drops the last
 * reference frees it.  The pool's `futures` latch counts futures not yet
 * finished so that crew_close can wait for them.
 */
#include <stdlib.h>

#include "internal.h"

struct crew_future {
    crew__job job;
    crew *pool;
    const void *shared;
    crew_task *task;
    crew__latch done;
    _Atomic int refs;
};

static void future_unref(crew_future *f)
{
    /* acq_rel: the last owner sees every write of the other before free. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

static void future_finish(crew_future *f, int status)
{
    crew *pool = f->pool;
    f->task->status = status;
    crew__latch_done(&f->done);
    future_unref(f);
    crew__latch_done(&pool->futures);
}

static void future_run(crew__job *job, crew__worker *w)
{
    (void)w;
    crew_future *f = (crew_future *)job;
    int rc = f->task->fn(f->shared, f->task->arg, f->task->result);
    future_finish(f, rc < 0 ? CREW_EINVAL : rc);
}

int crew_submit(crew *pool, const void *shared, crew_task *task, crew_future **out)
{
    if (!pool || !task || !task->fn || !out)
        return CREW_EINVAL;
    crew_future *f = crew__sys.malloc(sizeof *f);
    if (!f)
        return CREW_ENOMEM;
    f->job = (crew__job){.run = future_run, .name = "future"};
    f->pool = pool;
    f->shared = shared;
    f->task = task;
    crew__latch_init(&f->done, 1, NULL);
    atomic_init(&f->refs, 2);
    crew__latch_add(&pool->futures, 1);
    *out = f;
    if (atomic_load_explicit(&pool->started, memory_order_acquire) < 2)
        future_run(&f->job, crew__tls_worker); /* no threads: run it now */
    else
        crew__pool_inject(pool, &f->job);
    return 0;
}

int crew_future_wait(crew_future *f)
{
    if (!f)
        return CREW_EINVAL;
    crew__worker *w = crew__tls_worker;
    if (w && w->pool == f->pool) {
        /* A worker keeps the pool going while it waits: it runs other work
         * (the future itself, if nobody took it yet) until there is none.
         * Then the future is running elsewhere and blocking is safe. */
        while (!crew__latch_open(&f->done) && crew__pool_help(w))
            ;
    }
    crew__latch_wait_outside(&f->done);
    return f->task->status;
}

int crew_future_done(const crew_future *f)
{
    return f && crew__latch_open((crew__latch *)&f->done);
}

void crew_future_free(crew_future *f)
{
    if (f)
        future_unref(f);
}
