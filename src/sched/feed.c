/*
 * feed.c -- crew_run_feed on a thread pool: tasks pulled from a feed while
 * the run goes on.
 *
 * Participants join as in run.c, by a job that copies itself, but take
 * their tasks from feed->next instead of a counter, under one lock that
 * also serializes done (the feed is the user's, and need not be thread-
 * safe).  Unlike crew_run, a feed may last as long as its input: the
 * number of participants follows crew_resize.  A worker beyond N leaves
 * after its task; when there are fewer participants than N and no copy of
 * the job is waiting in a deque, a participant pushes one, which the new
 * worker steals.  Each participant has at most one copy of its own in its
 * deque (it pushes only when no copy is waiting anywhere), and pops it
 * back, if still there, when it leaves.
 */
#include <pthread.h>
#include <time.h>

#include "internal.h"

#define AGAIN_WAIT_NS 2000000L /* after CREW_EAGAIN, next is asked again within 2 ms */

typedef struct feed_state {
    crew__job job;            /* pushed many times: holds no per-copy state */
    const void *shared;
    const crew_feed *feed;
    pthread_mutex_t lock;     /* guards everything below, and feed calls */
    pthread_cond_t finished;  /* a task finished, or the feed ended */
    unsigned participants;
    unsigned waiting_copies;  /* pushed and neither started nor popped back */
    size_t in_flight;
    uint64_t seq;             /* tasks taken, for the trace */
    bool ended, failed;
    int error;
    crew__latch copies;       /* copies pushed and not yet finished */
} feed_state;

static void end_feed(feed_state *st, int error)
{
    st->ended = true;
    if (error && !st->error)
        st->error = error;
    pthread_cond_broadcast(&st->finished);
}

/* Under the lock: push a copy of the job when N has room for another
 * participant and no copy is waiting for a thief. */
static bool maybe_push(crew__worker *w, feed_state *st)
{
    if (st->ended || st->waiting_copies ||
        st->participants >= crew__pool_active(w->pool))
        return false;
    crew__latch_add(&st->copies, 1);
    if (!crew__work_push(w, &st->job)) {
        crew__latch_done(&st->copies);
        return false;
    }
    st->waiting_copies++;
    return true;
}

static void run_task(crew__worker *w, feed_state *st, crew_task *t, uint64_t seq)
{
    t->detail = 0;
    t->fault_addr = 0;
    t->fault_offset = 0;
    if (!t->fn) {
        t->runs = 0;
        t->status = CREW_EINVAL;
        return;
    }
    t->runs = 1;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    int rc = t->fn(st->shared, t->arg, t->result);
    t->status = rc < 0 ? CREW_EINVAL : rc; /* negative is reserved for crew */
    if (w->pool->tracing)
        crew__trace_add(&w->trace, "task", t0, seq);
    crew__count(&w->jobs, 1);
}

/* entry: the call's own participant, which stays until the feed ends
 * (also on a worker crew_resize has just retired: the call must run). */
static void participate(crew__worker *w, feed_state *st, bool entry)
{
    bool pushed = false;
    pthread_mutex_lock(&st->lock);
    st->participants++;
    while (!st->ended) {
        /* Retired by crew_resize. */
        if (!entry && w->id >= crew__pool_active(w->pool))
            break;
        pushed |= maybe_push(w, st);
        crew_task *t = NULL;
        int rc = st->feed->next(st->feed->ctx, &t);
        if (rc == CREW_EAGAIN) {
            if (st->in_flight == 0) {
                end_feed(st, CREW_EINVAL);
                break;
            }
            /* Ask again after the next done, or after AGAIN_WAIT: a feed
             * whose tasks come from elsewhere (another thread, the
             * network) may have one before any task here finishes. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += AGAIN_WAIT_NS;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&st->finished, &st->lock, &ts);
            continue;
        }
        if (rc != 1 || !t) {
            /* 1 without a task, or a value next has no meaning for */
            end_feed(st, rc < 0 ? rc : rc == 0 ? 0 : CREW_EINVAL);
            break;
        }
        st->in_flight++;
        uint64_t seq = st->seq++;
        pthread_mutex_unlock(&st->lock);
        run_task(w, st, t, seq);
        pthread_mutex_lock(&st->lock);
        st->in_flight--;
        if (t->status != 0) {
            st->failed = true;
            if (st->feed->stop_on_error)
                st->ended = true;
        }
        st->feed->done(st->feed->ctx, t);
        pthread_cond_broadcast(&st->finished);
    }
    st->participants--;
    bool popped = pushed && crew__work_pop(w);
    if (popped)
        st->waiting_copies--;
    pthread_mutex_unlock(&st->lock);
    if (popped)
        crew__latch_done(&st->copies); /* our copy was still here */
}

static void feed_job(crew__job *job, crew__worker *w)
{
    feed_state *st = (feed_state *)job;
    pthread_mutex_lock(&st->lock);
    st->waiting_copies--;
    pthread_mutex_unlock(&st->lock);
    participate(w, st, false);
    crew__latch_done(&st->copies); /* last touch of st */
}

static void feed_entry(crew__worker *w, void *arg)
{
    feed_state *st = arg;
    uint64_t t0 = w->pool->tracing ? crew__now_ns() : 0;
    crew__latch_init(&st->copies, 0, w);
    participate(w, st, true);
    crew__work_wait(w, &st->copies);
    if (w->pool->tracing)
        crew__trace_add(&w->trace, "crew_run_feed", t0, st->seq);
}

int crew_run_feed(crew *pool, const void *shared, const crew_feed *feed)
{
    if (!pool || !feed || !feed->next || !feed->done)
        return CREW_EINVAL;
    if (pool->proc)
        return crew__proc_run_feed(pool, shared, feed);
    feed_state st = {.job = {.run = feed_job, .name = "feed"}, .shared = shared, .feed = feed};
    pthread_mutex_init(&st.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st.finished, &ca);
    pthread_condattr_destroy(&ca);
    crew__pool_call(pool, feed_entry, &st);
    pthread_cond_destroy(&st.finished);
    pthread_mutex_destroy(&st.lock);
    if (st.error)
        return st.error;
    return st.failed ? CREW_EFAILED : 0;
}
