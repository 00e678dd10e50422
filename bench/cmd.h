/*
 * cmd.h -- what the benchmarks of the crew command share (bench_cli,
 * bench_mpi): a work directory removed at exit, files in and out, running
 * a command as a whole process with its time, the snapshot of cli_work.h's
 * heavy tasks, and the checks of a command's output (byte for byte, or the
 * same set of lines).  A command that fails and an output that differs
 * stop the benchmark (bench_fail): a task that did not run is never
 * counted as a fast one.
 */
#ifndef CREW_BENCH_CMD_H
#define CREW_BENCH_CMD_H

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include "bench.h"
#include "cli_work.h"

extern char **environ;

/* ---- the work directory ---------------------------------------------------- */

static char work_dir[4096];

/* Remove every file of the work directory, then the directory (at exit,
 * so also after bench_fail). */
static inline void remove_work_dir(void)
{
    if (!work_dir[0])
        return;
    DIR *d = opendir(work_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(work_dir);
    work_dir[0] = '\0';
}

/* A new directory NAME.XXXXXX in CREW_BENCH_DIR, else TMPDIR, else /tmp:
 * where snapshots and outputs go; removed at exit. */
static inline void make_work_dir(const char *name)
{
    const char *base = getenv("CREW_BENCH_DIR");
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    snprintf(work_dir, sizeof work_dir, "%s/%s.XXXXXX", base, name);
    if (!mkdtemp(work_dir)) {
        int e = errno;
        work_dir[0] = '\0';
        bench_fail("cannot make a directory in %s: %s", base, strerror(e));
    }
    atexit(remove_work_dir);
}

static inline void work_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", work_dir, name);
}

static inline void write_file(const char *path, const char *p, size_t n)
{
    FILE *f = fopen(path, "we");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        bench_fail("cannot write %s: %s", path, strerror(errno));
}

/* The whole file, NUL-terminated; *len its size. */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        bench_fail("cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, k;
    char *b = malloc(cap + 1);
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    if (!b)
        bench_fail("out of memory reading %s", path);
    fclose(f);
    b[n] = '\0';
    *len = n;
    return b;
}

/* ---- running a command --------------------------------------------------------- */

/* "crew run --plugin ..." for messages. */
static inline void join_argv(char *buf, size_t size, char *const argv[])
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; argv[i] && at + 1 < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? " " : "", argv[i]);
}

/*
 * Run argv (found in PATH) with stdin from `in` (NULL: /dev/null) and
 * stdout to `out` (NULL: ours), truncated and opened O_APPEND, so that the
 * lines of processes that write concurrently (xargs -P) never overwrite
 * each other.
 * Returns the seconds from the spawn to the end of the wait, and sets *cpu
 * (may be NULL) to the CPU seconds (user + system) the command and the
 * children it waited for used.  A command that cannot start or does not
 * exit with 0 stops the benchmark: a task that did not run is never
 * counted as a fast one.
 */
static inline double run_cmd(char *const argv[], const char *in, const char *out, int verbose,
                             double *cpu)
{
    struct rusage ru;
    char line[2048];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st;

    join_argv(line, sizeof line, argv);
    if (verbose)
        printf("# run: %s < %s > %s\n", line, in ? in : "/dev/null", out ? out : "(stdout)");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    if (out) /* NULL: the command writes to our stdout */
        posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
                                         0644);
    fflush(NULL); /* the child must not inherit our unwritten output */
    double t0 = bench_now_ns();
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (rc != 0)
        bench_fail("cannot run %s: %s", line, strerror(rc));
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            bench_fail("wait4: %s", strerror(errno));
    double t = (bench_now_ns() - t0) / 1e9;
    if (cpu)
        *cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    posix_spawn_file_actions_destroy(&fa);
    if (WIFSIGNALED(st))
        bench_fail("%s died of signal %d", line, WTERMSIG(st));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_fail("%s exited with status %d", line, WEXITSTATUS(st));
    return t;
}

