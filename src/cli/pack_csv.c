/*
 * pack_csv.c -- `crew pack --csv`: the numeric columns of a CSV file, each
 * an f64 data set.
 *
 * Each column must end up as one contiguous array in the arena, but a CSV
 * file arrives a row at a time with all its columns interleaved.  The arena
 * grows only at its end, so columns cannot each grow in a region of their
 * own; holding them in ordinary memory until the end would double the
 * memory a pack needs; and counting the rows in a first pass would not
 * work for stdin.  So one pass parses the rows and writes the values kept,
 * row after row as raw doubles, to an unnamed scratch file in the output's
 * directory (on disk, where the snapshot is going anyway: not /tmp, which
 * is often tmpfs, that is memory).  Once the row count is known each column
 * gets its array in the arena, and a second pass over the scratch file,
 * about a PACK_CHUNK of rows at a time, deals the values out to them.
 * Memory stays at one block of rows and the longest line; the scratch file
 * (8 bytes a value) disappears when it is closed, also if pack dies.
 *
 * The dialect: fields separated by commas; a field may be quoted with
 * double quotes (a comma inside, "" for a quote) but may not span lines;
 * blanks around a field are ignored; \r\n line ends and a UTF-8 byte order
 * mark are accepted.  Numbers are what strtod reads in the C locale
 * (including nan, inf and hexadecimal); an empty field is NaN.  Columns
 * left out with --columns are not parsed, so they may hold text.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/pack.h"

typedef struct field {
    char *s;      /* NUL-terminated, in the line */
    size_t len;
} field;

typedef struct csv {
    const pack_input *in;
    const char *label;     /* the file's name in messages */
    char *line;            /* getline's buffer */
    size_t line_cap;
    uint64_t lineno;
    field *fields;
    size_t nfields, fields_cap;
    char **names;          /* every column's data set name */
    size_t ncols;
    size_t *keep;          /* the columns kept, in output order */
    size_t nkeep;
    double *values;        /* one row of kept values */
    FILE *scratch;
    uint64_t rows;
} csv;

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool add_field(csv *t, char *s, size_t len)
{
    if (t->nfields == t->fields_cap) {
        size_t cap = t->fields_cap ? 2 * t->fields_cap : 64;
        field *f = realloc(t->fields, cap * sizeof *f);
        if (!f) {
            pack_error("out of memory");
            return false;
        }
        t->fields = f;
        t->fields_cap = cap;
    }
    t->fields[t->nfields++] = (field){s, len};
    return true;
}

/*
 * Split line[0, len) -- with a NUL at line[len] -- into t->fields, in place:
 * each field ends with a NUL where its comma was, quoted ones unquoted.
 */
static bool split(csv *t, char *line, size_t len)
{
    char *r = line, *end = line + len;
    t->nfields = 0;
    for (;;) {
        char *p = r;
        while (p < end && blank(*p))
            p++;
        if (p == end || *p != '"') {
            char *comma = memchr(r, ',', (size_t)(end - r));
            char *stop = comma ? comma : end;
            *stop = '\0';
            if (!add_field(t, r, (size_t)(stop - r)))
                return false;
            if (!comma)
                return true;
            r = comma + 1;
            continue;
        }
        /* Quoted: copy the contents down over the opening quote. */
        char *w = p, *start = p;
        for (p++;; p++) {
            if (p == end) {
                pack_error("%s:%llu:%zu: a quoted field has no closing quote", t->label,
                           (unsigned long long)t->lineno, t->nfields + 1);
                return false;
            }
            if (*p == '"' && p + 1 < end && p[1] == '"')
                *w++ = *p++;
            else if (*p == '"')
                break;
            else
                *w++ = *p;
        }
        for (p++; p < end && blank(*p); p++)
            ;
        if (p < end && *p != ',') {
            pack_error("%s:%llu:%zu: text after a closing quote", t->label,
                       (unsigned long long)t->lineno, t->nfields + 1);
            return false;
        }
        *w = '\0'; /* w < p: the two quotes were dropped */
        if (!add_field(t, start, (size_t)(w - start)))
            return false;
        if (p == end)
            return true;
        r = p + 1;
    }
}

/*
 * The next line, split into fields; false at the end of the input or after
 * an error (*failed says which).  Line ends and the byte order mark go.
 */
