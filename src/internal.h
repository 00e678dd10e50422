/*
 * internal.h -- declarations shared between crew's source files.
 *
 * Cross-file internals are named crew__<file>_<verb> and grouped here under
 * the file that defines them.  Nothing here is exported from the library.
 */
#ifndef CREW_INTERNAL_H
#define CREW_INTERNAL_H

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "crew.h"

#define CREW_CACHE_LINE 64

/* ---- futex.h-like helpers (header-only, used by every layer) ---------- */

/* Sleep while *word == expected.  Returns on wake, on a signal, or at once
 * when *word already differs: callers always re-check their condition. */
static inline void crew__futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static inline void crew__futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

/* The same across processes (the word lies in MAP_SHARED memory), with a
 * timeout in nanoseconds (0: none). */
static inline void crew__futex_wait_shared(_Atomic uint32_t *word, uint32_t expected,
                                           uint64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u)};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, timeout_ns ? &ts : NULL, NULL, 0);
}

static inline void crew__futex_wake_shared(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, count, NULL, NULL, 0);
}

static inline uint64_t crew__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void crew__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- jobs ---------------------------------------------------------------
 * A job is the unit the scheduler moves between workers.  It is always
 * embedded in a larger struct that belongs to the code that made it (a join
 * frame, a range of a crew_for, a crew_run, a future), usually on that
 * code's stack, and it is never freed by the scheduler. */
typedef struct crew__worker crew__worker;
typedef struct crew__job crew__job;
typedef void crew__job_fn(crew__job *job, crew__worker *w);

struct crew__job {
    crew__job_fn *run;
    crew__job *next;    /* link in the pool's injector queue */
    const char *name;   /* for the trace; NULL: the job traces itself */
};

/*
 * A latch counts outstanding work; whoever brings it to zero wakes the one
 * waiter.  The waiter is a worker (woken through its sleep flag, so that
 * it can also be woken for new work while it waits) or, when waiter is
 * NULL, an outside thread sleeping on the count itself.
 */
typedef struct crew__latch {
    _Atomic uint32_t count;
    crew__worker *waiter;
} crew__latch;

/* ---- deque.c: Chase-Lev work-stealing deque ------------------------- */

#define CREW_DEQUE_SIZE 8192 /* power of two; a full deque runs work inline */

typedef struct crew__deque {
    /* Thieves write top; the owner writes bottom: separate cache lines. */
    _Alignas(CREW_CACHE_LINE) _Atomic int64_t top;
    _Alignas(CREW_CACHE_LINE) _Atomic int64_t bottom;
    _Alignas(CREW_CACHE_LINE) crew__job *_Atomic slots[CREW_DEQUE_SIZE];
} crew__deque;

void crew__deque_init(crew__deque *d);
bool crew__deque_push(crew__deque *d, crew__job *job);
crew__job *crew__deque_pop(crew__deque *d);
/* steal: a job, NULL when empty; *contended is set when a race was lost. */
crew__job *crew__deque_steal(crew__deque *d, bool *contended);
bool crew__deque_empty(const crew__deque *d);

/* ---- trace.c: Chrome trace events -------------------------------------- */

typedef struct crew__trace_event {
    const char *name;
    uint64_t start_ns, dur_ns;
    uint64_t arg;
} crew__trace_event;

typedef struct crew__trace_buf {
    crew__trace_event *events;
    size_t len, cap;
    uint64_t dropped;
} crew__trace_buf;

void crew__trace_add(crew__trace_buf *t, const char *name, uint64_t start_ns, uint64_t arg);
/* The same for an event that ended at end_ns (not now). */
void crew__trace_span(crew__trace_buf *t, const char *name, uint64_t start_ns, uint64_t end_ns,
                      uint64_t arg);
int crew__trace_write(const crew *pool, const char *path);
void crew__trace_free(crew__trace_buf *t);

/* ---- pool.c and work.c: workers, finding work, sleeping, waiting -------- */

#define CREW_SPIN_ROUNDS 64 /* failed searches before sleeping (~ a few us) */

struct crew__worker {
    crew__deque dq;
    _Alignas(CREW_CACHE_LINE) crew *pool;
    unsigned id;
    uint64_t rng;
    unsigned help_depth;           /* nesting of work run while waiting */
    uint64_t awake_since;          /* for busy_ns: when the worker last woke */
    pthread_t thread;
    bool has_thread;
    crew__trace_buf trace;         /* owned by the worker's current thread */
    /* Counters: written by the owner, read by crew_stats at any time. */
    _Atomic uint64_t jobs, steals, sleeps, busy_ns;
    /* A SLEEP_ value; CASed by wakers, so on a line of its own. */
    _Alignas(CREW_CACHE_LINE) _Atomic uint32_t sleep;
};

enum {
    SLEEP_AWAKE = 0,
    SLEEP_IDLE = 1,    /* no work: wake me for any work */
    SLEEP_WAITING = 2, /* waiting past the help depth: only my latch wakes me */
    SLEEP_PARKED = 3,  /* beyond N: wake me for injector work or a resize */
};

