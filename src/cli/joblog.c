/*
 * joblog.c -- the job log and --resume.
 *
 * The log is tab-separated text: an identity line, a header line, then one
 * line per finished task, each written with a single write(2) right after
 * the task's output record, so after a kill the log never claims a record
 * the output lacks (a line cut short by the kill is ignored and cut off on
 * resume).  Each line keeps the output offset after its record: resume cuts
 * the output back to the last one, removing a record written whose line
 * was not.
 *
 * Resuming needs, per task number, only whether the log has it, whether it
 * failed, and a 32-bit hash of its function and argument (to refuse a log
 * from another job): 5 bytes per task, whatever the arguments' length.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/joblog.h"

#define SEQ_SLACK ((uint64_t)1 << 24)

static const char header[] =
    "seq\tstatus\tcode\tsignal\tstart\tduration\tretries\toutput_end\tfunction\targument\n";

bool cli_buf_add(cli_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool cli_buf_escape(cli_buf *b, const char *p, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = p[i] == '\t' ? "\\t" : p[i] == '\n' ? "\\n" : p[i] == '\r' ? "\\r"
                        : p[i] == '\\' ? "\\\\" : NULL;
        if (!e)
            continue;
        if (!cli_buf_add(b, p + run, i - run) || !cli_buf_add(b, e, 2))
            return false;
        run = i + 1;
    }
    return cli_buf_add(b, p + run, n - run);
}

uint32_t cli_joblog_hash(const char *fn, const char *arg, size_t arg_len)
{
    /* FNV-1a: the hash only tells two jobs' tasks apart, it guards nothing. */
    uint32_t h = 2166136261u;
    for (const char *p = fn; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ '\t') * 16777619u;
    for (size_t i = 0; i < arg_len; i++)
        h = (h ^ (unsigned char)arg[i]) * 16777619u;
    return h;
}

static bool grow(cli_joblog *l, uint64_t seq)
{
    if (seq < l->n)
        return true;
    uint64_t n = l->n ? l->n : 1024;
    while (n <= seq)
        n *= 2;
    uint8_t *s = realloc(l->state, n);
    uint32_t *h = realloc(l->hash, n * sizeof *h);
    if (s)
        l->state = s;
    if (h)
        l->hash = h;
    if (!s || !h)
        return false;
    memset(s + l->n, 0, n - l->n);
    l->n = n;
    return true;
}

/* Undo the escapes of a log field in place; returns its new length. */
static size_t unescape(char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char c = p[++i];
            p[o++] = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
        } else {
            p[o++] = p[i];
        }
    }
    return o;
}

/* Read an existing log.  Returns the length of its complete lines (what to
 * keep), or -1 after a message. */
