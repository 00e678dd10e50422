/*
 * arena.c -- the arena itself: a memfd mapped at a fixed, reserved range.
 *
 * The idea: reserve address space for the whole capacity up front with an
 * inaccessible anonymous mapping, and as allocations need room, extend the
 * memfd and map the new part of it MAP_SHARED|MAP_FIXED over the
 * reservation.  The base address therefore never moves (pointers stay
 * valid), growth costs one ftruncate + one mmap per doubling, memory is
 * used only where allocations touch it, and forked children share the
 * pages because the mapping is MAP_SHARED.
 *
 * Allocation is a bump pointer advanced by compare-and-swap: threads that
 * build the arena in parallel never take a lock except to grow it.  There
 * is no free: an arena holds one data set and is released whole.
 *
 * Freezing swaps the writable mapping for an inaccessible one (so the
 * write seal can be added: the kernel refuses it while a writable shared
 * mapping exists), trims and seals the memfd, and maps it back read-only
 * at the same base.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena/arena_internal.h"

#define CREW_ARENA_MIN_GROWTH ((size_t)1 << 20)
#define CREW_ARENA_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

size_t crew__arena_page(void)
{
    static _Atomic size_t page;
    /* relaxed: every thread computes the same value; a race only repeats it */
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (p == 0) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static int force_private(void)
{
    const char *v = getenv("CREW_ARENA_MAP_PRIVATE");
    return v && v[0] == '1';
}

/*
 * Before Linux 6.7 the kernel refuses even a read-only MAP_SHARED mapping
 * of a write-sealed memfd (EPERM), because it could later be mprotect'ed
 * writable.  MAP_PRIVATE|PROT_READ works everywhere and maps the very same
 * page-cache pages (private copies appear only on write, which PROT_READ
 * forbids).  A MAP_FIXED attempt that fails may already have unmapped the
 * target range, so we find out with a throwaway probe mapping first.
 */
void *crew__arena_map_readonly(void *addr, size_t len, int fd, uint64_t off)
{
    int flags = MAP_SHARED;
    if (force_private()) {
        flags = MAP_PRIVATE;
    } else {
        size_t probe_len = crew__arena_page();
        void *probe = mmap(NULL, probe_len, PROT_READ, MAP_SHARED, fd, (off_t)off);
        if (probe == MAP_FAILED) {
            if (errno != EPERM)
                return MAP_FAILED;
            flags = MAP_PRIVATE;
        } else {
            munmap(probe, probe_len);
        }
    }
    if (addr)
        flags |= MAP_FIXED;
    return mmap(addr, len, PROT_READ, flags, fd, (off_t)off);
}

void crew__arena_prologue(struct crew__prologue *p, uint64_t size, crew_ref root)
{
    memset(p, 0, sizeof *p);
    memcpy(p->magic, CREW__PROLOGUE_MAGIC, sizeof p->magic);
    p->endian = CREW__ENDIAN_TAG;
    p->version = 1;
    p->size = size;
    p->root = root;
}

static crew_arena *arena_new(int fd, unsigned char *map, size_t map_len)
{
    crew_arena *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (pthread_mutex_init(&a->grow_lock, NULL) != 0) {
        free(a);
        return NULL;
    }
    a->fd = fd;
    a->map = map;
    a->map_len = map_len;
    a->base = map;
    return a;
}

