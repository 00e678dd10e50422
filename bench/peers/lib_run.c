/*
 * lib_run.c -- bench_cli's library peer: the heavy tasks `crew run --each
 * heavy` runs, made by a C program that calls the library directly.
 *
 *     lib_run SNAPSHOT TASKS WORKERS threads|processes
 *
 * opens the snapshot, opens a pool of WORKERS, runs heavy tasks 0 ..
 * TASKS-1 with one crew_run (each calls cli_heavy_task, the code the
 * plugin function `heavy` calls), and prints CLI_HEAVY_LINE for each in
 * task order: the bytes `crew run --format raw` prints for the same tasks.
 * bench_cli times the whole process, as it times the whole `crew run`, so
 * the difference between the two is what the command adds: loading the
 * plugin, reading task lines, the feed and its window, writing records.
 *
 * It does what crew run does with the snapshot: open it before the pool,
 * so process workers inherit the mapping, and pass the arena as `shared`.
 * Exit status 0, 1 when a task failed, 2 for bad arguments or a failed
 * open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_work.h"

static int heavy_task(const void *shared, const void *arg, void *result)
{
    uint64_t i, sum;
    memcpy(&i, arg, sizeof i);
    if (cli_heavy_task(shared, i, &sum) != 0)
        return 1;
    memcpy(result, &sum, sizeof sum);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n, workers;
    int isolation;
    if (argc != 5 || !cli_parse_index(argv[2], &n) || n == 0 || n > 1000000 ||
        !cli_parse_index(argv[3], &workers) || workers == 0 || workers > CREW_MAX_WORKERS) {
        fprintf(stderr, "usage: lib_run SNAPSHOT TASKS(1..1000000) WORKERS threads|processes\n");
        return 2;
    }
    if (strcmp(argv[4], "threads") == 0)
        isolation = CREW_THREADS;
    else if (strcmp(argv[4], "processes") == 0)
        isolation = CREW_PROCESSES;
    else {
        fprintf(stderr, "lib_run: bad isolation '%s': threads or processes\n", argv[4]);
        return 2;
    }

    crew_arena *data;
    int rc = crew_arena_open(&data, argv[1], 0);
    if (rc != 0) {
        fprintf(stderr, "lib_run: cannot open %s: %s\n", argv[1], crew_strerror(rc));
        return 2;
    }
    crew_task *tasks = calloc(n, sizeof *tasks);
    uint64_t *args = calloc(n, sizeof *args), *sums = calloc(n, sizeof *sums);
    if (!tasks || !args || !sums) {
        fprintf(stderr, "lib_run: out of memory for %" PRIu64 " tasks\n", n);
        return 2;
    }
    for (uint64_t i = 0; i < n; i++) {
        args[i] = i;
        tasks[i] = (crew_task){.fn = heavy_task, .arg = &args[i], .arg_size = sizeof args[i],
                               .result = &sums[i], .result_size = sizeof sums[i]};
    }
    crew *pool;
    rc = crew_open(&pool, &(crew_config){.workers = (unsigned)workers, .isolation = isolation});
    if (rc != 0) {
        fprintf(stderr, "lib_run: cannot start %" PRIu64 " workers: %s\n", workers,
                crew_strerror(rc));
        return 2;
    }
    rc = crew_run(pool, data, tasks, n, NULL);
    crew_close(pool);
    int failed = 0;
    for (uint64_t i = 0; i < n; i++)
        if (tasks[i].status != 0) {
            if (!failed++)
                fprintf(stderr, "lib_run: task %" PRIu64 " failed: %s\n", i,
                        crew_strerror(tasks[i].status));
        } else {
            printf(CLI_HEAVY_LINE, i, sums[i]);
        }
    if (rc != 0 && !failed)
        fprintf(stderr, "lib_run: crew_run: %s\n", crew_strerror(rc));
    crew_arena_close(data);
    free(tasks);
    free(args);
    free(sums);
    if (fflush(stdout) != 0)
        return 2;
    return failed || rc != 0 ? 1 : 0;
}
