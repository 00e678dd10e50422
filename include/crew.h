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
 *   4b. Process pools            isolation = CREW_PROCESSES: crashes cost one task
 *   5. Observability             crew_stats, progress, Chrome traces
 *   6. Shared arenas             crew_arena_* (one copy of the data for everyone)
 *
 * Conventions that hold for every function:
 *   - Functions that can fail return 0 or a negative CREW_E... code; on
 *     failure their out-parameters are left untouched.  Functions that
 *     return a crew_ref or a pointer return 0 / NULL on failure instead.  The library never
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
    CREW_ENOMEM    = -ENOMEM,    /* out of memory */
    CREW_EAGAIN    = -EAGAIN,    /* could not start a thread */
    CREW_ENOENT    = -ENOENT,    /* no such file */
    CREW_ETIMEDOUT = -ETIMEDOUT, /* a task ran longer than task_timeout */
    CREW_ECANCELED = -ECANCELED, /* a task was not run because the run stopped */
    CREW_EBUSY     = -EBUSY,     /* the object is in use */
    CREW_E2BIG     = -E2BIG,     /* process pool: a task's arg_size + result_size too large */
    CREW_EIO       = -EIO,       /* MPI: a rank could not get or keep its copy of the data */

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
    CREW_ENOTSUP   = -10012,     /* not supported (crew_submit on a process pool) */
    CREW_ENOTFROZEN = -10013,    /* arena: not frozen (sealed) yet */
    CREW_ENOTFILE  = -10014,     /* snapshot: not a regular file (device, FIFO, socket) */
    CREW_ECRASHED  = -10015,     /* process pool: the task's worker died by a signal (task->detail) */
    CREW_EEXITED   = -10016,     /* process pool: the task called exit (code in task->detail) */
    CREW_EREADONLY = -10017,     /* process pool: the task wrote to read-only shared data */
    CREW_ELOST     = -10018,     /* process pool: its worker processes are gone for good */
    CREW_EFORMAT   = -10019,     /* data sets: the arena holds no catalog, or a bad entry */
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
     * crew records every crew_run task, every future run by a worker of the
     * pool, every crew_for / crew_reduce / crew_run call, every crew_join
     * called from outside the pool when N > 1 (with N == 1 a join is two
     * plain calls), and every job a worker runs (a range
     * or join half taken from another worker, a crew_run helper, a call
     * handed over by an outside thread), and crew_close writes them as a
     * Chrome trace (Perfetto / chrome://tracing JSON) to this path.  The
     * string is copied.  A file that cannot be written is silently
     * skipped (crew_close cannot report errors).
     */
    const char *trace_path;
    /*
     * Stack size of each worker thread, in bytes.  0: CREW_DEFAULT_STACK
     * (64 MiB of address space; pages are used only as deep as tasks
     * recurse).  Work migrates between threads, so a deep recursion that
     * fits the caller's stack must fit a worker's too.  Must lie within
     * [CREW_MIN_STACK, CREW_MAX_STACK].
     */
    size_t stack_size;
    /*
     * CREW_THREADS (0): workers are threads.  CREW_PROCESSES: workers are
     * forked processes, so a task that crashes, hangs, leaks or is not
     * thread-safe costs that task only.  Read section 4b before using it.
     */
    int isolation;
    /* Process pools only (CREW_EINVAL for a thread pool when set): */
    double task_timeout;       /* seconds a task may run before its worker is
                                  killed (CREW_ETIMEDOUT); 0: no limit */
    size_t task_memory_limit;  /* bytes of private memory a task may add to
                                  its worker (CREW_ENOMEM); 0: no limit */
    unsigned retries;          /* re-runs of a task that crashed (CREW_ECRASHED)
                                  or timed out (CREW_ETIMEDOUT); 0: none */
    /* Called in each worker process as it ends normally (retired by
     * crew_resize, or at crew_close), with worker_ctx: per-process state
     * set up by tasks can be flushed or released there.  Not called for a
     * worker that crashed or was killed.  crew_close waits up to 2 s in
     * all for the workers to return from it, then kills them. */
    void (*worker_exit)(void *worker_ctx);
    void *worker_ctx;
} crew_config;

enum { CREW_THREADS = 0, CREW_PROCESSES = 1 };

#define CREW_DEFAULT_STACK ((size_t)64 << 20)
#define CREW_MIN_STACK ((size_t)64 << 10)
#define CREW_MAX_STACK ((size_t)1 << 40)

/*
 * crew_open -- start a pool.  cfg may be NULL (all defaults).
 * The thread that calls crew_for / crew_run / ... works as worker 0 for
 * the length of the call.  If another outside thread is already doing so,
 * a second one sleeps while the pool's threads run its call (or, with
 * N == 1, waits for its turn).
 * Returns 0 and sets *pool, or CREW_EINVAL (pool NULL, workers >
 * CREW_MAX_WORKERS, stack_size out of range, an unknown isolation, a
 * negative, NaN or non-finite task_timeout, or a process-only field set
 * for a thread pool), CREW_ENOMEM, CREW_EAGAIN (a thread or process could
 * not start), -errno from the system calls a process pool needs.
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
 * N bounds everything that runs at once, futures included; only a job
 * queued before N shrank to 1 may still finish on a thread beyond N.
 * Returns 0, CREW_EINVAL (pool NULL, n == 0, n > CREW_MAX_WORKERS),
 * CREW_EAGAIN or CREW_ENOMEM (a thread could not start: N stays as it was;
 * threads already started for the change stay and sleep).
 * Thread-safe: yes, also from inside a task.
 */
CREW_API int crew_resize(crew *pool, unsigned n);

/*
 * crew_usable_cpus -- what workers = 0 means here: the number of CPUs in the
 * affinity mask, or the cgroup v2 quota (cpu.max, QUOTA/PERIOD rounded up)
 * of this process's cgroup or any ancestor, whichever is smallest.
 */
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
 * only when this worker's own deque is empty, so thieves always find
 * something, and the batch a worker runs between checks grows until it
 * lasts 10 to 20 microseconds), so one
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
 * end, size > SIZE_MAX - 64), CREW_ENOMEM (no memory for an accumulator:
 * *out is left untouched).
 * Thread-safe: yes; may be nested inside any task of the same pool.
 */