/* Whether a command is in PATH. */
static inline int have_command(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* The first line `cmd` prints, as a comment. */
static inline void print_version(const char *cmd)
{
    char line[256] = "";
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    if (f && fgets(line, sizeof line, f))
        printf("# %s", line);
    if (f)
        pclose(f);
}

/* ---- snapshots ---------------------------------------------------------------- */

/* Refuse to start a write that cannot fit: about `bytes` and 64 MiB to spare. */
static inline void check_space(const char *dir, double bytes)
{
    struct statvfs v;
    if (statvfs(dir, &v) != 0)
        return;
    double avail = (double)v.f_bavail * (double)v.f_frsize;
    if (avail < bytes + 64.0 * 1048576)
        bench_fail("%s has %.0f MiB free, the snapshot needs %.0f MiB (set CREW_BENCH_DIR)", dir,
                   avail / 1048576, bytes / 1048576);
}

/* An arena holding a cli_root and n words filled by cli_fill; not saved. */
static inline crew_arena *build_arena(uint64_t n)
{
    crew_arena *a;
    int rc = crew_arena_create(&a, n * sizeof(uint64_t) + ((size_t)1 << 20));
    if (rc != 0)
        bench_fail("crew_arena_create: %s", crew_strerror(rc));
    crew_ref rref = CREW_ARENA_NEW(a, cli_root);
    crew_ref xref = crew_arena_array(a, n, sizeof(uint64_t), 64);
    if (!rref || !xref)
        bench_fail("an arena of %llu words: cannot allocate", (unsigned long long)n);
    cli_fill(crew_arena_ptr(a, xref), n);
    cli_root *r = crew_arena_ptr(a, rref);
    r->n = n;
    r->x = xref;
    crew_arena_set_root(a, rref);
    return a;
}

static inline void save_arena(crew_arena *a, const char *path)
{
    int rc = crew_arena_save(a, path);
    if (rc != 0)
        bench_fail("crew_arena_save %s: %s", path, crew_strerror(rc));
}

/* ---- checks ------------------------------------------------------------------- */

static inline int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of buf (modified: newlines become NULs), sorted; *count of them. */
static inline char **sorted_lines(char *buf, size_t len, size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += buf[i] == '\n';
    char **v = malloc((n + 1) * sizeof *v);
    if (!v)
        bench_fail("out of memory");
    size_t k = 0;
    for (char *p = buf; k < n; k++) {
        char *nl = strchr(p, '\n');
        *nl = '\0';
        v[k] = p;
        p = nl + 1;
    }
    qsort(v, n, sizeof *v, cmp_str);
    *count = n;
    return v;
}

/* Byte for byte: 0 if the file holds exactly `expect`, else a message. */
static inline int check_exact(const char *who, const char *path, const char *expect,
                              size_t len)
{
    size_t n;
    char *got = read_file(path, &n);
    int bad = n != len || memcmp(got, expect, len) != 0;
    if (bad) {
        size_t i = 0;
        while (i < n && i < len && got[i] == expect[i])
            i++;
        fprintf(stderr, "%s: output differs from the expected from byte %zu (got %zu bytes, "
                        "expected %zu)\n", who, i, n, len);
    }
    free(got);
    return bad;
}

/* The same set of lines as `expect` (sorted, count of them), in any order. */
static inline int check_set(const char *who, const char *path, char *const *expect,
                            size_t count)
{
    size_t n, k;
    char *got = read_file(path, &n);
    int bad = n == 0 || got[n - 1] != '\n';
    char **lines = sorted_lines(got, n, &k);
    if (!bad && k != count) {
        fprintf(stderr, "%s: %zu lines, expected %zu\n", who, k, count);
        bad = 1;
    }
    for (size_t i = 0; !bad && i < k; i++)
        if (strcmp(lines[i], expect[i]) != 0) {
            fprintf(stderr, "%s: line '%s' where '%s' was expected (sorted)\n", who, lines[i],
                    expect[i]);
            bad = 1;
        }
    free(lines);
    free(got);
    return bad;
}

#endif /* CREW_BENCH_CMD_H */
