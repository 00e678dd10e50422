/*
 * pool.c -- the pool: its life (open, resize, close), its worker threads,
 * and how outside threads enter it.
 *
 * A pool has N workers.  Worker 0 is not a thread of ours: it is the slot an
 * outside thread takes while it calls crew_for / crew_run / ..., so that N
 * workers means N busy threads.  Workers 1..N-1 are threads, which loop in
 * worker_main: find work (work.c), run it, spin a little, sleep.
 *
 * Lock order: resize_lock, then inj_lock.  caller_lock is independent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Thread_local crew__worker *crew__tls_worker;

unsigned crew__pool_active(const crew *pool)
{
    if (pool->proc)
        return crew__proc_active(pool);
    return atomic_load_explicit(&((crew *)pool)->active, memory_order_relaxed);
}

/* ---- worker threads ----------------------------------------------------- */

static void *worker_main(void *arg)
{
    crew__worker *w = arg;
    crew *pool = w->pool;
    crew__tls_worker = w;
    w->awake_since = crew__now_ns();
    unsigned idle = 0;
    while (!atomic_load_explicit(&pool->stopping, memory_order_acquire)) {
        crew__job *job = crew__work_find(w);
        if (!job) {
            if (++idle < CREW_SPIN_ROUNDS) {
                crew__cpu_relax();
                continue;
            }
            idle = 0;
            bool parked = w->id >= crew__pool_active(pool);
            job = crew__work_sleep(w, parked ? SLEEP_PARKED : SLEEP_IDLE, NULL, 0);
            if (!job)
                continue;
        }
        idle = 0;
        crew__work_run_job(w, job);
    }
    crew__count(&w->busy_ns, crew__now_ns() - w->awake_since);
    return NULL;
}

static crew__worker *worker_new(crew *pool, unsigned id)
{
    crew__worker *w = crew__sys.aligned_alloc(CREW_CACHE_LINE, sizeof *w);
    if (!w)
        return NULL;
    memset(w, 0, sizeof *w);
    crew__deque_init(&w->dq);
    w->pool = pool;
    w->id = id;
    w->rng = 0x9E3779B97F4A7C15ULL * (id + 1) ^ (uint64_t)(uintptr_t)pool;
    atomic_init(&w->sleep, 0);
    return w;
}

/* Start workers [started, n).  Called with resize_lock held (or at open). */
static int start_workers(crew *pool, unsigned n)
{
    unsigned have = atomic_load_explicit(&pool->started, memory_order_relaxed);
    for (unsigned id = have; id < n; id++) {
        crew__worker *w = worker_new(pool, id);
        if (!w)
            return CREW_ENOMEM;
        pool->slots[id] = w;
        if (id > 0) {
            int rc = crew__sys.thread_create(&w->thread, pool->stack_size, worker_main, w);
            if (rc != 0) {
                free(w);
                pool->slots[id] = NULL;
                return rc == ENOMEM ? CREW_ENOMEM : CREW_EAGAIN;
            }
            w->has_thread = true;
        }
        /* release: the slot is fully built before thieves index it. */
        atomic_store_explicit(&pool->started, id + 1, memory_order_release);
    }
    return 0;
}

static void pool_free(crew *pool)
{
    unsigned n = atomic_load_explicit(&pool->started, memory_order_relaxed);
    atomic_store_explicit(&pool->stopping, true, memory_order_seq_cst);
    crew__work_wake_all(pool);
    for (unsigned i = 0; i < n; i++)
        if (pool->slots[i]->has_thread)
            pthread_join(pool->slots[i]->thread, NULL);
    if (pool->tracing && pool->trace_path)
        crew__trace_write(pool, pool->trace_path);
    for (unsigned i = 0; i < n; i++) {
        crew__trace_free(&pool->slots[i]->trace);
        free(pool->slots[i]);
    }
    pthread_mutex_destroy(&pool->caller_lock);
    pthread_mutex_destroy(&pool->resize_lock);
    pthread_mutex_destroy(&pool->inj_lock);
    free(pool->trace_path);
    free(pool);
}

int crew_open(crew **out, const crew_config *cfg)
{
    static const crew_config defaults;
    if (!out)
        return CREW_EINVAL;
    if (!cfg)
        cfg = &defaults;
    if (cfg->workers > CREW_MAX_WORKERS ||
        (cfg->stack_size && (cfg->stack_size < CREW_MIN_STACK || cfg->stack_size > CREW_MAX_STACK)))
        return CREW_EINVAL;
    bool procs = cfg->isolation == CREW_PROCESSES;
    if ((cfg->isolation != CREW_THREADS && !procs) || !(cfg->task_timeout >= 0) ||
        isinf(cfg->task_timeout) || cfg->task_timeout > 1e9 ||
        (!procs && (cfg->task_timeout != 0 || cfg->task_memory_limit || cfg->retries ||
                    cfg->worker_exit)))
        return CREW_EINVAL;
    unsigned n = cfg->workers ? cfg->workers : crew__cpus_usable();

    crew *pool = crew__sys.calloc(1, sizeof *pool);
    if (!pool)
        return CREW_ENOMEM;
    pthread_mutex_init(&pool->caller_lock, NULL);
    pthread_mutex_init(&pool->resize_lock, NULL);
    pthread_mutex_init(&pool->inj_lock, NULL);
    crew__latch_init(&pool->futures, 0, NULL);
    atomic_init(&pool->active, n);
    pool->stack_size = cfg->stack_size ? cfg->stack_size : CREW_DEFAULT_STACK;
    const char *trace = cfg->trace_path;
    if (!trace || !*trace)
        trace = getenv("CREW_TRACE");
    if (trace && *trace) {
        size_t len = strlen(trace) + 1;
        pool->trace_path = crew__sys.malloc(len);
        if (!pool->trace_path) {
            pool_free(pool);
            return CREW_ENOMEM;
        }
        memcpy(pool->trace_path, trace, len);
        pool->tracing = true;
        pool->t0_ns = crew__now_ns();
    }
    int rc = procs ? crew__proc_open(pool, cfg, n) : start_workers(pool, n);
    if (rc < 0) {
        pool_free(pool);
        return rc;
    }
    *out = pool;
    return 0;
}

