/*
 * pack.c -- `crew pack`: build a snapshot of named data sets from ordinary
 * files (raw binary arrays, text lines, CSV columns), without writing C.
 *
 * Inputs stream: each is read in PACK_CHUNK pieces straight into a growing
 * arena, so pack holds no copy of the data besides the arena itself (which
 * is what the snapshot will hold) and a chunk or a line at a time.  The
 * arena reserves 1 TiB of addresses and uses memory only as it fills.
 * Nothing is written to the output until every input has been read and
 * checked; then crew_arena_save writes a temporary file and renames it, so
 * a failed pack leaves the output as it was (absent, or the old file).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/pack.h"

static const char usage[] =
    "usage: crew pack -o OUT.crew [--progress|--no-progress] INPUT-SPEC...\n"
    "\n"
    "Build the snapshot OUT.crew from ordinary files: each INPUT-SPEC adds\n"
    "named data sets to its catalog, which `crew inspect` lists and plugins\n"
    "find by name.\n"
    "\n"
    "inputs (FILE may be - for stdin, once):\n"
    "  --raw TYPE FILE     raw binary array of TYPE: u8 i32 u32 i64 u64 f32 f64\n"
    "                      (native byte order; the size must be a multiple of the element)\n"
    "  --lines FILE        one string per line (\\n or \\r\\n stripped; no NUL bytes)\n"
    "  --csv FILE          one f64 data set per column, named by the header line;\n"
    "                      empty fields are NaN\n"
    "options before an input, for that input only:\n"
    "  --name NAME         its data set name (default: FILE's name without extension,\n"
    "                      \"stdin\" for -); CSV columns are then named NAME.COLUMN\n"
    "  --no-header         CSV: the first line is data; columns are col1, col2, ...\n"
    "  --columns A,B,...   CSV: keep only these columns, in this order\n"
    "other options:\n"
    "  -o, --output FILE   the snapshot to write (replaced atomically)\n"
    "  --progress          show a progress bar (default: when stderr is a terminal)\n"
    "  --no-progress       never show one\n"
    "  -h, --help          this text\n"
    "\n"
    "example: crew pack -o data.crew --name prices --csv prices.csv --lines words.txt\n";

/* The address space reserved for the arena; it costs nothing until used. */
#define PACK_CAPACITY ((size_t)1 << 40)

/* The bar being drawn, so that an error can clear it before it speaks. */
static cli_progress *shown;

void pack_error(const char *fmt, ...)
{
    cli_progress_end(shown, false);
    shown = NULL;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cli_error("%s", line);
}

bool pack_open(const pack_input *in, pack_file *pf)
{
    if (strcmp(in->file, "-") == 0) {
        pf->f = stdin;
        pf->label = "stdin";
    } else {
        pf->label = in->file;
        int fd = open(in->file, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            pack_error("%s: %s", in->file, strerror(errno));
            if (fd >= 0)
                close(fd);
            return false;
        }
        if (S_ISDIR(st.st_mode)) {
            pack_error("%s: is a directory", in->file);
            close(fd);
            return false;
        }
        pf->f = fdopen(fd, "r");
        if (!pf->f) {
            pack_error("%s: %s", in->file, strerror(errno));
            close(fd);
            return false;
        }
    }
    setvbuf(pf->f, NULL, _IOFBF, PACK_CHUNK);
    return true;
}

bool pack_close(pack_file *pf)
{
    bool ok = !ferror(pf->f);
    int err = errno;
    if (!ok)
        pack_error("%s: read error: %s", pf->label, strerror(err));
    if (pf->f != stdin)
        fclose(pf->f);
    pf->f = NULL;
    return ok;
}

void pack_progress(pack_ctx *c, size_t n)
{
    /* Batched: one atomic add per 256 KiB instead of one per line. */
    c->unreported += n;
    if (c->unreported >= ((uint64_t)1 << 18)) {
        cli_progress_add(shown, c->unreported, 0);
        c->unreported = 0;
    }
}

