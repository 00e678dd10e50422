/*
 * Description: the life of a process pool's processes.  crew_open checks
 * its process settings; crew_resize starts and retires workers (crew_stats
 * shows the live pids); crew_close leaves no child, zombie, fd, thread or
 * /dev/shm entry behind, also after crashes, timeouts and resizes; when
 * the caller's process is killed (SIGKILL, or SIGTERM and SIGINT at their
 * default action; also while a child of its own lives on) its supervisor
 * and workers are gone within a second, and when
 * it calls exec, too; when the supervisor is killed, calls return
 * CREW_ELOST at once instead of hanging, and crew_close still cleans up;
 * a slot whose workers keep dying before taking work makes the pool
 * CREW_ELOST; crew_close in a forked child leaves the caller's pool alone.
 */
#include <math.h>
#include <sys/syscall.h>

#include "proc_util.h"

static test_watchdog wd;

/* ---- tasks --------------------------------------------------------------------- */

enum { T_PID, T_SEGV, T_HANG, T_EXIT, T_SPIN_MS, T_GATHER };

typedef struct life_arg {
    int what;
    unsigned ms;                 /* T_SPIN_MS */
    _Atomic uint32_t *started;   /* in an arena; may be NULL */
} life_arg;

/* Returns its worker's pid, after doing what it was asked.  shared: the
 * test_gather of T_GATHER (proc_util.h). */
static int life_task(const void *shared, const void *arg, void *result)
{
    const life_arg *a = arg;
    if (a->started)
        atomic_fetch_add(a->started, 1);
    switch (a->what) {
    case T_SEGV: test_die_segv(); return 100;
    case T_HANG: test_spin_forever();
    case T_EXIT: exit(0);
    case T_SPIN_MS: {
        double until = test_now_s() + a->ms / 1000.0;
        while (test_now_s() < until)
            ;
        break;
    }
    case T_GATHER: test_gather_in((test_gather *)(uintptr_t)shared); break;
    }
    *(int *)result = (int)getpid();
    return 0;
}

/* Run n tasks of one kind; 1 when every one returned its worker's pid. */
static int run_pids_in(crew *pool, size_t n, int what, unsigned ms, test_gather *g,
                       int *pids)
{
    life_arg a = {what, ms, NULL};
    crew_task *t = calloc(n, sizeof *t);
    ASSERT_NOT_NULL(t);
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &a, .arg_size = sizeof a, .result = &pids[i],
                           .result_size = sizeof pids[i]};
    int rc = crew_run(pool, g, t, n, NULL);
    int ok = rc == 0;
    for (size_t i = 0; i < n; i++)
        ok = ok && t[i].status == 0 && t[i].runs == 1 && pids[i] > 0;
    free(t);
    return ok;
}

static int run_pids(crew *pool, size_t n, int what, unsigned ms, int *pids)
{
    return run_pids_in(pool, n, what, ms, NULL, pids);
}

static int has_pid(const pid_t *set, size_t n, pid_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == pid)
            return 1;
    return 0;
}

/* ---- crew_open ------------------------------------------------------------------ */

static void test_open_validation(void)
{
    crew *const sentinel = (crew *)(uintptr_t)0x1234;
    const crew_config bad[] = {
        {.isolation = 7},
        {.isolation = -1},
        {.isolation = CREW_PROCESSES, .task_timeout = -1},
        {.isolation = CREW_PROCESSES, .task_timeout = NAN},
        {.isolation = CREW_PROCESSES, .task_timeout = INFINITY},
        {.isolation = CREW_PROCESSES, .task_timeout = -INFINITY},
        {.isolation = CREW_PROCESSES, .workers = CREW_MAX_WORKERS + 1},
        {.isolation = CREW_THREADS, .task_memory_limit = 1},
        {.isolation = CREW_THREADS, .task_timeout = 1},
        {.isolation = CREW_THREADS, .retries = 1},
    };
    size_t before = proc_children(getpid(), NULL, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crew *pool = sentinel;
        int rc = crew_open(&pool, &bad[i]);
        if (rc != CREW_EINVAL || pool != sentinel)
            TEST_FAIL_("bad config %zu: crew_open returned %s, pool %p", i, crew_err_name(rc),
                       (void *)pool);
    }
    /* nothing was forked for them */
    ASSERT_EQ(proc_children(getpid(), NULL, 0), before);

    /* the smallest settings that are valid */
    crew *pool = NULL;
    ASSERT_OK(crew_open(&pool, &(crew_config){.isolation = CREW_PROCESSES, .workers = 1,
                                               .task_timeout = 1e-3,
                                               .task_memory_limit = 1, .retries = 1}));
    int pid = 0;
    ASSERT(run_pids(pool, 1, T_PID, 0, &pid));
    crew_close(pool);
    /* workers = 0 means every usable CPU, as for threads */
    ASSERT_OK(crew_open(&pool, &(crew_config){.isolation = CREW_PROCESSES}));
    ASSERT_EQ(crew_workers(pool), crew_usable_cpus());
    ASSERT(pool_wait_pids(pool, crew_usable_cpus(), 5.0));
    crew_close(pool);
}

