/*
 * arena.c -- the arena itself: a memfd mapped at a fixed, reserved range.
 *
 * The idea: reserve address space for the whole capacity up front with an
 * inaccessible anonymous mapping, and as allocations need room, extend the
 * memfd and map the new part of it MAP_SHARED|MAP_FIXED over the
 * reservation.  The base address therefore never moves (pointers stay
 * valid), growth costs one ftruncate + one mmap per doubling, memory is
 * used only where allocations touch it, and forked children share the
 * pages because the mapping is MAP_SHARED.  A fixed-address mmap that
 * fails is followed by a fresh reservation of its range, so that no hole
 * opens in the arena for an unrelated mapping to land in.
 *
 * Allocation is a bump pointer advanced by compare-and-swap: threads that
 * build the arena in parallel never take a lock except to grow it.  There
 * is no free: an arena holds one data set and is released whole.
 *
 * Freezing must never leave the arena unreadable, because readers may be
 * running (crew_arena_get and friends are thread-safe).  So every step is
 * one MAP_FIXED replacement of a readable mapping by another: the writable
 * shared mapping becomes a private read-only one (which shares the same
 * page-cache pages but does not block the write seal, as a writable shared
 * mapping would), the memfd is write-sealed, trimmed and fully sealed, and
 * where the kernel allows, the mapping becomes read-only MAP_SHARED.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

/* Read CREW_ARENA_MAP_PRIVATE once: it is a test switch, not a tunable
 * that may change under a running program. */
static int force_private(void)
{
    static _Atomic int forced = -1;
    /* relaxed: every thread computes the same value; a race only repeats it */
    int v = atomic_load_explicit(&forced, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("CREW_ARENA_MAP_PRIVATE");
        v = e && e[0] == '1';
        atomic_store_explicit(&forced, v, memory_order_relaxed);
    }
    return v;
}

/*
 * MAP_SHARED or MAP_PRIVATE: how to map fd read-only.
 *
 * Before Linux 6.7 the kernel refuses even a read-only MAP_SHARED mapping
 * of a write-sealed memfd (EPERM), because it could later be mprotect'ed
 * writable.  MAP_PRIVATE|PROT_READ works everywhere and maps the very same
 * page-cache pages (private copies appear only on write, which PROT_READ
 * forbids).  A MAP_FIXED attempt that fails may already have unmapped the
 * target range, so we find out with a throwaway probe mapping first; the
 * answer is a property of the kernel, so it is learnt once.  A probe that
 * fails for another reason (no memory) teaches nothing: private is never
 * wrong, so this once the answer is private.
 */
static int readonly_share(int fd, uint64_t off)
{
    static _Atomic int sealed_shared_ok = -1;
    if (force_private())
        return MAP_PRIVATE;
    int seals = crew__sys.fcntl(fd, F_GET_SEALS, 0);
    if (seals < 0 || !(seals & F_SEAL_WRITE))
        return MAP_SHARED;
    /* relaxed: every thread learns the same answer; a race only repeats it */
    int ok = atomic_load_explicit(&sealed_shared_ok, memory_order_relaxed);
    if (ok < 0) {
        size_t probe_len = crew__arena_page();
        void *probe = crew__sys.mmap(NULL, probe_len, PROT_READ, MAP_SHARED, fd, (off_t)off);
        if (probe != MAP_FAILED) {
            munmap(probe, probe_len);
            ok = 1;
        } else if (errno == EPERM) {
            ok = 0;
        } else {
            return MAP_PRIVATE;
        }
        atomic_store_explicit(&sealed_shared_ok, ok, memory_order_relaxed);
    }
    return ok ? MAP_SHARED : MAP_PRIVATE;
}

void *crew__arena_map_readonly(void *at, size_t len, int fd, uint64_t off)
{
    int share = readonly_share(fd, off);
    int fixed = at ? MAP_FIXED : 0;
    void *p = crew__sys.mmap(at, len, PROT_READ, share | fixed, fd, (off_t)off);
    /* An fd the probe did not speak for (say, opened read-write after the
     * answer was learnt from a read-only one).  The range is the caller's
     * (reserved, or not fixed), so trying again there is safe. */
    if (p == MAP_FAILED && errno == EPERM && share == MAP_SHARED)
        p = crew__sys.mmap(at, len, PROT_READ, MAP_PRIVATE | fixed, fd, (off_t)off);
    return p;
}

/*
 * Make [addr, addr + len) an inaccessible reservation again.  Used after a
 * fixed-address mmap failed (the kernel may have unmapped the range before
 * failing, and a hole inside the arena would let the next unrelated mmap
 * land there, to be overwritten when the arena grows) and for the tail a
 * freeze trims.  Returns 0 or -errno.
 */
