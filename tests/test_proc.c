/*
 * Description: crew_run, crew_for and crew_reduce on a process pool mean
 * what they mean on a thread pool.  Arguments are copied in and results
 * copied back (also at the 16 MiB limit, and with a positive error; bytes
 * a task leaves unwritten come back as zeros, never as another task's);
 * arg_size 0 passes the pointer, result_size 0 passes NULL; too large a
 * task is CREW_E2BIG with nothing run; crew_reduce equals the serial fold
 * (sums, a non-commutative combine, a 16 KiB accumulator), and its
 * accumulators stay 64-byte aligned after heavy use; crew_for covers
 * every index once; stop_on_error cancels what has not started; on_done
 * and progress run on the caller's thread; a call from on_done is
 * CREW_EBUSY, one from inside a task runs inline (with the same statuses,
 * cancellations and callbacks); two threads may share a pool; crew_submit
 * is CREW_ENOTSUP and crew_join runs both halves; a thread pool works
 * beside a process pool; a function that is not thread-safe (a static
 * buffer and strtok) goes wrong on threads but always right on processes;
 * crew_stats counts each worker's jobs, busy time and sleeps; the trace
 * has an event per task and per range; and what tasks print through
 * stdio reaches its file.
 */
#include "proc_util.h"

#define WORKERS 2
#define SENTINEL 12345
#define UNTOUCHED 0x5eed5eed5eed5eedull

static test_watchdog wd;
static crew *pool; /* opened in main after the globals below are set */

/* Set before crew_open, so the workers have it too. */
static uint64_t table[1024];

/* A writable arena made after crew_open for counters tasks share with us. */
static crew_arena *counters_arena;

static _Atomic uint32_t *new_counters(size_t n)
{
    crew_ref r = CREW_ARENA_ARRAY(counters_arena, _Atomic uint32_t, n);
    ASSERT_NE(r, 0);
    return CREW_ARENA_PTR(counters_arena, _Atomic uint32_t, r);
}

static uint64_t val(uint64_t salt, uint64_t i)
{
    return test_mix(salt * 0x9E3779B97F4A7C15ull + i) ^ table[i % 1024];
}

/* ---- arguments and results ---------------------------------------------------- */

typedef struct copy_arg {
    uint64_t salt, index;
    int fail;
    _Atomic uint32_t *starts;
} copy_arg;

typedef struct copy_res {
    uint64_t value, index;
    int32_t pid;
} copy_res;

static int copy_task(const void *shared, const void *arg, void *result)
{
    const copy_arg *a = arg;
    if (a->starts)
        atomic_fetch_add(&a->starts[a->index], 1);
    copy_res *r = result;
    r->value = val(a->salt, a->index) + (shared ? *(const uint64_t *)shared : 0);
    r->index = a->index;
    r->pid = (int32_t)getpid();
    return a->fail;
}

static void test_copies(void)
{
    enum { N = 3000 };
    /* allocated after crew_open: the workers have no copy of this memory,
     * so they can only see the copies crew made */
    copy_arg *args = calloc(N, sizeof *args);
    copy_res *res = calloc(N, sizeof *res);
    crew_task *t = calloc(N, sizeof *t);
    ASSERT(args && res && t);
    _Atomic uint32_t *starts = new_counters(N);
    for (size_t i = 0; i < N; i++) {
        args[i] = (copy_arg){7, i, i % 9 == 4 ? (int)(1 + i % 5) : 0, starts};
        t[i] = (crew_task){.fn = copy_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &res[i], .result_size = sizeof res[i], .status = SENTINEL};
    }
    /* `shared` points into memory from before crew_open */
    ASSERT_EQ(crew_run(pool, &table[5], t, N, NULL), CREW_EFAILED);
    for (size_t i = 0; i < N; i++) {
        /* results come back with a positive error too */
        ASSERT_EQ(t[i].status, args[i].fail);
        ASSERT_EQ(t[i].runs, 1);
        ASSERT_EQ(t[i].detail, 0);
        ASSERT_EQ(atomic_load(&starts[i]), 1);
        ASSERT_UEQ(res[i].value, val(7, i) + table[5]);
        ASSERT_UEQ(res[i].index, i);
        ASSERT(res[i].pid != getpid());
    }
    free(args);
    free(res);
    free(t);
}

/* arg_size 0: the task gets the pointer itself, which points into an arena. */
typedef struct where_res {
    uintptr_t arg;
    uint64_t value;
} where_res;

static int where_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    where_res *r = result;
    r->arg = (uintptr_t)arg;
    r->value = arg ? *(const uint64_t *)arg : UNTOUCHED;
    return 0;
}

static int null_result_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    return result == NULL ? 0 : 1;
}

static int negative_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    return -5;
}

/* Fails without touching its result. */
static int lazy_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    return 6;
}

static void test_pointers(void)
{
    enum { N = 500 };
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    uint64_t *words = CREW_ARENA_PTR(a, uint64_t, CREW_ARENA_ARRAY(a, uint64_t, N));
    ASSERT_NOT_NULL(words);
    where_res res[N + 1];
    crew_task t[N + 1];
    for (size_t i = 0; i < N; i++) {
        words[i] = val(3, i);
        t[i] = (crew_task){.fn = where_task, .arg = &words[i], .result = &res[i],
                           .result_size = sizeof res[i]};
    }
    t[N] = (crew_task){.fn = where_task, .arg = NULL, .result = &res[N],
                       .result_size = sizeof res[N]};
    ASSERT_OK(crew_run(pool, NULL, t, N + 1, NULL));
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(t[i].status, 0);
        ASSERT_UEQ(res[i].arg, (uintptr_t)&words[i]);
        ASSERT_UEQ(res[i].value, val(3, i));
    }
    ASSERT_UEQ(res[N].arg, 0);
    ASSERT_UEQ(res[N].value, UNTOUCHED);

    /* result_size 0: the task gets NULL, and the caller's buffer stays as it was */
    uint64_t buf[4] = {UNTOUCHED, UNTOUCHED, UNTOUCHED, UNTOUCHED};
    crew_task nt[4];
    for (int i = 0; i < 4; i++)
        nt[i] = (crew_task){.fn = null_result_task, .result = &buf[i]};
    ASSERT_OK(crew_run(pool, NULL, nt, 4, NULL));
    for (int i = 0; i < 4; i++) {
        ASSERT_EQ(nt[i].status, 0);
        ASSERT_UEQ(buf[i], UNTOUCHED);
    }
    /*
     * Result bytes a task does not write come back as zeros, never as what
     * an earlier task left in the same shared memory: the copy_task run
     * just before fills results of this layout, and these tasks return an
     * error without writing theirs.
     */
    enum { LAZY = 64 };
    static copy_arg lazy_args[LAZY];
    static copy_res lazy_res[LAZY];
    static crew_task lazy[LAZY];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < LAZY; i++) {
            lazy_args[i] = (copy_arg){5, i, 0, NULL};
            memset(&lazy_res[i], 0xab, sizeof lazy_res[i]);
            lazy[i] = (crew_task){.fn = round ? lazy_task : copy_task, .arg = &lazy_args[i],
                                  .arg_size = sizeof lazy_args[i], .result = &lazy_res[i],
                                  .result_size = sizeof lazy_res[i]};
        }
        ASSERT_EQ(crew_run(pool, NULL, lazy, LAZY, NULL), round ? CREW_EFAILED : 0);
    }
    static const copy_res zero;
    for (size_t i = 0; i < LAZY; i++) {
        ASSERT_EQ(lazy[i].status, 6);
        if (memcmp(&lazy_res[i], &zero, sizeof zero) != 0)
            TEST_FAIL_("task %zu wrote no result, yet got value %#" PRIx64 " index %" PRIu64, i,
                       lazy_res[i].value, lazy_res[i].index);
    }

    /* a negative return is crew's to give: CREW_EINVAL, as with threads */
    crew_task neg = {.fn = negative_task};
    ASSERT_EQ(crew_run(pool, NULL, &neg, 1, NULL), CREW_EFAILED);
    ASSERT_EQ(neg.status, CREW_EINVAL);
    crew_arena_close(a);
}

