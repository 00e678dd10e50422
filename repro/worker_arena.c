/* A task that creates an arena of its own (a scratch arena) is given
 * address space from the worker's stale copy of the caller's free list,
 * which is where the caller's arenas created after crew_open live: the
 * task's arena is mapped over the caller's shared arena in that worker.
 * The task then reads its own scratch bytes where the shared data should
 * be, and after closing its scratch arena the shared data is gone from
 * that worker (the task crashes). */
#include "common.h"
typedef struct { const long *data; } shared_t;
static int task(const void *sh, const void *arg, void *res)
{
    (void)arg;
    const long *data = *(const long *const *)sh;
    long before = data[0];
    crew_arena *scratch;
    if (crew_arena_create(&scratch, 1 << 20) != 0)
        return 1;
    crew_ref r = crew_arena_alloc(scratch, 4096, 8);
    long *mine = crew_arena_ptr(scratch, r);
    mine[0] = -1;
    long during = data[0];
    crew_arena_close(scratch);
    ((long *)res)[0] = before;
    ((long *)res)[1] = during;
    return 0;
}
static int reader(const void *sh, const void *arg, void *res)
{
    (void)arg;
    *(long *)res = (*(const long *const *)sh)[0];
    return 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    /* The shared data set, created after crew_open as section 4b allows. */
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(a, 4096, 8);
    long *data = crew_arena_ptr(a, r);
    for (int i = 0; i < 512; i++)
        data[i] = 42;
    CHECK(crew_arena_freeze(a) == 0);
    /* `shared` must point to memory the workers have: put the pointer in
     * the arena too. */
    crew_arena *b;
    CHECK(crew_arena_create(&b, 1 << 20) == 0);
    crew_ref rb = crew_arena_alloc(b, sizeof(shared_t), 8);
    ((shared_t *)crew_arena_ptr(b, rb))->data = data;
    CHECK(crew_arena_freeze(b) == 0);
    const void *sh = crew_arena_ptr(b, rb);

    long res[2] = {0, 0};
    crew_task t = {.fn = task, .result = res, .result_size = sizeof res};
    int rc = crew_run(p, sh, &t, 1, NULL);
    printf("task: rc %d status %d; shared value before scratch arena %ld, after %ld\n", rc,
           t.status, res[0], res[1]);
    long v = 0;
    crew_task t2 = {.fn = reader, .result = &v, .result_size = sizeof v};
    rc = crew_run(p, sh, &t2, 1, NULL);
    printf("next task reading the shared value: status %s, value %ld\n",
           crew_err_name(t2.status), v);
    int bad = res[0] != 42 || res[1] != 42 || t2.status != 0 || v != 42;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    crew_arena_close(b);
    return bad;
}
