/*
 * pack.h -- what the pieces of `crew pack` share: the arena being built,
 * the data sets made so far, reading inputs with progress, and appending
 * bytes to the arena as one contiguous run.
 */
#ifndef CREW_CLI_PACK_H
#define CREW_CLI_PACK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli.h"
#include "crew.h"

/* Inputs are read in chunks of this size, whatever their length. */
#define PACK_CHUNK ((size_t)1 << 20)

enum pack_kind { PACK_RAW, PACK_LINES, PACK_CSV };

/* One INPUT-SPEC of the command line. */
typedef struct pack_input {
    enum pack_kind kind;
    int type;             /* PACK_RAW: the element type */
    const char *file;     /* "-": stdin */
    const char *name;     /* --name, or NULL */
    bool no_header;       /* PACK_CSV: --no-header */
    const char *columns;  /* PACK_CSV: --columns, or NULL */
} pack_input;

typedef struct pack_ctx {
    crew_arena *arena;
    crew_dataset *sets;   /* their names are malloc'ed, owned here */
    size_t nsets, cap;
    const char *out_dir;  /* the output's directory: scratch files go there */
    uint64_t unreported;  /* bytes read not yet added to the progress bar */
} pack_ctx;

/* An open input: its stream and the name messages give it. */
typedef struct pack_file {
    FILE *f;
    const char *label;    /* the path, or "stdin" */
} pack_file;

/* cli_error, after clearing the progress bar (if one is drawn) so that the
 * message gets a line of its own. */
void pack_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The first name that occurs twice in names[0, n), or NULL (also when out
 * of memory: *no_memory is then set). */
const char *pack_duplicate(const char *const *names, size_t n, bool *no_memory);

/* Open in->file for reading (stdin for "-"), with a PACK_CHUNK buffer.
 * Prints the error and returns false when it cannot be opened or is a
 * directory. */
bool pack_open(const pack_input *in, pack_file *pf);

/* Close it (not stdin); false, with a message, if reading had failed. */
bool pack_close(pack_file *pf);

/* Count n more bytes read, for the progress bar. */
void pack_progress(pack_ctx *c, size_t n);

/*
 * A run of bytes appended to the arena piece by piece, which must end up
 * contiguous: a data set's elements are one array.  The arena is a bump
 * allocator and pack allocates nothing else while a run grows, so each
 * piece starts where the last ended; pack_append checks that anyway.
 */
typedef struct pack_run {
    crew_ref start;       /* 0 until the first piece */
    uint64_t len;
    size_t align;         /* of the first piece */
} pack_run;

/* Append p[0, n) (n > 0); false, with a message, when the arena refuses. */
bool pack_append(pack_ctx *c, pack_run *run, const void *p, size_t n);

/* Allocate a zeroed array of n bytes; 0 with a message on failure. */
crew_ref pack_alloc(pack_ctx *c, size_t n, size_t align);

/*
 * Add a data set to the catalog being built, named `name` (copied).
 * false, with a message, for a name that is empty, too long (255 bytes)
 * or already taken, or out of memory.
 */
bool pack_add(pack_ctx *c, const char *name, int type, uint64_t count, crew_ref data,
              crew_ref offsets);

/* Data sets from a CSV file (pack_csv.c).  false after printing why. */
bool pack_csv(pack_ctx *c, const pack_input *in);

#endif
