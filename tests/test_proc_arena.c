/*
 * Description: what the workers of a process pool see of arenas.  Arenas
 * created before and after crew_open are readable in tasks at the same
 * address; unfrozen ones are shared both ways (crew_for writes its output
 * there, the caller's later writes reach the workers, growth too); tasks
 * reading arena handles get the caller's answers, and cannot change the
 * caller's arenas; writing to a frozen or snapshot arena fails with
 * CREW_EREADONLY and says where (that task only: not a process it forked,
 * not the next task in the slot); freezing while the pool is open seals
 * the arena in the workers too, also during a call (and still refuses
 * while a process that is not a worker maps it writable, leaving the
 * arena usable by the workers); snapshots opened after crew_open and
 * arenas that replace closed ones at the same address show their own
 * contents; an arena a task creates stays its worker's own; workers hold
 * no arena's fd; the address range arenas live in is given back whole as
 * they close; and N workers reading a 256 MiB frozen arena share its
 * pages (the sum of their PSS is about one copy), which do not count
 * against a memory limit.
 */
#include "proc_util.h"

#define WORKERS 2
#define SENTINEL_RC 12345

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
    /* nothing of an earlier task's fault (poke_readonly) sticks to these */
    for (size_t i = 0; i < n; i++)
        if (t[i].detail != 0 || t[i].fault_addr != 0 || t[i].fault_offset != 0)
            TEST_FAIL_("%s: task %zu succeeded with detail %d, fault_addr %#lx, fault_offset "
                       "%#" PRIx64,
                       what, i, t[i].detail, (unsigned long)t[i].fault_addr, t[i].fault_offset);
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

/* What a task reads through an arena's handle. */
typedef struct handle_view {
    uint64_t size, root;
    int64_t frozen;
} handle_view;

static int handle_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const crew_arena *a = *(const crew_arena *const *)arg;
    *(handle_view *)result = (handle_view){crew_arena_size(a), crew_arena_root(a),
                                           crew_arena_frozen(a)};
    return 0;
}

/*
 * Tasks reading the handles of arenas (crew_arena_size, _root, _frozen)
 * get the caller's answers as of the call's start, also for arenas whose
 * objects the workers hold as copies from crew_open.  Several tasks per
 * arena: whichever worker runs one must answer right.
 */
static void handles_agree(crew *pool, filled *const *all, size_t n, const char *what)
{
    enum { EACH = 8 };
    const crew_arena *h[4 * EACH];
    handle_view got[4 * EACH];
    crew_task t[4 * EACH];
    ASSERT_LE(n, 4);
    for (size_t i = 0; i < n * EACH; i++) {
        h[i] = all[i % n]->a;
        t[i] = (crew_task){.fn = handle_task, .arg = &h[i], .arg_size = sizeof h[i],
                           .result = &got[i], .result_size = sizeof got[i]};
    }
    ASSERT_OK(crew_run(pool, NULL, t, n * EACH, NULL));
    for (size_t i = 0; i < n * EACH; i++) {
        const crew_arena *a = h[i];
        if (got[i].size != crew_arena_size(a) || got[i].root != crew_arena_root(a) ||
            got[i].frozen != crew_arena_frozen(a))
            TEST_FAIL_("%s: arena %zu in a task: size %" PRIu64 ", root %" PRIu64 ", frozen %"
                       PRId64 "; the caller says %zu, %" PRIu64 ", %d",
                       what, i % n, got[i].size, got[i].root, got[i].frozen, crew_arena_size(a),
                       (uint64_t)crew_arena_root(a), crew_arena_frozen(a));
    }
}

/* 1 when process pid has a file descriptor open on arena a's file. */
static int holds_arena_fd(pid_t pid, const crew_arena *a)
{
    struct stat mine;
    ASSERT_EQ(fstat(crew_arena_fd(a), &mine), 0);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char path[400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        found = e->d_name[0] != '.' && stat(path, &st) == 0 && st.st_dev == mine.st_dev &&
                st.st_ino == mine.st_ino;
    }
    closedir(d);
    return found;
}

