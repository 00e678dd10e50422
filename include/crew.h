/*
 * crew.h -- apply many functions to one big, shared, read-only data set in
 * parallel, N at a time, and collect every result.
 *
 * This header reads top to bottom as the manual:
 *
 *   1. Errors and versions       crew_strerror, crew_err_name, crew_version
 *   2. The pool                  crew_open, crew_close, crew_workers, crew_resize
 *   3. Data parallelism          crew_for, crew_reduce, crew_join
 *   4. Running tasks             crew_run, crew_submit and futures
 *   5. Observability             crew_stats, progress, Chrome traces
 *   6. Shared arenas             crew_arena_* (one copy of the data for everyone)
 *
 * Conventions that hold for every function:
 *   - Functions that can fail return 0 or a negative CREW_E... code; on
 *     failure their out-parameters are left untouched.  The library never
 *     prints, never calls abort() or exit() on user error.
 *   - Every *_close(NULL) is a harmless no-op.
 *   - Config structs are "zero means default": {.workers = 5} reads as a
 *     sentence and new fields never break old callers.
 *   - Each function's comment ends with who owns what and whether it may be
 *     called from several threads or from inside a task.
 */
#ifndef CREW_H
#define CREW_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CREW_BUILDING) && defined(__GNUC__)
#define CREW_API __attribute__((visibility("default")))
#else
#define CREW_API
#endif

/* ------------------------------------------------------------------------ */
/* 1. Errors and versions                                                    */
/* ------------------------------------------------------------------------ */

#define CREW_VERSION_MAJOR 0
#define CREW_VERSION_MINOR 1
#define CREW_VERSION_PATCH 0

/*
 * Error codes.  System errors are -errno (so CREW_EINVAL == -EINVAL); crew's
 * own conditions live in a separate range below CREW__EBASE so they never
 * collide with an errno value.
 */
enum {
    CREW_OK        = 0,
    CREW_EINVAL    = -EINVAL,    /* a bad argument: NULL, begin > end, ... */
    CREW_ENOMEM    = -ENOMEM,    /* out of memory (or a task's memory limit) */
    CREW_EAGAIN    = -EAGAIN,    /* could not start a thread or process */
    CREW_ENOENT    = -ENOENT,    /* no such file */
    CREW_ETIMEDOUT = -ETIMEDOUT, /* a task exceeded its time limit */
    CREW_ECANCELED = -ECANCELED, /* a task was not run because the run stopped */
    CREW_EBUSY     = -EBUSY,     /* the object is in use */

    CREW__EBASE    = -10000,
    CREW_EFAILED   = -10001,     /* crew_run: some tasks failed; see their status */
    CREW_EFULL     = -10002,     /* arena: capacity exhausted */
    CREW_EFROZEN   = -10003,     /* arena: frozen, read-only forever */
    CREW_EEMPTY    = -10004,     /* snapshot: the file is empty */
    CREW_ETRUNC    = -10005,     /* snapshot: shorter than its header says */
    CREW_EMAGIC    = -10006,     /* snapshot: not a crew snapshot (bad magic) */
    CREW_EVERSION  = -10007,     /* snapshot: format version this build cannot read */
    CREW_EENDIAN   = -10008,     /* snapshot: written with the other byte order */
    CREW_EBADSIZE  = -10009,     /* snapshot: header sizes or offsets are inconsistent */
    CREW_EBADROOT  = -10010,     /* snapshot: root lies outside the data */
    CREW_ECHECKSUM = -10011,     /* snapshot: data does not match its checksum */
    CREW_ENOTSUP   = -10012,     /* not supported by this build or kernel */
};

/*
 * crew_strerror -- a sentence a user understands for any code crew returns
 * (crew's own codes and -errno values); never NULL.
 * Ownership: the string is static.  Thread-safe.
 */
CREW_API const char *crew_strerror(int err);

/*
 * crew_err_name -- the code's name, such as "CREW_EINVAL" or "EPIPE";
 * "unknown" for codes crew does not know.  Static string.  Thread-safe.
 */
CREW_API const char *crew_err_name(int err);

/* crew_version -- "MAJOR.MINOR.PATCH" of the library actually linked. */
CREW_API const char *crew_version(void);

/* ------------------------------------------------------------------------ */
/* 2. The pool                                                               */
/* ------------------------------------------------------------------------ */

typedef struct crew crew;

#define CREW_MAX_WORKERS 4096

typedef struct crew_config {
    /*
     * Number of workers, caller included: N workers means N threads busy.
     * 0: every CPU this process may use (the affinity mask and the cgroup
     * v2 quota in cpu.max, whichever is smaller).  1: everything runs on
     * the calling thread, no thread is started.  At most CREW_MAX_WORKERS.
     */
    unsigned workers;
    /*
     * When set (or when the environment variable CREW_TRACE names a file),
     * every task, range and join is recorded and written as a Chrome trace
     * (Perfetto / chrome://tracing JSON) to this path by crew_close.
     * The string is copied.
     */
    const char *trace_path;
} crew_config;

