/*
 * run_output.c -- crew run's records and job log lines.
 *
 * Both wait in a buffer and are written when 64 KiB wait or IO_DELAY has
 * passed: always the output first, then the log, so whatever a kill
 * interrupts, the log never claims a record the output lacks (and resume
 * cuts off a record the log does not claim).  A task's output of any size
 * passes through 64 KiB at a time, escaped for the format on the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/run.h"

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
void discard_result(task_result *r, uint64_t seq)
{
    if (r->where == RES_HEAP)
        free(r->heap);
    if (r->where == RES_SPOOL) {
        char path[4200];
        spool_path(path, sizeof path, seq);
        unlink(path);
    }
    r->heap = NULL;
    r->where = RES_INLINE;
    r->len = 0;
}

void discard(slot *s)
{
    discard_result(s->res, s->arg->seq);
}

void fatal(const char *what)
{
    if (!R.fatal)
        cli_error("%s", what);
    R.fatal = CLI_USAGE;
}

/* Write what records and log lines wait, in that order.  Under io_lock. */
void flush_io(void)
{
    R.flushed_at = cli_coarse_now();
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
void emit(slot *s)
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
    if (R.obuf.len >= IO_BATCH || R.lbuf.len >= IO_BATCH ||
        cli_coarse_now() - R.flushed_at >= IO_DELAY)
        flush_io();
    pthread_mutex_unlock(&R.io_lock);
}