typedef struct crew__proc crew__proc;

struct crew {
    crew__proc *proc;              /* non-NULL: a process pool (src/proc/) */
    crew__worker *slots[CREW_MAX_WORKERS];
    _Atomic unsigned started;      /* slots[0..started) exist */
    _Atomic unsigned active;       /* N: workers with id >= N only serve the injector */
    _Atomic bool stopping;
    _Atomic(char *) caller_owner;  /* token of the thread holding slot 0 */
    /* Written on every sleep and wake: apart from the read-mostly fields. */
    _Alignas(CREW_CACHE_LINE) _Atomic uint32_t sleepers; /* SLEEP_IDLE workers */
    _Atomic uint32_t parked;       /* SLEEP_PARKED workers */
    bool tracing;
    bool processes;                /* a process pool (proc may already be gone in close) */
    size_t stack_size;             /* of each worker thread */
    uint64_t t0_ns;                /* trace time origin */
    char *trace_path;
    pthread_mutex_t caller_lock;   /* held by the outside thread using slot 0 */
    pthread_mutex_t resize_lock;
    /* Injector: jobs from outside threads and futures, FIFO. */
    _Alignas(CREW_CACHE_LINE) pthread_mutex_t inj_lock;
    crew__job *inj_head, *inj_tail;
    _Atomic size_t inj_len;
    /* Futures whose tasks have not finished: crew_close waits for them. */
    crew__latch futures;
};

extern _Thread_local crew__worker *crew__tls_worker;

/* work.c: find work this worker may take (NULL: none). */
crew__job *crew__work_find(crew__worker *w);
/* work.c: sleep with a SLEEP_ flag unless something is ready (see there). */
crew__job *crew__work_sleep(crew__worker *w, uint32_t flag, _Atomic uint32_t *word,
                            uint32_t want);
void crew__work_wake_all(crew *pool);
/* Add to a statistics counter (relaxed). */
void crew__count(_Atomic uint64_t *c, uint64_t n);
/* Push a job on w's deque and wake a sleeper.  false: the deque is full. */
bool crew__work_push(crew__worker *w, crew__job *job);
crew__job *crew__work_pop(crew__worker *w);
void crew__work_inject(crew *pool, crew__job *job);
void crew__work_run_job(crew__worker *w, crew__job *job);
/* Run one job found anywhere (within the nesting cap); false: none. */
bool crew__work_help(crew__worker *w);
/* Wait until the latch reaches zero, running other work meanwhile. */
void crew__work_wait(crew__worker *w, crew__latch *l);
/* The same for any word that another thread sets to `want` with a seq_cst
 * store and then wakes us with crew__work_wake_waiter. */
void crew__work_wait_word(crew__worker *w, _Atomic uint32_t *word, uint32_t want);
void crew__work_wake_waiter(crew__worker *w);
void crew__latch_init(crew__latch *l, uint32_t count, crew__worker *waiter);
void crew__latch_add(crew__latch *l, uint32_t n);
void crew__latch_done(crew__latch *l);
/* Block an outside thread (not a worker of any pool) on a latch. */
void crew__latch_wait_outside(crew__latch *l);

/*
 * Run fn(w, arg) as a worker of pool: directly when the calling thread is
 * already one of its workers, as worker 0 when the caller can take that
 * slot, else as an injected job while the caller sleeps.
 */
void crew__pool_call(crew *pool, void (*fn)(crew__worker *w, void *arg), void *arg);
/* Slot id's worker struct, made without a thread when missing (with all
 * slots below it): process pools keep their trace buffers there.  NULL:
 * no memory.  Caller's thread only. */
crew__worker *crew__pool_slot(crew *pool, unsigned id);
unsigned crew__pool_active(const crew *pool);

/* ---- sys.c: allocation, thread start and the arena's system calls,
 * replaceable by tests ---------------------------------------------------- */

typedef struct crew__sys_table {
    void *(*malloc)(size_t size);
    void *(*calloc)(size_t n, size_t size);
    void *(*aligned_alloc)(size_t align, size_t size);
    int (*thread_create)(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg);
    /* the arena's mappings and memfd (src/arena/): return and errno as the
     * system calls; fcntl takes one int argument (enough for seals) */
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*ftruncate)(int fd, off_t len);
    int (*fcntl)(int fd, int cmd, int arg);
    int (*memfd_create)(const char *name, unsigned flags);
    /* a snapshot save's durability: the file, then its directory */
    int (*fsync)(int fd);
} crew__sys_table;

/* Exported (hidden visibility aside) only so that tests linking the static
 * library can replace entries; never changed while a pool is in use. */
extern crew__sys_table crew__sys;

/* ---- arena/space.c: the address space arenas live in, and the registry
 * of live arenas that process pools show their workers ------------------- */

/* One arena as a worker must map it: [base, base + len) from fd at
 * file_off, writable or read-only; data is the arena's byte 0. */
