/*
 * Description: arenas in one process: bad arguments, alignment, zeroed
 * memory, bounds checks, the base that never moves, growth past capacity,
 * parallel allocation, and what freezing does (seals, read-only mapping,
 * no more allocation).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_util.h"

static void test_bad_arguments(void)
{
    crew_arena *a = (crew_arena *)0x1;
    ASSERT_EQ(crew_arena_create(NULL, 4096), CREW_EINVAL);
    ASSERT_EQ(crew_arena_create(&a, 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_create(&a, SIZE_MAX), CREW_EINVAL);
    ASSERT_EQ(crew_arena_create(&a, SIZE_MAX - 100000), CREW_ENOMEM);
    ASSERT_PTR_EQ(a, (crew_arena *)0x1); /* untouched on failure */

    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref r = 77;
    ASSERT_EQ(crew_arena_try_alloc(NULL, 8, 8, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 8, NULL), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 0, 8, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 0, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 3, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 24, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 8192, &r), CREW_EINVAL);
    ASSERT_EQ(crew_arena_try_alloc(a, SIZE_MAX, 8, &r), CREW_EFULL);
    ASSERT_EQ(crew_arena_try_alloc(a, SIZE_MAX - 4, 4096, &r), CREW_EFULL);
    ASSERT_UEQ(r, 77);
    ASSERT_UEQ(crew_arena_alloc(a, 8, 3), 0);
    ASSERT_UEQ(crew_arena_alloc(NULL, 8, 8), 0);
    ASSERT_UEQ(crew_arena_array(a, SIZE_MAX / 2, 4, 4), 0); /* count * size overflows */
    ASSERT_UEQ(crew_arena_array(a, SIZE_MAX / 8 + 2, 8, 8), 0); /* ... and wraps to 8 */
    ASSERT_UEQ(crew_arena_array(a, 0, 4, 4), 0);
    ASSERT_UEQ(crew_arena_array(a, 4, 0, 4), 0);
    ASSERT_UEQ(crew_arena_strdup(a, NULL), 0);
    ASSERT_UEQ(crew_arena_strndup(a, "x", SIZE_MAX), 0);

    ASSERT_NULL(crew_arena_ptr(NULL, 64));
    ASSERT_NULL(crew_arena_ptr(a, 0));
    ASSERT_NULL(crew_arena_get(NULL, 64, 1));
    ASSERT_NULL(crew_arena_base(NULL));
    ASSERT_EQ(crew_arena_size(NULL), 0);
    ASSERT_EQ(crew_arena_fd(NULL), CREW_EINVAL);
    ASSERT_EQ(crew_arena_freeze(NULL), CREW_EINVAL);
    ASSERT_EQ(crew_arena_save(NULL, "/tmp/x"), CREW_EINVAL);
    ASSERT_EQ(crew_arena_save(a, NULL), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open(NULL, "/tmp/x", 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open(&a, NULL, 0), CREW_EINVAL);
    crew_arena *b = NULL;
    ASSERT_EQ(crew_arena_open(&b, "/tmp/x", 0x100), CREW_EINVAL);
    ASSERT_EQ(crew_arena_open_fd(&b, -1, 0), CREW_EINVAL);
    ASSERT_EQ(crew_arena_root(NULL), 0);
    crew_arena_set_root(NULL, 64); /* no crash */
    crew_arena_close(NULL);
    crew_strtab_close(NULL);
    crew_arena_close(a);
}

static void test_alloc_alignment_and_zero(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    ASSERT_UEQ(crew_arena_size(a), CREW_ARENA_PROLOGUE);
    ASSERT_EQ((uintptr_t)crew_arena_base(a) % 4096, 0);
    crew_ref prev = 0;
    for (size_t align = 1; align <= CREW_ARENA_MAX_ALIGN; align *= 2) {
        crew_ref r = crew_arena_alloc(a, 3, align);
        ASSERT_NE(r, 0);
        ASSERT_GE(r, CREW_ARENA_PROLOGUE);
        ASSERT_EQ(r % align, 0);
        ASSERT_EQ((uintptr_t)crew_arena_ptr(a, r) % align, 0);
        ASSERT_GT(r, prev);
        const unsigned char *p = crew_arena_ptr(a, r);
        ASSERT(p[0] == 0 && p[1] == 0 && p[2] == 0);
        prev = r;
    }
    ASSERT_UEQ(crew_arena_size(a), prev + 3);
    struct pt { double x, y; };
    crew_ref arr = CREW_ARENA_ARRAY(a, struct pt, 100);
    ASSERT_EQ(arr % _Alignof(struct pt), 0);
    CREW_ARENA_PTR(a, struct pt, arr)[99].y = 2.5;
    ASSERT(CREW_ARENA_GET_ARRAY(a, struct pt, arr, 100)[99].y == 2.5);
    ASSERT_NULL(CREW_ARENA_GET_ARRAY(a, struct pt, arr, 101 + 1000000));
    crew_arena_close(a);
}

