/* With more than 4096 arenas open, every call on a process pool fails with
 * -EMFILE (an error crew.h does not list for crew_run / crew_for), task
 * statuses are left as they were, and crew_open itself fails the same way.
 * Section 4b promises every open arena is visible to the workers. */
#include "common.h"
static int nop(const void *sh, const void *arg, void *res) { (void)sh; (void)arg; (void)res; return 0; }
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    enum { N = 4097 };
    static crew_arena *a[N];
    for (int i = 0; i < N; i++)
        CHECK(crew_arena_create(&a[i], 4096) == 0);
    crew_task t = {.fn = nop, .status = 12345};
    int rc = crew_run(p, NULL, &t, 1, NULL);
    printf("crew_run with %d arenas open: %d (%s), task status %d (never ran)\n", N, rc,
           crew_err_name(rc), t.status);
    int bad = rc != 0;
    crew *q;
    rc = crew_open(&q, &cfg);
    printf("crew_open with %d arenas open: %d (%s)\n", N, rc, crew_err_name(rc));
    if (rc == 0)
        crew_close(q);
    crew_close(p);
    for (int i = 0; i < N; i++)
        crew_arena_close(a[i]);
    printf("%s\n", bad ? "BUG" : "ok");
    return bad;
}