CREW_API int crew_reduce(crew *pool, size_t begin, size_t end, size_t grain,
                         const crew_reducer *r, void *ctx, void *out);

/* ------------------------------------------------------------------------ */
/* 4. Running tasks                                                          */
/* ------------------------------------------------------------------------ */

/*
 * A task reads the shared data set and its argument and writes its own
 * result.  It returns 0 or a positive error of its own choosing; negative
 * values are reserved for crew, and a task that returns one gets status
 * CREW_EINVAL.
 */
typedef int crew_task_fn(const void *shared, const void *arg, void *result);

typedef struct crew_task {
    crew_task_fn *fn;
    const void *arg;   size_t arg_size;     /* sizes: used by process pools */
    void *result;      size_t result_size;  /* (section 4b); threads ignore them */
    int status;        /* out: 0, fn's positive error, or a negative CREW_E... */
    /* out, process pools (0 for thread pools): CREW_ECRASHED: the signal;
     * CREW_EEXITED: the exit code */
    int detail;
    unsigned runs;     /* out: times the task was started: 1 + retries used (0: never) */
    uintptr_t fault_addr;   /* CREW_EREADONLY: the address the task wrote to */
    uint64_t fault_offset;  /* ... and its offset inside the arena */
} crew_task;

typedef struct crew_run_opts {
    /* Nonzero: once a task has failed, start no more; tasks not started get
     * status CREW_ECANCELED.  Tasks already running finish, and a task that
     * another worker starts at the moment of the failure may still run.
     * Process pools stop in task order: every task before the failed one
     * still runs, only tasks after it are cancelled.
     * Cancelled tasks count as failed (crew_run returns CREW_EFAILED). */
    int stop_on_error;
    /* Called once per task, on the thread that ran it, as soon as its status
     * is final (also for cancelled tasks), so results can be consumed while
     * the run goes on.  Calls may be concurrent. */
    void (*on_done)(void *ctx, size_t index);
    /* Called at most about ten times a second while the run goes on, and
     * once at the end with done == total (also when n == 0).  Never
     * concurrently with itself.  failed counts failed and cancelled tasks. */
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
 * NULL with n > 0, a task with fn NULL: nothing is run).  Process pools
 * (section 4b) also return CREW_E2BIG (a task's arg_size + result_size
 * exceeds CREW_PROC_MAX_BYTES: nothing is run), CREW_EINVAL (`shared`
 * is an arena over caller memory opened after crew_open, which the workers
 * lack: see crew_arena_open_memory), CREW_EBUSY (called from on_done or
 * progress of a call on the same pool) and CREW_ELOST.
 * Thread pools set each task's runs to 1 (0 when cancelled).
 * Ownership: tasks, their arguments and results stay the caller's; crew
 * writes only task->status.  Thread-safe: yes; may be nested in a task.
 */
CREW_API int crew_run(crew *pool, const void *shared, crew_task *tasks, size_t n,
                      const crew_run_opts *opts);

/*
 * A feed hands crew_run_feed its tasks one at a time, while the run goes
 * on: for a stream too long to hold (a file of millions of task lines), or
 * tasks produced as results come back.  Memory stays bounded by what the
 * feed keeps in flight.
 */
typedef struct crew_feed {
    /*
     * The next task: return 1 and set *task (crew uses it until it hands
     * it back through done; its fn must be set); 0 when there are no more;
     * CREW_EAGAIN when there is none for now (for bounded windows, or
     * tasks that arrive from elsewhere: crew calls next again after the
     * next done, and at the latest 2 ms later while tasks are in flight); any
     * other negative value stops the run, which returns it: running
     * tasks finish, and tasks given but not started yet (a process pool
     * queues some ahead) come back through done with CREW_ECANCELED.
     * Returning CREW_EAGAIN with no task in flight is a bug of the feed,
     * and so is 1 without a task or any other positive value: the run
     * ends with CREW_EINVAL.
     */
    int (*next)(void *ctx, crew_task **task);
    /* The task's status (and process pools' detail, runs, ...) is final;
     * crew no longer touches it.  Called for every task next gave, also
     * ones that fail before running (CREW_EINVAL: fn NULL; CREW_E2BIG;
     * CREW_ECANCELED after a stop; CREW_ELOST). */
    void (*done)(void *ctx, crew_task *task);
    void *ctx;
    /* Nonzero: after a task fails, next is no longer called; tasks in
     * flight finish, and process pools cancel those not started. */
    int stop_on_error;
} crew_feed;

/*
 * crew_run_feed -- run the tasks a feed gives, N at a time, until it has
 * no more and every task is done.  Tasks start in the order next gives
 * them; done reports them as they finish, in any order.  next and done
 * are never called concurrently with each other or themselves: by the
 * caller's thread on a process pool, by whichever thread of a thread pool
 * needs a task or finished one (under a lock, so a next that blocks, say
 * on a pipe, delays done calls meanwhile).  A thread pool also follows
 * crew_resize while the run goes on (a process pool always does).
 * Returns 0 when every task returned 0; CREW_EFAILED when some did not;
 * CREW_EINVAL (NULL pool, feed, next or done; the EAGAIN misuse above);
 * a negative value next returned; process pools: CREW_EINVAL (the
 * `shared` of crew_run), CREW_EBUSY, CREW_ELOST as crew_run.  Ownership: tasks stay the feed's.  Thread-safe: yes; may
 * be nested in a task (it then runs inside that worker).
 */
CREW_API int crew_run_feed(crew *pool, const void *shared, const crew_feed *feed);

typedef struct crew_future crew_future;

