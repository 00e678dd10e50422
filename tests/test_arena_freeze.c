/*
 * Description: freezing an arena while readers use it, and when a system
 * call fails.  A reader thread that follows refs during a freeze never
 * faults and always reads the right bytes; a freeze whose k-th mmap,
 * ftruncate or fcntl fails (for every k) leaves the arena either writable
 * and as it was, or frozen and readable, and freezing again finishes the
 * job; a failed growth leaves no hole in the reserved range; a root that
 * is not a ref in use is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_util.h"
#include "internal.h"

enum { VALUES = 1 << 18 }; /* 2 MiB of uint64_t */

struct sample {
    crew_arena *a;
    crew_ref values; /* VALUES uint64_t, values[i] == i * 7 + 1 */
    crew_ref name;   /* "frozen in flight" */
};

static void make_sample(struct sample *s, size_t capacity)
{
    ASSERT_OK(crew_arena_create(&s->a, capacity));
    s->values = CREW_ARENA_ARRAY(s->a, uint64_t, VALUES);
    ASSERT_NE(s->values, 0);
    uint64_t *v = crew_arena_ptr(s->a, s->values);
    for (uint64_t i = 0; i < VALUES; i++)
        v[i] = i * 7 + 1;
    s->name = crew_arena_strdup(s->a, "frozen in flight");
    crew_arena_set_root(s->a, s->values);
}

/* Every value through the checked reader, as another thread would. */
static int sample_intact(const struct sample *s)
{
    const uint64_t *v = CREW_ARENA_GET_ARRAY(s->a, uint64_t, s->values, VALUES);
    if (!v)
        return 0;
    for (uint64_t i = 0; i < VALUES; i++)
        if (v[i] != i * 7 + 1)
            return 0;
    const char *name = crew_arena_str(s->a, s->name);
    return name && strcmp(name, "frozen in flight") == 0;
}

static void assert_fully_frozen(const struct sample *s)
{
    ASSERT_EQ(crew_arena_frozen(s->a), 1);
    ASSERT_EQ(fcntl(crew_arena_fd(s->a), F_GET_SEALS),
              F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    size_t len = (crew_arena_size(s->a) + 4095) & ~(size_t)4095;
    ASSERT_EQ(lseek(crew_arena_fd(s->a), 0, SEEK_END), (off_t)len);
    char perms[5];
    maps_perms(crew_arena_base(s->a), perms);
    ASSERT(perms[0] == 'r' && perms[1] == '-');
    maps_perms((const char *)crew_arena_base(s->a) + len, perms); /* trimmed tail */
    ASSERT_STR_EQ(perms, "---p");
    ASSERT(sample_intact(s));
}

/* ---- readers during a freeze -------------------------------------------- */

struct reader {
    const struct sample *s;
    const char *save_path; /* NULL: read; else save there */
    atomic_int started;
    atomic_int stop;
    long bad;
    long rounds;
};

/* Save again and again while the arena freezes; every save must work. */
static void *saver_main(void *arg)
{
    struct reader *r = arg;
    /* release: the main thread freezes only once this thread is running */
    atomic_store_explicit(&r->started, 1, memory_order_release);
    do {
        if (crew_arena_save(r->s->a, r->save_path) != 0)
            r->bad++;
        r->rounds++;
        /* relaxed: a flag that ends the loop; no data rides on it */
    } while (!atomic_load_explicit(&r->stop, memory_order_relaxed));
    return NULL;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    /* release: the main thread freezes only once this reader is running */
    atomic_store_explicit(&r->started, 1, memory_order_release);
    uint64_t i = 0;
    /* relaxed: a flag that ends the loop; no data rides on it */
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        i = (i * 2862933555777941757ull + 3037000493ull) % VALUES;
        const uint64_t *v = CREW_ARENA_GET(r->s->a, uint64_t, r->s->values + i * 8);
        const char *name = crew_arena_str(r->s->a, r->s->name);
        if (!v || *v != i * 7 + 1 || !name || name[0] != 'f')
            r->bad++;
        r->rounds++;
    }
    return NULL;
}

static void test_readers_during_freeze(void)
{
    char *dir = scratch_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/during.crew", dir);
    for (int round = 0; round < 40; round++) {
        struct sample s;
        make_sample(&s, 64u << 20);
        /* a save in flight now and then: it reads the arena too */
        int saving = round % 8 == 0;
        struct reader r = {.s = &s, .save_path = saving ? path : NULL};
        pthread_t th;
        ASSERT_EQ(pthread_create(&th, NULL, saving ? saver_main : reader_main, &r), 0);
        /* acquire: pairs with the thread's release */
        while (!atomic_load_explicit(&r.started, memory_order_acquire))
            sched_yield();
        ASSERT_OK(crew_arena_freeze(s.a));
        atomic_store_explicit(&r.stop, 1, memory_order_relaxed);
        ASSERT_EQ(pthread_join(th, NULL), 0);
        ASSERT_EQ(r.bad, 0);
        ASSERT_GT(r.rounds, 0);
        assert_fully_frozen(&s);
        if (saving) {
            crew_arena *b = NULL;
            ASSERT_OK(crew_arena_open(&b, path, CREW_ARENA_VERIFY));
            ASSERT_UEQ(crew_arena_size(b), crew_arena_size(s.a));
            crew_arena_close(b);
        }
        crew_arena_close(s.a);
    }
    cleanup_dir(dir);
}

/* ---- failing system calls ----------------------------------------------- */