/* ---- the size limit --------------------------------------------------------------- */

typedef struct big_head {
    uint64_t index;
    _Atomic uint32_t *starts;
} big_head;

/* The argument is a header and words; the result, words derived from them. */
static int big_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const big_head *h = arg;
    atomic_fetch_add(&h->starts[h->index], 1);
    const uint64_t *in = (const uint64_t *)(h + 1);
    size_t in_words = *(const uint64_t *)shared;
    size_t out_words = *((const uint64_t *)shared + 1);
    uint64_t *out = result;
    for (size_t w = 0; w < out_words; w++)
        out[w] = in[w % in_words] * 3 + in[(w * 7) % in_words] + h->index;
    return 0;
}

static void test_size_limit(void)
{
    const size_t max = CREW_PROC_MAX_BYTES;
    /* at the limit: 12 MiB of argument and 4 MiB of result, six at once,
     * more than the shared byte area holds, so it must recycle */
    enum { N = 6 };
    size_t arg_bytes = max / 4 * 3, res_bytes = max - arg_bytes;
    size_t in_words = (arg_bytes - sizeof(big_head)) / 8, out_words = res_bytes / 8;
    _Atomic uint32_t *starts = new_counters(N + 1);
    unsigned char *args[N];
    uint64_t *res[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = malloc(arg_bytes);
        res[i] = malloc(res_bytes);
        ASSERT(args[i] && res[i]);
        big_head h = {i, starts};
        memcpy(args[i], &h, sizeof h);
        uint64_t *in = (uint64_t *)(args[i] + sizeof h);
        for (size_t w = 0; w < in_words; w++)
            in[w] = val(40 + i, w);
        t[i] = (crew_task){.fn = big_task, .arg = args[i], .arg_size = arg_bytes,
                           .result = res[i], .result_size = res_bytes};
    }
    /* `shared` must point where workers see what we write now: an arena */
    crew_ref shape_ref = CREW_ARENA_ARRAY(counters_arena, uint64_t, 2);
    ASSERT_NE(shape_ref, 0);
    uint64_t *shape_arena = CREW_ARENA_PTR(counters_arena, uint64_t, shape_ref);
    shape_arena[0] = in_words;
    shape_arena[1] = out_words;
    test_watchdog_step(&wd, "tasks at the size limit");
    ASSERT_OK(crew_run(pool, shape_arena, t, N, NULL));
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(t[i].status, 0);
        ASSERT_EQ(atomic_load(&starts[i]), 1);
        const uint64_t *in = (const uint64_t *)(args[i] + sizeof(big_head));
        for (size_t w = 0; w < out_words; w++)
            if (res[i][w] != in[w % in_words] * 3 + in[(w * 7) % in_words] + i)
                TEST_FAIL_("task %zu at the size limit: result word %zu wrong", i, w);
    }

    /* one byte over, in three ways: CREW_E2BIG, nothing run, nothing written */
    const size_t over[3][2] = {{arg_bytes, res_bytes + 1}, {max + 1, 0}, {0, max + 1}};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < N; i++) {
            t[i].status = SENTINEL;
            t[i].runs = 77;
            t[i].arg_size = i == N - 1 ? over[k][0] : sizeof(big_head) + 8;
            t[i].result_size = i == N - 1 ? over[k][1] : 8;
        }
        ASSERT_EQ(crew_run(pool, shape_arena, t, N, NULL), CREW_E2BIG);
        for (size_t i = 0; i < N; i++) {
            ASSERT_EQ(t[i].status, SENTINEL);
            ASSERT_EQ(t[i].runs, 77);
            ASSERT_EQ(atomic_load(&starts[i]), 1);
        }
    }
    /* a missing buffer for a nonzero size is CREW_EINVAL, nothing run */
    for (size_t i = 0; i < N; i++)
        t[i] = (crew_task){.fn = big_task, .arg = args[i], .arg_size = sizeof(big_head) + 8,
                           .result = res[i], .result_size = 8, .status = SENTINEL};
    t[2].arg = NULL;
    ASSERT_EQ(crew_run(pool, shape_arena, t, N, NULL), CREW_EINVAL);
    t[2].arg = args[2];
    t[3].result = NULL;
    ASSERT_EQ(crew_run(pool, shape_arena, t, N, NULL), CREW_EINVAL);
    for (size_t i = 0; i < N; i++) {
        ASSERT_EQ(t[i].status, SENTINEL);
        ASSERT_EQ(atomic_load(&starts[i]), 1);
    }
    for (size_t i = 0; i < N; i++) {
        free(args[i]);
        free(res[i]);
    }
}

/* ---- crew_reduce ------------------------------------------------------------------- */

typedef struct stats_acc {
    uint64_t sum, count, xor_;
} stats_acc;

static void stats_init(void *ctx, void *acc)
{
    (void)ctx;
    memset(acc, 0, sizeof(stats_acc));
}

static void stats_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    stats_acc *s = acc;
    for (size_t i = lo; i < hi; i++) {
        s->sum += val(1, i);
        s->count++;
        s->xor_ ^= val(2, i);
    }
}

static void stats_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    stats_acc *s = acc;
    const stats_acc *o = other;
    s->sum += o->sum;
    s->count += o->count;
    s->xor_ ^= o->xor_;
}

