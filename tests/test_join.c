/*
 * Description: crew_join runs both halves exactly once, nests to any depth.
 *
 * Parallel fib and a recursive sum over a random tree are checked against
 * serial code; NULL halves are skipped and a NULL pool runs both inline;
 * one-sided recursion 10000 deep neither deadlocks nor overflows; joins
 * work inside crew_for bodies, crew_run tasks and from several outside
 * threads at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "crew.h"
#include "test.h"

/* ---- fib ---------------------------------------------------------------- */

typedef struct fib_arg {
    crew *pool;
    unsigned n;
    uint64_t result;  /* plain: read after the join returns */
} fib_arg;

static uint64_t fib_serial(unsigned n)
{
    uint64_t a = 0, b = 1;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static void fib_par(void *arg)
{
    fib_arg *f = arg;
    if (f->n < 2) {
        f->result = f->n;
        return;
    }
    fib_arg x = {f->pool, f->n - 1, 0}, y = {f->pool, f->n - 2, 0};
    crew_join(f->pool, fib_par, &x, fib_par, &y);
    f->result = x.result + y.result;
}

static uint64_t fib_with(crew *pool, unsigned n)
{
    fib_arg f = {pool, n, 0};
    fib_par(&f);
    return f.result;
}

static void test_fib(crew *pool)
{
    unsigned top = TEST_SANITIZED ? 20 : 25;
    for (unsigned n = 0; n <= top; n += (n < 12 ? 1 : 4))
        ASSERT_UEQ(fib_with(pool, n), fib_serial(n));
    ASSERT_UEQ(fib_with(pool, top), fib_serial(top));
}

/* ---- sum over a random tree ----------------------------------------------- */

typedef struct node {
    struct node *left, *right;
    uint64_t value;
} node;

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A tree of n nodes with random shape; `chain` makes it lopsided. */
static node *tree_build(node *pool_nodes, size_t *used, size_t n, int chain)
{
    if (n == 0)
        return NULL;
    node *t = &pool_nodes[(*used)++];
    t->value = rng() >> 20;
    size_t left = chain ? (rng() % 8 == 0 ? (n - 1) / 2 : n - 1) : (size_t)(rng() % n);
    t->left = tree_build(pool_nodes, used, left, chain);
    t->right = tree_build(pool_nodes, used, n - 1 - left, chain);
    return t;
}

static uint64_t tree_sum_serial(const node *t)
{
    return t ? t->value + tree_sum_serial(t->left) + tree_sum_serial(t->right) : 0;
}

typedef struct sum_arg {
    crew *pool;
    const node *t;
    uint64_t sum;
} sum_arg;

static void tree_sum_par(void *arg)
{
    sum_arg *s = arg;
    if (!s->t) {
        s->sum = 0;
        return;
    }
    sum_arg l = {s->pool, s->t->left, 0}, r = {s->pool, s->t->right, 0};
    crew_join(s->pool, tree_sum_par, &l, tree_sum_par, &r);
    s->sum = s->t->value + l.sum + r.sum;
}

static node *tree_nodes;
static node *tree_balanced, *tree_lopsided;
static uint64_t sum_balanced, sum_lopsided;

static void trees_build(void)
{
    size_t n = TEST_SANITIZED ? 30000 : 200000, used = 0;
    tree_nodes = calloc(2 * n, sizeof *tree_nodes);
    ASSERT_NOT_NULL(tree_nodes);
    tree_balanced = tree_build(tree_nodes, &used, n, 0);
    tree_lopsided = tree_build(tree_nodes, &used, n / 20, 1);
    sum_balanced = tree_sum_serial(tree_balanced);
    sum_lopsided = tree_sum_serial(tree_lopsided);
}

static void test_tree(crew *pool)
{
    sum_arg s = {pool, tree_balanced, 0};
    tree_sum_par(&s);
    ASSERT_UEQ(s.sum, sum_balanced);
    s = (sum_arg){pool, tree_lopsided, 0};
    tree_sum_par(&s);
    ASSERT_UEQ(s.sum, sum_lopsided);
}

/* ---- NULL halves and a NULL pool ----------------------------------------- */

typedef struct mark {
    atomic_int runs;
    pthread_t thread;
    int value;  /* plain write, read after crew_join */
} mark;

static void mark_run(void *arg)
{
    mark *m = arg;
    atomic_fetch_add(&m->runs, 1);
    m->thread = pthread_self();
    m->value = 42;
}

static void test_null_halves(crew *pool)
{
    mark a = {0}, b = {0};
    crew_join(pool, NULL, &a, mark_run, &b);
    ASSERT_EQ(atomic_load(&a.runs), 0);
    ASSERT_EQ(atomic_load(&b.runs), 1);
    ASSERT_EQ(b.value, 42);
    crew_join(pool, mark_run, &a, NULL, &b);
    ASSERT_EQ(atomic_load(&a.runs), 1);
    ASSERT_EQ(atomic_load(&b.runs), 1);
    crew_join(pool, NULL, &a, NULL, &b);
    ASSERT_EQ(atomic_load(&a.runs), 1);
    ASSERT_EQ(atomic_load(&b.runs), 1);
    /* Both halves: each once, and their plain writes visible afterwards. */
    for (int i = 0; i < 1000; i++) {
        mark x = {0}, y = {0};
        crew_join(pool, mark_run, &x, mark_run, &y);
        ASSERT_EQ(atomic_load(&x.runs), 1);
        ASSERT_EQ(atomic_load(&y.runs), 1);
        ASSERT_EQ(x.value + y.value, 84);
    }
}

static void test_null_pool(void)
{
    mark a = {0}, b = {0};
    crew_join(NULL, mark_run, &a, mark_run, &b);
    ASSERT_EQ(atomic_load(&a.runs), 1);
    ASSERT_EQ(atomic_load(&b.runs), 1);
    ASSERT(pthread_equal(a.thread, pthread_self()));
    ASSERT(pthread_equal(b.thread, pthread_self()));
    crew_join(NULL, NULL, &a, mark_run, &b);
    crew_join(NULL, mark_run, &a, NULL, &b);
    crew_join(NULL, NULL, NULL, NULL, NULL);
    ASSERT_EQ(atomic_load(&a.runs), 2);
    ASSERT_EQ(atomic_load(&b.runs), 2);
    ASSERT_UEQ(fib_with(NULL, 20), fib_serial(20));
}

/* workers = 1: both halves on the caller. */
static void test_one_worker(void)
{
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 1}));
    mark a = {0}, b = {0};
    crew_join(pool, mark_run, &a, mark_run, &b);
    ASSERT_EQ(atomic_load(&a.runs), 1);
    ASSERT_EQ(atomic_load(&b.runs), 1);
    ASSERT(pthread_equal(a.thread, pthread_self()));
    ASSERT(pthread_equal(b.thread, pthread_self()));
    test_fib(pool);
    test_tree(pool);
    crew_close(pool);
}