/* ---- crew_resize and crew_stats --------------------------------------------------- */

/* After a resize to n: n live workers, each a child of the supervisor, and
 * the workers of retired slots gone. */
static void check_workers(crew *pool, unsigned n, pid_t sup)
{
    ASSERT_EQ(crew_workers(pool), n);
    if (!pool_wait_pids(pool, n, 5.0))
        TEST_FAIL_("resized to %u: crew_stats shows %zu live workers", n, pool_pids(pool, NULL, 0));
    crew_worker_stats st[16];
    size_t slots = crew_stats(pool, st, 16);
    ASSERT_GE(slots, n);
    for (size_t i = 0; i < slots; i++) {
        if (i < n) {
            pid_t parent = 0;
            ASSERT_GT(st[i].pid, 0);
            ASSERT_NE(proc_state(st[i].pid, &parent), 0);
            ASSERT_EQ(parent, sup);
            for (size_t k = 0; k < i; k++)
                ASSERT_NE(st[k].pid, st[i].pid);
        } else {
            ASSERT_EQ(st[i].pid, 0);
        }
        ASSERT_UEQ(st[i].restarts, 0); /* retiring is not dying */
    }
}

static void test_resize(void)
{
    enum { TASKS = 60 };
    crew *pool = test_proc_pool(2, 0, 0, 0);
    pid_t sup = pool_supervisor(pool);
    ASSERT_EQ(proc_state(sup, NULL) != 0, 1);
    check_workers(pool, 2, sup);
    crew_arena *ga;
    ASSERT_OK(crew_arena_create(&ga, 1 << 20));
    test_gather *g = CREW_ARENA_PTR(ga, test_gather, CREW_ARENA_NEW(ga, test_gather));
    ASSERT_NOT_NULL(g);
    static const unsigned sizes[] = {4, 1, 3, 3, 2, 6, 1, 2};
    int pids[TASKS];
    pid_t live[16];
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        pid_t old[16];
        size_t n_old = pool_pids(pool, old, 16);
        test_watchdog_step(&wd, "resize");
        ASSERT_OK(crew_resize(pool, sizes[s]));
        check_workers(pool, sizes[s], sup);
        size_t n_live = pool_pids(pool, live, 16);
        ASSERT_EQ(n_live, sizes[s]);
        /* the workers that retired have ended (their parent reaped them) */
        for (size_t i = 0; i < n_old; i++)
            if (!has_pid(live, n_live, old[i])) {
                double until = test_now_s() + 2.0;
                while (proc_state(old[i], NULL) != 0 && test_now_s() < until)
                    usleep(1000);
                ASSERT_EQ(proc_state(old[i], NULL), 0);
            }
        /* Every worker takes some tasks, and no other process runs any. */
        memset(g, 0, sizeof *g);
        g->want = sizes[s];
        test_watchdog_step(&wd, "run after resize");
        ASSERT(run_pids_in(pool, TASKS, T_GATHER, 0, g, pids));
        pid_t used[16];
        size_t n_used = 0;
        for (size_t i = 0; i < TASKS; i++) {
            if (!has_pid(live, n_live, pids[i]))
                TEST_FAIL_("after resize to %u: a task ran in pid %d, not a worker", sizes[s],
                           pids[i]);
            if (!has_pid(used, n_used, pids[i]))
                used[n_used++] = pids[i];
        }
        if (n_used != sizes[s])
            TEST_FAIL_("resized to %u: tasks ran in %zu workers", sizes[s], n_used);
    }
    crew_close(pool);
    crew_arena_close(ga);
}

/*
 * From inside a task (crew_resize may be called there): the pool's N
 * changes for everyone, as from the caller, and nothing else the task has
 * open is touched (a file it opened must not receive the pool's
 * messages).
 */
