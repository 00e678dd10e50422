/*
 * Description: snapshot files: save and open round trip, replacing a file
 * under a reader, and every kind of bad file -- missing, empty, truncated,
 * wrong magic, wrong version, other byte order, lying sizes, root out of
 * range, failing checksum, not a regular file -- each with its own error
 * code and text; what a save leaves behind (mode, no temporary file, the
 * old file when it fails) and a file truncated while VERIFY reads it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "arena/arena_internal.h"
#include "arena_util.h"

static char *dir;

static char *path_in(const char *name)
{
    static char buf[4][600];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* An arena with a root struct pointing at a string and an array. */
struct root {
    crew_ref name;
    crew_ref values;
    uint64_t count;
};

static crew_arena *sample_arena(uint64_t count, uint64_t seed)
{
    crew_arena *a;
    ASSERT_OK(crew_arena_create(&a, 64u << 20));
    crew_ref r = CREW_ARENA_NEW(a, struct root);
    struct root *root = CREW_ARENA_PTR(a, struct root, r);
    root->name = crew_arena_strdup(a, "sample");
    root->values = CREW_ARENA_ARRAY(a, uint64_t, count);
    root->count = count;
    uint64_t *v = CREW_ARENA_PTR(a, uint64_t, root->values);
    for (uint64_t i = 0; i < count; i++)
        v[i] = i * seed;
    crew_arena_set_root(a, r);
    return a;
}

static void check_sample(const crew_arena *a, uint64_t count, uint64_t seed)
{
    const struct root *root = CREW_ARENA_GET(a, struct root, crew_arena_root(a));
    ASSERT_NOT_NULL(root);
    ASSERT_STR_EQ(crew_arena_str(a, root->name), "sample");
    ASSERT_UEQ(root->count, count);
    const uint64_t *v = CREW_ARENA_GET_ARRAY(a, uint64_t, root->values, root->count);
    ASSERT_NOT_NULL(v);
    for (uint64_t i = 0; i < count; i++)
        ASSERT_UEQ(v[i], i * seed);
}

static void test_round_trip(void)
{
    const char *p = path_in("round.crew");
    crew_arena *a = sample_arena(100000, 3);
    ASSERT_OK(crew_arena_save(a, p)); /* an unfrozen arena may be saved */
    ASSERT_OK(crew_arena_freeze(a));
    ASSERT_OK(crew_arena_save(a, p)); /* and a frozen one */
    crew_arena *b = NULL;
    ASSERT_OK(crew_arena_open(&b, p, CREW_ARENA_VERIFY));
    ASSERT_UEQ(crew_arena_size(b), crew_arena_size(a));
    ASSERT_UEQ(crew_arena_root(b), crew_arena_root(a));
    ASSERT_EQ(memcmp((const char *)crew_arena_base(a) + CREW_ARENA_PROLOGUE,
                     (const char *)crew_arena_base(b) + CREW_ARENA_PROLOGUE,
                     crew_arena_size(a) - CREW_ARENA_PROLOGUE), 0);
    ASSERT_EQ((uintptr_t)crew_arena_base(b) % 4096, 0);
    check_sample(b, 100000, 3);
    ASSERT_EQ(crew_arena_frozen(b), 1);
    crew_ref x;
    ASSERT_EQ(crew_arena_try_alloc(b, 8, 8, &x), CREW_EFROZEN);
    ASSERT_OK(crew_arena_freeze(b));
    char perms[5];
    maps_perms(crew_arena_base(b), perms);
    ASSERT(perms[0] == 'r' && perms[1] == '-');
    /* the file is exactly header page + data */
    struct stat st;
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_size, 4096 + (off_t)crew_arena_size(a));
    /* an opened snapshot can be adopted from its fd and saved again */
    crew_arena *c = NULL;
    ASSERT_OK(crew_arena_open_fd(&c, crew_arena_fd(b), CREW_ARENA_VERIFY));
    check_sample(c, 100000, 3);
    ASSERT_OK(crew_arena_save(c, path_in("again.crew")));
    crew_arena_close(c);
    ASSERT_OK(crew_arena_open(&c, path_in("again.crew"), CREW_ARENA_VERIFY));
    check_sample(c, 100000, 3);
    crew_arena_close(c);
    /* the data bytes describe themselves: the prologue is filled in */
    struct crew__prologue pro;
    memcpy(&pro, crew_arena_base(b), sizeof pro);
    ASSERT_EQ(memcmp(pro.magic, "CREWARNA", 8), 0);
    ASSERT_UEQ(pro.size, crew_arena_size(a));
    ASSERT_UEQ(pro.root, crew_arena_root(a));
    crew_arena_close(b);
    crew_arena_close(a);
}

