/*
 * test.h -- the few assertion macros every test uses.
 *
 * Each test is one executable (ctest runs each in its own process, with a
 * timeout), so a crash in one cannot hide another.  A failed assertion
 * prints the file, the line, the expression and both values, then exits 1.
 * Exit 77 means "skipped" (for example: the kernel lacks a feature).
 */
#ifndef CREW_TEST_H
#define CREW_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
