/*
 * Description: crew_mpi_data_open -- one copy of a snapshot per node, by
 * file or by broadcast into a shared window -- and the sweep of stale
 * shared-memory records.  Run under mpirun with 1, 2 and 4 ranks (all on
 * this machine, so one node).
 *
 * Every rank checks what it sees against values it computes itself (the
 * pattern test_mix(i), and a byte checksum of the root's file read with
 * read(2)), and the ranks agree on the verdict with MPI_Allreduce, so a
 * failure on any rank fails every rank.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena_util.h"
#include "crew.h"
#include "crew_mpi.h"
#include "mpi/mpi_internal.h"
#include "test.h"

#define SNAP_BYTES ((size_t)64 << 20)
#define N_WORDS ((SNAP_BYTES - 4096) / sizeof(uint64_t))

static int rank, size;
static char dir[512];
static uint64_t data_size; /* the root's file size less its 4096-byte header page */

/* Every rank's `ok` must hold; stops every rank at the first that fails. */
#define ALL_OK(ok, what)                                                      \
    do {                                                                      \
        int mine_ = (ok), all_ = 0;                                           \
        MPI_Allreduce(&mine_, &all_, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);    \
        if (!mine_)                                                           \
            fprintf(stderr, "rank %d: %s failed\n", rank, what);             \
        if (!all_)                                                            \
            TEST_FAIL_("%s: failed on some rank", what);                      \
    } while (0)

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* A snapshot holding the pattern: root -> an array of N_WORDS words. */
static void make_snapshot(const char *path, uint64_t salt)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, SNAP_BYTES + ((size_t)1 << 20)));
    crew_ref arr = CREW_ARENA_ARRAY(a, uint64_t, N_WORDS);
    ASSERT(arr != 0);
    uint64_t *w = CREW_ARENA_PTR(a, uint64_t, arr);
    for (size_t i = 0; i < N_WORDS; i++)
        w[i] = test_mix(i + salt);
    crew_arena_set_root(a, arr);
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_OK(crew_arena_save(a, path));
    crew_arena_close(a);
}

/* Checksum of a file's data bytes (from offset 4096), read with read(2). */
static uint64_t file_data_sum(const char *path)
{
    int fd = open(path, O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT_EQ(lseek(fd, 4096, SEEK_SET), 4096);
    static unsigned char buf[1 << 16];
    uint64_t h = 0xcbf29ce484222325ULL;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        h = fnv(h, buf, (size_t)n);
    close(fd);
    return h;
}

/* Does this rank see the pattern, with the root's bytes? */
static int contents_ok(const crew_arena *a, uint64_t want_sum)
{
    if (!a || crew_arena_size(a) != data_size)
        return 0;
    const uint64_t *w = CREW_ARENA_GET_ARRAY(a, uint64_t, crew_arena_root(a), N_WORDS);
    if (!w)
        return 0;
    for (size_t i = 0; i < N_WORDS; i++)
        if (w[i] != test_mix(i))
            return 0;
    return fnv(0xcbf29ce484222325ULL, crew_arena_base(a), crew_arena_size(a)) == want_sum;
}

static void path_in(char *out, const char *name)
{
    snprintf(out, 600, "%s/%s", dir, name);
}

/* Node-wide sum of the PSS of the pages behind [base, base + len). */
static long node_pss_kb(const void *base, size_t len)
{
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    long rss = 0, pss = 0, sum = 0;
    range_pss(getpid(), base, len, &rss, &pss);
    MPI_Allreduce(&pss, &sum, 1, MPI_LONG, MPI_SUM, node);
    MPI_Comm_free(&node);
    return sum;
}

static void check_one_copy(const crew_arena *a)
{
    long kb = node_pss_kb(crew_arena_base(a), crew_arena_size(a));
    long want = (long)(crew_arena_size(a) / 1024);
    int ok = kb > want - want / 10 && kb < want + want / 10;
    if (!ok)
        fprintf(stderr, "rank %d: node PSS %ld kB, want about %ld kB\n", rank, kb, want);
    ALL_OK(ok, "one copy per node (PSS)");
}

static void test_same_path(const char *good, uint64_t sum)
{
    crew_mpi_data *d = NULL;
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, good, 0, &d);
    ALL_OK(rc == 0, "open, every rank has the file");
    ALL_OK(crew_mpi_data_broadcast(d) == 0, "no broadcast when every rank has the file");
    ALL_OK(contents_ok(crew_mpi_data_arena(d), sum), "contents, mapped from the file");
    check_one_copy(crew_mpi_data_arena(d));
    crew_mpi_data_close(d);
}

