/*
 * supervisor.c -- the process between the caller and its workers.
 *
 * crew_open forks it once; it forks every worker, so all workers are
 * copies of the caller as it was at crew_open, children of a
 * single-threaded process (forking from the caller's threads later would
 * copy whatever locks those threads held at that moment), and a worker's
 * death reaches a process that does nothing else but watch.
 *
 * It sleeps in poll(2) on: a pidfd of the caller (readable when the
 * caller's process ends, however it ends: the workers are then killed),
 * the caller's eventfd (close, resize, a call starting), and a pidfd per
 * worker (readable when it dies).  During a call that has a timeout or a
 * memory limit it also wakes every tick to check the running tasks.
 *
 * When a worker dies it settles the work the worker held: the descriptor
 * it was running gets the cause of death as its status, descriptors
 * claimed but not started are abandoned for the caller to hand out again;
 * then a fresh worker takes the slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "proc/proc_internal.h"

#define MAX_IDLE_DEATHS 64          /* workers dying before any task: give up */
#define RESPAWN_RETRY_NS 10000000u  /* retry a failed fork after 10 ms */
#define RESPAWN_GIVE_UP_NS (10ull * 1000000000u)
#define LEAVE_NS 2000000000u         /* crew_close: time for worker_exit to run */

typedef struct sup_worker {
    pid_t pid;
    int pidfd, statm_fd;
    uint64_t kill_seq;         /* running value when we killed it, 0: not killed */
    unsigned idle_deaths;      /* deaths in a row without a task */
} sup_worker;

typedef struct sup {
    proc_map *m;
    proc_shared *h;
    sup_worker *w;             /* [max_workers] */
    int caller_fd;
    uint64_t spawn_failing_since;
    struct rlimit nofile;      /* the caller's limit, given back to workers */
    bool nofile_raised;
} sup;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A new worker in slot i.  false: fork failed (tried again later). */
static bool spawn(sup *s, unsigned i)
{
    proc_slot *slot = &s->m->slots[i];
    atomic_store(&slot->running, 0);
    atomic_store(&slot->start_ns, 0);
    atomic_store(&slot->kill_reason, KILL_NONE);
    atomic_store(&slot->fault_readonly, 0);
    pid_t me = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        /* Die with the supervisor; it may have died before the prctl. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != me)
            _exit(0);
        /* The eventfd stays: a task may call crew_resize, which pokes us
         * through it. */
        close(s->caller_fd);
        close(s->h->life_fd[0]);
        for (unsigned j = 0; j < s->h->max_workers; j++) {
            close_fd(&s->w[j].pidfd);
            close_fd(&s->w[j].statm_fd);
        }
        if (s->nofile_raised)
            setrlimit(RLIMIT_NOFILE, &s->nofile);
        crew__worker_main(s->m, i);
    }
    sup_worker *w = &s->w[i];
    /* A worker we cannot watch (no descriptor left for its pidfd) would
     * die unnoticed, and the task it held would never be settled; one
     * whose memory we cannot read would ignore the memory limit.  Such a
     * start counts as a failed fork. */
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int statm_fd = -1;
    if (pidfd >= 0 && s->h->mem_limit_pages) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
        statm_fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (pidfd < 0 || (s->h->mem_limit_pages && statm_fd < 0)) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close_fd(&pidfd);
        return false;
    }
    w->pid = pid;
    w->kill_seq = 0;
    w->pidfd = pidfd;
    w->statm_fd = statm_fd;
    atomic_store_explicit(&slot->pid, pid, memory_order_release);
    unsigned used = atomic_load(&s->h->slots_used);
    if (i + 1 > used)
        atomic_store(&s->h->slots_used, i + 1);
    return true;
}

static void wake_caller(proc_shared *h)
{
    atomic_fetch_add_explicit(&h->done_word, 1, memory_order_seq_cst);
    crew__futex_wake_shared(&h->done_word, 1);
}

