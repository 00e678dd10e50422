/*
 * task_prog.c -- bench_cli's short task as a program, the way GNU parallel
 * and xargs -P run work: one process per task.  For each argument it
 * prints the line the plugin function `hash` prints for it
 * (cli_work.h), with one write at exit, so lines from concurrent
 * processes appending to one file never mix.
 */
#include <stdio.h>

#include "cli_work.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: task_prog ARG...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        printf(CLI_SHORT_LINE, argv[i], cli_short_hash(argv[i]));
    return fflush(stdout) == 0 ? 0 : 1;
}
