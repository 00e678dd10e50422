/*
 * Description: crew_open, crew_close, crew_workers, crew_resize and
 * crew_usable_cpus.
 *
 * Pools of many sizes open, work and close; bad arguments give CREW_EINVAL
 * and leave *pool untouched; workers = 0 means min(affinity, cgroup
 * cpu.max); resizing while other threads call crew_for and crew_run keeps
 * every result right; an idle pool does not spin.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

/* ---- what workers = 0 should mean ------------------------------------- */

static unsigned affinity_cpus(void)
{
    for (int ncpu = 1024; ncpu <= (1 << 20); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        size_t size = CPU_ALLOC_SIZE(ncpu);
        ASSERT_NOT_NULL(set);
        if (sched_getaffinity(0, size, set) == 0) {
            int count = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return (unsigned)count;
        }
        CPU_FREE(set);
        ASSERT_EQ(errno, EINVAL);
    }
    TEST_FAIL_("sched_getaffinity failed for every mask size");
}

/*
 * The quota of one cgroup v2 directory's cpu.max as CPUs, rounded down
 * (*lo, at least 1) and up (*hi); 0 when the file is missing or says "max".
 */
static void cpu_max_of(const char *dir, unsigned *lo, unsigned *hi)
{
    char path[4096 + 32];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", dir);
    *lo = *hi = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char quota[64] = "";
    unsigned long long period = 0;
    if (fscanf(f, "%63s %llu", quota, &period) == 2 && strcmp(quota, "max") != 0 && period) {
        unsigned long long q = strtoull(quota, NULL, 10);
        *lo = (unsigned)(q / period ? q / period : 1);
        *hi = (unsigned)((q + period - 1) / period);
    }
    fclose(f);
}

/* Adds v to the set of acceptable answers (no duplicates). */
static void accept(unsigned *set, int *n, unsigned v)
{
    for (int i = 0; i < *n; i++)
        if (set[i] == v)
            return;
    set[(*n)++] = v;
}

/*
 * The answers crew_usable_cpus may give: min(affinity, cpu.max), with the
 * quota rounded down or up, read from the process's own cgroup or as the
 * smallest along its ancestors (the header does not say which).
 */
static int usable_cpu_answers(unsigned *set)
{
    unsigned aff = affinity_cpus();
    int n = 0;
    char cg[4096] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[4200];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                snprintf(cg, sizeof cg, "%.4000s", line + 3);
                cg[strcspn(cg, "\n")] = '\0';
            }
        fclose(f);
    }
    if (strcmp(cg, "/") == 0)
        cg[0] = '\0';
    unsigned leaf_lo, leaf_hi, min_lo = 0, min_hi = 0;
    cpu_max_of(cg, &leaf_lo, &leaf_hi);
    for (char dir[4100];;) {
        unsigned lo, hi;
        snprintf(dir, sizeof dir, "%s", cg);
        cpu_max_of(dir, &lo, &hi);
        if (lo && (!min_lo || lo < min_lo))
            min_lo = lo;
        if (hi && (!min_hi || hi < min_hi))
            min_hi = hi;
        char *slash = strrchr(cg, '/');
        if (!slash || cg[0] == '\0')
            break;
        *slash = '\0';
    }
    unsigned cand[] = {leaf_lo, leaf_hi, min_lo, min_hi};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        accept(set, &n, cand[i] && cand[i] < aff ? cand[i] : aff);
    return n;
}

static void test_usable_cpus(void)
{
    unsigned answers[8];
    int n = usable_cpu_answers(answers);
    unsigned got = crew_usable_cpus();
    int ok = 0;
    for (int i = 0; i < n; i++)
        ok |= got == answers[i];
    if (!ok)
        TEST_FAIL_("crew_usable_cpus() = %u; affinity %u, cgroup-limited answers %u/%u", got,
                   affinity_cpus(), answers[0], answers[n - 1]);
    ASSERT_GE(got, 1);

    crew *pool = NULL;
    ASSERT_OK(crew_open(&pool, NULL));
    ASSERT_NOT_NULL(pool);
    ASSERT_EQ(crew_workers(pool), got);
    crew_close(pool);
    pool = NULL;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 0}));
    ASSERT_EQ(crew_workers(pool), got);
    crew_close(pool);
}

