/*
 * run.c -- crew run: a plugin's functions over a snapshot, one task per
 * line, N at a time.
 *
 * The pieces: a source of task lines (tasks.c), the plugin (plugin.c), the
 * job log (joblog.c), and here the feed that crew_run_feed pulls tasks
 * from and hands them back to.  The feed keeps at most `window` tasks
 * between reading and writing: in task order, a record waits for the
 * tasks before it, and when the oldest task holds up a full window no new
 * task starts (backpressure), so memory never grows with the input.
 *
 * Records and log lines are written by run_output.c; the side of a task
 * that runs in a worker is run_worker.c.
 *
 * Signals are taken by one thread with sigtimedwait (they are blocked
 * everywhere else before any thread or process starts): SIGINT/SIGTERM
 * stop new tasks, a second one ends the process at once; SIGUSR1/SIGUSR2
 * add or remove a worker; once a second, -j FILE is read again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/run.h"

run_state R;

/* ---- the feed ------------------------------------------------------------- */

static bool slot_ready(slot *s, const cli_task_text *tt)
{
    size_t need = sizeof *s->arg + tt->arg_len + 1;
    if (s->arg_cap < need) {
        size_t cap = need < 256 ? 256 : need;
        task_arg *a = realloc(s->arg, cap);
        if (!a)
            return false;
        s->arg = a;
        s->arg_cap = cap;
    }
    s->arg->res = s->res;
    s->arg->seq = tt->seq;
    s->arg->fn = (uint32_t)tt->fn;
    s->arg->len = (uint32_t)tt->arg_len;
    memcpy(s->arg->text, tt->arg, tt->arg_len);
    s->arg->text[tt->arg_len] = '\0';
    s->res->len = 0;
    s->res->where = RES_INLINE;
    s->res->heap = NULL;
    s->res->t0 = s->res->t1 = 0;
    s->res->spool_error = 0;
    s->task = (crew_task){.fn = run_task, .arg = s->arg, .arg_size = need};
    s->given_at = cli_coarse_wall(); /* dates a task that left no times (crashed) */
    s->finished = false;
    return true;
}

/* Whether the log says task seq is done (and need not run again). */
static bool skip(const cli_task_text *tt, int *err)
{
    cli_joblog *l = &R.log;
    *err = 0;
    if (!R.resume || tt->seq >= l->n || l->state[tt->seq] == LOG_NONE)
        return false;
    const char *fname = wk.plugin->functions[tt->fn].name;
    if (l->hash[tt->seq] != cli_joblog_hash(fname, tt->arg, tt->arg_len)) {
        cli_error("job log %s is from another job: its task %llu is not '%s %.*s' (%s:%llu)",
                  l->path, (unsigned long long)tt->seq, fname,
                  (int)(tt->arg_len > 60 ? 60 : tt->arg_len), tt->arg, R.src.name,
                  (unsigned long long)tt->line_no);
        *err = 1;
        return false;
    }
    return l->state[tt->seq] == LOG_OK || !R.resume_failed;
}

static bool skip_counted(const cli_task_text *tt, int *err)
{
    bool sk = skip(tt, err);
    if (sk && R.log.state[tt->seq] == LOG_FAILED)
        R.n_skipped_failed++;
    return sk;
}

int run_feed_next(void *ctx, crew_task **task)
{
    (void)ctx;
    if (R.fatal)
        return CREW_EINVAL;
    if (atomic_load(&R.interrupts))
        return CREW_ECANCELED;
    if (R.source_done)
        return 0;
    if (R.n_free == 0 || R.given - R.written >= R.window)
        return CREW_EAGAIN;
    for (;;) {
        cli_task_text tt;
        int rc = cli_source_next(&R.src, &tt);
        if (rc == -2)
            return CREW_ECANCELED;
        if (rc < 0) {
            R.fatal = CLI_USAGE;
            return CREW_EINVAL;
        }
        if (rc == 0) {
            R.source_done = true;
            if (!R.total)
                cli_progress_total(R.bar, R.src.seq);
            return 0;
        }
        int err;
        if (skip_counted(&tt, &err))
            continue;
        if (err) {
            R.fatal = CLI_USAGE;
            return CREW_EINVAL;
        }
        size_t k = R.free_slots[--R.n_free];
        slot *s = &R.slots[k];
        if (!slot_ready(s, &tt)) {
            R.free_slots[R.n_free++] = k;
            fatal("out of memory");
            return CREW_ENOMEM;
        }
        R.order[R.given % R.window] = s;
        R.given++;
        *task = &s->task;
        return 1;
    }
}

static void release(slot *s)
{
    R.free_slots[R.n_free++] = (size_t)(s - R.slots);
}

static void settle(slot *s)
{
    if (s->task.status == CREW_ECANCELED) {
        /* not run: not logged, so a resume runs it */
        R.n_cancelled++;
        discard(s);
        R.stopped_emitting = true;
        return;
    }
    if (s->task.status == 0)
        R.n_ok++;
    else
        R.n_failed++;
    if (!R.fatal)
        emit(s);
    cli_progress_add(R.bar, 1, s->task.status != 0);
}

