/*
 * engine.c -- tasks across the ranks of a communicator.
 *
 * Every rank has two threads in a run.  The calling thread makes every MPI
 * call (so MPI_THREAD_FUNNELED is enough) and, on the root, every call of
 * the source (next/done).  A runner thread drives crew_run_feed on the
 * rank's own pool, fed from a queue of received tasks; its finished tasks
 * go into a batch of results that the calling thread sends.  The root is
 * one of the ranks that run tasks: its chunks go into its own queue
 * without MPI, and its results come back in batches as others' do.
 *
 * The calling thread never blocks in MPI (an MPI library's blocking calls
 * spin, which costs a core on a machine with more ranks than cores): it
 * polls with MPI_Iprobe/MPI_Testsome, and between polls sleeps on a
 * condition variable that the runner signals when it has a full batch or
 * nothing left to run.  The sleep doubles from 20 us while nothing
 * happens, up to 250 us while something may be waiting for this rank (an
 * idle rank for a chunk, a rank starved by a full window for results),
 * else up to 2 ms: every poll takes CPU from the rank's workers.  Results
 * wait at most 200 us to be batched.
 *
 * Messages (native byte order: the ranks of one job share an ABI):
 *   CHUNK   root -> rank  records {u64 id, u64 order, u32 fn, u32 0,
 *                         u64 result_size, u64 arg_size, arg, padding to 8}
 *   RESULTS rank -> root  records {u64 id, i32 status, i32 detail,
 *                         u32 runs, u32 flags, u64 len, bytes, padding to 8}
 *   CANCEL  root -> rank  {u64 order}: drop the tasks not started whose
 *                         order (place in the root's sequence) is >= it
 *   STOP    root -> rank  {i32 rc}: no more tasks; the run's result
 * A batch of results stays below 1 GiB plus one result (at most 1 GiB),
 * so a message's size always fits MPI's int count.
 * Every send is nonblocking: two ranks sending large messages to each
 * other at once must not wait for each other.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpi/engine.h"
#include "mpi/mpi_internal.h"

#define BATCH_BYTES ((size_t)1 << 20) /* results sent at once past this */
#define BATCH_MAX ((size_t)1 << 30)   /* a result that would pass this waits */
#define BATCH_WAIT 200e-6             /* ... or once the oldest waited this */
#define POLL_MIN 20e-6
#define POLL_MAX 250e-6  /* ... while something may be waiting for this rank */
#define POLL_BUSY 2e-3   /* ... while it has work queued: its polls cost its workers CPU */

/* ---- byte buffers ---------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_reserve(buf *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->len)
        return CREW_ENOMEM;
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return CREW_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_put(buf *b, const void *p, size_t n)
{
    if (n) /* p may be NULL then */
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void buf_pad(buf *b)
{
    while (b->len % 8)
        b->p[b->len++] = 0;
}

