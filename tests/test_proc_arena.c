/*
 * Description: what the workers of a process pool see of arenas.  Arenas
 * created before and after crew_open are readable in tasks at the same
 * address; unfrozen ones are shared both ways (crew_for writes its output
 * there, the caller's later writes reach the workers, growth too); writing
 * to a frozen or snapshot arena fails with CREW_EREADONLY and says where;
 * freezing while the pool is open seals the arena in the workers too
 * (and still refuses while a process that is not a worker maps it
 * writable); snapshots opened after crew_open and arenas that replace
 * closed ones at the same address show their own contents; and N workers
 * reading a 256 MiB frozen arena share its pages (the sum of their PSS is
 * about one copy).
 */
#include "proc_util.h"

#define WORKERS 2

static test_watchdog wd;

static uint64_t val(uint64_t salt, uint64_t i)
{
    return test_mix(salt * 0x9E3779B97F4A7C15ull + i);
}

/* ---- tasks ------------------------------------------------------------------ */

/* Result: the 8 bytes at the address the argument holds. */
static int peek_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const volatile uint64_t *at = *(const volatile uint64_t *const *)arg;
    *(uint64_t *)result = *at;
    return 0;
}

typedef struct poke_arg {
    volatile uint64_t *at;
    uint64_t value;
} poke_arg;

static int poke_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    const poke_arg *a = arg;
    *a->at = a->value;
    return 0;
}

