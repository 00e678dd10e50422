/*
 * make_corpus.c -- writes the seed corpus of tests/fuzz/corpus/: one good
 * snapshot and one file for each kind of bad file, all small.  Run it by
 * hand when the format changes (build dir: tests/fuzz/make_corpus DIR);
 * the files it wrote are committed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena/arena_internal.h"

static unsigned char good[16384];
static size_t good_len;
static const char *dir;

static void put(const char *name, const void *bytes, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The good file with one header field changed. */
static void put_edit(const char *name, size_t field, uint64_t value, size_t width)
{
    static unsigned char copy[sizeof good];
    memcpy(copy, good, good_len);
    memcpy(copy + field, &value, width);
    put(name, copy, good_len);
}

static void make_good(void)
{
    crew_arena *a;
    if (crew_arena_create(&a, 1 << 20) != 0)
        exit(1);
    crew_strtab *t;
    crew_strtab_create(&t, a);
    crew_ref words[3] = {crew_strtab_intern(t, "crew", 4), crew_strtab_intern(t, "arena", 5),
                         crew_strtab_intern(t, "", 0)};
    crew_ref idx = crew_strtab_publish(t);
    crew_strtab_close(t);
    crew_ref list = crew_arena_array(a, 6, 8, 8); /* a chain of refs for walk() */
    uint64_t *w = crew_arena_ptr(a, list);
    w[0] = list + 16; w[1] = ((uint64_t)2 << 48) | words[0];
    w[2] = list + 32; w[3] = words[1];
    w[4] = idx; w[5] = words[2];
    crew_arena_set_root(a, idx);
    char path[1024];
    snprintf(path, sizeof path, "%s/good.crew", dir);
    if (crew_arena_save(a, path) != 0)
        exit(1);
    crew_arena_close(a);
    FILE *f = fopen(path, "rb");
    good_len = fread(good, 1, sizeof good, f);
    fclose(f);
}

/* A snapshot whose root is a catalog: numbers, strings, an empty set. */
static void make_catalog(void)
{
    crew_arena *a;
    if (crew_arena_create(&a, 1 << 20) != 0)
        exit(1);
    crew_ref nums = crew_arena_array(a, 4, sizeof(double), 8);
    double *v = crew_arena_ptr(a, nums);
    v[0] = 1.5, v[1] = -2, v[2] = 0, v[3] = 1e300;
    static const char bytes[] = "crew\0\0arena";
    crew_ref strs = crew_arena_alloc(a, sizeof bytes, 1);
    memcpy(crew_arena_ptr(a, strs), bytes, sizeof bytes);
    crew_ref offs = crew_arena_array(a, 4, sizeof(uint64_t), 8);
    uint64_t *o = crew_arena_ptr(a, offs);
    o[0] = 0, o[1] = 5, o[2] = 6, o[3] = sizeof bytes;
    const crew_dataset sets[] = {
        {.name = "x", .type = CREW_T_F64, .count = 4, .data = nums},
        {.name = "words", .type = CREW_T_STR, .count = 3, .data = strs, .offsets = offs},
        {.name = "none", .type = CREW_T_U8},
    };
    char path[1024];
    snprintf(path, sizeof path, "%s/catalog.crew", dir);
    if (crew_catalog_write(a, sets, 3) != 0 || crew_arena_save(a, path) != 0)
        exit(1);
    crew_arena_close(a);
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : ".";
    make_good();
    make_catalog();
    struct crew__snap_header h;
    memcpy(&h, good, sizeof h);
    put("empty.crew", "", 0);
    put("short_magic.crew", good, 5);
    put("trunc_header.crew", good, 100);
    put("trunc_padding.crew", good, 1000);
    put("trunc_data.crew", good, good_len - 10);
    put("not_snapshot.crew", "#!/bin/sh\necho hello\n", 21);
    put_edit("bad_magic.crew", 0, 0x4b4b4b4b4b4b4b4bull, 8);
    put_edit("other_endian.crew", 8, __builtin_bswap32(CREW__ENDIAN_TAG), 4);
    put_edit("version_2.crew", 12, 2, 4);
    put_edit("version_0.crew", 12, 0, 4);
    put_edit("header_size.crew", 16, 64, 4);
    put_edit("offset_odd.crew", 24, 4000, 8);
    put_edit("offset_huge.crew", 24, UINT64_MAX & ~4095ull, 8);
    put_edit("size_bigger.crew", 32, h.data_size + 1, 8);
    put_edit("size_smaller.crew", 32, h.data_size - 1, 8);
    put_edit("size_zero.crew", 32, 0, 8);
    put_edit("size_wrap.crew", 32, UINT64_MAX - 4000, 8);
    put_edit("root_past_end.crew", 40, h.data_size, 8);
    put_edit("root_prologue.crew", 40, 3, 8);
    put_edit("checksum.crew", 48, h.checksum ^ 1, 8);
    put_edit("algo.crew", 56, 7, 4);
    /* a frozen arena's memfd image: the fuzz target seals it */
    put("prologue.crew", good + CREW__SNAP_DATA_OFFSET, good_len - CREW__SNAP_DATA_OFFSET);
    unsigned char pro[CREW_ARENA_PROLOGUE];
    memcpy(pro, good + CREW__SNAP_DATA_OFFSET, sizeof pro);
    uint64_t big = 1u << 20;
    memcpy(pro + 16, &big, 8);
    put("prologue_trunc.crew", pro, sizeof pro);
    return 0;
}
