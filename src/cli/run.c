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
 * A task's record is written whole with write(2), then its job log line:
 * whatever a kill interrupts, the log never claims a record the output
 * lacks, and resume cuts off a record the log does not claim.
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/joblog.h"
#include "cli/plugin.h"
#include "cli/tasks.h"
#include "common/out.h"
#include "crew.h"

enum { FMT_TSV, FMT_JSONL, FMT_RAW };

/* What travels to the worker: copied into shared memory by process pools. */
typedef struct task_arg {
    struct task_result *res; /* the task's slot in the outbox */
    uint64_t seq;
    uint32_t fn;
    uint32_t len;
    char text[]; /* the argument, NUL-terminated */
} task_arg;

/* What comes back, in the task's slot of the outbox: memory every worker
 * writes in place (for process pools an arena left unfrozen, which crew
 * maps writable in workers), so no result is copied.  Output up to
 * CREW_OUT_INLINE bytes stays in the slot; beyond, a thread pool's task
 * grows a heap buffer, a process pool's task writes a spool file (its
 * memory is not ours). */
enum { RES_INLINE, RES_HEAP, RES_SPOOL };
typedef struct task_result {
    uint64_t len;
    double t0, t1; /* wall clock around the call */
    char *heap;
    int where;
    int spool_error; /* a spool file could not be written: errno */
    char inline_buf[CREW_OUT_INLINE];
} task_result;

/* A task between reading and writing. */
typedef struct slot {
    crew_task task;
    task_arg *arg;
    size_t arg_cap;
    task_result *res;
    uint64_t line_no;
    double given_at;
    bool finished;
} slot;

/* Everything a worker needs, set before crew_open (process workers are
 * forked then, and see this copy). */
static struct {
    const crew_plugin *plugin;
    const crew_arena *data;
    const char *spool;
    bool processes;
} wk;

static struct {
    /* options */
    const char *plugin_path, *data_path, *output_path, *joblog_path, *trace_path;
    const char *jobs_arg, *each_name, *task_path;
    char **task_list;
    size_t n_tasks_listed;
    int isolation; /* -1: not given */
    double timeout;
    size_t memory_limit;
    unsigned retries;
    bool retries_set, stop_on_error, unordered, resume, resume_failed, verify, list;
    int progress; /* -1: when stderr is a terminal */
    int format;
    size_t window;

    /* the run */
    cli_plugin plugin;
    crew_arena *data;
    crew_arena *outbox;   /* process pools: the result slots */
    void *outbox_mem;     /* thread pools: the same in plain memory */
    crew *pool;
    cli_source src;
    cli_joblog log;
    int out_fd;
    uint64_t out_pos;
    cli_progress *bar;
    slot *slots;
    slot **order;      /* ring of the tasks given, in order */
    size_t *free_slots, n_free;
    uint64_t given, written;
    uint64_t n_ok, n_failed, n_cancelled, n_skipped, n_skipped_failed, total;
    bool source_done, stopped_emitting;
    int fatal;         /* CLI_USAGE after a bad line or a write error */
    /* Records and log lines wait here for one write each: the output
     * first, then the log, so the log never gets ahead of the output. */
    pthread_mutex_t io_lock;
    cli_buf obuf, lbuf;
    double flushed_at;
    atomic_int interrupts;
    int wake[2];
    bool signal_thread_running;
    pthread_t signal_thread;
    atomic_bool quit_signal_thread;
    unsigned jobs_now;
    char spool_dir[4096];
} R;

/* ---- in the worker ------------------------------------------------------ */

/* The plugin's per-worker state: thread-local, so one per thread in a
 * thread pool and one per process in a process pool (whose tasks run on
 * the process's one thread).  Thread pools' states are listed so the main
 * thread can fini them; a worker process finis its own as it ends. */
typedef struct worker_state {
    bool ready;
    int init_rc;
    void *state;
    struct worker_state *next;
} worker_state;

static _Thread_local worker_state tls_state;
static worker_state *thread_states; /* thread pools: every heap copy */
static pthread_mutex_t states_lock = PTHREAD_MUTEX_INITIALIZER;