/* The status a task gets when its worker died with wait status `ws`. */
static void cause_of_death(sup *s, unsigned i, int ws, uint64_t seq, proc_desc *d)
{
    proc_slot *slot = &s->m->slots[i];
    sup_worker *w = &s->w[i];
    uint32_t reason = w->kill_seq == seq + 1 ? atomic_load(&slot->kill_reason) : KILL_NONE;
    d->detail = 0;
    d->t1 = crew__now_ns(); /* for the trace: it ended when we saw it die */
    if (reason == KILL_TIMEOUT) {
        d->status = CREW_ETIMEDOUT;
    } else if (reason == KILL_MEMORY) {
        d->status = CREW_ENOMEM;
    } else if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSEGV && atomic_load(&slot->fault_readonly)) {
        d->status = CREW_EREADONLY;
        d->detail = WTERMSIG(ws);
        d->fault_addr = slot->fault_addr;
        d->fault_off = slot->fault_off;
    } else if (WIFSIGNALED(ws)) {
        d->status = CREW_ECRASHED;
        d->detail = WTERMSIG(ws);
    } else {
        d->status = CREW_EEXITED;
        d->detail = WEXITSTATUS(ws);
    }
}

/* Worker i died with wait status ws: settle what it held, replace it. */
static void bury(sup *s, unsigned i, int ws)
{
    proc_shared *h = s->h;
    sup_worker *w = &s->w[i];
    bool held = false, ran = false;
    /* A worker holds one claim at a time, and leaves by itself (exit 0)
     * only at the top of its loop, holding none: or a task called
     * _exit(0), and its descriptor is RUNNING.  Either way, a clean exit
     * leaves no READY descriptor of its own to abandon -- those are other
     * workers' claims, which they will start. */
    bool clean_exit = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
    uint64_t claim = atomic_load_explicit(&h->claim, memory_order_acquire);
    for (uint32_t k = 0; k < PROC_RING; k++) {
        proc_desc *d = &s->m->ring[k];
        uint32_t st = atomic_load_explicit(&d->state, memory_order_acquire);
        if (st == D_RUNNING_BY(i)) {
            cause_of_death(s, i, ws, d->seq, d);
            /* release: the status is written before DONE is seen */
            if (atomic_compare_exchange_strong(&d->state, &st, D_DONE))
                held = ran = true;
        } else if (st == D_READY && d->seq < claim && !clean_exit) {
            /* Claimed by someone who has not started it: maybe the dead
             * worker.  Abandon it; a live claimer's start then fails.  (Seen
             * as the caller refills it, a descriptor may be abandoned
             * needlessly: it is then handed out again, never run twice.) */
            if (atomic_compare_exchange_strong(&d->state, &st, D_ABANDONED))
                held = true;
        }
    }
    if (held)
        wake_caller(h);
    close_fd(&w->pidfd);
    close_fd(&w->statm_fd);
    w->pid = 0;
    atomic_store_explicit(&s->m->slots[i].pid, 0, memory_order_release);
    atomic_store(&s->m->slots[i].running, 0);
    atomic_store(&s->m->slots[i].start_ns, 0);
    bool retired = clean_exit && !ran;
    if (!retired)
        atomic_fetch_add_explicit(&s->m->slots[i].restarts, 1, memory_order_relaxed);
    w->idle_deaths = held || retired ? 0 : w->idle_deaths + 1;
    if (w->idle_deaths > MAX_IDLE_DEATHS) {
        /* Workers die before they can take any work: nothing will run. */
        atomic_store(&h->lost, 1);
        wake_caller(h);
    }
}

