#include "common.h"
static int sq(const void *sh, const void *arg, void *res) { (void)sh; int x = *(const int *)arg; *(int *)res = x * x; return 0; }
static int crash(const void *sh, const void *arg, void *res) { (void)sh;(void)arg;(void)res; raise(SIGSEGV); return 0; }
static void body(void *ctx, size_t lo, size_t hi) { (void)ctx;(void)lo;(void)hi; }
int main(void) {
    crew *p; crew_config cfg = {.workers = 2, .isolation = CREW_PROCESSES};
    CHECK(crew_open(&p, &cfg) == 0);
    enum { N = 20000 };
    static crew_task t[N]; static int a[N], r[N];
    for (int i = 0; i < N; i++) { a[i] = i; t[i] = (crew_task){.fn = sq, .arg = &a[i], .arg_size = sizeof(int), .result = &r[i], .result_size = sizeof(int)}; }
    t[5].fn = crash;
    int rc = crew_run(p, NULL, t, N, NULL);
    printf("run rc=%d t5=%d detail=%d r[7]=%d r[N-1]=%d\n", rc, t[5].status, t[5].detail, r[7], r[N-1]);
    for (int i = 0; i < N; i++) if (i != 5 && (t[i].status || r[i] != i * i)) { printf("bad %d\nBUG\n", i); return 1; }
    printf("for rc=%d\n", crew_for(p, 0, 1000000, 0, body, NULL));
    crew_close(p);
    printf("ok\n");
    return 0;
}
