/*
 * Description: crew_mpi_data_open as each rank sees it, for
 * tests/mpi/test_hosts.sh, which runs this program on ranks spread over
 * several hosts (network namespaces) and compares its report with what it
 * works out itself from the snapshot file.
 *
 * Usage: hosts_data PATH [verify].  Every rank opens PATH (its own view of
 * it) with crew_mpi_data_open; rank 0 prints "nodes K", the number of
 * nodes that MPI_COMM_TYPE_SHARED finds, then one line per rank, in rank
 * order:
 *
 *   RANK HOST node LEADER broadcast B size BYTES crc CRC32 copies C
 *   RANK HOST node LEADER error CREW_E...
 *
 * LEADER is the lowest world rank on the rank's node; B is
 * crew_mpi_data_broadcast; BYTES and CRC32 (zlib's CRC-32, in hex) are
 * those of the arena's bytes (crew_arena_base, crew_arena_size); C is how
 * many copies of them the node holds: the PSS of the pages behind the
 * arena summed over the node's ranks, in units of the arena's size,
 * rounded.  The program judges nothing: it exits 0 whenever MPI does.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "arena_util.h"
#include "crew.h"
#include "crew_mpi.h"

#define LINE 256
#define MAX_RANKS 64

/* CRC-32 as zlib computes it (reflected, polynomial 0xEDB88320), so that
 * the test can check it with Python's zlib.crc32. */
static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

int main(int argc, char **argv)
{
    int provided, rank, size;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "verify") != 0)) {
        if (rank == 0)
            fprintf(stderr, "usage: hosts_data PATH [verify]\n");
        MPI_Finalize();
        return 2;
    }
    unsigned flags = argc == 3 ? CREW_ARENA_VERIFY : 0;
    if (size > MAX_RANKS) {
        if (rank == 0)
            fprintf(stderr, "hosts_data: at most %d ranks\n", MAX_RANKS);
        MPI_Finalize();
        return 2;
    }

    /* The nodes as MPI sees them: the test is worth nothing on one. */
    MPI_Comm node;
    int node_rank, leader = rank, leaders = 0;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &node_rank);
    MPI_Bcast(&leader, 1, MPI_INT, 0, node);
    int is_leader = node_rank == 0;
    MPI_Allreduce(&is_leader, &leaders, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);

    char host[128] = "";
    gethostname(host, sizeof host - 1);
    char line[LINE];
    int n = snprintf(line, sizeof line, "%d %s node %d ", rank, host, leader);

    crew_mpi_data *d = NULL;
    int rc = crew_mpi_data_open(MPI_COMM_WORLD, argv[1], flags, &d);
    /* Every rank takes part in the node's sum, whatever its outcome. */
    long pss = 0, rss = 0, node_pss = 0;
    const crew_arena *a = crew_mpi_data_arena(d);
    if (rc == 0) {
        size_t bytes = crew_arena_size(a);
        uint32_t crc = crc32_of(crew_arena_base(a), bytes);
        range_pss(getpid(), crew_arena_base(a), bytes, &rss, &pss);
        MPI_Allreduce(&pss, &node_pss, 1, MPI_LONG, MPI_SUM, node);
        long copies = (long)(((double)node_pss * 1024 + (double)bytes / 2) / (double)bytes);
        snprintf(line + n, sizeof line - (size_t)n, "broadcast %d size %zu crc %08x copies %ld",
                 crew_mpi_data_broadcast(d), bytes, (unsigned)crc, copies);
    } else {
        MPI_Allreduce(&pss, &node_pss, 1, MPI_LONG, MPI_SUM, node);
        snprintf(line + n, sizeof line - (size_t)n, "error %s", crew_err_name(rc));
    }

    static char all[MAX_RANKS][LINE];
    MPI_Gather(line, LINE, MPI_CHAR, all, LINE, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("nodes %d\n", leaders);
        for (int r = 0; r < size; r++)
            printf("%s\n", all[r]);
        fflush(stdout);
    }
    crew_mpi_data_close(d);
    MPI_Comm_free(&node);
    MPI_Finalize();
    return 0;
}