/* No save left a temporary file (".crew-tmp.*", hidden) in the test dir. */
static void assert_no_temp_file_at(int line)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, "crew-tmp"))
            TEST_FAIL_("line %d: temporary file %s left in %s", line, e->d_name, dir);
    closedir(d);
}
#define assert_no_temp_file() assert_no_temp_file_at(__LINE__)

/* Replacing a file does not disturb a process that has the old one open,
 * and leaves no temporary file behind. */
static void test_replace_under_reader(void)
{
    const char *p = path_in("replace.crew");
    crew_arena *a = sample_arena(1000, 5), *b = sample_arena(2000, 7), *old = NULL, *new = NULL;
    ASSERT_OK(crew_arena_save(a, p));
    ASSERT_OK(crew_arena_open(&old, p, 0));
    ASSERT_OK(crew_arena_save(b, p));
    ASSERT_OK(crew_arena_open(&new, p, CREW_ARENA_VERIFY));
    check_sample(old, 1000, 5);
    check_sample(new, 2000, 7);
    assert_no_temp_file();
    /* saving into a missing directory fails and creates nothing */
    ASSERT_EQ(crew_arena_save(a, path_in("no/such/dir.crew")), CREW_ENOENT);
    ASSERT_EQ(crew_arena_save(a, ""), CREW_EINVAL);
    crew_arena_close(old);
    crew_arena_close(new);
    crew_arena_close(a);
    crew_arena_close(b);
}

/* ---- bad files ---------------------------------------------------------- */

static unsigned char *good;  /* a valid snapshot's bytes */
static size_t good_len;

static void load_good(void)
{
    const char *p = path_in("good.crew");
    crew_arena *a = sample_arena(3000, 11);
    ASSERT_OK(crew_arena_save(a, p));
    crew_arena_close(a);
    FILE *f = fopen(p, "rb");
    ASSERT_NOT_NULL(f);
    fseek(f, 0, SEEK_END);
    good_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    good = malloc(good_len);
    ASSERT_EQ(fread(good, 1, good_len, f), good_len);
    fclose(f);
}

/* Write bytes to a file and open it; return the code (closing on success). */
static int open_bytes(const void *bytes, size_t len, unsigned flags)
{
    const char *p = path_in("bad.crew");
    FILE *f = fopen(p, "wb");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ(fwrite(bytes, 1, len, f), len);
    fclose(f);
    crew_arena *a = (crew_arena *)0x1;
    int rc = crew_arena_open(&a, p, flags);
    if (rc == 0)
        crew_arena_close(a);
    else
        ASSERT_PTR_EQ(a, (crew_arena *)0x1);
    return rc;
}

/* A copy of the good file with its header changed by `edit`. */
static int open_edited(void (*edit)(struct crew__snap_header *), unsigned flags)
{
    unsigned char *copy = malloc(good_len);
    memcpy(copy, good, good_len);
    struct crew__snap_header h;
    memcpy(&h, copy, sizeof h);
    edit(&h);
    memcpy(copy, &h, sizeof h);
    int rc = open_bytes(copy, good_len, flags);
    free(copy);
    return rc;
}

