/*
 * Description: random nested programs of joins, fors, runs, reduces and
 * futures, each result checked against the same program run serially.
 *
 * A program is a tree drawn from a seeded PRNG: every node is a leaf or one
 * of crew_join, crew_for, crew_run, crew_reduce, crew_submit, whose
 * children are again programs.  Every node folds its children's values in
 * a fixed, order-sensitive way, so a lost, repeated or misordered piece
 * changes the root.  Programs run on pools of 1, 2, 3 and 8 workers, then
 * from two outside threads at once while a third thread resizes the pool.
 * The seed is printed; CREW_STRESS_SEED=<n> replays it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

#define MAX_DEPTH 5

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t child_seed(uint64_t seed, uint64_t k)
{
    return mix(seed ^ (k * 0xD1B54A32D192ED03ULL));
}

typedef struct prog {
    crew *pool;      /* NULL: run serially */
    atomic_int *errors;
} prog;

static uint64_t eval(const prog *p, uint64_t seed, int depth);

static void note_error(const prog *p, const char *what, uint64_t seed)
{
    if (atomic_fetch_add(p->errors, 1) < 5)
        fprintf(stderr, "stress: %s wrong at node seed %016" PRIx64 "\n", what, seed);
}

/* ---- leaf ------------------------------------------------------------------ */

static uint64_t leaf(uint64_t seed)
{
    uint64_t h = seed;
    for (unsigned i = 0; i < (unsigned)(seed % 64); i++)
        h = mix(h);
    return h;
}

/* ---- join ----------------------------------------------------------------- */

typedef struct sub {
    const prog *p;
    uint64_t seed;
    int depth;
    uint64_t value;
} sub;

static void sub_run(void *arg)
{
    sub *s = arg;
    s->value = eval(s->p, s->seed, s->depth);
}

static uint64_t node_join(const prog *p, uint64_t seed, int depth)
{
    sub a = {p, child_seed(seed, 1), depth + 1, 0}, b = {p, child_seed(seed, 2), depth + 1, 0};
    int which = (int)((seed >> 40) % 4); /* 0, 1: one half NULL */
    if (p->pool) {
        if (which == 0)
            crew_join(p->pool, sub_run, &a, NULL, NULL);
        else if (which == 1)
            crew_join(p->pool, NULL, NULL, sub_run, &b);
        else
            crew_join(p->pool, sub_run, &a, sub_run, &b);
    } else {
        if (which != 1)
            sub_run(&a);
        if (which != 0)
            sub_run(&b);
    }
    return mix(a.value * 3 + b.value + (uint64_t)which);
}

/* ---- for ------------------------------------------------------------------ */

typedef struct for_ctx {
    const prog *p;
    uint64_t seed;
    int depth;
    size_t n;
    uint64_t *out;
    atomic_uint *count;
    atomic_int bad;
} for_ctx;

static void for_body(void *ctx, size_t lo, size_t hi)
{
    for_ctx *f = ctx;
    if (lo >= hi || hi > f->n) {
        atomic_fetch_add(&f->bad, 1);
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        atomic_fetch_add_explicit(&f->count[i], 1, memory_order_relaxed);
        f->out[i] = eval(f->p, child_seed(f->seed, 10 + i), f->depth + 1);
    }
}

static size_t fan_out(uint64_t seed, int depth)
{
    size_t max = (size_t)64 >> (2 * depth);
    return 1 + (size_t)(seed >> 20) % (max ? max : 1);
}

static uint64_t node_for(const prog *p, uint64_t seed, int depth)
{
    size_t n = fan_out(seed, depth);
    size_t grain = (seed >> 50) % 3 == 0 ? 0 : (size_t)(seed >> 52) % 5;
    for_ctx f = {p, seed, depth, n, calloc(n, sizeof(uint64_t)), calloc(n, sizeof(atomic_uint)), 0};
    ASSERT(f.out && f.count);
    if (p->pool) {
        if (crew_for(p->pool, 0, n, grain, for_body, &f) != 0)
            note_error(p, "crew_for return", seed);
    } else {
        for_body(&f, 0, n);
    }
    if (atomic_load(&f.bad))
        note_error(p, "crew_for range", seed);
    uint64_t h = n;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&f.count[i]) != 1)
            note_error(p, "crew_for coverage", seed);
        h = h * 31 + f.out[i];
    }
    free(f.out);
    free((void *)f.count);
    return mix(h);
}

/* ---- run ------------------------------------------------------------------ */

typedef struct task_arg {
    const prog *p;
    uint64_t seed;
    int depth;
} task_arg;

static int task_fn(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const task_arg *a = arg;
    *(uint64_t *)result = eval(a->p, a->seed, a->depth);
    return a->seed % 5 == 0 ? 3 : 0;
}