/*
 * The supervisor and the workers are forked with a copy of every fd the
 * caller had at crew_open, arenas' included.  They must let those go, or
 * an arena the caller closes would live on (its memory, or its file)
 * until crew_close.
 */
static void no_arena_fds(crew *pool, filled *const *all, size_t n)
{
    pid_t procs[WORKERS + 1];
    ASSERT_EQ(pool_pids(pool, procs, WORKERS), WORKERS);
    procs[WORKERS] = pool_supervisor(pool);
    for (size_t k = 0; k < n; k++)
        for (int i = 0; i <= WORKERS; i++)
            if (holds_arena_fd(procs[i], all[k]->a))
                TEST_FAIL_("the pool's %s %d holds an fd of arena %zu", i < WORKERS ? "worker"
                           : "supervisor", (int)procs[i], k);
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
    no_arena_fds(pool, all, 4);

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
    /* tasks ask the handles, and hear what the caller would answer now */
    for (int k = 1; k < 4; k += 2) {
        crew_ref more = CREW_ARENA_ARRAY(all[k]->a, uint64_t, 1000);
        ASSERT_NE(more, 0);
        crew_arena_set_root(all[k]->a, more);
    }
    handles_agree(pool, all, 4, "after allocations");
    ASSERT_OK(crew_arena_freeze(pre_open.a));
    handles_agree(pool, all, 4, "after a freeze between calls");
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
 * A task's crash is CREW_EREADONLY only when that task wrote to a
 * read-only arena: not because a process the task forked did (it dies of
 * it, the task goes on), nor because the worker that last ran in the slot
 * did.  One worker, so the tasks run in order in the same slot.
 */
static int fork_poke_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        *(volatile uint64_t *)*(uint64_t *const *)arg = 7;
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child)
        return 2;
    *(int *)result = WIFSIGNALED(status) ? WTERMSIG(status) : -1;
    return 0;
}

static int segv_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    test_die_segv();
    return 1;
}

static void test_readonly_is_per_task(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    filled f = fill_arena(1000, 15, 1);
    int child_sig = 0;
    poke_arg poke = {f.at[3], 9};
    crew_task t[4] = {
        {.fn = fork_poke_task, .arg = &f.at[1], .arg_size = sizeof f.at[1],
         .result = &child_sig, .result_size = sizeof child_sig},
        {.fn = segv_task},
        {.fn = poke_task, .arg = &poke, .arg_size = sizeof poke},
        {.fn = segv_task},
    };
    test_watchdog_step(&wd, "read-only faults are per task");
    ASSERT_EQ(crew_run(pool, NULL, t, 4, NULL), CREW_EFAILED);
    ASSERT_EQ(t[0].status, 0);
    ASSERT_EQ(child_sig, SIGSEGV);
    ASSERT_EQ(t[1].status, CREW_ECRASHED);
    ASSERT_EQ(t[1].detail, SIGSEGV);
    ASSERT_EQ(t[2].status, CREW_EREADONLY);
    ASSERT_UEQ(t[2].fault_addr, (uintptr_t)f.at[3]);
    ASSERT_EQ(t[3].status, CREW_ECRASHED);
    ASSERT_EQ(t[3].detail, SIGSEGV);
    ASSERT_UEQ(t[3].fault_addr, 0);
    crew_close(pool);
    filled_free(&f);
}

/*
 * Freezing while a call runs: the caller's on_done freezes an arena the
 * pool's one worker maps writable, then lets that worker's task crash.
 * The replacement worker maps the arena in the same call, from a table
 * that still calls it writable: it maps it read-only, so it reads the
 * data and its writes fail with CREW_EREADONLY; the arena is frozen for
 * the caller, and stays so.
 */
typedef struct midcall {
    crew_arena *a;
    _Atomic uint32_t *frozen; /* in another arena, which stays writable */
    int rc;
} midcall;

