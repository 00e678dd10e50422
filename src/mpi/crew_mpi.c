/*
 * crew_mpi.c -- crew_mpi_run and crew_mpi_run_feed: the engine with tasks
 * that return result_size fixed bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "mpi/engine.h"

typedef struct lib_run {
    const crew_mpi_fn *fns;
    size_t n_fns;
    /* the root's */
    crew_mpi_task *tasks;
    size_t n, next;
    const crew_mpi_feed *feed;
    const crew_mpi_opts *opts;
} lib_run;

static int lib_make(void *ctx, crew__mpi_job *job)
{
    lib_run *l = ctx;
    if (job->fn >= l->n_fns || !l->fns[job->fn].fn)
        return CREW_EINVAL;
    void *res = NULL;
    if (job->result_size && !(res = calloc(1, job->result_size)))
        return CREW_ENOMEM;
    job->task.fn = l->fns[job->fn].fn;
    job->task.arg = job->arg;
    job->task.arg_size = job->arg_size;
    job->task.result = res;
    job->task.result_size = job->result_size;
    return 0;
}

static size_t lib_reply(void *ctx, crew__mpi_job *job, const void **bytes)
{
    (void)ctx;
    *bytes = job->task.result;
    return job->task.result ? job->result_size : 0;
}

static void lib_release(void *ctx, crew__mpi_job *job)
{
    (void)ctx;
    free(job->task.result);
    job->task.result = NULL;
}

static void copy_result(crew_mpi_task *t, const void *reply, size_t len)
{
    if (t->result && len)
        memcpy(t->result, reply, len < t->result_size ? len : t->result_size);
}

static int array_next(void *ctx, crew_mpi_task **task)
{
    lib_run *l = ctx;
    if (l->next == l->n)
        return 0;
    *task = &l->tasks[l->next++];
    return 1;
}

static void array_done(void *ctx, crew_mpi_task *t, const void *reply, size_t len)
{
    lib_run *l = ctx;
    copy_result(t, reply, len);
    if (l->opts && l->opts->on_done)
        l->opts->on_done(l->opts->ctx, (size_t)(t - l->tasks));
}

static int feed_next(void *ctx, crew_mpi_task **task)
{
    lib_run *l = ctx;
    return l->feed->next(l->feed->ctx, task);
}

static void feed_done(void *ctx, crew_mpi_task *t, const void *reply, size_t len)
{
    lib_run *l = ctx;
    copy_result(t, reply, len);
    l->feed->done(l->feed->ctx, t);
}

static int run(MPI_Comm comm, crew *pool, const void *shared, const crew_mpi_fn *fns,
               size_t n_fns, lib_run *l, const crew__mpi_source *src, const crew_mpi_opts *opts)
{
    const char **names = calloc(n_fns ? n_fns : 1, sizeof *names);
    crew__mpi_hooks hooks = {.make = lib_make, .reply = lib_reply, .release = lib_release,
                             .ctx = l, .chunk_max = opts ? opts->chunk_max : 0};
    if (names && fns)
        for (size_t i = 0; i < n_fns; i++)
            names[i] = fns[i].name;
    /* Without a table (or the memory for its names) this rank still takes
     * part, with no pool: every rank then returns CREW_EINVAL. */
    bool usable = names && (fns || !n_fns);
    int rc = crew__mpi_engine(comm, opts ? opts->root : 0, usable ? pool : NULL, shared,
                              usable ? names : NULL, usable ? n_fns : 0, src, &hooks);
    free(names);
    return rc;
}

/* Whether comm can be used at all (MPI running, a communicator): the
 * calls below need its rank before the engine checks anything. */
static bool comm_usable(MPI_Comm comm)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized && comm != MPI_COMM_NULL;
}

int crew_mpi_run(MPI_Comm comm, crew *pool, const void *shared, const crew_mpi_fn *fns,
                 size_t n_fns, crew_mpi_task *tasks, size_t n, const crew_mpi_opts *opts)
{
    if (!comm_usable(comm))
        return CREW_EINVAL;
    int me = 0;
    MPI_Comm_rank(comm, &me);
    bool root = me == (opts ? opts->root : 0);
    lib_run l = {.fns = fns, .n_fns = n_fns, .tasks = tasks, .n = n, .opts = opts};
    crew__mpi_source src = {.next = array_next, .done = array_done, .ctx = &l, .total = n,
                            .stop_on_error = opts ? opts->stop_on_error : 0};
    bool bad = root && !tasks && n;
    if (root && !bad)
        for (size_t i = 0; i < n; i++) {
            tasks[i].status = CREW_ECANCELED; /* until it comes back */
            tasks[i].detail = 0;
            tasks[i].runs = 0;
            tasks[i].rank = -1;
        }
    int rc = run(comm, pool, shared, fns, n_fns, &l, root && !bad ? &src : NULL, opts);
    /* After a stop, the tasks never given stay cancelled: on_done still
     * hears of each. */
    if (root && !bad && opts && opts->on_done)
        for (size_t i = l.next; i < n; i++)
            opts->on_done(opts->ctx, i);
    return rc;
}

int crew_mpi_run_feed(MPI_Comm comm, crew *pool, const void *shared, const crew_mpi_fn *fns,
                      size_t n_fns, const crew_mpi_feed *feed, const crew_mpi_opts *opts)
{
    if (!comm_usable(comm))
        return CREW_EINVAL;
    int me = 0;
    MPI_Comm_rank(comm, &me);
    bool root = me == (opts ? opts->root : 0);
    lib_run l = {.fns = fns, .n_fns = n_fns, .feed = feed, .opts = opts};
    crew__mpi_source src = {.next = feed_next, .done = feed_done, .ctx = &l,
                            .total = feed ? feed->total : 0,
                            .stop_on_error = opts ? opts->stop_on_error : 0};
    bool ok = root && feed && feed->next && feed->done;
    return run(comm, pool, shared, fns, n_fns, &l, ok ? &src : NULL, opts);
}
