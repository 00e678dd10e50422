/*
 * Description: data-set catalogs: every type survives a save and open with
 * its values; crew_catalog_write refuses bad arguments (each with its
 * code) and leaves the root alone when it fails; a catalog laid out by
 * hand from docs/SNAPSHOT.md reads back; and every kind of corrupt
 * catalog, in memory and in a snapshot file, gives CREW_EFORMAT (or NULL
 * for one bad string row) instead of a read outside the arena.
 */
#include <math.h>
#include <sys/wait.h>

#include "arena_util.h"

/* The layout as docs/SNAPSHOT.md states it, written out independently. */
struct doc_header {
    char magic[8];
    uint32_t version;
    uint32_t count;
    uint64_t entries;
};
struct doc_entry {
    uint64_t name;
    uint32_t type;
    uint32_t reserved;
    uint64_t count;
    uint64_t data;
    uint64_t offsets;
};

static char dir[] = "/tmp/crew-test-catalog-XXXXXX";

static void path_in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void test_types(void)
{
    static const struct {
        int type;
        size_t size;
        const char *name;
    } want[] = {
        {CREW_T_U8, 1, "u8"},   {CREW_T_I32, 4, "i32"}, {CREW_T_U32, 4, "u32"},
        {CREW_T_I64, 8, "i64"}, {CREW_T_U64, 8, "u64"}, {CREW_T_F32, 4, "f32"},
        {CREW_T_F64, 8, "f64"}, {CREW_T_STR, 0, "str"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ASSERT_UEQ(crew_type_size(want[i].type), want[i].size);
        ASSERT_STR_EQ(crew_type_name(want[i].type), want[i].name);
    }
    const int bad[] = {0, -1, CREW_T_STR + 1, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_UEQ(crew_type_size(bad[i]), 0);
        ASSERT_NULL(crew_type_name(bad[i]));
    }
}

/* Strings "", "a", "row 2", ... back to back; returns the data set. */
static crew_dataset put_strings(crew_arena *a, const char *name, const char *const *rows,
                                size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(rows[i]) + 1;
    crew_ref data = bytes ? crew_arena_alloc(a, bytes, 1) : 0;
    crew_ref offs = CREW_ARENA_ARRAY(a, uint64_t, n + 1);
    ASSERT(offs && (data || !bytes));
    uint64_t *o = crew_arena_ptr(a, offs);
    char *d = crew_arena_ptr(a, data);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        o[i] = at;
        memcpy(d + at, rows[i], strlen(rows[i]) + 1);
        at += strlen(rows[i]) + 1;
    }
    o[n] = at;
    return (crew_dataset){.name = name, .type = CREW_T_STR, .count = n, .data = data,
                          .offsets = offs};
}

enum { ROWS = 1000 };
static const char *const words[] = {"", "alpha", "beta gamma", "", "d\xc3\xa9lta", "last"};
#define NWORDS (sizeof words / sizeof words[0])

/* An arena holding one data set of every type (plus an empty one of each kind). */
static crew_arena *build_all(crew_dataset *sets, size_t *n)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 64u << 20));
    crew_ref r;
    size_t k = 0;

    r = CREW_ARENA_ARRAY(a, uint8_t, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, uint8_t, r)[i] = (uint8_t)(i * 7);
    sets[k++] = (crew_dataset){"bytes", CREW_T_U8, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, int32_t, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, int32_t, r)[i] = -i * 1000;
    sets[k++] = (crew_dataset){"i32s", CREW_T_I32, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, uint32_t, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, uint32_t, r)[i] = 4000000000u - (uint32_t)i;
    sets[k++] = (crew_dataset){"u32s", CREW_T_U32, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, int64_t, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, int64_t, r)[i] = -((int64_t)i << 40);
    sets[k++] = (crew_dataset){"i64s", CREW_T_I64, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, uint64_t, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, uint64_t, r)[i] = test_mix((uint64_t)i);
    sets[k++] = (crew_dataset){"u64s", CREW_T_U64, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, float, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, float, r)[i] = (float)i / 4;
    sets[k++] = (crew_dataset){"f32s", CREW_T_F32, ROWS, r, 0};
    r = CREW_ARENA_ARRAY(a, double, ROWS);
    for (int i = 0; i < ROWS; i++)
        CREW_ARENA_PTR(a, double, r)[i] = i == 3 ? NAN : (double)i * 0.5 - 7;
    sets[k++] = (crew_dataset){"f64s", CREW_T_F64, ROWS, r, 0};
    sets[k++] = put_strings(a, "words", words, NWORDS);
    sets[k++] = put_strings(a, "no words", words, 0);
    sets[k++] = (crew_dataset){"empty", CREW_T_F64, 0, 0, 0};
    *n = k;
    return a;
}