/*
 * crew_submit -- start one task in the background and return at once.
 * *task (and its argument and result) must stay valid until the task has
 * finished: until crew_future_wait returns, or, for a future freed without
 * waiting, until crew_close returns.  Its status is written when it ends.
 * Futures count against N like everything else: the pool's threads run at
 * most N at once, except that a thread waiting for a future nobody has
 * started runs it itself, in addition.  With N == 1 the task runs inside
 * crew_submit.
 * Returns 0 and sets *future, CREW_EINVAL (NULL pool, task, fn or future),
 * CREW_ENOMEM, CREW_ENOTSUP (a process pool: use crew_run).  Ownership: the caller frees *future with crew_future_free.
 * Thread-safe: yes; may be called from inside a task.
 */
CREW_API int crew_submit(crew *pool, const void *shared, crew_task *task,
                         crew_future **future);

/*
 * crew_future_wait -- block until the task finished; return its status
 * (0, its positive error, or CREW_E...).  If no worker has started the
 * task yet, the waiting thread runs it itself (so chains of futures that
 * wait for each other cannot starve).  The first worker of the pool that
 * waits for a running future runs other work meanwhile; other waiters
 * sleep.  May be called more than once, and from several threads.
 * Returns CREW_EINVAL for NULL.
 */
CREW_API int crew_future_wait(crew_future *future);

/* crew_future_done -- 1 if the task has finished, else 0 (also for NULL).
 * Never blocks. */
CREW_API int crew_future_done(const crew_future *future);

/*
 * crew_future_free -- release the future.  If its task is still running it
 * finishes on its own (its status is still written); crew_close waits for
 * it.  NULL: no-op.
 */
CREW_API void crew_future_free(crew_future *future);

/* ------------------------------------------------------------------------ */
/* 4b. Process pools                                                         */
/* ------------------------------------------------------------------------ */

/*
 * crew_open with .isolation = CREW_PROCESSES runs crew_run, crew_for and
 * crew_reduce in N forked worker processes.  The calls, their arguments and
 * their results are the same as with threads; what a task may touch is not.
 *
 * What a worker process sees (the rule to design tasks by):
 *   - Every crew arena that is open in the calling process when a call
 *     starts -- also one created or opened after crew_open -- at the same
 *     address, without a copy.  A frozen or opened (snapshot) arena is
 *     read-only there; a task writing to it fails with CREW_EREADONLY,
 *     and task->fault_addr / fault_offset say where.  An arena that is not
 *     frozen is writable in workers, and their writes are seen by the
 *     caller: that is where crew_for bodies put their output.  Freeze
 *     such an arena between calls: the idle workers then drop their
 *     writable mappings first, and the freeze is exactly as without a
 *     pool (CREW_EBUSY if a process you forked still maps it writable).
 *     Frozen while a call runs, it is sealed against new writable
 *     mappings and write(2) at once, but tasks still running, or started
 *     later in the same call, may still write through the mappings their
 *     workers hold, until the first task of the next call.
 *     Tasks may read an arena through its crew_arena handle
 *     (crew_arena_root, crew_arena_size, CREW_ARENA_GET, crew_arena_str,
 *     ...), which answers as in the caller when the call started; only the
 *     caller changes an arena (crew_arena_alloc, set_root, freeze from a
 *     task fail with CREW_EINVAL or do nothing, crew_arena_close does
 *     nothing).  While a process pool is open, arenas are placed in one
 *     range of address space reserved for them (up to 16 TiB, less where
 *     the system allows less), and at most 65536 may be open: an arena that
 *     does not fit is refused (CREW_ENOMEM from crew_arena_create /
 *     crew_arena_open).  An arena a task creates is its worker's own and
 *     never shared.
 *   - The exception: an arena over caller memory (crew_arena_open_memory)
 *     has no file to map, so workers see it only by inheriting the memory.
 *     Opened before crew_open, it is there in every worker (also those
 *     that replace crashed ones), read-only: a task writing to it fails
 *     with CREW_EREADONLY.  Opened after crew_open, it does not exist in
 *     that pool's workers: crew_run and crew_run_feed refuse it as
 *     `shared` (CREW_EINVAL), and a task reaching it another way finds it
 *     empty (crew_arena_base and crew_arena_get give NULL).
 *   - Everything else -- globals, the heap, the `shared` and `ctx`
 *     pointers' targets, code -- as it was when crew_open returned, copy-
 *     on-write: later changes by the caller are not seen, and a task's
 *     writes there are lost when it returns.  Memory allocated after
 *     crew_open (outside arenas) and code loaded with dlopen after it
 *     do not exist in the workers.
 *   - task->arg: arg_size bytes copied into shared memory, so the argument
 *     may live anywhere; with arg_size 0 the pointer is passed as it is
 *     (it must then point into an arena or into memory from before
 *     crew_open).  task->result: the task writes result_size bytes in
 *     shared memory, which are copied to task->result when the task
 *     returns (also with a positive error; never after a crash).  With
 *     result_size 0 the task gets NULL.  arg_size + result_size may not
 *     exceed CREW_PROC_MAX_BYTES: pass bigger data through an arena.
 *   - crew_reduce accumulators (r->size bytes) travel the same way; the
 *     combine runs in the caller, left to right.
 *
 * Failures.  A task whose worker dies gets a status saying how, and every
 * other task still runs: CREW_ECRASHED (a signal, in task->detail: SIGSEGV,
 * SIGABRT from abort(), ...), CREW_EEXITED (it called exit or _exit; the
 * code in task->detail), CREW_ETIMEDOUT (it ran past task_timeout and was
 * killed), CREW_ENOMEM (its worker's private memory grew past
 * task_memory_limit: checked every millisecond, so a task can overshoot by
 * what it allocates in that time), CREW_EREADONLY (see above).  The worker
 * is replaced by a fresh one.  Tasks that crashed or timed out are run
 * again up to `retries` times (task->runs counts the starts).  crew_for and
 * crew_reduce return the first such failure of a range after its retries,
 * and start no more ranges.
 *
 * Processes.  Workers are forked from a supervisor process that crew_open
 * forks from the caller, so they are single-threaded children of a
 * single-threaded process.  Locks other threads hold at crew_open stay
 * held in the workers: do not open a process pool while another thread
 * holds a lock your tasks need.  Workers ignore SIGINT (so that a terminal
 * Ctrl-C reaches the caller, which decides), die when the caller's process
 * ends in any way or calls exec (the supervisor watches it; workers have
 * PR_SET_PDEATHSIG), and crew_close leaves no process, zombie, file
 * descriptor or /dev/shm entry behind.  crew_close in a process forked
 * from the caller (say, from an atexit handler when the child exits)
 * frees that process's copy only; the caller's pool goes on.  A task that calls exit() runs the
 * caller's atexit handlers in its worker, as after any fork; crew_open
 * flushes stdio first so that no buffered output is written twice.
 *
 * The caller's thread does not run tasks: it hands them out, collects
 * results and calls on_done and progress (on that thread, never
 * concurrently).  A call on the pool made from inside a task runs
 * serially inside that worker.  Calls from several threads take turns.
 * crew_join runs fa then fb on the calling thread; crew_submit returns
 * CREW_ENOTSUP.  crew_resize starts or retires worker processes.
 * Thread pools and process pools may be used in the same program; inside a
 * worker process, use only the pool that runs the task (thread pools opened
 * by the caller have no threads there).
 */
