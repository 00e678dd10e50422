/*
 * test_oom.c -- out of memory and "cannot start a thread" are reported.
 *
 * The library allocates and starts threads through the crew__sys table;
 * here its entries fail on the k-th call, for every k until the operation
 * succeeds, and each failure must come back as the documented error code,
 * with out-parameters untouched, no leak (ASan) and the library still
 * usable afterwards.
 */
#include <pthread.h>
#include <stdlib.h>

#include "crew.h"
#include "internal.h"
#include "test.h"

static int calls_left; /* fail when it reaches 0; < 0: never */

static bool should_fail(void)
{
    return calls_left >= 0 && calls_left-- == 0;
}

static void *fail_malloc(size_t n) { return should_fail() ? NULL : malloc(n); }
static void *fail_calloc(size_t n, size_t s) { return should_fail() ? NULL : calloc(n, s); }
static void *fail_aligned_alloc(size_t a, size_t n)
{
    return should_fail() ? NULL : aligned_alloc(a, n);
}
static int fail_thread_create(pthread_t *t, size_t stack, void *(*fn)(void *), void *arg)
{
    (void)stack;
    return should_fail() ? EAGAIN : pthread_create(t, NULL, fn, arg);
}

static void install(void)
{
    crew__sys.malloc = fail_malloc;
    crew__sys.calloc = fail_calloc;
    crew__sys.aligned_alloc = fail_aligned_alloc;
    crew__sys.thread_create = fail_thread_create;
}

typedef struct big {
    double v[40]; /* larger than the inline accumulator: forces allocations */
} big;

static void big_init(void *ctx, void *acc)
{
    (void)ctx;
    *(big *)acc = (big){{0}};
}
static void big_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    for (size_t i = lo; i < hi; i++)
        ((big *)acc)->v[i % 40] += 1.0;
}
static void big_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    for (int i = 0; i < 40; i++)
        ((big *)acc)->v[i] += ((const big *)other)->v[i];
}

static int square(const void *shared, const void *arg, void *result)
{
    (void)shared;
    *(int *)result = *(const int *)arg * *(const int *)arg;
    return 0;
}

int main(void)
{
    install();

    /* crew_open: every allocation and thread start in turn fails. */
    int failures = 0;
    for (int k = 0;; k++) {
        crew *pool = (crew *)0x1;
        calls_left = k;
        int rc = crew_open(&pool, &(crew_config){.workers = 4, .trace_path = "/dev/null"});
        calls_left = -1;
        if (rc == 0) {
            ASSERT(pool != (crew *)0x1);
            crew_close(pool);
            break;
        }
        ASSERT(rc == CREW_ENOMEM || rc == CREW_EAGAIN);
        ASSERT_PTR_EQ(pool, (crew *)0x1); /* untouched on failure */
        failures++;
        ASSERT_LT(k, 100);
    }
    /* pool, path, 4 workers, 3 threads: at least 9 distinct failure points */
    ASSERT_GE(failures, 9);

    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));

    /* crew_reduce: the accumulator allocation fails; out stays untouched. */
    crew_reducer r = {sizeof(big), big_init, big_body, big_combine};
    big out = {{-1}};
    calls_left = 0;
    int rc = crew_reduce(pool, 0, 100000, 0, &r, NULL, &out);
    calls_left = -1;
    ASSERT_EQ(rc, CREW_ENOMEM);
    ASSERT(out.v[0] == -1);
    /* A stolen piece failing to get its accumulator: ENOMEM, never a wrong
     * answer reported as success.  Which call fails depends on stealing, so
     * try several positions and accept success only with the right sum. */
    for (int k = 1; k < 8; k++) {
        calls_left = k;
        rc = crew_reduce(pool, 0, 1000000, 1000, &r, NULL, &out);
        calls_left = -1;
        if (rc == 0) {
            double total = 0;
            for (int i = 0; i < 40; i++)
                total += out.v[i];
            ASSERT(total == 1000000.0);
        } else {
            ASSERT_EQ(rc, CREW_ENOMEM);
        }
    }

    /* crew_submit: the future cannot be allocated. */
    int arg = 7, result = 0;
    crew_task task = {.fn = square, .arg = &arg, .result = &result};
    crew_future *fut = (crew_future *)0x1;
    calls_left = 0;
    rc = crew_submit(pool, NULL, &task, &fut);
    calls_left = -1;
    ASSERT_EQ(rc, CREW_ENOMEM);
    ASSERT_PTR_EQ(fut, (crew_future *)0x1);

    /* crew_resize: a thread that cannot start leaves N as it was. */
    calls_left = 0;
    rc = crew_resize(pool, 3);
    calls_left = -1;
    ASSERT(rc == CREW_EAGAIN || rc == CREW_ENOMEM);
    ASSERT_EQ(crew_workers(pool), 2);

    /* And everything still works. */
    ASSERT_OK(crew_submit(pool, NULL, &task, &fut));
    ASSERT_EQ(crew_future_wait(fut), 0);
    ASSERT_EQ(result, 49);
    crew_future_free(fut);
    ASSERT_OK(crew_resize(pool, 3));
    ASSERT_EQ(crew_workers(pool), 3);
    ASSERT_OK(crew_reduce(pool, 0, 1000, 0, &r, NULL, &out));
    crew_close(pool);
    return 0;
}
