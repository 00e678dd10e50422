/*
 * dispatch.c -- crew_run, crew_for and crew_reduce on a process pool: the
 * caller's side.
 *
 * The caller turns the work into items (a task, or a range of the loop),
 * writes them as descriptors into the shared ring -- arguments copied into
 * the byte area, room set aside for results -- and sleeps.  Workers wake
 * it when the ring runs dry, when something failed, and every 64
 * finished descriptors; it also wakes every 10 ms for progress.  Each
 * time it collects finished descriptors (copying results out, calling
 * on_done), frees them, and refills the ring.  An item whose descriptor
 * was abandoned by a dying worker, or that crashed or timed out with
 * retries left, is written again.
 *
 * At most PROC_RING descriptors and PROC_BYTES bytes are in flight, so
 * memory stays bounded for any number of tasks.  Both are freed in any
 * order (descriptors through a free list, bytes by first fit over sorted
 * free ranges), so a slow task keeps only its own descriptor and bytes:
 * the others flow past it.
 */
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "proc/proc_internal.h"

#define WAIT_NS 10000000u         /* the caller's longest sleep */
#define AGAIN_WAIT_NS 2000000u    /* ... after a feed's CREW_EAGAIN */
#define PROGRESS_NS 100000000u    /* at most ten progress calls a second */
#define ALIGN 16u

typedef struct call {
    crew *pool;
    crew__proc *p;
    proc_shared *h;
    int kind;
    size_t n;                     /* items */
    /* CALL_RUN: item k is tasks[k], or with a feed slots[k] */
    crew_task *tasks;
    const crew_run_opts *opts;
    const crew_feed *feed;
    crew_task **slots;            /* feed: PROC_RING + 1 of them (see pull) */
    uint32_t *free_slots;
    size_t n_free_slots;
    size_t pending;               /* feed: a slot pulled and not yet queued */
    bool feed_end;                /* feed: next said no more, or the run stops */
    bool feed_wait;               /* feed: next said EAGAIN; wait for a done */
    int feed_error;
    /* CALL_FOR and CALL_REDUCE */
    size_t begin, end, grain;
    size_t *bounds;               /* grain 0: item k is [bounds[k], bounds[k+1]) */
    crew_range_fn *body;          /* CALL_FOR */
    unsigned *runs;               /* starts per range */
    const crew_reducer *r;
    size_t acc_size;              /* r->size rounded up */
    unsigned char *accs;          /* [n][acc_size]: each range's accumulator */
    void *ctx;
    /* progress of the call */
    size_t next;                  /* items handed out for the first time */
    size_t *again;                /* items to hand out again */
    size_t n_again, cap_again;
    size_t finished, failed;
    int error;                    /* CALL_FOR/REDUCE: the first failure */
    uint64_t head;                /* queue positions produced (published or not) */
    uint64_t failed_seq;          /* the queue position of the task finish sees */
    size_t in_flight;             /* descriptors not yet freed */
    bool stopped;
    uint64_t last_progress;
} call;

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

#define NO_SLOT SIZE_MAX

static crew_task *task_of(const call *c, size_t k)
{
    return c->feed ? c->slots[k] : &c->tasks[k];
}

static bool retryable(int status)
{
    return status == CREW_ECRASHED || status == CREW_ETIMEDOUT;
}

/* ---- descriptors and the byte area (the caller's bookkeeping) ------------ */

/* First fit in the sorted free ranges.  false: no range is large enough. */
static bool bytes_alloc(crew__proc *p, size_t need, size_t *off)
{
    *off = 0;
    if (need == 0)
        return true;
    for (size_t i = 0; i < p->n_free_bytes; i++) {
        struct proc_range *r = &p->free_bytes[i];
        if (r->len < need)
            continue;
        *off = r->off;
        r->off += need;
        r->len -= need;
        if (r->len == 0) {
            memmove(r, r + 1, (p->n_free_bytes - i - 1) * sizeof *r);
            p->n_free_bytes--;
        }
        return true;
    }
    return false;
}