static void check_all(const crew_arena *a, const crew_dataset *want, size_t n)
{
    ASSERT_EQ(crew_catalog_count(a), (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        crew_dataset d, f;
        ASSERT_OK(crew_catalog_get(a, i, &d));
        ASSERT_STR_EQ(d.name, want[i].name);
        ASSERT_EQ(d.type, want[i].type);
        ASSERT_UEQ(d.count, want[i].count);
        ASSERT_UEQ(d.data, want[i].data);
        ASSERT_UEQ(d.offsets, want[i].offsets);
        /* the name points into the arena, not at the writer's string */
        ASSERT(d.name != want[i].name);
        ASSERT_NOT_NULL(crew_arena_get(a, (crew_ref)(d.name - (const char *)crew_arena_base(a)),
                                       strlen(d.name) + 1));
        ASSERT_OK(crew_catalog_find(a, want[i].name, &f));
        ASSERT_STR_EQ(f.name, d.name);
        ASSERT_UEQ(f.data, d.data);
        /* the array is there for its own type only */
        for (int t = CREW_T_U8; t <= CREW_T_STR; t++)
            if (t != d.type)
                ASSERT_NULL(crew_dataset_array(a, &d, t));
        if (d.type != CREW_T_STR)
            ASSERT_NOT_NULL(crew_dataset_array(a, &d, d.type));
    }
    crew_dataset d;
    ASSERT_OK(crew_catalog_find(a, "bytes", &d));
    const uint8_t *u8 = crew_dataset_array(a, &d, CREW_T_U8);
    ASSERT_OK(crew_catalog_find(a, "i32s", &d));
    const int32_t *i32 = crew_dataset_array(a, &d, CREW_T_I32);
    ASSERT_OK(crew_catalog_find(a, "u32s", &d));
    const uint32_t *u32 = crew_dataset_array(a, &d, CREW_T_U32);
    ASSERT_OK(crew_catalog_find(a, "i64s", &d));
    const int64_t *i64 = crew_dataset_array(a, &d, CREW_T_I64);
    ASSERT_OK(crew_catalog_find(a, "u64s", &d));
    const uint64_t *u64 = crew_dataset_array(a, &d, CREW_T_U64);
    ASSERT_OK(crew_catalog_find(a, "f32s", &d));
    const float *f32 = crew_dataset_array(a, &d, CREW_T_F32);
    ASSERT_OK(crew_catalog_find(a, "f64s", &d));
    const double *f64 = crew_dataset_array(a, &d, CREW_T_F64);
    for (int i = 0; i < ROWS; i++) {
        ASSERT_EQ(u8[i], (uint8_t)(i * 7));
        ASSERT_EQ(i32[i], -i * 1000);
        ASSERT_UEQ(u32[i], 4000000000u - (uint32_t)i);
        ASSERT_EQ(i64[i], -((int64_t)i << 40));
        ASSERT_UEQ(u64[i], test_mix((uint64_t)i));
        ASSERT(f32[i] == (float)i / 4);
        ASSERT(i == 3 ? isnan(f64[i]) : f64[i] == (double)i * 0.5 - 7);
    }
    ASSERT_OK(crew_catalog_find(a, "words", &d));
    for (uint64_t i = 0; i < NWORDS; i++) {
        size_t len = 12345;
        const char *s = crew_dataset_str(a, &d, i, &len);
        ASSERT_NOT_NULL(s);
        ASSERT_STR_EQ(s, words[i]);
        ASSERT_UEQ(len, strlen(words[i]));
        ASSERT_STR_EQ(crew_dataset_str(a, &d, i, NULL), words[i]);
    }
    ASSERT_NULL(crew_dataset_str(a, &d, NWORDS, NULL));
    ASSERT_NULL(crew_dataset_str(a, &d, UINT64_MAX, NULL));
    ASSERT_NULL(crew_dataset_array(a, &d, CREW_T_STR));
    ASSERT_OK(crew_catalog_find(a, "no words", &d));
    ASSERT_UEQ(d.count, 0);
    ASSERT_NULL(crew_dataset_str(a, &d, 0, NULL));
    ASSERT_OK(crew_catalog_find(a, "empty", &d));
    ASSERT_UEQ(d.count, 0);
    ASSERT_NOT_NULL(crew_dataset_array(a, &d, CREW_T_F64)); /* empty, yet not an error */
    ASSERT_NULL(crew_dataset_array(a, &d, CREW_T_F32));
    /* a numeric data set is not a string column */
    ASSERT_OK(crew_catalog_find(a, "bytes", &d));
    ASSERT_NULL(crew_dataset_str(a, &d, 0, NULL));

    ASSERT_EQ(crew_catalog_find(a, "byte", &d), CREW_ENOENT);
    ASSERT_EQ(crew_catalog_find(a, "bytesx", &d), CREW_ENOENT);
    ASSERT_EQ(crew_catalog_find(a, "", &d), CREW_ENOENT);
    ASSERT_EQ(crew_catalog_get(a, n, &d), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_get(a, SIZE_MAX, &d), CREW_EINVAL);
}

static void test_round_trip(void)
{
    crew_dataset sets[16];
    size_t n;
    crew_arena *a = build_all(sets, &n);
    ASSERT_OK(crew_catalog_write(a, sets, n));
    ASSERT_NE(crew_arena_root(a), 0);
    check_all(a, sets, n);
    ASSERT_OK(crew_arena_freeze(a));
    check_all(a, sets, n);
    char path[256];
    path_in_dir(path, sizeof path, "all.crew");
    ASSERT_OK(crew_arena_save(a, path));
    crew_arena_close(a);

    crew_arena *b;
    ASSERT_OK(crew_arena_open(&b, path, CREW_ARENA_VERIFY));
    check_all(b, sets, n);
    crew_arena_close(b);
}

/* The layout docs/SNAPSHOT.md describes, written field by field. */
static void test_documented_layout(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref vals = CREW_ARENA_ARRAY(a, int64_t, 3);
    int64_t *v = crew_arena_ptr(a, vals);
    v[0] = 5, v[1] = -6, v[2] = 7;
    crew_ref name = crew_arena_strdup(a, "v");
    crew_ref ents = crew_arena_alloc(a, sizeof(struct doc_entry), 8);
    *CREW_ARENA_PTR(a, struct doc_entry, ents) =
        (struct doc_entry){.name = name, .type = CREW_T_I64, .count = 3, .data = vals};
    crew_ref root = crew_arena_alloc(a, sizeof(struct doc_header), 8);
    struct doc_header *h = crew_arena_ptr(a, root);
    memcpy(h->magic, "CREWCATL", 8);
    h->version = 1;
    h->count = 1;
    h->entries = ents;
    crew_arena_set_root(a, root);

    crew_dataset d;
    ASSERT_EQ(crew_catalog_count(a), 1);
    ASSERT_OK(crew_catalog_get(a, 0, &d));
    ASSERT_STR_EQ(d.name, "v");
    ASSERT_EQ(d.type, CREW_T_I64);
    const int64_t *got = crew_dataset_array(a, &d, CREW_T_I64);
    ASSERT(got && got[0] == 5 && got[1] == -6 && got[2] == 7);

    /* and crew_catalog_write lays out what the document says */
    crew_dataset s = {.name = "w", .type = CREW_T_I64, .count = 3, .data = vals,
                      .offsets = 999 /* ignored: not a string column */};
    ASSERT_OK(crew_catalog_write(a, &s, 1));
    h = crew_arena_ptr(a, crew_arena_root(a));
    ASSERT(memcmp(h->magic, "CREWCATL", 8) == 0);
    ASSERT_EQ(h->version, 1);
    ASSERT_EQ(h->count, 1);
    ASSERT_EQ(crew_arena_root(a) % 8, 0);
    ASSERT_EQ(h->entries % 8, 0);
    const struct doc_entry *e = crew_arena_ptr(a, h->entries);
    ASSERT_STR_EQ(crew_arena_str(a, e->name), "w");
    ASSERT_EQ(e->type, CREW_T_I64);
    ASSERT_EQ(e->reserved, 0);
    ASSERT_UEQ(e->count, 3);
    ASSERT_UEQ(e->data, vals);
    ASSERT_UEQ(e->offsets, 0);
    crew_arena_close(a);
}

static void test_write_errors(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref vals = CREW_ARENA_ARRAY(a, double, 4);
    crew_dataset ok = {.name = "x", .type = CREW_T_F64, .count = 4, .data = vals};
    ASSERT_OK(crew_catalog_write(a, &ok, 1));
    const crew_ref root = crew_arena_root(a);

    ASSERT_EQ(crew_catalog_write(NULL, &ok, 1), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_write(a, NULL, 1), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_write(a, &ok, (size_t)INT32_MAX + 1), CREW_EINVAL);

    crew_dataset bad;
#define REFUSED(field_assignment, code)                                      \
    do {                                                                     \
        bad = ok;                                                            \
        field_assignment;                                                    \
        ASSERT_EQ(crew_catalog_write(a, &bad, 1), code);                     \
        ASSERT_UEQ(crew_arena_root(a), root);                                \
    } while (0)
    REFUSED(bad.type = 0, CREW_EINVAL);
    REFUSED(bad.type = CREW_T_STR + 1, CREW_EINVAL);
    REFUSED(bad.type = -3, CREW_EINVAL);
    REFUSED(bad.name = NULL, CREW_EINVAL);
    REFUSED(bad.name = "", CREW_EINVAL);
    REFUSED(bad.data = 0, CREW_EINVAL);
    REFUSED(bad.data = 8, CREW_EINVAL);               /* in the prologue */
    REFUSED(bad.data = vals + 4, CREW_EINVAL);        /* misaligned for f64 */
    REFUSED(bad.data = crew_arena_size(a), CREW_EINVAL);
    REFUSED(bad.data = UINT64_MAX - 7, CREW_EINVAL);
    REFUSED(bad.count = crew_arena_size(a), CREW_EINVAL);  /* runs past the end */
    REFUSED(bad.count = ((uint64_t)1 << 61) + 1, CREW_EINVAL); /* count * 8 wraps */
    REFUSED(bad.count = UINT64_MAX, CREW_EINVAL);
    REFUSED((bad.type = CREW_T_STR, bad.offsets = 0), CREW_EINVAL);
    REFUSED((bad.type = CREW_T_STR, bad.count = UINT64_MAX, bad.offsets = vals), CREW_EINVAL);

    char longname[300];
    memset(longname, 'n', sizeof longname);
    longname[256] = '\0';
    REFUSED(bad.name = longname, CREW_EINVAL);
    longname[255] = '\0';
    crew_dataset two[2] = {ok, ok};
    two[0].name = longname;
    ASSERT_OK(crew_catalog_write(a, two, 2)); /* 255 bytes is the most */
    crew_dataset d;
    ASSERT_OK(crew_catalog_find(a, longname, &d));

    /* duplicate names, adjacent or not, among many */
    enum { MANY = 300 };
    static crew_dataset many[MANY];
    static char names[MANY][16];
    for (int i = 0; i < MANY; i++) {
        snprintf(names[i], sizeof names[i], "col%d", (i * 37) % MANY);
        many[i] = ok;
        many[i].name = names[i];
    }
    ASSERT_OK(crew_catalog_write(a, many, MANY));
    ASSERT_EQ(crew_catalog_count(a), MANY);
    ASSERT_OK(crew_catalog_find(a, "col299", &d));
    const crew_ref root_many = crew_arena_root(a);
    snprintf(names[200], sizeof names[200], "%s", names[17]);
    ASSERT_EQ(crew_catalog_write(a, many, MANY), CREW_EINVAL);
    ASSERT_UEQ(crew_arena_root(a), root_many);
    two[0] = two[1] = ok;
    ASSERT_EQ(crew_catalog_write(a, two, 2), CREW_EINVAL);

    /* an empty catalog is a catalog */
    ASSERT_OK(crew_catalog_write(a, NULL, 0));
    ASSERT_EQ(crew_catalog_count(a), 0);
    ASSERT_EQ(crew_catalog_find(a, "x", &d), CREW_ENOENT);
    ASSERT_EQ(crew_catalog_get(a, 0, &d), CREW_EINVAL);

    /* not in a child process: only the creator writes */
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0)
        _exit(crew_catalog_write(a, &ok, 1) == CREW_EINVAL ? 0 : 1);
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(crew_catalog_write(a, &ok, 1), CREW_EFROZEN);
    crew_arena_close(a);

    /* full: nothing changes */
    ASSERT_OK(crew_arena_create(&a, 4096));
    vals = CREW_ARENA_ARRAY(a, double, 4);
    ok.data = vals;
    crew_ref filler;
    while (crew_arena_try_alloc(a, 8, 8, &filler) == 0)
        ;
    ASSERT_EQ(crew_catalog_write(a, &ok, 1), CREW_EFULL);
    ASSERT_UEQ(crew_arena_root(a), 0);
    crew_arena_close(a);
}