/*
 * crew_open -- start a pool.  cfg may be NULL (all defaults).
 * Returns 0 and sets *pool, or CREW_EINVAL (pool NULL, workers >
 * CREW_MAX_WORKERS), CREW_ENOMEM, CREW_EAGAIN (a thread could not start).
 * Ownership: the caller owns *pool and ends it with crew_close.
 * Thread-safe: yes (each call makes its own pool).
 */
CREW_API int crew_open(crew **pool, const crew_config *cfg);

/*
 * crew_close -- wait for every submitted future's task to finish, stop the
 * threads, write the trace if one was asked for, free the pool.  NULL: no-op.
 * Must not be called from inside one of the pool's own tasks, nor while
 * another thread is still calling into the pool.
 */
CREW_API void crew_close(crew *pool);

/* crew_workers -- the current N (caller included).  Thread-safe. */
CREW_API unsigned crew_workers(const crew *pool);

/*
 * crew_resize -- change N while the pool is in use.  Workers beyond the new
 * N finish the work they hold and then sleep; new ones start at once.  The
 * change takes effect at each worker's next task boundary.
 * Returns 0, CREW_EINVAL (pool NULL, n == 0, n > CREW_MAX_WORKERS),
 * CREW_EAGAIN (a thread could not start: N stays as it was).
 * Thread-safe: yes, also from inside a task.
 */
CREW_API int crew_resize(crew *pool, unsigned n);

/* crew_usable_cpus -- what workers = 0 means here: min(affinity, cpu.max). */
CREW_API unsigned crew_usable_cpus(void);

/* ------------------------------------------------------------------------ */
/* 3. Data parallelism                                                       */
/* ------------------------------------------------------------------------ */

typedef void crew_fn(void *ctx);
typedef void crew_range_fn(void *ctx, size_t lo, size_t hi);

/*
 * crew_for -- call body(ctx, lo, hi) over disjoint ranges that together
 * cover [begin, end) exactly once, in parallel, and return when all are done.
 * grain 0 splits adaptively (lazy binary splitting: a range is cut in two
 * only when no other work is waiting to be stolen, and the batch a worker
 * runs between checks grows until it lasts about 20 microseconds), so one
 * call is efficient for 10 iterations of 1 ms and for 10^8 of 1 ns.  A
 * grain > 0 makes every range exactly that long (the last one shorter).
 * begin == end returns 0 at once.
 * Returns 0 or CREW_EINVAL (pool or body NULL, begin > end).
 * Thread-safe: yes; may be nested inside any task of the same pool.
 */
CREW_API int crew_for(crew *pool, size_t begin, size_t end, size_t grain,
                      crew_range_fn *body, void *ctx);

/*
 * crew_join -- run fa(a) and fb(b), possibly in parallel, and return when
 * both are done.  Nests to any depth: a worker waiting for its partner runs
 * other work meanwhile, so nested joins never deadlock.  fa or fb may be
 * NULL (skipped).  pool NULL runs both on the caller.
 * Thread-safe: yes; may be nested inside any task of the same pool.
 */
CREW_API void crew_join(crew *pool, crew_fn *fa, void *a, crew_fn *fb, void *b);

typedef struct crew_reducer {
    size_t size;                                          /* bytes of one accumulator */
    void (*init)(void *ctx, void *acc);                   /* acc = identity */
    void (*body)(void *ctx, size_t lo, size_t hi, void *acc); /* fold [lo,hi) into acc */
    void (*combine)(void *ctx, void *acc, const void *other); /* acc = acc (+) other */
} crew_reducer;

/*
 * crew_reduce -- fold [begin, end) into *out (r->size bytes, which the
 * caller provides; it is overwritten, not combined into).  Ranges are
 * combined in index order, left into right, so the result is deterministic
 * for any associative combine, also a non-commutative one (floating-point
 * sums may still differ in the last bits between runs, because split
 * points vary).  Accumulators are aligned to 64 bytes.
 * Returns 0, CREW_EINVAL (NULL pool, r, out or callbacks; size 0; begin >
 * end), CREW_ENOMEM (no memory for an accumulator: *out is unspecified).
 * Thread-safe: yes; may be nested inside any task of the same pool.
 */
CREW_API int crew_reduce(crew *pool, size_t begin, size_t end, size_t grain,
                         const crew_reducer *r, void *ctx, void *out);

/* ------------------------------------------------------------------------ */
/* 4. Running tasks                                                          */
/* ------------------------------------------------------------------------ */

/*
 * A task reads the shared data set and its argument and writes its own
 * result.  It returns 0 or a positive error of its own choosing.
 */
typedef int crew_task_fn(const void *shared, const void *arg, void *result);

typedef struct crew_task {
    crew_task_fn *fn;
    const void *arg;   size_t arg_size;
    void *result;      size_t result_size;
    int status;        /* out: 0, fn's positive error, or a negative CREW_E... */
} crew_task;

