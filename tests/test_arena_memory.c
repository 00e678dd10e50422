/*
 * Description: crew_arena_open_memory, an arena over a snapshot's bytes
 * that the caller already holds in memory.  Over a MAP_SHARED anonymous
 * copy of a saved file it answers exactly as crew_arena_open of the file
 * (size, root, bytes, catalog, values computed here independently), with
 * no copy (its base lies inside the memory) and no fd; saving it writes
 * the very bytes it was given; closing it leaves the memory mapped,
 * unchanged and writable by its owner.  Every bad header gets the code
 * the file gets, and the code the format says; VERIFY catches a flipped
 * byte in memory; bad arguments give CREW_EINVAL.  A thread pool reads
 * it; a process pool opened after it reads it in its workers, also in a
 * worker that replaced one killed by SIGSEGV, and a task writing to it
 * fails with CREW_EREADONLY while the memory stays unchanged.  Opened
 * after crew_open, crew_run refuses it as `shared` and tasks find it
 * empty; a pool opened after that sees it.
 */
#include <signal.h>
#include <sys/mman.h>

#include "proc_util.h"

#define VALUES 50000u /* ~100 pages of u64 */
#define DATA_OFFSET 4096u

static test_watchdog wd;
static char *dir;

static uint64_t val(uint64_t i)
{
    return test_mix(i * 0x9E3779B97F4A7C15ull + 7);
}

static uint64_t sum_vals(uint64_t lo, uint64_t hi)
{
    uint64_t s = 0;
    for (uint64_t i = lo; i < hi; i++)
        s += val(i);
    return s;
}

static const char *const rows[] = {"alpha", "", "gamma delta", "x"};

/* ---- a snapshot file and its bytes --------------------------------------- */

/* Save an arena with a catalog: "values" (u64 val(i)), "page" (u32 at a
 * 4096-aligned ref), "names" (strings rows[]).  Returns the file's path. */
static char *make_snapshot(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, (size_t)8 << 20));
    crew_ref v = CREW_ARENA_ARRAY(a, uint64_t, VALUES);
    ASSERT_NE(v, 0);
    uint64_t *w = crew_arena_ptr(a, v);
    for (uint64_t i = 0; i < VALUES; i++)
        w[i] = val(i);
    crew_ref pg = crew_arena_alloc(a, 4096, 4096);
    ASSERT_NE(pg, 0);
    ASSERT_EQ(pg % 4096, 0);
    uint32_t *p = crew_arena_ptr(a, pg);
    for (uint32_t i = 0; i < 1024; i++)
        p[i] = i * 3 + 1;
    size_t bytes = 0;
    for (size_t i = 0; i < 4; i++)
        bytes += strlen(rows[i]) + 1;
    crew_ref sd = crew_arena_alloc(a, bytes, 1), so = CREW_ARENA_ARRAY(a, uint64_t, 5);
    ASSERT(sd && so);
    char *d = crew_arena_ptr(a, sd);
    uint64_t *o = crew_arena_ptr(a, so);
    uint64_t at = 0;
    for (size_t i = 0; i < 4; i++) {
        o[i] = at;
        memcpy(d + at, rows[i], strlen(rows[i]) + 1);
        at += strlen(rows[i]) + 1;
    }
    o[4] = at;
    crew_dataset sets[3] = {
        {.name = "values", .type = CREW_T_U64, .count = VALUES, .data = v},
        {.name = "page", .type = CREW_T_U32, .count = 1024, .data = pg},
        {.name = "names", .type = CREW_T_STR, .count = 4, .data = sd, .offsets = so},
    };
    ASSERT_OK(crew_catalog_write(a, sets, 3));
    ASSERT_OK(crew_arena_freeze(a));
    char *path = malloc(strlen(dir) + 32);
    ASSERT_NOT_NULL(path);
    sprintf(path, "%s/data.crew", dir);
    ASSERT_OK(crew_arena_save(a, path));
    crew_arena_close(a);
    return path;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ASSERT_GE(n, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)n + 1);
    ASSERT_NOT_NULL(b);
    ASSERT_UEQ(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_UEQ(fwrite(b, 1, len, f), len);
    ASSERT_EQ(fclose(f), 0);
}