static void test_get_bounds(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref r = crew_arena_alloc(a, 100, 8);
    size_t used = crew_arena_size(a);
    ASSERT_NOT_NULL(crew_arena_get(a, r, 100));
    ASSERT_NOT_NULL(crew_arena_get(a, r, used - r));
    ASSERT_NULL(crew_arena_get(a, r, used - r + 1));
    ASSERT_NULL(crew_arena_get(a, 0, 1));
    ASSERT_NULL(crew_arena_get(a, 1, 1));                  /* inside the prologue */
    ASSERT_NULL(crew_arena_get(a, used + 1, 0));
    ASSERT_NULL(crew_arena_get(a, r, SIZE_MAX));           /* ref + size overflows */
    ASSERT_NULL(crew_arena_get(a, UINT64_MAX, 2));
    ASSERT_NULL(crew_arena_get(a, UINT64_MAX - 1, 1));
    ASSERT_NULL(crew_arena_get_array(a, r, SIZE_MAX / 2, 4, 4));
    ASSERT_NULL(crew_arena_get_array(a, r + 1, 1, 8, 8));  /* misaligned */
    ASSERT_NULL(crew_arena_get_array(a, r, 0, 8, 8));
    ASSERT_NULL(crew_arena_get_array(a, r, 1, 8, 6));      /* align not a power of 2 */
    ASSERT_NOT_NULL(crew_arena_get_array(a, r, 12, 8, 8));
    ASSERT_NULL(crew_arena_get_array(a, r, 13, 8, 8));
    crew_arena_close(a);
}

/* Fill the arena with 1 MiB blocks until it is full: the base stays, every
 * block keeps its bytes, and the allocation past capacity fails cleanly. */
static void test_base_never_moves(void)
{
    const size_t cap = 64u << 20, block = 1u << 20;
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, cap));
    ASSERT_UEQ(crew_arena_capacity(a), cap);
    const void *base = crew_arena_base(a);
    crew_ref refs[64];
    size_t n = 0;
    crew_ref r;
    int rc;
    while ((rc = crew_arena_try_alloc(a, block, 4096, &r)) == 0) {
        ASSERT_LT(n, 64);
        memset(crew_arena_ptr(a, r), (int)(n + 1), block);
        refs[n++] = r;
        ASSERT_PTR_EQ(crew_arena_base(a), base);
    }
    ASSERT_EQ(rc, CREW_EFULL);
    ASSERT_EQ(n, 63); /* the prologue's page is taken */
    /* the remaining tail still serves small requests */
    ASSERT_NE(crew_arena_alloc(a, 100, 1), 0);
    ASSERT_UEQ(crew_arena_alloc(a, cap, 1), 0);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = crew_arena_ptr(a, refs[i]);
        ASSERT_EQ(p[0], i + 1);
        ASSERT_EQ(p[block - 1], i + 1);
    }
    ASSERT_PTR_EQ(crew_arena_base(a), base);
    crew_arena_close(a);
}

/* Several threads allocate at once: no two allocations overlap and the
 * arena grows under them. */
enum { THREADS = 4, PER_THREAD = 20000 };
struct alloc_job {
    crew_arena *a;
    unsigned id;
    crew_ref refs[PER_THREAD];
};

static void *alloc_thread(void *arg)
{
    struct alloc_job *j = arg;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        size_t size = 8 + (i % 7) * 8;
        crew_ref r = crew_arena_alloc(j->a, size, 8);
        if (!r)
            return NULL;
        uint64_t *p = crew_arena_ptr(j->a, r);
        for (size_t k = 0; k < size / 8; k++)
            p[k] = ((uint64_t)j->id << 32) | i;
        j->refs[i] = r;
    }
    return j;
}

static void test_parallel_alloc(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 64u << 20));
    static struct alloc_job jobs[THREADS];
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        jobs[t].a = a;
        jobs[t].id = t;
        ASSERT_EQ(pthread_create(&th[t], NULL, alloc_thread, &jobs[t]), 0);
    }
    for (unsigned t = 0; t < THREADS; t++) {
        void *ret;
        ASSERT_EQ(pthread_join(th[t], &ret), 0);
        ASSERT_PTR_EQ(ret, &jobs[t]);
    }
    for (unsigned t = 0; t < THREADS; t++)
        for (unsigned i = 0; i < PER_THREAD; i++) {
            const uint64_t *p = crew_arena_ptr(a, jobs[t].refs[i]);
            size_t size = 8 + (i % 7) * 8;
            for (size_t k = 0; k < size / 8; k++)
                ASSERT_UEQ(p[k], ((uint64_t)t << 32) | i);
        }
    crew_arena_close(a);
}

