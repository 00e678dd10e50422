/*
 * proc_util.h -- helpers the process-pool tests share: what /proc says
 * about a process (state, parent, children, open fds, threads), the live
 * workers of a pool, waiting with a deadline, and task bodies that end
 * their worker in each way a worker can die.
 *
 * Task bodies run in worker processes, so they never use ASSERT (its
 * exit(1) would read as CREW_EEXITED): they report through their status
 * and result, and the caller checks those.
 */
#ifndef CREW_PROC_UTIL_H
#define CREW_PROC_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "arena_util.h"
#include "crew.h"
#include "test.h"

#if UNDER_TSAN
/*
 * ThreadSanitizer's exit() sleeps atexit_sleep_ms (1 s by default) when it
 * believes other threads still run, and in a worker -- a fork of a caller
 * that has threads -- it believes so: a task calling exit() would outlive
 * any task_timeout and read as CREW_ETIMEDOUT.  The tests check how a
 * worker's exit is reported, not that wait.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "atexit_sleep_ms=0";
}
#endif

/* ---- what /proc says ------------------------------------------------------ */

/*
 * pid's state letter ('R', 'S', 'Z', ...) and parent, from /proc/PID/stat;
 * 0 when there is no such process.  The name field may hold spaces and
 * parentheses, so the fields are read after its last ')'.
 */
static inline char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = '\0';
    char *end = strrchr(buf, ')');
    char state = 0;
    int parent = 0;
    if (!end || sscanf(end + 1, " %c %d", &state, &parent) != 2)
        return 0;
    if (ppid)
        *ppid = parent;
    return state;
}

/* 1 when pid no longer runs and is not left for this process to reap. */
static inline int proc_gone(pid_t pid)
{
    pid_t parent = 0;
    char st = proc_state(pid, &parent);
    return st == 0 || ((st == 'Z' || st == 'X') && parent != getpid());
}

/* Children of `parent` (live or zombie), found by scanning /proc; up to
 * cap of them into out (may be NULL).  Returns how many there are. */
static inline size_t proc_children(pid_t parent, pid_t *out, size_t cap)
{
    DIR *d = opendir("/proc");
    ASSERT_NOT_NULL(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        pid_t pp = 0;
        if (proc_state((pid_t)pid, &pp) && pp == parent) {
            if (out && n < cap)
                out[n] = (pid_t)pid;
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Threads in this process (/proc/self/status). */
static inline int proc_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    ASSERT_NOT_NULL(f);
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    ASSERT_GT(n, 0);
    return n;
}

/* "fd -> target" lines for every open fd of this process (malloc'd).
 * The directory stream's own fd shows up too, the same way each time. */
static inline char *proc_fd_list(void)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    ASSERT_NOT_NULL(s);
    s[0] = '\0';
    DIR *d = opendir("/proc/self/fd");
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t t = readlink(path, target, sizeof target - 1);
        target[t < 0 ? 0 : t] = '\0';
        size_t need = strlen(e->d_name) + strlen(target) + 6;
        if (len + need >= cap) {
            cap = 2 * (len + need);
            s = realloc(s, cap);
            ASSERT_NOT_NULL(s);
        }
        len += (size_t)snprintf(s + len, cap - len, "%s -> %s\n", e->d_name, target);
    }
    closedir(d);
    return s;
}

static inline int proc_name_cmp_(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted, one a line (malloc'd); "" if it is
 * missing. */
static inline char *proc_dir_list(const char *path)
{
    char *names[4096];
    size_t n = 0, len = 1;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL && n < 4096) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            /* Other tests' MPI jobs come and go in /dev/shm meanwhile
             * (ctest runs tests side by side): Open MPI's segments and
             * crew_mpi's records of them are not this process's. */
            if (!strncmp(e->d_name, "vader_segment.", 14) ||
                !strncmp(e->d_name, "crew-mpi.", 9) || !strncmp(e->d_name, "crew-mpi-", 9))
                continue;
            names[n] = strdup(e->d_name);
            ASSERT_NOT_NULL(names[n]);
            len += strlen(names[n]) + 1;
            n++;
        }
        closedir(d);
    }
    qsort(names, n, sizeof names[0], proc_name_cmp_);
    char *s = malloc(len);
    ASSERT_NOT_NULL(s);
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(s, names[i]);
        strcat(s, "\n");
        free(names[i]);
    }
    return s;
}

/* What a process leaves behind: children, fds, /dev/shm, threads. */
typedef struct proc_snapshot {
    size_t children;
    char *fds, *shm;
    int threads;
} proc_snapshot;

static inline proc_snapshot proc_take_snapshot(void)
{
    proc_snapshot s;
    s.children = proc_children(getpid(), NULL, 0);
    s.fds = proc_fd_list();
    s.shm = proc_dir_list("/dev/shm");
    s.threads = proc_threads();
    return s;
}

/* Fail unless `after` shows exactly what `before` did, then free both. */
static inline void proc_same_snapshot(proc_snapshot *before, proc_snapshot *after,
                                      const char *what)
{
    if (before->children != after->children)
        TEST_FAIL_("%s: %zu children before, %zu after", what, before->children,
                   after->children);
    if (strcmp(before->fds, after->fds) != 0)
        TEST_FAIL_("%s: open fds differ\nbefore:\n%safter:\n%s", what, before->fds, after->fds);
    if (strcmp(before->shm, after->shm) != 0)
        TEST_FAIL_("%s: /dev/shm differs\nbefore:\n%safter:\n%s", what, before->shm, after->shm);
    if (before->threads != after->threads)
        TEST_FAIL_("%s: %d threads before, %d after", what, before->threads, after->threads);
    free(before->fds);
    free(before->shm);
    free(after->fds);
    free(after->shm);
}

