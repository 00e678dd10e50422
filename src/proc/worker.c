/*
 * worker.c -- a worker process: take the next descriptor from the ring,
 * run it, report, repeat; sleep on a futex when the ring is empty.
 *
 * Before each task the worker makes its mappings match the caller's list
 * of arenas (the table in shared memory, renumbered when it changes):
 * each arena is mapped at its own address from the caller's file
 * descriptor, reached through /proc/CALLER/fd/N (which needs only the
 * ptrace "read" permission a child of the same user has, unlike
 * pidfd_getfd).  Unfrozen arenas are mapped shared and writable, so that
 * results written there reach the caller; frozen and snapshot arenas
 * read-only.  A write to those faults, and the fault handler records where
 * before the worker dies of it, so that the supervisor can tell the
 * caller "wrote to read-only shared data" instead of "crashed".
 *
 * Arenas over memory the caller lent are not in the table: the worker
 * inherited that memory, mapped as the caller mapped it (perhaps
 * writable, and shared with other processes).  Its pages are made
 * read-only here, in this process only, so that a task's write fails the
 * same way instead of changing data everyone reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "proc/proc_internal.h"

#define SPIN_ROUNDS 2000 /* empty looks at the ring before sleeping (~ a few us) */

proc_map *crew__proc_self;
crew__arena_view *crew__proc_inherited;
uint32_t crew__proc_n_inherited;
crew__arena_view *crew__proc_lent;
size_t crew__proc_n_lent;

typedef struct mapping {
    crew__arena_view v;
    int mapped;     /* 1: v is mapped at v.base; 0: the range is only reserved */
} mapping;

/* The worker's own mappings.  Read by the fault handler, so every change
 * is made in an order that leaves the array consistent at each step. */
static mapping *mine;
static size_t n_mine, cap_mine;
static uint64_t seen_gen;
static proc_slot *my_slot;
static pid_t my_pid;

/* In the handler: a fault at addr inside read-only arena v. */
static bool readonly_fault(const crew__arena_view *v, uintptr_t addr)
{
    if (addr < v->base || addr - v->base >= v->len)
        return false;
    my_slot->fault_addr = addr;
    my_slot->fault_off = addr - v->data;
    atomic_store(&my_slot->fault_readonly, 1);
    return true;
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    uintptr_t addr = (uintptr_t)si->si_addr;
    /* Only a fault of the worker itself speaks for its slot: a process a
     * task forked runs this handler too, on the worker's slot. */
    if (si->si_code == SEGV_ACCERR && getpid() == my_pid) {
        bool found = false;
        for (size_t i = 0; i < n_mine && !found; i++)
            found = mine[i].mapped && !mine[i].v.writable && readonly_fault(&mine[i].v, addr);
        for (size_t i = 0; i < crew__proc_n_lent && !found; i++)
            found = readonly_fault(&crew__proc_lent[i], addr);
    }
    /* SA_RESETHAND restored the default action: returning re-runs the
     * faulting instruction, which now kills the worker by SIGSEGV.  A
     * SIGSEGV sent by raise, kill or sigqueue (si_code <= 0) has no
     * instruction to re-run: send it again, to die of it now. */
    if (si->si_code <= 0)
        raise(sig);
}

static void install_fault_handler(void)
{
    static char altstack[64 << 10]; /* a stack overflow must still reach the handler */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
}

/*
 * Make the inherited memory of arenas over caller memory read-only in this
 * process: the pages wholly inside each (a page it shares with other data
 * of the caller's stays as it was, so that only the arena's bytes are
 * affected).  Each view then holds the range protected, for the handler.
 */
static void protect_lent(void)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < crew__proc_n_lent; i++) {
        crew__arena_view *v = &crew__proc_lent[i];
        uintptr_t lo = ((uintptr_t)v->base + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)(v->base + v->len)) & ~(page - 1);
        if (lo < hi && mprotect((void *)lo, hi - lo, PROT_READ) == 0) {
            v->base = lo;
            v->len = hi - lo;
        } else {
            v->len = 0;
        }
    }
}

static mapping *find(uint64_t base)
{
    for (size_t i = 0; i < n_mine; i++)
        if (mine[i].v.base == base)
            return &mine[i];
    return NULL;
}

static mapping *add(const crew__arena_view *v)
{
    if (n_mine == cap_mine) {
        size_t cap = cap_mine ? 2 * cap_mine : 16;
        mapping *m = malloc(cap * sizeof *m);
        if (!m)
            return NULL;
        if (n_mine)
            memcpy(m, mine, n_mine * sizeof *m);
        /* The handler may read `mine` at any time: switch to the new copy
         * in one store, and leak the old one (a few per worker life). */
        mine = m;
        cap_mine = cap;
    }
    mine[n_mine].v = *v;
    mine[n_mine].mapped = 0;
    return &mine[n_mine++];
}