/* What a finished task left that cannot be shown: a crash left no
 * result, only perhaps part of a spool file; output that could not be
 * kept whole (no memory, a full disk) fails the task with "memory" rather
 * than show part of it.  (Under MPI, on the rank that ran it.) */
void run_settle_result(task_result *res, crew_task *t, uint64_t seq)
{
    if (wk.processes && t->status < 0 && t->status != CREW_EINVAL) {
        res->where = RES_SPOOL;
        discard_result(res, seq);
    } else if (res->spool_error) {
        t->status = CREW_ENOMEM;
        discard_result(res, seq);
    }
}

static void feed_done(void *ctx, crew_task *task)
{
    (void)ctx;
    slot *s = (slot *)task;
    run_settle_result(s->res, &s->task, s->arg->seq);
    run_slot_done(s);
}

/* Task s is over (its result settled): write its record, and those of
 * the tasks after it that waited for it. */
void run_slot_done(slot *s)
{
    s->finished = true;
    if (R.unordered) {
        settle(s);
        release(s);
        R.written++;
        return;
    }
    /* In order: records wait for the tasks before them.  After a task was
     * cancelled, none is written (a resume must find the output ending
     * where its log ends, with no gap). */
    while (R.written < R.given && R.order[R.written % R.window]->finished) {
        slot *o = R.order[R.written % R.window];
        if (R.stopped_emitting && o->task.status != CREW_ECANCELED) {
            discard(o);
        } else {
            settle(o);
        }
        release(o);
        R.written++;
    }
}

/* ---- workers, signals ---------------------------------------------------- */

/* -j: "N", "0" (every usable CPU), "P%", or a file holding one of those.
 * 0 and a message in err when it is none of them. */
static unsigned parse_jobs(const char *s, char *err, size_t err_size, bool allow_file)
{
    unsigned cpus = crew_usable_cpus();
    unsigned long long v;
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '%') {
        char num[32];
        if (n - 1 < sizeof num) {
            memcpy(num, s, n - 1);
            num[n - 1] = '\0';
            if (cli_parse_uint(num, 100000, &v)) {
                unsigned j = (unsigned)((double)cpus * (double)v / 100.0 + 0.5);
                return j < 1 ? 1 : j > CREW_MAX_WORKERS ? CREW_MAX_WORKERS : j;
            }
        }
    } else if (cli_parse_uint(s, CREW_MAX_WORKERS, &v)) {
        return v == 0 ? cpus : (unsigned)v;
    }
    struct stat st;
    if (allow_file && stat(s, &st) == 0 && S_ISREG(st.st_mode)) {
        FILE *f = fopen(s, "re");
        char line[64] = "";
        if (f) {
            if (!fgets(line, sizeof line, f))
                line[0] = '\0';
            fclose(f);
        }
        line[strcspn(line, " \t\r\n")] = '\0';
        unsigned j = parse_jobs(line, err, err_size, false);
        bool printable = true;
        for (const char *c = line; *c; c++)
            printable &= *c >= 0x20 && *c < 0x7f;
        if (!j)
            snprintf(err, err_size,
                     "-j file %s holds '%s', not a number of workers (0 = every CPU, at most %u), "
                     "or N%%", s, printable ? line : "(not text)", (unsigned)CREW_MAX_WORKERS);
        return j;
    }
    snprintf(err, err_size,
             "bad -j '%s': expected a number of workers (0 = every CPU, at most %u), N%% of "
             "the CPUs, or a file that holds one", s, (unsigned)CREW_MAX_WORKERS);
    return 0;
}

static void resize_to(unsigned n)
{
    if (n < 1)
        n = 1;
    if (n > CREW_MAX_WORKERS)
        n = CREW_MAX_WORKERS;
    if (n != R.jobs_now && crew_resize(R.pool, n) == 0)
        R.jobs_now = n;
}

/* Sent by cli_run to the signal thread alone when the run is over, so that
 * its wait ends at once instead of after up to 50 ms (which every run would
 * spend at its end).  Blocked everywhere with the others; the loop does
 * nothing with it but look at quit_signal_thread. */
