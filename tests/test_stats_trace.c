/*
 * Description: crew_stats counters and the Chrome trace.
 *
 * crew_stats reports every worker the pool ever had and fills no more than
 * asked; jobs count at least the tasks run; a join whose halves must run
 * at the same time proves a steal; idle workers count their sleeps.  With
 * crew_config.trace_path, or CREW_TRACE in the environment, crew_close
 * writes valid JSON holding at least one event per task run.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

static int soft_failures;

#define SOFT_FAIL(...)                                                       \
    do {                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        soft_failures++;                                                     \
    } while (0)

/* ---- workloads ------------------------------------------------------------ */

static int small_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    volatile unsigned x = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 500; i++)
        x = x * 33 + 1;
    return 0;
}

static void run_tasks(crew *pool, size_t n)
{
    crew_task *t = calloc(n, sizeof *t);
    ASSERT_NOT_NULL(t);
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = small_task, .arg = (void *)(uintptr_t)i};
    ASSERT_OK(crew_run(pool, NULL, t, n, NULL));
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(t[i].status, 0);
    free(t);
}

/* With let_pool_run, wait by polling, so that the pool's threads (not the
 * waiting thread, which would claim a future nobody started) run them all. */
static void run_futures(crew *pool, size_t n, bool let_pool_run)
{
    crew_task *t = calloc(n, sizeof *t);
    crew_future **f = calloc(n, sizeof *f);
    ASSERT(t && f);
    for (size_t i = 0; i < n; i++) {
        t[i] = (crew_task){.fn = small_task};
        ASSERT_OK(crew_submit(pool, NULL, &t[i], &f[i]));
    }
    for (size_t i = 0; i < n; i++) {
        while (let_pool_run && !crew_future_done(f[i]))
            sched_yield();
        ASSERT_EQ(crew_future_wait(f[i]), 0);
        crew_future_free(f[i]);
    }
    free(t);
    free(f);
}

static void nop_range(void *ctx, size_t lo, size_t hi)
{
    atomic_fetch_add((atomic_size_t *)ctx, hi - lo);
}

/* Both halves wait until the other one has started: they can only finish
 * if they run at the same time, on two threads. */
typedef struct rendezvous {
    atomic_int started;
    atomic_int timed_out;
} rendezvous;

static void meet(void *arg)
{
    rendezvous *r = arg;
    atomic_fetch_add(&r->started, 1);
    double until = test_now_s() + 10;
    while (atomic_load(&r->started) < 2)
        if (test_now_s() > until) {
            atomic_store(&r->timed_out, 1);
            return;
        }
}

typedef struct totals {
    uint64_t jobs, steals, sleeps, busy_ns;
} totals;

static totals sum_stats(crew *pool)
{
    crew_worker_stats st[64];
    size_t n = crew_stats(pool, st, 64);
    totals t = {0};
    for (size_t i = 0; i < n && i < 64; i++) {
        t.jobs += st[i].jobs;
        t.steals += st[i].steals;
        t.sleeps += st[i].sleeps;
        t.busy_ns += st[i].busy_ns;
    }
    return t;
}

/* ---- stats ------------------------------------------------------------------ */

static void test_stats_shape(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 3}));
    ASSERT_EQ(crew_stats(pool, NULL, 0), 3);
    crew_worker_stats st[8];
    memset(st, 0xA5, sizeof st);
    ASSERT_EQ(crew_stats(pool, st, 8), 3);
    unsigned char pattern[sizeof st[0]];
    memset(pattern, 0xA5, sizeof pattern);
    for (int i = 3; i < 8; i++)
        ASSERT(memcmp(&st[i], pattern, sizeof pattern) == 0);
    memset(st, 0xA5, sizeof st);
    ASSERT_EQ(crew_stats(pool, st, 1), 3);
    ASSERT(memcmp(&st[0], pattern, sizeof pattern) != 0);
    ASSERT(memcmp(&st[1], pattern, sizeof pattern) == 0);
    /* "Ever had": growing counts, shrinking does not forget. */
    ASSERT_OK(crew_resize(pool, 6));
    run_tasks(pool, 100);
    ASSERT_GE(crew_stats(pool, NULL, 0), 6);
    ASSERT_OK(crew_resize(pool, 2));
    ASSERT_GE(crew_stats(pool, NULL, 0), 6);
    crew_close(pool);

    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    ASSERT_EQ(crew_stats(pool, NULL, 0), 1);
    crew_close(pool);
}

