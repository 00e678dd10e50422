/*
 * proc.c -- a process pool's life, seen from the caller: open (shared
 * memory, the supervisor), resize, statistics, close.
 *
 * crew_open forks the supervisor from the calling thread and waits until
 * it has started the first workers, so that a pool that cannot start
 * fails there, and so that the workers' memory is the caller's at
 * crew_open (they are forked from the supervisor, a copy of that moment).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "proc/proc_internal.h"

#define OPEN_WAIT_NS (10ull * 1000000000u) /* a supervisor that says nothing for this long failed */

static size_t page_up(size_t n)
{
    return (n + 4095) & ~(size_t)4095;
}

static int map_shared(proc_map *m, unsigned max_workers)
{
    size_t hdr = page_up(sizeof(proc_shared));
    size_t slots = page_up((size_t)max_workers * sizeof(proc_slot));
    size_t ring = page_up((size_t)PROC_RING * sizeof(proc_desc));
    m->len = hdr + slots + ring + PROC_BYTES;
    /* NORESERVE: pages are used as they are touched */
    m->base = crew__sys.mmap(NULL, m->len, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m->base == MAP_FAILED)
        return -errno;
    unsigned char *b = m->base;
    m->hdr = (proc_shared *)b;
    m->slots = (proc_slot *)(b + hdr);
    m->ring = (proc_desc *)(b + hdr + slots);
    m->bytes = b + hdr + slots + ring;
    return 0;
}

void crew__proc_poke(crew__proc *p)
{
    uint64_t one = 1;
    /* A full counter (never, in practice) still leaves the fd readable. */
    (void)!write(p->m.hdr->event_fd, &one, sizeof one);
}

int crew__proc_publish_arenas(crew__proc *p)
{
    proc_shared *h = p->m.hdr;
    if (!p->scratch) {
        p->scratch = malloc(PROC_MAX_ARENAS * sizeof *p->scratch);
        if (!p->scratch)
            return CREW_ENOMEM;
    }
    /* Listed at every call, not only when arenas come and go: the size and
     * root of an arena still being built change without that, and workers
     * keep copies of the objects of arenas from before crew_open. */
    size_t n = crew__space_list(p->scratch, PROC_MAX_ARENAS);
    if (n > PROC_MAX_ARENAS)
        return -EMFILE;
    if (n == h->n_arenas && memcmp(p->scratch, h->arenas, n * sizeof *p->scratch) == 0)
        return 0;
    memcpy(h->arenas, p->scratch, n * sizeof *p->scratch);
    h->n_arenas = (uint32_t)n;
    /* release: the table is complete before a worker sees its number */
    atomic_store_explicit(&h->arena_gen, ++p->table_gen, memory_order_release);
    return 0;
}

static void proc_free(crew *pool)
{
    crew__proc *p = pool->proc;
    if (p->m.base && p->m.base != MAP_FAILED) {
        if (p->m.hdr->event_fd >= 0)
            close(p->m.hdr->event_fd);
        munmap(p->m.base, p->m.len);
    }
    if (p->supervisor_fd >= 0)
        close(p->supervisor_fd);
    if (p->life_rd >= 0)
        close(p->life_rd);
    if (p->life_wr >= 0)
        close(p->life_wr);
    pthread_mutex_destroy(&p->call_lock);
    free(p->free_desc);
    free(p->free_bytes);
    free(p->desc_off);
    free(p->desc_len);
    free(p->scratch);
    free(p);
    pool->proc = NULL;
}