/*
 * In a child restricted to one CPU, workers = 0 means 1.  Runs before the
 * parent calls into crew at all, so an implementation that computes the
 * count once per process is not penalised.
 */
static void test_usable_cpus_follow_affinity(void)
{
    if (affinity_cpus() < 2)
        return;
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        cpu_set_t *all = CPU_ALLOC(1 << 14), *one = CPU_ALLOC(1 << 14);
        size_t size = CPU_ALLOC_SIZE(1 << 14);
        if (sched_getaffinity(0, size, all) != 0)
            _exit(2);
        CPU_ZERO_S(size, one);
        for (int c = 0; c < (1 << 14); c++)
            if (CPU_ISSET_S(c, size, all)) {
                CPU_SET_S(c, size, one);
                break;
            }
        if (sched_setaffinity(0, size, one) != 0)
            _exit(3);
        CPU_FREE(all);
        CPU_FREE(one);
        if (crew_usable_cpus() != 1) {
            fprintf(stderr, "one-CPU affinity: crew_usable_cpus() = %u\n", crew_usable_cpus());
            _exit(4);
        }
        crew *pool;
        if (crew_open(&pool, NULL) != 0)
            _exit(5);
        unsigned w = crew_workers(pool);
        crew_close(pool);
        if (w != 1) {
            fprintf(stderr, "one-CPU affinity: crew_workers() = %u\n", w);
            _exit(6);
        }
        _exit(0);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* ---- small workloads with known answers -------------------------------- */

static void add_range(void *ctx, size_t lo, size_t hi)
{
    unsigned long long s = 0;
    for (size_t i = lo; i < hi; i++)
        s += i;
    atomic_fetch_add((_Atomic unsigned long long *)ctx, s);
}

/* crew_for over [0, n) must sum to n(n-1)/2. */
static int for_sum_ok(crew *pool, size_t n, size_t grain)
{
    _Atomic unsigned long long sum = 0;
    if (crew_for(pool, 0, n, grain, add_range, &sum) != 0)
        return 0;
    return atomic_load(&sum) == (unsigned long long)n * (n - 1) / 2;
}

static int square_task(const void *shared, const void *arg, void *result)
{
    const long *base = shared;
    long x = *(const long *)arg;
    *(long *)result = x * x + *base;
    return 0;
}

/* crew_run of n tasks computing x*x + shared. */
static int run_ok(crew *pool, size_t n)
{
    long base = 7;
    long *args = malloc(n * sizeof *args), *res = calloc(n, sizeof *res);
    crew_task *tasks = calloc(n, sizeof *tasks);
    ASSERT(args && res && tasks);
    for (size_t i = 0; i < n; i++) {
        args[i] = (long)i;
        tasks[i] = (crew_task){.fn = square_task, .arg = &args[i], .arg_size = sizeof(long),
                               .result = &res[i], .result_size = sizeof(long), .status = 99};
    }
    int ok = crew_run(pool, &base, tasks, n, NULL) == 0;
    for (size_t i = 0; i < n; i++)
        ok &= tasks[i].status == 0 && res[i] == (long)(i * i) + base;
    free(args);
    free(res);
    free(tasks);
    return ok;
}

/* ---- open and close ----------------------------------------------------- */

static void test_sizes(void)
{
    static const unsigned sizes[] = {1, 2, 5, 10, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        crew *pool = NULL;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[i]}));
        ASSERT_NOT_NULL(pool);
        ASSERT_EQ(crew_workers(pool), sizes[i]);
        ASSERT(for_sum_ok(pool, 100000, 0));
        ASSERT(for_sum_ok(pool, 1000, 1));
        ASSERT(run_ok(pool, 500));
        ASSERT_EQ(crew_workers(pool), sizes[i]);
        crew_close(pool);
    }
}

