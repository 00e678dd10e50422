/*
 * Description: arenas across processes.  Forked children see the arena at
 * the same address and share its pages; a write after freeze kills the
 * writer with SIGSEGV; freeze refuses (EBUSY) while a child still maps the
 * arena writable; a process handed the fd over a Unix socket adopts the
 * same pages; N readers of a big frozen arena add < 1% to the total PSS.
 * The read-only mapping's MAP_PRIVATE fallback (old kernels) is forced
 * with CREW_ARENA_MAP_PRIVATE=1 and tested the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "arena_util.h"

static crew_arena *filled_arena(size_t bytes, crew_ref *data)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, bytes + (1u << 20)));
    *data = crew_arena_alloc(a, bytes, 4096);
    ASSERT_NE(*data, 0);
    uint64_t *p = crew_arena_ptr(a, *data);
    for (size_t i = 0; i < bytes / 8; i++)
        p[i] = i * 0x9E3779B97F4A7C15ull;
    crew_arena_set_root(a, *data);
    return a;
}

/* Read one word per page (so every page is mapped) and check the pattern. */
static int read_all(const crew_arena *a, crew_ref data, size_t bytes)
{
    const uint64_t *p = crew_arena_get(a, data, bytes);
    if (!p)
        return 2;
    for (size_t i = 0; i < bytes / 8; i += 512)
        if (p[i] != i * 0x9E3779B97F4A7C15ull)
            return 3;
    return 0;
}

struct fork_ctx {
    crew_arena *a;
    crew_ref ref;
    int to_child[2], to_parent[2];
};

static int child_sees_parent(void *arg)
{
    struct fork_ctx *c = arg;
    volatile uint64_t *p = crew_arena_ptr(c->a, c->ref);
    if (p[0] != 1)
        return 10;
    p[1] = 2;                      /* a child's write reaches the parent */
    char ch;
    if (write(c->to_parent[1], "w", 1) != 1 || read(c->to_child[0], &ch, 1) != 1)
        return 11;
    return p[2] == 3 ? 0 : 12;     /* and a later parent write reaches us */
}