/* Peek at each address in one run; fail unless every task read `want`. */
static void peek_all(crew *pool, uint64_t *const *at, const uint64_t *want, size_t n,
                     const char *what)
{
    crew_task *t = calloc(n, sizeof *t);
    uint64_t *res = calloc(n, sizeof *res);
    ASSERT(t && res);
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = peek_task, .arg = &at[i], .arg_size = sizeof at[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    int rc = crew_run(pool, NULL, t, n, NULL);
    for (size_t i = 0; i < n; i++)
        if (rc != 0 || t[i].status != 0 || t[i].runs != 1 || res[i] != want[i])
            TEST_FAIL_("%s: crew_run returned %s; task %zu read %p: status %s, runs %u, value "
                       "%#" PRIx64 ", want %#" PRIx64,
                       what, crew_err_name(rc), i, (void *)at[i], crew_err_name(t[i].status),
                       t[i].runs, res[i], want[i]);
    free(t);
    free(res);
}

/* An arena of n words val(salt, i), with its words' addresses and values. */
typedef struct filled {
    crew_arena *a;
    crew_ref ref;
    size_t n;
    uint64_t **at;
    uint64_t *want;
} filled;

static filled fill_arena(size_t n, uint64_t salt, int freeze)
{
    filled f = {.n = n};
    ASSERT_OK(crew_arena_create(&f.a, n * 8 + (1 << 20)));
    f.ref = CREW_ARENA_ARRAY(f.a, uint64_t, n);
    ASSERT_NE(f.ref, 0);
    uint64_t *w = CREW_ARENA_PTR(f.a, uint64_t, f.ref);
    f.at = calloc(n, sizeof *f.at);
    f.want = calloc(n, sizeof *f.want);
    ASSERT(f.at && f.want);
    for (size_t i = 0; i < n; i++) {
        w[i] = val(salt, i);
        f.at[i] = &w[i];
        f.want[i] = w[i];
    }
    if (freeze)
        ASSERT_OK(crew_arena_freeze(f.a));
    return f;
}

static void filled_free(filled *f)
{
    crew_arena_close(f->a);
    free(f->at);
    free(f->want);
}

/*
 * Write to each of `n` addresses in a read-only arena `a`: every task
 * fails with CREW_EREADONLY, and says which address and offset; the
 * arena is unchanged.
 */
static void poke_readonly(crew *pool, const crew_arena *a, uint64_t *const *at, size_t n,
                          const char *what)
{
    crew_task t[16];
    poke_arg args[16];
    uint64_t before[16];
    ASSERT_LE(n, 16);
    for (size_t i = 0; i < n; i++) {
        before[i] = *at[i];
        args[i] = (poke_arg){at[i], ~before[i]};
        t[i] = (crew_task){.fn = poke_task, .arg = &args[i], .arg_size = sizeof args[i]};
    }
    ASSERT_EQ(crew_run(pool, NULL, t, n, NULL), CREW_EFAILED);
    uintptr_t base = (uintptr_t)crew_arena_base(a);
    for (size_t i = 0; i < n; i++) {
        uintptr_t addr = (uintptr_t)at[i];
        if (t[i].status != CREW_EREADONLY || t[i].runs != 1 || t[i].fault_addr != addr ||
            t[i].fault_offset != addr - base)
            TEST_FAIL_("%s: write %zu to %#lx (offset %#lx): status %s, runs %u, fault_addr "
                       "%#lx, fault_offset %#" PRIx64,
                       what, i, (unsigned long)addr, (unsigned long)(addr - base),
                       crew_err_name(t[i].status), t[i].runs, (unsigned long)t[i].fault_addr,
                       t[i].fault_offset);
        ASSERT_UEQ(*at[i], before[i]);
    }
}

/* A few addresses across a filled arena: first word, one on another page, last. */
static size_t spots(const filled *f, uint64_t **at)
{
    at[0] = f->at[0];
    at[1] = f->at[f->n / 2 + 3];
    at[2] = f->at[f->n - 1];
    return 3;
}

/* ---- tests ------------------------------------------------------------------------ */

/* Arenas from before and after crew_open, frozen or not: readable at the
 * same address, and unfrozen ones shared both ways. */
static void test_before_and_after_open(void)
{
    enum { N = 5000 };
    filled pre_frozen = fill_arena(N, 1, 1);
    filled pre_open = fill_arena(N, 2, 0);
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    filled post_frozen = fill_arena(N, 3, 1);
    filled post_open = fill_arena(N, 4, 0);
    filled *all[4] = {&pre_frozen, &pre_open, &post_frozen, &post_open};
    static const char *const names[4] = {"frozen before open", "writable before open",
                                         "frozen after open", "writable after open"};
    for (int k = 0; k < 4; k++)
        peek_all(pool, all[k]->at, all[k]->want, N, names[k]);

    /* the caller's later writes to writable arenas reach the workers */
    for (int k = 1; k < 4; k += 2) {
        for (size_t i = 0; i < N; i += 7) {
            *all[k]->at[i] = val(99, i);
            all[k]->want[i] = val(99, i);
        }
        peek_all(pool, all[k]->at, all[k]->want, N, "after the caller wrote");
    }
    /* and the workers' writes reach the caller */
    for (int k = 1; k < 4; k += 2) {
        poke_arg args[100];
        crew_task t[100];
        for (size_t i = 0; i < 100; i++) {
            args[i] = (poke_arg){all[k]->at[i * 31], val(77, i)};
            t[i] = (crew_task){.fn = poke_task, .arg = &args[i], .arg_size = sizeof args[i]};
        }
        ASSERT_OK(crew_run(pool, NULL, t, 100, NULL));
        for (size_t i = 0; i < 100; i++)
            ASSERT_UEQ(*all[k]->at[i * 31], val(77, i));
    }
    /* writes to the frozen ones fail and say where */
    for (int k = 0; k < 4; k += 2) {
        uint64_t *at[3];
        poke_readonly(pool, all[k]->a, at, spots(all[k], at), names[k]);
    }
    crew_close(pool);
    for (int k = 0; k < 4; k++)
        filled_free(all[k]);
}

/* crew_for bodies write their output into a writable arena made after
 * crew_open; ctx points into it too (the workers have no copy of memory
 * the caller allocated after crew_open). */
typedef struct out_ctx {
    uint64_t *out;
    uint64_t salt;
} out_ctx;

static void out_body(void *ctx, size_t lo, size_t hi)
{
    const out_ctx *c = ctx;
    for (size_t i = lo; i < hi; i++)
        c->out[i] += val(c->salt, i);
}

static void test_for_output(void)
{
    const size_t n = TEST_SANITIZED ? 200000 : 1000000;
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, n * 8 + (1 << 20)));
    out_ctx *c = CREW_ARENA_PTR(a, out_ctx, CREW_ARENA_NEW(a, out_ctx));
    ASSERT_NOT_NULL(c);
    static const size_t grains[] = {0, 1000, 77777};
    for (size_t g = 0; g < 3; g++) {
        /* a new output array each time: the arena grows after the workers mapped it */
        c->out = CREW_ARENA_PTR(a, uint64_t, CREW_ARENA_ARRAY(a, uint64_t, n / 4));
        ASSERT_NOT_NULL(c->out);
        c->salt = 5 + g;
        test_watchdog_step(&wd, "crew_for into an arena");
        ASSERT_OK(crew_for(pool, 0, n / 4, grains[g], out_body, c));
        for (size_t i = 0; i < n / 4; i++)
            if (c->out[i] != val(c->salt, i))
                TEST_FAIL_("grain %zu: out[%zu] = %#" PRIx64 ", want %#" PRIx64, grains[g], i,
                           c->out[i], val(c->salt, i));
    }
    crew_arena_close(a);
    crew_close(pool);
}

