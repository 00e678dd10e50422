/*
 * catalog.c -- named data sets in an arena (crew.h section 7).
 *
 * A catalog is a small header at the arena's root pointing to an array of
 * entries, one per data set: its name, type, row count and where its bytes
 * are.  The layout (docs/SNAPSHOT.md, "Data sets") is fixed-width and
 * native-endian like the rest of a snapshot.
 *
 * Readers treat the catalog as untrusted, since it usually comes from a
 * file: every ref is followed with crew_arena_get / crew_arena_get_array,
 * every count is checked against the arena before it is multiplied, and a
 * failed check is CREW_EFORMAT.  crew_catalog_get checks an entry in O(1)
 * -- that its bytes lie inside the arena -- and leaves the O(rows) question
 * of whether a string column's offsets are ordered to crew_dataset_str,
 * which checks the two offsets of the row it returns.  crew_catalog_write
 * runs the very same entry check before it writes anything, so whatever it
 * accepts every reader accepts too.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "arena/arena_internal.h"

#define CATALOG_MAGIC "CREWCATL"
#define CATALOG_VERSION 1u
#define CATALOG_NAME_MAX 255u

/* At the root: the catalog's header. */
struct catalog_header {
    char magic[8];      /* "CREWCATL" */
    uint32_t version;   /* 1 */
    uint32_t count;     /* entries */
    crew_ref entries;   /* count struct catalog_entry; 0 when count is 0 */
};

/* One data set. */
struct catalog_entry {
    crew_ref name;      /* NUL-terminated, 1..255 bytes */
    uint32_t type;      /* enum crew_type */
    uint32_t reserved;  /* 0 */
    uint64_t count;     /* rows */
    crew_ref data;      /* elements, or string bytes */
    crew_ref offsets;   /* CREW_T_STR: count + 1 uint64_t; else 0 */
};

_Static_assert(sizeof(struct catalog_header) == 24, "catalog header layout");
_Static_assert(sizeof(struct catalog_entry) == 40, "catalog entry layout");

size_t crew_type_size(int type)
{
    switch (type) {
    case CREW_T_U8: return 1;
    case CREW_T_I32: case CREW_T_U32: case CREW_T_F32: return 4;
    case CREW_T_I64: case CREW_T_U64: case CREW_T_F64: return 8;
    default: return 0;
    }
}

const char *crew_type_name(int type)
{
    static const char *const names[] = {
        [CREW_T_U8] = "u8",   [CREW_T_I32] = "i32", [CREW_T_U32] = "u32",
        [CREW_T_I64] = "i64", [CREW_T_U64] = "u64", [CREW_T_F32] = "f32",
        [CREW_T_F64] = "f64", [CREW_T_STR] = "str",
    };
    return type >= CREW_T_U8 && type <= CREW_T_STR ? names[type] : NULL;
}

/*
 * The name at ref, or NULL unless it is 1..255 bytes and a NUL ends it
 * inside the arena.  Looks at no more than 256 bytes, however long the
 * (corrupt) run of non-NUL bytes it points at.
 */
static const char *checked_name(const crew_arena *a, crew_ref ref)
{
    const char *p = crew_arena_get(a, ref, 1);
    if (!p)
        return NULL;
    size_t avail = crew_arena_size(a) - ref;
    const char *nul = memchr(p, 0, avail < CATALOG_NAME_MAX + 1 ? avail : CATALOG_NAME_MAX + 1);
    return nul && nul != p ? p : NULL;
}

/*
 * Do a data set's bytes lie inside the arena?  Numeric: count elements at
 * data, aligned to their size (so readers may use them as typed arrays).
 * Strings: count + 1 aligned offsets, and the offsets[count] bytes of data
 * they index.  An empty numeric data set refers to nothing.  O(1).
 */