static bool next_line(pack_ctx *c, csv *t, FILE *f, bool *failed)
{
    ssize_t got = getline(&t->line, &t->line_cap, f);
    if (got <= 0)
        return false;
    size_t len = (size_t)got;
    t->lineno++;
    pack_progress(c, len);
    if (t->line[len - 1] == '\n')
        len--;
    if (len && t->line[len - 1] == '\r') /* also a last line without \n */
        len--;
    t->line[len] = '\0';
    char *s = t->line;
    if (t->lineno == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
        s += 3;
        len -= 3;
    }
    if (memchr(s, 0, len)) {
        pack_error("%s:%llu: the line holds a NUL byte", t->label,
                   (unsigned long long)t->lineno);
        *failed = true;
        return false;
    }
    if (!split(t, s, len)) {
        *failed = true;
        return false;
    }
    return true;
}

/* Field i of the current line without the blanks around it. */
static char *trimmed(field *fl, size_t *len)
{
    char *s = fl->s, *e = fl->s + fl->len;
    while (s < e && blank(*s))
        s++;
    while (e > s && blank(e[-1]))
        e--;
    *e = '\0';
    *len = (size_t)(e - s);
    return s;
}

/* The data set names of the columns: the header's, or col1, col2, ...;
 * prefixed "NAME." under --name. */
static bool name_columns(csv *t)
{
    t->ncols = t->nfields;
    t->names = calloc(t->ncols, sizeof *t->names);
    if (!t->names) {
        pack_error("out of memory");
        return false;
    }
    const char *prefix = t->in->name ? t->in->name : "";
    const char *dot = t->in->name ? "." : "";
    for (size_t i = 0; i < t->ncols; i++) {
        size_t len;
        char num[32];
        const char *col = num;
        if (t->in->no_header) {
            snprintf(num, sizeof num, "col%zu", i + 1);
        } else {
            col = trimmed(&t->fields[i], &len);
            if (len == 0) {
                pack_error("%s:1:%zu: the header gives this column no name", t->label, i + 1);
                return false;
            }
        }
        size_t size = strlen(prefix) + strlen(dot) + strlen(col) + 1;
        if (!(t->names[i] = malloc(size))) {
            pack_error("out of memory");
            return false;
        }
        snprintf(t->names[i], size, "%s%s%s", prefix, dot, col);
    }
    bool no_memory;
    const char *dup = pack_duplicate((const char *const *)t->names, t->ncols, &no_memory);
    if (dup || no_memory) {
        if (dup) {
            size_t first = 0, second = 0;
            while (strcmp(t->names[first], dup) != 0)
                first++;
            for (second = first + 1; strcmp(t->names[second], dup) != 0; second++)
                ;
            pack_error("%s:1:%zu: a second column named '%s'", t->label, second + 1,
                       dup + strlen(prefix) + strlen(dot));
        }
        else
            pack_error("out of memory");
        return false;
    }
    return true;
}

