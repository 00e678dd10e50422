/*
 * Description: crew_reduce gives the serial answer, in index order.
 *
 * An integer sum must match exactly; a non-commutative but associative
 * combine (2x2 matrix product mod p, and a "sequence" accumulator that
 * remembers which indexes it holds) must give the left-to-right result;
 * accumulators of 24 and 200 bytes work and every accumulator crew hands to
 * a callback is 64-byte aligned, even when *out is not; an empty range
 * yields the identity; bad arguments give CREW_EINVAL with *out untouched.
 */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "crew.h"
#include "test.h"

/* Shared by every reducer: what the callbacks saw that they should not. */
typedef struct watch {
    size_t begin, end, grain;
    atomic_int misaligned;  /* acc or other not 64-byte aligned */
    atomic_int bad_range;   /* empty, outside [begin, end), or wrong length */
    atomic_int same_acc;    /* combine(acc, acc) */
    atomic_int uninit;      /* an accumulator that init never saw */
    atomic_long calls;      /* every callback call */
} watch;

static void check_acc(watch *w, const void *acc)
{
    atomic_fetch_add_explicit(&w->calls, 1, memory_order_relaxed);
    if ((uintptr_t)acc % 64 != 0)
        atomic_fetch_add(&w->misaligned, 1);
}

static void check_range(watch *w, size_t lo, size_t hi)
{
    int ok = lo < hi && lo >= w->begin && hi <= w->end;
    if (ok && w->grain)
        ok = (hi - lo == w->grain || (hi == w->end && hi - lo < w->grain)) &&
             (lo - w->begin) % w->grain == 0;
    if (!ok)
        atomic_fetch_add(&w->bad_range, 1);
}

static void check_combine(watch *w, const void *acc, const void *other)
{
    check_acc(w, acc);
    check_acc(w, other);
    if (acc == other)
        atomic_fetch_add(&w->same_acc, 1);
}

static void watch_ok(watch *w, const char *what)
{
    if (atomic_load(&w->misaligned) || atomic_load(&w->bad_range) ||
        atomic_load(&w->same_acc) || atomic_load(&w->uninit))
        TEST_FAIL_("%s over [%zu, %zu) grain %zu: %d misaligned accumulators, %d bad ranges, "
                   "%d self-combines, %d uninitialised accumulators",
                   what, w->begin, w->end, w->grain, atomic_load(&w->misaligned),
                   atomic_load(&w->bad_range), atomic_load(&w->same_acc),
                   atomic_load(&w->uninit));
}

/* ---- integer sum (8 bytes) ----------------------------------------------- */

static void sum_init(void *ctx, void *acc)
{
    check_acc(ctx, acc);
    *(uint64_t *)acc = 0;
}

static void sum_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    check_acc(ctx, acc);
    check_range(ctx, lo, hi);
    uint64_t s = 0;
    for (size_t i = lo; i < hi; i++)
        s += test_mix(i);
    *(uint64_t *)acc += s;
}

static void sum_combine(void *ctx, void *acc, const void *other)
{
    check_combine(ctx, acc, other);
    *(uint64_t *)acc += *(const uint64_t *)other;
}

static const crew_reducer sum_reducer = {sizeof(uint64_t), sum_init, sum_body, sum_combine};

/* ---- 2x2 matrix product mod p (non-commutative) ---------------------------- */

#define P 1000000007ULL

typedef struct mat {
    uint64_t m[4];
} mat;

static mat mat_mul(mat a, mat b)
{
    return (mat){{(a.m[0] * b.m[0] + a.m[1] * b.m[2]) % P, (a.m[0] * b.m[1] + a.m[1] * b.m[3]) % P,
                  (a.m[2] * b.m[0] + a.m[3] * b.m[2]) % P, (a.m[2] * b.m[1] + a.m[3] * b.m[3]) % P}};
}

static mat mat_of(size_t i)
{
    uint64_t h = test_mix(i + 1);
    return (mat){{h % P, (h >> 20) % P, (h >> 30) % 1000, (h >> 40) % P}};
}

static const mat mat_id = {{1, 0, 0, 1}};

static void mat_init(void *ctx, void *acc)
{
    check_acc(ctx, acc);
    *(mat *)acc = mat_id;
}

