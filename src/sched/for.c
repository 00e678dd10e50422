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
 * doubles while a batch takes less than half of CREW_BATCH_NS; the length
 * learned is shared by every piece of the loop, so a stolen piece starts
 * where the others are.  A millisecond body is checked after every
 * iteration; a nanosecond body reads the clock once per ~10 us of work.
 * Pieces shorter than 1/16 of a batch are never split off.  With grain > 0 every batch and every split point keeps
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
    _Atomic size_t batch; /* grain 0: the batch length learned so far */
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

/* The split point: the middle, on a grain boundary when grain > 0; 0 when
 * either half would be shorter than min_piece. */
static size_t split_point(const for_state *st, size_t lo, size_t hi, size_t min_piece)
{
    if ((hi - lo) / 2 < min_piece) /* (not hi - lo < 2 * min_piece: that can overflow) */
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

/* Push [mid, hi) for thieves, run [lo, mid), then take the upper half back or
 * wait for its thief.  Returns true when the whole range is done, false when
 * the upper half came back and the caller should go on with it. */
static bool split_run(crew__worker *w, for_state *st, size_t lo, size_t mid, size_t hi,
                      void *acc)
{
    for_job j = {.job = {.run = for_job_run, .name = "range"}, .st = st, .lo = mid, .hi = hi};
    crew__latch_init(&j.done, 1, w);
    if (!crew__work_push(w, &j.job)) {
        /* Only when full, and we split only when our deque is empty; kept
         * for safety, in grain-sized batches as promised. */
        size_t step = st->grain ? st->grain : hi - lo;
        for (size_t at = lo; at < hi; at += (hi - at < step ? hi - at : step))
            run_batch(st, at, at + (hi - at < step ? hi - at : step), acc);
        return true;
    }
    for_range(w, st, lo, mid, acc);
    crew__job *back = crew__work_pop(w);
    if (back) {
        assert(back == &j.job);
        return false;
    }
    crew__work_wait(w, &j.done);
    if (st->r && j.acc) {
        st->r->combine(st->ctx, acc, j.acc);
        if (j.acc != j.acc_inline)
            free(j.acc);
    }
    return true;
}

static void for_range(crew__worker *w, for_state *st, size_t lo, size_t hi, void *acc)
{
    bool adapt = st->grain == 0;
    bool parallel = crew__pool_active(w->pool) > 1;
    /* relaxed: the learned batch is a hint shared by every piece of the loop. */
    size_t batch = adapt ? atomic_load_explicit(&st->batch, memory_order_relaxed) : st->grain;
    uint64_t t_prev = adapt ? crew__now_ns() : 0;
    while (lo < hi) {
        /* Pieces shorter than 1/16 of a batch (~1 us) are not worth a split. */
        size_t min_piece = adapt ? (batch / 16 ? batch / 16 : 1) : batch;
        size_t mid;
        if (parallel && crew__deque_empty(&w->dq) && (mid = split_point(st, lo, hi, min_piece))) {
            if (split_run(w, st, lo, mid, hi, acc))
                return;
            lo = mid; /* nobody took the upper half: go on with it */
            if (adapt)
                t_prev = crew__now_ns();
            continue;
        }
        size_t n = hi - lo < batch ? hi - lo : batch;
        run_batch(st, lo, lo + n, acc);
        lo += n;
        if (adapt) {
            uint64_t t = crew__now_ns();
            if (t - t_prev < CREW_BATCH_NS / 2 && n == batch && batch < ((size_t)1 << 40)) {
                batch *= 2;
                atomic_store_explicit(&st->batch, batch, memory_order_relaxed);
            }
            t_prev = t;
        }
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
    if (pool->proc)
        return crew__proc_for(pool, begin, end, grain, body, ctx);
    for_state st = {.body = body, .ctx = ctx, .begin = begin, .grain = grain, .batch = 1};
    for_start(pool, &st, begin, end, NULL);
    return 0;
}

int crew_reduce(crew *pool, size_t begin, size_t end, size_t grain, const crew_reducer *r,
                void *ctx, void *out)
{
    if (!pool || !r || !out || !r->init || !r->body || !r->combine || r->size == 0 ||
        r->size > SIZE_MAX - CREW_CACHE_LINE || begin > end)
        return CREW_EINVAL;
    if (pool->proc)
        return crew__proc_reduce(pool, begin, end, grain, r, ctx, out);
    /* The caller's accumulator may be unaligned; fold into an aligned one. */
    size_t size = (r->size + CREW_CACHE_LINE - 1) / CREW_CACHE_LINE * CREW_CACHE_LINE;
    void *acc = crew__sys.aligned_alloc(CREW_CACHE_LINE, size);
    if (!acc)
        return CREW_ENOMEM;
    r->init(ctx, acc);
    for_state st = {.ctx = ctx, .begin = begin, .grain = grain, .r = r, .batch = 1};
    if (begin < end)
        for_start(pool, &st, begin, end, acc);
    int rc = atomic_load_explicit(&st.error, memory_order_relaxed);
    if (rc == 0)
        memcpy(out, acc, r->size);
    free(acc);
    return rc;
}