static void set_version_2(struct crew__snap_header *h) { h->version = 2; }
static void set_version_0(struct crew__snap_header *h) { h->version = 0; }
static void set_algo_9(struct crew__snap_header *h) { h->checksum_algo = 9; }
static void bad_magic(struct crew__snap_header *h) { h->magic[7] = 'X'; }
static void bad_endian_tag(struct crew__snap_header *h) { h->endian = 0x11223344; }
static void size_bigger(struct crew__snap_header *h) { h->data_size += 1; }
static void size_smaller(struct crew__snap_header *h) { h->data_size -= 8; }
static void size_zero(struct crew__snap_header *h) { h->data_size = 0; }
static void size_huge(struct crew__snap_header *h) { h->data_size = UINT64_MAX - 100; }
static void offset_odd(struct crew__snap_header *h) { h->data_offset = 4000; }
static void offset_huge(struct crew__snap_header *h) { h->data_offset = UINT64_MAX & ~4095ull; }
static void offset_wrap(struct crew__snap_header *h)
{
    /* offset + size wraps around to exactly the file size */
    h->data_offset = (uint64_t)1 << 63;
    h->data_size = ((uint64_t)1 << 63) + h->data_size + 4096;
}
static void header_size_odd(struct crew__snap_header *h) { h->header_size = 64; }
static void root_past_end(struct crew__snap_header *h) { h->root = h->data_size; }
static void root_in_prologue(struct crew__snap_header *h) { h->root = 8; }
static void root_huge(struct crew__snap_header *h) { h->root = UINT64_MAX; }
static void root_zero(struct crew__snap_header *h) { h->root = 0; }
static void reserved_set(struct crew__snap_header *h) { h->reserved[3] = 1; }

/* The whole header as a machine of the other byte order would write it. */
static void other_endian(struct crew__snap_header *h)
{
    h->endian = __builtin_bswap32(h->endian);
    h->version = __builtin_bswap32(h->version);
    h->header_size = __builtin_bswap32(h->header_size);
    h->data_offset = __builtin_bswap64(h->data_offset);
    h->data_size = __builtin_bswap64(h->data_size);
    h->root = __builtin_bswap64(h->root);
    h->checksum = __builtin_bswap64(h->checksum);
    h->checksum_algo = __builtin_bswap32(h->checksum_algo);
}