/* Wait for the supervisor to end (it was told to, or is dead). */
static void reap_supervisor(crew__proc *p, bool kill_it)
{
    if (p->supervisor <= 0)
        return;
    if (kill_it)
        kill(p->supervisor, SIGKILL);
    /* Bounded: a supervisor that does not finish in 5 s is killed (its
     * workers then die of PR_SET_PDEATHSIG). */
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(p->supervisor, NULL, WNOHANG);
        if (r == p->supervisor || (r < 0 && errno == ECHILD))
            return;
        usleep(10000);
    }
    kill(p->supervisor, SIGKILL);
    while (waitpid(p->supervisor, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* ---- freezing while pools are open (arena.c asks through space.c) ---- */

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static crew__proc *open_pools;

#define REVOKE_WAIT_NS 200000000u /* idle workers answer in microseconds */

/* Every open pool's workers drop their writable mappings of the arena at
 * base, then seal(fd) runs.  Only between calls: a worker running a task
 * may be writing, and would map the arena again for its next one.  So no
 * call may start until the seal is in (a call started in between would
 * have its workers map the arena writable again, and the seal would fail
 * as if a forked child held it): each pool's call lock is held
 * meanwhile, taken without waiting (held: a call runs, perhaps on this
 * very thread, from on_done).  Pools copied into a forked child are not
 * ours: their workers never map the child's arenas.  Returns 1 when the
 * workers could not be asked, else what seal returned. */
static int revoke_writable(uint64_t base, int (*seal)(int fd), int fd)
{
    int rc = 0;
    pid_t me = getpid();
    pthread_mutex_lock(&open_lock);
    crew__proc *locked_to = NULL; /* call locks held: open_pools up to this one */
    for (crew__proc *p = open_pools; p; p = p->next_open) {
        if (p->owner != me)
            continue;
        if (pthread_mutex_trylock(&p->call_lock) != 0) {
            rc = -1;
            locked_to = p;
            break;
        }
    }
    for (crew__proc *p = open_pools; p && p != locked_to && rc == 0; p = p->next_open) {
        proc_shared *h = p->m.hdr;
        if (p->owner != me)
            continue;
        if (proc_load32(&h->in_call) || proc_load32(&h->lost)) {
            rc = -1;
            break;
        }
        atomic_store_explicit(&h->revoke_base, base, memory_order_release);
        uint32_t gen = atomic_fetch_add_explicit(&h->revoke_gen, 1, memory_order_acq_rel) + 1;
        atomic_fetch_add_explicit(&h->work_word, 1, memory_order_seq_cst);
        crew__futex_wake_shared(&h->work_word, INT32_MAX);
        uint64_t t0 = crew__now_ns();
        for (;;) {
            bool all = true;
            unsigned used = proc_load32(&h->slots_used);
            for (unsigned i = 0; i < used && all; i++)
                all = atomic_load_explicit(&p->m.slots[i].pid, memory_order_acquire) == 0 ||
                      (int32_t)(proc_load32(&p->m.slots[i].revoke_ack) - gen) >= 0;
            if (all)
                break;
            if (crew__now_ns() - t0 > REVOKE_WAIT_NS || proc_load32(&h->lost)) {
                rc = -1;
                break;
            }
            usleep(50);
        }
    }
    if (rc == 0)
        rc = seal(fd);
    else
        rc = 1;
    for (crew__proc *p = open_pools; p && p != locked_to; p = p->next_open)
        if (p->owner == me)
            pthread_mutex_unlock(&p->call_lock);
    pthread_mutex_unlock(&open_lock);
    return rc;
}

/* A child of a fork must not start with open_lock held (a freeze in
 * another thread holds it while workers answer): it takes it to let go of
 * its copies of the pools. */
static void open_lock_prepare(void)
{
    pthread_mutex_lock(&open_lock);
}

static void open_lock_parent(void)
{
    pthread_mutex_unlock(&open_lock);
}

static void open_lock_child(void)
{
    pthread_mutex_init(&open_lock, NULL);
}

static pthread_once_t open_lock_once = PTHREAD_ONCE_INIT;

static void open_lock_atfork(void)
{
    pthread_atfork(open_lock_prepare, open_lock_parent, open_lock_child);
}

static void open_list_add(crew__proc *p)
{
    pthread_once(&open_lock_once, open_lock_atfork);
    pthread_mutex_lock(&open_lock);
    p->next_open = open_pools;
    open_pools = p;
    pthread_mutex_unlock(&open_lock);
    crew__space_set_revoke(revoke_writable);
}

static void open_list_remove(crew__proc *p)
{
    pthread_mutex_lock(&open_lock);
    for (crew__proc **at = &open_pools; *at; at = &(*at)->next_open)
        if (*at == p) {
            *at = p->next_open;
            break;
        }
    pthread_mutex_unlock(&open_lock);
}

int crew__proc_open(crew *pool, const crew_config *cfg, unsigned n)
{
    crew__proc *p = crew__sys.calloc(1, sizeof *p);
    if (!p)
        return CREW_ENOMEM;
    p->free_desc = crew__sys.calloc(PROC_RING, sizeof *p->free_desc);
    p->free_bytes = crew__sys.calloc(PROC_RING + 1, sizeof *p->free_bytes);
    p->desc_off = crew__sys.calloc(PROC_RING, sizeof *p->desc_off);
    p->desc_len = crew__sys.calloc(PROC_RING, sizeof *p->desc_len);
    if (!p->free_desc || !p->free_bytes || !p->desc_off || !p->desc_len) {
        free(p->free_desc);
        free(p->free_bytes);
        free(p->desc_off);
        free(p->desc_len);
        free(p);
        return CREW_ENOMEM;
    }
    for (uint32_t i = 0; i < PROC_RING; i++)
        p->free_desc[i] = PROC_RING - 1 - i;
    p->n_free_desc = PROC_RING;
    p->free_bytes[0] = (struct proc_range){0, PROC_BYTES};
    p->n_free_bytes = 1;
    pool->proc = p;
    pool->processes = true;
    p->supervisor_fd = p->life_rd = p->life_wr = -1;
    p->retries = cfg->retries;
    pthread_mutex_init(&p->call_lock, NULL);

    /* Without the space (an address-space limit too tight even for 1 GiB)
     * the pool still works: arenas made later get ranges of their own,
     * which workers map when those ranges are free in them. */
    (void)crew__space_init();
    int rc = map_shared(&p->m, CREW_MAX_WORKERS);
    if (rc < 0) {
        p->m.base = NULL;
        proc_free(pool);
        return rc;
    }
    proc_shared *h = p->m.hdr;
    h->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->event_fd < 0 || pipe2(h->life_fd, O_CLOEXEC) != 0) {
        rc = -errno;
        proc_free(pool);
        return rc;
    }
    p->life_rd = h->life_fd[0];
    p->life_wr = h->life_fd[1];
    h->caller_pid = getpid();
    h->max_workers = CREW_MAX_WORKERS;
    h->worker_exit = cfg->worker_exit;
    h->worker_ctx = cfg->worker_ctx;
    h->timeout_ns = (uint64_t)(cfg->task_timeout * 1e9);
    if (cfg->task_timeout > 0 && h->timeout_ns == 0)
        h->timeout_ns = 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    h->mem_limit_pages = cfg->task_memory_limit
                             ? (int64_t)((cfg->task_memory_limit + page - 1) / page)
                             : 0;
    atomic_init(&h->active, n);

    /* Arenas over caller memory open now are the workers' by inheritance
     * (space.c): the list goes to the supervisor with the fork. */
    crew__arena_view *lent = NULL;
    size_t n_lent = 0;
    rc = crew__space_pool_start(&h->pool_gen, &lent, &n_lent);
    if (rc < 0) {
        proc_free(pool);
        return rc;
    }
    p->pool_gen = h->pool_gen;
    /* From now on arenas are placed where workers can map them. */
    crew__space_pools(1);
    p->table_gen = 0;
    rc = crew__proc_publish_arenas(p);
    if (rc < 0) {
        crew__space_pools(-1);
        free(lent);
        proc_free(pool);
        return rc;
    }
    /* Output buffered now would otherwise be written again by any worker
     * whose task calls exit(). */
    fflush(NULL);
    /* The supervisor, and so every worker, shares the arena objects. */
    crew__space_pool_fork(1);
    pid_t pid = fork();
    if (pid != 0)
        crew__space_pool_fork(0);
    if (pid == 0) {
        crew__proc_lent = lent;
        crew__proc_n_lent = n_lent;
        crew__supervisor_main(&p->m);
    }
    free(lent);
    if (pid < 0) {
        rc = errno == ENOMEM ? CREW_ENOMEM : CREW_EAGAIN;
        crew__space_pools(-1);
        proc_free(pool);
        return rc;
    }
    p->supervisor = pid;
    close(p->life_rd);
    p->life_rd = -1;
    p->supervisor_fd = (int)syscall(SYS_pidfd_open, pid, 0);
    /* Without it a supervisor's death would go unnoticed: calls would wait
     * for ever for the tasks its workers held. */
    if (p->supervisor_fd < 0)
        atomic_store(&h->lost, 1);

    uint64_t t0 = crew__now_ns();
    while (!proc_load32(&h->ready) && !proc_load32(&h->lost)) {
        if (crew__now_ns() - t0 > OPEN_WAIT_NS || waitpid(pid, NULL, WNOHANG) == pid) {
            atomic_store(&h->lost, 1);
            break;
        }
        crew__futex_wait_shared(&h->ready, 0, 10000000u);
    }
    if (proc_load32(&h->lost)) {
        atomic_store(&h->stopping, 1);
        crew__proc_poke(p);
        reap_supervisor(p, true);
        crew__space_pools(-1);
        proc_free(pool);
        return CREW_EAGAIN;
    }
    p->owner = getpid();
    open_list_add(p);
    return 0;
}

void crew__proc_close(crew *pool)
{
    crew__proc *p = pool->proc;
    /* Inside one of this pool's workers (an atexit handler run by a task's
     * exit): nothing here is ours to end. */
    if (crew__proc_self && crew__proc_self->hdr == p->m.hdr)
        return;
    /* In a process forked from the caller, or a worker of another pool,
     * the pool is the caller's: let go of our copy only, without telling
     * the supervisor to stop. */
    if (getpid() != p->m.hdr->caller_pid) {
        /* off the list too: a freeze here walks it */
        open_list_remove(p);
        crew__space_pools(-1);
        proc_free(pool);
        return;
    }
    open_list_remove(p);
    atomic_store_explicit(&p->m.hdr->stopping, 1, memory_order_seq_cst);
    crew__proc_poke(p);
    reap_supervisor(p, false);
    crew__space_pools(-1);
    proc_free(pool);
}

int crew__proc_resize(crew *pool, unsigned n)
{
    crew__proc *p = pool->proc;
    proc_shared *h = p->m.hdr;
    if (proc_load32(&h->lost))
        return CREW_ELOST;
    atomic_store_explicit(&pool->active, n, memory_order_seq_cst);
    atomic_store_explicit(&h->active, n, memory_order_seq_cst);
    /* Workers beyond N retire when they next look for work: wake them. */
    atomic_fetch_add_explicit(&h->work_word, 1, memory_order_seq_cst);
    crew__futex_wake_shared(&h->work_word, INT32_MAX);
    crew__proc_poke(p);
    return 0;
}

unsigned crew__proc_active(const crew *pool)
{
    /* the shared N: a task's crew_resize changes it from a worker */
    return proc_load32(&pool->proc->m.hdr->active);
}

int64_t crew__proc_private_pages(int statm_fd)
{
    char buf[128];
    ssize_t len = pread(statm_fd, buf, sizeof buf - 1, 0);
    if (len <= 0)
        return -1;
    buf[len] = '\0';
    long long size, resident, shared;
    if (sscanf(buf, "%lld %lld %lld", &size, &resident, &shared) != 3)
        return -1;
    return resident - shared;
}

/* Rss, Pss and Private_* of a process, in bytes, from smaps_rollup. */
static void read_memory(int pid, crew_worker_stats *s)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        unsigned long long kb;
        if (sscanf(line, "Rss: %llu kB", &kb) == 1)
            s->rss = kb << 10;
        else if (sscanf(line, "Pss: %llu kB", &kb) == 1)
            s->pss = kb << 10;
        else if (sscanf(line, "Private_Clean: %llu kB", &kb) == 1 ||
                 sscanf(line, "Private_Dirty: %llu kB", &kb) == 1)
            s->uss += kb << 10;
    }
    fclose(f);
}

size_t crew__proc_stats(const crew *pool, crew_worker_stats *out, size_t n)
{
    const proc_map *m = &pool->proc->m;
    unsigned have = proc_load32(&m->hdr->slots_used);
    for (size_t i = 0; i < n && i < have; i++) {
        proc_slot *s = &m->slots[i];
        memset(&out[i], 0, sizeof out[i]);
        out[i].jobs = atomic_load_explicit(&s->jobs, memory_order_relaxed);
        out[i].busy_ns = atomic_load_explicit(&s->busy_ns, memory_order_relaxed);
        out[i].sleeps = atomic_load_explicit(&s->sleeps, memory_order_relaxed);
        out[i].restarts = atomic_load_explicit(&s->restarts, memory_order_relaxed);
        out[i].pid = atomic_load_explicit(&s->pid, memory_order_acquire);
        if (out[i].pid > 0)
            read_memory(out[i].pid, &out[i]);
    }
    return have;
}