static int entry_fits(const crew_arena *a, int type, uint64_t count, crew_ref data,
                      crew_ref offsets)
{
    if (type == CREW_T_STR) {
        if (count >= SIZE_MAX)
            return 0;
        const uint64_t *off = crew_arena_get_array(a, offsets, (size_t)count + 1,
                                                   sizeof(uint64_t), _Alignof(uint64_t));
        if (!off)
            return 0;
        uint64_t bytes = off[count];
        return bytes == 0 || (bytes <= SIZE_MAX && crew_arena_get(a, data, (size_t)bytes));
    }
    size_t size = crew_type_size(type);
    if (size == 0 || count > SIZE_MAX)
        return 0;
    return count == 0 || crew_arena_get_array(a, data, (size_t)count, size, size);
}

/* The catalog at the root and its entries, or NULL: not one, or corrupt. */
static const struct catalog_header *catalog_of(const crew_arena *a,
                                               const struct catalog_entry **entries)
{
    const struct catalog_header *h = CREW_ARENA_GET(a, struct catalog_header,
                                                    crew_arena_root(a));
    if (!h || memcmp(h->magic, CATALOG_MAGIC, 8) != 0 || h->version != CATALOG_VERSION ||
        h->count > INT_MAX)
        return NULL;
    *entries = NULL;
    if (h->count) {
        *entries = CREW_ARENA_GET_ARRAY(a, struct catalog_entry, h->entries, h->count);
        if (!*entries)
            return NULL;
    }
    return h;
}

int crew_catalog_count(const crew_arena *a)
{
    if (!a)
        return CREW_EINVAL;
    const struct catalog_entry *entries;
    const struct catalog_header *h = catalog_of(a, &entries);
    return h ? (int)h->count : CREW_EFORMAT;
}

/* Check entry e and fill *out from it.  0 or CREW_EFORMAT. */
static int entry_read(const crew_arena *a, const struct catalog_entry *e, crew_dataset *out)
{
    const char *name = checked_name(a, e->name);
    int type = e->type <= CREW_T_STR ? (int)e->type : 0;
    if (!name || !crew_type_name(type) || !entry_fits(a, type, e->count, e->data, e->offsets))
        return CREW_EFORMAT;
    *out = (crew_dataset){
        .name = name,
        .type = type,
        .count = e->count,
        .data = e->count || type == CREW_T_STR ? e->data : 0,
        .offsets = type == CREW_T_STR ? e->offsets : 0,
    };
    return 0;
}

int crew_catalog_get(const crew_arena *a, size_t i, crew_dataset *out)
{
    if (!a || !out)
        return CREW_EINVAL;
    const struct catalog_entry *entries;
    const struct catalog_header *h = catalog_of(a, &entries);
    if (!h)
        return CREW_EFORMAT;
    if (i >= h->count)
        return CREW_EINVAL;
    return entry_read(a, &entries[i], out);
}

int crew_catalog_find(const crew_arena *a, const char *name, crew_dataset *out)
{
    if (!a || !name || !out)
        return CREW_EINVAL;
    const struct catalog_entry *entries;
    const struct catalog_header *h = catalog_of(a, &entries);
    if (!h)
        return CREW_EFORMAT;
    for (uint32_t i = 0; i < h->count; i++) {
        const char *n = checked_name(a, entries[i].name);
        if (!n)
            return CREW_EFORMAT;
        if (strcmp(n, name) == 0)
            return entry_read(a, &entries[i], out);
    }
    return CREW_ENOENT;
}

const void *crew_dataset_array(const crew_arena *a, const crew_dataset *d, int type)
{
    if (!a || !d || d->type != type || crew_type_size(type) == 0)
        return NULL;
    /* Checked again: d is the caller's struct and may not come from
     * crew_catalog_get.  An empty data set has no bytes; its array is a
     * valid address all the same (the arena's base), so that NULL always
     * means an error. */
    if (!entry_fits(a, type, d->count, d->data, 0))
        return NULL;
    return d->count ? crew_arena_ptr(a, d->data) : crew_arena_base(a);
}

