/*
 * crew_mpi.h -- crew across the ranks of an MPI communicator.
 *
 * The same job as crew_run -- many tasks over one read-only data set, N at
 * a time -- when one machine is not enough.  Every rank has its own crew
 * pool (threads or processes, N workers each) and its own copy of the data
 * per node; one rank, the root, holds the tasks.  It hands them out in
 * chunks on demand (large while much is left, small at the end, so every
 * rank finishes at about the same time), every rank runs its chunks on its
 * own pool, and each task's status and result bytes come back to the root.
 * The root's own pool runs chunks too.
 *
 * Function pointers differ between processes (and binaries), so a task
 * names its function by index into a table that every rank registers in
 * the same order; crew checks at the start that the names agree.
 *
 * Link with -lcrew_mpi -lcrew through your MPI's compiler wrapper (mpicc),
 * or with find_package(crew) and crew::crew_mpi in CMake.  MPI must be
 * initialised with at least MPI_THREAD_FUNNELED, and the calls below made
 * from the thread that initialised it (or any one thread at a time with
 * MPI_THREAD_SERIALIZED): crew makes its MPI calls only from the calling
 * thread.  Built and tested with Open MPI; any MPI-3 library should do.
 *
 * Failures: a task's failure is its status, as with crew_run.  A rank that
 * dies ends the whole job on MPI libraries without fault tolerance (Open
 * MPI, MPICH): the root cannot outlive it, so results should be consumed
 * as they come (on_done / a feed's done), as `crew run --mpi` does with
 * its job log.
 */
#ifndef CREW_MPI_H
#define CREW_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "crew.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One entry of the function table: the same names, in the same order, on
 * every rank.  fn is this process's own pointer. */
typedef struct crew_mpi_fn {
    const char *name;
    crew_task_fn *fn;
} crew_mpi_fn;

/* A task as the root gives it.  The rank that runs it calls
 * fns[fn].fn(shared, a copy of arg, a zeroed buffer of result_size bytes);
 * when it returns, those result_size bytes come back into result. */
typedef struct crew_mpi_task {
    uint32_t fn;                       /* index into the function table */
    const void *arg;   size_t arg_size;
    void *result;      size_t result_size; /* result may be NULL when 0 */
    int status;        /* out: 0, fn's positive error, or a negative CREW_E... */
    int detail;        /* out, process pools: as crew_task.detail */
    unsigned runs;     /* out: as crew_task.runs (0: it never started) */
    int rank;          /* out: the rank that ran it; -1 when it never started */
} crew_mpi_task;

typedef struct crew_mpi_opts {
    /* The rank that holds the tasks.  Every rank must pass the same (the
     * call cannot check it without the root). */
    int root;
    /* Nonzero: once a task failed, give out no more, and cancel
     * (CREW_ECANCELED) the tasks after it in the root's order that have
     * not started on any rank; every task before it still runs.  Tasks
     * already running finish, so a few after it may have run. */
    int stop_on_error;
    /* The most tasks one chunk holds; 0: 1024; at most 65536 (more is
     * taken as 65536: a rank sets aside room for two chunks).  Chunks are
     * smaller than this while few tasks are left (see crew_mpi_run). */
    size_t chunk_max;
    /* The root calls on_done(ctx, i) once per task, on the calling
     * thread, as soon as its status and result are final (also for
     * cancelled ones, and after a stop, for those never given out).
     * Other ranks ignore it. */
    void (*on_done)(void *ctx, size_t index);
    void *ctx;
} crew_mpi_opts;

/*
 * crew_mpi_run -- run n tasks across every rank of comm, and return on
 * every rank when all of them have a final status.  Collective: every rank
 * of comm calls it, with its own pool (from crew_open; threads or
 * processes) and its own `shared` (typically a crew_arena from
 * crew_mpi_data_open), and the same table.  Only the root's tasks and n
 * count; the other ranks pass NULL and 0.
 * Scheduling: a rank is given a chunk once it holds fewer tasks (queued
 * and running) than twice its workers, so the next chunk arrives before
 * it runs dry.  A chunk holds about remaining / (2 x all workers) tasks
 * per worker of that rank, at most chunk_max and about 1 MiB of
 * arguments, at least 1 task: it starts large and ends with single
 * tasks.  (A feed with total 0, whose length is unknown, gets chunks of
 * 16 tasks per worker, and a rank gets the next one as soon as it is
 * down to its last.)  Results travel back in batches of up to a MiB,
 * held at most 200 us.
 * Returns, on every rank: 0 when every task returned 0; CREW_EFAILED when
 * some did not (each task's status tells why: CREW_EINVAL for a task
 * whose fn is out of range or whose arg is NULL with arg_size > 0,
 * CREW_E2BIG for an argument or result over 1 GiB; the others run);
 * CREW_EINVAL (pool NULL on some rank, the root's tasks NULL with n > 0,
 * root not a rank of comm, tables that differ between ranks, MPI not
 * initialised: nothing is run); CREW_ENOMEM; CREW_ENOTSUP (MPI was
 * initialised below MPI_THREAD_FUNNELED); CREW_ELOST when a rank's
 * process pool was lost (or the error of a rank's pool that could not run
 * at all, such as CREW_EINVAL for a process pool opened before the arena
 * passed as `shared`): that rank gets no more tasks, the tasks it had not
 * started go to the other ranks, the ones it was running fail with
 * CREW_ELOST; when no rank is left, the rest fail as they did there.
 * A task that never started (cancelled, never given out, failed before
 * running) reports rank -1.
 * Ownership: tasks, arguments and results stay the caller's; results are
 * written before on_done.  Thread-safe: one call per communicator at a
 * time; not from inside a task.
 */