static int wait_then_abort_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    _Atomic uint32_t *flag = *(_Atomic uint32_t *const *)arg;
    double until = test_now_s() + 10.0;
    while (!atomic_load(flag) && test_now_s() < until)
        ;
    abort();
}

static void freeze_on_done(void *ctx, size_t i)
{
    midcall *m = ctx;
    if (i == 0) {
        m->rc = crew_arena_freeze(m->a);
        atomic_store(m->frozen, 1);
    }
}

static void test_freeze_during_call(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    filled f = fill_arena(1000, 14, 0);
    crew_arena *flags;
    ASSERT_OK(crew_arena_create(&flags, 1 << 20));
    midcall m = {f.a, CREW_ARENA_PTR(flags, _Atomic uint32_t, CREW_ARENA_NEW(flags, uint32_t)),
                 SENTINEL_RC};
    ASSERT_NOT_NULL((void *)m.frozen);
    uint64_t got[3] = {0, 0, 0};
    poke_arg poke = {f.at[500], 1};
    crew_task t[4] = {
        {.fn = peek_task, .arg = &f.at[10], .arg_size = sizeof f.at[10], .result = &got[0],
         .result_size = sizeof got[0]},
        {.fn = wait_then_abort_task, .arg = &m.frozen, .arg_size = sizeof m.frozen},
        {.fn = peek_task, .arg = &f.at[900], .arg_size = sizeof f.at[900], .result = &got[2],
         .result_size = sizeof got[2]},
        {.fn = poke_task, .arg = &poke, .arg_size = sizeof poke},
    };
    crew_run_opts opts = {.on_done = freeze_on_done, .ctx = &m};
    test_watchdog_step(&wd, "freeze during a call");
    ASSERT_EQ(crew_run(pool, NULL, t, 4, &opts), CREW_EFAILED);
    ASSERT_OK(m.rc);
    ASSERT_EQ(t[0].status, 0);
    ASSERT_UEQ(got[0], f.want[10]);
    ASSERT_EQ(t[1].status, CREW_ECRASHED);
    ASSERT_EQ(t[1].detail, SIGABRT);
    if (t[2].status != 0 || got[2] != f.want[900])
        TEST_FAIL_("a worker started after the freeze, in the same call: reading the arena gave "
                   "status %s, value %#" PRIx64 " (want %#" PRIx64 ")",
                   crew_err_name(t[2].status), got[2], f.want[900]);
    ASSERT_EQ(t[3].status, CREW_EREADONLY);
    ASSERT_UEQ(t[3].fault_addr, (uintptr_t)f.at[500]);
    ASSERT_UEQ(*f.at[500], f.want[500]);
    ASSERT_EQ(crew_arena_frozen(f.a), 1);
    /* and in the next call every worker has it read-only */
    peek_all(pool, f.at, f.want, f.n, "frozen during the last call");
    uint64_t *at[3];
    poke_readonly(pool, f.a, at, spots(&f, at), "frozen during the last call");
    ASSERT_EQ(crew_arena_frozen(f.a), 1);
    crew_close(pool);
    filled_free(&f);
    crew_arena_close(flags);
}

/* In every worker (the gather sees to it): read *w, which must be `from`
 * or, once a task has written it, `to`; then write `to`.  0 when all went
 * so. */
typedef struct swap_arg {
    volatile uint64_t *w;
    uint64_t from, to;
} swap_arg;

static int swap_task(const void *shared, const void *arg, void *result)
{
    (void)result;
    const swap_arg *a = arg;
    test_gather_in((test_gather *)(uintptr_t)shared);
    uint64_t seen = *a->w;
    if (seen != a->from && seen != a->to)
        return 1;
    *a->w = a->to;
    return 0;
}

