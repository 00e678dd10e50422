/*
 * run_mpi.c -- crew run --mpi: the same run over the ranks of an MPI job.
 *
 * Built into crew-mpi only (crew hands `--mpi` over to it, so that crew
 * itself never loads an MPI library).  Every rank runs the root's command
 * line.  The root (rank 0) does everything a single-node run does --
 * reads tasks, keeps the window, writes records, job log and progress --
 * and its feed is handed to the MPI engine (src/mpi/engine.c) instead of
 * crew_run_feed: the engine gives chunks of the feed's tasks to every
 * rank, the root included, and brings each task's status and output back
 * to run_slot_done, so the records are the same bytes in the same order
 * as without --mpi.
 *
 * What travels: a task goes as its task_arg (sequence number, function
 * index, argument text); it comes back as {t0, t1} and its output.  On the
 * rank that runs it, a task writes into a result slot of that rank's own
 * (an arena for process pools, as without MPI) and spools output beyond 4
 * KiB to that rank's own spool directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/run.h"
#include "crew_mpi.h"
#include "mpi/engine.h"

static crew_mpi_data *data;
static char **root_argv; /* a rank's copy of the root's command line */

/* ---- setting up ---------------------------------------------------------- */

static int m_init(int *argc, char ***argv)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        cli_error("--mpi: MPI_Init failed");
        return CLI_USAGE;
    }
    R.mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &R.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &R.ranks);
    if (R.rank != 0) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        snprintf(cli_origin, sizeof cli_origin, " (rank %d on %s)", R.rank, host);
    }
    if (provided < MPI_THREAD_FUNNELED) {
        if (R.rank == 0)
            cli_error("--mpi: this MPI library cannot be used by a threaded program "
                      "(MPI_THREAD_FUNNELED)");
        MPI_Finalize();
        return CLI_USAGE;
    }
    /* Every rank runs the root's command line: one job, one set of
     * options, whatever each rank was started with. */
    uint64_t len = 0;
    if (R.rank == 0)
        for (int i = 0; i < *argc; i++)
            len += strlen((*argv)[i]) + 1;
    uint64_t head[2] = {(uint64_t)*argc, len};
    MPI_Bcast(head, 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    char *flat = malloc(head[1] ? head[1] : 1);
    char **args = calloc(head[0] + 1, sizeof *args);
    int ok = flat && args, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        cli_error("out of memory");
        free(flat);
        free(args);
        MPI_Finalize();
        return CLI_USAGE;
    }
    if (R.rank == 0) {
        char *p = flat;
        for (int i = 0; i < *argc; i++) {
            size_t n = strlen((*argv)[i]) + 1;
            memcpy(p, (*argv)[i], n);
            p += n;
        }
    }
    for (uint64_t at = 0; at < head[1]; at += (uint64_t)1 << 30) {
        uint64_t n = head[1] - at < ((uint64_t)1 << 30) ? head[1] - at : (uint64_t)1 << 30;
        MPI_Bcast(flat + at, (int)n, MPI_CHAR, 0, MPI_COMM_WORLD);
    }
    if (R.rank == 0) {
        free(flat);
        free(args);
        return 0;
    }
    char *p = flat;
    for (uint64_t i = 0; i < head[0]; i++) {
        args[i] = p;
        p += strlen(p) + 1;
    }
    /* kept for the life of the process: R points into them */
    *argc = (int)head[0];
    *argv = root_argv = args;
    return 0;
}

static int m_agree(int rc)
{
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

static int m_open_data(void)
{
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, R.data_path, R.verify ? CREW_ARENA_VERIFY : 0,
                                &data);
    if (rc != 0) {
        if (R.rank == 0)
            cli_error("cannot use data %s: %s", R.data_path, crew_strerror(rc));
        return CLI_USAGE;
    }
    R.data = crew_mpi_data_arena(data);
    return 0;
}

static void m_finish(void)
{
    crew_mpi_data_close(data);
    data = NULL;
    MPI_Finalize();
}

/* ---- on the rank that runs a task ----------------------------------------- */

/* This rank's result slots: as many as the engine lets it hold. */
static struct {
    task_result *slots;
    crew_arena *arena; /* process pools: the slots live here */
    size_t *free, n_free;
    char **replies;
} rs;

