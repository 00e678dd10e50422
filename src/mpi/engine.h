/*
 * engine.h -- the MPI run engine: the root hands out chunks of tasks, every
 * rank runs them on its own pool, result bytes stream back.
 *
 * crew_mpi_run / crew_mpi_run_feed (crew_mpi.c) and `crew run --mpi`
 * (src/cli/run_mpi.c) are both built on it.  They differ in what a task
 * becomes on the rank that runs it and what travels back, so that part is
 * a set of hooks: the library's tasks return result_size fixed bytes, the
 * command's return output of any length (kept in its own slots and spool
 * files while the task runs).
 */
#ifndef CREW_MPI_ENGINE_H
#define CREW_MPI_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "crew_mpi.h"

/* A task on the rank that runs it.  task comes first: crew hands back the
 * crew_task pointer, and the engine finds its job from it. */
typedef struct crew__mpi_job {
    crew_task task;
    uint64_t id;          /* the root's name for it */
    uint64_t order;       /* its place in the root's sequence of tasks */
    uint32_t fn;
    size_t result_size;
    void *arg;            /* a copy of the argument, the engine's */
    size_t arg_size;
    void *user;           /* the hooks' own */
    bool made;            /* make succeeded: release is owed */
    struct crew__mpi_job *next_free;
} crew__mpi_job;

typedef struct crew__mpi_hooks {
    /* Prepare job->task to run (fn, arg, result ...).  0, or a status the
     * task fails with without running (CREW_ENOMEM ...).  Called in the
     * order tasks start, never concurrently. */
    int (*make)(void *ctx, crew__mpi_job *job);
    /* The bytes to send back for a finished task (its status is final).
     * They must stay valid until release. */
    size_t (*reply)(void *ctx, crew__mpi_job *job, const void **bytes);
    /* The job is sent (or dropped): free what make took. */
    void (*release)(void *ctx, crew__mpi_job *job);
    /* Optional: called once on every rank before anything runs, with the
     * most tasks this rank will hold at once (two chunks and twice its
     * workers), so make can size its slots.  0, or an error that every
     * rank then returns. */
    int (*prepare)(void *ctx, size_t capacity);
    void *ctx;
    /* The most tasks one chunk holds: every rank passes the same; 0 means
     * 1024. */
    size_t chunk_max;
} crew__mpi_hooks;

/* The root's side. */
typedef struct crew__mpi_source {
    int (*next)(void *ctx, crew_mpi_task **task);
    /* reply: the bytes the task's rank sent back, valid during the call. */
    void (*done)(void *ctx, crew_mpi_task *task, const void *reply, size_t len);
    void *ctx;
    uint64_t total;       /* 0: unknown */
    int stop_on_error;
} crew__mpi_source;

/* Collective over comm (crew duplicates it).  names: the function table's
 * names, checked to agree across ranks.  src: the root's only.  Exported
 * (for crew-mpi) but not part of the API. */
CREW_API int crew__mpi_engine(MPI_Comm comm, int root, crew *pool, const void *shared,
                              const char *const *names, size_t n_fns,
                              const crew__mpi_source *src, const crew__mpi_hooks *hooks);

/* The largest chunk_max: a rank allocates slots for two chunks. */
#define CREW__MPI_CHUNK_MAX ((size_t)1 << 16)

/* The most bytes one task's argument or result may have on the wire. */
#define CREW__MPI_MAX_BYTES ((size_t)1 << 30)

#endif