static void test_jobs_counted(unsigned workers)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = workers}));
    totals before = sum_stats(pool);
    run_tasks(pool, 500);
    totals after = sum_stats(pool);
    if (after.jobs - before.jobs < 500)
        TEST_FAIL_("workers = %u: %" PRIu64 " jobs counted for 500 crew_run tasks", workers,
                   after.jobs - before.jobs);
    before = after;
    run_futures(pool, 200, false);
    after = sum_stats(pool);
    if (after.jobs - before.jobs < 200)
        SOFT_FAIL("workers = %u: %" PRIu64 " jobs counted for 200 futures", workers,
                  after.jobs - before.jobs);
    ASSERT_GT(after.busy_ns, 0);
    crew_close(pool);
}

static void test_steals_and_sleeps(unsigned workers)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = workers}));
    totals before = sum_stats(pool);
    for (int round = 0; round < 5; round++) {
        rendezvous r = {0};
        crew_join(pool, meet, &r, meet, &r);
        ASSERT_EQ(atomic_load(&r.started), 2);
        if (atomic_load(&r.timed_out))
            TEST_FAIL_("workers = %u: the two halves of a join never ran at the same time",
                       workers);
    }
    totals after = sum_stats(pool);
    if (after.steals - before.steals < 5)
        TEST_FAIL_("workers = %u: %" PRIu64 " steals for 5 joins run on two threads", workers,
                   after.steals - before.steals);
    /* A parallel loop spreads by stealing too. */
    atomic_size_t covered = 0;
    ASSERT_OK(crew_for(pool, 0, 1000000, 0, nop_range, &covered));
    ASSERT_EQ(atomic_load(&covered), 1000000);
    /* Now idle: the workers go to sleep, and count it. */
    double until = test_now_s() + 10;
    while (sum_stats(pool).sleeps == 0 && test_now_s() < until)
        sched_yield();
    if (sum_stats(pool).sleeps == 0)
        TEST_FAIL_("workers = %u: no worker counted a sleep in 10 s of idleness", workers);
    /* busy_ns is up to date when a worker last slept: a thread that ran
     * jobs and then idles shows busy time before crew_close. */
    crew_worker_stats st[64];
    size_t n = crew_stats(pool, st, 64);
    for (size_t i = 1; i < n && i < 64; i++) {
        while (st[i].jobs > 0 && st[i].busy_ns == 0 && test_now_s() < until) {
            sched_yield();
            crew_stats(pool, st, 64);
        }
        if (st[i].jobs > 0 && st[i].busy_ns == 0)
            TEST_FAIL_("workers = %u: worker %zu ran %" PRIu64 " jobs, then idled, yet busy_ns 0",
                       workers, i, st[i].jobs);
    }
    crew_close(pool);
}

/* crew_stats is thread-safe: read while the pool works. */
typedef struct reader {
    crew *pool;
    atomic_int stop;
    atomic_long reads;
} reader;

static void *read_stats(void *arg)
{
    reader *r = arg;
    while (!atomic_load(&r->stop)) {
        crew_worker_stats st[8];
        if (crew_stats(r->pool, st, 8) >= 1)
            atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

static void test_stats_while_running(void)
{
    reader r = {0};
    ASSERT_OK(crew_open(&r.pool, &(crew_config){.workers = 3}));
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, read_stats, &r), 0);
    while (atomic_load(&r.reads) == 0)
        sched_yield();
    for (int i = 0; i < 20; i++) {
        run_tasks(r.pool, 200);
        atomic_size_t covered = 0;
        ASSERT_OK(crew_for(r.pool, 0, 100000, 0, nop_range, &covered));
    }
    atomic_store(&r.stop, 1);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_GT(atomic_load(&r.reads), 0);
    crew_close(r.pool);
}

/* ---- a minimal JSON checker -------------------------------------------------- */

typedef struct json {
    const char *p, *end;
    int depth;
    long top_events;     /* elements of traceEvents (or of a top-level array) */
} json;

static int json_value(json *j, int level, int in_events);

static void json_ws(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int json_string(json *j, const char **start, size_t *len)
{
    if (j->p >= j->end || *j->p != '"')
        return 0;
    const char *s = ++j->p;
    while (j->p < j->end && *j->p != '"') {
        if ((unsigned char)*j->p < 0x20)
            return 0;
        if (*j->p == '\\') {
            j->p++;
            if (j->p >= j->end || !strchr("\"\\/bfnrtu", *j->p))
                return 0;
        }
        j->p++;
    }
    if (j->p >= j->end)
        return 0;
    if (start)
        *start = s;
    if (len)
        *len = (size_t)(j->p - s);
    j->p++;
    return 1;
}

static int json_number(json *j)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    int digits = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++, digits++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        int frac = 0;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++, frac++;
        if (!frac)
            return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        int exp = 0;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++, exp++;
        if (!exp)
            return 0;
    }
    return digits > 0 && j->p > s;
}