static int reserve(void *addr, size_t len)
{
    if (len == 0)
        return 0;
    /* NORESERVE: the reservation is address space only, never committed */
    void *p = crew__sys.mmap(addr, len, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
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

/* The arena object: in shared memory while process pools may need it
 * (space.c), else on the heap. */
static void arena_free(crew_arena *a)
{
    if (!crew__space_handle_free(a))
        free(a);
}

/* Only the process that made an arena changes it: another one (a forked
 * child, a process pool's worker) would collide with its allocations, and
 * its copy of the fd number may name another file. */
static int foreign(const crew_arena *a)
{
    return a->owner != crew__space_pid();
}

static crew_arena *arena_new(int fd, unsigned char *map, size_t map_len)
{
    crew_arena *a = crew__space_handle_new();
    int shared_handle = a != NULL;
    /* A heap object made while a process pool runs would not exist in its
     * workers: refuse, as for an arena that finds no room (space.c). */
    if (!a && !crew__space_may_use_heap())
        return NULL;
    if (!a)
        a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    if (pthread_mutex_init(&a->grow_lock, NULL) != 0) {
        arena_free(a);
        return NULL;
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        a->dev = (uint64_t)st.st_dev;
        a->ino = (uint64_t)st.st_ino;
    }
    a->shared_handle = shared_handle;
    a->owner = crew__space_pid();
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

    int fd = crew__sys.memfd_create("crew-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int in_space;
    void *map = crew__space_reserve(cap, &in_space);
    if (map == MAP_FAILED) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    crew_arena *a = arena_new(fd, map, cap);
    if (!a) {
        crew__space_release(map, cap, in_space);
        close(fd);
        return CREW_ENOMEM;
    }
    a->in_space = in_space;
    a->capacity = cap;
    atomic_init(&a->used, CREW_ARENA_PROLOGUE);
    crew__space_add(a);
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
        if (crew__sys.ftruncate(a->fd, (off_t)want) != 0) {
            rc = -errno;
        } else if (crew__sys.mmap(a->base + have, want - have, PROT_READ | PROT_WRITE,
                                  MAP_SHARED | MAP_FIXED, a->fd, (off_t)have) == MAP_FAILED) {
            rc = -errno;
            (void)reserve(a->base + have, want - have);
            (void)crew__sys.ftruncate(a->fd, (off_t)have);
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
    if (!a || !ref || size == 0 || !is_pow2(align) || align > CREW_ARENA_MAX_ALIGN || foreign(a))
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
    return a && ref && !crew__arena_hidden(a) ? a->base + ref : NULL;
}

const void *crew_arena_get(const crew_arena *a, crew_ref ref, size_t size)
{
    if (!a || ref < CREW_ARENA_PROLOGUE || crew__arena_hidden(a))
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
    if (a && !foreign(a) && !atomic_load_explicit(&a->frozen, memory_order_relaxed))
        atomic_store_explicit(&a->root, root, memory_order_relaxed);
}

crew_ref crew_arena_root(const crew_arena *a)
{
    return a && !crew__arena_hidden(a) ? atomic_load_explicit(&a->root, memory_order_relaxed)
                                       : 0;
}

/*
 * Freeze, part one (under grow_lock, arena not frozen): write the
 * prologue, swap the writable shared mapping of [0, have) for a private
 * read-only one, and add the write seal.  The kernel refuses that seal
 * (EBUSY) while any writable shared mapping exists -- ours, or a forked
 * child's -- and then the arena is swapped back and stays as it was.
 * Once the seal is in, nothing can write the memfd again, so the arena is
 * frozen from that moment, whatever happens after.
 */
static int seal_write(int fd)
{
    return crew__sys.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) != 0 ? -errno : 0;
}

static int freeze_seal_write(crew_arena *a, size_t have)
{
    struct crew__prologue p;
    crew__arena_prologue(&p, atomic_load_explicit(&a->used, memory_order_relaxed),
                         atomic_load_explicit(&a->root, memory_order_relaxed));
    memcpy(a->base, &p, sizeof p);
    int rc = 0;
    if (crew__sys.mmap(a->base, have, PROT_READ, MAP_PRIVATE | MAP_FIXED, a->fd, 0) ==
        MAP_FAILED)
        rc = -errno;
    else
        rc = seal_write(a->fd);
    /* The workers of a process pool map unfrozen arenas writable, and the
     * write seal waits for no mapping.  Between calls, workers drop their
     * writable mappings when asked, and the seal is tried again: a
     * mapping left then is a child's the caller forked (CREW_EBUSY).
     * Workers busy in a call cannot answer at once; the future-write seal
     * then forbids every new write and writable mapping from now on while
     * letting existing mappings be, and the workers swap theirs for
     * read-only ones in their first task of the next call (section 4b of
     * crew.h).  All this only for an arena workers were told to map
     * writable. */
    if (rc == CREW_EBUSY && atomic_load(&a->shown_writable) && crew__space_has_pools()) {
        /* the seal is retried before any call can start again */
        rc = crew__space_revoke((uintptr_t)a->map, seal_write, a->fd);
        if (rc == 1)
            rc = crew__sys.fcntl(a->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != 0 ? -errno : 0;
    }
    if (rc < 0) {
        /* Undo (also fills a hole a failed swap may have left).  Should
         * this fail too, the arena is readable but no longer writable. */
        (void)crew__sys.mmap(a->base, have, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                             a->fd, 0);
        return rc;
    }
    /* release: everything written before the freeze is visible to whoever
     * sees the arena frozen */
    atomic_store_explicit(&a->frozen, 1, memory_order_release);
    return 0;
}

/*
 * Freeze, part two (under grow_lock, arena frozen): trim the memfd to the
 * `len` bytes of pages in use, add the remaining seals, and map it shared
 * where the kernel allows.  Each step can be repeated, so a freeze that
 * failed here is finished by freezing again.  The arena stays readable
 * throughout: the tail is made inaccessible before the file shrinks under
 * it, and the last swap replaces a read-only mapping by another.
 */
static int freeze_finish(crew_arena *a, size_t len)
{
    size_t have = atomic_load_explicit(&a->committed, memory_order_relaxed);
    if (have > len) {
        int rc = reserve(a->base + len, have - len);
        if (rc < 0)
            return rc;
        if (crew__sys.ftruncate(a->fd, (off_t)len) != 0)
            return -errno;
        atomic_store_explicit(&a->committed, len, memory_order_relaxed);
    }
    int seals = crew__sys.fcntl(a->fd, F_GET_SEALS, 0);
    if (seals < 0)
        return -errno;
    if (!(seals & F_SEAL_SEAL) &&
        crew__sys.fcntl(a->fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
        return -errno;
    if (readonly_share(a->fd, 0) == MAP_SHARED &&
        crew__sys.mmap(a->base, len, PROT_READ, MAP_SHARED | MAP_FIXED, a->fd, 0) == MAP_FAILED) {
        /* The private mapping reads the same pages; keep it, or put it
         * back should the failed call have unmapped it. */
        if (crew__sys.mmap(a->base, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, a->fd, 0) ==
            MAP_FAILED)
            return -errno;
    }
    a->sealed = 1;
    return 0;
}

int crew_arena_freeze(crew_arena *a)
{
    if (!a || foreign(a))
        return CREW_EINVAL;
    size_t page = crew__arena_page();
    if (!atomic_load_explicit(&a->frozen, memory_order_acquire)) {
        size_t used = atomic_load_explicit(&a->used, memory_order_relaxed);
        if (!crew__arena_root_valid(atomic_load_explicit(&a->root, memory_order_relaxed), used))
            return CREW_EBADROOT;
        /* an arena with no allocation has no page yet */
        int rc = arena_grow(a, round_up(used, page));
        if (rc < 0)
            return rc;
    }
    int rc = 0;
    pthread_mutex_lock(&a->grow_lock);
    if (!atomic_load_explicit(&a->frozen, memory_order_relaxed))
        rc = freeze_seal_write(a, atomic_load_explicit(&a->committed, memory_order_relaxed));
    if (rc == 0 && !a->sealed)
        rc = freeze_finish(a, round_up(atomic_load_explicit(&a->used, memory_order_relaxed), page));
    pthread_mutex_unlock(&a->grow_lock);
    return rc;
}

int crew__arena_adopt(crew_arena **out, int fd, unsigned char *map, size_t map_len,
                      uint64_t map_off, int in_space, size_t data_skip, uint64_t size,
                      crew_ref root)
{
    crew_arena *a = arena_new(fd, map, map_len);
    if (!a)
        return CREW_ENOMEM;
    a->map_off = map_off;
    a->in_space = in_space;
    a->borrowed = fd < 0;
    a->base = map + data_skip;
    a->capacity = (size_t)size;
    atomic_init(&a->used, (size_t)size);
    atomic_init(&a->root, root);
    atomic_init(&a->frozen, 1);
    a->sealed = 1;
    crew__space_add(a);
    *out = a;
    return 0;
}

const void *crew_arena_base(const crew_arena *a)
{
    return a && !crew__arena_hidden(a) ? a->base : NULL;
}

size_t crew_arena_size(const crew_arena *a)
{
    return a && !crew__arena_hidden(a) ? atomic_load_explicit(&a->used, memory_order_acquire)
                                       : 0;
}

size_t crew_arena_capacity(const crew_arena *a)
{
    return a && !crew__arena_hidden(a) ? a->capacity : 0;
}

int crew_arena_frozen(const crew_arena *a)
{
    return a ? atomic_load_explicit(&a->frozen, memory_order_acquire) : 0;
}

int crew_arena_fd(const crew_arena *a)
{
    /* an arena over caller memory has no file */
    return a && a->fd >= 0 ? a->fd : CREW_EINVAL;
}

void crew_arena_close(crew_arena *a)
{
    /* A forked child may release its copy of the object (but not an
     * object it still shares with its parent); a worker's objects are the
     * caller's arenas (shared, or copies it keeps in step), which the
     * worker must keep mapped. */
    if (!a || (foreign(a) && (crew__space_in_worker() || crew__space_handle_parents(a))))
        return;
    crew__space_remove(a);
    /* caller memory stays the caller's: mapped, as it was */
    if (!a->borrowed) {
        crew__space_release(a->map, a->map_len, a->in_space);
        close(a->fd);
    }
    pthread_mutex_destroy(&a->grow_lock);
    arena_free(a);
}