#define CREW_PROC_MAX_BYTES ((size_t)16 << 20)

/* ------------------------------------------------------------------------ */
/* 5. Observability                                                          */
/* ------------------------------------------------------------------------ */

typedef struct crew_worker_stats {
    uint64_t jobs;       /* crew_run tasks and futures run, and jobs taken
                            from a deque or the queue: ranges and join halves
                            of another worker, crew_run helpers, calls handed
                            over by outside threads (work a frame keeps and
                            runs itself is not a separate job) */
    uint64_t steals;     /* successful steals from other workers */
    uint64_t sleeps;     /* times the worker went to sleep for lack of work */
    uint64_t busy_ns;    /* time awake (running or looking for work, not asleep);
                            for worker 0: time inside calls.  A thread's
                            figure is brought up to date each time it sleeps;
                            worker 0's at the end of each call */
    /* Process pools (zero for thread pools).  jobs counts tasks and ranges
     * run in this slot, busy_ns the time spent running them, sleeps the
     * times the slot's worker waited for work. */
    int pid;             /* the worker process in this slot now; 0: none */
    uint64_t restarts;   /* worker processes of this slot that died and were replaced */
    uint64_t rss;        /* bytes resident in the worker now (shared pages included) */
    uint64_t pss;        /* proportional share: shared pages divided among their users */
    uint64_t uss;        /* bytes only this worker uses (its private pages) */
} crew_worker_stats;

/*
 * crew_stats -- copy the counters of up to n workers (index 0 is the
 * caller's slot) into out; return how many workers the pool has ever had
 * (which may exceed n).  Counters are read without stopping the pool, so
 * they are a recent picture, not an atomic one.  For a process pool,
 * index i is worker slot i, and the memory figures are read from
 * /proc/PID/smaps_rollup during the call (a few milliseconds per worker
 * for large mappings): the sum of pss over workers shows the data set
 * counted once, and a growing uss shows copy-on-write copies.
 * Thread-safe.
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
 *
 * Life of an arena:
 *
 *   crew_arena *a;
 *   crew_arena_create(&a, (size_t)1 << 30);          reserve 1 GiB of addresses
 *   crew_ref n = CREW_ARENA_NEW(a, struct node);     zeroed, aligned
 *   CREW_ARENA_PTR(a, struct node, n)->next = ...;   build with refs, not pointers
 *   crew_arena_set_root(a, n);
 *   crew_arena_freeze(a);                            sealed, read-only forever
 *   crew_arena_save(a, "data.crew");                 atomic snapshot file
 *   ... fork workers: they see the same pages at the same address ...
 *
 *   crew_arena_open(&b, "data.crew", 0);             later, any process: O(1)
 *   const struct node *r = CREW_ARENA_GET(b, struct node, crew_arena_root(b));
 *
 * Bytes [0, CREW_ARENA_PROLOGUE) of every arena belong to crew (that is
 * why ref 0 can mean null): freezing writes there a small description
 * (size, root) so that a process handed only the fd can adopt the arena.
 *
 * Processes.  The workers of a process pool (section 4b) see every open
 * arena at its address, whenever it was created (except an arena over
 * caller memory opened after crew_open: see crew_arena_open_memory).  A process you fork
 * yourself after crew_arena_create sees the arena at the same address,
 * sharing its pages (also later writes to bytes that were allocated before
 * the fork).  Only the creating process may allocate, set the root or
 * freeze (a child's allocations would collide with the parent's): in any
 * other process these fail with CREW_EINVAL.  Space the arena grows into
 * after your fork is not mapped in your child, so build first, freeze,
 * then fork.  crew_arena_freeze fails with CREW_EBUSY while a child you
 * forked still holds the writable mapping (a process pool's workers let
 * go of theirs when asked: see crew_arena_freeze).
 *
 * Limits.  The memfd behind a created arena counts against RLIMIT_FSIZE
 * like any file: growing it past that limit raises SIGXFSZ, which kills
 * the process unless it is ignored or handled (then the allocation fails
 * with -EFBIG).  crew changes no signal disposition; raise the limit or
 * ignore SIGXFSZ if arenas may grow that large.  The same holds for
 * crew_arena_save.
 */
typedef struct crew_arena crew_arena;
typedef uint64_t crew_ref;

#define CREW_ARENA_VERIFY 1u        /* crew_arena_open: also check the checksum */
#define CREW_ARENA_PROLOGUE 64u     /* bytes reserved by crew at the start */
#define CREW_ARENA_MAX_ALIGN 4096u  /* largest alignment an allocation may ask */

