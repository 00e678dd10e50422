/*
 * run.h -- what the parts of crew run share: the task's argument and
 * result as workers see them, a task between reading and writing, and the
 * run's state.  run.c drives the run, run_worker.c is the side of a task
 * that runs in a worker, run_output.c writes records and log lines.
 */
#ifndef CREW_CLI_RUN_H
#define CREW_CLI_RUN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/cli.h"
#include "cli/joblog.h"
#include "cli/plugin.h"
#include "cli/tasks.h"
#include "crew.h"
#include "crew_plugin.h"

enum { FMT_TSV, FMT_JSONL, FMT_RAW };

/* What travels to the worker: copied into shared memory by process pools. */
typedef struct task_arg {
    struct task_result *res; /* the task's slot in the outbox */
    uint64_t seq;
    uint32_t fn;
    uint32_t len;
    char text[]; /* the argument, NUL-terminated */
} task_arg;

/* What comes back, in the task's slot of the outbox: memory every worker
 * writes in place (for process pools an arena left unfrozen, which crew
 * maps writable in workers), so no result is copied.  Output up to
 * CREW_OUT_INLINE bytes stays in the slot; beyond, a thread pool's task
 * grows a heap buffer, a process pool's task writes a spool file (its
 * memory is not ours). */
enum { RES_INLINE, RES_HEAP, RES_SPOOL };
typedef struct task_result {
    uint64_t len;
    double t0, t1; /* wall clock around the call */
    char *heap;
    int where;
    int spool_error; /* a spool file could not be written: errno */
    char inline_buf[CREW_OUT_INLINE];
} task_result;

/* A task between reading and writing. */
typedef struct slot {
    crew_task task;
    task_arg *arg;
    size_t arg_cap;
    task_result *res;
    double given_at;
    bool finished;
} slot;

/* Everything a worker needs, set before crew_open (process workers are
 * forked then, and see this copy). */
typedef struct worker_view {
    const crew_plugin *plugin;
    const crew_arena *data;
    const char *spool;
    bool processes;
} worker_view;
extern worker_view wk;

typedef struct run_state {
    /* options */
    const char *plugin_path, *data_path, *output_path, *joblog_path, *trace_path;
    const char *jobs_arg, *each_name, *task_path;
    char **task_list;
    size_t n_tasks_listed;
    int isolation; /* -1: not given */
    double timeout;
    size_t memory_limit;
    unsigned retries;
    bool retries_set, stop_on_error, unordered, resume, resume_failed, verify, list;
    int progress; /* -1: when stderr is a terminal */
    int format;
    size_t window;

    /* the run */
    cli_plugin plugin;
    const crew_arena *data;
    crew_arena *outbox;   /* process pools: the result slots */
    void *outbox_mem;     /* thread pools: the same in plain memory */
    crew *pool;
    cli_source src;
    cli_joblog log;
    int out_fd;
    bool out_created;  /* -o did not exist: a refused run removes it */
    off_t out_cut;     /* --resume: where commit_files cuts the output */
    uint64_t out_pos;
    cli_progress *bar;
    slot *slots;
    slot **order;      /* ring of the tasks given, in order */
    size_t *free_slots, n_free;
    uint64_t given, written;
    uint64_t n_ok, n_failed, n_cancelled, n_skipped, n_skipped_failed, total;
    bool source_done, stopped_emitting, broken_pipe;
    int fatal;         /* CLI_USAGE after a bad line or a write error */
    /* Records and log lines wait here for one write each: the output
     * first, then the log, so the log never gets ahead of the output. */
    pthread_mutex_t io_lock;
    cli_buf obuf, lbuf;
    double flushed_at;
    atomic_int interrupts;
    int wake[2];
    bool signal_thread_running;
    pthread_t signal_thread;
    atomic_bool quit_signal_thread;
    unsigned jobs_now;
    char spool_dir[4096];
    int spool_lock;    /* held while the spool directory is in use */

    /* --mpi: this rank, how many; the root (0) reads tasks and writes
     * records, every rank runs tasks */
    bool mpi;
    int rank, ranks;
    bool pool_lost;    /* this rank's worker processes were lost */
    char rank_trace[4200]; /* --trace for a rank other than the root */
} run_state;
extern run_state R;

/* The MPI side of crew run (run_mpi.c), present in crew-mpi only: crew
 * itself has none and hands `crew run --mpi` over to crew-mpi.  Each
 * step is collective: every rank calls it at the same point. */
typedef struct run_mpi_ops {
    /* MPI_Init; the root's arguments replace the others' (every rank runs
     * the root's command line).  0, or an exit status. */
    int (*init)(int *argc, char ***argv);
    /* The largest rc of all ranks (each rank's own verdict on a step). */
    int (*agree)(int rc);
    /* Open R.data_path, one copy per node.  0, or an exit status. */
    int (*open_data)(void);
    /* Run the tasks: the root through run_feed_next / run_slot_done.
     * Returns what crew_run_feed would. */
    int (*run)(void);
    /* Close the data, MPI_Finalize. */
    void (*finish)(void);
} run_mpi_ops;
extern const run_mpi_ops *run_mpi;

/* run.c: the feed, for run_mpi.c to drive */
int run_feed_next(void *ctx, crew_task **task);
void run_settle_result(task_result *res, crew_task *t, uint64_t seq);
void run_slot_done(slot *s);

/* run_worker.c */
int run_task(const void *shared, const void *arg, void *result);
void run_worker_exit(void *ctx);
void run_fini_threads(void);
int spool_path(char *buf, size_t size, uint64_t seq);
int write_all(int fd, const char *p, size_t n);

/* run_output.c */
#define IO_BATCH ((size_t)64 << 10)
#define IO_DELAY 0.1 /* seconds a finished task's record may wait */
void discard(slot *s);
void discard_result(task_result *r, uint64_t seq);
void fatal(const char *what);
void flush_io(void);
void emit(slot *s);

#endif