static size_t padded(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- records ----------------------------------------------------------------- */

typedef struct chunk_rec {
    uint64_t id, order;
    uint32_t fn, zero;
    uint64_t result_size, arg_size;
} chunk_rec;

typedef struct result_rec {
    uint64_t id;
    int32_t status, detail;
    uint32_t runs, flags;
    uint64_t len;
} result_rec;

enum {
    RES_NOT_RUN = 1, /* the task never started on that rank */
    RES_DOWN = 2,    /* that rank's pool is gone (or failed): it takes no more */
};

/* Appends a result record (the buffer has room for one without bytes:
 * runner_collect sees to it); with no memory for the bytes, the record
 * says so instead (the root fails that task rather than lose it). */
static void put_result(buf *b, uint64_t id, int status, int detail, unsigned runs,
                       unsigned flags, const void *bytes, size_t len)
{
    result_rec r = {.id = id, .status = status, .detail = detail, .runs = runs,
                    .flags = flags, .len = len};
    if (len > CREW__MPI_MAX_BYTES || buf_reserve(b, sizeof r + padded(len)) != 0) {
        r.status = len > CREW__MPI_MAX_BYTES ? CREW_E2BIG : CREW_ENOMEM;
        r.len = 0;
        len = 0;
        if (buf_reserve(b, sizeof r) != 0)
            abort(); /* not even 48 bytes: nothing can go on */
    }
    buf_put(b, &r, sizeof r);
    buf_put(b, bytes, len);
    buf_pad(b);
}

/* ---- the runner: this rank's pool ------------------------------------------------ */

typedef struct runner {
    pthread_mutex_t mu;
    pthread_cond_t more;      /* runner waits: tasks came, or no_more */
    pthread_cond_t events;    /* calling thread waits: results, or finished */
    pthread_cond_t drained;   /* a worker waits: the batch was taken */
    crew__mpi_job *jobs, *free_jobs;
    crew__mpi_job **queue;    /* ring of jobs received, not started */
    size_t cap, head, n_queued;
    size_t running;           /* given to crew, not done */
    buf results;              /* finished, not sent yet */
    size_t n_results;
    double first_result_at;
    bool no_more, finished, caller_waiting;
    int run_rc;
    int stop_on_error;
    crew *pool;
    const void *shared;
    const crew__mpi_hooks *hooks;
    pthread_t thread;
} runner;

/* Under r->mu. */
static void add_result(runner *r, uint64_t id, int status, int detail, unsigned runs,
                       unsigned flags, const void *bytes, size_t len)
{
    if (!r->n_results)
        r->first_result_at = now();
    put_result(&r->results, id, status, detail, runs, flags, bytes, len);
    r->n_results++;
}

static void drop_job(runner *r, crew__mpi_job *j)
{
    if (j->made && r->hooks->release)
        r->hooks->release(r->hooks->ctx, j);
    free(j->arg);
    j->arg = NULL;
    j->made = false;
    pthread_mutex_lock(&r->mu);
    j->next_free = r->free_jobs;
    r->free_jobs = j;
    pthread_mutex_unlock(&r->mu);
}

/* A task that will not start here fails with status (flags: RES_...). */
static void fail_job(runner *r, crew__mpi_job *j, int status, unsigned flags)
{
    pthread_mutex_lock(&r->mu);
    add_result(r, j->id, status, 0, 0, flags | RES_NOT_RUN, NULL, 0);
    pthread_mutex_unlock(&r->mu);
    drop_job(r, j);
}

static int local_next(void *ctx, crew_task **task)
{
    runner *r = ctx;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->n_queued) {
            crew__mpi_job *j = r->queue[r->head];
            r->head = (r->head + 1) % r->cap;
            r->n_queued--;
            r->running++;
            pthread_mutex_unlock(&r->mu);
            memset(&j->task, 0, sizeof j->task);
            int st = r->hooks->make(r->hooks->ctx, j);
            if (st == 0) {
                j->made = true;
                *task = &j->task;
                return 1;
            }
            fail_job(r, j, st, 0);
            pthread_mutex_lock(&r->mu);
            r->running--;
            continue;
        }
        if (r->no_more) {
            pthread_mutex_unlock(&r->mu);
            return 0;
        }
        if (r->running) {
            /* crew asks again after the next done, or a few ms later
             * (tasks may come from the network meanwhile) */
            pthread_mutex_unlock(&r->mu);
            return CREW_EAGAIN;
        }
        if (r->caller_waiting)
            pthread_cond_signal(&r->events);
        pthread_cond_wait(&r->more, &r->mu);
    }
}

static void local_done(void *ctx, crew_task *task)
{
    runner *r = ctx;
    crew__mpi_job *j = (crew__mpi_job *)task;
    const void *bytes = NULL;
    size_t len = r->hooks->reply(r->hooks->ctx, j, &bytes);
    pthread_mutex_lock(&r->mu);
    /* A batch stays below BATCH_MAX plus one result, so that its size
     * fits MPI's int count: wait for the calling thread to take it. */
    while (r->n_results && r->results.len + len > BATCH_MAX) {
        pthread_cond_signal(&r->events);
        pthread_cond_wait(&r->drained, &r->mu);
    }
    /* runs 0: never started (cancelled, or queued in a pool that was lost) */
    unsigned flags = (task->runs == 0 ? RES_NOT_RUN : 0) |
                     (task->status == CREW_ELOST ? RES_DOWN : 0);
    add_result(r, j->id, task->status, task->detail, task->runs, flags, bytes, len);
    pthread_mutex_unlock(&r->mu);
    drop_job(r, j);
    pthread_mutex_lock(&r->mu);
    r->running--;
    /* Wake a sleeping caller for the first result of a batch (it then
     * sleeps until the batch is due), a full batch, or an idle rank. */
    if (r->caller_waiting && (r->n_results == 1 || r->results.len >= BATCH_BYTES ||
                              (!r->running && !r->n_queued)))
        pthread_cond_signal(&r->events);
    pthread_mutex_unlock(&r->mu);
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    /* With stop_on_error this rank stops at its own failure at once (the
     * root's cancel follows for the others). */
    crew_feed feed = {.next = local_next, .done = local_done, .ctx = r,
                      .stop_on_error = r->stop_on_error};
    int rc = crew_run_feed(r->pool, r->shared, &feed);
    pthread_mutex_lock(&r->mu);
    r->finished = true;
    r->run_rc = rc == CREW_EFAILED ? 0 : rc;
    pthread_cond_signal(&r->events);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int runner_init(runner *r, crew *pool, const void *shared, const crew__mpi_hooks *hooks,
                       size_t cap, int stop_on_error)
{
    memset(r, 0, sizeof *r);
    r->pool = pool;
    r->shared = shared;
    r->hooks = hooks;
    r->cap = cap;
    r->stop_on_error = stop_on_error;
    r->jobs = calloc(cap, sizeof *r->jobs);
    r->queue = calloc(cap, sizeof *r->queue);
    if (!r->jobs || !r->queue || buf_reserve(&r->results, 4096) != 0) {
        free(r->jobs);
        free(r->queue);
        free(r->results.p);
        return CREW_ENOMEM;
    }
    for (size_t i = cap; i-- > 0;) {
        r->jobs[i].next_free = r->free_jobs;
        r->free_jobs = &r->jobs[i];
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->more, NULL);
    pthread_cond_init(&r->events, &ca);
    pthread_cond_init(&r->drained, NULL);
    pthread_condattr_destroy(&ca);
    return 0;
}

static void runner_start(runner *r)
{
    if (pthread_create(&r->thread, NULL, runner_main, r) != 0) {
        /* Run nothing; every task given fails with CREW_EAGAIN. */
        r->finished = true;
        r->run_rc = CREW_EAGAIN;
        r->thread = pthread_self();
    }
}

/* started: runner_start was called. */
static void runner_stop(runner *r, bool started)
{
    pthread_mutex_lock(&r->mu);
    r->no_more = true;
    pthread_cond_signal(&r->more);
    pthread_mutex_unlock(&r->mu);
    if (started && !pthread_equal(r->thread, pthread_self()))
        pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->more);
    pthread_cond_destroy(&r->events);
    pthread_cond_destroy(&r->drained);
    free(r->jobs);
    free(r->queue);
    free(r->results.p);
}