static int swap_everywhere(crew *pool, test_gather *g, volatile uint64_t *w, uint64_t from,
                           uint64_t to)
{
    enum { N = 4 * WORKERS };
    memset(g, 0, sizeof *g);
    g->want = WORKERS;
    swap_arg arg = {w, from, to};
    crew_task t[N];
    for (int i = 0; i < N; i++)
        t[i] = (crew_task){.fn = swap_task, .arg = &arg, .arg_size = sizeof arg};
    return crew_run(pool, g, t, N, NULL);
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
    /* every worker maps it writable too */
    crew_arena *ga;
    ASSERT_OK(crew_arena_create(&ga, 1 << 20));
    test_gather *g = CREW_ARENA_PTR(ga, test_gather, CREW_ARENA_NEW(ga, test_gather));
    ASSERT_NOT_NULL(g);
    ASSERT_OK(swap_everywhere(pool, g, w, 1, 1));
    int rc = crew_arena_freeze(a);
    char ch;
    ASSERT_EQ(write(go[1], "g", 1), 1);
    ASSERT_EQ(read(done[0], &ch, 1), 1);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uint64_t seen = *w;
    close(go[1]);
    close(done[0]);
    if (rc == 0)
        TEST_FAIL_("crew_arena_freeze returned 0 while a forked child mapped the arena "
                   "writable (a process pool was open); the child then changed the frozen "
                   "arena: %" PRIu64 " -> %" PRIu64,
                   (uint64_t)1, seen);
    ASSERT_EQ(rc, CREW_EBUSY);
    ASSERT_UEQ(seen, 2); /* not frozen: the child's write is legitimately seen */
    /* The workers gave up their writable mappings when the freeze asked,
     * before it was refused: the arena is as it was for them too, shared
     * both ways. */
    ASSERT_OK(swap_everywhere(pool, g, w, 2, 3));
    ASSERT_UEQ(*w, 3);
    crew_close(pool);
    crew_arena_close(ga);
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

/*
 * Only the caller changes its arenas.  From a task, crew_arena_alloc
 * fails, crew_arena_set_root does nothing, crew_arena_freeze is
 * CREW_EINVAL and crew_arena_close does nothing: the caller sees the
 * arena as it was, and the worker (one, so it runs every task) still
 * reads it afterwards.
 */
enum { M_ALLOC, M_ROOT, M_FREEZE, M_CLOSE, M_PEEK };

typedef struct meddle_arg {
    int what;
    crew_arena *a;
    crew_ref other_root;   /* M_ROOT: not the root */
    const uint64_t *word;  /* M_PEEK */
} meddle_arg;

static int meddle_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const meddle_arg *m = arg;
    int64_t *out = result;
    switch (m->what) {
    case M_ALLOC: *out = (int64_t)crew_arena_alloc(m->a, 64, 8); break;
    case M_ROOT:
        crew_arena_set_root(m->a, m->other_root);
        *out = (int64_t)crew_arena_root(m->a);
        break;
    case M_FREEZE: *out = crew_arena_freeze(m->a); break;
    case M_CLOSE: crew_arena_close(m->a); *out = 0; break;
    case M_PEEK: *out = (int64_t)*m->word; break;
    }
    return 0;
}

static void test_tasks_leave_arenas_alone(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    filled f = fill_arena(100, 16, 0);
    crew_arena_set_root(f.a, f.ref);
    size_t size = crew_arena_size(f.a);
    static const char *const names[5] = {"alloc", "set_root", "freeze", "close", "read"};
    meddle_arg args[5];
    int64_t out[5];
    crew_task t[5];
    for (int i = 0; i < 5; i++) {
        args[i] = (meddle_arg){i, f.a, f.ref + 8, f.at[7]};
        out[i] = -1;
        t[i] = (crew_task){.fn = meddle_task, .arg = &args[i], .arg_size = sizeof args[i],
                           .result = &out[i], .result_size = sizeof out[i]};
    }
    test_watchdog_step(&wd, "tasks leave arenas alone");
    ASSERT_OK(crew_run(pool, NULL, t, 5, NULL));
    const int64_t want[5] = {0, (int64_t)f.ref, CREW_EINVAL, 0, (int64_t)f.want[7]};
    for (int i = 0; i < 5; i++)
        if (out[i] != want[i])
            TEST_FAIL_("crew_arena_%s from a task: %" PRId64 ", want %" PRId64, names[i],
                       out[i], want[i]);
    ASSERT_UEQ(crew_arena_size(f.a), size);
    ASSERT_UEQ(crew_arena_root(f.a), f.ref);
    ASSERT_EQ(crew_arena_frozen(f.a), 0);
    /* still the caller's to grow and to freeze, and still the workers' to read */
    crew_ref more = CREW_ARENA_ARRAY(f.a, uint64_t, 10);
    ASSERT_NE(more, 0);
    peek_all(pool, f.at, f.want, f.n, "after tasks meddled with it");
    ASSERT_OK(crew_arena_freeze(f.a));
    crew_close(pool);
    filled_free(&f);
}

