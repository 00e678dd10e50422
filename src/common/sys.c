/*
 * sys.c -- the table through which crew allocates memory and starts threads.
 *
 * Out of memory and "cannot start a thread" are error paths like any other,
 * and an error path that is never run is a bug waiting.  Every allocation
 * and thread start in the library goes through crew__sys, so a test can
 * swap in functions that fail on the k-th call and check that each failure
 * is reported, cleaned up and leaves the library usable.
 */
#include <stdlib.h>

#include "internal.h"

static int default_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg);
}

crew__sys_table crew__sys = {
    .malloc = malloc,
    .calloc = calloc,
    .aligned_alloc = aligned_alloc,
    .thread_create = default_thread_create,
};