static void test_read_errors(void)
{
    crew_dataset d = {0};
    ASSERT_EQ(crew_catalog_count(NULL), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_get(NULL, 0, &d), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_find(NULL, "x", &d), CREW_EINVAL);
    ASSERT_NULL(crew_dataset_array(NULL, &d, CREW_T_U8));
    ASSERT_NULL(crew_dataset_str(NULL, &d, 0, NULL));

    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    /* root 0: no catalog */
    ASSERT_EQ(crew_catalog_count(a), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_get(a, 0, &d), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_find(a, "x", &d), CREW_EFORMAT);
    /* a root that is something else */
    crew_ref other = crew_arena_strdup(a, "just a string, not a catalog");
    crew_arena_set_root(a, other);
    ASSERT_EQ(crew_catalog_count(a), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_find(a, "x", &d), CREW_EFORMAT);

    ASSERT_OK(crew_catalog_write(a, NULL, 0));
    ASSERT_EQ(crew_catalog_get(a, 0, NULL), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_find(a, NULL, &d), CREW_EINVAL);
    ASSERT_EQ(crew_catalog_find(a, "x", NULL), CREW_EINVAL);
    ASSERT_NULL(crew_dataset_array(a, NULL, CREW_T_U8));
    ASSERT_NULL(crew_dataset_str(a, NULL, 0, NULL));
    /* a caller-made crew_dataset is checked too */
    d = (crew_dataset){.name = "y", .type = CREW_T_U64, .count = 1u << 30, .data = 64};
    ASSERT_NULL(crew_dataset_array(a, &d, CREW_T_U64));
    d = (crew_dataset){.name = "y", .type = CREW_T_STR, .count = 1u << 30, .offsets = 64};
    ASSERT_NULL(crew_dataset_str(a, &d, 0, NULL));
    crew_arena_close(a);
}

