/*
 * Description: crew_arena_save is atomic.  A child saves new versions of a
 * snapshot in a loop and is killed (SIGKILL) at random moments; after
 * every kill the file must open with a good checksum and hold one whole
 * version, never a mix or a torn file.
 */
#include <fcntl.h>
#include <time.h>

#include "arena_util.h"

enum { ROUNDS = 30, WORDS = 256 * 1024 }; /* 2 MiB per version */

static crew_arena *version(uint64_t v)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 4u << 20));
    crew_ref r = CREW_ARENA_ARRAY(a, uint64_t, WORDS);
    uint64_t *w = CREW_ARENA_PTR(a, uint64_t, r);
    for (size_t i = 0; i < WORDS; i++)
        w[i] = v;
    crew_arena_set_root(a, r);
    return a;
}

/* Which version the file holds; fails the test for a bad or mixed file. */
static uint64_t check_file(const char *path)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_open(&a, path, CREW_ARENA_VERIFY));
    const uint64_t *w = CREW_ARENA_GET_ARRAY(a, uint64_t, crew_arena_root(a), WORDS);
    ASSERT_NOT_NULL(w);
    for (size_t i = 0; i < WORDS; i++)
        ASSERT_UEQ(w[i], w[0]);
    uint64_t v = w[0];
    crew_arena_close(a);
    return v;
}

static void saver(const char *path, uint64_t first, int report)
{
    for (uint64_t v = first;; v++) {
        crew_arena *a = version(v);
        if (crew_arena_save(a, path) != 0)
            _exit(1);
        crew_arena_close(a);
        if (report >= 0 && v == first && write(report, "s", 1) != 1)
            _exit(1);
    }
}

int main(void)
{
    char *dir = scratch_dir();
    char path[600];
    snprintf(path, sizeof path, "%s/atomic.crew", dir);
    crew_arena *a = version(0);
    ASSERT_OK(crew_arena_save(a, path));
    crew_arena_close(a);

    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    uint64_t last = 0, first = 1;
    int versions_seen = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int p[2];
        ASSERT_EQ(pipe(p), 0);
        fflush(NULL);
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            close(p[0]);
            /* every other round: killed while still in its first save */
            saver(path, first, round % 2 ? p[1] : -1);
        }
        close(p[1]);
        char ch;
        if (round % 2)
            ASSERT_EQ(read(p[0], &ch, 1), 1); /* at least one save done */
        close(p[0]);
        struct timespec d = {0, (long)(rand() % 20000) * 1000}; /* 0-20 ms */
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        uint64_t v = check_file(path);
        ASSERT(v == last || v >= first); /* old file or one of the new ones */
        if (v != last)
            versions_seen++;
        last = v;
        first = v + 1000000; /* the next child's versions are all new */
    }
    printf("test_snapshot_crash: %d of %d kills came after a new version\n", versions_seen,
           ROUNDS);
    ASSERT_GT(versions_seen, 0); /* the rounds that waited for a save */
    cleanup_dir(dir);
    printf("test_snapshot_crash: ok\n");
    return 0;
}