typedef struct crew__arena_view {
    uint64_t base, len, file_off, data;
    uint64_t dev, ino;   /* identify the file behind fd */
    int fd;              /* in the process that owns the arena */
    int writable;        /* not frozen: map it shared and writable */
    int in_space;        /* inside the reserved space (else its own reservation) */
    int shared_handle;   /* the crew_arena object itself is in shared memory */
    uint64_t handle;     /* the crew_arena object's address */
    uint64_t used, root; /* its state, for workers' copies of private objects */
} crew__arena_view;

#define CREW__SPACE_HANDLES 65536u /* arena objects in shared memory */

/* Reserve the space (once per process).  0, or CREW_ENOMEM. */
int crew__space_init(void);
/* Count open process pools (+1 / -1) and ask whether any is open. */
void crew__space_pools(int delta);
int crew__space_has_pools(void);
/* A process pool starts (before its fork): its number in *gen, and in
 * *lent (malloc'd, the caller frees it) the n_lent arenas over caller
 * memory open now, which its workers inherit (base/len: the caller's
 * memory, data: byte 0, handle: the object; fd -1).  0 or CREW_ENOMEM. */
int crew__space_pool_start(uint64_t *gen, crew__arena_view **lent, size_t *n_lent);
/* 1 when p is an arena over caller memory opened once pool number gen
 * had started: that pool's workers cannot see it.  Never reads memory p
 * points to unless p is an arena object. */
int crew__space_hides(const void *p, uint64_t gen);
/* This process is worker of process pool number gen: its arenas stay out
 * of the space, which belongs to the caller. */
void crew__space_worker(uint64_t gen);
/* Address space for an arena: in the space when there is room, else a
 * reservation of its own (refused with ENOMEM while a process pool is
 * open).  MAP_FAILED with errno on failure. */
void *crew__space_reserve(size_t len, int *in_space);
void crew__space_release(void *addr, size_t len, int in_space);
/* The registry (arena.c and snapshot.c keep it current). */
void crew__space_add(crew_arena *a);
void crew__space_remove(crew_arena *a);
/* Copy up to cap live arenas that workers map (all but those over caller
 * memory) into out; returns how many there are (which may exceed cap). */
size_t crew__space_list(crew__arena_view *out, size_t cap);
/* In a worker: bring its private copy of an arena object (one from before
 * the space existed) up to the caller's state in v. */
void crew__space_refresh(const crew__arena_view *v);
/* Arena objects: in shared memory while the space exists (NULL: use the
 * heap), so that workers see them live at the same address. */
crew_arena *crew__space_handle_new(void);
/* 0 when an arena object must be shared but none is free (a process pool
 * is open and all CREW__SPACE_HANDLES are in use). */
int crew__space_may_use_heap(void);
/* 1 if a was such an object (now free), 0 if it came from the heap. */
int crew__space_handle_free(crew_arena *a);
/* 1 if a is an object of the parent process, which this child of a fork
 * still shares (its copy could not be made): never change it. */
int crew__space_handle_parents(const crew_arena *a);
/* on: this thread forks a process pool's supervisor, which must share
 * the handle table (every other fork gives the child a copy). */
void crew__space_pool_fork(int on);
/* Ask every open process pool's workers to drop their writable mappings
 * of the arena at `base` (the proc layer registers how), then run
 * seal(fd) before any call may start again.  Returns seal's result, or 1
 * when some could not let go in time (busy in a call) or no pool answers
 * (seal did not run). */
int crew__space_revoke(uint64_t base, int (*seal)(int fd), int fd);
void crew__space_set_revoke(int (*fn)(uint64_t base, int (*seal)(int fd), int fd));
/* 1 in a process pool's worker process. */
int crew__space_in_worker(void);
/* This process's pid, cached (refreshed after fork). */
pid_t crew__space_pid(void);

/* ---- src/proc/: process pools, entered from the public calls when
 * pool->proc is set (declared here so that src/sched/ need not know more) */
/* Set pool->proc and start the supervisor and n workers, or fail and
 * leave pool->proc NULL. */
int crew__proc_open(crew *pool, const crew_config *cfg, unsigned n);
void crew__proc_close(crew *pool);
int crew__proc_resize(crew *pool, unsigned n);
/* N as the supervisor and every worker see it (also after a resize made
 * inside a task, which changes only that worker's copy of the pool). */
unsigned crew__proc_active(const crew *pool);
size_t crew__proc_stats(const crew *pool, crew_worker_stats *out, size_t n);
int crew__proc_run_feed(crew *pool, const void *shared, const crew_feed *feed);
int crew__proc_run(crew *pool, const void *shared, crew_task *tasks, size_t n,
                   const crew_run_opts *opts);
int crew__proc_for(crew *pool, size_t begin, size_t end, size_t grain, crew_range_fn *body,
                   void *ctx);
int crew__proc_reduce(crew *pool, size_t begin, size_t end, size_t grain,
                      const crew_reducer *r, void *ctx, void *out);

/* ---- cpus.c --------------------------------------------------------------- */
unsigned crew__cpus_usable(void);

#endif