/* Queue the tasks of a chunk (the root's own, or one received).  A task
 * the runner can no longer take fails at once. */
static void runner_take(runner *r, const char *p, size_t len)
{
    size_t at = 0;
    while (len - at >= sizeof(chunk_rec)) {
        chunk_rec c;
        memcpy(&c, p + at, sizeof c);
        at += sizeof c;
        if (c.arg_size > len - at)
            break; /* cannot happen: we wrote it */
        const char *arg = p + at;
        at += padded(c.arg_size);
        pthread_mutex_lock(&r->mu);
        crew__mpi_job *j = r->free_jobs;
        if (j)
            r->free_jobs = j->next_free;
        bool dead = r->finished;
        int rc = r->run_rc;
        if (!j) /* cannot happen: the root gives no rank more than cap */
            add_result(r, c.id, CREW_ENOMEM, 0, 0, RES_NOT_RUN, NULL, 0);
        pthread_mutex_unlock(&r->mu);
        if (!j)
            continue;
        j->id = c.id;
        j->order = c.order;
        j->fn = c.fn;
        j->result_size = c.result_size;
        j->arg_size = c.arg_size;
        j->made = false;
        j->user = NULL;
        j->arg = malloc(c.arg_size ? c.arg_size : 1);
        if (!j->arg || dead) {
            if (!j->arg)
                fail_job(r, j, CREW_ENOMEM, 0);
            else /* its pool ended: failed (lost), or stopped after a failure */
                fail_job(r, j, rc ? rc : CREW_ECANCELED, rc ? RES_DOWN : 0);
            continue;
        }
        memcpy(j->arg, arg, c.arg_size);
        pthread_mutex_lock(&r->mu);
        r->queue[(r->head + r->n_queued) % r->cap] = j;
        r->n_queued++;
        pthread_cond_signal(&r->more);
        pthread_mutex_unlock(&r->mu);
    }
}

/* Tasks queued and not started whose order is >= from: cancelled (a
 * stop), or failed with `status` and `flags` (the pool is gone). */
static void runner_drop_queued(runner *r, uint64_t from, int status, unsigned flags)
{
    pthread_mutex_lock(&r->mu);
    size_t kept = 0, n = r->n_queued;
    crew__mpi_job *drop[64];
    size_t n_drop = 0;
    for (size_t i = 0; i < n; i++) {
        crew__mpi_job *j = r->queue[(r->head + i) % r->cap];
        if (j->order >= from && n_drop < sizeof drop / sizeof drop[0]) {
            add_result(r, j->id, status, 0, 0, flags | RES_NOT_RUN, NULL, 0);
            drop[n_drop++] = j;
        } else {
            r->queue[(r->head + kept++) % r->cap] = j;
        }
    }
    r->n_queued = kept;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n_drop; i++)
        drop_job(r, drop[i]);
    if (n_drop == sizeof drop / sizeof drop[0])
        runner_drop_queued(r, from, status, flags); /* more than one batch */
}