static uint64_t node_run(const prog *p, uint64_t seed, int depth)
{
    size_t n = fan_out(seed, depth);
    task_arg *args = calloc(n, sizeof *args);
    uint64_t *res = calloc(n, sizeof *res);
    crew_task *t = calloc(n, sizeof *t);
    ASSERT(args && res && t);
    int any_fail = 0;
    for (size_t i = 0; i < n; i++) {
        args[i] = (task_arg){p, child_seed(seed, 1000 + i), depth + 1};
        t[i] = (crew_task){.fn = task_fn, .arg = &args[i], .result = &res[i], .status = -1};
        any_fail |= args[i].seed % 5 == 0;
    }
    if (p->pool) {
        int rc = crew_run(p->pool, NULL, t, n, NULL);
        if (rc != (any_fail ? CREW_EFAILED : 0))
            note_error(p, "crew_run return", seed);
    } else {
        for (size_t i = 0; i < n; i++)
            t[i].status = task_fn(NULL, &args[i], &res[i]);
    }
    uint64_t h = 7;
    for (size_t i = 0; i < n; i++)
        h = mix(h ^ res[i]) + (uint64_t)t[i].status;
    free(args);
    free(res);
    free(t);
    return h;
}

/* ---- reduce: a polynomial hash, order-sensitive ----------------------------- */

typedef struct poly {
    uint64_t h, pow;
} poly;

#define BASE 1000003ULL

typedef struct red_ctx {
    const prog *p;
    uint64_t seed;
    int depth;
    atomic_int bad;
} red_ctx;

static void red_init(void *ctx, void *acc)
{
    (void)ctx;
    *(poly *)acc = (poly){0, 1};
}

static void red_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    red_ctx *r = ctx;
    poly *a = acc;
    if ((uintptr_t)acc % 64)
        atomic_fetch_add(&r->bad, 1);
    for (size_t i = lo; i < hi; i++) {
        a->h = a->h * BASE + eval(r->p, child_seed(r->seed, 5000 + i), r->depth + 1);
        a->pow *= BASE;
    }
}

static void red_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    poly *a = acc;
    const poly *b = other;
    a->h = a->h * b->pow + b->h;
    a->pow *= b->pow;
}

static const crew_reducer red = {sizeof(poly), red_init, red_body, red_combine};

static uint64_t node_reduce(const prog *p, uint64_t seed, int depth)
{
    size_t n = fan_out(seed, depth) * 2;
    size_t lo = (size_t)(seed >> 30) % 1000;
    size_t grain = (seed >> 50) % 2 ? 0 : 1 + (size_t)(seed >> 52) % 4;
    red_ctx r = {p, seed, depth, 0};
    poly out = {0, 0};
    if (p->pool) {
        if (crew_reduce(p->pool, lo, lo + n, grain, &red, &r, &out) != 0)
            note_error(p, "crew_reduce return", seed);
    } else {
        alignas(64) poly acc;
        red_init(&r, &acc);
        red_body(&r, lo, lo + n, &acc);
        out = acc;
    }
    if (atomic_load(&r.bad))
        note_error(p, "crew_reduce alignment", seed);
    return mix(out.h ^ out.pow);
}

/* ---- futures ------------------------------------------------------------- */

static uint64_t node_future(const prog *p, uint64_t seed, int depth)
{
    size_t n = 1 + (size_t)(seed >> 33) % 3;
    task_arg args[3];
    uint64_t res[3] = {0, 0, 0};
    crew_task t[3];
    crew_future *f[3];
    for (size_t i = 0; i < n; i++) {
        args[i] = (task_arg){p, child_seed(seed, 9000 + i), depth + 1};
        t[i] = (crew_task){.fn = task_fn, .arg = &args[i], .result = &res[i], .status = -1};
        if (p->pool) {
            if (crew_submit(p->pool, NULL, &t[i], &f[i]) != 0)
                note_error(p, "crew_submit return", seed);
        } else {
            t[i].status = task_fn(NULL, &args[i], &res[i]);
        }
    }
    uint64_t h = 11;
    for (size_t i = 0; i < n; i++) {
        if (p->pool) {
            int st = crew_future_wait(f[i]);
            if (st != t[i].status)
                note_error(p, "crew_future_wait status", seed);
            crew_future_free(f[i]);
        }
        h = mix(h + res[i]) ^ (uint64_t)t[i].status;
    }
    return h;
}

/* ---- the tree ------------------------------------------------------------ */