static void test_bad_files(void)
{
    load_good();
    ASSERT_OK(open_bytes(good, good_len, CREW_ARENA_VERIFY));
    crew_arena *a = NULL;
    ASSERT_EQ(crew_arena_open(&a, path_in("missing.crew"), 0), CREW_ENOENT);
    ASSERT_EQ(crew_arena_open(&a, dir, 0), -EISDIR);
    ASSERT_EQ(crew_arena_open(&a, "/dev/null", 0), CREW_ENOTFILE);
    ASSERT_EQ(open_bytes("", 0, 0), CREW_EEMPTY);
    ASSERT_EQ(open_bytes("CRE", 3, 0), CREW_ETRUNC);        /* starts like one */
    ASSERT_EQ(open_bytes("hello", 5, 0), CREW_EMAGIC);
    ASSERT_EQ(open_bytes(good, 100, 0), CREW_ETRUNC);       /* inside the header */
    ASSERT_EQ(open_bytes(good, 2000, 0), CREW_ETRUNC);      /* inside the padding */
    ASSERT_EQ(open_bytes(good, good_len - 1, 0), CREW_ETRUNC);
    ASSERT_EQ(open_bytes(good, 4096 + 32, 0), CREW_ETRUNC);
    unsigned char *longer = calloc(1, good_len + 1);
    memcpy(longer, good, good_len);
    ASSERT_EQ(open_bytes(longer, good_len + 1, 0), CREW_EBADSIZE); /* trailing bytes */
    free(longer);

    ASSERT_EQ(open_edited(bad_magic, 0), CREW_EMAGIC);
    ASSERT_EQ(open_edited(bad_endian_tag, 0), CREW_EMAGIC);
    ASSERT_EQ(open_edited(other_endian, 0), CREW_EENDIAN);
    ASSERT_EQ(open_edited(set_version_2, 0), CREW_EVERSION);
    ASSERT_EQ(open_edited(set_version_0, 0), CREW_EVERSION);
    ASSERT_EQ(open_edited(set_algo_9, 0), CREW_EVERSION);
    ASSERT_EQ(open_edited(size_bigger, 0), CREW_ETRUNC);
    ASSERT_EQ(open_edited(size_smaller, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(size_zero, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(size_huge, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(offset_odd, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(offset_huge, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(offset_wrap, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(header_size_odd, 0), CREW_EBADSIZE);
    ASSERT_EQ(open_edited(root_past_end, 0), CREW_EBADROOT);
    ASSERT_EQ(open_edited(root_in_prologue, 0), CREW_EBADROOT);
    ASSERT_EQ(open_edited(root_huge, 0), CREW_EBADROOT);

    /* The checksum covers the data and the header; it is checked only
     * when asked, because that reads the whole file. */
    ASSERT_OK(open_edited(root_zero, 0));
    ASSERT_EQ(open_edited(root_zero, CREW_ARENA_VERIFY), CREW_ECHECKSUM);
    ASSERT_OK(open_edited(reserved_set, 0));
    ASSERT_EQ(open_edited(reserved_set, CREW_ARENA_VERIFY), CREW_ECHECKSUM);
    unsigned char *flipped = malloc(good_len);
    memcpy(flipped, good, good_len);
    flipped[good_len - 3] ^= 0x10;
    ASSERT_OK(open_bytes(flipped, good_len, 0));
    ASSERT_EQ(open_bytes(flipped, good_len, CREW_ARENA_VERIFY), CREW_ECHECKSUM);
    free(flipped);
}

/* Each code has its own name and a sentence; no two sentences alike. */
static void test_error_texts(void)
{
    const int codes[] = {CREW_EEMPTY, CREW_ETRUNC, CREW_EMAGIC, CREW_EVERSION, CREW_EENDIAN,
                         CREW_EBADSIZE, CREW_EBADROOT, CREW_ECHECKSUM, CREW_ENOENT,
                         CREW_EFULL, CREW_EFROZEN, CREW_ENOTFROZEN, CREW_ENOTFILE};
    const size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        ASSERT_NE(strcmp(crew_strerror(codes[i]), "unknown error"), 0);
        ASSERT_NE(strcmp(crew_err_name(codes[i]), "unknown"), 0);
        for (size_t j = 0; j < i; j++)
            ASSERT_NE(strcmp(crew_strerror(codes[i]), crew_strerror(codes[j])), 0);
    }
    ASSERT_STR_EQ(crew_err_name(CREW_ENOTFROZEN), "CREW_ENOTFROZEN");
    ASSERT_STR_EQ(crew_err_name(CREW_ENOTFILE), "CREW_ENOTFILE");
}

/* ---- files that are not regular ----------------------------------------- */

static int open_code(void *path)
{
    alarm(10); /* a FIFO must not make open wait for a writer */
    crew_arena *a = (crew_arena *)0x1;
    int rc = crew_arena_open(&a, path, 0);
    if (rc == 0 || a != (crew_arena *)0x1)
        return 100;
    return rc == CREW_ENOTFILE ? 1 : rc == -EISDIR ? 2 : 3;
}

static void test_not_regular(void)
{
    const char *fifo = path_in("fifo.crew");
    ASSERT_EQ(mkfifo(fifo, 0600), 0);
    int status = run_child(open_code, (void *)fifo);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 1);
    status = run_child(open_code, "/dev/zero");
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 1);
    status = run_child(open_code, dir);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 2);
    /* the same through an fd */
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    crew_arena *a = NULL;
    ASSERT_EQ(crew_arena_open_fd(&a, fds[0], 0), CREW_ENOTFILE);
    ASSERT_NULL(a);
    close(fds[0]);
    close(fds[1]);
    ASSERT_NE(strstr(crew_strerror(CREW_ENOTFILE), "regular file"), NULL);
}

/* Header checks that the file size alone would not catch: a consistent
 * file whose data offset is not a multiple of 4096, and one whose data is
 * shorter than the prologue. */
static void test_bad_layout(void)
{
    struct crew__snap_header h;
    memcpy(&h, good, sizeof h);
    uint64_t size = h.data_size;
    unsigned char *buf = calloc(1, 4096 + size);
    ASSERT_NOT_NULL(buf);
    h.data_offset = 128;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + 128, good + 4096, size);
    ASSERT_EQ(open_bytes(buf, 128 + size, 0), CREW_EBADSIZE);

    memcpy(&h, good, sizeof h);
    h.data_size = 32;
    h.root = 0;
    memset(buf, 0, 4096 + 32);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + 4096, good + 4096, 32);
    ASSERT_EQ(open_bytes(buf, 4096 + 32, 0), CREW_EBADSIZE);
    free(buf);
}

/* A sealed memfd holding `len` bytes that start with prologue *p. */
static int open_sealed(const struct crew__prologue *p, size_t len)
{
    int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    ASSERT_GE(fd, 0);
    unsigned char *buf = calloc(1, len);
    ASSERT_NOT_NULL(buf);
    memcpy(buf, p, sizeof *p);
    ASSERT_EQ(write(fd, buf, len), (ssize_t)len);
    free(buf);
    ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), 0);
    crew_arena *a = (crew_arena *)0x1;
    int rc = crew_arena_open_fd(&a, fd, 0);
    if (rc == 0)
        crew_arena_close(a);
    else
        ASSERT_PTR_EQ(a, (crew_arena *)0x1);
    close(fd);
    return rc;
}