static worker_state *worker_init(void)
{
    worker_state *ws = &tls_state;
    if (ws->ready)
        return ws;
    ws->ready = true;
    if (wk.plugin->init) {
        int rc = wk.plugin->init(wk.data, &ws->state);
        ws->init_rc = rc < 0 ? -rc : rc;
        if (rc == 0 && wk.plugin->fini && !wk.processes) {
            worker_state *copy = malloc(sizeof *copy);
            if (copy) {
                *copy = *ws;
                pthread_mutex_lock(&states_lock);
                copy->next = thread_states;
                thread_states = copy;
                pthread_mutex_unlock(&states_lock);
            }
        }
    }
    return ws;
}

static void worker_exit(void *ctx)
{
    (void)ctx;
    if (tls_state.ready && tls_state.init_rc == 0 && wk.plugin->fini)
        wk.plugin->fini(tls_state.state);
}

static int spool_path(char *buf, size_t size, uint64_t seq)
{
    return snprintf(buf, size, "%s/%llu.out", wk.spool, (unsigned long long)seq);
}

typedef struct host {
    task_result *res;
    uint64_t seq;
    int spool_fd;
    uint64_t spooled;
} host;

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Bytes that do not fit in the output's buffer. */
static int overflow(crew_out *out, const void *p, size_t n)
{
    host *h = out->host;
    if (!wk.processes) {
        size_t cap = out->cap * 2;
        while (cap - out->len < n)
            cap *= 2;
        char *b = out->buf == h->res->inline_buf ? malloc(cap) : realloc(out->buf, cap);
        if (!b)
            return CREW_ENOMEM;
        if (out->buf == h->res->inline_buf)
            memcpy(b, out->buf, out->len);
        out->buf = b;
        out->cap = cap;
        memcpy(b + out->len, p, n);
        out->len += n;
        return 0;
    }
    /* A process pool: flush the buffer and these bytes to the spool file,
     * then use the buffer again. */
    if (h->spool_fd < 0) {
        char path[4200];
        spool_path(path, sizeof path, h->seq);
        h->spool_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (h->spool_fd < 0) {
            h->res->spool_error = errno;
            return CREW_ENOMEM;
        }
    }
    int e = write_all(h->spool_fd, out->buf, out->len);
    if (!e)
        e = write_all(h->spool_fd, p, n);
    if (e) {
        h->res->spool_error = e;
        return CREW_ENOMEM;
    }
    h->spooled += out->len + n;
    out->len = 0;
    return 0;
}

static int run_task(const void *shared, const void *arg, void *result)
{
    (void)shared;
    const task_arg *a = arg;
    (void)result;
    task_result *r = a->res;
    host h = {.res = r, .seq = a->seq, .spool_fd = -1};
    crew_out out = {.buf = r->inline_buf, .cap = sizeof r->inline_buf, .overflow = overflow,
                    .host = &h};
    r->t0 = cli_wall();
    r->where = RES_INLINE;
    r->heap = NULL;
    r->spool_error = 0;
    worker_state *ws = worker_init();
    int rc;
    if (ws->init_rc) {
        crew_out_printf(&out, "plugin init failed with code %d\n", ws->init_rc);
        rc = ws->init_rc;
    } else {
        out.state = ws->state;
        rc = wk.plugin->functions[a->fn].fn(wk.data, a->text, &out);
    }
    if (h.spool_fd >= 0) {
        int e = write_all(h.spool_fd, out.buf, out.len);
        if (e && !r->spool_error)
            r->spool_error = e;
        close(h.spool_fd);
        r->where = RES_SPOOL;
        r->len = h.spooled + out.len;
    } else {
        r->len = out.len;
        if (out.buf != r->inline_buf) {
            r->where = RES_HEAP;
            r->heap = out.buf;
        }
    }
    r->t1 = cli_wall();
    return rc;
}

/* ---- records ------------------------------------------------------------- */

static const char *status_word(int status)
{
    if (status == 0)
        return "ok";
    if (status > 0)
        return "error";
    switch (status) {
    case CREW_ECRASHED: return "crashed";
    case CREW_EEXITED: return "exited";
    case CREW_ETIMEDOUT: return "timeout";
    case CREW_ENOMEM: return "memory";
    case CREW_EREADONLY: return "readonly";
    case CREW_ECANCELED: return "cancelled";
    case CREW_ELOST: return "lost";
    default: return "invalid";
    }
}

static int status_code(const crew_task *t)
{
    if (t->status >= 0)
        return t->status;
    if (t->status == CREW_ECRASHED || t->status == CREW_EEXITED)
        return t->detail;
    return t->status;
}

