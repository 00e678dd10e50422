/*
 * inspect.c -- `crew inspect`: what a snapshot holds.  The header fields
 * (read with pread from the file crew_arena_open has already checked,
 * following docs/SNAPSHOT.md), the checksum when asked, and the catalog of
 * data sets with, when asked, each one's minimum, maximum and mean.
 *
 * Everything is read and checked before anything is printed, so a corrupt
 * file gives one error line (and exit 2), not half a listing; only a
 * checksum mismatch still lists what the file says, since that is what
 * one wants to see then.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "crew.h"

static const char usage[] =
    "usage: crew inspect [--verify] [--stats] [--json] D.crew\n"
    "\n"
    "Describe the snapshot D.crew: its header, and the data sets of its catalog\n"
    "(name, type, rows, bytes).\n"
    "\n"
    "  --verify    check the checksum (reads the whole file)\n"
    "  --stats     also min, max and mean of each data set (of the lengths for\n"
    "              strings) and its NaN count; reads every value\n"
    "  --json      one JSON object instead of text\n"
    "  -h, --help  this text\n"
    "\n"
    "Exit status 2 when the file cannot be read, is not a snapshot, is corrupt\n"
    "or (with --verify) fails its checksum.\n";

/* The snapshot header as docs/SNAPSHOT.md lays it out. */
struct header {
    char magic[8];
    uint32_t endian, version, header_size, flags;
    uint64_t data_offset, data_size, root, checksum;
    uint32_t checksum_algo, writer_page;
    uint64_t reserved[8];
};
_Static_assert(sizeof(struct header) == 128, "snapshot header");

typedef struct stats {
    bool any;           /* a value other than NaN seen */
    double min, max, sum;
    int64_t imin, imax; /* signed integer types */
    uint64_t umin, umax; /* unsigned integer types and string lengths */
    uint64_t nans;
} stats;

typedef struct entry {
    crew_dataset d;
    uint64_t bytes;
    stats st;
} entry;

typedef struct report {
    const char *path;
    struct header h;
    uint64_t file_size;
    const char *checksum; /* "not verified", "ok", "MISMATCH" */
    bool catalog;         /* else the root is something else */
    entry *sets;
    int nsets;
} report;

