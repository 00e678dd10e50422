/*
 * testplug.c -- a plugin for the crew run tests: functions that succeed,
 * fail, crash, hang, write a lot, or count their workers.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crew_plugin.h"

/* The argument back, with a prefix: shows exactly what the task got. */
static int echo(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    return crew_out_printf(out, "[%s]\n", arg);
}

/* The square of a number, after sleeping as many microseconds as the
 * second number (0 when missing). */
static int square(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    long long x = 0, us = 0;
    if (sscanf(arg, "%lld %lld", &x, &us) < 1)
        return crew_out_error(out, "square: '%s' is not a number", arg);
    if (us > 0)
        usleep((useconds_t)us);
    return crew_out_printf(out, "%lld\n", x * x);
}

static int fail(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    crew_out_printf(out, "failing as asked\n");
    return atoi(arg) > 0 ? atoi(arg) : 1;
}

static int crash(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    (void)arg;
    crew_out_printf(out, "about to crash\n");
    raise(SIGSEGV);
    return 0;
}

static int hang(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    (void)arg;
    (void)out;
    for (;;)
        pause();
    return 0;
}

/* N bytes of output: lines of a pattern that depends on the position. */
static int big(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    long n = atol(arg);
    char line[64];
    for (long i = 0; i < n;) {
        int k = snprintf(line, sizeof line, "%ld\n", i);
        if (i + k > n)
            k = (int)(n - i);
        if (crew_out_write(out, line, (size_t)k) != 0)
            return 2;
        i += k;
    }
    return 0;
}

/* Sum of the bytes of the data set: reads the whole snapshot. */
static int datasum(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)arg;
    const unsigned char *p = crew_arena_base(data);
    size_t n = crew_arena_size(data);
    unsigned long long s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return crew_out_printf(out, "%zu %llu\n", n, s);
}

/* Writes into the read-only snapshot. */
static int scribble(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)arg;
    (void)out;
    ((volatile char *)crew_arena_base(data))[8] = 1;
    return 0;
}

/* Which process and worker state ran the task. */
static int whoami(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    int *state = crew_out_state(out);
    usleep((useconds_t)atoi(arg));
    return crew_out_printf(out, "%d %d\n", (int)getpid(), state ? *state : -1);
}

/* The name of the machine that ran the task (gethostname): the tests of
 * MPI runs over several hosts see which ones took part. */
static int host(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    (void)arg;
    char name[256] = "";
    if (gethostname(name, sizeof name - 1) != 0)
        return crew_out_error(out, "hostname: gethostname failed");
    return crew_out_printf(out, "%s\n", name);
}

/* "R [MARKER]": kills its own process with SIGKILL when it runs on rank R
 * of an MPI job (Open MPI's OMPI_COMM_WORLD_RANK), so that a test can lose
 * a rank part way through a run; with MARKER, only while that file does
 * not exist, and it creates the file as it dies, so that the job resumed
 * afterwards runs through.  Outside MPI (no such variable) it is harmless:
 * every run writes the same "alive" record, so outputs compare byte for
 * byte whichever way the task was run. */
static int die_on_rank(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    char marker[4096] = "";
    int victim = -1;
    if (sscanf(arg, "%d %4095s", &victim, marker) < 1)
        return crew_out_error(out, "die_on_rank: '%s' is not a rank", arg);
    if (rank && *rank && atoi(rank) == victim) {
        if (!*marker) {
            raise(SIGKILL);
        } else {
            int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd >= 0) {
                close(fd);
                raise(SIGKILL);
            }
        }
    }
    return crew_out_printf(out, "alive\n");
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Which process ran the task, and when it started: "PID START". */
static int stamp(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    double t = wall_now();
    usleep((useconds_t)atoi(arg));
    return crew_out_printf(out, "%d %.6f\n", (int)getpid(), t);
}

/* Prints to stdout behind crew's back, then writes its result properly. */
static int shout(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    printf("shouted %s\n", arg);
    fflush(stdout);
    return crew_out_printf(out, "quiet %s\n", arg);
}

/* Writes a line, then returns a negative value (reserved: status invalid). */
static int negative(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    crew_out_printf(out, "said %s\n", arg);
    return -5;
}

static int inits;
static int init(const crew_arena *data, void **state)
{
    (void)data;
    const char *fail_init = getenv("TESTPLUG_FAIL_INIT");
    if (fail_init && *fail_init)
        return atoi(fail_init);
    int *s = malloc(sizeof *s);
    if (!s)
        return 12;
    *s = __atomic_add_fetch(&inits, 1, __ATOMIC_RELAXED);
    *state = s;
    return 0;
}

/* Appends "fini PID N" to $TESTPLUG_FINI_LOG, so tests count the calls. */
static void fini(void *state)
{
    const char *path = getenv("TESTPLUG_FINI_LOG");
    if (path) {
        FILE *f = fopen(path, "a");
        if (f) {
            fprintf(f, "fini %d %d %.6f\n", (int)getpid(), *(int *)state, wall_now());
            fclose(f);
        }
    }
    free(state);
}

static const crew_function functions[] = {
    {"echo", echo, "print the argument in brackets"},
    {"square", square, "X [US]: X squared, after sleeping US microseconds"},
    {"fail", fail, "fail with the code given (default 1)"},
    {"crash", crash, "die of SIGSEGV"},
    {"hang", hang, "never return"},
    {"big", big, "N: write N bytes of numbered lines"},
    {"datasum", datasum, "size and byte sum of the whole snapshot"},
    {"scribble", scribble, "write into the read-only snapshot"},
    {"whoami", whoami, "US: sleep, then print the process id and worker number"},
    {"hostname", host, "print the name of the machine that ran the task"},
    {"stamp", stamp, "US: print the process id and the start time, after sleeping US"},
    {"negative", negative, "write 'said ARG', then return -5"},
    {"die_on_rank", die_on_rank, "R [MARKER]: SIGKILL itself on MPI rank R (once: MARKER)"},
    {"shout", shout, "print the argument on stdout with printf, and write 'quiet ARG'"},
};

CREW_PLUGIN("testplug", "functions for testing crew run", functions, init, fini);
