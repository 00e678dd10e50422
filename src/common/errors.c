/*
 * errors.c -- crew_strerror, crew_err_name and crew_version.
 *
 * crew's own codes live below CREW__EBASE; everything else is -errno and
 * is described by the C library (strerrordesc_np is thread-safe and does not
 * depend on the locale, unlike strerror).
 */
#include <stdbool.h>
#include <string.h>

#include "crew.h"

static const struct {
    int code;
    const char *name;
    const char *text;
} crew_errors[] = {
    {CREW_OK, "CREW_OK", "success"},
    {CREW_EFAILED, "CREW_EFAILED", "some tasks failed; each task's status says why"},
    {CREW_EFULL, "CREW_EFULL", "the arena is full: its capacity is exhausted"},
    {CREW_EFROZEN, "CREW_EFROZEN", "the arena is frozen and can no longer change"},
    {CREW_EEMPTY, "CREW_EEMPTY", "the snapshot file is empty"},
    {CREW_ETRUNC, "CREW_ETRUNC", "the snapshot file is truncated: shorter than its header says"},
    {CREW_EMAGIC, "CREW_EMAGIC", "not a crew snapshot (bad magic number)"},
    {CREW_EVERSION, "CREW_EVERSION", "the snapshot has a format version this build cannot read"},
    {CREW_EENDIAN, "CREW_EENDIAN", "the snapshot was written on a machine of the other byte order"},
    {CREW_EBADSIZE, "CREW_EBADSIZE", "the snapshot header is inconsistent: sizes or offsets do not fit the file"},
    {CREW_EBADROOT, "CREW_EBADROOT", "the root lies outside the arena's data (in a snapshot, or set by crew_arena_set_root)"},
    {CREW_ECHECKSUM, "CREW_ECHECKSUM", "the snapshot data does not match its checksum: the file is corrupt"},
    {CREW_ENOTSUP, "CREW_ENOTSUP", "not supported by this build or kernel"},
    {CREW_ENOTFROZEN, "CREW_ENOTFROZEN", "the arena is not frozen yet: freeze it before handing it to another process"},
    {CREW_ENOTFILE, "CREW_ENOTFILE", "not a regular file: an arena is opened from a snapshot file or a memfd, not a device, FIFO or socket"},
    {CREW_ECRASHED, "CREW_ECRASHED", "the task's worker process died by a signal (the task's detail holds it)"},
    {CREW_EEXITED, "CREW_EEXITED", "the task called exit (the task's detail holds the exit code)"},
    {CREW_EREADONLY, "CREW_EREADONLY", "the task wrote to read-only shared data (a frozen or opened arena)"},
    {CREW_ELOST, "CREW_ELOST", "the pool's worker processes are gone: its supervisor died or workers could not be kept running"},
    {CREW_EFORMAT, "CREW_EFORMAT", "the data is not in the expected format: the arena holds no catalog of data sets, or a corrupt one"},
    /* errno-valued codes whose meaning inside crew deserves a better text */
    {CREW_EINVAL, "CREW_EINVAL", "invalid argument"},
    {CREW_ENOMEM, "CREW_ENOMEM", "out of memory"},
    {CREW_EAGAIN, "CREW_EAGAIN", "resource temporarily unavailable (could not start a thread)"},
    {CREW_ENOENT, "CREW_ENOENT", "no such file or directory"},
    {CREW_EBUSY, "CREW_EBUSY", "busy: for an arena, a forked process still maps it writable"},
    {CREW_ETIMEDOUT, "CREW_ETIMEDOUT", "timed out: the task ran longer than task_timeout and was killed"},
    {CREW_E2BIG, "CREW_E2BIG", "a task's argument and result are too large for a process pool (put them in an arena)"},
    {CREW_ECANCELED, "CREW_ECANCELED", "the task was cancelled before it ran"},
    {CREW_EIO, "CREW_EIO", "input/output error (MPI: a rank's copy of the data, or a message, failed)"},
};

/*
 * Look err up: crew's table first, then the C library for -errno values
 * (sys_text gives the description or the name), then the fallback.
 */
static const char *describe(int err, bool name, const char *(*sys_text)(int), const char *none)
{
    for (size_t i = 0; i < sizeof crew_errors / sizeof crew_errors[0]; i++)
        if (crew_errors[i].code == err)
            return name ? crew_errors[i].name : crew_errors[i].text;
    if (err < 0 && err > CREW__EBASE) {
        const char *s = sys_text(-err);
        if (s)
            return s;
    }
    return none;
}

const char *crew_strerror(int err)
{
    return describe(err, false, strerrordesc_np, "unknown error");
}

const char *crew_err_name(int err)
{
    return describe(err, true, strerrorname_np, "unknown");
}

#define CREW_STR_(x) #x
#define CREW_STR(x) CREW_STR_(x)

const char *crew_version(void)
{
    return CREW_STR(CREW_VERSION_MAJOR) "." CREW_STR(CREW_VERSION_MINOR) "." CREW_STR(
        CREW_VERSION_PATCH);
}
