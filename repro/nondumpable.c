/* Workers reach arenas created after crew_open through
 * /proc/CALLER/fd/N, which needs ptrace read access to the caller.  A
 * caller that is not dumpable (prctl(PR_SET_DUMPABLE, 0), as hardened
 * programs do, or any setuid/setgid/capability-raised program) denies it:
 * every such arena is silently missing in the workers and tasks touching
 * it crash (CREW_ECRASHED, retried) with no hint why.  (Run as an
 * unprivileged user; as root the program drops to nobody first.) */
#include "common.h"
#include <sys/prctl.h>
static int reader(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)res;
    *(long *)res = **(const long *const *)arg;
    return 0;
}
int main(void)
{
    if (getuid() == 0)
        CHECK(setgid(65534) == 0 && setuid(65534) == 0);
    CHECK(prctl(PR_SET_DUMPABLE, 0) == 0);
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(a, sizeof(long), 8);
    long *x = crew_arena_ptr(a, r);
    *x = 42;
    CHECK(crew_arena_freeze(a) == 0);
    long got = 0;
    crew_task t = {.fn = reader, .arg = &x, .arg_size = sizeof x, .result = &got,
                   .result_size = sizeof got};
    crew_run(p, NULL, &t, 1, NULL);
    printf("task reading the arena: %s (detail %d), value %ld\n", crew_err_name(t.status), t.detail,
           got);
    int bad = t.status != 0 || got != 42;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    return bad;
}