crew__worker *crew__pool_slot(crew *pool, unsigned id)
{
    unsigned have = atomic_load_explicit(&pool->started, memory_order_relaxed);
    for (; have <= id; have++) {
        crew__worker *w = worker_new(pool, have);
        if (!w)
            return NULL;
        pool->slots[have] = w;
        atomic_store_explicit(&pool->started, have + 1, memory_order_release);
    }
    return pool->slots[id];
}

void crew_close(crew *pool)
{
    if (!pool)
        return;
    if (pool->proc) {
        crew__proc_close(pool); /* the workers' trace buffers stay for pool_free */
        pool_free(pool);
        return;
    }
    /* Futures run from the injector; let them finish first. */
    crew__latch_wait_outside(&pool->futures);
    pool_free(pool);
}

unsigned crew_workers(const crew *pool)
{
    return pool ? crew__pool_active(pool) : 0;
}

int crew_resize(crew *pool, unsigned n)
{
    if (!pool || n == 0 || n > CREW_MAX_WORKERS)
        return CREW_EINVAL;
    if (pool->proc)
        return crew__proc_resize(pool, n);
    pthread_mutex_lock(&pool->resize_lock);
    int rc = start_workers(pool, n);
    if (rc == 0)
        atomic_store_explicit(&pool->active, n, memory_order_seq_cst);
    pthread_mutex_unlock(&pool->resize_lock);
    /* Workers beyond N notice at their next search; sleepers are woken so
     * that a grown pool starts stealing at once. */
    crew__work_wake_all(pool);
    return rc;
}

size_t crew_stats(const crew *pool, crew_worker_stats *out, size_t n)
{
    if (!pool)
        return 0;
    if (pool->proc)
        return crew__proc_stats(pool, out, n);
    unsigned have = atomic_load_explicit(&((crew *)pool)->started, memory_order_acquire);
    for (size_t i = 0; i < n && i < have; i++) {
        crew__worker *w = pool->slots[i];
        out[i].jobs = atomic_load_explicit(&w->jobs, memory_order_relaxed);
        out[i].steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
        out[i].sleeps = atomic_load_explicit(&w->sleeps, memory_order_relaxed);
        out[i].busy_ns = atomic_load_explicit(&w->busy_ns, memory_order_relaxed);
        out[i].pid = 0;
        out[i].restarts = out[i].rss = out[i].pss = out[i].uss = 0;
    }
    return have;
}

/* ---- entering the pool from outside ------------------------------------ */

typedef struct call_job {
    crew__job job;
    void (*fn)(crew__worker *w, void *arg);
    void *arg;
    crew__latch done;
} call_job;

static void call_job_run(crew__job *job, crew__worker *w)
{
    call_job *c = (call_job *)job;
    c->fn(w, c->arg);
    crew__latch_done(&c->done);
}

/* The address of this identifies the calling thread as slot 0's holder. */
static _Thread_local char caller_token;

void crew__pool_call(crew *pool, void (*fn)(crew__worker *w, void *arg), void *arg)
{
    crew__worker *self = crew__tls_worker;
    if (self && self->pool == pool) {
        fn(self, arg);
        return;
    }
    /* relaxed: only this thread ever stores its own token there. */
    if (atomic_load_explicit(&pool->caller_owner, memory_order_relaxed) == &caller_token) {
        /* We hold slot 0 further up this stack (pool A's task called pool
         * B, whose task calls A again): nest on slot 0 as any task does. */
        crew__tls_worker = pool->slots[0];
        fn(pool->slots[0], arg);
        crew__tls_worker = self;
        return;
    }
    bool have_threads = crew__pool_active(pool) > 1;
    if (pthread_mutex_trylock(&pool->caller_lock) != 0) {
        if (have_threads) {
            /* Slot 0 is busy with another outside thread: hand the call
             * to the pool's threads and sleep until it is done. */
            call_job c = {.job = {.run = call_job_run, .name = "call"}, .fn = fn, .arg = arg};
            crew__latch_init(&c.done, 1, NULL);
            crew__work_inject(pool, &c.job);
            crew__latch_wait_outside(&c.done);
            return;
        }
        pthread_mutex_lock(&pool->caller_lock);
    }
    crew__worker *w = pool->slots[0];
    atomic_store_explicit(&pool->caller_owner, &caller_token, memory_order_relaxed);
    crew__tls_worker = w;
    w->awake_since = crew__now_ns();
    fn(w, arg);
    crew__count(&w->busy_ns, crew__now_ns() - w->awake_since);
    crew__tls_worker = self;
    atomic_store_explicit(&pool->caller_owner, NULL, memory_order_relaxed);
    pthread_mutex_unlock(&pool->caller_lock);
}