/*
 * A good catalog of a few data sets, and handles on its raw bytes for
 * corrupting: the header, the entries and a string column's offsets.
 */
struct victim {
    crew_arena *a;
    struct doc_header *h;
    struct doc_entry *e; /* [0] f64 "num", [1] str "txt" */
    uint64_t *offs;      /* txt's offsets */
    char *bytes;         /* txt's bytes */
};

static const char *const txt_rows[] = {"one", "two", "three"};

static struct victim victim(void)
{
    struct victim v;
    ASSERT_OK(crew_arena_create(&v.a, 1 << 20));
    crew_ref vals = CREW_ARENA_ARRAY(v.a, double, 10);
    crew_dataset sets[2] = {
        {.name = "num", .type = CREW_T_F64, .count = 10, .data = vals},
        put_strings(v.a, "txt", txt_rows, 3),
    };
    ASSERT_OK(crew_catalog_write(v.a, sets, 2));
    v.h = crew_arena_ptr(v.a, crew_arena_root(v.a));
    v.e = crew_arena_ptr(v.a, v.h->entries);
    v.offs = crew_arena_ptr(v.a, sets[1].offsets);
    v.bytes = crew_arena_ptr(v.a, sets[1].data);
    return v;
}

/* Every reader refuses the whole catalog. */
static void expect_bad_catalog(const crew_arena *a)
{
    crew_dataset d;
    ASSERT_EQ(crew_catalog_count(a), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_get(a, 0, &d), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_find(a, "num", &d), CREW_EFORMAT);
}

