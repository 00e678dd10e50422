/* After the caller exec()s (without crew_close), the supervisor and the
 * workers keep running for as long as the new program lives: the
 * supervisor only watches for the caller's exit, and an exec is not one.
 * The new program also inherits them as unexpected children. */
#include "common.h"
int main(int argc, char **argv)
{
    if (argc > 1) { /* the new program */
        sleep(1);
        /* our children: the supervisor; its children: the workers */
        char cmd[160];
        snprintf(cmd, sizeof cmd,
                 "for s in $(pgrep -P %d -x crew-supervisor); do pgrep -P $s -x crew-worker; done | wc -l",
                 (int)getpid());
        FILE *f = popen(cmd, "r");
        int n = 0;
        if (f) { if (fscanf(f, "%d", &n) != 1) n = 0; pclose(f); }
        printf("workers still running under the exec'ed program: %d\n", n);
        printf("%s\n", n ? "BUG: workers outlive the exec'ed caller" : "ok");
        return n != 0;
    }
    crew *p;
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "again", (char *)NULL);
    return 3;
}