static void test_bad_open(void)
{
    static char dummy;
    crew *const sentinel = (crew *)(void *)&dummy;
    static const unsigned bad[] = {CREW_MAX_WORKERS + 1, CREW_MAX_WORKERS * 2, UINT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        crew *pool = sentinel;
        ASSERT_EQ(crew_open(&pool, &(crew_config){.workers = bad[i]}), CREW_EINVAL);
        ASSERT_PTR_EQ(pool, sentinel);
    }
    static const size_t bad_stack[] = {1, CREW_MIN_STACK - 1, CREW_MAX_STACK + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_stack / sizeof bad_stack[0]; i++) {
        crew *pool = sentinel;
        ASSERT_EQ(crew_open(&pool, &(crew_config){.workers = 2, .stack_size = bad_stack[i]}),
                  CREW_EINVAL);
        ASSERT_PTR_EQ(pool, sentinel);
    }
    ASSERT_EQ(crew_open(NULL, NULL), CREW_EINVAL);
    ASSERT_EQ(crew_open(NULL, &(crew_config){.workers = 2}), CREW_EINVAL);
    crew_close(NULL);
}

/* A worker's stack is the size asked for, or CREW_DEFAULT_STACK: a future
 * (which runs on a pool thread unless its waiter claims it, so we poll
 * instead of waiting) measures the stack of the thread it runs on. */
static int stack_of_thread(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    pthread_attr_t attr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 1;
    int rc = pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
    *(size_t *)result = size;
    return rc == 0 ? 0 : 2;
}

static void test_stack_size(void)
{
    static const size_t asked[] = {0, CREW_MIN_STACK, (size_t)3 << 20, (size_t)128 << 20};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2, .stack_size = asked[i]}));
        size_t size = 0;
        crew_task t = {.fn = stack_of_thread, .result = &size};
        crew_future *f;
        ASSERT_OK(crew_submit(pool, NULL, &t, &f));
        while (!crew_future_done(f))
            sched_yield();
        ASSERT_EQ(crew_future_wait(f), 0);
        crew_future_free(f);
        size_t want = asked[i] ? asked[i] : CREW_DEFAULT_STACK;
        /* glibc may round up to whole pages; never gives less. */
        ASSERT_GE(size, want);
        ASSERT_LT(size, want + (size_t)(1 << 20));
        crew_close(pool);
    }
}

static void test_cycles(void)
{
    int cycles = TEST_SANITIZED ? 60 : 300;
    for (int i = 0; i < cycles; i++) {
        crew *pool;
        unsigned w = (unsigned)(i % 8) + 1;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = w}));
        if (i % 2)
            ASSERT(for_sum_ok(pool, 5000, 0));
        if (i % 3 == 0)
            ASSERT(run_ok(pool, 20));
        crew_close(pool);
    }
    /* Opening many pools at once and closing them in another order. */
    crew *pools[16];
    for (int i = 0; i < 16; i++)
        ASSERT_OK(crew_open(&pools[i], &(crew_config){.workers = 2}));
    for (int i = 0; i < 16; i++)
        ASSERT(for_sum_ok(pools[(i * 7) % 16], 1000, 0));
    for (int i = 15; i >= 0; i--)
        crew_close(pools[(i * 5) % 16]);
}

/* ---- resize ------------------------------------------------------------- */

typedef struct resize_load {
    crew *pool;
    atomic_int stop;
    atomic_long rounds;
    atomic_int failures;
} resize_load;

/* An outside thread that keeps calling crew_for and crew_run. */
static void *keep_busy(void *arg)
{
    resize_load *load = arg;
    while (!atomic_load(&load->stop)) {
        if (!for_sum_ok(load->pool, 20000, 0) || !for_sum_ok(load->pool, 300, 1) ||
            !run_ok(load->pool, 64))
            atomic_fetch_add(&load->failures, 1);
        atomic_fetch_add(&load->rounds, 1);
    }
    return NULL;
}

static void wait_rounds(resize_load *load, long more)
{
    long target = atomic_load(&load->rounds) + more;
    while (atomic_load(&load->rounds) < target)
        sched_yield();
}