static const char *signal_name(const crew_task *t, char *buf, size_t size)
{
    if (t->status != CREW_ECRASHED)
        return "";
    const char *abbrev = sigabbrev_np(t->detail);
    if (abbrev)
        snprintf(buf, size, "SIG%s", abbrev);
    else
        snprintf(buf, size, "SIG%d", t->detail);
    return buf;
}

static bool json_string(cli_buf *b, const char *p, size_t n)
{
    if (!cli_buf_add(b, "\"", 1))
        return false;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char esc[8];
        const char *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\t')
            e = "\\t";
        else if (c == '\r')
            e = "\\r";
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            e = esc;
        }
        if (!e)
            continue;
        if (!cli_buf_add(b, p + run, i - run) || !cli_buf_add(b, e, strlen(e)))
            return false;
        run = i + 1;
    }
    return cli_buf_add(b, p + run, n - run) && cli_buf_add(b, "\"", 1);
}

/* The task's output, wherever it is: *p points at it, *owned is set when
 * the caller must free it.  false: it could not be read (message given). */
static bool task_output(slot *s, const char **p, size_t *n, char **owned)
{
    task_result *r = s->res;
    *owned = NULL;
    *p = "";
    *n = 0;
    /* a process pool copies results back only when the task returned */
    if (s->task.status < 0 && s->task.status != CREW_EINVAL)
        return true;
    if (r->where == RES_INLINE) {
        *p = r->inline_buf;
        *n = r->len;
    } else if (r->where == RES_HEAP) {
        *p = *owned = r->heap;
        r->heap = NULL;
        *n = r->len;
    } else {
        char path[4200];
        spool_path(path, sizeof path, s->arg->seq);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        char *buf = malloc(r->len ? r->len : 1);
        size_t got = 0;
        while (fd >= 0 && buf && got < r->len) {
            ssize_t k = read(fd, buf + got, r->len - got);
            if (k <= 0)
                break;
            got += (size_t)k;
        }
        if (fd >= 0)
            close(fd);
        unlink(path);
        if (!buf || got != r->len) {
            free(buf);
            cli_error("task %llu: its output (%llu bytes in %s) could not be read back",
                      (unsigned long long)s->arg->seq, (unsigned long long)r->len, path);
            return false;
        }
        *p = *owned = buf;
        *n = r->len;
    }
    return true;
}

static void fatal(const char *what)
{
    if (!R.fatal)
        cli_error("%s", what);
    R.fatal = CLI_USAGE;
}

#define IO_BATCH ((size_t)64 << 10)
#define IO_DELAY 0.1 /* seconds a finished task's record may wait */

/* Write what records and log lines wait, in that order.  Under io_lock. */
static double coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void flush_io(void)
{
    R.flushed_at = coarse_now();
    if (R.fatal)
        return;
    int e = write_all(R.out_fd, R.obuf.p, R.obuf.len);
    if (e) {
        char msg[4300];
        snprintf(msg, sizeof msg, "cannot write output %s: %s",
                 R.output_path ? R.output_path : "(stdout)", strerror(e));
        fatal(msg);
        return;
    }
    R.obuf.len = 0;
    if (R.log.fd >= 0 && (e = write_all(R.log.fd, R.lbuf.p, R.lbuf.len))) {
        char msg[4300];
        snprintf(msg, sizeof msg, "cannot write job log %s: %s", R.log.path, strerror(e));
        fatal(msg);
        return;
    }
    R.lbuf.len = 0;
}