/* Memory as the coming MPI mode gets it: shared, anonymous, page-aligned,
 * holding a copy of b.  *map_len: what to munmap. */
static unsigned char *lend(const void *b, size_t len, size_t *map_len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    *map_len = len ? (len + page - 1) / page * page : page;
    unsigned char *m = mmap(NULL, *map_len, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(m != MAP_FAILED);
    memcpy(m, b, len);
    return m;
}

/* The header fields at the offsets docs/SNAPSHOT.md gives. */
static uint64_t get64(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

static void put32(unsigned char *b, size_t off, uint32_t v)
{
    memcpy(b + off, &v, 4);
}

static void put64(unsigned char *b, size_t off, uint64_t v)
{
    memcpy(b + off, &v, 8);
}

/* The u64 "values" of arena a, by name; NULL when not found. */
static const uint64_t *values_of(const crew_arena *a)
{
    crew_dataset d;
    if (crew_catalog_find(a, "values", &d) != 0 || d.count != VALUES)
        return NULL;
    return crew_dataset_array(a, &d, CREW_T_U64);
}

/* ---- the same arena as the file's ---------------------------------------- */

static void check_contents(const crew_arena *a)
{
    const uint64_t *v = values_of(a);
    ASSERT_NOT_NULL(v);
    for (uint64_t i = 0; i < VALUES; i++)
        if (v[i] != val(i))
            TEST_FAIL_("values[%" PRIu64 "] = %#" PRIx64 ", want %#" PRIx64, i, v[i], val(i));
    crew_dataset d;
    ASSERT_OK(crew_catalog_find(a, "page", &d));
    const uint32_t *p = crew_dataset_array(a, &d, CREW_T_U32);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ((uintptr_t)p % 4096, 0); /* the alignment it was allocated with */
    for (uint32_t i = 0; i < 1024; i++)
        ASSERT_EQ(p[i], i * 3 + 1);
    ASSERT_OK(crew_catalog_find(a, "names", &d));
    for (uint64_t i = 0; i < 4; i++) {
        size_t len = 99;
        const char *s = crew_dataset_str(a, &d, i, &len);
        ASSERT_NOT_NULL(s);
        ASSERT_STR_EQ(s, rows[i]);
        ASSERT_UEQ(len, strlen(rows[i]));
    }
    ASSERT_EQ(crew_catalog_count(a), 3);
}

static void test_same_as_file(const char *path)
{
    size_t len, map_len;
    unsigned char *bytes = read_all(path, &len);
    unsigned char *mem = lend(bytes, len, &map_len);
    uint64_t data_size = get64(bytes, 32), root = get64(bytes, 40);
    ASSERT_UEQ(get64(bytes, 24), DATA_OFFSET);
    ASSERT_UEQ(DATA_OFFSET + data_size, len);

    crew_arena *f, *m, *m2, *v;
    ASSERT_OK(crew_arena_open(&f, path, 0));
    ASSERT_OK(crew_arena_open_memory(&m, mem, len, 0));
    ASSERT_OK(crew_arena_open_memory(&m2, mem, len, 0)); /* twice over the same bytes */
    ASSERT_OK(crew_arena_open_memory(&v, mem, len, CREW_ARENA_VERIFY));

    /* no copy: byte 0 is the memory's byte 4096 */
    ASSERT_PTR_EQ(crew_arena_base(m), mem + DATA_OFFSET);
    ASSERT_PTR_EQ(crew_arena_base(m2), mem + DATA_OFFSET);
    ASSERT_UEQ(crew_arena_size(m), data_size);
    ASSERT_UEQ(crew_arena_size(m), crew_arena_size(f));
    ASSERT_UEQ(crew_arena_capacity(m), data_size);
    ASSERT_UEQ(crew_arena_root(m), root);
    ASSERT_UEQ(crew_arena_root(m), crew_arena_root(f));
    ASSERT_UEQ(crew_arena_root(v), root);
    ASSERT_EQ(crew_arena_frozen(m), 1);
    ASSERT_EQ(memcmp(crew_arena_base(m), crew_arena_base(f), data_size), 0);
    check_contents(f);
    check_contents(m);
    check_contents(v);

    /* bounds as in any arena */
    ASSERT_NULL(crew_arena_get(m, data_size, 1));
    ASSERT_NULL(crew_arena_get(m, data_size - 8, 16));
    ASSERT_NULL(crew_arena_get(m, 8, 1));
    ASSERT_PTR_EQ(crew_arena_get(m, data_size - 1, 1), mem + DATA_OFFSET + data_size - 1);
    /* read-only, with no file */
    crew_ref r = 1;
    ASSERT_EQ(crew_arena_try_alloc(m, 8, 8, &r), CREW_EFROZEN);
    ASSERT_UEQ(r, 1);
    ASSERT_OK(crew_arena_freeze(m));
    crew_arena_set_root(m, 64);
    ASSERT_UEQ(crew_arena_root(m), root);
    ASSERT_EQ(crew_arena_fd(m), CREW_EINVAL);
    ASSERT_GE(crew_arena_fd(f), 0);

    /* save writes the bytes it was given */
    char *copy = malloc(strlen(dir) + 32);
    ASSERT_NOT_NULL(copy);
    sprintf(copy, "%s/copy.crew", dir);
    ASSERT_OK(crew_arena_save(m, copy));
    size_t copy_len;
    unsigned char *again = read_all(copy, &copy_len);
    ASSERT_UEQ(copy_len, len);
    ASSERT_EQ(memcmp(again, bytes, len), 0);
    free(again);
    crew_arena *c;
    ASSERT_OK(crew_arena_open(&c, copy, CREW_ARENA_VERIFY));
    check_contents(c);
    crew_arena_close(c);
    free(copy);

    /* close frees the handle only: the memory stays mapped, unchanged,
     * and writable by its owner (neither unmapped nor sealed) */
    crew_arena_close(m);
    crew_arena_close(v);
    ASSERT_EQ(memcmp(mem, bytes, len), 0);
    check_contents(m2);
    crew_arena_close(m2);
    char perms[5];
    maps_perms(mem, perms);
    ASSERT_STR_EQ(perms, "rw-s");
    mem[len - 1] ^= 0xff;
    mem[len - 1] ^= 0xff;
    ASSERT_EQ(memcmp(mem, bytes, len), 0);
    crew_arena_close(f);
    crew_arena_close(NULL);
    ASSERT_EQ(munmap(mem, map_len), 0);
    free(bytes);
}

/* ---- bad bytes: the file's code, and the format's ------------------------ */

typedef struct bad_case {
    const char *what;
    int want;
    unsigned flags;
} bad_case;

/* Open b[0, len) as a file and from memory: both must give `want`. */
static void same_error(const char *what, const unsigned char *b, size_t len, unsigned flags,
                       int want)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bad.crew", dir);
    write_all(path, b, len);
    crew_arena *sentinel = (crew_arena *)&wd, *a = sentinel;
    int file_rc = crew_arena_open(&a, path, flags);
    if (file_rc == 0)
        crew_arena_close(a);
    a = sentinel;
    size_t map_len;
    unsigned char *mem = lend(b, len, &map_len);
    int mem_rc = crew_arena_open_memory(&a, mem, len, flags);
    if (mem_rc == 0)
        crew_arena_close(a);
    else
        ASSERT_PTR_EQ(a, sentinel); /* untouched on failure */
    if (file_rc != want || mem_rc != want)
        TEST_FAIL_("%s: file %s, memory %s, want %s", what, crew_err_name(file_rc),
                   crew_err_name(mem_rc), crew_err_name(want));
    ASSERT_EQ(memcmp(mem, b, len), 0); /* never written */
    ASSERT_EQ(munmap(mem, map_len), 0);
}

static void test_bad_bytes(const char *path)
{
    size_t len;
    unsigned char *good = read_all(path, &len);
    unsigned char *b = malloc(len + 1);
    ASSERT_NOT_NULL(b);
    uint64_t data_size = get64(good, 32);

#define MUTATE(what, flags, want, change)                                    \
    do {                                                                     \
        memcpy(b, good, len);                                                \
        size_t n_ = len;                                                     \
        change;                                                              \
        same_error(what, b, n_, flags, want);                                \
    } while (0)

    MUTATE("intact", 0, 0, (void)0);
    MUTATE("intact, verified", CREW_ARENA_VERIFY, 0, (void)0);
    MUTATE("empty", 0, CREW_EEMPTY, n_ = 0);
    MUTATE("4 bytes of magic", 0, CREW_ETRUNC, n_ = 4);
    MUTATE("header cut at 100", 0, CREW_ETRUNC, n_ = 100);
    MUTATE("header only", 0, CREW_ETRUNC, n_ = 128);
    MUTATE("data one byte short", 0, CREW_ETRUNC, n_ = len - 1);
    MUTATE("one byte too many", 0, CREW_EBADSIZE, (b[len] = 0, n_ = len + 1));
    MUTATE("foreign magic", 0, CREW_EMAGIC, memcpy(b, "NOTCREW!", 8));
    MUTATE("raw arena bytes", 0, CREW_EMAGIC, memcpy(b, "CREWARNA", 8));
    MUTATE("3 foreign bytes", 0, CREW_EMAGIC, (memcpy(b, "ABC", 3), n_ = 3));
    MUTATE("other byte order", 0, CREW_EENDIAN, put32(b, 8, 0x04030201u));
    MUTATE("garbled endian tag", 0, CREW_EMAGIC, put32(b, 8, 0x11223344u));
    MUTATE("version 0", 0, CREW_EVERSION, put32(b, 12, 0));
    MUTATE("version 2", 0, CREW_EVERSION, put32(b, 12, 2));
    MUTATE("checksum algorithm 9", 0, CREW_EVERSION, put32(b, 56, 9));
    MUTATE("header size 64", 0, CREW_EBADSIZE, put32(b, 16, 64));
    MUTATE("data offset 100", 0, CREW_EBADSIZE, put64(b, 24, 100));
    MUTATE("data offset 8192", 0, CREW_ETRUNC, put64(b, 24, 8192));
    MUTATE("data size below the prologue", 0, CREW_EBADSIZE, put64(b, 32, 32));
    MUTATE("data size too big", 0, CREW_ETRUNC, put64(b, 32, data_size + 4096));
    MUTATE("data size too small", 0, CREW_EBADSIZE, put64(b, 32, data_size - 8));
    MUTATE("data size 2^63", 0, CREW_EBADSIZE, put64(b, 32, (uint64_t)1 << 63));
    MUTATE("root past the end", 0, CREW_EBADROOT, put64(b, 40, data_size));
    MUTATE("root inside the prologue", 0, CREW_EBADROOT, put64(b, 40, 8));
    MUTATE("root 0", 0, 0, put64(b, 40, 0));
    /* the checksum: only VERIFY looks */
    MUTATE("flipped data byte", 0, 0, b[DATA_OFFSET + data_size / 2] ^= 0x10);
    MUTATE("flipped data byte, verified", CREW_ARENA_VERIFY, CREW_ECHECKSUM,
           b[DATA_OFFSET + data_size / 2] ^= 0x10);
    MUTATE("flipped last byte, verified", CREW_ARENA_VERIFY, CREW_ECHECKSUM,
           b[len - 1] ^= 0x01);
    MUTATE("flipped header reserved byte, verified", CREW_ARENA_VERIFY, CREW_ECHECKSUM,
           b[100] ^= 0x01);
    MUTATE("wrong checksum, verified", CREW_ARENA_VERIFY, CREW_ECHECKSUM,
           put64(b, 48, get64(good, 48) + 1));
#undef MUTATE
    free(b);
    free(good);
}

/* ---- bad arguments ------------------------------------------------------- */

static void test_bad_args(const char *path)
{
    size_t len, map_len;
    unsigned char *bytes = read_all(path, &len);
    /* room for the bytes at 4096 bytes in: aligned enough, though not
     * page-aligned where pages are larger */
    unsigned char *big = malloc(len + 8192);
    ASSERT_NOT_NULL(big);
    unsigned char *mem = lend(bytes, len, &map_len);
    crew_arena *sentinel = (crew_arena *)&wd, *a = sentinel;

    ASSERT_EQ(crew_arena_open_memory(NULL, mem, len, 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_memory(&a, NULL, len, 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_memory(&a, NULL, 0, 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_memory(&a, mem, len, 2), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_memory(&a, mem, len, CREW_ARENA_VERIFY | 4), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_memory(&a, mem, 0, 0), CREW_EEMPTY);
    /* past the end of the address space: refused before any read */
    const void *top = (const void *)(uintptr_t)(UINTPTR_MAX - 4095);
    ASSERT_EQ(crew_arena_open_memory(&a, top, 8192, 0), CREW_EINVAL);
    ASSERT_PTR_EQ(a, sentinel);

    /* misaligned: the same bytes one step off a 4096 boundary */
    unsigned char *at = (unsigned char *)(((uintptr_t)big + 4095) & ~(uintptr_t)4095);
    const size_t offs[] = {1, 8, 64, 2048, 4095};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(at + offs[i], bytes, len);
        if (crew_arena_open_memory(&a, at + offs[i], len, 0) != CREW_EINVAL)
            TEST_FAIL_("mem at 4096k + %zu was not refused", offs[i]);
        ASSERT_PTR_EQ(a, sentinel);
    }
    /* 4096-aligned heap memory works, wherever the page boundaries lie */
    memcpy(at, bytes, len);
    ASSERT_OK(crew_arena_open_memory(&a, at, len, CREW_ARENA_VERIFY));
    ASSERT_PTR_EQ(crew_arena_base(a), at + DATA_OFFSET);
    check_contents(a);
    crew_arena_close(a);
    ASSERT_EQ(munmap(mem, map_len), 0);
    free(big);
    free(bytes);
}

/* ---- tasks ---------------------------------------------------------------- */

typedef struct slice {
    uint64_t lo, hi;
} slice;

/* Result: the sum of values[lo, hi) of the arena `shared`. */
static int sum_task(const void *shared, const void *arg, void *result)
{
    const slice *s = arg;
    const uint64_t *v = values_of(shared);
    if (!v)
        return 1;
    uint64_t sum = 0;
    for (uint64_t i = s->lo; i < s->hi; i++)
        sum += v[i];
    *(uint64_t *)result = sum;
    return 0;
}

/* Result: the pid of the worker that ran it (after reading the arena). */
static int pid_task(const void *shared, const void *arg, void *result)
{
    (void)arg;
    const uint64_t *v = values_of(shared);
    if (!v || v[VALUES - 1] != val(VALUES - 1))
        return 1;
    *(int64_t *)result = getpid();
    return 0;
}

static int raise_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)arg;
    (void)result;
    raise(SIGSEGV);
    return 1;
}

static int poke_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    volatile unsigned char *at = *(unsigned char *const *)arg;
    *at = (unsigned char)(*at ^ 0x5a);
    return 0;
}