static void mat_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    check_acc(ctx, acc);
    check_range(ctx, lo, hi);
    mat a = *(mat *)acc;
    for (size_t i = lo; i < hi; i++)
        a = mat_mul(a, mat_of(i));
    *(mat *)acc = a;
}

static void mat_combine(void *ctx, void *acc, const void *other)
{
    check_combine(ctx, acc, other);
    *(mat *)acc = mat_mul(*(mat *)acc, *(const mat *)other);
}

static const crew_reducer mat_reducer = {sizeof(mat), mat_init, mat_body, mat_combine};

static mat mat_serial(size_t begin, size_t end)
{
    mat a = mat_id;
    for (size_t i = begin; i < end; i++)
        a = mat_mul(a, mat_of(i));
    return a;
}

/* ---- sequence: which indexes, in which order (24 bytes) -------------------- */

#define SEQ_MAGIC 0x5e9u

typedef struct seq {
    size_t first, last;  /* [first, last] when count > 0 */
    uint32_t count_lo;   /* count mod 2^32 */
    uint16_t magic;      /* set by init */
    uint16_t broken;     /* saw a gap or a wrong order */
} seq;

static void seq_init(void *ctx, void *acc)
{
    check_acc(ctx, acc);
    *(seq *)acc = (seq){0, 0, 0, SEQ_MAGIC, 0};
}

static void seq_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    watch *w = ctx;
    check_acc(w, acc);
    check_range(w, lo, hi);
    seq *s = acc;
    if (s->magic != SEQ_MAGIC)
        atomic_fetch_add(&w->uninit, 1);
    if (lo >= hi)
        return;
    if (s->count_lo == 0)
        s->first = lo;
    else if (s->last + 1 != lo)
        s->broken = 1;
    s->last = hi - 1;
    s->count_lo += (uint32_t)(hi - lo);
}

static void seq_combine(void *ctx, void *acc, const void *other)
{
    watch *w = ctx;
    check_combine(w, acc, other);
    seq *a = acc;
    const seq *b = other;
    if (a->magic != SEQ_MAGIC || b->magic != SEQ_MAGIC)
        atomic_fetch_add(&w->uninit, 1);
    a->broken |= b->broken;
    if (b->count_lo == 0)
        return;
    if (a->count_lo == 0) {
        a->first = b->first;
    } else if (a->last + 1 != b->first) {
        a->broken = 1;
    }
    a->last = b->last;
    a->count_lo += b->count_lo;
}

static const crew_reducer seq_reducer = {sizeof(seq), seq_init, seq_body, seq_combine};

/* ---- histogram (200 bytes) --------------------------------------------- */

#define BINS 25

typedef struct hist {
    uint64_t bin[BINS];
} hist;

static void hist_init(void *ctx, void *acc)
{
    check_acc(ctx, acc);
    memset(acc, 0, sizeof(hist));
}

static void hist_body(void *ctx, size_t lo, size_t hi, void *acc)
{
    check_acc(ctx, acc);
    check_range(ctx, lo, hi);
    hist *h = acc;
    for (size_t i = lo; i < hi; i++)
        h->bin[test_mix(i) % BINS] += i % 1000;
}

static void hist_combine(void *ctx, void *acc, const void *other)
{
    check_combine(ctx, acc, other);
    hist *h = acc;
    const hist *o = other;
    for (int b = 0; b < BINS; b++)
        h->bin[b] += o->bin[b];
}

static const crew_reducer hist_reducer = {sizeof(hist), hist_init, hist_body, hist_combine};

/* ---- driver ------------------------------------------------------------- */

/* *out deliberately 8 bytes past a 64-byte boundary. */
typedef struct out_buf {
    alignas(64) unsigned char bytes[512];
} out_buf;

