/* The supervisor decides to kill a worker whose task ran past the
 * timeout, checks that the worker still runs that task, then sends
 * SIGKILL.  Between the check and the signal the task may end and the
 * worker start the next one: that next task dies instead, and since
 * kill_seq names the old task, it is reported as CREW_ECRASHED (SIGKILL)
 * -- a task that never crashed, blamed for another's timeout.  This
 * program counts such misattributions (tasks that end by themselves in a
 * few microseconds) over many tasks that end right at the deadline. */
#include "common.h"
static int spin(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)res;
    double d = *(const double *)arg, t0 = now_s();
    while (now_s() - t0 < d)
        ;
    return 0;
}
int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 20;
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES, .task_timeout = 0.002};
    CHECK(crew_open(&p, &cfg) == 0);
    enum { N = 2000 };
    static crew_task t[N];
    static double d[N];
    size_t blamed = 0, timed_out = 0, total = 0;
    double start = now_s();
    unsigned s = 1;
    while (now_s() - start < secs) {
        for (int i = 0; i < N; i++) {
            s = s * 1103515245 + 12345;
            /* even: just around the deadline; odd: 10 us */
            d[i] = i % 2 ? 1e-5 : 0.0018 + ((s >> 16) % 1000) * 1e-6;
            t[i] = (crew_task){.fn = spin, .arg = &d[i], .arg_size = sizeof d[i]};
        }
        crew_run(p, NULL, t, N, NULL);
        for (int i = 0; i < N; i++) {
            /* (CREW_ETIMEDOUT for a short one can be fair: the timeout is
             * wall-clock time and a preempted worker exceeds it) */
            if (i % 2 && t[i].status == CREW_ECRASHED) {
                blamed++;
                printf("10 us task got %s (detail %d)\n", crew_err_name(t[i].status), t[i].detail);
            }
            timed_out += i % 2 == 0 && t[i].status == CREW_ETIMEDOUT;
        }
        total += N / 2;
    }
    printf("%zu short tasks, %zu blamed; %zu of %zu long ones timed out\n", total, blamed, timed_out, total);
    printf("%s\n", blamed ? "BUG" : "no misattribution seen");
    crew_close(p);
    return blamed != 0;
}
