/*
 * snapshot.c -- snapshot files: save an arena atomically, open one in
 * O(1), adopt an arena from a file descriptor, or from a snapshot's bytes
 * already in memory.
 *
 * A snapshot is a 128-byte header, zero padding up to a page-aligned data
 * offset, then the arena's bytes (docs/SNAPSHOT.md is the reference).
 * Because the data starts on a page boundary, opening is one pread of the
 * header plus one mmap of the rest: nothing is read until touched, the
 * pages come from the page cache and are shared by every process mapping
 * the file, and a 64 GiB file opens as fast as a small one.
 *
 * The header is untrusted input: every field is range-checked with
 * overflow-safe arithmetic before anything is mapped, and each kind of bad
 * file gets its own error.  The XXH3-64 checksum covers the header and the
 * data; it is computed on every save and checked on open only when asked
 * (CREW_ARENA_VERIFY), since checking means reading the whole file.  It
 * reads with pread, not through the mapping, so a file truncated under us
 * is an error (CREW_ETRUNC) rather than a SIGBUS inside the library.
 *
 * Saving writes a temporary file in the destination's directory, fsyncs
 * it, renames it over the destination and fsyncs the directory: readers
 * and crashes see the old file or the new one, never a mix.
 *
 * A snapshot's bytes may also arrive in memory someone else mapped (a
 * shared-memory window every process of a node maps).  The same header
 * check then runs over that memory, and the arena points into it: crew
 * never maps, unmaps or writes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "arena/arena_internal.h"

#define CREW_SAVE_CHUNK ((size_t)4 << 20)  /* hashed then written while in cache */
#define CREW_VERIFY_CHUNK ((size_t)1 << 20)  /* read into a buffer, then hashed */

static int prefix_is(const void *buf, size_t len, const char *magic)
{
    return len >= 8 && memcmp(buf, magic, 8) == 0;
}

int crew__snapshot_parse(const void *buf, size_t len, uint64_t file_size,
                         crew__snap_info *info)
{
    if (file_size == 0 || len == 0)
        return CREW_EEMPTY;
    /* A short file that starts like a snapshot is truncated; else foreign. */
    if (memcmp(buf, CREW__SNAP_MAGIC, len < 8 ? len : 8) != 0)
        return CREW_EMAGIC;
    if (len < CREW__SNAP_HEADER_SIZE || file_size < CREW__SNAP_HEADER_SIZE)
        return CREW_ETRUNC;
    struct crew__snap_header h;
    memcpy(&h, buf, sizeof h);
    if (h.endian != CREW__ENDIAN_TAG)
        return h.endian == __builtin_bswap32(CREW__ENDIAN_TAG) ? CREW_EENDIAN : CREW_EMAGIC;
    if (h.version == 0 || h.version > CREW__SNAP_VERSION ||
        h.checksum_algo != CREW__SNAP_CHECKSUM_XXH3)
        return CREW_EVERSION;
    if (h.header_size != CREW__SNAP_HEADER_SIZE || h.data_offset < CREW__SNAP_HEADER_SIZE ||
        h.data_offset % CREW__SNAP_DATA_OFFSET != 0 || h.data_size < CREW_ARENA_PROLOGUE ||
        h.data_size > (UINT64_MAX >> 2) || h.data_offset > (UINT64_MAX >> 2))
        return CREW_EBADSIZE;
    uint64_t end = h.data_offset + h.data_size; /* both < 2^62: no overflow */
    if (end > file_size)
        return CREW_ETRUNC;
    if (end < file_size)
        return CREW_EBADSIZE; /* the header lies about the size */
    if (!crew__arena_root_valid(h.root, h.data_size))
        return CREW_EBADROOT;
    info->data_offset = h.data_offset;
    info->data_size = h.data_size;
    info->root = h.root;
    info->checksum = h.checksum;
    return 0;
}

int crew__prologue_parse(const void *buf, size_t len, uint64_t file_size,
                         crew__snap_info *info)
{
    if (file_size == 0 || len == 0)
        return CREW_EEMPTY;
    if (memcmp(buf, CREW__PROLOGUE_MAGIC, len < 8 ? len : 8) != 0)
        return CREW_EMAGIC;
    if (len < CREW_ARENA_PROLOGUE || file_size < CREW_ARENA_PROLOGUE)
        return CREW_ETRUNC;
    struct crew__prologue p;
    memcpy(&p, buf, sizeof p);
    if (p.endian != CREW__ENDIAN_TAG)
        return p.endian == __builtin_bswap32(CREW__ENDIAN_TAG) ? CREW_EENDIAN : CREW_EMAGIC;
    if (p.version != 1)
        return CREW_EVERSION;
    if (p.size < CREW_ARENA_PROLOGUE)
        return CREW_EBADSIZE;
    if (p.size > file_size)
        return CREW_ETRUNC;
    if (!crew__arena_root_valid(p.root, p.size))
        return CREW_EBADROOT;
    info->data_offset = 0;
    info->data_size = p.size;
    info->root = p.root;
    info->checksum = 0;
    return 0;
}

