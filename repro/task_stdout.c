/* Output a task writes with stdio is lost when stdout is a file or a pipe
 * (fully buffered): workers never flush; crew_close kills them with
 * SIGKILL and retiring workers leave with _exit.  The program runs
 * itself with stdout to a pipe and counts the tasks' lines. */
#include "common.h"
static int say(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)res;
    printf("task %d says hello\n", *(const int *)arg);
    return 0;
}
int main(int argc, char **argv)
{
    if (argc == 1) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s child", argv[0]);
        FILE *f = popen(cmd, "r");
        char line[256];
        int hellos = 0;
        while (f && fgets(line, sizeof line, f))
            hellos += strstr(line, "says hello") != NULL;
        if (f)
            pclose(f);
        printf("lines from the 4 tasks that reached the pipe: %d\n%s\n", hellos,
               hellos == 4 ? "ok" : "BUG");
        return hellos != 4;
    }
    crew *p;
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    int idx[4] = {0, 1, 2, 3};
    crew_task t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (crew_task){.fn = say, .arg = &idx[i], .arg_size = sizeof(int)};
    CHECK(crew_run(p, NULL, t, 4, NULL) == 0);
    crew_resize(p, 1);
    crew_close(p);
    printf("caller done\n");
    return 0;
}
