/* A task that forks a helper process: the helper shares the worker's slot
 * in shared memory and its fault handler.  When the helper writes to a
 * frozen arena and dies of it, the slot keeps fault_readonly = 1; the
 * worker's next death of any kind (here a null pointer write) is then
 * reported as CREW_EREADONLY with the helper's address -- and, unlike
 * CREW_ECRASHED, not retried. */
#include "common.h"
static int helper_writes(const void *sh, const void *arg, void *res)
{
    (void)arg; (void)res;
    pid_t c = fork();
    if (c == 0) {
        *(volatile char *)sh = 1; /* dies of SIGSEGV */
        _exit(0);
    }
    int ws;
    waitpid(c, &ws, 0);
    return WIFSIGNALED(ws) ? 0 : 1;
}
static int null_write(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)arg; (void)res;
    *(volatile int *)16 = 1;
    return 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES, .retries = 1};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(a, 64, 8);
    CHECK(crew_arena_freeze(a) == 0);
    crew_task t[2] = {{.fn = helper_writes}, {.fn = null_write}};
    crew_run(p, crew_arena_ptr(a, r), t, 2, NULL);
    printf("helper task: %s; null write: %s, runs %u, fault_addr %#lx\n",
           crew_err_name(t[0].status), crew_err_name(t[1].status), t[1].runs,
           (unsigned long)t[1].fault_addr);
    int bad = t[1].status != CREW_ECRASHED;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    return bad;
}
