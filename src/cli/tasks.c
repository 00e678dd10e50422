/*
 * tasks.c -- reading task lines with bounded memory.
 *
 * The reader keeps one buffer that holds at least the current line: it
 * grows only as far as the longest line (at most CLI_MAX_LINE), so a task
 * file of any length streams through it.  A task line is `function
 * [argument]`: the first word names the function, the argument is the rest
 * of the line after the blanks that follow it (kept as it is, inner blanks
 * included).  Blank lines and lines starting with # are skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tasks.h"

#define CHUNK ((size_t)64 << 10)

/* 1: a line in [*line, *line + *len) (NUL-terminated, newline and a CR
 * before it removed), 0: end of input, -1: error (message printed), -2:
 * woken. */
static int reader_line(cli_reader *r, const char *name, char **line, size_t *len)
{
    for (;;) {
        char *nl = r->start < r->end ? memchr(r->buf + r->start, '\n', r->end - r->start) : NULL;
        if (nl || (r->eof && r->start < r->end)) {
            char *s = r->buf + r->start;
            size_t n = nl ? (size_t)(nl - s) : r->end - r->start;
            if (n > CLI_MAX_LINE) {
                cli_error("%s:%llu: line longer than %zu MiB", name,
                          (unsigned long long)r->line_no + 1, CLI_MAX_LINE >> 20);
                return -1;
            }
            r->start += n + (nl != NULL);
            if (n && s[n - 1] == '\r')
                n--;
            s[n] = '\0'; /* over the newline, or the spare byte kept below */
            r->line_no++;
            *line = s;
            *len = n;
            return 1;
        }
        if (r->eof)
            return 0;
        /* Make room: move the partial line to the front, grow if full. */
        if (r->start) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->cap - r->end < CHUNK + 1) {
            if (r->end > CLI_MAX_LINE) {
                cli_error("%s:%llu: line longer than %zu MiB", name,
                          (unsigned long long)r->line_no + 1, CLI_MAX_LINE >> 20);
                return -1;
            }
            size_t cap = r->cap ? 2 * r->cap : 4 * CHUNK;
            char *b = realloc(r->buf, cap);
            if (!b) {
                cli_error("out of memory reading %s", name);
                return -1;
            }
            r->buf = b;
            r->cap = cap;
        }
        if (r->wake_fd >= 0) {
            struct pollfd pf[2] = {{.fd = r->fd, .events = POLLIN},
                                   {.fd = r->wake_fd, .events = POLLIN}};
            int rc = poll(pf, 2, -1);
            if (rc < 0 && errno != EINTR) {
                cli_error("%s: %s", name, strerror(errno));
                return -1;
            }
            if (pf[1].revents)
                return -2;
            if (rc <= 0)
                continue;
        }
        /* keep one byte spare, for the NUL of a last line without newline */
        ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            cli_error("cannot read %s: %s", name, strerror(errno));
            return -1;
        }
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
}

int cli_source_open(cli_source *s, const cli_plugin *p, const char *path, char **list,
                    size_t n_list, long each_fn, int wake_fd)
{
    memset(s, 0, sizeof *s);
    s->plugin = p;
    s->each_fn = each_fn;
    s->r.fd = -1;
    s->r.wake_fd = wake_fd;
    if (list) {
        s->list = list;
        s->n_list = n_list;
        s->name = "--task";
        return 0;
    }
    if (!path || !strcmp(path, "-")) {
        s->name = "-";
        s->r.fd = STDIN_FILENO;
        off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
        s->r.origin = at > 0 ? (long long)at : 0;
        return 0;
    }
    s->name = path;
    s->r.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->r.fd < 0) {
        cli_error("cannot open task file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(s->r.fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error("task file %s is a directory", path);
        close(s->r.fd);
        return -1;
    }
    s->r.own_fd = true;
    return 0;
}

bool cli_source_rewindable(const cli_source *s)
{
    if (s->list)
        return true;
    struct stat st;
    return fstat(s->r.fd, &st) == 0 && S_ISREG(st.st_mode);
}

int cli_source_rewind(cli_source *s)
{
    s->at = 0;
    s->seq = 0;
    if (s->list)
        return 0;
    if (lseek(s->r.fd, (off_t)s->r.origin, SEEK_SET) != (off_t)s->r.origin) {
        cli_error("cannot read %s again: %s", s->name, strerror(errno));
        return -1;
    }
    s->r.start = s->r.end = 0;
    s->r.eof = false;
    s->r.line_no = 0;
    return 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

int cli_source_next(cli_source *s, cli_task_text *t)
{
    for (;;) {
        char *line;
        size_t len;
        uint64_t line_no;
        if (s->list) {
            if (s->at == s->n_list)
                return 0;
            line = s->list[s->at++];
            len = strlen(line);
            line_no = s->at;
        } else {
            int rc = reader_line(&s->r, s->name, &line, &len);
            if (rc <= 0)
                return rc;
            line_no = s->r.line_no;
        }
        if (memchr(line, '\0', len)) {
            cli_error("%s:%llu: a NUL byte in the line", s->name, (unsigned long long)line_no);
            return -1;
        }
        t->line_no = line_no;
        if (s->each_fn >= 0) {
            t->fn = s->each_fn;
            t->arg = line;
            t->arg_len = len;
            t->seq = ++s->seq;
            return 1;
        }
        size_t i = 0;
        while (i < len && blank(line[i]))
            i++;
        if (i == len || line[i] == '#')
            continue;
        size_t name = i;
        while (i < len && !blank(line[i]))
            i++;
        long fn = cli_plugin_find(s->plugin, line + name, i - name);
        if (fn < 0) {
            cli_error("%s:%llu: unknown function '%.*s' (crew run --list --plugin %s shows them)",
                      s->name, (unsigned long long)line_no, (int)(i - name > 64 ? 64 : i - name),
                      line + name, s->plugin->path);
            return -1;
        }
        while (i < len && blank(line[i]))
            i++;
        t->fn = fn;
        t->arg = line + i;
        t->arg_len = len - i;
        t->seq = ++s->seq;
        return 1;
    }
}

void cli_source_close(cli_source *s)
{
    if (s->r.own_fd && s->r.fd >= 0)
        close(s->r.fd);
    free(s->r.buf);
    s->r.buf = NULL;
}