/*
 * crew_arena_create -- a new, empty, writable arena backed by an anonymous
 * memfd.  Address space for `capacity` bytes (rounded up to the page size)
 * is reserved now, memory is used only as allocations touch it, and the
 * base address never changes: pointers into the arena stay valid until
 * crew_arena_close.  Reserving costs no memory, so a generous capacity
 * (even far beyond RAM) is fine.
 * Returns 0 and sets *a; CREW_EINVAL (a NULL, capacity 0, or so large that
 * rounding overflows), CREW_ENOMEM (no address space or memory),
 * -errno from memfd_create/mmap.
 * Ownership: the caller owns *a and ends it with crew_arena_close.
 * Thread-safe: yes (each call makes its own arena).
 */
CREW_API int crew_arena_create(crew_arena **a, size_t capacity);

/*
 * crew_arena_try_alloc -- allocate `size` bytes aligned to `align` (a power
 * of two, at most CREW_ARENA_MAX_ALIGN) and store their ref in *ref.  The
 * bytes are zero (memory is never reused: there is no free; an arena is
 * released as a whole).  The ref is aligned to `align` and so is the
 * pointer, because the base is page-aligned.
 * Returns 0; CREW_EINVAL (a or ref NULL, size 0, align not a power of two
 * or too large, or called in a process other than the arena's creator), CREW_EFULL (capacity exhausted: the arena is unchanged
 * and smaller requests may still succeed), CREW_EFROZEN (frozen or opened
 * from a snapshot), CREW_ENOMEM or -errno (the memfd could not grow, for
 * example -EFBIG past RLIMIT_FSIZE: see "Limits" above).
 * Thread-safe: yes, several threads may allocate at once (lock-free
 * except when the arena grows), but not concurrently with crew_arena_freeze.
 */
CREW_API int crew_arena_try_alloc(crew_arena *a, size_t size, size_t align, crew_ref *ref);

/*
 * crew_arena_alloc -- crew_arena_try_alloc returning the ref, or 0 when it
 * fails for any reason (full, frozen, bad argument).  Thread-safe as above.
 */
CREW_API crew_ref crew_arena_alloc(crew_arena *a, size_t size, size_t align);

/*
 * crew_arena_array -- allocate `count` zeroed elements of `elem_size` bytes
 * aligned to `align`; 0 on failure, including count * elem_size
 * overflowing or count == 0 (an empty array is conventionally ref 0).
 * Prefer the typed form CREW_ARENA_ARRAY(a, type, count).  Thread-safe.
 */
CREW_API crew_ref crew_arena_array(crew_arena *a, size_t count, size_t elem_size,
                                   size_t align);

/*
 * crew_arena_ptr -- the address of `ref` in this process: base + ref, or
 * NULL for ref 0 (and in a worker that lacks the arena: see
 * crew_arena_open_memory).  Unchecked: use it for refs your own code made.  For data
 * read from a file use crew_arena_get.  The pointer is writable only until
 * the arena is frozen; writing through it afterwards faults (SIGSEGV).
 * Thread-safe.
 */
CREW_API void *crew_arena_ptr(const crew_arena *a, crew_ref ref);

/*
 * crew_arena_get -- the address of [ref, ref + size) when that range lies
 * inside the bytes in use and ref >= CREW_ARENA_PROLOGUE, else NULL.  Overflow-safe for any
 * ref and size, so it is the way to follow refs found in untrusted data.
 * Thread-safe.
 */
CREW_API const void *crew_arena_get(const crew_arena *a, crew_ref ref, size_t size);

/*
 * crew_arena_get_array -- crew_arena_get for `count` elements of
 * `elem_size` bytes that must also be aligned to `align` (0 or 1: no
 * alignment check; an align that is not a power of two gives NULL).  NULL
 * when out of range, misaligned, ref < CREW_ARENA_PROLOGUE or count *
 * elem_size overflows; count 0 gives NULL too.  Typed forms:
 * CREW_ARENA_GET(a, type, ref) and CREW_ARENA_GET_ARRAY(a, type, ref, n).
 * Thread-safe.
 */
CREW_API const void *crew_arena_get_array(const crew_arena *a, crew_ref ref, size_t count,
                                          size_t elem_size, size_t align);

/* Typed helpers: allocation, unchecked and checked access. */
#define CREW_ARENA_NEW(a, type) crew_arena_alloc((a), sizeof(type), _Alignof(type))
#define CREW_ARENA_ARRAY(a, type, n) crew_arena_array((a), (n), sizeof(type), _Alignof(type))
#define CREW_ARENA_PTR(a, type, ref) ((type *)crew_arena_ptr((a), (ref)))
#define CREW_ARENA_GET(a, type, ref) \
    ((const type *)crew_arena_get_array((a), (ref), 1, sizeof(type), _Alignof(type)))
#define CREW_ARENA_GET_ARRAY(a, type, ref, n) \
    ((const type *)crew_arena_get_array((a), (ref), (n), sizeof(type), _Alignof(type)))

/*
 * crew_arena_at -- base + ref without a call: the fast path for hot loops
 * over a trusted arena (take base once with crew_arena_base).  ref 0 gives
 * base itself, not NULL.
 */
static inline const void *crew_arena_at(const void *base, crew_ref ref)
{
    return (const char *)base + ref;
}

/*
 * crew_arena_set_root / crew_arena_root -- the ref where the structure
 * starts (0 until set).  The root is saved in snapshots and in the frozen
 * arena's prologue.  set_root on a frozen arena is ignored.  set_root
 * cannot fail, so it takes any value; a root must be 0 or a ref to a byte
 * in use past the prologue ([CREW_ARENA_PROLOGUE, crew_arena_size)), and
 * crew_arena_freeze and crew_arena_save refuse any other with
 * CREW_EBADROOT (a file with such a root could not be opened).
 * Thread-safe (atomic), but set the root before handing the arena out.
 */
CREW_API void crew_arena_set_root(crew_arena *a, crew_ref root);
CREW_API crew_ref crew_arena_root(const crew_arena *a);