static void arena_error(int rc)
{
    if (rc == CREW_EFULL)
        pack_error("the data does not fit in the arena's %s of address space",
                  cli_human_size((double)PACK_CAPACITY, (char[32]){0}, 32));
    else
        pack_error("cannot grow the arena: %s", crew_strerror(rc));
}

crew_ref pack_alloc(pack_ctx *c, size_t n, size_t align)
{
    crew_ref ref;
    int rc = crew_arena_try_alloc(c->arena, n, align, &ref);
    if (rc < 0) {
        arena_error(rc);
        return 0;
    }
    return ref;
}

bool pack_append(pack_ctx *c, pack_run *run, const void *p, size_t n)
{
    crew_ref ref = pack_alloc(c, n, run->start ? 1 : run->align);
    if (!ref)
        return false;
    if (run->start && ref != run->start + run->len) {
        pack_error("internal error: the arena did not place a piece after the last one");
        return false;
    }
    if (!run->start)
        run->start = ref;
    memcpy(crew_arena_ptr(c->arena, ref), p, n);
    run->len += n;
    return true;
}

bool pack_add(pack_ctx *c, const char *name, int type, uint64_t count, crew_ref data,
              crew_ref offsets)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255) {
        pack_error("data set name '%.40s%s' must be 1 to 255 bytes long", name,
                  len > 40 ? "..." : "");
        return false;
    }
    /* Names are printed by inspect and typed in task lines: no control
     * characters (a tab or newline would break both). */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
            pack_error("data set name at byte %zu holds a control character", i + 1);
            return false;
        }
    if (c->nsets == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        crew_dataset *sets = realloc(c->sets, cap * sizeof *sets);
        if (!sets) {
            pack_error("out of memory");
            return false;
        }
        c->sets = sets;
        c->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        pack_error("out of memory");
        return false;
    }
    c->sets[c->nsets++] = (crew_dataset){
        .name = copy, .type = type, .count = count, .data = data, .offsets = offsets};
    return true;
}