static int json_value(json *j, int level, int in_events)
{
    json_ws(j);
    if (j->p >= j->end || level > 64)
        return 0;
    char c = *j->p;
    if (c == '{') {
        j->p++;
        json_ws(j);
        if (j->p < j->end && *j->p == '}')
            return j->p++, 1;
        for (;;) {
            const char *key;
            size_t len;
            json_ws(j);
            if (!json_string(j, &key, &len))
                return 0;
            json_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return 0;
            j->p++;
            int events = level == 0 && len == 11 && memcmp(key, "traceEvents", 11) == 0;
            json_ws(j);
            if (events && (j->p >= j->end || *j->p != '['))
                return 0; /* traceEvents must be an array */
            if (!json_value(j, level + 1, events))
                return 0;
            json_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == '}')
                return j->p++, 1;
            return 0;
        }
    }
    if (c == '[') {
        j->p++;
        json_ws(j);
        if (j->p < j->end && *j->p == ']')
            return j->p++, 1;
        for (;;) {
            if (!json_value(j, level + 1, 0))
                return 0;
            if (in_events || level == 0)
                j->top_events++;
            json_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']')
                return j->p++, 1;
            return 0;
        }
    }
    if (c == '"')
        return json_string(j, NULL, NULL);
    if (c == '-' || (c >= '0' && c <= '9'))
        return json_number(j);
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0)
            return j->p += n, 1;
    }
    return 0;
}

static int json_ok(const char *text)
{
    json j = {text, text + strlen(text), 0, 0};
    int ok = json_value(&j, 0, 0);
    json_ws(&j);
    return ok && j.p == j.end ? (int)j.top_events + 1 : 0;
}

/* The checker itself: accepts what it should, rejects what it should. */
static void test_json_checker(void)
{
    ASSERT_EQ(json_ok("{\"traceEvents\":[{\"ph\":\"X\",\"ts\":1.5,\"a\":[true,null,-2e3]},{}]}"), 3);
    ASSERT_EQ(json_ok("[{\"ph\":\"X\"}, {\"ph\":\"X\"}, {\"ph\":\"X\"}]"), 4);
    ASSERT_EQ(json_ok("{\"traceEvents\":[{\"ph\":\"X\"},]}"), 0);
    ASSERT_EQ(json_ok("{\"traceEvents\":[{\"ph\":\"X\"}]"), 0);
    ASSERT_EQ(json_ok("{\"traceEvents\":{}}"), 0);
    ASSERT_EQ(json_ok("{\"a\":1.}"), 0);
    ASSERT_EQ(json_ok("{\"a\":\"x\ty\"}"), 0);
    ASSERT_EQ(json_ok("{\"a\":1} x"), 0);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ASSERT_NOT_NULL(buf);
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
        ASSERT_NOT_NULL(buf);
    }
    fclose(f);
    *len = n;
    return buf;
}

static size_t count_substr(const char *s, size_t len, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), needle, k)) != NULL; p += k)
        n++;
    return n;
}

/* The file is valid JSON with at least `min_events` complete events. */
static void check_trace(const char *path, long min_events)
{
    size_t len;
    char *text = read_all(path, &len);
    if (!text)
        TEST_FAIL_("trace %s was not written", path);
    json j = {text, text + len, 0, 0};
    int ok = json_value(&j, 0, 0);
    json_ws(&j);
    if (!ok || j.p != j.end)
        TEST_FAIL_("trace %s is not valid JSON near byte %ld", path, (long)(j.p - text));
    const char *first = text;
    while (first < text + len && strchr(" \n\r\t", *first))
        first++;
    if (*first == '{' && !memmem(text, len, "\"traceEvents\"", 13))
        TEST_FAIL_("trace %s: an object without traceEvents", path);
    size_t phases = count_substr(text, len, "\"ph\"");
    size_t complete = count_substr(text, len, "\"ph\":\"X\"") + count_substr(text, len, "\"ph\": \"X\"");
    size_t begins = count_substr(text, len, "\"ph\":\"B\"") + count_substr(text, len, "\"ph\": \"B\"");
    if (j.top_events < min_events || (long)phases < min_events ||
        (long)(complete + begins) < min_events)
        TEST_FAIL_("trace %s: %ld events, %zu with a phase, %zu complete/begin; want >= %ld",
                   path, j.top_events, phases, complete + begins, min_events);
    free(text);
}

