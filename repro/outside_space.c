/* An arena that finds no room in the reserved space (the space is full, or
 * the arena is larger than it) gets a reservation of its own in the
 * caller, wherever mmap puts it.  A worker maps it with
 * MAP_FIXED_NOREPLACE, and when that address is taken in the worker (by
 * memory a task allocated: the worker's mmap picks the same addresses the
 * caller's does) the mapping silently fails and the task reads the
 * worker's own memory where the arena should be: wrong data, no error. */
#include "common.h"
static char *kept;
static int grab(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)arg; (void)res;
    size_t n = (size_t)64 << 20;
    kept = malloc(n); /* a cache the task keeps for later tasks */
    if (!kept)
        return 1;
    memset(kept, 0x5a, n);
    return 0;
}
static int read_arena(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)res;
    *(long *)res = **(const long *const *)arg;
    return 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_task t = {.fn = grab};
    CHECK(crew_run(p, NULL, &t, 1, NULL) == 0);

    /* Fill the space (address space only; it is at most 16 TiB). */
    crew_arena *fill[4096];
    int nfill = 0;
    CHECK(crew_arena_create(&fill[nfill++], 2 << 20) == 0);
    uintptr_t lo = (uintptr_t)crew_arena_base(fill[0]), hi = lo + ((size_t)16 << 40);
    for (size_t cap = (size_t)8 << 40; cap >= ((size_t)2 << 20); cap >>= 1) {
        for (;;) {
            crew_arena *f;
            if (crew_arena_create(&f, cap) != 0)
                break;
            uintptr_t b = (uintptr_t)crew_arena_base(f);
            if (b < lo || b >= hi || nfill == 4096) {
                crew_arena_close(f);
                break;
            }
            fill[nfill++] = f;
        }
    }
    crew_arena *big = fill[0];
    /* The data set. */
    crew_arena *a;
    int crc = crew_arena_create(&a, (size_t)64 << 20);
    if (crc != 0) { /* refusing is the honest answer */
        printf("arena that does not fit the space: %s\nok\n", crew_err_name(crc));
        crew_close(p);
        while (nfill)
            crew_arena_close(fill[--nfill]);
        return crc != CREW_ENOMEM;
    }
    CHECK(crew_arena_alloc(a, (size_t)1 << 20, 8)); /* the value lies 1 MiB in */
    crew_ref r = crew_arena_alloc(a, sizeof(long), 8);
    long *x = crew_arena_ptr(a, r);
    *x = 42;
    CHECK(crew_arena_freeze(a) == 0);
    printf("space from %p filled with %d arenas; data arena at %p\n", (void *)lo, nfill,
           crew_arena_base(a));
    (void)big;

    long got = 0;
    crew_task t2 = {.fn = read_arena, .arg = &x, .arg_size = sizeof x, .result = &got,
                    .result_size = sizeof got};
    int rc = crew_run(p, NULL, &t2, 1, NULL);
    printf("task read %#lx from the arena (status %s, rc %d); the caller wrote 42\n", got,
           crew_err_name(t2.status), rc);
    int bad = t2.status != 0 || got != 42;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    while (nfill)
        crew_arena_close(fill[--nfill]);
    return bad;
}
