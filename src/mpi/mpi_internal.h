/*
 * mpi_internal.h -- what the parts of libcrew_mpi share.
 */
#ifndef CREW_MPI_INTERNAL_H
#define CREW_MPI_INTERNAL_H

#include "crew_mpi.h"

/* Message tags of crew's protocol, kept away from a caller's own small
 * tags on the same communicator (crew duplicates it anyway). */
enum {
    CREW__TAG_CHUNK = 0x6372,  /* root -> rank: tasks */
    CREW__TAG_RESULTS,         /* rank -> root: statuses and result bytes */
    CREW__TAG_CANCEL,          /* root -> rank: drop the tasks not started */
    CREW__TAG_STOP,            /* root -> rank: no more tasks */
    CREW__TAG_DATA,            /* root -> node leaders: snapshot bytes */
};

/* shm.c */

/*
 * crew__mpi_shm_track -- keep a record of the MPI library's shared-memory
 * files that this process maps, so that a later run can remove them if
 * this job dies without cleaning up (Open MPI leaves
 * /dev/shm/vader_segment.* behind when a rank is killed).
 * The record is `dir`/crew-mpi.<pid> (dir NULL: /dev/shm where it is
 * writable, else $TMPDIR or /tmp), held with flock(LOCK_EX) for the life
 * of the process (and of its forked children, which share the lock).
 * The first call in a process first sweeps `dir` (crew__mpi_shm_sweep),
 * then makes the record; every call brings the list up to date with
 * /proc/self/maps (call it again after mapping a new window).  Removed at
 * exit after MPI_Finalize; kept for the next sweep when the process exits
 * without finalising (as a failed rank does).  Call it after MPI_Init.
 * Returns 0, or -errno when no record could be made; tracking is best
 * effort, and callers may ignore the error.
 * Thread-safe.
 */
int crew__mpi_shm_track(const char *dir);

/*
 * crew__mpi_shm_sweep -- remove the stale files of dead jobs: for each
 * record in `dir` (NULL: as above) owned by the calling user whose lock is
 * free, the files it lists that still are the same files (device and
 * inode), belong to the calling user and are not listed by a live record;
 * then the record.  Records whose lock is held are left alone.
 * Returns how many files (records included) were removed, or -errno when
 * `dir` cannot be read.  Thread-safe.
 */
int crew__mpi_shm_sweep(const char *dir);

#endif