/* Take the batch of results if it should go now (or `force`): true and
 * *out holds it.  The runner gets a new buffer, so it always has room for
 * a record without bytes. */
static bool runner_collect(runner *r, buf *out, bool force)
{
    pthread_mutex_lock(&r->mu);
    bool due = r->n_results && (force || r->results.len >= BATCH_BYTES ||
                                now() - r->first_result_at >= BATCH_WAIT ||
                                (!r->running && !r->n_queued));
    /* A runner that ended early (its pool is lost) fails what it holds. */
    bool dead = r->finished && r->n_queued;
    int rc = r->run_rc;
    pthread_mutex_unlock(&r->mu);
    if (dead)
        runner_drop_queued(r, 0, rc ? rc : CREW_ECANCELED, rc ? RES_DOWN : 0);
    if (!due)
        return false;
    buf fresh = {0};
    if (buf_reserve(&fresh, 64 << 10) != 0)
        return false; /* try again at the next poll */
    pthread_mutex_lock(&r->mu);
    free(out->p);
    *out = r->results;
    r->results = fresh;
    r->n_results = 0;
    pthread_cond_broadcast(&r->drained);
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* Sleep until the runner has something, or `wait` seconds passed. */
static void runner_wait(runner *r, double wait)
{
    pthread_mutex_lock(&r->mu);
    if (r->n_results && ((!r->running && !r->n_queued) || r->results.len >= BATCH_BYTES)) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->n_results) {
        double left = r->first_result_at + BATCH_WAIT - now();
        if (left < wait)
            wait = left;
    }
    if (wait > 0 && !(r->finished && r->n_queued)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double end = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + wait;
        ts.tv_sec = (time_t)end;
        ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
        r->caller_waiting = true;
        pthread_cond_timedwait(&r->events, &r->mu, &ts);
        r->caller_waiting = false;
    }
    pthread_mutex_unlock(&r->mu);
}

static bool runner_idle(runner *r)
{
    pthread_mutex_lock(&r->mu);
    bool idle = r->finished && !r->n_queued && !r->running && !r->n_results;
    pthread_mutex_unlock(&r->mu);
    return idle;
}

/* ---- sends in flight --------------------------------------------------------------- */

typedef struct sends {
    MPI_Request *req;
    buf *bufs;
    size_t n, cap;
} sends;

/* Send b's bytes without waiting; b's memory goes with them (b is left
 * empty).  On failure (no memory) b is left as it was. */
static int send_bytes(sends *s, MPI_Comm comm, int to, int tag, buf *b)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        MPI_Request *req = realloc(s->req, cap * sizeof *req);
        if (!req)
            return CREW_ENOMEM;
        s->req = req;
        buf *bufs = realloc(s->bufs, cap * sizeof *bufs);
        if (!bufs)
            return CREW_ENOMEM;
        s->bufs = bufs;
        s->cap = cap;
    }
    s->bufs[s->n] = *b;
    *b = (buf){0};
    MPI_Isend(s->bufs[s->n].p, (int)s->bufs[s->n].len, MPI_BYTE, to, tag, comm, &s->req[s->n]);
    s->n++;
    return 0;
}

/* Free what has gone; wait_all: wait for all of it. */
static void sends_test(sends *s, bool wait_all)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        int done = 0;
        if (wait_all)
            MPI_Wait(&s->req[i], MPI_STATUS_IGNORE), done = 1;
        else
            MPI_Test(&s->req[i], &done, MPI_STATUS_IGNORE);
        if (done) {
            free(s->bufs[i].p);
        } else {
            s->req[k] = s->req[i];
            s->bufs[k] = s->bufs[i];
            k++;
        }
    }
    s->n = k;
}

static void sends_free(sends *s)
{
    sends_test(s, true);
    free(s->req);
    free(s->bufs);
}

/* Receive the message MPI_Iprobe found into b; CREW_ENOMEM leaves it on
 * the wire, to be tried again at the next poll. */
static int recv_probed(MPI_Comm comm, MPI_Status *st, buf *b)
{
    int count = 0;
    MPI_Get_count(st, MPI_BYTE, &count);
    b->len = 0;
    if (count < 0 || buf_reserve(b, (size_t)count + 1) != 0)
        return CREW_ENOMEM;
    MPI_Recv(b->p, count, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, comm, MPI_STATUS_IGNORE);
    b->len = (size_t)count;
    return 0;
}

/* ---- a rank that is not the root ----------------------------------------------- */

