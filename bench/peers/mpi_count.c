/*
 * mpi_count.c -- counts the bytes crew's MPI engine sends, for bench_mpi.
 *
 * A library preloaded into an MPI program (mpirun -x LD_PRELOAD=...): it
 * defines MPI_Isend, the one call the engine sends tasks and results with
 * (src/mpi/engine.c, send_bytes), counts messages and bytes per tag of
 * crew's protocol, and passes the call on to PMPI_Isend (the MPI
 * standard's profiling interface).  Collectives are not counted: Open MPI
 * runs them below the MPI_ symbols, and crew uses them only once per run,
 * never per task.
 *
 * Readout: crew_bench_mpi_counts() (found with dlsym by mpi_job), and, when
 * CREW_BENCH_MPI_COUNT=PREFIX is set, a file PREFIX.<rank> written by
 * MPI_Finalize: one line per tag, "name messages bytes".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpi/mpi_internal.h"
#include "mpi_bench.h"

/* Only the thread that calls MPI touches these (crew needs no more than
 * MPI_THREAD_FUNNELED), so plain counters do. */
static uint64_t counts[MPI_COUNT_TAGS][2];

static int slot_of(int tag)
{
    switch (tag) {
    case CREW__TAG_CHUNK: return MPI_COUNT_CHUNK;
    case CREW__TAG_RESULTS: return MPI_COUNT_RESULTS;
    case CREW__TAG_CANCEL: return MPI_COUNT_CANCEL;
    case CREW__TAG_STOP: return MPI_COUNT_STOP;
    default: return MPI_COUNT_OTHER;
    }
}

int MPI_Isend(const void *buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm,
              MPI_Request *req)
{
    int size = 0;
    PMPI_Type_size(type, &size);
    int k = slot_of(tag);
    counts[k][0]++;
    counts[k][1] += (uint64_t)count * (uint64_t)size;
    return PMPI_Isend(buf, count, type, dest, tag, comm, req);
}

__attribute__((visibility("default"))) void crew_bench_mpi_counts(uint64_t out[MPI_COUNT_TAGS][2])
{
    for (int k = 0; k < MPI_COUNT_TAGS; k++)
        out[k][0] = counts[k][0], out[k][1] = counts[k][1];
}

int MPI_Finalize(void)
{
    const char *prefix = getenv("CREW_BENCH_MPI_COUNT");
    if (prefix && *prefix) {
        int rank = 0;
        PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
        char path[4200];
        snprintf(path, sizeof path, "%s.%d", prefix, rank);
        FILE *f = fopen(path, "we");
        if (f) {
            for (int k = 0; k < MPI_COUNT_TAGS; k++)
                fprintf(f, "%s %llu %llu\n", mpi_count_name(k), (unsigned long long)counts[k][0],
                        (unsigned long long)counts[k][1]);
            fclose(f);
        }
    }
    return PMPI_Finalize();
}