/* Freezing while the pool is open: workers that mapped the arena writable
 * lose the right to write; what they wrote before stays. */
static void test_freeze_while_open(void)
{
    enum { N = 1000 };
    filled before_open = fill_arena(N, 11, 0);
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    filled after_open = fill_arena(N, 12, 0);
    filled *all[2] = {&before_open, &after_open};
    for (int k = 0; k < 2; k++) {
        filled *f = all[k];
        /* many tasks, so that every worker maps the arena writable */
        poke_arg args[N];
        crew_task t[N];
        for (size_t i = 0; i < N; i++) {
            args[i] = (poke_arg){f->at[i], val(13, i)};
            f->want[i] = val(13, i);
            t[i] = (crew_task){.fn = poke_task, .arg = &args[i], .arg_size = sizeof args[i]};
        }
        ASSERT_OK(crew_run(pool, NULL, t, N, NULL));
        ASSERT_OK(crew_arena_freeze(f->a));
        ASSERT_EQ(crew_arena_frozen(f->a), 1);
        uint64_t *at[3];
        poke_readonly(pool, f->a, at, spots(f, at), k ? "frozen after open, while open"
                                                      : "frozen before open, while open");
        peek_all(pool, f->at, f->want, N, "frozen while open");
    }
    crew_close(pool);
    filled_free(&before_open);
    filled_free(&after_open);
}

/*
 * The workers do not count when freezing, but other processes do: while a
 * child the caller forked maps the arena writable, freeze must refuse
 * (CREW_EBUSY), open pool or not, or that child could go on changing a
 * "frozen" arena under every reader.
 */
static void test_freeze_busy_with_pool(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    volatile uint64_t *w = CREW_ARENA_PTR(a, uint64_t, CREW_ARENA_NEW(a, uint64_t));
    ASSERT_NOT_NULL((void *)w);
    *w = 1;
    int go[2], done[2];
    ASSERT_EQ(pipe(go), 0);
    ASSERT_EQ(pipe(done), 0);
    fflush(NULL);
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        char ch;
        close(go[1]);
        close(done[0]);
        if (read(go[0], &ch, 1) != 1)
            _exit(1);
        *w = 2; /* through the mapping inherited before any freeze */
        _exit(write(done[1], "d", 1) == 1 ? 0 : 1);
    }
    close(go[0]);
    close(done[1]);
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    int rc = crew_arena_freeze(a);
    char ch;
    ASSERT_EQ(write(go[1], "g", 1), 1);
    ASSERT_EQ(read(done[0], &ch, 1), 1);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uint64_t seen = *w;
    crew_close(pool);
    close(go[1]);
    close(done[0]);
    if (rc == 0)
        TEST_FAIL_("crew_arena_freeze returned 0 while a forked child mapped the arena "
                   "writable (a process pool was open); the child then changed the frozen "
                   "arena: %" PRIu64 " -> %" PRIu64,
                   (uint64_t)1, seen);
    ASSERT_EQ(rc, CREW_EBUSY);
    ASSERT_UEQ(seen, 2); /* not frozen: the child's write is legitimately seen */
    ASSERT_OK(crew_arena_freeze(a));
    crew_arena_close(a);
}