typedef struct resize_arg {
    crew *pool;
    unsigned n;
    char path[200];
} resize_arg;

/* Result: the size of a file the task had open while it resized. */
static int resize_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const resize_arg *a = arg;
    int fd = open(a->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 2;
    int rc = crew_resize(a->pool, a->n);
    struct stat st;
    *(int64_t *)result = fstat(fd, &st) == 0 ? (int64_t)st.st_size : -1;
    close(fd);
    return rc == 0 ? 0 : 1;
}

static void test_resize_from_task(void)
{
    char *dir = scratch_dir();
    crew *pool = test_proc_pool(2, 0, 0, 0);
    resize_arg a = {pool, 2, ""};
    snprintf(a.path, sizeof a.path, "%s/task-file", dir);
    int64_t size = -1;
    crew_task t = {.fn = resize_task, .arg = &a, .arg_size = sizeof a, .result = &size,
                   .result_size = sizeof size};
    test_watchdog_step(&wd, "resize from a task");
    /* to the same N first: only the file can change */
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    if (size != 0)
        TEST_FAIL_("crew_resize from inside a task wrote %" PRId64 " bytes into a file the "
                   "task had open",
                   size);
    a.n = 3;
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    ASSERT_EQ(size, 0);
    if (crew_workers(pool) != 3 || !pool_wait_pids(pool, 3, 2.0))
        TEST_FAIL_("crew_resize(3) from inside a task returned 0, yet the pool has N = %u and "
                   "%zu live workers",
                   crew_workers(pool), pool_pids(pool, NULL, 0));
    int pids[60];
    ASSERT(run_pids(pool, 60, T_SPIN_MS, 2, pids));
    crew_close(pool);
    cleanup_dir(dir);
}

/* Workers ignore SIGINT (a terminal's Ctrl-C is the caller's to handle);
 * other signals end the task as a crash that names them. */
static int signal_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    int sig = *(const int *)arg;
    raise(sig);
    return 0;
}