static int serve(MPI_Comm comm, int root, runner *r)
{
    sends out = {0};
    buf in = {0}, batch = {0};
    int rc = 0;
    bool stopped = false;
    double poll = POLL_MIN;
    for (;;) {
        bool progress = false;
        int flag = 0;
        MPI_Status st;
        while (!stopped && MPI_Iprobe(root, MPI_ANY_TAG, comm, &flag, &st) == MPI_SUCCESS &&
               flag) {
            if (recv_probed(comm, &st, &in) != 0)
                break;
            progress = true;
            if (st.MPI_TAG == CREW__TAG_CHUNK) {
                runner_take(r, in.p, in.len);
            } else if (st.MPI_TAG == CREW__TAG_CANCEL) {
                uint64_t from = 0;
                if (in.len >= sizeof from)
                    memcpy(&from, in.p, sizeof from);
                runner_drop_queued(r, from, CREW_ECANCELED, 0);
            } else if (st.MPI_TAG == CREW__TAG_STOP) {
                int32_t v = 0;
                if (in.len >= sizeof v)
                    memcpy(&v, in.p, sizeof v);
                rc = v;
                stopped = true;
                pthread_mutex_lock(&r->mu);
                r->no_more = true;
                pthread_cond_signal(&r->more);
                pthread_mutex_unlock(&r->mu);
            }
        }
        /* A batch that could not be sent (no memory) is sent first. */
        if (batch.len || runner_collect(r, &batch, stopped)) {
            if (send_bytes(&out, comm, root, CREW__TAG_RESULTS, &batch) == 0)
                progress = true;
        }
        sends_test(&out, false);
        if (stopped && !batch.len && runner_idle(r))
            break;
        if (progress) {
            poll = POLL_MIN;
        } else {
            runner_wait(r, poll);
            pthread_mutex_lock(&r->mu);
            double cap = r->n_queued ? POLL_BUSY : POLL_MAX;
            pthread_mutex_unlock(&r->mu);
            poll = poll * 2 > cap ? cap : poll * 2;
        }
    }
    sends_free(&out);
    free(in.p);
    free(batch.p);
    return rc;
}

/* ---- the root --------------------------------------------------------------------- */

typedef struct inflight_task {
    crew_mpi_task *t;
    uint64_t order;
} inflight_task;

typedef struct root_state {
    MPI_Comm comm;
    int me, size;
    const crew__mpi_source *src;
    size_t n_fns, chunk_max;
    uint32_t *workers;       /* per rank; 0 once its pool is lost */
    uint64_t *inflight;      /* per rank */
    uint64_t *last_chunk;    /* per rank */
    uint64_t total_inflight, given;
    inflight_task *by_id;    /* id -> task */
    uint64_t *free_ids;
    size_t n_free_ids, n_ids;
    uint64_t workers_all;
    uint64_t cancel_from;    /* tasks from this order on are cancelled */
    inflight_task *again;    /* tasks a lost rank never started: for the others */
    size_t n_again, cap_again;
    bool exhausted, stopping, any_failed;
    int err, down_rc;        /* down_rc: the first failure of a rank's pool */
    runner *r;
    sends out;
    buf in, chunk, batch;
} root_state;

static void deliver(root_state *s, crew_mpi_task *t, int status, int detail, unsigned runs,
                    int rank, const void *bytes, size_t len)
{
    t->status = status;
    t->detail = detail;
    t->runs = runs;
    t->rank = rank;
    if (status != 0)
        s->any_failed = true;
    s->src->done(s->src->ctx, t, bytes, len);
}

/* Give out no more, and cancel every task not started from order `from`
 * on, on every rank. */
static void stop_from(root_state *s, uint64_t from)
{
    s->stopping = true;
    if (from >= s->cancel_from)
        return;
    s->cancel_from = from;
    for (int k = 0; k < s->size; k++) {
        if (k == s->me) {
            runner_drop_queued(s->r, from, CREW_ECANCELED, 0);
        } else {
            buf b = {0};
            if (buf_reserve(&b, sizeof from) == 0) {
                buf_put(&b, &from, sizeof from);
                if (send_bytes(&s->out, s->comm, k, CREW__TAG_CANCEL, &b) != 0)
                    free(b.p); /* no memory: those tasks just run */
            }
        }
    }
}

/* Keep a task for another rank; false when there is no memory. */
static bool give_again(root_state *s, inflight_task it)
{
    if (s->n_again == s->cap_again) {
        size_t cap = s->cap_again ? 2 * s->cap_again : 64;
        inflight_task *a = realloc(s->again, cap * sizeof *a);
        if (!a)
            return false;
        s->again = a;
        s->cap_again = cap;
    }
    s->again[s->n_again++] = it;
    return true;
}