/* Snapshots opened after crew_open (by path, verified or not, and a frozen
 * memfd adopted through its fd): readable, and read-only with offsets
 * counted from crew_arena_base (a snapshot's data starts past its header). */
static void test_snapshots(void)
{
    enum { N = 4000 };
    char *dir = scratch_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/data.crew", dir);
    filled src = fill_arena(N, 21, 0);
    crew_arena_set_root(src.a, src.ref);
    ASSERT_OK(crew_arena_save(src.a, path));
    ASSERT_OK(crew_arena_freeze(src.a));
    crew_arena *opened[4];
    ASSERT_OK(crew_arena_open(&opened[3], path, 0)); /* before crew_open, for contrast */
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    ASSERT_OK(crew_arena_open(&opened[0], path, 0));
    ASSERT_OK(crew_arena_open(&opened[1], path, CREW_ARENA_VERIFY));
    ASSERT_OK(crew_arena_open_fd(&opened[2], crew_arena_fd(src.a), 0));
    filled_free(&src); /* the adopted one keeps its own fd */
    static const char *const names[4] = {"snapshot", "verified snapshot", "adopted memfd",
                                         "snapshot opened before crew_open"};
    uint64_t **at = calloc(N, sizeof *at);
    uint64_t *want = calloc(N, sizeof *want);
    ASSERT(at && want);
    for (int k = 0; k < 4; k++) {
        crew_ref root = crew_arena_root(opened[k]);
        ASSERT_NE(root, 0);
        const uint64_t *w = CREW_ARENA_GET_ARRAY(opened[k], uint64_t, root, N);
        ASSERT_NOT_NULL(w);
        for (size_t i = 0; i < N; i++) {
            at[i] = (uint64_t *)(uintptr_t)&w[i];
            want[i] = val(21, i);
            ASSERT_UEQ(w[i], want[i]);
        }
        peek_all(pool, at, want, N, names[k]);
        uint64_t *some[3] = {at[0], at[N / 2 + 1], at[N - 1]};
        poke_readonly(pool, opened[k], some, 3, names[k]);
    }
    for (int k = 0; k < 4; k++)
        crew_arena_close(opened[k]);
    crew_close(pool);
    free(at);
    free(want);
    cleanup_dir(dir);
}

/* An arena closed and another made in its place: tasks see the new one. */
static void test_replaced(void)
{
    enum { N = 2000, ROUNDS = 12 };
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    const void *first_base = NULL;
    int same = 0;
    for (int r = 0; r < ROUNDS; r++) {
        filled f = fill_arena(N, 100 + (uint64_t)r, r % 2);
        if (r == 0)
            first_base = crew_arena_base(f.a);
        same += crew_arena_base(f.a) == first_base;
        peek_all(pool, f.at, f.want, N, "arena in a closed one's place");
        if (r % 2) {
            uint64_t *at[3];
            poke_readonly(pool, f.a, at, spots(&f, at), "frozen arena in a closed one's place");
        }
        filled_free(&f);
    }
    printf("replaced arenas: %d of %d at the first one's address\n", same, ROUNDS);
    /* many at once, made between calls */
    filled many[40];
    for (int k = 0; k < 40; k++)
        many[k] = fill_arena(64, 200 + (uint64_t)k, k % 3 == 0);
    for (int k = 0; k < 40; k++)
        peek_all(pool, many[k].at, many[k].want, 64, "one of many arenas");
    for (int k = 0; k < 40; k++)
        filled_free(&many[k]);
    crew_close(pool);
}

