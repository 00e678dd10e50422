/*
 * bench_arena.c -- arenas and snapshots against what people use instead.
 *
 *   alloc    ns per 32-byte allocation: crew_arena_alloc vs malloc
 *   save     crew_arena_save (checksum + fsync + rename) vs cp, and cp + sync
 *   open     crew_arena_open of a big snapshot, without VERIFY (target < 1 ms)
 *   verify   VERIFY throughput vs `cat file > /dev/null`, page cache warm
 *   pss      total PSS added by 1, 2, 4, 8 forked readers of a frozen arena
 *            vs the same data copied into each worker (what a pickled
 *            argument to a Python multiprocessing worker costs)
 *
 * One line per measurement: ours, the peer's, the ratio.  Sizes come from
 * the environment so a smoke run is quick:
 *   CREW_BENCH_ARENA_MB   arena for save and pss      (default 1024)
 *   CREW_BENCH_SNAP_MB    snapshot for open / verify  (default 4096)
 *   CREW_BENCH_ALLOCS     allocations                 (default 10000000)
 *   CREW_BENCH_DIR        where files go              (default $TMPDIR or /tmp)
 */
#include <crew.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static size_t env_size(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? (size_t)strtoull(v, NULL, 10) : dflt;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_arena: %s: %s\n", what, crew_strerror(rc));
    exit(1);
}

/* Time a shell command (the peers: cp, cat, sync). */
static double run_timed(const char *cmd)
{
    double t0 = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_arena: failed: %s\n", cmd);
        exit(1);
    }
    return now() - t0;
}

static int enough_space(const char *dir, size_t bytes)
{
    struct statvfs s;
    if (statvfs(dir, &s) != 0)
        return 0;
    unsigned long long avail = (unsigned long long)s.f_bavail * s.f_frsize;
    if (avail < bytes + bytes / 10 + (256u << 20)) {
        printf("skipped: %s has %.1f GiB free, needs %.1f GiB\n", dir, avail / 1073741824.0,
               (bytes + bytes / 10) / 1073741824.0);
        return 0;
    }
    return 1;
}

/* A frozen arena holding `bytes` of non-trivial data. */
static crew_arena *filled(size_t bytes)
{
    crew_arena *a;
    int rc = crew_arena_create(&a, bytes + (1u << 20));
    if (rc < 0)
        die("create", rc);
    crew_ref r = crew_arena_alloc(a, bytes, 4096);
    if (!r)
        die("alloc", CREW_EFULL);
    uint64_t *w = crew_arena_ptr(a, r);
    for (size_t i = 0; i < bytes / 8; i++)
        w[i] = i * 0x9E3779B97F4A7C15ull;
    crew_arena_set_root(a, r);
    if ((rc = crew_arena_freeze(a)) < 0)
        die("freeze", rc);
    return a;
}

static void bench_alloc(size_t n)
{
    n = n ? n : 1;
    uint64_t *keep = calloc(n, sizeof *keep);
    crew_arena *a;
    int rc = crew_arena_create(&a, n * 40 + (64u << 20));
    if (!keep || rc < 0)
        die("alloc bench setup", rc < 0 ? rc : CREW_ENOMEM);
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        keep[i] = crew_arena_alloc(a, 32, 8);
    double ours = now() - t0;
    if (!keep[n - 1])
        die("alloc", CREW_EFULL);
    crew_arena_close(a);
    t0 = now();
    for (size_t i = 0; i < n; i++)
        keep[i] = (uint64_t)(uintptr_t)malloc(32);
    double peer = now() - t0;
    for (size_t i = 0; i < n; i++)
        free((void *)(uintptr_t)keep[i]);
    free(keep);
    printf("alloc 32 B x %zu: crew %.1f ns | malloc %.1f ns | ratio %.2f\n", n, ours * 1e9 / n,
           peer * 1e9 / n, ours / peer);
}

static void bench_save(const char *dir, size_t bytes)
{
    if (!enough_space(dir, 3 * bytes))
        return;
    char file[600], copy[600], cmd[4000];
    snprintf(file, sizeof file, "%s/bench_arena_save.crew", dir);
    snprintf(copy, sizeof copy, "%s/bench_arena_copy.crew", dir);
    crew_arena *a = filled(bytes);
    /* best of 3 for each, interleaved, so that disk noise hits all alike */
    double ours = 1e9, cp = 1e9, cp_sync = 1e9;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        int rc = crew_arena_save(a, file);
        if (rc < 0)
            die("save", rc);
        double t = now() - t0;
        ours = t < ours ? t : ours;
        snprintf(cmd, sizeof cmd, "rm -f '%s' && cp '%s' '%s'", copy, file, copy);
        t = run_timed(cmd);
        cp = t < cp ? t : cp;
        snprintf(cmd, sizeof cmd, "rm -f '%s' && cp '%s' '%s' && sync '%s'", copy, file, copy,
                 copy);
        t = run_timed(cmd);
        cp_sync = t < cp_sync ? t : cp_sync;
    }
    crew_arena_close(a);
    double mb = bytes / 1048576.0;
    printf("save %.0f MiB: crew %.0f MiB/s | cp %.0f MiB/s | ratio %.2f (target >= 0.80)\n", mb,
           mb / ours, mb / cp, cp / ours);
    printf("save %.0f MiB: crew %.0f MiB/s | cp+sync %.0f MiB/s | ratio %.2f\n", mb, mb / ours,
           mb / cp_sync, cp_sync / ours);
    unlink(file);
    unlink(copy);
}

