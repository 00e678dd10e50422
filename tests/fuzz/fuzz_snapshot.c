/*
 * fuzz_snapshot.c -- libFuzzer target for everything that reads untrusted
 * arena bytes: the snapshot header parser, the prologue parser (the fd of
 * a frozen arena), crew_arena_open_fd with and without VERIFY, the same
 * bytes opened from memory (crew_arena_open_memory), and the checked readers (crew_arena_get / get_array / str, crew_strtab_find,
 * the data-set catalog) following refs found in the data itself.
 *
 * Each input is a whole file: it is written to a memfd (sealed when it
 * starts with the prologue magic, so that path is reachable) and opened,
 * and copied into a heap buffer of exactly its size (4096-aligned), which
 * is opened too.  Any read outside the mapping or the buffer crashes under
 * ASan or faults.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena/arena_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#endif
#endif
#ifndef POISON
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static volatile uint64_t sink;

/* Read every byte of a range the library said is inside the arena. */
static void touch(const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t s = 0;
    for (size_t i = 0; c && i < n; i++)
        s += c[i];
    sink += s;
}

/* Read a catalog, if the root is one: every entry, the first and last
 * bytes of each array, and some rows of each string column. */
static void walk_catalog(const crew_arena *a)
{
    int n = crew_catalog_count(a);
    for (int i = 0; i < n && i < 64; i++) {
        crew_dataset d;
        if (crew_catalog_get(a, (size_t)i, &d) != 0)
            continue;
        crew_dataset f;
        sink += (uint64_t)crew_catalog_find(a, d.name, &f);
        size_t size = crew_type_size(d.type);
        const unsigned char *arr = crew_dataset_array(a, &d, d.type);
        if (arr && d.count) {
            touch(arr, size);
            touch(arr + (d.count - 1) * size, size);
        }
        for (uint64_t r = 0; r < d.count && r < 16; r++) {
            size_t len = 0;
            const char *s = crew_dataset_str(a, &d, d.count - 1 - r, &len);
            touch(s, s ? len + 1 : 0);
        }
    }
    crew_dataset d;
    sink += (uint64_t)crew_catalog_find(a, "x", &d);
}

/* Follow refs stored in the arena: each 8-byte word read becomes the next
 * ref, with sizes taken from the data too. */
static void walk(const crew_arena *a)
{
    crew_ref ref = crew_arena_root(a);
    for (int hop = 0; hop < 32; hop++) {
        const uint64_t *w = crew_arena_get_array(a, ref, 2, 8, 8);
        touch(crew_arena_str(a, ref), 1);
        if (!w)
            break;
        size_t n = (size_t)(w[1] & 0xFFFF);
        touch(crew_arena_get(a, ref, n), n);
        const void *arr = crew_arena_get_array(a, w[1], (size_t)(w[1] >> 48), 8, 8);
        if (arr)
            touch(arr, 8 * (size_t)(w[1] >> 48));
        ref = w[0];
    }
    sink += crew_strtab_find(a, crew_arena_root(a), "crew", 4);
    sink += crew_strtab_find(a, crew_arena_root(a), "", 0);
    walk_catalog(a);
    size_t used = crew_arena_size(a);
    touch(crew_arena_get(a, CREW_ARENA_PROLOGUE, used - CREW_ARENA_PROLOGUE),
          used > 4096 ? 4096 : used - CREW_ARENA_PROLOGUE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crew__snap_info info;
    size_t head = size < CREW__SNAP_HEADER_SIZE ? size : CREW__SNAP_HEADER_SIZE;
    (void)crew__snapshot_parse(data, head, size, &info);
    (void)crew__prologue_parse(data, head, size, &info);
    (void)crew__snapshot_parse(data, head, (uint64_t)size * 3 + 7, &info);

    int fd = memfd_create("crew-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (size >= 8 && memcmp(data, CREW__PROLOGUE_MAGIC, 8) == 0)
        (void)fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK);
    for (unsigned flags = 0; flags <= CREW_ARENA_VERIFY; flags++) {
        crew_arena *a = NULL;
        if (crew_arena_open_fd(&a, fd, flags) == 0) {
            walk(a);
            crew_arena_close(a);
        }
    }
    close(fd);

    /* aligned_alloc takes a multiple of the alignment: the bytes past
     * `size` are poisoned, so that ASan catches a read of them too */
    size_t cap = size / 4096 * 4096 + 4096;
    unsigned char *mem = aligned_alloc(4096, cap);
    if (!mem)
        return 0;
    memcpy(mem, data, size);
    POISON(mem + size, cap - size);
    for (unsigned flags = 0; flags <= CREW_ARENA_VERIFY; flags++) {
        crew_arena *a = NULL;
        if (crew_arena_open_memory(&a, mem, size, flags) == 0) {
            walk(a);
            crew_arena_close(a);
        }
    }
    UNPOISON(mem + size, cap - size);
    free(mem);
    return 0;
}
