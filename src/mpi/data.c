/*
 * data.c -- one copy of a snapshot per node: crew_mpi_data_open and friends.
 *
 * The idea: a node whose ranks can all read the snapshot maps the file, so
 * the page cache holds its one copy.  A node where some rank cannot (the
 * file lives only on the root's disk, or that rank's copy differs from the
 * root's) gets the root's bytes instead, broadcast once into an MPI-3
 * shared-memory window that its leader allocates and every rank of the
 * node maps; crew_arena_open_memory then opens the arena on the window
 * without a copy.  Nothing is written to any node's disk.
 *
 * The steps, every one collective on a private duplicate of the caller's
 * communicator (so crew's messages never meet the caller's):
 *
 *   1. every rank opens its own path; the root (rank 0) broadcasts its
 *      result and its snapshot header, so that a rank whose file is not
 *      the same snapshot counts as one that could not open it;
 *   2. ranks that share memory form a node communicator, keyed by rank so
 *      that the root leads its node; the node agrees whether all of it has
 *      the file;
 *   3. nodes that lack it allocate the window (the leader holds all of
 *      it), and the leaders of those nodes plus the root form the
 *      communicator the bytes travel on, in pieces of 64 MiB (the count of
 *      one MPI_Bcast is an int);
 *   4. a fence makes the leader's writes visible to its node; every rank
 *      there opens the arena on the window, and the ranks agree on the
 *      outcome, so that every rank returns the same code.
 *
 * MPI errors are returned, not fatal, on crew's communicators: a window
 * that cannot be allocated is CREW_ENOMEM on every rank, not an abort.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpi/mpi_internal.h"

#define DATA_ROOT 0
#define HEADER_BYTES 128                        /* a snapshot header (docs/SNAPSHOT.md) */
/* One read and one MPI_Bcast: far below the int count of an MPI call, and
 * large enough that the cost per message vanishes. */
#define PIECE ((size_t)64 << 20)

struct crew_mpi_data {
    MPI_Comm comm;        /* our duplicate of the caller's communicator */
    MPI_Comm node;        /* the ranks that share memory with this one */
    MPI_Win win;          /* the node's window, or MPI_WIN_NULL when mapped from the file */
    crew_arena *arena;
    int broadcast;
};

/* The state of one call, so that every exit path frees the same things. */
typedef struct open_state {
    MPI_Comm comm, node, leaders;
    MPI_Win win;
    crew_arena *file;     /* this rank's own open of its path */
    crew_arena *arena;    /* the arena opened on the window */
    int rank, node_rank;
    unsigned char header[HEADER_BYTES];   /* the root's header, on every rank */
    uint64_t file_size;                   /* the root's file size, on every rank */
    unsigned char *base;                  /* the window, on nodes that use one */
} open_state;

