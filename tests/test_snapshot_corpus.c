/*
 * Description: every file of the fuzz seed corpus (tests/fuzz/corpus/,
 * found through CREW_SOURCE_DIR) opened as a snapshot file: good.crew
 * and catalog.crew open with VERIFY, each bad one is refused with the error its name
 * promises, and a file this table does not know is refused all the same.
 * Each file's bytes copied into page-aligned shared memory get the same
 * verdicts from crew_arena_open_memory.
 * The fuzz replay only shows that nothing crashes; this shows the verdicts.
 */
#include <dirent.h>
#include <sys/mman.h>

#include "arena_util.h"

static const struct {
    const char *name;
    int plain;  /* code without VERIFY */
    int verify; /* code with VERIFY */
} expected[] = {
    {"good.crew", 0, 0},
    {"catalog.crew", 0, 0},
    {"algo.crew", CREW_EVERSION, CREW_EVERSION},
    {"bad_magic.crew", CREW_EMAGIC, CREW_EMAGIC},
    {"checksum.crew", 0, CREW_ECHECKSUM},
    {"empty.crew", CREW_EEMPTY, CREW_EEMPTY},
    {"header_size.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"not_snapshot.crew", CREW_EMAGIC, CREW_EMAGIC},
    {"offset_huge.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"offset_odd.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"other_endian.crew", CREW_EENDIAN, CREW_EENDIAN},
    /* an arena's data in a regular file: only a sealed memfd is adopted */
    {"prologue.crew", CREW_EMAGIC, CREW_EMAGIC},
    {"prologue_trunc.crew", CREW_EMAGIC, CREW_EMAGIC},
    {"root_past_end.crew", CREW_EBADROOT, CREW_EBADROOT},
    {"root_prologue.crew", CREW_EBADROOT, CREW_EBADROOT},
    {"short_magic.crew", CREW_ETRUNC, CREW_ETRUNC},
    {"size_bigger.crew", CREW_ETRUNC, CREW_ETRUNC},
    {"size_smaller.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"size_wrap.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"size_zero.crew", CREW_EBADSIZE, CREW_EBADSIZE},
    {"trunc_data.crew", CREW_ETRUNC, CREW_ETRUNC},
    {"trunc_header.crew", CREW_ETRUNC, CREW_ETRUNC},
    {"trunc_padding.crew", CREW_ETRUNC, CREW_ETRUNC},
    {"version_0.crew", CREW_EVERSION, CREW_EVERSION},
    {"version_2.crew", CREW_EVERSION, CREW_EVERSION},
};
enum { KNOWN = sizeof expected / sizeof expected[0] };

static int try_open(const char *path, unsigned flags)
{
    crew_arena *a = (crew_arena *)0x1;
    int rc = crew_arena_open(&a, path, flags);
    if (rc == 0) {
        ASSERT_GT(crew_arena_size(a), 0);
        crew_arena_close(a);
    } else {
        ASSERT_PTR_EQ(a, (crew_arena *)0x1);
    }
    return rc;
}

/* The file's bytes in fresh page-aligned memory, opened from there. */
static int try_open_memory(const char *path, unsigned flags)
{
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ASSERT_GE(len, 0);
    rewind(f);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map_len = ((size_t)len + page) / page * page;
    unsigned char *mem = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(mem != MAP_FAILED);
    ASSERT_UEQ(fread(mem, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    crew_arena *a = (crew_arena *)0x1;
    int rc = crew_arena_open_memory(&a, mem, (size_t)len, flags);
    if (rc == 0) {
        ASSERT_GT(crew_arena_size(a), 0);
        ASSERT_PTR_EQ(crew_arena_base(a), mem + 4096);
        crew_arena_close(a);
    } else {
        ASSERT_PTR_EQ(a, (crew_arena *)0x1);
    }
    ASSERT_EQ(munmap(mem, map_len), 0);
    return rc;
}

int main(void)
{
    const char *src = getenv("CREW_SOURCE_DIR");
    if (!src || !*src) {
        fprintf(stderr, "CREW_SOURCE_DIR is not set (ctest sets it)\n");
        return 77;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", src);
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int seen[KNOWN] = {0};
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int plain = try_open(path, 0), verify = try_open(path, CREW_ARENA_VERIFY);
        int mem_plain = try_open_memory(path, 0);
        int mem_verify = try_open_memory(path, CREW_ARENA_VERIFY);
        if (mem_plain != plain || mem_verify != verify)
            TEST_FAIL_("%s: from a file %s / %s, from memory %s / %s", e->d_name,
                       crew_err_name(plain), crew_err_name(verify), crew_err_name(mem_plain),
                       crew_err_name(mem_verify));
        files++;
        int k = 0;
        while (k < KNOWN && strcmp(expected[k].name, e->d_name) != 0)
            k++;
        if (k == KNOWN) {
            ASSERT_NE(verify, 0); /* only the good files may open */
            printf("  %-22s %s (not in the table)\n", e->d_name, crew_err_name(verify));
            continue;
        }
        seen[k] = 1;
        if (plain != expected[k].plain || verify != expected[k].verify)
            TEST_FAIL_("%s: %s / %s, expected %s / %s", e->d_name, crew_err_name(plain),
                       crew_err_name(verify), crew_err_name(expected[k].plain),
                       crew_err_name(expected[k].verify));
    }
    closedir(d);
    for (int k = 0; k < KNOWN; k++)
        if (!seen[k])
            TEST_FAIL_("%s is missing from %s", expected[k].name, dir);
    printf("test_snapshot_corpus: %d files ok\n", files);
    return 0;
}