static void test_resize_under_load(void)
{
    resize_load load = {0};
    ASSERT_OK(crew_open(&load.pool, &(crew_config){.workers = 2}));
    pthread_t busy[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&busy[i], NULL, keep_busy, &load), 0);
    static const unsigned sizes[] = {1, 3, 8, 2, 5, 1, 4, 16, 2};
    unsigned most = 2;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ASSERT_OK(crew_resize(load.pool, sizes[i]));
        ASSERT_EQ(crew_workers(load.pool), sizes[i]);
        most = sizes[i] > most ? sizes[i] : most;
        /* The main thread works with the new size too. */
        ASSERT(for_sum_ok(load.pool, 50000, 0));
        wait_rounds(&load, 2);
        ASSERT_EQ(crew_workers(load.pool), sizes[i]);
    }
    atomic_store(&load.stop, 1);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_join(busy[i], NULL), 0);
    ASSERT_EQ(atomic_load(&load.failures), 0);
    /* crew_stats counts every worker the pool has ever had. */
    ASSERT_GE(crew_stats(load.pool, NULL, 0), most);
    crew_close(load.pool);
}

static void test_resize_bad(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 3}));
    ASSERT_EQ(crew_resize(pool, 0), CREW_EINVAL);
    ASSERT_EQ(crew_resize(pool, CREW_MAX_WORKERS + 1), CREW_EINVAL);
    ASSERT_EQ(crew_resize(pool, UINT_MAX), CREW_EINVAL);
    ASSERT_EQ(crew_resize(NULL, 2), CREW_EINVAL);
    ASSERT_EQ(crew_workers(pool), 3);
    ASSERT(for_sum_ok(pool, 10000, 0));
    /* Down to one worker and back: the pool keeps working. */
    ASSERT_OK(crew_resize(pool, 1));
    ASSERT_EQ(crew_workers(pool), 1);
    ASSERT(for_sum_ok(pool, 10000, 0));
    ASSERT(run_ok(pool, 100));
    ASSERT_OK(crew_resize(pool, 4));
    ASSERT_EQ(crew_workers(pool), 4);
    ASSERT(for_sum_ok(pool, 10000, 7));
    ASSERT_OK(crew_resize(pool, 4));
    ASSERT_EQ(crew_workers(pool), 4);
    crew_close(pool);

    /* A one-worker pool (no threads) grows and shrinks too. */
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    ASSERT_OK(crew_resize(pool, 3));
    ASSERT_EQ(crew_workers(pool), 3);
    ASSERT(for_sum_ok(pool, 100000, 0));
    ASSERT_OK(crew_resize(pool, 1));
    ASSERT(for_sum_ok(pool, 100000, 0));
    crew_close(pool);
}

/* crew_resize from inside a task. */
static int resize_task(const void *shared, const void *arg, void *result)
{
    (void)result;
    crew *pool = (crew *)shared;
    return -crew_resize(pool, *(const unsigned *)arg); /* status = EINVAL-as-positive on error */
}

static void test_resize_from_task(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));
    unsigned to[3] = {5, 1, 3};
    crew_task tasks[3];
    for (int i = 0; i < 3; i++)
        tasks[i] = (crew_task){.fn = resize_task, .arg = &to[i]};
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(crew_run(pool, pool, &tasks[i], 1, NULL));
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_EQ(crew_workers(pool), to[i]);
        ASSERT(for_sum_ok(pool, 30000, 0));
    }
    crew_close(pool);
}

/* ---- an idle pool sleeps ------------------------------------------------ */

static long cpu_us(void)
{
    struct rusage ru;
    ASSERT_EQ(getrusage(RUSAGE_SELF, &ru), 0);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static void test_idle_no_spin(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 4}));
    for (int round = 0; round < 2; round++) {
        /* Wake every worker, then leave the pool alone. */
        ASSERT(for_sum_ok(pool, 200000, 1000));
        ASSERT(run_ok(pool, 100));
        long before = cpu_us();
        struct timespec ts = {0, 300 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0)
            ;
        long used = cpu_us() - before;
        /* Four spinning workers would burn ~600 ms of CPU here. */
        if (used > 30000)
            TEST_FAIL_("idle 4-worker pool used %ld us of CPU in 300 ms", used);
    }
    crew_close(pool);
}

int main(void)
{
    test_usable_cpus_follow_affinity();
    test_usable_cpus();
    test_bad_open();
    test_stack_size();
    test_sizes();
    test_cycles();
    test_resize_bad();
    test_resize_from_task();
    test_resize_under_load();
    test_idle_no_spin();
    printf("test_pool: ok\n");
    return 0;
}