static int calls_left = -1; /* fail when it reaches 0; < 0: never */
static int failed;          /* a failure was injected */

static bool should_fail(void)
{
    if (calls_left >= 0 && calls_left-- == 0) {
        failed = 1;
        return true;
    }
    return false;
}

/* A failing MAP_FIXED may already have unmapped its target (older kernels
 * do): do the same, so that the code must put something back. */
static void *fail_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (should_fail()) {
        if (flags & MAP_FIXED)
            munmap(addr, len);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return mmap(addr, len, prot, flags, fd, off);
}

static int fail_ftruncate(int fd, off_t len)
{
    if (should_fail()) {
        errno = EIO;
        return -1;
    }
    return ftruncate(fd, len);
}

static int fail_fcntl(int fd, int cmd, int arg)
{
    if (should_fail()) {
        errno = cmd == F_ADD_SEALS ? EBUSY : EIO;
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

static crew__sys_table saved_sys;

static void install(void)
{
    saved_sys = crew__sys;
    crew__sys.mmap = fail_mmap;
    crew__sys.ftruncate = fail_ftruncate;
    crew__sys.fcntl = fail_fcntl;
}

static void uninstall(void)
{
    crew__sys = saved_sys;
}

/* Fail the k-th system call of a freeze, for every k. */
static void test_freeze_failures(void)
{
    int errors = 0, left_frozen = 0;
    for (int k = 0;; k++) {
        struct sample s;
        make_sample(&s, 64u << 20);
        install();
        failed = 0;
        calls_left = k;
        int rc = crew_arena_freeze(s.a);
        calls_left = -1;
        uninstall();
        if (!failed) {
            ASSERT_OK(rc);
            assert_fully_frozen(&s);
            crew_arena_close(s.a);
            break;
        }
        if (rc == 0) {
            /* only the optional last step failed: a private mapping */
            assert_fully_frozen(&s);
        } else if (!crew_arena_frozen(s.a)) {
            /* refused before the write seal: writable and unchanged */
            errors++;
            ASSERT(sample_intact(&s));
            uint64_t *v = crew_arena_ptr(s.a, s.values);
            v[5] = 5 * 7 + 1; /* writes still work */
            ASSERT_NE(crew_arena_alloc(s.a, 8, 8), 0);
            ASSERT_OK(crew_arena_freeze(s.a));
            assert_fully_frozen(&s);
        } else {
            /* failed after the write seal: frozen, readable, and finished
             * by freezing again */
            errors++;
            left_frozen++;
            ASSERT(sample_intact(&s));
            ASSERT_UEQ(crew_arena_alloc(s.a, 8, 8), 0);
            ASSERT_OK(crew_arena_freeze(s.a));
            assert_fully_frozen(&s);
        }
        crew_arena_close(s.a);
    }
    ASSERT_GE(errors, 3);
    ASSERT_GE(left_frozen, 2);
}

/* A failed growth leaves the range it wanted reserved, not a hole. */
static void test_grow_failure_keeps_reservation(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 64u << 20));
    crew_ref first = crew_arena_alloc(a, 100, 8); /* commits the first MiB */
    ASSERT_NE(first, 0);
    const char *next = (const char *)crew_arena_base(a) + (4u << 20);
    install();
    calls_left = 1; /* ftruncate succeeds, the mmap fails */
    failed = 0;
    crew_ref r = 1;
    ASSERT_EQ(crew_arena_try_alloc(a, 8u << 20, 8, &r), CREW_ENOMEM);
    ASSERT(failed);
    calls_left = -1;
    uninstall();
    ASSERT_UEQ(r, 1);
    char perms[5];
    maps_perms(next, perms);
    ASSERT_STR_EQ(perms, "---p"); /* still reserved */
    ASSERT_EQ(lseek(crew_arena_fd(a), 0, SEEK_END), 1 << 20); /* memfd not grown */
    r = crew_arena_alloc(a, 8u << 20, 8);
    ASSERT_NE(r, 0);
    memset(crew_arena_ptr(a, r), 1, 8u << 20);
    crew_arena_close(a);
}

/* freeze refuses a root open would refuse, and changes nothing. */
static void test_freeze_bad_root(void)
{
    struct sample s;
    make_sample(&s, 16u << 20);
    crew_arena_set_root(s.a, crew_arena_size(s.a));
    ASSERT_EQ(crew_arena_freeze(s.a), CREW_EBADROOT);
    crew_arena_set_root(s.a, 1);
    ASSERT_EQ(crew_arena_freeze(s.a), CREW_EBADROOT);
    ASSERT_EQ(crew_arena_frozen(s.a), 0);
    ASSERT_EQ(fcntl(crew_arena_fd(s.a), F_GET_SEALS), 0);
    crew_arena_set_root(s.a, s.values);
    ASSERT_OK(crew_arena_freeze(s.a));
    assert_fully_frozen(&s);
    ASSERT_UEQ(crew_arena_root(s.a), s.values);
    crew_arena_close(s.a);
}

int main(void)
{
    /* ThreadSanitizer takes every mmap for a write to the whole range, so
     * each swap of a read-only mapping for another would be reported as a
     * race with the readers; what this test checks (no fault, the right
     * bytes) is for the other builds to see. */
    if (!UNDER_TSAN)
        test_readers_during_freeze();
    else
        printf("readers during a freeze: not under ThreadSanitizer\n");
    test_freeze_failures();
    test_grow_failure_keeps_reservation();
    test_freeze_bad_root();
    printf("test_arena_freeze: ok\n");
    return 0;
}