/* ---- deep one-sided recursion --------------------------------------------- */

typedef struct deep {
    crew *pool;
    size_t n;
    int side;           /* 0: recurse in fa, 1: recurse in fb, 2: fb NULL */
    atomic_ullong *sum;
} deep;

static void leaf(void *arg)
{
    atomic_fetch_add_explicit((atomic_ullong *)arg, 1000000000ull, memory_order_relaxed);
}

static void deep_run(void *arg)
{
    deep *d = arg;
    atomic_fetch_add_explicit(d->sum, d->n, memory_order_relaxed);
    if (d->n == 0)
        return;
    deep next = {d->pool, d->n - 1, d->side, d->sum};
    if (d->side == 0)
        crew_join(d->pool, deep_run, &next, leaf, d->sum);
    else if (d->side == 1)
        crew_join(d->pool, leaf, d->sum, deep_run, &next);
    else
        crew_join(d->pool, deep_run, &next, NULL, NULL);
}

static void *deep_sides(void *arg)
{
    crew *pool = arg;
    const unsigned long long depth = 10000;
    for (int side = 0; side < 3; side++) {
        atomic_ullong sum = 0;
        deep d = {pool, depth, side, &sum};
        deep_run(&d);
        unsigned long long want = depth * (depth + 1) / 2 + (side < 2 ? depth * 1000000000ull : 0);
        if (atomic_load(&sum) != want)
            TEST_FAIL_("deep join, side %d: sum %llu, want %llu", side, atomic_load(&sum), want);
    }
    return NULL;
}