/* The sequence e_lo, ..., e_hi-1 as a polynomial hash: h = h * P + e.
 * Concatenation is associative, not commutative, so a misordered or
 * repeated range changes the answer. */
#define POLY 0x100000001b3ull

typedef struct poly_acc {
    uint64_t h, pw; /* pw = P^length */
} poly_acc;

static void poly_init(void *ctx, void *acc)
{
    (void)ctx;
    *(poly_acc *)acc = (poly_acc){0, 1};
}

static void poly_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    poly_acc *p = acc;
    for (size_t i = lo; i < hi; i++) {
        p->h = p->h * POLY + val(3, i);
        p->pw *= POLY;
    }
}

static void poly_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    poly_acc *p = acc;
    const poly_acc *o = other;
    p->h = p->h * o->pw + o->h;
    p->pw *= o->pw;
}

enum { BUCKETS = 4096 }; /* a 16 KiB accumulator */

static void hist_init(void *ctx, void *acc)
{
    (void)ctx;
    memset(acc, 0, BUCKETS * sizeof(uint32_t));
}

static void hist_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    uint32_t *b = acc;
    for (size_t i = lo; i < hi; i++)
        b[val(4, i) % BUCKETS]++;
}

static void hist_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    uint32_t *b = acc;
    const uint32_t *o = other;
    for (size_t k = 0; k < BUCKETS; k++)
        b[k] += o[k];
}

static void test_reduce(void)
{
    static const crew_reducer stats = {sizeof(stats_acc), stats_init, stats_body, stats_combine};
    static const crew_reducer poly = {sizeof(poly_acc), poly_init, poly_body, poly_combine};
    static const crew_reducer hist = {BUCKETS * sizeof(uint32_t), hist_init, hist_body,
                                      hist_combine};
    const size_t begin = 3, end = 3 + (TEST_SANITIZED ? 100000 : 400000);
    stats_acc s_want;
    poly_acc p_want;
    uint32_t *h_want = calloc(BUCKETS, sizeof *h_want), *h_got = malloc(BUCKETS * 4 + 1);
    ASSERT(h_want && h_got);
    stats_init(NULL, &s_want);
    poly_init(NULL, &p_want);
    stats_body(NULL, begin, end, &s_want);
    poly_body(NULL, begin, end, &p_want);
    hist_body(NULL, begin, end, h_want);
    static const size_t grains[] = {0, 1, 777, 1u << 30};
    for (size_t g = 0; g < 4; g++) {
        size_t grain = grains[g];
        size_t e = grain == 1 ? begin + 5000 : end; /* ranges of one: keep it short */
        stats_acc sw = {0}, s = {1, 1, 1};
        poly_acc pw = {0, 1}, p = {1, 1};
        stats_body(NULL, begin, e, &sw);
        poly_body(NULL, begin, e, &pw);
        test_watchdog_step(&wd, "crew_reduce");
        ASSERT_OK(crew_reduce(pool, begin, e, grain, &stats, NULL, &s));
        ASSERT_OK(crew_reduce(pool, begin, e, grain, &poly, NULL, &p));
        if (s.sum != sw.sum || s.count != sw.count || s.xor_ != sw.xor_ || p.h != pw.h ||
            p.pw != pw.pw)
            TEST_FAIL_("grain %zu: reduce differs from the serial fold (count %" PRIu64
                       " vs %" PRIu64 ", hash %#" PRIx64 " vs %#" PRIx64 ")",
                       grain, s.count, sw.count, p.h, pw.h);
        if (e == end) {
            ASSERT_UEQ(s.sum, s_want.sum);
            ASSERT_UEQ(p.h, p_want.h);
            /* an unaligned out works too */
            ASSERT_OK(crew_reduce(pool, begin, end, grain, &hist, NULL, (char *)h_got + 1));
            if (memcmp((char *)h_got + 1, h_want, BUCKETS * 4) != 0)
                TEST_FAIL_("grain %zu: histogram differs from the serial one", grain);
        }
    }
    /* an empty range gives the identity */
    poly_acc p = {5, 5};
    ASSERT_OK(crew_reduce(pool, 9, 9, 0, &poly, NULL, &p));
    ASSERT_UEQ(p.h, 0);
    ASSERT_UEQ(p.pw, 1);
    /* an accumulator over the limit: CREW_E2BIG, out untouched */
    crew_reducer too_big = poly;
    too_big.size = CREW_PROC_MAX_BYTES + 1;
    unsigned char *out = malloc(too_big.size);
    ASSERT_NOT_NULL(out);
    memset(out, 0xab, too_big.size);
    ASSERT_EQ(crew_reduce(pool, 0, 100, 0, &too_big, NULL, out), CREW_E2BIG);
    for (size_t i = 0; i < too_big.size; i += 4093)
        ASSERT_EQ(out[i], 0xab);
    free(out);
    free(h_want);
    free(h_got);
}

/* ---- crew_for ------------------------------------------------------------------------ */

typedef struct cover_ctx {
    _Atomic uint32_t *hits;
    size_t begin, end, grain;
    _Atomic uint32_t calls, bad_shape;
} cover_ctx;

static void cover_body(void *ctx, size_t lo, size_t hi)
{
    cover_ctx *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (lo >= hi || lo < c->begin || hi > c->end ||
        (c->grain && ((lo - c->begin) % c->grain || (hi - lo != c->grain && hi != c->end))))
        atomic_fetch_add(&c->bad_shape, 1);
    for (size_t i = lo; i < hi && i < c->end; i++)
        atomic_fetch_add(&c->hits[i - c->begin], 1);
}

static void test_for(void)
{
    const size_t n = TEST_SANITIZED ? 30011 : 100003;
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, n * 4 + (1 << 20)));
    cover_ctx *c = CREW_ARENA_PTR(a, cover_ctx, CREW_ARENA_NEW(a, cover_ctx));
    ASSERT_NOT_NULL(c);
    c->hits = CREW_ARENA_PTR(a, _Atomic uint32_t, CREW_ARENA_ARRAY(a, _Atomic uint32_t, n));
    ASSERT_NOT_NULL((void *)c->hits);
    static const size_t grains[] = {0, 1, 64, 1000, 100003 + 5};
    for (size_t g = 0; g < 5; g++) {
        c->begin = 7;
        c->end = 7 + (grains[g] == 1 ? 3001 : n);
        c->grain = grains[g];
        atomic_store(&c->calls, 0);
        atomic_store(&c->bad_shape, 0);
        for (size_t i = 0; i < n; i++)
            atomic_store(&c->hits[i], 0);
        test_watchdog_step(&wd, "crew_for coverage");
        ASSERT_OK(crew_for(pool, c->begin, c->end, c->grain, cover_body, c));
        for (size_t i = 0; i < c->end - c->begin; i++)
            if (atomic_load(&c->hits[i]) != 1)
                TEST_FAIL_("grain %zu: index %zu covered %u times", c->grain, c->begin + i,
                           atomic_load(&c->hits[i]));
        ASSERT_EQ(atomic_load(&c->bad_shape), 0);
        if (c->grain)
            ASSERT_EQ(atomic_load(&c->calls), (c->end - c->begin + c->grain - 1) / c->grain);
    }
    /* nothing to do, and bad arguments */
    atomic_store(&c->calls, 0);
    ASSERT_OK(crew_for(pool, 5, 5, 0, cover_body, c));
    ASSERT_EQ(crew_for(pool, 6, 5, 0, cover_body, c), CREW_EINVAL);
    ASSERT_EQ(crew_for(pool, 0, 5, 0, NULL, c), CREW_EINVAL);
    ASSERT_EQ(atomic_load(&c->calls), 0);
    crew_arena_close(a);
}

