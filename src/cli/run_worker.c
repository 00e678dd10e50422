/*
 * run_worker.c -- crew run, the part of a task that runs in a worker (a
 * thread, or a forked process that sees only what existed at crew_open):
 * the plugin's per-worker state, the call, and where its output goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/run.h"
#include "common/out.h"

worker_view wk;

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

void run_worker_exit(void *ctx)
{
    (void)ctx;
    /* once for each successful init, as crew_plugin.h promises */
    if (tls_state.ready && wk.plugin->init && tls_state.init_rc == 0 && wk.plugin->fini)
        wk.plugin->fini(tls_state.state);
}

int spool_path(char *buf, size_t size, uint64_t seq)
{
    return snprintf(buf, size, "%s/%llu.out", wk.spool, (unsigned long long)seq);
}

typedef struct host {
    task_result *res;
    uint64_t seq;
    int spool_fd;
    uint64_t spooled;
} host;

int write_all(int fd, const char *p, size_t n)
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
        if (n > SIZE_MAX / 4 - out->len) {
            h->res->spool_error = ENOMEM;
            return CREW_ENOMEM;
        }
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

int run_task(const void *shared, const void *arg, void *result)
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

void run_fini_threads(void)
{
    for (worker_state *w = thread_states, *next; w; w = next) {
        next = w->next;
        wk.plugin->fini(w->state);
        free(w);
    }
    thread_states = NULL;
}
