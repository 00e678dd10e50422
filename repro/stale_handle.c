/* The README pattern: create the arena, open the pool, build the data,
 * set the root, freeze, run tasks that read it through the handle
 * (crew_arena_root, CREW_ARENA_GET, crew_arena_str).  Section 4b promises
 * the workers see every arena, whenever it was created -- but the
 * crew_arena object a task reads is the worker's copy from crew_open:
 * root 0, size 64, not frozen.  Every checked reader returns NULL and the
 * task silently sees an empty data set. */
#include "common.h"
struct node { long value; };
static int task(const void *sh, const void *arg, void *res)
{
    (void)arg;
    const crew_arena *a = sh;
    crew_ref root = crew_arena_root(a);
    const struct node *n = CREW_ARENA_GET(a, struct node, root);
    long *out = res;
    out[0] = (long)root;
    out[1] = n ? n->value : -1;
    out[2] = (long)crew_arena_size(a);
    out[3] = crew_arena_frozen(a);
    return 0;
}
int main(void)
{
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_ref r = CREW_ARENA_NEW(a, struct node);
    CREW_ARENA_PTR(a, struct node, r)->value = 42;
    crew_arena_set_root(a, r);
    CHECK(crew_arena_freeze(a) == 0);
    long out[4];
    crew_task t = {.fn = task, .result = out, .result_size = sizeof out};
    int rc = crew_run(p, a, &t, 1, NULL);
    printf("caller: root %lu size %zu frozen %d; task: root %ld value %ld size %ld frozen %ld (%s)\n",
           (unsigned long)crew_arena_root(a), crew_arena_size(a), crew_arena_frozen(a), out[0],
           out[1], out[2], out[3], crew_err_name(rc));
    int bad = out[1] != 42;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    return bad;
}
