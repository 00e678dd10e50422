/* Resizing during a call: a worker retiring (exit 0 at the top of its
 * loop) made the supervisor abandon every descriptor other workers had
 * claimed but not yet started, and count the retirement as a restart
 * ("worker processes of this slot that died and were replaced") --
 * crew_stats reports restarts although no worker ever died.  Also checks
 * that every task ran exactly once. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
static _Atomic int stop_flag;
static crew *p;
static void *resizer(void *x)
{
    (void)x;
    unsigned s = 7;
    while (!atomic_load(&stop_flag)) {
        s = s * 1103515245 + 12345;
        crew_resize(p, 1 + (s >> 16) % 6);
        usleep((s >> 8) % 3000);
    }
    return NULL;
}
static int task(const void *sh, const void *arg, void *res)
{
    _Atomic unsigned *cnt = (_Atomic unsigned *)sh;
    size_t i = *(const size_t *)arg;
    atomic_fetch_add(&cnt[i], 1);
    if (i % 7 == 0)
        usleep(100);
    *(size_t *)res = i;
    return 0;
}
int main(void)
{
    crew_config cfg = {.workers = 3, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    size_t n = 200000;
    crew_arena *a;
    CHECK(crew_arena_create(&a, n * 4 + 4096) == 0);
    _Atomic unsigned *cnt = crew_arena_ptr(a, crew_arena_alloc(a, n * 4, 64));
    crew_task *t = calloc(n, sizeof *t);
    size_t *args = calloc(n, sizeof *args), *res = calloc(n, sizeof *res);
    for (size_t i = 0; i < n; i++) {
        args[i] = i;
        t[i] = (crew_task){.fn = task, .arg = &args[i], .arg_size = 8, .result = &res[i],
                           .result_size = 8};
    }
    pthread_t th;
    pthread_create(&th, NULL, resizer, NULL);
    size_t bad = 0;
    for (int round = 0; round < 3; round++) {
        memset((void *)cnt, 0, n * 4);
        crew_run(p, cnt, t, n, NULL);
        for (size_t i = 0; i < n; i++)
            bad += t[i].status || res[i] != i || cnt[i] != 1 || t[i].runs != 1;
    }
    atomic_store(&stop_flag, 1);
    pthread_join(th, NULL);
    crew_worker_stats st[8];
    size_t k = crew_stats(p, st, 8);
    unsigned long long restarts = 0;
    for (size_t i = 0; i < k && i < 8; i++)
        restarts += st[i].restarts;
    printf("tasks not run exactly once: %zu; restarts reported: %llu (no worker died)\n", bad,
           restarts);
    printf("%s\n", bad || restarts ? "BUG" : "ok");
    crew_close(p);
    crew_arena_close(a);
    return bad || restarts;
}
