/* crew.h 4b: "Freezing such an arena while workers exist seals it against
 * every new write at once; a worker drops its writable mapping before its
 * next task."  Workers only look at the table of arenas when a call
 * starts, so for the rest of a call every worker keeps writing through
 * its old writable mapping: tasks started long after crew_arena_freeze
 * returned still write into the frozen arena, with status 0. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
enum { N = 400 };
static crew_arena *arena;
static long *slots;
static long copy[N];
static _Atomic int frozen_rc = 1;
static int writer(const void *sh, const void *arg, void *res)
{
    (void)res;
    long *s = *(long *const *)sh;
    size_t i = *(const size_t *)arg;
    usleep(2000);
    s[i] = (long)i + 1;
    return 0;
}
static void *freezer(void *x)
{
    (void)x;
    usleep(100 * 1000); /* about a quarter of the tasks have run */
    int rc = crew_arena_freeze(arena);
    memcpy(copy, slots, sizeof copy);
    atomic_store(&frozen_rc, rc);
    return NULL;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    CHECK(crew_arena_create(&arena, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(arena, N * sizeof(long), 64);
    slots = crew_arena_ptr(arena, r);
    /* `shared`: a pointer to the slots, kept in a second arena */
    crew_arena *b;
    CHECK(crew_arena_create(&b, 1 << 20) == 0);
    crew_ref rb = crew_arena_alloc(b, sizeof(long *), 8);
    *(long **)crew_arena_ptr(b, rb) = slots;
    CHECK(crew_arena_freeze(b) == 0);

    static crew_task t[N];
    static size_t idx[N];
    for (size_t i = 0; i < N; i++) {
        idx[i] = i;
        t[i] = (crew_task){.fn = writer, .arg = &idx[i], .arg_size = sizeof idx[i]};
    }
    pthread_t th;
    pthread_create(&th, NULL, freezer, NULL);
    int rc = crew_run(p, crew_arena_ptr(b, rb), t, N, NULL);
    pthread_join(th, NULL);
    size_t after = 0, readonly = 0;
    for (size_t i = 0; i < N; i++) {
        after += copy[i] == 0 && slots[i] != 0;
        readonly += t[i].status == CREW_EREADONLY;
    }
    printf("freeze: %s; crew_run: %s; %zu writes landed in the arena after freeze returned, "
           "%zu tasks got CREW_EREADONLY\n",
           crew_err_name(atomic_load(&frozen_rc)), crew_err_name(rc), after, readonly);
    int bad = atomic_load(&frozen_rc) == 0 && after > 0;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    return bad;
}
