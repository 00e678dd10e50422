/*
 * space.c -- where arenas live, so that worker processes can map them too.
 *
 * A process pool forks its workers once, at crew_open, yet they must see
 * every arena at the same address, also one created later.  An address the
 * caller picks after the fork may be taken in a worker (by the worker's own
 * malloc, say).  So the first process pool reserves one large range of
 * address space -- inaccessible, costing nothing but one kernel mapping
 * entry -- before it forks, and every arena created or opened afterwards is
 * placed inside it.  The same range is reserved, hence free, in every
 * worker, which can map the arena there with MAP_FIXED without clobbering
 * anything.  Arenas from before the first process pool keep their own
 * reservations, which the workers inherit.
 *
 * The registry lists the live arenas; at the start of each call a process
 * pool copies the list into shared memory for its workers when anything
 * in it differs from the last copy.
 *
 * An arena over memory the caller lent (crew_arena_open_memory) has no
 * file a worker could map, and its range is not ours to reserve.  Workers
 * see it only by inheritance: the memory the caller had at crew_open is
 * there, at the same address, in every worker forked since.  So such an
 * arena is listed in the registry but never in the table; each pool is
 * numbered as it starts, and the arena remembers how many pools started
 * before it (those pools' workers lack the memory, and the accessors read
 * the arena as empty there).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena/arena_internal.h"

/* Free ranges of the reserved space, sorted by address, never adjacent. */
typedef struct range {
    uintptr_t base;
    size_t len;
} range;

#define SPACE_ALIGN ((size_t)2 << 20) /* arenas start on 2 MiB: huge-page friendly */
#define SPACE_MAX ((size_t)16 << 40)
#define SPACE_MIN ((size_t)1 << 30)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t space_lo;           /* start of the reserved range; 0 before init */
static range *free_ranges;
static size_t n_free, cap_free;
static crew_arena *live;             /* registry: doubly linked through arena->reg_* */
static _Atomic int pools;            /* open process pools */
static uint64_t pools_started;       /* process pools ever started here (under lock) */
static int in_worker;                /* this process is a pool's worker: the space is the caller's */
/* In a pool's worker: that pool's number (1 for the first); the arenas
 * over caller memory it sees have a smaller pools_before.  Elsewhere every
 * arena is visible. */
uint64_t crew__space_worker_gen = UINT64_MAX;
/* Arena objects made while the space exists: one shared mapping made with
 * it, so workers forked after crew_open see objects made later, live. */
static crew_arena *handles;
static unsigned char handle_used[CREW__SPACE_HANDLES];
static pid_t self_pid;
#define HANDLES_LEN (CREW__SPACE_HANDLES * sizeof(crew_arena))
/* Any other fork gives the child a copy of the objects (fork_prepare). */
static _Thread_local int pool_forking; /* this thread forks a pool's supervisor (or is one) */
static crew_arena *staged;             /* during a fork: the copy for the child */
/* A child whose copy could not be made: the table it still maps is its
 * parent's, live, and must never be written here (NULL: none). */
static crew_arena *parents_handles;

static size_t align_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

/* A fork waits until no thread holds the lock: a child that inherited it
 * held would wait for ever at its first arena.  That child may be a
 * process pool's supervisor, whose workers all inherit its copy, and a
 * task that creates an arena would then hang.
 *
 * The handle table is shared memory so that a pool's supervisor and
 * workers see the caller's objects live.  Any other child (one the user
 * forks) must get a copy, as it would of objects on the heap: sharing
 * them, the parent's close and later create would change the child's
 * arena under it, and the child's arenas would be made in slots the parent
 * believes free.  So the objects in use are copied, under the lock, into a
 * fresh shared mapping that the child moves over the table. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&lock);
    staged = NULL;
    if (!handles || pool_forking || in_worker)
        return;
    crew_arena *s = crew__sys.mmap(NULL, HANDLES_LEN, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return;
    for (size_t i = 0; i < CREW__SPACE_HANDLES; i++)
        if (handle_used[i])
            memcpy(&s[i], &handles[i], sizeof *s);
    staged = s;
}

static void fork_parent(void)
{
    if (staged)
        munmap(staged, HANDLES_LEN);
    staged = NULL;
    pthread_mutex_unlock(&lock);
}

/* In the child of a fork: forget what was this process's. */
static void fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    self_pid = 0;
    if (!handles || pool_forking || in_worker)
        return;
    if (!staged || mremap(staged, HANDLES_LEN, HANDLES_LEN, MREMAP_MAYMOVE | MREMAP_FIXED,
                          handles) == MAP_FAILED) {
        if (staged)
            munmap(staged, HANDLES_LEN);
        /* No copy: leave the parent's objects alone, make ours elsewhere. */
        parents_handles = handles;
        handles = NULL;
    }
    staged = NULL;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Before anything here is cached or locked: forks must be seen. */
