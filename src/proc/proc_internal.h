/*
 * proc_internal.h -- process pools: the memory the caller, the supervisor
 * and the workers share, and what each side's source file offers.
 *
 * Three kinds of process take part:
 *   - the caller (crew_open's process), which hands out work and collects
 *     results (dispatch.c), and opens and closes the pool (proc.c);
 *   - the supervisor, forked once by crew_open, which forks the workers,
 *     reaps them, kills the ones that run too long or grow too large,
 *     settles the task a dead worker held, and dies with the caller
 *     (supervisor.c);
 *   - the workers, which take work from the ring and run it (worker.c).
 *
 * They share one MAP_SHARED anonymous mapping made before the first fork
 * (so it needs no name in /dev/shm and vanishes with its last user): the
 * header below, the worker slots, the ring of work descriptors, and the
 * byte area holding arguments, results and accumulators.
 *
 * The ring.  PROC_RING descriptors hold the work in flight, taken from a
 * free list and returned to it in any order, so a slow task keeps only its
 * own descriptor (and bytes) busy.  The order of work is a queue of
 * descriptor numbers with sequence numbers s = 0, 1, 2, ... (position s at
 * queue[s % PROC_RING]): the caller fills a descriptor, appends its number
 * and advances head; a worker reads the number at position claim, takes the
 * position by advancing claim with a CAS, and moves the descriptor's state
 * READY -> RUNNING; whoever finishes it (the worker, or the supervisor for
 * a dead worker) moves RUNNING -> DONE; the caller reads the outcome and
 * frees it.  A descriptor claimed by a worker that died before starting it
 * is still READY with a position below claim: the supervisor moves it to
 * ABANDONED (a CAS, so at most one of "start it" and "abandon it" happens)
 * and the caller hands it out again.
 */
#ifndef CREW_PROC_INTERNAL_H
#define CREW_PROC_INTERNAL_H

#include <signal.h>

#include "internal.h"

#define PROC_RING 8192u                     /* descriptors in flight (power of two) */
#define PROC_BYTES ((size_t)64 << 20)       /* argument/result bytes in flight */
#define PROC_MAX_ARENAS CREW__SPACE_HANDLES /* arenas a worker can map */
#define PROC_TICK_NS 1000000u               /* supervisor's check period during calls */

enum { D_FREE = 0, D_READY = 1, D_RUNNING = 2, D_DONE = 3, D_ABANDONED = 4 };
/* RUNNING carries the worker's slot: state = D_RUNNING | (slot << 8). */
#define D_RUNNING_BY(w) ((uint32_t)D_RUNNING | ((uint32_t)(w) << 8))

enum { CALL_RUN = 1, CALL_FOR = 2, CALL_REDUCE = 3 };

/* Set in slot.running by the supervisor when it condemns the task being
 * run: the worker, finding it there at the task's end, does not leave
 * the task but waits for its SIGKILL. */
#define PROC_DOOMED ((uint64_t)1 << 63)

/* Why the supervisor killed a worker (slot.kill_reason). */
enum { KILL_NONE = 0, KILL_TIMEOUT = 1, KILL_MEMORY = 2, KILL_STOP = 3 };

typedef struct proc_desc {
    _Atomic uint32_t state;
    int32_t status;          /* out: the outcome (see dispatch.c) */
    int32_t detail;          /* out: signal or exit code */
    uint32_t started;        /* out: the function was called */
    uint64_t seq;            /* its position in the queue */
    uint64_t item;           /* task index, or range index */
    uint64_t lo, hi;         /* the range (CALL_FOR, CALL_REDUCE) */
    crew_task_fn *fn;        /* CALL_RUN */
    uint64_t arg;            /* an address: in the byte area, or the caller's */
    uint64_t res, res_size;  /* result / accumulator: address in the byte area */
    uint64_t fault_addr, fault_off;
    uint64_t t0, t1;         /* out: when it ran (for the trace) */
    uint32_t worker;         /* out: the slot that ran it */
    uint32_t pad;
} proc_desc;