static uint64_t eval(const prog *p, uint64_t seed, int depth)
{
    uint64_t r = mix(seed);
    /* Deeper nodes are more often leaves. */
    if (depth >= MAX_DEPTH || r % 100 < (uint64_t)(15 + 15 * depth))
        return leaf(seed);
    switch ((r >> 8) % 16) {
    case 0: case 1: case 2: case 3: case 4:
        return node_join(p, seed, depth);
    case 5: case 6: case 7:
        return node_for(p, seed, depth);
    case 8: case 9: case 10:
        return node_run(p, seed, depth);
    case 11: case 12: case 13:
        return node_reduce(p, seed, depth);
    default:
        return depth < 3 ? node_future(p, seed, depth) : node_join(p, seed, depth);
    }
}

/* ---- driver ---------------------------------------------------------------- */

static uint64_t base_seed;
static atomic_int errors;

/* A hang fails the test with its phase and seed instead of a bare timeout. */
static test_watchdog dog;

static void dog_hung(const char *phase)
{
    fprintf(stderr, "stress_sched: phase \"%s\" hangs (seed %" PRIu64 ")\n", phase, base_seed);
}

static void phase(const char *name)
{
    test_watchdog_step(&dog, name);
}

static void check_program(crew *pool, uint64_t k, const char *phase)
{
    uint64_t seed = mix(base_seed + k);
    prog serial = {NULL, &errors}, par = {pool, &errors};
    uint64_t want = eval(&serial, seed, 0);
    uint64_t got = eval(&par, seed, 0);
    if (got != want) {
        fprintf(stderr,
                "stress (%s): program %" PRIu64 " (seed %" PRIu64 "): %016" PRIx64
                " vs serial %016" PRIx64 "\n",
                phase, k, base_seed, got, want);
        atomic_fetch_add(&errors, 1);
    }
}

typedef struct outside {
    crew *pool;
    uint64_t first, count;
} outside;

static void *outside_programs(void *arg)
{
    outside *o = arg;
    for (uint64_t k = o->first; k < o->first + o->count && atomic_load(&errors) == 0; k++)
        check_program(o->pool, k, "two callers + resize");
    return NULL;
}

typedef struct resizer {
    crew *pool;
    atomic_int stop;
    int resizes;
} resizer;

static void *keep_resizing(void *arg)
{
    resizer *r = arg;
    uint64_t s = base_seed ^ 0x5555;
    while (!atomic_load(&r->stop)) {
        s = mix(s);
        unsigned n = 1 + (unsigned)(s % 8);
        if (crew_resize(r->pool, n) != 0 || crew_workers(r->pool) < 1) {
            atomic_fetch_add(&errors, 1);
            return NULL;
        }
        r->resizes++;
        /* Pace, not synchronisation: let some work happen at this size. */
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(void)
{
    const char *env = getenv("CREW_STRESS_SEED");
    base_seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    printf("stress_sched: seed %" PRIu64 " (CREW_STRESS_SEED=%" PRIu64 " replays it)\n",
           base_seed, base_seed);
    fflush(stdout);

    test_watchdog_start(&dog, TEST_SANITIZED ? 200 : 60, "start", dog_hung);
    const uint64_t per_pool = TEST_SANITIZED ? 200 : 1500;
    static const char *const phases[] = {"1 worker", "2 workers", "3 workers", "8 workers"};
    static const unsigned sizes[] = {1, 2, 3, 8};
    uint64_t k = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        phase(phases[s]);
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        for (uint64_t i = 0; i < per_pool && atomic_load(&errors) == 0; i++)
            check_program(pool, k++, "one caller");
        crew_close(pool);
        if (atomic_load(&errors))
            break;
        printf("stress_sched: %" PRIu64 " programs on %u workers ok\n", per_pool, sizes[s]);
        fflush(stdout);
    }

    if (atomic_load(&errors) == 0) {
        crew *pool;
        phase("two outside callers while a thread resizes");
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 3}));
        resizer r = {pool, 0, 0};
        outside o[2] = {{pool, k, per_pool / 2}, {pool, k + per_pool / 2, per_pool / 2}};
        pthread_t rt, ot[2];
        ASSERT_EQ(pthread_create(&rt, NULL, keep_resizing, &r), 0);
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(pthread_create(&ot[i], NULL, outside_programs, &o[i]), 0);
        for (int i = 0; i < 2; i++)
            ASSERT_EQ(pthread_join(ot[i], NULL), 0);
        atomic_store(&r.stop, 1);
        ASSERT_EQ(pthread_join(rt, NULL), 0);
        crew_close(pool);
        printf("stress_sched: %" PRIu64 " programs from two threads with %d resizes ok\n",
               per_pool, r.resizes);
    }
    test_watchdog_stop(&dog);
    if (atomic_load(&errors)) {
        fprintf(stderr, "stress_sched: %d errors; seed %" PRIu64 "\n", atomic_load(&errors),
                base_seed);
        return 1;
    }
    return 0;
}