static void take_results(root_state *s, int rank, const char *p, size_t len)
{
    size_t at = 0;
    while (len - at >= sizeof(result_rec)) {
        result_rec rr;
        memcpy(&rr, p + at, sizeof rr);
        at += sizeof rr;
        if (rr.len > len - at || rr.id >= s->n_ids || !s->by_id[rr.id].t)
            break; /* cannot happen: we wrote it */
        inflight_task it = s->by_id[rr.id];
        s->by_id[rr.id].t = NULL;
        s->free_ids[s->n_free_ids++] = rr.id;
        s->inflight[rank]--;
        s->total_inflight--;
        const char *bytes = p + at;
        at += padded(rr.len);
        if (rr.flags & RES_DOWN) {
            /* That rank's pool is gone (or could not run): it gets no
             * more, and what it never started goes to the others. */
            if (s->workers[rank]) {
                s->workers[rank] = 0;
                if (!s->down_rc)
                    s->down_rc = rr.status;
            }
            if ((rr.flags & RES_NOT_RUN) && it.order < s->cancel_from && give_again(s, it))
                continue;
        }
        bool ran = !(rr.flags & RES_NOT_RUN);
        deliver(s, it.t, rr.status, rr.detail, rr.runs, ran ? rank : -1, bytes, rr.len);
        if (rr.status != 0 && s->src->stop_on_error)
            stop_from(s, it.order + 1);
    }
}

/* A chunk that could not be sent (no memory): its tasks fail here. */
static void fail_chunk(root_state *s, int k)
{
    size_t at = 0;
    while (s->chunk.len - at >= sizeof(chunk_rec)) {
        chunk_rec c;
        memcpy(&c, s->chunk.p + at, sizeof c);
        at += sizeof c + padded(c.arg_size);
        crew_mpi_task *t = s->by_id[c.id].t;
        s->by_id[c.id].t = NULL;
        s->free_ids[s->n_free_ids++] = c.id;
        s->inflight[k]--;
        s->total_inflight--;
        deliver(s, t, CREW_ENOMEM, 0, 0, -1, NULL, 0);
    }
    s->chunk.len = 0;
}

/* A rank holds at most this many tasks (two chunks and twice its workers). */
static size_t rank_cap(size_t chunk_max, uint32_t workers)
{
    return 2 * chunk_max + 2 * (size_t)workers;
}

/* Whether rank k should get a chunk now: when it holds fewer than two
 * tasks per worker (so the next chunk arrives before it runs dry).  When
 * the total is unknown (a stream: chunks of a fixed size), also as soon as
 * it is down to its last chunk: two chunks in flight hide the round trip.
 * With a known total, chunks shrink toward the end, and a second chunk
 * queued on one rank could be what another, idle by then, should have run
 * (measured: heavy tasks on 2 ranks ran about 4% slower with it). */
static bool hungry(root_state *s, int k)
{
    uint64_t w = s->workers[k];
    uint64_t low = 2 * w;
    if (!s->src->total && s->last_chunk[k] > low)
        low = s->last_chunk[k];
    return w && s->inflight[k] < low;
}

/* How many tasks rank k gets now: about remaining / (2 x all workers) per
 * worker of k while the total is known, 16 per worker when not. */
static size_t chunk_size(root_state *s, int k)
{
    uint64_t w = s->workers[k];
    uint64_t want;
    if (s->src->total) {
        uint64_t left = s->src->total > s->given ? s->src->total - s->given : 1;
        want = (left + 2 * s->workers_all - 1) / (2 * s->workers_all) * w;
    } else {
        want = 16 * w;
    }
    if (want > s->chunk_max)
        want = s->chunk_max;
    uint64_t room = rank_cap(s->chunk_max, s->workers[k]) - s->inflight[k];
    if (want > room)
        want = room;
    return want ? (size_t)want : 1;
}

/* Add task t to rank k's chunk: 1, or 0 when it failed at once (it was
 * delivered). */
static size_t put_task(root_state *s, int k, crew_mpi_task *t, uint64_t order)
{
    int bad = t->fn >= s->n_fns || (t->arg_size && !t->arg) ? CREW_EINVAL
              : t->arg_size > CREW__MPI_MAX_BYTES || t->result_size > CREW__MPI_MAX_BYTES
                  ? CREW_E2BIG
              : buf_reserve(&s->chunk, sizeof(chunk_rec) + padded(t->arg_size)) != 0
                  ? CREW_ENOMEM
                  : 0;
    if (bad) {
        deliver(s, t, bad, 0, 0, -1, NULL, 0);
        if (s->src->stop_on_error)
            stop_from(s, order + 1);
        return 0;
    }
    chunk_rec c = {.id = s->free_ids[--s->n_free_ids], .order = order, .fn = t->fn,
                   .result_size = t->result_size, .arg_size = t->arg_size};
    s->by_id[c.id] = (inflight_task){t, order};
    buf_put(&s->chunk, &c, sizeof c);
    buf_put(&s->chunk, t->arg, t->arg_size);
    buf_pad(&s->chunk);
    s->inflight[k]++;
    s->total_inflight++;
    return 1;
}