static size_t res_size(void)
{
    return (sizeof(task_result) + 63) & ~(size_t)63;
}

static int slots_open(size_t cap)
{
    size_t size = cap * res_size();
    if (wk.processes) {
        crew_ref ref;
        if (crew_arena_create(&rs.arena, size + ((size_t)1 << 20)) == 0 &&
            crew_arena_try_alloc(rs.arena, size, 64, &ref) == 0)
            rs.slots = crew_arena_ptr(rs.arena, ref);
    } else {
        rs.slots = aligned_alloc(64, size);
    }
    rs.free = malloc(cap * sizeof *rs.free);
    rs.replies = calloc(cap, sizeof *rs.replies);
    if (!rs.slots || !rs.free || !rs.replies)
        return CREW_ENOMEM;
    for (size_t i = 0; i < cap; i++)
        rs.free[rs.n_free++] = cap - 1 - i;
    return 0;
}

static void slots_close(void)
{
    if (rs.arena)
        crew_arena_close(rs.arena);
    else
        free(rs.slots);
    free(rs.free);
    free(rs.replies);
    memset(&rs, 0, sizeof rs);
}

static task_result *slot_at(size_t i)
{
    return (task_result *)((char *)rs.slots + i * res_size());
}

static int m_prepare(void *ctx, size_t capacity)
{
    (void)ctx;
    return slots_open(capacity);
}

/* make, reply and release are called in turn by crew's feed (never two
 * at once), so the free list needs no lock. */
static int m_make(void *ctx, crew__mpi_job *job)
{
    (void)ctx;
    task_arg *a = job->arg;
    if (job->arg_size < sizeof *a + 1 || a->len != job->arg_size - sizeof *a - 1 ||
        a->fn >= wk.plugin->n_functions || a->text[a->len] != '\0')
        return CREW_EINVAL; /* cannot happen: the root wrote it */
    if (!rs.n_free)
        return CREW_ENOMEM; /* neither: the engine holds no more */
    size_t i = rs.free[--rs.n_free];
    task_result *r = slot_at(i);
    r->len = 0;
    r->where = RES_INLINE;
    r->heap = NULL;
    r->t0 = r->t1 = 0;
    r->spool_error = 0;
    a->res = r;
    job->task.fn = run_task;
    job->task.arg = a;
    job->task.arg_size = job->arg_size;
    job->user = (void *)(uintptr_t)(i + 1);
    return 0;
}

/* Read n bytes of the spool file of task seq into p; false on failure. */
static bool read_spool(uint64_t seq, char *p, uint64_t n)
{
    char path[4200];
    spool_path(path, sizeof path, seq);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    unlink(path);
    while (n) {
        ssize_t k = read(fd, p, n < ((uint64_t)1 << 30) ? (size_t)n : (size_t)1 << 30);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        p += k;
        n -= (uint64_t)k;
    }
    close(fd);
    return n == 0;
}

static size_t m_reply(void *ctx, crew__mpi_job *job, const void **bytes)
{
    (void)ctx;
    size_t i = (size_t)(uintptr_t)job->user - 1;
    task_result *r = slot_at(i);
    task_arg *a = job->arg;
    run_settle_result(r, &job->task, a->seq);
    if (job->task.status == CREW_ELOST)
        R.pool_lost = true;
    double times[2] = {r->t0, r->t1};
    char *reply = NULL;
    if (r->len <= CREW__MPI_MAX_BYTES - sizeof times)
        reply = malloc(sizeof times + r->len);
    bool ok = reply != NULL;
    if (ok) {
        memcpy(reply, times, sizeof times);
        if (r->where == RES_INLINE)
            memcpy(reply + sizeof times, r->inline_buf, r->len);
        else if (r->where == RES_HEAP)
            memcpy(reply + sizeof times, r->heap, r->len);
        else
            ok = read_spool(a->seq, reply + sizeof times, r->len);
    }
    if (!ok) {
        /* Output that cannot travel whole fails the task, as output that
         * cannot be kept does without MPI. */
        job->task.status = CREW_ENOMEM;
        discard_result(r, a->seq);
        if (reply)
            r->len = 0;
    }
    if (r->where == RES_HEAP)
        free(r->heap);
    r->heap = NULL;
    r->where = RES_INLINE;
    rs.replies[i] = reply;
    *bytes = reply;
    return reply ? sizeof times + (ok ? r->len : 0) : 0;
}