int crew_arena_create(crew_arena **out, size_t capacity)
{
    size_t page = crew__arena_page();
    if (!out || capacity == 0 || capacity > SIZE_MAX - page)
        return CREW_EINVAL;
    size_t cap = round_up(capacity, page);
    if (cap > (SIZE_MAX >> 1) || cap < CREW_ARENA_PROLOGUE)
        return cap > (SIZE_MAX >> 1) ? CREW_ENOMEM : CREW_EINVAL;

    int fd = memfd_create("crew-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* NORESERVE: the reservation is address space only, never committed */
    void *map = mmap(NULL, cap, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    crew_arena *a = arena_new(fd, map, cap);
    if (!a) {
        munmap(map, cap);
        close(fd);
        return CREW_ENOMEM;
    }
    a->capacity = cap;
    atomic_init(&a->used, CREW_ARENA_PROLOGUE);
    *out = a;
    return 0;
}

/*
 * Make at least `need` bytes writable: extend the memfd and map the new
 * part over the reservation.  Grows by doubling (at least 1 MiB) so that
 * a long build makes few calls; the memfd's unused tail costs no memory.
 */
static int arena_grow(crew_arena *a, size_t need)
{
    int rc = 0;
    pthread_mutex_lock(&a->grow_lock);
    size_t have = atomic_load_explicit(&a->committed, memory_order_relaxed);
    if (atomic_load_explicit(&a->frozen, memory_order_relaxed)) {
        rc = CREW_EFROZEN;
    } else if (need > have) {
        size_t want = have * 2 > need ? have * 2 : need;
        if (want < CREW_ARENA_MIN_GROWTH)
            want = CREW_ARENA_MIN_GROWTH;
        want = round_up(want, crew__arena_page());
        if (want > a->capacity)
            want = a->capacity;
        if (ftruncate(a->fd, (off_t)want) != 0) {
            rc = -errno;
        } else if (mmap(a->base + have, want - have, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_FIXED, a->fd, (off_t)have) == MAP_FAILED) {
            rc = -errno;
            (void)ftruncate(a->fd, (off_t)have);
        } else {
            /* release: the new mapping exists before allocators see it */
            atomic_store_explicit(&a->committed, want, memory_order_release);
        }
    }
    pthread_mutex_unlock(&a->grow_lock);
    return rc;
}

int crew_arena_try_alloc(crew_arena *a, size_t size, size_t align, crew_ref *ref)
{
    if (!a || !ref || size == 0 || !is_pow2(align) || align > CREW_ARENA_MAX_ALIGN)
        return CREW_EINVAL;
    /* acquire: pairs with the release in freeze (no allocation after it) */
    if (atomic_load_explicit(&a->frozen, memory_order_acquire))
        return CREW_EFROZEN;
    /* relaxed: the CAS below validates the value; nothing is published by it */
    size_t cur = atomic_load_explicit(&a->used, memory_order_relaxed);
    for (;;) {
        size_t start = round_up(cur, align); /* cur <= capacity < SIZE_MAX/2 */
        if (size > a->capacity || start > a->capacity - size)
            return CREW_EFULL;
        size_t end = start + size;
        /* acquire: pairs with arena_grow's release: [0, end) is mapped */
        if (end > atomic_load_explicit(&a->committed, memory_order_acquire)) {
            int rc = arena_grow(a, end);
            if (rc < 0)
                return rc;
            cur = atomic_load_explicit(&a->used, memory_order_relaxed);
            continue;
        }
        /* relaxed: [start, end) becomes ours alone; no data rides on `used` */
        if (atomic_compare_exchange_weak_explicit(&a->used, &cur, end, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *ref = start;
            return 0;
        }
    }
}

crew_ref crew_arena_alloc(crew_arena *a, size_t size, size_t align)
{
    crew_ref ref = 0;
    return crew_arena_try_alloc(a, size, align, &ref) == 0 ? ref : 0;
}

crew_ref crew_arena_array(crew_arena *a, size_t count, size_t elem_size, size_t align)
{
    if (count == 0 || elem_size == 0 || count > SIZE_MAX / elem_size)
        return 0;
    return crew_arena_alloc(a, count * elem_size, align);
}

void *crew_arena_ptr(const crew_arena *a, crew_ref ref)
{
    return a && ref ? a->base + ref : NULL;
}

const void *crew_arena_get(const crew_arena *a, crew_ref ref, size_t size)
{
    if (!a || ref < CREW_ARENA_PROLOGUE)
        return NULL;
    /* acquire: a reader thread sees allocations published to it by others */
    uint64_t used = atomic_load_explicit(&a->used, memory_order_acquire);
    if (ref > used || size > used - ref)
        return NULL;
    return a->base + ref;
}

const void *crew_arena_get_array(const crew_arena *a, crew_ref ref, size_t count,
                                 size_t elem_size, size_t align)
{
    if (count == 0 || elem_size == 0 || count > SIZE_MAX / elem_size)
        return NULL;
    if (align > 1 && (!is_pow2(align) || (ref & (align - 1)) != 0))
        return NULL;
    return crew_arena_get(a, ref, count * elem_size);
}

void crew_arena_set_root(crew_arena *a, crew_ref root)
{
    /* relaxed: handing the arena to another thread publishes the root */
    if (a && !atomic_load_explicit(&a->frozen, memory_order_relaxed))
        atomic_store_explicit(&a->root, root, memory_order_relaxed);
}

crew_ref crew_arena_root(const crew_arena *a)
{
    return a ? atomic_load_explicit(&a->root, memory_order_relaxed) : 0;
}

/*
 * Seal the memfd in the order the kernel allows: the write seal first (it
 * fails with EBUSY while any process still maps the memfd writable, and
 * then nothing has changed yet), then trim to the pages in use and seal
 * size and seals.
 */
static int arena_seal(crew_arena *a, size_t len)
{
    if (fcntl(a->fd, F_ADD_SEALS, F_SEAL_WRITE) != 0)
        return -errno;
    if (ftruncate(a->fd, (off_t)len) != 0)
        return -errno;
    if (fcntl(a->fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
        return -errno;
    return 0;
}

int crew_arena_freeze(crew_arena *a)
{
    if (!a)
        return CREW_EINVAL;
    if (atomic_load_explicit(&a->frozen, memory_order_acquire))
        return 0;
    size_t len = round_up(atomic_load_explicit(&a->used, memory_order_relaxed),
                          crew__arena_page());
    int rc = arena_grow(a, len); /* an arena with no allocation has no page yet */
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&a->grow_lock);
    size_t have = atomic_load_explicit(&a->committed, memory_order_relaxed);
    struct crew__prologue p;
    crew__arena_prologue(&p, atomic_load_explicit(&a->used, memory_order_relaxed),
                         atomic_load_explicit(&a->root, memory_order_relaxed));
    memcpy(a->base, &p, sizeof p);
    /* Replace (not unmap: the range must stay ours) the writable mapping. */
    if (mmap(a->base, have, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
             -1, 0) == MAP_FAILED) {
        rc = -errno;
    } else if ((rc = arena_seal(a, len)) < 0) {
        /* Most likely EBUSY: undo, so the arena stays as it was. */
        (void)ftruncate(a->fd, (off_t)have);
        if (mmap(a->base, have, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, a->fd, 0) ==
            MAP_FAILED)
            rc = -errno;
    } else if (crew__arena_map_readonly(a->base, len, a->fd, 0) == MAP_FAILED) {
        rc = -errno;
    } else {
        /* release: everything written before the freeze is visible to
         * whoever sees the arena frozen */
        atomic_store_explicit(&a->frozen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&a->grow_lock);
    return rc;
}

int crew__arena_adopt(crew_arena **out, int fd, unsigned char *map, size_t map_len,
                      size_t data_skip, uint64_t size, crew_ref root)
{
    crew_arena *a = arena_new(fd, map, map_len);
    if (!a)
        return CREW_ENOMEM;
    a->base = map + data_skip;
    a->capacity = (size_t)size;
    atomic_init(&a->used, (size_t)size);
    atomic_init(&a->root, root);
    atomic_init(&a->frozen, 1);
    *out = a;
    return 0;
}

const void *crew_arena_base(const crew_arena *a)
{
    return a ? a->base : NULL;
}

size_t crew_arena_size(const crew_arena *a)
{
    return a ? atomic_load_explicit(&a->used, memory_order_acquire) : 0;
}

size_t crew_arena_capacity(const crew_arena *a)
{
    return a ? a->capacity : 0;
}

int crew_arena_frozen(const crew_arena *a)
{
    return a ? atomic_load_explicit(&a->frozen, memory_order_acquire) : 0;
}

int crew_arena_fd(const crew_arena *a)
{
    return a ? a->fd : CREW_EINVAL;
}

void crew_arena_close(crew_arena *a)
{
    if (!a)
        return;
    munmap(a->map, a->map_len);
    close(a->fd);
    pthread_mutex_destroy(&a->grow_lock);
    free(a);
}
