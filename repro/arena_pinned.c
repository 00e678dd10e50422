/* An arena open at crew_open stays alive, memory and all, after
 * crew_arena_close: the supervisor and every worker inherited its memfd
 * descriptor at fork and never close it (workers map arenas through
 * /proc/CALLER/fd, they do not need it).  The memory comes back only at
 * crew_close. */
#include "common.h"
#include <dirent.h>
static long shmem_kb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Shmem: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}
static int count_memfds(pid_t pid)
{
    char dir[64], path[320], target[256];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = 0;
            n += strstr(target, "crew-arena") != NULL;
        }
    }
    if (d)
        closedir(d);
    return n;
}
int main(void)
{
    size_t size = (size_t)512 << 20;
    crew_arena *a;
    CHECK(crew_arena_create(&a, size + 4096) == 0);
    crew_ref r = crew_arena_alloc(a, size, 4096);
    CHECK(r);
    memset(crew_arena_ptr(a, r), 1, size);
    CHECK(crew_arena_freeze(a) == 0);

    crew *p;
    crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    crew_worker_stats st[2];
    crew_stats(p, st, 2);
    long before = shmem_kb();
    crew_arena_close(a);
    usleep(100 * 1000);
    long after = shmem_kb();
    printf("Shmem before crew_arena_close %ld MiB, after %ld MiB\n", before >> 10, after >> 10);
    printf("arena memfds held by worker %d: %d\n", st[0].pid, count_memfds(st[0].pid));
    int bad = before - after < (long)(size >> 10) / 2;
    crew_close(p);
    usleep(100 * 1000);
    printf("after crew_close: %ld MiB\n", shmem_kb() >> 10);
    printf("%s\n", bad ? "BUG: the closed arena's memory is still in use" : "ok");
    return bad;
}
