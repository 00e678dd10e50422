/*
 * test_deque.c -- the Chase-Lev deque on its own: order, capacity, and
 * every job taken exactly once while an owner pushes and pops and thieves
 * steal at the same time (run under ThreadSanitizer in make test, where a
 * missing release/acquire pair shows up as a data race on the job).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "crew.h"
#include "internal.h"
#include "test.h"

typedef struct item {
    crew__job job;      /* first: the deque stores &item->job */
    uint64_t payload;   /* written by the owner before the push */
    atomic_int taken;
} item;

static void test_order_and_capacity(void)
{
    static crew__deque d; /* 64 KiB: not on the stack */
    static item it[CREW_DEQUE_SIZE + 1];
    crew__deque_init(&d);
    bool contended = false;
    ASSERT_NULL(crew__deque_pop(&d));
    ASSERT_NULL(crew__deque_steal(&d, &contended));
    ASSERT(crew__deque_empty(&d));
    for (int i = 0; i < 5; i++)
        ASSERT(crew__deque_push(&d, &it[i].job));
    ASSERT(!crew__deque_empty(&d));
    ASSERT_PTR_EQ(crew__deque_pop(&d), &it[4].job);             /* owner: newest */
    ASSERT_PTR_EQ(crew__deque_steal(&d, &contended), &it[0].job); /* thief: oldest */
    ASSERT_PTR_EQ(crew__deque_steal(&d, &contended), &it[1].job);
    ASSERT_PTR_EQ(crew__deque_pop(&d), &it[3].job);
    ASSERT_PTR_EQ(crew__deque_pop(&d), &it[2].job);
    ASSERT_NULL(crew__deque_pop(&d));
    ASSERT(!contended);

    /* Full at exactly CREW_DEQUE_SIZE; usable again after a steal. */
    for (int i = 0; i < CREW_DEQUE_SIZE; i++)
        ASSERT(crew__deque_push(&d, &it[i].job));
    ASSERT(!crew__deque_push(&d, &it[CREW_DEQUE_SIZE].job));
    ASSERT_PTR_EQ(crew__deque_steal(&d, &contended), &it[0].job);
    ASSERT(crew__deque_push(&d, &it[CREW_DEQUE_SIZE].job));
    ASSERT_PTR_EQ(crew__deque_pop(&d), &it[CREW_DEQUE_SIZE].job);
    for (int i = CREW_DEQUE_SIZE - 1; i >= 1; i--)
        ASSERT_PTR_EQ(crew__deque_pop(&d), &it[i].job);
    ASSERT_NULL(crew__deque_pop(&d));
}

/* ---- concurrent: one owner, several thieves ----------------------------- */

#define THIEVES 3

typedef struct shared_state {
    crew__deque d;
    item *items;
    size_t n;
    atomic_int done;          /* the owner has finished */
    atomic_size_t taken;      /* by anyone */
    atomic_size_t stolen;
} shared_state;

static void take(shared_state *s, crew__job *job)
{
    item *it = (item *)job;
    /* The payload was written before the push: a thief must see it. */
    ASSERT_UEQ(it->payload, (uint64_t)(it - s->items) * 2654435761u);
    ASSERT_EQ(atomic_fetch_add(&it->taken, 1), 0);
    atomic_fetch_add(&s->taken, 1);
}

static void *thief(void *arg)
{
    shared_state *s = arg;
    while (!atomic_load(&s->done) || !crew__deque_empty(&s->d)) {
        bool contended = false;
        crew__job *job = crew__deque_steal(&s->d, &contended);
        if (job) {
            take(s, job);
            atomic_fetch_add(&s->stolen, 1);
        }
    }
    return NULL;
}

static void owner(shared_state *s, uint64_t seed)
{
    size_t next = 0;
    while (next < s->n) {
        /* Bursts of pushes, then some pops: the deque grows and shrinks,
         * and the last-element race between pop and steal is hit often. */
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t burst = 1 + (seed >> 33) % 8;
        for (size_t k = 0; k < burst && next < s->n; k++, next++) {
            item *it = &s->items[next];
            it->payload = (uint64_t)next * 2654435761u;
            while (!crew__deque_push(&s->d, &it->job)) {
                crew__job *job = crew__deque_pop(&s->d);
                if (job)
                    take(s, job);
            }
        }
        size_t pops = (seed >> 40) % 8;
        for (size_t k = 0; k < pops; k++) {
            crew__job *job = crew__deque_pop(&s->d);
            if (!job)
                break;
            take(s, job);
        }
    }
    crew__job *job;
    while ((job = crew__deque_pop(&s->d)) != NULL)
        take(s, job);
    atomic_store(&s->done, 1);
}

static void test_concurrent(size_t n)
{
    shared_state *s = calloc(1, sizeof *s);
    ASSERT_NOT_NULL(s);
    s->items = calloc(n, sizeof *s->items);
    ASSERT_NOT_NULL(s->items);
    s->n = n;
    crew__deque_init(&s->d);
    pthread_t t[THIEVES];
    for (int i = 0; i < THIEVES; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, thief, s), 0);
    owner(s, 0x5eed + n);
    for (int i = 0; i < THIEVES; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT_UEQ(atomic_load(&s->taken), n);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(atomic_load(&s->items[i].taken), 1);
    /* Not a requirement, but a test that never saw a steal tested little. */
    if (atomic_load(&s->stolen) == 0)
        fprintf(stderr, "test_deque: note: no steals in a run of %zu\n", n);
    free(s->items);
    free(s);
}

int main(void)
{
    test_order_and_capacity();
    size_t n = TEST_SANITIZED ? 200000 : 2000000;
    for (int round = 0; round < 3; round++)
        test_concurrent(n + (size_t)round * 7919);
    puts("test_deque: ok");
    return 0;
}