/*
 * crew_arena_freeze -- make the arena read-only forever: no more
 * allocations (they fail with CREW_EFROZEN), the memfd is sealed with
 * F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK and F_SEAL_SEAL, trimmed to the
 * pages in use, and mapped read-only at the same base, so any write
 * faults instead of corrupting data that other workers read.  On kernels
 * that refuse a read-only shared mapping of a sealed memfd (before 6.7)
 * the mapping is MAP_PRIVATE, which shares the same pages all the same.
 * The workers of open process pools may map the arena writable: between
 * calls they are asked to drop those mappings first; during a call the
 * write seal is F_SEAL_FUTURE_WRITE, which forbids every new write and
 * writable mapping at once, and the workers swap their mappings for
 * read-only ones in the next call (section 4b).
 * Freezing a frozen or opened arena returns 0.
 * Threads reading the arena (crew_arena_get, crew_arena_str,
 * crew_arena_save, ...) may go on during the freeze: the bytes stay
 * mapped readable throughout, each change of mapping being one atomic
 * replacement.
 * Returns 0; CREW_EINVAL (a NULL, or not the creating process); CREW_EBADROOT (the root is neither 0
 * nor a ref in use: nothing changed); CREW_EBUSY (another process, such as
 * a child forked before the freeze, still maps the arena writable: the
 * arena stays writable and unchanged, freeze again once it is gone);
 * -errno (a system call failed).  After -errno, crew_arena_frozen tells
 * the state: 0, the arena is writable and unchanged, as after EBUSY; 1,
 * the write seal was in place before the failure, so the arena is frozen
 * and readable (allocations fail with CREW_EFROZEN) but perhaps not yet
 * trimmed or fully sealed (crew_arena_open_fd elsewhere then says
 * CREW_ENOTFROZEN): call crew_arena_freeze again to finish.
 * Thread-safe: no other thread may allocate, write or freeze meanwhile
 * (call it once building is over); readers may run.
 */
CREW_API int crew_arena_freeze(crew_arena *a);

/*
 * crew_arena_save -- write a snapshot file (format: docs/SNAPSHOT.md) of
 * the bytes in use and the root.  Atomic: the bytes go to a temporary file
 * in the same directory (".crew-tmp.<pid>.<n>", a hidden name of fixed
 * length, so any valid `path` works), which is fsync'ed (its writeback is
 * started chunk by chunk while it is written), renamed over `path`, and the
 * directory is opened and fsync'ed; a crash leaves either the old
 * file or the new one (and perhaps a stray temporary file), never a mix.
 * A process that has the old file open keeps reading the old data.  A
 * replaced file's permission bits are kept; a new file gets 0666 & ~umask.
 * The arena may be frozen or not; if not, nobody may write to it during
 * the save.
 * Returns 0; CREW_EINVAL (NULL argument, empty path); CREW_EBADROOT (see
 * crew_arena_set_root: no file is written); -errno.  An error from writing
 * or renaming (ENOSPC, EACCES, EFBIG, ...) leaves the old file untouched
 * and removes the temporary file.  An error from opening or fsyncing the
 * directory comes after the rename: `path` already holds the new file, but
 * the replacement may not survive a crash.
 * Thread-safe: yes, with itself, with readers and with a freeze.
 */
CREW_API int crew_arena_save(const crew_arena *a, const char *path);

/*
 * crew_arena_open -- map a snapshot file read-only.  Only the header is
 * read and checked, so opening takes the same time for 1 KiB and 64 GiB,
 * and the data pages come in from the page cache as they are touched and
 * are shared with every other process that maps the file.  With
 * CREW_ARENA_VERIFY the checksum of the whole file is checked too (this
 * reads all of it, with read calls, so a file found shorter than its
 * header said gives CREW_ETRUNC).  The arena is frozen; refs stay valid as
 * in the arena that was saved.
 * The data is mapped from the file, so a snapshot must not be truncated
 * or rewritten in place while it is open: touching a page that truncation
 * removed raises SIGBUS in the reader (in the caller's code, or in crew's
 * own readers such as crew_arena_str), and bytes rewritten in place change
 * under it.  A file that other users can write or truncate is therefore
 * a way to crash its readers; keep snapshots where only their writer can
 * change them.  crew_arena_save replaces files by rename, which is safe.
 * Returns 0 and sets *a; CREW_EINVAL (a or path NULL, unknown flags);
 * CREW_ENOTFILE (a FIFO, device or socket: never blocks waiting for a
 * writer); -errno (CREW_ENOENT, -EACCES, -EISDIR, ...); for a bad file:
 * CREW_EEMPTY, CREW_ETRUNC, CREW_EMAGIC, CREW_EVERSION, CREW_EENDIAN,
 * CREW_EBADSIZE, CREW_EBADROOT, CREW_ECHECKSUM (only with VERIFY).
 * Ownership: the caller owns *a (crew_arena_close).  Thread-safe: yes.
 */
CREW_API int crew_arena_open(crew_arena **a, const char *path, unsigned flags);

/*
 * crew_arena_open_fd -- adopt an arena from a file descriptor: either a
 * snapshot file, or the crew_arena_fd of a frozen arena received from
 * another process (for example over a Unix socket with SCM_RIGHTS).  The
 * pages are the same as the sender's, not a copy.  `fd` stays the
 * caller's: crew keeps its own duplicate.  CREW_ARENA_VERIFY checks a
 * snapshot's checksum; a sealed memfd has none (and cannot have changed).
 * Only a file that carries seals (a memfd) is taken for an arena's memfd;
 * any other file is read as a snapshot, so a regular file holding an
 * arena's raw bytes gives CREW_EMAGIC.
 * Returns as crew_arena_open, plus CREW_ENOTFROZEN for an arena's memfd
 * that is not sealed yet (never frozen, so its owner could still change
 * it, or its freeze failed halfway and must be repeated).
 * Thread-safe: yes.
 */
CREW_API int crew_arena_open_fd(crew_arena **a, int fd, unsigned flags);