typedef struct proc_slot {
    _Alignas(CREW_CACHE_LINE) _Atomic int32_t pid;   /* 0: no worker */
    _Atomic uint32_t kill_reason;
    _Atomic uint64_t running;      /* sequence + 1 of the descriptor being run; 0: none
                                      (| PROC_DOOMED: being killed for it) */
    _Atomic uint64_t start_ns;     /* when it started (0: not running a task) */
    _Atomic int64_t mem_base;      /* private pages when it started */
    /* Set by the worker's fault handler just before it dies. */
    _Atomic uint32_t fault_readonly;
    _Atomic uint32_t revoke_ack;   /* the last revoke_gen this worker carried out */
    uint64_t fault_addr, fault_off;
    /* statistics */
    _Atomic uint64_t jobs, busy_ns, sleeps, restarts;
} proc_slot;

typedef struct proc_shared {
    /* Fixed at crew_open. */
    pid_t caller_pid;
    uint64_t pool_gen;             /* this pool's number (space.c) */
    uint32_t max_workers;
    uint64_t timeout_ns;
    void (*worker_exit)(void *ctx);  /* crew_config's, valid in workers (forked) */
    void *worker_ctx;
    int64_t mem_limit_pages;
    int event_fd;                  /* caller -> supervisor: look at the header */
    int life_fd[2];                /* a pipe: only the caller holds [1] (close-on-exec),
                                      so [0] reads EOF once it exits or execs */
    /* Control. */
    _Atomic uint32_t active;       /* N: slots [0, N) have workers */
    _Atomic uint32_t stopping;
    _Atomic uint32_t lost;         /* the supervisor gave up (CREW_ELOST) */
    _Atomic uint32_t ready;        /* the supervisor started the first workers */
    _Atomic uint32_t slots_used;   /* slots [0, slots_used) have ever had a worker */
    _Atomic uint32_t in_call;      /* a call is running: the supervisor ticks */
    _Atomic uint32_t stop;         /* a range failed, or a feed's error: cancel what is left */
    /* stop_on_error tripped: tasks queued after this position are
     * cancelled (UINT64_MAX: none), those before it still run, so the run
     * stops at the failure in queue order, whichever worker sees what first. */
    _Atomic uint64_t stop_after;
    uint32_t stop_on_error;        /* the call's: a worker whose task fails lowers stop_after */
    /* A freeze asks workers to drop writable mappings of the arena at
     * revoke_base: revoke_gen moves, each worker answers in its slot. */
    _Atomic uint64_t revoke_base;
    _Atomic uint32_t revoke_gen;
    /* The call. */
    uint32_t kind;
    const void *shared;            /* CALL_RUN */
    void *ctx;                     /* CALL_FOR, CALL_REDUCE */
    crew_range_fn *body;
    void (*r_init)(void *ctx, void *acc);
    void (*r_body)(void *ctx, size_t lo, size_t hi, void *acc);
    /* The ring's sequence numbers. */
    _Alignas(CREW_CACHE_LINE) _Atomic uint64_t head;
    _Alignas(CREW_CACHE_LINE) _Atomic uint64_t claim;
    _Atomic uint32_t queue[PROC_RING]; /* descriptor numbers in the order of work */
    /* Sleeping and waking. */
    _Alignas(CREW_CACHE_LINE) _Atomic uint32_t work_word;   /* bumped when work appears */
    _Atomic uint32_t idle;         /* workers asleep on work_word */
    _Alignas(CREW_CACHE_LINE) _Atomic uint32_t done_word;   /* bumped per finished descriptor */
    _Atomic uint32_t caller_waiting;
    /* Arenas the workers map (written by the caller between calls). */
    _Alignas(CREW_CACHE_LINE) _Atomic uint64_t arena_gen;
    uint32_t n_arenas;
    crew__arena_view arenas[PROC_MAX_ARENAS];
} proc_shared;

