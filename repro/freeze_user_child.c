/* crew.h: "crew_arena_freeze fails with CREW_EBUSY while a child you forked
 * still holds the writable mapping (a process pool's workers do not
 * count)".  With any process pool open, freeze falls back to
 * F_SEAL_FUTURE_WRITE for every EBUSY, so it "succeeds" while the user's
 * child keeps writing into the frozen arena. */
#include "common.h"
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_arena *a;
    CHECK(crew_arena_create(&a, 1 << 20) == 0);
    crew_ref r = crew_arena_alloc(a, 64, 8);
    volatile long *x = crew_arena_ptr(a, r);
    *x = 1;
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t child = fork();
    if (child == 0) {
        char c;
        (void)!read(go[0], &c, 1);
        *x = 666; /* a write into an arena its owner has frozen */
        _exit(0);
    }
    int rc = crew_arena_freeze(a);
    printf("crew_arena_freeze with a child holding the writable mapping: %s\n",
           crew_err_name(rc));
    (void)!write(go[1], "x", 1);
    waitpid(child, NULL, 0);
    printf("frozen arena now reads %ld (was 1 at freeze)\n", *x);
    int bad = rc != CREW_EBUSY;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_arena_close(a);
    crew_close(p);
    return bad;
}