/* Queue task s's record, then its log line. */
static void emit(slot *s)
{
    crew_task *t = &s->task;
    const char *out;
    size_t out_len;
    char *owned;
    if (!task_output(s, &out, &out_len, &owned)) {
        R.fatal = CLI_USAGE;
        return;
    }
    const char *fname = wk.plugin->functions[s->arg->fn].name;
    char sig[32];
    const char *sname = signal_name(t, sig, sizeof sig);
    int code = status_code(t);
    pthread_mutex_lock(&R.io_lock);
    cli_buf *b = &R.obuf;
    size_t before = b->len;
    bool ok = true;
    if (R.format == FMT_RAW) {
        ok = cli_buf_add(b, out, out_len);
    } else if (R.format == FMT_TSV) {
        /* the record's own newline replaces one the output ends with */
        size_t shown = out_len && out[out_len - 1] == '\n' ? out_len - 1 : out_len;
        ok = cli_buf_printf(b, "%llu\t%s\t", (unsigned long long)s->arg->seq, fname) &&
             cli_buf_escape(b, s->arg->text, s->arg->len) &&
             cli_buf_printf(b, "\t%s\t%d\t", status_word(t->status), code) &&
             cli_buf_escape(b, out, shown) && cli_buf_add(b, "\n", 1);
    } else {
        ok = cli_buf_printf(b, "{\"seq\":%llu,\"function\":", (unsigned long long)s->arg->seq) &&
             json_string(b, fname, strlen(fname)) && cli_buf_add(b, ",\"argument\":", 12) &&
             json_string(b, s->arg->text, s->arg->len) &&
             cli_buf_printf(b, ",\"status\":\"%s\",\"code\":%d", status_word(t->status), code) &&
             (!*sname || cli_buf_printf(b, ",\"signal\":\"%s\"", sname)) &&
             cli_buf_add(b, ",\"output\":", 10) && json_string(b, out, out_len) &&
             cli_buf_add(b, "}\n", 2);
    }
    free(owned);
    if (!ok) {
        pthread_mutex_unlock(&R.io_lock);
        fatal("out of memory writing a record");
        return;
    }
    R.out_pos += b->len - before;
    task_result *r = s->res;
    double start = t->status < 0 && t->status != CREW_EINVAL ? s->given_at : r->t0;
    double end = t->status < 0 && t->status != CREW_EINVAL ? cli_wall() : r->t1;
    cli_log_entry le = {.seq = s->arg->seq, .status = status_word(t->status), .code = code,
                        .signal = sname, .start = start, .duration = end - start,
                        .retries = t->runs > 1 ? t->runs - 1 : 0, .out_end = R.out_pos,
                        .function = fname, .arg = s->arg->text, .arg_len = s->arg->len};
    if (R.log.fd >= 0 && !cli_joblog_format(&le, &R.lbuf)) {
        pthread_mutex_unlock(&R.io_lock);
        fatal("out of memory writing the job log");
        return;
    }
    if (R.obuf.len >= IO_BATCH || R.lbuf.len >= IO_BATCH || coarse_now() - R.flushed_at >= IO_DELAY)
        flush_io();
    pthread_mutex_unlock(&R.io_lock);
}

/* ---- the feed ------------------------------------------------------------- */

/* Enough to date a task that left no times of its own (it crashed), at a
 * fraction of a precise clock's cost on some virtual machines. */
static double coarse_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
    s->task = (crew_task){.fn = run_task, .arg = s->arg, .arg_size = need};
    s->line_no = tt->line_no;
    s->given_at = coarse_wall();
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

static int feed_next(void *ctx, crew_task **task)
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
        if (s->res->where == RES_HEAP)
            free(s->res->heap);
        if (s->res->where == RES_SPOOL) {
            char path[4200];
            spool_path(path, sizeof path, s->arg->seq);
            unlink(path);
        }
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

static void feed_done(void *ctx, crew_task *task)
{
    (void)ctx;
    slot *s = (slot *)task;
    s->finished = true;
    if (wk.processes && s->task.status < 0 && s->task.status != CREW_EINVAL) {
        /* a crash left no result: drop what it may have spooled */
        char path[4200];
        spool_path(path, sizeof path, s->arg->seq);
        unlink(path);
        s->res->where = RES_INLINE;
        s->res->len = 0;
    }
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
            if (o->res->where == RES_HEAP)
                free(o->res->heap);
            if (o->res->where == RES_SPOOL) {
                char path[4200];
                spool_path(path, sizeof path, o->arg->seq);
                unlink(path);
            }
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
        if (!j)
            snprintf(err, err_size, "-j file %s holds '%s', not a number of workers", s, line);
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
    bool jobs_file = R.jobs_arg && parse_jobs(R.jobs_arg, (char[8]){0}, 8, false) == 0;
    while (!atomic_load(&R.quit_signal_thread)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000};
        int sig = sigtimedwait(set, NULL, &ts);
        /* records of tasks that finished while nothing else did */
        pthread_mutex_lock(&R.io_lock);
        if ((R.obuf.len || R.lbuf.len) && coarse_now() - R.flushed_at >= IO_DELAY)
            flush_io();
        pthread_mutex_unlock(&R.io_lock);
        if (sig == SIGINT || sig == SIGTERM) {
            if (atomic_fetch_add(&R.interrupts, 1) == 0) {
                cli_error("interrupted: no new tasks; waiting for the running ones "
                          "(again to kill them)");
                (void)!write(R.wake[1], "x", 1);
            } else {
                /* Everything written so far is whole in the output and
                 * the log (each record and line is one write); the
                 * workers die with this process. */
                if (pthread_mutex_trylock(&R.io_lock) == 0)
                    flush_io(); /* a writer holding it may be mid-record */
                cli_error("killed the running tasks");
                _exit(CLI_INTERRUPTED);
            }
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
    O_JOBLOG, O_RESUME, O_RESUME_FAILED, O_PROGRESS, O_NO_PROGRESS, O_TRACE, O_VERIFY
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
        {0, 0, 0, 0},
    };
    R.isolation = -1;
    R.progress = -1;
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
        case 'o': R.output_path = optarg; break;
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
    return 0;
}

