/*
 * trace.c -- Chrome / Perfetto trace of every task, range and join.
 *
 * Each worker appends complete events ("ph":"X") to its own buffer, so
 * recording takes no lock; crew_close writes all buffers as one JSON file
 * that chrome://tracing and ui.perfetto.dev open.  A buffer stops growing
 * at CREW_TRACE_MAX events per worker; later events are counted as dropped
 * (the count is written in the file) rather than eating all memory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define CREW_TRACE_MAX (1u << 22)

void crew__trace_add(crew__trace_buf *t, const char *name, uint64_t start_ns, uint64_t arg)
{
    crew__trace_span(t, name, start_ns, crew__now_ns(), arg);
}

void crew__trace_span(crew__trace_buf *t, const char *name, uint64_t start_ns, uint64_t end,
                      uint64_t arg)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        crew__trace_event *ev = cap <= CREW_TRACE_MAX ? realloc(t->events, cap * sizeof *ev) : NULL;
        if (!ev) {
            t->dropped++;
            return;
        }
        t->events = ev;
        t->cap = cap;
    }
    t->events[t->len++] = (crew__trace_event){name, start_ns, end - start_ns, arg};
}

void crew__trace_free(crew__trace_buf *t)
{
    free(t->events);
    t->events = NULL;
    t->len = t->cap = 0;
}

int crew__trace_write(const crew *pool, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    unsigned n = atomic_load_explicit(&((crew *)pool)->started, memory_order_acquire);
    uint64_t dropped = 0;
    int pid = (int)getpid();
    fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
    const char *sep = "";
    for (unsigned i = 0; i < n; i++) {
        const crew__trace_buf *t = &pool->slots[i]->trace;
        dropped += t->dropped;
        fprintf(f, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%u,"
                   "\"args\":{\"name\":\"%s %u\"}}",
                sep, pid, i, pool->processes ? "process" : i == 0 ? "caller" : "worker", i);
        sep = ",\n";
        for (size_t k = 0; k < t->len; k++) {
            const crew__trace_event *e = &t->events[k];
            /* Chrome wants microseconds; keep the nanoseconds as decimals. */
            uint64_t ts = e->start_ns - pool->t0_ns;
            fprintf(f, "%s{\"name\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%u,"
                       "\"ts\":%" PRIu64 ".%03" PRIu64 ",\"dur\":%" PRIu64 ".%03" PRIu64
                       ",\"args\":{\"n\":%" PRIu64 "}}",
                    sep, e->name, pid, i, ts / 1000, ts % 1000, e->dur_ns / 1000,
                    e->dur_ns % 1000, e->arg);
        }
    }
    fprintf(f, "\n],\"otherData\":{\"dropped_events\":%" PRIu64 "}}\n", dropped);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