/*
 * An arena a task creates is its worker's own: it must not take an
 * address the caller may give an arena of its own later, which the
 * worker would then map over it.  The task keeps its arena (in a static
 * of its worker, the pool's only one) and a later task reads it back,
 * after the caller has made an arena of the same size.
 */
static crew_arena *worker_own; /* in the worker */

static int own_arena_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const uint64_t *caller_word = *(const uint64_t *const *)arg;
    uint64_t *res = result;
    if (!worker_own) {
        if (crew_arena_create(&worker_own, 1 << 20) != 0)
            return 1;
        crew_ref r = CREW_ARENA_ARRAY(worker_own, uint64_t, 512);
        uint64_t *w = CREW_ARENA_PTR(worker_own, uint64_t, r);
        if (!w)
            return 2;
        for (size_t i = 0; i < 512; i++)
            w[i] = val(17, i);
        crew_arena_set_root(worker_own, r);
    }
    const uint64_t *w = CREW_ARENA_GET_ARRAY(worker_own, uint64_t, crew_arena_root(worker_own),
                                             512);
    if (!w)
        return 3;
    for (size_t i = 0; i < 512; i++)
        if (w[i] != val(17, i))
            return 4;
    res[0] = (uintptr_t)crew_arena_base(worker_own);
    res[1] = caller_word ? *caller_word : 0;
    return 0;
}

static void test_worker_own_arena(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    const uint64_t *none = NULL;
    uint64_t res[2] = {0, 0};
    crew_task t = {.fn = own_arena_task, .arg = &none, .arg_size = sizeof none, .result = res,
                   .result_size = sizeof res};
    test_watchdog_step(&wd, "an arena of the worker's own");
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    uint64_t own_base = res[0];
    /* the caller's next arena, of the same size, made after the task's */
    crew_arena *mine;
    ASSERT_OK(crew_arena_create(&mine, 1 << 20));
    uint64_t *word = CREW_ARENA_PTR(mine, uint64_t, CREW_ARENA_NEW(mine, uint64_t));
    ASSERT_NOT_NULL(word);
    *word = val(18, 0);
    const uint64_t *at = word;
    t.arg = &at;
    ASSERT_EQ(crew_run(pool, NULL, &t, 1, NULL), 0);
    if (t.status != 0 || res[1] != val(18, 0) || res[0] != own_base)
        TEST_FAIL_("the worker's own arena at %#" PRIx64 " (the caller's new one at %p): task "
                   "status %d, read %#" PRIx64 " from the caller's",
                   own_base, crew_arena_base(mine), t.status, res[1]);
    crew_close(pool);
    crew_arena_close(mine);
}

/*
 * While a pool is open, arenas take their addresses from one reserved
 * range (at most 16 TiB), and closing an arena gives its part back:
 * creating and closing large arenas over and over, far more than the
 * range holds in all, never runs out.  (Capacity is address space only:
 * these arenas cost no memory.)
 */