static void state_free(open_state *s)
{
    crew_arena_close(s->arena);
    crew_arena_close(s->file);
    if (s->win != MPI_WIN_NULL)
        MPI_Win_free(&s->win);
    if (s->leaders != MPI_COMM_NULL)
        MPI_Comm_free(&s->leaders);
    if (s->node != MPI_COMM_NULL)
        MPI_Comm_free(&s->node);
    if (s->comm != MPI_COMM_NULL)
        MPI_Comm_free(&s->comm);
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* The first bytes and the size of the file behind an opened snapshot. */
static int read_header(const crew_arena *a, unsigned char *header, uint64_t *size)
{
    int fd = crew_arena_fd(a);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return CREW_EIO;
    memset(header, 0, HEADER_BYTES);
    if (pread_full(fd, header, HEADER_BYTES, 0) < HEADER_BYTES)
        return CREW_EIO;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Code every rank returns: the most serious one any rank has.  Ordered so
 * that the outcome does not depend on which rank failed. */
static int agree(MPI_Comm comm, int rc)
{
    int mine = rc == 0 ? 0 : rc == CREW_EINVAL ? 3 : rc == CREW_ENOMEM ? 2 : 1;
    int all = 3;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return CREW_EIO;
    static const int code[] = {0, CREW_EIO, CREW_ENOMEM, CREW_EINVAL};
    return code[all];
}

/*
 * Step 1.  Open this rank's path, learn the root's outcome and header.
 * Returns 0 with s->file set when this rank has the root's snapshot,
 * 1 when it must be sent the bytes, or the error every rank returns.
 */
static int open_own(open_state *s, const char *path, unsigned flags, int bad_args)
{
    int rc = bad_args ? CREW_EINVAL : crew_arena_open(&s->file, path, flags);
    unsigned char mine[HEADER_BYTES] = {0};
    uint64_t my_size = 0;
    if (rc == 0 && read_header(s->file, mine, &my_size) != 0) {
        crew_arena_close(s->file);
        s->file = NULL;
        rc = CREW_EIO;
    }
    /* The root's outcome first: when it has no data, nobody has. */
    int any_bad = bad_args, root_rc = rc;
    if (MPI_Allreduce(MPI_IN_PLACE, &any_bad, 1, MPI_INT, MPI_MAX, s->comm) != MPI_SUCCESS ||
        MPI_Bcast(&root_rc, 1, MPI_INT, DATA_ROOT, s->comm) != MPI_SUCCESS)
        return CREW_EIO;
    if (any_bad)
        return CREW_EINVAL;
    if (root_rc != 0)
        return root_rc;
    if (s->rank == DATA_ROOT) {
        memcpy(s->header, mine, HEADER_BYTES);
        s->file_size = my_size;
    }
    if (MPI_Bcast(s->header, HEADER_BYTES, MPI_BYTE, DATA_ROOT, s->comm) != MPI_SUCCESS ||
        MPI_Bcast(&s->file_size, 1, MPI_UINT64_T, DATA_ROOT, s->comm) != MPI_SUCCESS)
        return CREW_EIO;
    /* The header holds the size, root and checksum of the data: a file
     * with another header is another snapshot, not the root's. */
    if (rc == 0 && (my_size != s->file_size || memcmp(mine, s->header, HEADER_BYTES) != 0)) {
        crew_arena_close(s->file);
        s->file = NULL;
        rc = 1;
    }
    return rc == 0 ? 0 : 1;
}

/*
 * Step 3: the bytes of the root's file travel to the leaders that need
 * them, piece by piece.  The root reads each piece straight into its
 * window when its own node needs one, else into `bounce` (allocated
 * beforehand, so that a failure is agreed on before anyone waits here).
 * A read error does not break the collective: the piece goes out as it
 * is and the error is reported at the end.
 */
static int move_bytes(open_state *s, unsigned char *bounce)
{
    int rc = 0;
    int fd = s->rank == DATA_ROOT ? crew_arena_fd(s->file) : -1;
    size_t total = (size_t)s->file_size;
    for (size_t off = 0; off < total;) {
        size_t n = total - off < PIECE ? total - off : PIECE;
        unsigned char *buf = s->base ? s->base + off : bounce;
        if (fd >= 0 && rc == 0 && pread_full(fd, buf, n, off) < (ssize_t)n)
            rc = CREW_EIO;
        if (s->leaders != MPI_COMM_NULL &&
            MPI_Bcast(buf, (int)n, MPI_BYTE, DATA_ROOT, s->leaders) != MPI_SUCCESS)
            rc = CREW_EIO;
        off += n;
    }
    return rc;
}

/*
 * The node's window: all of it the leader's, its base aligned for
 * crew_arena_open_memory.  MPI promises no alignment, so the leader asks
 * for a little more and tells its node where the aligned part starts
 * (the same offset in every rank's mapping of the segment).
 */
static int window(open_state *s)
{
    const size_t align = CREW_ARENA_MAX_ALIGN;
    MPI_Aint mine = s->node_rank == 0 ? (MPI_Aint)(s->file_size + align) : 0, got_size;
    int disp;
    void *base = NULL;
    if (s->file_size > (uint64_t)(PTRDIFF_MAX - align) ||
        MPI_Win_allocate_shared(mine, 1, MPI_INFO_NULL, s->node, &base, &s->win) != MPI_SUCCESS) {
        s->win = MPI_WIN_NULL;
        return CREW_ENOMEM;
    }
    int rc = MPI_Win_shared_query(s->win, 0, &got_size, &disp, &base) == MPI_SUCCESS &&
             (uint64_t)got_size >= s->file_size + align ? 0 : CREW_ENOMEM;
    /* Every rank of the node takes part, whatever its query said. */
    long pad = rc == 0 ? (long)((align - (uintptr_t)base % align) % align) : 0;
    if (MPI_Bcast(&pad, 1, MPI_LONG, 0, s->node) != MPI_SUCCESS && rc == 0)
        rc = -EIO;
    if (rc == 0 && ((uintptr_t)base + (uintptr_t)pad) % align != 0)
        rc = -EIO;
    if (rc == 0)
        s->base = (unsigned char *)base + pad;
    return rc;
}

/*
 * Steps 2 and 3: the node communicator, the windows and the broadcast.
 * `need` is 1 when this rank must be sent the bytes.  Returns this rank's
 * outcome (not yet agreed).
 */
static int share(open_state *s, int need)
{
    if (MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, s->rank, MPI_INFO_NULL, &s->node) !=
        MPI_SUCCESS)
        return CREW_EIO;
    MPI_Comm_rank(s->node, &s->node_rank);
    int node_need = need;
    if (MPI_Allreduce(MPI_IN_PLACE, &node_need, 1, MPI_INT, MPI_MAX, s->node) != MPI_SUCCESS)
        return CREW_EIO;
    /* Key = rank: the root is rank 0 of its node, and of the leaders. */
    int sends = s->rank == DATA_ROOT || (node_need && s->node_rank == 0);
    if (MPI_Comm_split(s->comm, sends ? 0 : MPI_UNDEFINED, s->rank, &s->leaders) != MPI_SUCCESS)
        return CREW_EIO;
    int leaders = 0;
    if (s->leaders != MPI_COMM_NULL)
        MPI_Comm_size(s->leaders, &leaders);

    int rc = 0;
    if (node_need)
        rc = window(s);
    unsigned char *bounce = NULL;
    if (rc == 0 && s->rank == DATA_ROOT && !s->base && leaders > 1) {
        bounce = malloc(s->file_size < PIECE ? (size_t)s->file_size : PIECE);
        if (!bounce)
            rc = CREW_ENOMEM;
    }
    /* Before anyone waits in a broadcast: did every window come? */
    rc = agree(s->comm, rc);
    if (rc == 0 && (s->base || bounce) && s->leaders != MPI_COMM_NULL)
        rc = move_bytes(s, bounce);
    free(bounce);
    if (s->win != MPI_WIN_NULL) {
        /* The leader's stores become visible to its node: the fence is the
         * memory barrier plus the synchronisation the shared window needs. */
        if (MPI_Win_fence(0, s->win) != MPI_SUCCESS && rc == 0)
            rc = CREW_EIO;
    }
    return rc;
}

static int data_open(open_state *s, const char *path, unsigned flags, int bad_args,
                     crew_mpi_data **data)
{
    MPI_Comm own;
    if (MPI_Comm_dup(s->comm, &own) != MPI_SUCCESS) {
        s->comm = MPI_COMM_NULL;
        return CREW_ENOMEM;
    }
    s->comm = own;
    /* Failures come back as codes, so that the ranks can agree on them. */
    MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(s->comm, &s->rank);
    crew__mpi_shm_track(NULL);

    int need = open_own(s, path, flags, bad_args);
    if (need < 0)
        return need;
    int rc = share(s, need);
    if (rc == 0 && s->base) {
        rc = crew_arena_open_memory(&s->arena, s->base, (size_t)s->file_size, flags);
        /* The root's file opened, so a copy that does not means the bytes
         * came wrong (or the file changed under the root): CREW_EIO. */
        if (rc < 0 && rc != CREW_ENOMEM)
            rc = CREW_EIO;
    }
    /* Now that the window is mapped, the record lists it too. */
    crew__mpi_shm_track(NULL);
    rc = agree(s->comm, rc);
    if (rc < 0)
        return rc;
    crew_mpi_data *d = calloc(1, sizeof *d);
    if (agree(s->comm, d ? 0 : CREW_ENOMEM) < 0) {
        free(d);
        return CREW_ENOMEM;
    }
    d->comm = s->comm;
    d->node = s->node;
    d->win = s->win;
    d->broadcast = s->base != NULL;
    if (s->base) {
        d->arena = s->arena;
        s->arena = NULL;
    } else {
        d->arena = s->file;
        s->file = NULL;
    }
    s->comm = s->node = MPI_COMM_NULL;
    s->win = MPI_WIN_NULL;
    *data = d;
    return 0;
}

int crew_mpi_data_open(MPI_Comm comm, const char *path, unsigned flags, crew_mpi_data **data)
{
    int up = 0, down = 0;
    if (comm == MPI_COMM_NULL || MPI_Initialized(&up) != MPI_SUCCESS || !up ||
        MPI_Finalized(&down) != MPI_SUCCESS || down)
        return CREW_EINVAL;
    open_state s = {.comm = comm, .node = MPI_COMM_NULL, .leaders = MPI_COMM_NULL,
                    .win = MPI_WIN_NULL};
    int bad_args = !path || !data || (flags & ~CREW_ARENA_VERIFY);
    int rc = data_open(&s, path, flags, bad_args, data);
    state_free(&s);
    return rc;
}

const crew_arena *crew_mpi_data_arena(const crew_mpi_data *data)
{
    return data ? data->arena : NULL;
}

int crew_mpi_data_broadcast(const crew_mpi_data *data)
{
    return data ? data->broadcast : 0;
}

void crew_mpi_data_close(crew_mpi_data *data)
{
    if (!data)
        return;
    /* The arena goes before the window it may point into. */
    crew_arena_close(data->arena);
    if (data->win != MPI_WIN_NULL)
        MPI_Win_free(&data->win);
    MPI_Comm_free(&data->node);
    MPI_Comm_free(&data->comm);
    free(data);
}