const char *crew_dataset_str(const crew_arena *a, const crew_dataset *d, uint64_t i,
                             size_t *len)
{
    if (!a || !d || d->type != CREW_T_STR || i >= d->count || d->count >= SIZE_MAX)
        return NULL;
    /* offsets[i], offsets[i + 1] and offsets[count], each read checked. */
    const uint64_t *off = crew_arena_get_array(a, d->offsets, (size_t)d->count + 1,
                                               sizeof(uint64_t), _Alignof(uint64_t));
    if (!off)
        return NULL;
    uint64_t start = off[i], end = off[i + 1], total = off[d->count];
    if (start >= end || end > total || total > SIZE_MAX)
        return NULL;
    const char *bytes = crew_arena_get(a, d->data, (size_t)total);
    if (!bytes || bytes[end - 1] != '\0')
        return NULL;
    if (len)
        *len = (size_t)(end - start - 1);
    return bytes + start;
}

/* Names are 1..255 bytes and distinct; sorts `order` by name to find twins. */
static int cmp_names(const void *x, const void *y)
{
    return strcmp(**(const char *const *const *)x, **(const char *const *const *)y);
}

static int names_ok(const crew_dataset *sets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = sets[i].name ? strnlen(sets[i].name, CATALOG_NAME_MAX + 1) : 0;
        if (len == 0 || len > CATALOG_NAME_MAX)
            return CREW_EINVAL;
    }
    if (n < 2)
        return 0;
    const char *const **order = malloc(n * sizeof *order);
    if (!order)
        return CREW_ENOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = &sets[i].name;
    qsort(order, n, sizeof *order, cmp_names);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (strcmp(*order[i - 1], *order[i]) == 0)
            rc = CREW_EINVAL;
    free(order);
    return rc;
}

int crew_catalog_write(crew_arena *a, const crew_dataset *sets, size_t n)
{
    if (!a || (n && !sets) || n > INT_MAX)
        return CREW_EINVAL;
    if (crew_arena_frozen(a))
        return CREW_EFROZEN;
    for (size_t i = 0; i < n; i++) {
        const crew_dataset *d = &sets[i];
        crew_ref offsets = d->type == CREW_T_STR ? d->offsets : 0;
        if (!crew_type_name(d->type) || !entry_fits(a, d->type, d->count, d->data, offsets))
            return CREW_EINVAL;
    }
    int rc = names_ok(sets, n);
    if (rc < 0)
        return rc;

    crew_ref href, eref = 0;
    rc = crew_arena_try_alloc(a, sizeof(struct catalog_header),
                              _Alignof(struct catalog_header), &href);
    if (rc == 0 && n)
        rc = crew_arena_try_alloc(a, n * sizeof(struct catalog_entry),
                                  _Alignof(struct catalog_entry), &eref);
    if (rc < 0)
        return rc;
    struct catalog_entry *entries = crew_arena_ptr(a, eref);
    for (size_t i = 0; i < n; i++) {
        const crew_dataset *d = &sets[i];
        size_t len = strlen(d->name);
        crew_ref name;
        rc = crew_arena_try_alloc(a, len + 1, 1, &name);
        if (rc < 0)
            return rc;
        memcpy(crew_arena_ptr(a, name), d->name, len); /* the NUL is there: zeroed */
        entries[i] = (struct catalog_entry){
            .name = name,
            .type = (uint32_t)d->type,
            .count = d->count,
            .data = d->count || d->type == CREW_T_STR ? d->data : 0,
            .offsets = d->type == CREW_T_STR ? d->offsets : 0,
        };
    }
    struct catalog_header *h = crew_arena_ptr(a, href);
    memcpy(h->magic, CATALOG_MAGIC, 8);
    h->version = CATALOG_VERSION;
    h->count = (uint32_t)n;
    h->entries = eref;
    crew_arena_set_root(a, href);
    return 0;
}
