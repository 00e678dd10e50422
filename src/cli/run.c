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
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
    bool out_created;  /* -o did not exist: a refused run removes it */
    off_t out_cut;     /* --resume: where commit_files cuts the output */
    uint64_t out_pos;
    cli_progress *bar;
    slot *slots;
    slot **order;      /* ring of the tasks given, in order */
    size_t *free_slots, n_free;
    uint64_t given, written;
    uint64_t n_ok, n_failed, n_cancelled, n_skipped, n_skipped_failed, total;
    bool source_done, stopped_emitting, broken_pipe;
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
    int spool_lock;    /* held while the spool directory is in use */
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
        if (!b) {
            h->res->spool_error = ENOMEM;
            return CREW_ENOMEM;
        }
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

/* A result that will not be written: free or remove its output. */
static void discard(slot *s)
{
    task_result *r = s->res;
    if (r->where == RES_HEAP)
        free(r->heap);
    if (r->where == RES_SPOOL) {
        char path[4200];
        spool_path(path, sizeof path, s->arg->seq);
        unlink(path);
    }
    r->heap = NULL;
    r->where = RES_INLINE;
    r->len = 0;
}

static void fatal(const char *what)
{
    if (!R.fatal)
        cli_error("%s", what);
    R.fatal = CLI_USAGE;
}

#define IO_BATCH ((size_t)64 << 10)
#define IO_DELAY 0.1 /* seconds a finished task's record may wait */

static double coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Write what records and log lines wait, in that order.  Under io_lock. */
static void flush_io(void)
{
    R.flushed_at = coarse_now();
    if (R.fatal)
        return;
    int e = write_all(R.out_fd, R.obuf.p, R.obuf.len);
    if (e == EPIPE) {
        /* the reader is gone (`crew run ... | head`): stop quietly, and
         * end by SIGPIPE as any filter would, once cleaned up */
        R.fatal = CLI_USAGE;
        R.broken_pipe = true;
        return;
    }
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

/* Append to the output buffer through these, which count the bytes (the
 * log records the offset after each record) and write a full buffer out,
 * also in the middle of a record: a task's output of any size passes
 * through 64 KiB at a time.  A record cut by a kill is cut off on resume,
 * since its log line comes after it. */
static bool out_done(size_t before, bool ok)
{
    R.out_pos += R.obuf.len - before;
    if (ok && R.obuf.len >= IO_BATCH)
        flush_io();
    return ok && !R.fatal;
}

static bool out_add(const char *p, size_t n)
{
    size_t before = R.obuf.len;
    return out_done(before, cli_buf_add(&R.obuf, p, n));
}

static bool out_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool out_printf(const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < sizeof tmp && out_add(tmp, (size_t)n);
}

static bool json_escape(cli_buf *b, const char *p, size_t n)
{
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
    return cli_buf_add(b, p + run, n - run);
}

/* Bytes of a string field (argument, function, output), escaped for the
 * format. */
static bool out_field(const char *p, size_t n)
{
    size_t before = R.obuf.len;
    bool ok = R.format == FMT_RAW    ? cli_buf_add(&R.obuf, p, n)
              : R.format == FMT_TSV  ? cli_buf_escape(&R.obuf, p, n)
                                     : json_escape(&R.obuf, p, n);
    return out_done(before, ok);
}

/* A task's output, piece by piece.  TSV drops one newline that ends the
 * output (the record's own newline replaces it): a piece's last newline
 * is held back until more follows. */
typedef struct out_stream {
    bool held_newline;
} out_stream;

static bool out_piece(out_stream *o, const char *p, size_t n)
{
    while (n) {
        size_t k = n < IO_BATCH ? n : IO_BATCH;
        if (o->held_newline && !out_field("\n", 1))
            return false;
        o->held_newline = R.format == FMT_TSV && k == n && p[k - 1] == '\n';
        if (!out_field(p, k - o->held_newline))
            return false;
        p += k;
        n -= k;
    }
    return true;
}

/* Stream the task's output, wherever it is.  false: the run must stop
 * (message given). */
static bool out_output(slot *s, int spool_fd)
{
    task_result *r = s->res;
    out_stream o = {false};
    if (r->where == RES_INLINE)
        return out_piece(&o, r->inline_buf, r->len);
    if (r->where == RES_HEAP) {
        bool ok = out_piece(&o, r->heap, r->len);
        free(r->heap);
        r->heap = NULL;
        return ok;
    }
    char buf[IO_BATCH];
    uint64_t left = r->len;
    while (left) {
        ssize_t k = read(spool_fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "task %llu: its spooled output could not be read back: %s",
                     (unsigned long long)s->arg->seq, k < 0 ? strerror(errno) : "file too short");
            fatal(msg);
            return false;
        }
        if (!out_piece(&o, buf, (size_t)k))
            return false;
        left -= (uint64_t)k;
    }
    return true;
}