/* At least `min` complete events named `name` in the trace at path. */
static void check_named(const char *path, const char *name, size_t min)
{
    size_t len;
    char *text = read_all(path, &len);
    ASSERT_NOT_NULL(text);
    char needle[64];
    snprintf(needle, sizeof needle, "\"name\":\"%s\",\"ph\":\"X\"", name);
    size_t n = count_substr(text, len, needle);
    free(text);
    if (n < min)
        TEST_FAIL_("trace %s: %zu \"%s\" events, want >= %zu", path, n, name, min);
}

/* ---- trace -------------------------------------------------------------- */

static char tmpdir[256];

static void path_in_tmp(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static void fib(crew *pool, unsigned n, unsigned long *out);

typedef struct fib_arg {
    crew *pool;
    unsigned n;
    unsigned long r;
} fib_arg;

static void fib_job(void *arg)
{
    fib_arg *f = arg;
    fib(f->pool, f->n, &f->r);
}

static void fib(crew *pool, unsigned n, unsigned long *out)
{
    if (n < 2) {
        *out = n;
        return;
    }
    fib_arg a = {pool, n - 1, 0}, b = {pool, n - 2, 0};
    crew_join(pool, fib_job, &a, fib_job, &b);
    *out = a.r + b.r;
}

static void test_trace_path(unsigned workers)
{
    char path[512], other[512], buf[512];
    snprintf(path, sizeof path, "%s/trace-%u.json", tmpdir, workers);
    snprintf(other, sizeof other, "%s/other-%u.json", tmpdir, workers);
    snprintf(buf, sizeof buf, "%s", path);
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = workers, .trace_path = buf}));
    /* The string was copied: changing ours changes nothing. */
    snprintf(buf, sizeof buf, "%s", other);
    run_tasks(pool, 300);
    run_futures(pool, 20, crew_workers(pool) > 1);
    atomic_size_t covered = 0;
    ASSERT_OK(crew_for(pool, 0, 100, 1, nop_range, &covered));
    unsigned long r;
    fib(pool, 15, &r);
    ASSERT_EQ(r, 610);
    crew_close(pool);
    check_trace(path, 300);
    /* Every kind the header promises: each task, each top-level call, and
     * (N > 1) each future run by the pool and the outside crew_join. */
    check_named(path, "task", 300);
    check_named(path, "crew_run", 1);
    check_named(path, "crew_for", 1);
    if (workers > 1) {
        check_named(path, "future", 20);
        check_named(path, "crew_join", 1);
    }
    struct stat sb;
    ASSERT(stat(other, &sb) != 0);
    unlink(path);
}

static void test_trace_env(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "env.json");
    ASSERT_EQ(setenv("CREW_TRACE", path, 1), 0);
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));
    ASSERT_EQ(unsetenv("CREW_TRACE"), 0);
    run_tasks(pool, 150);
    crew_close(pool);
    check_trace(path, 150);
    unlink(path);

    /* NULL cfg reads the environment too. */
    ASSERT_EQ(setenv("CREW_TRACE", path, 1), 0);
    ASSERT_OK(crew_open(&pool, NULL));
    ASSERT_EQ(unsetenv("CREW_TRACE"), 0);
    run_tasks(pool, 120);
    crew_close(pool);
    check_trace(path, 120);
    unlink(path);
}

static void test_trace_unwritable(void)
{
    crew *pool;
    int rc = crew_open(&pool, &(crew_config){.workers = 2,
                                             .trace_path = "/nonexistent-dir/x/trace.json"});
    if (rc == 0) {
        run_tasks(pool, 10);
        crew_close(pool); /* cannot write: must not crash */
    } else {
        ASSERT_LT(rc, 0);
    }
}

static void test_no_trace(void)
{
    ASSERT_EQ(unsetenv("CREW_TRACE"), 0);
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));
    run_tasks(pool, 50);
    crew_close(pool);
    DIR *d = opendir(tmpdir);
    ASSERT_NOT_NULL(d);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        files += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    ASSERT_EQ(files, 0);
}

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/crew-trace-XXXXXX", t && *t ? t : "/tmp");
    ASSERT_NOT_NULL(mkdtemp(tmpdir));
    unsetenv("CREW_TRACE");

    test_json_checker();
    test_stats_shape();
    test_jobs_counted(1);
    test_jobs_counted(3);
    test_steals_and_sleeps(2);
    test_steals_and_sleeps(4);
    test_stats_while_running();

    test_no_trace();
    test_trace_path(1);
    test_trace_path(2);
    test_trace_path(4);
    test_trace_env();
    test_trace_unwritable();
    rmdir(tmpdir);
    if (soft_failures)
        return 1;
    printf("test_stats_trace: ok\n");
    return 0;
}