#define WAKE_SIGNAL SIGRTMIN

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    /* Under MPI a rank keeps the workers it started with: the root sized
     * its share of the tasks by them. */
    bool jobs_file = !R.mpi && R.jobs_arg && parse_jobs(R.jobs_arg, (char[8]){0}, 8, false) == 0;
    while (!atomic_load(&R.quit_signal_thread)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};
        int sig = sigtimedwait(set, NULL, &ts);
        /* records of tasks that finished while nothing else did */
        pthread_mutex_lock(&R.io_lock);
        if ((R.obuf.len || R.lbuf.len) && cli_coarse_now() - R.flushed_at >= IO_DELAY)
            flush_io();
        pthread_mutex_unlock(&R.io_lock);
        if ((sig == SIGINT || sig == SIGTERM) && R.mpi) {
            /* mpirun sends SIGTERM to every rank when one died or it was
             * interrupted, and SIGKILL soon after: no rank can wait for
             * running tasks.  The root writes what it holds (output, then
             * log) and says how to go on. */
            if (R.rank == 0) {
                /* unless a record is being written (its task runs again) */
                if (pthread_mutex_trylock(&R.io_lock) == 0)
                    flush_io();
                if (R.log.fd >= 0)
                    cli_error("stopped by %s (mpirun ends every rank when one dies or it is "
                              "interrupted): job log %s holds the tasks whose records were "
                              "written; run again with --resume to finish the rest",
                              sig == SIGINT ? "SIGINT" : "SIGTERM", R.log.path);
                else
                    cli_error("stopped by %s (mpirun ends every rank when one dies or it is "
                              "interrupted); with --joblog FILE a run can be resumed",
                              sig == SIGINT ? "SIGINT" : "SIGTERM");
            }
            _exit(CLI_INTERRUPTED);
        }
        if (sig == SIGINT || sig == SIGTERM) {
            if (atomic_fetch_add(&R.interrupts, 1) == 0) {
                cli_error("interrupted: no new tasks; waiting for the running ones "
                          "(again to kill them)");
                (void)!write(R.wake[1], "x", 1);
            } else {
                /* Write what waits, output then log, unless a writer is
                 * in the middle of a record (its records and lines are
                 * then lost together, and a resume runs those tasks
                 * again); the workers die with this process. */
                if (pthread_mutex_trylock(&R.io_lock) == 0)
                    flush_io();
                cli_error("killed the running tasks");
                _exit(CLI_INTERRUPTED);
            }
        } else if (R.mpi) {
            /* SIGUSR1/SIGUSR2: see above */
        } else if (sig == SIGUSR1) {
            resize_to(R.jobs_now + 1);
        } else if (sig == SIGUSR2) {
            resize_to(R.jobs_now - 1);
        }
        static double last_read;
        if (jobs_file && cli_now() - last_read >= 1.0) {
            char err[512];
            last_read = cli_now();
            unsigned j = parse_jobs(R.jobs_arg, err, sizeof err, true);
            if (j)
                resize_to(j);
        }
    }
    return NULL;
}

/* ---- options ----------------------------------------------------------- */

static const char usage[] =
    "usage: crew run --plugin P.so --data D.crew [OPTIONS] [TASKFILE|-]\n"
    "       crew run --list --plugin P.so\n"
    "\n"
    "Run a plugin's functions over a snapshot, N at a time.  Each line of\n"
    "TASKFILE (default: stdin) is `function [argument]`; blank lines and lines\n"
    "starting with # are skipped.\n"
    "\n"
    "tasks:\n"
    "  -p, --plugin P.so          the plugin (a shared object; crew_plugin.h)\n"
    "  -d, --data D.crew          the snapshot its functions read\n"
    "  -t, --task 'FN ARG'        a task (repeatable), instead of a file\n"
    "  -e, --each FN              each input line is one argument for FN\n"
    "  -l, --list                 list the plugin's functions and exit\n"
    "      --verify               check the snapshot's checksum first\n"
    "running:\n"
    "  -j, --jobs N               workers: N, 0 = every usable CPU (default),\n"
    "                             N% of them, or a file holding N (re-read each second)\n"
    "      --isolation MODE       threads (default) or processes\n"
    "      --timeout SECONDS      kill a task that runs longer (processes)\n"
    "      --retries K            re-run a task that crashed or timed out (processes)\n"
    "      --memory-limit SIZE    kill a task whose memory grows more (processes)\n"
    "      --stop-on-error        start no task after one fails\n"
    "      --mpi                  one rank of an MPI job (mpirun -np K crew run --mpi\n"
    "                             ...): rank 0 reads tasks and writes records, every\n"
    "                             rank runs tasks with -j workers of its own\n"
    "output:\n"
    "  -o, --output FILE          write records there (default: stdout)\n"
    "      --format FMT           tsv (default), jsonl, or raw (outputs as they are)\n"
    "      --unordered            records as tasks finish (default: in task order)\n"
    "      --window N             tasks between reading and writing (default 1024)\n"
    "      --joblog FILE          one line per finished task\n"
    "      --resume               skip the tasks the job log has\n"
    "      --resume-failed        ... but run its failed tasks again\n"
    "      --progress             show the progress bar (default: on a terminal)\n"
    "      --no-progress          never show it\n"
    "      --trace FILE           write a Chrome trace of the run\n"
    "  -h, --help                 this text\n"
    "\n"
    "Exit status: 0 every task succeeded, 1 some failed, 2 bad usage or input,\n"
    "130 interrupted.  SIGUSR1 / SIGUSR2 add / remove a worker.  See crew(1).\n";

enum {
    O_ISOLATION = 256, O_TIMEOUT, O_RETRIES, O_MEMORY, O_STOP, O_FORMAT, O_UNORDERED, O_WINDOW,
    O_JOBLOG, O_RESUME, O_RESUME_FAILED, O_PROGRESS, O_NO_PROGRESS, O_TRACE, O_VERIFY, O_MPI
};