/* The catalog is fine but entry i is refused. */
static void expect_bad_entry(const crew_arena *a, size_t i, const char *name)
{
    crew_dataset d = {.name = "untouched"};
    ASSERT_EQ(crew_catalog_count(a), 2);
    ASSERT_EQ(crew_catalog_get(a, i, &d), CREW_EFORMAT);
    ASSERT_STR_EQ(d.name, "untouched");
    ASSERT_EQ(crew_catalog_find(a, name, &d), CREW_EFORMAT);
    ASSERT_OK(crew_catalog_get(a, 1 - i, &d)); /* the other one is fine */
}

static void test_corrupt_header(void)
{
    struct victim v;
#define CORRUPT_HEADER(stmt)                                                 \
    do {                                                                     \
        v = victim();                                                        \
        stmt;                                                                \
        expect_bad_catalog(v.a);                                             \
        crew_arena_close(v.a);                                               \
    } while (0)
    CORRUPT_HEADER(v.h->magic[7] = 'X');
    CORRUPT_HEADER(v.h->version = 0);
    CORRUPT_HEADER(v.h->version = 2);
    CORRUPT_HEADER(v.h->count = (uint32_t)INT32_MAX + 1);
    CORRUPT_HEADER(v.h->count = UINT32_MAX);
    CORRUPT_HEADER(v.h->count = 1u << 20);           /* more entries than the arena holds */
    CORRUPT_HEADER(v.h->entries = 0);
    CORRUPT_HEADER(v.h->entries = 16);
    CORRUPT_HEADER(v.h->entries += 4);               /* misaligned */
    CORRUPT_HEADER(v.h->entries = crew_arena_size(v.a) - 40);
    CORRUPT_HEADER(v.h->entries = UINT64_MAX - 7);
    /* a root too close to the end for a whole header */
    CORRUPT_HEADER(crew_arena_set_root(v.a, crew_arena_size(v.a) - 8));
    CORRUPT_HEADER(crew_arena_set_root(v.a, crew_arena_root(v.a) + 4));
}