static void test_freeze(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 16u << 20));
    int fd = crew_arena_fd(a);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fcntl(fd, F_GET_SEALS), 0);
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* close-on-exec, as documented */
    crew_ref r = crew_arena_alloc(a, 3u << 20, 8);
    memset(crew_arena_ptr(a, r), 0xAB, 3u << 20);
    crew_arena_set_root(a, r);
    const void *base = crew_arena_base(a);
    char perms[5];
    maps_perms(base, perms);
    ASSERT_STR_EQ(perms, "rw-s");
    ASSERT_EQ(crew_arena_frozen(a), 0);

    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(crew_arena_frozen(a), 1);
    ASSERT_PTR_EQ(crew_arena_base(a), base);
    int seals = fcntl(fd, F_GET_SEALS);
    ASSERT_EQ(seals, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    maps_perms(base, perms);
    ASSERT(perms[0] == 'r' && perms[1] == '-');
    maps_perms((const char *)base + (3u << 20), perms);
    ASSERT(perms[1] == '-');
    /* the kernel refuses every other way to change it */
    ASSERT_EQ(pwrite(fd, "x", 1, 100), -1);
    ASSERT_EQ(errno, EPERM);
    ASSERT_EQ(ftruncate(fd, 1 << 30), -1);
    if (perms[3] == 's') /* a shared sealed mapping can never become writable */
        ASSERT_NE(mprotect((void *)base, 4096, PROT_READ | PROT_WRITE), 0);
    ASSERT_EQ(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    /* trimmed to the pages in use */
    ASSERT_EQ(lseek(fd, 0, SEEK_END), (3u << 20) + 4096);

    ASSERT_UEQ(crew_arena_alloc(a, 8, 8), 0);
    crew_ref x;
    ASSERT_EQ(crew_arena_try_alloc(a, 8, 8, &x), CREW_EFROZEN);
    ASSERT_UEQ(crew_arena_strdup(a, "late"), 0);
    crew_arena_set_root(a, r + 8); /* ignored (a value other than r) */
    ASSERT_UEQ(crew_arena_root(a), r);
    ASSERT_OK(crew_arena_freeze(a)); /* idempotent */
    const unsigned char *p = crew_arena_get(a, r, 3u << 20);
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(p[0], 0xAB);
    ASSERT_EQ(p[(3u << 20) - 1], 0xAB);
    crew_arena_close(a);
}

/* The memfd grows ahead of use (1 MiB at least); freezing trims it to the
 * pages in use. */
static void test_freeze_trims(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 16u << 20));
    ASSERT_NE(crew_arena_alloc(a, 100, 8), 0);
    int fd = crew_arena_fd(a);
    ASSERT_GT(lseek(fd, 0, SEEK_END), (off_t)page);
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(lseek(fd, 0, SEEK_END), (off_t)page);
    crew_arena_close(a);
}

/* An allocation that fills the capacity exactly succeeds; one byte more
 * does not. */
static void test_fill_exactly(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, page));
    ASSERT_UEQ(crew_arena_capacity(a), page);
    crew_ref r = 0;
    ASSERT_OK(crew_arena_try_alloc(a, page - CREW_ARENA_PROLOGUE, 1, &r));
    ASSERT_UEQ(r, CREW_ARENA_PROLOGUE);
    ASSERT_UEQ(crew_arena_size(a), page);
    ASSERT_EQ(crew_arena_try_alloc(a, 1, 1, &r), CREW_EFULL);
    crew_arena_close(a);
}

/* An arena frozen with no allocation is still a valid, empty arena. */
static void test_freeze_empty(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 4096));
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_UEQ(crew_arena_size(a), CREW_ARENA_PROLOGUE);
    ASSERT_EQ(memcmp(crew_arena_base(a), "CREWARNA", 8), 0);
    crew_arena_close(a);
}

static void test_open_fd_unfrozen(void)
{
    crew_arena *a, *b = NULL;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    ASSERT_NE(crew_arena_alloc(a, 10, 1), 0);
    /* not frozen: refused as such, prologue or not */
    ASSERT_EQ(crew_arena_open_fd(&b, crew_arena_fd(a), 0), CREW_ENOTFROZEN);
    /* with a prologue but no seals, it must not be adopted */
    memcpy((void *)crew_arena_base(a), "CREWARNA", 8);
    ASSERT_EQ(crew_arena_open_fd(&b, crew_arena_fd(a), 0), CREW_ENOTFROZEN);
    ASSERT_NULL(b);
    crew_arena_close(a);
}

int main(void)
{
    test_bad_arguments();
    test_alloc_alignment_and_zero();
    test_get_bounds();
    test_base_never_moves();
    test_parallel_alloc();
    test_freeze();
    test_freeze_trims();
    test_fill_exactly();
    test_freeze_empty();
    test_open_fd_unfrozen();
    printf("test_arena: ok\n");
    return 0;
}
