/*
 * joblog.h -- the job log: one line per finished task, and what --resume
 * reads back from it.
 */
#ifndef CREW_CLI_JOBLOG_H
#define CREW_CLI_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { LOG_NONE = 0, LOG_OK = 1, LOG_FAILED = 2 };

typedef struct cli_joblog {
    const char *path;
    int fd;                 /* -1: no log */
    /* from the log read at --resume: per seq, LOG_ and the task's hash */
    uint8_t *state;
    uint32_t *hash;
    uint64_t n;             /* seqs covered (highest seq + 1) */
    uint64_t lines, failed;
    uint64_t out_end;       /* output offset after the last task logged */
    bool have_out_end;
    bool created;           /* the file did not exist before cli_joblog_open */
    long long keep;         /* bytes of the old log that cli_joblog_begin keeps */
    const char *identity;
} cli_joblog;

/* One finished task, as the log line says it. */
typedef struct cli_log_entry {
    uint64_t seq;
    const char *status;     /* "ok", "error", "crashed", ... */
    int code;
    const char *signal;     /* "" or "SIGSEGV" ... */
    double start, duration;
    unsigned retries;
    uint64_t out_end;
    const char *function, *arg;
    size_t arg_len;
} cli_log_entry;

/* Open the log for writing; with resume, read it first (a missing file is
 * an empty log).  identity is the job's first line (kept by pointer until
 * cli_joblog_begin): a log whose identity differs is refused.  Nothing is
 * written yet, so a run refused after this leaves an existing log as it
 * was (cli_joblog_abandon).  0, or -1 after a message. */
int cli_joblog_open(cli_joblog *l, const char *path, bool resume, const char *identity);

/* The run goes ahead: cut the log to what resume keeps (nothing without
 * resume) and write the first lines if it is empty.  0, or -1 after a
 * message. */
int cli_joblog_begin(cli_joblog *l);

/* The run was refused before cli_joblog_begin: remove the log if
 * cli_joblog_open created it, and close it. */
void cli_joblog_abandon(cli_joblog *l);

/* The hash the log keeps of a task's function and argument. */
uint32_t cli_joblog_hash(const char *fn, const char *arg, size_t arg_len);


void cli_joblog_close(cli_joblog *l);

/* Escape \t \n \r \\ as two characters each, into a growing buffer. */
typedef struct cli_buf {
    char *p;
    size_t len, cap;
} cli_buf;
bool cli_buf_add(cli_buf *b, const void *p, size_t n);
bool cli_buf_escape(cli_buf *b, const char *p, size_t n);

/* Append the log line for one task to b.  false: out of memory. */
bool cli_joblog_format(const cli_log_entry *e, cli_buf *b);

#endif
