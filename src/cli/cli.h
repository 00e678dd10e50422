/*
 * cli.h -- what the crew command's subcommands share: exit statuses, error
 * messages, option values, the progress bar.
 */
#ifndef CREW_CLI_H
#define CREW_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses, as the man page lists them. */
enum {
    CLI_OK = 0,            /* every task succeeded */
    CLI_FAILED = 1,        /* some tasks failed (their records say why) */
    CLI_USAGE = 2,         /* bad options, bad input, unreadable data */
    CLI_INTERRUPTED = 130  /* stopped by SIGINT */
};

/* The subcommand running ("run", "pack", ...), for messages. */
extern const char *cli_cmd;

/* Under MPI, " (rank 3 on node7)" for ranks other than the root, so a
 * message says where it comes from; cli_quiet silences messages that the
 * root prints for every rank (a bad option). */
extern char cli_origin[128];
extern bool cli_quiet;

/* Print "crew CMD: message" and a newline on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A usage error: the message, a pointer to --help, and CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "123", "64k", "512M", "2G", "1T" (powers of 1024; a trailing B or iB
 * allowed).  false: not a size, or it overflows. */
bool cli_parse_size(const char *s, size_t *out);

/* A non-negative number of seconds ("2", "0.5").  false: not one. */
bool cli_parse_seconds(const char *s, double *out);

/* An unsigned decimal that fits in `max`.  false: not one. */
bool cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out);

/* "1.5 GiB" and the like, into buf. */
const char *cli_human_size(double bytes, char *buf, size_t size);

/* open(path, flags | O_CREAT | O_CLOEXEC, 0666) without truncating, and
 * *created set when the file did not exist: a command refused after
 * opening its outputs removes what it created and leaves the rest as it
 * was.  -1 and errno on failure. */
int cli_open_keep(const char *path, int flags, bool *created);

/* Monotonic and wall clocks, in seconds.  The coarse ones (a few ms of
 * resolution) cost a fraction of a precise read on some virtual machines:
 * for what is read once per task without needing precision. */
double cli_now(void);
double cli_wall(void);
double cli_coarse_now(void);
double cli_coarse_wall(void);

/*
 * The progress bar: one line on stderr, redrawn about ten times a second
 * by its own thread, cleared by cli_progress_end (which leaves a summary
 * line when `summary` is true).  total 0: unknown (no bar, no ETA).
 * done and failed are set from any thread; cheap.
 */
typedef struct cli_progress cli_progress;
cli_progress *cli_progress_start(const char *label, uint64_t total, const char *unit);
void cli_progress_set(cli_progress *p, uint64_t done, uint64_t failed);
void cli_progress_add(cli_progress *p, uint64_t done, uint64_t failed);
void cli_progress_total(cli_progress *p, uint64_t total);
void cli_progress_end(cli_progress *p, bool summary);

/* The subcommands. */
int cli_run(int argc, char **argv);
int cli_pack(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_demo(int argc, char **argv);

#endif