static void bench_open(const char *dir, size_t bytes)
{
    if (!enough_space(dir, bytes))
        return;
    char file[600], cmd[700];
    snprintf(file, sizeof file, "%s/bench_arena_open.crew", dir);
    crew_arena *a = filled(bytes);
    int rc = crew_arena_save(a, file);
    crew_arena_close(a);
    if (rc < 0)
        die("save", rc);
    enum { OPENS = 200 };
    double t0 = now();
    for (int i = 0; i < OPENS; i++) {
        if ((rc = crew_arena_open(&a, file, 0)) < 0)
            die("open", rc);
        crew_arena_close(a);
    }
    double open_s = (now() - t0) / OPENS;
    double gb = bytes / 1e9;
    printf("open %.2f GB snapshot: crew %.1f us | target 1000 us | ratio %.3f\n", gb,
           open_s * 1e6, open_s / 1e-3);
    snprintf(cmd, sizeof cmd, "cat '%s' > /dev/null", file);
    run_timed(cmd); /* both measured with the file in the page cache */
    double cat = run_timed(cmd);
    t0 = now();
    if ((rc = crew_arena_open(&a, file, CREW_ARENA_VERIFY)) < 0)
        die("open verify", rc);
    double ver = now() - t0;
    crew_arena_close(a);
    printf("verify %.2f GB: crew %.2f GB/s | cat %.2f GB/s | ratio %.2f\n", gb, gb / ver,
           gb / cat, cat / ver);
    unlink(file);
}

/* Sum of smaps_rollup Pss (kB) over processes. */
static long pss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/smaps_rollup", (long)pid);
    FILE *f = fopen(path, "r");
    long v, pss = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %ld kB", &v) == 1)
            pss = v;
    if (f)
        fclose(f);
    return pss;
}

/*
 * k children read every page of the data (mode 0: the shared arena; mode
 * 1: a private copy each, as unpickling an argument makes); return the PSS
 * all of us together added, in kB.
 */
static long readers_pss(const crew_arena *a, int k, int copy)
{
    const unsigned char *data = crew_arena_ptr(a, crew_arena_root(a));
    size_t bytes = crew_arena_size(a) - crew_arena_root(a);
    long before = pss_kb(getpid());
    int ready[2], go[2];
    if (pipe(ready) != 0 || pipe(go) != 0)
        exit(1);
    pid_t kids[8];
    fflush(NULL);
    for (int i = 0; i < k; i++) {
        if ((kids[i] = fork()) == 0) {
            close(go[1]);
            const unsigned char *p = data;
            if (copy) {
                unsigned char *mine = malloc(bytes);
                if (!mine)
                    _exit(1);
                memcpy(mine, data, bytes);
                p = mine;
            }
            volatile unsigned sum = 0;
            for (size_t off = 0; off < bytes; off += 4096)
                sum += p[off];
            char ch = 0;
            if (write(ready[1], &ch, 1) != 1 || read(go[0], &ch, 1) < 0)
                _exit(1);
            _exit(0);
        }
    }
    char ch;
    for (int i = 0; i < k; i++)
        if (read(ready[0], &ch, 1) != 1)
            exit(1);
    long total = pss_kb(getpid());
    for (int i = 0; i < k; i++)
        total += pss_kb(kids[i]);
    close(go[1]);
    for (int i = 0; i < k; i++)
        waitpid(kids[i], NULL, 0);
    close(go[0]);
    close(ready[0]);
    close(ready[1]);
    return total - before;
}

static void bench_pss(size_t bytes)
{
    crew_arena *a = filled(bytes);
    const volatile unsigned char *p = crew_arena_base(a);
    for (size_t off = 0; off < crew_arena_size(a); off += 4096)
        (void)p[off]; /* the parent maps it all too */
    double mib = bytes / 1048576.0;
    for (int k = 1; k <= 8; k *= 2) {
        long ours = readers_pss(a, k, 0), peer = readers_pss(a, k, 1);
        printf("pss %d readers of %.0f MiB: crew +%.1f MiB (%.2f%%) | copies +%.0f MiB | "
               "ratio %.4f\n",
               k, mib, ours / 1024.0, 100.0 * ours / 1024.0 / mib, peer / 1024.0,
               (double)ours / (double)peer);
    }
    crew_arena_close(a);
}

int main(void)
{
    /* BENCH_QUICK=1 (as for the other benchmarks): a smoke run in seconds. */
    const char *quick_env = getenv("BENCH_QUICK");
    int quick = quick_env && *quick_env && strcmp(quick_env, "0") != 0;
    size_t arena = env_size("CREW_BENCH_ARENA_MB", quick ? 64 : 1024) << 20;
    size_t snap = env_size("CREW_BENCH_SNAP_MB", quick ? 256 : 4096) << 20;
    size_t allocs = env_size("CREW_BENCH_ALLOCS", quick ? 1000000 : 10000000);
    const char *dir = getenv("CREW_BENCH_DIR");
    if (!dir || !*dir)
        dir = getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/tmp";
    bench_alloc(allocs);
    bench_save(dir, arena);
    bench_open(dir, snap);
    bench_pss(arena);
    return 0;
}