/*
 * The recursion is the test's own: 10000 levels of deep_run + crew_join
 * frames.  Sanitizer builds make every frame several times larger, so the
 * caller gets a stack big enough for that; the pool's own threads, which
 * may run most of the chain after a steal, get the library's default
 * (CREW_DEFAULT_STACK), which must be enough for it too.
 */
static void test_deep(crew *pool)
{
    pthread_attr_t attr;
    ASSERT_EQ(pthread_attr_init(&attr), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&attr, (size_t)256 << 20), 0);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, &attr, deep_sides, pool), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&attr);
}

/* ---- joins inside crew_for and crew_run ---------------------------------- */

typedef struct for_fib {
    crew *pool;
    uint64_t out[256];
} for_fib;

static void fib_each(void *ctx, size_t lo, size_t hi)
{
    for_fib *f = ctx;
    for (size_t i = lo; i < hi; i++)
        f->out[i] = fib_with(f->pool, (unsigned)(8 + i % 8));
}

static void test_in_for(crew *pool)
{
    for_fib f = {pool, {0}};
    ASSERT_OK(crew_for(pool, 0, 256, 0, fib_each, &f));
    for (size_t i = 0; i < 256; i++)
        ASSERT_UEQ(f.out[i], fib_serial((unsigned)(8 + i % 8)));
    memset(f.out, 0, sizeof f.out);
    ASSERT_OK(crew_for(pool, 0, 256, 1, fib_each, &f));
    for (size_t i = 0; i < 256; i++)
        ASSERT_UEQ(f.out[i], fib_serial((unsigned)(8 + i % 8)));
}

static int tree_task(const void *shared, const void *arg, void *result)
{
    crew *pool = (crew *)shared;
    sum_arg s = {pool, *(const node *const *)arg, 0};
    tree_sum_par(&s);
    *(uint64_t *)result = s.sum;
    return s.sum == tree_sum_serial(s.t) ? 0 : 1;
}

static void test_in_run(crew *pool)
{
    /* One task per subtree four levels down, plus the whole lopsided tree. */
    const node *roots[17];
    uint64_t sums[17];
    crew_task tasks[17];
    size_t n = 0;
    const node *level[16] = {tree_balanced};
    size_t width = 1;
    for (int depth = 0; depth < 4; depth++) {
        const node *next[16];
        size_t w = 0;
        for (size_t i = 0; i < width; i++) {
            if (!level[i])
                continue;
            next[w++] = level[i]->left;
            next[w++] = level[i]->right;
        }
        memcpy(level, next, w * sizeof *next);
        width = w;
    }
    for (size_t i = 0; i < width; i++)
        roots[n++] = level[i];
    roots[n++] = tree_lopsided;
    for (size_t i = 0; i < n; i++)
        tasks[i] = (crew_task){.fn = tree_task, .arg = &roots[i], .result = &sums[i]};
    ASSERT_OK(crew_run(pool, pool, tasks, n, NULL));
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_UEQ(sums[i], tree_sum_serial(roots[i]));
    }
}

/* ---- several outside threads ------------------------------------------- */

static void *outside_fib(void *arg)
{
    crew *pool = arg;
    for (int i = 0; i < (TEST_SANITIZED ? 10 : 40); i++)
        if (fib_with(pool, 16 + (unsigned)(i % 4)) != fib_serial(16 + (unsigned)(i % 4)))
            return (void *)1;
    return NULL;
}

static void test_outside_threads(crew *pool)
{
    TEST_THREADS_OK(3, outside_fib, pool);
}

int main(void)
{
    trees_build();
    test_null_pool();
    test_one_worker();
    static const unsigned sizes[] = {2, 3, 4, 8};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        test_null_halves(pool);
        test_fib(pool);
        test_tree(pool);
        test_deep(pool);
        test_in_for(pool);
        test_in_run(pool);
        test_outside_threads(pool);
        crew_close(pool);
    }
    free(tree_nodes);
    printf("test_join: ok\n");
    return 0;
}
