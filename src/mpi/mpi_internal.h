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

#endif
