/*
 * test.h -- the few assertion macros every test uses.
 *
 * Each test is one executable (ctest runs each in its own process, with a
 * timeout), so a crash in one cannot hide another.  A failed assertion
 * prints the file, the line, the expression and both values, then exits 1.
 * Exit 77 means "skipped" (for example: the kernel lacks a feature).
 * Below the assertions: small helpers several tests share (TEST_/test_).
 */
#ifndef CREW_TEST_H
#define CREW_TEST_H

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_FAIL_(...)                                                      \
    do {                                                                     \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                      \
        fprintf(stderr, __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                 \
        exit(1);                                                             \
    } while (0)

#define ASSERT(cond)                                                         \
    do {                                                                     \
        if (!(cond)) TEST_FAIL_("assertion failed: %s", #cond);              \
    } while (0)

#define ASSERT_OP_(a, op, b, fmt, type)                                      \
    do {                                                                     \
        type a_ = (type)(a);                                                 \
        type b_ = (type)(b);                                                 \
        if (!(a_ op b_))                                                     \
            TEST_FAIL_("%s %s %s: " fmt " vs " fmt, #a, #op, #b, a_, b_);    \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_OP_(a, ==, b, "%" PRId64, int64_t)
#define ASSERT_NE(a, b) ASSERT_OP_(a, !=, b, "%" PRId64, int64_t)
#define ASSERT_LT(a, b) ASSERT_OP_(a, <, b, "%" PRId64, int64_t)
#define ASSERT_LE(a, b) ASSERT_OP_(a, <=, b, "%" PRId64, int64_t)
#define ASSERT_GT(a, b) ASSERT_OP_(a, >, b, "%" PRId64, int64_t)
#define ASSERT_GE(a, b) ASSERT_OP_(a, >=, b, "%" PRId64, int64_t)
#define ASSERT_UEQ(a, b) ASSERT_OP_(a, ==, b, "%" PRIu64, uint64_t)
#define ASSERT_PTR_EQ(a, b) ASSERT_OP_(a, ==, b, "%p", const void *)
#define ASSERT_NULL(a) ASSERT_PTR_EQ(a, NULL)
#define ASSERT_NOT_NULL(a) ASSERT_OP_(a, !=, NULL, "%p", const void *)
#define ASSERT_STR_EQ(a, b)                                                  \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (strcmp(a_, b_) != 0)                                             \
            TEST_FAIL_("%s == %s: \"%s\" vs \"%s\"", #a, #b, a_, b_);        \
    } while (0)

/* ASSERT_OK(call): the call returned 0; otherwise print crew_strerror. */
#define ASSERT_OK(call)                                                      \
    do {                                                                     \
        int rc_ = (call);                                                    \
        if (rc_ != 0)                                                        \
            TEST_FAIL_("%s returned %d (%s)", #call, rc_, crew_strerror(rc_)); \
    } while (0)

#define TEST_SKIP(...)                                                       \
    do {                                                                     \
        fprintf(stderr, "skip: " __VA_ARGS__);                               \
        fputc('\n', stderr);                                                 \
        exit(77);                                                            \
    } while (0)

/* TEST_SANITIZED: 1 in an address- or thread-sanitizer build (tests shrink their sizes), else 0. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

/* test_mix(x): a 64-bit hash (the murmur3 finaliser) for reproducible test data. */
static inline uint64_t test_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

/* test_now_s(): seconds on the monotonic clock. */
static inline double test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* test_raise_max(most, now): atomically *most = max(*most, now). */
static inline void test_raise_max(atomic_int *most, int now)
{
    int m = atomic_load(most);
    while (now > m && !atomic_compare_exchange_weak(most, &m, now))
        ;
}

/* TEST_THREADS_OK(n, fn, arg): run n (<= 16) threads of fn(arg) at once; each must return NULL. */
#define TEST_THREADS_OK(n, fn, arg)                                          \
    do {                                                                     \
        pthread_t t_[16];                                                    \
        int n_ = (n);                                                        \
        ASSERT(n_ >= 0 && n_ <= 16);                                         \
        for (int i_ = 0; i_ < n_; i_++)                                      \
            ASSERT_EQ(pthread_create(&t_[i_], NULL, (fn), (arg)), 0);        \
        for (int i_ = 0; i_ < n_; i_++) {                                    \
            void *ret_;                                                      \
            ASSERT_EQ(pthread_join(t_[i_], &ret_), 0);                       \
            ASSERT_NULL(ret_);                                               \
        }                                                                    \
    } while (0)

/*
 * test_watchdog: a thread that fails the test (hung(step), then _exit(1))
 * when one step lasts longer than `secs` seconds, so that a deadlock names
 * where it happened instead of ending in a bare ctest timeout.
 * test_watchdog_start begins it, test_watchdog_step names the next step (and
 * restarts the clock), test_watchdog_stop ends and joins it.
 */
typedef struct test_watchdog {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    const char *step;
    int done;
    int secs;
    void (*hung)(const char *step); /* says what hung; the watchdog then exits 1 */
} test_watchdog;

static inline void *test_watchdog_main(void *arg)
{
    test_watchdog *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->done) {
        const char *step = w->step;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += w->secs;
        while (!w->done && w->step == step)
            if (pthread_cond_timedwait(&w->cond, &w->lock, &until) != 0 && w->step == step &&
                !w->done) {
                w->hung(step);
                _exit(1);
            }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* test_watchdog_start(w, secs, first_step, hung): start w's thread. */
static inline void test_watchdog_start(test_watchdog *w, int secs, const char *first_step,
                                       void (*hung)(const char *step))
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->step = first_step;
    w->done = 0;
    w->secs = secs;
    w->hung = hung;
    ASSERT_EQ(pthread_create(&w->thread, NULL, test_watchdog_main, w), 0);
}

/* test_watchdog_step(w, name): the next step begins; it has w->secs seconds. */
static inline void test_watchdog_step(test_watchdog *w, const char *name)
{
    pthread_mutex_lock(&w->lock);
    w->step = name;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* test_watchdog_stop(w): every step finished; end and join w's thread. */
static inline void test_watchdog_stop(test_watchdog *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    ASSERT_EQ(pthread_join(w->thread, NULL), 0);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

#endif