static bool same(const crew__arena_view *a, const crew__arena_view *b)
{
    return a->base == b->base && a->len == b->len && a->dev == b->dev && a->ino == b->ino &&
           a->writable == b->writable && a->file_off == b->file_off;
}

static void unmap_range(mapping *m)
{
    m->mapped = 0;
    mmap((void *)(uintptr_t)m->v.base, m->v.len, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

/* Map arena v at its address (m: our entry for that base, or NULL).  A
 * range this worker does not hold reserved (an arena that got no room in
 * the space) is mapped only if free. */
static void map_one(const crew__arena_view *table_view, mapping *m, pid_t caller)
{
    crew__arena_view view = *table_view, *v = &view;
    bool reserved = v->in_space || m != NULL;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)caller, v->fd);
    int fd = open(path, (v->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != v->ino || (uint64_t)st.st_dev != v->dev) {
        close(fd); /* the caller closed it meanwhile: the next table says so */
        return;
    }
    void *at = (void *)(uintptr_t)v->base;
    int fixed = reserved ? MAP_FIXED : MAP_FIXED_NOREPLACE;
    int prot = v->writable ? PROT_READ | PROT_WRITE : PROT_READ;
    void *p = mmap(at, v->len, prot, MAP_SHARED | fixed, fd, (off_t)v->file_off);
    if (p == MAP_FAILED && v->writable && errno == EPERM) {
        /* Frozen during this call (the table is from its start): map it
         * read-only, as the next table will say. */
        v->writable = 0;
        prot = PROT_READ;
        p = mmap(at, v->len, prot, MAP_SHARED | fixed, fd, (off_t)v->file_off);
    }
    if (p == MAP_FAILED && !v->writable && errno == EPERM) /* sealed memfd before 6.7 */
        p = mmap(at, v->len, prot, MAP_PRIVATE | fixed, fd, (off_t)v->file_off);
    close(fd);
    if (p != at)
        return;
    if (!m)
        m = add(v);
    if (m) {
        m->mapped = 0;
        m->v = *v;
        m->mapped = 1;
    }
}

/* Indices sorted by the base they name, to look bases up in O(log n):
 * with tens of thousands of arenas, a scan per arena made every change of
 * the table cost seconds in each worker. */
static const crew__arena_view *sort_table;
static const mapping *sort_mine;

static int by_table_base(const void *a, const void *b)
{
    uint64_t x = sort_table[*(const uint32_t *)a].base, y = sort_table[*(const uint32_t *)b].base;
    return x < y ? -1 : x > y;
}

static int by_mine_base(const void *a, const void *b)
{
    uint64_t x = sort_mine[*(const uint32_t *)a].v.base, y = sort_mine[*(const uint32_t *)b].v.base;
    return x < y ? -1 : x > y;
}

/* The position in idx[0, n) (sorted by base) naming `base`, or -1. */
static ptrdiff_t search(const uint32_t *idx, size_t n, uint64_t base, bool table)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t b = table ? sort_table[idx[mid]].base : sort_mine[idx[mid]].v.base;
        if (b == base)
            return (ptrdiff_t)mid;
        if (b < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Make this worker's mappings match the caller's table of arenas. */
static void sync_arenas(proc_shared *h)
{
    uint64_t gen = atomic_load_explicit(&h->arena_gen, memory_order_acquire);
    if (gen == seen_gen)
        return;
    uint32_t n = h->n_arenas;
    size_t had = n_mine;
    /* Bases are distinct in the table (live arenas do not overlap) and in
     * ours (an entry is added only for a base it did not hold). */
    uint32_t *tidx = malloc(((size_t)n + had + 1) * sizeof *tidx), *midx = tidx + n;
    if (tidx) {
        for (uint32_t k = 0; k < n; k++)
            tidx[k] = k;
        for (size_t i = 0; i < had; i++)
            midx[i] = (uint32_t)i;
        sort_table = h->arenas;
        sort_mine = mine;
        qsort(tidx, n, sizeof *tidx, by_table_base);
        qsort(midx, had, sizeof *midx, by_mine_base);
    }
    /* First drop what changed or went, then map what is new, so that a
     * new arena in the range of an old one finds it reserved. */
    for (size_t i = 0; i < n_mine; i++) {
        if (!mine[i].mapped)
            continue;
        bool keep = false;
        if (tidx) {
            ptrdiff_t at = search(tidx, n, mine[i].v.base, true);
            keep = at >= 0 && same(&mine[i].v, &h->arenas[tidx[at]]);
        } else {
            for (uint32_t k = 0; k < n && !keep; k++)
                keep = same(&mine[i].v, &h->arenas[k]);
        }
        if (!keep)
            unmap_range(&mine[i]);
    }
    for (uint32_t k = 0; k < n; k++) {
        mapping *m;
        if (tidx) {
            /* `mine` may move as map_one adds to it: look up by index */
            sort_mine = mine;
            ptrdiff_t at = search(midx, had, h->arenas[k].base, false);
            m = at >= 0 ? &mine[midx[at]] : NULL;
        } else {
            m = find(h->arenas[k].base);
        }
        if (!m || !m->mapped)
            map_one(&h->arenas[k], m, h->caller_pid);
        crew__space_refresh(&h->arenas[k]);
    }
    free(tidx);
    seen_gen = gen;
}

/* A freeze asks for our writable mappings of one arena (between calls,
 * when we hold no task that could be writing).  The range becomes a
 * reservation again, and the next task maps what the table then says. */
static void drop_writable(proc_shared *h, uint32_t *done)
{
    uint32_t gen = atomic_load_explicit(&h->revoke_gen, memory_order_acquire);
    if (gen == *done)
        return;
    uint64_t base = atomic_load_explicit(&h->revoke_base, memory_order_acquire);
    for (size_t i = 0; i < n_mine; i++)
        if (mine[i].mapped && mine[i].v.writable && mine[i].v.base == base) {
            unmap_range(&mine[i]);
            seen_gen = 0;
        }
    *done = gen;
    atomic_store_explicit(&my_slot->revoke_ack, gen, memory_order_release);
}

/* Run descriptor k, whose queue position this worker claimed. */
static void run(proc_map *m, unsigned w, uint32_t k, int statm_fd)
{
    proc_shared *h = m->hdr;
    proc_desc *d = &m->ring[k];
    uint32_t st = D_READY;
    /* acquire: the descriptor's fields were written before READY.  Whoever
     * moves it from READY runs it: if the supervisor abandoned it, it is
     * not ours; if it was abandoned and filled again meanwhile, running
     * the new contents is as good (their own claimer will find them taken). */
    if (!atomic_compare_exchange_strong_explicit(&d->state, &st, D_RUNNING_BY(w),
                                                 memory_order_acquire, memory_order_relaxed))
        return;
    uint64_t seq = d->seq;
    atomic_store_explicit(&my_slot->running, seq + 1, memory_order_release);
    sync_arenas(h);
    int status = 0;
    d->started = 0;
    if (atomic_load_explicit(&h->stop, memory_order_acquire) ||
        seq > atomic_load_explicit(&h->stop_after, memory_order_acquire)) {
        status = CREW_ECANCELED;
    } else {
        if (statm_fd >= 0)
            atomic_store_explicit(&my_slot->mem_base, crew__proc_private_pages(statm_fd),
                                  memory_order_relaxed);
        uint64_t t0 = crew__now_ns();
        atomic_store_explicit(&my_slot->start_ns, t0, memory_order_release);
        d->t0 = t0;
        d->worker = w;
        d->started = 1;
        switch (h->kind) {
        case CALL_RUN: {
            int rc = d->fn(h->shared, (const void *)(uintptr_t)d->arg,
                           d->res_size ? (void *)(uintptr_t)d->res : NULL);
            status = rc < 0 ? CREW_EINVAL : rc;
            break;
        }
        case CALL_FOR:
            h->body(h->ctx, (size_t)d->lo, (size_t)d->hi);
            break;
        case CALL_REDUCE:
            h->r_init(h->ctx, (void *)(uintptr_t)d->res);
            h->r_body(h->ctx, (size_t)d->lo, (size_t)d->hi, (void *)(uintptr_t)d->res);
            break;
        }
        /* What the task printed: a worker never exits through exit(), so
         * stdio buffers left here would be lost (stdout to a file or a
         * pipe is fully buffered). */
        fflush(NULL);
        uint64_t t1 = crew__now_ns();
        atomic_store_explicit(&my_slot->start_ns, 0, memory_order_release);
        atomic_fetch_add_explicit(&my_slot->jobs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&my_slot->busy_ns, t1 - t0, memory_order_relaxed);
        d->t1 = t1;
    }
    /* Leave the task, unless the supervisor condemned it meanwhile: its
     * SIGKILL is on the way, and must not land in the next task. */
    uint64_t ours = seq + 1;
    if (!atomic_compare_exchange_strong_explicit(&my_slot->running, &ours, 0,
                                                 memory_order_acq_rel, memory_order_acquire))
        for (;;)
            pause();
    d->status = status;
    d->detail = 0;
    /* Stop the others now: waiting for the caller to see this failure
     * would let the workers start the tasks queued meanwhile. */
    if (status != 0 && status != CREW_ECANCELED && h->stop_on_error)
        crew__proc_stop_after(h, seq);
    st = D_RUNNING_BY(w);
    /* release: status and results are written before DONE is seen */
    atomic_compare_exchange_strong_explicit(&d->state, &st, D_DONE, memory_order_release,
                                            memory_order_relaxed);
    uint32_t n = atomic_fetch_add_explicit(&h->done_word, 1, memory_order_seq_cst) + 1;
    /* Wake the caller when it can do something useful: refill an emptied
     * ring, see the end, or now and then collect results. */
    if (atomic_load_explicit(&h->caller_waiting, memory_order_seq_cst) &&
        (atomic_load_explicit(&h->claim, memory_order_relaxed) >=
             atomic_load_explicit(&h->head, memory_order_relaxed) ||
         (n & 63) == 0 || status != 0))
        crew__futex_wake_shared(&h->done_word, 1);
}

_Noreturn void crew__worker_main(proc_map *m, unsigned w)
{
    proc_shared *h = m->hdr;
    crew__proc_self = m;
    my_slot = &m->slots[w];
    my_pid = getpid();
    crew__space_worker(h->pool_gen);
    /* Ctrl-C is for the caller to handle; everything else as usual. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    prctl(PR_SET_NAME, "crew-worker");
    install_fault_handler();
    for (uint32_t i = 0; i < crew__proc_n_inherited; i++)
        (void)add(&crew__proc_inherited[i]);
    protect_lent();
    int statm_fd = h->mem_limit_pages ? open("/proc/self/statm", O_RDONLY | O_CLOEXEC) : -1;

    unsigned spins = 0;
    /* Nothing mapped yet: a freeze going on now has nothing to ask of us. */
    uint32_t revoked = atomic_load_explicit(&h->revoke_gen, memory_order_acquire);
    atomic_store_explicit(&my_slot->revoke_ack, revoked, memory_order_release);
    for (;;) {
        if (atomic_load_explicit(&h->stopping, memory_order_acquire) ||
            w >= atomic_load_explicit(&h->active, memory_order_acquire)) {
            if (h->worker_exit) {
                h->worker_exit(h->worker_ctx);
                fflush(NULL);
            }
            _exit(0);
        }
        drop_writable(h, &revoked);
        uint64_t c = atomic_load_explicit(&h->claim, memory_order_seq_cst);
        if (c < atomic_load_explicit(&h->head, memory_order_seq_cst)) {
            /* Read before the CAS: once claim passes c, the caller may
             * reuse position c's queue slot. */
            uint32_t k = atomic_load_explicit(&h->queue[c % PROC_RING], memory_order_relaxed);
            if (atomic_compare_exchange_weak_explicit(&h->claim, &c, c + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                run(m, w, k, statm_fd);
                spins = 0;
            }
            continue;
        }
        if (++spins < SPIN_ROUNDS) {
            crew__cpu_relax();
            continue;
        }
        spins = 0;
        /* Dekker with the caller: announce, then look again, then sleep;
         * the caller publishes head, then looks at idle.  A freeze's
         * request (revoke_gen, then a bump of work_word) may have come
         * since drop_writable looked: sleeping on a word read after it
         * would miss its wake, and the freeze would wait in vain. */
        uint32_t word = atomic_load_explicit(&h->work_word, memory_order_seq_cst);
        atomic_fetch_add_explicit(&h->idle, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&h->claim, memory_order_seq_cst) >=
                atomic_load_explicit(&h->head, memory_order_seq_cst) &&
            atomic_load_explicit(&h->revoke_gen, memory_order_seq_cst) == revoked &&
            !atomic_load_explicit(&h->stopping, memory_order_seq_cst) &&
            w < atomic_load_explicit(&h->active, memory_order_seq_cst)) {
            atomic_fetch_add_explicit(&my_slot->sleeps, 1, memory_order_relaxed);
            crew__futex_wait_shared(&h->work_word, word, 0);
        }
        atomic_fetch_sub_explicit(&h->idle, 1, memory_order_seq_cst);
    }
}