/* An arena that grows after the workers mapped it: the new part is seen. */
static void test_growth(void)
{
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, (size_t)256 << 20));
    uint64_t *first = CREW_ARENA_PTR(a, uint64_t, CREW_ARENA_NEW(a, uint64_t));
    ASSERT_NOT_NULL(first);
    *first = 42;
    uint64_t want = 42;
    peek_all(pool, &first, &want, 1, "small arena");
    enum { CHUNKS = 8 };
    uint64_t *at[CHUNKS];
    uint64_t wants[CHUNKS];
    for (int k = 0; k < CHUNKS; k++) {
        uint64_t *p = CREW_ARENA_PTR(a, uint64_t, crew_arena_alloc(a, (size_t)4 << 20, 64));
        ASSERT_NOT_NULL(p);
        at[k] = p + ((size_t)4 << 20) / 8 - 1; /* the last word of each */
        *at[k] = wants[k] = val(31, (uint64_t)k);
    }
    peek_all(pool, at, wants, CHUNKS, "grown arena");
    crew_arena_close(a);
    crew_close(pool);
}

/* A crew_for body that writes to a frozen arena: the loop fails with
 * CREW_EREADONLY, as crew_for reports the first failure of a range. */
static void write_body(void *ctx, size_t lo, size_t hi)
{
    uint64_t *w = ctx;
    for (size_t i = lo; i < hi; i++)
        w[i] = i;
}

static void test_for_readonly(void)
{
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    filled f = fill_arena(1000, 41, 1);
    test_watchdog_step(&wd, "crew_for writing to a frozen arena");
    ASSERT_EQ(crew_for(pool, 0, 1000, 0, write_body, f.at[0]), CREW_EREADONLY);
    ASSERT_EQ(crew_for(pool, 0, 1000, 100, write_body, f.at[0]), CREW_EREADONLY);
    for (size_t i = 0; i < 1000; i++)
        ASSERT_UEQ(*f.at[i], f.want[i]);
    filled_free(&f);
    crew_close(pool);
}

/* Many arenas at once: every one open when a call starts is seen. */
static void test_many_arenas(void)
{
    enum { N = 4200 }; /* more than a few thousand, as a real data set split in pieces may */
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    crew_arena **as = calloc(N, sizeof *as);
    uint64_t **at = calloc(N, sizeof *at);
    uint64_t *want = calloc(N, sizeof *want);
    ASSERT(as && at && want);
    for (size_t i = 0; i < N; i++) {
        ASSERT_OK(crew_arena_create(&as[i], 4096));
        at[i] = CREW_ARENA_PTR(as[i], uint64_t, CREW_ARENA_NEW(as[i], uint64_t));
        ASSERT_NOT_NULL(at[i]);
        *at[i] = want[i] = val(51, i);
    }
    test_watchdog_step(&wd, "many arenas");
    peek_all(pool, at, want, N, "one of thousands of arenas");
    for (size_t i = 0; i < N; i++)
        crew_arena_close(as[i]);
    free(as);
    free(at);
    free(want);
    crew_close(pool);
}

/* ---- memory: one copy of the data for every worker ------------------------------ */

typedef struct scan_arg {
    const uint64_t *data;
    size_t words;
    test_gather *g;      /* every worker takes a scan */
} scan_arg;

/* Reads one word per page, so every page is mapped. */
static int scan_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const scan_arg *a = arg;
    test_gather_in(a->g);
    uint64_t sum = 0;
    for (size_t i = 0; i < a->words; i += 512)
        sum += a->data[i];
    *(uint64_t *)result = sum;
    return 0;
}