/* What a worker lacking the arena finds: the arena passed in arg. */
static int empty_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    (void)result;
    const crew_arena *a = *(const crew_arena *const *)arg;
    if (crew_arena_base(a) != NULL)
        return 1;
    if (crew_arena_size(a) != 0 || crew_arena_root(a) != 0)
        return 2;
    if (crew_arena_get(a, 4096, 8) != NULL || crew_arena_ptr(a, 4096) != NULL)
        return 3;
    if (crew_catalog_count(a) != CREW_EFORMAT || values_of(a) != NULL)
        return 4;
    return 0;
}

/* n tasks summing consecutive slices; each sum checked against sum_vals. */
static void run_sums(crew *pool, const crew_arena *a, size_t n, const char *what)
{
    crew_task t[16];
    slice s[16];
    uint64_t res[16];
    ASSERT_LE(n, 16);
    for (size_t i = 0; i < n; i++) {
        s[i] = (slice){VALUES / n * i, i + 1 == n ? VALUES : VALUES / n * (i + 1)};
        res[i] = 0;
        t[i] = (crew_task){.fn = sum_task, .arg = &s[i], .arg_size = sizeof s[i],
                           .result = &res[i], .result_size = sizeof res[i]};
    }
    int rc = crew_run(pool, a, t, n, NULL);
    for (size_t i = 0; i < n; i++)
        if (rc != 0 || t[i].status != 0 || res[i] != sum_vals(s[i].lo, s[i].hi))
            TEST_FAIL_("%s: crew_run %s, task %zu status %s, sum %#" PRIx64 " want %#" PRIx64,
                       what, crew_err_name(rc), i, crew_err_name(t[i].status), res[i],
                       sum_vals(s[i].lo, s[i].hi));
}