/* Before the freeze, parent and child share the pages both ways. */
static void test_fork_shares_pages(void)
{
    struct fork_ctx c;
    ASSERT_OK(crew_arena_create(&c.a, 1 << 20));
    c.ref = crew_arena_alloc(c.a, 64, 8);
    uint64_t *p = crew_arena_ptr(c.a, c.ref);
    p[0] = 1;
    ASSERT_EQ(pipe(c.to_child), 0);
    ASSERT_EQ(pipe(c.to_parent), 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(child_sees_parent(&c));
    char ch;
    ASSERT_EQ(read(c.to_parent[0], &ch, 1), 1);
    ASSERT_UEQ(((volatile uint64_t *)p)[1], 2);
    p[2] = 3;
    ASSERT_EQ(write(c.to_child[1], "g", 1), 1);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    for (int i = 0; i < 2; i++) {
        close(c.to_child[i]);
        close(c.to_parent[i]);
    }
    crew_arena_close(c.a);
}

static int child_changes(void *arg)
{
    struct fork_ctx *c = arg;
    crew_ref r = 0;
    if (crew_arena_try_alloc(c->a, 64, 8, &r) != CREW_EINVAL)
        return 20;
    crew_arena_set_root(c->a, c->ref);
    if (crew_arena_root(c->a) != 0)
        return 21;
    return crew_arena_freeze(c->a) == CREW_EINVAL ? 0 : 22;
}

/* Only the creating process changes an arena: a forked child's alloc,
 * set_root and freeze are refused, also in a program that never opened a
 * process pool (the owner check must know it runs in another process). */
static void test_child_may_not_change(void)
{
    struct fork_ctx c;
    ASSERT_OK(crew_arena_create(&c.a, 1 << 20));
    c.ref = crew_arena_alloc(c.a, 64, 8);
    ASSERT_NE(c.ref, 0);
    int status = run_child(child_changes, &c);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    ASSERT_NE(crew_arena_alloc(c.a, 64, 8), 0);
    crew_arena_close(c.a);
}

static int child_writes(void *arg)
{
    struct fork_ctx *c = arg;
    default_segv();
    volatile unsigned char *p = crew_arena_ptr(c->a, c->ref);
    p[0] = 42; /* must fault */
    return 0;
}

/* A write through any pointer after the freeze faults. */
static void test_write_after_freeze_segv(void)
{
    struct fork_ctx c;
    ASSERT_OK(crew_arena_create(&c.a, 1 << 20));
    c.ref = crew_arena_alloc(c.a, 100, 8);
    ASSERT_OK(crew_arena_freeze(c.a));
    int status = run_child(child_writes, &c);
    ASSERT(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGSEGV);
    ASSERT_EQ(*(const unsigned char *)crew_arena_ptr(c.a, c.ref), 0);
    crew_arena_close(c.a);
}

/* While a child forked before the freeze holds the writable mapping, the
 * write seal is refused: freeze says EBUSY and leaves the arena usable. */
static void test_freeze_busy_with_child(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    crew_ref r = crew_arena_alloc(a, 100, 8);
    int gate[2];
    ASSERT_EQ(pipe(gate), 0);
    fflush(NULL);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        char ch;
        close(gate[1]);
        _exit(read(gate[0], &ch, 1) == 0 ? 0 : 1); /* wait for EOF */
    }
    close(gate[0]);
    ASSERT_EQ(crew_arena_freeze(a), CREW_EBUSY);
    ASSERT_EQ(crew_arena_frozen(a), 0);
    *(unsigned char *)crew_arena_ptr(a, r) = 5;   /* still writable */
    ASSERT_NE(crew_arena_alloc(a, 8, 8), 0);       /* still allocates */
    close(gate[1]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(*(const unsigned char *)crew_arena_get(a, r, 1), 5);
    crew_arena_close(a);
}

static void send_fd(int sock, int fd)
{
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ASSERT_EQ(sendmsg(sock, &m, 0), 1);
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf};
    if (recvmsg(sock, &m, 0) != 1)
        return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (!cm || cm->cmsg_type != SCM_RIGHTS)
        return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

struct fd_report {
    int rc;
    uint64_t ino;
    crew_ref root;
    long rss_kb, pss_kb;
};

/* The receiving side: a process that never had the arena mapped. */
static void fd_receiver(int sock, size_t bytes)
{
    struct fd_report rep = {0};
    int fd = recv_fd(sock);
    crew_arena *b = NULL;
    rep.rc = fd < 0 ? -1 : crew_arena_open_fd(&b, fd, CREW_ARENA_VERIFY);
    if (rep.rc == 0) {
        struct stat st;
        fstat(crew_arena_fd(b), &st);
        rep.ino = st.st_ino;
        rep.root = crew_arena_root(b);
        rep.rc = read_all(b, rep.root, bytes);
        range_pss(getpid(), crew_arena_base(b), crew_arena_size(b), &rep.rss_kb, &rep.pss_kb);
    }
    if (write(sock, &rep, sizeof rep) != sizeof rep)
        _exit(1);
    char ch;
    (void)read(sock, &ch, 1); /* stay alive until the parent has looked */
    _exit(0);
}

static void test_fd_over_socket(void)
{
    const size_t bytes = 16u << 20;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fflush(NULL);
    pid_t pid = fork(); /* before the arena exists: only the fd connects us */
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        fd_receiver(sv[1], bytes);
    }
    close(sv[1]);
    crew_ref data;
    crew_arena *a = filled_arena(bytes, &data);
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(read_all(a, data, bytes), 0);
    send_fd(sv[0], crew_arena_fd(a));
    struct fd_report rep;
    ASSERT_EQ(read(sv[0], &rep, sizeof rep), sizeof rep);
    ASSERT_OK(rep.rc);
    struct stat st;
    ASSERT_EQ(fstat(crew_arena_fd(a), &st), 0);
    ASSERT_UEQ(rep.ino, st.st_ino);
    ASSERT_UEQ(rep.root, data);
    /* Both of us map every page: the child's proportional share is half. */
    ASSERT_GE(rep.rss_kb, (long)(bytes / 1024));
    ASSERT_LE(rep.pss_kb, rep.rss_kb / 2 + 64);
    close(sv[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    crew_arena_close(a);
}

/*
 * N forked readers of a frozen arena: the arena's pages are counted once
 * in the total PSS.  Measured two ways: over the arena's own mappings
 * (exact: must stay within 1% of its size) and over whole processes with
 * smaps_rollup (what a user sees; includes each child's own small stack
 * and heap pages, so the bound allows a little per process).
 */
static void test_pss_of_readers(void)
{
    enum { READERS = 4 };
    const char *env = getenv("CREW_TEST_PSS_MB");
    size_t bytes = (size_t)(env ? atoi(env) : 128) << 20;
    crew_ref data;
    crew_arena *a = filled_arena(bytes, &data);
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_EQ(read_all(a, data, bytes), 0);
    long before = rollup_pss(getpid());
    int ready[2], go[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(go), 0);
    pid_t kids[READERS];
    fflush(NULL);
    for (int i = 0; i < READERS; i++) {
        kids[i] = fork();
        ASSERT_GE(kids[i], 0);
        if (kids[i] == 0) {
            close(go[1]); /* or the parent's close would never reach us */
            char rc = (char)read_all(a, data, bytes), ch;
            if (write(ready[1], &rc, 1) != 1 || read(go[0], &ch, 1) < 0)
                _exit(1);
            _exit(0);
        }
    }
    for (int i = 0; i < READERS; i++) {
        char rc;
        ASSERT_EQ(read(ready[0], &rc, 1), 1);
        ASSERT_EQ(rc, 0);
    }
    long rss, pss, arena_pss = 0, total = 0;
    pid_t all[READERS + 1];
    all[0] = getpid();
    memcpy(all + 1, kids, sizeof kids);
    for (int i = 0; i <= READERS; i++) {
        range_pss(all[i], crew_arena_base(a), crew_arena_size(a), &rss, &pss);
        ASSERT_GE(rss, (long)(bytes / 1024)); /* each really mapped it all */
        arena_pss += pss;
        total += rollup_pss(all[i]);
    }
    close(go[1]);
    for (int i = 0; i < READERS; i++) {
        int status;
        ASSERT_EQ(waitpid(kids[i], &status, 0), kids[i]);
        ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    long kb = (long)(bytes / 1024);
    printf("  %d readers of %ld MiB: arena PSS %ld kB (%.2f%% over one copy), "
           "whole-process PSS +%ld kB (%.2f%%)\n",
           READERS, kb / 1024, arena_pss, 100.0 * (arena_pss - kb) / kb, total - before,
           100.0 * (total - before) / kb);
    ASSERT_LE(arena_pss, kb + kb / 100);
    /* ThreadSanitizer keeps private shadow memory for every byte a process
     * reads (several times the arena), so whole-process PSS means nothing
     * there; the exact per-mapping bound above still holds. */
    if (!UNDER_TSAN)
        ASSERT_LE(total - before, kb / 100 + READERS * 4096L); /* + 4 MiB per process */
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    crew_arena_close(a);
}

/* Which kind of read-only mapping freeze made: 's' shared or 'p' private. */
static char frozen_mapping_kind(void)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 1 << 20));
    ASSERT_NE(crew_arena_alloc(a, 10, 1), 0);
    ASSERT_OK(crew_arena_freeze(a));
    char perms[5];
    maps_perms(crew_arena_base(a), perms);
    ASSERT_EQ(perms[0], 'r');
    ASSERT_EQ(perms[1], '-');
    crew_arena_close(a);
    return perms[3];
}