static void test_space_reused(void)
{
    const size_t cap = (size_t)64 << 30;
    const int rounds = 600; /* 37.5 TiB in all */
    crew *pool = test_proc_pool(WORKERS, 0, 0, 0);
    crew_arena *a;
    int rc = crew_arena_create(&a, cap);
    if (rc == CREW_ENOMEM) {
        printf("space reused: skipped (no room for a 64 GiB arena here)\n");
        crew_close(pool);
        return;
    }
    ASSERT_OK(rc);
    crew_arena_close(a);
    test_watchdog_step(&wd, "space reused");
    for (int i = 0; i < rounds; i++) {
        rc = crew_arena_create(&a, cap);
        if (rc != 0)
            TEST_FAIL_("creating and closing 64 GiB arenas: round %d returned %s", i,
                       crew_err_name(rc));
        crew_arena_close(a);
    }
    /*
     * Nor does it fragment: with no arena open, the whole range is free,
     * as one piece, whatever the order arenas were closed in.  Its size is
     * that of the largest arena that can be made (found by bisection, in
     * the 2 MiB steps arenas are placed in); the range is filled with
     * arenas, some closed and made again, then all closed in orders that
     * need every kind of merge of free neighbours.
     */
    const size_t step = (size_t)2 << 20;
    size_t lo = cap / step, hi = ((size_t)16 << 40) / step; /* lo fits; is hi the limit? */
    if (crew_arena_create(&a, hi * step) == 0) {
        crew_arena_close(a);
        lo = hi;
    }
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (crew_arena_create(&a, mid * step) == 0) {
            crew_arena_close(a);
            lo = mid;
        } else {
            hi = mid;
        }
    }
    const size_t whole = lo * step, quarter = whole / 4 / step * step;
    printf("space reused: the range holds %zu GiB\n", whole >> 30);
    crew_arena *q1, *q2, *rest, *again;
    ASSERT_OK(crew_arena_create(&q1, quarter));
    ASSERT_OK(crew_arena_create(&q2, quarter));
    ASSERT_OK(crew_arena_create(&rest, whole - 2 * quarter));
    crew_arena_close(q1);
    ASSERT_OK(crew_arena_create(&again, quarter)); /* exactly the hole q1 left */
    crew_arena_close(rest);
    crew_arena_close(q2);
    crew_arena_close(again);
    rc = crew_arena_create(&a, whole);
    if (rc != 0)
        TEST_FAIL_("all arenas closed (quarter, quarter, the rest; one quarter made again), "
                   "yet one of %zu GiB cannot be made: %s", whole >> 30, crew_err_name(rc));
    crew_arena_close(a);
    ASSERT_OK(crew_arena_create(&q1, 2 * quarter));
    ASSERT_OK(crew_arena_create(&q2, whole - 2 * quarter));
    crew_arena_close(q1);
    crew_arena_close(q2);
    rc = crew_arena_create(&a, whole);
    if (rc != 0)
        TEST_FAIL_("two halves closed in order, yet an arena of %zu GiB cannot be made: %s",
                   whole >> 30, crew_err_name(rc));
    crew_arena_close(a);

    /* and an arena made after all that is seen by the workers */
    filled f = fill_arena(100, 61, 0);
    peek_all(pool, f.at, f.want, f.n, "arena made after many were closed");
    filled_free(&f);
    crew_close(pool);
}

/* ---- memory: one copy of the data for every worker ------------------------------ */

typedef struct scan_arg {
    const uint64_t *data;
    size_t words;
    unsigned linger_ms;  /* then stay this long */
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
    double until = test_now_s() + a->linger_ms / 1000.0;
    while (test_now_s() < until)
        ;
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
    scan_arg arg = {data, words, 0, g};
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
    crew_close(pool);

    /* The memory limit is on what a task adds of its own: a task that
     * reads the whole shared arena, far more than the limit, is fine.
     * (Each task waits a little once it has read it all, so that a limit
     * that counted those pages would be seen.) */
    pool = test_proc_pool(WORKERS, 0, (size_t)32 << 20, 0);
    arg.linger_ms = 20;
    memset(g, 0, sizeof *g);
    g->want = WORKERS;
    test_watchdog_step(&wd, "pss: scan under a memory limit");
    int rc = crew_run(pool, NULL, t, TASKS, NULL);
    for (int i = 0; i < TASKS; i++)
        if (t[i].status != 0 || sums[i] != want)
            TEST_FAIL_("reading a %zu MiB shared arena under a 32 MiB memory limit: crew_run "
                       "returned %s, task %d %s",
                       bytes >> 20, crew_err_name(rc), i, crew_err_name(t[i].status));
    crew_close(pool);
    crew_arena_close(a);
    crew_arena_close(ga);
}

