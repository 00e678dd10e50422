/*
 * Description: crew_for covers [begin, end) exactly once.
 *
 * Every index is counted; ranges must be non-empty, inside [begin, end) and,
 * for grain > 0, exactly grain long except the last.  Also: bad arguments,
 * begin == end, indexes near SIZE_MAX, workers = 1 running on the caller,
 * at most N threads for N workers, nesting, and several outside threads
 * calling into one pool at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

/* ---- coverage checker --------------------------------------------------- */

typedef struct cover {
    size_t begin, end, grain;
    atomic_uint *count;      /* per index, or NULL for ranges too big to count */
    unsigned *value;         /* plain writes, read after crew_for returns */
    atomic_size_t ranges;
    atomic_size_t covered;   /* total length of all ranges */
    atomic_int bad;
    atomic_size_t bad_lo, bad_hi;
} cover;

static void cover_body(void *ctx, size_t lo, size_t hi)
{
    cover *c = ctx;
    atomic_fetch_add_explicit(&c->ranges, 1, memory_order_relaxed);
    int ok = lo < hi && lo >= c->begin && hi <= c->end;
    if (ok && c->grain)
        ok = (hi - lo == c->grain || (hi == c->end && hi - lo < c->grain)) &&
             (lo - c->begin) % c->grain == 0;
    if (!ok) {
        if (atomic_fetch_add(&c->bad, 1) == 0) {
            atomic_store(&c->bad_lo, lo);
            atomic_store(&c->bad_hi, hi);
        }
        return;
    }
    atomic_fetch_add_explicit(&c->covered, hi - lo, memory_order_relaxed);
    if (c->count)
        for (size_t i = lo; i < hi; i++) {
            atomic_fetch_add_explicit(&c->count[i - c->begin], 1, memory_order_relaxed);
            c->value[i - c->begin] = (unsigned)(i * 2654435761u);
        }
}

/* Runs crew_for over [begin, end) with the grain and checks everything. */
static void check_cover(crew *pool, size_t begin, size_t end, size_t grain, int count_each)
{
    size_t n = end - begin;
    cover c = {.begin = begin, .end = end, .grain = grain};
    if (count_each && n) {
        c.count = calloc(n, sizeof *c.count);
        c.value = calloc(n, sizeof *c.value);
        ASSERT(c.count && c.value);
    }
    int rc = crew_for(pool, begin, end, grain, cover_body, &c);
    if (rc != 0)
        TEST_FAIL_("crew_for([%zu, %zu), grain %zu) = %d (%s)", begin, end, grain, rc,
                   crew_strerror(rc));
    if (atomic_load(&c.bad))
        TEST_FAIL_("crew_for([%zu, %zu), grain %zu): %d bad ranges, first [%zu, %zu)", begin,
                   end, grain, atomic_load(&c.bad), atomic_load(&c.bad_lo),
                   atomic_load(&c.bad_hi));
    if (atomic_load(&c.covered) != n)
        TEST_FAIL_("crew_for([%zu, %zu), grain %zu): ranges cover %zu, want %zu", begin, end,
                   grain, atomic_load(&c.covered), n);
    if (grain && n) {
        size_t want = n / grain + (n % grain != 0);
        if (atomic_load(&c.ranges) != want)
            TEST_FAIL_("crew_for([%zu, %zu), grain %zu): %zu ranges, want %zu", begin, end,
                       grain, atomic_load(&c.ranges), want);
    }
    if (n == 0)
        ASSERT_EQ(atomic_load(&c.ranges), 0);
    for (size_t i = 0; c.count && i < n; i++) {
        if (atomic_load(&c.count[i]) != 1)
            TEST_FAIL_("crew_for([%zu, %zu), grain %zu): index %zu ran %u times", begin, end,
                       grain, begin + i, atomic_load(&c.count[i]));
        ASSERT_EQ(c.value[i], (unsigned)((begin + i) * 2654435761u));
    }
    free(c.count);
    free(c.value);
}

