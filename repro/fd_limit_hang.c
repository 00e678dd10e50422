/* When the supervisor cannot open a pidfd for a worker (file descriptor
 * limit reached: the supervisor needs two descriptors per worker, so a
 * default soft limit of 1024 is reached near 500 workers), the worker is
 * started anyway but never watched: its death is never noticed, the task
 * it ran is never settled, and crew_run waits forever. */
#include "common.h"
#include <sys/resource.h>
static int crash_later(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)arg; (void)res;
    usleep(100 * 1000);
    *(volatile int *)0 = 1;
    return 0;
}
static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "BUG: crew_run still waiting after 10 s\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(1);
}
/* ./fd_limit_hang: the smallest case (2 workers, a limit of 7);
 * ./fd_limit_hang 600: 600 workers under the usual soft limit of 1024. */
int main(int argc, char **argv)
{
    unsigned workers = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    /* Small case: room for the caller's eventfd and pidfd, the supervisor's
     * pidfd of the caller and one worker's pidfd and statm: the second
     * worker's pidfd does not fit. */
    struct rlimit rl = {workers > 2 ? 1024 : 7, workers > 2 ? 1024 : 7};
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    crew *p;
    crew_config cfg = {.workers = workers, .isolation = CREW_PROCESSES};
    int rc = crew_open(&p, &cfg);
    printf("crew_open: %s\n", crew_err_name(rc));
    if (rc != 0) { /* refusing a pool it cannot watch is fine */
        printf("ok\n");
        return rc != CREW_EAGAIN;
    }
    signal(SIGALRM, on_alarm);
    alarm(10);
    size_t n = workers > 4 ? workers : 4;
    crew_task *t = calloc(n, sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = (crew_task){.fn = crash_later};
    rc = crew_run(p, NULL, t, n, NULL);
    printf("crew_run: %s; task 0: %s\nok\n", crew_err_name(rc), crew_err_name(t[0].status));
    crew_close(p);
    return 0;
}
