/*
 * arena_util.h -- helpers the arena and snapshot tests share: what the
 * kernel says about a mapping (/proc/PID/maps, smaps, smaps_rollup),
 * running a function in a child and learning how it ended, and a scratch
 * directory.
 */
#ifndef CREW_ARENA_UTIL_H
#define CREW_ARENA_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crew.h"
#include "test.h"

/* 1 in a ThreadSanitizer build (gcc spells it one way, clang another). */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* The permission string ("r--s") of the mapping holding addr, or "" */
static inline void maps_perms(const void *addr, char perms[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    perms[0] = '\0';
    uintptr_t a = (uintptr_t)addr;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
            memcpy(perms, p, 5);
            break;
        }
    }
    fclose(f);
}

/* Sum of Rss and Pss (kB) of pid's mappings that overlap [lo, hi). */
static inline void range_pss(pid_t pid, const void *lo, size_t len, long *rss_kb, long *pss_kb)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/smaps", (long)pid);
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    int inside = 0;
    *rss_kb = *pss_kb = 0;
    uintptr_t a = (uintptr_t)lo, b = a + len;
    while (fgets(line, sizeof line, f)) {
        uintptr_t s, e;
        long v;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
            inside = s < b && e > a;
        else if (inside && sscanf(line, "Rss: %ld kB", &v) == 1)
            *rss_kb += v;
        else if (inside && sscanf(line, "Pss: %ld kB", &v) == 1)
            *pss_kb += v;
    }
    fclose(f);
}

/* Whole-process PSS in kB from /proc/PID/smaps_rollup. */
static inline long rollup_pss(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    FILE *f = fopen(path, "r");
    ASSERT_NOT_NULL(f);
    char line[512];
    long v, pss = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %ld kB", &v) == 1)
            pss = v;
    fclose(f);
    ASSERT_GE(pss, 0);
    return pss;
}

/*
 * Put SIGSEGV back to the default action with the raw system call, so a
 * sanitizer's handler (which would turn the fault into a report and an
 * exit code) cannot intercept it: the test wants to see the signal.
 */
static inline void default_segv(void)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } ksa = {0};
    ksa.handler = (void *)SIG_DFL;
    syscall(SYS_rt_sigaction, SIGSEGV, &ksa, NULL, sizeof ksa.mask);
}

/* Fork, run fn(arg) in the child (its return is the exit code); return
 * the wait status. */
static inline int run_child(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(fn(arg));
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    return status;
}

/* A fresh scratch directory (removed by the test with cleanup_dir). */
static inline char *scratch_dir(void)
{
    const char *t = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/crew-test-XXXXXX", t && *t ? t : "/tmp");
    char *d = mkdtemp(tmpl);
    ASSERT_NOT_NULL(d);
    return strdup(d);
}

static inline void cleanup_dir(char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

/* 1 when the running kernel is at least major.minor. */
static inline int kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return 0;
    return ma > major || (ma == major && mi >= minor);
}

#endif