static void test_corrupt_entries(void)
{
    struct victim v;
#define CORRUPT_ENTRY(i, name, stmt)                                         \
    do {                                                                     \
        v = victim();                                                        \
        stmt;                                                                \
        expect_bad_entry(v.a, i, name);                                      \
        crew_arena_close(v.a);                                               \
    } while (0)
    size_t size;
    CORRUPT_ENTRY(0, "num", v.e[0].type = 0);
    CORRUPT_ENTRY(0, "num", v.e[0].type = CREW_T_STR + 1);
    CORRUPT_ENTRY(0, "num", v.e[0].type = 0x80000001u);
    CORRUPT_ENTRY(0, "num", v.e[0].data = 0);
    CORRUPT_ENTRY(0, "num", v.e[0].data = 3);
    CORRUPT_ENTRY(0, "num", v.e[0].data += 4);
    CORRUPT_ENTRY(0, "num", v.e[0].data = UINT64_MAX - 7);
    CORRUPT_ENTRY(0, "num", (size = crew_arena_size(v.a), v.e[0].data = size - size % 8));
    CORRUPT_ENTRY(0, "num", v.e[0].count = crew_arena_size(v.a));
    CORRUPT_ENTRY(0, "num", v.e[0].count = ((uint64_t)1 << 61) + 1); /* count * 8 wraps to 8 */
    CORRUPT_ENTRY(0, "num", v.e[0].count = UINT64_MAX);
    CORRUPT_ENTRY(0, "num", v.e[0].type = CREW_T_STR);               /* offsets 0 */
    CORRUPT_ENTRY(1, "txt", v.e[1].offsets = 0);
    CORRUPT_ENTRY(1, "txt", v.e[1].offsets += 4);
    CORRUPT_ENTRY(1, "txt", v.e[1].offsets = UINT64_MAX - 7);
    CORRUPT_ENTRY(1, "txt", v.e[1].count = UINT64_MAX);              /* count + 1 wraps */
    CORRUPT_ENTRY(1, "txt", v.e[1].count = ((uint64_t)1 << 61) - 1); /* (count + 1) * 8 wraps */
    CORRUPT_ENTRY(1, "txt", v.e[1].count = crew_arena_size(v.a));
    CORRUPT_ENTRY(1, "txt", v.offs[3] = crew_arena_size(v.a));       /* data runs past the end */
    CORRUPT_ENTRY(1, "txt", v.offs[3] = UINT64_MAX);
    CORRUPT_ENTRY(1, "txt", v.e[1].data = 0);
    CORRUPT_ENTRY(1, "txt", v.e[1].data = UINT64_MAX - 1);

    /* names: beyond the arena, in the prologue, too long, empty, without a NUL */
    crew_ref r;
    CORRUPT_ENTRY(0, "num", v.e[0].name = 0);
    CORRUPT_ENTRY(0, "num", v.e[0].name = crew_arena_size(v.a));
    CORRUPT_ENTRY(0, "num", v.e[0].name = UINT64_MAX);
    CORRUPT_ENTRY(0, "num", (r = crew_arena_alloc(v.a, 300, 1),
                             memset(crew_arena_ptr(v.a, r), 'n', 256), v.e[0].name = r));
    CORRUPT_ENTRY(0, "num", v.e[0].name = crew_arena_alloc(v.a, 8, 1));
    /* a name that runs to the very end of the arena with no NUL */
    CORRUPT_ENTRY(0, "num", (r = crew_arena_alloc(v.a, 5, 1),
                             memset(crew_arena_ptr(v.a, r), 'z', 5),
                             v.e[0].name = crew_arena_size(v.a) - 5));

    /* a bad name elsewhere makes find give up (it cannot tell), get of the rest works */
    v = victim();
    v.e[0].name = UINT64_MAX;
    crew_dataset d;
    ASSERT_EQ(crew_catalog_find(v.a, "txt", &d), CREW_EFORMAT);
    ASSERT_OK(crew_catalog_get(v.a, 1, &d));
    crew_arena_close(v.a);

    /* reserved bits are ignored by readers (room for later additions) */
    v = victim();
    v.e[0].reserved = 0xdead;
    ASSERT_OK(crew_catalog_get(v.a, 0, &d));
    crew_arena_close(v.a);
}

