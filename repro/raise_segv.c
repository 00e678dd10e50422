/* A task that raises SIGSEGV itself (raise, kill, pthread_kill, or a
 * signal sent from outside) is not reported as crashed: the worker's
 * fault handler returns, the task goes on and "succeeds".  The handler is
 * then reset, so a later write to a frozen arena by that worker is
 * reported as CREW_ECRASHED instead of CREW_EREADONLY. */
#include "common.h"
static int boom(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)arg; (void)res;
    raise(SIGSEGV);
    return 0;  /* must never get here */
}
static int write_ro(const void *sh, const void *arg, void *res)
{
    (void)arg; (void)res;
    *(volatile char *)sh = 1;
    return 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(a, 64, 8);
    CHECK(crew_arena_freeze(a) == 0);
    char *ro = crew_arena_ptr(a, r);

    crew_task t[2] = {{.fn = boom}, {.fn = write_ro}};
    int rc = crew_run(p, ro, t, 2, NULL);
    printf("raise(SIGSEGV) task: status %d (%s), detail %d\n", t[0].status,
           crew_err_name(t[0].status), t[0].detail);
    printf("write to frozen arena: status %d (%s)\n", t[1].status, crew_err_name(t[1].status));
    int bad = t[0].status != CREW_ECRASHED || t[1].status != CREW_EREADONLY;
    printf("%s (rc %d)\n", bad ? "BUG" : "ok", rc);
    crew_arena_close(a);
    crew_close(p);
    return bad;
}