/* The prologue of a frozen memfd is untrusted too. */
static void test_bad_prologue(void)
{
    struct crew__prologue p;
    crew__arena_prologue(&p, 4096, 0);
    ASSERT_OK(open_sealed(&p, 4096));
    p.size = 8192; /* more than the memfd holds */
    ASSERT_EQ(open_sealed(&p, 4096), CREW_ETRUNC);
    crew__arena_prologue(&p, 4096, 0);
    p.version = 2;
    ASSERT_EQ(open_sealed(&p, 4096), CREW_EVERSION);
    crew__arena_prologue(&p, 4096, 4096); /* root past the end */
    ASSERT_EQ(open_sealed(&p, 4096), CREW_EBADROOT);
}

/* A regular file that starts like an arena's memfd is still not a
 * snapshot: it cannot be sealed, so "not frozen" would be a false hint. */
static void test_prologue_in_regular_file(void)
{
    ASSERT_EQ(open_bytes(good + CREW__SNAP_DATA_OFFSET, good_len - CREW__SNAP_DATA_OFFSET, 0),
              CREW_EMAGIC);
    ASSERT_EQ(open_bytes("CREWARNA", 8, 0), CREW_EMAGIC);
}

/* ---- what a save leaves behind ------------------------------------------ */

static void test_long_name(void)
{
    char name[251];
    memset(name, 'n', 250);
    memcpy(name + 245, ".crew", 6); /* 250 characters: valid, NAME_MAX is 255 */
    const char *p = path_in(name);
    crew_arena *a = sample_arena(100, 13), *b = NULL;
    ASSERT_OK(crew_arena_save(a, p));
    ASSERT_OK(crew_arena_open(&b, p, CREW_ARENA_VERIFY));
    check_sample(b, 100, 13);
    crew_arena_close(b);
    ASSERT_EQ(unlink(p), 0);
    crew_arena_close(a);
}

static void test_save_mode(void)
{
    const char *p = path_in("mode.crew");
    crew_arena *a = sample_arena(10, 1);
    mode_t old = umask(022);
    ASSERT_OK(crew_arena_save(a, p));
    struct stat st;
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0644); /* new file: 0666 & ~umask */
    ASSERT_EQ(chmod(p, 0640), 0);
    ASSERT_OK(crew_arena_save(a, p));
    ASSERT_EQ(stat(p, &st), 0);
    ASSERT_EQ(st.st_mode & 07777, 0640); /* replaced file: its mode kept */
    umask(old);
    crew_arena_close(a);
}

/* A root that open would refuse is refused by save, before any file. */
static void test_save_bad_root(void)
{
    const char *p = path_in("badroot.crew");
    crew_arena *a = sample_arena(10, 1);
    crew_ref good_root = crew_arena_root(a);
    crew_arena_set_root(a, crew_arena_size(a));
    ASSERT_EQ(crew_arena_save(a, p), CREW_EBADROOT);
    crew_arena_set_root(a, 8);
    ASSERT_EQ(crew_arena_save(a, p), CREW_EBADROOT);
    ASSERT_EQ(access(p, F_OK), -1);
    crew_arena_set_root(a, 0);
    ASSERT_OK(crew_arena_save(a, p));
    crew_arena_set_root(a, good_root);
    ASSERT_OK(crew_arena_save(a, p));
    crew_arena *b = NULL;
    ASSERT_OK(crew_arena_open(&b, p, CREW_ARENA_VERIFY));
    check_sample(b, 10, 1);
    crew_arena_close(b);
    crew_arena_close(a);
}

/* In a child whose file size limit is below the new file: the save fails
 * with EFBIG, the old file is intact and no temporary file is left. */
static int save_over_limit(void *path)
{
    crew_arena *big = sample_arena(1u << 17, 9); /* 1 MiB of values */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 256 << 10, .rlim_max = 256 << 10};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 10;
    int rc = crew_arena_save(big, path);
    crew_arena_close(big);
    return rc == -EFBIG ? 0 : 11;
}

