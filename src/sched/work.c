/*
 * work.c -- finding work, sleeping, waking and waiting.
 *
 * A worker looks for work in this order:
 *
 *   1. its own deque (newest first: good locality),
 *   2. the other workers' deques, from a random victim on (oldest first:
 *      the biggest pieces),
 *   3. the injector, a mutex-protected FIFO for futures and for calls from
 *      outside threads that could not take slot 0.
 *
 * Sleeping.  A worker that found nothing spins for a few microseconds, then
 * announces itself (its sleep flag, then a sleepers counter, both seq_cst),
 * looks for work once more, and sleeps on a futex on its own flag.  Whoever
 * makes work (push, inject) stores it seq_cst and then reads the counter:
 * by the Dekker argument either the sleeper's last look sees the work or
 * the maker sees the sleeper.  The maker then clears one sleeper's flag
 * with a CAS (so a burst of pushes wakes each sleeper once, not once per
 * push) and wakes it.  An idle pool therefore uses no CPU.
 *
 * Waiting.  A worker waiting for a latch (join partner stolen, crew_run
 * copies still running) keeps running other work; with nothing to do it
 * sleeps as above, and is woken either by new work or by the latch.  The
 * work it runs meanwhile nests on its stack, so the nesting is capped
 * (CREW_HELP_DEPTH): past it, the worker only waits.  That cannot deadlock,
 * because the job it waits for is already running on another worker.
 */
#include <stdlib.h>

#include "internal.h"