/* ---- stop_on_error, on_done, progress ---------------------------------------------- */

typedef struct cb_seen {
    size_t n;
    pthread_t caller;
    crew_task *tasks;
    copy_res *res;
    unsigned *done_calls;
    size_t wrong_thread, not_final;
    atomic_int in_progress;
    size_t overlaps, progress_calls, final_calls, last_done, last_failed, backwards;
} cb_seen;

static void cb_on_done(void *ctx, size_t i)
{
    cb_seen *s = ctx;
    if (i >= s->n) {
        s->not_final++;
        return;
    }
    s->done_calls[i]++;
    if (!pthread_equal(pthread_self(), s->caller))
        s->wrong_thread++;
    /* final, and for a task that ran, its result is already here */
    const crew_task *t = &s->tasks[i];
    if (t->status == SENTINEL || (t->status >= 0 && s->res[i].index != i))
        s->not_final++;
}

static void cb_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    cb_seen *s = ctx;
    if (atomic_exchange(&s->in_progress, 1))
        s->overlaps++;
    if (!pthread_equal(pthread_self(), s->caller))
        s->wrong_thread++;
    if (done < s->last_done || failed < s->last_failed || total != s->n || failed > done)
        s->backwards++;
    s->progress_calls++;
    s->final_calls += done == total;
    s->last_done = done;
    s->last_failed = failed;
    atomic_store(&s->in_progress, 0);
}

static cb_seen *cb_new(crew_task *t, copy_res *res, size_t n)
{
    cb_seen *s = calloc(1, sizeof *s);
    ASSERT_NOT_NULL(s);
    s->n = n;
    s->caller = pthread_self();
    s->tasks = t;
    s->res = res;
    s->done_calls = calloc(n + 1, sizeof *s->done_calls);
    ASSERT_NOT_NULL(s->done_calls);
    return s;
}

static void cb_check(cb_seen *s, size_t failed)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->done_calls[i] != 1)
            TEST_FAIL_("on_done(%zu) called %u times", i, s->done_calls[i]);
    ASSERT_EQ(s->wrong_thread, 0);
    ASSERT_EQ(s->not_final, 0);
    ASSERT_EQ(s->overlaps, 0);
    ASSERT_EQ(s->backwards, 0);
    ASSERT_EQ(s->final_calls, 1);
    ASSERT_EQ(s->last_done, s->n);
    ASSERT_EQ(s->last_failed, failed);
    free(s->done_calls);
    free(s);
}

typedef struct slow_arg {
    copy_arg c;
    unsigned us;
} slow_arg;

static int slow_task(const void *shared, const void *arg, void *result)
{
    const slow_arg *a = arg;
    double until = test_now_s() + a->us * 1e-6;
    while (test_now_s() < until)
        ;
    return copy_task(shared, &a->c, result);
}

static void test_stop_and_callbacks(void)
{
    const size_t n = TEST_SANITIZED ? 1000 : 4000;
    slow_arg *args = calloc(n, sizeof *args);
    copy_res *res = calloc(n, sizeof *res);
    crew_task *t = calloc(n, sizeof *t);
    ASSERT(args && res && t);
    for (int stop = 0; stop <= 1; stop++) {
        _Atomic uint32_t *starts = new_counters(n);
        const size_t fail_at = 10;
        for (size_t i = 0; i < n; i++) {
            res[i] = (copy_res){UNTOUCHED, UNTOUCHED, 0};
            args[i] = (slow_arg){{8, i, i == fail_at ? 9 : 0, starts}, 50};
            t[i] = (crew_task){.fn = slow_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &res[i], .result_size = sizeof res[i],
                               .status = SENTINEL, .runs = 77};
        }
        cb_seen *s = cb_new(t, res, n);
        crew_run_opts o = {.stop_on_error = stop, .on_done = cb_on_done,
                           .progress = cb_progress, .ctx = s};
        test_watchdog_step(&wd, "stop_on_error");
        ASSERT_EQ(crew_run(pool, NULL, t, n, &o), CREW_EFAILED);
        size_t cancelled = 0, failed = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t started = atomic_load(&starts[i]);
            if (t[i].status == CREW_ECANCELED) {
                cancelled++;
                if (t[i].runs != 0 || started != 0 || res[i].index != UNTOUCHED)
                    TEST_FAIL_("cancelled task %zu: runs %u, started %u times", i, t[i].runs,
                               started);
            } else {
                int want = i == fail_at ? 9 : 0;
                if (t[i].status != want || t[i].runs != 1 || started != 1 ||
                    res[i].value != val(8, i))
                    TEST_FAIL_("task %zu: status %d (want %d), runs %u, started %u", i,
                               t[i].status, want, t[i].runs, started);
            }
            failed += t[i].status != 0;
        }
        if (stop) {
            /* 50 us tasks: thousands are still to start when task 10 fails */
            if (cancelled < n / 2)
                TEST_FAIL_("stop_on_error: only %zu of %zu tasks cancelled", cancelled, n);
            ASSERT_EQ(t[n - 1].status, CREW_ECANCELED);
        } else {
            ASSERT_EQ(cancelled, 0);
        }
        ASSERT_EQ(failed, 1 + cancelled);
        cb_check(s, failed);
    }
    /* n == 0: progress once, with nothing done of nothing */
    cb_seen *s = cb_new(t, res, 0);
    crew_run_opts o = {.on_done = cb_on_done, .progress = cb_progress, .ctx = s};
    ASSERT_OK(crew_run(pool, NULL, NULL, 0, &o));
    ASSERT_EQ(s->progress_calls, 1);
    cb_check(s, 0);
    free(args);
    free(res);
    free(t);
}