static void test_sizes_and_grains(crew *pool)
{
    static const size_t sizes[] = {0, 1, 2, 7, 1000, 1000000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        size_t grains[] = {0, 1, 3, 1000, n + 1, SIZE_MAX};
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            if (TEST_SANITIZED && n == 1000000 && grains[g] == 1)
                continue; /* a million single-index ranges: too slow under a sanitizer */
            check_cover(pool, 0, n, grains[g], 1);
            check_cover(pool, 12345, 12345 + n, grains[g], 1);
        }
    }
    for (size_t n = 0; n < 70; n++)
        check_cover(pool, n * 3, n * 4, 0, 1);
}

static void test_near_size_max(crew *pool)
{
    static const size_t grains[] = {0, 1, 7, 1000, SIZE_MAX};
    for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
        check_cover(pool, SIZE_MAX - 100000, SIZE_MAX, grains[g], 1);
        check_cover(pool, SIZE_MAX - 1, SIZE_MAX, grains[g], 1);
        check_cover(pool, SIZE_MAX - 2, SIZE_MAX - 1, grains[g], 1);
    }
    check_cover(pool, SIZE_MAX, SIZE_MAX, 0, 1);
    /* Whole ranges too big to count index by index: lengths must add up. */
    check_cover(pool, 0, SIZE_MAX, SIZE_MAX / 4 + 1, 0);
    check_cover(pool, 1, SIZE_MAX, SIZE_MAX / 3, 0);
    check_cover(pool, SIZE_MAX / 2, SIZE_MAX, SIZE_MAX / 64, 0);
    if (!TEST_SANITIZED)
        check_cover(pool, SIZE_MAX - 10000000, SIZE_MAX, 0, 0);
}

/* ---- bad arguments ------------------------------------------------------ */

static void never_called(void *ctx, size_t lo, size_t hi)
{
    (void)lo;
    (void)hi;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

static void test_bad_args(crew *pool)
{
    atomic_int calls = 0;
    ASSERT_EQ(crew_for(pool, 10, 9, 0, never_called, &calls), CREW_EINVAL);
    ASSERT_EQ(crew_for(pool, SIZE_MAX, 0, 1, never_called, &calls), CREW_EINVAL);
    ASSERT_EQ(crew_for(pool, 1, 0, 0, never_called, &calls), CREW_EINVAL);
    ASSERT_EQ(crew_for(pool, 0, 10, 0, NULL, &calls), CREW_EINVAL);
    ASSERT_EQ(crew_for(NULL, 0, 10, 0, never_called, &calls), CREW_EINVAL);
    ASSERT_EQ(crew_for(NULL, 5, 1, 0, NULL, &calls), CREW_EINVAL);
    /* begin == end: 0 at once, body never called. */
    ASSERT_OK(crew_for(pool, 0, 0, 0, never_called, &calls));
    ASSERT_OK(crew_for(pool, 77, 77, 3, never_called, &calls));
    ASSERT_OK(crew_for(pool, SIZE_MAX, SIZE_MAX, 0, never_called, &calls));
    ASSERT_EQ(atomic_load(&calls), 0);
}

/* ---- which threads run the ranges --------------------------------------- */

#define MAX_TIDS 128

typedef struct threads_seen {
    pthread_mutex_t lock;
    pid_t tid[MAX_TIDS];
    int n;
    pthread_t caller;
    atomic_int off_caller;   /* ranges run on another thread than the caller */
    atomic_uint sink;
} threads_seen;

static void spin_work(atomic_uint *sink, unsigned rounds)
{
    unsigned x = rounds;
    for (unsigned i = 0; i < rounds; i++)
        x = x * 1103515245u + 12345u;
    atomic_fetch_add_explicit(sink, x, memory_order_relaxed);
}

static void note_thread(void *ctx, size_t lo, size_t hi)
{
    threads_seen *t = ctx;
    pid_t me = (pid_t)syscall(SYS_gettid);
    if (!pthread_equal(pthread_self(), t->caller))
        atomic_fetch_add(&t->off_caller, 1);
    pthread_mutex_lock(&t->lock);
    int known = 0;
    for (int i = 0; i < t->n; i++)
        known |= t->tid[i] == me;
    if (!known && t->n < MAX_TIDS)
        t->tid[t->n++] = me;
    pthread_mutex_unlock(&t->lock);
    spin_work(&t->sink, (unsigned)(hi - lo) * 2000u);
}

/* workers = 1: everything on the caller, nested calls too. */
static void inner_on_caller(void *ctx, size_t lo, size_t hi)
{
    threads_seen *t = ctx;
    if (!pthread_equal(pthread_self(), t->caller))
        atomic_fetch_add(&t->off_caller, 1);
    (void)lo;
    (void)hi;
}

typedef struct one_worker {
    crew *pool;
    threads_seen *seen;
} one_worker;

static void outer_on_caller(void *ctx, size_t lo, size_t hi)
{
    one_worker *w = ctx;
    if (!pthread_equal(pthread_self(), w->seen->caller))
        atomic_fetch_add(&w->seen->off_caller, 1);
    for (size_t i = lo; i < hi; i++)
        ASSERT_OK(crew_for(w->pool, 0, 100, 0, inner_on_caller, w->seen));
}

static void test_one_worker_on_caller(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    threads_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER, .caller = pthread_self()};
    ASSERT_OK(crew_for(pool, 0, 100000, 0, note_thread, &seen));
    ASSERT_OK(crew_for(pool, 0, 1000, 1, note_thread, &seen));
    ASSERT_EQ(seen.n, 1);
    ASSERT_EQ(seen.tid[0], (pid_t)syscall(SYS_gettid));
    one_worker w = {pool, &seen};
    ASSERT_OK(crew_for(pool, 0, 50, 0, outer_on_caller, &w));
    ASSERT_EQ(atomic_load(&seen.off_caller), 0);
    crew_close(pool);
}