/* Corrupt offsets inside the data's range cost only the rows they touch. */
static void test_corrupt_rows(void)
{
    struct victim v = victim();
    crew_dataset d;
    /* row 1 "two" ends one byte early: its last byte is 'o', not NUL */
    v.offs[2] -= 1;
    ASSERT_OK(crew_catalog_find(v.a, "txt", &d));
    ASSERT_STR_EQ(crew_dataset_str(v.a, &d, 0, NULL), "one");
    ASSERT_NULL(crew_dataset_str(v.a, &d, 1, NULL));
    /* row 2 now starts at row 1's NUL: well formed as far as O(1) checks
     * go, a row with a NUL inside, which strlen sees as "" */
    size_t len;
    const char *s = crew_dataset_str(v.a, &d, 2, &len);
    ASSERT_NOT_NULL(s);
    ASSERT_UEQ(len, 6);
    ASSERT_STR_EQ(s, "");
    v.offs[2] += 1;
    /* backwards offsets */
    uint64_t keep = v.offs[1];
    v.offs[1] = v.offs[2] + 1;
    ASSERT_NULL(crew_dataset_str(v.a, &d, 0, NULL));
    ASSERT_NULL(crew_dataset_str(v.a, &d, 1, NULL));
    ASSERT_STR_EQ(crew_dataset_str(v.a, &d, 2, NULL), "three");
    /* an empty row has no room for its NUL */
    v.offs[1] = v.offs[0];
    ASSERT_NULL(crew_dataset_str(v.a, &d, 0, NULL));
    v.offs[1] = keep;
    /* past the data's end (offsets[count]) */
    v.offs[1] = v.offs[3] + 8;
    ASSERT_NULL(crew_dataset_str(v.a, &d, 0, NULL));
    ASSERT_NULL(crew_dataset_str(v.a, &d, 1, NULL));
    v.offs[1] = keep;
    /* a missing final NUL */
    v.bytes[v.offs[3] - 1] = 'e';
    ASSERT_STR_EQ(crew_dataset_str(v.a, &d, 1, NULL), "two");
    ASSERT_NULL(crew_dataset_str(v.a, &d, 2, NULL));
    v.bytes[v.offs[3] - 1] = '\0';
    ASSERT_STR_EQ(crew_dataset_str(v.a, &d, 2, &len), "three");
    ASSERT_UEQ(len, 5);
    crew_arena_close(v.a);
}