static void test_broadcast(const char *good, const char *other, unsigned flags, uint64_t sum)
{
    char missing[600];
    path_in(missing, "missing.crew");
    crew_mpi_data *d = NULL;
    /* Rank 1 has a file, but another snapshot: it must not be used. */
    const char *mine = rank == 0 ? good : rank == 1 ? other : missing;
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, mine, flags, &d);
    if (rc != 0)
        fprintf(stderr, "rank %d: %s\n", rank, crew_strerror(rc));
    ALL_OK(rc == 0, "open, only the root has the file");
    /* One node: with other ranks it needs the bytes, alone it has them. */
    ALL_OK(crew_mpi_data_broadcast(d) == (size > 1), "broadcast where a rank lacks the file");
    ALL_OK(contents_ok(crew_mpi_data_arena(d), sum), "contents, broadcast");
    check_one_copy(crew_mpi_data_arena(d));
    crew_mpi_data_close(d);
}

static void test_errors(const char *good, const char *corrupt)
{
    char missing[600];
    path_in(missing, "missing.crew");
    crew_mpi_data *d = NULL;
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, rank == 0 ? corrupt : good, CREW_ARENA_VERIFY,
                                &d);
    ALL_OK(rc == CREW_ECHECKSUM && d == NULL, "the root's corrupt copy: CREW_ECHECKSUM");
    /* Without VERIFY the corruption goes unseen, by design: the header is fine. */
    rc = crew_mpi_data_open(MPI_COMM_WORLD, rank == 0 ? missing : good, 0, &d);
    ALL_OK(rc == CREW_ENOENT && d == NULL, "the root's file missing: CREW_ENOENT");
    rc = crew_mpi_data_open(MPI_COMM_WORLD, rank == size - 1 ? NULL : good, 0, &d);
    ALL_OK(rc == CREW_EINVAL && d == NULL, "a NULL path on one rank: CREW_EINVAL");
    rc = crew_mpi_data_open(MPI_COMM_WORLD, good, rank == size - 1 ? 0x80u : 0, &d);
    ALL_OK(rc == CREW_EINVAL && d == NULL, "unknown flags on one rank: CREW_EINVAL");
    ALL_OK(crew_mpi_data_open(MPI_COMM_NULL, good, 0, &d) == CREW_EINVAL, "MPI_COMM_NULL");
    crew_mpi_data_close(NULL);
    ALL_OK(crew_mpi_data_arena(NULL) == NULL && crew_mpi_data_broadcast(NULL) == 0, "NULL data");
}

/* A task of the process pool: the sum of one slice of the words. */
#define SLICES 8
static int slice_sum(const void *shared, const void *arg, void *result)
{
    const crew_arena *a = shared;
    size_t k = *(const size_t *)arg, per = N_WORDS / SLICES;
    const uint64_t *w = CREW_ARENA_GET_ARRAY(a, uint64_t, crew_arena_root(a), N_WORDS);
    if (!w)
        return 1;
    uint64_t s = 0;
    for (size_t i = k * per; i < (k + 1) * per; i++)
        s += w[i];
    memcpy(result, &s, sizeof s);
    return 0;
}

static void test_process_pool(const char *good)
{
    char missing[600];
    path_in(missing, "missing.crew");
    crew_mpi_data *d = NULL;
    ALL_OK(crew_mpi_data_open(MPI_COMM_WORLD, rank == 0 ? good : missing, 0, &d) == 0,
           "open before the pool");
    crew *pool = NULL;
    ALL_OK(crew_open(&pool, &(crew_config){.workers = 2, .isolation = CREW_PROCESSES}) == 0,
           "process pool");
    crew_task tasks[SLICES];
    size_t args[SLICES];
    uint64_t got[SLICES];
    for (size_t k = 0; k < SLICES; k++) {
        args[k] = k;
        tasks[k] = (crew_task){.fn = slice_sum, .arg = &args[k], .arg_size = sizeof args[k],
                               .result = &got[k], .result_size = sizeof got[k]};
    }
    int rc = crew_run(pool, crew_mpi_data_arena(d), tasks, SLICES, NULL);
    int ok = rc == 0;
    size_t per = N_WORDS / SLICES;
    for (size_t k = 0; ok && k < SLICES; k++) {
        uint64_t want = 0;
        for (size_t i = k * per; i < (k + 1) * per; i++)
            want += test_mix(i);
        ok = tasks[k].status == 0 && got[k] == want;
    }
    ALL_OK(ok, "process pool tasks read the broadcast arena");
    crew_close(pool);
    crew_mpi_data_close(d);
}

/* ---- stale records (rank 0 only, in its own directory) ------------------ */