/* Queue task s's record, then its log line. */
static void emit(slot *s)
{
    crew_task *t = &s->task;
    task_result *r = s->res;
    int spool_fd = -1;
    if (r->where == RES_SPOOL) {
        char path[4200];
        spool_path(path, sizeof path, s->arg->seq);
        spool_fd = open(path, O_RDONLY | O_CLOEXEC);
        unlink(path);
        if (spool_fd < 0) { /* gone: the task's output could not be kept */
            t->status = CREW_ENOMEM;
            r->where = RES_INLINE;
            r->len = 0;
        }
    }
    const char *fname = wk.plugin->functions[s->arg->fn].name;
    char sig[32];
    const char *sname = signal_name(t, sig, sizeof sig);
    int code = status_code(t);
    pthread_mutex_lock(&R.io_lock);
    bool ok = true;
    if (R.format == FMT_RAW) {
        ok = out_output(s, spool_fd);
    } else if (R.format == FMT_TSV) {
        ok = out_printf("%llu\t%s\t", (unsigned long long)s->arg->seq, fname) &&
             out_field(s->arg->text, s->arg->len) &&
             out_printf("\t%s\t%d\t", status_word(t->status), code) && out_output(s, spool_fd) &&
             out_add("\n", 1);
    } else {
        ok = out_printf("{\"seq\":%llu,\"function\":\"%s\",\"argument\":\"",
                        (unsigned long long)s->arg->seq, fname) &&
             out_field(s->arg->text, s->arg->len) &&
             out_printf("\",\"status\":\"%s\",\"code\":%d", status_word(t->status), code) &&
             (!*sname || out_printf(",\"signal\":\"%s\"", sname)) &&
             out_add(",\"output\":\"", 11) && out_output(s, spool_fd) && out_add("\"}\n", 3);
    }
    if (spool_fd >= 0)
        close(spool_fd);
    if (r->where == RES_HEAP) /* not written: the run stopped */
        free(r->heap);
    if (!ok) {
        pthread_mutex_unlock(&R.io_lock);
        if (!R.fatal)
            fatal("out of memory writing a record");
        return;
    }
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
    s->res->spool_error = 0;
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

static void feed_done(void *ctx, crew_task *task)
{
    (void)ctx;
    slot *s = (slot *)task;
    s->finished = true;
    if (wk.processes && s->task.status < 0 && s->task.status != CREW_EINVAL) {
        /* A crash left no result, only perhaps part of a spool file. */
        s->res->where = RES_SPOOL;
        discard(s);
    } else if (s->res->spool_error) {
        /* Its output could not be kept whole (no memory, a full disk):
         * the task fails with "memory" rather than show part of it. */
        s->task.status = CREW_ENOMEM;
        discard(s);
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
        R.out_fd = STDOUT_FILENO;
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
    wk.processes = R.isolation == CREW_PROCESSES;
    if (wk.processes) {
        const char *tmp = getenv("TMPDIR");
        tmp = tmp && *tmp ? tmp : "/tmp";
        remove_stale_spools(tmp);
        snprintf(R.spool_dir, sizeof R.spool_dir, "%s/crew-run.%d.XXXXXX", tmp, (int)getpid());
        int lock = -1;
        if (!mkdtemp(R.spool_dir) ||
            (lock = open(R.spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            flock(lock, LOCK_EX) != 0) {
            cli_error("cannot make a spool directory %s: %s", R.spool_dir, strerror(errno));
            if (lock >= 0)
                close(lock);
            remove_spool();
            return CLI_USAGE;
        }
        R.spool_lock = lock;
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
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = parse_options(argc, argv);
    if (rc < 0)
        return CLI_OK; /* --help */
    if (rc > 0)
        return rc;
    rc = start();
    if (rc >= 0) {
        abandon_files();
        remove_spool();
        return rc;
    }

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
        abandon_files();
        remove_spool();
        return CLI_USAGE;
    }
    if (commit_files() != 0) {
        crew_close(R.pool);
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
        cli_progress_end(R.bar, !R.broken_pipe);
    /* The signal thread resizes the pool: it goes first. */
    atomic_store(&R.quit_signal_thread, true);
    if (R.signal_thread_running)
        pthread_join(R.signal_thread, NULL);
    crew_close(R.pool);
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
    if (R.output_path && R.out_fd >= 0 && close(R.out_fd) != 0) {
        cli_error("cannot write output %s: %s", R.output_path, strerror(errno));
        return CLI_USAGE;
    }
    crew_arena_close(R.data);
    crew_arena_close(R.outbox);
    free(R.outbox_mem);
    if (R.broken_pipe) {
        signal(SIGPIPE, SIG_DFL);
        raise(SIGPIPE);
    }
    if (R.fatal)
        return R.fatal;
    if (interrupted)
        return CLI_INTERRUPTED;
    return R.n_failed || R.n_cancelled || R.n_skipped_failed ? CLI_FAILED : CLI_OK;
}