/*
 * crew_arena_open_memory -- an arena over a snapshot's bytes already in
 * memory, without a copy: mem[0, size) must hold exactly what
 * crew_arena_save wrote to a file (for example received into a shared-
 * memory window that every process of a node maps).  The header is checked
 * as crew_arena_open checks a file's, with the same errors;
 * CREW_ARENA_VERIFY checksums the bytes in memory (reading all of them).
 * The arena is frozen; refs resolve as in the arena that was saved, and
 * crew_arena_base is mem + the snapshot's data offset (4096).
 * mem must be aligned to CREW_ARENA_MAX_ALIGN (4096; a page-aligned
 * mapping is), so that every allocation keeps the alignment it was made
 * with.  crew never maps, unmaps, writes, grows or seals the memory: the
 * caller keeps mem mapped and unchanged from this call until
 * crew_arena_close, which frees only crew's handle.  The arena has no file:
 * crew_arena_fd returns CREW_EINVAL; crew_arena_save writes the bytes.
 * Process pools: their workers are forked at crew_open and see this memory
 * only as they inherited it, so open the arena BEFORE crew_open of the
 * process pool that is to use it, over memory mapped MAP_SHARED or never
 * written after crew_open.  Workers, also those that replace crashed ones,
 * then read it at the same address, and the pages wholly inside
 * [mem, mem + size) are read-only in them (a task writing there fails
 * with CREW_EREADONLY).  An arena opened after crew_open does not exist in
 * that pool's workers: passed as crew_run's `shared` it makes the call fail
 * with CREW_EINVAL, and reached in a task another way it reads as empty
 * (crew_arena_base, _get, _ptr give NULL, size and root 0, catalogs
 * CREW_EFORMAT).  A worker keeps the pages it inherited mapped until the
 * pool is closed, even after the caller unmaps them.
 * Returns 0 and sets *a; CREW_EINVAL (a or mem NULL, unknown flags, mem
 * not aligned, mem + size past the end of the address space);
 * CREW_ENOMEM; for bad bytes: CREW_EEMPTY (size 0), CREW_ETRUNC,
 * CREW_EMAGIC, CREW_EVERSION, CREW_EENDIAN, CREW_EBADSIZE (also: size
 * larger than the snapshot), CREW_EBADROOT, CREW_ECHECKSUM (only with
 * VERIFY).
 * Ownership: the caller owns *a (crew_arena_close) and keeps owning mem.
 * Thread-safe: yes; several arenas may be opened over the same memory.
 */
CREW_API int crew_arena_open_memory(crew_arena **a, const void *mem, size_t size,
                                    unsigned flags);

/*
 * crew_arena_base -- the address of byte 0.  Never changes during the
 * arena's life.  crew_arena_size -- bytes in use (the prologue included),
 * which is what a snapshot holds.  crew_arena_capacity -- the most it can
 * hold.  crew_arena_frozen -- 1 when read-only (frozen or opened), else 0.
 * All return 0 / NULL for a NULL arena.  Thread-safe.
 */
CREW_API const void *crew_arena_base(const crew_arena *a);
CREW_API size_t crew_arena_size(const crew_arena *a);
CREW_API size_t crew_arena_capacity(const crew_arena *a);
CREW_API int crew_arena_frozen(const crew_arena *a);

/*
 * crew_arena_fd -- the file descriptor behind the mapping: the memfd of a
 * created arena (data at offset 0), or the snapshot file of an opened one.
 * Hand it to another process (inherit it, or SCM_RIGHTS) and call
 * crew_arena_open_fd there, after freezing.  It is close-on-exec.
 * Returns the fd, or CREW_EINVAL for NULL and for an arena over memory
 * (crew_arena_open_memory), which has no file.
 * Ownership: the arena's; do not close it.  Thread-safe.
 */
CREW_API int crew_arena_fd(const crew_arena *a);

/*
 * crew_arena_close -- unmap the arena and close its fd.  Pointers into it
 * become invalid in this process; other processes that map it keep their
 * pages.  For an arena over memory (crew_arena_open_memory) it frees only
 * the handle: the memory is the caller's, untouched.  NULL: no-op.  Not
 * while other threads still use the arena.
 */
CREW_API void crew_arena_close(crew_arena *a);

/*
 * Strings.  crew_arena_strdup copies a NUL-terminated string into the
 * arena; crew_arena_strndup copies exactly `len` bytes of s (unlike POSIX
 * strndup it does not stop at a NUL: s must have them; a NUL inside makes
 * crew_arena_str see a shorter string) and adds a NUL.  Both return
 * 0 when the arena is full or frozen, or an argument is NULL.
 * crew_arena_str is the checked reader: the string at ref, or NULL when ref
 * is 0, outside the bytes in use, or no NUL ends it before the end of the
 * arena (safe on untrusted files).  Thread-safe as crew_arena_alloc / get.
 */
CREW_API crew_ref crew_arena_strdup(crew_arena *a, const char *s);
CREW_API crew_ref crew_arena_strndup(crew_arena *a, const char *s, size_t len);
CREW_API const char *crew_arena_str(const crew_arena *a, crew_ref ref);

/*
 * A string table stores each distinct string once in an arena (interning),
 * so equal strings have equal refs, and can publish into the arena an index
 * that any reader of the frozen arena or its snapshot can search by
 * content:
 *
 *   crew_strtab *t;  crew_strtab_create(&t, a);
 *   crew_ref w = crew_strtab_intern(t, "apple", 5);      same ref every time
 *   crew_ref index = crew_strtab_publish(t);             store it, e.g. in the root
 *   crew_strtab_close(t);  crew_arena_freeze(a); ...
 *   crew_ref found = crew_strtab_find(a, index, "apple", 5);   == w
 *
 * The table's own hash table lives in ordinary memory; only the strings
 * and the published index live in the arena.
 */
typedef struct crew_strtab crew_strtab;

/*
 * crew_strtab_create -- an empty table that interns into arena `a`.
 * Returns 0, CREW_EINVAL (NULL), CREW_ENOMEM.  The caller owns *t
 * (crew_strtab_close); the arena must outlive it.  Thread-safe: a table
 * is used by one thread at a time.
 */
CREW_API int crew_strtab_create(crew_strtab **t, crew_arena *a);