/* While tasks run, progress comes about ten times a second, not more. */
static void test_progress_rate(void)
{
    enum { N = 4 };
    slow_arg args[N];
    copy_res res[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (slow_arg){{12, i, 0, NULL}, 300000};
        t[i] = (crew_task){.fn = slow_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    }
    cb_seen *s = cb_new(t, res, N);
    crew_run_opts o = {.on_done = cb_on_done, .progress = cb_progress, .ctx = s};
    test_watchdog_step(&wd, "progress rate");
    double t0 = test_now_s();
    ASSERT_OK(crew_run(pool, NULL, t, N, &o));
    double took = test_now_s() - t0;
    if (s->progress_calls < 3 || (double)s->progress_calls > 10.0 * took + 3.0)
        TEST_FAIL_("%zu progress calls in a run of %.2f s", s->progress_calls, took);
    cb_check(s, 0);
}

/* ---- re-entry ------------------------------------------------------------------------ */

static void noop_body(void *ctx, size_t lo, size_t hi)
{
    (void)ctx;
    (void)lo;
    (void)hi;
}

typedef struct reenter {
    crew_task inner[3];
    copy_arg inner_args[3];
    copy_res inner_res[3];
    int rc_done, rc_progress, rc_for;
    size_t calls;
} reenter;

static void reenter_call(reenter *r, int *rc)
{
    for (int i = 0; i < 3; i++) {
        r->inner[i].status = SENTINEL;
        r->inner[i].runs = 77;
    }
    *rc = crew_run(pool, NULL, r->inner, 3, NULL);
    for (int i = 0; i < 3; i++)
        if (r->inner[i].status != SENTINEL || r->inner[i].runs != 77)
            *rc = 1; /* a refused call must leave its tasks alone */
}

static void reenter_done(void *ctx, size_t i)
{
    reenter *r = ctx;
    if (i == 5)
        reenter_call(r, &r->rc_done);
    if (i == 6)
        r->rc_for = crew_for(pool, 0, 10, 0, noop_body, NULL);
    r->calls++;
}

static void reenter_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    (void)failed;
    if (done == total)
        reenter_call(ctx, &((reenter *)ctx)->rc_progress);
}

static void test_reentry(void)
{
    enum { N = 50 };
    static reenter r;
    _Atomic uint32_t *starts = new_counters(N);
    for (size_t i = 0; i < 3; i++) {
        r.inner_args[i] = (copy_arg){9, i + 40, 0, starts};
        r.inner[i] = (crew_task){.fn = copy_task, .arg = &r.inner_args[i],
                                 .arg_size = sizeof r.inner_args[i], .result = &r.inner_res[i],
                                 .result_size = sizeof r.inner_res[i]};
    }
    copy_arg args[N];
    copy_res res[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (copy_arg){9, i, 0, starts};
        t[i] = (crew_task){.fn = copy_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    }
    r.rc_done = r.rc_progress = r.rc_for = SENTINEL;
    crew_run_opts o = {.on_done = reenter_done, .progress = reenter_progress, .ctx = &r};
    test_watchdog_step(&wd, "crew_run from on_done");
    ASSERT_OK(crew_run(pool, NULL, t, 40, &o));
    ASSERT_EQ(r.calls, 40);
    ASSERT_EQ(r.rc_done, CREW_EBUSY);
    ASSERT_EQ(r.rc_progress, CREW_EBUSY);
    ASSERT_EQ(r.rc_for, CREW_EBUSY);
    for (size_t i = 0; i < N; i++)
        ASSERT_EQ(atomic_load(&starts[i]), i < 40);
    /* and the pool is fine afterwards, for the tasks that were refused */
    ASSERT_OK(crew_run(pool, NULL, r.inner, 3, NULL));
    for (size_t i = 0; i < 3; i++)
        ASSERT_UEQ(r.inner_res[i].value, val(9, i + 40));
}

/* Calls on the pool from inside a task run there, inline, in that worker. */
typedef struct nest_arg {
    crew *pool;
    uint64_t index;
} nest_arg;

static int inner_pid_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    *(uint64_t *)result = val(10, *(const uint64_t *)arg) ^ (uint64_t)getpid();
    return 0;
}

static void nest_body(void *ctx, size_t lo, size_t hi)
{
    uint64_t *out = ctx;
    for (size_t i = lo; i < hi; i++)
        out[i] = val(11, i) ^ (uint64_t)getpid();
}

/* What the callbacks of a call made inside a task saw. */
typedef struct inline_seen {
    size_t done;
    size_t order[4];
    size_t progress_calls;
    size_t last[3]; /* done, total, failed of the last progress call */
} inline_seen;

static void inline_done(void *ctx, size_t i)
{
    inline_seen *s = ctx;
    if (s->done < 4)
        s->order[s->done] = i;
    s->done++;
}

static void inline_progress(void *ctx, size_t done, size_t total, size_t failed)
{
    inline_seen *s = ctx;
    s->progress_calls++;
    s->last[0] = done;
    s->last[1] = total;
    s->last[2] = failed;
}

static int outer_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    static const crew_reducer poly = {sizeof(poly_acc), poly_init, poly_body, poly_combine};
    const nest_arg *a = arg;
    uint64_t idx[8], res[8], out[100];
    crew_task t[8];
    for (int i = 0; i < 8; i++) {
        idx[i] = a->index * 8 + (uint64_t)i;
        t[i] = (crew_task){.fn = inner_pid_task, .arg = &idx[i], .result = &res[i]};
    }
    if (crew_run(a->pool, NULL, t, 8, NULL) != 0)
        return 1;
    uint64_t me = (uint64_t)getpid(), sum = 0;
    for (int i = 0; i < 8; i++) {
        if (t[i].status != 0 || t[i].runs != 1 || (res[i] ^ me) != val(10, idx[i]))
            return 2;
        sum += res[i] ^ me;
    }
    if (crew_for(a->pool, 0, 100, 7, nest_body, out) != 0)
        return 3;
    for (int i = 0; i < 100; i++)
        if ((out[i] ^ me) != val(11, (uint64_t)i))
            return 4;
    poly_acc p, want;
    poly_init(NULL, &want);
    poly_body(NULL, 0, 300, &want);
    if (crew_reduce(a->pool, 0, 300, 16, &poly, NULL, &p) != 0 || p.h != want.h)
        return 5;
    /* inline too: a negative return is CREW_EINVAL, stop_on_error cancels
     * the rest, on_done and progress come as in the caller */
    crew_task s[4] = {{.fn = null_result_task}, {.fn = negative_task},
                      {.fn = null_result_task}, {.fn = null_result_task}};
    for (int i = 0; i < 4; i++) {
        s[i].status = SENTINEL;
        s[i].runs = 77;
    }
    inline_seen seen = {0, {0}, 0, {0, 0, 0}};
    crew_run_opts o = {.stop_on_error = 1, .on_done = inline_done, .progress = inline_progress,
                       .ctx = &seen};
    if (crew_run(a->pool, NULL, s, 4, &o) != CREW_EFAILED)
        return 6;
    static const int want_status[4] = {0, CREW_EINVAL, CREW_ECANCELED, CREW_ECANCELED};
    static const unsigned want_runs[4] = {1, 1, 0, 0};
    for (int i = 0; i < 4; i++)
        if (s[i].status != want_status[i] || s[i].runs != want_runs[i] ||
            seen.order[i] != (size_t)i)
            return 7;
    if (seen.done != 4 || seen.progress_calls != 1 || seen.last[0] != 4 || seen.last[1] != 4 ||
        seen.last[2] != 3)
        return 8;
    *(uint64_t *)result = sum;
    return 0;
}