static void test_signals(void)
{
    crew *pool = test_proc_pool(2, 0, 0, 0);
    /* SIGSEGV sent (not a fault): crew's own fault handler must not swallow it */
    static const int sigs[] = {SIGINT, SIGTERM, SIGINT, SIGKILL, SIGHUP, SIGQUIT, SIGSEGV};
    enum { N = sizeof sigs / sizeof sigs[0] };
    crew_task t[N];
    for (int i = 0; i < N; i++)
        t[i] = (crew_task){.fn = signal_task, .arg = &sigs[i], .arg_size = sizeof sigs[i]};
    test_watchdog_step(&wd, "signals");
    ASSERT_EQ(crew_run(pool, NULL, t, N, NULL), CREW_EFAILED);
    for (int i = 0; i < N; i++) {
        if (sigs[i] == SIGINT) {
            ASSERT_EQ(t[i].status, 0);
        } else {
            ASSERT_EQ(t[i].status, CREW_ECRASHED);
            ASSERT_EQ(t[i].detail, sigs[i]);
        }
        ASSERT_EQ(t[i].runs, 1);
    }
    /* and a Ctrl-C sent to every worker from outside while tasks run
     * (once the crashed ones are replaced) */
    pid_t workers[4];
    ASSERT(pool_wait_pids(pool, 2, 5.0));
    ASSERT_EQ(pool_pids(pool, workers, 4), 2);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    _Atomic uint32_t *started = CREW_ARENA_PTR(a, _Atomic uint32_t,
                                               CREW_ARENA_NEW(a, _Atomic uint32_t));
    ASSERT_NOT_NULL(started);
    life_arg slow = {T_SPIN_MS, 300, started};
    int res[2];
    for (int i = 0; i < 2; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &slow, .arg_size = sizeof slow,
                           .result = &res[i], .result_size = sizeof res[i]};
    fflush(NULL);
    pid_t child = fork(); /* the caller is busy in crew_run: a helper sends it */
    ASSERT_GE(child, 0);
    if (child == 0) {
        double until = test_now_s() + 10.0;
        while (atomic_load(started) < 2 && test_now_s() < until)
            usleep(1000);
        for (int i = 0; i < 2; i++)
            kill(workers[i], SIGINT);
        _exit(atomic_load(started) == 2 ? 0 : 1);
    }
    ASSERT_OK(crew_run(pool, NULL, t, 2, NULL));
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 2; i++)
        ASSERT(has_pid(workers, 2, res[i]));
    /* a terminal's Ctrl-C reaches the supervisor too: the pool lives on */
    pid_t sup = pool_supervisor(pool);
    ASSERT_EQ(kill(sup, SIGINT), 0);
    usleep(20000);
    ASSERT_NE(proc_state(sup, NULL), 'Z');
    ASSERT(run_pids(pool, 2, T_PID, 0, res));

    /* A worker killed from outside: its task is a crash by SIGKILL, and
     * the worker is replaced; an idle one killed is replaced too. */
    ASSERT_EQ(kill(workers[0], SIGKILL), 0);
    double until = test_now_s() + 5.0;
    while (proc_state(workers[0], NULL) != 0 && test_now_s() < until)
        usleep(1000);
    ASSERT(pool_wait_pids(pool, 2, 5.0));
    atomic_store(started, 0);
    slow.ms = 5000;
    crew_task one = {.fn = life_task, .arg = &slow, .arg_size = sizeof slow,
                     .result = &res[0], .result_size = sizeof res[0]};
    pid_t now[2];
    ASSERT_EQ(pool_pids(pool, now, 2), 2);
    ASSERT(!has_pid(now, 2, workers[0]));
    fflush(NULL);
    child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        /* which worker took the task is unknown here: kill both, the
         * busy one and an idle one, once the task has started */
        double end = test_now_s() + 10.0;
        while (atomic_load(started) < 1 && test_now_s() < end)
            usleep(1000);
        kill(now[0], SIGKILL);
        kill(now[1], SIGKILL);
        _exit(0);
    }
    test_watchdog_step(&wd, "worker killed from outside");
    ASSERT_EQ(crew_run(pool, NULL, &one, 1, NULL), CREW_EFAILED);
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_EQ(one.status, CREW_ECRASHED);
    ASSERT_EQ(one.detail, SIGKILL);
    ASSERT_EQ(one.runs, 1);
    ASSERT(pool_wait_pids(pool, 2, 5.0));
    int pids[20];
    ASSERT(run_pids(pool, 20, T_PID, 0, pids));
    /* The signals above, the idle kill and these two.  A worker killed from
     * outside may still show as alive for a moment (SIGKILL lands when it
     * is next scheduled), and its restart is counted when the supervisor
     * has buried it: wait for the count, then check it is exact. */
    const uint64_t deaths = N - 2 + 1 + 2;
    crew_worker_stats st[2];
    double end = test_now_s() + 5.0;
    do {
        ASSERT_EQ(crew_stats(pool, st, 2), 2);
        if (st[0].restarts + st[1].restarts >= deaths)
            break;
        usleep(1000);
    } while (test_now_s() < end);
    ASSERT_UEQ(st[0].restarts + st[1].restarts, deaths);
    crew_arena_close(a);
    crew_close(pool);
}

/* ---- nothing left behind ------------------------------------------------------------ */

static void test_no_leftovers(void)
{
    proc_snapshot before = proc_take_snapshot();
    ASSERT_EQ(before.children, 0);
    pid_t seen[64];
    size_t n_seen = 0;

    crew *pool = test_proc_pool(3, 0.3, 0, 1);
    pid_t sup = pool_supervisor(pool);
    n_seen = pool_pids(pool, seen, 64);
    /* crashes, a timeout and an exit replace workers; resizes add and retire some */
    life_arg kinds[4] = {{T_SEGV, 0, NULL}, {T_HANG, 0, NULL}, {T_EXIT, 0, NULL},
                         {T_PID, 0, NULL}};
    int res[40];
    crew_task t[40];
    for (int i = 0; i < 40; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &kinds[i % 7 == 0 ? 0 : i == 13 ? 1
                                                          : i == 20 ? 2 : 3],
                           .arg_size = sizeof kinds[0], .result = &res[i],
                           .result_size = sizeof res[i]};
    test_watchdog_step(&wd, "leftovers: run with failures");
    ASSERT_EQ(crew_run(pool, NULL, t, 40, NULL), CREW_EFAILED);
    for (int i = 0; i < 40; i++) {
        int want = i % 7 == 0 ? CREW_ECRASHED : i == 13 ? CREW_ETIMEDOUT
                 : i == 20 ? CREW_EEXITED : 0;
        ASSERT_EQ(t[i].status, want);
    }
    n_seen += pool_pids(pool, seen + n_seen, 64 - n_seen);
    ASSERT_OK(crew_resize(pool, 5));
    ASSERT(pool_wait_pids(pool, 5, 5.0));
    n_seen += pool_pids(pool, seen + n_seen, 64 - n_seen);
    ASSERT_OK(crew_resize(pool, 2));
    int pids[50];
    ASSERT(run_pids(pool, 50, T_PID, 0, pids));
    test_watchdog_step(&wd, "leftovers: crew_close");
    crew_close(pool);

    proc_snapshot after = proc_take_snapshot();
    proc_same_snapshot(&before, &after, "after crew_close");
    /* no zombie either: we have no child at all to wait for */
    errno = 0;
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1);
    ASSERT_EQ(errno, ECHILD);
    ASSERT_EQ(proc_state(sup, NULL), 0);
    for (size_t i = 0; i < n_seen; i++)
        if (!proc_gone(seen[i]))
            TEST_FAIL_("worker %d still there after crew_close", (int)seen[i]);

    /* and a pool that never ran anything */
    before = proc_take_snapshot();
    pool = test_proc_pool(2, 0, 0, 0);
    crew_close(pool);
    after = proc_take_snapshot();
    proc_same_snapshot(&before, &after, "open and close");
    ASSERT_EQ(waitpid(-1, NULL, WNOHANG), -1);
}

