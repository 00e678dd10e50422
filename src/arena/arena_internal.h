/*
 * arena_internal.h -- what arena.c, snapshot.c and strings.c share, and
 * what the tests and the fuzz target may reach: the arena object, the two
 * on-disk/in-memory descriptions (the snapshot header and the in-arena
 * prologue), and the read-only mapping policy.
 *
 * Cross-file internals are named crew__<file>_<verb>, declared here under
 * the heading of the file that defines them.
 */
#ifndef CREW_ARENA_INTERNAL_H
#define CREW_ARENA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "crew.h"
#include "internal.h"

struct crew_arena {
    unsigned char *base;        /* arena byte 0; page-aligned; never moves */
    uint64_t pools_before;      /* caller's memory: process pools opened before it (space.c) */
    unsigned char *map;         /* start of the address range this arena owns */
    size_t map_len;             /* its length (munmap'ed by close) */
    size_t capacity;            /* most bytes in use (created arenas) */
    _Atomic size_t used;        /* bump pointer: bytes in use */
    _Atomic size_t committed;   /* bytes mapped writable (and memfd size) */
    _Atomic crew_ref root;
    _Atomic int frozen;         /* 1 once write-sealed (or opened): never writable again */
    int sealed;                 /* all freeze steps done (under grow_lock) */
    int fd;                     /* memfd, or the snapshot file; -1 over caller memory */
    int borrowed;               /* [map, map + map_len) is the caller's memory, not ours */
    uint64_t map_off;           /* file offset mapped at `map` (snapshots) */
    int in_space;               /* `map` lies in the process pools' space (space.c) */
    _Atomic int shown_writable; /* listed writable to a process pool's workers (space.c) */
    int shared_handle;          /* this object lives in shared memory (space.c) */
    pid_t owner;                /* the process that made it: only it may change it */
    uint64_t dev, ino;          /* the file behind fd */
    crew_arena *reg_prev, *reg_next; /* the registry of live arenas (space.c) */
    pthread_mutex_t grow_lock;  /* serializes growth and freeze */
};

/*
 * The prologue: bytes [0, CREW_ARENA_PROLOGUE) of every arena.  Written by
 * freeze (and into every snapshot's data), it lets a process that only has
 * a frozen memfd learn the size and root.  Native byte order.
 */
#define CREW__PROLOGUE_MAGIC "CREWARNA"
#define CREW__ENDIAN_TAG 0x01020304u

struct crew__prologue {
    char magic[8];
    uint32_t endian;      /* CREW__ENDIAN_TAG as written */
    uint32_t version;     /* 1 */
    uint64_t size;        /* bytes in use, prologue included */
    uint64_t root;
    uint64_t reserved[4]; /* zero */
};
_Static_assert(sizeof(struct crew__prologue) == CREW_ARENA_PROLOGUE, "prologue size");

/*
 * The snapshot header at offset 0 of a snapshot file; docs/SNAPSHOT.md is
 * the reference.  Fixed-width fields, native byte order (the endian field
 * tells readers which that was), 128 bytes.
 */
#define CREW__SNAP_MAGIC "CREWSNAP"
#define CREW__SNAP_VERSION 1u
#define CREW__SNAP_HEADER_SIZE 128u
#define CREW__SNAP_DATA_OFFSET 4096u
#define CREW__SNAP_CHECKSUM_XXH3 1u

struct crew__snap_header {
    char magic[8];          /*   0: "CREWSNAP" */
    uint32_t endian;        /*   8: 0x01020304 in the writer's byte order */
    uint32_t version;       /*  12: format version, 1 */
    uint32_t header_size;   /*  16: 128: bytes covered by the checksum */
    uint32_t flags;         /*  20: 0; reserved */
    uint64_t data_offset;   /*  24: file offset of arena byte 0; multiple of 4096 */
    uint64_t data_size;     /*  32: arena bytes in use */
    uint64_t root;          /*  40: 0 or a ref in [CREW_ARENA_PROLOGUE, data_size) */
    uint64_t checksum;      /*  48: XXH3-64 of header (this field 0) then data */
    uint32_t checksum_algo; /*  56: 1 = XXH3_64bits, seed 0 */
    uint32_t writer_page;   /*  60: page size of the writer (informative) */
    uint64_t reserved[8];   /*  64: zero; later minor additions go here */
};
_Static_assert(sizeof(struct crew__snap_header) == CREW__SNAP_HEADER_SIZE, "header size");

/* What a valid header says, once checked against the file size. */
typedef struct crew__snap_info {
    uint64_t data_offset;
    uint64_t data_size;
    uint64_t root;
    uint64_t checksum;
} crew__snap_info;

/* arena.c */

/* Page size, cached. */
size_t crew__arena_page(void);

/*
 * Map [off, off + len) of fd read-only, at `at` (MAP_FIXED over a range
 * the caller reserved) or, with at NULL, anywhere.  Uses MAP_SHARED, or
 * MAP_PRIVATE where the kernel refuses shared read-only mappings of a
 * write-sealed memfd, or when the environment variable
 * CREW_ARENA_MAP_PRIVATE=1 forces that fallback (for tests; read once per
 * process).  Returns the address or MAP_FAILED with errno set.
 */
void *crew__arena_map_readonly(void *at, size_t len, int fd, uint64_t off);

/* A root is 0 or a ref to a byte in use past the prologue. */
static inline int crew__arena_root_valid(uint64_t root, uint64_t size)
{
    return root == 0 || (root >= CREW_ARENA_PROLOGUE && root < size);
}

/*
 * A new arena object around a read-only mapping (used by snapshot.c).  fd
 * < 0: [map, map + map_len) is memory the caller lent (never unmapped,
 * never shown to process pools' workers: they inherit it, space.c).
 */
int crew__arena_adopt(crew_arena **out, int fd, unsigned char *map, size_t map_len,
                      uint64_t map_off, int in_space, size_t data_skip, uint64_t size,
                      crew_ref root);

/*
 * An arena over caller memory that a process pool's worker cannot see: it
 * was opened after the pool forked (space.c).  Such an arena reads as
 * empty in the worker.  One load and compare: the accessors call it.
 */
extern uint64_t crew__space_worker_gen;
static inline int crew__arena_hidden(const crew_arena *a)
{
    return a->pools_before >= crew__space_worker_gen;
}

/* Fill a prologue for `size` bytes in use and `root`. */
void crew__arena_prologue(struct crew__prologue *p, uint64_t size, crew_ref root);

/* snapshot.c */

/*
 * Check a snapshot header: `buf` holds the first `len` bytes of a file of
 * `file_size` bytes (len may be less than the header when the file is
 * short).  Returns 0 and fills *info, or the error the file deserves.
 * Never reads beyond buf[len).
 */
int crew__snapshot_parse(const void *buf, size_t len, uint64_t file_size,
                         crew__snap_info *info);

/*
 * Check the prologue of a frozen memfd whose first `len` bytes are in buf
 * and whose size is `file_size`.  Same contract as crew__snapshot_parse.
 */
int crew__prologue_parse(const void *buf, size_t len, uint64_t file_size,
                         crew__snap_info *info);

#endif