static void space_setup(void)
{
    pthread_once(&atfork_once, atfork_register);
}

pid_t crew__space_pid(void)
{
    /* relaxed is enough: a process computes the same value in any thread */
    pid_t p = __atomic_load_n(&self_pid, __ATOMIC_RELAXED);
    if (p == 0) {
        /* Registered before the first cached value, whether or not a
         * process pool is ever opened: a forked child must not take its
         * parent's pid for its own (it could then change the parent's
         * arenas). */
        space_setup();
        p = getpid();
        __atomic_store_n(&self_pid, p, __ATOMIC_RELAXED);
    }
    return p;
}

static void handles_init(void)
{
    void *h = crew__sys.mmap(NULL, CREW__SPACE_HANDLES * sizeof(crew_arena),
                             PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (h != MAP_FAILED)
        handles = h;
}

void crew__space_pool_fork(int on)
{
    pool_forking = on;
}

int crew__space_handle_parents(const crew_arena *a)
{
    return parents_handles && a >= parents_handles &&
           a < parents_handles + CREW__SPACE_HANDLES;
}

crew_arena *crew__space_handle_new(void)
{
    static size_t next; /* where the last search ended: most searches take one step */
    crew_arena *a = NULL;
    pthread_mutex_lock(&lock);
    for (size_t k = 0; handles && !in_worker && k < CREW__SPACE_HANDLES; k++) {
        size_t i = (next + k) % CREW__SPACE_HANDLES;
        if (!handle_used[i]) {
            handle_used[i] = 1;
            next = i + 1;
            a = &handles[i];
            memset(a, 0, sizeof *a);
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return a;
}

int crew__space_may_use_heap(void)
{
    /* With a pool open, a heap object (the shared table is full, or could
     * not be made) would not exist in its workers. */
    return in_worker || !crew__space_has_pools();
}

int crew__space_handle_free(crew_arena *a)
{
    if (!handles || a < handles || a >= handles + CREW__SPACE_HANDLES)
        return 0;
    pthread_mutex_lock(&lock);
    handle_used[a - handles] = 0;
    pthread_mutex_unlock(&lock);
    return 1;
}

int crew__space_init(void)
{
    int rc = 0;
    space_setup();
    pthread_mutex_lock(&lock);
    if (!handles && !in_worker)
        handles_init();
    if (space_lo == 0) {
        /* As large as the system lets us (ASan and small address spaces
         * take less); address space only: NORESERVE and PROT_NONE. */
        void *p = MAP_FAILED;
        size_t len = SPACE_MAX;
        for (; len >= SPACE_MIN; len >>= 1) {
            p = crew__sys.mmap(NULL, len + SPACE_ALIGN, PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p != MAP_FAILED)
                break;
        }
        range *r = p == MAP_FAILED ? NULL : malloc(16 * sizeof *r);
        if (p == MAP_FAILED) {
            rc = CREW_ENOMEM;
        } else if (!r) {
            munmap(p, len + SPACE_ALIGN);
            rc = CREW_ENOMEM;
        } else {
            uintptr_t lo = align_up((uintptr_t)p, SPACE_ALIGN);
            free_ranges = r;
            cap_free = 16;
            free_ranges[0] = (range){lo, len};
            n_free = 1;
            space_lo = lo;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void crew__space_pools(int delta)
{
    atomic_fetch_add_explicit(&pools, delta, memory_order_seq_cst);
}

int crew__space_has_pools(void)
{
    return atomic_load_explicit(&pools, memory_order_seq_cst) > 0;
}

int crew__space_pool_start(uint64_t *gen, crew__arena_view **lent, size_t *n_lent)
{
    size_t n = 0, cap = 0;
    crew__arena_view *v = NULL;
    int rc = 0;
    pthread_mutex_lock(&lock);
    for (crew_arena *a = live; a && rc == 0; a = a->reg_next) {
        if (!a->borrowed)
            continue;
        if (n == cap) {
            size_t c = cap ? 2 * cap : 8;
            crew__arena_view *m = realloc(v, c * sizeof *m);
            if (!m) {
                rc = CREW_ENOMEM;
                break;
            }
            v = m;
            cap = c;
        }
        memset(&v[n], 0, sizeof *v);
        v[n].base = (uintptr_t)a->map;
        v[n].len = a->map_len;
        v[n].data = (uintptr_t)a->base;
        v[n].fd = -1;
        v[n].handle = (uintptr_t)a;
        n++;
    }
    if (rc == 0)
        *gen = ++pools_started; /* arenas registered from now on are not in the list */
    pthread_mutex_unlock(&lock);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *lent = v;
    *n_lent = n;
    return 0;
}

int crew__space_hides(const void *p, uint64_t gen)
{
    int hidden = 0;
    pthread_mutex_lock(&lock);
    /* Only an address inside the handle table can be an arena opened
     * while a pool runs (the table exists from the first pool on, and
     * arena objects are made there as long as one is open). */
    uintptr_t at = (uintptr_t)p, lo = (uintptr_t)handles;
    if (handles && !in_worker && at >= lo && at - lo < HANDLES_LEN &&
        (at - lo) % sizeof(crew_arena) == 0) {
        const crew_arena *a = &handles[(at - lo) / sizeof(crew_arena)];
        hidden = handle_used[a - handles] && a->borrowed && a->pools_before >= gen;
    }
    pthread_mutex_unlock(&lock);
    return hidden;
}

void crew__space_worker(uint64_t gen)
{
    in_worker = 1;
    crew__space_worker_gen = gen;
    /* The registry we inherited is the caller's, and its objects made
     * since the space exists are the caller's own, live in shared memory:
     * linking an arena of ours in or out would rewrite their links (a
     * task's arena would appear in, or unlink others from, the caller's
     * list).  Ours starts empty; the caller's is never listed here. */
    live = NULL;
}

static int (*revoke_hook)(uint64_t base, int (*seal)(int fd), int fd);

void crew__space_set_revoke(int (*fn)(uint64_t base, int (*seal)(int fd), int fd))
{
    revoke_hook = fn;
}

int crew__space_revoke(uint64_t base, int (*seal)(int fd), int fd)
{
    return revoke_hook ? revoke_hook(base, seal, fd) : 1;
}

int crew__space_in_worker(void)
{
    return in_worker;
}

void *crew__space_reserve(size_t len, int *in_space)
{
    *in_space = 0;
    space_setup();
    pthread_mutex_lock(&lock);
    size_t want = align_up(len, SPACE_ALIGN);
    /* A worker's copy of the free list is the caller's as it was at
     * crew_open: the caller places its arenas there, and the worker maps
     * them there, over whatever the worker put in the range. */
    for (size_t i = 0; space_lo && !in_worker && i < n_free && want >= len; i++) {
        if (free_ranges[i].len < want)
            continue;
        uintptr_t at = free_ranges[i].base;
        free_ranges[i].base += want;
        free_ranges[i].len -= want;
        if (free_ranges[i].len == 0) {
            memmove(&free_ranges[i], &free_ranges[i + 1], (n_free - i - 1) * sizeof *free_ranges);
            n_free--;
        }
        pthread_mutex_unlock(&lock);
        *in_space = 1;
        return (void *)at;
    }
    pthread_mutex_unlock(&lock);
    /* No room while a process pool runs: a reservation of our own would
     * lie where a worker may have put its own memory; it could not map
     * the arena there, and its tasks would read that memory instead. */
    if (space_lo && !in_worker && crew__space_has_pools()) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    /* No space (none reserved), or in a worker: a reservation of its
     * own.  Workers forked later inherit it. */
    return crew__sys.mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                          -1, 0);
}

/* Give [base, base + len) back to the free list (lock held).  false: no
 * memory for one more entry; the range is then lost to reuse, not unsafe. */
static bool free_insert(uintptr_t base, size_t len)
{
    size_t i = 0;
    while (i < n_free && free_ranges[i].base < base)
        i++;
    bool join_prev = i > 0 && free_ranges[i - 1].base + free_ranges[i - 1].len == base;
    bool join_next = i < n_free && base + len == free_ranges[i].base;
    if (join_prev && join_next) {
        free_ranges[i - 1].len += len + free_ranges[i].len;
        memmove(&free_ranges[i], &free_ranges[i + 1], (n_free - i - 1) * sizeof *free_ranges);
        n_free--;
    } else if (join_prev) {
        free_ranges[i - 1].len += len;
    } else if (join_next) {
        free_ranges[i].base = base;
        free_ranges[i].len += len;
    } else {
        if (n_free == cap_free) {
            range *r = realloc(free_ranges, 2 * cap_free * sizeof *r);
            if (!r)
                return false;
            free_ranges = r;
            cap_free *= 2;
        }
        memmove(&free_ranges[i + 1], &free_ranges[i], (n_free - i) * sizeof *free_ranges);
        free_ranges[i] = (range){base, len};
        n_free++;
    }
    return true;
}

void crew__space_release(void *addr, size_t len, int in_space)
{
    if (!in_space) {
        munmap(addr, len);
        return;
    }
    size_t want = align_up(len, SPACE_ALIGN);
    /* Back to an inaccessible reservation: the range must stay ours. */
    if (crew__sys.mmap(addr, want, PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
        return; /* still mapped to the old memfd: never hand it out again */
    pthread_mutex_lock(&lock);
    (void)free_insert((uintptr_t)addr, want);
    pthread_mutex_unlock(&lock);
}

/* ---- the registry --------------------------------------------------------- */

void crew__space_add(crew_arena *a)
{
    pthread_mutex_lock(&lock);
    /* Under the lock, as crew__space_pool_start numbers pools: an arena
     * is either in a starting pool's list or counts that pool. */
    a->pools_before = a->borrowed && !in_worker ? pools_started : 0;
    a->reg_prev = NULL;
    a->reg_next = live;
    if (live)
        live->reg_prev = a;
    live = a;
    pthread_mutex_unlock(&lock);
}

void crew__space_remove(crew_arena *a)
{
    pthread_mutex_lock(&lock);
    if (a->reg_prev)
        a->reg_prev->reg_next = a->reg_next;
    else
        live = a->reg_next;
    if (a->reg_next)
        a->reg_next->reg_prev = a->reg_prev;
    pthread_mutex_unlock(&lock);
}

size_t crew__space_list(crew__arena_view *out, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (crew_arena *a = live; a; a = a->reg_next) {
        if (a->borrowed)
            continue; /* workers inherit it, or never see it: nothing to map */
        if (n >= cap) {
            n++;
            continue;
        }
        crew__arena_view *v = &out[n++];
        memset(v, 0, sizeof *v);
        v->base = (uintptr_t)a->map;
        v->len = a->map_len;
        v->file_off = a->map_off;
        v->data = (uintptr_t)a->base;
        v->fd = a->fd;
        v->in_space = a->in_space;
        /* acquire: pairs with freeze's release of `frozen` */
        v->writable = !atomic_load_explicit(&a->frozen, memory_order_acquire);
        /* from now on a worker may hold a writable mapping (freeze) */
        if (v->writable)
            atomic_store(&a->shown_writable, 1);
        v->dev = a->dev;
        v->ino = a->ino;
        v->shared_handle = a->shared_handle;
        v->handle = (uintptr_t)a;
        v->used = atomic_load_explicit(&a->used, memory_order_acquire);
        v->root = atomic_load_explicit(&a->root, memory_order_relaxed);
    }
    pthread_mutex_unlock(&lock);
    return n;
}

void crew__space_refresh(const crew__arena_view *v)
{
    if (v->shared_handle || !v->handle)
        return;
    /* The worker's copy from crew_open: byte for byte the caller's object
     * of that moment, which is why the fields can be set here. */
    crew_arena *a = (crew_arena *)(uintptr_t)v->handle;
    atomic_store_explicit(&a->used, (size_t)v->used, memory_order_relaxed);
    atomic_store_explicit(&a->root, v->root, memory_order_relaxed);
    atomic_store_explicit(&a->frozen, !v->writable, memory_order_relaxed);
}
