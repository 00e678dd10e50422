/*
 * fuzz_snapshot.c -- libFuzzer target for everything that reads untrusted
 * arena bytes: the snapshot header parser, the prologue parser (the fd of
 * a frozen arena), crew_arena_open_fd with and without VERIFY, and the
 * checked readers (crew_arena_get / get_array / str, crew_strtab_find)
 * following refs found in the data itself.
 *
 * Each input is a whole file: it is written to a memfd (sealed when it
 * starts with the prologue magic, so that path is reachable) and opened.
 * Any read outside the mapping crashes under ASan or faults.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena/arena_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    return 0;
}
