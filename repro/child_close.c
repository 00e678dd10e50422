/* crew_close called in a process forked from the caller (a child that
 * ends with exit() and an atexit handler that closes the global pool, or
 * any cleanup path in the child) writes `stopping` into the memory it
 * shares with the pool: the supervisor kills every worker and the
 * caller's pool is dead (CREW_ELOST) although the caller never closed it. */
#include "common.h"
static crew *pool;
static void cleanup(void) { crew_close(pool); }
static int nop(const void *sh, const void *arg, void *res) { (void)sh; (void)arg; (void)res; return 0; }
int main(void)
{
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&pool, &cfg) == 0);
    atexit(cleanup);
    pid_t child = fork();
    if (child == 0)
        exit(0); /* a child that does some work and exits */
    waitpid(child, NULL, 0);
    usleep(100 * 1000);
    crew_task t = {.fn = nop};
    int rc = crew_run(pool, NULL, &t, 1, NULL);
    printf("crew_run in the parent after its child exited: %s\n", crew_err_name(rc));
    printf("%s\n", rc ? "BUG" : "ok");
    return rc != 0;
}