/* The columns to keep: --columns in its order, else all in file order. */
static bool choose_columns(csv *t)
{
    const char *list = t->in->columns;
    /* at most ncols: each one kept is a different column */
    t->keep = malloc(t->ncols * sizeof *t->keep);
    if (!t->keep) {
        pack_error("out of memory");
        return false;
    }
    if (!list) {
        for (size_t i = 0; i < t->ncols; i++)
            t->keep[t->nkeep++] = i;
        return true;
    }
    size_t skip = t->in->name ? strlen(t->in->name) + 1 : 0;
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        size_t i = 0;
        while (i < t->ncols && !(strlen(t->names[i] + skip) == len &&
                                 memcmp(t->names[i] + skip, p, len) == 0))
            i++;
        if (i == t->ncols) {
            pack_error("%s: no column named '%.*s'", t->label, (int)len, p);
            return false;
        }
        for (size_t k = 0; k < t->nkeep; k++)
            if (t->keep[k] == i) {
                pack_error("--columns names '%.*s' twice", (int)len, p);
                return false;
            }
        t->keep[t->nkeep++] = i;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

/* An unnamed file in dir, gone when closed; NULL after a message. */
static FILE *scratch_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && errno != ENOENT && errno != EACCES && errno != EROFS) {
        /* No O_TMPFILE on this file system: a named one, unlinked at once. */
        char path[4200];
        snprintf(path, sizeof path, "%s/.crew-pack-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w+b") : NULL;
    if (!f) {
        pack_error("cannot make a scratch file in %s: %s", dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, PACK_CHUNK);
    return f;
}

/* One data line: parse the kept fields and append them to the scratch file. */
static bool take_row(csv *t)
{
    size_t first_len;
    if (t->nfields == 1 && (trimmed(&t->fields[0], &first_len), first_len == 0))
        return true; /* a blank line: skipped, as most CSV readers do */
    if (t->nfields != t->ncols) {
        pack_error("%s:%llu: %zu field%s, but %s %zu", t->label,
                   (unsigned long long)t->lineno, t->nfields, t->nfields == 1 ? "" : "s",
                   t->in->no_header ? "the first line has" : "the header names",
                   t->ncols);
        return false;
    }
    for (size_t k = 0; k < t->nkeep; k++) {
        size_t col = t->keep[k], len;
        char *s = trimmed(&t->fields[col], &len), *end = s;
        errno = 0;
        t->values[k] = len ? strtod(s, &end) : NAN;
        if (len && end != s + len) {
            pack_error("%s:%llu:%zu: '%.40s%s' is not a number", t->label,
                       (unsigned long long)t->lineno, col + 1, s, len > 40 ? "..." : "");
            return false;
        }
        /* Underflow rounds to 0 or a subnormal, a fair reading; overflow
         * would store infinity for a finite number. */
        if (errno == ERANGE && isinf(t->values[k])) {
            pack_error("%s:%llu:%zu: '%.40s%s' is too large for a double", t->label,
                       (unsigned long long)t->lineno, col + 1, s, len > 40 ? "..." : "");
            return false;
        }
    }
    if (fwrite(t->values, sizeof(double), t->nkeep, t->scratch) != t->nkeep) {
        pack_error("cannot write the scratch file: %s", strerror(errno));
        return false;
    }
    t->rows++;
    return true;
}

/* The whole input: header, columns, rows into the scratch file. */
static bool read_rows(pack_ctx *c, csv *t, FILE *f)
{
    bool failed = false;
    if (!next_line(c, t, f, &failed)) {
        if (!failed)
            pack_error("%s: empty: no %s", t->label,
                       t->in->no_header ? "columns" : "header line");
        return false;
    }
    if (!name_columns(t) || !choose_columns(t))
        return false;
    t->values = malloc(t->nkeep * sizeof *t->values);
    if (!t->values) {
        pack_error("out of memory");
        return false;
    }
    if (!(t->scratch = scratch_file(c->out_dir)))
        return false;
    if (t->in->no_header && !take_row(t))
        return false;
    while (next_line(c, t, f, &failed))
        if (!take_row(t))
            return false;
    return !failed;
}

/* Second pass: the scratch file's rows dealt out into one array per column. */
static bool deal_columns(pack_ctx *c, csv *t)
{
    if (fflush(t->scratch) != 0 || fseek(t->scratch, 0, SEEK_SET) != 0) {
        pack_error("cannot write the scratch file: %s", strerror(errno));
        return false;
    }
    if (t->rows > SIZE_MAX / sizeof(double)) {
        pack_error("%s: too many rows", t->label);
        return false;
    }
    crew_ref *refs = calloc(t->nkeep, sizeof *refs);
    double **cols = calloc(t->nkeep, sizeof *cols);
    size_t block = PACK_CHUNK / sizeof(double) / t->nkeep;
    block = block ? block : 1;
    double *buf = malloc(block * t->nkeep * sizeof *buf);
    bool ok = refs && cols && buf;
    if (!ok)
        pack_error("out of memory");
    for (size_t k = 0; ok && t->rows && k < t->nkeep; k++) {
        refs[k] = pack_alloc(c, (size_t)t->rows * sizeof(double), sizeof(double));
        cols[k] = crew_arena_ptr(c->arena, refs[k]);
        ok = refs[k] != 0;
    }
    for (uint64_t r = 0; ok && r < t->rows; r += block) {
        size_t n = t->rows - r < block ? (size_t)(t->rows - r) : block;
        if (fread(buf, sizeof(double) * t->nkeep, n, t->scratch) != n) {
            pack_error("cannot read the scratch file back: %s",
                       ferror(t->scratch) ? strerror(errno) : "it is shorter than written");
            ok = false;
        }
        for (size_t i = 0; ok && i < n; i++)
            for (size_t k = 0; k < t->nkeep; k++)
                cols[k][r + i] = buf[i * t->nkeep + k];
    }
    for (size_t k = 0; ok && k < t->nkeep; k++)
        ok = pack_add(c, t->names[t->keep[k]], CREW_T_F64, t->rows, refs[k], 0);
    free(buf);
    free(cols);
    free(refs);
    return ok;
}

bool pack_csv(pack_ctx *c, const pack_input *in)
{
    pack_file pf;
    if (!pack_open(in, &pf))
        return false;
    csv t = {.in = in, .label = pf.label};
    bool ok = read_rows(c, &t, pf.f);
    ok = pack_close(&pf) && ok;
    ok = ok && deal_columns(c, &t);
    if (t.scratch)
        fclose(t.scratch);
    for (size_t i = 0; t.names && i < t.ncols; i++)
        free(t.names[i]);
    free(t.names);
    free(t.keep);
    free(t.values);
    free(t.fields);
    free(t.line);
    return ok;
}