static void test_nested(void)
{
    enum { N = 40 };
    nest_arg args[N];
    uint64_t res[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (nest_arg){pool, i};
        t[i] = (crew_task){.fn = outer_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    }
    test_watchdog_step(&wd, "nested calls");
    int rc = crew_run(pool, NULL, t, N, NULL);
    for (size_t i = 0; i < N; i++)
        if (t[i].status != 0)
            TEST_FAIL_("nested calls: outer task %zu failed with %d (see outer_task)", i,
                       t[i].status);
    ASSERT_OK(rc);
    for (size_t i = 0; i < N; i++) {
        uint64_t want = 0;
        for (uint64_t k = 0; k < 8; k++)
            want += val(10, i * 8 + k);
        ASSERT_EQ(t[i].status, 0);
        ASSERT_UEQ(res[i], want);
    }
}

/* ---- threads, crew_submit, crew_join ------------------------------------------------------- */

/* Rounds of tasks from one outside thread; NULL when every result is right. */
static void *runner(void *arg)
{
    crew *p = arg;
    enum { N = 300 };
    static _Atomic uint64_t next_salt = 1000;
    copy_arg args[N];
    copy_res res[N];
    crew_task t[N];
    for (int round = 0; round < (TEST_SANITIZED ? 10 : 30); round++) {
        uint64_t salt = atomic_fetch_add(&next_salt, 1);
        for (size_t i = 0; i < N; i++) {
            args[i] = (copy_arg){salt, i, (int)(i % 17 == 0), NULL};
            t[i] = (crew_task){.fn = copy_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &res[i], .result_size = sizeof res[i]};
        }
        if (crew_run(p, NULL, t, N, NULL) != CREW_EFAILED)
            return (void *)1;
        for (size_t i = 0; i < N; i++)
            if (t[i].status != (int)(i % 17 == 0) || res[i].value != val(salt, i))
                return (void *)2;
    }
    return NULL;
}

static void test_two_threads(void)
{
    test_watchdog_step(&wd, "two threads on one pool");
    TEST_THREADS_OK(2, runner, pool);
}

static int order[4], order_n;

typedef struct join_arg {
    int v;
    pthread_t caller;
} join_arg;

/* Notes the order of the calls, and -1 for one made on another thread. */
static void join_a(void *arg)
{
    const join_arg *a = arg;
    order[order_n++] = pthread_equal(pthread_self(), a->caller) ? a->v : -1;
}

static void test_submit_join(void)
{
    crew_task t = {.fn = null_result_task};
    crew_future *f = (crew_future *)(uintptr_t)0x1234;
    ASSERT_EQ(crew_submit(pool, NULL, &t, &f), CREW_ENOTSUP);
    ASSERT_PTR_EQ(f, (crew_future *)(uintptr_t)0x1234);

    join_arg a = {1, pthread_self()}, b = {2, pthread_self()};
    order_n = 0;
    crew_join(pool, join_a, &a, join_a, &b);
    ASSERT_EQ(order_n, 2);
    ASSERT_EQ(order[0], 1);
    ASSERT_EQ(order[1], 2);
    crew_join(pool, NULL, &a, join_a, &b);
    crew_join(pool, join_a, &a, NULL, &b);
    ASSERT_EQ(order_n, 4);
    ASSERT_EQ(order[2], 2);
    ASSERT_EQ(order[3], 1);
}

/* A thread pool and a process pool in one program, used at once. */
static void *thread_pool_user(void *arg)
{
    crew *tp = arg;
    for (int round = 0; round < 20; round++) {
        poly_acc p, want;
        static const crew_reducer poly = {sizeof(poly_acc), poly_init, poly_body, poly_combine};
        poly_init(NULL, &want);
        poly_body(NULL, 0, 20000, &want);
        if (crew_reduce(tp, 0, 20000, 0, &poly, NULL, &p) != 0 || p.h != want.h)
            return (void *)1;
    }
    return runner(tp);
}

static void test_mixed(void)
{
    crew *tp;
    ASSERT_OK(crew_open(&tp, &(crew_config){.workers = 2}));
    pthread_t th;
    test_watchdog_step(&wd, "thread pool beside a process pool");
    ASSERT_EQ(pthread_create(&th, NULL, thread_pool_user, tp), 0);
    void *r1 = runner(pool);
    void *r2;
    ASSERT_EQ(pthread_join(th, &r2), 0);
    ASSERT_NULL(r1);
    ASSERT_NULL(r2);
    /* a process pool opened while the thread pool's threads exist */
    crew *pp = test_proc_pool(2, 0, 0, 0);
    ASSERT_NULL(runner(pp));
    ASSERT_NULL(thread_pool_user(tp));
    crew_close(pp);
    crew_close(tp);
}

/* ---- a function that is not thread-safe ---------------------------------------------- */

/* The kind of helper old code is full of: tokenizes in a static buffer
 * with strtok, whose position is static too. */
static uint64_t legacy_words(const char *text)
{
    static char buf[128];
    strncpy(buf, text, sizeof buf - 1); /* buf[127] stays 0: reads never leave buf */
    uint64_t h = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
        for (const char *c = w; *c; c++)
            h = h * 131 + (unsigned char)*c;
    return h;
}

/* The same, thread-safe, for the expected answers. */
static uint64_t safe_words(const char *text)
{
    char buf[128], *save = NULL;
    strncpy(buf, text, sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    uint64_t h = 0;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        for (const char *c = w; *c; c++)
            h = h * 131 + (unsigned char)*c;
    return h;
}

typedef struct text_arg {
    char text[96];
} text_arg;

static int legacy_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    *(uint64_t *)result = legacy_words(((const text_arg *)arg)->text);
    return 0;
}

/* Runs the texts on p; returns how many results were wrong. */
static size_t legacy_run(crew *p, const text_arg *texts, const uint64_t *want, size_t n,
                         uint64_t *res, crew_task *t)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = legacy_task, .arg = &texts[i], .arg_size = sizeof texts[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    ASSERT_OK(crew_run(p, NULL, t, n, NULL));
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += res[i] != want[i];
    return wrong;
}

static void test_not_thread_safe(void)
{
    enum { N = 20000 };
    text_arg *texts = calloc(N, sizeof *texts);
    uint64_t *want = calloc(N, sizeof *want), *res = calloc(N, sizeof *res);
    crew_task *t = calloc(N, sizeof *t);
    ASSERT(texts && want && res && t);
    for (size_t i = 0; i < N; i++) {
        uint64_t h = test_mix(i + 1);
        snprintf(texts[i].text, sizeof texts[i].text, "w%" PRIu64 " x%zu y%" PRIu64 " z%" PRIu64
                 " q%zu", h % 100000, i, (h >> 20) % 1000, h >> 40, i * 7);
        want[i] = safe_words(texts[i].text);
    }
    /* threads: the static state is shared, so results go wrong */
    if (UNDER_TSAN) {
        /* ThreadSanitizer reports the race on the static buffer (which is
         * the point) and halts the test: only the process half runs. */
        printf("not thread-safe: thread pool half skipped under ThreadSanitizer\n");
    } else {
        crew *tp;
        ASSERT_OK(crew_open(&tp, &(crew_config){.workers = 2}));
        size_t wrong = 0;
        int tries = 0;
        double until = test_now_s() + 3.0;
        test_watchdog_step(&wd, "not thread-safe: threads");
        while (wrong == 0 && tries < 50 && test_now_s() < until) {
            wrong = legacy_run(tp, texts, want, N, res, t);
            tries++;
        }
        crew_close(tp);
        if (wrong)
            printf("not thread-safe: %zu of %d wrong results on a thread pool (try %d)\n",
                   wrong, N, tries);
        else
            printf("not thread-safe: no wrong result on a thread pool in %d tries of %d tasks "
                   "(the race did not show; that half is skipped)\n",
                   tries, N);
    }
    /* processes: each worker has its own copy of the static state */
    test_watchdog_step(&wd, "not thread-safe: processes");
    for (int round = 0; round < 3; round++) {
        size_t wrong = legacy_run(pool, texts, want, N, res, t);
        if (wrong)
            TEST_FAIL_("not thread-safe: %zu of %d wrong results on a process pool", wrong, N);
    }
    free(texts);
    free(want);
    free(res);
    free(t);
}

/*
 * Accumulators are aligned to 64 bytes on a process pool too, also after
 * calls that filled and emptied the shared memory they live in many times
 * over with items of other sizes (test_not_thread_safe runs 60,000 tasks
 * just before).  Each range counts the misaligned accumulators it saw.
 */
typedef struct align_acc {
    uint64_t sum, misaligned;
} align_acc;

static void align_init(void *ctx, void *acc)
{
    (void)ctx;
    *(align_acc *)acc = (align_acc){0, 0};
}

static void align_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    (void)ctx;
    align_acc *a = acc;
    a->misaligned += (uintptr_t)acc % 64 != 0;
    for (size_t i = lo; i < hi; i++)
        a->sum += i;
}