/* ---- freezing while another thread runs calls ---------------------------------- */

typedef struct calls_ctx {
    crew *pool;
    atomic_int stop;
} calls_ctx;

static int nop_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    return 0;
}

static void *calls_thread(void *arg)
{
    calls_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        crew_task t[4];
        for (int i = 0; i < 4; i++)
            t[i] = (crew_task){.fn = nop_task};
        if (crew_run(c->pool, NULL, t, 4, NULL) != 0)
            return "crew_run failed";
    }
    return NULL;
}

/* Calls start and end while arenas the workers map writable are frozen:
 * no process but the workers maps them, so every freeze succeeds (before,
 * a call starting between the workers' answer and the seal had them map
 * the arena again, and the freeze said CREW_EBUSY). */
static void test_freeze_beside_calls(void)
{
    calls_ctx c = {.pool = test_proc_pool(WORKERS, 0, 0, 0)};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, calls_thread, &c), 0);
    for (int i = 0; i < 1000; i++) {
        crew_arena *a;
        ASSERT_OK(crew_arena_create(&a, 1 << 16));
        ASSERT_NE(crew_arena_alloc(a, 64, 8), 0);
        for (volatile int k = 0; k < 100000; k++) /* a call or two shows it writable */
            ;
        ASSERT_OK(crew_arena_freeze(a));
        crew_arena_close(a);
    }
    atomic_store(&c.stop, 1);
    void *err;
    ASSERT_EQ(pthread_join(th, &err), 0);
    ASSERT(err == NULL);
    crew_close(c.pool);
}

/* ---- a task's own arenas ------------------------------------------------------ */

static crew_arena *task_own; /* in the worker: one worker runs every task */

static int own_create_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    return crew_arena_create(&task_own, 1 << 16) == 0 ? 0 : 1;
}

static int own_close_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    crew_arena_close(task_own);
    return 0;
}

/* An arena a task creates and closes is its worker's own: the caller's
 * registry (whose objects are in shared memory once a pool has been
 * open) must not see it come and go.  Here it did unlink the caller's
 * arena made in between, which the workers then no longer mapped. */
static void test_task_arena_keeps_registry(void)
{
    crew_arena *head;
    ASSERT_OK(crew_arena_create(&head, 1 << 16)); /* the registry's head at crew_open */
    crew *pool = test_proc_pool(1, 0, 0, 0);
    crew_task t = {.fn = own_create_task};
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    filled f = fill_arena(4, 61, 0);
    t = (crew_task){.fn = own_close_task};
    ASSERT_OK(crew_run(pool, NULL, &t, 1, NULL));
    crew_arena_close(head);
    peek_all(pool, f.at, f.want, f.n, "an arena made while a task's own arena was open");
    filled_free(&f);
    crew_close(pool);
}

/* ---- a child forked by the caller -------------------------------------------- */

/* In the child: its copy of `a` keeps the root it had at the fork, and an
 * arena it creates (while the parent creates one) stays its own. */