/* ---- pools ----------------------------------------------------------------- */

static void test_thread_pool(const char *path)
{
    size_t len, map_len;
    unsigned char *bytes = read_all(path, &len);
    unsigned char *mem = lend(bytes, len, &map_len);
    crew_arena *a;
    ASSERT_OK(crew_arena_open_memory(&a, mem, len, 0));
    crew *pool;
    ASSERT_OK(crew_open(&pool, &(crew_config){.workers = 2}));
    run_sums(pool, a, 16, "thread pool");
    crew_close(pool);
    crew_arena_close(a);
    ASSERT_EQ(memcmp(mem, bytes, len), 0);
    ASSERT_EQ(munmap(mem, map_len), 0);
    free(bytes);
}

static void test_process_pool(const char *path)
{
    size_t len, map_len;
    unsigned char *bytes = read_all(path, &len);
    unsigned char *mem = lend(bytes, len, &map_len);
    crew_arena *a;
    ASSERT_OK(crew_arena_open_memory(&a, mem, len, 0));
    crew *pool = test_proc_pool(1, 0, 0, 0); /* one worker: the respawned one runs the rest */

    test_watchdog_step(&wd, "process pool reads the arena");
    run_sums(pool, a, 8, "process pool");

    test_watchdog_step(&wd, "a crash, then the respawned worker");
    int64_t pid[4] = {0};
    crew_task t[4] = {
        {.fn = pid_task, .result = &pid[0], .result_size = sizeof pid[0]},
        {.fn = raise_task},
        {.fn = pid_task, .result = &pid[2], .result_size = sizeof pid[2]},
        {.fn = pid_task, .result = &pid[3], .result_size = sizeof pid[3]},
    };
    ASSERT_EQ(crew_run(pool, a, t, 4, NULL), CREW_EFAILED);
    ASSERT_EQ(t[0].status, 0);
    ASSERT_EQ(t[1].status, CREW_ECRASHED);
    ASSERT_EQ(t[1].detail, SIGSEGV);
    ASSERT_EQ(t[2].status, 0);
    ASSERT_EQ(t[3].status, 0);
    ASSERT_GT(pid[0], 0);
    ASSERT_NE(pid[2], pid[0]); /* a fresh worker read the arena */
    ASSERT_EQ(pid[3], pid[2]);
    run_sums(pool, a, 8, "after the respawn");
    crew_worker_stats st;
    ASSERT_EQ(crew_stats(pool, &st, 1), 1);
    ASSERT_UEQ(st.restarts, 1);

    test_watchdog_step(&wd, "writing from a worker");
    uint64_t data_size = get64(bytes, 32);
    unsigned char *spots[3] = {
        mem + DATA_OFFSET + 64,                    /* the first data byte past the prologue */
        mem + DATA_OFFSET + data_size / 2,         /* the middle */
        mem + 10,                                  /* the header */
    };
    for (size_t i = 0; i < 3; i++) {
        crew_task w = {.fn = poke_task, .arg = &spots[i], .arg_size = sizeof spots[i]};
        ASSERT_EQ(crew_run(pool, a, &w, 1, NULL), CREW_EFAILED);
        if (w.status != CREW_EREADONLY || w.fault_addr != (uintptr_t)spots[i])
            TEST_FAIL_("write %zu at %p: status %s, fault_addr %#lx", i, (void *)spots[i],
                       crew_err_name(w.status), (unsigned long)w.fault_addr);
        if (i < 2)
            ASSERT_UEQ(w.fault_offset, (uintptr_t)spots[i] - (uintptr_t)crew_arena_base(a));
    }
    ASSERT_EQ(memcmp(mem, bytes, len), 0); /* nothing reached the memory */
    run_sums(pool, a, 4, "after the writes");
    /* the caller's mapping is as it was */
    char perms[5];
    maps_perms(mem, perms);
    ASSERT_STR_EQ(perms, "rw-s");

    crew_close(pool);
    crew_arena_close(a);
    ASSERT_EQ(memcmp(mem, bytes, len), 0);
    ASSERT_EQ(munmap(mem, map_len), 0);
    free(bytes);
}