static void test_failed_save_keeps_old(void)
{
    const char *p = path_in("keep.crew");
    crew_arena *a = sample_arena(100, 3);
    ASSERT_OK(crew_arena_save(a, p));
    crew_arena_close(a);
    int status = run_child(save_over_limit, (void *)p);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    crew_arena *b = NULL;
    ASSERT_OK(crew_arena_open(&b, p, CREW_ARENA_VERIFY));
    check_sample(b, 100, 3);
    crew_arena_close(b);
    assert_no_temp_file();
}

/* ---- durability: the file and then its directory are fsync'ed ----------- */

static int fsync_calls, fsync_fail_at; /* fail the fsync_fail_at-th call (1-based) */
static ino_t fsync_inode[4];

static int counting_fsync(int fd)
{
    struct stat st;
    if (fsync_calls < 4 && fstat(fd, &st) == 0)
        fsync_inode[fsync_calls] = st.st_ino;
    if (++fsync_calls == fsync_fail_at) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

static void test_save_fsyncs(void)
{
    const char *p = path_in("durable.crew");
    struct stat dir_st, file_st;
    ASSERT_EQ(stat(dir, &dir_st), 0);
    crew_arena *a = sample_arena(100, 21), *b = sample_arena(200, 22), *r = NULL;
    crew__sys.fsync = counting_fsync;

    /* A good save fsyncs the new file, then the directory, in that order. */
    fsync_calls = 0;
    fsync_fail_at = 0;
    ASSERT_OK(crew_arena_save(a, p));
    ASSERT_EQ(fsync_calls, 2);
    ASSERT_EQ(stat(p, &file_st), 0);
    ASSERT_UEQ(fsync_inode[0], file_st.st_ino);
    ASSERT_UEQ(fsync_inode[1], dir_st.st_ino);

    /* The file's fsync fails: an error, the old file intact, no temp file. */
    fsync_calls = 0;
    fsync_fail_at = 1;
    ASSERT_EQ(crew_arena_save(b, p), -EIO);
    ASSERT_OK(crew_arena_open(&r, p, CREW_ARENA_VERIFY));
    check_sample(r, 100, 21);
    crew_arena_close(r);
    assert_no_temp_file();

    /* The directory's fsync fails: an error, but the file is already the
     * new one (as the header says). */
    fsync_calls = 0;
    fsync_fail_at = 2;
    ASSERT_EQ(crew_arena_save(b, p), -EIO);
    ASSERT_OK(crew_arena_open(&r, p, CREW_ARENA_VERIFY));
    check_sample(r, 200, 22);
    crew_arena_close(r);

    crew__sys.fsync = fsync;
    ASSERT_EQ(unlink(p), 0);
    crew_arena_close(a);
    crew_arena_close(b);
}

/* ---- a file truncated while it is verified ------------------------------ */

static const char *shrink_path;

/* The mapping is made, then another writer truncates the file: what VERIFY
 * reads next is gone.  Through the mapping that would be SIGBUS. */
static void *mmap_then_truncate(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED && shrink_path)
        ASSERT_EQ(truncate(shrink_path, 4096 + 8192), 0);
    return p;
}

static int open_truncated(void *path)
{
    shrink_path = path;
    crew__sys.mmap = mmap_then_truncate;
    crew_arena *a = NULL;
    int rc = crew_arena_open(&a, path, CREW_ARENA_VERIFY);
    return rc == CREW_ETRUNC ? 0 : 1;
}

static void test_truncated_during_verify(void)
{
    const char *p = path_in("shrink.crew");
    crew_arena *a = sample_arena(1u << 16, 5);
    ASSERT_OK(crew_arena_save(a, p));
    crew_arena_close(a);
    int status = run_child(open_truncated, (void *)p);
    ASSERT(WIFEXITED(status)); /* not killed by SIGBUS */
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

int main(void)
{
    dir = scratch_dir();
    test_round_trip();
    test_replace_under_reader();
    test_bad_files();
    test_error_texts();
    test_not_regular();
    test_prologue_in_regular_file();
    test_bad_layout();
    test_bad_prologue();
    test_long_name();
    test_save_mode();
    test_save_fsyncs();
    test_save_bad_root();
    test_failed_save_keeps_old();
    test_truncated_during_verify();
    free(good);
    cleanup_dir(dir);
    printf("test_snapshot: ok\n");
    return 0;
}