static void align_combine(void *ctx, void *acc, const void *other)
{
    (void)ctx;
    align_acc *a = acc;
    const align_acc *o = other;
    a->sum += o->sum;
    a->misaligned += o->misaligned;
}

static void test_reduce_alignment(void)
{
    static const crew_reducer r = {sizeof(align_acc), align_init, align_body, align_combine};
    static const size_t grains[] = {1, 7, 100, 0};
    const size_t n = 20000;
    for (size_t g = 0; g < 4; g++) {
        align_acc out = {1, 1};
        test_watchdog_step(&wd, "reduce alignment");
        ASSERT_OK(crew_reduce(pool, 0, n, grains[g], &r, NULL, &out));
        ASSERT_UEQ(out.sum, (uint64_t)n * (n - 1) / 2);
        if (out.misaligned)
            TEST_FAIL_("grain %zu: %" PRIu64 " accumulators not aligned to 64 bytes", grains[g],
                       out.misaligned);
    }
}

/* ---- what the pool reports: statistics, the trace, the tasks' output ------------- */

static int gather_task(const void *shared, const void *arg, void *result)
{
    (void)arg;
    (void)result;
    test_gather_in((test_gather *)(uintptr_t)shared);
    return 0;
}

/*
 * crew_stats for a process pool: each slot names a live worker of its own,
 * and counts what the worker did (each worker has run a task: the gather
 * sees to it).  Counters are updated as workers go, so sleeps is waited
 * for: a worker sleeps once it finds no work, which happens between any
 * two calls.
 */
static void test_stats(void)
{
    test_gather *g = CREW_ARENA_PTR(counters_arena, test_gather,
                                    CREW_ARENA_NEW(counters_arena, test_gather));
    ASSERT_NOT_NULL(g);
    g->want = WORKERS;
    crew_task t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        t[i] = (crew_task){.fn = gather_task};
    test_watchdog_step(&wd, "stats");
    ASSERT_OK(crew_run(pool, g, t, WORKERS, NULL));
    crew_worker_stats st[WORKERS + 2];
    double until = test_now_s() + 5.0;
    for (;;) {
        ASSERT_EQ(crew_stats(pool, st, WORKERS + 2), WORKERS);
        int all_slept = 1;
        for (int i = 0; i < WORKERS; i++)
            all_slept = all_slept && st[i].sleeps > 0;
        if (all_slept || test_now_s() > until)
            break;
        usleep(1000);
    }
    for (int i = 0; i < WORKERS; i++) {
        if (st[i].jobs == 0 || st[i].busy_ns == 0 || st[i].sleeps == 0)
            TEST_FAIL_("worker %d: jobs %" PRIu64 ", busy_ns %" PRIu64 ", sleeps %" PRIu64, i,
                       st[i].jobs, st[i].busy_ns, st[i].sleeps);
        ASSERT_GT(st[i].pid, 0);
        ASSERT_NE(st[i].pid, getpid());
        ASSERT_EQ(st[i].restarts, 0);
        for (int k = 0; k < i; k++)
            ASSERT_NE(st[k].pid, st[i].pid);
        /* read from the worker's smaps_rollup: a live process has some of each */
        if (st[i].rss == 0 || st[i].pss == 0 || st[i].uss == 0 || st[i].uss > st[i].rss)
            TEST_FAIL_("worker %d: rss %" PRIu64 ", pss %" PRIu64 ", uss %" PRIu64, i, st[i].rss,
                       st[i].pss, st[i].uss);
    }
}

/* Opened before crew_open, so that workers hold it too. */
static FILE *task_log;

/* Writes a line through stdio and leaves it in the buffer. */
static int log_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    fprintf(task_log, "task %" PRIu64 "\n", *(const uint64_t *)arg);
    return 0;
}

