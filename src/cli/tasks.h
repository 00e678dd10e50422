/*
 * tasks.h -- where crew run's tasks come from: a task file or stdin read
 * line by line with bounded memory, --task arguments, or --each FN with
 * one argument per input line.
 */
#ifndef CREW_CLI_TASKS_H
#define CREW_CLI_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/plugin.h"

#define CLI_MAX_LINE ((size_t)8 << 20)

/* A line reader over a file descriptor.  Reads wait in poll() on the fd
 * and on wake_fd, so an interrupt can end a read from a terminal or an
 * idle pipe. */
typedef struct cli_reader {
    int fd, wake_fd;
    bool own_fd, eof;
    char *buf;
    size_t cap, start, end;
    uint64_t line_no;
    long long origin;    /* where the input started (stdin may be read partly) */
} cli_reader;

typedef struct cli_source {
    const char *name;        /* for messages: the file, "-" or "--task" */
    const cli_plugin *plugin;
    long each_fn;            /* --each: the function; -1: lines are "fn arg" */
    char **list;             /* --task arguments */
    size_t n_list, at;
    cli_reader r;
    uint64_t seq;            /* tasks produced so far */
} cli_source;

/* One task as the source gives it; fields point into the source's buffer
 * and stay valid until the next call. */
typedef struct cli_task_text {
    uint64_t seq;            /* 1, 2, ... */
    uint64_t line_no;        /* for messages (the --task index for lists) */
    long fn;
    const char *arg;         /* NUL-terminated */
    size_t arg_len;
} cli_task_text;

/* Open a source: path (NULL or "-": stdin) or a list.  0, or -1 after a
 * message. */
int cli_source_open(cli_source *s, const cli_plugin *p, const char *path, char **list,
                    size_t n_list, long each_fn, int wake_fd);
/* Whether the source can be read twice (a regular file or a list), so a
 * first pass can check every line before any task runs. */
bool cli_source_rewindable(const cli_source *s);
int cli_source_rewind(cli_source *s);
/* 1 and *t, 0 at the end, -1 after printing a message naming the line,
 * -2 when woken by wake_fd. */
int cli_source_next(cli_source *s, cli_task_text *t);
void cli_source_close(cli_source *s);

#endif
