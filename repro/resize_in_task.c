/* crew_resize is allowed "also from inside a task".  Inside a worker it
 * pokes the supervisor by writing to the eventfd's descriptor number, but
 * workers closed that descriptor at start: the 8-byte poke goes into
 * whatever file the task has open under that number, and the supervisor
 * is not told to start the new workers. */
#include "common.h"
#include <fcntl.h>
typedef struct { crew *pool; char path[64]; } arg_t;
static int task(const void *sh, const void *arg, void *res)
{
    (void)sh; (void)res;
    const arg_t *a = arg;
    int fd = open(a->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 1;
    int rc = crew_resize(a->pool, 2);
    (void)!write(fd, "hello", 5);
    close(fd);
    return rc < 0 ? 2 : 0;
}
int main(void)
{
    crew *p;
    crew_config cfg = {.workers = 1, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    arg_t a = {.pool = p};
    snprintf(a.path, sizeof a.path, "/tmp/crew-resize-%d", (int)getpid());
    crew_task t = {.fn = task, .arg = &a, .arg_size = sizeof a};
    int rc = crew_run(p, NULL, &t, 1, NULL);
    char buf[64] = {0};
    int fd = open(a.path, O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    unlink(a.path);
    printf("crew_run %s, task %d; the task's file holds %zd bytes (it wrote 5: \"hello\")\n",
           crew_err_name(rc), t.status, n);
    usleep(200 * 1000);
    crew_worker_stats st[4];
    size_t have = crew_stats(p, st, 4);
    printf("crew_workers() = %u, worker slots started: %zu\n", crew_workers(p), have);
    int bad = n != 5 || have != 2;
    printf("%s\n", bad ? "BUG" : "ok");
    crew_close(p);
    return bad;
}
