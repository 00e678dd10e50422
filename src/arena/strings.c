/*
 * strings.c -- strings in an arena, and a string table that interns them.
 *
 * A string in an arena is its bytes and a NUL, referred to by crew_ref.
 * The string table stores each distinct string once (so equal strings have
 * equal refs and compare as integers) and can publish an index of them
 * into the arena: an open-addressing hash table of (XXH3-64 hash, ref)
 * pairs with linear probing, which readers of the frozen arena or of its
 * snapshot search without building anything.  While building, the table
 * keeps its own hash table in ordinary memory: the arena has no free, so
 * growing a table inside it would leave every old copy behind.
 *
 * Readers treat the published index as untrusted: every slot is followed
 * with crew_arena_get, and a probe never runs more than nslots steps.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "arena/arena_internal.h"

crew_ref crew_arena_strndup(crew_arena *a, const char *s, size_t len)
{
    if (!s || len == SIZE_MAX)
        return 0;
    crew_ref ref = crew_arena_alloc(a, len + 1, 1);
    if (ref)
        memcpy(crew_arena_ptr(a, ref), s, len); /* the NUL is already there */
    return ref;
}

crew_ref crew_arena_strdup(crew_arena *a, const char *s)
{
    return s ? crew_arena_strndup(a, s, strlen(s)) : 0;
}

const char *crew_arena_str(const crew_arena *a, crew_ref ref)
{
    const char *p = crew_arena_get(a, ref, 1);
    if (!p)
        return NULL;
    size_t avail = crew_arena_size(a) - ref;
    return memchr(p, 0, avail) ? p : NULL;
}

/* One slot of the build-side table, and of the published index. */
struct tab_slot {
    uint64_t hash;
    crew_ref ref;  /* 0: empty */
};

/* The published index: this header, then nslots struct tab_slot. */
struct tab_index {
    uint64_t nslots; /* a power of two */
    uint64_t count;
};

struct crew_strtab {
    crew_arena *arena;
    struct tab_slot *slots;
    size_t nslots;   /* a power of two */
    size_t count;
};

int crew_strtab_create(crew_strtab **out, crew_arena *a)
{
    if (!out || !a)
        return CREW_EINVAL;
    crew_strtab *t = calloc(1, sizeof *t);
    if (!t)
        return CREW_ENOMEM;
    t->nslots = 64;
    t->slots = calloc(t->nslots, sizeof *t->slots);
    if (!t->slots) {
        free(t);
        return CREW_ENOMEM;
    }
    t->arena = a;
    *out = t;
    return 0;
}

static void slot_put(struct tab_slot *slots, size_t nslots, uint64_t hash, crew_ref ref)
{
    size_t i = (size_t)hash & (nslots - 1);
    while (slots[i].ref)
        i = (i + 1) & (nslots - 1);
    slots[i].hash = hash;
    slots[i].ref = ref;
}

/* Double the build-side table; keeps it at most half full. */
static int tab_grow(crew_strtab *t)
{
    if (t->nslots > SIZE_MAX / 2 / sizeof *t->slots)
        return CREW_ENOMEM;
    size_t n = t->nslots * 2;
    struct tab_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return CREW_ENOMEM;
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i].ref)
            slot_put(slots, n, t->slots[i].hash, t->slots[i].ref);
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
    return 0;
}

/* Does the string at ref (trusted or not) equal s[0, len)? */
static int str_equals(const crew_arena *a, crew_ref ref, const char *s, size_t len)
{
    const char *p = crew_arena_get(a, ref, len + 1);
    return p && memcmp(p, s, len) == 0 && p[len] == '\0';
}

crew_ref crew_strtab_intern(crew_strtab *t, const char *s, size_t len)
{
    if (!t || (!s && len) || len == SIZE_MAX || (len && memchr(s, 0, len)))
        return 0;
    if (!s)
        s = "";
    uint64_t hash = XXH3_64bits(s, len);
    size_t mask = t->nslots - 1;
    for (size_t i = (size_t)hash & mask; t->slots[i].ref; i = (i + 1) & mask)
        if (t->slots[i].hash == hash && str_equals(t->arena, t->slots[i].ref, s, len))
            return t->slots[i].ref;
    if ((t->count + 1) * 2 > t->nslots && tab_grow(t) < 0)
        return 0;
    crew_ref ref = crew_arena_strndup(t->arena, s, len);
    if (!ref)
        return 0;
    slot_put(t->slots, t->nslots, hash, ref);
    t->count++;
    return ref;
}

size_t crew_strtab_count(const crew_strtab *t)
{
    return t ? t->count : 0;
}

crew_ref crew_strtab_publish(crew_strtab *t)
{
    if (!t)
        return 0;
    size_t n = 8;
    while (n < t->count * 2)
        n *= 2;
    if (n > (SIZE_MAX - sizeof(struct tab_index)) / sizeof(struct tab_slot))
        return 0;
    crew_ref ref = crew_arena_alloc(t->arena, sizeof(struct tab_index) + n * sizeof(struct tab_slot),
                                    _Alignof(struct tab_slot));
    if (!ref)
        return 0;
    struct tab_index *idx = crew_arena_ptr(t->arena, ref);
    struct tab_slot *slots = (struct tab_slot *)(idx + 1);
    idx->nslots = n;
    idx->count = t->count;
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i].ref)
            slot_put(slots, n, t->slots[i].hash, t->slots[i].ref);
    return ref;
}

crew_ref crew_strtab_find(const crew_arena *a, crew_ref index, const char *s, size_t len)
{
    if (!s || len == SIZE_MAX)
        return 0;
    const struct tab_index *idx = CREW_ARENA_GET(a, struct tab_index, index);
    if (!idx)
        return 0;
    uint64_t n = idx->nslots;
    if (n == 0 || (n & (n - 1)) != 0 || n > SIZE_MAX / sizeof(struct tab_slot))
        return 0;
    const struct tab_slot *slots =
        CREW_ARENA_GET_ARRAY(a, struct tab_slot, index + sizeof *idx, (size_t)n);
    if (!slots)
        return 0;
    uint64_t hash = XXH3_64bits(s, len);
    for (uint64_t probe = 0; probe < n; probe++) {
        const struct tab_slot *sl = &slots[(hash + probe) & (n - 1)];
        if (sl->ref == 0)
            return 0;
        if (sl->hash == hash && str_equals(a, sl->ref, s, len))
            return sl->ref;
    }
    return 0;
}

void crew_strtab_close(crew_strtab *t)
{
    if (!t)
        return;
    free(t->slots);
    free(t);
}