static int forked_child(crew_arena *a, crew_ref root, int go, int made)
{
    crew_arena *mine;
    if (crew_arena_create(&mine, 1 << 16) != 0)
        return 10;
    crew_ref r = crew_arena_alloc(mine, 8, 8);
    crew_arena_set_root(mine, r);
    char ch = 'm';
    if (write(made, &ch, 1) != 1 || read(go, &ch, 1) != 1)
        return 11;
    if (crew_arena_root(a) != root)
        return 12; /* the parent's set_root reached our copy */
    if (crew_arena_root(mine) != r || crew_arena_alloc(mine, 8, 8) == 0)
        return 13; /* our arena's object was the parent's new one */
    crew_arena_close(mine);
    crew_arena_close(a); /* our copy only */
    return 0;
}

/* A process the caller forks gets copies of the arena objects, as of
 * objects on the heap: the objects of arenas made while a pool may need
 * them are shared with the pool's workers, but not with such a child. */
static void test_forked_child_copies(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref r1 = crew_arena_alloc(a, 64, 8), r2 = crew_arena_alloc(a, 64, 8);
    crew_arena_set_root(a, r1);
    int go[2], made[2];
    ASSERT_EQ(pipe(go), 0);
    ASSERT_EQ(pipe(made), 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(forked_child(a, r1, go[0], made[1]));
    char ch;
    ASSERT_EQ(read(made[0], &ch, 1), 1);
    crew_arena *b;
    ASSERT_OK(crew_arena_create(&b, 1 << 16));
    crew_ref rb = crew_arena_alloc(b, 64, 4096);
    crew_arena_set_root(b, rb);
    crew_arena_set_root(a, r2);
    ASSERT_EQ(write(go[1], "g", 1), 1);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_UEQ(crew_arena_root(b), rb);
    ASSERT_UEQ(crew_arena_root(a), r2);
    ASSERT_NE(crew_arena_alloc(b, 8, 8), 0);
    for (int i = 0; i < 2; i++) {
        close(go[i]);
        close(made[i]);
    }
    /* the workers still see the objects live */
    uint64_t *at = CREW_ARENA_PTR(a, uint64_t, r2), want = 77;
    *at = want;
    peek_all(pool, &at, &want, 1, "an arena after a fork");
    crew_arena_close(b);
    crew_arena_close(a);
    crew_close(pool);
}

/* In a child the caller forked: close the copy of the parent's pool, then
 * open a pool and freeze an arena its workers mapped.  The freeze asks
 * every open pool: the closed copy must be off that list (it was freed
 * there, and read after). */
static crew *inherited_pool;

static int child_own_pool(void)
{
    crew_close(inherited_pool);
    for (int i = 0; i < 64; i++) { /* reuse the freed memory */
        volatile char *p = malloc(512);
        if (p)
            p[0] = 1;
    }
    crew *pool;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    if (crew_open(&pool, &cfg) != 0)
        return 30;
    crew_arena *a;
    if (crew_arena_create(&a, 1 << 16) != 0 || crew_arena_alloc(a, 64, 8) == 0)
        return 31;
    crew_task t = {.fn = nop_task};
    if (crew_run(pool, NULL, &t, 1, NULL) != 0)
        return 32;
    int rc = crew_arena_freeze(a);
    crew_arena_close(a);
    crew_close(pool);
    return rc == 0 ? 0 : 33;
}

static void test_forked_child_own_pool(void)
{
    crew *pool = test_proc_pool(1, 0, 0, 0);
    inherited_pool = pool;
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(child_own_pool());
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    crew_close(pool);
}

int main(void)
{
    (void)test_forbidden_page(); /* before any crew_open */
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
    test_watchdog_step(&wd, "freeze beside calls");
    test_freeze_beside_calls();
    test_watchdog_step(&wd, "a task's own arena");
    test_task_arena_keeps_registry();
    test_watchdog_step(&wd, "a child forked by the caller");
    test_forked_child_copies();
    test_forked_child_own_pool();
    test_watchdog_step(&wd, "freeze during a call");
    test_freeze_during_call();
    test_readonly_is_per_task();
    test_tasks_leave_arenas_alone();
    test_worker_own_arena();
    test_space_reused();
    test_watchdog_stop(&wd);
    printf("test_proc_arena: ok\n");
    return 0;
}