static long long read_log(cli_joblog *l, int fd, const char *identity)
{
    FILE *f = fdopen(dup(fd), "r");
    if (!f) {
        cli_error("cannot read job log %s: %s", l->path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long long keep = 0;
    uint64_t line_no = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        line_no++;
        if (line[len - 1] != '\n')
            break; /* cut short by a kill: not a record */
        line[--len] = '\0';
        if (line_no == 1) {
            if (strcmp(line, identity) != 0) {
                cli_error("job log %s is from another job: it says \"%s\", this job is \"%s\"",
                          l->path, line, identity);
                rc = -1;
                break;
            }
        } else if (line_no == 2) {
            if (strncmp(line, header, sizeof header - 2) != 0) {
                cli_error("%s:2: not a crew job log header", l->path);
                rc = -1;
                break;
            }
        } else {
            char *field[10];
            size_t nf = 0;
            char *p = line;
            field[nf++] = p;
            while (nf < 10 && (p = strchr(p, '\t'))) {
                *p++ = '\0';
                field[nf++] = p;
            }
            char *end;
            errno = 0;
            unsigned long long seq = strtoull(field[0], &end, 10);
            unsigned long long out_end = nf == 10 ? strtoull(field[7], NULL, 10) : 0;
            if (nf != 10 || *end || errno || seq == 0) {
                cli_error("%s:%llu: not a crew job log line", l->path,
                          (unsigned long long)line_no);
                rc = -1;
                break;
            }
            /* Tasks are logged about in order: ahead of the lines before
             * by at most a window (2^20) of tasks per run that was cut
             * short.  A number far beyond is not this job's, and must not
             * make us allocate for it. */
            if (seq > l->lines + SEQ_SLACK) {
                cli_error("%s:%llu: task number %llu after only %llu lines: not a log of this job",
                          l->path, (unsigned long long)line_no, seq,
                          (unsigned long long)l->lines);
                rc = -1;
                break;
            }
            if (!grow(l, seq)) {
                cli_error("out of memory reading %s", l->path);
                rc = -1;
                break;
            }
            size_t alen = unescape(field[9], strlen(field[9]));
            l->state[seq] = strcmp(field[1], "ok") == 0 ? LOG_OK : LOG_FAILED;
            l->hash[seq] = cli_joblog_hash(field[8], field[9], alen);
            l->lines++;
            l->out_end = out_end;
            l->have_out_end = true;
        }
        keep += len + 1;
    }
    free(line);
    fclose(f);
    return rc < 0 ? -1 : keep;
}

int cli_joblog_open(cli_joblog *l, const char *path, bool resume, const char *identity)
{
    memset(l, 0, sizeof *l);
    l->path = path;
    l->fd = -1;
    l->identity = identity;
    if (!path)
        return 0;
    int fd = cli_open_keep(path, O_RDWR, &l->created);
    if (fd < 0) {
        cli_error("cannot write job log %s: %s", path, strerror(errno));
        return -1;
    }
    l->fd = fd;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && resume) {
        cli_error("job log %s is not a regular file", path);
        cli_joblog_abandon(l);
        return -1;
    }
    if (resume && st.st_size > 0) {
        l->keep = read_log(l, fd, identity);
        if (l->keep < 0) {
            cli_joblog_abandon(l);
            return -1;
        }
        if (l->keep < 2 && l->lines == 0)
            l->keep = 0;
    }
    return 0;
}

int cli_joblog_begin(cli_joblog *l)
{
    if (l->fd < 0)
        return 0;
    struct stat st;
    if (fstat(l->fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(l->fd, l->keep) != 0) {
        cli_error("cannot write job log %s: %s", l->path, strerror(errno));
        return -1;
    }
    lseek(l->fd, 0, SEEK_END);
    if (l->keep == 0) {
        cli_buf b = {0};
        bool ok = cli_buf_add(&b, l->identity, strlen(l->identity)) &&
                  cli_buf_add(&b, "\n", 1) && cli_buf_add(&b, header, sizeof header - 1);
        ssize_t w = ok ? write(l->fd, b.p, b.len) : -1;
        free(b.p);
        if (w != (ssize_t)(ok ? b.len : 1)) {
            cli_error("cannot write job log %s: %s", l->path,
                      w < 0 ? strerror(errno) : "short write");
            return -1;
        }
    }
    return 0;
}

void cli_joblog_abandon(cli_joblog *l)
{
    if (l->fd >= 0 && l->created)
        unlink(l->path);
    cli_joblog_close(l);
}

bool cli_joblog_format(const cli_log_entry *e, cli_buf *b)
{
    char fixed[512];
    int n = snprintf(fixed, sizeof fixed, "%llu\t%s\t%d\t%s\t%.3f\t%.3f\t%u\t%llu\t%s\t",
                     (unsigned long long)e->seq, e->status, e->code, e->signal, e->start,
                     e->duration, e->retries, (unsigned long long)e->out_end, e->function);
    return n > 0 && (size_t)n < sizeof fixed && cli_buf_add(b, fixed, (size_t)n) &&
           cli_buf_escape(b, e->arg, e->arg_len) && cli_buf_add(b, "\n", 1);
}

void cli_joblog_close(cli_joblog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    free(l->state);
    free(l->hash);
    l->state = NULL;
    l->hash = NULL;
}