CREW_API int crew_mpi_run(MPI_Comm comm, crew *pool, const void *shared,
                          const crew_mpi_fn *fns, size_t n_fns, crew_mpi_task *tasks, size_t n,
                          const crew_mpi_opts *opts);

/*
 * A feed for crew_mpi_run_feed: as crew_feed, for tasks that come one at a
 * time on the root (a stream too long to hold, or a bounded window of
 * results in order).  next returns 1 and sets *task, 0 when there are no
 * more, CREW_EAGAIN when there is none until a task in flight comes back
 * (it is called again after the next done), any other negative value to
 * stop: tasks given but not started come back with CREW_ECANCELED.  done
 * gets each task once, with its status and result final; crew no longer
 * touches it.  Both are called on the root's calling thread only, never
 * concurrently.  total (0: unknown) is how many tasks next will give, a
 * hint that sizes chunks.
 */
typedef struct crew_mpi_feed {
    int (*next)(void *ctx, crew_mpi_task **task);
    void (*done)(void *ctx, crew_mpi_task *task);
    void *ctx;
    uint64_t total;
} crew_mpi_feed;

/*
 * crew_mpi_run_feed -- crew_mpi_run with tasks from a feed.  The root
 * passes the feed; the other ranks pass NULL.  opts->on_done is not used.
 * Returns as crew_mpi_run, plus a negative value next returned, and
 * CREW_EINVAL for a feed that returns CREW_EAGAIN with nothing in flight.
 */
CREW_API int crew_mpi_run_feed(MPI_Comm comm, crew *pool, const void *shared,
                               const crew_mpi_fn *fns, size_t n_fns, const crew_mpi_feed *feed,
                               const crew_mpi_opts *opts);

/*
 * One copy of a snapshot per node.
 *
 * crew_mpi_data_open -- open the snapshot at `path` on every rank of comm.
 * Collective.  Each rank passes its own path; the root (rank 0 of comm)
 * has the file that counts.  Where every rank of a node can open its path
 * and finds the root's snapshot there (the same header: size, root and
 * checksum), each maps its file (the page cache holds one copy per node).
 * Where one cannot (the file is only on the root's disk, or differs), the
 * root's bytes are broadcast once to that node, into an MPI-3
 * shared-memory window that all its ranks map: one copy per node either
 * way, and nothing written to the node's disk.  Ranks that share memory
 * are found with MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
 * flags: 0 or CREW_ARENA_VERIFY (every rank checks the checksum of what it
 * maps; a broadcast is checked on arrival, by every rank of the node).
 * Open the data before crew_open of a process pool, so that its workers
 * inherit the window.  The call also records the MPI library's
 * shared-memory files this process maps (in /dev/shm/crew-mpi.<pid>, or
 * $TMPDIR when /dev/shm is not writable), and removes those that the
 * records of dead jobs list (Open MPI leaves them behind when a rank is
 * killed).
 * Returns, on every rank, 0 and sets *data; or the same error everywhere:
 * the root's crew_arena_open error when the root cannot open it (also
 * when other ranks could); CREW_EIO when a node's copy fails (the failing
 * rank prints nothing: the error code says what); CREW_EINVAL (NULL
 * arguments or unknown flags on any rank; comm MPI_COMM_NULL, or MPI not
 * initialised or finalised: then on the calling rank only, without a
 * collective); CREW_ENOMEM (also: a node's window could not be allocated).
 * Ownership: the caller closes *data with crew_mpi_data_close, a
 * collective call, after the last task that reads it, and before
 * MPI_Finalize.  comm stays the caller's (crew uses a duplicate).
 * Thread-safe: as the other calls here (one thread at a time makes MPI
 * calls); not from inside a task.
 */
typedef struct crew_mpi_data crew_mpi_data;
CREW_API int crew_mpi_data_open(MPI_Comm comm, const char *path, unsigned flags,
                                crew_mpi_data **data);
/* The arena to pass as `shared` (valid until crew_mpi_data_close; the
 * data's, not to be closed).  NULL for NULL. */
CREW_API const crew_arena *crew_mpi_data_arena(const crew_mpi_data *data);
/* 1 when this rank's copy arrived by broadcast (on a node, all ranks
 * agree), 0 when mapped from the file or data is NULL. */
CREW_API int crew_mpi_data_broadcast(const crew_mpi_data *data);
/* Collective: frees the arena, the window and crew's communicators.
 * NULL: no-op (on every rank). */
CREW_API void crew_mpi_data_close(crew_mpi_data *data);

#ifdef __cplusplus
}
#endif
#endif