/* N workers, caller included: at most N threads run ranges, and the caller
 * is one of them. */
static void test_thread_count(void)
{
    static const unsigned sizes[] = {2, 3, 5};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        threads_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER, .caller = pthread_self()};
        ASSERT_OK(crew_for(pool, 0, 400, 1, note_thread, &seen));
        ASSERT_OK(crew_for(pool, 0, 20000, 0, note_thread, &seen));
        ASSERT_LE(seen.n, (int)sizes[s]);
        pid_t me = (pid_t)syscall(SYS_gettid);
        int caller_worked = 0;
        for (int i = 0; i < seen.n; i++)
            caller_worked |= seen.tid[i] == me;
        if (!caller_worked)
            TEST_FAIL_("workers = %u: the caller ran none of 20400 ranges", sizes[s]);
        crew_close(pool);
    }
}

/* ---- nesting ------------------------------------------------------------ */

#define OUTER 64
#define INNER 1000

typedef struct nest {
    crew *pool;
    atomic_uint *count;  /* OUTER x INNER x DEPTH3 */
    size_t inner_grain;
} nest;

typedef struct nest_row {
    nest *n;
    size_t row;
} nest_row;

static void nest_inner(void *ctx, size_t lo, size_t hi)
{
    nest_row *r = ctx;
    for (size_t i = lo; i < hi; i++)
        atomic_fetch_add_explicit(&r->n->count[r->row * INNER + i], 1, memory_order_relaxed);
}

static void nest_outer(void *ctx, size_t lo, size_t hi)
{
    nest *n = ctx;
    for (size_t row = lo; row < hi; row++) {
        nest_row r = {n, row};
        ASSERT_OK(crew_for(n->pool, 0, INNER, n->inner_grain, nest_inner, &r));
    }
}

/* Three levels: a, b, c each in [0, 16). */
typedef struct nest3 {
    crew *pool;
    atomic_uint count[16 * 16 * 16];
} nest3;