static int next_none(void *ctx, crew_task **task)
{
    (void)ctx;
    (void)task;
    return 0;
}

static void done_none(void *ctx, crew_task *task)
{
    (void)ctx;
    (void)task;
}

static void test_opened_after_pool(const char *path)
{
    size_t len, map_len;
    unsigned char *bytes = read_all(path, &len);
    unsigned char *mem = lend(bytes, len, &map_len);
    crew *pool = test_proc_pool(2, 0, 0, 0);
    crew_arena *a;
    ASSERT_OK(crew_arena_open_memory(&a, mem, len, 0));
    check_contents(a); /* the caller sees it */

    test_watchdog_step(&wd, "an arena the workers lack");
    slice s = {0, 10};
    uint64_t res = 7;
    crew_task t = {.fn = sum_task, .arg = &s, .arg_size = sizeof s, .result = &res,
                   .result_size = sizeof res};
    ASSERT_EQ(crew_run(pool, a, &t, 1, NULL), CREW_EINVAL);
    ASSERT_EQ(t.runs, 0);
    ASSERT_UEQ(res, 7);
    crew_feed feed = {.next = next_none, .done = done_none};
    ASSERT_EQ(crew_run_feed(pool, a, &feed), CREW_EINVAL);
    ASSERT_OK(crew_run_feed(pool, NULL, &feed));
    crew_task e[2] = {
        {.fn = empty_task, .arg = &a, .arg_size = sizeof a},
        {.fn = empty_task, .arg = &a, .arg_size = sizeof a},
    };
    int rc = crew_run(pool, NULL, e, 2, NULL);
    if (rc != 0)
        TEST_FAIL_("tasks found the arena: %s, status %d and %d", crew_err_name(rc),
                   e[0].status, e[1].status);

    /* a thread pool opened now reads it */
    crew *threads;
    ASSERT_OK(crew_open(&threads, &(crew_config){.workers = 2}));
    run_sums(threads, a, 4, "thread pool beside the process pool");
    crew_close(threads);

    /* a process pool opened after the arena sees it; the first still not */
    test_watchdog_step(&wd, "a second pool, opened after the arena");
    crew *second = test_proc_pool(2, 0, 0, 0);
    run_sums(second, a, 8, "second process pool");
    ASSERT_EQ(crew_run(pool, a, &t, 1, NULL), CREW_EINVAL);
    crew_close(second);
    crew_close(pool);

    crew_arena_close(a);
    ASSERT_EQ(memcmp(mem, bytes, len), 0);
    ASSERT_EQ(munmap(mem, map_len), 0);
    free(bytes);
}

int main(void)
{
    dir = scratch_dir();
    test_watchdog_start(&wd, 60, "same as the file", test_hung);
    char *path = make_snapshot();
    test_same_as_file(path);
    test_watchdog_step(&wd, "bad bytes");
    test_bad_bytes(path);
    test_watchdog_step(&wd, "bad arguments");
    test_bad_args(path);
    test_watchdog_step(&wd, "thread pool");
    test_thread_pool(path);
    test_process_pool(path);
    test_opened_after_pool(path);
    test_watchdog_stop(&wd);
    free(path);
    cleanup_dir(dir);
    printf("test_arena_memory: ok\n");
    return 0;
}