/* ---- a pool's processes ---------------------------------------------------- */

/* Live worker pids of a pool (crew_stats), up to cap into out; how many. */
static inline size_t pool_pids(const crew *pool, pid_t *out, size_t cap)
{
    crew_worker_stats st[64];
    size_t have = crew_stats(pool, st, 64);
    size_t n = 0;
    for (size_t i = 0; i < have && i < 64; i++)
        if (st[i].pid > 0) {
            if (out && n < cap)
                out[n] = st[i].pid;
            n++;
        }
    return n;
}

/*
 * Wait up to `secs` for the pool to show exactly `want` workers, all
 * running.  Just after a worker died its slot may still name it for a
 * moment (the supervisor settles the task first), so a pid that is a
 * zombie or gone does not count.
 */
static inline int pool_wait_pids(const crew *pool, size_t want, double secs)
{
    double until = test_now_s() + secs;
    do {
        pid_t pids[64];
        size_t n = pool_pids(pool, pids, 64), alive = 0;
        for (size_t i = 0; i < n && i < 64; i++) {
            char st = proc_state(pids[i], NULL);
            alive += st != 0 && st != 'Z' && st != 'X';
        }
        if (n == want && alive == want)
            return 1;
        usleep(2000);
    } while (test_now_s() < until);
    return 0;
}

/* The supervisor: the parent of the pool's workers (all of them). */
static inline pid_t pool_supervisor(const crew *pool)
{
    pid_t pids[64];
    size_t n = pool_pids(pool, pids, 64);
    ASSERT_GT(n, 0);
    pid_t sup = 0;
    for (size_t i = 0; i < n && i < 64; i++) {
        pid_t parent = 0;
        ASSERT_NE(proc_state(pids[i], &parent), 0);
        if (i == 0)
            sup = parent;
        else
            ASSERT_EQ(parent, sup);
    }
    return sup;
}

/* ---- ways for a task to end its worker --------------------------------------- */

/*
 * A page mapped with no access.  Call test_forbidden_page() once before
 * crew_open so that the workers, copies of the caller at that moment, have
 * it too; writing to it is a genuine segmentation fault (an access the
 * sanitizers' checks allow, unlike a null pointer, so the fault itself
 * ends the worker).
 */
static inline volatile int *test_forbidden_page(void)
{
    static volatile int *page;
    if (!page) {
        void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT(p != MAP_FAILED);
        page = p;
    }
    return page;
}

static inline void test_die_segv(void)
{
    test_forbidden_page()[1] = 1;
}

/* Never returns on its own: the timeout has to end it. */
static inline _Noreturn void test_spin_forever(void)
{
    static volatile unsigned long spins;
    for (;;)
        spins++;
}

/*
 * Allocates and touches memory until the memory limit kills it.  Bounded
 * at 2 GiB, after which it spins: a pool that does not enforce the limit
 * then fails the test with CREW_ETIMEDOUT (given a timeout) instead of
 * taking the machine's memory.
 */
static inline _Noreturn void test_hog_forever(void)
{
    enum { CHUNK = 1 << 20, MAX_CHUNKS = 2048 };
    static void *volatile keep[MAX_CHUNKS];
    for (int i = 0; i < MAX_CHUNKS; i++) {
        char *p = malloc(CHUNK);
        if (!p)
            break;
        /* one byte a page makes it resident, and costs little under
         * instrumentation, so the limit is reached long before a timeout */
        for (size_t k = 0; k < CHUNK; k += 4096)
            p[k] = (char)(i + 1);
        keep[i] = p;
    }
    (void)keep[0];
    test_spin_forever();
}

/* ---- making every worker take part ---------------------------------------------- */

/*
 * A task that calls test_gather_in(g) for the first time in its worker
 * waits (10 s at most) until g->want workers have each called it, so that
 * every worker of the pool must take a task.  Tasks that merely last a
 * while would leave that to the scheduler, and on a loaded machine one
 * worker may run them all.  g must live where the workers see the
 * caller's writes and each other's: in an arena that is not frozen.
 */
typedef struct test_gather {
    _Atomic int32_t pids[64];
    _Atomic uint32_t n;
    uint32_t want;
} test_gather;

static inline void test_gather_in(test_gather *g)
{
    int32_t me = (int32_t)getpid();
    uint32_t n = atomic_load(&g->n);
    for (uint32_t i = 0; i < n && i < 64; i++)
        if (atomic_load(&g->pids[i]) == me)
            return;
    uint32_t at = atomic_fetch_add(&g->n, 1);
    if (at < 64)
        atomic_store(&g->pids[at], me);
    double until = test_now_s() + 10.0;
    while (atomic_load(&g->n) < g->want && test_now_s() < until)
        ;
}

/* ---- the rest ----------------------------------------------------------------- */

static inline void test_hung(const char *step)
{
    fprintf(stderr, "hung: %s\n", step);
}

/* A process pool with these settings, or the test fails. */
static inline crew *test_proc_pool(unsigned workers, double timeout, size_t mem_limit,
                                   unsigned retries)
{
    crew *pool = NULL;
    crew_config cfg = {.workers = workers,
                       .isolation = CREW_PROCESSES,
                       .task_timeout = timeout,
                       .task_memory_limit = mem_limit,
                       .retries = retries};
    ASSERT_OK(crew_open(&pool, &cfg));
    ASSERT_NOT_NULL(pool);
    return pool;
}

#endif
