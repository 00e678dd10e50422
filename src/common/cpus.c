/*
 * cpus.c -- how many CPUs this process may really use.
 *
 * nproc-style counting is not enough in containers: the affinity mask says
 * which CPUs we may run on, and a cgroup v2 quota (cpu.max, "QUOTA PERIOD")
 * says how much of them we get.  A pool larger than the quota only adds
 * context switches, so workers = 0 means min(affinity, ceil(quota/period))
 * over our cgroup and all its ancestors.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static unsigned affinity_cpus(void)
{
    /* Start with room for 1024 CPUs and grow until the mask fits. */
    for (int ncpu = 1024; ncpu <= (1 << 20); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set)
            return 1;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        if (sched_getaffinity(0, size, set) == 0) {
            int n = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return n > 0 ? (unsigned)n : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Quota of one cgroup directory in whole CPUs, rounded up; 0: no limit. */
static unsigned cgroup_dir_quota(const char *dir)
{
    char path[4096 + 32];
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char quota[32] = "";
    unsigned long long period = 0;
    int got = fscanf(f, "%31s %llu", quota, &period);
    fclose(f);
    if (got != 2 || period == 0 || strcmp(quota, "max") == 0)
        return 0;
    unsigned long long q = strtoull(quota, NULL, 10);
    if (q == 0)
        return 0;
    unsigned long long cpus = (q + period - 1) / period;
    return cpus > CREW_MAX_WORKERS ? CREW_MAX_WORKERS : (unsigned)cpus;
}

static unsigned cgroup_cpus(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    char line[4096];
    char dir[4096] = "";
    while (fgets(line, sizeof line, f)) {
        /* cgroup v2 is the line "0::/path". */
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(dir, sizeof dir, "%s", line + 3);
            dir[strcspn(dir, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
    unsigned best = 0;
    for (;;) {
        unsigned q = cgroup_dir_quota(strcmp(dir, "/") == 0 ? "" : dir);
        if (q && (best == 0 || q < best))
            best = q;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = '\0';
    }
    return best;
}

unsigned crew__cpus_usable(void)
{
    unsigned n = affinity_cpus();
    unsigned q = cgroup_cpus();
    if (q && q < n)
        n = q;
    if (n > CREW_MAX_WORKERS)
        n = CREW_MAX_WORKERS;
    return n ? n : 1;
}

unsigned crew_usable_cpus(void)
{
    return crew__cpus_usable();
}