static void header_fill(struct crew__snap_header *h, uint64_t size, crew_ref root)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, CREW__SNAP_MAGIC, sizeof h->magic);
    h->endian = CREW__ENDIAN_TAG;
    h->version = CREW__SNAP_VERSION;
    h->header_size = CREW__SNAP_HEADER_SIZE;
    h->data_offset = CREW__SNAP_DATA_OFFSET;
    h->data_size = size;
    h->root = root;
    h->checksum_algo = CREW__SNAP_CHECKSUM_XXH3;
    h->writer_page = (uint32_t)crew__arena_page();
}

/* Start a checksum: the header with its checksum field zeroed. */
static XXH3_state_t *checksum_begin(const struct crew__snap_header *h)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return NULL;
    struct crew__snap_header z = *h;
    z.checksum = 0;
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, &z, sizeof z);
    return st;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/*
 * Start writing a chunk to disk now, and wait for the chunk written 32
 * chunks (128 MiB) ago: the disk works while we hash and copy the next
 * ones, so the final fsync has little left to do, and the dirty pages a
 * save leaves behind stay bounded.  (Measured on a 1 GiB save: 2.2-2.4
 * GB/s against 1.4-2.1 GB/s with fsync alone; a window of 2 chunks was
 * slower than none.)  Only a hint: errors surface in fsync.
 */
static void start_writeback(int fd, uint64_t off, size_t len)
{
    sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
    uint64_t lag = (uint64_t)CREW_SAVE_CHUNK * 32;
    if (off >= CREW__SNAP_DATA_OFFSET + lag)
        sync_file_range(fd, (off_t)(off - lag), (off_t)len,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
}

/*
 * Write header page and data to fd.  The data is hashed one chunk at a
 * time just before that chunk is written, so it is read from memory once.
 * The prologue is written fresh (size and root as of now), so every
 * snapshot's data describes itself even if the arena was never frozen.
 */
static int save_write(int fd, const crew_arena *a, uint64_t size, crew_ref root)
{
    struct crew__snap_header h;
    header_fill(&h, size, root);
    struct crew__prologue p;
    crew__arena_prologue(&p, size, root);
    XXH3_state_t *st = checksum_begin(&h);
    if (!st)
        return CREW_ENOMEM;
    XXH3_64bits_update(st, &p, sizeof p);
    int rc = pwrite_all(fd, &p, sizeof p, CREW__SNAP_DATA_OFFSET);
    for (uint64_t off = sizeof p; rc == 0 && off < size;) {
        size_t n = size - off < CREW_SAVE_CHUNK ? (size_t)(size - off) : CREW_SAVE_CHUNK;
        XXH3_64bits_update(st, a->base + off, n);
        rc = pwrite_all(fd, a->base + off, n, CREW__SNAP_DATA_OFFSET + off);
        if (rc == 0)
            start_writeback(fd, CREW__SNAP_DATA_OFFSET + off, n);
        off += n;
    }
    h.checksum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    if (rc == 0) {
        static const char zero[CREW__SNAP_DATA_OFFSET];
        rc = pwrite_all(fd, zero, sizeof zero, 0);
    }
    if (rc == 0)
        rc = pwrite_all(fd, &h, sizeof h, 0);
    if (rc == 0 && crew__sys.fsync(fd) != 0)
        rc = -errno;
    return rc;
}

/* fsync the directory holding `path`, so the rename itself is durable. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return CREW_ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -errno;
    int rc = crew__sys.fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/*
 * Create a fresh temporary file in the directory of `path`; its name goes
 * to *tmp.  The name is short and fixed in length (".crew-tmp.PID.N"), not
 * derived from the file name, so that any valid destination name works,
 * and hidden, so a stray one left by a crash does not clutter listings.
 * A file that replaces another takes over its permission bits; a new one
 * gets 0666 & ~umask, as any new file does.
 */
static int temp_open(const char *path, char **tmp)
{
    static _Atomic unsigned counter;
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t cap = dir_len + 64;
    char *name = malloc(cap);
    if (!name)
        return CREW_ENOMEM;
    memcpy(name, path, dir_len);
    int fd = -EEXIST;
    for (int attempt = 0; attempt < 100 && fd == -EEXIST; attempt++) {
        /* relaxed: only uniqueness within the process matters */
        unsigned n = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
        snprintf(name + dir_len, cap - dir_len, ".crew-tmp.%ld.%u", (long)getpid(), n);
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0)
            fd = -errno;
    }
    if (fd < 0) {
        free(name);
        return fd;
    }
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode) && fchmod(fd, old.st_mode & 07777) != 0) {
        int rc = -errno;
        close(fd);
        unlink(name);
        free(name);
        return rc;
    }
    *tmp = name;
    return fd;
}

