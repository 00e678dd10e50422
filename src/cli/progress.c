/*
 * progress.c -- the one-line progress bar on stderr.
 *
 * Its own thread redraws it ten times a second, so a run of long tasks
 * still shows its rate and ETA moving, and the threads doing the work only
 * store two counters.  The line is rewritten in place with \r and cleared
 * to the end (ESC [K); it is only ever started on a terminal, or when the
 * user asked for it.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

struct cli_progress {
    const char *label, *unit;
    _Atomic uint64_t done, failed, total;
    atomic_bool stop;
    double t0;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static void clock_str(double s, char *buf, size_t size)
{
    if (!(s >= 0) || s > 359999)
        snprintf(buf, size, "--:--");
    else if (s >= 3600)
        snprintf(buf, size, "%u:%02u:%02u", (unsigned)s / 3600, (unsigned)s / 60 % 60,
                 (unsigned)s % 60);
    else
        snprintf(buf, size, "%u:%02u", (unsigned)s / 60, (unsigned)s % 60);
}

static void draw(cli_progress *p, bool final)
{
    uint64_t done = atomic_load(&p->done), failed = atomic_load(&p->failed);
    uint64_t total = atomic_load(&p->total);
    double el = cli_now() - p->t0;
    double rate = el > 0 ? (double)done / el : 0;
    struct winsize ws;
    unsigned cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
    char tail[160], eta[16], took[16], fail[48] = "";
    clock_str(el, took, sizeof took);
    if (failed)
        snprintf(fail, sizeof fail, "  %llu failed", (unsigned long long)failed);
    if (final) {
        snprintf(tail, sizeof tail, "%llu %s in %s, %.1f/s%s", (unsigned long long)done, p->unit,
                 took, rate, fail);
    } else if (total) {
        clock_str(rate > 0 ? (double)(total - (done < total ? done : total)) / rate : -1, eta,
                  sizeof eta);
        snprintf(tail, sizeof tail, "%llu/%llu %3.0f%%  %.1f/s  ETA %s%s",
                 (unsigned long long)done, (unsigned long long)total,
                 100.0 * (double)done / (double)total, rate, eta, fail);
    } else {
        snprintf(tail, sizeof tail, "%llu %s  %.1f/s  %s%s", (unsigned long long)done, p->unit,
                 rate, took, fail);
    }
    char line[512];
    int n = snprintf(line, sizeof line, "\r%s ", p->label);
    size_t used = strlen(p->label) + 1 + strlen(tail) + 3;
    if (!final && total && cols > used + 12) {
        size_t width = cols - used - 3 < 40 ? cols - used - 3 : 40;
        size_t fill = (size_t)((double)width * (double)(done < total ? done : total) / (double)total);
        line[n++] = '[';
        for (size_t i = 0; i < width && n < 400; i++)
            line[n++] = i < fill ? '#' : '.';
        line[n++] = ']';
        line[n++] = ' ';
    }
    snprintf(line + n, sizeof line - (size_t)n, "%s\033[K%s", tail, final ? "\n" : "");
    fputs(line, stderr);
    fflush(stderr);
}

static void *painter(void *arg)
{
    cli_progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop)) {
        draw(p, false);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cli_progress *cli_progress_start(const char *label, uint64_t total, const char *unit)
{
    cli_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->label = label;
    p->unit = unit ? unit : "done";
    atomic_init(&p->total, total);
    p->t0 = cli_now();
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    /* The painter needs no signals: the caller's sigwait thread gets them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&p->thread, NULL, painter, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(p);
        return NULL;
    }
    return p;
}

void cli_progress_set(cli_progress *p, uint64_t done, uint64_t failed)
{
    if (!p)
        return;
    atomic_store_explicit(&p->done, done, memory_order_relaxed);
    atomic_store_explicit(&p->failed, failed, memory_order_relaxed);
}

void cli_progress_add(cli_progress *p, uint64_t done, uint64_t failed)
{
    if (!p)
        return;
    atomic_fetch_add_explicit(&p->done, done, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->failed, failed, memory_order_relaxed);
}

void cli_progress_total(cli_progress *p, uint64_t total)
{
    if (p)
        atomic_store_explicit(&p->total, total, memory_order_relaxed);
}

void cli_progress_end(cli_progress *p, bool summary)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, true);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    if (summary) {
        draw(p, true);
    } else {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