/*
 * crew_strtab_intern -- the ref of a NUL-terminated copy of s[0, len) in
 * the arena, stored on first sight and reused after.  0 when the arena is
 * full or frozen, out of memory, or s contains a NUL byte (strings are
 * found by content and must be NUL-free).
 */
CREW_API crew_ref crew_strtab_intern(crew_strtab *t, const char *s, size_t len);

/* crew_strtab_count -- distinct strings interned so far. */
CREW_API size_t crew_strtab_count(const crew_strtab *t);

/*
 * crew_strtab_publish -- write into the arena an index of every string
 * interned so far (an open-addressing hash table keyed by XXH3-64, whose
 * layout docs/SNAPSHOT.md describes) and return its ref; 0 when the arena
 * is full or frozen.  Publishing again after more interning writes a new
 * index (the old one stays valid for the strings it knew).
 */
CREW_API crew_ref crew_strtab_publish(crew_strtab *t);

/*
 * crew_strtab_find -- look s[0, len) up in a published index: its ref, or
 * 0 when absent.  Every ref read from the arena is bounds-checked, so it is
 * safe on untrusted snapshots (a corrupt index finds nothing or a wrong
 * string, never reads outside the arena).  Thread-safe, read-only.
 */
CREW_API crew_ref crew_strtab_find(const crew_arena *a, crew_ref index, const char *s,
                                   size_t len);

/* crew_strtab_close -- free the table (the strings stay in the arena). NULL: no-op. */
CREW_API void crew_strtab_close(crew_strtab *t);

/* ------------------------------------------------------------------------ */
/* 7. Data sets: named columns in an arena                                   */
/* ------------------------------------------------------------------------ */

/*
 * A catalog is an arena's root when the arena holds named data sets: typed
 * arrays (a column of numbers) and string columns (one string per row).
 * `crew pack` writes one from ordinary files, `crew inspect` lists it, and
 * plugins find their inputs in it by name.  Its layout is in
 * docs/SNAPSHOT.md; every read is bounds-checked, so a corrupt snapshot
 * gives CREW_EFORMAT, never a read outside the arena.
 */
enum crew_type {
    CREW_T_U8 = 1, CREW_T_I32, CREW_T_U32, CREW_T_I64, CREW_T_U64, CREW_T_F32, CREW_T_F64,
    CREW_T_STR    /* strings: data holds them NUL-terminated, back to back */
};

typedef struct crew_dataset {
    const char *name;   /* in the arena (reading) or the caller's (writing) */
    int type;           /* enum crew_type */
    uint64_t count;     /* elements (rows) */
    crew_ref data;      /* the elements; CREW_T_STR: the string bytes */
    crew_ref offsets;   /* CREW_T_STR only: count + 1 uint64_t offsets into
                           data; string i is data + offsets[i], NUL-terminated */
} crew_dataset;

/* crew_type_size -- bytes per element of a numeric type; 0 for CREW_T_STR
 * and unknown types.  crew_type_name -- "u8", "i32", ..., "str", or NULL. */
CREW_API size_t crew_type_size(int type);
CREW_API const char *crew_type_name(int type);

/*
 * crew_catalog_write -- store a catalog of n data sets in arena `a` (names
 * copied in) and make it the root.  The data each entry refers to must
 * already be in the arena: numeric elements aligned to their size (an
 * empty data set may have data 0), and for CREW_T_STR count + 1 aligned
 * offsets and the offsets[count] bytes of data they index.  `offsets` is
 * ignored for numeric types.  Names must be distinct, non-empty, at most
 * 255 bytes.  n may be 0 (sets may then be NULL): an empty catalog.
 * Returns 0, CREW_EINVAL (NULL, bad type, data outside the arena, a
 * duplicate or bad name, or not the creating process), CREW_EFULL,
 * CREW_EFROZEN, CREW_ENOMEM, -errno (the arena could not grow).  On
 * failure the root is unchanged (some bytes may have been allocated).
 * Only the creating process, before the freeze; not concurrently with
 * another writer of the root.  The names stay the caller's.
 */
CREW_API int crew_catalog_write(crew_arena *a, const crew_dataset *sets, size_t n);

/*
 * crew_catalog_count -- data sets in the arena's catalog, or CREW_EFORMAT
 * (the root is not a catalog), CREW_EINVAL (NULL).
 * crew_catalog_get -- entry i, checked: its data (and offsets) lie inside
 * the arena.  0, CREW_EINVAL (NULL, i out of range), CREW_EFORMAT.
 * crew_catalog_find -- the entry named `name`: 0, CREW_ENOENT, CREW_EFORMAT,
 * CREW_EINVAL.  All three are read-only and thread-safe; *out's name
 * points into the arena.
 */
CREW_API int crew_catalog_count(const crew_arena *a);
CREW_API int crew_catalog_get(const crew_arena *a, size_t i, crew_dataset *out);
CREW_API int crew_catalog_find(const crew_arena *a, const char *name, crew_dataset *out);

/*
 * crew_dataset_array -- the elements of a numeric data set, when its type
 * is `type`; NULL otherwise (or NULL arguments, or data that does not lie
 * inside the arena: checked again here in O(1), since *d is the caller's).
 * An empty data set gives a valid, non-NULL address with no elements.
 * crew_dataset_str -- row i of a CREW_T_STR data set and its length in
 * *len (may be NULL); NULL when i >= count, the type differs, or the
 * offsets are corrupt.  O(1): it checks that offsets[i] < offsets[i + 1]
 * <= offsets[count], that those bytes lie inside the arena, and that a NUL
 * ends the row at offsets[i + 1] - 1 (*len is offsets[i + 1] - offsets[i]
 * - 1; only a hand-made catalog has a NUL inside a row, which strlen then
 * sees as shorter).  Both point into the arena; read-only and thread-safe.
 */
CREW_API const void *crew_dataset_array(const crew_arena *a, const crew_dataset *d, int type);
CREW_API const char *crew_dataset_str(const crew_arena *a, const crew_dataset *d, uint64_t i,
                                      size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* CREW_H */