static void *reduce_checked(crew *pool, size_t begin, size_t end, size_t grain,
                            const crew_reducer *r, watch *w, out_buf *buf, const char *what)
{
    *w = (watch){.begin = begin, .end = end, .grain = grain};
    memset(buf->bytes, 0xAB, sizeof buf->bytes);
    void *out = buf->bytes + 8;
    int rc = crew_reduce(pool, begin, end, grain, r, w, out);
    if (rc != 0)
        TEST_FAIL_("%s over [%zu, %zu) grain %zu: %d (%s)", what, begin, end, grain, rc,
                   crew_strerror(rc));
    watch_ok(w, what);
    /* Bytes past the accumulator are not touched. */
    for (size_t i = 8 + r->size; i < sizeof buf->bytes; i++)
        if (buf->bytes[i] != 0xAB)
            TEST_FAIL_("%s wrote past *out: byte %zu", what, i - 8);
    return out;
}

static void check_all(crew *pool, size_t begin, size_t end, size_t grain)
{
    watch w;
    out_buf buf;
    size_t n = end - begin;

    uint64_t want_sum = 0;
    for (size_t i = begin; i < end; i++)
        want_sum += test_mix(i);
    uint64_t got_sum;
    memcpy(&got_sum, reduce_checked(pool, begin, end, grain, &sum_reducer, &w, &buf, "sum"),
           sizeof got_sum);
    if (got_sum != want_sum)
        TEST_FAIL_("sum over [%zu, %zu) grain %zu: %" PRIu64 ", want %" PRIu64, begin, end,
                   grain, got_sum, want_sum);

    mat want_mat = mat_serial(begin, end), got_mat;
    memcpy(&got_mat, reduce_checked(pool, begin, end, grain, &mat_reducer, &w, &buf, "matrix"),
           sizeof got_mat);
    if (memcmp(&got_mat, &want_mat, sizeof want_mat) != 0)
        TEST_FAIL_("matrix product over [%zu, %zu) grain %zu differs from serial", begin, end,
                   grain);

    seq got_seq;
    memcpy(&got_seq, reduce_checked(pool, begin, end, grain, &seq_reducer, &w, &buf, "sequence"),
           sizeof got_seq);
    ASSERT_EQ(got_seq.magic, SEQ_MAGIC);
    if (got_seq.broken)
        TEST_FAIL_("sequence over [%zu, %zu) grain %zu: combined out of order", begin, end, grain);
    ASSERT_UEQ(got_seq.count_lo, (uint32_t)n);
    if (n) {
        ASSERT_UEQ(got_seq.first, begin);
        ASSERT_UEQ(got_seq.last, end - 1);
    }

    hist want_hist = {{0}}, got_hist;
    for (size_t i = begin; i < end; i++)
        want_hist.bin[test_mix(i) % BINS] += i % 1000;
    memcpy(&got_hist, reduce_checked(pool, begin, end, grain, &hist_reducer, &w, &buf, "histogram"),
           sizeof got_hist);
    for (int b = 0; b < BINS; b++)
        ASSERT_UEQ(got_hist.bin[b], want_hist.bin[b]);
}

static void test_sizes(crew *pool)
{
    static const size_t sizes[] = {0, 1, 2, 7, 1000, 100000, 1000000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        if (TEST_SANITIZED && n > 100000)
            continue;
        size_t grains[] = {0, 1, 3, 1000, n + 1};
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            if (grains[g] == 1 && n > 100000)
                continue;
            check_all(pool, 0, n, grains[g]);
            check_all(pool, 999, 999 + n, grains[g]);
        }
    }
    check_all(pool, SIZE_MAX - 50000, SIZE_MAX, 0);
    check_all(pool, SIZE_MAX - 5000, SIZE_MAX, 7);
    check_all(pool, SIZE_MAX - 1, SIZE_MAX, 0);
}

/* The matrices really do not commute: a combine in the wrong order would be
 * caught.  (Checks the test, not crew.) */
static void test_matrices_do_not_commute(void)
{
    mat ab = mat_mul(mat_serial(0, 500), mat_serial(500, 1000));
    mat ba = mat_mul(mat_serial(500, 1000), mat_serial(0, 500));
    ASSERT(memcmp(&ab, &ba, sizeof ab) != 0);
    mat whole = mat_serial(0, 1000);
    ASSERT(memcmp(&ab, &whole, sizeof ab) == 0);
}