/* ---- the caller killed ---------------------------------------------------------------- */

typedef struct kill_report {
    int rc;
    int n;
    pid_t pids[4];
    pid_t sup;
    pid_t holder;
} kill_report;

/* The doomed caller's report from the pipe: its pool opened with two
 * workers and a supervisor. */
static kill_report read_report(int fd, const char *step)
{
    kill_report rep;
    test_watchdog_step(&wd, step);
    ASSERT_EQ(read(fd, &rep, sizeof rep), sizeof rep);
    close(fd);
    ASSERT_OK(rep.rc);
    ASSERT_EQ(rep.n, 2);
    ASSERT_GT(rep.sup, 0);
    return rep;
}

/* In a child of the test: open a pool, say who its processes are, run
 * tasks that would last half a minute.  Single-threaded on purpose: a
 * fork of a threaded process may not start threads under ThreadSanitizer.
 * It also forks a child of its own that outlives it (the test ends it),
 * holding a copy of each of its fds: that the caller is gone must then be
 * seen from the caller itself, not from a descriptor only it held. */
/* In a doomed caller: open a pool of two workers and note its processes. */
static crew *open_reported(kill_report *rep)
{
    crew *pool = NULL;
    rep->rc = crew_open(&pool, &(crew_config){.workers = 2, .isolation = CREW_PROCESSES});
    if (rep->rc == 0) {
        rep->n = (int)pool_pids(pool, rep->pids, 4);
        pid_t parent = 0;
        rep->sup = rep->n > 0 && proc_state(rep->pids[0], &parent) ? parent : 0;
    }
    return pool;
}

static _Noreturn void doomed_caller(int fd, _Atomic uint32_t *started)
{
    kill_report rep = {0};
    crew *pool = open_reported(&rep);
    if (rep.rc == 0) {
        rep.holder = fork();
        if (rep.holder == 0) {
            close(fd);
            for (int i = 0; i < 60000; i++) /* a minute at most, should the test fail */
                usleep(1000);
            _exit(0);
        }
        if (rep.holder < 0)
            rep.rc = -errno;
    }
    if (write(fd, &rep, sizeof rep) != sizeof rep || rep.rc != 0)
        _exit(2);
    life_arg a = {T_SPIN_MS, 30000, started};
    crew_task t[4];
    int res[4];
    for (int i = 0; i < 4; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &a, .arg_size = sizeof a, .result = &res[i],
                           .result_size = sizeof res[i]};
    crew_run(pool, NULL, t, 4, NULL);
    _exit(3); /* the test kills us long before */
}

/* The caller's process ends by `sig` (SIGKILL, or SIGTERM / SIGINT left at
 * their default action) while both workers run a task: within a second
 * neither they nor the supervisor are left. */