static void kill_all(sup *s)
{
    for (unsigned i = 0; i < s->h->max_workers; i++) {
        if (s->w[i].pid <= 0)
            continue;
        kill(s->w[i].pid, SIGKILL);
        while (waitpid(s->w[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->w[i].pid = 0;
    }
}

/* crew_close: idle workers see `stopping` and leave by themselves, running
 * worker_exit on the way; give them a bounded time to, then kill_all. */
static void let_workers_leave(sup *s)
{
    proc_shared *h = s->h;
    atomic_fetch_add_explicit(&h->work_word, 1, memory_order_seq_cst);
    crew__futex_wake_shared(&h->work_word, INT32_MAX);
    uint64_t deadline = crew__now_ns() + LEAVE_NS;
    for (unsigned i = 0; i < h->max_workers; i++) {
        if (s->w[i].pid <= 0 || s->w[i].pidfd < 0)
            continue;
        uint64_t now = crew__now_ns();
        struct pollfd pf = {.fd = s->w[i].pidfd, .events = POLLIN};
        if (now >= deadline || poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1) != 1)
            break;
        while (waitpid(s->w[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->w[i].pid = 0;
    }
}

/* Start missing workers of slots [0, N).  false: a fork failed. */
static bool fill(sup *s)
{
    unsigned n = atomic_load(&s->h->active);
    for (unsigned i = 0; i < n && i < s->h->max_workers; i++)
        if (s->w[i].pid <= 0 && !spawn(s, i))
            return false;
    return true;
}

/* Kill the workers whose task ran too long or grew too large. */
static void check_limits(sup *s, uint64_t now)
{
    proc_shared *h = s->h;
    unsigned used = atomic_load(&h->slots_used);
    for (unsigned i = 0; i < used; i++) {
        sup_worker *w = &s->w[i];
        proc_slot *slot = &s->m->slots[i];
        if (w->pid <= 0 || w->kill_seq)
            continue;
        uint64_t running = atomic_load_explicit(&slot->running, memory_order_acquire);
        uint64_t start = atomic_load_explicit(&slot->start_ns, memory_order_acquire);
        if (!running || !start)
            continue;
        /* Memory first: a task found past both limits (a late tick on a
         * loaded machine) overran its memory while it ran, the more
         * telling of the two. */
        uint32_t reason = KILL_NONE;
        if (h->mem_limit_pages && w->statm_fd >= 0) {
            int64_t pages = crew__proc_private_pages(w->statm_fd);
            int64_t base = atomic_load_explicit(&slot->mem_base, memory_order_relaxed);
            if (pages >= 0 && pages - base > h->mem_limit_pages)
                reason = KILL_MEMORY;
        }
        if (reason == KILL_NONE && h->timeout_ns && now > start && now - start > h->timeout_ns)
            reason = KILL_TIMEOUT;
        if (reason == KILL_NONE)
            continue;
        /* Condemn the task only if the worker still runs it.  The worker
         * leaves a task by moving `running` from its number to 0, so once
         * the mark is in, it cannot start another one that the signal
         * would then kill in its place (worker.c waits for the signal). */
        uint64_t expect = running;
        if (!atomic_compare_exchange_strong(&slot->running, &expect, running | PROC_DOOMED))
            continue;
        atomic_store(&slot->kill_reason, reason);
        w->kill_seq = running;
        if (w->pidfd >= 0)
            syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
        else
            kill(w->pid, SIGKILL);
    }
}

static int tick_ms(const proc_shared *h)
{
    if (!atomic_load(&h->in_call))
        return -1;
    if (h->mem_limit_pages)
        return (int)(PROC_TICK_NS / 1000000u);
    if (h->timeout_ns) {
        uint64_t t = h->timeout_ns / 20 / 1000000u;
        return t < 1 ? 1 : t > 10 ? 10 : (int)t;
    }
    return -1;
}

_Noreturn void crew__supervisor_main(proc_map *m)
{
    proc_shared *h = m->hdr;
    /* The caller decides what Ctrl-C and termination mean; we end when it
     * does.  Dead workers are collected with waitpid, so SIGCHLD must not
     * be ignored (that would reap them for us). */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_NAME, "crew-supervisor");

    sup s = {.m = m, .h = h};
    /* Only the caller may hold the pipe's write end: its exit, and also its
     * exec (which closes it), then reads as EOF here. */
    close(h->life_fd[1]);
    /* Two descriptors per worker: the caller's soft limit (often 1024)
     * may not be enough; take what the hard limit allows. */
    if (getrlimit(RLIMIT_NOFILE, &s.nofile) == 0 && s.nofile.rlim_cur < s.nofile.rlim_max) {
        struct rlimit all = {s.nofile.rlim_max, s.nofile.rlim_max};
        s.nofile_raised = setrlimit(RLIMIT_NOFILE, &all) == 0;
    }
    s.caller_fd = (int)syscall(SYS_pidfd_open, h->caller_pid, 0);
    s.w = calloc(h->max_workers, sizeof *s.w);
    if (s.caller_fd < 0 || getppid() != h->caller_pid || !s.w) {
        atomic_store(&h->lost, 1);
        crew__futex_wake_shared(&h->ready, 1);
        _exit(1);
    }
    for (unsigned i = 0; i < h->max_workers; i++)
        s.w[i].pidfd = s.w[i].statm_fd = -1;
    /* Hold no arena: workers map them from the table (worker.c).  The
     * ranges stay reserved so that no mapping of ours lands there. */
    crew__proc_inherited = malloc((h->n_arenas + 1) * sizeof *crew__proc_inherited);
    if (crew__proc_inherited) {
        memcpy(crew__proc_inherited, h->arenas, h->n_arenas * sizeof *crew__proc_inherited);
        crew__proc_n_inherited = h->n_arenas;
    }
    for (uint32_t i = 0; i < h->n_arenas; i++)
        mmap((void *)(uintptr_t)h->arenas[i].base, h->arenas[i].len, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    /* Nor their descriptors: workers open arenas through the caller's
     * (worker.c), and a copy here and in every worker would keep an arena
     * the caller closes -- its memory, or its file -- alive until
     * crew_close.  Only descriptors still naming the arena are closed. */
    for (uint32_t i = 0; i < h->n_arenas; i++) {
        struct stat st;
        if (fstat(h->arenas[i].fd, &st) == 0 && (uint64_t)st.st_ino == h->arenas[i].ino &&
            (uint64_t)st.st_dev == h->arenas[i].dev)
            close(h->arenas[i].fd);
    }

    if (!fill(&s)) {
        kill_all(&s);
        atomic_store(&h->lost, 1);
        crew__futex_wake_shared(&h->ready, 1);
        _exit(1);
    }
    atomic_store(&h->ready, 1);
    crew__futex_wake_shared(&h->ready, 1);

    struct pollfd *fds = calloc(h->max_workers + 3, sizeof *fds);
    unsigned *who = calloc(h->max_workers + 3, sizeof *who);
    if (!fds || !who) {
        kill_all(&s);
        atomic_store(&h->lost, 1);
        wake_caller(h);
        _exit(1);
    }
    for (;;) {
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = s.caller_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = h->event_fd, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = h->life_fd[0], .events = POLLIN};
        unsigned used = atomic_load(&h->slots_used);
        for (unsigned i = 0; i < used; i++)
            if (s.w[i].pid > 0 && s.w[i].pidfd >= 0) {
                who[n] = i;
                fds[n++] = (struct pollfd){.fd = s.w[i].pidfd, .events = POLLIN};
            }
        int timeout = tick_ms(h);
        if (s.spawn_failing_since)
            timeout = (int)(RESPAWN_RETRY_NS / 1000000u);
        int rc = poll(fds, n, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        /* the caller exited, or exec'ed (its memory, hence the pool, is gone) */
        if (fds[0].revents || fds[2].revents || atomic_load(&h->stopping))
            break;
        if (fds[1].revents) {
            uint64_t v;
            (void)!read(h->event_fd, &v, sizeof v);
        }
        for (nfds_t k = 3; k < n; k++) {
            if (!fds[k].revents)
                continue;
            unsigned i = who[k];
            int ws = 0;
            pid_t r;
            while ((r = waitpid(s.w[i].pid, &ws, 0)) < 0 && errno == EINTR)
                ;
            if (r == s.w[i].pid)
                bury(&s, i, ws);
        }
        if (atomic_load(&h->lost))
            break;
        uint64_t now = crew__now_ns();
        if (fill(&s)) {
            s.spawn_failing_since = 0;
        } else if (!s.spawn_failing_since) {
            s.spawn_failing_since = now;
        } else if (now - s.spawn_failing_since > RESPAWN_GIVE_UP_NS) {
            atomic_store(&h->lost, 1);
            wake_caller(h);
            break;
        }
        if (tick_ms(h) > 0)
            check_limits(&s, now);
    }
    if (h->worker_exit && atomic_load(&h->stopping) && !atomic_load(&h->lost))
        let_workers_leave(&s);
    kill_all(&s);
    _exit(0);
}