/* Fill rank k's next chunk from the source; false when nothing was given. */
static bool hand_out(root_state *s, int k)
{
    size_t want = chunk_size(s, k), n = 0;
    s->chunk.len = 0;
    while (n < want && s->chunk.len < BATCH_BYTES &&
           (s->n_again || (!s->exhausted && !s->stopping))) {
        if (s->n_again) {
            inflight_task it = s->again[--s->n_again];
            if (it.order >= s->cancel_from) {
                deliver(s, it.t, CREW_ECANCELED, 0, 0, -1, NULL, 0);
                continue;
            }
            n += put_task(s, k, it.t, it.order);
            continue;
        }
        crew_mpi_task *t = NULL;
        int rc = s->src->next(s->src->ctx, &t);
        if (rc == 0) {
            s->exhausted = true;
            break;
        }
        if (rc == CREW_EAGAIN) {
            if (!s->total_inflight && !n) {
                s->err = CREW_EINVAL; /* nothing will ever come back */
                stop_from(s, 0);
            }
            break;
        }
        if (rc != 1 || !t) {
            s->err = rc < 0 ? rc : CREW_EINVAL;
            stop_from(s, 0);
            break;
        }
        n += put_task(s, k, t, s->given++);
    }
    if (!n)
        return false;
    s->last_chunk[k] = n;
    if (k == s->me)
        runner_take(s->r, s->chunk.p, s->chunk.len);
    else if (send_bytes(&s->out, s->comm, k, CREW__TAG_CHUNK, &s->chunk) != 0)
        fail_chunk(s, k);
    return true;
}

static int lead(root_state *s)
{
    double poll = POLL_MIN;
    int next_rank = 0;
    for (;;) {
        bool progress = false;
        int flag = 0;
        MPI_Status st;
        while (MPI_Iprobe(MPI_ANY_SOURCE, CREW__TAG_RESULTS, s->comm, &flag, &st) ==
                   MPI_SUCCESS && flag) {
            if (recv_probed(s->comm, &st, &s->in) != 0)
                break;
            progress = true;
            take_results(s, st.MPI_SOURCE, s->in.p, s->in.len);
        }
        /* The root's own results are batched too: taking each at once
         * would wake this thread once per task. */
        if (runner_collect(s->r, &s->batch, false)) {
            progress = true;
            take_results(s, s->me, s->batch.p, s->batch.len);
        }
        /* Every rank that runs low gets a chunk, in turn. */
        bool alive = false, starved = false;
        for (int i = 0; i < s->size; i++) {
            int k = (next_rank + i) % s->size;
            alive |= s->workers[k] != 0;
            if ((s->n_again || (!s->exhausted && !s->stopping)) && hungry(s, k)) {
                if (hand_out(s, k))
                    progress = true;
                starved |= hungry(s, k); /* still: the source said EAGAIN */
            }
        }
        next_rank = (next_rank + 1) % s->size;
        if (!alive && !s->total_inflight && (s->n_again || (!s->exhausted && !s->stopping))) {
            /* No rank can run the rest: what a lost rank left fails as it
             * did there, and nothing more is given out. */
            while (s->n_again) {
                inflight_task it = s->again[--s->n_again];
                deliver(s, it.t, s->down_rc, 0, 0, -1, NULL, 0);
            }
            stop_from(s, 0);
        }
        if ((s->exhausted || s->stopping) && !s->total_inflight && !s->n_again)
            break;
        sends_test(&s->out, false);
        if (progress) {
            poll = POLL_MIN;
        } else {
            /* Nothing from other ranks can wake us: poll them, often
             * while a rank waits for tasks that only a result can free. */
            runner_wait(s->r, s->size > 1 ? poll : 0.05);
            double cap = starved ? POLL_MAX : POLL_BUSY;
            poll = poll * 2 > cap ? cap : poll * 2;
        }
    }
    int rc = s->err          ? s->err
             : s->down_rc    ? s->down_rc
             : s->any_failed ? CREW_EFAILED
                             : 0;
    int32_t v = rc;
    for (int k = 0; k < s->size; k++)
        if (k != s->me) /* 4 bytes: sent at once, whatever the receiver does */
            MPI_Send(&v, 1, MPI_INT32_T, k, CREW__TAG_STOP, s->comm);
    sends_free(&s->out);
    return rc;
}