typedef struct nest3_at {
    nest3 *n;
    size_t prefix;
    int level;
} nest3_at;

static void nest3_body(void *ctx, size_t lo, size_t hi)
{
    nest3_at *at = ctx;
    for (size_t i = lo; i < hi; i++) {
        size_t prefix = at->prefix * 16 + i;
        if (at->level == 2) {
            atomic_fetch_add(&at->n->count[prefix], 1);
        } else {
            nest3_at deeper = {at->n, prefix, at->level + 1};
            ASSERT_OK(crew_for(at->n->pool, 0, 16, (size_t)at->level, nest3_body, &deeper));
        }
    }
}

static void test_nested(crew *pool)
{
    static const size_t grains[][2] = {{1, 0}, {0, 0}, {1, 7}, {5, 1}};
    for (size_t g = 0; g < 4; g++) {
        nest n = {pool, calloc(OUTER * INNER, sizeof(atomic_uint)), grains[g][1]};
        ASSERT_NOT_NULL(n.count);
        ASSERT_OK(crew_for(pool, 0, OUTER, grains[g][0], nest_outer, &n));
        for (size_t i = 0; i < OUTER * INNER; i++)
            if (atomic_load(&n.count[i]) != 1)
                TEST_FAIL_("nested crew_for: row %zu index %zu ran %u times", i / INNER,
                           i % INNER, atomic_load(&n.count[i]));
        free(n.count);
    }
    nest3 *n3 = calloc(1, sizeof *n3);
    ASSERT_NOT_NULL(n3);
    n3->pool = pool;
    nest3_at top = {n3, 0, 0};
    ASSERT_OK(crew_for(pool, 0, 16, 0, nest3_body, &top));
    for (size_t i = 0; i < 16 * 16 * 16; i++)
        ASSERT_EQ(atomic_load(&n3->count[i]), 1);
    free(n3);
}

/* ---- several outside threads at once ------------------------------------ */

typedef struct caller_load {
    crew *pool;
    int calls;
    int seed;
    int failures;
} caller_load;

static void sum_body(void *ctx, size_t lo, size_t hi)
{
    unsigned long long s = 0;
    for (size_t i = lo; i < hi; i++)
        s += i;
    atomic_fetch_add((_Atomic unsigned long long *)ctx, s);
}

static void *outside_caller(void *arg)
{
    caller_load *load = arg;
    for (int k = 0; k < load->calls; k++) {
        size_t n = (size_t)((k * 37 + load->seed * 101) % 1500);
        size_t grain = (size_t)(k % 4 == 0 ? 0 : k % 4 == 1 ? 1 : k % 23);
        _Atomic unsigned long long sum = 0;
        if (crew_for(load->pool, 0, n, grain, sum_body, &sum) != 0 ||
            atomic_load(&sum) != (unsigned long long)n * (n ? n - 1 : 0) / 2)
            load->failures++;
    }
    return NULL;
}

static void test_outside_threads(void)
{
    static const unsigned sizes[] = {1, 2, 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        pthread_t t[4];
        caller_load load[4];
        for (int i = 0; i < 4; i++) {
            load[i] = (caller_load){pool, TEST_SANITIZED ? 250 : 1000, i, 0};
            ASSERT_EQ(pthread_create(&t[i], NULL, outside_caller, &load[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
            ASSERT_EQ(pthread_join(t[i], NULL), 0);
            ASSERT_EQ(load[i].failures, 0);
        }
        crew_close(pool);
    }
}

int main(void)
{
    static const unsigned sizes[] = {1, 2, 4, 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        test_bad_args(pool);
        test_sizes_and_grains(pool);
        test_near_size_max(pool);
        test_nested(pool);
        crew_close(pool);
    }
    test_one_worker_on_caller();
    test_thread_count();
    test_outside_threads();
    printf("test_for: ok\n");
    return 0;
}