/* ---- the run ------------------------------------------------------------- */

static int open_output(void)
{
    if (!R.output_path) {
        R.out_fd = STDOUT_FILENO;
        struct stat st;
        /* records are counted from where stdout stands, so resume can cut
         * a regular file back to the log's last record */
        if (fstat(R.out_fd, &st) == 0 && S_ISREG(st.st_mode)) {
            off_t at = lseek(R.out_fd, 0, SEEK_END);
            R.out_pos = at > 0 ? (uint64_t)at : 0;
        }
        return 0;
    }
    R.out_fd = open(R.output_path, O_WRONLY | O_CREAT | O_CLOEXEC | (R.resume ? 0 : O_TRUNC),
                    0666);
    if (R.out_fd < 0) {
        cli_error("cannot write output %s: %s", R.output_path, strerror(errno));
        return -1;
    }
    off_t at = lseek(R.out_fd, 0, SEEK_END);
    R.out_pos = at > 0 ? (uint64_t)at : 0;
    return 0;
}

/* Cut the output back to the end of the last record the log has. */
static int resume_output(void)
{
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
    if (ftruncate(R.out_fd, (off_t)end) != 0 || lseek(R.out_fd, (off_t)end, SEEK_SET) < 0) {
        cli_error("cannot cut output back for --resume: %s", strerror(errno));
        return -1;
    }
    R.out_pos = end;
    return 0;
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

static void remove_spool(void)
{
    if (!R.spool_dir[0])
        return;
    /* Files left by tasks that crashed or were killed while writing. */
    DIR *d = opendir(R.spool_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(R.spool_dir) != 0)
        cli_error("could not remove %s: %s", R.spool_dir, strerror(errno));
    R.spool_dir[0] = '\0';
}

static int start(void)
{
    if (cli_plugin_load(&R.plugin, R.plugin_path) != 0)
        return CLI_USAGE;
    wk.plugin = R.plugin.table;
    if (R.list) {
        cli_plugin_list(&R.plugin);
        return CLI_OK;
    }
    long each_fn = -1;
    if (R.each_name) {
        each_fn = cli_plugin_find(&R.plugin, R.each_name, strlen(R.each_name));
        if (each_fn < 0) {
            cli_error("--each %s: the plugin has no such function (crew run --list --plugin %s)",
                      R.each_name, R.plugin_path);
            return CLI_USAGE;
        }
    }
    int rc = crew_arena_open(&R.data, R.data_path, R.verify ? CREW_ARENA_VERIFY : 0);
    if (rc != 0) {
        cli_error("cannot use data %s: %s", R.data_path, crew_strerror(rc));
        return CLI_USAGE;
    }
    wk.data = R.data;
    char identity[512];
    snprintf(identity, sizeof identity, "# crew joblog 1\tplugin=%s\tdata=%zu:%llx",
             R.plugin.table->name ? R.plugin.table->name : "?", crew_arena_size(R.data),
             (unsigned long long)crew_arena_root(R.data));
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
    if (open_output() != 0 || resume_output() != 0)
        return CLI_USAGE;
    char err[600];
    unsigned jobs = parse_jobs(R.jobs_arg ? R.jobs_arg : "0", err, sizeof err, true);
    if (!jobs) {
        cli_error("%s", err);
        return CLI_USAGE;
    }
    R.jobs_now = jobs;
    wk.processes = R.isolation == CREW_PROCESSES;
    if (wk.processes) {
        const char *tmp = getenv("TMPDIR");
        snprintf(R.spool_dir, sizeof R.spool_dir, "%s/crew-run.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(R.spool_dir)) {
            cli_error("cannot make a spool directory %s: %s", R.spool_dir, strerror(errno));
            R.spool_dir[0] = '\0';
            return CLI_USAGE;
        }
        wk.spool = R.spool_dir;
    }
    /* The outbox: one result slot per task of the window. */
    size_t res_size = (sizeof(task_result) + 63) & ~(size_t)63;
    task_result *box = NULL;
    if (wk.processes) {
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
        return CLI_USAGE;
    }
    for (size_t i = 0; i < R.window; i++)
        R.slots[i].res = (task_result *)((char *)box + i * res_size);
    for (size_t i = 0; i < R.window; i++)
        R.free_slots[R.n_free++] = R.window - 1 - i;
    return -1; /* go on */
}

int cli_run(int argc, char **argv)
{
    pthread_mutex_init(&R.io_lock, NULL);
    R.flushed_at = coarse_now();
    int rc = parse_options(argc, argv);
    if (rc < 0)
        return CLI_OK; /* --help */
    if (rc > 0)
        return rc;
    rc = start();
    if (rc >= 0) {
        remove_spool();
        return rc;
    }

    /* Signals go to one thread; block them before any thread or worker
     * process exists, so that all inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, WAKE_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    crew_config cfg = {.workers = R.jobs_now, .isolation = R.isolation,
                       .trace_path = R.trace_path};
    if (wk.processes) {
        cfg.task_timeout = R.timeout;
        cfg.task_memory_limit = R.memory_limit;
        cfg.retries = R.retries;
        cfg.worker_exit = worker_exit;
    }
    rc = crew_open(&R.pool, &cfg);
    if (rc != 0) {
        cli_error("cannot start %u workers: %s", R.jobs_now, crew_strerror(rc));
        remove_spool();
        return CLI_USAGE;
    }
    if (pthread_create(&R.signal_thread, NULL, signal_main, &set) == 0)
        R.signal_thread_running = true;
    bool bar = R.progress == 1 || (R.progress < 0 && isatty(STDERR_FILENO));
    if (bar) {
        R.bar = cli_progress_start("crew run", R.total, "tasks");
        cli_progress_add(R.bar, R.n_skipped, 0);
    }
    crew_feed feed = {.next = feed_next, .done = feed_done, .stop_on_error = R.stop_on_error};
    rc = crew_run_feed(R.pool, R.data, &feed);
    pthread_mutex_lock(&R.io_lock);
    flush_io();
    pthread_mutex_unlock(&R.io_lock);
    if (R.bar)
        cli_progress_end(R.bar, true);
    crew_close(R.pool);
    atomic_store(&R.quit_signal_thread, true);
    if (R.signal_thread_running) {
        pthread_kill(R.signal_thread, WAKE_SIGNAL);
        pthread_join(R.signal_thread, NULL);
    }
    /* thread pools: the plugin's fini, once per worker thread that ran init */
    for (worker_state *w = thread_states, *next; w; w = next) {
        next = w->next;
        wk.plugin->fini(w->state);
        free(w);
    }
    if (rc == CREW_ELOST && !R.fatal) {
        cli_error("the worker processes are gone: %s", crew_strerror(rc));
        R.fatal = CLI_USAGE;
    }
    remove_spool();
    int interrupted = atomic_load(&R.interrupts);
    if (R.n_cancelled && !interrupted && !R.fatal && R.stop_on_error)
        cli_error("stopped after a task failed: %llu tasks not run",
                  (unsigned long long)R.n_cancelled);
    cli_source_close(&R.src);
    cli_joblog_close(&R.log);
    if (R.output_path && R.out_fd >= 0 && close(R.out_fd) != 0) {
        cli_error("cannot write output %s: %s", R.output_path, strerror(errno));
        return CLI_USAGE;
    }
    crew_arena_close(R.data);
    crew_arena_close(R.outbox);
    free(R.outbox_mem);
    if (R.fatal)
        return R.fatal;
    if (interrupted)
        return CLI_INTERRUPTED;
    return R.n_failed || R.n_cancelled || R.n_skipped_failed ? CLI_FAILED : CLI_OK;
}
