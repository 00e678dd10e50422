/*
 * sys.c -- the table through which crew allocates memory, starts threads
 * and makes the system calls that build, grow and seal an arena.
 *
 * Out of memory, "cannot start a thread" and a failing mmap are error paths
 * like any other, and an error path that is never run is a bug waiting.
 * Every allocation and thread start in the scheduler, every mmap,
 * ftruncate, fcntl and memfd_create of the arena code, and the fsyncs of a
 * snapshot save go through crew__sys, so a test can swap in functions that
 * fail on the k-th call
 * and check that each failure is reported, cleaned up and leaves the
 * library usable.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

static int default_thread_create(pthread_t *t, size_t stack_size, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_attr_setstacksize(&attr, stack_size);
    if (rc == 0)
        rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

static int default_fcntl(int fd, int cmd, int arg)
{
    return fcntl(fd, cmd, arg);
}

static int default_memfd_create(const char *name, unsigned flags)
{
    return memfd_create(name, flags);
}

crew__sys_table crew__sys = {
    .malloc = malloc,
    .calloc = calloc,
    .aligned_alloc = aligned_alloc,
    .thread_create = default_thread_create,
    .mmap = mmap,
    .ftruncate = ftruncate,
    .fcntl = default_fcntl,
    .memfd_create = default_memfd_create,
    .fsync = fsync,
};
