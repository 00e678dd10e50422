/*
 * Description: a 64 GiB snapshot (a sparse file: far more than RAM) opens
 * in well under a second and a few pages scattered through it read back
 * what was written there.  Skips (77) if the file system refuses sparse
 * files that large.
 */
#include <errno.h>
#include <fcntl.h>
#include <time.h>

#include "arena/arena_internal.h"
#include "arena_util.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    const uint64_t size = (uint64_t)64 << 30;
    const uint64_t marks[] = {4096, (uint64_t)1 << 30, (uint64_t)33 << 30, size - 4096};
    char *dir = scratch_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/sparse.crew", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    if (ftruncate(fd, (off_t)(CREW__SNAP_DATA_OFFSET + size)) != 0) {
        int e = errno;
        close(fd);
        cleanup_dir(dir);
        TEST_SKIP("no 64 GiB sparse file here: %s", strerror(e));
    }
    /* A header as crew_arena_save writes it (the checksum is not computed:
     * it would mean hashing 64 GiB of zeros, and VERIFY is not used). */
    struct crew__snap_header h = {0};
    memcpy(h.magic, CREW__SNAP_MAGIC, 8);
    h.endian = CREW__ENDIAN_TAG;
    h.version = CREW__SNAP_VERSION;
    h.header_size = CREW__SNAP_HEADER_SIZE;
    h.data_offset = CREW__SNAP_DATA_OFFSET;
    h.data_size = size;
    h.root = marks[3];
    h.checksum_algo = CREW__SNAP_CHECKSUM_XXH3;
    ASSERT_EQ(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    for (size_t i = 0; i < 4; i++) {
        uint64_t v = marks[i] ^ 0xC0FFEE;
        ASSERT_EQ(pwrite(fd, &v, 8, (off_t)(CREW__SNAP_DATA_OFFSET + marks[i])), 8);
    }
    close(fd);

    crew_arena *a;
    double t0 = now();
    ASSERT_OK(crew_arena_open(&a, path, 0));
    double t1 = now();
    ASSERT_UEQ(crew_arena_size(a), size);
    ASSERT_UEQ(crew_arena_root(a), marks[3]);
    for (size_t i = 0; i < 4; i++) {
        const uint64_t *p = CREW_ARENA_GET(a, uint64_t, marks[i]);
        ASSERT_NOT_NULL(p);
        ASSERT_UEQ(*p, marks[i] ^ 0xC0FFEE);
    }
    ASSERT_NULL(crew_arena_get(a, size - 4, 8));
    const uint64_t *mid = CREW_ARENA_GET(a, uint64_t, (uint64_t)17 << 30);
    ASSERT_UEQ(*mid, 0); /* a hole reads as zeros */
    double t2 = now();
    printf("64 GiB snapshot: open %.3f ms, 5 scattered reads %.3f ms\n", (t1 - t0) * 1e3,
           (t2 - t1) * 1e3);
    ASSERT_LT((t2 - t0) * 1e3, 500);
    crew_arena_close(a);
    cleanup_dir(dir);
    printf("test_snapshot_sparse: ok\n");
    return 0;
}