/* Give [off, off + len) back, merging with its neighbours.  Ranges in use
 * belong to distinct descriptors, so the free ranges between them never
 * number more than PROC_RING + 1: the array always has room. */
static void bytes_free(crew__proc *p, size_t off, size_t len)
{
    if (len == 0)
        return;
    struct proc_range *r = p->free_bytes;
    size_t n = p->n_free_bytes, lo = 0, hi = n;
    while (lo < hi) { /* first range after off */
        size_t mid = (lo + hi) / 2;
        if (r[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    bool prev = lo > 0 && r[lo - 1].off + r[lo - 1].len == off;
    bool next = lo < n && off + len == r[lo].off;
    if (prev && next) {
        r[lo - 1].len += len + r[lo].len;
        memmove(&r[lo], &r[lo + 1], (n - lo - 1) * sizeof *r);
        p->n_free_bytes--;
    } else if (prev) {
        r[lo - 1].len += len;
    } else if (next) {
        r[lo].off = off;
        r[lo].len += len;
    } else {
        memmove(&r[lo + 1], &r[lo], (n - lo) * sizeof *r);
        r[lo] = (struct proc_range){off, len};
        p->n_free_bytes++;
    }
}

/* Descriptor k's outcome has been read: free it and its bytes. */
static void desc_free(crew__proc *p, uint32_t k)
{
    atomic_store_explicit(&p->m.ring[k].state, D_FREE, memory_order_relaxed);
    bytes_free(p, p->desc_off[k], p->desc_len[k]);
    p->free_desc[p->n_free_desc++] = k;
}

/* ---- items ------------------------------------------------------------------ */

static void item_range(const call *c, size_t k, size_t *lo, size_t *hi)
{
    if (c->bounds) {
        *lo = c->bounds[k];
        *hi = c->bounds[k + 1];
    } else {
        *lo = c->begin + k * c->grain;
        *hi = c->end - *lo > c->grain ? *lo + c->grain : c->end;
    }
}

/* Write item k into a free descriptor and queue it (head is published by
 * refill).  false: no descriptor, or no room in the byte area. */
static bool produce(call *c, size_t k)
{
    crew__proc *p = c->p;
    proc_shared *h = c->h;
    /* Position head's queue slot is position head - PROC_RING's, which
     * must have been claimed (its claimer reads it before its CAS).  A free
     * descriptor does not say so: a descriptor the supervisor abandoned
     * while a live worker held its position, and that we filled again
     * before that worker started it, is run by that worker, and its new
     * position stays queued, unclaimed, naming a descriptor no longer
     * there.  Such positions can make more than PROC_RING unclaimed. */
    uint64_t head = c->head;
    if (p->n_free_desc == 0 ||
        head - atomic_load_explicit(&h->claim, memory_order_acquire) >= PROC_RING)
        return false;
    size_t arg_size = 0, res_size = 0;
    if (c->kind == CALL_RUN) {
        arg_size = task_of(c, k)->arg_size;
        res_size = task_of(c, k)->result_size;
    } else if (c->kind == CALL_REDUCE) {
        res_size = c->acc_size;
    }
    /* A call starts with the whole byte area free (everything is freed by
     * the end of a call, and free ranges merge), and a reduce allocates
     * only accumulators rounded up to 64 bytes: they stay 64-byte aligned,
     * as thread pools keep them. */
    size_t arg_room = round_up(arg_size, ALIGN);
    size_t res_room = round_up(res_size, ALIGN);
    size_t off;
    if (!bytes_alloc(p, arg_room + res_room, &off))
        return false;
    uint32_t idx = p->free_desc[--p->n_free_desc];
    p->desc_off[idx] = off;
    p->desc_len[idx] = arg_room + res_room;
    c->in_flight++;
    proc_desc *d = &c->p->m.ring[idx];
    unsigned char *bytes = p->m.bytes;
    d->seq = head;
    d->item = k;
    d->status = d->detail = 0;
    d->started = 0;
    d->fault_addr = d->fault_off = 0;
    d->t0 = d->t1 = 0;
    d->res = (uintptr_t)(bytes + off + arg_room);
    d->res_size = res_size;
    if (c->kind == CALL_RUN) {
        const crew_task *t = task_of(c, k);
        d->fn = t->fn;
        if (arg_size) {
            memcpy(bytes + off, t->arg, arg_size);
            d->arg = (uintptr_t)(bytes + off);
        } else {
            d->arg = (uintptr_t)t->arg;
        }
        if (res_size)
            memset(bytes + off + arg_room, 0, res_size);
    } else {
        size_t lo, hi;
        item_range(c, k, &lo, &hi);
        d->lo = lo;
        d->hi = hi;
    }
    /* release: the descriptor is complete before a worker can start it */
    atomic_store_explicit(&d->state, D_READY, memory_order_release);
    atomic_store_explicit(&h->queue[head % PROC_RING], idx, memory_order_relaxed);
    c->head = head + 1;
    return true;
}

/* Let workers see what produce queued (the queue entries and descriptors
 * were written before: seq_cst orders them, and orders this store before
 * the look at idle in refill). */
static void publish_head(call *c)
{
    atomic_store_explicit(&c->h->head, c->head, memory_order_seq_cst);
}

static bool hand_again(call *c, size_t k)
{
    if (c->n_again == c->cap_again) {
        size_t cap = c->cap_again ? 2 * c->cap_again : 64;
        size_t *a = realloc(c->again, cap * sizeof *a);
        if (!a)
            return false;
        c->again = a;
        c->cap_again = cap;
    }
    c->again[c->n_again++] = k;
    return true;
}

static void finish(call *c, size_t k, int status);
static void stop(call *c);

/* A task from the feed into c->pending; false when there is none now.
 * Slots suffice: a task is pulled only when a descriptor is free and no
 * task waits to be handed out again, so tasks in descriptors, waiting
 * again, and pending never number more than PROC_RING + 1. */
static bool pull(call *c)
{
    while (!c->feed_end && !c->feed_wait) {
        crew_task *t = NULL;
        int rc = c->feed->next(c->feed->ctx, &t);
        if (rc == CREW_EAGAIN) {
            if (c->in_flight == 0 && c->n_again == 0) {
                c->feed_error = CREW_EINVAL;
                c->feed_end = true;
            } else {
                c->feed_wait = true;
            }
            return false;
        }
        if (rc != 1 || !t) {
            if (rc != 0) {
                /* an error stops the run: what is queued is cancelled */
                if (!c->feed_error)
                    c->feed_error = rc < 0 ? rc : CREW_EINVAL;
                stop(c);
            }
            c->feed_end = true;
            return false;
        }
        size_t k = c->free_slots[--c->n_free_slots];
        c->slots[k] = t;
        t->status = t->detail = 0;
        t->runs = 0;
        t->fault_addr = 0;
        t->fault_offset = 0;
        int bad = !t->fn ? CREW_EINVAL
                  : t->arg_size > CREW_PROC_MAX_BYTES ||
                          t->result_size > CREW_PROC_MAX_BYTES - t->arg_size
                      ? CREW_E2BIG
                  : (t->arg_size && !t->arg) || (t->result_size && !t->result) ? CREW_EINVAL
                                                                              : 0;
        if (bad) {
            t->status = bad;
            c->failed_seq = c->head; /* never queued: after all that is */
            finish(c, k, bad);
            continue;
        }
        c->pending = k;
        return true;
    }
    return false;
}

/* Fill the ring with what is left to hand out.  Returns how many. */
static size_t refill(call *c)
{
    size_t made = 0;
    while (!c->stopped) {
        if (c->n_again) {
            if (!produce(c, c->again[c->n_again - 1]))
                break;
            c->n_again--;
        } else if (c->feed) {
            if (c->pending == NO_SLOT && !pull(c))
                break;
            if (!produce(c, c->pending))
                break;
            c->pending = NO_SLOT;
        } else if (c->next < c->n) {
            if (!produce(c, c->next))
                break;
            c->next++;
        } else {
            break;
        }
        /* Now and then, so that idle workers start while we fill. */
        if (++made % 64 == 0)
            publish_head(c);
    }
    publish_head(c);
    if (made && atomic_load_explicit(&c->h->idle, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&c->h->work_word, 1, memory_order_seq_cst);
        crew__futex_wake_shared(&c->h->work_word, INT32_MAX);
    }
    return made;
}

/* ---- results ---------------------------------------------------------------- */

static void stop(call *c)
{
    c->stopped = true;
    atomic_store_explicit(&c->h->stop, 1, memory_order_release);
}

/* stop_on_error: nothing queued after position seq starts (see stop_after). */
static void stop_after(call *c, uint64_t seq)
{
    c->stopped = true;
    crew__proc_stop_after(c->h, seq);
}

/* Item k is final with this status (tasks: already written). */
static void finish(call *c, size_t k, int status)
{
    c->finished++;
    if (status != 0) {
        c->failed++;
        if (c->kind != CALL_RUN) {
            if (!c->error && status != CREW_ECANCELED)
                c->error = status;
            stop(c);
        } else if (c->opts->stop_on_error) {
            stop_after(c, c->failed_seq);
        }
    }
    if (c->feed) {
        c->feed->done(c->feed->ctx, c->slots[k]);
        c->slots[k] = NULL;
        c->free_slots[c->n_free_slots++] = (uint32_t)k;
        c->feed_wait = false;
        if (c->stopped)
            c->feed_end = true;
    } else if (c->kind == CALL_RUN && c->opts->on_done) {
        c->opts->on_done(c->opts->ctx, k);
    }
}

/* Item k ends without a run that says so (no memory to hand it out again,
 * or the pool is lost): its status is ours to write. */
static void fail(call *c, size_t k, int status)
{
    c->failed_seq = c->head; /* it has no position: after all queued */
    if (c->kind == CALL_RUN)
        task_of(c, k)->status = status;
    finish(c, k, status);
}

static void settle_task(call *c, const proc_desc *d)
{
    crew_task *t = task_of(c, d->item);
    if (d->started)
        t->runs++;
    int status = d->status;
    if (retryable(status) && t->runs <= c->p->retries && !c->stopped && hand_again(c, d->item))
        return;
    t->status = status;
    t->detail = d->detail;
    t->fault_addr = (uintptr_t)d->fault_addr;
    t->fault_offset = d->fault_off;
    if (status >= 0 && t->result_size)
        memcpy(t->result, (const void *)(uintptr_t)d->res, t->result_size);
    c->failed_seq = d->seq;
    finish(c, d->item, status);
}

static void settle_range(call *c, const proc_desc *d)
{
    size_t k = d->item;
    if (d->started)
        c->runs[k]++;
    int status = d->status;
    if (retryable(status) && c->runs[k] <= c->p->retries && !c->stopped && hand_again(c, k))
        return;
    if (status == 0 && c->kind == CALL_REDUCE)
        memcpy(c->accs + k * c->acc_size, (const void *)(uintptr_t)d->res, c->r->size);
    finish(c, k, status);
}

/* Collect finished descriptors and free them; return how many. */
static size_t collect(call *c)
{
    crew__proc *p = c->p;
    size_t settled = 0;
    for (uint32_t k = 0; k < PROC_RING && c->in_flight; k++) {
        proc_desc *d = &p->m.ring[k];
        /* acquire: pairs with the release that made it DONE or ABANDONED */
        uint32_t st = atomic_load_explicit(&d->state, memory_order_acquire);
        if (st == D_ABANDONED) {
            if (!hand_again(c, d->item))
                fail(c, d->item, CREW_ENOMEM);
        } else if (st == D_DONE) {
            crew__worker *tw = c->pool->tracing && d->started && d->t1
                                   ? crew__pool_slot(c->pool, d->worker)
                                   : NULL;
            if (tw)
                crew__trace_span(&tw->trace, c->kind == CALL_RUN ? "task" : "range", d->t0, d->t1,
                                 d->item);
            if (c->kind == CALL_RUN)
                settle_task(c, d);
            else
                settle_range(c, d);
        } else {
            continue;
        }
        desc_free(p, k);
        c->in_flight--;
        settled++;
    }
    return settled;
}

static void progress(call *c, bool final)
{
    if (c->kind != CALL_RUN || c->feed || !c->opts->progress)
        return;
    uint64_t now = crew__now_ns();
    if (!final && now - c->last_progress < PROGRESS_NS)
        return;
    if (!final && c->finished >= c->n)
        return;
    c->last_progress = now;
    c->opts->progress(c->opts->ctx, final ? c->n : c->finished, c->n, c->failed);
}

static bool supervisor_alive(crew__proc *p)
{
    if (atomic_load_explicit(&p->m.hdr->lost, memory_order_acquire))
        return false;
    struct pollfd pf = {.fd = p->supervisor_fd, .events = POLLIN};
    if (p->supervisor_fd >= 0 && poll(&pf, 1, 0) == 1) {
        atomic_store(&p->m.hdr->lost, 1);
        return false;
    }
    return true;
}

/* Every item not handed out ends with this status; a feed gives no more. */
static void end_rest(call *c, int status)
{
    if (c->feed) {
        c->feed_end = true;
        if (c->pending != NO_SLOT) {
            size_t k = c->pending;
            c->pending = NO_SLOT;
            c->slots[k]->status = status;
            finish(c, k, status);
        }
    }
    while (c->n_again || (!c->feed && c->next < c->n)) {
        size_t k = c->n_again ? c->again[--c->n_again] : c->next++;
        if (c->kind == CALL_RUN)
            task_of(c, k)->status = status;
        finish(c, k, status);
    }
}

/* The pool is lost: every item not final gets CREW_ELOST. */
static void give_up(call *c)
{
    proc_shared *h = c->h;
    for (uint32_t k = 0; k < PROC_RING && c->in_flight; k++) {
        proc_desc *d = &c->p->m.ring[k];
        if (atomic_load_explicit(&d->state, memory_order_acquire) == D_FREE)
            continue;
        size_t item = d->item;
        desc_free(c->p, k);
        c->in_flight--;
        if (!hand_again(c, item))
            fail(c, item, CREW_ELOST);
    }
    atomic_store(&h->claim, c->head);
    end_rest(c, CREW_ELOST);
}

/* After a stop: whatever was never handed out is cancelled. */
static void cancel_rest(call *c)
{
    end_rest(c, CREW_ECANCELED);
}

static _Thread_local char caller_token;

/* Run the call to its end.  0, or CREW_ELOST. */
static int drive(crew *pool, call *c)
{
    crew__proc *p = pool->proc;
    proc_shared *h = p->m.hdr;
    c->pool = pool;
    c->p = p;
    c->h = h;
    c->last_progress = crew__now_ns();
    c->head = atomic_load_explicit(&h->head, memory_order_relaxed);
    if (!supervisor_alive(p)) {
        give_up(c);
        return CREW_ELOST;
    }
    int rc = crew__proc_publish_arenas(p);
    if (rc < 0)
        return rc;
    atomic_store_explicit(&h->stop, 0, memory_order_relaxed);
    atomic_store_explicit(&h->stop_after, UINT64_MAX, memory_order_relaxed);
    /* ranges stop on a failure anyway; crash and timeout are seen here */
    h->stop_on_error = c->kind == CALL_RUN && c->opts->stop_on_error;
    atomic_store_explicit(&h->in_call, 1, memory_order_seq_cst);
    if (h->timeout_ns || h->mem_limit_pages)
        crew__proc_poke(p);
    for (;;) {
        uint32_t seen = atomic_load_explicit(&h->done_word, memory_order_seq_cst);
        collect(c);
        if (c->stopped)
            cancel_rest(c);
        refill(c);
        if (c->feed ? c->feed_end && c->pending == NO_SLOT && c->n_again == 0 &&
                          c->in_flight == 0
                    : c->finished == c->n && c->in_flight == 0)
            break;
        progress(c, false);
        atomic_store_explicit(&h->caller_waiting, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&h->done_word, memory_order_seq_cst) == seen)
            crew__futex_wait_shared(&h->done_word, seen,
                                    c->feed_wait ? AGAIN_WAIT_NS : WAIT_NS);
        atomic_store_explicit(&h->caller_waiting, 0, memory_order_relaxed);
        /* A feed that said CREW_EAGAIN is asked again after the next done
         * or this wait: its tasks may come from elsewhere meanwhile. */
        c->feed_wait = false;
        if (!supervisor_alive(p)) {
            give_up(c);
            rc = CREW_ELOST;
            break;
        }
    }
    atomic_store_explicit(&h->in_call, 0, memory_order_relaxed);
    progress(c, true);
    return rc;
}

/* Take the pool for one call; CREW_EBUSY when this thread already has it. */
static int enter(crew__proc *p)
{
    if (atomic_load_explicit(&p->call_owner, memory_order_relaxed) == &caller_token)
        return CREW_EBUSY;
    pthread_mutex_lock(&p->call_lock);
    atomic_store_explicit(&p->call_owner, &caller_token, memory_order_relaxed);
    return 0;
}

static void leave(crew__proc *p)
{
    atomic_store_explicit(&p->call_owner, NULL, memory_order_relaxed);
    pthread_mutex_unlock(&p->call_lock);
}

static bool inside_worker(const crew *pool)
{
    return crew__proc_self && crew__proc_self->hdr == pool->proc->m.hdr;
}

/* ---- the three calls ---------------------------------------------------------- */

static void reset_outcomes(crew_task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        tasks[i].status = 0;
        tasks[i].detail = 0;
        tasks[i].runs = 0;
        tasks[i].fault_addr = 0;
        tasks[i].fault_offset = 0;
    }
}

int crew__proc_run(crew *pool, const void *shared, crew_task *tasks, size_t n,
                   const crew_run_opts *opts)
{
    static const crew_run_opts no_opts;
    if (!opts)
        opts = &no_opts;
    for (size_t i = 0; i < n; i++)
        if (tasks[i].arg_size > CREW_PROC_MAX_BYTES ||
            tasks[i].result_size > CREW_PROC_MAX_BYTES - tasks[i].arg_size ||
            (tasks[i].arg_size && !tasks[i].arg) || (tasks[i].result_size && !tasks[i].result))
            return tasks[i].arg_size > CREW_PROC_MAX_BYTES ||
                           tasks[i].result_size > CREW_PROC_MAX_BYTES - tasks[i].arg_size
                       ? CREW_E2BIG
                       : CREW_EINVAL;
    if (inside_worker(pool)) {
        reset_outcomes(tasks, n);
        size_t failed = 0;
        for (size_t i = 0; i < n; i++) {
            if (failed && opts->stop_on_error) {
                tasks[i].status = CREW_ECANCELED;
            } else {
                int rc = tasks[i].fn(shared, tasks[i].arg, tasks[i].result);
                tasks[i].status = rc < 0 ? CREW_EINVAL : rc;
                tasks[i].runs = 1;
            }
            failed += tasks[i].status != 0;
            if (opts->on_done)
                opts->on_done(opts->ctx, i);
        }
        if (opts->progress)
            opts->progress(opts->ctx, n, n, failed);
        return failed ? CREW_EFAILED : 0;
    }
    /* an arena over memory the workers lack: every task would find it empty */
    if (crew__space_hides(shared, pool->proc->pool_gen))
        return CREW_EINVAL;
    int rc = enter(pool->proc);
    if (rc < 0)
        return rc;
    /* only now: a refused call (CREW_EBUSY) leaves its tasks as they were */
    reset_outcomes(tasks, n);
    call c = {.kind = CALL_RUN, .n = n, .tasks = tasks, .opts = opts};
    proc_shared *h = pool->proc->m.hdr;
    h->kind = CALL_RUN;
    h->shared = shared;
    rc = drive(pool, &c);
    leave(pool->proc);
    free(c.again);
    if (rc < 0)
        return rc;
    return c.failed ? CREW_EFAILED : 0;
}

int crew__proc_run_feed(crew *pool, const void *shared, const crew_feed *feed)
{
    crew_run_opts opts = {.stop_on_error = feed->stop_on_error};
    call c = {.kind = CALL_RUN, .n = SIZE_MAX, .opts = &opts, .feed = feed,
              .pending = NO_SLOT};
    if (inside_worker(pool)) {
        /* Serially, in this worker, as a nested crew_run. */
        bool failed = false;
        for (;;) {
            crew_task *t = NULL;
            int rc = feed->next(feed->ctx, &t);
            /* EAGAIN: nothing is in flight here; or no task, or a value
             * next has no meaning for */
            if (rc == CREW_EAGAIN || (rc > 0 && (rc != 1 || !t)))
                return CREW_EINVAL;
            if (rc <= 0)
                return rc < 0 ? rc : failed ? CREW_EFAILED : 0;
            t->detail = 0;
            t->fault_addr = 0;
            t->fault_offset = 0;
            t->runs = t->fn ? 1 : 0;
            int st = t->fn ? t->fn(shared, t->arg, t->result) : CREW_EINVAL;
            t->status = st < 0 ? CREW_EINVAL : st;
            failed |= t->status != 0;
            feed->done(feed->ctx, t);
            if (failed && feed->stop_on_error)
                return CREW_EFAILED;
        }
    }
    if (crew__space_hides(shared, pool->proc->pool_gen))
        return CREW_EINVAL;
    c.slots = calloc(PROC_RING + 1, sizeof *c.slots);
    c.free_slots = malloc((PROC_RING + 1) * sizeof *c.free_slots);
    int rc = c.slots && c.free_slots ? enter(pool->proc) : CREW_ENOMEM;
    if (rc == 0) {
        for (uint32_t k = 0; k <= PROC_RING; k++)
            c.free_slots[c.n_free_slots++] = PROC_RING - k;
        proc_shared *h = pool->proc->m.hdr;
        h->kind = CALL_RUN;
        h->shared = shared;
        rc = drive(pool, &c);
        leave(pool->proc);
    }
    free(c.slots);
    free(c.free_slots);
    free(c.again);
    if (rc < 0)
        return rc;
    if (c.feed_error)
        return c.feed_error;
    return c.failed ? CREW_EFAILED : 0;
}

/* Ranges for grain 0: each takes a quarter of what is left divided among
 * N workers, never less than a 256th of a worker's share, so there are
 * O(N log n) of them, the first are large and the last small (a slow
 * range at the end holds up little).  Returns the count, or 0 on ENOMEM. */
static size_t guided_bounds(size_t begin, size_t end, unsigned workers, size_t **out)
{
    size_t total = end - begin;
    size_t min = total / ((size_t)workers * 256);
    if (min < 1)
        min = 1;
    size_t cap = 64, n = 0;
    size_t *b = malloc(cap * sizeof *b);
    if (!b)
        return 0;
    b[n++] = begin;
    for (size_t at = begin; at < end;) {
        size_t chunk = (end - at) / ((size_t)workers * 4);
        if (chunk < min)
            chunk = min;
        if (chunk > end - at)
            chunk = end - at;
        at += chunk;
        if (n == cap) {
            size_t *nb = realloc(b, 2 * cap * sizeof *nb);
            if (!nb) {
                free(b);
                return 0;
            }
            b = nb;
            cap *= 2;
        }
        b[n++] = at;
    }
    *out = b;
    return n - 1;
}

static int ranges(crew *pool, call *c)
{
    if (c->grain) {
        c->n = (c->end - c->begin) / c->grain + ((c->end - c->begin) % c->grain != 0);
    } else {
        c->n = guided_bounds(c->begin, c->end, crew__proc_active(pool), &c->bounds);
        if (c->n == 0)
            return CREW_ENOMEM;
    }
    c->runs = calloc(c->n, sizeof *c->runs);
    if (!c->runs)
        return CREW_ENOMEM;
    if (c->kind == CALL_REDUCE) {
        c->acc_size = round_up(c->r->size, CREW_CACHE_LINE);
        if (c->n > SIZE_MAX / c->acc_size)
            return CREW_ENOMEM;
        c->accs = aligned_alloc(CREW_CACHE_LINE, c->n * c->acc_size);
        if (!c->accs)
            return CREW_ENOMEM;
    }
    return 0;
}

static int run_ranges(crew *pool, call *c)
{
    int rc = ranges(pool, c);
    if (rc == 0)
        rc = enter(pool->proc);
    if (rc == 0) {
        proc_shared *h = pool->proc->m.hdr;
        h->kind = (uint32_t)c->kind;
        h->ctx = c->ctx;
        h->body = c->body;
        if (c->kind == CALL_REDUCE) {
            h->r_init = c->r->init;
            h->r_body = c->r->body;
        }
        rc = drive(pool, c);
        leave(pool->proc);
    }
    if (rc == 0)
        rc = c->error;
    return rc;
}

int crew__proc_for(crew *pool, size_t begin, size_t end, size_t grain, crew_range_fn *body,
                   void *ctx)
{
    if (inside_worker(pool)) {
        for (size_t lo = begin; lo < end;) {
            size_t hi = grain && end - lo > grain ? lo + grain : end;
            body(ctx, lo, hi);
            lo = hi;
        }
        return 0;
    }
    call c = {.kind = CALL_FOR, .begin = begin, .end = end, .grain = grain, .ctx = ctx,
              .body = body};
    int rc = run_ranges(pool, &c);
    free(c.bounds);
    free(c.runs);
    free(c.again);
    return rc;
}

int crew__proc_reduce(crew *pool, size_t begin, size_t end, size_t grain,
                      const crew_reducer *r, void *ctx, void *out)
{
    if (r->size > CREW_PROC_MAX_BYTES)
        return CREW_E2BIG;
    /* The caller's *out may be unaligned: fold into an aligned copy. */
    void *acc = aligned_alloc(CREW_CACHE_LINE, round_up(r->size, CREW_CACHE_LINE));
    if (!acc)
        return CREW_ENOMEM;
    r->init(ctx, acc);
    call c = {.kind = CALL_REDUCE, .begin = begin, .end = end, .grain = grain, .ctx = ctx,
              .r = r};
    int rc = 0;
    if (inside_worker(pool)) {
        if (begin < end)
            r->body(ctx, begin, end, acc);
    } else if (begin < end) {
        rc = run_ranges(pool, &c);
        /* left to right, as thread pools combine */
        for (size_t k = 0; rc == 0 && k < c.n; k++)
            r->combine(ctx, acc, c.accs + k * c.acc_size);
    }
    if (rc == 0)
        memcpy(out, acc, r->size);
    free(acc);
    free(c.bounds);
    free(c.runs);
    free(c.again);
    free(c.accs);
    return rc;
}