static void write_record(const char *path, const char *listed)
{
    struct stat st;
    ASSERT_EQ(stat(listed, &st), 0);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fprintf(f, "crew-mpi-record 1\n%llu %llu %s\n", (unsigned long long)st.st_dev,
            (unsigned long long)st.st_ino, listed);
    ASSERT_EQ(fclose(f), 0);
}

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT(fd >= 0);
    ASSERT_EQ(write(fd, "x", 1), 1);
    close(fd);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_stale_records(void)
{
    char *d = scratch_dir();
    char rec[600], seg[600], live_rec[600], live_seg[600], shared_seg[600], dead2[600];
    snprintf(rec, sizeof rec, "%s/crew-mpi.999999991", d);
    snprintf(seg, sizeof seg, "%s/vader_segment.fake.1", d);
    snprintf(live_rec, sizeof live_rec, "%s/crew-mpi.999999992", d);
    snprintf(live_seg, sizeof live_seg, "%s/vader_segment.fake.2", d);
    snprintf(shared_seg, sizeof shared_seg, "%s/shared.fake", d);
    snprintf(dead2, sizeof dead2, "%s/crew-mpi.999999993", d);

    /* A dead record (its lock free): it and its file go. */
    touch(seg);
    write_record(rec, seg);
    ASSERT_EQ(crew__mpi_shm_sweep(d), 2);
    ASSERT(!exists(seg) && !exists(rec));

    /* A live record (a child holds its lock): kept, with its file; and a
     * dead record listing the same file does not remove it. */
    touch(live_seg);
    write_record(live_rec, live_seg);
    write_record(dead2, live_seg);
    int go[2], ready[2];
    ASSERT_EQ(pipe(go), 0);
    ASSERT_EQ(pipe(ready), 0);
    pid_t child = fork();
    ASSERT(child >= 0);
    if (child == 0) {
        int fd = open(live_rec, O_RDONLY);
        char c = 0;
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(ready[1], "r", 1) != 1)
            _exit(1);
        _exit(read(go[0], &c, 1) == 1 ? 0 : 2);  /* hold the lock until told */
    }
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    ASSERT_EQ(crew__mpi_shm_sweep(d), 1);      /* only the dead record itself */
    ASSERT(exists(live_rec) && exists(live_seg) && !exists(dead2));
    ASSERT_EQ(write(go[1], "g", 1), 1);
    int status;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Its holder gone, the record is stale. */
    ASSERT_EQ(crew__mpi_shm_sweep(d), 2);
    ASSERT(!exists(live_rec) && !exists(live_seg));

    /* A listed name that is now another file (new inode) is not removed. */
    touch(shared_seg);
    write_record(rec, shared_seg);
    int hold = open(shared_seg, O_RDONLY);  /* keeps the old inode from reuse */
    ASSERT(hold >= 0);
    ASSERT_EQ(unlink(shared_seg), 0);
    touch(shared_seg);
    ASSERT_EQ(crew__mpi_shm_sweep(d), 1);
    ASSERT(exists(shared_seg) && !exists(rec));
    close(hold);

    /* This process's own record: made, listed, locked, gone at exit. */
    ASSERT_OK(crew__mpi_shm_track(d));
    char own[600];
    snprintf(own, sizeof own, "%s/crew-mpi.%ld", d, (long)getpid());
    ASSERT(exists(own));
    int fd = open(own, O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT(flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK);
    char head[32] = {0};
    ASSERT(read(fd, head, sizeof head - 1) > 0);
    ASSERT(strncmp(head, "crew-mpi-record 1\n", 18) == 0);
    close(fd);
    ASSERT_EQ(crew__mpi_shm_sweep(d), 0);     /* our own record is live */
    ASSERT(exists(own));
    cleanup_dir(d);
}

int main(int argc, char **argv)
{
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    char *d = NULL;
    if (rank == 0) {
        d = scratch_dir();
        snprintf(dir, sizeof dir, "%s", d);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    char good[600], other[600], corrupt[600];
    path_in(good, "data.crew");
    path_in(other, "other.crew");
    path_in(corrupt, "corrupt.crew");
    uint64_t sum = 0;
    if (rank == 0) {
        make_snapshot(good, 0);
        make_snapshot(other, 1);
        /* corrupt: the good file with one data byte flipped */
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", good, corrupt);
        ASSERT_EQ(system(cmd), 0);
        int fd = open(corrupt, O_RDWR);
        unsigned char b;
        ASSERT_EQ(pread(fd, &b, 1, 4096 + 1000), 1);
        b ^= 0x40;
        ASSERT_EQ(pwrite(fd, &b, 1, 4096 + 1000), 1);
        close(fd);
        sum = file_data_sum(good);
        struct stat st;
        ASSERT_EQ(stat(good, &st), 0);
        data_size = (uint64_t)st.st_size - 4096;
    }
    MPI_Bcast(&sum, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(&data_size, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);

    test_same_path(good, sum);
    test_broadcast(good, other, 0, sum);
    test_broadcast(good, other, CREW_ARENA_VERIFY, sum);
    test_errors(good, corrupt);
    test_process_pool(good);
    if (rank == 0)
        test_stale_records();

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0)
        cleanup_dir(d);
    MPI_Finalize();
    return 0;
}