static void run_all(void)
{
    test_write_after_freeze_segv();
    test_fd_over_socket();
    test_pss_of_readers();
}

/*
 * The library reads CREW_ARENA_MAP_PRIVATE once per process, so the forced
 * fallback runs in a fresh image of this program started with it set.
 */
int main(int argc, char **argv)
{
    (void)argc;
    const char *forced = getenv("CREW_ARENA_MAP_PRIVATE");
    if (forced && forced[0] == '1') {
        ASSERT_EQ(frozen_mapping_kind(), 'p');
        printf("forced fallback: MAP_PRIVATE\n");
        run_all();
        printf("test_arena_procs (forced MAP_PRIVATE): ok\n");
        return 0;
    }

    test_fork_shares_pages();
    test_child_may_not_change();
    test_freeze_busy_with_child();

    char kind = frozen_mapping_kind();
    /* Linux 6.7 allows read-only shared mappings of write-sealed memfds */
    ASSERT_EQ(kind, kernel_at_least(6, 7) ? 's' : 'p');
    printf("default read-only mapping: MAP_%s\n", kind == 's' ? "SHARED" : "PRIVATE");
    run_all();

    ASSERT_EQ(setenv("CREW_ARENA_MAP_PRIVATE", "1", 1), 0);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    TEST_FAIL_("execv /proc/self/exe failed");
}