/* An empty range overwrites *out with the identity. */
static void test_empty(crew *pool)
{
    watch w;
    out_buf buf;
    uint64_t s;
    memcpy(&s, reduce_checked(pool, 5, 5, 0, &sum_reducer, &w, &buf, "empty sum"), sizeof s);
    ASSERT_UEQ(s, 0);
    mat m;
    memcpy(&m, reduce_checked(pool, 0, 0, 3, &mat_reducer, &w, &buf, "empty matrix"), sizeof m);
    ASSERT(memcmp(&m, &mat_id, sizeof m) == 0);
}

static void test_bad_args(crew *pool)
{
    watch w = {0};
    uint64_t out = 0x1122334455667788ULL;
    const crew_reducer no_size = {0, sum_init, sum_body, sum_combine};
    const crew_reducer no_init = {8, NULL, sum_body, sum_combine};
    const crew_reducer no_body = {8, sum_init, NULL, sum_combine};
    const crew_reducer no_combine = {8, sum_init, sum_body, NULL};
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, &no_size, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, &no_init, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, &no_body, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, &no_combine, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, NULL, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 0, 10, 0, &sum_reducer, &w, NULL), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(NULL, 0, 10, 0, &sum_reducer, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, 11, 10, 0, &sum_reducer, &w, &out), CREW_EINVAL);
    ASSERT_EQ(crew_reduce(pool, SIZE_MAX, 0, 1, &sum_reducer, &w, &out), CREW_EINVAL);
    /* Empty but reversed is still an error: begin > end. */
    ASSERT_EQ(crew_reduce(pool, 1, 0, 0, &sum_reducer, &w, &out), CREW_EINVAL);
    ASSERT_UEQ(out, 0x1122334455667788ULL);
    ASSERT_EQ(atomic_load(&w.calls), 0);
}

/* ---- nested: reduce inside crew_for bodies and crew_run tasks ------------ */

typedef struct nested {
    crew *pool;
    mat out[64];
    int failed;
} nested;

static void reduce_each(void *ctx, size_t lo, size_t hi)
{
    nested *n = ctx;
    for (size_t i = lo; i < hi; i++) {
        watch w = {.begin = i * 100, .end = i * 100 + 3000};
        if (crew_reduce(n->pool, i * 100, i * 100 + 3000, 0, &mat_reducer, &w, &n->out[i]) != 0)
            n->failed = 1;
        watch_ok(&w, "nested matrix");
    }
}

static int reduce_task(const void *shared, const void *arg, void *result)
{
    crew *pool = (crew *)shared;
    size_t i = *(const size_t *)arg;
    watch w = {.begin = i, .end = i * 7 + 5000};
    if (crew_reduce(pool, i, i * 7 + 5000, i % 3, &seq_reducer, &w, result) != 0)
        return 1;
    watch_ok(&w, "sequence in a task");
    return 0;
}

static void test_nested(crew *pool)
{
    nested n = {pool, {{{0}}}, 0};
    ASSERT_OK(crew_for(pool, 0, 64, 1, reduce_each, &n));
    ASSERT_EQ(n.failed, 0);
    for (size_t i = 0; i < 64; i++) {
        mat want = mat_serial(i * 100, i * 100 + 3000);
        ASSERT(memcmp(&n.out[i], &want, sizeof want) == 0);
    }

    size_t args[40];
    seq results[40];
    crew_task tasks[40];
    for (size_t i = 0; i < 40; i++) {
        args[i] = i;
        tasks[i] = (crew_task){.fn = reduce_task, .arg = &args[i], .result = &results[i]};
    }
    ASSERT_OK(crew_run(pool, pool, tasks, 40, NULL));
    for (size_t i = 0; i < 40; i++) {
        ASSERT_EQ(tasks[i].status, 0);
        ASSERT_EQ(results[i].broken, 0);
        ASSERT_UEQ(results[i].first, i);
        ASSERT_UEQ(results[i].last, i * 7 + 4999);
        ASSERT_UEQ(results[i].count_lo, i * 6 + 5000);
    }
}

int main(void)
{
    test_matrices_do_not_commute();
    static const unsigned sizes[] = {1, 2, 4, 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        crew *pool;
        ASSERT_OK(crew_open(&pool, &(crew_config){.workers = sizes[s]}));
        test_bad_args(pool);
        test_empty(pool);
        test_sizes(pool);
        test_nested(pool);
        crew_close(pool);
    }
    printf("test_reduce: ok\n");
    return 0;
}