static void m_release(void *ctx, crew__mpi_job *job)
{
    (void)ctx;
    size_t i = (size_t)(uintptr_t)job->user - 1;
    free(rs.replies[i]);
    rs.replies[i] = NULL;
    rs.free[rs.n_free++] = i;
}

/* ---- on the root: the feed ------------------------------------------------ */

static crew_mpi_task *mtasks; /* one per slot of the window */

static int m_next(void *ctx, crew_mpi_task **task)
{
    (void)ctx;
    crew_task *t;
    int rc = run_feed_next(NULL, &t);
    if (rc != 1)
        return rc;
    slot *s = (slot *)t;
    crew_mpi_task *m = &mtasks[s - R.slots];
    *m = (crew_mpi_task){.fn = s->arg->fn, .arg = s->arg,
                         .arg_size = sizeof *s->arg + s->arg->len + 1};
    *task = m;
    return 1;
}

static void m_done(void *ctx, crew_mpi_task *m, const void *reply, size_t len)
{
    (void)ctx;
    slot *s = &R.slots[m - mtasks];
    task_result *r = s->res;
    s->task.status = m->status;
    s->task.detail = m->detail;
    s->task.runs = m->runs;
    r->where = RES_INLINE;
    r->heap = NULL;
    r->len = 0;
    r->spool_error = 0;
    r->t0 = r->t1 = 0;
    double times[2];
    if (len >= sizeof times) {
        memcpy(times, reply, sizeof times);
        r->t0 = times[0];
        r->t1 = times[1];
        const char *out = (const char *)reply + sizeof times;
        size_t n = len - sizeof times;
        if (n <= sizeof r->inline_buf) {
            memcpy(r->inline_buf, out, n);
            r->len = n;
        } else if ((r->heap = malloc(n))) {
            memcpy(r->heap, out, n);
            r->where = RES_HEAP;
            r->len = n;
        } else {
            s->task.status = CREW_ENOMEM;
        }
    }
    run_slot_done(s);
}

static int m_run(void)
{
    /* Chunks small enough that every rank finds tasks in the window. */
    size_t chunk = R.window / (2 * (size_t)R.ranks);
    chunk = chunk < 1 ? 1 : chunk > 1024 ? 1024 : chunk;
    size_t n_fns = wk.plugin->n_functions;
    const char **names = calloc(n_fns ? n_fns : 1, sizeof *names);
    int ok = names != NULL;
    if (ok && R.rank == 0)
        ok = (mtasks = calloc(R.window, sizeof *mtasks)) != NULL;
    int rc = CREW_ENOMEM;
    if (ok) {
        for (size_t i = 0; i < n_fns; i++)
            names[i] = wk.plugin->functions[i].name;
        crew__mpi_hooks hooks = {.prepare = m_prepare, .make = m_make, .reply = m_reply,
                                 .release = m_release, .chunk_max = chunk};
        crew__mpi_source src = {.next = m_next, .done = m_done,
                                .total = R.total > R.n_skipped ? R.total - R.n_skipped : 0,
                                .stop_on_error = R.stop_on_error};
        rc = crew__mpi_engine(MPI_COMM_WORLD, 0, R.pool, R.data, names, n_fns,
                              R.rank == 0 ? &src : NULL, &hooks);
    } else {
        /* every rank must still take part: a NULL pool fails on all */
        crew__mpi_hooks none = {0};
        cli_error("out of memory for the MPI run");
        rc = crew__mpi_engine(MPI_COMM_WORLD, 0, NULL, NULL, NULL, 0, NULL, &none);
    }
    free(names);
    free(mtasks);
    mtasks = NULL;
    slots_close();
    return rc;
}

const run_mpi_ops run_mpi_impl = {
    .init = m_init,
    .agree = m_agree,
    .open_data = m_open_data,
    .run = m_run,
    .finish = m_finish,
};