/* Corruption that arrives in a file: saved, then opened read-only. */
static void test_corrupt_snapshot(void)
{
    char path[256];
    path_in_dir(path, sizeof path, "bad.crew");
    struct victim v = victim();
    v.e[1].offsets = UINT64_MAX - 7;
    v.e[0].count = ((uint64_t)1 << 61) + 1;
    ASSERT_OK(crew_arena_save(v.a, path));
    crew_arena_close(v.a);
    crew_arena *b;
    ASSERT_OK(crew_arena_open(&b, path, CREW_ARENA_VERIFY));
    crew_dataset d;
    ASSERT_EQ(crew_catalog_count(b), 2);
    ASSERT_EQ(crew_catalog_get(b, 0, &d), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_get(b, 1, &d), CREW_EFORMAT);
    ASSERT_EQ(crew_catalog_find(b, "txt", &d), CREW_EFORMAT);
    crew_arena_close(b);

    v = victim();
    v.h->entries = crew_arena_size(v.a);
    ASSERT_OK(crew_arena_save(v.a, path));
    crew_arena_close(v.a);
    ASSERT_OK(crew_arena_open(&b, path, 0));
    ASSERT_EQ(crew_catalog_count(b), CREW_EFORMAT);
    crew_arena_close(b);
    unlink(path);
}

int main(void)
{
    ASSERT(mkdtemp(dir));
    test_types();
    test_round_trip();
    test_documented_layout();
    test_write_errors();
    test_read_errors();
    test_corrupt_header();
    test_corrupt_entries();
    test_corrupt_rows();
    test_corrupt_snapshot();
    char path[256];
    path_in_dir(path, sizeof path, "all.crew");
    unlink(path);
    rmdir(dir);
    printf("test_catalog: ok\n");
    return 0;
}
