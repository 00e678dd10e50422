/*
 * Description: strings in an arena and the string table: strdup copies,
 * the checked reader refuses unterminated or out-of-range strings, the
 * table interns (equal strings, equal refs), its published index finds
 * every string after a save and open, and a corrupt index finds nothing
 * without reading outside the arena.
 */
#include <xxhash.h>

#include "arena_util.h"

static void test_strdup_and_str(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref s = crew_arena_strdup(a, "hello");
    crew_ref e = crew_arena_strdup(a, "");
    crew_ref n = crew_arena_strndup(a, "abcdef", 3);
    ASSERT_STR_EQ(crew_arena_str(a, s), "hello");
    ASSERT_STR_EQ(crew_arena_str(a, e), "");
    ASSERT_STR_EQ(crew_arena_str(a, n), "abc");
    ASSERT_NULL(crew_arena_str(a, 0));
    ASSERT_NULL(crew_arena_str(a, crew_arena_size(a)));
    ASSERT_NULL(crew_arena_str(a, UINT64_MAX));
    /* bytes at the very end with no NUL after them */
    crew_ref raw = crew_arena_alloc(a, 4, 1);
    memcpy(crew_arena_ptr(a, raw), "wxyz", 4);
    ASSERT_NULL(crew_arena_str(a, raw));
    ASSERT_NULL(crew_arena_str(a, raw + 2));
    crew_arena_close(a);
}

static void word(char *buf, size_t cap, unsigned i)
{
    unsigned k = i % 1777; /* repeats: interning has work to do */
    snprintf(buf, cap, "w%u-%x", k, k * 2654435761u % 997);
}

static void test_strtab(void)
{
    enum { N = 5000 };
    crew_arena *a;
    crew_strtab *t = NULL;
    ASSERT_EQ(crew_strtab_create(NULL, NULL), CREW_EINVAL);
    ASSERT_OK(crew_arena_create(&a, 16u << 20));
    ASSERT_OK(crew_strtab_create(&t, a));
    static crew_ref refs[N];
    char buf[64];
    for (unsigned i = 0; i < N; i++) {
        word(buf, sizeof buf, i);
        refs[i] = crew_strtab_intern(t, buf, strlen(buf));
        ASSERT_NE(refs[i], 0);
        ASSERT_STR_EQ(crew_arena_str(a, refs[i]), buf);
    }
    /* equal strings, equal refs; different strings, different refs */
    size_t distinct = 0;
    for (unsigned i = 0; i < N; i++) {
        word(buf, sizeof buf, i);
        ASSERT_UEQ(crew_strtab_intern(t, buf, strlen(buf)), refs[i]);
        int first = 1;
        for (unsigned j = 0; j < i && first; j++)
            if (refs[j] == refs[i])
                first = 0;
        distinct += (size_t)first;
    }
    ASSERT_EQ(crew_strtab_count(t), distinct);
    ASSERT_EQ(distinct, 1777);
    ASSERT_UEQ(crew_strtab_intern(t, "a\0b", 3), 0); /* no NUL inside */
    ASSERT_UEQ(crew_strtab_intern(t, NULL, 2), 0);
    crew_ref empty = crew_strtab_intern(t, NULL, 0);
    ASSERT_NE(empty, 0);
    ASSERT_UEQ(crew_strtab_intern(t, "", 0), empty);

    crew_ref index = crew_strtab_publish(t);
    ASSERT_NE(index, 0);
    crew_arena_set_root(a, index);
    crew_strtab_close(t);
    ASSERT_OK(crew_arena_freeze(a));

    char *dir = scratch_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/strings.crew", dir);
    ASSERT_OK(crew_arena_save(a, path));
    crew_arena *b;
    ASSERT_OK(crew_arena_open(&b, path, CREW_ARENA_VERIFY));
    for (unsigned i = 0; i < N; i++) {
        word(buf, sizeof buf, i);
        ASSERT_UEQ(crew_strtab_find(a, index, buf, strlen(buf)), refs[i]);
        ASSERT_UEQ(crew_strtab_find(b, crew_arena_root(b), buf, strlen(buf)), refs[i]);
    }
    ASSERT_UEQ(crew_strtab_find(b, index, "", 0), empty);
    ASSERT_UEQ(crew_strtab_find(b, index, "w1-", 3), 0);
    ASSERT_UEQ(crew_strtab_find(b, index, "missing", 7), 0);
    ASSERT_UEQ(crew_strtab_find(b, 0, "w1", 2), 0);
    ASSERT_UEQ(crew_strtab_find(b, UINT64_MAX - 8, "w1", 2), 0);
    ASSERT_UEQ(crew_strtab_find(b, refs[0], "w1", 2), 0); /* not an index */
    crew_arena_close(b);
    crew_arena_close(a);
    cleanup_dir(dir);
}

/* An index whose slots point anywhere finds nothing and reads nothing
 * outside the arena (ASan would say; without ASan the refs below fault).
 * Every slot carries the real hash of the string looked up, so find must
 * follow each ref and the bounds check is what stops it. */
static void test_corrupt_index(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref idx = crew_arena_array(a, 2 + 2 * 8, 8, 8);
    uint64_t *w = crew_arena_ptr(a, idx);
    w[0] = 8;       /* nslots */
    w[1] = 8;       /* count */
    const crew_ref bad[8] = {UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 40, (uint64_t)1 << 20,
                             crew_arena_size(a), crew_arena_size(a) - 1, 1, 63};
    for (int i = 0; i < 8; i++) {
        w[2 + 2 * i] = XXH3_64bits("x", 1); /* the hash matches... */
        w[3 + 2 * i] = bad[i];              /* ...the refs lie outside */
    }
    ASSERT_UEQ(crew_strtab_find(a, idx, "x", 1), 0);
    /* the same slots with a ref to a real "x" do find it: the hash is right */
    crew_ref x = crew_arena_strdup(a, "x");
    w[3 + 2 * 7] = x;
    ASSERT_UEQ(crew_strtab_find(a, idx, "x", 1), x);
    w[3 + 2 * 7] = bad[7];
    w[0] = 1u << 30; /* more slots than the arena holds */
    ASSERT_UEQ(crew_strtab_find(a, idx, "x", 1), 0);
    w[0] = 6;        /* not a power of two */
    ASSERT_UEQ(crew_strtab_find(a, idx, "x", 1), 0);
    crew_arena_close(a);
}

int main(void)
{
    test_strdup_and_str();
    test_strtab();
    test_corrupt_index();
    printf("test_strings: ok\n");
    return 0;
}