#define CREW_HELP_DEPTH 64 /* max nesting of work run while waiting */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: victims only need to be spread, not unpredictable. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void crew__count(_Atomic uint64_t *c, uint64_t n)
{
    /* relaxed: statistics; an RMW because a future run inline by an outside
     * thread counts on worker 0 while its owner may be counting too. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}


/* ---- sleeping and waking ----------------------------------------------- */

/* The counter a sleeper with this flag is counted in, if any. */
static _Atomic uint32_t *sleep_counter(crew *pool, uint32_t flag)
{
    return flag == SLEEP_IDLE ? &pool->sleepers : flag == SLEEP_PARKED ? &pool->parked : NULL;
}

static bool wake_worker(crew *pool, crew__worker *w, uint32_t from)
{
    uint32_t expected = from;
    /* seq_cst, also on failure: a failed CAS is a load that must take part
     * in the Dekker pairs (stop, resize, latches) like the sleeper's store. */
    if (!atomic_compare_exchange_strong_explicit(&w->sleep, &expected, SLEEP_AWAKE,
                                                 memory_order_seq_cst, memory_order_seq_cst))
        return false;
    _Atomic uint32_t *counter = sleep_counter(pool, from);
    if (counter)
        atomic_fetch_sub_explicit(counter, 1, memory_order_relaxed);
    crew__futex_wake(&w->sleep, 1);
    return true;
}

/* Wake a worker sleeping with `flag`, threads before the outside caller's
 * slot 0 (which may be about to leave with the wake-up). */
static bool wake_first(crew *pool, uint32_t flag, unsigned limit)
{
    for (unsigned k = 1; k <= limit; k++) {
        crew__worker *w = pool->slots[k % limit];
        if (atomic_load_explicit(&w->sleep, memory_order_relaxed) == flag &&
            wake_worker(pool, w, flag))
            return true;
    }
    return false;
}

/* Wake one worker that sleeps for lack of work, if there is one; with
 * any_worker (injector work), a parked worker beyond N will do too. */
static void wake_one(crew *pool, bool any_worker)
{
    unsigned n = atomic_load_explicit(&pool->started, memory_order_acquire);
    /* seq_cst: the second half of the Dekker pairs described above. */
    if (atomic_load_explicit(&pool->sleepers, memory_order_seq_cst) != 0) {
        unsigned limit = crew__pool_active(pool);
        if (wake_first(pool, SLEEP_IDLE, limit < n ? limit : n))
            return;
    }
    if (any_worker && crew__pool_active(pool) == 1 &&
        atomic_load_explicit(&pool->parked, memory_order_seq_cst) != 0)
        wake_first(pool, SLEEP_PARKED, n);
}

void crew__work_wake_all(crew *pool)
{
    unsigned n = atomic_load_explicit(&pool->started, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        for (uint32_t flag = SLEEP_IDLE; flag <= SLEEP_PARKED; flag++)
            wake_worker(pool, pool->slots[i], flag);
}

void crew__work_wake_waiter(crew__worker *w)
{
    if (atomic_load_explicit(&w->sleep, memory_order_seq_cst) != SLEEP_AWAKE &&
        !wake_worker(w->pool, w, SLEEP_WAITING))
        wake_worker(w->pool, w, SLEEP_IDLE);
}

/* ---- finding work --------------------------------------------------------- */

static crew__job *inject_take(crew *pool)
{
    /* seq_cst: a sleeper's last look must see an injection that did not
     * see it (Dekker pair with crew__work_inject); the mutex orders the rest. */
    if (atomic_load_explicit(&pool->inj_len, memory_order_seq_cst) == 0)
        return NULL;
    pthread_mutex_lock(&pool->inj_lock);
    crew__job *job = pool->inj_head;
    if (job) {
        pool->inj_head = job->next;
        if (!pool->inj_head)
            pool->inj_tail = NULL;
        atomic_fetch_sub_explicit(&pool->inj_len, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool->inj_lock);
    return job;
}

static crew__job *steal(crew__worker *w)
{
    crew *pool = w->pool;
    unsigned n = atomic_load_explicit(&pool->started, memory_order_acquire);
    if (n < 2)
        return NULL;
    bool contended;
    do {
        contended = false;
        unsigned start = (unsigned)(rng_next(&w->rng) % n);
        for (unsigned k = 0; k < n; k++) {
            crew__worker *v = pool->slots[(start + k) % n];
            if (v == w)
                continue;
            crew__job *job = crew__deque_steal(&v->dq, &contended);
            if (job) {
                crew__count(&w->steals, 1);
                return job;
            }
        }
    } while (contended);
    return NULL;
}

/*
 * Any work this worker may take.  A worker beyond N takes only what its own
 * deque still holds, so that N bounds what runs at once, futures included.
 * The exception is N == 1: then no thread is active, new futures run inside
 * crew_submit, and parked threads only finish jobs queued before N shrank.
 */
crew__job *crew__work_find(crew__worker *w)
{
    crew__job *job = crew__deque_pop(&w->dq);
    if (job)
        return job;
    unsigned active = crew__pool_active(w->pool);
    if (w->id < active) {
        job = steal(w);
        if (job)
            return job;
    } else if (active > 1) {
        return NULL;
    }
    return inject_take(w->pool);
}

void crew__work_run_job(crew__worker *w, crew__job *job)
{
    /* Read before running: the job ends by releasing whoever waits for it,
     * who may free it (or return from the frame holding it) at once. */
    const char *name = job->name;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    /* Counted before it runs: once the job has released its waiter, the
     * waiter may read the statistics at once. */
    crew__count(&w->jobs, 1);
    job->run(job, w);
    if (w->pool->tracing && name) /* a job without a name traces itself */
        crew__trace_add(&w->trace, name, t0, 0);
}

bool crew__work_push(crew__worker *w, crew__job *job)
{
    if (!crew__deque_push(&w->dq, job))
        return false;
    wake_one(w->pool, false);
    return true;
}

crew__job *crew__work_pop(crew__worker *w)
{
    return crew__deque_pop(&w->dq);
}

void crew__work_inject(crew *pool, crew__job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&pool->inj_lock);
    if (pool->inj_tail)
        pool->inj_tail->next = job;
    else
        pool->inj_head = job;
    pool->inj_tail = job;
    /* seq_cst: the job is visible before we look for sleepers (Dekker). */
    atomic_fetch_add_explicit(&pool->inj_len, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&pool->inj_lock);
    wake_one(pool, true);
}

/* A parked worker wakes when N grows past it, or (N == 1) for queued jobs. */
static bool parked_ready(crew__worker *w, crew__job **job)
{
    /* seq_cst: the other half of the pair with crew_resize's store. */
    unsigned active = atomic_load_explicit(&w->pool->active, memory_order_seq_cst);
    return w->id < active || (active == 1 && (*job = inject_take(w->pool)) != NULL);
}

/*
 * Sleep until woken, unless something is ready once we are announced:
 * stop, *word == want (a latch opened, a future finished), or work this
 * kind of sleeper may take (returned).  flag SLEEP_IDLE: wake me for any
 * work; SLEEP_WAITING: only *word (or stop) may wake me; SLEEP_PARKED: a
 * worker beyond N, woken for injector work or a resize.
 */
crew__job *crew__work_sleep(crew__worker *w, uint32_t flag, _Atomic uint32_t *word,
                           uint32_t want)
{
    crew *pool = w->pool;
    _Atomic uint32_t *counter = sleep_counter(pool, flag);
    atomic_store_explicit(&w->sleep, flag, memory_order_seq_cst);
    if (counter)
        /* seq_cst: announce before the last look (the Dekker pair). */
        atomic_fetch_add_explicit(counter, 1, memory_order_seq_cst);
    crew__job *job = NULL;
    /* seq_cst loads: the other halves of the pairs with stop, resize,
     * crew__latch_done and a future's completion. */
    bool ready = atomic_load_explicit(&pool->stopping, memory_order_seq_cst) ||
                 (word && atomic_load_explicit(word, memory_order_seq_cst) == want) ||
                 (flag == SLEEP_IDLE && (job = crew__work_find(w)) != NULL) ||
                 (flag == SLEEP_PARKED && parked_ready(w, &job));
    if (!ready) {
        /* Busy time is time awake: the clock is read only around sleeps. */
        uint64_t t = crew__now_ns();
        crew__count(&w->busy_ns, t - w->awake_since);
        crew__count(&w->sleeps, 1);
        while (atomic_load_explicit(&w->sleep, memory_order_acquire) == flag)
            crew__futex_wait(&w->sleep, flag);
        w->awake_since = crew__now_ns();
    }
    /* Whoever wins this CAS (we, or a waker) does the accounting. */
    uint32_t expected = flag;
    if (atomic_compare_exchange_strong_explicit(&w->sleep, &expected, SLEEP_AWAKE,
                                                memory_order_seq_cst, memory_order_seq_cst)) {
        if (counter)
            atomic_fetch_sub_explicit(counter, 1, memory_order_relaxed);
    } else if (!ready && word && !job && atomic_load_explicit(word, memory_order_relaxed) == want) {
        /* A waker chose us, but we leave to return to our caller: the
         * wake-up may have been meant for work, so pass it on. */
        wake_one(pool, true);
    }
    return job;
}

/* ---- latches ------------------------------------------------------------- */

void crew__latch_init(crew__latch *l, uint32_t n, crew__worker *waiter)
{
    atomic_init(&l->count, n);
    l->waiter = waiter;
}

void crew__latch_add(crew__latch *l, uint32_t n)
{
    atomic_fetch_add_explicit(&l->count, n, memory_order_relaxed);
}

void crew__latch_done(crew__latch *l)
{
    /* Read the waiter first: once the count is zero the latch may be gone. */
    crew__worker *waiter = l->waiter;
    /* seq_cst: releases the work to the waiter, and is ordered before our
     * look at its sleep flag (pairs with crew__work_sleep's flag store and its
     * check of the latch). */
    if (atomic_fetch_sub_explicit(&l->count, 1, memory_order_seq_cst) != 1)
        return;
    if (waiter)
        crew__work_wake_waiter(waiter);
    else
        /* The waiter may have seen zero and returned already, so the word
         * may be gone: harmless, a private futex wake reads no memory and
         * every futex waiter re-checks its condition. */
        crew__futex_wake(&l->count, INT_MAX);
}

void crew__latch_wait_outside(crew__latch *l)
{
    for (;;) {
        uint32_t c = atomic_load_explicit(&l->count, memory_order_acquire);
        if (c == 0)
            return;
        crew__futex_wait(&l->count, c);
    }
}

bool crew__work_help(crew__worker *w)
{
    crew__job *job = w->help_depth < CREW_HELP_DEPTH ? crew__work_find(w) : NULL;
    if (!job)
        return false;
    w->help_depth++;
    crew__work_run_job(w, job);
    w->help_depth--;
    return true;
}

void crew__work_wait_word(crew__worker *w, _Atomic uint32_t *word, uint32_t want)
{
    unsigned idle = 0;
    /* acquire: pairs with the release (seq_cst) store that sets the word, so
     * everything the finished work did is visible once we see it. */
    while (atomic_load_explicit(word, memory_order_acquire) != want) {
        if (crew__work_help(w)) {
            idle = 0;
            continue;
        }
        if (++idle < CREW_SPIN_ROUNDS) {
            crew__cpu_relax();
            continue;
        }
        idle = 0;
        uint32_t flag = w->help_depth < CREW_HELP_DEPTH ? SLEEP_IDLE : SLEEP_WAITING;
        crew__job *job = crew__work_sleep(w, flag, word, want);
        if (job) {
            w->help_depth++;
            crew__work_run_job(w, job);
            w->help_depth--;
        }
    }
}

void crew__work_wait(crew__worker *w, crew__latch *l)
{
    crew__work_wait_word(w, &l->count, 0);
}