typedef struct crew_run_opts {
    /* Nonzero: after the first task that fails, start no more; tasks not
     * started get status CREW_ECANCELED. */
    int stop_on_error;
    /* Called once per task, on the thread that ran it, as soon as its status
     * is final (also for cancelled tasks), so results can be consumed while
     * the run goes on.  Calls may be concurrent. */
    void (*on_done)(void *ctx, size_t index);
    /* Called at most about ten times a second while the run goes on, and
     * once at the end with done == total.  Never concurrently with itself. */
    void (*progress)(void *ctx, size_t done, size_t total, size_t failed);
    void *ctx;         /* passed to on_done and progress */
} crew_run_opts;

/*
 * crew_run -- run n tasks over `shared`, N at a time, and return when every
 * task has a final status.  Tasks are started in index order from one
 * shared counter (the caller works too), so cheap and costly tasks mix
 * without tuning.  opts may be NULL.
 * Returns 0 when every task returned 0; CREW_EFAILED when some did not
 * (each task's status tells which and why); CREW_EINVAL (pool NULL, tasks
 * NULL with n > 0, a task with fn NULL: nothing is run).
 * Ownership: tasks, their arguments and results stay the caller's; crew
 * writes only task->status.  Thread-safe: yes; may be nested in a task.
 */
CREW_API int crew_run(crew *pool, const void *shared, crew_task *tasks, size_t n,
                      const crew_run_opts *opts);

typedef struct crew_future crew_future;

/*
 * crew_submit -- start one task in the background and return at once.
 * *task must stay valid until the future is waited for or freed; its
 * status is written when it finishes.  With workers == 1 (no threads) the
 * task runs inside crew_submit.
 * Returns 0 and sets *future, CREW_EINVAL (NULL pool, task, fn or future),
 * CREW_ENOMEM.  Ownership: the caller frees *future with crew_future_free.
 * Thread-safe: yes; may be called from inside a task.
 */
CREW_API int crew_submit(crew *pool, const void *shared, crew_task *task,
                         crew_future **future);

/*
 * crew_future_wait -- block until the task finished; return its status
 * (0, its positive error, or CREW_E...).  A worker thread that waits runs
 * other work meanwhile.  May be called more than once.
 * Returns CREW_EINVAL for NULL.  Thread-safe.
 */
CREW_API int crew_future_wait(crew_future *future);

/* crew_future_done -- 1 if the task has finished, else 0.  Never blocks. */
CREW_API int crew_future_done(const crew_future *future);

/*
 * crew_future_free -- release the future.  If its task is still running it
 * finishes on its own (its status is still written); crew_close waits for
 * it.  NULL: no-op.
 */
CREW_API void crew_future_free(crew_future *future);

/* ------------------------------------------------------------------------ */
/* 5. Observability                                                          */
/* ------------------------------------------------------------------------ */

typedef struct crew_worker_stats {
    uint64_t jobs;       /* jobs run: tasks, ranges, join halves */
    uint64_t steals;     /* successful steals from other workers */
    uint64_t sleeps;     /* times the worker went to sleep for lack of work */
    uint64_t busy_ns;    /* time awake (running or looking for work, not asleep);
                            for worker 0: time inside calls.  Up to date when
                            the worker last slept, or at crew_close */
} crew_worker_stats;

/*
 * crew_stats -- copy the counters of up to n workers (index 0 is the
 * caller's slot) into out; return how many workers the pool has ever had
 * (which may exceed n).  Counters are read without stopping the pool, so
 * they are a recent picture, not an atomic one.  Thread-safe.
 */
CREW_API size_t crew_stats(const crew *pool, crew_worker_stats *out, size_t n);

/* ------------------------------------------------------------------------ */
/* 6. Shared arenas                                                          */
/* ------------------------------------------------------------------------ */

/*
 * An arena holds the big data set.  It is a memfd-backed region that every
 * worker -- thread, forked process, or another program given the file --
 * maps without copying.  Inside it, structures refer to each other by
 * crew_ref, a byte offset from the arena's base (0 is null), so a
 * pointer-rich structure works at any address.
 */
typedef struct crew_arena crew_arena;
typedef uint64_t crew_ref;

#define CREW_ARENA_VERIFY 1u   /* crew_arena_open: also check the checksum */

CREW_API int crew_arena_create(crew_arena **a, size_t capacity);
CREW_API crew_ref crew_arena_alloc(crew_arena *a, size_t size, size_t align);
CREW_API void *crew_arena_ptr(const crew_arena *a, crew_ref ref);
CREW_API const void *crew_arena_get(const crew_arena *a, crew_ref ref, size_t size);
CREW_API void crew_arena_set_root(crew_arena *a, crew_ref root);
CREW_API crew_ref crew_arena_root(const crew_arena *a);
CREW_API int crew_arena_freeze(crew_arena *a);
CREW_API int crew_arena_save(const crew_arena *a, const char *path);
CREW_API int crew_arena_open(crew_arena **a, const char *path, unsigned flags);
CREW_API const void *crew_arena_base(const crew_arena *a);
CREW_API size_t crew_arena_size(const crew_arena *a);
CREW_API int crew_arena_fd(const crew_arena *a);
CREW_API void crew_arena_close(crew_arena *a);

#ifdef __cplusplus
}
#endif

#endif /* CREW_H */