/* ---- the run --------------------------------------------------------------------------- */

static uint64_t names_hash(const char *const *names, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ n;
    for (size_t i = 0; i < n; i++) {
        for (const char *c = names[i] ? names[i] : ""; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

int crew__mpi_engine(MPI_Comm comm_in, int root, crew *pool, const void *shared,
                     const char *const *names, size_t n_fns, const crew__mpi_source *src,
                     const crew__mpi_hooks *hooks)
{
    int inited = 0, finalized = 0, level = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized || comm_in == MPI_COMM_NULL)
        return CREW_EINVAL;
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_FUNNELED)
        return CREW_ENOTSUP;
    int me, size;
    MPI_Comm_rank(comm_in, &me);
    MPI_Comm_size(comm_in, &size);
    if (root < 0 || root >= size)
        return CREW_EINVAL;
    MPI_Comm comm;
    if (MPI_Comm_dup(comm_in, &comm) != MPI_SUCCESS)
        return CREW_EIO;

    /* Agree on the table, the chunk size and the stop rule before
     * anything runs. */
    size_t chunk_max = hooks && hooks->chunk_max ? hooks->chunk_max : 1024;
    if (chunk_max > CREW__MPI_CHUNK_MAX)
        chunk_max = CREW__MPI_CHUNK_MAX; /* a rank's slots are sized by it */
    uint64_t stop = me == root && src ? (uint64_t)(src->stop_on_error != 0) : 0;
    uint64_t mine[3] = {n_fns, names_hash(names, n_fns), chunk_max};
    uint64_t roots[4] = {mine[0], mine[1], mine[2], stop};
    MPI_Bcast(roots, 4, MPI_UINT64_T, root, comm);
    int ok = pool && hooks && hooks->make && hooks->reply && (n_fns == 0 || names) &&
             memcmp(mine, roots, sizeof mine) == 0 &&
             (me != root || (src && src->next && src->done));
    uint32_t workers = pool ? crew_workers(pool) : 1;
    if (!workers)
        workers = 1;
    size_t cap = rank_cap(chunk_max, workers);
    runner r;
    int rc = 0, have_runner = 0;
    if (ok && (rc = hooks->prepare ? hooks->prepare(hooks->ctx, cap) : 0) != 0)
        ok = 0;
    if (ok && runner_init(&r, pool, shared, hooks, cap, (int)roots[3]) != 0) {
        ok = 0;
        rc = CREW_ENOMEM;
    }
    have_runner = ok;
    uint32_t *counts = me == root ? calloc((size_t)size, sizeof *counts) : NULL;
    if (me == root && !counts) {
        ok = 0;
        rc = CREW_ENOMEM;
    }
    int all_ok = 0, all_rc = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    MPI_Allreduce(&rc, &all_rc, 1, MPI_INT, MPI_MIN, comm);
    if (!all_ok) {
        if (have_runner)
            runner_stop(&r, false);
        free(counts);
        MPI_Comm_free(&comm);
        return all_rc ? all_rc : CREW_EINVAL;
    }
    MPI_Gather(&workers, 1, MPI_UINT32_T, counts, 1, MPI_UINT32_T, root, comm);
    runner_start(&r);

    if (me != root) {
        rc = serve(comm, root, &r);
        runner_stop(&r, true);
        MPI_Comm_free(&comm);
        return rc;
    }

    root_state s = {.comm = comm, .me = me, .size = size, .src = src, .n_fns = n_fns,
                    .chunk_max = chunk_max, .workers = counts, .r = &r,
                    .cancel_from = UINT64_MAX};
    size_t ids = 0;
    for (int k = 0; k < size; k++) {
        s.workers_all += counts[k];
        ids += rank_cap(chunk_max, counts[k]);
    }
    s.n_ids = ids;
    s.inflight = calloc((size_t)size, sizeof *s.inflight);
    s.last_chunk = calloc((size_t)size, sizeof *s.last_chunk);
    s.by_id = calloc(ids, sizeof *s.by_id);
    s.free_ids = malloc(ids * sizeof *s.free_ids);
    if (!s.inflight || !s.last_chunk || !s.by_id || !s.free_ids) {
        s.err = CREW_ENOMEM;
        s.exhausted = true;
    } else {
        for (size_t i = 0; i < ids; i++)
            s.free_ids[s.n_free_ids++] = ids - 1 - i;
    }
    rc = lead(&s);
    runner_stop(&r, true);
    free(s.inflight);
    free(s.last_chunk);
    free(s.by_id);
    free(s.free_ids);
    free(s.again);
    free(s.in.p);
    free(s.chunk.p);
    free(s.batch.p);
    free(counts);
    MPI_Comm_free(&comm);
    return rc;
}
