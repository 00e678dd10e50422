/*
 * util.c -- messages, option values, clocks and output files for the
 * subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

const char *cli_cmd = "";
char cli_origin[128];
bool cli_quiet;

__attribute__((format(printf, 1, 0))) static void vmessage(const char *fmt, va_list ap)
{
    /* One fprintf of a formatted line, so that concurrent messages from
     * several threads do not mix within a line. */
    if (cli_quiet)
        return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "crew%s%s%s: %s\n", *cli_cmd ? " " : "", cli_cmd, cli_origin, line);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    if (!cli_quiet)
        fprintf(stderr, "try: crew %s --help\n", cli_cmd);
    return CLI_USAGE;
}

bool cli_parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_size(const char *s, size_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && *end == 'i')
        end++;
    if (*end == 'B' || (*end == 'b' && shift == 0))
        end++;
    if (*end || v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)(v << shift);
    return true;
}

bool cli_parse_seconds(const char *s, double *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0)
        return false;
    *out = v;
    return true;
}

const char *cli_human_size(double bytes, char *buf, size_t size)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double cli_now(void)
{
    return seconds(CLOCK_MONOTONIC);
}

double cli_wall(void)
{
    return seconds(CLOCK_REALTIME);
}

double cli_coarse_now(void)
{
    return seconds(CLOCK_MONOTONIC_COARSE);
}

double cli_coarse_wall(void)
{
    return seconds(CLOCK_REALTIME_COARSE);
}

int cli_open_keep(const char *path, int flags, bool *created)
{
    int fd = open(path, flags | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST) {
        fd = open(path, flags | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) /* a dangling symbolic link */
            fd = open(path, flags | O_CREAT | O_CLOEXEC, 0666);
    }
    return fd;
}