/* --name, else the file's name without its extension ("stdin" for -). */
static const char *default_name(const pack_input *in, char *buf, size_t size)
{
    if (in->name)
        return in->name;
    if (strcmp(in->file, "-") == 0)
        return "stdin";
    const char *base = strrchr(in->file, '/');
    base = base ? base + 1 : in->file;
    snprintf(buf, size, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
    return buf;
}

static bool pack_raw(pack_ctx *c, const pack_input *in)
{
    pack_file pf;
    if (!pack_open(in, &pf))
        return false;
    size_t esize = crew_type_size(in->type);
    pack_run run = {.align = esize};
    char *buf = malloc(PACK_CHUNK);
    bool ok = buf != NULL;
    if (!buf)
        pack_error("out of memory");
    size_t n;
    while (ok && (n = fread(buf, 1, PACK_CHUNK, pf.f)) > 0) {
        pack_progress(c, n);
        ok = pack_append(c, &run, buf, n);
    }
    free(buf);
    ok = pack_close(&pf) && ok;
    if (ok && run.len % esize) {
        pack_error("%s: %llu bytes is not a whole number of %s elements (%zu bytes each)",
                  pf.label, (unsigned long long)run.len, crew_type_name(in->type), esize);
        ok = false;
    }
    char nbuf[256];
    return ok && pack_add(c, default_name(in, nbuf, sizeof nbuf), in->type, run.len / esize,
                          run.start, 0);
}

/*
 * The offsets of `rows` NUL-terminated strings packed back to back in the
 * run: found by scanning the bytes once more in memory, which spares
 * keeping a second growing array (the arena can grow only one run at a
 * time) while the lines stream in.
 */
static crew_ref line_offsets(pack_ctx *c, const pack_run *run, uint64_t rows)
{
    if (rows >= SIZE_MAX / sizeof(uint64_t)) {
        pack_error("too many lines");
        return 0;
    }
    crew_ref ref = pack_alloc(c, ((size_t)rows + 1) * sizeof(uint64_t), sizeof(uint64_t));
    if (!ref)
        return 0;
    uint64_t *off = crew_arena_ptr(c->arena, ref);
    const char *bytes = crew_arena_ptr(c->arena, run->start);
    uint64_t at = 0;
    for (uint64_t i = 0; i < rows; i++) {
        off[i] = at;
        const char *nul = memchr(bytes + at, 0, run->len - at);
        at = (uint64_t)(nul - bytes) + 1;
    }
    off[rows] = at;
    return ref;
}

/* Stage small lines in buf and append them to the run a chunk at a time. */
static bool lines_flush(pack_ctx *c, pack_run *run, const char *buf, size_t *used)
{
    bool ok = *used == 0 || pack_append(c, run, buf, *used);
    *used = 0;
    return ok;
}

static bool pack_lines(pack_ctx *c, const pack_input *in)
{
    pack_file pf;
    if (!pack_open(in, &pf))
        return false;
    pack_run run = {.align = 1};
    char *stage = malloc(PACK_CHUNK), *line = NULL;
    size_t staged = 0, cap = 0;
    uint64_t rows = 0;
    ssize_t got;
    bool ok = stage != NULL;
    if (!stage)
        pack_error("out of memory");
    while (ok && (got = getline(&line, &cap, pf.f)) > 0) {
        size_t len = (size_t)got;
        rows++;
        pack_progress(c, len);
        if (line[len - 1] == '\n' && --len > 0 && line[len - 1] == '\r')
            len--;
        if (memchr(line, 0, len)) {
            pack_error("%s:%llu: the line holds a NUL byte, which text lines cannot", pf.label,
                      (unsigned long long)rows);
            ok = false;
            break;
        }
        line[len] = '\0';
        if (len + 1 > PACK_CHUNK - staged)
            ok = lines_flush(c, &run, stage, &staged);
        if (ok && len + 1 > PACK_CHUNK) {
            ok = pack_append(c, &run, line, len + 1);
        } else if (ok) {
            memcpy(stage + staged, line, len + 1);
            staged += len + 1;
        }
    }
    ok = ok && lines_flush(c, &run, stage, &staged);
    free(stage);
    free(line);
    ok = pack_close(&pf) && ok;
    crew_ref offsets = ok ? line_offsets(c, &run, rows) : 0;
    char nbuf[256];
    return offsets && pack_add(c, default_name(in, nbuf, sizeof nbuf), CREW_T_STR, rows,
                               run.start, offsets);
}

/* -------------------------------------------------------------------------- */

typedef struct pack_opts {
    const char *out;
    int progress;         /* -1: when stderr is a terminal */
    pack_input *inputs;
    size_t ninputs;
} pack_opts;

static int parse_type(const char *s)
{
    for (int t = CREW_T_U8; t < CREW_T_STR; t++)
        if (strcmp(s, crew_type_name(t)) == 0)
            return t;
    return 0;
}

/*
 * The command line, into o.  Options that shape an input (--name,
 * --no-header, --columns) wait in `next` for the input they precede.
 * Returns -1 to go on, or the exit status (after --help or an error).
 */
static int parse_args(int argc, char **argv, pack_opts *o)
{
    pack_input next = {0};
    bool pending = false;
    int stdin_uses = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int left = argc - i - 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strncmp(a, "--output=", 9)) {
            const char *v = NULL;
            if (!strncmp(a, "--output=", 9))
                v = a + 9;
            else if (left)
                v = argv[++i];
            if (!v || !*v)
                return cli_usage_error("%s needs a file name", a[1] == 'o' ? "-o" : "--output");
            if (o->out)
                return cli_usage_error("the output is given twice");
            o->out = v;
        } else if (!strcmp(a, "--progress") || !strcmp(a, "--no-progress")) {
            o->progress = a[2] == 'p';
        } else if (!strcmp(a, "--name")) {
            if (!left || !*argv[i + 1])
                return cli_usage_error("--name needs a name");
            if (next.name)
                return cli_usage_error("--name given twice for one input");
            next.name = argv[++i];
            pending = true;
        } else if (!strcmp(a, "--no-header")) {
            next.no_header = pending = true;
        } else if (!strcmp(a, "--columns")) {
            if (!left || !*argv[i + 1])
                return cli_usage_error("--columns needs a list of column names");
            next.columns = argv[++i];
            pending = true;
        } else if (!strcmp(a, "--raw") || !strcmp(a, "--lines") || !strcmp(a, "--csv")) {
            int need = a[2] == 'r' ? 2 : 1;
            if (left < need)
                return cli_usage_error("%s needs %s", a, need == 2 ? "TYPE and FILE" : "FILE");
            next.kind = a[2] == 'r' ? PACK_RAW : a[2] == 'l' ? PACK_LINES : PACK_CSV;
            if (next.kind == PACK_RAW && !(next.type = parse_type(argv[++i])))
                return cli_usage_error("unknown type '%s' (u8 i32 u32 i64 u64 f32 f64)", argv[i]);
            if (next.kind != PACK_CSV && (next.no_header || next.columns))
                return cli_usage_error("--no-header and --columns apply to --csv inputs only");
            next.file = argv[++i];
            if (!*next.file)
                return cli_usage_error("%s: empty file name", a);
            if (!strcmp(next.file, "-") && ++stdin_uses > 1)
                return cli_usage_error("stdin (-) can be read only once");
            o->inputs[o->ninputs++] = next;
            next = (pack_input){0};
            pending = false;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error("unknown option '%s'", a);
        } else {
            return cli_usage_error("unexpected argument '%s' (inputs are given with --raw, "
                                   "--lines or --csv)", a);
        }
    }
    if (pending)
        return cli_usage_error("--name, --no-header and --columns must come before an input");
    if (!o->out)
        return cli_usage_error("no output file (-o OUT.crew)");
    if (o->ninputs == 0)
        return cli_usage_error("no inputs (--raw, --lines or --csv)");
    return -1;
}