static void test_caller_killed(int sig)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20)); /* the child and its workers share it */
    _Atomic uint32_t *started = CREW_ARENA_PTR(a, _Atomic uint32_t,
                                               CREW_ARENA_NEW(a, _Atomic uint32_t));
    ASSERT_NOT_NULL(started);
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(NULL);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(pipefd[0]);
        doomed_caller(pipefd[1], started);
    }
    close(pipefd[1]);
    kill_report rep = read_report(pipefd[0], "caller killed: report");
    pid_t parent = 0;
    ASSERT_NE(proc_state(rep.sup, &parent), 0);
    ASSERT_EQ(parent, child);
    /* kill it while both workers are inside a task */
    double until = test_now_s() + 10.0;
    while (atomic_load(started) < 2 && test_now_s() < until)
        usleep(1000);
    ASSERT_EQ(atomic_load(started), 2);
    test_watchdog_step(&wd, "caller killed: processes gone");
    ASSERT_EQ(kill(child, sig), 0);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == sig);
    double t0 = test_now_s();
    pid_t all[5] = {rep.sup, rep.pids[0], rep.pids[1]};
    for (;;) {
        int left = 0;
        for (int i = 0; i < 3; i++)
            left += !proc_gone(all[i]);
        if (left == 0)
            break;
        if (test_now_s() - t0 > 1.0) {
            for (int i = 0; i < 3; i++)
                if (!proc_gone(all[i]))
                    fprintf(stderr, "pid %d (%s) state %c\n", (int)all[i],
                            i ? "worker" : "supervisor", proc_state(all[i], NULL));
            kill(rep.holder, SIGKILL);
            TEST_FAIL_("%d processes of a pool whose caller died of signal %d still run after 1 s",
                       left, sig);
        }
        usleep(1000);
    }
    printf("caller killed by signal %d: its pool's processes were gone after %.0f ms\n", sig,
           (test_now_s() - t0) * 1000);
    ASSERT_NE(proc_state(rep.holder, NULL), 0); /* it outlived the caller, as meant */
    kill(rep.holder, SIGKILL);
    crew_arena_close(a);
}

/* ---- the supervisor killed -------------------------------------------------------------- */

/* Wait until the supervisor (our child) has died, leaving it for
 * crew_close to reap. */
static void wait_dead_unreaped(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    ASSERT_EQ(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    ASSERT_EQ(si.si_pid, pid);
}

static void noop_body(void *ctx, size_t lo, size_t hi)
{
    (void)ctx;
    (void)lo;
    (void)hi;
}

static void r_init(void *ctx, void *acc)
{
    (void)ctx;
    *(int *)acc = 0;
}

static void r_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    *(int *)acc += (int)(hi - lo);
}

static void r_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    *(int *)acc += *(const int *)other;
}

/* Kills the supervisor once both workers have started a task. */
typedef struct killer {
    _Atomic uint32_t *started;
    pid_t sup;
    double killed_at;
} killer;

static void *kill_when_busy(void *arg)
{
    killer *k = arg;
    double until = test_now_s() + 10.0;
    while (atomic_load(k->started) < 2 && test_now_s() < until)
        usleep(1000);
    k->killed_at = test_now_s();
    kill(k->sup, SIGKILL);
    return NULL;
}