static void test_pss(void)
{
    const size_t bytes = (size_t)256 << 20;
    const size_t words = bytes / 8;
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, bytes + (1 << 20)));
    uint64_t *data = CREW_ARENA_PTR(a, uint64_t, crew_arena_alloc(a, bytes, 4096));
    ASSERT_NOT_NULL(data);
    for (size_t i = 0; i < words; i++)
        data[i] = i * 0x9E3779B97F4A7C15ull;
    ASSERT_OK(crew_arena_freeze(a));
    /* after the freeze, which mapped the arena anew: the caller maps every
     * page too, so each page has WORKERS + 1 users */
    uint64_t want = 0;
    for (size_t i = 0; i < words; i += 512)
        want += data[i];
    crew_arena *ga;
    ASSERT_OK(crew_arena_create(&ga, 1 << 20));
    test_gather *g = CREW_ARENA_PTR(ga, test_gather, CREW_ARENA_NEW(ga, test_gather));
    ASSERT_NOT_NULL(g);
    g->want = WORKERS;
    scan_arg arg = {data, words, g};
    enum { TASKS = 8 };
    crew_task t[TASKS];
    uint64_t sums[TASKS];
    for (int i = 0; i < TASKS; i++)
        t[i] = (crew_task){.fn = scan_task, .arg = &arg, .arg_size = sizeof arg,
                           .result = &sums[i], .result_size = sizeof sums[i]};
    test_watchdog_step(&wd, "pss: scan");
    ASSERT_OK(crew_run(pool, NULL, t, TASKS, NULL));
    for (int i = 0; i < TASKS; i++)
        ASSERT_UEQ(sums[i], want);

    crew_worker_stats st[WORKERS];
    ASSERT_EQ(crew_stats(pool, st, WORKERS), WORKERS);
    uint64_t pss = 0, uss = 0;
    long arena_pss = 0;
    for (int i = 0; i < WORKERS; i++) {
        ASSERT_GT(st[i].jobs, 0); /* so it really read all of it */
        ASSERT_GT(st[i].pid, 0);
        long rss_kb, pss_kb;
        range_pss(st[i].pid, crew_arena_base(a), crew_arena_size(a), &rss_kb, &pss_kb);
        ASSERT_GE(rss_kb, (long)(bytes >> 10));
        arena_pss += pss_kb;
        pss += st[i].pss;
        uss += st[i].uss;
        ASSERT_GE(st[i].rss, bytes); /* crew_stats sees the arena in the worker too */
    }
    printf("%d workers reading %zu MiB: arena PSS %ld MiB in the workers, whole-process PSS "
           "%" PRIu64 " MiB, USS %" PRIu64 " MiB\n",
           WORKERS, bytes >> 20, arena_pss >> 10, pss >> 20, uss >> 20);
    /* The caller and the workers share the pages: the workers' share of
     * the arena is WORKERS / (WORKERS + 1) of one copy. */
    ASSERT_LE(arena_pss, (long)(bytes >> 10) * WORKERS / (WORKERS + 1) + 1024);
    /* what a user sees: far below a copy per worker */
    ASSERT_LT(pss, bytes + WORKERS * ((uint64_t)16 << 20));
    ASSERT_LT(uss, WORKERS * ((uint64_t)32 << 20));
    crew_arena_close(a);
    crew_close(pool);
    crew_arena_close(ga);
}

int main(void)
{
    test_watchdog_start(&wd, 30, "before and after open", test_hung);
    test_before_and_after_open();
    test_watchdog_step(&wd, "crew_for output");
    test_for_output();
    test_watchdog_step(&wd, "freeze while open");
    test_freeze_while_open();
    test_watchdog_step(&wd, "snapshots");
    test_snapshots();
    test_watchdog_step(&wd, "replaced");
    test_replaced();
    test_watchdog_step(&wd, "growth");
    test_growth();
    test_for_readonly();
    test_watchdog_step(&wd, "pss");
    test_pss();
    test_watchdog_step(&wd, "freeze busy with a pool open");
    test_many_arenas();
    test_freeze_busy_with_pool();
    test_watchdog_stop(&wd);
    printf("test_proc_arena: ok\n");
    return 0;
}