/*
 * Before reading anything: the output's directory exists and the output is
 * not a directory, every input file exists, and the bytes to read in all
 * (0 when unknown, as for stdin).  Prints and returns false on a problem.
 */
static bool check_paths(const pack_opts *o, char *dir, size_t dirsize, uint64_t *total)
{
    struct stat st;
    snprintf(dir, dirsize, "%s", o->out);
    char *d = dirname(dir);
    memmove(dir, d, strlen(d) + 1);
    /* The output replaces what is there (a new file renamed over it):
     * only ever a regular file, and never one of the inputs. */
    struct stat out_st;
    bool out_exists = lstat(o->out, &out_st) == 0;
    if (out_exists && S_ISDIR(out_st.st_mode)) {
        pack_error("%s: is a directory", o->out);
        return false;
    }
    if (out_exists && !S_ISREG(out_st.st_mode)) {
        pack_error("%s: exists and is not a regular file (a device, FIFO or symbolic link "
                   "would be replaced): remove it or choose another name", o->out);
        return false;
    }
    if (stat(dir, &st) < 0) {
        pack_error("%s: cannot write in %s: %s", o->out, dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        pack_error("%s: cannot write in %s: not a directory", o->out, dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) < 0) {
        pack_error("%s: cannot write in %s: %s", o->out, dir, strerror(errno));
        return false;
    }
    *total = 0;
    bool known = true;
    for (size_t i = 0; i < o->ninputs; i++) {
        const char *f = o->inputs[i].file;
        if (!strcmp(f, "-")) {
            known = false;
            continue;
        }
        if (stat(f, &st) < 0) {
            pack_error("%s: %s", f, strerror(errno));
            return false;
        }
        if (S_ISDIR(st.st_mode)) {
            pack_error("%s: is a directory", f);
            return false;
        }
        if (out_exists && st.st_dev == out_st.st_dev && st.st_ino == out_st.st_ino) {
            pack_error("%s: the output is also an input: packing would replace it", o->out);
            return false;
        }
        if (S_ISREG(st.st_mode))
            *total += (uint64_t)st.st_size;
        else
            known = false;
    }
    if (!known)
        *total = 0;
    return true;
}

static int make_arena(crew_arena **a)
{
    /* Less address space where a limit (ulimit -v) forbids 1 TiB. */
    int rc = CREW_ENOMEM;
    for (size_t cap = PACK_CAPACITY; cap >= ((size_t)1 << 30) && rc == CREW_ENOMEM; cap /= 2)
        rc = crew_arena_create(a, cap);
    return rc;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *pack_duplicate(const char *const *names, size_t n, bool *no_memory)
{
    /* sorted, so that a million columns cost n log n, not n squared */
    *no_memory = false;
    const char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        *no_memory = true;
        return NULL;
    }
    memcpy(sorted, names, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, by_string);
    const char *dup = NULL;
    for (size_t i = 1; i < n && !dup; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            dup = sorted[i];
    free(sorted);
    return dup;
}

/* Catalog, freeze, save; then the one-line summary. */
static bool finish(pack_ctx *c, const char *out)
{
    const char **names = malloc((c->nsets ? c->nsets : 1) * sizeof *names);
    bool no_memory = !names;
    const char *dup = NULL;
    for (size_t i = 0; names && i < c->nsets; i++)
        names[i] = c->sets[i].name;
    if (names)
        dup = pack_duplicate(names, c->nsets, &no_memory);
    if (dup)
        pack_error("two data sets named '%s' (give one another --name)", dup);
    free(names);
    if (dup || no_memory) {
        if (no_memory)
            pack_error("out of memory");
        return false;
    }
    int rc = crew_catalog_write(c->arena, c->sets, c->nsets);
    if (rc < 0) {
        pack_error("cannot write the catalog: %s", crew_strerror(rc));
        return false;
    }
    rc = crew_arena_freeze(c->arena);
    if (rc == 0)
        rc = crew_arena_save(c->arena, out);
    if (rc < 0) {
        pack_error("%s: %s", out, crew_strerror(rc));
        return false;
    }
    struct stat st;
    char size[32];
    cli_human_size(stat(out, &st) == 0 ? (double)st.st_size : (double)crew_arena_size(c->arena),
                   size, sizeof size);
    fprintf(stderr, "crew pack: packed %zu data set%s, %s, into %s\n", c->nsets,
            c->nsets == 1 ? "" : "s", size, out);
    return true;
}

int cli_pack(int argc, char **argv)
{
    pack_opts o = {.progress = -1, .inputs = calloc((size_t)argc + 1, sizeof(pack_input))};
    if (!o.inputs) {
        pack_error("out of memory");
        return CLI_USAGE;
    }
    int status = parse_args(argc, argv, &o);
    if (status >= 0) {
        free(o.inputs);
        return status;
    }
    pack_ctx c = {0};
    char dir[4096];
    uint64_t total = 0;
    bool ok = strlen(o.out) < sizeof dir && check_paths(&o, dir, sizeof dir, &total);
    if (strlen(o.out) >= sizeof dir)
        pack_error("%s: path too long", o.out);
    c.out_dir = dir;
    int rc = ok ? make_arena(&c.arena) : 0;
    if (rc < 0) {
        pack_error("cannot create an arena: %s", crew_strerror(rc));
        ok = false;
    }
    if (ok && (o.progress == 1 || (o.progress == -1 && isatty(STDERR_FILENO))))
        shown = cli_progress_start("packing", total, "bytes");
    for (size_t i = 0; ok && i < o.ninputs; i++) {
        const pack_input *in = &o.inputs[i];
        ok = in->kind == PACK_RAW ? pack_raw(&c, in)
           : in->kind == PACK_LINES ? pack_lines(&c, in) : pack_csv(&c, in);
    }
    cli_progress_end(shown, false); /* NULL when an error already ended it */
    shown = NULL;
    ok = ok && finish(&c, o.out);
    crew_arena_close(c.arena);
    for (size_t i = 0; i < c.nsets; i++)
        free((char *)c.sets[i].name);
    free(c.sets);
    free(o.inputs);
    return ok ? CLI_OK : CLI_USAGE;
}