static int parse_options(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"task", required_argument, NULL, 't'},
        {"each", required_argument, NULL, 'e'},
        {"list", no_argument, NULL, 'l'},
        {"jobs", required_argument, NULL, 'j'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {"isolation", required_argument, NULL, O_ISOLATION},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"retries", required_argument, NULL, O_RETRIES},
        {"memory-limit", required_argument, NULL, O_MEMORY},
        {"stop-on-error", no_argument, NULL, O_STOP},
        {"format", required_argument, NULL, O_FORMAT},
        {"unordered", no_argument, NULL, O_UNORDERED},
        {"window", required_argument, NULL, O_WINDOW},
        {"joblog", required_argument, NULL, O_JOBLOG},
        {"resume", no_argument, NULL, O_RESUME},
        {"resume-failed", no_argument, NULL, O_RESUME_FAILED},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"no-progress", no_argument, NULL, O_NO_PROGRESS},
        {"trace", required_argument, NULL, O_TRACE},
        {"verify", no_argument, NULL, O_VERIFY},
        {"mpi", no_argument, NULL, O_MPI},
        {0, 0, 0, 0},
    };
    R.isolation = -1;
    R.progress = -1;
    R.out_fd = -1;
    R.window = 1024;
    optind = 0;
    opterr = 0;
    int c;
    unsigned long long v;
    while ((c = getopt_long(argc, argv, ":p:d:t:e:lj:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': R.plugin_path = optarg; break;
        case 'd': R.data_path = optarg; break;
        case 't': {
            char **l = realloc(R.task_list, (R.n_tasks_listed + 1) * sizeof *l);
            if (!l)
                return cli_usage_error("out of memory");
            R.task_list = l;
            R.task_list[R.n_tasks_listed++] = optarg;
            break;
        }
        case 'e': R.each_name = optarg; break;
        case 'l': R.list = true; break;
        case 'j': R.jobs_arg = optarg; break;
        case 'o': R.output_path = strcmp(optarg, "-") ? optarg : NULL; break; /* - : stdout */
        case 'h': fputs(usage, stdout); return -1;
        case O_ISOLATION:
            if (!strcmp(optarg, "threads"))
                R.isolation = CREW_THREADS;
            else if (!strcmp(optarg, "processes"))
                R.isolation = CREW_PROCESSES;
            else
                return cli_usage_error("bad --isolation '%s': threads or processes", optarg);
            break;
        case O_TIMEOUT:
            if (!cli_parse_seconds(optarg, &R.timeout) || R.timeout <= 0)
                return cli_usage_error("bad --timeout '%s': a number of seconds > 0", optarg);
            break;
        case O_RETRIES:
            if (!cli_parse_uint(optarg, 1000, &v))
                return cli_usage_error("bad --retries '%s': a count from 0 to 1000", optarg);
            R.retries = (unsigned)v;
            R.retries_set = true;
            break;
        case O_MEMORY:
            if (!cli_parse_size(optarg, &R.memory_limit) || R.memory_limit == 0)
                return cli_usage_error("bad --memory-limit '%s': a size like 512M or 2G",
                                       optarg);
            break;
        case O_STOP: R.stop_on_error = true; break;
        case O_FORMAT:
            if (!strcmp(optarg, "tsv"))
                R.format = FMT_TSV;
            else if (!strcmp(optarg, "jsonl"))
                R.format = FMT_JSONL;
            else if (!strcmp(optarg, "raw"))
                R.format = FMT_RAW;
            else
                return cli_usage_error("bad --format '%s': tsv, jsonl or raw", optarg);
            break;
        case O_UNORDERED: R.unordered = true; break;
        case O_WINDOW:
            if (!cli_parse_uint(optarg, 1u << 20, &v) || v == 0)
                return cli_usage_error("bad --window '%s': a count from 1 to %u", optarg,
                                       1u << 20);
            R.window = (size_t)v;
            break;
        case O_JOBLOG: R.joblog_path = optarg; break;
        case O_RESUME: R.resume = true; break;
        case O_RESUME_FAILED: R.resume = R.resume_failed = true; break;
        case O_PROGRESS: R.progress = 1; break;
        case O_NO_PROGRESS: R.progress = 0; break;
        case O_TRACE: R.trace_path = optarg; break;
        case O_VERIFY: R.verify = true; break;
        case O_MPI: break; /* seen by wants_mpi before */
        case ':':
            return cli_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return cli_usage_error("unknown option -%c", optopt);
            return cli_usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        R.task_path = argv[optind++];
    if (optind < argc)
        return cli_usage_error("one task file at most (got '%s' too)", argv[optind]);
    if (!R.plugin_path)
        return cli_usage_error("--plugin P.so is required");
    if (R.list)
        return 0;
    if (!R.data_path)
        return cli_usage_error("--data D.crew is required");
    if (R.task_list && R.task_path)
        return cli_usage_error("give tasks with --task or in a file, not both");
    if (R.task_list && R.each_name)
        return cli_usage_error("--each reads arguments from a file or stdin, not --task");
    if (R.resume && !R.joblog_path)
        return cli_usage_error("--resume needs --joblog FILE");
    bool proc_only = R.timeout > 0 || R.memory_limit || R.retries_set;
    if (proc_only && R.isolation == CREW_THREADS)
        return cli_usage_error("--timeout, --retries and --memory-limit need "
                               "--isolation processes (a thread cannot be killed)");
    if (R.isolation < 0)
        R.isolation = proc_only ? CREW_PROCESSES : CREW_THREADS;
    char err[600];
    R.jobs_now = parse_jobs(R.jobs_arg ? R.jobs_arg : "0", err, sizeof err, true);
    if (!R.jobs_now)
        return cli_usage_error("%s", err);
    return 0;
}

/* ---- the run ------------------------------------------------------------- */

/* Open -o without truncating it yet (commit_files does, once nothing can
 * refuse the run any more); stdout as it is. */
static int open_output(void)
{
    if (!R.output_path) {
        /* Records get a descriptor of their own, and descriptor 1 becomes
         * stderr: whatever a plugin prints with printf lands there, never
         * inside a record.  (Same open file: offsets stay shared.) */
        R.out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (R.out_fd < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
            cli_error("cannot use standard output: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    R.out_fd = cli_open_keep(R.output_path, O_WRONLY, &R.out_created);
    if (R.out_fd < 0) {
        cli_error("cannot write output %s: %s", R.output_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* With --resume: where to cut the output back to (the end of the last
 * record the log has), in R.out_cut; -1: nowhere. */
static int check_resume_output(void)
{
    R.out_cut = -1;
    if (!R.resume)
        return 0;
    struct stat st;
    if (fstat(R.out_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0; /* a pipe or terminal: nothing to cut */
    uint64_t end = R.log.have_out_end ? R.log.out_end : 0;
    if (!R.log.have_out_end && R.output_path)
        end = 0;
    else if (!R.log.have_out_end)
        return 0;
    if ((uint64_t)st.st_size < end) {
        cli_error("output %s is shorter (%lld bytes) than the job log says (%llu): "
                  "is it the output of this job?",
                  R.output_path ? R.output_path : "(stdout)", (long long)st.st_size,
                  (unsigned long long)end);
        return -1;
    }
    R.out_cut = (off_t)end;
    return 0;
}

/* The run goes ahead: the job log starts, the output is emptied (without
 * --resume) or cut back (with it).  Records are counted from where the
 * output then ends, so resume can cut a file given as stdout (>>) back to
 * the log's last record too. */
static int commit_files(void)
{
    if (cli_joblog_begin(&R.log) != 0)
        return -1;
    struct stat st;
    if (fstat(R.out_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    off_t cut = R.out_cut >= 0 ? R.out_cut : R.output_path && !R.resume ? 0 : -1;
    if (cut >= 0 && ftruncate(R.out_fd, cut) != 0) {
        cli_error("cannot %s output %s: %s", R.resume ? "cut back" : "write",
                  R.output_path ? R.output_path : "(stdout)", strerror(errno));
        return -1;
    }
    off_t at = lseek(R.out_fd, 0, SEEK_END);
    R.out_pos = at > 0 ? (uint64_t)at : 0;
    return 0;
}

/* The run was refused: remove the files it created, leave the others. */
static void abandon_files(void)
{
    if (R.output_path && R.out_fd >= 0) {
        if (R.out_created)
            unlink(R.output_path);
        close(R.out_fd);
        R.out_fd = -1;
    }
    cli_joblog_abandon(&R.log);
}

/* A first pass over a rewindable source: every line is checked (and the
 * log matched) before any task runs, and the total is known. */
static int check_tasks(void)
{
    if (!cli_source_rewindable(&R.src))
        return 0;
    cli_task_text tt;
    int rc, err;
    uint64_t skipped = 0;
    while ((rc = cli_source_next(&R.src, &tt)) == 1) {
        if (skip(&tt, &err))
            skipped++;
        if (err)
            return -1;
    }
    if (rc < 0)
        return -1;
    R.total = R.src.seq;
    R.n_skipped = skipped;
    if (R.resume && R.log.n > R.total + 1) {
        for (uint64_t s = R.total + 1; s < R.log.n; s++)
            if (R.log.state[s]) {
                cli_error("job log %s is from another job: it has task %llu, the tasks end at %llu",
                          R.log.path, (unsigned long long)s, (unsigned long long)R.total);
                return -1;
            }
    }
    return cli_source_rewind(&R.src);
}

static void remove_dir(const char *path)
{
    /* Files left by tasks that crashed or were killed while writing. */
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(path) != 0 && errno != ENOENT)
        cli_error("could not remove %s: %s", path, strerror(errno));
}

static void remove_spool(void)
{
    if (!R.spool_dir[0])
        return;
    remove_dir(R.spool_dir);
    R.spool_dir[0] = '\0';
    if (R.spool_lock > 0)
        close(R.spool_lock);
    R.spool_lock = 0;
}

/* Spool directories are named crew-run.PID.XXXXXX, and their run holds a
 * lock on them (flock, inherited by its worker processes).  One whose lock
 * is free belongs to a run that is gone (killed with SIGKILL, say): remove
 * it.  A lock, not the PID, because /tmp may be shared across PID
 * namespaces. */
static void remove_stale_spools(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (strncmp(e->d_name, "crew-run.", 9) != 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
            remove_dir(path);
        }
        close(fd);
    }
    closedir(d);
}

static int start_root(long each_fn);
static int start_outbox(void);

/* Under MPI, every rank's verdict on a step becomes everyone's. */
static int agree(int rc)
{
    return R.mpi ? run_mpi->agree(rc) : rc;
}

/* The plugin: 0, or CLI_USAGE after saying why.  Under MPI a plugin that
 * the root cannot load either is the root's to report (one message, not
 * one per rank); a rank that alone cannot load it says so itself, naming
 * its host (the plugin is missing on that node). */
static int load_plugin(void)
{
    cli_quiet = R.rank != 0;
    int rc = cli_plugin_load(&R.plugin, R.plugin_path) != 0 ? CLI_USAGE : 0;
    cli_quiet = false;
    if (!R.mpi || agree(R.rank == 0 ? rc : 0) != 0 || rc == 0)
        return rc;
    /* the root has it: this rank tells why it has not */
    return cli_plugin_load(&R.plugin, R.plugin_path) != 0 ? CLI_USAGE : 0;
}

/* The plugin, the data, the tasks, the files: CLI_OK / an exit status to
 * stop with, or -1 to go on.  Under MPI every rank loads the plugin and
 * maps the data; only the root reads tasks and opens files. */
static int start(void)
{
    bool root = R.rank == 0;
    int rc = load_plugin();
    if ((rc = agree(rc)) != 0)
        return rc;
    wk.plugin = R.plugin.table;
    if (R.list) {
        if (root)
            cli_plugin_list(&R.plugin);
        return CLI_OK;
    }
    long each_fn = -1;
    if (R.each_name) {
        each_fn = cli_plugin_find(&R.plugin, R.each_name, strlen(R.each_name));
        rc = each_fn < 0 ? CLI_USAGE : 0;
        int root_rc = agree(root ? rc : 0);
        if (rc && (root || !root_rc))
            cli_error("--each %s: the plugin has no such function "
                      "(crew run --list --plugin %s)", R.each_name, R.plugin_path);
        if ((rc = agree(rc)) != 0)
            return rc;
    }
    if (R.mpi) {
        if ((rc = run_mpi->open_data()) != 0)
            return rc;
    } else {
        crew_arena *a;
        rc = crew_arena_open(&a, R.data_path, R.verify ? CREW_ARENA_VERIFY : 0);
        if (rc != 0) {
            cli_error("cannot use data %s: %s", R.data_path, crew_strerror(rc));
            return CLI_USAGE;
        }
        R.data = a;
    }
    wk.data = R.data;
    rc = root ? start_root(each_fn) : 0;
    if ((rc = agree(rc)) != 0)
        return rc;
    return start_outbox();
}

/* The root's part: the job's identity, the tasks, the log, the output.
 * 0 or an exit status. */
static int start_root(long each_fn)
{
    /* The job is its plugin and its data: the snapshot's checksum tells
     * two data sets of the same shape apart (header field at offset 48,
     * docs/SNAPSHOT.md; written by every save, so reading it costs 8
     * bytes, not a pass over the data). */
    uint64_t sum = 0;
    int dfd = open(R.data_path, O_RDONLY | O_CLOEXEC);
    if (dfd < 0 || pread(dfd, &sum, sizeof sum, 48) != (ssize_t)sizeof sum)
        sum = 0;
    if (dfd >= 0)
        close(dfd);
    static char identity[512]; /* the log keeps it until commit_files */
    snprintf(identity, sizeof identity, "# crew joblog 1\tplugin=%s\tdata=%zu:%llx:%016llx",
             R.plugin.table->name ? R.plugin.table->name : "?", crew_arena_size(R.data),
             (unsigned long long)crew_arena_root(R.data), (unsigned long long)sum);
    if (pipe2(R.wake, O_CLOEXEC) != 0) {
        cli_error("pipe: %s", strerror(errno));
        return CLI_USAGE;
    }
    if (cli_source_open(&R.src, &R.plugin, R.task_path, R.task_list, R.n_tasks_listed, each_fn,
                        R.wake[0]) != 0)
        return CLI_USAGE;
    if (cli_joblog_open(&R.log, R.joblog_path, R.resume, identity) != 0)
        return CLI_USAGE;
    if (check_tasks() != 0)
        return CLI_USAGE;
    if (open_output() != 0 || check_resume_output() != 0)
        return CLI_USAGE;
    return 0;
}

/* A new spool directory in tmp, named in R.spool_dir and locked: the lock's
 * descriptor, or -1 with errno set.  Until it is locked, another run's
 * remove_stale_spools may take the directory for a dead run's and remove
 * it (the ranks of an MPI job start at once and share TMPDIR): so once the
 * lock is held, the directory must still be the one at its name, or
 * another is made. */
static int make_spool(const char *tmp)
{
    for (int tries = 0; tries < 100; tries++) {
        snprintf(R.spool_dir, sizeof R.spool_dir, "%s/crew-run.%d.XXXXXX", tmp, (int)getpid());
        if (!mkdtemp(R.spool_dir))
            return -1;
        int lock = open(R.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lock < 0 && errno != ENOENT)
            return -1;
        if (lock < 0)
            continue; /* removed already */
        if (flock(lock, LOCK_EX) != 0) {
            int err = errno;
            close(lock);
            errno = err;
            return -1;
        }
        struct stat held, named;
        if (fstat(lock, &held) == 0 && stat(R.spool_dir, &named) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino)
            return lock;
        close(lock); /* removed while unlocked */
    }
    errno = EAGAIN;
    return -1;
}

/* The spool directory (process pools) and the result slots: -1 to go on,
 * or an exit status. */
static int start_outbox(void)
{
    wk.processes = R.isolation == CREW_PROCESSES;
    if (wk.processes) {
        const char *tmp = getenv("TMPDIR");
        tmp = tmp && *tmp ? tmp : "/tmp";
        remove_stale_spools(tmp);
        int lock = make_spool(tmp);
        if (lock < 0) {
            cli_error("cannot make a spool directory %s: %s", R.spool_dir, strerror(errno));
            remove_spool();
            return agree(CLI_USAGE);
        }
        R.spool_lock = lock;
        wk.spool = R.spool_dir;
    }
    /* The outbox: one result slot per task of the window. */
    size_t res_size = (sizeof(task_result) + 63) & ~(size_t)63;
    task_result *box = NULL;
    if (R.mpi && R.rank != 0)
        return agree(-1); /* only the root keeps a window of tasks */
    if (wk.processes && !R.mpi) {
        crew_ref ref;
        if (crew_arena_create(&R.outbox, R.window * res_size + ((size_t)1 << 20)) == 0 &&
            crew_arena_try_alloc(R.outbox, R.window * res_size, 64, &ref) == 0)
            box = crew_arena_ptr(R.outbox, ref);
    } else {
        box = R.outbox_mem = aligned_alloc(64, R.window * res_size);
    }
    R.slots = calloc(R.window, sizeof *R.slots);
    R.order = calloc(R.window, sizeof *R.order);
    R.free_slots = malloc(R.window * sizeof *R.free_slots);
    if (!box || !R.slots || !R.order || !R.free_slots) {
        cli_error("out of memory for a window of %zu tasks", R.window);
        return agree(CLI_USAGE);
    }
    for (size_t i = 0; i < R.window; i++)
        R.slots[i].res = (task_result *)((char *)box + i * res_size);
    for (size_t i = 0; i < R.window; i++)
        R.free_slots[R.n_free++] = R.window - 1 - i;
    return agree(-1); /* go on */
}

/* `--mpi` anywhere before a lone "--": the run is one rank of many. */
static bool wants_mpi(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--mpi"))
            return true;
    return false;
}

const run_mpi_ops *run_mpi;

/* crew has no MPI of its own: crew-mpi, beside it, runs `crew run --mpi`
 * (so that crew itself never loads an MPI library). */
static int exec_crew_mpi(char **argv)
{
    char self[4096], path[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(path, sizeof path, "%s/crew-mpi", self);
        /* argv is "run ..." here; crew-mpi takes the same command line */
        char **args = argv - 1;
        char *saved = args[0];
        args[0] = path;
        execv(path, args);
        args[0] = saved;
        if (errno != ENOENT) {
            cli_error("--mpi: cannot run %s: %s", path, strerror(errno));
            return CLI_USAGE;
        }
    }
    cli_error("--mpi: this crew was built without MPI (no crew-mpi beside it); "
              "install Open MPI (libopenmpi-dev) and build crew again");
    return CLI_USAGE;
}

/* The end of an MPI run, on every path out of cli_run. */
static int mpi_done(int rc)
{
    if (R.mpi)
        run_mpi->finish();
    return rc;
}

int cli_run(int argc, char **argv)
{
    /* (before the signal mask below, which exec would pass on) */
    if (wants_mpi(argc, argv) && !run_mpi)
        return exec_crew_mpi(argv);
    pthread_mutex_init(&R.io_lock, NULL);
    R.flushed_at = cli_coarse_now();
    R.log.fd = -1;
    /* Signals go to one thread; block them first, so that every thread
     * and worker process inherits the mask, and a signal that comes while
     * the run is being set up waits for that thread (SIGUSR1 would kill an
     * unprepared process).  A closed reader is seen as EPIPE (flush_io). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, WAKE_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (wants_mpi(argc, argv)) {
        int rc = run_mpi->init(&argc, &argv); /* sets R.mpi, R.rank, R.ranks */
        if (rc)
            return rc;
    }
    bool root = R.rank == 0;
    cli_quiet = !root; /* the root speaks for all about the command line */
    int rc = parse_options(argc, argv);
    cli_quiet = false;
    /* ... unless only this rank finds fault with it (-j FILE missing on
     * its node): it says why itself */
    int root_rc = agree(root ? rc : 0);
    if (R.mpi && !root && rc > 0 && root_rc <= 0)
        rc = parse_options(argc, argv);
    rc = agree(rc);
    if (rc < 0)
        return mpi_done(CLI_OK); /* --help */
    if (rc > 0)
        return mpi_done(rc);
    /* mpirun binds each rank of a small job to one core by default: more
     * workers than that would share it. */
    unsigned cpus = crew_usable_cpus();
    if (R.mpi && !R.list && R.jobs_now > cpus)
        cli_error("note: this rank may use %u CPU%s but runs %u workers (give mpirun "
                  "--bind-to none, or --map-by slot:PE=%u)", cpus, cpus == 1 ? "" : "s",
                  R.jobs_now, R.jobs_now);
    rc = start();
    if (rc >= 0) {
        if (root)
            abandon_files();
        remove_spool();
        return mpi_done(rc);
    }

    crew_config cfg = {.workers = R.jobs_now, .isolation = R.isolation,
                       .trace_path = R.trace_path};
    if (R.trace_path && !root) {
        snprintf(R.rank_trace, sizeof R.rank_trace, "%s.rank%d", R.trace_path, R.rank);
        cfg.trace_path = R.rank_trace;
    }
    if (wk.processes) {
        cfg.task_timeout = R.timeout;
        cfg.task_memory_limit = R.memory_limit;
        cfg.retries = R.retries;
        cfg.worker_exit = run_worker_exit;
    }
    rc = crew_open(&R.pool, &cfg);
    if (rc != 0)
        cli_error("cannot start %u workers: %s", R.jobs_now, crew_strerror(rc));
    int go = agree(rc != 0 ? CLI_USAGE : 0);
    if (go == 0 && root && commit_files() != 0)
        go = CLI_USAGE;
    if ((go = agree(go)) != 0) {
        if (rc == 0)
            crew_close(R.pool);
        if (root)
            abandon_files();
        remove_spool();
        return mpi_done(CLI_USAGE);
    }
    if (pthread_create(&R.signal_thread, NULL, signal_main, &set) == 0)
        R.signal_thread_running = true;
    bool bar = root && (R.progress == 1 || (R.progress < 0 && isatty(STDERR_FILENO)));
    if (bar) {
        R.bar = cli_progress_start("crew run", R.total, "tasks");
        cli_progress_add(R.bar, R.n_skipped, 0);
    }
    if (R.mpi) {
        rc = run_mpi->run();
    } else {
        crew_feed feed = {.next = run_feed_next, .done = feed_done,
                          .stop_on_error = R.stop_on_error};
        rc = crew_run_feed(R.pool, R.data, &feed);
    }
    pthread_mutex_lock(&R.io_lock);
    flush_io();
    pthread_mutex_unlock(&R.io_lock);
    if (R.bar)
        cli_progress_end(R.bar, !R.broken_pipe);
    /* The signal thread resizes the pool: it goes first. */
    atomic_store(&R.quit_signal_thread, true);
    if (R.signal_thread_running) {
        pthread_kill(R.signal_thread, WAKE_SIGNAL);
        pthread_join(R.signal_thread, NULL);
    }
    crew_close(R.pool);
    /* thread pools: the plugin's fini, once per worker thread that ran init */
    run_fini_threads();
    if (R.mpi) {
        /* A rank whose worker processes are gone says so; its tasks not
         * started went to the others, the running ones are "lost". */
        if (R.pool_lost)
            cli_error("this rank's worker processes are gone: the tasks it was running "
                      "failed (lost), the other ranks ran the rest");
        if (!root || R.fatal) {
            /* the root speaks for the run (a bad task line: said already) */
        } else if (rc == CREW_EINVAL) {
            cli_error("the ranks do not agree on the plugin's functions: is %s the same "
                      "plugin on every node?", R.plugin_path);
            R.fatal = CLI_USAGE;
        } else if (rc < 0 && rc != CREW_EFAILED && rc != CREW_ECANCELED && rc != CREW_ELOST) {
            cli_error("the MPI run failed: %s", crew_strerror(rc));
            R.fatal = CLI_USAGE;
        }
    } else if (rc == CREW_ELOST && !R.fatal) {
        cli_error("the worker processes are gone: %s", crew_strerror(rc));
        R.fatal = CLI_USAGE;
    }
    remove_spool();
    if (!root)
        return mpi_done(0); /* the root's status is the run's */
    int interrupted = atomic_load(&R.interrupts);
    /* Tasks a stop left out: the ones cancelled in a queue, and the ones
     * never read from the source (a thread pool reads no further). */
    bool stopped = R.stop_on_error && R.n_failed && (R.n_cancelled || !R.source_done);
    if (stopped && !interrupted && !R.fatal) {
        uint64_t written = R.n_skipped + R.n_ok + R.n_failed;
        if (R.total)
            cli_error("stopped after a task failed: %llu of %llu tasks not run",
                      (unsigned long long)(R.total - written), (unsigned long long)R.total);
        else
            cli_error("stopped after a task failed: the tasks after it were not run");
    }
    cli_source_close(&R.src);
    cli_joblog_close(&R.log);
    int out_rc = 0;
    if (R.output_path && R.out_fd >= 0 && close(R.out_fd) != 0) {
        cli_error("cannot write output %s: %s", R.output_path, strerror(errno));
        out_rc = CLI_USAGE;
    }
    if (!R.mpi)
        crew_arena_close((crew_arena *)R.data);
    crew_arena_close(R.outbox);
    free(R.outbox_mem);
    mpi_done(0);
    if (R.broken_pipe) {
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
    }
    if (out_rc)
        return out_rc;
    if (R.fatal)
        return R.fatal;
    if (interrupted)
        return CLI_INTERRUPTED;
    return R.n_failed || R.n_cancelled || R.n_skipped_failed ? CLI_FAILED : CLI_OK;
}