static void test_supervisor_killed(void)
{
    static const crew_reducer count = {sizeof(int), r_init, r_body, r_combine};
    proc_snapshot before = proc_take_snapshot();

    /* between calls */
    crew *pool = test_proc_pool(2, 0, 0, 0);
    int pids[100];
    ASSERT(run_pids(pool, 100, T_PID, 0, pids));
    pid_t workers[4];
    ASSERT_EQ(pool_pids(pool, workers, 4), 2);
    pid_t sup = pool_supervisor(pool);
    pid_t parent = 0;
    ASSERT_NE(proc_state(sup, &parent), 0);
    ASSERT_EQ(parent, getpid());
    ASSERT_EQ(kill(sup, SIGKILL), 0);
    wait_dead_unreaped(sup);
    test_watchdog_step(&wd, "supervisor killed: crew_run");
    life_arg a = {T_PID, 0, NULL};
    crew_task t[100];
    /* outcomes of an earlier use of these tasks, which the call must clear */
    for (int i = 0; i < 100; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &a, .arg_size = sizeof a, .result = &pids[i],
                           .result_size = sizeof pids[i], .status = 12345, .detail = 9,
                           .runs = 77, .fault_addr = 0x1000, .fault_offset = 16};
    double t0 = test_now_s();
    ASSERT_EQ(crew_run(pool, NULL, t, 100, NULL), CREW_ELOST);
    double took = test_now_s() - t0;
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(t[i].status, CREW_ELOST);
        ASSERT_EQ(t[i].runs, 0);
        ASSERT_EQ(t[i].detail, 0);
        ASSERT_UEQ(t[i].fault_addr, 0);
        ASSERT_UEQ(t[i].fault_offset, 0);
    }
    /* At once, not after the tasks' would-be time or a timeout (a loaded
     * machine may add a little; a hang is the watchdog's). */
    if (took > 2.0)
        TEST_FAIL_("crew_run on a pool whose supervisor died took %.2f s", took);
    /* and every later call says so too */
    ASSERT_EQ(crew_run(pool, NULL, t, 100, NULL), CREW_ELOST);
    ASSERT_EQ(crew_for(pool, 0, 1000, 0, noop_body, NULL), CREW_ELOST);
    int out = -1;
    ASSERT_EQ(crew_reduce(pool, 0, 1000, 10, &count, NULL, &out), CREW_ELOST);
    ASSERT_EQ(out, -1);
    ASSERT_EQ(crew_resize(pool, 3), CREW_ELOST);
    /* the workers died with their supervisor */
    double until = test_now_s() + 1.0;
    while ((!proc_gone(workers[0]) || !proc_gone(workers[1])) && test_now_s() < until)
        usleep(1000);
    ASSERT(proc_gone(workers[0]) && proc_gone(workers[1]));
    test_watchdog_step(&wd, "supervisor killed: crew_close");
    t0 = test_now_s();
    crew_close(pool);
    ASSERT_LT(test_now_s() - t0, 3.0);
    proc_snapshot after = proc_take_snapshot();
    proc_same_snapshot(&before, &after, "supervisor killed between calls");

    /* during a call, while both workers are inside a task of 30 s */
    crew_arena *ar;
    ASSERT_OK(crew_arena_create(&ar, 1 << 20));
    before = proc_take_snapshot();
    pool = test_proc_pool(2, 0, 0, 0);
    killer k = {.sup = pool_supervisor(pool)};
    k.started = CREW_ARENA_PTR(ar, _Atomic uint32_t, CREW_ARENA_NEW(ar, _Atomic uint32_t));
    ASSERT_NOT_NULL(k.started);
    ASSERT_EQ(pool_pids(pool, workers, 4), 2);
    life_arg slow = {T_SPIN_MS, 30000, k.started};
    for (int i = 0; i < 10; i++)
        t[i] = (crew_task){.fn = life_task, .arg = &slow, .arg_size = sizeof slow,
                           .result = &pids[i], .result_size = sizeof pids[i], .status = 12345};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, kill_when_busy, &k), 0);
    test_watchdog_step(&wd, "supervisor killed during a call");
    ASSERT_EQ(crew_run(pool, NULL, t, 10, NULL), CREW_ELOST);
    double end = test_now_s();
    ASSERT_EQ(pthread_join(th, NULL), 0);
    ASSERT_EQ(atomic_load(k.started), 2);
    if (end - k.killed_at > 0.5)
        TEST_FAIL_("crew_run returned %.2f s after its supervisor was killed", end - k.killed_at);
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(t[i].status, CREW_ELOST);
    until = test_now_s() + 1.0;
    while ((!proc_gone(workers[0]) || !proc_gone(workers[1])) && test_now_s() < until)
        usleep(1000);
    ASSERT(proc_gone(workers[0]) && proc_gone(workers[1]));
    crew_close(pool);
    after = proc_take_snapshot();
    proc_same_snapshot(&before, &after, "supervisor killed during a call");
    crew_arena_close(ar);
}

/* ---- workers that die before doing anything -------------------------------------- */

/*
 * A slot whose workers keep dying before they take any work would be
 * refilled for ever: the pool gives up (CREW_ELOST) instead, and calls
 * say so.  Here every new worker is killed as soon as it shows, with no
 * call running.
 */