/*
 * What a task prints through stdio reaches its file by the time its call
 * returns: a worker never exits through exit(), so output left in its
 * buffers would be lost (a file or a pipe is fully buffered).
 */
static void test_task_output(const char *path)
{
    enum { N = 8 };
    uint64_t idx[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        idx[i] = i;
        t[i] = (crew_task){.fn = log_task, .arg = &idx[i], .arg_size = sizeof idx[i]};
    }
    test_watchdog_step(&wd, "task output");
    ASSERT_OK(crew_run(pool, NULL, t, N, NULL));
    FILE *f = fopen(path, "re");
    ASSERT_NOT_NULL(f);
    unsigned seen[N] = {0};
    char line[64];
    size_t lines = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned k;
        lines++;
        if (sscanf(line, "task %u", &k) == 1 && k < N)
            seen[k]++;
    }
    fclose(f);
    ASSERT_EQ(lines, N);
    for (size_t i = 0; i < N; i++)
        if (seen[i] != 1)
            TEST_FAIL_("the line of task %zu is in the file %u times", i, seen[i]);
}

static void for_nothing(void *ctx, size_t lo, size_t hi)
{
    (void)ctx;
    (void)lo;
    (void)hi;
}

/* Occurrences of `what` in the file at path. */
static size_t count_in_file(const char *path, const char *what)
{
    FILE *f = fopen(path, "re");
    if (!f)
        TEST_FAIL_("%s was not written", path);
    size_t n = 0, len = strlen(what);
    char buf[1 << 16];
    size_t have = 0, got;
    while ((got = fread(buf + have, 1, sizeof buf - 1 - have, f)) > 0) {
        have += got;
        buf[have] = '\0';
        char *at = buf;
        while ((at = strstr(at, what)) != NULL) {
            n++;
            at += len;
        }
        /* keep a tail shorter than `what`, which may continue in the next block */
        size_t keep = have < len ? have : len - 1;
        memmove(buf, buf + have - keep, keep);
        have = keep;
    }
    fclose(f);
    return n;
}

/* A process pool's trace holds one event per task and per range, in the
 * slot of the worker that ran it. */
static void test_trace(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    crew *tp = NULL;
    ASSERT_OK(crew_open(&tp, &(crew_config){.workers = WORKERS, .isolation = CREW_PROCESSES,
                                             .trace_path = path}));
    enum { N = 50 };
    copy_arg args[N];
    copy_res res[N];
    crew_task t[N];
    for (size_t i = 0; i < N; i++) {
        args[i] = (copy_arg){3, i, 0, NULL};
        t[i] = (crew_task){.fn = copy_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    }
    test_watchdog_step(&wd, "trace");
    ASSERT_OK(crew_run(tp, NULL, t, N, NULL));
    ASSERT_OK(crew_for(tp, 0, 100, 10, for_nothing, NULL));
    crew_close(tp);
    ASSERT_EQ(count_in_file(path, "\"name\":\"task\",\"ph\":\"X\""), N);
    ASSERT_EQ(count_in_file(path, "\"name\":\"range\",\"ph\":\"X\""), 10);
    ASSERT_GE(count_in_file(path, "\"args\":{\"name\":\"process "), 1);
}

/* worker_exit runs in every worker that ends normally (retired or closed),
 * in that worker's process, before crew_resize / crew_close return...
 * or at least before crew_close returns; a thread pool refuses it. */
static const char *exit_dir;
static FILE *exit_log; /* opened before the workers fork: a stdio buffer of theirs */
static int task_touch(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    usleep(2000);
    return 0;
}
static void on_exit_worker(void *ctx)
{
    char path[700];
    snprintf(path, sizeof path, "%s/exit.%d.%s", exit_dir, (int)getpid(), (const char *)ctx);
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
    /* left in the buffer: crew flushes stdio after worker_exit */
    fprintf(exit_log, "exit %d\n", (int)getpid());
}

static void test_worker_exit(const char *dir)
{
    exit_dir = dir;
    crew *p;
    crew_config bad = {.workers = 2, .worker_exit = on_exit_worker};
    ASSERT_EQ(crew_open(&p, &bad), CREW_EINVAL);
    char log_path[700];
    snprintf(log_path, sizeof log_path, "%s/exit.log", dir);
    unlink(log_path);
    exit_log = fopen(log_path, "a");
    ASSERT_NOT_NULL(exit_log);
    ASSERT_EQ(setvbuf(exit_log, NULL, _IOFBF, 4096), 0);
    crew_config cfg = {.workers = 3, .isolation = CREW_PROCESSES, .worker_exit = on_exit_worker,
                       .worker_ctx = "tag"};
    ASSERT_OK(crew_open(&p, &cfg));
    crew_task t[30];
    for (int i = 0; i < 30; i++)
        t[i] = (crew_task){.fn = task_touch};
    ASSERT_OK(crew_run(p, NULL, t, 30, NULL));
    crew_worker_stats st[3];
    ASSERT_EQ(crew_stats(p, st, 3), 3);
    crew_close(p);
    for (int i = 0; i < 3; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/exit.%d.tag", dir, (int)st[i].pid);
        ASSERT_EQ(access(path, F_OK), 0);
        unlink(path);
    }
    fclose(exit_log);
    FILE *f = fopen(log_path, "r");
    ASSERT_NOT_NULL(f);
    char text[4096];
    size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = '\0';
    fclose(f);
    unlink(log_path);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "exit %d\n", (int)st[i].pid);
        ASSERT_NOT_NULL(strstr(text, line));
    }
}

int main(void)
{
    for (size_t i = 0; i < 1024; i++)
        table[i] = test_mix(i ^ 0x5a5a);
    char *dir = scratch_dir();
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/tasks.log", dir);
    task_log = fopen(log_path, "ae");
    ASSERT_NOT_NULL(task_log);
    test_watchdog_start(&wd, 30, "open", test_hung);
    pool = test_proc_pool(WORKERS, 0, 0, 0);
    ASSERT_OK(crew_arena_create(&counters_arena, (size_t)64 << 20));
    test_watchdog_step(&wd, "copies");
    test_copies();
    test_pointers();
    test_size_limit();
    test_reduce();
    test_for();
    test_stop_and_callbacks();
    test_progress_rate();
    test_reentry();
    test_nested();
    test_two_threads();
    test_submit_join();
    test_mixed();
    test_not_thread_safe();
    test_reduce_alignment();
    test_stats();
    test_task_output(log_path);
    test_trace(dir);
    test_worker_exit(dir);
    crew_close(pool);
    crew_arena_close(counters_arena);
    fclose(task_log);
    cleanup_dir(dir);
    test_watchdog_stop(&wd);
    printf("test_proc: ok\n");
    return 0;
}