/* The shortest %g form that reads back as the same double (float). */
static const char *num(double v, bool is_float, char *buf, size_t size)
{
    for (int prec = is_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (is_float ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

#define STATS_LOOP(T, field_min, field_max, conv)                          \
    do {                                                                     \
        const T *x = crew_dataset_array(a, d, d->type);                   \
        for (uint64_t i = 0; i < d->count; i++) {                            \
            if (isnan((double)x[i])) {                                       \
                st->nans++;                                                  \
                continue;                                                    \
            }                                                                \
            if (!st->any || x[i] < (T)st->field_min)                      \
                st->field_min = conv x[i];                                   \
            if (!st->any || x[i] > (T)st->field_max)                      \
                st->field_max = conv x[i];                                   \
            st->sum += (double)x[i];                                         \
            st->any = true;                                                  \
        }                                                                    \
    } while (0)

/* Min, max, sum and NaNs of one data set.  false: a string row is corrupt. */
static bool compute_stats(const crew_arena *a, const crew_dataset *d, stats *st,
                          uint64_t *bad_row)
{
    switch (d->type) {
    case CREW_T_U8: STATS_LOOP(uint8_t, umin, umax, (uint64_t)); break;
    case CREW_T_U32: STATS_LOOP(uint32_t, umin, umax, (uint64_t)); break;
    case CREW_T_U64: STATS_LOOP(uint64_t, umin, umax, (uint64_t)); break;
    case CREW_T_I32: STATS_LOOP(int32_t, imin, imax, (int64_t)); break;
    case CREW_T_I64: STATS_LOOP(int64_t, imin, imax, (int64_t)); break;
    case CREW_T_F32: STATS_LOOP(float, min, max, (double)); break;
    case CREW_T_F64: STATS_LOOP(double, min, max, (double)); break;
    case CREW_T_STR:
        for (uint64_t i = 0; i < d->count; i++) {
            size_t len;
            if (!crew_dataset_str(a, d, i, &len)) {
                *bad_row = i;
                return false;
            }
            if (!st->any || len < st->umin)
                st->umin = len;
            if (!st->any || len > st->umax)
                st->umax = len;
            st->sum += (double)len;
            st->any = true;
        }
        break;
    default: break;
    }
    return true;
}

/* Bytes a data set occupies: its elements, or a string column's bytes and offsets. */
static uint64_t dataset_bytes(const crew_arena *a, const crew_dataset *d)
{
    if (d->type != CREW_T_STR)
        return d->count * crew_type_size(d->type);
    /* crew_catalog_get has checked that the count + 1 offsets are there */
    const uint64_t *off = crew_arena_get(a, d->offsets, (d->count + 1) * sizeof(uint64_t));
    return off ? off[d->count] + (d->count + 1) * sizeof(uint64_t) : 0;
}

/* Read the catalog into r (all entries checked, stats if asked). */
static bool read_catalog(const crew_arena *a, report *r, bool want_stats)
{
    int n = crew_catalog_count(a);
    if (n < 0) {
        /* Not a catalog at all, or one that is corrupt? Its magic tells. */
        const char *magic = crew_arena_get(a, crew_arena_root(a), 8);
        if (magic && memcmp(magic, "CREWCATL", 8) == 0) {
            cli_error("%s: the catalog: %s", r->path, crew_strerror(n));
            return false;
        }
        return true;
    }
    r->catalog = true;
    r->sets = calloc((size_t)n + 1, sizeof *r->sets);
    if (!r->sets) {
        cli_error("out of memory");
        return false;
    }
    for (int i = 0; i < n; i++, r->nsets++) {
        entry *e = &r->sets[i];
        int rc = crew_catalog_get(a, (size_t)i, &e->d);
        if (rc < 0) {
            cli_error("%s: data set %d: %s", r->path, i + 1, crew_strerror(rc));
            return false;
        }
        e->bytes = dataset_bytes(a, &e->d);
        uint64_t bad;
        if (want_stats && !compute_stats(a, &e->d, &e->st, &bad)) {
            cli_error("%s: data set '%s': row %" PRIu64 ": %s", r->path, e->d.name, bad,
                      crew_strerror(CREW_EFORMAT));
            return false;
        }
    }
    return true;
}

/* The three statistics of e as text ("-" when there are no values). */
static void stat_strings(const entry *e, char out[3][40])
{
    const stats *st = &e->st;
    if (!st->any) {
        for (int i = 0; i < 3; i++)
            strcpy(out[i], "-");
        return;
    }
    switch (e->d.type) {
    case CREW_T_I32: case CREW_T_I64:
        snprintf(out[0], 40, "%" PRId64, st->imin);
        snprintf(out[1], 40, "%" PRId64, st->imax);
        break;
    case CREW_T_F32: case CREW_T_F64:
        num(st->min, e->d.type == CREW_T_F32, out[0], 40);
        num(st->max, e->d.type == CREW_T_F32, out[1], 40);
        break;
    default:
        snprintf(out[0], 40, "%" PRIu64, st->umin);
        snprintf(out[1], 40, "%" PRIu64, st->umax);
        break;
    }
    num(st->sum / (double)(e->d.count - st->nans), false, out[2], 40);
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json(const report *r, bool want_stats)
{
    const struct header *h = &r->h;
    printf("{\"file\": ");
    json_string(r->path);
    printf(", \"format_version\": %" PRIu32 ", \"file_size\": %" PRIu64
           ", \"data_offset\": %" PRIu64 ", \"data_size\": %" PRIu64 ", \"root\": %" PRIu64
           ", \"checksum\": \"%s\", \"checksum_value\": \"0x%016" PRIx64 "\"",
           h->version, r->file_size, h->data_offset, h->data_size, h->root,
           r->checksum[0] == 'n' ? "not verified" : r->checksum[0] == 'o' ? "ok" : "mismatch",
           h->checksum);
    if (!r->catalog) {
        printf(", \"datasets\": null}\n");
        return;
    }
    printf(", \"datasets\": [");
    for (int i = 0; i < r->nsets; i++) {
        const entry *e = &r->sets[i];
        printf("%s{\"name\": ", i ? ", " : "");
        json_string(e->d.name);
        printf(", \"type\": \"%s\", \"rows\": %" PRIu64 ", \"bytes\": %" PRIu64,
               crew_type_name(e->d.type), e->d.count, e->bytes);
        if (want_stats) {
            char s[3][40];
            stat_strings(e, s);
            for (int k = 0; k < 3; k++)
                if (!strcmp(s[k], "-") || strstr(s[k], "inf") || strstr(s[k], "nan"))
                    strcpy(s[k], "null"); /* JSON has no NaN or infinity */
            printf(", \"min\": %s, \"max\": %s, \"mean\": %s, \"nan\": %" PRIu64, s[0], s[1],
                   s[2], e->st.nans);
        }
        putchar('}');
    }
    printf("]}\n");
}

static void print_text(const report *r, bool want_stats)
{
    const struct header *h = &r->h;
    char s1[32], s2[32];
    const uint32_t one = 1;
    printf("file          %s\n", r->path);
    printf("format        crew snapshot version %" PRIu32 ", %s-endian\n", h->version,
           *(const unsigned char *)&one ? "little" : "big");
    printf("file size     %" PRIu64 " bytes (%s)\n", r->file_size,
           cli_human_size((double)r->file_size, s1, sizeof s1));
    printf("data size     %" PRIu64 " bytes (%s) at offset %" PRIu64 "\n", h->data_size,
           cli_human_size((double)h->data_size, s2, sizeof s2), h->data_offset);
    printf("root          0x%" PRIx64 "\n", h->root);
    printf("checksum      %s (xxh3 0x%016" PRIx64 ")\n", r->checksum, h->checksum);
    if (!r->catalog) {
        printf("no catalog (root = 0x%" PRIx64 ")\n", h->root);
        return;
    }
    printf("data sets     %d\n", r->nsets);
    if (r->nsets == 0)
        return;
    int w = 4;
    for (int i = 0; i < r->nsets; i++)
        if ((int)strlen(r->sets[i].d.name) > w)
            w = (int)strlen(r->sets[i].d.name);
    printf("  %-*s  type  %12s  %14s%s\n", w, "name", "rows", "bytes",
           want_stats ? "  min  max  mean  nan" : "");
    for (int i = 0; i < r->nsets; i++) {
        const entry *e = &r->sets[i];
        printf("  %-*s  %-4s  %12" PRIu64 "  %14" PRIu64, w, e->d.name,
               crew_type_name(e->d.type), e->d.count, e->bytes);
        if (want_stats) {
            char s[3][40];
            stat_strings(e, s);
            printf("  %s  %s  %s  %" PRIu64, s[0], s[1], s[2], e->st.nans);
        }
        putchar('\n');
    }
}

/* Open path (verifying if asked) into *a and fill the header part of r. */
static bool open_snapshot(const char *path, bool verify, crew_arena **a, report *r)
{
    int rc = crew_arena_open(a, path, verify ? CREW_ARENA_VERIFY : 0);
    r->checksum = verify ? "ok" : "not verified";
    if (rc == CREW_ECHECKSUM) {
        r->checksum = "MISMATCH";
        rc = crew_arena_open(a, path, 0);
    }
    if (rc < 0) {
        cli_error("%s: %s", path, crew_strerror(rc));
        return false;
    }
    int fd = crew_arena_fd(*a);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || pread(fd, &r->h, sizeof r->h, 0) != sizeof r->h) {
        cli_error("%s: cannot read the header back", path);
        return false;
    }
    r->file_size = (uint64_t)st.st_size;
    return true;
}

int cli_inspect(int argc, char **argv)
{
    bool verify = false, want_stats = false, json = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else if (!strcmp(a, "--stats")) {
            want_stats = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--") && i + 1 < argc && !path) {
            path = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("unknown option '%s'", a);
        } else if (path) {
            return cli_usage_error("one snapshot at a time ('%s' and '%s')", path, a);
        } else {
            path = a;
        }
    }
    if (!path)
        return cli_usage_error("which snapshot? (crew inspect D.crew)");

    crew_arena *a = NULL;
    report r = {.path = path};
    bool ok = open_snapshot(path, verify, &a, &r) && read_catalog(a, &r, want_stats);
    if (ok) {
        if (json)
            print_json(&r, want_stats);
        else
            print_text(&r, want_stats);
        if (fflush(stdout) != 0) {
            cli_error("cannot write the report");
            ok = false;
        }
    }
    if (ok && r.checksum[0] == 'M') {
        cli_error("%s: %s", path, crew_strerror(CREW_ECHECKSUM));
        ok = false;
    }
    free(r.sets);
    crew_arena_close(a);
    return ok ? CLI_OK : CLI_USAGE;
}