int crew_arena_save(const crew_arena *a, const char *path)
{
    /* hidden: over caller memory this process (a worker) lacks */
    if (!a || !path || !*path || crew__arena_hidden(a))
        return CREW_EINVAL;
    uint64_t size = atomic_load_explicit(&a->used, memory_order_acquire);
    crew_ref root = atomic_load_explicit(&a->root, memory_order_relaxed);
    /* a file that open would refuse is not worth writing */
    if (!crew__arena_root_valid(root, size))
        return CREW_EBADROOT;
    char *tmp = NULL;
    int fd = temp_open(path, &tmp);
    if (fd < 0)
        return fd;
    int rc = save_write(fd, a, size, root);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = sync_dir(path); /* the file is replaced already; only durability is in doubt */
    else
        unlink(tmp);
    free(tmp);
    return rc;
}

static ssize_t pread_all(int fd, void *buf, size_t len, uint64_t off)
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

/*
 * Check the checksum of `size` data bytes at file offset `data_off`.  The
 * bytes are read with pread into a buffer rather than through the mapping:
 * if the file was truncated since its size was checked, the mapping would
 * raise SIGBUS, whereas pread comes back short.  The pages read land in
 * the page cache, where the mapping finds them.
 */
static int verify(int fd, const void *hbuf, uint64_t data_off, uint64_t size, uint64_t want)
{
    struct crew__snap_header h;
    memcpy(&h, hbuf, sizeof h);
    unsigned char *buf = malloc(CREW_VERIFY_CHUNK);
    XXH3_state_t *st = buf ? checksum_begin(&h) : NULL;
    if (!st) {
        free(buf);
        return CREW_ENOMEM;
    }
    int rc = 0;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        size_t n = size - off < CREW_VERIFY_CHUNK ? (size_t)(size - off) : CREW_VERIFY_CHUNK;
        ssize_t got = pread_all(fd, buf, n, data_off + off);
        if (got < 0)
            rc = (int)got;
        else if ((size_t)got < n)
            rc = CREW_ETRUNC;
        else
            XXH3_64bits_update(st, buf, n);
        off += n;
    }
    if (rc == 0 && XXH3_64bits_digest(st) != want)
        rc = CREW_ECHECKSUM;
    XXH3_freeState(st);
    free(buf);
    return rc;
}

/*
 * Is fd an arena's memfd?  Only a file that can carry seals has a say:
 * write- and shrink-sealed, it is a frozen arena; still open to sealing
 * (no F_SEAL_SEAL), an arena not frozen yet.  Any other file that starts
 * with the prologue magic is just not a snapshot.  Returns 1 (frozen
 * memfd), 0 (not a memfd), or CREW_ENOTFROZEN.
 */
static int memfd_state(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return 0;
    if ((seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) && (seals & F_SEAL_SHRINK))
        return 1;
    return (seals & F_SEAL_SEAL) ? 0 : CREW_ENOTFROZEN;
}