static void test_workers_keep_dying(void)
{
    proc_snapshot before = proc_take_snapshot();
    crew *pool = test_proc_pool(1, 0, 0, 0);
    pid_t last = 0;
    int kills = 0;
    test_watchdog_step(&wd, "workers keep dying");
    while (kills < 1000 && crew_resize(pool, 1) == 0) {
        pid_t now = 0;
        double until = test_now_s() + 5.0;
        while (test_now_s() < until) {
            if (pool_pids(pool, &now, 1) == 1 && now != last && proc_state(now, NULL) != 0)
                break;
            now = 0;
            if (crew_resize(pool, 1) != 0)
                break;
            usleep(200);
        }
        if (now == 0)
            continue; /* lost meanwhile, or no new worker: the loop condition decides */
        ASSERT_EQ(kill(now, SIGKILL), 0);
        last = now;
        kills++;
    }
    if (crew_resize(pool, 1) != CREW_ELOST)
        TEST_FAIL_("%d workers killed before they took any work, and the pool goes on", kills);
    printf("workers keep dying: the pool gave up after %d deaths\n", kills);
    life_arg a = {T_PID, 0, NULL};
    int pid = 0;
    crew_task t = {.fn = life_task, .arg = &a, .arg_size = sizeof a, .result = &pid,
                   .result_size = sizeof pid};
    ASSERT_EQ(crew_run(pool, NULL, &t, 1, NULL), CREW_ELOST);
    ASSERT_EQ(t.status, CREW_ELOST);
    crew_close(pool);
    proc_snapshot after = proc_take_snapshot();
    proc_same_snapshot(&before, &after, "workers kept dying");
}

/* ---- the caller execs ---------------------------------------------------------------- */

/*
 * A caller that calls exec has lost its pool (its memory is gone), yet
 * its process lives on: the supervisor and the workers must notice and
 * end.  In a child of the test, which reports its pool's processes and
 * then becomes `sleep`.
 */
static void test_caller_execs(void)
{
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    fflush(NULL);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        close(pipefd[0]);
        kill_report rep = {0};
        (void)open_reported(&rep); /* left open: exec must end it */
        if (write(pipefd[1], &rep, sizeof rep) != sizeof rep || rep.rc != 0)
            _exit(2);
        close(pipefd[1]);
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(3);
    }
    close(pipefd[1]);
    kill_report rep = read_report(pipefd[0], "caller execs: report");
    test_watchdog_step(&wd, "caller execs: processes gone");
    pid_t all[3] = {rep.sup, rep.pids[0], rep.pids[1]};
    /* promptly, in fact; the limit only keeps a failing test from hanging */
    double t0 = test_now_s();
    int left = 3;
    while (left && test_now_s() - t0 < 20.0) {
        left = 0;
        for (int i = 0; i < 3; i++)
            left += !proc_gone(all[i]);
        usleep(1000);
    }
    /* the child still runs (as sleep), which is the point */
    pid_t parent = 0;
    char state = proc_state(child, &parent);
    kill(child, SIGKILL);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(state != 0 && state != 'Z');
    if (left)
        TEST_FAIL_("%d processes of a pool whose caller called exec still run after 20 s", left);
}

/* ---- crew_close in a forked child ------------------------------------------------------ */

/*
 * A process forked from the caller (an atexit handler of the child, say)
 * may call crew_close on its copy of the pool: that frees the copy only,
 * and the caller's pool goes on with the same processes.
 */
static void test_close_in_child(void)
{
    crew *pool = test_proc_pool(2, 0, 0, 0);
    int pids[20];
    ASSERT(run_pids(pool, 20, T_PID, 0, pids));
    pid_t sup = pool_supervisor(pool), before[2];
    ASSERT_EQ(pool_pids(pool, before, 2), 2);
    fflush(NULL);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        crew_close(pool);
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    test_watchdog_step(&wd, "crew_close in a child");
    ASSERT(run_pids(pool, 20, T_PID, 0, pids));
    pid_t after[2];
    ASSERT_EQ(pool_pids(pool, after, 2), 2);
    ASSERT_EQ(pool_supervisor(pool), sup);
    for (int i = 0; i < 2; i++) {
        ASSERT(has_pid(before, 2, after[i]));
        ASSERT(proc_state(after[i], NULL) != 0);
    }
    crew_close(pool);
}

int main(void)
{
    (void)test_forbidden_page(); /* before any crew_open */
    test_watchdog_start(&wd, 30, "open validation", test_hung);
    test_open_validation();
    test_watchdog_step(&wd, "resize");
    test_resize();
    test_signals();
    test_watchdog_step(&wd, "no leftovers");
    test_no_leftovers();
    test_watchdog_step(&wd, "caller killed");
    test_caller_killed(SIGKILL);
    test_caller_killed(SIGTERM);
    test_caller_killed(SIGINT);
    test_watchdog_step(&wd, "supervisor killed");
    test_supervisor_killed();
    test_resize_from_task();
    test_workers_keep_dying();
    test_caller_execs();
    test_close_in_child();
    test_watchdog_stop(&wd);
    printf("test_proc_life: ok\n");
    return 0;
}
