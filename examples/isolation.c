/*
 * isolation.c -- one bad record must cost one task, not the run.
 *
 * A frozen arena holds 2,000 records.  A "legacy parser" (the task) reads
 * one record each; a few records are poisoned so that the parser
 * dereferences a bad pointer, aborts, calls exit(), or loops forever --
 * the kinds of failure real C libraries have.  Under a process pool with a
 * timeout every other record still yields its result, and each bad one
 * gets a status that says what happened.  The results are checked against
 * a serial computation of the good records.
 *
 *   isolation [RECORDS]
 */
#include <crew.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GOOD, SEGFAULT, ABORT, EXIT, HANG };

typedef struct record {
    uint32_t kind;   /* GOOD, or how this record breaks the parser */
    uint32_t len;
    uint64_t value[16];
} record;

static uint64_t checksum(const record *r)
{
    uint64_t h = 1469598103934665603u;
    for (uint32_t i = 0; i < r->len; i++)
        h = (h ^ r->value[i]) * 1099511628211u;
    return h;
}

/* The parser of one record: what a fragile library call looks like. */
static int parse(const void *shared, const void *arg, void *result)
{
    const record *r = (const record *)shared + *(const uint32_t *)arg;
    switch (r->kind) {
    case SEGFAULT: {
        volatile uint64_t *bad = (uint64_t *)(uintptr_t)r->value[0];
        *(uint64_t *)result = *bad; /* value[0] is not a pointer */
        break;
    }
    case ABORT:
        abort();
    case EXIT:
        exit(3);
    case HANG:
        for (volatile int spin = 1; spin;)
            ;
        break;
    default:
        *(uint64_t *)result = checksum(r);
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 2000;
    if (n < 100 || n > 1000000) {
        fprintf(stderr, "usage: isolation [RECORDS: 100..1000000]\n");
        return 2;
    }
    crew_arena *a;
    int rc = crew_arena_create(&a, (size_t)n * sizeof(record) + 4096);
    crew_ref ref = rc == 0 ? CREW_ARENA_ARRAY(a, record, n) : 0;
    if (!ref) {
        fprintf(stderr, "isolation: arena: %s\n", crew_strerror(rc ? rc : CREW_ENOMEM));
        return 1;
    }
    record *recs = CREW_ARENA_PTR(a, record, ref);
    uint64_t seed = 42;
    for (uint32_t i = 0; i < n; i++) {
        recs[i].len = 1 + i % 16;
        for (uint32_t k = 0; k < 16; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            recs[i].value[k] = seed >> 1 | 1; /* odd: never a valid pointer */
        }
        /* one record in 100 is poisoned, in rotating ways */
        recs[i].kind = i % 100 == 37 ? 1 + (i / 100) % 4 : GOOD;
    }
    crew_arena_freeze(a);

    crew_task *tasks = calloc(n, sizeof *tasks);
    uint32_t *index = calloc(n, sizeof *index);
    uint64_t *out = calloc(n, sizeof *out);
    if (!tasks || !index || !out)
        return 1;
    for (uint32_t i = 0; i < n; i++) {
        index[i] = i;
        tasks[i] = (crew_task){.fn = parse, .arg = &index[i], .arg_size = sizeof index[i],
                               .result = &out[i], .result_size = sizeof out[i]};
    }
    crew *pool;
    crew_config cfg = {.isolation = CREW_PROCESSES, .task_timeout = 0.5};
    rc = crew_open(&pool, &cfg);
    if (rc < 0) {
        fprintf(stderr, "isolation: crew_open: %s\n", crew_strerror(rc));
        return 1;
    }
    rc = crew_run(pool, recs, tasks, n, NULL);
    crew_close(pool);

    unsigned ok = 0, wrong = 0, by_status[5] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const crew_task *t = &tasks[i];
        unsigned want = recs[i].kind;
        int expect = want == GOOD       ? 0
                     : want == HANG     ? CREW_ETIMEDOUT
                     : want == EXIT     ? CREW_EEXITED
                                        : CREW_ECRASHED;
        if (t->status != expect || (want == GOOD && out[i] != checksum(&recs[i])) ||
            (want == SEGFAULT && t->detail != SIGSEGV) || (want == ABORT && t->detail != SIGABRT) ||
            (want == EXIT && t->detail != 3)) {
            wrong++;
            fprintf(stderr, "record %u: status %s detail %d, expected %s\n", i,
                    crew_err_name(t->status), t->detail, crew_err_name(expect));
        }
        ok += t->status == 0;
        by_status[want]++;
    }
    printf("%u records on %u worker processes: %u parsed, %u segfaults, %u aborts, "
           "%u exits, %u hangs (killed after 0.5 s); crew_run: %s\n",
           n, crew_usable_cpus(), ok, by_status[SEGFAULT], by_status[ABORT], by_status[EXIT],
           by_status[HANG], crew_err_name(rc));
    printf("every result checked against a serial parse: %s\n", wrong ? "MISMATCH" : "identical");
    free(tasks);
    free(index);
    free(out);
    crew_arena_close(a);
    return wrong || rc != CREW_EFAILED ? 1 : 0;
}
