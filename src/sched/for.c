/*
 * for.c -- crew_for and crew_reduce: lazy binary splitting.
 *
 * A worker holding a range [lo, hi) runs it in batches.  Before each batch
 * it looks at its own deque: if it is empty, no other worker has anything
 * to steal from us, so the range is cut in two and the upper half pushed
 * (a thief can take it); otherwise the next batch runs.  Work is therefore
 * split only as fast as thieves take it: a loop that nobody steals from
 * costs one push and one pop per halving, and an irregular loop is split
 * down to single iterations where that is what it takes.
 *
 * With grain 0 the batch length adapts: it starts at one iteration and
 * doubles while a batch takes less than CREW_BATCH_NS, so the clock is read
 * rarely for nanosecond bodies, while a millisecond body is checked after
 * every iteration.  With grain > 0 every batch and every split point keeps
 * ranges exactly `grain` long.
 *
 * crew_reduce uses the same walk with one accumulator per stolen range: the
 * owner folds its own halves into its accumulator in order, and after a
 * stolen upper half finishes, combines it in as acc = acc (+) upper.  The
 * combine order is therefore always left to right.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CREW_BATCH_NS 20000     /* target length of one batch with grain 0 */
#define ACC_INLINE 128          /* accumulators up to this size live in the job */

typedef struct for_state {
    crew_range_fn *body;
    void *ctx;
    size_t begin, grain;
    const crew_reducer *r;
    _Atomic int error;
} for_state;

typedef struct for_job {
    crew__job job;
    for_state *st;
    size_t lo, hi;
    crew__latch done;
    void *acc;  /* set by a thief for crew_reduce */
    _Alignas(CREW_CACHE_LINE) unsigned char acc_inline[ACC_INLINE];
} for_job;

static void for_range(crew__worker *w, for_state *st, size_t lo, size_t hi, void *acc);

static void run_batch(for_state *st, size_t lo, size_t hi, void *acc)
{
    if (st->r)
        st->r->body(st->ctx, lo, hi, acc);
    else
        st->body(st->ctx, lo, hi);
}

static void *acc_new(for_job *j)
{
    const crew_reducer *r = j->st->r;
    if (r->size <= ACC_INLINE)
        return j->acc_inline;
    size_t size = (r->size + CREW_CACHE_LINE - 1) / CREW_CACHE_LINE * CREW_CACHE_LINE;
    return crew__sys.aligned_alloc(CREW_CACHE_LINE, size);
}

static void for_job_run(crew__job *job, crew__worker *w)
{
    for_job *j = (for_job *)job;
    for_state *st = j->st;
    if (st->r) {
        /* A stolen piece of a reduction starts its own accumulator. */
        j->acc = acc_new(j);
        if (!j->acc) {
            atomic_store_explicit(&st->error, CREW_ENOMEM, memory_order_relaxed);
        } else {
            st->r->init(st->ctx, j->acc);
            for_range(w, st, j->lo, j->hi, j->acc);
        }
    } else {
        for_range(w, st, j->lo, j->hi, NULL);
    }
    crew__latch_done(&j->done);
}

/* The split point: the middle, on a grain boundary when grain > 0. */
static size_t split_point(const for_state *st, size_t lo, size_t hi, size_t batch)
{
    if ((hi - lo) / 2 < batch) /* (not hi - lo < 2 * batch: that can overflow) */
        return 0;
    size_t mid = lo + (hi - lo) / 2;
    if (st->grain) {
        size_t chunks = (mid - st->begin) / st->grain;
        mid = st->begin + chunks * st->grain;
        if (mid <= lo || mid >= hi)
            return 0;
    }
    return mid;
}

static void for_range(crew__worker *w, for_state *st, size_t lo, size_t hi, void *acc)
{
    size_t batch = st->grain ? st->grain : 1;
    bool adapt = st->grain == 0;
    bool parallel = crew__pool_active(w->pool) > 1;
    while (lo < hi) {
        size_t mid;
        if (parallel && crew__deque_empty(&w->dq) && (mid = split_point(st, lo, hi, batch))) {
            for_job j = {.job = {.run = for_job_run, .name = "range"}, .st = st, .lo = mid, .hi = hi};
            crew__latch_init(&j.done, 1, w);
            if (crew__pool_push(w, &j.job)) {
                for_range(w, st, lo, mid, acc);
                crew__job *back = crew__pool_pop(w);
                if (back) {
                    assert(back == &j.job);
                    lo = mid; /* nobody took it: go on with the upper half */
                    continue;
                }
                crew__pool_wait(w, &j.done);
                if (st->r && j.acc) {
                    st->r->combine(st->ctx, acc, j.acc);
                    if (j.acc != j.acc_inline)
                        free(j.acc);
                }
                return;
            }
        }
        size_t n = hi - lo < batch ? hi - lo : batch;
        if (adapt && batch < ((size_t)1 << 40)) {
            uint64_t t0 = crew__now_ns();
            run_batch(st, lo, lo + n, acc);
            if (crew__now_ns() - t0 < CREW_BATCH_NS / 2)
                batch *= 2;
        } else {
            run_batch(st, lo, lo + n, acc);
        }
        lo += n;
    }
}

typedef struct for_call {
    for_state *st;
    size_t lo, hi;
    void *acc;
} for_call;

static void for_entry(crew__worker *w, void *arg)
{
    for_call *c = arg;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    for_range(w, c->st, c->lo, c->hi, c->acc);
    if (w->pool->tracing)
        crew__trace_add(&w->trace, c->st->r ? "crew_reduce" : "crew_for", t0, c->hi - c->lo);
}

static void for_start(crew *pool, for_state *st, size_t begin, size_t end, void *acc)
{
    for_call c = {st, begin, end, acc};
    crew__pool_call(pool, for_entry, &c);
}

int crew_for(crew *pool, size_t begin, size_t end, size_t grain, crew_range_fn *body, void *ctx)
{
    if (!pool || !body || begin > end)
        return CREW_EINVAL;
    if (begin == end)
        return 0;
    for_state st = {.body = body, .ctx = ctx, .begin = begin, .grain = grain};
    for_start(pool, &st, begin, end, NULL);
    return 0;
}

int crew_reduce(crew *pool, size_t begin, size_t end, size_t grain, const crew_reducer *r,
                void *ctx, void *out)
{
    if (!pool || !r || !out || !r->init || !r->body || !r->combine || r->size == 0 || begin > end)
        return CREW_EINVAL;
    /* The caller's accumulator may be unaligned; fold into an aligned one. */
    size_t size = (r->size + CREW_CACHE_LINE - 1) / CREW_CACHE_LINE * CREW_CACHE_LINE;
    void *acc = crew__sys.aligned_alloc(CREW_CACHE_LINE, size);
    if (!acc)
        return CREW_ENOMEM;
    r->init(ctx, acc);
    for_state st = {.ctx = ctx, .begin = begin, .grain = grain, .r = r};
    atomic_init(&st.error, 0);
    if (begin < end)
        for_start(pool, &st, begin, end, acc);
    int rc = atomic_load_explicit(&st.error, memory_order_relaxed);
    if (rc == 0)
        memcpy(out, acc, r->size);
    free(acc);
    return rc;
}
