/* A crew_run made from inside a task of a process pool runs serially in
 * the worker -- and ignores stop_on_error: after a task fails, every
 * later task still runs instead of getting CREW_ECANCELED. */
#include "common.h"
typedef struct { crew *pool; } arg_t;
static int fail(const void *sh, const void *arg, void *res) { (void)sh; (void)arg; (void)res; return 5; }
static int count(const void *sh, const void *arg, void *res) { (void)sh; (void)arg; (void)res; return 0; }
static int outer(const void *sh, const void *arg, void *res)
{
    (void)sh;
    crew_task t[4] = {{.fn = fail}, {.fn = count}, {.fn = count}, {.fn = count}};
    crew_run_opts o = {.stop_on_error = 1};
    crew_run(((const arg_t *)arg)->pool, NULL, t, 4, &o);
    int *st = res;
    for (int i = 0; i < 4; i++)
        st[i] = t[i].status;
    return 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    arg_t a = {p};
    int st[4];
    crew_task t = {.fn = outer, .arg = &a, .arg_size = sizeof a, .result = st, .result_size = sizeof st};
    CHECK(crew_run(p, NULL, &t, 1, NULL) == 0);
    printf("nested crew_run with stop_on_error: statuses %s %s %s %s\n", crew_err_name(st[0]),
           crew_err_name(st[1]), crew_err_name(st[2]), crew_err_name(st[3]));
    int bad = st[1] != CREW_ECANCELED;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    return bad;
}