/* Read the first bytes of fd and decide what it holds. */
static int classify(int fd, unsigned char *buf, size_t *len, uint64_t *file_size,
                    crew__snap_info *info, int *is_memfd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return CREW_ENOTFILE;
    /* A memfd that may still be written (sealable, no write seal) is an
     * arena nobody froze yet, whatever its first bytes say. */
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals >= 0 && !(seals & (F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
        return CREW_ENOTFROZEN;
    *file_size = (uint64_t)st.st_size;
    if (*file_size == 0)
        return CREW_EEMPTY;
    ssize_t n = pread_all(fd, buf, CREW__SNAP_HEADER_SIZE, 0);
    if (n < 0)
        return (int)n;
    *len = (size_t)n;
    *is_memfd = prefix_is(buf, *len, CREW__PROLOGUE_MAGIC) ? memfd_state(fd) : 0;
    if (*is_memfd < 0)
        return *is_memfd;
    if (!*is_memfd)
        return crew__snapshot_parse(buf, *len, *file_size, info);
    return crew__prologue_parse(buf, *len, *file_size, info);
}

/* Open the arena held by fd, which this function owns (closes on error). */
static int open_owned(crew_arena **out, int fd, unsigned flags)
{
    unsigned char buf[CREW__SNAP_HEADER_SIZE];
    size_t len = 0;
    uint64_t file_size = 0;
    crew__snap_info info;
    int is_memfd = 0;
    int rc = classify(fd, buf, &len, &file_size, &info, &is_memfd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    /* mmap offsets must be page multiples; the data offset is a multiple
     * of 4096, which may be less than a page on some machines */
    size_t page = crew__arena_page();
    uint64_t map_off = info.data_offset & ~(uint64_t)(page - 1);
    size_t skip = (size_t)(info.data_offset - map_off);
    if (info.data_size > SIZE_MAX - skip) {
        close(fd);
        return CREW_ENOMEM;
    }
    size_t map_len = skip + (size_t)info.data_size;
    int in_space;
    unsigned char *at = crew__space_reserve(map_len, &in_space);
    unsigned char *map = at == MAP_FAILED ? at : crew__arena_map_readonly(at, map_len, fd, map_off);
    if (map == MAP_FAILED) {
        rc = -errno;
        if (at != MAP_FAILED)
            crew__space_release(at, map_len, in_space);
        close(fd);
        return rc;
    }
    if ((flags & CREW_ARENA_VERIFY) && !is_memfd)
        rc = verify(fd, buf, info.data_offset, info.data_size, info.checksum);
    if (rc == 0)
        rc = crew__arena_adopt(out, fd, map, map_len, map_off, in_space, skip, info.data_size,
                               info.root);
    if (rc < 0) {
        crew__space_release(map, map_len, in_space);
        close(fd);
    }
    return rc;
}

int crew_arena_open(crew_arena **out, const char *path, unsigned flags)
{
    if (!out || !path || (flags & ~CREW_ARENA_VERIFY))
        return CREW_EINVAL;
    /* NONBLOCK: opening a FIFO would otherwise wait for a writer (it is
     * refused as soon as fstat sees what it is); NOCTTY: a terminal named
     * by mistake must not become ours. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    (void)fcntl(fd, F_SETFL, 0); /* the fd is handed out by crew_arena_fd: make it ordinary */
    return open_owned(out, fd, flags);
}

int crew_arena_open_fd(crew_arena **out, int fd, unsigned flags)
{
    if (!out || fd < 0 || (flags & ~CREW_ARENA_VERIFY))
        return CREW_EINVAL;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return -errno;
    return open_owned(out, own, flags);
}

/*
 * The checksum of a snapshot in memory: its header with the checksum field
 * zeroed, then its data.  Unlike a file, the memory cannot shrink under
 * us (its owner keeps it mapped), so it is read in place.
 */
static int verify_memory(const unsigned char *mem, uint64_t data_off, uint64_t size,
                         uint64_t want)
{
    struct crew__snap_header h;
    memcpy(&h, mem, sizeof h);
    XXH3_state_t *st = checksum_begin(&h);
    if (!st)
        return CREW_ENOMEM;
    XXH3_64bits_update(st, mem + data_off, (size_t)size);
    int rc = XXH3_64bits_digest(st) == want ? 0 : CREW_ECHECKSUM;
    XXH3_freeState(st);
    return rc;
}

int crew_arena_open_memory(crew_arena **out, const void *mem, size_t size, unsigned flags)
{
    /* The data starts at a multiple of 4096 from mem, and allocations may
     * ask CREW_ARENA_MAX_ALIGN of their address: only so aligned a mem
     * gives every ref the alignment it had in the arena that was saved. */
    if (!out || !mem || (flags & ~CREW_ARENA_VERIFY) ||
        (uintptr_t)mem % CREW_ARENA_MAX_ALIGN != 0 || size > UINTPTR_MAX - (uintptr_t)mem)
        return CREW_EINVAL;
    crew__snap_info info;
    size_t len = size < CREW__SNAP_HEADER_SIZE ? size : CREW__SNAP_HEADER_SIZE;
    int rc = crew__snapshot_parse(mem, len, size, &info);
    if (rc == 0 && (flags & CREW_ARENA_VERIFY))
        rc = verify_memory(mem, info.data_offset, info.data_size, info.checksum);
    if (rc < 0)
        return rc;
    /* parse checked data_offset + data_size == size: both fit in size_t */
    return crew__arena_adopt(out, -1, (unsigned char *)(uintptr_t)mem, size, 0, 0,
                             (size_t)info.data_offset, info.data_size, info.root);
}