/* The whole shared mapping. */
typedef struct proc_map {
    proc_shared *hdr;
    proc_slot *slots;              /* [max_workers] */
    proc_desc *ring;               /* [PROC_RING]: the descriptors */
    unsigned char *bytes;          /* [PROC_BYTES] */
    void *base;
    size_t len;
} proc_map;

/* The caller's side of a process pool (hung from struct crew). */
typedef struct crew__proc {
    proc_map m;
    pid_t supervisor;
    int supervisor_fd;             /* pidfd of the supervisor */
    int life_rd, life_wr;          /* our copies of hdr->life_fd (-1: closed) */
    unsigned retries;
    pthread_mutex_t call_lock;     /* one call at a time */
    _Atomic(void *) call_owner;    /* thread inside a call (to refuse re-entry) */
    uint64_t table_gen;            /* number of the table last shown to workers */
    crew__arena_view *scratch;     /* [PROC_MAX_ARENAS]: the next table, to compare */
    crew__proc *next_open;         /* the list of open pools (freeze asks them all) */
    pid_t owner;                   /* the process that opened the pool */
    uint64_t pool_gen;             /* this pool's number (space.c) */
    /* Caller only: free descriptors, and the byte area's free ranges
     * (first fit, sorted, coalesced; at most one more than descriptors). */
    uint32_t *free_desc;           /* [PROC_RING] */
    uint32_t n_free_desc;
    struct proc_range { size_t off, len; } *free_bytes; /* [PROC_RING + 1] */
    size_t n_free_bytes;
    size_t *desc_off, *desc_len;   /* [PROC_RING]: each descriptor's bytes */
} crew__proc;

/* proc.c (crew__proc_open, _close, _resize, _stats: internal.h) */
/* Tell the supervisor to look at the header. */
void crew__proc_poke(crew__proc *p);
/* Show the workers the arenas open now (between calls).  0 or -EMFILE. */
int crew__proc_publish_arenas(crew__proc *p);

/* supervisor.c: the supervisor's life; never returns. */
_Noreturn void crew__supervisor_main(proc_map *m);

/* worker.c: a worker's life in slot w; never returns. */
_Noreturn void crew__worker_main(proc_map *m, unsigned w);
/* In a worker: its pool's shared mapping (a call on that pool from inside
 * a task then runs inline).  NULL elsewhere. */
extern proc_map *crew__proc_self;
/* The arenas the supervisor found at its start (their ranges are
 * reserved in every worker); set in the supervisor, inherited by workers. */
extern crew__arena_view *crew__proc_inherited;
extern uint32_t crew__proc_n_inherited;
/* The arenas over caller memory open at crew_open (crew__space_pool_start):
 * every worker inherits that memory, and makes the pages wholly inside it
 * read-only (base/len then say which; len 0: none).  Set in the
 * supervisor, inherited by workers. */
extern crew__arena_view *crew__proc_lent;
extern size_t crew__proc_n_lent;

/* dispatch.c: crew__proc_run, _for, _reduce (internal.h) */

static inline uint32_t proc_load32(_Atomic uint32_t *w)
{
    return atomic_load_explicit(w, memory_order_acquire);
}

/* Private pages (anonymous resident) of process `statm_fd`'s owner: the
 * second field of /proc/PID/statm minus the third.  -1 on error. */
int64_t crew__proc_private_pages(int statm_fd);

/* Lower stop_after to seq (never raise it): the first failure in queue
 * order wins, whichever process sees its failure first. */
static inline void crew__proc_stop_after(proc_shared *h, uint64_t seq)
{
    uint64_t cur = atomic_load_explicit(&h->stop_after, memory_order_relaxed);
    while (seq < cur && !atomic_compare_exchange_weak_explicit(&h->stop_after, &cur, seq,
                                                               memory_order_release,
                                                               memory_order_relaxed))
        ;
}

#endif
